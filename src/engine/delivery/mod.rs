//! Delivering one operation to one SCIM target: render the resource from the store, compare
//! it with what the target was last told, and send the fewest requests that make the target
//! match, classifying every failure for the worker (done, wait, retry, or hand to a person).
//!
//! [`ScimDelivery`] is one target's delivery; its work is split by concern: the target's
//! client ([`client`]), what an attempt exchanged and how it ended (`attempt_log`), the batch
//! read before a claim's attempts (`prefetch`), documents created, updated and deleted
//! (`resources`), users (`users`) and groups (`groups`).

mod attempt_log;
mod client;
mod groups;
mod prefetch;
mod resources;
mod users;

pub use client::{ClientSetupError, target_client};

use super::lookup::LookupBatcher;
use crate::connectors::scim_client::ScimClient;
use crate::domain::*;
use crate::policy::roles::RoleResolver;
use crate::policy::target::TargetPolicy;
use crate::store::Store;
use async_trait::async_trait;
use attempt_log::{Log, store_stop};
use prefetch::Prefetched;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Bytes of a request or response kept with an attempt.
const EXCERPT_BYTES: usize = 1024;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryResult {
    /// The target matches; the link becomes this.
    Done(LinkUpdate),
    /// Nothing failed, but the operation must wait (a member not yet at the target, a
    /// deletion's grace period).
    Wait {
        /// When to look again.
        until: Timestamp,
        /// Why, for people.
        reason: String,
    },
    /// Failed in a way that retrying later can fix.
    Transient {
        /// What happened.
        error: String,
        /// How long the target asked us to wait.
        retry_after: Option<Duration>,
    },
    /// Failed in a way retrying cannot fix.
    Permanent {
        /// What happened, with the target's error body.
        error: String,
    },
}

/// One attempt's result with what was exchanged, for the attempt record.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// How it ended.
    pub result: DeliveryResult,
    /// The last HTTP status received.
    pub http_status: Option<u16>,
    /// The requests sent, one line each, redacted.
    pub request: Vec<String>,
    /// The last response, redacted and cut.
    pub response: Option<String>,
}

/// Something that carries operations to a target (the SCIM client; a no-op in benchmarks).
#[async_trait]
pub trait Deliver: Send + Sync {
    /// Called with each claimed batch before its attempts start: a chance to read what they
    /// need in a few queries rather than a few each.
    async fn prepare(&self, _ops: &[Operation]) {}
    /// Makes one attempt at `op`.
    async fn deliver(&self, op: &Operation) -> Delivery;
}

/// Why an attempt stopped short of done.
type Stop = DeliveryResult;

/// Delivers to a real SCIM 2.0 target.
pub struct ScimDelivery {
    store: Arc<dyn Store>,
    connection: Connection,
    settings: TargetSettings,
    client: ScimClient,
    patch: tokio::sync::OnceCell<bool>,
    lookups: LookupBatcher,
    /// The last policy read and when it began (see [`ScimDelivery::policy`]).
    policy_read: tokio::sync::Mutex<Option<(std::time::Instant, Arc<Policy>)>>,
    /// What [`Deliver::prepare`] read for claimed user operations, by operation and claim
    /// (its attempt count, which every claim raises: an entry from an earlier claim whose
    /// attempt never ran is never used for a later one).
    prefetched: std::sync::Mutex<HashMap<(OperationId, i32), Prefetched>>,
}

/// A target's policy and the organization's mappings, as read at one moment.
struct Policy {
    target: TargetPolicy,
    roles: RoleResolver,
}

impl ScimDelivery {
    /// A delivery for `connection`, authenticating with its decrypted secret.
    pub async fn new(
        store: Arc<dyn Store>,
        connection: Connection,
        settings: TargetSettings,
    ) -> Result<Self, ClientSetupError> {
        let client = target_client(store.as_ref(), &connection, &settings)
            .await?
            .limit_requests(settings.concurrency());
        Ok(Self {
            store,
            connection,
            settings,
            client,
            patch: tokio::sync::OnceCell::new(),
            lookups: LookupBatcher::default(),
            policy_read: tokio::sync::Mutex::new(None),
            prefetched: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The target's policy and the organization's mappings, as read after the attempt began:
    /// a mapping change committed before the operation was claimed is always seen (one made
    /// later queues an operation of its own). Attempts that began before a read share it, so
    /// a batch of claimed operations reads the policy once, not once each.
    async fn policy(&self, began: std::time::Instant) -> Result<Arc<Policy>, Stop> {
        let mut last = self.policy_read.lock().await;
        if let Some((read_at, p)) = last.as_ref()
            && *read_at >= began
        {
            return Ok(p.clone());
        }
        let read_at = std::time::Instant::now();
        let org = self.org();
        let roles = self.store.list_roles(org).await.map_err(store_stop)?;
        let mappings = self
            .store
            .list_role_mappings(org)
            .await
            .map_err(store_stop)?;
        let target = TargetPolicy::from_settings(
            self.connection.id,
            &self.connection.name,
            self.settings.clone(),
            &roles,
        )
        .map_err(|e| DeliveryResult::Permanent {
            error: format!("the target's policy is invalid: {e}"),
        })?;
        let p = Arc::new(Policy {
            target,
            roles: RoleResolver::new(&mappings),
        });
        *last = Some((read_at, p.clone()));
        Ok(p)
    }

    fn org(&self) -> OrganizationId {
        self.connection.organization_id
    }

    async fn attempt(&self, op: &Operation, log: &mut Log) -> Result<LinkUpdate, Stop> {
        use OperationAction as A;
        if op.action == A::Delete
            && let Some(remote_id) = op.unknown_remote_id()
        {
            return self.delete_unknown(op.resource_type, remote_id, log).await;
        }
        match (op.resource_type, op.action) {
            (ResourceType::User, A::Create | A::Update | A::Suspend | A::Delete) => {
                self.converge_user(op, log).await
            }
            (ResourceType::Group, A::Create | A::Update) => self.converge_group(op, log).await,
            (ResourceType::Group, A::Delete) => {
                match self.link(ResourceType::Group, op.resource_id).await? {
                    Some(link) => self.delete(ResourceType::Group, &link, log).await,
                    None => Ok(LinkUpdate::Keep),
                }
            }
            (ResourceType::Group, A::AddMembers | A::RemoveMembers) => {
                self.change_members(op, log).await
            }
            (rt, action) => Err(DeliveryResult::Permanent {
                error: format!("{action} is not an operation on a {rt}"),
            }),
        }
    }
}

#[async_trait]
impl Deliver for ScimDelivery {
    async fn prepare(&self, ops: &[Operation]) {
        if let Err(e) = self.prefetch(ops).await {
            // Each attempt then reads for itself (and reports the store's trouble).
            tracing::debug!("prefetching a claimed batch failed: {e}");
        }
    }

    async fn deliver(&self, op: &Operation) -> Delivery {
        let mut log = Log::new();
        let result = match self.attempt(op, &mut log).await {
            Ok(link) => DeliveryResult::Done(link),
            Err(stop) => stop,
        };
        Delivery {
            result,
            http_status: log.status,
            request: log.request,
            response: log.response,
        }
    }
}

/// Acknowledges every operation without sending anything: measures the queue alone
/// (`scimdesk bench drain --target noop`).
pub struct NoopDelivery;

#[async_trait]
impl Deliver for NoopDelivery {
    async fn deliver(&self, _op: &Operation) -> Delivery {
        Delivery {
            result: DeliveryResult::Done(LinkUpdate::Keep),
            http_status: None,
            request: Vec::new(),
            response: None,
        }
    }
}
