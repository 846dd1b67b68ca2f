//! Groups and memberships. Every change hands what it did to policy's fan-out
//! ([`fanout::apply`]) on its transaction: members' roles, role groups and mirrored groups at
//! targets, and the group's unmapped-group exception follow in the same commit.

use super::{Conn, Db, ThisStore, as_i64, audit, conflict, directory, fanout, memberships};
use crate::domain::{
    Actor, DirectoryChange, Group, GroupDraft, GroupId, InvalidInput, Json, OperationAction,
    OrganizationId, Timestamp, UserId, validate,
};
use crate::store::api::{ChildGroupRef, Groups, ListRange, MemberRef, ScimQuery, UserGroup};
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

/// Applies a draft's member lists (users named directly, groups inside) to the group and
/// reflattens it; returns its effective members (added, removed).
async fn apply_members(
    conn: &mut Conn,
    org: OrganizationId,
    id: GroupId,
    draft: &GroupDraft,
) -> StoreResult<(Vec<UserId>, Vec<UserId>)> {
    if draft.members.is_none() && draft.child_groups.is_none() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut rows = memberships::rows(conn, org, id).await?;
    let before: HashSet<UserId> = rows.keys().copied().collect();
    if let Some(users) = &draft.members {
        memberships::set_direct(conn, org, id, &mut rows, users).await?;
    }
    if let Some(children) = &draft.child_groups {
        memberships::set_children(conn, org, id, children).await?;
    }
    memberships::reflatten(conn, org, id, &mut rows).await?;
    Ok(memberships::difference(&before, &rows))
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
pub(super) async fn read(
    conn: &mut Conn,
    org: OrganizationId,
    id: GroupId,
) -> StoreResult<Option<Group>> {
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
        let (added, _) = apply_members(&mut *conn, org, id, draft).await?;
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
        let (added, removed) = apply_members(&mut *conn, org, id, draft).await?;
        // A change of what mappings select groups by can change which mappings cover the
        // group, and so every member's roles; otherwise only the changed members'.
        let reselected = before.as_ref().filter(|b| group.selectors_differ(b));
        let users: Vec<UserId> = if reselected.is_some() {
            let mut all = memberships::members(&mut *conn, org, id).await?;
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
        if !added.is_empty() || !removed.is_empty() {
            let up = memberships::parents(&mut *conn, org, id).await?;
            self.propagate(&mut *conn, org, up).await?;
        }
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
        let members = memberships::members(&mut *conn, org, id).await?;
        let parents = memberships::parents(&mut *conn, org, id).await?;
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
        // Its users leave the groups it was inside, unless held there otherwise.
        self.propagate(&mut *conn, org, parents).await?;
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
    /// Names `user` as a member of `group` itself (`join`) or stops naming them. Returns
    /// false if nothing changed. The group's version moves and the change is audited; when
    /// the user's effective membership changed (they were not, or are no longer, held there
    /// through a group inside it), the fan-out is queued and the groups above follow.
    pub(super) async fn change_direct_member(
        &self,
        conn: &mut Conn,
        actor: &Actor,
        org: OrganizationId,
        group_id: GroupId,
        user: UserId,
        join: bool,
    ) -> StoreResult<bool> {
        let Some(group) = read(conn, org, group_id).await? else {
            return Err(StoreError::NotFound(format!("group {group_id}")));
        };
        // Only this user's row can change: it is read alone (a group of fifty thousand is
        // not read to add one member), with whether a group inside holds them anyway.
        let row = memberships::row(conn, org, group_id, user).await?;
        if (row == Some(true)) == join {
            return Ok(false);
        }
        let changed = memberships::set_one_direct(conn, org, group_id, user, row, join).await?;
        touch(conn, org, group_id).await?;
        if changed {
            let action = if join {
                OperationAction::AddMembers
            } else {
                OperationAction::RemoveMembers
            };
            let change = DirectoryChange::GroupChanged {
                group: &group,
                before: None,
                action,
                payload: serde_json::json!({ "members": [user] }),
                users: &[user],
            };
            fanout::apply(self, conn, org, &change).await?;
            let up = memberships::parents(conn, org, group_id).await?;
            self.propagate(conn, org, up).await?;
        }
        let audited = if join {
            "group.member_add"
        } else {
            "group.member_remove"
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
        .await?;
        Ok(true)
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
        let added = self
            .change_direct_member(&mut tx, actor, org, group, user, true)
            .await?;
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
        let removed = self
            .change_direct_member(&mut tx, actor, org, group, user, false)
            .await?;
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

    async fn user_group_refs(
        &self,
        org: OrganizationId,
        user: UserId,
    ) -> StoreResult<Vec<UserGroup>> {
        Ok(sqlx::query_as(concat!(
            "SELECT g.id, g.organization_id, g.display_name, g.external_id, g.source_connection_id, ",
            "g.attributes, g.version, g.created_at, g.updated_at, m.direct ",
            "FROM memberships m JOIN groups g ON g.id = m.group_id ",
            "WHERE m.organization_id = $1 AND m.user_id = $2 ORDER BY g.display_name"
        ))
        .bind(org)
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn group_child_refs(
        &self,
        org: OrganizationId,
        group: GroupId,
    ) -> StoreResult<Vec<ChildGroupRef>> {
        Ok(sqlx::query_as(
            "SELECT g.id AS group_id, g.display_name FROM group_nesting n \
             JOIN groups g ON g.id = n.child_id \
             WHERE n.organization_id = $1 AND n.parent_id = $2 ORDER BY g.id",
        )
        .bind(org)
        .bind(group)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn groups_among(
        &self,
        org: OrganizationId,
        ids: &[uuid::Uuid],
    ) -> StoreResult<HashSet<uuid::Uuid>> {
        let mut conn = self.pool.acquire().await?;
        memberships::groups_among(&mut conn, org, ids).await
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
            "WHERE m.organization_id = $1 AND m.group_id = $2 AND m.direct ORDER BY u.id"
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
