//! The operator commands every surface (CLI, workbench, API) uses, each audited with its actor.
//! They change the store; workers in any process notice through the queue signal or, across
//! processes, PostgreSQL NOTIFY.

use super::events::QUEUE_CHANNEL;
use crate::domain::*;
use crate::store::{OperationFilter, StateChange, Store, StoreError, StoreResult};

/// Puts one failed (or waiting) operation back in the queue, due now, with a fresh budget.
pub async fn retry(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    id: OperationId,
) -> StoreResult<Operation> {
    store
        .retry_operations(actor, org, Some(id), &OperationFilter::default())
        .await?;
    wake_other_processes(store, org).await;
    store
        .operation(org, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("operation {id}")))
}

/// Puts every failed operation matching `filter` (its state defaults to `failed`) back in the
/// queue. Returns how many.
pub async fn retry_all(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    filter: &OperationFilter,
) -> StoreResult<u64> {
    let n = store.retry_operations(actor, org, None, filter).await?;
    wake_other_processes(store, org).await;
    Ok(n)
}

/// Sets an operation aside with a reason (it moves to the history as `skipped`).
pub async fn skip(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    id: OperationId,
    reason: &str,
) -> StoreResult<Operation> {
    let op = store.skip_operation(actor, org, id, reason).await?;
    wake_other_processes(store, org).await;
    Ok(op)
}

/// Stops delivery to a connection (operations keep queueing). Returns the connection.
pub async fn pause(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    id: ConnectionId,
    reason: &str,
) -> StoreResult<Connection> {
    change_state(
        store,
        actor,
        org,
        id,
        &[ConnectionState::Active, ConnectionState::Quarantined],
        ConnectionState::Paused,
        "connection.pause",
        reason,
    )
    .await
}

/// Resumes delivery to a paused (or quarantined) connection.
pub async fn resume(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    id: ConnectionId,
) -> StoreResult<Connection> {
    change_state(
        store,
        actor,
        org,
        id,
        &[ConnectionState::Paused, ConnectionState::Quarantined],
        ConnectionState::Active,
        "connection.resume",
        "resumed by an operator",
    )
    .await
}

/// Sends now what is waiting: operations in back-off become due, and a quarantined connection
/// is probed at once. Returns how many operations were made due.
pub async fn sync_now(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    id: ConnectionId,
) -> StoreResult<u64> {
    let conn = store
        .connection(org, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("connection {id}")))?;
    let filter = OperationFilter {
        connection_id: Some(id),
        state: Some(OperationState::RetryWait),
        ..Default::default()
    };
    let n = store.retry_operations(actor, org, None, &filter).await?;
    if conn.state == ConnectionState::Quarantined {
        store
            .set_connection_state(
                actor,
                org,
                id,
                &StateChange {
                    from: &[ConnectionState::Quarantined],
                    to: ConnectionState::Active,
                    action: "connection.sync_now",
                    reason: "probe requested by an operator",
                },
            )
            .await?;
    }
    store
        .record_audit(
            actor,
            org,
            "connection.sync_now",
            "connection",
            &id.to_string(),
            serde_json::json!({ "name": conn.name, "made_due": n }),
        )
        .await?;
    wake_other_processes(store, org).await;
    Ok(n)
}

#[allow(clippy::too_many_arguments)]
async fn change_state(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    id: ConnectionId,
    from: &[ConnectionState],
    to: ConnectionState,
    action: &str,
    reason: &str,
) -> StoreResult<Connection> {
    let conn = store
        .connection(org, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("connection {id}")))?;
    if conn.kind != ConnectionKind::ScimTarget {
        return Err(InvalidInput::new(
            "connection",
            format!(
                "{} is not a SCIM target; only targets are paused and resumed",
                conn.name
            ),
        )
        .into());
    }
    let changed = store
        .set_connection_state(
            actor,
            org,
            id,
            &StateChange {
                from,
                to,
                action,
                reason,
            },
        )
        .await?;
    wake_other_processes(store, org).await;
    Ok(changed.unwrap_or(conn))
}

/// Tells workers in other processes (PostgreSQL) that `org`'s queue changed; best effort (they
/// poll anyway). The notice names the organization: NOTIFY reaches every session of the
/// database, so an unnamed one woke every worker of every tenant, and of every other
/// deployment sharing the database in another schema (seen as a test woken by a neighbour's
/// command).
pub async fn wake_other_processes(store: &dyn Store, org: OrganizationId) {
    if let Some(pool) = store.postgres_pool() {
        let _ = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(QUEUE_CHANNEL)
            .bind(super::QueueNotice::for_organization(org))
            .execute(&pool)
            .await;
    }
}

// ---- policy ------------------------------------------------------------------------------

pub use crate::policy::impact::{Guard, Impact, MappingChange, PolicyError};
pub use crate::policy::reconcile::ReconcileReport;

/// Makes a mapping change with the operations it causes, unless the guard refuses (and
/// `force` is not set).
pub async fn set_mapping(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    change: &MappingChange,
    guard: &Guard,
    force: bool,
) -> Result<(Impact, Option<RoleMapping>), PolicyError> {
    crate::policy::impact::apply(store, actor, org, change, guard, force).await
}

/// A mapping rule as people write it: the role by name, created when the change is applied
/// if it does not exist yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingRule {
    /// The mapping changed (`None`: a new one).
    pub id: Option<RoleMappingId>,
    /// The group pattern.
    pub pattern: String,
    /// The role granted, by name.
    pub role: String,
    /// What the pattern is compared with.
    pub selector: GroupSelector,
    /// Whether the pattern is a glob.
    pub glob: bool,
    /// Only groups of this source.
    pub source: Option<ConnectionId>,
}

impl MappingRule {
    fn change(&self, role: RoleId) -> MappingChange {
        MappingChange::Set {
            id: self.id,
            draft: RoleMappingDraft {
                source_connection_id: self.source,
                selector: self.selector,
                match_mode: if self.glob {
                    MatchMode::Glob
                } else {
                    MatchMode::Exact
                },
                pattern: self.pattern.trim().to_string(),
                role_id: role,
            },
        }
    }
}

/// What setting `rule` would do, without changing anything (a role that does not exist yet is
/// previewed as if created).
pub async fn preview_rule(
    store: &dyn Store,
    org: OrganizationId,
    rule: &MappingRule,
) -> Result<Impact, PolicyError> {
    let (role, new_role) = match find_role(store, org, &rule.role).await? {
        Some(r) => (r, None),
        None => {
            let r = Role {
                id: RoleId::new(),
                organization_id: org,
                name: rule.role.trim().to_string(),
                description: String::new(),
                created_at: Timestamp::now(),
            };
            (r.clone(), Some(r))
        }
    };
    crate::policy::impact::preview_with(store, org, &rule.change(role.id), new_role.as_ref()).await
}

/// Sets `rule` (creating its role if needed) with the operations it causes, unless the guard
/// refuses and `force` is not set.
pub async fn apply_rule(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    rule: &MappingRule,
    guard: &Guard,
    force: bool,
) -> Result<(Impact, Option<RoleMapping>), PolicyError> {
    if rule.pattern.trim().is_empty() || rule.role.trim().is_empty() {
        return Err(PolicyError::Invalid(
            "a mapping needs a group pattern and a role".into(),
        ));
    }
    if !force {
        // Refuse before creating the role, so a refused change leaves nothing behind.
        guard.check(&preview_rule(store, org, rule).await?)?;
    }
    let role = ensure_role(store, actor, org, &rule.role).await?;
    set_mapping(store, actor, org, &rule.change(role.id), guard, force).await
}

/// The role named `name`, created (audited) when it does not exist yet.
pub async fn ensure_role(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    name: &str,
) -> StoreResult<Role> {
    match find_role(store, org, name).await? {
        Some(r) => Ok(r),
        None => store.create_role(actor, org, name.trim(), "").await,
    }
}

/// The role named `name` (ignoring case), if it exists.
pub async fn find_role(
    store: &dyn Store,
    org: OrganizationId,
    name: &str,
) -> StoreResult<Option<Role>> {
    Ok(store
        .list_roles(org)
        .await?
        .into_iter()
        .find(|r| r.name.eq_ignore_ascii_case(name.trim())))
}

/// How an operator settles an exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Set it aside, with why.
    Dismiss(String),
    /// An unmapped group: map it (by its display name, from its source) to this role.
    MapTo(String),
    /// A conflict: link the local resource to this resource at the target, then retry.
    Link(String),
}

/// Settles an exception, audited. Mapping an unmapped group is a mapping change (previewed,
/// guarded, and provisioning the group's members).
pub async fn resolve_exception(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    id: ExceptionId,
    resolution: &Resolution,
    guard: &Guard,
    force: bool,
) -> Result<PolicyException, PolicyError> {
    let ex = store
        .exception(org, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("exception {id}")))?;
    if ex.state != ExceptionState::Open {
        return Err(StoreError::Conflict(format!("exception {id} is already {}", ex.state)).into());
    }
    let settled = match resolution {
        Resolution::Dismiss(reason) => {
            store
                .settle_exception(actor, org, id, ExceptionState::Dismissed, reason)
                .await?
        }
        Resolution::MapTo(role) => {
            if ex.kind != ExceptionKind::UnmappedGroup {
                return Err(PolicyError::Invalid(format!(
                    "only unmapped-group exceptions are resolved with a mapping; this is a {}",
                    ex.kind
                )));
            }
            let group_id: GroupId = ex.details.0["group_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| PolicyError::Invalid("the exception names no group".into()))?;
            let group = store
                .group(org, group_id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("group {group_id}")))?;
            let role = ensure_role(store, actor, org, role).await?;
            let change = MappingChange::Set {
                id: None,
                draft: RoleMappingDraft {
                    source_connection_id: group.source_connection_id,
                    ..RoleMappingDraft::by_display_name(group.display_name.clone(), false, role.id)
                },
            };
            set_mapping(store, actor, org, &change, guard, force).await?;
            match store.exception(org, id).await? {
                Some(e) if e.state != ExceptionState::Open => e,
                _ => {
                    store
                        .settle_exception(
                            actor,
                            org,
                            id,
                            ExceptionState::Resolved,
                            &format!("mapped to role {}", role.name),
                        )
                        .await?
                }
            }
        }
        Resolution::Link(remote_id) => {
            if ex.kind != ExceptionKind::Conflict {
                return Err(PolicyError::Invalid(format!(
                    "only conflicts are resolved by linking; this is a {}",
                    ex.kind
                )));
            }
            let d = &ex.details.0;
            let (Some(conn), Some(rt), Some(local)) = (
                ex.connection_id,
                d["resource_type"]
                    .as_str()
                    .and_then(|s| ResourceType::try_from(s.to_string()).ok()),
                d["resource_id"].as_str().and_then(|s| s.parse().ok()),
            ) else {
                return Err(PolicyError::Invalid(
                    "the exception does not say which resource it is about".into(),
                ));
            };
            store
                .upsert_target_link(&TargetLink {
                    organization_id: org,
                    connection_id: conn,
                    resource_type: rt,
                    local_id: local,
                    remote_id: remote_id.clone(),
                    remote_etag: None,
                    content_hash: String::new(),
                    synced_at: Timestamp::now(),
                    last_sent: None,
                })
                .await?;
            let settled = store
                .settle_exception(
                    actor,
                    org,
                    id,
                    ExceptionState::Resolved,
                    &format!("linked to {remote_id} at the target"),
                )
                .await?;
            if let Some(op) = d["operation_id"].as_str().and_then(|s| s.parse().ok())
                && store
                    .operation(org, op)
                    .await?
                    .is_some_and(|o| o.state == OperationState::Failed)
            {
                retry(store, actor, org, op).await?;
            }
            settled
        }
    };
    Ok(settled)
}

/// Reconciles a target in full now (see `policy::reconcile`).
pub async fn reconcile(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    connection: ConnectionId,
    dry_run: bool,
) -> Result<ReconcileReport, PolicyError> {
    crate::policy::reconcile::reconcile(store, actor, org, connection, dry_run).await
}

/// Changes a target's settings: `changes` are merged over the current ones (a `null` value
/// removes a key), and the result must compile as a policy. Audited by the store.
pub async fn configure_target(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    connection: ConnectionId,
    changes: &serde_json::Map<String, serde_json::Value>,
) -> Result<Connection, PolicyError> {
    let conn = store
        .connection(org, connection)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("connection {connection}")))?;
    let mut settings = match conn.settings.0.clone() {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    for (k, v) in changes {
        if v.is_null() {
            settings.remove(k);
        } else {
            settings.insert(k.clone(), v.clone());
        }
    }
    let settings = serde_json::Value::Object(settings);
    let mut candidate = conn.clone();
    candidate.settings = sqlx::types::Json(settings.clone());
    let roles = store.list_roles(org).await?;
    crate::policy::target::TargetPolicy::new(&candidate, &roles).map_err(PolicyError::Invalid)?;
    let before = crate::policy::target::TargetPolicy::new(&conn, &roles).ok();
    let updated = store
        .update_connection(
            actor,
            org,
            connection,
            &ConnectionUpdate {
                settings: Some(settings),
                ..Default::default()
            },
        )
        .await?;
    if conn.kind == ConnectionKind::ScimTarget {
        // Scope, roles or attribute mapping may have changed for anyone: every user is looked
        // at again (those whose document is unchanged send nothing), and every role group.
        let after = crate::policy::target::TargetPolicy::new(&updated, &roles).ok();
        let mut role_ids: std::collections::BTreeSet<RoleId> = Default::default();
        for p in before.iter().chain(after.iter()) {
            role_ids.extend(p.bound_roles().iter().copied());
        }
        let mut ops: Vec<NewOperation> = role_ids
            .into_iter()
            .map(|r| NewOperation {
                connection_id: connection,
                resource_type: ResourceType::Group,
                resource_id: r.0,
                action: OperationAction::Update,
                payload: serde_json::json!({}),
            })
            .collect();
        let mut after_id = None;
        loop {
            let page = store.users_after(org, after_id, 1000).await?;
            let Some(last) = page.last() else { break };
            after_id = Some(last.id);
            ops.extend(page.iter().map(|u| NewOperation {
                connection_id: connection,
                resource_type: ResourceType::User,
                resource_id: u.id.0,
                action: OperationAction::Update,
                payload: serde_json::json!({}),
            }));
            if ops.len() >= 1000 {
                store.enqueue_operations(org, &ops).await?;
                ops.clear();
            }
        }
        store.enqueue_operations(org, &ops).await?;
    }
    wake_other_processes(store, org).await;
    Ok(updated)
}
