//! Users. Every change queues, in its transaction, what it causes at the organization's
//! targets: the user's own operation at each of them, and (for one leaving) what policy's
//! fan-out says about the groups they were in.

use super::{Conn, Db, ThisStore, as_i64, audit, conflict, directory, fanout, queue};
use crate::domain::{
    Actor, AuditEventId, ConnectionId, InvalidInput, Json, OperationAction, OperationId,
    OrganizationId, ResourceType, Timestamp, User, UserDraft, UserId, validate,
};
use crate::store::api::{ListRange, ScimQuery, Users};
use crate::store::scim_query::ScimTable;
use crate::store::{StoreError, StoreResult};

/// Refuses a user that cannot be stored: an empty or unprintable userName, text the database
/// cannot hold.
pub(super) fn check(draft: &UserDraft) -> StoreResult<()> {
    if draft.user_name.trim().is_empty() {
        return Err(InvalidInput::new("userName", "must not be empty").into());
    }
    if draft.user_name.chars().any(char::is_control) {
        return Err(InvalidInput::new("userName", "must not contain control characters").into());
    }
    validate::storable_text("userName", &draft.user_name, true)?;
    for (field, value) in [
        ("externalId", &draft.external_id),
        ("displayName", &draft.display_name),
        ("name.givenName", &draft.given_name),
        ("name.familyName", &draft.family_name),
    ] {
        if let Some(v) = value {
            validate::storable_text(field, v, true)?;
        }
    }
    for e in &draft.emails {
        validate::storable_text("emails", &e.value, false)?;
    }
    validate::storable_json("attributes", &draft.attributes)?;
    Ok(())
}

/// Writes a new user with its operation at every target and its audit event, on the
/// caller's transaction (a create alone, or one of a source sync's batch).
pub(super) async fn insert(
    conn: &mut Conn,
    actor: &Actor,
    user: &User,
    details: serde_json::Value,
) -> StoreResult<()> {
    // Written only when the organization and the source connection exist.
    let inserted = sqlx::query(concat!(
        insert_users!(),
        "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, $14, $14",
        parents_exist!("$12")
    ))
    .bind(user.id)
    .bind(user.organization_id)
    .bind(&user.user_name)
    .bind(validate::user_name_key(&user.user_name))
    .bind(&user.external_id)
    .bind(&user.display_name)
    .bind(&user.given_name)
    .bind(&user.family_name)
    .bind(&user.emails)
    .bind(user.active)
    .bind(user.lifecycle_state.as_str())
    .bind(user.source_connection_id)
    .bind(&user.attributes)
    .bind(user.created_at)
    .execute(&mut *conn)
    .await
    .map_err(conflict(format!(
        "a user with userName {:?}",
        user.user_name
    )))?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!(
            "organization {} or its source connection",
            user.organization_id
        )));
    }
    if user.active {
        queue::enqueue_user_for_targets(
            &mut *conn,
            user.organization_id,
            user.id,
            OperationAction::Create,
        )
        .await?;
    }
    audit::append(
        &mut *conn,
        actor,
        user.organization_id,
        "user.create",
        "user",
        &user.id.to_string(),
        details,
    )
    .await?;
    Ok(())
}

/// Rows written per statement by [`insert_many`] (16 values a user: within both backends'
/// limits on bound values).
const MANY: usize = 1000;

/// Inserts user rows of one organization as they are (versions and times included), many to
/// a statement: for a sync's batch and for the bench's bulk load alike.
pub(super) async fn insert_rows(
    conn: &mut Conn,
    org: OrganizationId,
    users: &[User],
) -> Result<(), sqlx::Error> {
    for chunk in users.chunks(MANY) {
        let mut q = sqlx::QueryBuilder::<Db>::new(insert_users!());
        q.push_values(chunk, |mut b, u| {
            b.push_bind(u.id)
                .push_bind(org)
                .push_bind(&u.user_name)
                .push_bind(validate::user_name_key(&u.user_name))
                .push_bind(&u.external_id)
                .push_bind(&u.display_name)
                .push_bind(&u.given_name)
                .push_bind(&u.family_name)
                .push_bind(&u.emails)
                .push_bind(u.active)
                .push_bind(u.lifecycle_state.as_str())
                .push_bind(u.source_connection_id)
                .push_bind(&u.attributes)
                .push_bind(u.version)
                .push_bind(u.created_at)
                .push_bind(u.updated_at);
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Writes many new users of one organization (a source sync's batch), with their operations
/// at every target and their audit events, on the caller's transaction: what [`insert`] does
/// for each, in a few multi-row statements instead of five round trips a user. `details`
/// gives each user's audit details.
pub(super) async fn insert_many(
    conn: &mut Conn,
    actor: &Actor,
    org: OrganizationId,
    source: Option<ConnectionId>,
    users: &[User],
    details: impl Fn(&User) -> serde_json::Value,
) -> StoreResult<()> {
    if users.is_empty() {
        return Ok(());
    }
    let parents: i64 = sqlx::query_scalar(concat!(
        "SELECT COUNT(*) FROM organizations",
        parents_exist!("$1", "$2")
    ))
    .bind(org)
    .bind(source)
    .fetch_one(&mut *conn)
    .await?;
    if parents == 0 {
        return Err(StoreError::NotFound(format!(
            "organization {org} or its source connection"
        )));
    }
    insert_rows(&mut *conn, org, users)
        .await
        .map_err(conflict(format!(
            "a user of this batch (from {:?})",
            users
                .first()
                .map(|u| u.user_name.as_str())
                .unwrap_or_default()
        )))?;
    let targets = super::connections::target_ids(conn, org).await?;
    let now = Timestamp::now();
    let ops: Vec<(ConnectionId, UserId)> = users
        .iter()
        .filter(|u| u.active)
        .flat_map(|u| targets.iter().map(move |t| (*t, u.id)))
        .collect();
    for chunk in ops.chunks(MANY) {
        let mut q = sqlx::QueryBuilder::<Db>::new(insert_operation!());
        q.push_values(chunk, |mut b, (target, user)| {
            b.push_bind(OperationId::new())
                .push_bind(org)
                .push_bind(*target)
                .push_bind(ResourceType::User.as_str())
                .push_bind(user.0)
                .push_bind(OperationAction::Create.as_str())
                .push_bind(Json(serde_json::json!({})))
                .push_bind("pending")
                .push_bind(0i32)
                .push_bind(now)
                .push_bind(now)
                .push_bind(now);
        });
        q.build().execute(&mut *conn).await?;
    }
    for chunk in users.chunks(MANY) {
        let mut q = sqlx::QueryBuilder::<Db>::new(concat!(
            "INSERT INTO audit_events (",
            audit_cols!(),
            ") "
        ));
        q.push_values(chunk, |mut b, u| {
            b.push_bind(AuditEventId::new())
                .push_bind(org)
                .push_bind(now)
                .push_bind(actor.kind.as_str())
                .push_bind(&actor.name)
                .push_bind("user.create")
                .push_bind("user")
                .push_bind(u.id.to_string())
                .push_bind(Json(details(u)));
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Replaces a user's content (with `if_version`, only if the stored version matches), queues
/// the update or suspension at every target and audits it, on the caller's transaction.
pub(super) async fn update(
    conn: &mut Conn,
    actor: &Actor,
    org: OrganizationId,
    id: UserId,
    draft: &UserDraft,
    if_version: Option<i64>,
) -> StoreResult<User> {
    let updated: Option<User> = sqlx::query_as(concat!(
            "UPDATE users SET user_name = $3, user_name_key = $4, external_id = $5, display_name = $6, ",
            "given_name = $7, family_name = $8, emails = $9, active = $10, lifecycle_state = $11, ",
            "source_connection_id = $12, attributes = $13, version = version + 1, updated_at = $14 ",
            "WHERE organization_id = $1 AND id = $2 AND ($15 IS NULL OR version = $15) RETURNING ",
            user_cols!()
        ))
        .bind(org)
        .bind(id)
        .bind(&draft.user_name)
        .bind(validate::user_name_key(&draft.user_name))
        .bind(&draft.external_id)
        .bind(&draft.display_name)
        .bind(&draft.given_name)
        .bind(&draft.family_name)
        .bind(Json(&draft.emails))
        .bind(draft.active)
        .bind(draft.lifecycle_state().as_str())
        .bind(draft.source_connection_id)
        .bind(Json(&draft.attributes))
        .bind(Timestamp::now())
        .bind(if_version)
        .fetch_optional(&mut *conn)
        .await
        .map_err(conflict(format!(
            "a user with userName {:?}",
            draft.user_name
        )))?;
    let Some(user) = updated else {
        return Err(directory::version_miss(
            &mut *conn,
            "SELECT version FROM users WHERE organization_id = $1 AND id = $2",
            org,
            id.0,
            "user",
            if_version,
        )
        .await);
    };
    // Active users are brought up to date (created where missing); inactive ones are
    // suspended. Each target's worker narrows this by its scope.
    let action = if user.active {
        OperationAction::Update
    } else {
        OperationAction::Suspend
    };
    queue::enqueue_user_for_targets(&mut *conn, org, id, action).await?;
    audit::append(
            &mut *conn,
            actor,
            org,
            "user.replace",
            "user",
            &id.to_string(),
            serde_json::json!({ "user_name": user.user_name, "active": user.active, "version": user.version }),
        )
        .await?;
    Ok(user)
}

#[async_trait::async_trait]
impl Users for ThisStore {
    async fn create_user(
        &self,
        actor: &Actor,
        org: OrganizationId,
        draft: &UserDraft,
    ) -> StoreResult<User> {
        check(draft)?;
        let id = UserId::new();
        let now = Timestamp::now();
        // Built here rather than read back with RETURNING (one less row to decode on the
        // busiest write); the values are exactly the ones bound.
        let user = User::from_draft(id, org, draft, now);
        let details = serde_json::json!({ "user_name": draft.user_name, "active": draft.active });
        // Written together with the creates that arrive meanwhile, by the backend's
        // `write_batch` (store/create_batch.rs); one the batch could not write is created
        // here alone, for its own answer or error.
        if self
            .creates
            .create(
                &self.pool,
                ThisStore::write_batch,
                actor,
                &user,
                details.clone(),
            )
            .await
        {
            self.signal.bump(org);
            return Ok(user);
        }
        let mut tx = self.begin_write().await?;
        insert(&mut tx, actor, &user, details).await?;
        tx.commit().await?;
        self.signal.bump(org);
        Ok(user)
    }

    async fn user(&self, org: OrganizationId, id: UserId) -> StoreResult<Option<User>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE organization_id = $1 AND id = $2"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn user_by_user_name(
        &self,
        org: OrganizationId,
        user_name: &str,
    ) -> StoreResult<Option<User>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE organization_id = $1 AND user_name_key = $2"
        ))
        .bind(org)
        .bind(validate::user_name_key(user_name))
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_users(&self, org: OrganizationId, range: ListRange) -> StoreResult<Vec<User>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE organization_id = $1 ORDER BY id LIMIT $2 OFFSET $3"
        ))
        .bind(org)
        .bind(i64::from(range.limit))
        .bind(as_i64(range.offset))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn count_users(&self, org: OrganizationId) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE organization_id = $1")
            .bind(org)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn users_by_ids(&self, org: OrganizationId, ids: &[UserId]) -> StoreResult<Vec<User>> {
        let mut users = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            users.extend(
                ThisStore::users_in_org::<User, _>(&self.pool, org, chunk, user_cols!()).await?,
            );
        }
        Ok(users)
    }

    async fn users_after(
        &self,
        org: OrganizationId,
        after: Option<UserId>,
        limit: u32,
    ) -> StoreResult<Vec<User>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE organization_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        ))
        .bind(org)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn scim_list_users(
        &self,
        org: OrganizationId,
        query: &ScimQuery,
    ) -> StoreResult<(Vec<User>, u64)> {
        directory::scim_list(self, org, ScimTable::Users, user_cols!(), query).await
    }

    async fn replace_user(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: UserId,
        draft: &UserDraft,
        if_version: Option<i64>,
    ) -> StoreResult<User> {
        check(draft)?;
        let mut tx = self.begin_write().await?;
        let user = update(&mut tx, actor, org, id, draft, if_version).await?;
        tx.commit().await?;
        self.signal.bump(org);
        Ok(user)
    }

    async fn deprovision_user(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: UserId,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let name: Option<String> = sqlx::query_scalar(concat!(
            "UPDATE users SET lifecycle_state = 'deprovisioned', active = $3, version = version + 1, updated_at = $4 ",
            "WHERE organization_id = $1 AND id = $2 AND lifecycle_state <> 'deprovisioned' RETURNING user_name"
        ))
        .bind(org)
        .bind(id)
        .bind(false)
        .bind(Timestamp::now())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(name) = name else { return Ok(false) };
        fanout::user_leaving(self, &mut tx, org, id.0).await?;
        let groups =
            sqlx::query("DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2")
                .bind(org)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        queue::enqueue_user_for_targets(&mut tx, org, id, OperationAction::Delete).await?;
        audit::append(
            &mut tx,
            actor,
            org,
            "user.deprovision",
            "user",
            &id.to_string(),
            serde_json::json!({ "user_name": name, "memberships_removed": groups }),
        )
        .await?;
        tx.commit().await?;
        self.signal.bump(org);
        Ok(true)
    }

    async fn delete_user(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: UserId,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        fanout::user_leaving(self, &mut tx, org, id.0).await?;
        let name: Option<String> = sqlx::query_scalar(
            "DELETE FROM users WHERE organization_id = $1 AND id = $2 RETURNING user_name",
        )
        .bind(org)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(name) = name else { return Ok(false) };
        queue::enqueue_user_for_targets(&mut tx, org, id, OperationAction::Delete).await?;
        audit::append(
            &mut tx,
            actor,
            org,
            "user.delete",
            "user",
            &id.to_string(),
            serde_json::json!({ "user_name": name }),
        )
        .await?;
        tx.commit().await?;
        self.signal.bump(org);
        Ok(true)
    }
}
