//! What a change of the directory causes at the organization's targets — rows in, decisions
//! out. The store calls [`decide`] inside the change's transaction (it is the
//! [`FanoutRule`](crate::domain::FanoutRule) the store is opened with) and queues what it
//! returns on that transaction, so a change and its consequences commit together.
//!
//! The rules: a member's roles, and so whether a target receives them, can change only
//! through a group that grants a role (or through a scope filter, which may name groups); a
//! target that carries roles as groups re-renders the role groups whose holders may have
//! changed; a target that mirrors the source's groups is sent the group itself; and a group
//! with members that no mapping covers raises an exception that a mapping, or the group's
//! emptying, settles.

use super::roles::RoleResolver;
use crate::domain::{
    ConnectionId, DirectoryChange, ExceptionKind, Fanout, Group, NewException, NewOperation,
    OperationAction, PolicyFacts, ResourceType, RoleDelivery, RoleId, TargetSettings,
    UnmappedGroup, UserId, Work, unmapped_group_key,
};
use std::collections::BTreeSet;

/// Decides what `change` causes, given the organization's policy as `facts`.
pub fn decide(facts: &PolicyFacts, change: &DirectoryChange<'_>) -> Fanout {
    let resolver = RoleResolver::new(&facts.mappings);
    match change {
        DirectoryChange::GroupChanged {
            group,
            before,
            action,
            payload,
            users,
        } => group_changed(facts, &resolver, group, *before, *action, payload, users),
        DirectoryChange::UserLeaving { groups } => Fanout {
            work: role_groups(facts, &facts.targets, &resolver.user_roles(*groups)),
            unmapped: None,
        },
        DirectoryChange::UsersRetried { connection, groups } => {
            users_retried(facts, &resolver, *connection, groups)
        }
    }
}

/// A group created, replaced or deleted, or a change of its members.
fn group_changed(
    facts: &PolicyFacts,
    resolver: &RoleResolver,
    group: &Group,
    before: Option<&Group>,
    action: OperationAction,
    payload: &serde_json::Value,
    users: &[UserId],
) -> Fanout {
    let granted = resolver.group_roles(group);
    let mut work: Vec<Work> = facts
        .targets
        .iter()
        .filter(|(_, s)| s.source_groups)
        .map(|(target, _)| {
            Work::Enqueue(NewOperation {
                connection_id: *target,
                resource_type: ResourceType::Group,
                resource_id: group.id.0,
                action,
                payload: payload.clone(),
            })
        })
        .collect();
    if !users.is_empty() {
        let mut roles = granted.clone();
        if let Some(before) = before {
            roles.extend(resolver.group_roles(before));
        }
        // A member's document changes only through roles, and whether it is in scope only
        // through roles or a scope filter (which can name groups): a group that gives no role
        // changes nothing else about its members.
        for (target, settings) in &facts.targets {
            if !roles.is_empty() || settings.scope_is_filter() {
                work.push(Work::UpdateUsers {
                    connection: *target,
                    users: users.to_vec(),
                });
            }
        }
        work.extend(role_groups(facts, &facts.targets, &roles));
    }
    let key = unmapped_group_key(group.id);
    let unmapped = if granted.is_empty() {
        UnmappedGroup::RaiseIfPopulated {
            group: group.id,
            exception: NewException {
                kind: ExceptionKind::UnmappedGroup,
                subject_key: key,
                connection_id: None,
                subject: group.display_name.clone(),
                summary: format!(
                    "no mapping covers group {:?}; its members get no role from it",
                    group.display_name
                ),
                details: serde_json::json!({
                    "group_id": group.id, "display_name": group.display_name,
                    "external_id": group.external_id, "source_connection_id": group.source_connection_id,
                    "path": group.path(),
                }),
            },
            otherwise: "the group has no members".into(),
        }
    } else {
        UnmappedGroup::Settle {
            key,
            why: "a mapping covers the group".into(),
        }
    };
    Fanout {
        work,
        unmapped: Some(unmapped),
    }
}

/// An operator put users' operations at `connection` back in the queue: their groups go out
/// there again after them (while their work was stuck, the groups went out without them).
fn users_retried(
    facts: &PolicyFacts,
    resolver: &RoleResolver,
    connection: ConnectionId,
    groups: &[Group],
) -> Fanout {
    let Some(target) = facts.targets.iter().find(|(c, _)| *c == connection) else {
        return Fanout::default();
    };
    let mut work = Vec::new();
    if target.1.source_groups {
        work.extend(groups.iter().map(|g| {
            Work::Enqueue(NewOperation {
                connection_id: connection,
                resource_type: ResourceType::Group,
                resource_id: g.id.0,
                action: OperationAction::Update,
                payload: serde_json::json!({}),
            })
        }));
    }
    work.extend(role_groups(
        facts,
        std::slice::from_ref(target),
        &resolver.user_roles(groups),
    ));
    Fanout {
        work,
        unmapped: None,
    }
}

/// Re-renders, at every one of `targets` that carries roles as groups and is bound to them,
/// the target groups of `roles`.
fn role_groups(
    facts: &PolicyFacts,
    targets: &[(ConnectionId, TargetSettings)],
    roles: &BTreeSet<RoleId>,
) -> Vec<Work> {
    let mut work = Vec::new();
    if roles.is_empty() {
        return work;
    }
    for (target, settings) in targets {
        if settings.role_delivery != RoleDelivery::Groups {
            continue;
        }
        for (role, name) in facts.role_names.iter().filter(|(r, name)| {
            roles.contains(r) && settings.roles.iter().any(|b| b.eq_ignore_ascii_case(name))
        }) {
            work.push(Work::Enqueue(NewOperation {
                connection_id: *target,
                resource_type: ResourceType::Group,
                resource_id: role.0,
                action: OperationAction::Update,
                payload: serde_json::json!({ "role": name }),
            }));
        }
    }
    work
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        GroupId, GroupSelector, Json, MatchMode, OrganizationId, RoleMapping, RoleMappingId,
        Timestamp,
    };
    use serde_json::json;

    fn group(name: &str) -> Group {
        Group {
            id: GroupId::new(),
            organization_id: OrganizationId::new(),
            display_name: name.into(),
            external_id: None,
            source_connection_id: None,
            attributes: Json(json!({})),
            version: 1,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        }
    }

    fn mapping(pattern: &str, role: RoleId) -> RoleMapping {
        RoleMapping {
            id: RoleMappingId::new(),
            organization_id: OrganizationId::new(),
            source_connection_id: None,
            selector: GroupSelector::DisplayName,
            match_mode: MatchMode::Exact,
            pattern: pattern.into(),
            role_id: role,
            created_at: Timestamp::now(),
        }
    }

    fn target(settings: serde_json::Value) -> (ConnectionId, TargetSettings) {
        (
            ConnectionId::new(),
            TargetSettings::from_json(&settings).unwrap(),
        )
    }

    /// An organization where group "ICU" grants role "icu-nurse".
    fn facts(targets: Vec<(ConnectionId, TargetSettings)>) -> (PolicyFacts, RoleId) {
        let icu = RoleId::new();
        let facts = PolicyFacts {
            mappings: vec![mapping("ICU", icu)],
            role_names: [(icu, "icu-nurse".to_string())].into(),
            targets,
        };
        (facts, icu)
    }

    fn changed<'a>(group: &'a Group, users: &'a [UserId]) -> DirectoryChange<'a> {
        DirectoryChange::GroupChanged {
            group,
            before: None,
            action: OperationAction::AddMembers,
            payload: json!({ "members": users }),
            users,
        }
    }

    fn enqueued(f: &Fanout) -> Vec<(ConnectionId, ResourceType, uuid::Uuid, OperationAction)> {
        f.work
            .iter()
            .filter_map(|w| match w {
                Work::Enqueue(op) => Some((
                    op.connection_id,
                    op.resource_type,
                    op.resource_id,
                    op.action,
                )),
                Work::UpdateUsers { .. } => None,
            })
            .collect()
    }

    fn updated(f: &Fanout) -> Vec<(ConnectionId, Vec<UserId>)> {
        f.work
            .iter()
            .filter_map(|w| match w {
                Work::UpdateUsers { connection, users } => Some((*connection, users.clone())),
                Work::Enqueue(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_member_joining_a_mapped_group_is_rechecked_everywhere_and_joins_the_role_group() {
        let bound = target(json!({"roles": ["ICU-Nurse"]}));
        let other = target(json!({"roles": ["porter"], "role_delivery": "roles"}));
        let (facts, icu) = facts(vec![bound.clone(), other.clone()]);
        let g = group("icu");
        let ann = UserId::new();
        let f = decide(&facts, &changed(&g, &[ann]));
        assert_eq!(
            updated(&f),
            vec![(bound.0, vec![ann]), (other.0, vec![ann])],
            "both targets re-check the member: a role changed"
        );
        assert_eq!(
            enqueued(&f),
            vec![(bound.0, ResourceType::Group, icu.0, OperationAction::Update)],
            "only the target bound to the role (by name, ignoring case) that carries roles as groups re-renders it"
        );
        assert_eq!(
            f.unmapped,
            Some(UnmappedGroup::Settle {
                key: unmapped_group_key(g.id),
                why: "a mapping covers the group".into()
            })
        );
    }

    #[test]
    fn an_unmapped_group_changes_nobody_unless_a_scope_filter_reads_groups_and_is_flagged() {
        let plain = target(json!({"roles": ["icu-nurse"]}));
        let filtered = target(json!({"user_scope": "groups.display eq \"Porters\""}));
        let mirror = target(json!({"source_groups": true}));
        let (facts, _) = facts(vec![plain.clone(), filtered.clone(), mirror.clone()]);
        let g = group("Porters");
        let bob = UserId::new();
        let f = decide(&facts, &changed(&g, &[bob]));
        assert_eq!(updated(&f), vec![(filtered.0, vec![bob])]);
        assert_eq!(
            enqueued(&f),
            vec![(
                mirror.0,
                ResourceType::Group,
                g.id.0,
                OperationAction::AddMembers
            )],
            "the mirroring target is sent the group itself"
        );
        let Some(UnmappedGroup::RaiseIfPopulated {
            group,
            exception,
            otherwise,
        }) = f.unmapped
        else {
            panic!("an unmapped group is flagged: {:?}", f.unmapped);
        };
        assert_eq!(group, g.id);
        assert_eq!(exception.kind, ExceptionKind::UnmappedGroup);
        assert_eq!(exception.subject, "Porters");
        assert_eq!(exception.details["path"], json!("/Porters"));
        assert_eq!(otherwise, "the group has no members");
    }

    #[test]
    fn a_rename_away_from_a_mapping_takes_the_old_roles_into_account() {
        let bound = target(json!({"roles": ["icu-nurse"]}));
        let (facts, icu) = facts(vec![bound.clone()]);
        let before = group("ICU");
        let mut after = before.clone();
        after.display_name = "ICU (old)".into();
        let members = [UserId::new(), UserId::new()];
        let f = decide(
            &facts,
            &DirectoryChange::GroupChanged {
                group: &after,
                before: Some(&before),
                action: OperationAction::Update,
                payload: json!({}),
                users: &members,
            },
        );
        assert_eq!(updated(&f), vec![(bound.0, members.to_vec())]);
        assert_eq!(
            enqueued(&f),
            vec![(bound.0, ResourceType::Group, icu.0, OperationAction::Update)],
            "the role group loses them"
        );
        assert!(matches!(
            f.unmapped,
            Some(UnmappedGroup::RaiseIfPopulated { .. })
        ));
    }

    #[test]
    fn leaving_and_retries_re_render_role_groups_and_mirrored_groups() {
        let bound = target(json!({"roles": ["icu-nurse"], "source_groups": true}));
        let unbound = target(json!({"roles": ["porter"]}));
        let (facts, icu) = facts(vec![bound.clone(), unbound.clone()]);
        let groups = [group("ICU"), group("Porters")];
        let f = decide(&facts, &DirectoryChange::UserLeaving { groups: &groups });
        assert_eq!(
            enqueued(&f),
            vec![(bound.0, ResourceType::Group, icu.0, OperationAction::Update)]
        );
        assert!(f.unmapped.is_none());

        let f = decide(
            &facts,
            &DirectoryChange::UsersRetried {
                connection: bound.0,
                groups: &groups,
            },
        );
        let update = OperationAction::Update;
        assert_eq!(
            enqueued(&f),
            vec![
                (bound.0, ResourceType::Group, groups[0].id.0, update),
                (bound.0, ResourceType::Group, groups[1].id.0, update),
                (bound.0, ResourceType::Group, icu.0, update),
            ]
        );
        let f = decide(
            &facts,
            &DirectoryChange::UsersRetried {
                connection: unbound.0,
                groups: &groups,
            },
        );
        assert!(f.work.is_empty(), "{:?}", f.work);
        let f = decide(
            &facts,
            &DirectoryChange::UsersRetried {
                connection: ConnectionId::new(),
                groups: &groups,
            },
        );
        assert_eq!(f, Fanout::default(), "a connection that is no target");
    }

    #[test]
    fn nothing_to_do_without_changed_members_but_the_group_itself() {
        let mirror = target(json!({"source_groups": true, "roles": ["icu-nurse"]}));
        let (facts, _) = facts(vec![mirror.clone()]);
        let g = group("ICU");
        let f = decide(&facts, &changed(&g, &[]));
        assert!(updated(&f).is_empty());
        assert_eq!(enqueued(&f).len(), 1, "only the mirrored group");
    }
}
