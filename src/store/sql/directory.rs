//! What users and groups share: SCIM list queries run in SQL, and telling "gone" from
//! "changed" when a guarded update matched nothing.

use super::{Conn, Db, ThisStore, as_i64};
use crate::domain::OrganizationId;
use crate::store::api::ScimQuery;
use crate::store::scim_query::{ScimTable, Translator};
use crate::store::{StoreError, StoreResult};
use uuid::Uuid;

/// Runs a SCIM list query on `users` or `groups` (the columns `cols`); returns the page and
/// how many match in all.
pub(super) async fn scim_list<T>(
    store: &ThisStore,
    org: OrganizationId,
    table: ScimTable,
    cols: &str,
    query: &ScimQuery,
) -> StoreResult<(Vec<T>, u64)>
where
    T: for<'r> sqlx::FromRow<'r, <Db as sqlx::Database>::Row> + Send + Unpin,
{
    let (name, visible) = match table {
        ScimTable::Users => ("users", " AND lifecycle_state <> 'deprovisioned'"),
        ScimTable::Groups => ("groups", ""),
    };
    let mut tr = Translator::new(ThisStore::DIALECT, table, 2);
    let filter = match &query.filter {
        Some(f) => format!(" AND {}", tr.filter(f).map_err(StoreError::Scim)?),
        None => String::new(),
    };
    let order = match &query.sort_by {
        Some(p) => {
            let e = tr.sort_expr(p).map_err(StoreError::Scim)?;
            let dir = if query.descending { "DESC" } else { "ASC" };
            // Resources without the attribute sort last ascending, first descending.
            format!("({e} IS NULL) {dir}, {e} {dir}, id")
        }
        None => "id".to_string(),
    };
    let binds = tr.binds.clone();
    let n = binds.len();
    // The total rides along with the page (one round trip); only a page past the end, which
    // has no rows to carry it, needs a separate count.
    let rows_sql = format!(
        "SELECT {cols}, COUNT(*) OVER () AS scim_total FROM {name} WHERE organization_id = $1{visible}{filter} ORDER BY {order} LIMIT ${} OFFSET ${}",
        n + 2,
        n + 3
    );
    let raw = bind_all!(sqlx::query(sqlx::AssertSqlSafe(rows_sql)).bind(org), &binds)
        .bind(i64::from(query.limit.max(1)))
        .bind(as_i64(query.offset))
        .fetch_all(&store.pool)
        .await?;
    let total: i64 = match raw.first() {
        Some(row) => sqlx::Row::try_get(row, "scim_total")?,
        None if query.offset == 0 => 0,
        None => {
            let count_sql =
                format!("SELECT COUNT(*) FROM {name} WHERE organization_id = $1{visible}{filter}");
            bind_all!(
                sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql)).bind(org),
                &binds
            )
            .fetch_one(&store.pool)
            .await?
        }
    };
    let mut rows = raw
        .iter()
        .map(|r| T::from_row(r))
        .collect::<Result<Vec<T>, _>>()?;
    // `count=0` asks for the total only.
    rows.truncate(query.limit as usize);
    Ok((rows, u64::try_from(total).unwrap_or(0)))
}

/// Distinguishes "gone" from "changed" after a guarded UPDATE matched nothing (`sql` reads the
/// current version).
pub(super) async fn version_miss(
    conn: &mut Conn,
    sql: &'static str,
    org: OrganizationId,
    id: Uuid,
    what: &str,
    expected: Option<i64>,
) -> StoreError {
    let current: Result<Option<i64>, _> = sqlx::query_scalar(sql)
        .bind(org)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await;
    match (current, expected) {
        (Ok(Some(current)), Some(expected)) => StoreError::VersionMismatch { expected, current },
        (Err(e), _) => e.into(),
        _ => StoreError::NotFound(format!("{what} {id}")),
    }
}
