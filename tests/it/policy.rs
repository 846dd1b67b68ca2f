//! Provisioning policy end to end, on real SQLite and PostgreSQL: mapping changes and their
//! impact, the mass-removal guard, unmapped-group exceptions, scope, attribute mapping, and
//! full reconciliation against a real SCIM target over HTTP (the target double: scimdesk's
//! own inbound server in another organization).

use crate::support;

use reqwest::Method;
use scimdesk::domain::*;
use scimdesk::engine::Engine;
use scimdesk::engine::commands::{self, Guard, MappingChange, PolicyError, Resolution};
use scimdesk::policy::impact;
use scimdesk::stand_ins::target_double::TargetDouble;
use scimdesk::store::{ListRange, OperationFilter, Store};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use support::Harness;
use support::idp::{Source, eventually, fast};
use uuid::Uuid;

on_both_backends!(
    mapping_changes_queue_exactly_their_impact,
    guard_refuses_mass_removal_until_forced,
    unmapped_group_raises_an_exception_and_mapping_it_provisions_members,
    users_leave_and_rejoin_a_target_with_their_role,
    full_reconcile_repairs_drift_per_policy,
    unknown_resources_are_deleted_by_queued_operations,
    attribute_overrides_reach_the_target,
    scheduled_reconciliation_feeds_health,
    conflicts_at_a_target_are_exceptions_resolved_by_linking,
    a_member_already_gone_at_the_target_is_not_a_failure,
    a_group_refused_for_a_member_removed_meanwhile_is_sent_again,
    a_group_refused_with_every_member_as_sent_fails_at_once,
    a_member_whose_create_failed_does_not_hold_up_the_group,
);

fn op() -> Actor {
    Actor::operator("tester")
}

fn rule(pattern: &str, glob: bool, role: RoleId) -> RoleMappingDraft {
    RoleMappingDraft::by_display_name(pattern, glob, role)
}

async fn role(s: &dyn Store, org: OrganizationId, name: &str) -> Role {
    commands::ensure_role(s, &op(), org, name).await.unwrap()
}

async fn add_mapping(s: &dyn Store, org: OrganizationId, draft: RoleMappingDraft) -> RoleMapping {
    let change = MappingChange::Set { id: None, draft };
    let (_, m) = commands::set_mapping(s, &op(), org, &change, &Guard::default(), true)
        .await
        .unwrap();
    m.unwrap()
}

async fn target_conn(
    s: &dyn Store,
    org: OrganizationId,
    name: &str,
    base_url: &str,
    token: &str,
    settings: Value,
) -> Connection {
    s.create_connection(
        &op(),
        org,
        &NewConnection {
            name: name.into(),
            kind: ConnectionKind::ScimTarget,
            base_url: Some(base_url.into()),
            auth_method: AuthMethod::Bearer,
            settings,
        },
        Some(&scimdesk::crypto::Secret::new(token.to_string())),
    )
    .await
    .unwrap()
}

/// Everything unfinished in the queue, as (target, type, resource, action), sorted.
async fn queued(
    s: &dyn Store,
    org: OrganizationId,
) -> Vec<(ConnectionId, ResourceType, Uuid, OperationAction)> {
    let mut v: Vec<_> = s
        .list_operations(
            org,
            &OperationFilter {
                limit: 1_000_000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.connection_id, o.resource_type, o.resource_id, o.action))
        .collect();
    v.sort();
    v
}

/// Finishes every queued operation of `conns` without sending anything (no engine runs in
/// the tests that use this).
async fn drain(s: &dyn Store, conns: &[ConnectionId]) {
    let owner = Uuid::now_v7();
    for c in conns {
        loop {
            let claimed = s
                .claim_operations(*c, owner, Duration::from_secs(60), 500, None)
                .await
                .unwrap();
            if claimed.is_empty() {
                break;
            }
            let outcomes: Vec<Outcome> = claimed
                .into_iter()
                .map(|o| Outcome {
                    operation: o,
                    lease_owner: owner,
                    attempt: None,
                    disposition: Disposition::Succeeded { link: None },
                })
                .collect();
            s.complete_operations(&outcomes).await.unwrap();
        }
    }
}

fn planned(i: &impact::Impact) -> Vec<(ConnectionId, ResourceType, Uuid, OperationAction)> {
    let mut v: Vec<_> = i
        .operations
        .iter()
        .map(|o| (o.connection_id, o.resource_type, o.resource_id, o.action))
        .collect();
    v.sort();
    v
}

/// A generated organization: `users` users, each in three of `groups` wards.
struct Generated {
    org: OrganizationId,
    users: Vec<User>,
    wards: Vec<Group>,
    /// ward index per user.
    member_of: Vec<BTreeSet<usize>>,
}

async fn generate(
    s: &dyn scimdesk::store::LoadableStore,
    users: usize,
    groups: usize,
) -> Generated {
    let org = s
        .create_organization(&op(), "Generated Health")
        .await
        .unwrap();
    let now = Timestamp::now();
    let made: Vec<User> = (0..users)
        .map(|i| User {
            id: UserId::new(),
            organization_id: org.id,
            user_name: format!("u{i:05}@gen.example"),
            external_id: None,
            display_name: None,
            given_name: Some("U".into()),
            family_name: Some(format!("{i}")),
            emails: sqlx::types::Json(Vec::new()),
            active: true,
            lifecycle_state: LifecycleState::Active,
            source_connection_id: None,
            attributes: sqlx::types::Json(json!({})),
            version: 1,
            created_at: now,
            updated_at: now,
        })
        .collect();
    let member_of: Vec<BTreeSet<usize>> = (0..users)
        .map(|i| (0..3).map(|k| (i * 7 + k * 11 + i / 13) % groups).collect())
        .collect();
    let wards: Vec<Group> = (0..groups)
        .map(|g| Group {
            id: GroupId::new(),
            organization_id: org.id,
            display_name: format!("ward-{g:02}"),
            external_id: None,
            source_connection_id: None,
            attributes: sqlx::types::Json(json!({})),
            version: 1,
            created_at: now,
            updated_at: now,
        })
        .collect();
    let memberships: Vec<(GroupId, UserId)> = member_of
        .iter()
        .enumerate()
        .flat_map(|(i, ws)| ws.iter().map(move |w| (i, *w)))
        .map(|(i, w)| (wards[w].id, made[i].id))
        .collect();
    // Loaded in bulk: the change path is not what these tests are about.
    s.bulk_load(
        org.id,
        &scimdesk::store::BulkRows {
            users: &made,
            groups: &wards,
            memberships: &memberships,
            links: &[],
        },
    )
    .await
    .unwrap();
    Generated {
        org: org.id,
        users: made,
        wards,
        member_of,
    }
}

/// Role changes computed without the engine: `before` and `after` give a ward's role names.
fn expected_changes(
    g: &Generated,
    before: impl Fn(usize) -> Vec<&'static str>,
    after: impl Fn(usize) -> Vec<&'static str>,
) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let mut out = BTreeMap::new();
    for (i, wards) in g.member_of.iter().enumerate() {
        let old: BTreeSet<&str> = wards.iter().flat_map(|w| before(*w)).collect();
        let new: BTreeSet<&str> = wards.iter().flat_map(|w| after(*w)).collect();
        if old != new {
            out.insert(
                g.users[i].user_name.clone(),
                (
                    new.difference(&old).map(|s| s.to_string()).collect(),
                    old.difference(&new).map(|s| s.to_string()).collect(),
                ),
            );
        }
    }
    out
}

fn actual_changes(i: &impact::Impact) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    i.role_changes
        .iter()
        .map(|c| (c.user_name.clone(), (c.gained.clone(), c.lost.clone())))
        .collect()
}

/// A mapping change queues exactly the operations its preview lists, for exactly the users
/// whose roles change (checked against roles computed independently here), on an organization
/// of 3,000 users in overlapping groups (9,000 memberships).
async fn mapping_changes_queue_exactly_their_impact(h: &Harness) {
    let s = &*h.store;
    let (users, wards) = (3000, 30);
    let g = generate(s, users, wards).await;
    let t1 = target_conn(
        s,
        g.org,
        "ehr",
        "http://127.0.0.1:9/scim/v2",
        "t",
        json!({"roles": ["icu", "surgery"], "role_delivery": "groups"}),
    )
    .await;
    let t2 = target_conn(
        s,
        g.org,
        "pharmacy-app",
        "http://127.0.0.1:9/scim/v2",
        "t",
        json!({"roles": ["icu", "pharmacy"], "role_delivery": "roles", "delete_mode": "suspend"}),
    )
    .await;
    let icu = role(s, g.org, "icu").await;
    let surgery = role(s, g.org, "surgery").await;
    let pharmacy = role(s, g.org, "pharmacy").await;
    let icu_rule = add_mapping(s, g.org, rule("ward-0*", true, icu.id)).await;
    add_mapping(s, g.org, rule("WARD-1?", true, surgery.id)).await;
    add_mapping(s, g.org, rule("ward-25", false, pharmacy.id)).await;
    drain(s, &[t1.id, t2.id]).await;
    assert!(queued(s, g.org).await.is_empty());

    let initial = |w: usize| -> Vec<&'static str> {
        let mut r = Vec::new();
        if w < 10 {
            r.push("icu");
        }
        if (10..20).contains(&w) {
            r.push("surgery");
        }
        if w == 25 {
            r.push("pharmacy");
        }
        r
    };

    // A: pharmacy for every ward-2x.
    let change = MappingChange::Set {
        id: None,
        draft: rule("ward-2*", true, pharmacy.id),
    };
    let preview = commands::preview(s, g.org, &change).await.unwrap();
    let with_pharmacy = |w: usize| {
        let mut r = initial(w);
        if (20..30).contains(&w) && w != 25 {
            r.push("pharmacy");
        }
        r
    };
    let expected = expected_changes(&g, initial, with_pharmacy);
    assert!(!expected.is_empty());
    assert_eq!(actual_changes(&preview), expected);
    assert!(preview.losing_access().is_empty());
    let (applied, _) = commands::set_mapping(s, &op(), g.org, &change, &Guard::default(), false)
        .await
        .unwrap();
    assert_eq!(
        applied, preview,
        "preview and result are the same computation"
    );
    assert_eq!(queued(s, g.org).await, planned(&preview));
    // Only t2 carries pharmacy; it receives users (roles attribute) entering scope or with
    // changed roles, never t1.
    assert!(preview.operations.iter().all(|o| o.connection_id == t2.id));
    let changed_ids: BTreeSet<Uuid> = preview.role_changes.iter().map(|c| c.user_id.0).collect();
    assert!(
        preview
            .operations
            .iter()
            .all(|o| changed_ids.contains(&o.resource_id))
    );
    drain(s, &[t1.id, t2.id]).await;

    // B: icu no longer from ward-0x but from ward-05 only; forced past the guard.
    let change = MappingChange::Set {
        id: Some(icu_rule.id),
        draft: rule("ward-05", false, icu.id),
    };
    let preview = commands::preview(s, g.org, &change).await.unwrap();
    let narrowed = |w: usize| {
        let mut r = with_pharmacy(w);
        if w < 10 && w != 5 {
            r.retain(|x| *x != "icu");
        }
        r
    };
    assert_eq!(
        actual_changes(&preview),
        expected_changes(&g, with_pharmacy, narrowed)
    );
    let refused = commands::set_mapping(s, &op(), g.org, &change, &Guard::default(), false).await;
    assert!(
        matches!(refused, Err(PolicyError::Guarded { .. })),
        "{refused:?}"
    );
    assert!(
        queued(s, g.org).await.is_empty(),
        "a refused change queues nothing"
    );
    let (applied, _) = commands::set_mapping(s, &op(), g.org, &change, &Guard::default(), true)
        .await
        .unwrap();
    assert_eq!(applied, preview);
    let q = queued(s, g.org).await;
    assert_eq!(q, planned(&preview));
    // Role groups at t1: icu loses members; t2 suspends or updates users who lose icu.
    assert!(q.iter().any(|(c, rt, id, a)| *c == t1.id
        && *rt == ResourceType::Group
        && *id == icu.id.0
        && *a == OperationAction::Update));
    assert!(
        q.iter()
            .any(|(c, _, _, a)| *c == t2.id && *a == OperationAction::Suspend)
    );
    assert!(
        q.iter()
            .any(|(c, _, _, a)| *c == t1.id && *a == OperationAction::Delete)
    );
    // Nobody else: no operation for a user whose roles did not change.
    let changed_ids: BTreeSet<Uuid> = preview.role_changes.iter().map(|c| c.user_id.0).collect();
    assert!(
        q.iter()
            .filter(|(_, rt, _, _)| *rt == ResourceType::User)
            .all(|(_, _, id, _)| changed_ids.contains(id))
    );
    assert_eq!(g.wards.len(), wards);
}

/// The guard refuses a change that takes access from too many, says how many and who, and
/// changes nothing; forced, the change is made and audited as forced.
async fn guard_refuses_mass_removal_until_forced(h: &Harness) {
    let s = &*h.store;
    let g = generate(s, 120, 6).await;
    let t = target_conn(
        s,
        g.org,
        "ehr",
        "http://127.0.0.1:9/scim/v2",
        "t",
        json!({"roles": ["staff"]}),
    )
    .await;
    let staff = role(s, g.org, "staff").await;
    let all = add_mapping(s, g.org, rule("ward-*", true, staff.id)).await;
    drain(s, &[t.id]).await;
    let audit_before = s
        .list_audit(
            g.org,
            &AuditFilter {
                limit: 10_000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .len();
    let change = MappingChange::Remove(all.id);
    let guard = Guard {
        max_users: 1_000,
        max_percent: 25,
    };
    let err = commands::set_mapping(s, &op(), g.org, &change, &guard, false)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("120 of 120 users")
            && msg.contains("100.0%")
            && msg.contains("u00000@gen.example")
            && msg.contains("--force"),
        "{msg}"
    );
    assert!(
        s.role_mapping(g.org, all.id).await.unwrap().is_some(),
        "still mapped"
    );
    assert!(queued(s, g.org).await.is_empty());
    assert_eq!(
        s.list_audit(
            g.org,
            &AuditFilter {
                limit: 10_000,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .len(),
        audit_before
    );
    // Under both limits, it passes without force.
    let lenient = Guard {
        max_users: 200,
        max_percent: 100,
    };
    let (done, _) = commands::set_mapping(s, &op(), g.org, &change, &lenient, false)
        .await
        .unwrap();
    assert_eq!(done.losing_access().len(), 120);
    assert!(s.role_mapping(g.org, all.id).await.unwrap().is_none());
    let q = queued(s, g.org).await;
    assert_eq!(
        q.iter().filter(|o| o.1 == ResourceType::User).count(),
        120,
        "every user leaves the target"
    );
    assert_eq!(
        q.iter()
            .filter(|o| o.1 == ResourceType::Group && o.2 == staff.id.0)
            .count(),
        1,
        "and its role group"
    );
    // Put back, then remove with force past the strict guard.
    let again = add_mapping(s, g.org, rule("ward-*", true, staff.id)).await;
    drain(s, &[t.id]).await;
    commands::set_mapping(
        s,
        &op(),
        g.org,
        &MappingChange::Remove(again.id),
        &Guard::default(),
        true,
    )
    .await
    .unwrap();
    let events = s
        .list_audit(
            g.org,
            &AuditFilter {
                limit: 10_000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let last = events
        .iter()
        .find(|e| e.action == "mapping.delete")
        .unwrap();
    assert_eq!(
        last.details.0["impact"]["forced"],
        json!(true),
        "{:?}",
        last.details
    );
    assert_eq!(last.details.0["impact"]["users_losing"], json!(120));
}

/// A running engine delivering to `target` for `source`.
async fn running(h: &Harness) -> Engine {
    let engine = Engine::new(h.store.clone(), fast());
    engine.start();
    engine
}

async fn target_users(s: &dyn Store, t: &TargetDouble) -> Vec<User> {
    s.list_users(t.organization_id, ListRange::first(100_000))
        .await
        .unwrap()
}

/// Target groups with their members' userNames.
async fn target_groups(s: &dyn Store, t: &TargetDouble) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for g in s
        .list_groups(t.organization_id, ListRange::first(10_000))
        .await
        .unwrap()
    {
        let members = s.group_member_refs(t.organization_id, g.id).await.unwrap();
        out.insert(
            g.display_name,
            members.into_iter().map(|m| m.user_name).collect(),
        );
    }
    out
}

/// Whether the target's group `name` has exactly `n` members.
async fn group_has(s: &dyn Store, t: &TargetDouble, name: &str, n: usize) -> bool {
    target_groups(s, t)
        .await
        .get(name)
        .is_some_and(|m| m.len() == n)
}

async fn push_group(src: &Source, name: &str, members: &[String]) -> String {
    src.create_group(name, members).await
}

async fn patch_members(src: &Source, group: &str, op: &str, user: &str) {
    let body = if op == "add" {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "add", "path": "members", "value": [{"value": user}]}]})
    } else {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "remove", "path": format!("members[value eq \"{user}\"]")}]})
    };
    let (status, resp) = src
        .call(Method::PATCH, &format!("/Groups/{group}"), Some(body))
        .await;
    assert!(status == 200 || status == 204, "{status} {resp}");
}

/// A group no mapping covers raises an exception and its members reach no target; resolving
/// the exception with a mapping provisions them, with the role group at the target.
async fn unmapped_group_raises_an_exception_and_mapping_it_provisions_members(h: &Harness) {
    let (s, src, target, _conn) = scene(h, "EHR", "ehr", json!({"roles": ["icu-nurse"]})).await;
    let engine = running(h).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(src.create_user(&format!("icu{i}@riverside.example")).await);
    }
    push_group(&src, "ICU Nurses", &ids).await;
    let open = || async {
        s.list_exceptions(
            src.org,
            &ExceptionFilter {
                state: Some(ExceptionState::Open),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap()
    };
    let exceptions = open().await;
    assert_eq!(exceptions.len(), 1, "{exceptions:?}");
    assert_eq!(exceptions[0].kind, ExceptionKind::UnmappedGroup);
    assert_eq!(exceptions[0].subject, "ICU Nurses");
    // A second member change does not raise a second one.
    let extra = src.create_user("icu5@riverside.example").await;
    patch_members(
        &src,
        exceptions[0].details.0["group_id"].as_str().unwrap(),
        "add",
        &extra,
    )
    .await;
    assert_eq!(open().await.len(), 1);
    // Nothing reaches the target: nobody holds a role it is bound to.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(target_users(&*s, &target).await.is_empty());

    let settled = commands::resolve_exception(
        &*s,
        &op(),
        src.org,
        exceptions[0].id,
        &Resolution::MapTo("icu-nurse".into()),
        &Guard::default(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(settled.state, ExceptionState::Resolved);
    assert!(open().await.is_empty());
    eventually(
        Duration::from_secs(30),
        "six nurses and their role group at the target",
        || async {
            target_users(&*s, &target).await.len() == 6
                && group_has(&*s, &target, "icu-nurse", 6).await
        },
    )
    .await;
    // The source group itself is not mirrored (source_groups is off).
    assert_eq!(target_groups(&*s, &target).await.len(), 1);
    let audit = s
        .list_audit(
            src.org,
            &AuditFilter {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "mapping.create" && e.actor == "tester")
    );
    // The mapping that settled the exception says so in its own audit event.
    let mapped = audit
        .iter()
        .find(|e| e.action == "mapping.create" && e.actor == "tester")
        .unwrap();
    assert_eq!(
        mapped.details.0["exceptions_resolved"],
        json!([unmapped_group_key(GroupId(
            exceptions[0].details.0["group_id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        ))]),
        "{:?}",
        mapped.details
    );
    assert_eq!(mapped.details.0["impact"]["users_gaining"], json!(6));
    engine.shutdown().await;
}

/// Scope follows roles: a user removed from the group that gives the target's role leaves it
/// per the connection's policy (hard delete at one target, suspension at another) and comes
/// back when re-added.
async fn users_leave_and_rejoin_a_target_with_their_role(h: &Harness) {
    let s = h.store.clone();
    let src = Source::start(s.clone()).await;
    let hard = TargetDouble::start(s.clone(), "Rostering").await.unwrap();
    let soft = TargetDouble::start(s.clone(), "Pharmacy").await.unwrap();
    target_conn(
        &*s,
        src.org,
        "rostering",
        &hard.base_url,
        &hard.token,
        json!({"roles": ["nurse"], "delete_mode": "delete"}),
    )
    .await;
    target_conn(
        &*s,
        src.org,
        "pharmacy",
        &soft.base_url,
        &soft.token,
        json!({"roles": ["nurse"], "role_delivery": "entitlements", "delete_mode": "suspend"}),
    )
    .await;
    let nurse = role(&*s, src.org, "nurse").await;
    add_mapping(&*s, src.org, rule("Nurses", false, nurse.id)).await;
    let engine = running(h).await;
    let a = src.create_user("ann@riverside.example").await;
    let b = src.create_user("bob@riverside.example").await;
    let group = push_group(&src, "Nurses", &[a.clone(), b.clone()]).await;
    let both_there = |n: usize| {
        let s = s.clone();
        let (hard, soft) = (&hard, &soft);
        async move {
            let h = target_users(&*s, hard).await;
            let p = target_users(&*s, soft).await;
            h.len() == n && p.iter().filter(|u| u.active).count() == n
        }
    };
    eventually(
        Duration::from_secs(30),
        "both nurses at both targets",
        || both_there(2),
    )
    .await;
    let pharmacy_ann = target_users(&*s, &soft)
        .await
        .into_iter()
        .find(|u| u.user_name == "ann@riverside.example")
        .unwrap();
    assert_eq!(
        pharmacy_ann.attributes.0["entitlements"],
        json!([{"value": "nurse"}])
    );

    patch_members(&src, &group, "remove", &b).await;
    eventually(
        Duration::from_secs(30),
        "bob deleted at rostering, suspended at pharmacy",
        || async {
            let h = target_users(&*s, &hard).await;
            let p = target_users(&*s, &soft).await;
            h.len() == 1
                && h[0].user_name == "ann@riverside.example"
                && p.len() == 2
                && p.iter()
                    .any(|u| u.user_name == "bob@riverside.example" && !u.active)
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "bob out of the rostering role group",
        || async { group_has(&*s, &hard, "nurse", 1).await },
    )
    .await;
    patch_members(&src, &group, "add", &b).await;
    eventually(Duration::from_secs(30), "bob back at both targets", || {
        both_there(2)
    })
    .await;
    eventually(
        Duration::from_secs(30),
        "bob back in the role group",
        || async { group_has(&*s, &hard, "nurse", 2).await },
    )
    .await;
    engine.shutdown().await;
}

/// A store with an identity provider pushing to its inbound server (`src`), a target double
/// named `target_name`, and the target connection `conn_name` to it with `settings`.
async fn scene(
    h: &Harness,
    target_name: &str,
    conn_name: &str,
    settings: Value,
) -> (std::sync::Arc<dyn Store>, Source, TargetDouble, Connection) {
    let s = h.store.clone();
    let src = Source::start(s.clone()).await;
    let target = TargetDouble::start(s.clone(), target_name).await.unwrap();
    let conn = target_conn(
        &*s,
        src.org,
        conn_name,
        &target.base_url,
        &target.token,
        settings,
    )
    .await;
    (s, src, target, conn)
}

/// Waits until the organization's queue is empty. The limit is generous: `cargo test` runs
/// every test of the binary at once on two cores, and a delivery slowed past its timeout is
/// retried with back-off (30 s was seen to be too short there). On a timeout the test fails
/// naming what is still queued, and in which state.
async fn settled(s: &dyn Store, org: OrganizationId) {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        if queued(s, org).await.is_empty() {
            return;
        }
        if std::time::Instant::now() > deadline {
            let left = s
                .list_operations(
                    org,
                    &OperationFilter {
                        limit: 50,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let left: Vec<String> = left
                .iter()
                .map(|o| {
                    format!(
                        "{} {} {} attempts={} status={:?} error={:?}",
                        o.action, o.resource_type, o.state, o.attempts, o.last_status, o.last_error
                    )
                })
                .collect();
            panic!("the queue did not drain in 90 s; still queued: {left:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Drift at a real target — changed, deleted and unknown resources — is found by a full
/// reconcile and repaired per policy (flag, then remove, unknown resources; adopt one that
/// matches a local user); a dry run changes nothing; a second reconcile finds nothing to do.
async fn full_reconcile_repairs_drift_per_policy(h: &Harness) {
    let (s, src, target, conn) = scene(h, "EHR", "ehr", json!({"roles": ["staff"]})).await;
    let staff = role(&*s, src.org, "staff").await;
    add_mapping(&*s, src.org, rule("Staff", false, staff.id)).await;
    let engine = running(h).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(src.create_user(&format!("s{i}@riverside.example")).await);
    }
    push_group(&src, "Staff", &ids).await;
    eventually(
        Duration::from_secs(30),
        "five users and the role group",
        || async {
            target_users(&*s, &target).await.len() == 5 && group_has(&*s, &target, "staff", 5).await
        },
    )
    .await;
    settled(&*s, src.org).await;
    let clean = commands::reconcile(&*s, &op(), src.org, conn.id, false)
        .await
        .unwrap();
    assert!(clean.counts.is_clean(), "{:?}", clean.counts);
    assert_eq!(clean.counts.unchanged, 6);

    // Out of band at the target: one renamed, one deleted, one unknown added, one removed
    // from the role group.
    let tu = target_users(&*s, &target).await;
    let tid = target.organization_id;
    let changed = tu
        .iter()
        .find(|u| u.user_name == "s0@riverside.example")
        .unwrap();
    let mut d = UserDraft::new(changed.user_name.clone());
    d.given_name = Some("Tampered".into());
    d.family_name = Some("By Hand".into());
    d.external_id = changed.external_id.clone();
    s.replace_user(&op(), tid, changed.id, &d, None)
        .await
        .unwrap();
    let gone = tu
        .iter()
        .find(|u| u.user_name == "s1@riverside.example")
        .unwrap();
    s.delete_user(&op(), tid, gone.id).await.unwrap();
    s.create_user(&op(), tid, &UserDraft::new("intruder@elsewhere.example"))
        .await
        .unwrap();
    let dry = commands::reconcile(&*s, &op(), src.org, conn.id, true)
        .await
        .unwrap();
    assert_eq!(
        (
            dry.counts.corrected,
            dry.counts.recreated,
            dry.counts.flagged
        ),
        (2, 1, 1),
        "{:?}",
        dry.findings
    );
    assert!(dry.run.dry_run);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        target_users(&*s, &target).await.len(),
        5,
        "a dry run changes nothing"
    );
    assert!(
        s.list_exceptions(
            src.org,
            &ExceptionFilter {
                limit: 10,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .is_empty()
    );

    let run = commands::reconcile(&*s, &op(), src.org, conn.id, false)
        .await
        .unwrap();
    assert_eq!(
        (
            run.counts.corrected,
            run.counts.recreated,
            run.counts.flagged
        ),
        (2, 1, 1),
        "{:?}",
        run.findings
    );
    let corrected: BTreeSet<&str> = run
        .findings
        .iter()
        .filter(|f| f.kind == "corrected")
        .map(|f| f.subject.as_str())
        .collect();
    assert_eq!(corrected, BTreeSet::from(["s0@riverside.example", "staff"]));
    settled(&*s, src.org).await;
    let tu = target_users(&*s, &target).await;
    assert_eq!(tu.len(), 6, "s1 recreated, the intruder flagged but kept");
    let s0 = tu
        .iter()
        .find(|u| u.user_name == "s0@riverside.example")
        .unwrap();
    assert_eq!(s0.given_name.as_deref(), Some("N"), "the name is corrected");
    assert!(tu.iter().any(|u| u.user_name == "s1@riverside.example"));
    assert_eq!(
        target_groups(&*s, &target)
            .await
            .get("staff")
            .map(|m| m.len()),
        Some(5)
    );
    let flagged = s
        .list_exceptions(
            src.org,
            &ExceptionFilter {
                kind: Some(ExceptionKind::UnknownAtTarget),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0].subject, "intruder@elsewhere.example");
    let again = commands::reconcile(&*s, &op(), src.org, conn.id, false)
        .await
        .unwrap();
    assert_eq!(
        again.counts.flagged, 1,
        "still unknown, still flagged (one open exception)"
    );
    assert_eq!(
        again.counts.flagged + again.counts.unchanged,
        again.counts.checked + 1
    );
    assert_eq!(
        s.list_exceptions(
            src.org,
            &ExceptionFilter {
                limit: 10,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .len(),
        1
    );

    // Policy "remove": the unknown user is deleted at the target.
    commands::configure_target(
        &*s,
        &op(),
        src.org,
        conn.id,
        &json!({"unknown_resources": "remove"})
            .as_object()
            .unwrap()
            .clone(),
    )
    .await
    .unwrap();
    settled(&*s, src.org).await;
    let run = commands::reconcile(&*s, &op(), src.org, conn.id, false)
        .await
        .unwrap();
    assert_eq!(run.counts.deleted_unknown, 1, "{:?}", run.findings);
    // The deletion is a queued repair: the workers carry it out.
    settled(&*s, src.org).await;
    assert!(
        !target_users(&*s, &target)
            .await
            .iter()
            .any(|u| u.user_name.starts_with("intruder"))
    );

    // Policy "adopt": an account made by hand for a local user is linked, not duplicated.
    commands::configure_target(
        &*s,
        &op(),
        src.org,
        conn.id,
        &json!({"unknown_resources": "adopt"})
            .as_object()
            .unwrap()
            .clone(),
    )
    .await
    .unwrap();
    // No delivery while the hand-made account appears.
    engine.shutdown().await;
    let late = src.create_user("late@riverside.example").await;
    let group = s
        .list_groups(src.org, ListRange::first(10))
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.display_name == "Staff")
        .unwrap();
    patch_members(&src, &group.id.to_string(), "add", &late).await;
    let mut hand = UserDraft::new("LATE@riverside.example");
    hand.given_name = Some("Hand".into());
    s.create_user(&op(), tid, &hand).await.unwrap();
    // The queued work for the late user is set aside, as if it had been lost.
    for o in s
        .list_operations(
            src.org,
            &OperationFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap()
    {
        s.skip_operation(&op(), src.org, o.id, "test: simulate lost work")
            .await
            .unwrap();
    }
    let run = commands::reconcile(&*s, &op(), src.org, conn.id, false)
        .await
        .unwrap();
    assert_eq!(
        (run.counts.adopted, run.counts.created, run.counts.flagged),
        (1, 0, 0),
        "{:?}",
        run.findings
    );
    let engine = running(h).await;
    settled(&*s, src.org).await;
    let tu = target_users(&*s, &target).await;
    assert_eq!(tu.len(), 6);
    let adopted = tu
        .iter()
        .find(|u| u.user_name.eq_ignore_ascii_case("late@riverside.example"))
        .unwrap();
    assert_eq!(
        adopted.external_id.as_deref(),
        Some(late.as_str()),
        "linked and brought up to date"
    );
    eventually(
        Duration::from_secs(30),
        "the adopted user in the role group",
        || async { group_has(&*s, &target, "staff", 6).await },
    )
    .await;
    settled(&*s, src.org).await;
    let last = commands::reconcile(&*s, &op(), src.org, conn.id, false)
        .await
        .unwrap();
    assert!(
        last.counts.is_clean(),
        "{:?} {:?}",
        last.counts,
        last.findings
    );
    let runs = s.reconcile_runs(src.org, conn.id, 100).await.unwrap();
    assert_eq!(runs.len(), 7);
    assert_eq!(runs.iter().filter(|r| r.dry_run).count(), 1);
    engine.shutdown().await;
}

/// With `unknown_resources = remove`, a reconcile deletes an account nobody here knows through
/// a queued operation, never directly: its attempts are recorded (`ops show` shows them), a
/// target that refuses the deletion puts it in the failed inbox, and an operator's retry
/// carries it out once the target allows it. The exception flagged about it earlier is
/// settled by the deletion.
async fn unknown_resources_are_deleted_by_queued_operations(h: &Harness) {
    let (s, src, target, conn) = scene(h, "EHR", "ehr", json!({"user_scope": "all"})).await;
    let engine = running(h).await;
    let tid = target.organization_id;
    s.create_user(&op(), tid, &UserDraft::new("intruder@elsewhere.example"))
        .await
        .unwrap();
    let flagged = commands::reconcile(&*s, &op(), src.org, conn.id, false)
        .await
        .unwrap();
    assert_eq!(flagged.counts.flagged, 1, "{:?}", flagged.findings);
    let open = ExceptionFilter {
        state: Some(ExceptionState::Open),
        kind: Some(ExceptionKind::UnknownAtTarget),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(s.list_exceptions(src.org, &open).await.unwrap().len(), 1);

    commands::configure_target(
        &*s,
        &op(),
        src.org,
        conn.id,
        &json!({"unknown_resources": "remove"})
            .as_object()
            .unwrap()
            .clone(),
    )
    .await
    .unwrap();
    settled(&*s, src.org).await;
    let dry = commands::reconcile(&*s, &op(), src.org, conn.id, true)
        .await
        .unwrap();
    assert_eq!(dry.counts.deleted_unknown, 1);
    assert!(
        queued(&*s, src.org).await.is_empty(),
        "a dry run queues nothing"
    );

    // The application forbids deletions: the queued deletion fails, for an operator.
    target.refuse_method(Some("DELETE"), 403);
    let run = commands::reconcile(&*s, &op(), src.org, conn.id, false)
        .await
        .unwrap();
    assert_eq!(run.counts.deleted_unknown, 1, "{:?}", run.findings);
    assert!(
        s.list_exceptions(src.org, &open).await.unwrap().is_empty(),
        "the deletion settles the exception"
    );
    let failed = OperationFilter {
        connection_id: Some(conn.id),
        state: Some(OperationState::Failed),
        limit: 10,
        ..Default::default()
    };
    eventually(
        Duration::from_secs(30),
        "the refused deletion in the failed inbox",
        || async { s.list_operations(src.org, &failed).await.unwrap().len() == 1 },
    )
    .await;
    let deletion = s.list_operations(src.org, &failed).await.unwrap().remove(0);
    assert_eq!(deletion.action, OperationAction::Delete);
    let remote = target_users(&*s, &target)
        .await
        .into_iter()
        .find(|u| u.user_name == "intruder@elsewhere.example")
        .expect("still at the target");
    assert_eq!(
        deletion.unknown_remote_id(),
        Some(remote.id.to_string().as_str())
    );
    assert_eq!(deletion.last_status, Some(403));

    // What an operator sees of it.
    let config = tempfile::tempdir().unwrap();
    let org = src.org.to_string();
    let show = |id: &str| {
        let out = h
            .cli(config.path())
            .args(["--org", org.as_str(), "--json", "ops", "show", id])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ops show: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let shown = show(&deletion.id.to_string());
    let attempts = shown["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{shown}");
    assert_eq!(attempts[0]["http_status"], json!(403), "{shown}");
    let sent = attempts[0]["request_excerpt"].as_str().unwrap_or("");
    assert!(
        sent.contains(&format!("DELETE /Users/{}", remote.id)),
        "{shown}"
    );

    // Allowed again and retried: carried out, attempts kept.
    target.refuse_method(None, 403);
    commands::retry(&*s, &op(), src.org, deletion.id)
        .await
        .unwrap();
    settled(&*s, src.org).await;
    assert!(
        !target_users(&*s, &target)
            .await
            .iter()
            .any(|u| u.user_name.starts_with("intruder"))
    );
    let shown = show(&deletion.id.to_string());
    assert_eq!(shown["operation"]["state"], json!("succeeded"), "{shown}");
    let attempts = shown["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{shown}");
    assert_eq!(attempts[1]["http_status"], json!(204), "{shown}");
    let clean = commands::reconcile(&*s, &op(), src.org, conn.id, false)
        .await
        .unwrap();
    assert!(clean.counts.is_clean(), "{:?}", clean.findings);
    engine.shutdown().await;
}

/// Per-target attribute overrides (template, drop, rename, constant) reach the target, and
/// roles travel in the `roles` attribute when configured so.
async fn attribute_overrides_reach_the_target(h: &Harness) {
    let s = h.store.clone();
    let src = Source::start(s.clone()).await;
    let target = TargetDouble::start(s.clone(), "Rostering").await.unwrap();
    let settings = json!({
        "user_scope": "all",
        "roles": ["nurse"],
        "role_delivery": "roles",
        "variables": {"domain": "riverside.org"},
        "attributes": {
            "userName": {"template": "{givenName}.{familyName}@{domain}"},
            "emails": "drop",
            "nickName": {"from": "email"},
            "title": {"const": "Registered Nurse"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter": {"const": "4711"}
        }
    });
    target_conn(
        &*s,
        src.org,
        "rostering",
        &target.base_url,
        &target.token,
        settings,
    )
    .await;
    let nurse = role(&*s, src.org, "nurse").await;
    add_mapping(&*s, src.org, rule("Nurses", false, nurse.id)).await;
    let engine = running(h).await;
    let (status, body) = src
        .call(
            Method::POST,
            "/Users",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "akim@idp.example",
                "name": {"givenName": "Ann", "familyName": "Kim"},
                "emails": [{"value": "ann.kim@mail.example", "type": "work", "primary": true}],
                "active": true
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    push_group(&src, "Nurses", &[id]).await;
    eventually(
        Duration::from_secs(30),
        "the nurse, mapped, with her role",
        || async {
            target_users(&*s, &target)
                .await
                .iter()
                .any(|u| u.attributes.0.get("roles").is_some())
        },
    )
    .await;
    let u = target_users(&*s, &target).await.remove(0);
    assert_eq!(u.user_name, "Ann.Kim@riverside.org");
    assert!(u.emails.0.is_empty(), "emails dropped");
    assert_eq!(u.attributes.0["nickName"], json!("ann.kim@mail.example"));
    assert_eq!(u.attributes.0["title"], json!("Registered Nurse"));
    assert_eq!(
        u.attributes.0["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["costCenter"],
        json!("4711")
    );
    assert_eq!(u.attributes.0["roles"], json!([{"value": "nurse"}]));
    // A bad override is refused before it is saved, naming the problem.
    let conn = s
        .connection_by_name(src.org, "rostering")
        .await
        .unwrap()
        .unwrap();
    let bad = json!({"attributes": {"userName": {"template": "{givenName"}}});
    let err = commands::configure_target(&*s, &op(), src.org, conn.id, bad.as_object().unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unclosed"), "{err}");
    engine.shutdown().await;
}

/// A target with a reconcile schedule is reconciled by the engine on its own; the runs show
/// in health, and a run that fails (the target is down) degrades it.
async fn scheduled_reconciliation_feeds_health(h: &Harness) {
    let (s, src, target, conn) = scene(
        h,
        "EHR",
        "ehr",
        json!({"user_scope": "all", "reconcile_every_secs": 1}),
    )
    .await;
    let engine = running(h).await;
    src.create_user("a@riverside.example").await;
    eventually(Duration::from_secs(30), "two scheduled runs", || async {
        s.reconcile_runs(src.org, conn.id, 10)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.actor == "engine" && r.error.is_none())
            .count()
            >= 2
    })
    .await;
    let conn = s.connection(src.org, conn.id).await.unwrap().unwrap();
    let report = scimdesk::engine::health::connection_health(&*s, &conn, &fast().health)
        .await
        .unwrap();
    let last = report.last_reconcile.expect("the last run is reported");
    assert_eq!((last.dry_run, last.error.as_deref()), (false, None));
    target
        .faults
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    eventually(
        Duration::from_secs(30),
        "a failed run degrades health",
        || async {
            let report = scimdesk::engine::health::connection_health(&*s, &conn, &fast().health)
                .await
                .unwrap();
            report
                .reason
                .contains("the last full reconciliation failed")
                || report.last_reconcile.is_some_and(|r| r.error.is_some())
                    && report.state != scimdesk::engine::HealthState::Healthy
        },
    )
    .await;
    engine.shutdown().await;
}

/// A target that already holds an account with the same userName from another source is a
/// conflict: the create stops with an exception holding both sides, nothing is taken over;
/// linking it (by an operator) retries the operation, which then updates that account.
async fn conflicts_at_a_target_are_exceptions_resolved_by_linking(h: &Harness) {
    let s = h.store.clone();
    let src = Source::start(s.clone()).await;
    let target = TargetDouble::start(s.clone(), "EHR").await.unwrap();
    let mut theirs = UserDraft::new("dup@riverside.example");
    theirs.external_id = Some("other-provisioner-7".into());
    let existing = s
        .create_user(&op(), target.organization_id, &theirs)
        .await
        .unwrap();
    target_conn(
        &*s,
        src.org,
        "ehr",
        &target.base_url,
        &target.token,
        json!({"user_scope": "all", "max_attempts": 3}),
    )
    .await;
    let engine = running(h).await;
    src.create_user("dup@riverside.example").await;
    let open = || async {
        s.list_exceptions(
            src.org,
            &ExceptionFilter {
                state: Some(ExceptionState::Open),
                kind: Some(ExceptionKind::Conflict),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap()
    };
    // The exception is raised during the attempt; the operation is marked failed when the
    // attempt is recorded, a moment later.
    eventually(
        Duration::from_secs(30),
        "a conflict exception and the failed operation",
        || async { !open().await.is_empty() && !failed_ops(&*s, src.org).await.is_empty() },
    )
    .await;
    let ex = open().await.remove(0);
    assert_eq!(ex.subject, "dup@riverside.example");
    assert_eq!(
        ex.details.0["theirs"]["externalId"],
        json!("other-provisioner-7"),
        "{:?}",
        ex.details
    );
    assert_eq!(
        ex.details.0["ours"]["userName"],
        json!("dup@riverside.example")
    );
    let failed = failed_ops(&*s, src.org).await;
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("conflict"),
        "{failed:?}"
    );
    assert_eq!(
        target_users(&*s, &target).await.len(),
        1,
        "nothing created, nothing taken over"
    );
    assert_eq!(
        target_users(&*s, &target).await[0].external_id.as_deref(),
        Some("other-provisioner-7")
    );

    let resolved = commands::resolve_exception(
        &*s,
        &op(),
        src.org,
        ex.id,
        &Resolution::Link(existing.id.to_string()),
        &Guard::default(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(resolved.state, ExceptionState::Resolved);
    eventually(
        Duration::from_secs(30),
        "the linked account brought up to date",
        || async {
            let t = target_users(&*s, &target).await;
            t.len() == 1 && t[0].external_id.as_deref() != Some("other-provisioner-7")
        },
    )
    .await;
    settled(&*s, src.org).await;
    engine.shutdown().await;
}

/// A user deleted by hand at the target has left its groups there; removing them here then
/// meets `noTarget` for the member removal, which is what we wanted anyway — not a failure, for
/// the role group and for a mirrored source group alike.
async fn a_member_already_gone_at_the_target_is_not_a_failure(h: &Harness) {
    let (s, src, target, conn) = scene(
        h,
        "EHR",
        "ehr",
        json!({"roles": ["nurse"], "source_groups": true}),
    )
    .await;
    let nurse = role(&*s, src.org, "nurse").await;
    add_mapping(&*s, src.org, rule("Nurses", false, nurse.id)).await;
    let engine = running(h).await;
    let a = src.create_user("a@riverside.example").await;
    let b = src.create_user("b@riverside.example").await;
    let group = push_group(&src, "Nurses", &[a, b.clone()]).await;
    eventually(
        Duration::from_secs(30),
        "both groups with both members",
        || async {
            let g = target_groups(&*s, &target).await;
            g.get("nurse").is_some_and(|m| m.len() == 2)
                && g.get("Nurses").is_some_and(|m| m.len() == 2)
        },
    )
    .await;
    settled(&*s, src.org).await;
    commands::pause(&*s, &op(), src.org, conn.id, "hand edit")
        .await
        .unwrap();
    let gone = target_users(&*s, &target)
        .await
        .into_iter()
        .find(|u| u.user_name == "b@riverside.example")
        .unwrap();
    s.delete_user(&op(), target.organization_id, gone.id)
        .await
        .unwrap();
    patch_members(&src, &group, "remove", &b).await;
    commands::resume(&*s, &op(), src.org, conn.id)
        .await
        .unwrap();
    settled(&*s, src.org).await;
    let g = target_groups(&*s, &target).await;
    assert_eq!(g.get("nurse").map(|m| m.len()), Some(1), "{g:?}");
    assert_eq!(g.get("Nurses").map(|m| m.len()), Some(1), "{g:?}");
    let failed = failed_ops(&*s, src.org).await;
    assert!(failed.is_empty(), "{failed:?}");
    engine.shutdown().await;
}

/// A group sent while one of its members is being removed at the target by this target's own
/// work is refused there (400: no such member). That is a race, not an operator's problem: the
/// group is retried and rendered again once the member's work is done. Here the member (bob,
/// deleted by hand at the target, so his link is stale) has an operation leased by a worker
/// that is not running; the role group, sent in full (PUT), is refused until that lease expires
/// and bob's operation re-creates him, and then holds all three nurses with nothing failed.
async fn a_group_refused_for_a_member_removed_meanwhile_is_sent_again(h: &Harness) {
    let (s, src, target, conn, _a, b, group) = refused_role_group_scene(h).await;
    // A change to bob, whose operation is leased by a worker that will not finish it: his
    // work stays unfinished until the lease runs out, and then re-creates him.
    let bob_id = Uuid::parse_str(&b).unwrap();
    let (status, body) = src
        .call(
            Method::PATCH,
            &format!("/Users/{b}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "displayName", "value": "Bob"}],
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let leased = s
        .claim_operations(conn.id, Uuid::now_v7(), Duration::from_secs(3), 1, None)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].resource_id, bob_id);
    cat_joins(&src, &group).await;

    let engine = running(h).await;
    eventually(
        Duration::from_secs(30),
        "the role group with all three, bob re-created",
        || async {
            target_groups(&*s, &target)
                .await
                .get("nurse")
                .is_some_and(|m| m.len() == 3 && m.contains("bob@riverside.example"))
        },
    )
    .await;
    settled(&*s, src.org).await;
    assert!(failed_ops(&*s, src.org).await.is_empty());
    let refused = target.server.count("PUT", "/scim/v2/Groups", 400);
    assert!(
        refused >= 1,
        "the group was never refused: the race was not staged"
    );
    engine.shutdown().await;
}

/// The same refusal with nothing moving among the members sent (bob deleted by hand at the
/// target, no work of his queued, his link stale) is the operator's to see: the group fails at
/// once with the target's answer, rather than being retried.
async fn a_group_refused_with_every_member_as_sent_fails_at_once(h: &Harness) {
    let (s, src, target, _conn, a, _b, group) = refused_role_group_scene(h).await;
    // Ann leaves: the role group is sent again holding only bob, under his stale remote id.
    // (Ann is not named in it, so her own removal at the target does not count as moving.)
    patch_members(&src, &group, "remove", &a).await;
    let engine = running(h).await;
    eventually(Duration::from_secs(30), "the role group failed", || async {
        !failed_ops(&*s, src.org).await.is_empty()
    })
    .await;
    let failed = failed_ops(&*s, src.org).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].resource_type, ResourceType::Group);
    assert_eq!(failed[0].attempts, 1, "refused once, not retried");
    let error = failed[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("not a user"), "{error}");
    assert_eq!(target.server.count("PUT", "/scim/v2/Groups", 400), 1);
    engine.shutdown().await;
}

/// The operations in `failed`.
async fn failed_ops(s: &dyn Store, org: OrganizationId) -> Vec<Operation> {
    s.list_operations(
        org,
        &OperationFilter {
            state: Some(OperationState::Failed),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// Ann and bob provisioned with the role group `nurse` (sent in full, PUT) at a target, the
/// engine stopped, bob then deleted by hand at the target. Returns ann's, bob's and the
/// group's ids.
async fn refused_role_group_scene(
    h: &Harness,
) -> (
    std::sync::Arc<dyn Store>,
    Source,
    TargetDouble,
    Connection,
    String,
    String,
    String,
) {
    let (s, src, target, conn) = scene(
        h,
        "Rostering",
        "rostering",
        json!({"roles": ["nurse"], "update_mode": "put"}),
    )
    .await;
    let nurse = role(&*s, src.org, "nurse").await;
    add_mapping(&*s, src.org, rule("Nurses", false, nurse.id)).await;
    let engine = running(h).await;
    let a = src.create_user("ann@riverside.example").await;
    let b = src.create_user("bob@riverside.example").await;
    let group = push_group(&src, "Nurses", &[a.clone(), b.clone()]).await;
    eventually(
        Duration::from_secs(30),
        "the role group with both",
        || async { group_has(&*s, &target, "nurse", 2).await },
    )
    .await;
    settled(&*s, src.org).await;
    engine.shutdown().await;
    let gone = target_users(&*s, &target)
        .await
        .into_iter()
        .find(|u| u.user_name == "bob@riverside.example")
        .unwrap();
    s.delete_user(&op(), target.organization_id, gone.id)
        .await
        .unwrap();
    (s, src, target, conn, a, b, group)
}

/// Cat joins the group: the role group is sent again, naming bob's stale remote id.
async fn cat_joins(src: &Source, group: &str) {
    let c = src.create_user("cat@riverside.example").await;
    patch_members(src, group, "add", &c).await;
}

/// A member the target refuses (their create failed and waits for an operator) is not at the
/// target: the role group goes out with everyone else instead of waiting for them for ever,
/// and once an operator retries the member, the group is sent again with them.
async fn a_member_whose_create_failed_does_not_hold_up_the_group(h: &Harness) {
    let (s, src, target, _conn) =
        scene(h, "Rostering", "rostering", json!({"roles": ["nurse"]})).await;
    let nurse = role(&*s, src.org, "nurse").await;
    add_mapping(&*s, src.org, rule("Nurses", false, nurse.id)).await;
    target.server.poison(Some("carl@riverside.example"), 400);
    let engine = running(h).await;
    let a = src.create_user("ann@riverside.example").await;
    let c = src.create_user("carl@riverside.example").await;
    push_group(&src, "Nurses", &[a, c.clone()]).await;
    eventually(
        Duration::from_secs(30),
        "the role group with ann, carl failed",
        || async {
            group_has(&*s, &target, "nurse", 1).await && failed_ops(&*s, src.org).await.len() == 1
        },
    )
    .await;
    let failed = failed_ops(&*s, src.org).await;
    assert_eq!(failed[0].resource_type, ResourceType::User);
    assert_eq!(failed[0].resource_id.to_string(), c);
    let members = target_groups(&*s, &target).await;
    assert_eq!(
        members
            .get("nurse")
            .map(|m| m.iter().cloned().collect::<Vec<_>>()),
        Some(vec!["ann@riverside.example".to_string()])
    );
    // The target is fixed and an operator retries carl: he arrives, and the group is sent
    // again with him (nothing else would send it).
    target.server.poison(None, 400);
    commands::retry(&*s, &op(), src.org, failed[0].id)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "carl in the role group after the retry",
        || async { group_has(&*s, &target, "nurse", 2).await },
    )
    .await;
    settled(&*s, src.org).await;
    assert!(failed_ops(&*s, src.org).await.is_empty());
    engine.shutdown().await;
}
