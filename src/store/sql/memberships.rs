//! A group's membership rows, direct and flattened, on the caller's transaction.
//!
//! `memberships` holds every user's *effective* membership: the users named as members of the
//! group itself (`direct`) and, flattened, the users of every group inside it however deep
//! (`group_nesting`, RFC 7643 §4.2). Mappings, fan-out and targets read that one table, so a
//! mapping on `/hospital` covers the members of `/hospital/icu` without knowing about nesting.
//! Each change here keeps the flattening true: a group's inherited rows are recomputed from its
//! children's rows ([`reflatten`]), and then its ancestors', bottom-up ([`ThisStore::propagate`]).

use super::{Conn, Db, ThisStore, fanout, groups};
use crate::domain::{
    DirectoryChange, GroupId, InvalidInput, OperationAction, OrganizationId, Timestamp, UserId,
};
use crate::store::{StoreError, StoreResult};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// A group's rows as this transaction holds them: each member, and whether they were named
/// as a member of the group itself.
pub(super) type Rows = HashMap<UserId, bool>;

/// Rows per statement when adding or removing many.
const CHUNK: usize = 500;

/// The group's effective members, on the caller's transaction.
pub(super) async fn members(
    conn: &mut Conn,
    org: OrganizationId,
    group: GroupId,
) -> StoreResult<Vec<UserId>> {
    Ok(rows(conn, org, group).await?.into_keys().collect())
}

/// The group's rows, on the caller's transaction.
pub(super) async fn rows(
    conn: &mut Conn,
    org: OrganizationId,
    group: GroupId,
) -> StoreResult<Rows> {
    let rows: Vec<(UserId, bool)> = sqlx::query_as(
        "SELECT user_id, direct FROM memberships WHERE organization_id = $1 AND group_id = $2",
    )
    .bind(org)
    .bind(group)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// One user's row in the group: `Some(direct)`, or `None` when they are not a member.
pub(super) async fn row(
    conn: &mut Conn,
    org: OrganizationId,
    group: GroupId,
    user: UserId,
) -> StoreResult<Option<bool>> {
    Ok(sqlx::query_scalar(
        "SELECT direct FROM memberships WHERE organization_id = $1 AND group_id = $2 AND user_id = $3",
    )
    .bind(org)
    .bind(group)
    .bind(user)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Names `user` as a member of the group itself (`join`) or stops naming them, given their
/// row as it is (`row`, from [`row`]); what [`set_direct`] and [`reflatten`] do to the whole
/// group, for the one row that can change. Returns whether their effective membership
/// changed (a user also held through a group inside keeps their row, undirected).
pub(super) async fn set_one_direct(
    conn: &mut Conn,
    org: OrganizationId,
    group: GroupId,
    user: UserId,
    row: Option<bool>,
    join: bool,
) -> StoreResult<bool> {
    match (row, join) {
        (None, true) => {
            insert(conn, org, group, &[user], true).await?;
            Ok(true)
        }
        (Some(false), true) => {
            flag(conn, org, group, &[user], true).await?;
            Ok(false)
        }
        (Some(true), false) => {
            let held: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM group_nesting n JOIN memberships m \
                 ON m.organization_id = n.organization_id AND m.group_id = n.child_id \
                 WHERE n.organization_id = $1 AND n.parent_id = $2 AND m.user_id = $3)",
            )
            .bind(org)
            .bind(group)
            .bind(user)
            .fetch_one(&mut *conn)
            .await?;
            if held {
                flag(conn, org, group, &[user], false).await?;
                Ok(false)
            } else {
                delete(conn, org, group, &[user]).await?;
                Ok(true)
            }
        }
        // Already as asked.
        _ => Ok(false),
    }
}

/// Sets the `direct` flag of these members' rows.
async fn flag(
    conn: &mut Conn,
    org: OrganizationId,
    group: GroupId,
    users: &[UserId],
    direct: bool,
) -> StoreResult<()> {
    for chunk in users.chunks(CHUNK) {
        let mut q = sqlx::QueryBuilder::<Db>::new("UPDATE memberships SET direct = ");
        q.push_bind(direct);
        q.push(" WHERE organization_id = ");
        q.push_bind(org);
        q.push(" AND group_id = ");
        q.push_bind(group);
        q.push(" AND user_id");
        push_in_list!(q, chunk, |user| *user);
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Deletes these members' rows.
async fn delete(
    conn: &mut Conn,
    org: OrganizationId,
    group: GroupId,
    users: &[UserId],
) -> StoreResult<()> {
    for chunk in users.chunks(CHUNK) {
        let mut q =
            sqlx::QueryBuilder::<Db>::new("DELETE FROM memberships WHERE organization_id = ");
        q.push_bind(org);
        q.push(" AND group_id = ");
        q.push_bind(group);
        q.push(" AND user_id");
        push_in_list!(q, chunk, |user| *user);
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts rows for these users, checking that each is a user of the organization (named,
/// unlike a foreign key violation).
async fn insert(
    conn: &mut Conn,
    org: OrganizationId,
    group: GroupId,
    users: &[UserId],
    direct: bool,
) -> StoreResult<()> {
    let now = Timestamp::now();
    for chunk in users.chunks(CHUNK) {
        if direct {
            let found: HashSet<UserId> =
                ThisStore::users_in_org::<(UserId,), _>(&mut *conn, org, chunk, "id")
                    .await?
                    .into_iter()
                    .map(|(id,)| id)
                    .collect();
            if let Some(missing) = chunk.iter().find(|u| !found.contains(u)) {
                return Err(StoreError::NotFound(format!("user {missing}")));
            }
        }
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO memberships (organization_id, group_id, user_id, created_at, direct) ",
        );
        q.push_values(chunk, |mut row, user| {
            row.push_bind(org)
                .push_bind(group)
                .push_bind(*user)
                .push_bind(now)
                .push_bind(direct);
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
    Ok(())
}

/// Makes the users named as members of the group itself exactly `wanted`. A user no longer
/// named keeps a row while a group inside this one still holds them ([`reflatten`] decides).
pub(super) async fn set_direct(
    conn: &mut Conn,
    org: OrganizationId,
    group: GroupId,
    rows: &mut Rows,
    wanted: &[UserId],
) -> StoreResult<()> {
    let wanted: HashSet<UserId> = wanted.iter().copied().collect();
    let demoted: Vec<UserId> = rows
        .iter()
        .filter(|(u, direct)| **direct && !wanted.contains(u))
        .map(|(u, _)| *u)
        .collect();
    let promoted: Vec<UserId> = wanted
        .iter()
        .filter(|u| rows.get(u) == Some(&false))
        .copied()
        .collect();
    let new: Vec<UserId> = wanted
        .iter()
        .filter(|u| !rows.contains_key(u))
        .copied()
        .collect();
    flag(conn, org, group, &demoted, false).await?;
    flag(conn, org, group, &promoted, true).await?;
    insert(conn, org, group, &new, true).await?;
    for u in demoted {
        rows.insert(u, false);
    }
    for u in promoted.into_iter().chain(new) {
        rows.insert(u, true);
    }
    Ok(())
}

/// Recomputes the group's inherited rows from the rows of the groups directly inside it
/// (which hold their own descendants' users already): adds the users they hold, and drops
/// rows that are neither named directly nor held by a child any more.
pub(super) async fn reflatten(
    conn: &mut Conn,
    org: OrganizationId,
    group: GroupId,
    rows: &mut Rows,
) -> StoreResult<()> {
    let inherited: HashSet<UserId> = sqlx::query_scalar::<_, UserId>(
        "SELECT DISTINCT m.user_id FROM group_nesting n JOIN memberships m \
         ON m.organization_id = n.organization_id AND m.group_id = n.child_id \
         WHERE n.organization_id = $1 AND n.parent_id = $2",
    )
    .bind(org)
    .bind(group)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    let stale: Vec<UserId> = rows
        .iter()
        .filter(|(u, direct)| !**direct && !inherited.contains(u))
        .map(|(u, _)| *u)
        .collect();
    let missing: Vec<UserId> = inherited
        .iter()
        .filter(|u| !rows.contains_key(u))
        .copied()
        .collect();
    delete(conn, org, group, &stale).await?;
    insert(conn, org, group, &missing, false).await?;
    for u in stale {
        rows.remove(&u);
    }
    for u in missing {
        rows.insert(u, false);
    }
    Ok(())
}

/// The groups directly inside `group`.
pub(super) async fn children(
    conn: &mut Conn,
    org: OrganizationId,
    group: GroupId,
) -> StoreResult<Vec<GroupId>> {
    Ok(sqlx::query_scalar(
        "SELECT child_id FROM group_nesting WHERE organization_id = $1 AND parent_id = $2",
    )
    .bind(org)
    .bind(group)
    .fetch_all(&mut *conn)
    .await?)
}

/// The groups `group` is directly inside.
pub(super) async fn parents(
    conn: &mut Conn,
    org: OrganizationId,
    group: GroupId,
) -> StoreResult<Vec<GroupId>> {
    Ok(sqlx::query_scalar(
        "SELECT parent_id FROM group_nesting WHERE organization_id = $1 AND child_id = $2",
    )
    .bind(org)
    .bind(group)
    .fetch_all(&mut *conn)
    .await?)
}

/// Every group `group` is inside, however far up.
async fn ancestors(
    conn: &mut Conn,
    org: OrganizationId,
    group: GroupId,
) -> StoreResult<HashSet<GroupId>> {
    Ok(sqlx::query_scalar::<_, GroupId>(
        "WITH RECURSIVE up (id) AS ( \
           SELECT parent_id FROM group_nesting WHERE organization_id = $1 AND child_id = $2 \
           UNION SELECT n.parent_id FROM group_nesting n JOIN up ON n.child_id = up.id \
           WHERE n.organization_id = $1) \
         SELECT id FROM up",
    )
    .bind(org)
    .bind(group)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect())
}

/// Which of `ids` are groups of the organization.
pub(super) async fn groups_among(
    conn: &mut Conn,
    org: OrganizationId,
    ids: &[Uuid],
) -> StoreResult<HashSet<Uuid>> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(CHUNK) {
        let mut q = sqlx::QueryBuilder::<Db>::new("SELECT id FROM groups WHERE organization_id = ");
        q.push_bind(org);
        q.push(" AND id");
        push_in_list!(q, chunk, |id| *id);
        found.extend(q.build_query_scalar::<Uuid>().fetch_all(&mut *conn).await?);
    }
    Ok(found)
}

/// Makes the groups directly inside `group` exactly `wanted`. Refuses a group inside itself,
/// or inside one of the groups inside it (a cycle), and a group that is not the
/// organization's. Does not reflatten: the caller does, once, after the direct members too.
pub(super) async fn set_children(
    conn: &mut Conn,
    org: OrganizationId,
    group: GroupId,
    wanted: &[GroupId],
) -> StoreResult<()> {
    let have: HashSet<GroupId> = children(conn, org, group).await?.into_iter().collect();
    let wanted_set: HashSet<GroupId> = wanted.iter().copied().collect();
    let gone: Vec<GroupId> = have.difference(&wanted_set).copied().collect();
    let mut new: Vec<GroupId> = wanted_set.difference(&have).copied().collect();
    new.sort();
    for chunk in gone.chunks(CHUNK) {
        let mut q =
            sqlx::QueryBuilder::<Db>::new("DELETE FROM group_nesting WHERE organization_id = ");
        q.push_bind(org);
        q.push(" AND parent_id = ");
        q.push_bind(group);
        q.push(" AND child_id");
        push_in_list!(q, chunk, |g| *g);
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    if new.is_empty() {
        return Ok(());
    }
    // Two changes that each close half of a cycle must not both pass the check: nesting
    // changes of one organization take turns (SQLite's writers already do).
    if !ThisStore::NESTING_LOCK.is_empty() {
        sqlx::query(ThisStore::NESTING_LOCK)
            .bind(org)
            .execute(&mut *conn)
            .await?;
    }
    let ids: Vec<Uuid> = new.iter().map(|g| g.0).collect();
    let exist = groups_among(conn, org, &ids).await?;
    if let Some(missing) = new.iter().find(|g| !exist.contains(&g.0)) {
        return Err(StoreError::NotFound(format!("group {missing}")));
    }
    let above = ancestors(conn, org, group).await?;
    if let Some(cycle) = new.iter().find(|g| **g == group || above.contains(g)) {
        let why = if *cycle == group {
            format!("group {group} cannot be a member of itself")
        } else {
            format!(
                "group {cycle} already contains group {group}; nesting it here would make a cycle"
            )
        };
        return Err(InvalidInput::new("members", why).into());
    }
    let now = Timestamp::now();
    for chunk in new.chunks(CHUNK) {
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO group_nesting (organization_id, parent_id, child_id, created_at) ",
        );
        q.push_values(chunk, |mut row, child| {
            row.push_bind(org)
                .push_bind(group)
                .push_bind(*child)
                .push_bind(now);
        });
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}

/// What changed between two sets of effective members: (added, removed).
pub(super) fn difference(before: &HashSet<UserId>, rows: &Rows) -> (Vec<UserId>, Vec<UserId>) {
    let added = rows
        .keys()
        .filter(|u| !before.contains(u))
        .copied()
        .collect();
    let removed = before
        .iter()
        .filter(|u| !rows.contains_key(u))
        .copied()
        .collect();
    (added, removed)
}

/// How many groups one change may reflatten above it before the store refuses: a bound on
/// the walk, which terminates anyway because cycles are refused.
const MAX_PROPAGATION: usize = 100_000;

impl ThisStore {
    /// After the effective members of a group inside each of `groups` changed: reflattens
    /// them and, bottom-up, the groups they are inside, and hands each one whose members
    /// changed to policy's fan-out as a change of that group's members (their roles and the
    /// group's mirror at targets follow).
    pub(super) async fn propagate(
        &self,
        conn: &mut Conn,
        org: OrganizationId,
        groups: Vec<GroupId>,
    ) -> StoreResult<()> {
        let mut todo: std::collections::VecDeque<GroupId> = groups.into();
        let mut steps = 0usize;
        while let Some(up) = todo.pop_front() {
            steps += 1;
            if steps > MAX_PROPAGATION {
                return Err(StoreError::Refused(
                    "group nesting too large to flatten in one change".into(),
                ));
            }
            let mut rows = rows(conn, org, up).await?;
            let before: HashSet<UserId> = rows.keys().copied().collect();
            reflatten(conn, org, up, &mut rows).await?;
            let (added, removed) = difference(&before, &rows);
            if added.is_empty() && removed.is_empty() {
                continue;
            }
            if let Some(group) = groups::read(&mut *conn, org, up).await? {
                let users: Vec<UserId> = added.iter().chain(removed.iter()).copied().collect();
                let change = DirectoryChange::GroupChanged {
                    group: &group,
                    before: None,
                    action: OperationAction::Update,
                    payload: serde_json::json!({}),
                    users: &users,
                };
                fanout::apply(self, &mut *conn, org, &change).await?;
            }
            todo.extend(parents(conn, org, up).await?);
        }
        Ok(())
    }
}
