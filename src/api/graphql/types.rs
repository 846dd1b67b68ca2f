//! The GraphQL shapes of what the store holds. Domain types stay free of the API library, so
//! each is wrapped here; a wrapper resolves what it links to (a connection's health, a user's
//! roles and status at targets) only when a query asks for it.

use super::error::api_error;
use super::principal::Needs;
use crate::domain::{
    Action, AuditEvent, Connection, Group, Operation, Organization, RoleMapping, Timestamp,
};
use crate::engine::HealthThresholds;
use crate::engine::directory::{Directory, UserView};
use crate::engine::health;
use crate::store::Store;
use async_graphql::{Context, ID, Object, SimpleObject};
use std::sync::Arc;

fn time(t: Timestamp) -> String {
    t.to_rfc3339()
}

/// An organization (a tenant).
pub struct OrganizationNode(pub Organization);

#[Object(name = "Organization")]
impl OrganizationNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn created_at(&self) -> String {
        time(self.0.created_at)
    }
}

/// A connection: a source scimdesk reads, an inbound SCIM endpoint, or a target. Its secret
/// is write-only: only whether one is stored is shown.
pub struct ConnectionNode(pub Connection);

#[Object(name = "Connection")]
impl ConnectionNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn kind(&self) -> &str {
        self.0.kind.as_str()
    }
    async fn base_url(&self) -> Option<&str> {
        self.0.base_url.as_deref()
    }
    async fn auth_method(&self) -> &str {
        self.0.auth_method.as_str()
    }
    /// Whether a secret is stored (it is never returned).
    async fn has_secret(&self) -> bool {
        self.0.has_secret
    }
    /// Kind-specific settings as JSON text (never secrets).
    async fn settings(&self) -> String {
        self.0.settings.0.to_string()
    }
    async fn state(&self) -> &str {
        self.0.state.as_str()
    }
    async fn created_at(&self) -> String {
        time(self.0.created_at)
    }
    /// How the connection is doing, as `connection health` judges it: the serving engine's
    /// latest assessment (every few seconds) while it agrees with the connection's state,
    /// else judged now.
    #[graphql(guard = "Needs(Action::View)")]
    async fn health(&self, ctx: &Context<'_>) -> async_graphql::Result<Health> {
        if let Ok(engine) = ctx.data::<Arc<crate::engine::Engine>>()
            && let Some(r) = engine.health_of(self.0.id)
            && (r.state == health::HealthState::Paused)
                == (self.0.state == crate::domain::ConnectionState::Paused)
        {
            return Ok(Health::from(&r));
        }
        let store = ctx.data::<Arc<dyn Store>>()?;
        let thresholds = ctx.data::<HealthThresholds>()?;
        let r = health::connection_health(store.as_ref(), &self.0, thresholds)
            .await
            .map_err(api_error)?;
        Ok(Health::from(&r))
    }
}

impl From<&health::HealthReport> for Health {
    fn from(r: &health::HealthReport) -> Self {
        Health {
            state: r.state.as_str().to_string(),
            reason: r.reason.clone(),
            last_success_at: r.last_success_at.map(time),
            error_rate_5m: r.errors_5m.rate(),
            pending: r.queue.pending + r.queue.retry_wait + r.queue.in_flight,
            failed: r.queue.failed,
            oldest_pending_age: r.oldest_pending_secs,
            p95_latency_ms: r.p95_ms,
        }
    }
}

/// A connection's health.
#[derive(SimpleObject, Clone)]
pub struct Health {
    /// healthy, degraded, stalled, quarantined or paused.
    pub state: String,
    /// Why, in words.
    pub reason: String,
    /// Last successful attempt (RFC 3339).
    pub last_success_at: Option<String>,
    /// Failed attempts per attempt over the last five minutes.
    #[graphql(name = "errorRate5m")]
    pub error_rate_5m: f64,
    /// Operations waiting or in flight.
    pub pending: u64,
    /// Operations failed and waiting for an operator.
    pub failed: u64,
    /// Age of the oldest unfinished operation, in seconds.
    pub oldest_pending_age: Option<u64>,
    /// 95th percentile attempt latency over the last hour, in ms.
    pub p95_latency_ms: Option<u64>,
}

/// A user with their groups, roles and status at each target.
pub struct UserNode(pub UserView);

/// A user's status at one target.
#[derive(SimpleObject)]
pub struct TargetStatusNode {
    /// The target's name.
    pub target: String,
    /// provisioned, pending, failed or absent.
    pub status: String,
}

/// A group as a user's `groups` names it.
#[derive(SimpleObject)]
pub struct GroupRefNode {
    /// The group's id.
    pub id: ID,
    /// Its display name.
    pub name: String,
    /// Its path.
    pub path: String,
}

#[Object(name = "User")]
impl UserNode {
    async fn id(&self) -> ID {
        ID(self.0.user.id.to_string())
    }
    async fn user_name(&self) -> &str {
        &self.0.user.user_name
    }
    async fn display_name(&self) -> Option<&str> {
        self.0.user.display_name.as_deref()
    }
    async fn active(&self) -> bool {
        self.0.user.active
    }
    async fn lifecycle_state(&self) -> &str {
        self.0.user.lifecycle_state.as_str()
    }
    /// The source connection's name, if a source owns the user.
    async fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }
    async fn groups(&self) -> Vec<GroupRefNode> {
        self.0
            .groups
            .iter()
            .map(|g| GroupRefNode {
                id: ID(g.id.to_string()),
                name: g.name.clone(),
                path: g.path.clone(),
            })
            .collect()
    }
    async fn roles(&self) -> &[String] {
        &self.0.roles
    }
    async fn targets(&self) -> Vec<TargetStatusNode> {
        self.0
            .targets
            .iter()
            .map(|t| TargetStatusNode {
                target: t.target.clone(),
                status: t.state.clone(),
            })
            .collect()
    }
}

/// The view of `users` the directory gives, for the API.
pub async fn user_nodes(
    store: &dyn Store,
    org: crate::domain::OrganizationId,
    users: Vec<crate::domain::User>,
) -> async_graphql::Result<Vec<UserNode>> {
    let directory = Directory::open(store, org).await.map_err(api_error)?;
    let mut out = Vec::with_capacity(users.len());
    for u in users {
        out.push(UserNode(directory.user(u).await.map_err(api_error)?));
    }
    Ok(out)
}

/// A group.
pub struct GroupNode(pub Group);

#[Object(name = "Group")]
impl GroupNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    async fn external_id(&self) -> Option<&str> {
        self.0.external_id.as_deref()
    }
    async fn path(&self) -> String {
        self.0.path()
    }
}

/// A rule that turns groups into a role.
pub struct RoleMappingNode(pub RoleMapping, pub String);

#[Object(name = "RoleMapping")]
impl RoleMappingNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The role it grants.
    async fn role(&self) -> &str {
        &self.1
    }
    /// What it selects groups by: display_name, external_id or path.
    async fn selector(&self) -> &str {
        self.0.selector.as_str()
    }
    /// exact or glob.
    async fn match_mode(&self) -> &str {
        self.0.match_mode.as_str()
    }
    async fn pattern(&self) -> &str {
        &self.0.pattern
    }
}

/// A queued or finished operation.
pub struct OperationNode(pub Operation);

#[Object(name = "Operation")]
impl OperationNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn connection_id(&self) -> ID {
        ID(self.0.connection_id.to_string())
    }
    async fn resource_type(&self) -> &str {
        self.0.resource_type.as_str()
    }
    async fn resource_id(&self) -> ID {
        ID(self.0.resource_id.to_string())
    }
    async fn action(&self) -> &str {
        self.0.action.as_str()
    }
    async fn state(&self) -> &str {
        self.0.state.as_str()
    }
    /// How many attempts were made.
    async fn attempt_count(&self) -> i32 {
        self.0.attempts
    }
    async fn last_status(&self) -> Option<i32> {
        self.0.last_status
    }
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }
    async fn created_at(&self) -> String {
        time(self.0.created_at)
    }
    /// Its attempts, in order, with requests and responses as recorded (redacted).
    #[graphql(guard = "Needs(Action::View)", complexity = "20 * child_complexity")]
    async fn attempts(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<AttemptNode>> {
        let store = ctx.data::<Arc<dyn Store>>()?;
        Ok(store
            .operation_attempts(self.0.organization_id, self.0.id)
            .await
            .map_err(api_error)?
            .into_iter()
            .map(AttemptNode)
            .collect())
    }
}

/// One audit event.
pub struct AuditEventNode(pub AuditEvent);

#[Object(name = "AuditEvent")]
impl AuditEventNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn occurred_at(&self) -> String {
        time(self.0.occurred_at)
    }
    async fn actor_kind(&self) -> &str {
        self.0.actor_kind.as_str()
    }
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    async fn action(&self) -> &str {
        &self.0.action
    }
    async fn subject_type(&self) -> &str {
        &self.0.subject_type
    }
    async fn subject_id(&self) -> &str {
        &self.0.subject_id
    }
    /// Details as JSON text.
    async fn details(&self) -> String {
        self.0.details.0.to_string()
    }
}

/// One attempt to deliver an operation, with its request and response as stored (redacted
/// when recorded, as `ops show` prints them).
pub struct AttemptNode(pub crate::domain::Attempt);

#[Object(name = "Attempt")]
impl AttemptNode {
    async fn attempt_no(&self) -> i32 {
        self.0.attempt_no
    }
    async fn started_at(&self) -> String {
        time(self.0.started_at)
    }
    async fn duration_ms(&self) -> i64 {
        self.0.duration_ms
    }
    async fn http_status(&self) -> Option<i32> {
        self.0.http_status
    }
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// The requests sent, redacted.
    async fn request(&self) -> Option<&str> {
        self.0.request_excerpt.as_deref()
    }
    /// The response, redacted and cut.
    async fn response(&self) -> Option<&str> {
        self.0.response_excerpt.as_deref()
    }
}

/// A policy exception waiting for (or settled by) a person.
pub struct ExceptionNode(pub crate::domain::PolicyException);

#[Object(name = "PolicyException")]
impl ExceptionNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn kind(&self) -> &str {
        self.0.kind.as_str()
    }
    async fn state(&self) -> &str {
        self.0.state.as_str()
    }
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    async fn summary(&self) -> &str {
        &self.0.summary
    }
    /// Details as JSON text.
    async fn details(&self) -> String {
        self.0.details.0.to_string()
    }
    async fn connection_id(&self) -> Option<ID> {
        self.0.connection_id.map(|c| ID(c.to_string()))
    }
    async fn resolution(&self) -> Option<&str> {
        self.0.resolution.as_deref()
    }
    async fn resolved_by(&self) -> Option<&str> {
        self.0.resolved_by.as_deref()
    }
    async fn created_at(&self) -> String {
        time(self.0.created_at)
    }
    async fn resolved_at(&self) -> Option<String> {
        self.0.resolved_at.map(time)
    }
}

/// One sync of a source.
pub struct SyncRunNode(pub crate::domain::SyncRun);

#[Object(name = "SyncRun")]
impl SyncRunNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn connection_id(&self) -> ID {
        ID(self.0.connection_id.to_string())
    }
    async fn started_at(&self) -> String {
        time(self.0.started_at)
    }
    async fn finished_at(&self) -> String {
        time(self.0.finished_at)
    }
    /// Whether it read everything (else only what changed).
    async fn full(&self) -> bool {
        self.0.full_sync
    }
    async fn dry_run(&self) -> bool {
        self.0.dry_run
    }
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    /// Counts per kind as JSON text.
    async fn counts(&self) -> String {
        self.0.counts.0.to_string()
    }
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }
}

/// What a mapping change would do (or did): the preview the workbench shows.
pub struct ImpactNode(pub crate::policy::impact::Impact);

/// One user's role difference.
#[derive(SimpleObject)]
pub struct RoleChangeNode {
    /// The user's id.
    pub user_id: ID,
    /// Their userName.
    pub user_name: String,
    /// Roles they would gain.
    pub gained: Vec<String>,
    /// Roles they would lose.
    pub lost: Vec<String>,
}

/// One operation a change causes at a target.
#[derive(SimpleObject)]
pub struct PlannedOperationNode {
    /// The target's name.
    pub connection: String,
    /// user or group.
    pub resource_type: String,
    /// What happens there.
    pub action: String,
    /// A userName or a role's name.
    pub subject: String,
}

#[Object(name = "Impact")]
impl ImpactNode {
    /// Users whose roles change.
    async fn role_changes(&self) -> Vec<RoleChangeNode> {
        self.0
            .role_changes
            .iter()
            .map(|c| RoleChangeNode {
                user_id: ID(c.user_id.to_string()),
                user_name: c.user_name.clone(),
                gained: c.gained.clone(),
                lost: c.lost.clone(),
            })
            .collect()
    }
    /// How many users would lose a role.
    async fn losing_access(&self) -> usize {
        self.0.losing_access().len()
    }
    /// The operations it queues at targets.
    async fn operations(&self) -> Vec<PlannedOperationNode> {
        self.0
            .operations
            .iter()
            .map(|o| PlannedOperationNode {
                connection: o.connection.clone(),
                resource_type: o.resource_type.as_str().to_string(),
                action: o.action.as_str().to_string(),
                subject: o.subject.clone(),
            })
            .collect()
    }
    /// Users of the organization.
    async fn organization_users(&self) -> u64 {
        self.0.organization_users
    }
    /// Groups no mapping would cover any more, by name.
    async fn newly_unmapped(&self) -> Vec<String> {
        self.0
            .newly_unmapped
            .iter()
            .map(|g| g.display_name.clone())
            .collect()
    }
    /// Groups a mapping would cover now, by name.
    async fn newly_covered(&self) -> Vec<String> {
        self.0
            .newly_covered
            .iter()
            .map(|g| g.display_name.clone())
            .collect()
    }
}
