//! The SQLite store: the embedded default, one process, nothing to install.

use super::shared::{KeyRing, QueueSignal};
use super::{StoreError, StoreResult, redact_url};
use crate::crypto::MasterKey;
use sqlx::Transaction;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use std::str::FromStr as _;
use std::time::Duration;

/// The store on an SQLite file.
pub struct SqliteStore {
    pool: SqlitePool,
    keys: KeyRing,
    signal: QueueSignal,
    location: String,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite:PATH` or `sqlite://PATH`),
    /// applies pending migrations, and uses `master` for data keys.
    pub async fn open(url: &str, master: MasterKey) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot open {}: {e}", redact_url(url)))
            })?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(Self {
            pool,
            keys: KeyRing::new(master),
            signal: QueueSignal::new(),
            location: redact_url(url),
        })
    }

    /// The connection pool, for backend-specific work.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn listen_pool(&self) -> Option<sqlx::PgPool> {
        None
    }

    fn backend_name() -> &'static str {
        "sqlite"
    }

    const DIALECT: super::scim_query::Dialect = super::scim_query::Dialect::Sqlite;

    /// Writers take the lock up front (`BEGIN IMMEDIATE`): a deferred transaction that reads
    /// first and then writes can fail with SQLITE_BUSY instead of waiting its turn.
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

impl_store!(SqliteStore, sqlx::sqlite::Sqlite, "", "");
