//! Delivery statistics per connection, process and minute.

use super::{Db, ThisStore};
use crate::domain::{ConnectionId, ConnectionStats, OrganizationId, Timestamp};
use crate::store::StoreResult;
use crate::store::api::Statistics;

#[async_trait::async_trait]
impl Statistics for ThisStore {
    async fn record_connection_stats(&self, rows: &[ConnectionStats]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut q = sqlx::QueryBuilder::<Db>::new(concat!(
            "INSERT INTO connection_stats (",
            stats_cols!(),
            ") "
        ));
        q.push_values(rows, |mut b, r| {
            b.push_bind(r.connection_id)
                .push_bind(r.minute)
                .push_bind(r.process_id)
                .push_bind(r.organization_id)
                .push_bind(r.attempts)
                .push_bind(r.failures)
                .push_bind(r.latency_buckets.clone())
                .push_bind(r.last_attempt_at)
                .push_bind(r.last_success_at);
        });
        q.push(concat!(
            " ON CONFLICT (connection_id, minute, process_id) DO UPDATE SET attempts = excluded.attempts, ",
            "failures = excluded.failures, latency_buckets = excluded.latency_buckets, ",
            "last_attempt_at = excluded.last_attempt_at, last_success_at = excluded.last_success_at"
        ));
        q.build().execute(&self.pool).await?;
        Ok(())
    }

    async fn connection_stats(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        since: Timestamp,
    ) -> StoreResult<Vec<ConnectionStats>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            stats_cols!(),
            " FROM connection_stats WHERE organization_id = $1 AND connection_id = $2 ",
            "AND minute >= $3 ORDER BY minute"
        ))
        .bind(org)
        .bind(connection)
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn prune_connection_stats(&self, before: Timestamp) -> StoreResult<u64> {
        Ok(
            sqlx::query("DELETE FROM connection_stats WHERE minute < $1")
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}
