//! The SQLite store: the embedded default, one process, nothing to install.
//!
//! The SQL every backend shares is `store/sql/`, compiled here as the module `sql` with `Db`
//! and `ThisStore` bound to SQLite. What SQLite does its own way is here: opening the file
//! (WAL, a writer that takes its lock up front), multi-row `VALUES` lists and `IN` lists where
//! PostgreSQL uses arrays, inbound creates in one transaction (`create_batch`), and nothing to
//! say to other processes (`notices`: one process uses the file at a time).

mod create_batch;
mod notices;
/// The shared SQL (see `store/sql/mod.rs`), compiled for SQLite.
#[path = "../sql/mod.rs"]
#[allow(
    clippy::duplicate_mod,
    reason = "the shared SQL is compiled once per backend on purpose (store/sql/mod.rs)"
)]
mod sql;

use super::QueueSignal;
use super::create_batch::CreateBatches;
use super::key_ring::KeyRing;
use super::{StoreError, StoreResult, redact_url};
use crate::crypto::MasterKey;
use crate::domain::{
    Attempt, ConnectionId, FanoutRule, OperationId, OrganizationId, ResourceType, TargetLink,
    Timestamp, UserId,
};
use sqlx::QueryBuilder;
use sqlx::Transaction;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use std::str::FromStr as _;
use std::time::Duration;

/// The database the shared SQL runs on here.
type Db = Sqlite;
/// The store the shared SQL implements here.
type ThisStore = SqliteStore;

/// The store on an SQLite file.
pub struct SqliteStore {
    pool: SqlitePool,
    keys: KeyRing,
    signal: QueueSignal,
    location: String,
    /// Inbound user creates, written together when they arrive at the same time.
    creates: CreateBatches,
    /// What a change of the directory causes at targets (policy's fan-out, handed in).
    fanout: FanoutRule,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite:PATH` or `sqlite://PATH`),
    /// applies pending migrations, uses `master` for data keys and `fanout` to decide what
    /// directory changes cause at targets.
    pub async fn open(url: &str, master: MasterKey, fanout: FanoutRule) -> StoreResult<Self> {
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
            creates: CreateBatches::default(),
            fanout,
        })
    }

    /// The connection pool, for what only tests and tools do beside the store.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// How the claim chooses its rows: a plain `IN (…)`; SQLite's single writer lock already
    /// serialises claims.
    const CLAIM_OPEN: &str = "IN (";
    /// The end of the claim's choice.
    const CLAIM_CLOSE: &str = ")";
    /// No row locks: the writer lock keeps a worker from claiming an update that a change is
    /// about to coalesce into.
    const ROW_LOCK: &str = "";
    /// Nothing: SQLite's write transactions already take turns (see PostgreSQL's).
    const NESTING_LOCK: &str = "";
    /// Nothing: SQLite has no `INSERT` inside `WITH`; a quiet login is its three statements in
    /// one transaction, like any other.
    const QUIET_LOGIN: &str = "";
    /// Commits wait as they always do (`synchronous=NORMAL` already spares the disk).
    const RELAXED_COMMIT: &str = "";
    /// The rows `bench drain` queues.
    const BULK_QUEUE_ROWS: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $3) SELECT randomblob(16), $1, $2, 'user', randomblob(16), 'update', '{}', 'pending', 0, $4, $4, $4 FROM n";

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

    const DIALECT: super::scim_query::Dialect = super::scim_query::Dialect::Sqlite;

    /// Writers take the lock up front (`BEGIN IMMEDIATE`): a deferred transaction that reads
    /// first and then writes can fail with SQLITE_BUSY instead of waiting its turn.
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Actor, AuditFilter, AuthMethod, ConnectionKind, NewConnection, OperationAction, User,
        UserDraft, UserId,
    };
    use crate::group_commit::Waiting;
    use crate::store::create_batch::NewUser;
    use crate::store::{Audit, Connections, OperationFilter, Queue, Tenants, Users};
    use create_batch::create_users_together;

    /// The batch writer itself (the conformance suite runs creates concurrently, but a writer
    /// that always failed would pass there through `create_user`'s own transaction): one
    /// transaction writes the users it can, with their queued creates and audit events, and
    /// leaves out a taken `userName` and a missing source connection.
    #[tokio::test]
    async fn a_batch_writes_what_it_can_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(
            &url,
            MasterKey::generate().unwrap(),
            crate::domain::fanout::no_fanout,
        )
        .await
        .unwrap();
        let actor = Actor::operator("tester");
        let org = store
            .create_organization(&actor, "Riverside")
            .await
            .unwrap();
        let target = store
            .create_connection(
                &actor,
                org.id,
                &NewConnection {
                    name: "app".into(),
                    kind: ConnectionKind::ScimTarget,
                    base_url: Some("https://app.example/scim/v2".into()),
                    auth_method: AuthMethod::None,
                    settings: serde_json::json!({}),
                },
                None,
            )
            .await
            .unwrap();
        let user = |name: &str, active: bool, source: Option<ConnectionId>| {
            let mut d = UserDraft::new(name);
            d.active = active;
            d.source_connection_id = source;
            User::from_draft(UserId::new(), org.id, &d, Timestamp::now())
        };
        let users = [
            user("ann@riverside.example", true, None),
            user("bob@riverside.example", false, None),
            user("ANN@Riverside.Example", true, None),
            user("cat@riverside.example", true, Some(ConnectionId::new())),
        ];
        let (batch, _answers): (Vec<_>, Vec<_>) = users
            .iter()
            .map(|u| Waiting::detached(NewUser::for_test(&actor, u.clone())))
            .unzip();
        let written = create_users_together(&store.pool, &batch).await.unwrap();
        let expected: std::collections::HashSet<_> = [users[0].id.0, users[1].id.0].into();
        assert_eq!(written, expected);
        assert_eq!(store.count_users(org.id).await.unwrap(), 2);
        assert_eq!(
            store.user(org.id, users[0].id).await.unwrap(),
            Some(users[0].clone())
        );

        let ops = store
            .list_operations(
                org.id,
                &OperationFilter {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(ops.len(), 1, "only the active user's create is queued");
        assert_eq!(
            (ops[0].connection_id, ops[0].resource_id, ops[0].action),
            (target.id, users[0].id.0, OperationAction::Create)
        );
        let audited: Vec<String> = store
            .list_audit(
                org.id,
                &AuditFilter {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "user.create")
            .map(|e| e.subject_id)
            .collect();
        assert_eq!(audited.len(), 2);
        assert!(audited.contains(&users[0].id.to_string()));
        assert!(audited.contains(&users[1].id.to_string()));
    }
}
