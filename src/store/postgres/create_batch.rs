//! Inbound user creates that arrive together, written in one statement of data-modifying CTEs
//! (see `store/create_batch.rs` for how they are gathered).

use super::PgStore;
use crate::domain::User;
use crate::store::StoreResult;
use crate::store::create_batch::{Pending, answer_all};
use sqlx::postgres::PgPool;
use sqlx::types::Json;

impl PgStore {
    /// Writes a batch of creates in one statement and answers each.
    pub(super) async fn write_batch(pool: PgPool, batch: Vec<Pending>) {
        let written = create_users_together(&pool, &batch).await;
        answer_all(batch, written);
    }
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
