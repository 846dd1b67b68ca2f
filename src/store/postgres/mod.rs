//! The PostgreSQL store: production and scale-out (several processes share one database).
//!
//! The SQL every backend shares is `store/sql/`, compiled here as the module `sql` with `Db`
//! and `ThisStore` bound to PostgreSQL. What PostgreSQL does its own way is here: connecting
//! (and when not to use TLS), per-id probes that no statistics can turn into scans, arrays that
//! keep statement texts constant, inbound creates in one statement (`create_batch`), `NOTIFY`
//! and `LISTEN` between processes and the planner's upkeep (`notices`).

mod create_batch;
mod notices;
/// The shared SQL (see `store/sql/mod.rs`), compiled for PostgreSQL.
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
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, Postgres};
use sqlx::{ConnectOptions as _, Connection as _, Transaction};
use std::str::FromStr as _;
use std::time::Duration;

/// The database the shared SQL runs on here.
type Db = Postgres;
/// The store the shared SQL implements here.
type ThisStore = PgStore;

/// The store on PostgreSQL.
pub struct PgStore {
    pool: PgPool,
    keys: KeyRing,
    signal: QueueSignal,
    location: String,
    /// Inbound user creates, written together when they arrive at the same time.
    creates: CreateBatches,
    /// What a change of the directory causes at targets (policy's fan-out, handed in).
    fanout: FanoutRule,
    /// When each table was last analyzed by this process (see `maintain`).
    analyzed: notices::Analyzed,
}

/// The connect options of a PostgreSQL URL, as every part of scimdesk reads them.
///
/// One difference from libpq's defaults: a server on this machine (a loopback address,
/// `localhost`, or a Unix socket) is reached without TLS unless the URL or `PGSSLMODE` asks
/// for it. libpq's default `sslmode=prefer` encrypts whenever the server offers TLS, and on a
/// loopback connection that protects nothing while it costs both processes: in the onboarding
/// wave TLS took about 6 % of the machine's CPU (perf, 2026-11-29). An explicit `sslmode`
/// (`require`, `verify-full`, …) is always obeyed.
pub fn connect_options(url: &str) -> StoreResult<PgConnectOptions> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Unavailable(format!("bad PostgreSQL URL: {e}")))?;
    let local = options.get_socket().is_some() || is_loopback(options.get_host());
    if local && !names_ssl_mode(url) && std::env::var_os("PGSSLMODE").is_none() {
        return Ok(options.ssl_mode(sqlx::postgres::PgSslMode::Disable));
    }
    Ok(options)
}

/// Whether `host` is this machine over loopback (or a socket directory, which never uses TLS).
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.starts_with('/')
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether the URL's query sets `sslmode` (or sqlx's spelling `ssl-mode`).
fn names_ssl_mode(url: &str) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query.split('&').any(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            key.eq_ignore_ascii_case("sslmode") || key.eq_ignore_ascii_case("ssl-mode")
        })
    })
}

impl PgStore {
    /// Connects to `url`, applies pending migrations, uses `master` for data keys and
    /// `fanout` to decide what directory changes cause at targets.
    pub async fn open(url: &str, master: MasterKey, fanout: FanoutRule) -> StoreResult<Self> {
        Self::open_with(connect_options(url)?, redact_url(url), master, fanout).await
    }

    /// Like [`PgStore::open`] with explicit connect options (tests use it to pin a schema).
    pub async fn open_with(
        options: PgConnectOptions,
        location: String,
        master: MasterKey,
        fanout: FanoutRule,
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
            signal: QueueSignal::default(),
            location,
            creates: CreateBatches::default(),
            fanout,
            analyzed: Default::default(),
        })
    }

    /// The connection pool, for what only tests and tools do beside the store.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// How the claim chooses its rows: `= ANY(ARRAY(` … `FOR UPDATE SKIP LOCKED))` runs the
    /// locking choice exactly once (as `IN (…)` it became a semi-join that, on stale
    /// statistics, re-ran the choice for every queued row: 15–70 ms a claim, and more rows
    /// leased than asked for).
    const CLAIM_OPEN: &str = "= ANY(ARRAY(";
    /// The end of the claim's choice (see [`Self::CLAIM_OPEN`]).
    const CLAIM_CLOSE: &str = " FOR UPDATE SKIP LOCKED))";
    /// Keeps a worker from claiming an update that a change is about to coalesce into.
    const ROW_LOCK: &str = " FOR UPDATE";
    /// Makes changes keyed by $1 take turns until the transaction ends: nesting changes of one
    /// organization, so that two which each close half of a cycle cannot both pass the check,
    /// and a SAML source's logins that create its groups, so each is created once.
    const NESTING_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7643))";
    /// A login that changes nothing but its record, in one statement (no transaction to open
    /// and commit around three): the replay key, and only when it was fresh, the run and its
    /// audit event. Answers how many keys it wrote (0: a replay, nothing written).
    const QUIET_LOGIN: &str = concat!(
        "WITH seen AS (INSERT INTO saml_assertions (connection_id, assertion_id, organization_id, expires_at) ",
        "VALUES ($1, $2, $3, $4) ON CONFLICT (connection_id, assertion_id) DO NOTHING RETURNING 1), ",
        "run AS (INSERT INTO sync_runs (",
        sync_run_cols!(),
        ") SELECT $5, $3, $1, $6, $7, $8, $9, $10, $11, $12, $13 WHERE EXISTS (SELECT 1 FROM seen)), ",
        "event AS (INSERT INTO audit_events (",
        audit_cols!(),
        ") SELECT $14, $3, $15, $16, $17, $18, $19, $20, $21 WHERE EXISTS (SELECT 1 FROM seen) ",
        "AND EXISTS (SELECT 1 FROM organizations WHERE id = $3)) ",
        "SELECT COUNT(*) FROM seen"
    );
    /// Makes a claim's or an outcome's commit not wait for the disk: losing one in a database
    /// crash only means work is redone (idempotently) after its lease expires, never lost.
    const RELAXED_COMMIT: &str = "SET LOCAL synchronous_commit TO OFF";
    /// The rows `bench drain` queues: time-ordered ids, like the UUIDv7 ids real operations
    /// and users have (random ids would measure random B-tree inserts instead of the queue).
    const BULK_QUEUE_ROWS: &str = "SELECT (lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint), 12, '0') || '7' || lpad(to_hex(i), 19, '0'))::uuid, $1, $2, 'user', (lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint), 12, '0') || '8' || lpad(to_hex(i), 19, '0'))::uuid, 'update', '{}'::jsonb, 'pending', 0, $4, $4, $4 FROM generate_series(1, $3) AS i";

    /// Moves succeeded operations still leased by `owner` to the history in one statement
    /// (arrays keep the statement text constant, so it is prepared once).
    async fn move_to_history(
        conn: &mut sqlx::PgConnection,
        owner: uuid::Uuid,
        ids: &[OperationId],
        now: Timestamp,
    ) -> StoreResult<Vec<OperationId>> {
        let ids: Vec<uuid::Uuid> = ids.iter().map(|i| i.0).collect();
        Ok(sqlx::query_scalar(
            "WITH moved AS (DELETE FROM operation_queue WHERE lease_owner = $1 AND id = ANY($2) \
             RETURNING id, organization_id, connection_id, resource_type, resource_id, action, payload, attempts, created_at) \
             INSERT INTO operation_history (id, organization_id, connection_id, resource_type, resource_id, action, payload, \
             state, attempts, last_status, last_error, note, created_at, finished_at) \
             SELECT id, organization_id, connection_id, resource_type, resource_id, action, payload, 'succeeded', attempts, \
             NULL, NULL, NULL, created_at, $3 FROM moved RETURNING id",
        )
        .bind(owner)
        .bind(ids)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?)
    }

    /// Records attempts in one statement of arrays (a multi-row VALUES list would be a new
    /// statement to prepare for every batch size, and slow to prepare when large).
    async fn insert_attempts(
        conn: &mut sqlx::PgConnection,
        attempts: &[&Attempt],
    ) -> StoreResult<()> {
        let col = |f: fn(&Attempt) -> uuid::Uuid| attempts.iter().map(|a| f(a)).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO operation_attempts (operation_id, attempt_no, organization_id, connection_id, started_at, \
             duration_ms, http_status, error, request_excerpt, response_excerpt) \
             SELECT * FROM UNNEST($1::uuid[], $2::int4[], $3::uuid[], $4::uuid[], $5::timestamptz[], $6::int8[], \
             $7::int4[], $8::text[], $9::text[], $10::text[]) \
             ON CONFLICT (operation_id, attempt_no) DO NOTHING",
        )
        .bind(col(|a| a.operation_id.0))
        .bind(attempts.iter().map(|a| a.attempt_no).collect::<Vec<_>>())
        .bind(col(|a| a.organization_id.0))
        .bind(col(|a| a.connection_id.0))
        .bind(attempts.iter().map(|a| a.started_at.as_datetime()).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.duration_ms).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.http_status).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.error.clone()).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.request_excerpt.clone()).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.response_excerpt.clone()).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The links of these local ids at one connection: one primary-key probe per id.
    ///
    /// Written as a lateral probe rather than `local_id IN (...)` because the planner's choice
    /// for the IN list depends on statistics: while a new connection's links are unknown to
    /// them, it estimates one row for the connection and scans all of the connection's links,
    /// filtering by local id (seen in an onboarding wave: 3 ms per batch of 32, growing with
    /// the wave). `OFFSET 0` keeps the sub-select from being pulled up into a join the planner
    /// could turn back into that scan; inside it every key column is an equality, so the
    /// primary key serves it whatever the statistics say.
    async fn links_for(
        pool: &PgPool,
        org: OrganizationId,
        connection: ConnectionId,
        resource_type: ResourceType,
        local_ids: &[uuid::Uuid],
    ) -> StoreResult<Vec<TargetLink>> {
        Ok(sqlx::query_as(concat!(
            "SELECT l.* FROM UNNEST($4::uuid[]) AS k(id) CROSS JOIN LATERAL (SELECT ",
            link_cols!(),
            " FROM target_links WHERE connection_id = $2 AND resource_type = $3 AND local_id = k.id \
             AND organization_id = $1 OFFSET 0) l"
        ))
        .bind(org)
        .bind(connection)
        .bind(resource_type.as_str())
        .bind(local_ids)
        .fetch_all(pool)
        .await?)
    }

    /// The users of `org` among `ids` (the columns `cols`): one primary-key probe per id.
    ///
    /// As a plain `WHERE id IN (…)` the choice between probing the primary key and scanning
    /// depends on statistics: with `organization_id = $1` the planner scanned a new tenant's
    /// users through an index led by the organization, and with the organization hidden from
    /// indexes it chose a sequential scan of the whole table (seen with `auto_explain` while a
    /// 5,000-user tenant's groups were created: 6 and 11 ms to check 100 members). Inside the
    /// lateral sub-select the id is an equality on the primary key, and the organization is
    /// compared with `IS NOT DISTINCT FROM` (never NULL, so it means `=`) so that no index led
    /// by it competes; `OFFSET 0` keeps the sub-select a probe per id.
    async fn users_in_org<'e, T, E>(
        ex: E,
        org: OrganizationId,
        ids: &[UserId],
        cols: &'static str,
    ) -> StoreResult<Vec<T>>
    where
        E: sqlx::Executor<'e, Database = Postgres>,
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        let sql = format!(
            "SELECT u.* FROM UNNEST($2::uuid[]) AS k(id) CROSS JOIN LATERAL (SELECT {cols} FROM users \
             WHERE id = k.id AND organization_id IS NOT DISTINCT FROM $1 OFFSET 0) u"
        );
        let ids: Vec<uuid::Uuid> = ids.iter().map(|u| u.0).collect();
        // `cols` is a column list written in the source, never input.
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(org)
            .bind(ids)
            .fetch_all(ex)
            .await?)
    }

    const DIALECT: super::scim_query::Dialect = super::scim_query::Dialect::Postgres;

    async fn begin_write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::postgres::PgSslMode;

    /// The mode's name (`PgSslMode` has no `PartialEq`).
    fn mode(url: &str) -> String {
        format!("{:?}", connect_options(url).unwrap().get_ssl_mode())
    }

    fn name(m: PgSslMode) -> String {
        format!("{m:?}")
    }

    #[test]
    fn this_machine_is_reached_without_tls_unless_asked() {
        if std::env::var_os("PGSSLMODE").is_some() {
            return; // the environment decides; nothing here to check
        }
        for url in [
            "postgres://u@127.0.0.1:5432/db",
            "postgres://u@127.0.0.5/db",
            "postgres://u@localhost/db",
            "postgres://u@[::1]:5432/db",
            "postgres://u@127.0.0.1/db?application_name=x",
        ] {
            assert_eq!(mode(url), name(PgSslMode::Disable), "{url}");
        }
        assert_eq!(
            mode("postgres://u@db.example.com/db"),
            name(PgSslMode::Prefer)
        );
        assert_eq!(mode("postgres://u@10.0.0.7/db"), name(PgSslMode::Prefer));
        assert_eq!(
            mode("postgres://u@127.0.0.1/db?sslmode=require"),
            name(PgSslMode::Require)
        );
        assert_eq!(
            mode("postgres://u@localhost/db?x=1&SSLMODE=prefer"),
            name(PgSslMode::Prefer)
        );
        assert!(connect_options("postgres://u@host:notaport/db").is_err());
    }
}
