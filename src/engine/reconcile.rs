//! Full reconciliation of one target, driven: reads what the store holds, pages through the
//! target's `/Users` and `/Groups`, hands each page to policy's plan
//! ([`Reconciler`]) and commits the page's repairs in one store transaction, then commits what
//! only the complete walk can show (resources gone at the target, resources never placed
//! there). Every repair is a queued operation, deletions of unknown resources included, so the
//! workers carry them out with their order, retries and failed inbox. The run is recorded with
//! its counts and audited, also when it stops early.

use super::commands::{PolicyError, wake_other_processes};
use super::delivery::{ClientSetupError, target_client};
use crate::connectors::scim_client::{ScimClient, TargetError};
use crate::domain::*;
use crate::policy::attributes::AttributeError;
use crate::policy::reconcile::{LocalState, ReconcileReport, Reconciler};
use crate::policy::target::TargetPolicy;
use crate::store::{ListRange, OperationFilter, Store, StoreError};
use std::collections::BTreeSet;

/// Resources asked for per request.
const PAGE: u32 = 1000;
/// Users read from the store per query.
const USERS_PER_READ: u32 = 1000;
/// Queued operations read per query.
const QUEUE_PER_READ: u32 = 10_000;

/// Why a walk stopped early; recorded with the run.
#[derive(Debug, thiserror::Error)]
enum WalkError {
    /// The target's client cannot be made.
    #[error(transparent)]
    Client(#[from] ClientSetupError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The target did not list a page.
    #[error("listing {resource_type}s at the target: {error}")]
    Listing {
        resource_type: ResourceType,
        error: TargetError,
    },
    /// A user's document broke an attribute rule.
    #[error(transparent)]
    Plan(#[from] AttributeError),
}

/// Reconciles one target in full. With `dry_run`, only reports (nothing is committed).
pub async fn reconcile(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    connection_id: ConnectionId,
    dry_run: bool,
) -> Result<ReconcileReport, PolicyError> {
    let started_at = Timestamp::now();
    let connection = store
        .connection(org, connection_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("connection {connection_id}")))?;
    if connection.kind != ConnectionKind::ScimTarget {
        return Err(PolicyError::Invalid(format!(
            "{} is a {} connection; only SCIM targets are reconciled",
            connection.name, connection.kind
        )));
    }
    let roles = store.list_roles(org).await?;
    let policy = TargetPolicy::new(&connection, &roles)?;
    let mut run = Run {
        store,
        org,
        connection_id,
        dry_run,
        plan: None,
    };
    let error = run
        .walk(&connection, policy, roles)
        .await
        .err()
        .map(|e| e.to_string());
    let (counts, findings) = run.plan.map(Reconciler::into_report).unwrap_or_default();
    let record = ReconcileRun {
        id: ReconcileRunId::new(),
        organization_id: org,
        connection_id,
        started_at,
        finished_at: Timestamp::now(),
        dry_run,
        actor: actor.name.clone(),
        counts: Json(serde_json::to_value(&counts).unwrap_or(serde_json::Value::Null)),
        error,
    };
    store.record_reconcile_run(&record).await?;
    if !dry_run {
        wake_other_processes(store, org).await;
    }
    Ok(ReconcileReport {
        run: record,
        counts,
        findings,
    })
}

/// One run in progress.
struct Run<'a> {
    store: &'a dyn Store,
    org: OrganizationId,
    connection_id: ConnectionId,
    dry_run: bool,
    /// The plan, once the store's rows are read (its counts are the run's, even when the walk
    /// stops early).
    plan: Option<Reconciler>,
}

impl Run<'_> {
    /// Reads the store, walks the target and commits the repairs; an error stops the run and
    /// says why (what was committed before stays committed: every repair stands on its own).
    async fn walk(
        &mut self,
        connection: &Connection,
        policy: TargetPolicy,
        roles: Vec<Role>,
    ) -> Result<(), WalkError> {
        let client = target_client(self.store, connection, &policy.settings).await?;
        let local = self.local_state(roles).await?;
        let plan = self
            .plan
            .insert(Reconciler::new(connection, policy, local)?);
        let with_groups = plan.needs_groups();
        self.pages(&client, ResourceType::User).await?;
        if with_groups {
            self.pages(&client, ResourceType::Group).await?;
        }
        let rest = match self.plan.as_mut() {
            Some(plan) => plan.finish(),
            None => Repairs::default(),
        };
        self.commit(&rest).await
    }

    /// Every page of one resource type at the target, each planned and committed in turn.
    async fn pages(&mut self, client: &ScimClient, rt: ResourceType) -> Result<(), WalkError> {
        let mut start = 1u64;
        let mut seen = 0u64;
        loop {
            let (page, total) =
                client
                    .list_page(rt, start, PAGE)
                    .await
                    .map_err(|error| WalkError::Listing {
                        resource_type: rt,
                        error,
                    })?;
            if page.is_empty() {
                return Ok(());
            }
            start += page.len() as u64;
            seen += page.len() as u64;
            let Some(plan) = self.plan.as_mut() else {
                return Ok(());
            };
            let repairs = plan.page(rt, &page)?;
            self.commit(&repairs).await?;
            if seen >= total {
                return Ok(());
            }
        }
    }

    /// Commits one set of repairs in one transaction (nothing, in a dry run).
    async fn commit(&self, repairs: &Repairs) -> Result<(), WalkError> {
        if self.dry_run || repairs.is_empty() {
            return Ok(());
        }
        self.store
            .commit_reconcile(self.org, self.connection_id, repairs)
            .await
            .map(|_| ())
            .map_err(WalkError::from)
    }

    /// What the store holds that the target is compared with.
    async fn local_state(&self, roles: Vec<Role>) -> Result<LocalState, StoreError> {
        let (store, org) = (self.store, self.org);
        let mut users = Vec::new();
        let mut after = None;
        loop {
            let page = store.users_after(org, after, USERS_PER_READ).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            users.extend(page);
        }
        let mut queued: BTreeSet<uuid::Uuid> = BTreeSet::new();
        let mut offset = 0;
        loop {
            let page = store
                .list_operations(
                    org,
                    &OperationFilter {
                        connection_id: Some(self.connection_id),
                        offset,
                        limit: QUEUE_PER_READ,
                        ..Default::default()
                    },
                )
                .await?;
            let n = page.len();
            queued.extend(page.into_iter().map(|o| o.resource_id));
            if n < QUEUE_PER_READ as usize {
                break;
            }
            offset += n as u64;
        }
        Ok(LocalState {
            users,
            groups: store.list_groups(org, ListRange::first(u32::MAX)).await?,
            memberships: store.organization_memberships(org).await?,
            mappings: store.list_role_mappings(org).await?,
            roles,
            links: store.list_target_links(org, self.connection_id).await?,
            queued,
        })
    }
}
