//! A source sync killed with SIGKILL mid-way on PostgreSQL, then run again: the result is the
//! same as a sync that was never interrupted (each batch is one transaction; the claim of the
//! dead process expires; the second run finds what the first wrote and applies the rest).
//! The source is a static SCIM server in this test process (a real HTTP server on 127.0.0.1
//! that pages `/Users` and `/Groups` the way RFC 7644 §3.4.2.4 says).

use crate::support::Harness;
use axum::extract::Query;
use axum::routing::get;
use scimdesk::domain::*;
use scimdesk::store::{ListRange, OperationFilter, Store};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USERS: usize = 6000;
const GROUPS: usize = 12;

fn list(all: &[Value], q: &HashMap<String, String>) -> Value {
    let start: usize = q
        .get("startIndex")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let count: usize = q.get("count").and_then(|s| s.parse().ok()).unwrap_or(100);
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": all.len(),
        "startIndex": start,
        "itemsPerPage": count,
        "Resources": all.iter().skip(start.saturating_sub(1)).take(count).cloned().collect::<Vec<_>>(),
    })
}

/// Serves `USERS` users and `GROUPS` groups of 500 members each; returns its base URL.
async fn static_source() -> String {
    let users: Vec<Value> = (0..USERS)
        .map(|i| {
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": format!("u{i:05}"),
                "userName": format!("staff{i:05}@riverside.example"),
                "name": {"givenName": "Staff", "familyName": format!("{i:05}")},
                "active": i % 50 != 0,
            })
        })
        .collect();
    let groups: Vec<Value> = (0..GROUPS)
        .map(|g| {
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "id": format!("g{g:02}"),
                "displayName": format!("Ward {g:02}"),
                "members": (0..500).map(|m| json!({"value": format!("u{:05}", g * 500 + m)})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let users = Arc::new(users);
    let groups = Arc::new(groups);
    let app = axum::Router::new()
        .route(
            "/scim/v2/Users",
            get(move |Query(q): Query<HashMap<String, String>>| {
                let users = users.clone();
                async move { axum::Json(list(&users, &q)) }
            }),
        )
        .route(
            "/scim/v2/Groups",
            get(move |Query(q): Query<HashMap<String, String>>| {
                let groups = groups.clone();
                async move { axum::Json(list(&groups, &q)) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/scim/v2", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// An organization with the source (a two-second claim, so a dead process frees it soon) and
/// a target that receives everyone.
async fn tenant(s: &dyn Store, name: &str, base: &str) -> (OrganizationId, Connection) {
    let op = Actor::operator("tester");
    let org = s.create_organization(&op, name).await.unwrap();
    let c = s
        .create_connection(
            &op,
            org.id,
            &NewConnection {
                name: "Upstream".into(),
                kind: ConnectionKind::ScimSource,
                base_url: Some(base.into()),
                auth_method: AuthMethod::None,
                settings: json!({"sync_claim_secs": 2}),
            },
            None,
        )
        .await
        .unwrap();
    s.create_connection(
        &op,
        org.id,
        &NewConnection {
            name: "EHR".into(),
            kind: ConnectionKind::ScimTarget,
            base_url: Some("http://127.0.0.1:9/scim/v2".into()),
            auth_method: AuthMethod::None,
            settings: json!({"user_scope": "all"}),
        },
        None,
    )
    .await
    .unwrap();
    (org.id, c)
}

/// Everything a sync decides, comparable across organizations: users, groups with members,
/// and the operations queued per resource.
async fn outcome(
    s: &dyn Store,
    org: OrganizationId,
) -> (
    Vec<String>,
    BTreeMap<String, Vec<String>>,
    BTreeMap<String, u64>,
) {
    let users = s.list_users(org, ListRange::first(100_000)).await.unwrap();
    let names: HashMap<UserId, String> =
        users.iter().map(|u| (u.id, u.user_name.clone())).collect();
    let mut u: Vec<String> = users
        .iter()
        .map(|u| format!("{} {} {:?}", u.user_name, u.active, u.external_id))
        .collect();
    u.sort();
    let mut g = BTreeMap::new();
    let mut group_names = HashMap::new();
    for group in s.list_groups(org, ListRange::first(1000)).await.unwrap() {
        let mut m: Vec<String> = s
            .group_members(org, group.id)
            .await
            .unwrap()
            .iter()
            .map(|id| names[id].clone())
            .collect();
        m.sort();
        group_names.insert(group.id.0, group.display_name.clone());
        g.insert(group.display_name, m);
    }
    let mut ops = BTreeMap::new();
    for o in s
        .list_operations(
            org,
            &OperationFilter {
                limit: 100_000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
    {
        let who = names
            .get(&UserId(o.resource_id))
            .or_else(|| group_names.get(&o.resource_id))
            .cloned()
            .unwrap_or_default();
        *ops.entry(format!("{} {} {who}", o.resource_type, o.action))
            .or_insert(0) += 1;
    }
    (u, g, ops)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_mid_way_then_run_again_matches_an_uninterrupted_one() {
    let Some(h) = Harness::postgres().await else {
        return;
    };
    let s = &*h.store;
    let base = static_source().await;
    let (reference, rc) = tenant(s, "Reference", &base).await;
    let report = scimdesk::engine::sync::sync_source(
        s,
        &Actor::operator("tester"),
        reference,
        rc.id,
        scimdesk::engine::sync::SyncOptions {
            full: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.run.error, None);
    let expected = outcome(s, reference).await;
    assert_eq!(expected.0.len(), USERS);

    let (org, _) = tenant(s, "Riverside", &base).await;
    let dir = tempfile::tempdir().unwrap();
    // Killed as soon as its first batch is in, with the rest still to come.
    let mut child = h
        .cli(dir.path())
        .args(["--org", "Riverside", "connection", "sync", "Upstream"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while s.count_users(org).await.unwrap() == 0 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let after = s.count_users(org).await.unwrap() as usize;
    let interrupted = after > 0 && after < USERS;
    assert!(interrupted, "the sync could not be killed mid-way");
    // Every batch is whole: users are in by batches of 500.
    assert_eq!(s.count_users(org).await.unwrap() % 500, 0);

    // The dead process's claim expires; the run again completes.
    let run = || {
        h.cli(dir.path())
            .args(["--org", "Riverside", "connection", "sync", "Upstream"])
            .output()
            .unwrap()
    };
    let mut out = run();
    let started = Instant::now();
    while !out.status.success()
        && String::from_utf8_lossy(&out.stderr).contains("being synced by another process")
        && started.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(300)).await;
        out = run();
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = outcome(s, org).await;
    assert_eq!(got.0, expected.0, "the same users");
    assert_eq!(got.1, expected.1, "the same groups and members");
    assert_eq!(
        got.2, expected.2,
        "the same operations, none twice and none lost"
    );
}
