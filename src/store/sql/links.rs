//! Target links, reconciliation runs, and the repairs a reconciliation commits.

use super::{ThisStore, audit, exceptions, queue};
use crate::domain::{
    Actor, ConnectionId, ExceptionKind, OrganizationId, ReconcileRun, Repairs, ResourceType,
    TargetLink,
};
use crate::store::api::Links;
use crate::store::{StoreError, StoreResult};
use uuid::Uuid;

/// Who settles the exceptions a reconciliation's repairs make moot.
const RECONCILE: &str = "reconcile";

/// Upserts a link on `conn`, only where the connection belongs to the link's organization.
async fn upsert(conn: &mut super::Conn, link: &TargetLink) -> StoreResult<()> {
    let written = sqlx::query(concat!(
        // No foreign key on PostgreSQL (migrations/postgres/0004): check the connection here.
        "INSERT INTO target_links (",
        link_cols!(),
        ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 ",
        "WHERE EXISTS (SELECT 1 FROM connections WHERE organization_id = $1 AND id = $2) ",
        "ON CONFLICT (connection_id, resource_type, local_id) DO UPDATE SET ",
        "remote_id = excluded.remote_id, remote_etag = excluded.remote_etag, ",
        "content_hash = excluded.content_hash, synced_at = excluded.synced_at, last_sent = excluded.last_sent ",
        "WHERE target_links.organization_id = excluded.organization_id"
    ))
    .bind(link.organization_id)
    .bind(link.connection_id)
    .bind(link.resource_type.as_str())
    .bind(link.local_id)
    .bind(&link.remote_id)
    .bind(&link.remote_etag)
    .bind(&link.content_hash)
    .bind(link.synced_at)
    .bind(&link.last_sent)
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::from_sqlx(e, || format!("connection {}", link.connection_id)))?;
    if written.rows_affected() == 0 {
        // The link exists under another organization: touch nothing, say so.
        return Err(StoreError::NotFound(format!(
            "connection {} in organization {}",
            link.connection_id, link.organization_id
        )));
    }
    Ok(())
}

/// Forgets a link on `conn`; returns whether it existed.
async fn forget(
    conn: &mut super::Conn,
    org: OrganizationId,
    connection: ConnectionId,
    resource_type: ResourceType,
    local_id: Uuid,
) -> StoreResult<bool> {
    Ok(sqlx::query(
        "DELETE FROM target_links WHERE organization_id = $1 AND connection_id = $2 AND resource_type = $3 AND local_id = $4",
    )
    .bind(org)
    .bind(connection)
    .bind(resource_type.as_str())
    .bind(local_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        > 0)
}

#[async_trait::async_trait]
impl Links for ThisStore {
    async fn upsert_target_link(&self, link: &TargetLink) -> StoreResult<()> {
        upsert(&mut *self.pool.acquire().await?, link).await
    }

    async fn target_link(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        resource_type: ResourceType,
        local_id: Uuid,
    ) -> StoreResult<Option<TargetLink>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            link_cols!(),
            " FROM target_links ",
            "WHERE organization_id = $1 AND connection_id = $2 AND resource_type = $3 AND local_id = $4"
        ))
        .bind(org)
        .bind(connection)
        .bind(resource_type.as_str())
        .bind(local_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn target_links_for(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        resource_type: ResourceType,
        local_ids: &[Uuid],
    ) -> StoreResult<Vec<TargetLink>> {
        let mut links = Vec::with_capacity(local_ids.len());
        for chunk in local_ids.chunks(500) {
            links.extend(
                ThisStore::links_for(&self.pool, org, connection, resource_type, chunk).await?,
            );
        }
        Ok(links)
    }

    async fn list_target_links(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
    ) -> StoreResult<Vec<TargetLink>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            link_cols!(),
            " FROM target_links WHERE organization_id = $1 AND connection_id = $2 ",
            "ORDER BY resource_type, local_id"
        ))
        .bind(org)
        .bind(connection)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn delete_target_link(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        resource_type: ResourceType,
        local_id: Uuid,
    ) -> StoreResult<bool> {
        forget(
            &mut *self.pool.acquire().await?,
            org,
            connection,
            resource_type,
            local_id,
        )
        .await
    }

    async fn commit_reconcile(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        repairs: &Repairs,
    ) -> StoreResult<usize> {
        if repairs.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        for link in &repairs.links {
            if link.organization_id != org || link.connection_id != connection {
                return Err(StoreError::NotFound(format!(
                    "connection {} in organization {}",
                    link.connection_id, link.organization_id
                )));
            }
            upsert(&mut tx, link).await?;
        }
        for (rt, local) in &repairs.unlink {
            forget(&mut tx, org, connection, *rt, *local).await?;
        }
        for e in &repairs.raise {
            exceptions::raise(&mut tx, org, e).await?;
        }
        for (key, resolution) in &repairs.settle {
            exceptions::settle_open(
                &mut tx,
                org,
                ExceptionKind::UnknownAtTarget,
                key,
                resolution,
                RECONCILE,
            )
            .await?;
        }
        let mut queued = 0;
        for op in &repairs.operations {
            if op.connection_id != connection {
                return Err(StoreError::NotFound(format!(
                    "connection {} (the repair is for another target)",
                    op.connection_id
                )));
            }
            queued += queue::enqueue_one(&mut tx, org, op).await?;
        }
        tx.commit().await?;
        if queued > 0 {
            self.signal.bump(org);
        }
        Ok(queued)
    }

    async fn record_reconcile_run(&self, run: &ReconcileRun) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(concat!(
            "INSERT INTO reconcile_runs (",
            reconcile_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(run.id)
        .bind(run.organization_id)
        .bind(run.connection_id)
        .bind(run.started_at)
        .bind(run.finished_at)
        .bind(run.dry_run)
        .bind(&run.actor)
        .bind(&run.counts)
        .bind(&run.error)
        .execute(&mut *tx)
        .await?;
        let action = if run.dry_run {
            "connection.reconcile_dry_run"
        } else {
            "connection.reconcile"
        };
        audit::append(
            &mut tx,
            &Actor::system(run.actor.clone()),
            run.organization_id,
            action,
            "connection",
            &run.connection_id.to_string(),
            serde_json::json!({ "run": run.id, "counts": run.counts.0, "error": run.error }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn reconcile_runs(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        limit: u32,
    ) -> StoreResult<Vec<ReconcileRun>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            reconcile_cols!(),
            " FROM reconcile_runs WHERE organization_id = $1 AND connection_id = $2 ",
            "ORDER BY started_at DESC LIMIT $3"
        ))
        .bind(org)
        .bind(connection)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }
}
