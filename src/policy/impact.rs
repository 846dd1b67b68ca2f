//! Mapping changes: what they do before they are made. A [`Preview`] is the dry run — who
//! gains and who loses which role, and which target operations follow — computed from the
//! store's rows in three steps, so that its reader (`engine::commands`) reads only what the
//! change can touch; [`Impact::commit`] turns the result into exactly the work the change
//! commits, so a preview and its result cannot disagree. A [`Guard`] refuses a change that
//! would take access from too many people unless forced. Pure: rows in, decisions out.

use super::roles::RoleResolver;
use super::target::TargetPolicy;
use crate::domain::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

/// A change to an organization's mappings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MappingChange {
    /// Add a mapping (`id: None`) or change one.
    Set {
        /// The mapping to change; `None` adds one.
        id: Option<RoleMappingId>,
        /// Its new content.
        draft: RoleMappingDraft,
    },
    /// Remove a mapping.
    Remove(RoleMappingId),
}

/// One user's role difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleChange {
    /// The user.
    pub user_id: UserId,
    /// Their userName.
    pub user_name: String,
    /// Roles they would gain, by name.
    pub gained: Vec<String>,
    /// Roles they would lose, by name.
    pub lost: Vec<String>,
}

/// One operation a change causes at a target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PlannedOperation {
    /// The target's name.
    pub connection: String,
    /// The target.
    pub connection_id: ConnectionId,
    /// User, or group (a role's target group).
    pub resource_type: ResourceType,
    /// The user, or the role.
    pub resource_id: Uuid,
    /// What happens there.
    pub action: OperationAction,
    /// A userName or a role's name, for people.
    pub subject: String,
    /// For a role group: who joins it.
    pub joining: Vec<String>,
    /// For a role group: who leaves it.
    pub leaving: Vec<String>,
}

impl PlannedOperation {
    fn new_operation(&self) -> NewOperation {
        NewOperation {
            connection_id: self.connection_id,
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            action: self.action,
            payload: if self.resource_type == ResourceType::Group {
                serde_json::json!({ "role": self.subject })
            } else {
                serde_json::json!({})
            },
        }
    }
}

/// A group whose coverage by mappings changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupRef {
    /// The group.
    pub id: GroupId,
    /// Its display name.
    pub display_name: String,
}

/// What a mapping change would do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Impact {
    /// Users whose roles change, by userName.
    pub role_changes: Vec<RoleChange>,
    /// The operations it queues, sorted.
    pub operations: Vec<PlannedOperation>,
    /// Users of the organization (the guard's percentage base).
    pub organization_users: u64,
    /// Groups with members that no mapping would cover any more.
    pub newly_unmapped: Vec<GroupRef>,
    /// Groups with members that a mapping would now cover.
    pub newly_covered: Vec<GroupRef>,
    /// Targets left out because their policy is invalid, with why.
    pub skipped_targets: Vec<String>,
}

impl Impact {
    /// Users who would lose at least one role.
    pub fn losing_access(&self) -> Vec<&RoleChange> {
        self.role_changes
            .iter()
            .filter(|c| !c.lost.is_empty())
            .collect()
    }
}

/// Limits on how much access one mapping change may remove without `--force`
/// (`[policy]` in config.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Guard {
    /// Most users that may lose a role.
    pub max_users: u64,
    /// Largest share of the organization's users, in percent, that may lose a role.
    pub max_percent: u32,
}

impl Default for Guard {
    fn default() -> Self {
        Self {
            max_users: 50,
            max_percent: 10,
        }
    }
}

/// Why policy cannot preview a mapping change as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A mapping it names does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The change itself is wrong.
    #[error("{0}")]
    Invalid(String),
}

/// The guard's refusal: a change that removes access from too many people.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "refused: this change removes access from {losing} of {total} users ({percent:.1}%), over the guard's limit of {max_users} users or {max_percent}%; they include {sample}. Use --force to apply it anyway"
)]
pub struct Guarded {
    /// Users who would lose a role.
    pub losing: usize,
    /// Users of the organization.
    pub total: u64,
    /// `losing` as a share of `total`.
    pub percent: f64,
    /// The guard's user limit.
    pub max_users: u64,
    /// The guard's percentage limit.
    pub max_percent: u32,
    /// The first few who would lose access, with what.
    pub sample: String,
}

impl Guard {
    /// Refuses `impact` when it removes access from more users than allowed.
    pub fn check(&self, impact: &Impact) -> Result<(), Guarded> {
        let losing = impact.losing_access();
        let total = impact.organization_users.max(1);
        let percent = losing.len() as f64 * 100.0 / total as f64;
        if (losing.len() as u64) <= self.max_users && percent <= f64::from(self.max_percent) {
            return Ok(());
        }
        let mut sample: Vec<String> = losing
            .iter()
            .take(5)
            .map(|c| format!("{} (loses {})", c.user_name, c.lost.join(", ")))
            .collect();
        if losing.len() > 5 {
            sample.push(format!("and {} more", losing.len() - 5));
        }
        Err(Guarded {
            losing: losing.len(),
            total: impact.organization_users,
            percent,
            max_users: self.max_users,
            max_percent: self.max_percent,
            sample: sample.join("; "),
        })
    }
}

/// The organization's mappings after `change`.
fn changed_mappings(
    org: OrganizationId,
    mut mappings: Vec<RoleMapping>,
    change: &MappingChange,
    roles: &[Role],
) -> Result<Vec<RoleMapping>, Refusal> {
    match change {
        MappingChange::Set { id, draft } => {
            if draft.pattern.trim().is_empty() {
                return Err(Refusal::Invalid("the pattern must not be empty".into()));
            }
            if !roles.iter().any(|r| r.id == draft.role_id) {
                return Err(Refusal::Invalid(format!(
                    "role {} does not exist",
                    draft.role_id
                )));
            }
            let mapping = RoleMapping {
                id: id.unwrap_or_else(RoleMappingId::new),
                organization_id: org,
                source_connection_id: draft.source_connection_id,
                selector: draft.selector,
                match_mode: draft.match_mode,
                pattern: draft.pattern.clone(),
                role_id: draft.role_id,
                created_at: Timestamp::now(),
            };
            match id {
                Some(id) => {
                    let slot = mappings
                        .iter_mut()
                        .find(|m| m.id == *id)
                        .ok_or_else(|| Refusal::NotFound(format!("mapping {id}")))?;
                    *slot = mapping;
                }
                None => mappings.push(mapping),
            }
        }
        MappingChange::Remove(id) => {
            let before = mappings.len();
            mappings.retain(|m| m.id != *id);
            if mappings.len() == before {
                return Err(Refusal::NotFound(format!("mapping {id}")));
            }
        }
    }
    Ok(mappings)
}

/// A preview in progress. Step one ([`Preview::new`]) compares every group's roles before and
/// after the change; step two ([`Preview::affected`]) finds, from the memberships, the users
/// whose roles may change; step three ([`Preview::finish`]) compares those users' roles and
/// decides what each target sees of it. A change that touches no group's roles needs neither
/// the memberships nor any user.
pub struct Preview<'a> {
    roles: &'a [Role],
    groups: HashMap<GroupId, &'a Group>,
    old_roles_of_group: HashMap<GroupId, BTreeSet<RoleId>>,
    new_roles_of_group: HashMap<GroupId, BTreeSet<RoleId>>,
    changed: BTreeSet<GroupId>,
    groups_of: HashMap<UserId, Vec<&'a Group>>,
    newly_unmapped: Vec<GroupRef>,
    newly_covered: Vec<GroupRef>,
}

impl<'a> Preview<'a> {
    /// Compares every group's roles under `mappings` and under them changed by `change`
    /// (`roles` includes a role the change would create).
    pub fn new(
        org: OrganizationId,
        roles: &'a [Role],
        mappings: Vec<RoleMapping>,
        groups: &'a [Group],
        change: &MappingChange,
    ) -> Result<Self, Refusal> {
        let after = changed_mappings(org, mappings.clone(), change, roles)?;
        let (old, new) = (RoleResolver::new(&mappings), RoleResolver::new(&after));
        let mut p = Preview {
            roles,
            groups: groups.iter().map(|g| (g.id, g)).collect(),
            old_roles_of_group: HashMap::new(),
            new_roles_of_group: HashMap::new(),
            changed: BTreeSet::new(),
            groups_of: HashMap::new(),
            newly_unmapped: Vec::new(),
            newly_covered: Vec::new(),
        };
        for g in groups {
            let (o, n) = (old.group_roles(g), new.group_roles(g));
            if o != n {
                p.changed.insert(g.id);
            }
            p.old_roles_of_group.insert(g.id, o);
            p.new_roles_of_group.insert(g.id, n);
        }
        Ok(p)
    }

    /// Whether the change gives or takes no role through any group (nothing else to read).
    pub fn changes_nothing(&self) -> bool {
        self.changed.is_empty()
    }

    /// The users whose roles may change: members of the groups whose roles change. Notes, from
    /// `memberships` (every membership of the organization), those users' groups and the
    /// groups with members that the change uncovers or covers.
    pub fn affected(&mut self, memberships: &[(GroupId, UserId)]) -> Vec<UserId> {
        let affected: BTreeSet<UserId> = memberships
            .iter()
            .filter(|(g, _)| self.changed.contains(g))
            .map(|(_, u)| *u)
            .collect();
        let mut populated: BTreeSet<GroupId> = BTreeSet::new();
        for (g, u) in memberships {
            populated.insert(*g);
            if affected.contains(u)
                && let Some(group) = self.groups.get(g)
            {
                self.groups_of.entry(*u).or_default().push(group);
            }
        }
        for id in self.changed.iter().filter(|id| populated.contains(id)) {
            let (o, n) = (&self.old_roles_of_group[id], &self.new_roles_of_group[id]);
            let r = GroupRef {
                id: *id,
                display_name: self.groups[id].display_name.clone(),
            };
            match (o.is_empty(), n.is_empty()) {
                (false, true) => self.newly_unmapped.push(r),
                (true, false) => self.newly_covered.push(r),
                _ => {}
            }
        }
        affected.into_iter().collect()
    }

    /// The impact: `users` are the affected users' rows, `organization_users` how many users
    /// the organization has (the guard's base), `connections` its connections (the SCIM
    /// targets among them are previewed).
    pub fn finish(
        mut self,
        organization_users: u64,
        users: &[User],
        connections: &[Connection],
    ) -> Impact {
        let mut impact = Impact {
            role_changes: Vec::new(),
            operations: Vec::new(),
            organization_users,
            newly_unmapped: std::mem::take(&mut self.newly_unmapped),
            newly_covered: std::mem::take(&mut self.newly_covered),
            skipped_targets: Vec::new(),
        };
        if self.changed.is_empty() {
            return impact;
        }
        let role_name: HashMap<RoleId, &str> =
            self.roles.iter().map(|r| (r.id, r.name.as_str())).collect();
        let names = |set: &BTreeSet<RoleId>| -> Vec<String> {
            let mut v: Vec<String> = set
                .iter()
                .map(|r| {
                    role_name
                        .get(r)
                        .map_or_else(|| r.to_string(), |n| n.to_string())
                })
                .collect();
            v.sort();
            v
        };
        struct Delta<'u, 'g> {
            user: &'u User,
            groups: Vec<&'g Group>,
            old: BTreeSet<RoleId>,
            new: BTreeSet<RoleId>,
        }
        let mut deltas = Vec::new();
        for user in users {
            let groups = self.groups_of.remove(&user.id).unwrap_or_default();
            let o: BTreeSet<RoleId> = groups
                .iter()
                .flat_map(|g| self.old_roles_of_group[&g.id].iter().copied())
                .collect();
            let n: BTreeSet<RoleId> = groups
                .iter()
                .flat_map(|g| self.new_roles_of_group[&g.id].iter().copied())
                .collect();
            if o == n {
                continue;
            }
            impact.role_changes.push(RoleChange {
                user_id: user.id,
                user_name: user.user_name.clone(),
                gained: names(&n.difference(&o).copied().collect()),
                lost: names(&o.difference(&n).copied().collect()),
            });
            deltas.push(Delta {
                user,
                groups,
                old: o,
                new: n,
            });
        }
        impact
            .role_changes
            .sort_by(|a, b| a.user_name.cmp(&b.user_name));

        // What each target sees of it.
        for conn in connections {
            if conn.kind != ConnectionKind::ScimTarget {
                continue;
            }
            let policy = match TargetPolicy::new(conn, self.roles) {
                Ok(p) => p,
                Err(e) => {
                    impact.skipped_targets.push(format!("{}: {e}", conn.name));
                    continue;
                }
            };
            let mut role_groups: BTreeMap<RoleId, (Vec<String>, Vec<String>)> = BTreeMap::new();
            for d in &deltas {
                let was = policy.in_scope(d.user, &d.old, &d.groups);
                let is = policy.in_scope(d.user, &d.new, &d.groups);
                let action = match (was, is) {
                    (false, true) => Some(OperationAction::Create),
                    (true, false) => Some(policy.leave_action()),
                    (true, true)
                        if !policy.roles_as_groups()
                            && policy.delivered_roles(&d.old) != policy.delivered_roles(&d.new) =>
                    {
                        Some(OperationAction::Update)
                    }
                    _ => None,
                };
                if let Some(action) = action {
                    impact.operations.push(PlannedOperation {
                        connection: conn.name.clone(),
                        connection_id: conn.id,
                        resource_type: ResourceType::User,
                        resource_id: d.user.id.0,
                        action,
                        subject: d.user.user_name.clone(),
                        joining: Vec::new(),
                        leaving: Vec::new(),
                    });
                }
                if policy.roles_as_groups() {
                    for r in policy.bound_roles() {
                        let member_before = was && d.old.contains(r);
                        let member_after = is && d.new.contains(r);
                        if member_before != member_after {
                            let entry = role_groups.entry(*r).or_default();
                            if member_after {
                                entry.0.push(d.user.user_name.clone());
                            } else {
                                entry.1.push(d.user.user_name.clone());
                            }
                        }
                    }
                }
            }
            for (role, (mut joining, mut leaving)) in role_groups {
                joining.sort();
                leaving.sort();
                impact.operations.push(PlannedOperation {
                    connection: conn.name.clone(),
                    connection_id: conn.id,
                    resource_type: ResourceType::Group,
                    resource_id: role.0,
                    action: OperationAction::Update,
                    subject: policy.role_name(role),
                    joining,
                    leaving,
                });
            }
        }
        impact.operations.sort();
        impact
    }
}

impl Impact {
    /// What the change commits with its mapping write: exactly the operations this impact
    /// lists, the unmapped-group exceptions it raises and settles, and a summary for the audit
    /// event.
    pub fn commit(&self, change: &MappingChange, force: bool) -> MappingCommit {
        let write = match change {
            MappingChange::Set { id: None, draft } => MappingWrite::Create(draft.clone()),
            MappingChange::Set {
                id: Some(id),
                draft,
            } => MappingWrite::Replace(*id, draft.clone()),
            MappingChange::Remove(id) => MappingWrite::Delete(*id),
        };
        let raise = self
            .newly_unmapped
            .iter()
            .map(|g| NewException {
                kind: ExceptionKind::UnmappedGroup,
                subject_key: unmapped_group_key(g.id),
                connection_id: None,
                subject: g.display_name.clone(),
                summary: format!(
                    "no mapping covers group {:?} any more; its members get no role from it",
                    g.display_name
                ),
                details: serde_json::json!({ "group_id": g.id, "display_name": g.display_name }),
            })
            .collect();
        let resolve = self
            .newly_covered
            .iter()
            .map(|g| {
                (
                    unmapped_group_key(g.id),
                    "a mapping now covers the group".to_string(),
                )
            })
            .collect();
        MappingCommit {
            write,
            operations: self
                .operations
                .iter()
                .map(PlannedOperation::new_operation)
                .collect(),
            raise,
            resolve,
            summary: serde_json::json!({
                "users_gaining": self.role_changes.iter().filter(|c| !c.gained.is_empty()).count(),
                "users_losing": self.losing_access().len(),
                "operations": self.operations.len(),
                "forced": force,
            }),
        }
    }
}
