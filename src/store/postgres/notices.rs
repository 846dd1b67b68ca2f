//! Between processes on PostgreSQL: `NOTIFY` and `LISTEN` on the two channels, and the
//! planner's upkeep that every process may do (statistics of fast-changing tables, vacuuming
//! the queue).

use super::PgStore;
use crate::store::api::{Channel, Listener, Notice, Notices};
use crate::store::{QueueSignal, StoreError, StoreResult};
use sqlx::postgres::PgListener;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Rows changed since a table's last ANALYZE past which it is analyzed (also at least a fifth
/// of its rows).
const ANALYZE_AFTER_CHANGES: i64 = 1_000;
/// One table is analyzed at most this often by one process.
const ANALYZE_AT_MOST_EVERY: Duration = Duration::from_secs(5);

/// When this process last analyzed each table.
#[derive(Default)]
pub(super) struct Analyzed(Mutex<HashMap<String, Instant>>);

impl Analyzed {
    /// Whether `table` may be analyzed now; if so, notes that it is.
    fn take(&self, table: &str) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if last
            .get(table)
            .is_some_and(|t| t.elapsed() < ANALYZE_AT_MOST_EVERY)
        {
            return false;
        }
        last.insert(table.to_string(), Instant::now());
        true
    }
}

/// `LISTEN` on both channels.
struct PgNotices(PgListener);

#[async_trait::async_trait]
impl Listener for PgNotices {
    async fn next(&mut self) -> StoreResult<Option<Notice>> {
        loop {
            // `Ok(None)`: the connection was lost; PgListener reconnects on the next call.
            let Some(n) = self.0.try_recv().await? else {
                return Ok(None);
            };
            if let Some(channel) = Channel::named(n.channel()) {
                return Ok(Some(Notice {
                    channel,
                    payload: n.payload().to_string(),
                }));
            }
        }
    }
}

impl PgStore {
    /// Brings the planner statistics of fast-changing tables up to date. Autovacuum looks once
    /// a minute; in the first minute of a wave on a new database the tables grow from nothing
    /// while the planner still believes they are empty, and picks plans that scan every row of
    /// an organization (links, users) for each batch, which makes a wave quadratic.
    /// `SKIP_LOCKED` leaves a table another process is analyzing.
    async fn analyze_changed_tables(&self) -> StoreResult<()> {
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT relname::text FROM pg_stat_user_tables WHERE schemaname = current_schema() \
             AND n_mod_since_analyze > $1 AND n_mod_since_analyze > n_live_tup / 5",
        )
        .bind(ANALYZE_AFTER_CHANGES)
        .fetch_all(&self.pool)
        .await?;
        for table in stale {
            // Our own tables' names; anything else is not ours to touch.
            let plain = !table.is_empty()
                && table
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !plain || !self.analyzed.take(&table) {
                continue;
            }
            let sql = format!("ANALYZE (SKIP_LOCKED) {table}");
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&self.pool)
                .await
            {
                tracing::debug!("analyzing {table} failed: {e}");
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Notices for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn location(&self) -> &str {
        &self.location
    }

    async fn applied_migrations(&self) -> StoreResult<Vec<(i64, String)>> {
        Ok(sqlx::query_as(
            "SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    fn queue_signal(&self) -> &QueueSignal {
        &self.signal
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn announce(&self, channel: Channel, payload: &str) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel.name())
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn listen(&self) -> StoreResult<Option<Box<dyn Listener>>> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("LISTEN: {e}")))?;
        listener
            .listen_all([Channel::Queue.name(), Channel::Events.name()])
            .await?;
        Ok(Some(Box::new(PgNotices(listener))))
    }

    async fn maintain(&self, vacuum_queue: bool) -> StoreResult<()> {
        if let Err(e) = self.analyze_changed_tables().await {
            tracing::debug!("reading table statistics failed: {e}");
        }
        if vacuum_queue {
            // SKIP_LOCKED: when another process is vacuuming it, that is enough.
            sqlx::query("VACUUM (SKIP_LOCKED) operation_queue")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}
