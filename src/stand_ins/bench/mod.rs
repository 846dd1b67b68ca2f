//! `scimdesk bench`: the engine's speed figures, measured on this machine in one run.
//!
//! * `wave` — an onboarding wave (users, then groups with members) pushed by HTTP to the
//!   inbound SCIM server, delivered by the engine to a local SCIM target (the
//!   [`TargetDouble`]); compared, in the same run, with pushing the same requests straight to
//!   a fresh target with a plain HTTP client; then a paced run for latency.
//! * `drain` — a large queue drained against a target that acknowledges at once, reporting
//!   the rate per interval to show whether it holds.
//! * `policy` — a mapping change's impact preview and a full reconciliation over a large
//!   directory (see [`policy`]).
//! * `saml` — signed SAML logins verified and ingested (see [`saml`]).
//!
//! Each run uses a store of its own: a temporary PostgreSQL schema (dropped afterwards) or a
//! temporary SQLite file.
//!
//! Cut by concern: [`measuring`] (percentiles, CPU and memory, latencies from the attempt
//! log), [`directory`] (the generated users and groups, and pushing them over SCIM),
//! [`wave`] and [`drain`] (the two engine runs), beside [`policy`] and [`workbench`].

pub mod api;
pub mod directory;
pub mod drain;
pub mod measuring;
pub mod policy;
pub mod saml;
pub mod sync;
pub mod wave;
pub mod workbench;

pub use api::{ApiBenchOptions, ApiBenchReport, api};
pub use directory::{directory_group, directory_user};
pub use drain::{DrainReport, drain};
pub use measuring::{CpuClock, CpuPerUser, Percentiles, peak_rss_mb, percentiles};
pub use saml::{SamlBenchOptions, SamlBenchReport, saml};
pub use sync::{SyncBenchOptions, SyncBenchReport, sync};
pub use wave::{WaveOptions, WaveReport, WaveTarget, wave};

pub use super::StandInError;
use crate::crypto::{MasterKey, Secret};
use crate::domain::*;
use crate::engine::{Deliver, Engine, EngineConfig, NoopDelivery};
use crate::policy::fanout;
use crate::stand_ins::target_double::{FaultyServer, MemoryTarget, TargetDouble};
use crate::store::OperationFilter;
use crate::store::{LoadableStore, PgStore, SqliteStore, Store, StoreError, StoreResult};
use directory::*;
use drain::queue_floor;
use measuring::*;
use serde::Serialize;
use serde_json::json;
use sqlx::{AssertSqlSafe, ConnectOptions as _, Connection as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a benchmark run answers when it cannot finish.
pub type BenchResult<T> = Result<T, StandInError>;

/// A store for one benchmark run, removed when dropped.
pub struct BenchStore {
    /// The store (which benchmarks may also load in bulk).
    pub store: Arc<dyn LoadableStore>,
    cleanup: Cleanup,
}

enum Cleanup {
    Schema { url: String, name: String },
    File(std::path::PathBuf),
}

impl BenchStore {
    /// A fresh schema in the PostgreSQL database at `postgres`, or a temporary SQLite file.
    pub async fn open(postgres: Option<&str>) -> StoreResult<Self> {
        let key = MasterKey::generate().map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Self::open_with_key(postgres, key).await
    }

    /// [`BenchStore::open`] with a given master key (so another process can open it too).
    pub async fn open_with_key(postgres: Option<&str>, key: MasterKey) -> StoreResult<Self> {
        match postgres {
            Some(url) => {
                let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
                let base = crate::store::postgres_connect_options(url)?;
                let mut admin = base
                    .connect()
                    .await
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
                    .execute(&mut admin)
                    .await?;
                let _ = admin.close().await;
                let options = base.options([("search_path", name.as_str())]);
                let store = PgStore::open_with(
                    options,
                    format!("bench schema {name}"),
                    key,
                    fanout::decide,
                )
                .await?;
                Ok(Self {
                    store: Arc::new(store),
                    cleanup: Cleanup::Schema {
                        url: url.to_string(),
                        name,
                    },
                })
            }
            None => {
                let path = std::env::temp_dir().join(format!(
                    "scimdesk-bench-{}.db",
                    uuid::Uuid::new_v4().simple()
                ));
                let store =
                    SqliteStore::open(&format!("sqlite://{}", path.display()), key, fanout::decide)
                        .await?;
                Ok(Self {
                    store: Arc::new(store),
                    cleanup: Cleanup::File(path),
                })
            }
        }
    }

    /// Where another process finds this store: a PostgreSQL URL and schema, or a file.
    pub fn location(&self) -> StoreLocation {
        match &self.cleanup {
            Cleanup::Schema { url, name } => StoreLocation::Schema {
                url: url.clone(),
                schema: name.clone(),
            },
            Cleanup::File(path) => StoreLocation::File(path.clone()),
        }
    }

    /// Removes the schema or file.
    pub async fn remove(self) {
        match self.cleanup {
            Cleanup::Schema { url, name } => {
                if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                    let _ = sqlx::query(AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS {name} CASCADE"
                    )))
                    .execute(&mut c)
                    .await;
                }
            }
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
        }
    }
}

/// Where a benchmark store lives, for a second process to open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A schema in a PostgreSQL database.
    Schema {
        /// The database URL.
        url: String,
        /// The schema.
        schema: String,
    },
    /// A SQLite file.
    File(std::path::PathBuf),
}

impl StoreLocation {
    /// Opens the store there with `key`.
    pub async fn open(&self, key: MasterKey) -> StoreResult<Arc<dyn Store>> {
        Ok(match self {
            StoreLocation::Schema { url, schema } => {
                let base = crate::store::postgres_connect_options(url)?;
                let options = base.options([("search_path", schema.as_str())]);
                Arc::new(
                    PgStore::open_with(
                        options,
                        format!("bench schema {schema}"),
                        key,
                        fanout::decide,
                    )
                    .await?,
                )
            }
            StoreLocation::File(path) => Arc::new(
                SqliteStore::open(&format!("sqlite://{}", path.display()), key, fanout::decide)
                    .await?,
            ),
        })
    }
}
