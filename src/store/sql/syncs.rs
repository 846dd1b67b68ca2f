//! Source syncs: each batch in one transaction, through the same writes a push makes (so the
//! fan-out, the queue and the audit log see a synced change exactly as a pushed one), with the
//! source's cursor stored in the transaction of the changes it covers.

use super::{Conn, ThisStore, audit, groups, users};
use crate::domain::{Actor, ConnectionId, OrganizationId, SyncBatch, SyncRun, Timestamp, User};
use crate::store::StoreResult;
use crate::store::api::Syncs;

#[async_trait::async_trait]
impl Syncs for ThisStore {
    async fn apply_sync_batch(
        &self,
        actor: &Actor,
        org: OrganizationId,
        source: ConnectionId,
        batch: &SyncBatch,
    ) -> StoreResult<()> {
        for (_, draft) in &batch.create_users {
            users::check(draft)?;
        }
        for (_, draft) in &batch.update_users {
            users::check(draft)?;
        }
        for draft in batch
            .create_groups
            .iter()
            .chain(batch.update_groups.iter().map(|g| &g.1))
        {
            groups::check(draft)?;
        }
        let mut tx = self.begin_write().await?;
        let now = Timestamp::now();
        let created: Vec<User> = batch
            .create_users
            .iter()
            .map(|(id, draft)| User::from_draft(*id, org, draft, now))
            .collect();
        users::insert_many(
            &mut tx,
            actor,
            org,
            Some(source),
            &created,
            |u| serde_json::json!({"user_name": u.user_name, "active": u.active, "source": source}),
        )
        .await?;
        for (id, draft) in &batch.update_users {
            users::update(&mut tx, actor, org, *id, draft, None).await?;
        }
        for draft in &batch.create_groups {
            self.insert_group(&mut tx, actor, org, draft).await?;
        }
        for (id, draft) in &batch.update_groups {
            self.update_group(&mut tx, actor, org, *id, draft, None)
                .await?;
        }
        for id in &batch.delete_groups {
            self.remove_group(&mut tx, actor, org, *id).await?;
        }
        if let Some(cursor) = &batch.cursor {
            sqlx::query(
                "INSERT INTO sync_cursors (connection_id, organization_id, cursor, updated_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (connection_id) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            )
            .bind(source)
            .bind(org)
            .bind(cursor)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.signal.bump(org);
        Ok(())
    }

    async fn claim_sync(
        &self,
        org: OrganizationId,
        source: ConnectionId,
        owner: uuid::Uuid,
        until: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let taken = sqlx::query(
            "INSERT INTO sync_claims (connection_id, organization_id, owner, expires_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (connection_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE sync_claims.expires_at < $5 OR sync_claims.owner = excluded.owner",
        )
        .bind(source)
        .bind(org)
        .bind(owner)
        .bind(until)
        .bind(Timestamp::now())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        tx.commit().await?;
        Ok(taken)
    }

    async fn release_sync(
        &self,
        org: OrganizationId,
        source: ConnectionId,
        owner: uuid::Uuid,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM sync_claims WHERE organization_id = $1 AND connection_id = $2 AND owner = $3",
        )
        .bind(org)
        .bind(source)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn sync_cursor(
        &self,
        org: OrganizationId,
        source: ConnectionId,
    ) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT cursor FROM sync_cursors WHERE organization_id = $1 AND connection_id = $2",
        )
        .bind(org)
        .bind(source)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn record_sync_run(&self, run: &SyncRun) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let action = if run.dry_run {
            "connection.sync_dry_run"
        } else {
            "connection.sync"
        };
        record_run(&mut tx, run, action, serde_json::json!({})).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn sync_runs(
        &self,
        org: OrganizationId,
        source: ConnectionId,
        limit: u32,
    ) -> StoreResult<Vec<SyncRun>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            sync_run_cols!(),
            " FROM sync_runs WHERE organization_id = $1 AND connection_id = $2 ",
            "ORDER BY started_at DESC, id DESC LIMIT $3"
        ))
        .bind(org)
        .bind(source)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Writes a sync run (a source's sync, or a login) and its audit event `action` on the
/// caller's transaction; `details` adds to what the event says of the run.
pub(super) async fn record_run(
    conn: &mut Conn,
    run: &SyncRun,
    action: &str,
    details: serde_json::Value,
) -> StoreResult<()> {
    sqlx::query(concat!(
        "INSERT INTO sync_runs (",
        sync_run_cols!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(run.id)
    .bind(run.organization_id)
    .bind(run.connection_id)
    .bind(run.started_at)
    .bind(run.finished_at)
    .bind(run.full_sync)
    .bind(run.dry_run)
    .bind(&run.actor)
    .bind(&run.counts)
    .bind(&run.error)
    .bind(&run.note)
    .execute(&mut *conn)
    .await?;
    let event = run_event(run, details);
    audit::append(
        &mut *conn,
        &Actor::system(run.actor.clone()),
        run.organization_id,
        action,
        "connection",
        &run.connection_id.to_string(),
        event,
    )
    .await?;
    Ok(())
}

/// What a run's audit event says of it, with `details` added.
pub(super) fn run_event(run: &SyncRun, details: serde_json::Value) -> serde_json::Value {
    let mut event = serde_json::json!({
        "run": run.id, "full": run.full_sync, "counts": run.counts.0, "error": run.error,
        "note": run.note,
    });
    if let (Some(e), serde_json::Value::Object(more)) = (event.as_object_mut(), details) {
        e.extend(more);
    }
    event
}
