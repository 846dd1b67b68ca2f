//! The operator commands every surface (CLI, workbench, API) uses, each audited with its actor.
//! They change the store; workers in any process notice through the queue signal or, across
//! processes, the store's notices (PostgreSQL NOTIFY). Mapping changes are previewed and
//! guarded by policy before they are committed ([`mappings`]); exceptions are settled through
//! the same paths ([`exceptions`]).

mod connections;
mod exceptions;
mod mappings;
mod saml;

/// Syncing a source now is the sync driver's own command (audited as its run).
pub use super::sync::{SyncError, SyncOptions, sync_source};
pub use crate::policy::impact::{Guard, Guarded, Impact, MappingChange};
pub use crate::policy::reconcile::ReconcileReport;
pub use connections::{
    ConnectionSpec, create_connection, default_auth, remove_connection, rotate_secret,
};
pub use exceptions::{Resolution, resolve_exception};
pub use mappings::{
    MappingRule, apply_rule, ensure_role, find_role, preview, preview_rule, preview_with,
    set_mapping,
};
pub use saml::{MetadataSource, SamlSpec, check_sp_key, refresh_saml_metadata, saml_settings};

use crate::domain::*;
use crate::policy::impact::Refusal;
use crate::store::{Channel, OperationFilter, StateChange, Store, StoreError, StoreResult};

/// Why a policy command (a mapping change, an exception settled, a target configured or
/// reconciled) was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The change itself is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The target's settings do not compile into a policy.
    #[error(transparent)]
    Target(#[from] crate::policy::target::TargetPolicyError),
    /// The guard refused it (see [`Guard`]).
    #[error(transparent)]
    Guarded(#[from] Guarded),
}

impl From<Refusal> for PolicyError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound(what) => PolicyError::Store(StoreError::NotFound(what)),
            Refusal::Invalid(why) => PolicyError::Invalid(why),
        }
    }
}

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
    let notice = super::QueueNotice::for_organization(org);
    if let Err(e) = store.announce(Channel::Queue, &notice).await {
        tracing::debug!("announcing new work to other processes failed (they poll): {e}");
    }
}

/// Reconciles a target in full now (see `engine::reconcile`).
pub async fn reconcile(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    connection: ConnectionId,
    dry_run: bool,
) -> Result<ReconcileReport, PolicyError> {
    super::reconcile::reconcile(store, actor, org, connection, dry_run).await
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
    candidate.settings = Json(settings.clone());
    let roles = store.list_roles(org).await?;
    crate::policy::target::TargetPolicy::new(&candidate, &roles)?;
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
