//! Test harness: a fresh store per test, on real SQLite (a temp file) or real PostgreSQL (a
//! fresh schema in the database `TEST_DATABASE_URL` names, dropped afterwards).
//!
//! With `CI=true`, PostgreSQL is mandatory: a test panics if it cannot connect. Elsewhere the
//! PostgreSQL variant of a test prints why it is skipped and returns.
#![allow(dead_code)]

pub mod idp;
pub mod keycloak;
pub mod saml_idp;
pub mod zitadel;

use scimdesk::crypto::MasterKey;
use scimdesk::domain::OrganizationId;
use scimdesk::policy::fanout;
use scimdesk::store::{LoadableStore, PgStore, SqliteStore, Store};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::SqlitePool;
use sqlx::{AssertSqlSafe, Connection as _};
use std::path::PathBuf;
use std::sync::Arc;

/// The database that PostgreSQL tests make their schemas in.
pub fn pg_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// The `body` of a fixture in `tests/fixtures/{dir}/{name}.json` (the shared shapes of real
/// systems that the test doubles answer with).
pub fn fixture_body(dir: &str, name: &str) -> serde_json::Value {
    let path = format!(
        "{}/tests/fixtures/{dir}/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["body"].clone()
}

/// Each group's path → its members' userNames, sorted (what a sync left in the store).
pub async fn group_tree(
    s: &dyn Store,
    org: scimdesk::domain::OrganizationId,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out = std::collections::BTreeMap::new();
    for g in s
        .list_groups(org, scimdesk::store::ListRange::first(1000))
        .await
        .unwrap()
    {
        let ids = s.group_members(org, g.id).await.unwrap();
        let mut names: Vec<String> = s
            .users_by_ids(org, &ids)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.user_name)
            .collect();
        names.sort();
        out.insert(g.path(), names);
    }
    out
}

/// Maps the groups at exactly `path` to a role named `role` (made if missing), as an
/// operator would, past the guard; returns the role.
pub async fn map_path_to_role(
    s: &dyn Store,
    org: scimdesk::domain::OrganizationId,
    path: &str,
    role: &str,
) -> scimdesk::domain::Role {
    use scimdesk::domain::*;
    use scimdesk::engine::commands::{self, MappingChange};
    let op = Actor::operator("tester");
    let role = commands::ensure_role(s, &op, org, role).await.unwrap();
    commands::set_mapping(
        s,
        &op,
        org,
        &MappingChange::Set {
            id: None,
            draft: RoleMappingDraft {
                source_connection_id: None,
                selector: GroupSelector::Path,
                match_mode: MatchMode::Exact,
                pattern: path.into(),
                role_id: role.id,
            },
        },
        &scimdesk::policy::impact::Guard::default(),
        true,
    )
    .await
    .unwrap();
    role
}

/// Whether PostgreSQL tests must run (CI) rather than skip.
pub fn pg_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A fresh PostgreSQL schema, or `None` (skip) when PostgreSQL is unreachable outside CI.
pub async fn pg_schema() -> Option<PgSchema> {
    let admin = match sqlx::PgConnection::connect(&pg_url()).await {
        Ok(c) => c,
        Err(e) if !pg_required() => {
            eprintln!(
                "SKIPPED: PostgreSQL at {} is unreachable ({e}); set CI=true to make this fatal",
                pg_url()
            );
            return None;
        }
        Err(e) => panic!("PostgreSQL at {} is unreachable and CI=true: {e}", pg_url()),
    };
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = admin;
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
        .execute(&mut admin)
        .await
        .expect("create test schema");
    let _ = admin.close().await;
    Some(PgSchema { name })
}

/// A schema that is dropped (with everything in it) when this value is dropped, even on panic.
pub struct PgSchema {
    pub name: String,
}

impl PgSchema {
    /// Connect options that put everything in this schema.
    pub fn options(&self) -> PgConnectOptions {
        scimdesk::store::postgres_connect_options(&pg_url())
            .expect("TEST_DATABASE_URL")
            .options([("search_path", self.name.as_str())])
    }

    /// A database URL for the CLI that puts everything in this schema.
    pub fn url(&self) -> String {
        let sep = if pg_url().contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", pg_url(), self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Async work cannot run in Drop; a short-lived thread with its own runtime can.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut c = sqlx::PgConnection::connect(&pg_url()).await.ok()?;
                sqlx::query(AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {name} CASCADE"
                )))
                .execute(&mut c)
                .await
                .ok()?;
                c.close().await.ok()
            })
        })
        .join();
    }
}

/// Direct access to the database under a store, for what the application must not do itself.
pub enum Raw {
    Pg(PgPool),
    Sqlite(SqlitePool, PathBuf),
}

impl Raw {
    /// Runs a statement; returns rows affected or the database's error text.
    pub async fn exec(&self, sql: &str) -> Result<u64, String> {
        let sql = AssertSqlSafe(sql.to_string());
        match self {
            Raw::Pg(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
            Raw::Sqlite(p, _) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
        }
        .map_err(|e| e.to_string())
    }

    /// Every byte the database holds that a thief of the disk or a dump would get: the SQLite
    /// file and its WAL, or the text of every row of every table in the PostgreSQL schema.
    pub async fn everything(&self) -> Vec<u8> {
        match self {
            Raw::Sqlite(pool, path) => {
                let _ = sqlx::query("PRAGMA wal_checkpoint(FULL)")
                    .execute(pool)
                    .await;
                let mut bytes = std::fs::read(path).expect("read sqlite file");
                let mut wal = path.clone().into_os_string();
                wal.push("-wal");
                bytes.extend(std::fs::read(wal).unwrap_or_default());
                bytes
            }
            Raw::Pg(pool) => {
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
                )
                .fetch_all(pool)
                .await
                .expect("list tables");
                let mut bytes = Vec::new();
                for t in tables {
                    let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
                        "SELECT row_to_json(x)::text FROM {t} x"
                    )))
                    .fetch_all(pool)
                    .await
                    .expect("dump table");
                    for r in rows {
                        bytes.extend(r.into_bytes());
                    }
                }
                bytes
            }
        }
    }
}

/// One test's store (opened with scimdesk's policy, and loadable in bulk) and raw access to
/// its database.
pub struct Harness {
    pub store: Arc<dyn LoadableStore>,
    pub raw: Raw,
    pub backend: &'static str,
    /// The URL the `scimdesk` binary opens this store with.
    pub database_url: String,
    key_text: scimdesk::crypto::Secret,
    reopen: Reopen,
    _tmp: Option<tempfile::TempDir>,
    _schema: Option<PgSchema>,
}

enum Reopen {
    Pg(Box<PgConnectOptions>),
    Sqlite(String),
}

impl Harness {
    /// A store on a fresh SQLite file.
    pub async fn sqlite() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("test.db");
        let url = format!("sqlite://{}", path.display());
        let key = MasterKey::generate().unwrap();
        let key_text = key.to_base64();
        let store = SqliteStore::open(&url, key, fanout::decide)
            .await
            .expect("open sqlite store");
        let raw = Raw::Sqlite(store.pool().clone(), path);
        Self {
            store: Arc::new(store),
            raw,
            backend: "sqlite",
            database_url: url.clone(),
            key_text,
            reopen: Reopen::Sqlite(url),
            _tmp: Some(tmp),
            _schema: None,
        }
    }

    /// A store on a fresh PostgreSQL schema, or `None` when skipped (see module docs).
    pub async fn postgres() -> Option<Self> {
        let schema = pg_schema().await?;
        let options = schema.options();
        let key = MasterKey::generate().unwrap();
        let key_text = key.to_base64();
        let store = PgStore::open_with(
            options.clone(),
            format!("test schema {}", schema.name),
            key,
            fanout::decide,
        )
        .await
        .expect("open postgres store");
        let raw = Raw::Pg(
            PgPoolOptions::new()
                .max_connections(2)
                .connect_with(options.clone())
                .await
                .expect("raw pool"),
        );
        Some(Self {
            store: Arc::new(store),
            raw,
            backend: "postgres",
            database_url: schema.url(),
            key_text,
            reopen: Reopen::Pg(Box::new(options)),
            _tmp: None,
            _schema: Some(schema),
        })
    }

    /// The `scimdesk` binary on this store (its master key in the environment, a config
    /// directory of its own under `config`), as an operator would run it.
    pub fn cli(&self, config: &std::path::Path) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_scimdesk"));
        for var in ["DATABASE_URL", "SCIMDESK_ORG", "RUST_LOG"] {
            c.env_remove(var);
        }
        c.env("SCIMDESK_DATABASE_URL", &self.database_url)
            .env("SCIMDESK_MASTER_KEY", self.key_text.expose())
            .env("SCIMDESK_CONFIG", config.join("config"))
            .env("SCIMDESK_DATA_DIR", config.join("data"))
            .env("SCIMDESK_OPERATOR", "tester");
        c
    }

    /// A copy of the master key the store was opened with.
    pub fn key(&self) -> MasterKey {
        MasterKey::from_base64(self.key_text.expose()).unwrap()
    }

    /// On PostgreSQL, the same database opened again with these server settings on every
    /// connection (e.g. a planner setting a test needs); `None` on SQLite.
    pub async fn reopen_postgres_with(&self, settings: &[(&str, &str)]) -> Option<Arc<dyn Store>> {
        match &self.reopen {
            Reopen::Sqlite(_) => None,
            Reopen::Pg(opts) => Some(Arc::new(
                PgStore::open_with(
                    (**opts).clone().options(settings.iter().copied()),
                    "reopened with settings".into(),
                    self.key(),
                    fanout::decide,
                )
                .await
                .expect("reopen with settings"),
            )),
        }
    }

    /// Opens the same database again with `key` (running migrations again).
    pub async fn reopen(&self, key: MasterKey) -> Arc<dyn Store> {
        match &self.reopen {
            Reopen::Sqlite(url) => Arc::new(
                SqliteStore::open(url, key, fanout::decide)
                    .await
                    .expect("reopen"),
            ),
            Reopen::Pg(opts) => Arc::new(
                PgStore::open_with((**opts).clone(), "reopened".into(), key, fanout::decide)
                    .await
                    .expect("reopen"),
            ),
        }
    }
}

/// A new organization named `name` with an inbound SCIM connection (`"{name} IdP"`) and a
/// SCIM token for it: what an identity provider is given.
pub async fn inbound_tenant(store: &dyn Store, name: &str) -> (OrganizationId, String) {
    scimdesk::stand_ins::target_double::inbound_organization(
        store,
        &scimdesk::domain::Actor::operator("tester"),
        name,
        &format!("{name} IdP"),
    )
    .await
    .unwrap()
}

/// Declares each named `async fn(&Harness)` as a test on SQLite and on PostgreSQL, so the
/// output shows `sqlite::NAME` and `postgres::NAME` side by side.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = $crate::support::Harness::sqlite().await;
                    super::$name(&h).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(h) = $crate::support::Harness::postgres().await else { return };
                    super::$name(&h).await;
                }
            )*
        }
    };
}

/// The `filter` of every look-up (`GET /Users?filter=...`) a target answered, with the status.
pub fn user_lookups(
    target: &scimdesk::stand_ins::target_double::FaultyServer,
) -> Vec<(String, u16)> {
    target
        .received()
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/scim/v2/Users?"))
        .filter_map(|r| {
            let query = r.path.split_once('?')?.1;
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "filter")
                .map(|(_, v)| (v.into_owned(), r.status))
        })
        .collect()
}

/// Fails unless each of `user_names` appears in exactly one of the look-up `filters`.
pub fn assert_each_looked_up_once(filters: &[String], user_names: impl Iterator<Item = String>) {
    for name in user_names {
        let quoted = format!("\"{name}\"");
        let asked = filters.iter().filter(|f| f.contains(&quoted)).count();
        assert_eq!(asked, 1, "{name} was looked up {asked} times");
    }
}
