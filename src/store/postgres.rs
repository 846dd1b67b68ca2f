//! The PostgreSQL store: production and scale-out (several processes share one database).

use super::shared::{KeyRing, QueueSignal};
use super::{StoreError, StoreResult, redact_url};
use crate::crypto::MasterKey;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, Postgres};
use sqlx::{ConnectOptions as _, Connection as _, Transaction};
use std::str::FromStr as _;
use std::time::Duration;

/// The store on PostgreSQL.
pub struct PgStore {
    pool: PgPool,
    keys: KeyRing,
    signal: QueueSignal,
    location: String,
}

impl PgStore {
    /// Connects to `url`, applies pending migrations, and uses `master` for data keys.
    pub async fn open(url: &str, master: MasterKey) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("bad PostgreSQL URL: {e}")))?;
        Self::open_with(options, redact_url(url), master).await
    }

    /// Like [`PgStore::open`] with explicit connect options (tests use it to pin a schema).
    pub async fn open_with(
        options: PgConnectOptions,
        location: String,
        master: MasterKey,
    ) -> StoreResult<Self> {
        // One direct connection first: an unreachable server is reported at once, with its
        // real reason, instead of after the pool's acquire timeout.
        options
            .connect()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .close()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Database(msg) => StoreError::Unavailable(msg),
                other => other,
            })?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(Self {
            pool,
            keys: KeyRing::new(master),
            signal: QueueSignal::new(),
            location,
        })
    }

    /// The connection pool, for backend-specific work (queue claims, LISTEN/NOTIFY).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn listen_pool(&self) -> Option<sqlx::PgPool> {
        Some(self.pool.clone())
    }

    fn backend_name() -> &'static str {
        "postgres"
    }

    const DIALECT: super::scim_query::Dialect = super::scim_query::Dialect::Postgres;

    async fn begin_write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

impl_store!(
    PgStore,
    sqlx::postgres::Postgres,
    " FOR UPDATE SKIP LOCKED",
    " FOR UPDATE"
);
