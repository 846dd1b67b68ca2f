//! Persistent state: the [`Store`] contract (one role trait per aggregate, `api/`), its SQL
//! written once for both backends (`sql/`), and what PostgreSQL and SQLite each do their own
//! way (`postgres/`, `sqlite/`).
//!
//! The store knows no engine and no policy: a change and the work it causes commit in one
//! transaction, and what a directory change causes is decided by the
//! [`FanoutRule`](crate::domain::FanoutRule) it is opened with (policy's, handed in by whoever
//! opens it). `open` picks the backend from the URL: `postgres://` or `postgresql://` for
//! PostgreSQL, `sqlite:` for SQLite. Migrations are applied on open.

#[macro_use]
mod columns;
mod api;
mod codec;
mod create_batch;
mod error;
mod key_ring;
mod postgres;
mod queue_signal;
pub mod scim_query;
mod sqlite;

pub use api::{
    Audit, BulkLoad, BulkRows, Channel, Connections, Exceptions, Groups, IssuedApiToken, Keys,
    Links, ListRange, Listener, LoadableStore, LoginApplied, Logins, Mappings, MemberRef, Notice,
    Notices, OperationFilter, Queue, ScimQuery, StateChange, Statistics, Store, Syncs, Tenants,
    Tokens, Users,
};
pub use error::{StoreError, StoreResult};
pub use postgres::{PgStore, connect_options as postgres_connect_options};
pub use queue_signal::QueueSignal;
pub use sqlite::SqliteStore;

use crate::crypto::MasterKey;
use crate::domain::FanoutRule;
use std::sync::Arc;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

impl Backend {
    /// The backend a URL names, or a clear refusal.
    pub fn of_url(url: &str) -> Result<Self, crate::domain::InvalidInput> {
        let scheme = url
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            "sqlite" => Ok(Backend::Sqlite),
            _ => Err(crate::domain::InvalidInput::new(
                "database URL",
                format!(
                    "{:?} is neither postgres://... nor sqlite:...",
                    redact_url(url)
                ),
            )),
        }
    }
}

/// Opens the store a URL names, migrating it, with `master` as the master key and `fanout`
/// deciding what directory changes cause at targets.
pub async fn open(url: &str, master: MasterKey, fanout: FanoutRule) -> StoreResult<Arc<dyn Store>> {
    let store: Arc<dyn Store> = open_loadable(url, master, fanout).await?;
    Ok(store)
}

/// [`open`], keeping the bulk loading that benchmarks need.
pub async fn open_loadable(
    url: &str,
    master: MasterKey,
    fanout: FanoutRule,
) -> StoreResult<Arc<dyn LoadableStore>> {
    Ok(match Backend::of_url(url)? {
        Backend::Postgres => Arc::new(PgStore::open(url, master, fanout).await?),
        Backend::Sqlite => Arc::new(SqliteStore::open(url, master, fanout).await?),
    })
}

/// A URL with any password replaced by `********`, safe to print and log.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // set_password only fails for URLs that cannot have one, which this one has.
            let _ = parsed.set_password(Some(crate::crypto::MASK));
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        // Unparseable: show only the scheme, in case the rest holds a secret.
        Err(_) => format!("{}:…", url.split(':').next().unwrap_or("?")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://alice:pa55@db:5432/x"),
            "postgres://alice:********@db:5432/x"
        );
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
        assert_eq!(redact_url("sqlite:/tmp/a.db"), "sqlite:/tmp/a.db");
    }

    #[test]
    fn backend_from_url() {
        assert_eq!(Backend::of_url("postgresql://x/y"), Ok(Backend::Postgres));
        assert_eq!(Backend::of_url("sqlite://a.db"), Ok(Backend::Sqlite));
        assert!(Backend::of_url("mysql://x").is_err());
        assert!(Backend::of_url("nonsense").is_err());
    }
}
