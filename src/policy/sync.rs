//! The sync plan of a source, pure: what the source reports is compared with what the store
//! holds *for that source*, and the result is the users to create, update, suspend or
//! reactivate, then the groups to create, update or delete with their flattened members. The
//! deletion guard is checked here, before anything is written: a broken source (an empty
//! answer, a wrong filter) must never off-board a hospital.
//!
//! Users are planned first and groups after, because a group's members are named by the
//! store's ids of users the first half may have created: the driver applies the users, reads
//! their ids back, then plans the groups.

use crate::domain::{
    ConnectionId, Group, GroupDraft, GroupId, SourceGroup, SourceUser, SyncCounts, SyncGuard, User,
    UserDraft, UserId, validate,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap, HashSet};

/// What the plan needs of a stored user: who they are, and a digest of the content a sync
/// writes ([`fingerprint`]). A full sync compares every user of the organization with every
/// user of the source; holding the stored ones whole beside the source's doubled the sync's
/// memory for nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUser {
    /// The store's id.
    pub id: UserId,
    /// Their userName.
    pub user_name: String,
    /// The source's id for them.
    pub external_id: Option<String>,
    /// The source that owns them.
    pub source_connection_id: Option<ConnectionId>,
    /// SCIM `active`.
    pub active: bool,
    /// The digest of their content as a sync would write it.
    pub fingerprint: [u8; 32],
}

impl StoredUser {
    /// The plan's view of `user`.
    pub fn of(user: &User) -> Self {
        Self {
            id: user.id,
            user_name: user.user_name.clone(),
            external_id: user.external_id.clone(),
            source_connection_id: user.source_connection_id,
            active: user.active,
            fingerprint: fingerprint(&draft_from(user)),
        }
    }
}

/// Feeds what serde writes into the digest.
struct DigestWriter<'a>(&'a mut Sha256);

impl std::io::Write for DigestWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A digest of everything a draft stores: two drafts have the same one exactly when they are
/// equal (the JSON of a tuple delimits and escapes every field, and objects serialize with
/// sorted keys).
pub fn fingerprint(d: &UserDraft) -> [u8; 32] {
    let mut digest = Sha256::new();
    let fields = (
        &d.user_name,
        &d.external_id,
        &d.display_name,
        &d.given_name,
        &d.family_name,
        &d.emails,
        d.active,
        d.source_connection_id.map(|c| c.0),
        &d.attributes,
    );
    // Writing into a digest cannot fail, and these types always serialize.
    let _ = serde_json::to_writer(DigestWriter(&mut digest), &fields);
    digest.finalize().into()
}

/// The draft that suspends a user the source no longer has: their stored content, inactive.
pub fn suspension_of(user: &User) -> UserDraft {
    let mut draft = draft_from(user);
    draft.active = false;
    draft
}

/// What the users of a sync change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPlan {
    /// Users to create.
    pub create: Vec<UserDraft>,
    /// Users to replace (updates, suspensions of users disabled at the source, reactivations).
    pub update: Vec<(UserId, UserDraft)>,
    /// Users gone from the source, to suspend as they are stored ([`suspension_of`]), with
    /// their userNames.
    pub suspend: Vec<(UserId, String)>,
    /// The userNames of source users left alone because another source owns that userName.
    pub conflicts: Vec<String>,
    /// What the plan found, so far (the group half adds its own).
    pub counts: SyncCounts,
}

/// The guard stopped the sync: it would suspend `suspending` of the source's `active` users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the sync would suspend {suspending} of the source's {active} active users, more than its deletion guard allows; nothing was changed"
)]
pub struct GuardTripped {
    /// Users the sync would suspend.
    pub suspending: u64,
    /// Active users of the source in the store.
    pub active: u64,
    /// The userNames of the first of them, for the person who decides.
    pub first: Vec<String>,
}

/// How many userNames a guard refusal lists.
const GUARD_SAMPLE: usize = 20;

/// The draft that stores `u` as a user of `source`.
fn draft_of(source: ConnectionId, u: &SourceUser) -> UserDraft {
    UserDraft {
        user_name: u.user_name.clone(),
        external_id: Some(u.external_id.clone()),
        display_name: u.display_name.clone(),
        given_name: u.given_name.clone(),
        family_name: u.family_name.clone(),
        emails: u.emails.clone(),
        active: u.active,
        source_connection_id: Some(source),
        attributes: if u.attributes.is_object() {
            u.attributes.clone()
        } else {
            serde_json::json!({})
        },
    }
}

/// The draft that keeps `user` as it is.
fn draft_from(user: &User) -> UserDraft {
    UserDraft {
        user_name: user.user_name.clone(),
        external_id: user.external_id.clone(),
        display_name: user.display_name.clone(),
        given_name: user.given_name.clone(),
        family_name: user.family_name.clone(),
        emails: user.emails.0.clone(),
        active: user.active,
        source_connection_id: user.source_connection_id,
        attributes: user.attributes.0.clone(),
    }
}

/// Plans the users of `source`. `reported` is everything the source holds when `gone` is
/// `None` (a full sync: a stored user it leaves out is gone), or, incremental, the users that
/// changed, with `gone` naming by external id those the source no longer has. `local` is every
/// user of the organization (userNames are unique across sources, so a userName another source
/// owns is a conflict, not a create). Fails when the guard trips, unless `force`.
pub fn plan_users(
    source: ConnectionId,
    reported: &[SourceUser],
    gone: Option<&[String]>,
    local: &[StoredUser],
    guard: SyncGuard,
    force: bool,
) -> Result<UserPlan, GuardTripped> {
    let mut plan = UserPlan::default();
    plan.counts.source_users = reported.len() as u64;
    let mine: HashMap<&str, &StoredUser> = local
        .iter()
        .filter(|u| u.source_connection_id == Some(source))
        .filter_map(|u| u.external_id.as_deref().map(|e| (e, u)))
        .collect();
    let by_name: HashMap<String, &StoredUser> = local
        .iter()
        .map(|u| (validate::user_name_key(&u.user_name), u))
        .collect();
    let mut seen: HashSet<UserId> = HashSet::new();
    let mut suspending: Vec<String> = Vec::new();
    // A source that reports one id twice is read once (the first wins).
    let mut reported_ids: HashSet<&str> = HashSet::new();
    for u in reported {
        if !reported_ids.insert(u.external_id.as_str()) {
            continue;
        }
        let draft = draft_of(source, u);
        let existing = mine.get(u.external_id.as_str()).copied().or_else(|| {
            // A user of this userName that no source owns (or this one, under another id) is
            // taken over; one that another source owns is left to it.
            by_name
                .get(&validate::user_name_key(&u.user_name))
                .copied()
                .filter(|l| l.source_connection_id.is_none_or(|s| s == source))
        });
        match existing {
            Some(user) => {
                seen.insert(user.id);
                // Disabled at the source and already off here: content changes of a user
                // nobody can use wait until they are enabled again.
                if user.fingerprint == fingerprint(&draft) || (!draft.active && !user.active) {
                    plan.counts.unchanged += 1;
                    continue;
                }
                match (user.active, draft.active) {
                    (true, false) => {
                        plan.counts.suspended += 1;
                        suspending.push(user.user_name.clone());
                    }
                    (false, true) => plan.counts.reactivated += 1,
                    _ => plan.counts.updated += 1,
                }
                plan.update.push((user.id, draft));
            }
            None if by_name.contains_key(&validate::user_name_key(&u.user_name)) => {
                plan.counts.conflicts += 1;
                plan.conflicts.push(u.user_name.clone());
            }
            None => {
                plan.counts.created += 1;
                plan.create.push(draft);
            }
        }
    }
    // Gone from the source: suspended here (a person may be back; deleting is the targets'
    // delete mode's business).
    let gone: Option<HashSet<&str>> = gone.map(|g| g.iter().map(String::as_str).collect());
    let is_gone = |u: &StoredUser| match &gone {
        None => true,
        Some(g) => u.external_id.as_deref().is_some_and(|e| g.contains(e)),
    };
    for user in local.iter().filter(|u| {
        u.source_connection_id == Some(source) && u.active && !seen.contains(&u.id) && is_gone(u)
    }) {
        plan.counts.suspended += 1;
        suspending.push(user.user_name.clone());
        plan.suspend.push((user.id, user.user_name.clone()));
    }
    let active = local
        .iter()
        .filter(|u| u.source_connection_id == Some(source) && u.active)
        .count() as u64;
    let n = suspending.len() as u64;
    if !force && guard.trips(n, active) {
        suspending.truncate(GUARD_SAMPLE);
        return Err(GuardTripped {
            suspending: n,
            active,
            first: suspending,
        });
    }
    Ok(plan)
}

/// What the groups of a sync change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupPlan {
    /// Groups to create, with their members.
    pub create: Vec<GroupDraft>,
    /// Groups to replace, with their members.
    pub update: Vec<(GroupId, GroupDraft)>,
    /// Groups gone at the source.
    pub delete: Vec<GroupId>,
}

/// A source group's members after flattening: its own and those of every group inside it,
/// however deep (a cycle is walked once).
fn flattened<'a>(
    group: &'a SourceGroup,
    by_id: &HashMap<&str, &'a SourceGroup>,
) -> BTreeSet<&'a str> {
    let mut members = BTreeSet::new();
    let mut visited: HashSet<&str> = HashSet::new();
    let mut stack = vec![group];
    while let Some(g) = stack.pop() {
        if !visited.insert(g.external_id.as_str()) {
            continue;
        }
        members.extend(g.members.iter().map(String::as_str));
        stack.extend(
            g.child_groups
                .iter()
                .filter_map(|c| by_id.get(c.as_str()).copied()),
        );
    }
    members
}

/// A group's path: the source's, else its parent's path and its name, else `/` and its name.
fn path_of(
    group: &SourceGroup,
    by_id: &HashMap<&str, &SourceGroup>,
    parent: &HashMap<&str, &str>,
) -> String {
    if let Some(p) = &group.path {
        return p.clone();
    }
    let mut names = vec![group.display_name.as_str()];
    let mut visited: HashSet<&str> = HashSet::from([group.external_id.as_str()]);
    let mut at = group.external_id.as_str();
    while let Some(up) = parent.get(at).copied() {
        if !visited.insert(up) {
            break;
        }
        let Some(g) = by_id.get(up) else { break };
        if let Some(p) = &g.path {
            return format!(
                "{p}/{}",
                names.iter().rev().cloned().collect::<Vec<_>>().join("/")
            );
        }
        names.push(g.display_name.as_str());
        at = up;
    }
    names.reverse();
    format!("/{}", names.join("/"))
}

/// Plans the groups of `source` and adds their counts to `counts`. `users` gives the store's
/// id of each source user by external id (after the user half is applied); `local` is the
/// source's groups in the store, with their members.
pub fn plan_groups(
    source: ConnectionId,
    reported: &[SourceGroup],
    users: &HashMap<String, UserId>,
    local: &[(Group, Vec<UserId>)],
    counts: &mut SyncCounts,
) -> GroupPlan {
    let mut plan = GroupPlan::default();
    counts.source_groups = reported.len() as u64;
    let by_id: HashMap<&str, &SourceGroup> = reported
        .iter()
        .map(|g| (g.external_id.as_str(), g))
        .collect();
    let mut parent: HashMap<&str, &str> = HashMap::new();
    for g in reported {
        for c in &g.child_groups {
            parent.entry(c.as_str()).or_insert(g.external_id.as_str());
        }
    }
    let mine: HashMap<&str, &(Group, Vec<UserId>)> = local
        .iter()
        .filter(|(g, _)| g.source_connection_id == Some(source))
        .filter_map(|entry| entry.0.external_id.as_deref().map(|e| (e, entry)))
        .collect();
    let mut seen: HashSet<&str> = HashSet::new();
    for g in reported {
        if !seen.insert(g.external_id.as_str()) {
            continue;
        }
        let members: BTreeSet<UserId> = flattened(g, &by_id)
            .into_iter()
            .filter_map(|m| users.get(m).copied())
            .collect();
        let hierarchical = g.path.is_some() || parent.contains_key(g.external_id.as_str());
        let attributes = if hierarchical {
            serde_json::json!({ "path": path_of(g, &by_id, &parent) })
        } else {
            serde_json::json!({})
        };
        let draft = GroupDraft {
            display_name: g.display_name.clone(),
            external_id: Some(g.external_id.clone()),
            source_connection_id: Some(source),
            attributes,
            members: Some(members.iter().copied().collect()),
            // Flattened above: a source's hierarchy is its paths and these member lists.
            child_groups: None,
        };
        match mine.get(g.external_id.as_str()) {
            Some((group, have)) => {
                let have: BTreeSet<UserId> = have.iter().copied().collect();
                let added = members.difference(&have).count() as u64;
                let removed = have.difference(&members).count() as u64;
                let content_same = group.display_name == draft.display_name
                    && group.attributes.0 == draft.attributes;
                if content_same && added == 0 && removed == 0 {
                    continue;
                }
                counts.groups_updated += 1;
                counts.memberships_added += added;
                counts.memberships_removed += removed;
                plan.update.push((group.id, draft));
            }
            None => {
                counts.groups_created += 1;
                counts.memberships_added += members.len() as u64;
                plan.create.push(draft);
            }
        }
    }
    for (external_id, (group, have)) in &mine {
        if !seen.contains(external_id) {
            counts.groups_deleted += 1;
            counts.memberships_removed += have.len() as u64;
            plan.delete.push(group.id);
        }
    }
    plan.delete.sort_by_key(|g| g.0);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Json, LifecycleState, OrganizationId, Timestamp};

    fn conn() -> ConnectionId {
        ConnectionId(uuid::Uuid::from_u128(7))
    }

    fn reported(n: usize) -> Vec<SourceUser> {
        (0..n)
            .map(|i| SourceUser {
                external_id: format!("kc-{i}"),
                user_name: format!("nurse{i}@riverside.example"),
                display_name: None,
                given_name: Some("Nurse".into()),
                family_name: Some(format!("N{i}")),
                emails: Vec::new(),
                active: true,
                attributes: serde_json::json!({}),
            })
            .collect()
    }

    /// The users a first sync of `r` stores, as the plan sees them.
    fn stored(r: &[SourceUser]) -> Vec<StoredUser> {
        stored_users(r).iter().map(StoredUser::of).collect()
    }

    /// The users a first sync of `r` stores.
    fn stored_users(r: &[SourceUser]) -> Vec<User> {
        r.iter()
            .enumerate()
            .map(|(i, u)| {
                User::from_draft(
                    UserId(uuid::Uuid::from_u128(1000 + i as u128)),
                    OrganizationId(uuid::Uuid::from_u128(1)),
                    &draft_of(conn(), u),
                    Timestamp::now(),
                )
            })
            .collect()
    }

    #[test]
    fn a_first_sync_creates_and_a_second_changes_nothing() {
        let r = reported(3);
        let first = plan_users(conn(), &r, None, &[], SyncGuard::default(), false).unwrap();
        assert_eq!(first.create.len(), 3);
        assert_eq!(first.counts.created, 3);
        let again = plan_users(conn(), &r, None, &stored(&r), SyncGuard::default(), false).unwrap();
        assert!(again.create.is_empty() && again.update.is_empty());
        assert_eq!(again.counts.unchanged, 3);
        assert!(again.counts.changed_nothing());
    }

    #[test]
    fn changes_suspensions_reactivations_and_conflicts() {
        let mut r = reported(4);
        let local = stored(&r);
        r[0].family_name = Some("Renamed".into());
        r[1].active = false;
        r.remove(2); // gone from the source
        // A user of another source, and a new user of the same name.
        let mut other = local[3].clone();
        other.id = UserId(uuid::Uuid::from_u128(99));
        other.user_name = "taken@riverside.example".into();
        other.source_connection_id = Some(ConnectionId(uuid::Uuid::from_u128(8)));
        let mut local = local;
        local.push(other);
        let mut newcomer = reported(1).remove(0);
        newcomer.external_id = "kc-new".into();
        newcomer.user_name = "Taken@Riverside.example".into();
        r.push(newcomer);
        let guard = SyncGuard {
            share: 1.0,
            min_users: 1,
        };
        let plan = plan_users(conn(), &r, None, &local, guard, false).unwrap();
        assert_eq!(plan.counts.updated, 1);
        assert_eq!(plan.counts.suspended, 2, "disabled, and gone");
        assert_eq!(plan.counts.unchanged, 1);
        assert_eq!(plan.counts.conflicts, 1);
        assert_eq!(plan.conflicts, vec!["Taken@Riverside.example".to_string()]);
        assert!(plan.create.is_empty());
        assert!(plan.suspend.iter().any(|(id, _)| *id == local[2].id));
        assert!(
            plan.update
                .iter()
                .any(|(id, d)| *id == local[1].id && !d.active)
        );
        // Suspended, then enabled again at the source.
        let mut off = stored_users(&reported(4));
        off[1].active = false;
        off[1].lifecycle_state = LifecycleState::Suspended;
        let off: Vec<StoredUser> = off.iter().map(StoredUser::of).collect();
        let back = reported(4);
        let plan = plan_users(conn(), &back, None, &off, guard, false).unwrap();
        assert_eq!(plan.counts.reactivated, 1);
    }

    #[test]
    fn the_guard_stops_a_source_that_suddenly_has_nobody() {
        let r = reported(40);
        let local = stored(&r);
        let e = plan_users(conn(), &[], None, &local, SyncGuard::default(), false).unwrap_err();
        assert_eq!((e.suspending, e.active), (40, 40));
        assert_eq!(e.first.len(), 20);
        // Three of forty (7.5 %) pass; five (12.5 %) do not; `force` applies anyway.
        assert!(plan_users(conn(), &r[3..], None, &local, SyncGuard::default(), false).is_ok());
        assert!(plan_users(conn(), &r[5..], None, &local, SyncGuard::default(), false).is_err());
        let forced = plan_users(conn(), &[], None, &local, SyncGuard::default(), true).unwrap();
        assert_eq!(forced.counts.suspended, 40);
        // Below `min_users` the share does not matter.
        let few = stored(&r[..4]);
        assert!(plan_users(conn(), &[], None, &few, SyncGuard::default(), false).is_ok());
    }

    #[test]
    fn an_incremental_plan_suspends_only_what_the_source_says_is_gone() {
        let r = reported(6);
        let local = stored(&r);
        let mut changed = vec![r[0].clone()];
        changed[0].given_name = Some("Changed".into());
        let gone = vec![r[1].external_id.clone()];
        let plan = plan_users(
            conn(),
            &changed,
            Some(&gone),
            &local,
            SyncGuard::default(),
            false,
        )
        .unwrap();
        assert_eq!(
            (plan.counts.updated, plan.counts.suspended),
            (1, 1),
            "the four not named are left alone"
        );
        assert_eq!(
            plan.suspend,
            vec![(local[1].id, local[1].user_name.clone())]
        );
        // The guard counts what an incremental sync suspends too.
        let all: Vec<String> = r.iter().map(|u| u.external_id.clone()).collect();
        assert!(plan_users(conn(), &[], Some(&all), &local, SyncGuard::default(), false).is_err());
    }

    fn group(id: &str, name: &str, members: &[&str], children: &[&str]) -> SourceGroup {
        SourceGroup {
            external_id: id.into(),
            display_name: name.into(),
            path: None,
            members: members.iter().map(|m| m.to_string()).collect(),
            child_groups: children.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn nested_groups_are_flattened_with_paths_and_cycles_walked_once() {
        let groups = vec![
            group("h", "hospital", &["a"], &["icu"]),
            group("icu", "icu", &["b"], &["night"]),
            group("night", "night", &["c"], &["h"]), // a cycle back to the top
            group("solo", "pharmacy", &["a"], &[]),
        ];
        let users: HashMap<String, UserId> = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, u)| (u.to_string(), UserId(uuid::Uuid::from_u128(i as u128 + 1))))
            .collect();
        let mut counts = SyncCounts::default();
        let plan = plan_groups(conn(), &groups, &users, &[], &mut counts);
        let by_name: HashMap<&str, &GroupDraft> = plan
            .create
            .iter()
            .map(|g| (g.display_name.as_str(), g))
            .collect();
        assert_eq!(by_name["hospital"].members.as_ref().unwrap().len(), 3);
        assert_eq!(
            by_name["icu"].members.as_ref().unwrap().len(),
            3,
            "the cycle"
        );
        assert_eq!(by_name["pharmacy"].members.as_ref().unwrap().len(), 1);
        assert_eq!(by_name["pharmacy"].attributes, serde_json::json!({}));
        assert_eq!(by_name["night"].attributes["path"], "/hospital/icu/night");
        assert_eq!(counts.groups_created, 4);

        // Stored as planned, the same report changes nothing; a member leaving the inner
        // group leaves the outer ones too; a group gone at the source is deleted.
        let local: Vec<(Group, Vec<UserId>)> = plan
            .create
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let g = Group {
                    id: GroupId(uuid::Uuid::from_u128(500 + i as u128)),
                    organization_id: OrganizationId(uuid::Uuid::from_u128(1)),
                    display_name: d.display_name.clone(),
                    external_id: d.external_id.clone(),
                    source_connection_id: Some(conn()),
                    attributes: Json(d.attributes.clone()),
                    version: 1,
                    created_at: Timestamp::now(),
                    updated_at: Timestamp::now(),
                };
                (g, d.members.clone().unwrap())
            })
            .collect();
        let mut counts = SyncCounts::default();
        let same = plan_groups(conn(), &groups, &users, &local, &mut counts);
        assert_eq!(same, GroupPlan::default());
        let mut changed = groups.clone();
        changed[2].members.clear(); // c leaves /hospital/icu/night
        changed.pop(); // pharmacy is gone
        let mut counts = SyncCounts::default();
        let plan = plan_groups(conn(), &changed, &users, &local, &mut counts);
        assert_eq!(plan.update.len(), 3, "night, icu and hospital each lose c");
        assert_eq!(counts.memberships_removed, 3 + 1);
        assert_eq!(plan.delete.len(), 1);
        assert_eq!(counts.groups_deleted, 1);
    }
}
