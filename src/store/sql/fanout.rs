//! Carries out policy's fan-out inside a change's transaction: reads the organization's
//! policy ([`PolicyFacts`]), asks the store's [`FanoutRule`](crate::domain::FanoutRule) what
//! the change causes, and queues that work and settles or raises the group's exception on the
//! same transaction. What the rule decides is policy's (`policy::fanout`); this file only reads
//! and writes.

use super::{Conn, Db, ThisStore, exceptions, queue};
use crate::domain::{
    ConnectionId, DirectoryChange, ExceptionKind, Fanout, Group, Json, OrganizationId, PolicyFacts,
    ResourceType, RoleMapping, TargetSettings, UnmappedGroup, Work,
};
use crate::store::StoreResult;
use uuid::Uuid;

/// A mapping with the name of the role it grants, read together.
#[derive(sqlx::FromRow)]
struct MappingWithRole {
    #[sqlx(flatten)]
    mapping: RoleMapping,
    role_name: String,
}

/// The organization's policy as this transaction sees it: mappings with their roles' names,
/// and every SCIM target with its settings.
async fn facts(conn: &mut Conn, org: OrganizationId) -> StoreResult<PolicyFacts> {
    let mappings: Vec<MappingWithRole> = sqlx::query_as(
        "SELECT m.id, m.organization_id, m.source_connection_id, m.selector, m.match_mode, m.pattern, \
         m.role_id, m.created_at, r.name AS role_name FROM role_mappings m \
         JOIN roles r ON r.organization_id = m.organization_id AND r.id = m.role_id \
         WHERE m.organization_id = $1",
    )
    .bind(org)
    .fetch_all(&mut *conn)
    .await?;
    let targets: Vec<(ConnectionId, Json<serde_json::Value>)> = sqlx::query_as(
        "SELECT id, settings FROM connections WHERE organization_id = $1 AND kind = 'scim_target' ORDER BY id",
    )
    .bind(org)
    .fetch_all(&mut *conn)
    .await?;
    Ok(PolicyFacts {
        role_names: mappings
            .iter()
            .map(|m| (m.mapping.role_id, m.role_name.clone()))
            .collect(),
        mappings: mappings.into_iter().map(|m| m.mapping).collect(),
        targets: targets
            .into_iter()
            .map(|(id, s)| (id, TargetSettings::from_json(&s.0).unwrap_or_default()))
            .collect(),
    })
}

/// Asks policy what `change` causes and carries it out on the caller's transaction.
pub(super) async fn apply(
    store: &ThisStore,
    conn: &mut Conn,
    org: OrganizationId,
    change: &DirectoryChange<'_>,
) -> StoreResult<()> {
    let facts = facts(conn, org).await?;
    let fanout = (store.fanout)(&facts, change);
    carry_out(conn, org, fanout).await
}

/// Queues the work of `fanout` in order and settles or raises the group's exception.
async fn carry_out(conn: &mut Conn, org: OrganizationId, fanout: Fanout) -> StoreResult<()> {
    for work in &fanout.work {
        match work {
            Work::Enqueue(op) => {
                queue::enqueue_one(conn, org, op).await?;
            }
            Work::UpdateUsers { connection, users } => {
                queue::enqueue_user_updates(conn, org, *connection, users).await?;
            }
        }
    }
    match fanout.unmapped {
        None => {}
        Some(UnmappedGroup::Settle { key, why }) => {
            exceptions::settle_open(
                conn,
                org,
                ExceptionKind::UnmappedGroup,
                &key,
                &why,
                "engine",
            )
            .await?;
        }
        Some(UnmappedGroup::RaiseIfPopulated {
            group,
            exception,
            otherwise,
        }) => {
            let populated = sqlx::query_scalar::<_, i32>(
                "SELECT 1 FROM memberships WHERE organization_id = $1 AND group_id = $2 LIMIT 1",
            )
            .bind(org)
            .bind(group)
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
            if populated {
                exceptions::raise(conn, org, &exception).await?;
            } else {
                exceptions::settle_open(
                    conn,
                    org,
                    ExceptionKind::UnmappedGroup,
                    &exception.subject_key,
                    &otherwise,
                    "engine",
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// The groups any of `users` is in, each once, on the caller's transaction.
pub(super) async fn groups_of(
    conn: &mut Conn,
    org: OrganizationId,
    users: &[Uuid],
) -> StoreResult<Vec<Group>> {
    let mut groups: Vec<Group> = Vec::new();
    for chunk in users.chunks(500) {
        let mut q = sqlx::QueryBuilder::<Db>::new(concat!(
            "SELECT ",
            group_cols!(),
            " FROM groups WHERE organization_id = "
        ));
        q.push_bind(org);
        q.push(" AND id IN (SELECT group_id FROM memberships WHERE organization_id = ");
        q.push_bind(org);
        q.push(" AND user_id");
        push_in_list!(q, chunk, |id| *id);
        q.push(")");
        groups.extend(q.build_query_as::<Group>().fetch_all(&mut *conn).await?);
    }
    groups.sort_by_key(|g| g.id);
    groups.dedup_by_key(|g| g.id);
    Ok(groups)
}

/// Before a user goes away: what leaving their groups causes (policy re-renders the role
/// groups they were in at targets).
pub(super) async fn user_leaving(
    store: &ThisStore,
    conn: &mut Conn,
    org: OrganizationId,
    user: Uuid,
) -> StoreResult<()> {
    let groups = groups_of(conn, org, &[user]).await?;
    if groups.is_empty() {
        return Ok(());
    }
    apply(
        store,
        conn,
        org,
        &DirectoryChange::UserLeaving { groups: &groups },
    )
    .await
}

/// After an operator retries operations (`retried`: connection, resource type, resource id):
/// the groups of the users among them go out again at those connections, after them. While a
/// user's work was stuck behind a failed operation their groups went out without them, and
/// nothing else would send those groups again once the user arrives (the group waits while the
/// user's work is in progress, then names them).
pub(super) async fn users_retried(
    store: &ThisStore,
    conn: &mut Conn,
    org: OrganizationId,
    retried: &[(ConnectionId, String, Uuid)],
) -> StoreResult<()> {
    let mut users: std::collections::BTreeMap<ConnectionId, Vec<Uuid>> = Default::default();
    for (connection, rt, id) in retried {
        if rt == ResourceType::User.as_str() {
            users.entry(*connection).or_default().push(*id);
        }
    }
    if users.is_empty() {
        return Ok(());
    }
    let facts = facts(conn, org).await?;
    for (connection, ids) in users {
        let groups = groups_of(conn, org, &ids).await?;
        let change = DirectoryChange::UsersRetried {
            connection,
            groups: &groups,
        };
        let fanout = (store.fanout)(&facts, &change);
        carry_out(conn, org, fanout).await?;
    }
    Ok(())
}
