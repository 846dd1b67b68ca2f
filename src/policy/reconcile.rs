//! Full reconciliation of one target, as a pure plan: desired state (the users and role
//! groups its policy gives it, from the store's rows) against what the target really holds,
//! one page of its `/Users` and `/Groups` at a time. The engine's driver
//! (`engine::reconcile`) reads the rows, pages through the target, and commits each page's
//! [`Repairs`] in one store transaction; nothing here does I/O.
//!
//! Repairs go through the queue, like every other change, so they keep its order, rate limits,
//! retries and failed inbox: a resource changed out of band has its link set to what the
//! target really holds and gets an update (which then sends exactly the difference); a missing
//! one loses its link and gets a create; one nobody here knows is flagged, adopted, or deleted
//! by a queued operation, per the connection's `unknown_resources` policy. A resource whose
//! `externalId` is a local id is ours and is always re-linked.
//!
//! What can only be known once the whole target has been read — that a linked resource is
//! gone there, and which resources it should hold and does not — is decided by
//! [`Reconciler::finish`], after a complete walk; a walk that fails midway repairs what its
//! pages found and nothing more.

use super::attributes::AttributeError;
use super::roles::RoleResolver;
use super::target::TargetPolicy;
use crate::domain::*;
use crate::scim::render;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use uuid::Uuid;

/// Findings kept in a report for people (counts cover all of them).
const FINDINGS_KEPT: usize = 200;

/// What a run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileCounts {
    /// Local users and role groups compared.
    pub checked: u64,
    /// Resources read from the target.
    pub remote: u64,
    /// Matching what they should be.
    pub unchanged: u64,
    /// Changed out of band; corrected.
    pub corrected: u64,
    /// Gone at the target; created again.
    pub recreated: u64,
    /// Should be there and never were; created.
    pub created: u64,
    /// There but out of scope; removed per policy.
    pub removed: u64,
    /// Unknown here; adopted (linked to the matching local resource).
    pub adopted: u64,
    /// Unknown here; raised as exceptions.
    pub flagged: u64,
    /// Unknown here; deleted at the target (by a queued operation).
    pub deleted_unknown: u64,
    /// Skipped because an operation for them is still in the queue.
    pub in_queue: u64,
}

impl ReconcileCounts {
    /// Whether the run found nothing to do.
    pub fn is_clean(&self) -> bool {
        self.corrected
            + self.recreated
            + self.created
            + self.removed
            + self.adopted
            + self.flagged
            + self.deleted_unknown
            == 0
    }
}

/// One thing a run found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `corrected`, `recreated`, `created`, `removed`, `adopted`, `flagged`, `deleted_unknown`.
    pub kind: &'static str,
    /// A userName or group name.
    pub subject: String,
    /// What differs, for people.
    pub detail: String,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReconcileReport {
    /// The run as recorded.
    pub run: ReconcileRun,
    /// What it found and did.
    pub counts: ReconcileCounts,
    /// The first findings (all are counted).
    pub findings: Vec<Finding>,
}

/// What the store holds that a reconciliation compares with the target.
#[derive(Debug, Clone, Default)]
pub struct LocalState {
    /// Every user of the organization.
    pub users: Vec<User>,
    /// Every group.
    pub groups: Vec<Group>,
    /// Every (group, user) membership.
    pub memberships: Vec<(GroupId, UserId)>,
    /// Every mapping.
    pub mappings: Vec<RoleMapping>,
    /// Every role.
    pub roles: Vec<Role>,
    /// The target's links.
    pub links: Vec<TargetLink>,
    /// The local resources with work queued at this target (left to that work).
    pub queued: BTreeSet<Uuid>,
}

/// Case-insensitive attribute lookup (SCIM attribute names ignore case).
fn get_ci<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Whether what a target holds (`remote`) says what we sent (`desired`): objects may carry
/// more (a target adds `display`, `$ref`, `primary`...); lists must hold the same elements in
/// any order.
pub fn covers(remote: &Value, desired: &Value) -> bool {
    match (remote, desired) {
        (Value::Object(r), Value::Object(d)) => d.iter().all(|(k, dv)| match get_ci(r, k) {
            Some(rv) => covers(rv, dv),
            None => dv.is_null(),
        }),
        (Value::Array(r), Value::Array(d)) => {
            r.len() == d.len() && d.iter().all(|dv| r.iter().any(|rv| covers(rv, dv)))
        }
        (Value::Number(r), Value::Number(d)) => r.as_f64() == d.as_f64(),
        _ => remote == desired,
    }
}

/// What the target holds, in the shape of what we send: for each attribute we manage (those
/// of `desired` and of what was last sent), our value where the target agrees, the target's
/// where it does not, nothing where it has none. Its hash equals the desired one exactly when
/// nothing drifted, and as the link's "last sent" it makes the next update send only the
/// difference.
pub fn observed(remote: &Value, desired: &Value, last_sent: Option<&Value>) -> Value {
    let empty = Map::new();
    let r = remote.as_object().unwrap_or(&empty);
    let d = desired.as_object().unwrap_or(&empty);
    let mut keys: BTreeSet<&String> = d.keys().collect();
    if let Some(Value::Object(l)) = last_sent {
        keys.extend(l.keys());
    }
    let mut out = Map::new();
    for k in keys {
        if k == "schemas" {
            if let Some(v) = d.get(k) {
                out.insert(k.clone(), v.clone());
            }
            continue;
        }
        match (get_ci(r, k), d.get(k)) {
            (Some(rv), Some(dv)) if covers(rv, dv) => {
                out.insert(k.clone(), dv.clone());
            }
            (Some(rv), _) => {
                out.insert(k.clone(), rv.clone());
            }
            (None, _) => {}
        }
    }
    Value::Object(out)
}

/// What differs between two documents, for people (attribute names only; no values).
fn differing(observed: &Value, desired: &Value) -> String {
    let empty = Map::new();
    let o = observed.as_object().unwrap_or(&empty);
    let d = desired.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = d
        .iter()
        .filter(|(k, v)| o.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .chain(o.keys().filter(|k| !d.contains_key(*k)))
        .collect();
    keys.sort();
    keys.dedup();
    format!(
        "differs in {}",
        keys.iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn remote_id(v: &Value) -> Option<String> {
    v.get("id").and_then(Value::as_str).map(str::to_string)
}

/// What should become of a linked local resource, once the target's copy is seen (or not).
#[derive(Debug, Clone)]
enum Expected {
    /// It should be there, like this.
    There {
        /// The document it should hold.
        desired: Value,
    },
    /// It should not be there (out of scope): removed if still active there.
    Gone,
}

/// A local resource that is linked at the target, waiting for its remote copy to be read.
#[derive(Debug, Clone)]
struct Linked {
    link: TargetLink,
    subject: String,
    expected: Expected,
}

/// A reconciliation of one target in progress: built from the store's rows, fed the target's
/// pages, and finished once the target has been read whole.
pub struct Reconciler {
    policy: TargetPolicy,
    organization_id: OrganizationId,
    connection_id: ConnectionId,
    connection_name: String,
    counts: ReconcileCounts,
    findings: Vec<Finding>,
    /// Linked resources by (type, remote id), until their remote copy is seen.
    linked: HashMap<(ResourceType, String), Linked>,
    /// Remote ids that a link names (seen or not), which are therefore not unknown.
    linked_remote: HashSet<(ResourceType, String)>,
    /// In scope, active, never provisioned: created at the end unless the target turns out to
    /// hold them already (adoption).
    unplaced_users: BTreeMap<Uuid, (User, BTreeSet<RoleId>)>,
    /// Groups that should be at the target and have no link.
    unplaced_groups: BTreeSet<Uuid>,
    /// The groups the target should hold: (name, document).
    desired_groups: BTreeMap<Uuid, (String, Value)>,
    /// Ids of the local resources the target should hold (an `externalId` naming one is ours).
    local_ids: BTreeSet<String>,
    /// In-scope users by lower-cased userName, and desired groups by lower-cased name, for
    /// adoption.
    by_user_name: HashMap<String, UserId>,
    group_names: HashMap<String, Uuid>,
    /// Local resources with work queued at the target.
    queued: BTreeSet<Uuid>,
    /// Role groups already re-rendered by this run.
    role_groups_queued: BTreeSet<RoleId>,
}

impl Reconciler {
    /// Compares the store's rows with what `policy` says the target should hold; what is
    /// compared and what can be decided without the target is counted already.
    pub fn new(
        connection: &Connection,
        policy: TargetPolicy,
        local: LocalState,
    ) -> Result<Self, AttributeError> {
        let mut r = Reconciler {
            organization_id: connection.organization_id,
            connection_id: connection.id,
            connection_name: connection.name.clone(),
            counts: ReconcileCounts::default(),
            findings: Vec::new(),
            linked: HashMap::new(),
            linked_remote: local
                .links
                .iter()
                .map(|l| (l.resource_type, l.remote_id.clone()))
                .collect(),
            unplaced_users: BTreeMap::new(),
            unplaced_groups: BTreeSet::new(),
            desired_groups: BTreeMap::new(),
            local_ids: BTreeSet::new(),
            by_user_name: HashMap::new(),
            group_names: HashMap::new(),
            queued: local.queued.clone(),
            role_groups_queued: BTreeSet::new(),
            policy,
        };
        r.compare_local(&local)?;
        Ok(r)
    }

    /// Whether the target's groups need reading (it holds role groups or mirrored groups).
    pub fn needs_groups(&self) -> bool {
        self.policy.roles_as_groups() || self.policy.settings.source_groups
    }

    /// What has been found so far.
    pub fn counts(&self) -> &ReconcileCounts {
        &self.counts
    }

    /// The first findings so far.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// The run's counts and findings.
    pub fn into_report(self) -> (ReconcileCounts, Vec<Finding>) {
        (self.counts, self.findings)
    }

    fn found(&mut self, kind: &'static str, subject: &str, detail: String) {
        if self.findings.len() < FINDINGS_KEPT {
            self.findings.push(Finding {
                kind,
                subject: subject.to_string(),
                detail,
            });
        }
    }

    fn update(&self, resource_type: ResourceType, local: Uuid) -> NewOperation {
        NewOperation {
            connection_id: self.connection_id,
            resource_type,
            resource_id: local,
            action: OperationAction::Update,
            payload: serde_json::json!({ "reconcile": true }),
        }
    }

    /// Re-renders the role groups of `roles` at the target (a user arriving there joins them).
    fn join_role_groups(&mut self, roles: &BTreeSet<RoleId>, repairs: &mut Repairs) {
        if !self.policy.roles_as_groups() {
            return;
        }
        let bound: Vec<RoleId> = roles
            .iter()
            .filter(|r| self.policy.bound_roles().contains(r))
            .copied()
            .collect();
        for r in bound {
            if self.role_groups_queued.insert(r) {
                repairs
                    .operations
                    .push(self.update(ResourceType::Group, r.0));
            }
        }
    }

    /// Decides, from the store's rows alone, what each local user and desired group expects
    /// of the target.
    fn compare_local(&mut self, local: &LocalState) -> Result<(), AttributeError> {
        let resolver = RoleResolver::new(&local.mappings);
        let group_by_id: HashMap<GroupId, &Group> =
            local.groups.iter().map(|g| (g.id, g)).collect();
        let roles_of_group: HashMap<GroupId, BTreeSet<RoleId>> = local
            .groups
            .iter()
            .map(|g| (g.id, resolver.group_roles(g)))
            .collect();
        let mut groups_of: HashMap<UserId, Vec<&Group>> = HashMap::new();
        let mut members_of: HashMap<GroupId, Vec<UserId>> = HashMap::new();
        for (g, u) in &local.memberships {
            if let Some(group) = group_by_id.get(g) {
                groups_of.entry(*u).or_default().push(group);
                members_of.entry(*g).or_default().push(*u);
            }
        }
        let mut user_links: HashMap<Uuid, &TargetLink> = HashMap::new();
        let mut group_links: HashMap<Uuid, &TargetLink> = HashMap::new();
        for l in &local.links {
            match l.resource_type {
                ResourceType::User => user_links.insert(l.local_id, l),
                ResourceType::Group => group_links.insert(l.local_id, l),
            };
        }

        // Users.
        let mut in_scope: HashMap<UserId, BTreeSet<RoleId>> = HashMap::new();
        for user in &local.users {
            let gs = groups_of.get(&user.id).cloned().unwrap_or_default();
            let user_roles: BTreeSet<RoleId> = gs
                .iter()
                .flat_map(|g| roles_of_group[&g.id].iter().copied())
                .collect();
            let wanted = user.lifecycle_state != LifecycleState::Deprovisioned
                && self.policy.in_scope(user, &user_roles, &gs);
            if wanted {
                self.by_user_name
                    .insert(user.user_name.to_lowercase(), user.id);
                in_scope.insert(user.id, user_roles.clone());
            }
            self.counts.checked += 1;
            if self.queued.contains(&user.id.0) {
                self.counts.in_queue += 1;
                continue;
            }
            match (wanted, user_links.get(&user.id.0)) {
                (true, Some(link)) => {
                    let desired = self.policy.user_document(user, &user_roles)?;
                    self.expect(link, &user.user_name, Expected::There { desired });
                }
                (true, None) => {
                    // An inactive user that never reached the target needs nothing there.
                    if render::is_active(user) {
                        self.unplaced_users
                            .insert(user.id.0, (user.clone(), user_roles));
                    } else {
                        self.counts.unchanged += 1;
                    }
                }
                (false, Some(link)) => self.expect(link, &user.user_name, Expected::Gone),
                (false, None) => {}
            }
        }

        // Role groups (and mirrored source groups): desired members are in-scope holders that
        // are at the target.
        let remote_of_user = |u: &UserId| user_links.get(&u.0).map(|l| l.remote_id.clone());
        if self.policy.roles_as_groups() {
            for role in local
                .roles
                .iter()
                .filter(|r| self.policy.bound_roles().contains(&r.id))
            {
                let mut members: Vec<String> = in_scope
                    .iter()
                    .filter(|(_, rs)| rs.contains(&role.id))
                    .filter_map(|(u, _)| remote_of_user(u))
                    .collect();
                members.sort();
                if members.is_empty() && !group_links.contains_key(&role.id.0) {
                    continue;
                }
                let doc = self.policy.role_group_document(role.id, &members);
                self.desired_groups
                    .insert(role.id.0, (role.name.clone(), doc));
            }
        }
        if self.policy.settings.source_groups {
            for g in &local.groups {
                let members: Vec<String> = members_of
                    .get(&g.id)
                    .map(|ms| {
                        ms.iter()
                            .filter(|u| in_scope.contains_key(u))
                            .filter_map(remote_of_user)
                            .collect()
                    })
                    .unwrap_or_default();
                self.desired_groups.insert(
                    g.id.0,
                    (g.display_name.clone(), render::group_document(g, &members)),
                );
            }
        }
        let desired: Vec<(Uuid, String, Value)> = self
            .desired_groups
            .iter()
            .map(|(id, (name, doc))| (*id, name.clone(), doc.clone()))
            .collect();
        for (local_id, name, desired) in desired {
            self.counts.checked += 1;
            if self.queued.contains(&local_id) {
                self.counts.in_queue += 1;
                continue;
            }
            match group_links.get(&local_id) {
                Some(link) => self.expect(link, &name, Expected::There { desired }),
                None => {
                    self.unplaced_groups.insert(local_id);
                }
            }
        }

        self.local_ids = in_scope
            .keys()
            .map(|u| u.to_string())
            .chain(self.desired_groups.keys().map(|g| g.to_string()))
            .collect();
        self.group_names = self
            .desired_groups
            .iter()
            .map(|(id, (name, _))| (name.to_lowercase(), *id))
            .collect();
        Ok(())
    }

    fn expect(&mut self, link: &TargetLink, subject: &str, expected: Expected) {
        self.linked.insert(
            (link.resource_type, link.remote_id.clone()),
            Linked {
                link: link.clone(),
                subject: subject.to_string(),
                expected,
            },
        );
    }

    /// The repairs that one page of the target's resources of type `rt` calls for.
    pub fn page(
        &mut self,
        rt: ResourceType,
        resources: &[Value],
    ) -> Result<Repairs, AttributeError> {
        let mut repairs = Repairs::default();
        self.counts.remote += resources.len() as u64;
        for remote in resources {
            let Some(rid) = remote_id(remote) else {
                continue;
            };
            if let Some(linked) = self.linked.remove(&(rt, rid.clone())) {
                self.check_linked(linked, remote, &mut repairs);
            } else if !self.linked_remote.contains(&(rt, rid.clone())) {
                self.unknown(rt, rid, remote, &mut repairs)?;
            }
        }
        Ok(repairs)
    }

    /// Compares a linked resource with what the target holds and decides its repair.
    fn check_linked(&mut self, linked: Linked, remote: &Value, repairs: &mut Repairs) {
        let Linked {
            link,
            subject,
            expected,
        } = linked;
        let update = self.update(link.resource_type, link.local_id);
        match expected {
            Expected::There { desired } => {
                let seen = observed(remote, &desired, link.last_sent.as_ref().map(|j| &j.0));
                if render::content_hash(&seen) == render::content_hash(&desired) {
                    self.counts.unchanged += 1;
                    return;
                }
                self.counts.corrected += 1;
                self.found("corrected", &subject, differing(&seen, &desired));
                repairs.links.push(TargetLink {
                    content_hash: render::content_hash(&seen),
                    last_sent: Some(Json(seen)),
                    synced_at: Timestamp::now(),
                    ..link
                });
                repairs.operations.push(update);
            }
            Expected::Gone => {
                let still_active = remote
                    .get("active")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if still_active {
                    self.counts.removed += 1;
                    self.found(
                        "removed",
                        &subject,
                        "out of scope but active at the target".into(),
                    );
                    repairs.operations.push(NewOperation {
                        action: self.policy.leave_action(),
                        ..update
                    });
                } else {
                    self.counts.unchanged += 1;
                }
            }
        }
    }

    /// A resource at the target that nothing here is linked to: adopted, deleted or flagged.
    fn unknown(
        &mut self,
        rt: ResourceType,
        rid: String,
        remote: &Value,
        repairs: &mut Repairs,
    ) -> Result<(), AttributeError> {
        let name_attr = match rt {
            ResourceType::User => "userName",
            ResourceType::Group => "displayName",
        };
        let name = remote
            .get(name_attr)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let external = remote.get("externalId").and_then(Value::as_str);
        // Ours, with work on its way there (a create in flight, before its link is written):
        // that work settles it.
        if external
            .and_then(|x| x.parse::<Uuid>().ok())
            .is_some_and(|id| self.queued.contains(&id))
        {
            self.counts.in_queue += 1;
            return Ok(());
        }
        // Only a local resource the target should hold and does not yet can be adopted.
        let unplaced = |id: &Uuid| match rt {
            ResourceType::User => self.unplaced_users.contains_key(id),
            ResourceType::Group => self.unplaced_groups.contains(id),
        };
        // Ours for certain: its externalId is a local id this target should hold.
        let ours = external
            .filter(|x| self.local_ids.contains(*x))
            .and_then(|x| x.parse::<Uuid>().ok())
            .filter(unplaced);
        let by_name = match rt {
            ResourceType::User => self.by_user_name.get(&name.to_lowercase()).map(|u| u.0),
            ResourceType::Group => self.group_names.get(&name.to_lowercase()).copied(),
        }
        .filter(unplaced);
        let choice = self.policy.settings.unknown_resources;
        let adopt_as = match (ours, choice) {
            (Some(id), _) => Some(id),
            (None, UnknownResources::Adopt) if external.is_none() => by_name,
            _ => None,
        };
        if let Some(local) = adopt_as {
            return self.adopt(rt, local, rid, &name, remote, repairs);
        }
        let key = format!("unknown:{}:{rt}:{rid}", self.connection_id);
        match choice {
            UnknownResources::Remove => {
                self.counts.deleted_unknown += 1;
                self.found(
                    "deleted_unknown",
                    &name,
                    format!("{rt} {rid} is unknown here; deleted"),
                );
                repairs.operations.push(NewOperation::delete_unknown(
                    self.connection_id,
                    rt,
                    &rid,
                    &name,
                ));
                // An exception raised about it earlier is settled by the deletion.
                repairs.settle.push((
                    key,
                    "deleted at the target by reconciliation (unknown_resources = remove)".into(),
                ));
            }
            UnknownResources::Flag | UnknownResources::Adopt => {
                self.counts.flagged += 1;
                self.found("flagged", &name, format!("{rt} {rid} is unknown here"));
                repairs.raise.push(NewException {
                    kind: ExceptionKind::UnknownAtTarget,
                    subject_key: key,
                    connection_id: Some(self.connection_id),
                    subject: name.clone(),
                    summary: format!(
                        "{} holds {rt} {name:?} ({rid}), which nothing here knows",
                        self.connection_name
                    ),
                    details: serde_json::json!({
                        "remote_id": rid,
                        "theirs": serde_json::from_str::<Value>(&render::excerpt(remote, 4096)).unwrap_or(Value::Null),
                    }),
                });
            }
        }
        Ok(())
    }

    /// Links the unknown `remote` to the local resource `local` with what it holds, so the
    /// update that follows sends only what differs.
    fn adopt(
        &mut self,
        rt: ResourceType,
        local: Uuid,
        rid: String,
        name: &str,
        remote: &Value,
        repairs: &mut Repairs,
    ) -> Result<(), AttributeError> {
        self.counts.adopted += 1;
        self.found("adopted", name, format!("linked to the local {rt} {local}"));
        let (desired, roles_held) = match rt {
            ResourceType::User => match self.unplaced_users.remove(&local) {
                Some((user, rs)) => (self.policy.user_document(&user, &rs)?, Some(rs)),
                None => (Value::Null, None),
            },
            ResourceType::Group => {
                self.unplaced_groups.remove(&local);
                let d = self.desired_groups.get(&local).map(|(_, d)| d.clone());
                (d.unwrap_or(Value::Null), None)
            }
        };
        let seen = observed(remote, &desired, None);
        repairs.links.push(TargetLink {
            organization_id: self.organization_id,
            connection_id: self.connection_id,
            resource_type: rt,
            local_id: local,
            remote_id: rid,
            remote_etag: None,
            content_hash: render::content_hash(&seen),
            synced_at: Timestamp::now(),
            last_sent: Some(Json(seen)),
        });
        repairs.operations.push(self.update(rt, local));
        if let Some(rs) = roles_held {
            self.join_role_groups(&rs, repairs);
        }
        Ok(())
    }

    /// After the whole target has been read: what is linked and was not there is gone there
    /// (created again if it should be there, forgotten if not), and what should be there, is
    /// not, and was not adopted is created. A user create looks the user up first, so an
    /// account made meanwhile is linked rather than duplicated.
    pub fn finish(&mut self) -> Repairs {
        let mut repairs = Repairs::default();
        let mut missing: Vec<Linked> = self.linked.drain().map(|(_, l)| l).collect();
        missing.sort_by(|a, b| a.subject.cmp(&b.subject));
        for Linked {
            link,
            subject,
            expected,
        } in missing
        {
            repairs.unlink.push((link.resource_type, link.local_id));
            match expected {
                Expected::There { .. } => {
                    self.counts.recreated += 1;
                    self.found(
                        "recreated",
                        &subject,
                        format!("{} is gone at the target", link.remote_id),
                    );
                    repairs
                        .operations
                        .push(self.update(link.resource_type, link.local_id));
                }
                // Gone there already, as it should be: only the link is forgotten.
                Expected::Gone => self.counts.unchanged += 1,
            }
        }
        for (id, (user, rs)) in std::mem::take(&mut self.unplaced_users) {
            self.counts.created += 1;
            self.found(
                "created",
                &user.user_name,
                "in scope but not at the target".into(),
            );
            repairs.operations.push(NewOperation {
                action: OperationAction::Create,
                ..self.update(ResourceType::User, id)
            });
            self.join_role_groups(&rs, &mut repairs);
        }
        for id in std::mem::take(&mut self.unplaced_groups) {
            let name = self
                .desired_groups
                .get(&id)
                .map(|(n, _)| n.clone())
                .unwrap_or_default();
            self.counts.created += 1;
            self.found(
                "created",
                &name,
                "should be at the target and is not".into(),
            );
            repairs
                .operations
                .push(self.update(ResourceType::Group, id));
        }
        repairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn connection(settings: Value) -> Connection {
        Connection {
            id: ConnectionId::new(),
            organization_id: OrganizationId::new(),
            name: "ehr".into(),
            kind: ConnectionKind::ScimTarget,
            base_url: Some("https://ehr.example/scim/v2".into()),
            auth_method: AuthMethod::None,
            has_secret: false,
            settings: Json(settings),
            state: ConnectionState::Active,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        }
    }

    fn user(conn: &Connection, name: &str) -> User {
        User::from_draft(
            UserId::new(),
            conn.organization_id,
            &UserDraft::new(name),
            Timestamp::now(),
        )
    }

    /// The link of `user` at `conn` as `remote_id`, last sent what the policy renders now.
    fn link(conn: &Connection, policy: &TargetPolicy, user: &User, remote_id: &str) -> TargetLink {
        let doc = policy.user_document(user, &BTreeSet::new()).unwrap();
        TargetLink {
            organization_id: conn.organization_id,
            connection_id: conn.id,
            resource_type: ResourceType::User,
            local_id: user.id.0,
            remote_id: remote_id.into(),
            remote_etag: None,
            content_hash: render::content_hash(&doc),
            synced_at: Timestamp::now(),
            last_sent: Some(Json(doc)),
        }
    }

    /// What the target holds for `user` when nothing drifted.
    fn remote(policy: &TargetPolicy, user: &User, remote_id: &str) -> Value {
        let mut doc = policy.user_document(user, &BTreeSet::new()).unwrap();
        doc["id"] = json!(remote_id);
        doc
    }

    fn ops(r: &Repairs) -> Vec<(Uuid, OperationAction)> {
        r.operations
            .iter()
            .map(|o| (o.resource_id, o.action))
            .collect()
    }

    /// Every kind of drift, decided page by page: a linked user changed at the target is
    /// corrected, an unknown account is deleted by a queued operation (and its flag settled),
    /// one whose externalId names a user with queued work is left to that work; only after the
    /// whole target was read is a linked user missing there recreated and a never-placed one
    /// created.
    #[test]
    fn pages_then_finish_plan_every_repair() {
        let conn = connection(json!({"user_scope": "all", "unknown_resources": "remove"}));
        let policy = TargetPolicy::new(&conn, &[]).unwrap();
        let (ann, bob, cat, dan) = (
            user(&conn, "ann@x.example"),
            user(&conn, "bob@x.example"),
            user(&conn, "cat@x.example"),
            user(&conn, "dan@x.example"),
        );
        let local = LocalState {
            users: vec![ann.clone(), bob.clone(), cat.clone(), dan.clone()],
            links: vec![
                link(&conn, &policy, &ann, "r-ann"),
                link(&conn, &policy, &cat, "r-cat"),
            ],
            queued: [dan.id.0].into(),
            ..Default::default()
        };
        let mut plan = Reconciler::new(&conn, policy.clone(), local).unwrap();
        assert!(plan.needs_groups(), "roles travel as groups by default");
        assert_eq!((plan.counts().checked, plan.counts().in_queue), (4, 1));

        let mut tampered = remote(&policy, &ann, "r-ann");
        tampered["userName"] = json!("ANN@x.example");
        let page = plan
            .page(
                ResourceType::User,
                &[
                    tampered,
                    json!({"id": "r-x", "userName": "intruder@elsewhere.example"}),
                    json!({"id": "r-dan", "userName": "dan@x.example", "externalId": dan.id.to_string()}),
                ],
            )
            .unwrap();
        assert_eq!(plan.counts().corrected, 1);
        assert_eq!(plan.counts().deleted_unknown, 1);
        assert_eq!(
            plan.counts().in_queue,
            2,
            "dan's account is left to dan's work"
        );
        assert_eq!(
            page.links.len(),
            1,
            "the corrected link records what is there"
        );
        assert_eq!(page.links[0].remote_id, "r-ann");
        let queued = &page.operations;
        assert_eq!(queued.len(), 2, "{queued:?}");
        assert_eq!(
            (queued[0].resource_id, queued[0].action),
            (ann.id.0, OperationAction::Update)
        );
        assert_eq!(queued[1].action, OperationAction::Delete);
        assert_eq!(queued[1].connection_id, conn.id);
        let deletion = &queued[1];
        assert_eq!(
            deletion.payload["unknown_remote_id"],
            json!("r-x"),
            "the deletion names the target's id"
        );
        assert_eq!(
            deletion,
            &NewOperation::delete_unknown(
                conn.id,
                ResourceType::User,
                "r-x",
                "intruder@elsewhere.example"
            ),
            "the same unknown resource always gets the same resource id"
        );
        assert_eq!(page.settle.len(), 1);
        assert!(page.settle[0].0.ends_with(":user:r-x"), "{:?}", page.settle);
        assert!(
            page.unlink.is_empty(),
            "nothing is gone until the walk is done"
        );

        let rest = plan.finish();
        assert_eq!(rest.unlink, vec![(ResourceType::User, cat.id.0)]);
        assert_eq!(
            ops(&rest),
            vec![
                (cat.id.0, OperationAction::Update),
                (bob.id.0, OperationAction::Create)
            ]
        );
        let (counts, findings) = plan.into_report();
        assert_eq!((counts.recreated, counts.created, counts.remote), (1, 1, 3));
        let kinds: BTreeSet<&str> = findings.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            BTreeSet::from(["corrected", "deleted_unknown", "recreated", "created"])
        );
    }

    /// Under the default policy an unknown account is flagged; with `adopt`, one named like a
    /// user the target should hold and does not is linked with what it holds and updated, not
    /// created a second time; an account nothing here knows is never adopted by name when it
    /// carries another provisioner's externalId.
    #[test]
    fn unknown_accounts_are_flagged_or_adopted_per_policy() {
        let flag = connection(json!({"user_scope": "all"}));
        let policy = TargetPolicy::new(&flag, &[]).unwrap();
        let eve = user(&flag, "eve@x.example");
        let local = LocalState {
            users: vec![eve.clone()],
            ..Default::default()
        };
        let mut plan = Reconciler::new(&flag, policy, local.clone()).unwrap();
        let page = plan
            .page(
                ResourceType::User,
                &[json!({"id": "r1", "userName": "EVE@x.example"})],
            )
            .unwrap();
        assert_eq!(page.raise.len(), 1);
        assert_eq!(page.raise[0].kind, ExceptionKind::UnknownAtTarget);
        assert!(page.operations.is_empty());
        assert_eq!(
            ops(&plan.finish()),
            vec![(eve.id.0, OperationAction::Create)]
        );

        let adopt = connection(json!({"user_scope": "all", "unknown_resources": "adopt"}));
        let policy = TargetPolicy::new(&adopt, &[]).unwrap();
        let mut plan = Reconciler::new(&adopt, policy, local).unwrap();
        let page = plan
            .page(
                ResourceType::User,
                &[
                    json!({"id": "r0", "userName": "eve@x.example", "externalId": "theirs-7"}),
                    json!({"id": "r1", "userName": "EVE@x.example"}),
                ],
            )
            .unwrap();
        assert_eq!(plan.counts().adopted, 1);
        assert_eq!(
            plan.counts().flagged,
            1,
            "another provisioner's account is flagged"
        );
        assert_eq!(page.links.len(), 1);
        assert_eq!(
            (page.links[0].local_id, page.links[0].remote_id.as_str()),
            (eve.id.0, "r1")
        );
        assert_eq!(ops(&page), vec![(eve.id.0, OperationAction::Update)]);
        assert!(plan.finish().is_empty(), "adopted, so nothing is created");
    }

    #[test]
    fn targets_may_add_but_not_change() {
        let desired =
            json!({"userName": "a", "emails": [{"value": "a@x", "type": "work"}], "active": true});
        let remote = json!({"id": "1", "userName": "A", "emails": [{"value": "a@x", "type": "work", "primary": false}], "Active": true, "meta": {}});
        // userName differs in case: that is drift for a target that stores what it is sent.
        let seen = observed(&remote, &desired, None);
        assert_eq!(seen["emails"], desired["emails"]);
        assert_eq!(seen["active"], json!(true));
        assert_eq!(seen["userName"], json!("A"));
        let remote_ok =
            json!({"userName": "a", "emails": [{"value": "a@x", "type": "work"}], "active": true});
        assert_eq!(
            render::content_hash(&observed(&remote_ok, &desired, None)),
            render::content_hash(&desired)
        );
        // A dropped attribute that we once sent and still hold there shows up as drift.
        let last = json!({"userName": "a", "title": "RN"});
        let seen = observed(
            &json!({"userName": "a", "title": "RN"}),
            &json!({"userName": "a"}),
            Some(&last),
        );
        assert_eq!(seen["title"], json!("RN"));
        assert!(!covers(
            &json!([{"value": "1"}]),
            &json!([{"value": "1"}, {"value": "2"}])
        ));
    }
}
