//! Delivering one operation to one SCIM target: render the resource from the store, compare
//! it with what the target was last told, and send the fewest requests that make the target
//! match, classifying every failure for the worker (done, wait, retry, or hand to a person).

use super::lookup::{LookupBatcher, LookupKeys};
use crate::connectors::oauth::{ClientCredentialsConfig, TokenEndpoint};
use crate::connectors::scim_client::{ScimClient, TargetAuth, TargetError, TargetResponse};
use crate::domain::*;
use crate::domain::{CreateLookup, DeleteMode, TargetSettings, UpdateMode};
use crate::policy::roles::RoleResolver;
use crate::policy::target::TargetPolicy;
use crate::scim::render::{self, excerpt};
use crate::store::{Store, StoreError};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Bytes of a request or response kept with an attempt.
const EXCERPT_BYTES: usize = 1024;
/// How soon an operation waiting for another resource (a group for its members) looks again.
const DEPENDENCY_WAIT: Duration = Duration::from_millis(500);

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

/// What was exchanged during one attempt.
struct Log {
    status: Option<u16>,
    request: Vec<String>,
    response: Option<String>,
    /// When the attempt began (after its operation was claimed).
    began: std::time::Instant,
}

impl Log {
    fn new() -> Self {
        Self {
            status: None,
            request: Vec::new(),
            response: None,
            began: std::time::Instant::now(),
        }
    }

    fn sent(&mut self, line: String) {
        self.request.push(line);
    }

    fn answered(&mut self, r: &TargetResponse) {
        self.status = Some(r.status);
        self.response = r.body.as_ref().map(|b| excerpt(b, EXCERPT_BYTES));
    }

    fn failed(&mut self, e: &TargetError) {
        self.status = e.status();
        if let TargetError::Http { excerpt, .. } = e {
            self.response = Some(render::truncate(excerpt.clone(), EXCERPT_BYTES));
        }
    }

    /// Records a failed call and classifies it.
    fn fail(&mut self, e: TargetError) -> Stop {
        self.failed(&e);
        stop(e)
    }
}

/// The target ids of group members given as (local id, remote id).
fn remote_ids(members: &[(uuid::Uuid, String)]) -> Vec<String> {
    members.iter().map(|(_, r)| r.clone()).collect()
}

/// Why an attempt stopped short of done.
type Stop = DeliveryResult;

fn stop(e: TargetError) -> Stop {
    if e.is_retryable() {
        DeliveryResult::Transient {
            retry_after: e.retry_after(),
            error: e.to_string(),
        }
    } else {
        let body = match &e {
            TargetError::Http { excerpt, .. } if !excerpt.is_empty() => {
                format!("; target said: {}", render::truncate(excerpt.clone(), 512))
            }
            _ => String::new(),
        };
        DeliveryResult::Permanent {
            error: format!("{e}{body}"),
        }
    }
}

/// The link after the target accepted `sent` for a resource it already holds (its version
/// from the answer, else the one known before).
fn acknowledged(
    link: &TargetLink,
    resp: &TargetResponse,
    content_hash: String,
    sent: Value,
) -> LinkUpdate {
    LinkUpdate::Set {
        remote_id: link.remote_id.clone(),
        remote_etag: resp.version().or_else(|| link.remote_etag.clone()),
        content_hash,
        last_sent: Some(sent),
    }
}

/// The link of a resource the target holds as `now_there` without a request (or whose
/// request only confirmed it), its version unchanged.
fn holds(link: &TargetLink, content_hash: String, now_there: Value) -> LinkUpdate {
    LinkUpdate::Set {
        remote_id: link.remote_id.clone(),
        remote_etag: link.remote_etag.clone(),
        content_hash,
        last_sent: Some(now_there),
    }
}

/// Whether a target said a PATCH path matched nothing (RFC 7644 §3.12 `noTarget`).
fn is_no_target(e: &TargetError) -> bool {
    matches!(e, TargetError::Http { status: 400, scim_type: Some(t), .. } if t.eq_ignore_ascii_case("noTarget"))
}

/// Whether a PATCH operation removes group members by value.
fn is_member_removal(op: &Value) -> bool {
    op.get("op").and_then(Value::as_str) == Some("remove")
        && op
            .get("path")
            .and_then(Value::as_str)
            .is_some_and(|p| p.starts_with("members["))
}

fn store_stop(e: StoreError) -> Stop {
    // The store being unreachable is transient; nothing was sent.
    DeliveryResult::Transient {
        error: format!("store: {e}"),
        retry_after: None,
    }
}

fn endpoint(rt: ResourceType) -> &'static str {
    match rt {
        ResourceType::User => "/Users",
        ResourceType::Group => "/Groups",
    }
}

/// The SCIM client of a target connection, authenticating with its decrypted secret (a
/// Bearer token, or OAuth 2.0 client credentials).
pub async fn target_client(
    store: &dyn Store,
    connection: &Connection,
    settings: &TargetSettings,
) -> Result<ScimClient, String> {
    let base = connection
        .base_url
        .clone()
        .ok_or_else(|| "the connection has no base URL".to_string())?;
    let secret = store
        .connection_secret(connection.organization_id, connection.id)
        .await
        .map_err(|e| format!("cannot read the connection's secret: {e}"))?;
    let auth = match connection.auth_method {
        AuthMethod::None => TargetAuth::None,
        AuthMethod::Bearer => TargetAuth::Bearer(
            secret.ok_or_else(|| "bearer authentication needs a secret (the token)".to_string())?,
        ),
        AuthMethod::OAuth2ClientCredentials => {
            let client_id = settings
                .client_id
                .clone()
                .ok_or_else(|| "OAuth client credentials need settings.client_id".to_string())?;
            let endpoint = match (&settings.issuer, &settings.token_url) {
                (Some(issuer), _) => TokenEndpoint::Discover {
                    issuer: issuer.clone(),
                },
                (None, Some(url)) => TokenEndpoint::Fixed(url.clone()),
                (None, None) => {
                    return Err(
                        "OAuth client credentials need settings.issuer or settings.token_url"
                            .into(),
                    );
                }
            };
            TargetAuth::OAuth2(ClientCredentialsConfig {
                endpoint,
                client_id,
                client_secret: secret.ok_or_else(|| {
                    "OAuth client credentials need a secret (the client secret)".to_string()
                })?,
                scope: settings.scope.clone(),
                client_auth: settings.client_auth,
            })
        }
    };
    ScimClient::new(&base, auth, settings.timeout()).map_err(|e| e.to_string())
}

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

/// A user operation's user and link, read for its whole claimed batch at once after the claim.
/// As fresh as reading them in the attempt: a change committed later queues an operation of
/// its own, which cannot run before this one ends, and the resource's previous operation at
/// this target (which wrote the link) was recorded before this one could be claimed.
struct Prefetched {
    user: Option<User>,
    link: Option<TargetLink>,
    at: std::time::Instant,
}

/// How long a prefetched entry whose attempt never ran (a shutdown) is kept.
const PREFETCH_KEEP: Duration = Duration::from_secs(60);

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
    ) -> Result<Self, String> {
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

    fn org(&self) -> OrganizationId {
        self.connection.organization_id
    }

    /// Whether updates go as PATCH (asks the target's ServiceProviderConfig once).
    async fn use_patch(&self, log: &mut Log) -> Result<bool, Stop> {
        match self.settings.update_mode {
            UpdateMode::Patch => return Ok(true),
            UpdateMode::Put => return Ok(false),
            UpdateMode::Auto => {}
        }
        if let Some(p) = self.patch.get() {
            return Ok(*p);
        }
        log.sent("GET /ServiceProviderConfig".into());
        let supported = self
            .client
            .supports_patch()
            .await
            .map_err(|e| log.fail(e))?;
        let _ = self.patch.set(supported);
        Ok(supported)
    }

    async fn link(&self, rt: ResourceType, id: uuid::Uuid) -> Result<Option<TargetLink>, Stop> {
        self.store
            .target_link(self.org(), self.connection.id, rt, id)
            .await
            .map_err(store_stop)
    }

    /// Finds a resource at the target that is this one: by `externalId` (scimdesk's id), then by
    /// `userName` or `displayName`. A resource found by name that carries another provisioner's
    /// `externalId` is not ours to take over: that raises a conflict exception instead.
    async fn find_existing(
        &self,
        op: &Operation,
        doc: &Value,
        log: &mut Log,
    ) -> Result<Option<Value>, Stop> {
        let rt = op.resource_type;
        let found = self.find_by_keys(rt, doc, log).await?;
        let Some(found) = found else {
            return Ok(None);
        };
        let ours = doc.get("externalId").and_then(Value::as_str);
        match found.get("externalId").and_then(Value::as_str) {
            Some(theirs) if Some(theirs) != ours => Err(self
                .conflict(
                    op,
                    doc,
                    Some(&found),
                    format!("the target holds a resource with this name that belongs to another source (externalId {theirs:?})"),
                )
                .await),
            _ => Ok(Some(found)),
        }
    }

    /// Raises a conflict exception with both sides and stops the operation for a person.
    async fn conflict(
        &self,
        op: &Operation,
        ours: &Value,
        theirs: Option<&Value>,
        why: String,
    ) -> Stop {
        let subject = ours
            .get("userName")
            .or_else(|| ours.get("displayName"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let raised = self
            .store
            .raise_exception(
                self.org(),
                &NewException {
                    kind: ExceptionKind::Conflict,
                    subject_key: format!("conflict:{}:{}:{}", self.connection.id, op.resource_type, op.resource_id),
                    connection_id: Some(self.connection.id),
                    subject,
                    summary: why.clone(),
                    details: json!({
                        "operation_id": op.id,
                        "resource_type": op.resource_type,
                        "resource_id": op.resource_id,
                        "ours": serde_json::from_str::<Value>(&excerpt(ours, 4096)).unwrap_or(Value::Null),
                        "theirs": theirs.map(|t| serde_json::from_str::<Value>(&excerpt(t, 4096)).unwrap_or(Value::Null)),
                    }),
                },
            )
            .await;
        let note = match raised {
            Err(e) => format!(" (the conflict could not be recorded: {e})"),
            Ok(_) => " (see `scimdesk exceptions list`)".into(),
        };
        DeliveryResult::Permanent {
            error: format!("conflict: {why}{note}"),
        }
    }

    /// The target's resource with this document's `externalId` or name (one look-up shared
    /// with the creates running at the same time, see [`LookupBatcher`]).
    async fn find_by_keys(
        &self,
        rt: ResourceType,
        doc: &Value,
        log: &mut Log,
    ) -> Result<Option<Value>, Stop> {
        let natural = match rt {
            ResourceType::User => "userName",
            ResourceType::Group => "displayName",
        };
        let text = |attr: &str| doc.get(attr).and_then(Value::as_str).map(str::to_string);
        let keys = LookupKeys {
            external_id: text("externalId"),
            name: text(natural),
        };
        match self.lookups.find(&self.client, rt, keys).await {
            Ok(found) => {
                found.sent.into_iter().for_each(|l| log.sent(l));
                Ok(found.resource)
            }
            Err((e, sent)) => {
                sent.into_iter().for_each(|l| log.sent(l));
                Err(log.fail(e))
            }
        }
    }

    /// Creates the resource, never twice: looks it up first (always, or after an attempt that
    /// may have reached the target), and links an existing one on 409.
    async fn create(
        &self,
        op: &Operation,
        doc: &Value,
        hash: String,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let rt = op.resource_type;
        let look_first = self.settings.create_lookup == CreateLookup::Always || op.attempts > 1;
        if look_first && let Some(existing) = self.find_existing(op, doc, log).await? {
            return self.adopt(rt, &existing, doc, hash, log).await;
        }
        log.sent(format!(
            "POST {} {}",
            endpoint(rt),
            excerpt(doc, EXCERPT_BYTES)
        ));
        match self.client.create(rt, doc).await {
            Ok(resp) => {
                log.answered(&resp);
                let remote_id = resp
                    .resource_id()
                    .ok_or_else(|| DeliveryResult::Permanent {
                        error: "the target created the resource but returned no id".into(),
                    })?;
                Ok(LinkUpdate::Set {
                    remote_id,
                    remote_etag: resp.version(),
                    content_hash: hash,
                    last_sent: Some(doc.clone()),
                })
            }
            Err(TargetError::Http { status: 409, .. }) => {
                log.status = Some(409);
                match self.find_existing(op, doc, log).await? {
                    Some(existing) => self.adopt(rt, &existing, doc, hash, log).await,
                    None => Err(self
                        .conflict(
                            op,
                            doc,
                            None,
                            "the target answered 409 (already exists) but no resource with this externalId or name can be found there".into(),
                        )
                        .await),
                }
            }
            Err(e) => Err(log.fail(e)),
        }
    }

    /// Links a resource found at the target and brings it up to date.
    async fn adopt(
        &self,
        rt: ResourceType,
        existing: &Value,
        doc: &Value,
        hash: String,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let remote_id = existing
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| DeliveryResult::Permanent {
                error: "a matching resource at the target has no id".into(),
            })?
            .to_string();
        // What it holds is unknown to us: send everything (PUT, or PATCH replacing all).
        let link = TargetLink {
            organization_id: self.org(),
            connection_id: self.connection.id,
            resource_type: rt,
            local_id: uuid::Uuid::nil(),
            remote_id,
            remote_etag: None,
            content_hash: String::new(),
            synced_at: Timestamp::now(),
            last_sent: None,
        };
        self.update(rt, &link, doc, hash, log).await
    }

    /// Brings a linked resource up to date; a 404 means it is gone at the target.
    async fn update(
        &self,
        rt: ResourceType,
        link: &TargetLink,
        doc: &Value,
        hash: String,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let path = format!("{}/{}", endpoint(rt), link.remote_id);
        let result = if self.use_patch(log).await? {
            let ops = render::patch_operations(link.last_sent.as_ref().map(|j| &j.0), doc);
            if ops.is_empty() {
                return Ok(holds(link, hash, doc.clone()));
            }
            log.sent(format!(
                "PATCH {path} {}",
                excerpt(&Value::Array(ops.clone()), EXCERPT_BYTES)
            ));
            match self.client.patch(rt, &link.remote_id, ops.clone()).await {
                Err(e) if is_no_target(&e) && ops.iter().any(is_member_removal) => {
                    // A member we remove is already gone there (deleted at the target, which
                    // took it out of its groups): send the rest.
                    log.failed(&e);
                    let rest: Vec<Value> =
                        ops.into_iter().filter(|o| !is_member_removal(o)).collect();
                    if rest.is_empty() {
                        return Ok(holds(link, hash, doc.clone()));
                    }
                    log.sent(format!(
                        "PATCH {path} {}",
                        excerpt(&Value::Array(rest.clone()), EXCERPT_BYTES)
                    ));
                    self.client.patch(rt, &link.remote_id, rest).await
                }
                other => other,
            }
        } else {
            log.sent(format!("PUT {path} {}", excerpt(doc, EXCERPT_BYTES)));
            self.client.replace(rt, &link.remote_id, doc, None).await
        };
        match result {
            Ok(resp) => {
                log.answered(&resp);
                Ok(acknowledged(link, &resp, hash, doc.clone()))
            }
            Err(e) => Err(log.fail(e)),
        }
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

    /// Reads, in two queries, the users and links that a claimed batch's user operations need.
    async fn prefetch(&self, ops: &[Operation]) -> Result<(), StoreError> {
        let users: Vec<&Operation> = ops
            .iter()
            .filter(|o| o.resource_type == ResourceType::User)
            .collect();
        if users.len() < 2 {
            return Ok(());
        }
        let at = std::time::Instant::now();
        let org = self.org();
        let ids: Vec<UserId> = users.iter().map(|o| UserId(o.resource_id)).collect();
        let raw: Vec<uuid::Uuid> = ids.iter().map(|u| u.0).collect();
        let mut found: HashMap<UserId, User> = self
            .store
            .users_by_ids(org, &ids)
            .await?
            .into_iter()
            .map(|u| (u.id, u))
            .collect();
        let mut links: HashMap<uuid::Uuid, TargetLink> = self
            .store
            .target_links_for(org, self.connection.id, ResourceType::User, &raw)
            .await?
            .into_iter()
            .map(|l| (l.local_id, l))
            .collect();
        let mut map = self.prefetched.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, p| p.at.elapsed() < PREFETCH_KEEP);
        for op in users {
            map.insert(
                (op.id, op.attempts),
                Prefetched {
                    user: found.remove(&UserId(op.resource_id)),
                    link: links.remove(&op.resource_id),
                    at,
                },
            );
        }
        Ok(())
    }

    /// Makes the target match what policy says about a user, whatever the operation's action:
    /// in scope → created or brought up to date (suspended users as `active=false`); out of
    /// scope, deprovisioned or deleted → removed per the connection's policy.
    async fn converge_user(&self, op: &Operation, log: &mut Log) -> Result<LinkUpdate, Stop> {
        let org = self.org();
        let pre = self
            .prefetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(op.id, op.attempts));
        let (user, link) = match pre {
            Some(p) => (p.user, p.link),
            None => (
                self.store
                    .user(org, UserId(op.resource_id))
                    .await
                    .map_err(store_stop)?,
                self.link(ResourceType::User, op.resource_id).await?,
            ),
        };
        let Some(user) = user else {
            return if op.action == OperationAction::Delete {
                self.remove_user(op, link, log).await
            } else {
                // Deleted since: the deletion that follows in the queue removes it.
                Ok(LinkUpdate::Keep)
            };
        };
        if op.action == OperationAction::Delete
            && user.lifecycle_state == LifecycleState::Deprovisioned
        {
            return self.remove_user(op, link, log).await;
        }
        let p = self.policy(log.began).await?;
        let (policy, resolver) = (&p.target, &p.roles);
        // Groups matter only through roles or a scope filter; without either, not reading
        // them saves a query per user.
        let groups = if resolver.is_empty() && !policy.scope_reads_user() {
            Vec::new()
        } else {
            self.store
                .user_groups(org, user.id)
                .await
                .map_err(store_stop)?
        };
        let roles = resolver.user_roles(&groups);
        let group_refs: Vec<&Group> = groups.iter().collect();
        if !policy.in_scope(&user, &roles, &group_refs) {
            return self.remove_user(op, link, log).await;
        }
        let doc = policy
            .user_document(&user, &roles)
            .map_err(|e| DeliveryResult::Permanent {
                error: format!("cannot map user {:?} for this target: {e}", user.user_name),
            })?;
        self.sync_document(op, link, doc, render::is_active(&user), log)
            .await
    }

    /// Makes the target hold `doc` for the operation's resource.
    async fn sync_document(
        &self,
        op: &Operation,
        link: Option<TargetLink>,
        doc: Value,
        wanted_at_target: bool,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let hash = render::content_hash(&doc);
        match link {
            Some(link) if link.content_hash == hash => Ok(LinkUpdate::Keep),
            Some(link) => match self
                .update(op.resource_type, &link, &doc, hash.clone(), log)
                .await
            {
                Err(DeliveryResult::Permanent { .. }) if log.status == Some(404) => {
                    // Removed at the target behind our back: create it again if it should exist.
                    if wanted_at_target {
                        self.create(op, &doc, hash, log).await
                    } else {
                        Ok(LinkUpdate::Remove)
                    }
                }
                other => other,
            },
            // A suspended user that the target never had needs nothing there.
            None if !wanted_at_target => Ok(LinkUpdate::Keep),
            None => self.create(op, &doc, hash, log).await,
        }
    }

    /// Removes a user per the connection's policy: suspend (soft delete), or suspend for the
    /// grace period and then DELETE.
    async fn remove_user(
        &self,
        op: &Operation,
        link: Option<TargetLink>,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let Some(link) = link else {
            return Ok(LinkUpdate::Keep);
        };
        let grace = Duration::from_secs(self.settings.delete_grace_secs);
        let hard_at = op.created_at.after(grace);
        let soft = self.settings.delete_mode == DeleteMode::Suspend || Timestamp::now() < hard_at;
        if soft {
            let mut doc = link
                .last_sent
                .as_ref()
                .map(|j| j.0.clone())
                .unwrap_or_else(|| json!({}));
            if let Some(m) = doc.as_object_mut() {
                m.insert("active".into(), json!(false));
            }
            let hash = render::content_hash(&doc);
            let suspended = if link.content_hash == hash {
                LinkUpdate::Keep
            } else {
                self.suspend(&link, doc, hash, log).await?
            };
            if self.settings.delete_mode == DeleteMode::Delete {
                // Suspended for the grace period; the DELETE comes when it ends (the link is
                // updated then, when it is removed).
                return Err(DeliveryResult::Wait {
                    until: hard_at,
                    reason: format!(
                        "suspended; deleted after the {}s grace period",
                        grace.as_secs()
                    ),
                });
            }
            return Ok(suspended);
        }
        self.delete(ResourceType::User, &link, log).await
    }

    async fn suspend(
        &self,
        link: &TargetLink,
        doc: Value,
        hash: String,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let path = format!("/Users/{}", link.remote_id);
        let result = if self.use_patch(log).await? {
            let ops = vec![json!({ "op": "replace", "path": "active", "value": false })];
            log.sent(format!("PATCH {path} active=false"));
            self.client
                .patch(ResourceType::User, &link.remote_id, ops)
                .await
        } else {
            log.sent(format!("PUT {path} {}", excerpt(&doc, EXCERPT_BYTES)));
            self.client
                .replace(ResourceType::User, &link.remote_id, &doc, None)
                .await
        };
        match result {
            Ok(resp) => {
                log.answered(&resp);
                Ok(acknowledged(link, &resp, hash, doc))
            }
            Err(TargetError::Http { status: 404, .. }) => Ok(LinkUpdate::Remove),
            Err(e) => Err(log.fail(e)),
        }
    }

    async fn delete(
        &self,
        rt: ResourceType,
        link: &TargetLink,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        log.sent(format!("DELETE {}/{}", endpoint(rt), link.remote_id));
        match self.client.delete(rt, &link.remote_id).await {
            Ok(existed) => {
                log.status = Some(if existed { 204 } else { 404 });
                Ok(LinkUpdate::Remove)
            }
            Err(e) => Err(log.fail(e)),
        }
    }

    /// The target ids of a group's members; waits while a member is still on its way there.
    async fn remote_members(&self, members: &[UserId]) -> Result<Vec<(uuid::Uuid, String)>, Stop> {
        let ids: Vec<uuid::Uuid> = members.iter().map(|m| m.0).collect();
        let links = self
            .store
            .target_links_for(self.org(), self.connection.id, ResourceType::User, &ids)
            .await
            .map_err(store_stop)?;
        let mut linked: std::collections::HashMap<uuid::Uuid, String> = links
            .into_iter()
            .map(|l| (l.local_id, l.remote_id))
            .collect();
        let unlinked: Vec<uuid::Uuid> = ids
            .iter()
            .filter(|id| !linked.contains_key(id))
            .copied()
            .collect();
        if !unlinked.is_empty() {
            let pending = self
                .store
                .resources_in_progress(self.connection.id, &unlinked)
                .await
                .map_err(store_stop)?;
            if let Some(id) = pending.first() {
                return Err(DeliveryResult::Wait {
                    until: Timestamp::now().after(DEPENDENCY_WAIT),
                    reason: format!("member {id} is not at the target yet"),
                });
            }
            // A member's operation may have finished between the two reads above: it was
            // not linked at the first and no longer unfinished at the second. Its link was
            // written with its completion, so it is visible now; without this second look it
            // was left out of the group, and nothing would have sent the group again.
            let late = self
                .store
                .target_links_for(
                    self.org(),
                    self.connection.id,
                    ResourceType::User,
                    &unlinked,
                )
                .await
                .map_err(store_stop)?;
            linked.extend(late.into_iter().map(|l| (l.local_id, l.remote_id)));
        }
        // Members neither linked nor in progress are not provisioned to this target
        // (suspended, out of scope, or stuck behind a failed operation that waits for an
        // operator): they are not members there. Waiting for a stuck member held up the
        // group for everyone else.
        let remote = ids
            .iter()
            .filter_map(|id| linked.get(id).map(|r| (*id, r.clone())))
            .collect();
        Ok(remote)
    }

    /// Sends a group (source or role group) holding `members` (local id, remote id) and
    /// links it. A member sent may have been removed at the target by one of this target's
    /// own operations running alongside (a member leaving is deleted there while the group
    /// that still named them is on its way), and the target then refuses the whole group
    /// (400 for an unknown member). That is no reason for an operator: if any member sent
    /// has work unfinished here or is no longer linked as sent, the group is retried (with
    /// back-off) and rendered again from what is true by then. A refusal with every member
    /// still as sent stays a failure.
    async fn send_group(
        &self,
        op: &Operation,
        doc: Value,
        members: &[(uuid::Uuid, String)],
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let link = self.link(op.resource_type, op.resource_id).await?;
        match self.sync_document(op, link, doc, true, log).await {
            Err(stop) => Err(self.unless_members_moved(stop, members, log).await),
            done => done,
        }
    }

    /// A target's refusal (4xx) of a group naming `members`, or a retry if any has moved
    /// since (see [`send_group`](Self::send_group)).
    async fn unless_members_moved(
        &self,
        stop: Stop,
        members: &[(uuid::Uuid, String)],
        log: &Log,
    ) -> Stop {
        let DeliveryResult::Permanent { error } = &stop else {
            return stop;
        };
        if !log.status.is_some_and(|s| (400..500).contains(&s)) {
            return stop;
        }
        // A retry with back-off, not a wait: the race settles within a retry or two, while a
        // member whose work is stuck (failed, waiting for an operator) must not make the group
        // knock at the target every half second for ever; it uses up the attempt budget and
        // fails with this message instead.
        match self.members_moved(members).await {
            Ok(true) => DeliveryResult::Transient {
                retry_after: None,
                error: format!(
                    "a member changed at this target while the group was sent; it is sent again ({error})"
                ),
            },
            Ok(false) => stop,
            Err(e) => e,
        }
    }

    /// Whether any of `members` (local id, remote id as sent) now has work unfinished at this
    /// target or a link other than the one sent.
    async fn members_moved(&self, members: &[(uuid::Uuid, String)]) -> Result<bool, Stop> {
        if members.is_empty() {
            return Ok(false);
        }
        let ids: Vec<uuid::Uuid> = members.iter().map(|(id, _)| *id).collect();
        let busy = self
            .store
            .resources_in_progress(self.connection.id, &ids)
            .await
            .map_err(store_stop)?;
        if !busy.is_empty() {
            return Ok(true);
        }
        let now: HashMap<uuid::Uuid, String> = self
            .store
            .target_links_for(self.org(), self.connection.id, ResourceType::User, &ids)
            .await
            .map_err(store_stop)?
            .into_iter()
            .map(|l| (l.local_id, l.remote_id))
            .collect();
        Ok(members
            .iter()
            .any(|(id, remote)| now.get(id) != Some(remote)))
    }

    /// Create or update of a group with its members.
    async fn sync_group(&self, op: &Operation, log: &mut Log) -> Result<LinkUpdate, Stop> {
        let org = self.org();
        let Some(group) = self
            .store
            .group(org, GroupId(op.resource_id))
            .await
            .map_err(store_stop)?
        else {
            return Ok(LinkUpdate::Keep);
        };
        let members = self
            .store
            .group_members(org, group.id)
            .await
            .map_err(store_stop)?;
        let remote = self.remote_members(&members).await?;
        let doc = render::group_document(&group, &remote_ids(&remote));
        self.send_group(op, doc, &remote, log).await
    }

    /// A group operation is about a source group, or (its id being a role's) about the target
    /// group that carries a role.
    async fn converge_group(&self, op: &Operation, log: &mut Log) -> Result<LinkUpdate, Stop> {
        let org = self.org();
        if self
            .store
            .group(org, GroupId(op.resource_id))
            .await
            .map_err(store_stop)?
            .is_some()
        {
            if !self.settings.source_groups {
                return Ok(LinkUpdate::Keep);
            }
            return self.sync_group(op, log).await;
        }
        match self
            .store
            .role(org, RoleId(op.resource_id))
            .await
            .map_err(store_stop)?
        {
            Some(role) => self.sync_role_group(op, &role, log).await,
            None => Ok(LinkUpdate::Keep),
        }
    }

    /// Makes the target group of `role` hold exactly the role's holders in scope at this
    /// target (those already there; the others join when they arrive).
    async fn sync_role_group(
        &self,
        op: &Operation,
        role: &Role,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let org = self.org();
        let p = self.policy(log.began).await?;
        let (policy, resolver) = (&p.target, &p.roles);
        if !policy.roles_as_groups() || !policy.bound_roles().contains(&role.id) {
            return Ok(LinkUpdate::Keep);
        }
        let groups = self
            .store
            .list_groups(org, crate::store::ListRange::first(u32::MAX))
            .await
            .map_err(store_stop)?;
        let granting: Vec<GroupId> = groups
            .iter()
            .filter(|g| resolver.group_roles(g).contains(&role.id))
            .map(|g| g.id)
            .collect();
        // One query for all the granting groups (a glob can match thousands).
        let mut holders: Vec<UserId> = self
            .store
            .memberships_of_groups(org, &granting)
            .await
            .map_err(store_stop)?
            .into_iter()
            .map(|(_, u)| u)
            .collect();
        holders.sort();
        holders.dedup();
        if policy.scope_reads_user() {
            let by_id: std::collections::HashMap<GroupId, &Group> =
                groups.iter().map(|g| (g.id, g)).collect();
            let mut of_user: std::collections::HashMap<UserId, Vec<&Group>> = Default::default();
            for (g, u) in self
                .store
                .organization_memberships(org)
                .await
                .map_err(store_stop)?
            {
                if let Some(g) = by_id.get(&g) {
                    of_user.entry(u).or_default().push(g);
                }
            }
            let users = self
                .store
                .users_by_ids(org, &holders)
                .await
                .map_err(store_stop)?;
            holders = users
                .iter()
                .filter(|u| {
                    let gs = of_user.get(&u.id).cloned().unwrap_or_default();
                    let roles = resolver.user_roles(gs.iter().copied());
                    policy.in_scope(u, &roles, &gs)
                })
                .map(|u| u.id)
                .collect();
        }
        let remote = self.remote_members(&holders).await?;
        let doc = policy.role_group_document(role.id, &remote_ids(&remote));
        self.send_group(op, doc, &remote, log).await
    }

    /// Adds or removes the members named in the payload (PATCH), or re-sends the group (PUT).
    async fn change_members(&self, op: &Operation, log: &mut Log) -> Result<LinkUpdate, Stop> {
        let Some(link) = self.link(ResourceType::Group, op.resource_id).await? else {
            // The group itself is not at the target yet: sending it whole includes the change.
            return self.sync_group(op, log).await;
        };
        if !self.use_patch(log).await? {
            return self.sync_group(op, log).await;
        }
        let ids: Vec<UserId> = op
            .payload
            .0
            .get("members")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()).map(UserId))
                    .collect()
            })
            .unwrap_or_default();
        let adding = op.action == OperationAction::AddMembers;
        let remote = if adding {
            self.remote_members(&ids).await?
        } else {
            let links = self
                .store
                .target_links_for(
                    self.org(),
                    self.connection.id,
                    ResourceType::User,
                    &ids.iter().map(|u| u.0).collect::<Vec<_>>(),
                )
                .await
                .map_err(store_stop)?;
            links
                .into_iter()
                .map(|l| (l.local_id, l.remote_id))
                .collect()
        };
        if remote.is_empty() {
            return Ok(LinkUpdate::Keep);
        }
        let sent = remote_ids(&remote);
        let (added, removed): (Vec<String>, Vec<String>) = if adding {
            (sent, Vec::new())
        } else {
            (Vec::new(), sent)
        };
        let ops = render::member_operations(&added, &removed);
        let path = format!("/Groups/{}", link.remote_id);
        // What the target holds once the change is made.
        let last = link
            .last_sent
            .as_ref()
            .map(|j| j.0.clone())
            .unwrap_or_else(|| json!({}));
        let now_there = render::with_members_changed(&last, &added, &removed);
        let hash = render::content_hash(&now_there);
        log.sent(format!(
            "PATCH {path} {}",
            excerpt(&Value::Array(ops.clone()), EXCERPT_BYTES)
        ));
        match self
            .client
            .patch(ResourceType::Group, &link.remote_id, ops)
            .await
        {
            Ok(resp) => {
                log.answered(&resp);
                Ok(acknowledged(&link, &resp, hash, now_there))
            }
            Err(e) if !adding && is_no_target(&e) => {
                // The members are not there any more: what this operation wanted is true.
                log.failed(&e);
                Ok(holds(&link, hash, now_there))
            }
            Err(TargetError::Http { status: 404, .. }) => {
                log.status = Some(404);
                // The group is gone at the target: forget it; the next group change recreates it.
                let _ = self
                    .store
                    .delete_target_link(
                        self.org(),
                        self.connection.id,
                        ResourceType::Group,
                        op.resource_id,
                    )
                    .await;
                self.sync_group(op, log).await
            }
            Err(e) => {
                let stop = log.fail(e);
                Err(self.unless_members_moved(stop, &remote, log).await)
            }
        }
    }

    /// Deletes a resource at the target that nothing here knows (a reconciliation's repair):
    /// gone already counts as done, and there is no link to keep.
    async fn delete_unknown(
        &self,
        rt: ResourceType,
        remote_id: &str,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        log.sent(format!("DELETE {}/{remote_id}", endpoint(rt)));
        match self.client.delete(rt, remote_id).await {
            Ok(existed) => {
                log.status = Some(if existed { 204 } else { 404 });
                Ok(LinkUpdate::Keep)
            }
            Err(e) => Err(log.fail(e)),
        }
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
