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
    wake_other_processes(store).await;
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
    wake_other_processes(store).await;
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
    wake_other_processes(store).await;
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
    wake_other_processes(store).await;
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
    wake_other_processes(store).await;
    Ok(changed.unwrap_or(conn))
}

/// Tells workers in other processes (PostgreSQL) that the queue changed; best effort (they
/// poll anyway).
pub async fn wake_other_processes(store: &dyn Store) {
    if let Some(pool) = store.postgres_pool() {
        let _ = sqlx::query("SELECT pg_notify($1, '')")
            .bind(QUEUE_CHANNEL)
            .execute(&pool)
            .await;
    }
}
