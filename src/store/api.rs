//! The `Store` trait: everything the engine and the surfaces may ask of persistent state.
//!
//! Every method that touches tenant data takes the organization id and finds or changes nothing
//! of any other organization. Every method that changes something takes the [`Actor`] and writes
//! its audit event in the same transaction as the change.

use super::StoreResult;
use crate::crypto::{MasterKey, Secret};
use crate::domain::*;
use async_trait::async_trait;
use uuid::Uuid;

/// A window into a listing, in the listing's stable order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListRange {
    /// Rows to pass over.
    pub offset: u64,
    /// Rows to return at most.
    pub limit: u32,
}

impl ListRange {
    /// The first `limit` rows.
    pub fn first(limit: u32) -> Self {
        Self { offset: 0, limit }
    }
}

/// Narrows an operation listing. Unfinished states read the queue, `succeeded` and `skipped`
/// the history; without a state, the queue (all unfinished work) is listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationFilter {
    /// Only this target.
    pub connection_id: Option<ConnectionId>,
    /// Only this state.
    pub state: Option<OperationState>,
    /// Only this action.
    pub action: Option<OperationAction>,
    /// Only operations on this local user or group.
    pub resource_id: Option<Uuid>,
    /// Rows to pass over.
    pub offset: u64,
    /// At most this many, in queue order (history: most recently finished first).
    pub limit: u32,
}

/// A connection state change, conditional on the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange<'a> {
    /// Only from these states.
    pub from: &'a [ConnectionState],
    /// The new state.
    pub to: ConnectionState,
    /// The audit action (e.g. `connection.pause`).
    pub action: &'a str,
    /// Why, for the audit log.
    pub reason: &'a str,
}

/// A SCIM list request: filter, order and page, run in SQL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScimQuery {
    /// Only resources matching this (validated) filter.
    pub filter: Option<scimdesk_scim::filter::Filter>,
    /// Order by this attribute (then by id); default: creation order.
    pub sort_by: Option<scimdesk_scim::filter::AttrPath>,
    /// Descending order.
    pub descending: bool,
    /// Rows to pass over (SCIM `startIndex` - 1).
    pub offset: u64,
    /// Rows to return at most (SCIM `count`).
    pub limit: u32,
}

/// A group member as a SCIM `members` value shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MemberRef {
    /// The user.
    pub user_id: UserId,
    /// Their userName.
    pub user_name: String,
    /// Their display name, if set.
    pub display_name: Option<String>,
}

/// A newly issued token: its record and the text shown exactly once.
#[derive(Debug)]
pub struct IssuedApiToken {
    /// The stored record.
    pub token: ApiToken,
    /// The bearer text. Never stored; print it once and drop it.
    pub text: Secret,
}

/// The mapping write of a policy change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MappingWrite {
    /// Add a mapping.
    Create(RoleMappingDraft),
    /// Change a mapping.
    Replace(RoleMappingId, RoleMappingDraft),
    /// Remove a mapping.
    Delete(RoleMappingId),
}

/// Everything one mapping change commits together: the mapping, the operations its impact
/// causes, and the exceptions it raises or settles (see `policy::impact`).
#[derive(Debug, Clone, Copy)]
pub struct PolicyCommit<'a> {
    /// The mapping write.
    pub write: &'a MappingWrite,
    /// The operations to enqueue (waiting updates absorb repeated ones).
    pub operations: &'a [NewOperation],
    /// Unmapped-group exceptions to raise.
    pub raise: &'a [NewException],
    /// Open exceptions to resolve, by subject key, with the resolution.
    pub resolve: &'a [(String, String)],
    /// What the audit event says about the impact.
    pub summary: &'a serde_json::Value,
}

/// Rows a benchmark loads at once, bypassing the change path (no operations, no audit).
#[derive(Debug, Clone, Copy, Default)]
pub struct BulkLoad<'a> {
    /// Users, as they are to be stored.
    pub users: &'a [User],
    /// Groups, as they are to be stored.
    pub groups: &'a [Group],
    /// Memberships.
    pub memberships: &'a [(GroupId, UserId)],
    /// Target links.
    pub links: &'a [TargetLink],
}

/// Persistent state of scimdesk, implemented for PostgreSQL and SQLite.
#[async_trait]
pub trait Store: Send + Sync {
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;

    /// Where the store is, with any password removed (safe to print).
    fn location(&self) -> &str;

    /// Versions and descriptions of the applied migrations.
    async fn applied_migrations(&self) -> StoreResult<Vec<(i64, String)>>;

    // ---- organizations ------------------------------------------------------------------

    /// Creates an organization with a fresh data key wrapped by the current master key.
    async fn create_organization(&self, actor: &Actor, name: &str) -> StoreResult<Organization>;
    /// One organization by id.
    async fn organization(&self, id: OrganizationId) -> StoreResult<Option<Organization>>;
    /// One organization by name (case-insensitive).
    async fn organization_by_name(&self, name: &str) -> StoreResult<Option<Organization>>;
    /// Every organization (an operator-wide view), by name.
    async fn list_organizations(&self) -> StoreResult<Vec<Organization>>;
    /// Renames an organization.
    async fn rename_organization(
        &self,
        actor: &Actor,
        id: OrganizationId,
        name: &str,
    ) -> StoreResult<Organization>;

    // ---- connections --------------------------------------------------------------------

    /// Creates a connection, sealing `secret` with the organization's data key.
    async fn create_connection(
        &self,
        actor: &Actor,
        org: OrganizationId,
        new: &NewConnection,
        secret: Option<&Secret>,
    ) -> StoreResult<Connection>;
    /// One connection by id.
    async fn connection(
        &self,
        org: OrganizationId,
        id: ConnectionId,
    ) -> StoreResult<Option<Connection>>;
    /// One connection by name (case-insensitive).
    async fn connection_by_name(
        &self,
        org: OrganizationId,
        name: &str,
    ) -> StoreResult<Option<Connection>>;
    /// An organization's connections, by name.
    async fn list_connections(&self, org: OrganizationId) -> StoreResult<Vec<Connection>>;
    /// Changes a connection's configuration.
    async fn update_connection(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: ConnectionId,
        update: &ConnectionUpdate,
    ) -> StoreResult<Connection>;
    /// Moves a connection to `change.to` (pause, resume, quarantine, recover), only if it is
    /// in one of `change.from` (so the engine never overrides an operator's pause). Audited.
    /// Returns the connection if it changed.
    async fn set_connection_state(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: ConnectionId,
        change: &StateChange<'_>,
    ) -> StoreResult<Option<Connection>>;
    /// Replaces (or with `None`, clears) a connection's secret.
    async fn set_connection_secret(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: ConnectionId,
        secret: Option<&Secret>,
    ) -> StoreResult<()>;
    /// Decrypts a connection's secret, for the one component that must send it.
    async fn connection_secret(
        &self,
        org: OrganizationId,
        id: ConnectionId,
    ) -> StoreResult<Option<Secret>>;
    /// Removes a connection with its links, operations, mappings and tokens; users and groups it
    /// was the source of are kept and detached. Returns whether it existed.
    async fn delete_connection(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: ConnectionId,
    ) -> StoreResult<bool>;

    // ---- users --------------------------------------------------------------------------

    /// Creates a user; `userName` must be unique in the organization, ignoring case.
    async fn create_user(
        &self,
        actor: &Actor,
        org: OrganizationId,
        draft: &UserDraft,
    ) -> StoreResult<User>;
    /// One user by id.
    async fn user(&self, org: OrganizationId, id: UserId) -> StoreResult<Option<User>>;
    /// One user by userName (case-insensitive).
    async fn user_by_user_name(
        &self,
        org: OrganizationId,
        user_name: &str,
    ) -> StoreResult<Option<User>>;
    /// Users in creation order.
    async fn list_users(&self, org: OrganizationId, range: ListRange) -> StoreResult<Vec<User>>;
    /// How many users the organization has.
    async fn count_users(&self, org: OrganizationId) -> StoreResult<u64>;
    /// Replaces a user's content; with `if_version`, only if the stored version matches.
    async fn replace_user(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: UserId,
        draft: &UserDraft,
        if_version: Option<i64>,
    ) -> StoreResult<User>;
    /// Marks a user deprovisioned (kept for the audit trail and for off-boarding at targets,
    /// `active=false`, memberships removed). Returns whether an active or suspended user existed.
    async fn deprovision_user(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: UserId,
    ) -> StoreResult<bool>;
    /// Deletes a user (and their memberships). Returns whether it existed.
    async fn delete_user(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: UserId,
    ) -> StoreResult<bool>;

    // ---- groups and memberships ---------------------------------------------------------

    /// Creates a group.
    async fn create_group(
        &self,
        actor: &Actor,
        org: OrganizationId,
        draft: &GroupDraft,
    ) -> StoreResult<Group>;
    /// One group by id.
    async fn group(&self, org: OrganizationId, id: GroupId) -> StoreResult<Option<Group>>;
    /// Groups in creation order.
    async fn list_groups(&self, org: OrganizationId, range: ListRange) -> StoreResult<Vec<Group>>;
    /// Replaces a group's content; with `if_version`, only if the stored version matches.
    async fn replace_group(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: GroupId,
        draft: &GroupDraft,
        if_version: Option<i64>,
    ) -> StoreResult<Group>;
    /// Deletes a group (and its memberships). Returns whether it existed.
    async fn delete_group(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: GroupId,
    ) -> StoreResult<bool>;
    /// Adds a user to a group of the same organization. Returns false if already a member.
    async fn add_member(
        &self,
        actor: &Actor,
        org: OrganizationId,
        group: GroupId,
        user: UserId,
    ) -> StoreResult<bool>;
    /// Removes a user from a group. Returns whether they were a member.
    async fn remove_member(
        &self,
        actor: &Actor,
        org: OrganizationId,
        group: GroupId,
        user: UserId,
    ) -> StoreResult<bool>;
    /// A group's members.
    async fn group_members(&self, org: OrganizationId, group: GroupId) -> StoreResult<Vec<UserId>>;
    /// The groups a user is in.
    async fn user_groups(&self, org: OrganizationId, user: UserId) -> StoreResult<Vec<Group>>;
    /// A group's members with their names, for SCIM `members`.
    async fn group_member_refs(
        &self,
        org: OrganizationId,
        group: GroupId,
    ) -> StoreResult<Vec<MemberRef>>;
    /// Users matching a SCIM query, and how many match in all. Deprovisioned users are not
    /// listed: to SCIM clients they no longer exist.
    async fn scim_list_users(
        &self,
        org: OrganizationId,
        query: &ScimQuery,
    ) -> StoreResult<(Vec<User>, u64)>;
    /// Groups matching a SCIM query, and how many match in all.
    async fn scim_list_groups(
        &self,
        org: OrganizationId,
        query: &ScimQuery,
    ) -> StoreResult<(Vec<Group>, u64)>;

    // ---- roles and mappings -------------------------------------------------------------

    /// Creates a role.
    async fn create_role(
        &self,
        actor: &Actor,
        org: OrganizationId,
        name: &str,
        description: &str,
    ) -> StoreResult<Role>;
    /// One role by id.
    async fn role(&self, org: OrganizationId, id: RoleId) -> StoreResult<Option<Role>>;
    /// An organization's roles, by name.
    async fn list_roles(&self, org: OrganizationId) -> StoreResult<Vec<Role>>;
    /// Renames or re-describes a role.
    async fn update_role(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: RoleId,
        name: &str,
        description: &str,
    ) -> StoreResult<Role>;
    /// Deletes a role and the mappings that grant it. Returns whether it existed.
    async fn delete_role(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: RoleId,
    ) -> StoreResult<bool>;
    /// Creates a group-to-role mapping.
    async fn create_role_mapping(
        &self,
        actor: &Actor,
        org: OrganizationId,
        draft: &RoleMappingDraft,
    ) -> StoreResult<RoleMapping>;
    /// One mapping by id.
    async fn role_mapping(
        &self,
        org: OrganizationId,
        id: RoleMappingId,
    ) -> StoreResult<Option<RoleMapping>>;
    /// An organization's mappings, oldest first.
    async fn list_role_mappings(&self, org: OrganizationId) -> StoreResult<Vec<RoleMapping>>;
    /// Replaces a mapping's content.
    async fn replace_role_mapping(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: RoleMappingId,
        draft: &RoleMappingDraft,
    ) -> StoreResult<RoleMapping>;
    /// Deletes a mapping. Returns whether it existed.
    async fn delete_role_mapping(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: RoleMappingId,
    ) -> StoreResult<bool>;

    // ---- target links -------------------------------------------------------------------

    /// Records what a target now holds for a local resource (insert or replace).
    async fn upsert_target_link(&self, link: &TargetLink) -> StoreResult<()>;
    /// What a target holds for a local resource.
    async fn target_link(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        resource_type: ResourceType,
        local_id: Uuid,
    ) -> StoreResult<Option<TargetLink>>;
    /// The links of one target for the given local resources (those that have one).
    async fn target_links_for(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        resource_type: ResourceType,
        local_ids: &[Uuid],
    ) -> StoreResult<Vec<TargetLink>>;
    /// Every link of one target.
    async fn list_target_links(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
    ) -> StoreResult<Vec<TargetLink>>;
    /// Forgets a link. Returns whether it existed.
    async fn delete_target_link(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        resource_type: ResourceType,
        local_id: Uuid,
    ) -> StoreResult<bool>;

    /// Commits a mapping change with the work it causes, in one transaction, audited. Returns
    /// the mapping written (`None` for a delete). Surfaces call `engine::commands`, which
    /// computes the work; the plain mapping methods above commit no work.
    async fn commit_mapping_change(
        &self,
        actor: &Actor,
        org: OrganizationId,
        commit: &PolicyCommit<'_>,
    ) -> StoreResult<Option<RoleMapping>>;
    /// Every (group, user) membership of an organization.
    async fn organization_memberships(
        &self,
        org: OrganizationId,
    ) -> StoreResult<Vec<(GroupId, UserId)>>;
    /// The (group, user) memberships of these groups.
    async fn memberships_of_groups(
        &self,
        org: OrganizationId,
        groups: &[GroupId],
    ) -> StoreResult<Vec<(GroupId, UserId)>>;
    /// The users with these ids (missing ones are left out).
    async fn users_by_ids(&self, org: OrganizationId, ids: &[UserId]) -> StoreResult<Vec<User>>;
    /// Users in id order after `after` (keyset paging for full passes).
    async fn users_after(
        &self,
        org: OrganizationId,
        after: Option<UserId>,
        limit: u32,
    ) -> StoreResult<Vec<User>>;

    // ---- exceptions -----------------------------------------------------------------------

    /// Raises an exception unless one is already open for its subject. Returns the new one.
    async fn raise_exception(
        &self,
        org: OrganizationId,
        new: &NewException,
    ) -> StoreResult<Option<PolicyException>>;
    /// One exception.
    async fn exception(
        &self,
        org: OrganizationId,
        id: ExceptionId,
    ) -> StoreResult<Option<PolicyException>>;
    /// Exceptions, newest first.
    async fn list_exceptions(
        &self,
        org: OrganizationId,
        filter: &ExceptionFilter,
    ) -> StoreResult<Vec<PolicyException>>;
    /// Settles an open exception (resolved or dismissed) with how, audited. Conflict if it is
    /// not open.
    async fn settle_exception(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: ExceptionId,
        state: ExceptionState,
        resolution: &str,
    ) -> StoreResult<PolicyException>;

    // ---- reconciliation -------------------------------------------------------------------

    /// Records a reconciliation run.
    async fn record_reconcile_run(&self, run: &ReconcileRun) -> StoreResult<()>;
    /// A target's latest runs, newest first.
    async fn reconcile_runs(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        limit: u32,
    ) -> StoreResult<Vec<ReconcileRun>>;

    // ---- operations: the durable queue (docs/operations.md) -------------------------------

    /// Enqueues operations in one transaction; a waiting, unattempted create or update of the
    /// same resource at the same target absorbs a new update. Returns how many were added.
    async fn enqueue_operations(
        &self,
        org: OrganizationId,
        ops: &[NewOperation],
    ) -> StoreResult<usize>;

    /// Enqueues an operation in state `pending` (changes enqueue their own operations; this is
    /// for tools and tests).
    async fn enqueue_operation(
        &self,
        org: OrganizationId,
        new: &NewOperation,
    ) -> StoreResult<Operation>;
    /// One operation by id, unfinished or finished.
    async fn operation(
        &self,
        org: OrganizationId,
        id: OperationId,
    ) -> StoreResult<Option<Operation>>;
    /// Operations matching a filter (see [`OperationFilter`]).
    async fn list_operations(
        &self,
        org: OrganizationId,
        filter: &OperationFilter,
    ) -> StoreResult<Vec<Operation>>;
    /// The attempts of one operation, in order.
    async fn operation_attempts(
        &self,
        org: OrganizationId,
        id: OperationId,
    ) -> StoreResult<Vec<Attempt>>;
    /// Counts of unfinished work at one target.
    async fn queue_counts(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
    ) -> StoreResult<QueueCounts>;
    /// Leases up to `limit` due operations of one target to `owner` until `lease` from now:
    /// only the oldest unfinished operation of each resource is eligible, so operations on one
    /// resource run strictly in order. Each claim counts as an attempt started. Only
    /// operations at or after `from` (due time, sequence) in queue order are looked at: a worker passes where its last claim
    /// started, so claims do not walk over the finished rows that vacuum has not yet removed,
    /// and passes `None` now and then to look at everything.
    async fn claim_operations(
        &self,
        connection: ConnectionId,
        owner: Uuid,
        lease: std::time::Duration,
        limit: u32,
        from: Option<(Timestamp, i64)>,
    ) -> StoreResult<Vec<Operation>>;
    /// Records the outcomes of attempts in one transaction: attempts, state changes, finished
    /// work moved to the history, target links. An outcome whose lease `owner` no longer holds
    /// (it expired and another worker took it) is ignored. Returns how many were applied.
    async fn complete_operations(&self, outcomes: &[Outcome]) -> StoreResult<u64>;
    /// Gives back every lease `owner` holds (graceful shutdown). Returns how many.
    async fn release_leases(&self, owner: Uuid) -> StoreResult<u64>;
    /// Extends to `lease` from now the leases `owner` still holds on `ids` (attempts still
    /// running), so a slow attempt is not claimed a second time while it runs. Returns how
    /// many were extended.
    async fn renew_leases(
        &self,
        owner: Uuid,
        ids: &[OperationId],
        lease: std::time::Duration,
    ) -> StoreResult<u64>;
    /// Which of `resource_ids` have work at a target that will finish by itself: queued and
    /// not held up by a failed operation, which waits for an operator (a group's members are
    /// waited for while theirs is in progress, and left out while it is stuck). One query per
    /// 500 ids.
    async fn resources_in_progress(
        &self,
        connection: ConnectionId,
        resource_ids: &[Uuid],
    ) -> StoreResult<Vec<Uuid>>;
    /// Puts failed (and waiting) operations back to `pending`, due now, with a fresh attempt
    /// budget: one operation (`id`), or every one matching `filter`. Audited. Returns how many.
    async fn retry_operations(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: Option<OperationId>,
        filter: &OperationFilter,
    ) -> StoreResult<u64>;
    /// Sets an unfinished, unleased operation aside with a reason. Audited.
    async fn skip_operation(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: OperationId,
        reason: &str,
    ) -> StoreResult<Operation>;
    /// Deletes finished operations (and their attempts) that finished before `before`, at most
    /// `batch` of them. Returns how many were deleted.
    async fn prune_history(&self, before: Timestamp, batch: u32) -> StoreResult<u64>;
    /// Every SCIM target connection of every organization (what the engine serves).
    async fn target_connections(&self) -> StoreResult<Vec<Connection>>;
    /// Replaces this process's statistics rows (one per connection and minute).
    async fn record_connection_stats(&self, rows: &[ConnectionStats]) -> StoreResult<()>;
    /// Statistics rows of one connection since `since`, from every process.
    async fn connection_stats(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        since: Timestamp,
    ) -> StoreResult<Vec<ConnectionStats>>;
    /// Deletes statistics older than `before`.
    async fn prune_connection_stats(&self, before: Timestamp) -> StoreResult<u64>;
    /// Wakes workers when this process commits new queue work for their organization (or is
    /// told, by another process's notification, that there is some).
    fn queue_signal(&self) -> &super::QueueSignal;
    /// Queues `count` updates, each for a resource of its own, in one statement: only for
    /// `scimdesk bench drain`, which needs a large queue fast.
    async fn bulk_enqueue_for_benchmark(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        count: u64,
    ) -> StoreResult<u64>;
    /// The PostgreSQL pool under the store, for LISTEN/NOTIFY between processes (`None` on
    /// SQLite, which one process uses at a time).
    fn postgres_pool(&self) -> Option<sqlx::PgPool>;
    /// Loads a directory of users, groups, memberships and links in bulk, for benchmarks
    /// only (nothing is queued or audited).
    async fn bulk_load_for_benchmark(
        &self,
        org: OrganizationId,
        rows: &BulkLoad<'_>,
    ) -> StoreResult<()>;

    // ---- audit --------------------------------------------------------------------------

    /// Records an event that is not part of another change (e.g. an operator command).
    async fn record_audit(
        &self,
        actor: &Actor,
        org: OrganizationId,
        action: &str,
        subject_type: &str,
        subject_id: &str,
        details: serde_json::Value,
    ) -> StoreResult<AuditEvent>;
    /// Audit events, newest first.
    async fn list_audit(
        &self,
        org: OrganizationId,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEvent>>;

    // ---- tokens -------------------------------------------------------------------------

    /// Issues a token; the returned text is the only copy.
    async fn create_api_token(
        &self,
        actor: &Actor,
        org: OrganizationId,
        new: &NewApiToken,
    ) -> StoreResult<IssuedApiToken>;
    /// An organization's tokens (records only), oldest first.
    async fn list_api_tokens(&self, org: OrganizationId) -> StoreResult<Vec<ApiToken>>;
    /// Revokes a token. Returns false if it did not exist or was already revoked.
    async fn revoke_api_token(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: ApiTokenId,
    ) -> StoreResult<bool>;
    /// Finds the usable token that `presented` is, in constant time. The token decides the
    /// organization, so this is the one lookup not scoped by an organization argument.
    async fn authenticate_token(&self, presented: &str) -> StoreResult<Option<ApiToken>>;

    // ---- keys ---------------------------------------------------------------------------

    /// The ids of master keys that wrap data keys in this database.
    async fn master_key_ids(&self) -> StoreResult<Vec<String>>;
    /// Re-wraps every organization's data key under `new` in one transaction, audits it per
    /// organization, then uses `new` from here on. Returns how many organizations.
    async fn rotate_master_key(&self, actor: &Actor, new: MasterKey) -> StoreResult<u64>;
}
