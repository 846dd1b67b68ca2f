//! The PostgreSQL store: production and scale-out (several processes share one database).

use super::QueueSignal;
use super::create_batch::{CreateBatches, Pending, answer_all};
use super::shared::KeyRing;
use super::{StoreError, StoreResult, redact_url};
use crate::crypto::MasterKey;
use crate::domain::{
    Attempt, ConnectionId, OperationId, OrganizationId, ResourceType, TargetLink, Timestamp, User,
    UserId,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, Postgres};
use sqlx::types::Json;
use sqlx::{ConnectOptions as _, Connection as _, Transaction};
use std::str::FromStr as _;
use std::time::Duration;

/// The store on PostgreSQL.
pub struct PgStore {
    pool: PgPool,
    keys: KeyRing,
    signal: QueueSignal,
    location: String,
    /// Inbound user creates, written together when they arrive at the same time.
    creates: CreateBatches,
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
    /// Connects to `url`, applies pending migrations, and uses `master` for data keys.
    pub async fn open(url: &str, master: MasterKey) -> StoreResult<Self> {
        Self::open_with(connect_options(url)?, redact_url(url), master).await
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
            signal: QueueSignal::default(),
            location,
            creates: CreateBatches::default(),
        })
    }

    /// The connection pool, for backend-specific work (queue claims, LISTEN/NOTIFY).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn listen_pool(&self) -> Option<sqlx::PgPool> {
        Some(self.pool.clone())
    }

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

    fn backend_name() -> &'static str {
        "postgres"
    }

    const DIALECT: super::scim_query::Dialect = super::scim_query::Dialect::Postgres;

    async fn begin_write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

/// Writes a batch of creates in one statement and answers each.
async fn write_batch(pool: PgPool, batch: Vec<Pending>) {
    let written = create_users_together(&pool, &batch).await;
    answer_all(batch, written);
}

/// Creates users, queues a create for every SCIM target of each active one's organization and
/// appends their audit events: the work of the transaction in `create_user` (users, then
/// operations, then audit), in one statement of data-modifying CTEs and so one round trip for
/// the whole batch (a transaction costs seven per user with BEGIN and COMMIT). From arrays, so
/// the text is the same for every batch size and prepared once. A user whose `userName` is
/// taken (by a row already there or by an earlier one of the same batch), or whose
/// organization or source connection is missing, is left out rather than failing the others.
/// Answers the ids written.
const CREATE_USERS_TOGETHER: &str = concat!(
    "WITH input AS (SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], ",
    "$6::text[], $7::text[], $8::text[], $9::jsonb[], $10::bool[], $11::text[], $12::uuid[], $13::jsonb[], ",
    "$14::timestamptz[], $15::uuid[], $16::timestamptz[], $17::text[], $18::text[], $19::jsonb[]) ",
    "AS i(id, organization_id, user_name, user_name_key, external_id, display_name, given_name, family_name, ",
    "emails, active, lifecycle_state, source_connection_id, attributes, at, audit_id, audit_at, actor_kind, ",
    "actor, details)), ",
    "new_user AS (",
    insert_users!(),
    "SELECT id, organization_id, user_name, user_name_key, external_id, display_name, given_name, family_name, ",
    "emails, active, lifecycle_state, source_connection_id, attributes, 1, at, at FROM input i",
    parents_exist!("i.organization_id", "i.source_connection_id"),
    " ON CONFLICT DO NOTHING RETURNING id, organization_id, active, created_at), ",
    "queued AS (",
    insert_operation!(),
    "SELECT scimdesk_uuid_v7(), u.organization_id, c.id, 'user', u.id, 'create', '{}'::jsonb, 'pending', 0, ",
    "u.created_at, u.created_at, u.created_at FROM new_user u JOIN connections c ",
    "ON c.organization_id = u.organization_id AND c.kind = 'scim_target' WHERE u.active ORDER BY u.id, c.id), ",
    "audited AS (INSERT INTO audit_events (id, organization_id, occurred_at, actor_kind, actor, action, ",
    "subject_type, subject_id, details) ",
    "SELECT i.audit_id, i.organization_id, i.audit_at, i.actor_kind, i.actor, 'user.create', 'user', ",
    "u.id::text, i.details FROM new_user u JOIN input i ON i.id = u.id) ",
    "SELECT id FROM new_user"
);

/// Writes `batch` with [`CREATE_USERS_TOGETHER`]; answers the ids of the users written.
async fn create_users_together(
    pool: &PgPool,
    batch: &[Pending],
) -> StoreResult<std::collections::HashSet<uuid::Uuid>> {
    let users = || batch.iter().map(|w| &w.item.user);
    let text = |f: fn(&User) -> &Option<String>| users().map(|u| f(u).clone()).collect::<Vec<_>>();
    let written: Vec<uuid::Uuid> = sqlx::query_scalar(CREATE_USERS_TOGETHER)
        .bind(users().map(|u| u.id.0).collect::<Vec<_>>())
        .bind(users().map(|u| u.organization_id.0).collect::<Vec<_>>())
        .bind(users().map(|u| u.user_name.clone()).collect::<Vec<_>>())
        .bind(
            users()
                .map(|u| crate::domain::validate::user_name_key(&u.user_name))
                .collect::<Vec<_>>(),
        )
        .bind(text(|u| &u.external_id))
        .bind(text(|u| &u.display_name))
        .bind(text(|u| &u.given_name))
        .bind(text(|u| &u.family_name))
        .bind(
            users()
                .map(|u| Json(u.emails.0.clone()))
                .collect::<Vec<_>>(),
        )
        .bind(users().map(|u| u.active).collect::<Vec<_>>())
        .bind(
            users()
                .map(|u| u.lifecycle_state.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            users()
                .map(|u| u.source_connection_id.map(|c| c.0))
                .collect::<Vec<_>>(),
        )
        .bind(users().map(|u| u.attributes.clone()).collect::<Vec<_>>())
        .bind(
            users()
                .map(|u| u.created_at.as_datetime())
                .collect::<Vec<_>>(),
        )
        .bind(batch.iter().map(|w| w.item.audit_id.0).collect::<Vec<_>>())
        .bind(
            batch
                .iter()
                .map(|w| w.item.audit_at.as_datetime())
                .collect::<Vec<_>>(),
        )
        .bind(batch.iter().map(|w| w.item.actor_kind).collect::<Vec<_>>())
        .bind(
            batch
                .iter()
                .map(|w| w.item.actor.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            batch
                .iter()
                .map(|w| Json(w.item.details.clone()))
                .collect::<Vec<_>>(),
        )
        .fetch_all(pool)
        .await?;
    Ok(written.into_iter().collect())
}

impl_store!(
    PgStore,
    sqlx::postgres::Postgres,
    "= ANY(ARRAY(",
    " FOR UPDATE SKIP LOCKED))",
    " FOR UPDATE",
    // Time-ordered ids, like the UUIDv7 ids real operations and users have (random ids would
    // measure random B-tree inserts instead of the queue).
    "SELECT (lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint), 12, '0') || '7' || lpad(to_hex(i), 19, '0'))::uuid, $1, $2, 'user', (lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint), 12, '0') || '8' || lpad(to_hex(i), 19, '0'))::uuid, 'update', '{}'::jsonb, 'pending', 0, $4, $4, $4 FROM generate_series(1, $3) AS i",
    "SET LOCAL synchronous_commit TO OFF"
);

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
