//! Between processes on SQLite: nothing. One process uses the file at a time, so there is
//! nobody to tell about new work and nobody to hear; SQLite's planner needs no upkeep either.

use super::SqliteStore;
use crate::store::api::{Channel, Listener, Notices};
use crate::store::{QueueSignal, StoreResult};

#[async_trait::async_trait]
impl Notices for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
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
        false
    }

    async fn announce(&self, _channel: Channel, _payload: &str) -> StoreResult<()> {
        Ok(())
    }

    async fn listen(&self) -> StoreResult<Option<Box<dyn Listener>>> {
        Ok(None)
    }

    async fn maintain(&self, _vacuum_queue: bool) -> StoreResult<()> {
        Ok(())
    }
}
