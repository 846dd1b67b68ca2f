//! Full reconciliation of one target: desired state (the users and role groups its policy
//! gives it) against what the target really holds, paged from its `/Users` and `/Groups`.
//!
//! Repairs go through the queue, like every other change, so they keep its order, rate limits
//! and retries: a resource changed out of band has its link set to what the target really holds
//! and gets an update (which then sends exactly the difference); a missing one loses its link
//! and gets a create; one nobody here knows is flagged, adopted or removed per the connection's
//! `unknown_resources` policy. A resource whose `externalId` is a local id is ours and is
//! always re-linked. A run is recorded with its counts and audited.

use super::impact::PolicyError;
use super::roles::RoleResolver;
use super::target::TargetPolicy;
use crate::connectors::scim_client::ScimClient;
use crate::domain::UnknownResources;
use crate::domain::*;
use crate::engine::delivery::target_client;
use crate::scim::render;
use crate::store::{ListRange, Store};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

/// Resources fetched per request.
const PAGE: u32 = 1000;
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
    /// Unknown here; deleted at the target.
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

/// Every resource of one type at the target, page by page.
async fn fetch_all(client: &ScimClient, rt: ResourceType) -> Result<Vec<Value>, String> {
    let mut all = Vec::new();
    let mut start = 1u64;
    loop {
        let (page, total) = client
            .list_page(rt, start, PAGE)
            .await
            .map_err(|e| format!("listing {rt}s at the target: {e}"))?;
        if page.is_empty() {
            break;
        }
        start += page.len() as u64;
        all.extend(page);
        if all.len() as u64 >= total {
            break;
        }
    }
    Ok(all)
}

fn remote_id(v: &Value) -> Option<String> {
    v.get("id").and_then(Value::as_str).map(str::to_string)
}

struct Run {
    connection_id: ConnectionId,
    counts: ReconcileCounts,
    findings: Vec<Finding>,
    ops: Vec<NewOperation>,
    /// Role groups already in `ops`.
    role_groups_queued: BTreeSet<RoleId>,
    links: Vec<TargetLink>,
    unlink: Vec<(ResourceType, Uuid)>,
    raise: Vec<NewException>,
    delete_remote: Vec<(ResourceType, String)>,
}

impl Run {
    /// Re-renders the role groups of `roles` at the target (a user arriving there joins them).
    fn join_role_groups(&mut self, policy: &TargetPolicy, roles: &BTreeSet<RoleId>) {
        if !policy.roles_as_groups() {
            return;
        }
        for r in roles.iter().filter(|r| policy.bound_roles().contains(r)) {
            if self.role_groups_queued.insert(*r) {
                self.ops.push(NewOperation {
                    connection_id: self.connection_id,
                    resource_type: ResourceType::Group,
                    resource_id: r.0,
                    action: OperationAction::Update,
                    payload: serde_json::json!({ "reconcile": true }),
                });
            }
        }
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

/// Reconciles one target in full. With `dry_run`, only reports.
pub async fn reconcile(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    connection_id: ConnectionId,
    dry_run: bool,
) -> Result<ReconcileReport, PolicyError> {
    let started_at = Timestamp::now();
    let connection = store
        .connection(org, connection_id)
        .await?
        .ok_or_else(|| crate::store::StoreError::NotFound(format!("connection {connection_id}")))?;
    if connection.kind != ConnectionKind::ScimTarget {
        return Err(PolicyError::Invalid(format!(
            "{} is a {} connection; only SCIM targets are reconciled",
            connection.name, connection.kind
        )));
    }
    let roles = store.list_roles(org).await?;
    let policy = TargetPolicy::new(&connection, &roles).map_err(PolicyError::Invalid)?;
    let mut run = Run {
        connection_id,
        counts: ReconcileCounts::default(),
        findings: Vec::new(),
        ops: Vec::new(),
        role_groups_queued: BTreeSet::new(),
        links: Vec::new(),
        unlink: Vec::new(),
        raise: Vec::new(),
        delete_remote: Vec::new(),
    };
    let outcome = match target_client(store, &connection, &policy.settings).await {
        Ok(client) => compare(store, org, &connection, &policy, &roles, &client, &mut run)
            .await
            .map(|()| client),
        Err(e) => Err(e),
    };
    let error = match outcome {
        Ok(client) if !dry_run => apply(store, org, &client, &mut run).await.err(),
        Ok(_) => None,
        Err(e) => Some(e),
    };
    let record = ReconcileRun {
        id: ReconcileRunId::new(),
        organization_id: org,
        connection_id,
        started_at,
        finished_at: Timestamp::now(),
        dry_run,
        actor: actor.name.clone(),
        counts: sqlx::types::Json(serde_json::to_value(&run.counts).unwrap_or(Value::Null)),
        error,
    };
    store.record_reconcile_run(&record).await?;
    if !dry_run {
        crate::engine::commands::wake_other_processes(store, org).await;
    }
    Ok(ReconcileReport {
        run: record,
        counts: run.counts,
        findings: run.findings,
    })
}

/// Carries out what [`compare`] decided.
async fn apply(
    store: &dyn Store,
    org: OrganizationId,
    client: &ScimClient,
    run: &mut Run,
) -> Result<(), String> {
    for link in &run.links {
        store
            .upsert_target_link(link)
            .await
            .map_err(|e| e.to_string())?;
    }
    for (rt, local) in &run.unlink {
        store
            .delete_target_link(org, run.connection_id, *rt, *local)
            .await
            .map_err(|e| e.to_string())?;
    }
    for e in &run.raise {
        store
            .raise_exception(org, e)
            .await
            .map_err(|e| e.to_string())?;
    }
    for (rt, id) in &run.delete_remote {
        client
            .delete(*rt, id)
            .await
            .map_err(|e| format!("deleting an unknown {rt} at the target: {e}"))?;
        // An exception raised about it earlier is settled by the deletion.
        let key = format!("unknown:{}:{rt}:{id}", run.connection_id);
        let open = store
            .list_exceptions(
                org,
                &ExceptionFilter {
                    state: Some(ExceptionState::Open),
                    kind: Some(ExceptionKind::UnknownAtTarget),
                    connection_id: Some(run.connection_id),
                    offset: 0,
                    limit: 10_000,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        for e in open.iter().filter(|e| e.subject_key == key) {
            store
                .settle_exception(
                    &Actor::system("reconcile"),
                    org,
                    e.id,
                    ExceptionState::Resolved,
                    "deleted at the target by reconciliation (unknown_resources = remove)",
                )
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    store
        .enqueue_operations(org, &run.ops)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Compares desired and actual state and decides the repairs (nothing is changed here).
async fn compare(
    store: &dyn Store,
    org: OrganizationId,
    connection: &Connection,
    policy: &TargetPolicy,
    roles: &[Role],
    client: &ScimClient,
    run: &mut Run,
) -> Result<(), String> {
    let e = |e: crate::store::StoreError| e.to_string();
    let remote_users = fetch_all(client, ResourceType::User).await?;
    let remote_groups = if policy.roles_as_groups() || policy.settings.source_groups {
        fetch_all(client, ResourceType::Group).await?
    } else {
        Vec::new()
    };
    run.counts.remote = (remote_users.len() + remote_groups.len()) as u64;
    let links = store
        .list_target_links(org, connection.id)
        .await
        .map_err(e)?;
    let mut user_links: HashMap<Uuid, &TargetLink> = HashMap::new();
    let mut group_links: HashMap<Uuid, &TargetLink> = HashMap::new();
    let mut linked_remote: BTreeSet<(ResourceType, &str)> = BTreeSet::new();
    for l in &links {
        linked_remote.insert((l.resource_type, l.remote_id.as_str()));
        match l.resource_type {
            ResourceType::User => user_links.insert(l.local_id, l),
            ResourceType::Group => group_links.insert(l.local_id, l),
        };
    }
    let remote_user_by_id: HashMap<String, &Value> = remote_users
        .iter()
        .filter_map(|v| remote_id(v).map(|id| (id, v)))
        .collect();
    let remote_group_by_id: HashMap<String, &Value> = remote_groups
        .iter()
        .filter_map(|v| remote_id(v).map(|id| (id, v)))
        .collect();

    // Local state: groups, memberships, roles.
    let mappings = store.list_role_mappings(org).await.map_err(e)?;
    let resolver = RoleResolver::new(&mappings);
    let groups = store
        .list_groups(org, ListRange::first(u32::MAX))
        .await
        .map_err(e)?;
    let group_by_id: HashMap<GroupId, &Group> = groups.iter().map(|g| (g.id, g)).collect();
    let roles_of_group: HashMap<GroupId, BTreeSet<RoleId>> = groups
        .iter()
        .map(|g| (g.id, resolver.group_roles(g)))
        .collect();
    let mut groups_of: HashMap<UserId, Vec<&Group>> = HashMap::new();
    let mut members_of: HashMap<GroupId, Vec<UserId>> = HashMap::new();
    for (g, u) in store.organization_memberships(org).await.map_err(e)? {
        if let Some(group) = group_by_id.get(&g) {
            groups_of.entry(u).or_default().push(group);
            members_of.entry(g).or_default().push(u);
        }
    }
    let pending: BTreeSet<Uuid> = {
        let mut ids: Vec<Uuid> = Vec::new();
        let mut offset = 0;
        loop {
            let page = store
                .list_operations(
                    org,
                    &crate::store::OperationFilter {
                        connection_id: Some(connection.id),
                        offset,
                        limit: 10_000,
                        ..Default::default()
                    },
                )
                .await
                .map_err(e)?;
            let n = page.len();
            ids.extend(page.into_iter().map(|o| o.resource_id));
            if n < 10_000 {
                break;
            }
            offset += n as u64;
        }
        ids.into_iter().collect()
    };

    // Users.
    let mut in_scope: HashMap<UserId, BTreeSet<RoleId>> = HashMap::new();
    let mut by_user_name: HashMap<String, UserId> = HashMap::new();
    // In scope, active, never provisioned: created at the end unless the target turns out to
    // hold them already (adoption, below).
    let mut unplaced_users: BTreeMap<Uuid, (User, BTreeSet<RoleId>)> = BTreeMap::new();
    let mut after = None;
    loop {
        let page = store.users_after(org, after, PAGE).await.map_err(e)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for user in &page {
            let gs = groups_of.get(&user.id).cloned().unwrap_or_default();
            let user_roles: BTreeSet<RoleId> = gs
                .iter()
                .flat_map(|g| roles_of_group[&g.id].iter().copied())
                .collect();
            let wanted = user.lifecycle_state != LifecycleState::Deprovisioned
                && policy.in_scope(user, &user_roles, &gs);
            let link = user_links.get(&user.id.0).copied();
            let queued = pending.contains(&user.id.0);
            if wanted {
                by_user_name.insert(user.user_name.to_lowercase(), user.id);
                in_scope.insert(user.id, user_roles.clone());
            }
            run.counts.checked += 1;
            if queued {
                run.counts.in_queue += 1;
                continue;
            }
            let update = NewOperation {
                connection_id: connection.id,
                resource_type: ResourceType::User,
                resource_id: user.id.0,
                action: OperationAction::Update,
                payload: serde_json::json!({ "reconcile": true }),
            };
            match (wanted, link) {
                (true, Some(link)) => {
                    let desired = policy.user_document(user, &user_roles)?;
                    check_linked(
                        run,
                        link,
                        remote_user_by_id.get(&link.remote_id).copied(),
                        &desired,
                        &user.user_name,
                        update,
                    );
                }
                (true, None) => {
                    // An inactive user that never reached the target needs nothing there.
                    if render::is_active(user) {
                        unplaced_users.insert(user.id.0, (user.clone(), user_roles));
                    } else {
                        run.counts.unchanged += 1;
                    }
                }
                (false, Some(link)) => {
                    let remote = remote_user_by_id.get(&link.remote_id);
                    let still_active = remote
                        .and_then(|r| r.get("active"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    if remote.is_some() && still_active {
                        run.counts.removed += 1;
                        run.found(
                            "removed",
                            &user.user_name,
                            "out of scope but active at the target".into(),
                        );
                        run.ops.push(NewOperation {
                            action: policy.leave_action(),
                            ..update
                        });
                    } else if remote.is_none() {
                        // Gone there already, as it should be: forget the link.
                        run.unlink.push((ResourceType::User, user.id.0));
                        run.counts.unchanged += 1;
                    } else {
                        run.counts.unchanged += 1;
                    }
                }
                (false, None) => {}
            }
        }
    }

    // Role groups (and mirrored source groups): desired members are in-scope holders that
    // are at the target.
    let remote_of_user = |u: &UserId| user_links.get(&u.0).map(|l| l.remote_id.clone());
    let mut desired_groups: BTreeMap<Uuid, (String, Value)> = BTreeMap::new();
    if policy.roles_as_groups() {
        for role in roles
            .iter()
            .filter(|r| policy.bound_roles().contains(&r.id))
        {
            let mut members: Vec<String> = in_scope
                .iter()
                .filter(|(_, rs)| rs.contains(&role.id))
                .filter_map(|(u, _)| remote_of_user(u))
                .collect();
            members.sort();
            let has_link = group_links.contains_key(&role.id.0);
            if members.is_empty() && !has_link {
                continue;
            }
            desired_groups.insert(
                role.id.0,
                (
                    role.name.clone(),
                    policy.role_group_document(role.id, &members),
                ),
            );
        }
    }
    if policy.settings.source_groups {
        for g in &groups {
            let members: Vec<String> = members_of
                .get(&g.id)
                .map(|ms| {
                    ms.iter()
                        .filter(|u| in_scope.contains_key(u))
                        .filter_map(remote_of_user)
                        .collect()
                })
                .unwrap_or_default();
            desired_groups.insert(
                g.id.0,
                (g.display_name.clone(), render::group_document(g, &members)),
            );
        }
    }
    let mut unplaced_groups: BTreeSet<Uuid> = BTreeSet::new();
    for (local, (name, desired)) in &desired_groups {
        run.counts.checked += 1;
        if pending.contains(local) {
            run.counts.in_queue += 1;
            continue;
        }
        let update = NewOperation {
            connection_id: connection.id,
            resource_type: ResourceType::Group,
            resource_id: *local,
            action: OperationAction::Update,
            payload: serde_json::json!({ "reconcile": true }),
        };
        match group_links.get(local) {
            Some(link) => {
                check_linked(
                    run,
                    link,
                    remote_group_by_id.get(&link.remote_id).copied(),
                    desired,
                    name,
                    update,
                );
            }
            None => {
                unplaced_groups.insert(*local);
            }
        }
    }

    // Resources at the target that nothing here is linked to.
    let local_ids: BTreeSet<String> = in_scope
        .keys()
        .map(|u| u.to_string())
        .chain(desired_groups.keys().map(|g| g.to_string()))
        .collect();
    let group_names: HashMap<String, Uuid> = desired_groups
        .iter()
        .map(|(id, (name, _))| (name.to_lowercase(), *id))
        .collect();
    for (rt, remote) in remote_users
        .iter()
        .map(|r| (ResourceType::User, r))
        .chain(remote_groups.iter().map(|r| (ResourceType::Group, r)))
    {
        let Some(rid) = remote_id(remote) else {
            continue;
        };
        if linked_remote.contains(&(rt, rid.as_str())) {
            continue;
        }
        let name_attr = if rt == ResourceType::User {
            "userName"
        } else {
            "displayName"
        };
        let name = remote
            .get(name_attr)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let external = remote.get("externalId").and_then(Value::as_str);
        // Only a local resource the target should hold and does not yet can be adopted.
        let unplaced = |id: &Uuid| match rt {
            ResourceType::User => unplaced_users.contains_key(id),
            ResourceType::Group => unplaced_groups.contains(id),
        };
        // Ours for certain: its externalId is a local id this target should hold.
        let ours = external
            .filter(|x| local_ids.contains(*x))
            .and_then(|x| x.parse::<Uuid>().ok())
            .filter(unplaced);
        let by_name = match rt {
            ResourceType::User => by_user_name.get(&name.to_lowercase()).map(|u| u.0),
            ResourceType::Group => group_names.get(&name.to_lowercase()).copied(),
        }
        .filter(unplaced);
        let policy_choice = policy.settings.unknown_resources;
        let adopt_as = match (ours, policy_choice) {
            (Some(id), _) => Some(id),
            (None, UnknownResources::Adopt) if external.is_none() => by_name,
            _ => None,
        };
        if let Some(local) = adopt_as {
            run.counts.adopted += 1;
            run.found(
                "adopted",
                &name,
                format!("linked to the local {rt} {local}"),
            );
            // Link with what it holds, so the update sends only what differs.
            let (desired, roles_held) = match rt {
                ResourceType::User => match unplaced_users.remove(&local) {
                    Some((user, rs)) => (policy.user_document(&user, &rs)?, Some(rs)),
                    None => (Value::Null, None),
                },
                ResourceType::Group => {
                    unplaced_groups.remove(&local);
                    let d = desired_groups.get(&local).map(|(_, d)| d.clone());
                    (d.unwrap_or(Value::Null), None)
                }
            };
            let seen = observed(remote, &desired, None);
            run.links.push(TargetLink {
                organization_id: org,
                connection_id: connection.id,
                resource_type: rt,
                local_id: local,
                remote_id: rid.clone(),
                remote_etag: None,
                content_hash: render::content_hash(&seen),
                synced_at: Timestamp::now(),
                last_sent: Some(sqlx::types::Json(seen)),
            });
            run.ops.push(NewOperation {
                connection_id: connection.id,
                resource_type: rt,
                resource_id: local,
                action: OperationAction::Update,
                payload: serde_json::json!({ "reconcile": true }),
            });
            if let Some(rs) = roles_held {
                run.join_role_groups(policy, &rs);
            }
            continue;
        }
        match policy_choice {
            UnknownResources::Remove => {
                run.counts.deleted_unknown += 1;
                run.found(
                    "deleted_unknown",
                    &name,
                    format!("{rt} {rid} is unknown here; deleted"),
                );
                run.delete_remote.push((rt, rid));
            }
            UnknownResources::Flag | UnknownResources::Adopt => {
                run.counts.flagged += 1;
                run.found("flagged", &name, format!("{rt} {rid} is unknown here"));
                run.raise.push(NewException {
                    kind: ExceptionKind::UnknownAtTarget,
                    subject_key: format!("unknown:{}:{rt}:{rid}", connection.id),
                    connection_id: Some(connection.id),
                    subject: name.clone(),
                    summary: format!("{} holds {rt} {name:?} ({rid}), which nothing here knows", connection.name),
                    details: serde_json::json!({
                        "remote_id": rid,
                        "theirs": serde_json::from_str::<Value>(&render::excerpt(remote, 4096)).unwrap_or(Value::Null),
                    }),
                });
            }
        }
    }

    // What should be there, is not, and was not adopted: created. A user create looks the
    // user up first, so an account made meanwhile is linked rather than duplicated.
    for (id, (user, rs)) in unplaced_users {
        run.counts.created += 1;
        run.found(
            "created",
            &user.user_name,
            "in scope but not at the target".into(),
        );
        run.ops.push(NewOperation {
            connection_id: connection.id,
            resource_type: ResourceType::User,
            resource_id: id,
            action: OperationAction::Create,
            payload: serde_json::json!({ "reconcile": true }),
        });
        run.join_role_groups(policy, &rs);
    }
    for id in unplaced_groups {
        let name = desired_groups
            .get(&id)
            .map(|(n, _)| n.as_str())
            .unwrap_or("");
        run.counts.created += 1;
        run.found("created", name, "should be at the target and is not".into());
        run.ops.push(NewOperation {
            connection_id: connection.id,
            resource_type: ResourceType::Group,
            resource_id: id,
            action: OperationAction::Update,
            payload: serde_json::json!({ "reconcile": true }),
        });
    }
    Ok(())
}

/// Compares a linked resource with what the target holds and decides its repair.
fn check_linked(
    run: &mut Run,
    link: &TargetLink,
    remote: Option<&Value>,
    desired: &Value,
    subject: &str,
    update: NewOperation,
) {
    match remote {
        None => {
            run.counts.recreated += 1;
            run.found(
                "recreated",
                subject,
                format!("{} is gone at the target", link.remote_id),
            );
            run.unlink.push((link.resource_type, link.local_id));
            run.ops.push(update);
        }
        Some(remote) => {
            let seen = observed(remote, desired, link.last_sent.as_ref().map(|j| &j.0));
            if render::content_hash(&seen) == render::content_hash(desired) {
                run.counts.unchanged += 1;
                return;
            }
            run.counts.corrected += 1;
            run.found("corrected", subject, differing(&seen, desired));
            run.links.push(TargetLink {
                content_hash: render::content_hash(&seen),
                last_sent: Some(sqlx::types::Json(seen)),
                synced_at: Timestamp::now(),
                ..link.clone()
            });
            run.ops.push(update);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
