//! The SQLite store: the embedded default, one process, nothing to install.

use super::QueueSignal;
use super::shared::KeyRing;
use super::{StoreError, StoreResult, redact_url};
use crate::crypto::MasterKey;
use crate::domain::{
    Actor, Attempt, ConnectionId, OperationId, OrganizationId, ResourceType, TargetLink, Timestamp,
    User, UserId,
};
use sqlx::QueryBuilder;
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
            signal: QueueSignal::default(),
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

    /// Moves succeeded operations still leased by `owner` to the history.
    async fn move_to_history(
        conn: &mut sqlx::SqliteConnection,
        owner: uuid::Uuid,
        ids: &[OperationId],
        now: Timestamp,
    ) -> StoreResult<Vec<OperationId>> {
        let mut moved = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO operation_history (id, organization_id, connection_id, resource_type, resource_id, action, \
                 payload, state, attempts, last_status, last_error, note, created_at, finished_at) \
                 SELECT id, organization_id, connection_id, resource_type, resource_id, action, payload, 'succeeded', \
                 attempts, NULL, NULL, NULL, created_at, ",
            );
            q.push_bind(now);
            q.push(" FROM operation_queue WHERE lease_owner = ");
            q.push_bind(owner);
            q.push(" AND id");
            push_in_list!(q, chunk, |id| *id);
            q.push(" RETURNING id");
            let ids: Vec<OperationId> = q.build_query_scalar().fetch_all(&mut *conn).await?;
            if ids.is_empty() {
                continue;
            }
            let mut q =
                QueryBuilder::<Sqlite>::new("DELETE FROM operation_queue WHERE lease_owner = ");
            q.push_bind(owner);
            q.push(" AND id");
            push_in_list!(q, &ids, |id| *id);
            q.build().execute(&mut *conn).await?;
            moved.extend(ids);
        }
        Ok(moved)
    }

    /// Records attempts (SQLite prepares a multi-row VALUES list cheaply).
    async fn insert_attempts(
        conn: &mut sqlx::SqliteConnection,
        attempts: &[&Attempt],
    ) -> StoreResult<()> {
        for chunk in attempts.chunks(1000) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO operation_attempts (operation_id, attempt_no, organization_id, connection_id, started_at, \
                 duration_ms, http_status, error, request_excerpt, response_excerpt) ",
            );
            q.push_values(chunk, |mut b, a| {
                b.push_bind(a.operation_id)
                    .push_bind(a.attempt_no)
                    .push_bind(a.organization_id)
                    .push_bind(a.connection_id)
                    .push_bind(a.started_at)
                    .push_bind(a.duration_ms)
                    .push_bind(a.http_status)
                    .push_bind(a.error.clone())
                    .push_bind(a.request_excerpt.clone())
                    .push_bind(a.response_excerpt.clone());
            });
            q.push(" ON CONFLICT (operation_id, attempt_no) DO NOTHING");
            q.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// The links of these local ids at one connection (an IN list: SQLite's planner takes
    /// the primary key for it whatever the table's size).
    async fn links_for(
        pool: &sqlx::SqlitePool,
        org: OrganizationId,
        connection: ConnectionId,
        resource_type: ResourceType,
        local_ids: &[uuid::Uuid],
    ) -> StoreResult<Vec<TargetLink>> {
        let mut q = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            link_cols!(),
            " FROM target_links WHERE organization_id = "
        ));
        q.push_bind(org);
        q.push(" AND connection_id = ");
        q.push_bind(connection);
        q.push(" AND resource_type = ");
        q.push_bind(resource_type.as_str());
        q.push(" AND local_id");
        push_in_list!(q, local_ids, |id| *id);
        Ok(q.build_query_as::<TargetLink>().fetch_all(pool).await?)
    }

    /// The users of `org` among `ids` (the columns `cols`): an IN list on the primary key, with
    /// the organization compared as `IS NOT DISTINCT FROM` (never NULL, so it means `=`), which
    /// no index can serve, so an index led by the organization never competes with the primary
    /// key (PostgreSQL's `users_in_org` explains what that competition cost there).
    async fn users_in_org<'e, T, E>(
        ex: E,
        org: OrganizationId,
        ids: &[UserId],
        cols: &'static str,
    ) -> StoreResult<Vec<T>>
    where
        E: sqlx::Executor<'e, Database = Sqlite>,
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
    {
        // `cols` is a column list written in the source, never input.
        let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT {cols} FROM users WHERE"));
        q.push(" id");
        push_in_list!(q, ids, |id| *id);
        q.push(" AND organization_id IS NOT DISTINCT FROM ");
        q.push_bind(org);
        Ok(q.build_query_as::<T>().fetch_all(ex).await?)
    }

    fn backend_name() -> &'static str {
        "sqlite"
    }

    const DIALECT: super::scim_query::Dialect = super::scim_query::Dialect::Sqlite;

    /// SQLite has no INSERT inside WITH, and its round trips stay in the process: a user is
    /// created by the transaction in `create_user` (this answers `None`).
    async fn create_user_at_once(
        &self,
        _actor: &Actor,
        _user: &User,
        _details: serde_json::Value,
    ) -> Option<StoreResult<u64>> {
        None
    }

    /// Writers take the lock up front (`BEGIN IMMEDIATE`): a deferred transaction that reads
    /// first and then writes can fail with SQLITE_BUSY instead of waiting its turn.
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

impl_store!(
    SqliteStore,
    sqlx::sqlite::Sqlite,
    "IN (",
    ")",
    "",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $3) SELECT randomblob(16), $1, $2, 'user', randomblob(16), 'update', '{}', 'pending', 0, $4, $4, $4 FROM n",
    ""
);
