//! Bulk loading for benchmarks: rows written directly, bypassing the change path.

use super::{Db, ThisStore, as_i64};
use crate::domain::{ConnectionId, OrganizationId, Timestamp};
use crate::store::StoreResult;
use crate::store::api::{BulkLoad, BulkRows};
use std::sync::LazyLock;

/// `count` queued updates, each for a resource of its own, in one statement (the rows are the
/// backend's `BULK_QUEUE_ROWS`).
static BULK_QUEUE: LazyLock<String> =
    LazyLock::new(|| format!("{}{}", insert_operation!(), ThisStore::BULK_QUEUE_ROWS));

#[async_trait::async_trait]
impl BulkLoad for ThisStore {
    async fn bulk_enqueue(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        count: u64,
    ) -> StoreResult<u64> {
        let n = sqlx::query(BULK_QUEUE.as_str())
            .bind(org)
            .bind(connection)
            .bind(as_i64(count))
            .bind(Timestamp::now())
            .execute(&self.pool)
            .await?
            .rows_affected();
        // Planner statistics for a table that grew all at once.
        sqlx::query("ANALYZE operation_queue")
            .execute(&self.pool)
            .await?;
        self.signal.bump(org);
        Ok(n)
    }

    async fn bulk_load(&self, org: OrganizationId, rows: &BulkRows<'_>) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        super::users::insert_rows(&mut tx, org, rows.users).await?;
        for chunk in rows.groups.chunks(1000) {
            let mut q = sqlx::QueryBuilder::<Db>::new(concat!(
                "INSERT INTO groups (id, organization_id, display_name, external_id, source_connection_id, ",
                "attributes, version, created_at, updated_at) "
            ));
            q.push_values(chunk, |mut b, g| {
                b.push_bind(g.id)
                    .push_bind(org)
                    .push_bind(&g.display_name)
                    .push_bind(&g.external_id)
                    .push_bind(g.source_connection_id)
                    .push_bind(&g.attributes)
                    .push_bind(g.version)
                    .push_bind(g.created_at)
                    .push_bind(g.updated_at);
            });
            q.build().execute(&mut *tx).await?;
        }
        let now = Timestamp::now();
        for chunk in rows.memberships.chunks(2000) {
            let mut q = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO memberships (organization_id, group_id, user_id, created_at) ",
            );
            q.push_values(chunk, |mut b, (g, u)| {
                b.push_bind(org).push_bind(*g).push_bind(*u).push_bind(now);
            });
            q.build().execute(&mut *tx).await?;
        }
        for chunk in rows.links.chunks(1000) {
            let mut q = sqlx::QueryBuilder::<Db>::new(concat!(
                "INSERT INTO target_links (",
                link_cols!(),
                ") "
            ));
            q.push_values(chunk, |mut b, l| {
                b.push_bind(org)
                    .push_bind(l.connection_id)
                    .push_bind(l.resource_type.as_str())
                    .push_bind(l.local_id)
                    .push_bind(&l.remote_id)
                    .push_bind(&l.remote_etag)
                    .push_bind(&l.content_hash)
                    .push_bind(l.synced_at)
                    .push_bind(&l.last_sent);
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        for table in ["users", "groups", "memberships", "target_links"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}
