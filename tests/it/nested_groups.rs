//! Groups inside groups pushed to the inbound SCIM server (RFC 7643 §4.2 `type: "Group"`
//! members), over real HTTP on both stores: flattened for mapping, kept as pushed for GET and
//! PATCH, followed through every level when a group inside changes, cycles refused with 400,
//! and pulled by a `scim_source` with the hierarchy as paths.

use crate::support;

use reqwest::Method;
use scimdesk::domain::*;
use scimdesk::engine::Engine;
use scimdesk::engine::sync::{SyncOptions, sync_source};
use scimdesk::stand_ins::target_double::TargetDouble;
use scimdesk::store::{ListRange, Store};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use support::Harness;
use support::idp::{Source, eventually, fast};

on_both_backends!(
    groups_inside_groups_are_flattened_for_mapping_and_followed_at_targets,
    cycles_and_strangers_are_refused_and_change_nothing,
    a_scim_source_pulls_nested_groups_as_paths,
);

fn op() -> Actor {
    Actor::operator("tester")
}

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

/// The userNames of a group's effective members, sorted.
async fn effective(s: &dyn Store, org: OrganizationId, group: &str) -> BTreeSet<String> {
    let id: GroupId = group.parse().unwrap();
    let ids = s.group_members(org, id).await.unwrap();
    s.users_by_ids(org, &ids)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.user_name)
        .collect()
}

/// A group's `members` as GET shows them: (type, display), sorted.
async fn shown(src: &Source, group: &str) -> Vec<(String, String)> {
    let (status, doc) = src
        .call(Method::GET, &format!("/Groups/{group}"), None)
        .await;
    assert_eq!(status, 200, "{doc}");
    let mut out: Vec<(String, String)> = doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["type"].as_str().unwrap().to_string(),
                m["display"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The active users at a target, by userName.
async fn at_target(s: &dyn Store, t: &TargetDouble) -> BTreeSet<String> {
    s.list_users(t.organization_id, ListRange::first(10_000))
        .await
        .unwrap()
        .into_iter()
        .filter(|u| u.active)
        .map(|u| u.user_name)
        .collect()
}

async fn audit_count(s: &dyn Store, org: OrganizationId) -> usize {
    let filter = AuditFilter {
        limit: 100_000,
        ..Default::default()
    };
    s.list_audit(org, &filter).await.unwrap().len()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter()
        .map(|n| format!("{n}@riverside.example"))
        .collect()
}

async fn groups_inside_groups_are_flattened_for_mapping_and_followed_at_targets(h: &Harness) {
    let s = h.store.clone();
    let src = Source::start(s.clone()).await;
    let ehr = TargetDouble::start(s.clone(), "EHR").await.unwrap();
    s.create_connection(
        &op(),
        src.org,
        &NewConnection {
            name: "ehr".into(),
            kind: ConnectionKind::ScimTarget,
            base_url: Some(ehr.base_url.clone()),
            auth_method: AuthMethod::Bearer,
            settings: json!({"roles": ["staff"], "delete_mode": "suspend"}),
        },
        Some(&scimdesk::crypto::Secret::new(ehr.token.clone())),
    )
    .await
    .unwrap();
    let staff = scimdesk::engine::commands::ensure_role(&*s, &op(), src.org, "staff")
        .await
        .unwrap();
    // Mapped by the parent's name only: its children's members hold the role through it.
    scimdesk::engine::commands::set_mapping(
        &*s,
        &op(),
        src.org,
        &scimdesk::engine::commands::MappingChange::Set {
            id: None,
            draft: RoleMappingDraft::by_display_name("Hospital", false, staff.id),
        },
        &scimdesk::policy::impact::Guard::default(),
        true,
    )
    .await
    .unwrap();
    let engine = Engine::new(s.clone(), fast());
    engine.start();

    let mut id = std::collections::HashMap::new();
    for n in ["ann", "bob", "cat", "dan", "eve"] {
        id.insert(n, src.create_user(&format!("{n}@riverside.example")).await);
    }
    let night = src.create_group("ICU Night", &[id["eve"].clone()]).await;
    let icu = src.create_group("ICU", &[id["ann"].clone()]).await;
    let ward = src.create_group("Ward", &[id["bob"].clone()]).await;
    // ICU Night inside ICU, named by `type`; ICU inside Hospital by `$ref` alone; cat a user.
    let (status, doc) = src
        .call(
            Method::PATCH,
            &format!("/Groups/{icu}"),
            Some(patch(json!([{"op": "add", "path": "members",
                "value": [{"value": night, "type": "Group"}]}]))),
        )
        .await;
    assert_eq!(status, 200, "{doc}");
    let (status, doc) = src
        .call(
            Method::POST,
            "/Groups",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Hospital",
                "members": [
                    {"value": icu, "$ref": format!("{}/Groups/{icu}", src.base)},
                    {"value": id["cat"]},
                ],
            })),
        )
        .await;
    assert_eq!(status, 201, "{doc}");
    let hospital = doc["id"].as_str().unwrap().to_string();

    // GET shows what was pushed: users named directly, and groups inside as Groups.
    assert_eq!(
        shown(&src, &hospital).await,
        vec![
            ("Group".into(), "ICU".into()),
            ("User".into(), "cat@riverside.example".into())
        ]
    );
    // The store holds the flattened members, however deep.
    assert_eq!(
        effective(&*s, src.org, &hospital).await,
        names(&["ann", "cat", "eve"])
    );
    // A user's groups say which they are in directly and which through a group inside.
    let (_, eve) = src
        .call(Method::GET, &format!("/Users/{}", id["eve"]), None)
        .await;
    let mut kinds: Vec<(String, String)> = eve["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["display"].as_str().unwrap().into(),
                g["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("Hospital".into(), "indirect".into()),
            ("ICU".into(), "indirect".into()),
            ("ICU Night".into(), "direct".into()),
        ]
    );
    eventually(
        Duration::from_secs(30),
        "ann, cat and eve at the target through Hospital",
        || async { at_target(&*s, &ehr).await == names(&["ann", "cat", "eve"]) },
    )
    .await;

    // Ward put inside Hospital by a plain value (no type, no $ref): bob follows.
    let (status, doc) = src
        .call(
            Method::PATCH,
            &format!("/Groups/{hospital}"),
            Some(patch(
                json!([{"op": "add", "path": "members", "value": [{"value": ward}]}]),
            )),
        )
        .await;
    assert_eq!(status, 200, "{doc}");
    // A change two levels down reaches the top: dan joins ICU Night.
    let (status, doc) = src
        .call(
            Method::PATCH,
            &format!("/Groups/{night}"),
            Some(patch(
                json!([{"op": "add", "path": "members", "value": [{"value": id["dan"]}]}]),
            )),
        )
        .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(
        effective(&*s, src.org, &hospital).await,
        names(&["ann", "bob", "cat", "dan", "eve"])
    );
    eventually(
        Duration::from_secs(30),
        "bob and dan at the target too",
        || async { at_target(&*s, &ehr).await == names(&["ann", "bob", "cat", "dan", "eve"]) },
    )
    .await;

    // ann named in Hospital directly too: leaving ICU keeps her in Hospital.
    let (status, _) = src
        .call(
            Method::PATCH,
            &format!("/Groups/{hospital}"),
            Some(patch(
                json!([{"op": "add", "path": "members", "value": [{"value": id["ann"]}]}]),
            )),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = src
        .call(
            Method::PATCH,
            &format!("/Groups/{icu}"),
            Some(patch(json!([{"op": "remove",
                "path": format!("members[value eq \"{}\"]", id["ann"])}]))),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        effective(&*s, src.org, &hospital)
            .await
            .contains("ann@riverside.example")
    );
    assert!(
        !effective(&*s, src.org, &icu)
            .await
            .contains("ann@riverside.example")
    );

    // ICU Night taken out of ICU (PATCH remove of a Group member): dan and eve leave
    // Hospital and are suspended at the target. Ward deleted: bob leaves too.
    let (status, doc) = src
        .call(
            Method::PATCH,
            &format!("/Groups/{icu}"),
            Some(patch(json!([{"op": "remove",
                "path": format!("members[value eq \"{night}\"]")}]))),
        )
        .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(shown(&src, &icu).await, vec![]);
    let (status, _) = src
        .call(Method::DELETE, &format!("/Groups/{ward}"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        shown(&src, &hospital).await,
        vec![
            ("Group".into(), "ICU".into()),
            ("User".into(), "ann@riverside.example".into()),
            ("User".into(), "cat@riverside.example".into())
        ]
    );
    assert_eq!(
        effective(&*s, src.org, &hospital).await,
        names(&["ann", "cat"])
    );
    eventually(
        Duration::from_secs(30),
        "only ann and cat still active at the target",
        || async { at_target(&*s, &ehr).await == names(&["ann", "cat"]) },
    )
    .await;

    // PUT replaces both lists: Hospital holds ICU Night again and nobody directly.
    let (status, doc) = src
        .call(
            Method::PUT,
            &format!("/Groups/{hospital}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Hospital",
                "members": [{"value": night, "type": "Group"}],
            })),
        )
        .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(
        effective(&*s, src.org, &hospital).await,
        names(&["dan", "eve"])
    );
    engine.shutdown().await;
}

async fn cycles_and_strangers_are_refused_and_change_nothing(h: &Harness) {
    let s = h.store.clone();
    let src = Source::start(s.clone()).await;
    let ann = src.create_user("ann@riverside.example").await;
    let a = src.create_group("A", std::slice::from_ref(&ann)).await;
    let b = src.create_group("B", std::slice::from_ref(&a)).await;
    let c = src.create_group("C", std::slice::from_ref(&b)).await;
    assert_eq!(effective(&*s, src.org, &c).await, names(&["ann"]));
    let versions = |s: std::sync::Arc<dyn Store>, org| async move {
        let mut v: Vec<(String, i64)> = s
            .list_groups(org, ListRange::first(100))
            .await
            .unwrap()
            .into_iter()
            .map(|g| (g.display_name, g.version))
            .collect();
        v.sort();
        v
    };
    let before = versions(s.clone(), src.org).await;
    let audit_before = audit_count(&*s, src.org).await;

    let refuse = |group: String, member: Value, why: &'static str| {
        let src = &src;
        async move {
            let (status, doc) = src
                .call(
                    Method::PATCH,
                    &format!("/Groups/{group}"),
                    Some(patch(
                        json!([{"op": "add", "path": "members", "value": [member]}]),
                    )),
                )
                .await;
            assert_eq!(status, 400, "{doc}");
            assert_eq!(doc["scimType"], "invalidValue", "{doc}");
            let detail = doc["detail"].as_str().unwrap();
            assert!(detail.contains(why), "{detail}");
        }
    };
    // A group inside itself; C inside A, which is inside C two levels down; either way of
    // naming the member.
    refuse(a.clone(), json!({"value": a, "type": "Group"}), "itself").await;
    refuse(a.clone(), json!({"value": c, "type": "Group"}), "cycle").await;
    refuse(a.clone(), json!({"value": c}), "cycle").await;
    // A group of another organization, and one that does not exist.
    let other = support::inbound_tenant(&*s, "Elsewhere").await;
    let foreign = s
        .create_group(&op(), other.0, &GroupDraft::new("Theirs"))
        .await
        .unwrap();
    refuse(
        a.clone(),
        json!({"value": foreign.id.to_string(), "type": "Group"}),
        "not a group of this organization",
    )
    .await;
    refuse(
        a.clone(),
        json!({"value": GroupId::new().to_string(), "type": "Group"}),
        "not a group of this organization",
    )
    .await;
    // Creating a group that names itself is impossible (no id yet), but a PUT can.
    let (status, doc) = src
        .call(
            Method::PUT,
            &format!("/Groups/{b}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "B",
                "members": [{"value": c, "type": "Group"}],
            })),
        )
        .await;
    assert_eq!(status, 400, "{doc}");
    assert_eq!(doc["scimType"], "invalidValue");

    assert_eq!(versions(s.clone(), src.org).await, before);
    assert_eq!(audit_count(&*s, src.org).await, audit_before);
    assert_eq!(effective(&*s, src.org, &c).await, names(&["ann"]));
}

async fn a_scim_source_pulls_nested_groups_as_paths(h: &Harness) {
    let s = h.store.clone();
    let src = Source::start(s.clone()).await;
    let ann = src.create_user("ann@riverside.example").await;
    let bob = src.create_user("bob@riverside.example").await;
    let icu = src.create_group("ICU", std::slice::from_ref(&ann)).await;
    src.create_group("Hospital", &[icu.clone(), bob.clone()])
        .await;

    // Riverside reads the authority's /Users and /Groups with a scim_source.
    let org = s.create_organization(&op(), "Riverside").await.unwrap();
    let source = s
        .create_connection(
            &op(),
            org.id,
            &NewConnection {
                name: "Upstream".into(),
                kind: ConnectionKind::ScimSource,
                base_url: Some(src.base.clone()),
                auth_method: AuthMethod::Bearer,
                settings: json!({}),
            },
            Some(&scimdesk::crypto::Secret::new(src.token.clone())),
        )
        .await
        .unwrap();
    let role = support::map_path_to_role(&*s, org.id, "/Hospital", "staff").await;
    sync_source(
        &*s,
        &op(),
        org.id,
        source.id,
        SyncOptions {
            full: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let groups = s.list_groups(org.id, ListRange::first(100)).await.unwrap();
    let paths: BTreeSet<String> = groups.iter().map(|g| g.path()).collect();
    assert_eq!(
        paths,
        ["/Hospital", "/Hospital/ICU"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    let hospital = groups
        .iter()
        .find(|g| g.display_name == "Hospital")
        .unwrap();
    assert_eq!(
        effective(&*s, org.id, &hospital.id.to_string()).await,
        names(&["ann", "bob"])
    );
    // The mapping by path on the parent gives ann (in ICU only) the role.
    let users = s.list_users(org.id, ListRange::first(10)).await.unwrap();
    let ann = users
        .iter()
        .find(|u| u.user_name == "ann@riverside.example")
        .unwrap();
    let view = scimdesk::engine::directory::Directory::open(&*s, org.id)
        .await
        .unwrap()
        .user(ann.clone())
        .await
        .unwrap();
    assert!(
        view.roles.iter().any(|r| r == &role.name),
        "{:?}",
        view.roles
    );
}
