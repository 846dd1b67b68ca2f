//! The directory as people ask about it: a user (or group) with where it came from, its
//! groups, the roles those give it, and its status at each target. One read model for every
//! surface that shows it (the CLI's `users`/`groups`, and the API), so the same question gets
//! the same answer everywhere. Reads only; the status at a target is what the store knows
//! (the link the target acknowledged, and the newest operation), never a call to the target.

use crate::domain::*;
use crate::policy::roles::RoleResolver;
use crate::store::{OperationFilter, Store, StoreResult};
use serde::Serialize;
use std::collections::HashMap;

/// Where a resource stands at one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetStatus {
    /// The target connection's name.
    pub target: String,
    /// `provisioned` (the target has it), `pending` (an operation waits or runs), `failed`
    /// (the newest operation failed) or `absent` (the target has never been told of it).
    pub state: String,
    /// The target's id for it, once provisioned.
    pub remote_id: Option<String>,
    /// When the target last acknowledged a change.
    pub synced_at: Option<Timestamp>,
    /// The newest operation's error, when it failed.
    pub error: Option<String>,
}

/// A group as a view names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupRef {
    /// Its id.
    pub id: GroupId,
    /// Its name.
    pub name: String,
    /// Its path (`/Clinical/Nursing`).
    pub path: String,
}

/// A user with everything `users show` gives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserView {
    /// The user.
    pub user: User,
    /// The source connection's name, if a source owns the user.
    pub source: Option<String>,
    /// Their groups.
    pub groups: Vec<GroupRef>,
    /// The roles their groups give them, by name.
    pub roles: Vec<String>,
    /// Their status at each target.
    pub targets: Vec<TargetStatus>,
}

/// A group with everything `groups show` gives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupView {
    /// The group.
    pub group: Group,
    /// Its path.
    pub path: String,
    /// The source connection's name, if a source owns it.
    pub source: Option<String>,
    /// How many members it has.
    pub members: u64,
    /// The roles it gives its members, by name.
    pub roles: Vec<String>,
    /// Its status at each target (groups are pushed only where a target mirrors them).
    pub targets: Vec<TargetStatus>,
}

/// What every view of one organization needs once: connections, roles, mappings.
pub struct Directory<'a> {
    store: &'a dyn Store,
    org: OrganizationId,
    connections: Vec<Connection>,
    mappings: Vec<RoleMapping>,
    role_names: HashMap<RoleId, String>,
}

impl<'a> Directory<'a> {
    /// Reads the organization's connections, roles and mappings.
    pub async fn open(store: &'a dyn Store, org: OrganizationId) -> StoreResult<Self> {
        Ok(Self {
            store,
            org,
            connections: store.list_connections(org).await?,
            mappings: store.list_role_mappings(org).await?,
            role_names: store
                .list_roles(org)
                .await?
                .into_iter()
                .map(|r| (r.id, r.name))
                .collect(),
        })
    }

    fn connection_name(&self, id: Option<ConnectionId>) -> Option<String> {
        let id = id?;
        self.connections
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.name.clone())
    }

    fn role_names(&self, groups: &[Group]) -> Vec<String> {
        let ids = RoleResolver::new(&self.mappings).user_roles(groups.iter());
        let mut names: Vec<String> = ids
            .iter()
            .filter_map(|id| self.role_names.get(id).cloned())
            .collect();
        names.sort();
        names
    }

    /// Where `local_id` stands at each target.
    async fn statuses(
        &self,
        rt: ResourceType,
        local_id: uuid::Uuid,
    ) -> StoreResult<Vec<TargetStatus>> {
        let mut out = Vec::new();
        for c in self.connections.iter().filter(|c| !c.kind.is_source()) {
            let link = self
                .store
                .target_links_for(self.org, c.id, rt, &[local_id])
                .await?
                .pop();
            // Unfinished operations come first in a listing.
            let newest = self
                .store
                .list_operations(
                    self.org,
                    &OperationFilter {
                        connection_id: Some(c.id),
                        resource_id: Some(local_id),
                        limit: 1,
                        ..Default::default()
                    },
                )
                .await?
                .pop()
                .map(|o| o.with_effective_state(Timestamp::now()));
            let (state, error) = match &newest {
                Some(o) if o.state == OperationState::Failed => ("failed", o.last_error.clone()),
                Some(o) if !o.state.is_terminal() => ("pending", None),
                _ if link.is_some() => ("provisioned", None),
                _ => ("absent", None),
            };
            out.push(TargetStatus {
                target: c.name.clone(),
                state: state.to_string(),
                remote_id: link.as_ref().map(|l| l.remote_id.clone()),
                synced_at: link.as_ref().map(|l| l.synced_at),
                error,
            });
        }
        Ok(out)
    }

    /// The view of `user`.
    pub async fn user(&self, user: User) -> StoreResult<UserView> {
        let groups = self.store.user_groups(self.org, user.id).await?;
        Ok(UserView {
            source: self.connection_name(user.source_connection_id),
            roles: self.role_names(&groups),
            groups: groups
                .iter()
                .map(|g| GroupRef {
                    id: g.id,
                    name: g.display_name.clone(),
                    path: g.path(),
                })
                .collect(),
            targets: self.statuses(ResourceType::User, user.id.0).await?,
            user,
        })
    }

    /// The view of `group`.
    pub async fn group(&self, group: Group) -> StoreResult<GroupView> {
        let members = self.store.group_members(self.org, group.id).await?.len() as u64;
        Ok(GroupView {
            path: group.path(),
            source: self.connection_name(group.source_connection_id),
            members,
            roles: self.role_names(std::slice::from_ref(&group)),
            targets: self.statuses(ResourceType::Group, group.id.0).await?,
            group,
        })
    }
}

/// Which users a listing wants: a search over userName, display name and e-mail addresses
/// (case-insensitive), and the source that owns them. One definition, so the CLI's
/// `users list` and the API's `users` answer the same question with the same users.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// Text to find, in any case.
    pub search: Option<String>,
    /// Only users this source owns.
    pub source: Option<ConnectionId>,
}

impl UserQuery {
    /// Whether `user` is wanted.
    pub fn matches(&self, user: &User) -> bool {
        let needle = self.search.as_deref().map(str::to_lowercase);
        self.source
            .is_none_or(|s| user.source_connection_id == Some(s))
            && needle.as_deref().is_none_or(|n| {
                user.user_name.to_lowercase().contains(n)
                    || user
                        .display_name
                        .as_deref()
                        .is_some_and(|d| d.to_lowercase().contains(n))
                    || user
                        .emails
                        .0
                        .iter()
                        .any(|e| e.value.to_lowercase().contains(n))
            })
    }
}

/// Users read a page at a time while a listing looks for matches.
const SCAN_PAGE: u32 = 1000;

/// Up to `limit` users that `query` wants, in id (creation) order, after the user `after`;
/// and whether more may follow.
pub async fn find_users(
    store: &dyn Store,
    org: OrganizationId,
    query: &UserQuery,
    after: Option<UserId>,
    limit: usize,
) -> StoreResult<(Vec<User>, bool)> {
    let mut found = Vec::new();
    let mut after = after;
    loop {
        let page = store.users_after(org, after, SCAN_PAGE).await?;
        let Some(last) = page.last() else {
            return Ok((found, false));
        };
        after = Some(last.id);
        let full = page.len() as u32 == SCAN_PAGE;
        for u in page {
            if query.matches(&u) {
                if found.len() == limit {
                    return Ok((found, true));
                }
                found.push(u);
            }
        }
        if !full {
            return Ok((found, false));
        }
    }
}
