//! Groups and memberships. Every change hands what it did to policy's fan-out
//! ([`fanout::apply`]) on its transaction: members' roles, role groups and mirrored groups at
//! targets, and the group's unmapped-group exception follow in the same commit.

use super::{Conn, Db, ThisStore, as_i64, audit, conflict, directory, fanout};
use crate::domain::{
    Actor, DirectoryChange, Group, GroupDraft, GroupId, InvalidInput, Json, OperationAction,
    OrganizationId, Timestamp, UserId, validate,
};
use crate::store::api::{Groups, ListRange, MemberRef, ScimQuery};
use crate::store::scim_query::ScimTable;
use crate::store::{StoreError, StoreResult};
use std::collections::HashSet;

/// Refuses a group that cannot be stored.
pub(super) fn check(draft: &GroupDraft) -> StoreResult<()> {
    if draft.display_name.trim().is_empty() {
        return Err(InvalidInput::new("displayName", "must not be empty").into());
    }
    validate::storable_text("displayName", &draft.display_name, true)?;
    if let Some(x) = &draft.external_id {
        validate::storable_text("externalId", x, true)?;
    }
    validate::storable_json("attributes", &draft.attributes)?;
    Ok(())
}

/// The group's members, on the caller's transaction.
pub(super) async fn members(
    conn: &mut Conn,
    org: OrganizationId,
    group: GroupId,
) -> StoreResult<Vec<UserId>> {
    Ok(sqlx::query_scalar(
        "SELECT user_id FROM memberships WHERE organization_id = $1 AND group_id = $2",
    )
    .bind(org)
    .bind(group)
    .fetch_all(&mut *conn)
    .await?)
}

/// Makes a group's members exactly `wanted`; returns (added, removed).
pub(super) async fn set_members(
    conn: &mut Conn,
    org: OrganizationId,
    group: GroupId,
    wanted: &[UserId],
) -> StoreResult<(Vec<UserId>, Vec<UserId>)> {
    let current = members(conn, org, group).await?;
    let wanted: HashSet<UserId> = wanted.iter().copied().collect();
    let have: HashSet<UserId> = current.iter().copied().collect();
    let now = Timestamp::now();
    // In chunks, a statement or two each, rather than a statement per member: a group of
    // thousands is set in one request.
    let removed: Vec<UserId> = have.difference(&wanted).copied().collect();
    for chunk in removed.chunks(500) {
        let mut q =
            sqlx::QueryBuilder::<Db>::new("DELETE FROM memberships WHERE organization_id = ");
        q.push_bind(org);
        q.push(" AND group_id = ");
        q.push_bind(group);
        q.push(" AND user_id");
        push_in_list!(q, chunk, |user| *user);
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    let added: Vec<UserId> = wanted.difference(&have).copied().collect();
    for chunk in added.chunks(500) {
        // Named, unlike a foreign key violation: which user does not exist.
        let found: HashSet<UserId> =
            ThisStore::users_in_org::<(UserId,), _>(&mut *conn, org, chunk, "id")
                .await?
                .into_iter()
                .map(|(id,)| id)
                .collect();
        if let Some(missing) = chunk.iter().find(|u| !found.contains(u)) {
            return Err(StoreError::NotFound(format!("user {missing}")));
        }
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO memberships (organization_id, group_id, user_id, created_at) ",
        );
        q.push_values(chunk, |mut row, user| {
            row.push_bind(org)
                .push_bind(group)
                .push_bind(*user)
                .push_bind(now);
        });
        q.build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(|e| match StoreError::from(e) {
                // "user …" so that the SCIM layer answers 400 (an unknown member), not 404.
                StoreError::NotFound(_) => {
                    StoreError::NotFound("user (a member deleted meanwhile)".into())
                }
                other => other,
            })?;
    }
    Ok((added, removed))
}

/// Bumps the group's version after a change of its members alone.
async fn touch(conn: &mut Conn, org: OrganizationId, group: GroupId) -> StoreResult<()> {
    sqlx::query(
        "UPDATE groups SET version = version + 1, updated_at = $3 WHERE organization_id = $1 AND id = $2",
    )
    .bind(org)
    .bind(group)
    .bind(Timestamp::now())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The group by id on the caller's transaction.
async fn read(conn: &mut Conn, org: OrganizationId, id: GroupId) -> StoreResult<Option<Group>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        group_cols!(),
        " FROM groups WHERE organization_id = $1 AND id = $2"
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?)
}

impl ThisStore {
    /// Writes a new group (with its members, when the draft gives them), queues what policy's
    /// fan-out says and audits it, on the caller's transaction.
    pub(super) async fn insert_group(
        &self,
        conn: &mut Conn,
        actor: &Actor,
        org: OrganizationId,
        draft: &GroupDraft,
    ) -> StoreResult<Group> {
        let id = GroupId::new();
        let group: Group = sqlx::query_as(concat!(
            "INSERT INTO groups (id, organization_id, display_name, external_id, source_connection_id, ",
            "attributes, version, created_at, updated_at) SELECT $1, $2, $3, $4, $5, $6, 1, $7, $7",
            parents_exist!("$5"),
            " RETURNING ",
            group_cols!()
        ))
        .bind(id)
        .bind(org)
        .bind(&draft.display_name)
        .bind(&draft.external_id)
        .bind(draft.source_connection_id)
        .bind(Json(&draft.attributes))
        .bind(Timestamp::now())
        .fetch_optional(&mut *conn)
        .await
        .map_err(conflict(format!("group {:?}", draft.display_name)))?
        .ok_or_else(|| {
            StoreError::NotFound(format!("organization {org} or its source connection"))
        })?;
        let added = match &draft.members {
            Some(m) => set_members(&mut *conn, org, id, m).await?.0,
            None => Vec::new(),
        };
        let change = DirectoryChange::GroupChanged {
            group: &group,
            before: None,
            action: OperationAction::Create,
            payload: serde_json::json!({}),
            users: &added,
        };
        fanout::apply(self, &mut *conn, org, &change).await?;
        audit::append(
            &mut *conn,
            actor,
            org,
            "group.create",
            "group",
            &id.to_string(),
            serde_json::json!({ "display_name": draft.display_name, "members": added.len() }),
        )
        .await?;
        Ok(group)
    }

    /// Replaces a group's content (and members, when the draft gives them), on the caller's
    /// transaction; with `if_version`, only if the stored version matches.
    pub(super) async fn update_group(
        &self,
        conn: &mut Conn,
        actor: &Actor,
        org: OrganizationId,
        id: GroupId,
        draft: &GroupDraft,
        if_version: Option<i64>,
    ) -> StoreResult<Group> {
        let before = read(&mut *conn, org, id).await?;
        let updated: Option<Group> = sqlx::query_as(concat!(
            "UPDATE groups SET display_name = $3, external_id = $4, source_connection_id = $5, attributes = $6, ",
            "version = version + 1, updated_at = $7 ",
            "WHERE organization_id = $1 AND id = $2 AND ($8 IS NULL OR version = $8) RETURNING ",
            group_cols!()
        ))
        .bind(org)
        .bind(id)
        .bind(&draft.display_name)
        .bind(&draft.external_id)
        .bind(draft.source_connection_id)
        .bind(Json(&draft.attributes))
        .bind(Timestamp::now())
        .bind(if_version)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(group) = updated else {
            return Err(directory::version_miss(
                &mut *conn,
                "SELECT version FROM groups WHERE organization_id = $1 AND id = $2",
                org,
                id.0,
                "group",
                if_version,
            )
            .await);
        };
        let (added, removed) = match &draft.members {
            Some(m) => set_members(&mut *conn, org, id, m).await?,
            None => (Vec::new(), Vec::new()),
        };
        // A change of what mappings select groups by can change which mappings cover the
        // group, and so every member's roles; otherwise only the changed members'.
        let reselected = before.as_ref().filter(|b| group.selectors_differ(b));
        let users: Vec<UserId> = if reselected.is_some() {
            let mut all = members(&mut *conn, org, id).await?;
            all.extend(removed.iter().copied());
            all
        } else {
            added.iter().chain(removed.iter()).copied().collect()
        };
        let change = DirectoryChange::GroupChanged {
            group: &group,
            before: reselected,
            action: OperationAction::Update,
            payload: serde_json::json!({}),
            users: &users,
        };
        fanout::apply(self, &mut *conn, org, &change).await?;
        audit::append(
            &mut *conn,
            actor,
            org,
            "group.replace",
            "group",
            &id.to_string(),
            serde_json::json!({
                "display_name": group.display_name, "version": group.version,
                "members_added": added.len(), "members_removed": removed.len(),
            }),
        )
        .await?;
        Ok(group)
    }

    /// Deletes a group, with what its members' leaving causes, on the caller's transaction.
    /// Returns whether it existed.
    pub(super) async fn remove_group(
        &self,
        conn: &mut Conn,
        actor: &Actor,
        org: OrganizationId,
        id: GroupId,
    ) -> StoreResult<bool> {
        let members = members(&mut *conn, org, id).await?;
        let gone: Option<Group> = sqlx::query_as(concat!(
            "DELETE FROM groups WHERE organization_id = $1 AND id = $2 RETURNING ",
            group_cols!()
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(gone) = gone else {
            return Ok(false);
        };
        let change = DirectoryChange::GroupChanged {
            group: &gone,
            before: None,
            action: OperationAction::Delete,
            payload: serde_json::json!({}),
            users: &members,
        };
        fanout::apply(self, &mut *conn, org, &change).await?;
        audit::append(
            &mut *conn,
            actor,
            org,
            "group.delete",
            "group",
            &id.to_string(),
            serde_json::json!({ "display_name": gone.display_name }),
        )
        .await?;
        Ok(true)
    }
    /// What one member's joining or leaving `group` causes (`action`: add or remove members):
    /// the group's version moves, the fan-out is queued, and the change is audited.
    async fn member_changed(
        &self,
        conn: &mut Conn,
        actor: &Actor,
        org: OrganizationId,
        group_id: GroupId,
        user: UserId,
        action: OperationAction,
    ) -> StoreResult<()> {
        touch(conn, org, group_id).await?;
        if let Some(group) = read(conn, org, group_id).await? {
            let change = DirectoryChange::GroupChanged {
                group: &group,
                before: None,
                action,
                payload: serde_json::json!({ "members": [user] }),
                users: &[user],
            };
            fanout::apply(self, conn, org, &change).await?;
        }
        let audited = match action {
            OperationAction::RemoveMembers => "group.member_remove",
            _ => "group.member_add",
        };
        audit::append(
            conn,
            actor,
            org,
            audited,
            "group",
            &group_id.to_string(),
            serde_json::json!({ "user_id": user }),
        )
        .await
        .map(|_| ())
    }
}

#[async_trait::async_trait]
impl Groups for ThisStore {
    async fn create_group(
        &self,
        actor: &Actor,
        org: OrganizationId,
        draft: &GroupDraft,
    ) -> StoreResult<Group> {
        check(draft)?;
        let mut tx = self.begin_write().await?;
        let group = self.insert_group(&mut tx, actor, org, draft).await?;
        tx.commit().await?;
        self.signal.bump(org);
        Ok(group)
    }

    async fn group(&self, org: OrganizationId, id: GroupId) -> StoreResult<Option<Group>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            group_cols!(),
            " FROM groups WHERE organization_id = $1 AND id = $2"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_groups(&self, org: OrganizationId, range: ListRange) -> StoreResult<Vec<Group>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            group_cols!(),
            " FROM groups WHERE organization_id = $1 ORDER BY id LIMIT $2 OFFSET $3"
        ))
        .bind(org)
        .bind(i64::from(range.limit))
        .bind(as_i64(range.offset))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn scim_list_groups(
        &self,
        org: OrganizationId,
        query: &ScimQuery,
    ) -> StoreResult<(Vec<Group>, u64)> {
        directory::scim_list(self, org, ScimTable::Groups, group_cols!(), query).await
    }

    async fn replace_group(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: GroupId,
        draft: &GroupDraft,
        if_version: Option<i64>,
    ) -> StoreResult<Group> {
        check(draft)?;
        let mut tx = self.begin_write().await?;
        let group = self
            .update_group(&mut tx, actor, org, id, draft, if_version)
            .await?;
        tx.commit().await?;
        self.signal.bump(org);
        Ok(group)
    }

    async fn delete_group(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: GroupId,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        if !self.remove_group(&mut tx, actor, org, id).await? {
            return Ok(false);
        }
        tx.commit().await?;
        self.signal.bump(org);
        Ok(true)
    }

    async fn add_member(
        &self,
        actor: &Actor,
        org: OrganizationId,
        group: GroupId,
        user: UserId,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let added = sqlx::query(
            "INSERT INTO memberships (organization_id, group_id, user_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(group)
        .bind(user)
        .bind(Timestamp::now())
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::NotFound(_) => {
                StoreError::NotFound(format!("group {group} or user {user}"))
            }
            other => other,
        })?
        .rows_affected()
            > 0;
        if added {
            self.member_changed(
                &mut tx,
                actor,
                org,
                group,
                user,
                OperationAction::AddMembers,
            )
            .await?;
        }
        tx.commit().await?;
        self.signal.bump(org);
        Ok(added)
    }

    async fn remove_member(
        &self,
        actor: &Actor,
        org: OrganizationId,
        group: GroupId,
        user: UserId,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let removed = sqlx::query(
            "DELETE FROM memberships WHERE organization_id = $1 AND group_id = $2 AND user_id = $3",
        )
        .bind(org)
        .bind(group)
        .bind(user)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if removed {
            self.member_changed(
                &mut tx,
                actor,
                org,
                group,
                user,
                OperationAction::RemoveMembers,
            )
            .await?;
        }
        tx.commit().await?;
        self.signal.bump(org);
        Ok(removed)
    }

    async fn group_members(&self, org: OrganizationId, group: GroupId) -> StoreResult<Vec<UserId>> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM memberships WHERE organization_id = $1 AND group_id = $2 ORDER BY user_id",
        )
        .bind(org)
        .bind(group)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn user_groups(&self, org: OrganizationId, user: UserId) -> StoreResult<Vec<Group>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            group_cols!(),
            " FROM groups WHERE organization_id = $1 AND id IN ",
            "(SELECT group_id FROM memberships WHERE organization_id = $1 AND user_id = $2) ORDER BY display_name"
        ))
        .bind(org)
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn group_member_refs(
        &self,
        org: OrganizationId,
        group: GroupId,
    ) -> StoreResult<Vec<MemberRef>> {
        // Users are joined by id alone: the membership's foreign key already makes them the
        // organization's, and an organization condition on `users` would let the planner scan
        // the whole organization per member while its statistics are stale (see migration
        // 0006).
        Ok(sqlx::query_as(concat!(
            "SELECT u.id AS user_id, u.user_name, u.display_name FROM memberships m ",
            "JOIN users u ON u.id = m.user_id ",
            "WHERE m.organization_id = $1 AND m.group_id = $2 ORDER BY u.id"
        ))
        .bind(org)
        .bind(group)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn organization_memberships(
        &self,
        org: OrganizationId,
    ) -> StoreResult<Vec<(GroupId, UserId)>> {
        Ok(
            sqlx::query_as("SELECT group_id, user_id FROM memberships WHERE organization_id = $1")
                .bind(org)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn memberships_of_groups(
        &self,
        org: OrganizationId,
        groups: &[GroupId],
    ) -> StoreResult<Vec<(GroupId, UserId)>> {
        let mut rows = Vec::new();
        for chunk in groups.chunks(500) {
            let mut q = sqlx::QueryBuilder::<Db>::new(
                "SELECT group_id, user_id FROM memberships WHERE organization_id = ",
            );
            q.push_bind(org);
            q.push(" AND group_id");
            push_in_list!(q, chunk, |id| *id);
            rows.extend(
                q.build_query_as::<(GroupId, UserId)>()
                    .fetch_all(&self.pool)
                    .await?,
            );
        }
        Ok(rows)
    }
}
