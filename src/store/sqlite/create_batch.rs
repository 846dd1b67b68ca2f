//! Inbound user creates that arrive together, written in one transaction of multi-row inserts
//! (see `store/create_batch.rs` for how they are gathered).

use super::SqliteStore;
use crate::domain::{ConnectionId, OperationAction, OperationId, OrganizationId, ResourceType};
use crate::store::StoreResult;
use crate::store::create_batch::{NewUser, Pending, answer_all};
use sqlx::QueryBuilder;
use sqlx::sqlite::{Sqlite, SqlitePool};
use sqlx::types::Json;

impl SqliteStore {
    /// Writes a batch of creates in one transaction and answers each.
    pub(super) async fn write_batch(pool: SqlitePool, batch: Vec<Pending>) {
        let written = create_users_together(&pool, &batch).await;
        answer_all(batch, written);
    }
}

/// Creates users, queues a create for every SCIM target of each active one's organization and
/// appends their audit events: the work of the transaction in `create_user`, for the whole
/// batch in one transaction of four statements (plus one per organization to read its
/// targets). A user whose `userName` is taken (by a row already there or by an earlier one of
/// the same batch), or whose organization or source connection is missing, is left out rather
/// than failing the others. Answers the ids written.
pub(super) async fn create_users_together(
    pool: &SqlitePool,
    batch: &[Pending],
) -> StoreResult<std::collections::HashSet<uuid::Uuid>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut q = QueryBuilder::<Sqlite>::new(concat!(insert_users!(), "SELECT * FROM ("));
    q.push_values(batch, |mut row, w| {
        let u = &w.item.user;
        row.push_bind(u.id)
            .push_bind(u.organization_id)
            .push_bind(&u.user_name)
            .push_bind(crate::domain::validate::user_name_key(&u.user_name))
            .push_bind(&u.external_id)
            .push_bind(&u.display_name)
            .push_bind(&u.given_name)
            .push_bind(&u.family_name)
            .push_bind(&u.emails)
            .push_bind(u.active)
            .push_bind(u.lifecycle_state.as_str())
            .push_bind(u.source_connection_id)
            .push_bind(&u.attributes)
            .push_bind(1_i64)
            .push_bind(u.created_at)
            .push_bind(u.created_at);
    });
    // A VALUES list's columns are column1, column2, ... (2: organization, 12: source).
    q.push(concat!(
        ") AS v",
        parents_exist!("v.column2", "v.column12"),
        " ON CONFLICT DO NOTHING RETURNING id"
    ));
    let written: std::collections::HashSet<uuid::Uuid> = q
        .build_query_scalar::<uuid::Uuid>()
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
    let made: Vec<&NewUser> = batch
        .iter()
        .map(|w| &w.item)
        .filter(|n| written.contains(&n.user.id.0))
        .collect();
    if made.is_empty() {
        return Ok(written);
    }
    let mut queued: Vec<(&NewUser, ConnectionId)> = Vec::new();
    let orgs: std::collections::BTreeSet<OrganizationId> = made
        .iter()
        .filter(|n| n.user.active)
        .map(|n| n.user.organization_id)
        .collect();
    for org in orgs {
        let targets: Vec<ConnectionId> = sqlx::query_scalar(
            "SELECT id FROM connections WHERE organization_id = $1 AND kind = 'scim_target' ORDER BY id",
        )
        .bind(org)
        .fetch_all(&mut *tx)
        .await?;
        for n in made
            .iter()
            .filter(|n| n.user.active && n.user.organization_id == org)
        {
            queued.extend(targets.iter().map(|t| (*n, *t)));
        }
    }
    for chunk in queued.chunks(500) {
        let mut q = QueryBuilder::<Sqlite>::new(insert_operation!());
        q.push_values(chunk, |mut row, (n, target)| {
            row.push_bind(OperationId::new())
                .push_bind(n.user.organization_id)
                .push_bind(*target)
                .push_bind(ResourceType::User.as_str())
                .push_bind(n.user.id.0)
                .push_bind(OperationAction::Create.as_str())
                .push_bind(Json(serde_json::json!({})))
                .push("'pending'")
                .push("0")
                .push_bind(n.user.created_at)
                .push_bind(n.user.created_at)
                .push_bind(n.user.created_at);
        });
        q.build().execute(&mut *tx).await?;
    }
    let mut q =
        QueryBuilder::<Sqlite>::new(concat!("INSERT INTO audit_events (", audit_cols!(), ") "));
    q.push_values(&made, |mut row, n| {
        row.push_bind(n.audit_id)
            .push_bind(n.user.organization_id)
            .push_bind(n.audit_at)
            .push_bind(n.actor_kind)
            .push_bind(&n.actor)
            .push_bind("user.create")
            .push_bind("user")
            .push_bind(n.user.id.to_string())
            .push_bind(Json(&n.details));
    });
    q.build().execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(written)
}
