//! Pulling from a SCIM 2.0 server as a source of truth (`scim_source`), on both stores. The
//! authority is scimdesk's own inbound SCIM server, in another organization of the same store,
//! reached over real HTTP: what an identity provider pushes there is what the source holds.
//! Riverside reads it with `connection sync`, and has a target, so every change it applies
//! queues operations as a pushed change would.

use crate::support::Harness;
use crate::support::idp::Source;
use axum::http::header;
use axum::response::IntoResponse;
use reqwest::Method;
use scimdesk::domain::*;
use scimdesk::engine::commands::{self, Resolution};
use scimdesk::engine::sync::{SyncOptions, sync_source};
use scimdesk::policy::impact::Guard;
use scimdesk::store::{ListRange, OperationFilter, Store};
use serde_json::json;
use std::sync::Arc;

on_both_backends!(
    a_full_sync_then_a_resync_that_writes_nothing,
    disabled_and_departed_users_are_suspended_and_queued,
    the_guard_stops_a_source_that_suddenly_has_nobody,
    garbage_from_the_source_changes_nothing,
    a_dry_run_reports_and_writes_nothing,
    the_cli_adds_and_syncs_a_source,
    one_sync_per_source_at_a_time,
    the_engine_syncs_sources_on_their_schedule,
    an_incremental_sync_reads_what_changed_since_the_cursor,
    the_cli_shows_users_groups_and_targets_that_receive_nobody,
);

fn op() -> Actor {
    Actor::operator("tester")
}

/// Riverside: an organization with a `scim_source` reading `base_url` and one target that
/// receives everyone (never delivered to here: no workers run, so its queue shows what each
/// change caused).
async fn riverside(store: &dyn Store, base_url: &str, token: &str) -> (OrganizationId, Connection) {
    let org = store.create_organization(&op(), "Riverside").await.unwrap();
    let source = store
        .create_connection(
            &op(),
            org.id,
            &NewConnection {
                name: "Upstream".into(),
                kind: ConnectionKind::ScimSource,
                base_url: Some(base_url.into()),
                auth_method: AuthMethod::Bearer,
                settings: json!({}),
            },
            Some(&scimdesk::crypto::Secret::new(token.to_string())),
        )
        .await
        .unwrap();
    store
        .create_connection(
            &op(),
            org.id,
            &NewConnection {
                name: "EHR".into(),
                kind: ConnectionKind::ScimTarget,
                base_url: Some("http://127.0.0.1:9/scim/v2".into()),
                auth_method: AuthMethod::Bearer,
                settings: json!({"user_scope": "all"}),
            },
            Some(&scimdesk::crypto::Secret::new("t")),
        )
        .await
        .unwrap();
    (org.id, source)
}

/// The authority with six nurses, ICU (three of them) and Ward (two).
async fn authority(store: Arc<dyn Store>) -> (Source, Vec<String>) {
    let src = Source::start(store).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            src.create_user(&format!("nurse{i}@riverside.example"))
                .await,
        );
    }
    group(&src, "ICU", &ids[..3]).await;
    group(&src, "Ward", &ids[3..5]).await;
    (src, ids)
}

async fn group(src: &Source, name: &str, members: &[String]) -> String {
    src.create_group(name, members).await
}

async fn sync(
    s: &dyn Store,
    org: OrganizationId,
    c: &Connection,
) -> scimdesk::engine::sync::SyncReport {
    sync_source(
        s,
        &op(),
        org,
        c.id,
        SyncOptions {
            full: true,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn users(s: &dyn Store, org: OrganizationId) -> Vec<User> {
    s.list_users(org, ListRange::first(10_000)).await.unwrap()
}

async fn queued(s: &dyn Store, org: OrganizationId) -> Vec<Operation> {
    s.list_operations(
        org,
        &OperationFilter {
            limit: 10_000,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn audit_count(s: &dyn Store, org: OrganizationId) -> usize {
    s.list_audit(
        org,
        &AuditFilter {
            limit: 10_000,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .len()
}

/// Group name → members' userNames.
async fn groups(s: &dyn Store, org: OrganizationId) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for g in s.list_groups(org, ListRange::first(1000)).await.unwrap() {
        let ids = s.group_members(org, g.id).await.unwrap();
        let mut names: Vec<String> = s
            .users_by_ids(org, &ids)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.user_name)
            .collect();
        names.sort();
        out.push((g.display_name, names));
    }
    out.sort();
    out
}

/// `scimdesk --org Riverside ARGS` on the harness's store, with `stdin` piped in.
fn run_cli(
    h: &Harness,
    dir: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    let mut c = h.cli(dir);
    c.args(["--org", "Riverside"]).args(args);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

async fn a_full_sync_then_a_resync_that_writes_nothing(h: &Harness) {
    let s: Arc<dyn Store> = h.store.clone();
    let (src, ids) = authority(s.clone()).await;
    let (org, conn) = riverside(&*s, &src.base, &src.token).await;

    let first = sync(&*s, org, &conn).await;
    assert_eq!(first.run.error, None);
    let k = &first.counts;
    assert_eq!((k.source_users, k.created, k.suspended), (6, 6, 0));
    assert_eq!(
        (k.source_groups, k.groups_created, k.memberships_added),
        (2, 2, 5)
    );
    let here = users(&*s, org).await;
    assert_eq!(here.len(), 6);
    for u in &here {
        assert_eq!(u.source_connection_id, Some(conn.id));
        assert!(
            ids.contains(u.external_id.as_ref().unwrap()),
            "the source's id is kept"
        );
        assert!(u.active);
    }
    assert_eq!(
        groups(&*s, org).await,
        vec![
            (
                "ICU".to_string(),
                (0..3)
                    .map(|i| format!("nurse{i}@riverside.example"))
                    .collect()
            ),
            (
                "Ward".to_string(),
                (3..5)
                    .map(|i| format!("nurse{i}@riverside.example"))
                    .collect()
            ),
        ]
    );
    // As for pushed users: an operation at the target for each.
    let ops = queued(&*s, org).await;
    assert_eq!(
        ops.iter()
            .filter(|o| o.resource_type == ResourceType::User && o.action == OperationAction::Create)
            .count(),
        6
    );

    // Nothing changed at the source: nothing is written but the run's own record.
    let audits = audit_count(&*s, org).await;
    let ops = queued(&*s, org).await.len();
    let again = sync(&*s, org, &conn).await;
    assert!(again.counts.changed_nothing(), "{:?}", again.counts);
    assert_eq!(again.counts.unchanged, 6);
    assert_eq!(
        audit_count(&*s, org).await,
        audits + 1,
        "only connection.sync"
    );
    assert_eq!(queued(&*s, org).await.len(), ops);
    let runs = s.sync_runs(org, conn.id, 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.error.is_none() && r.full_sync));
}

async fn disabled_and_departed_users_are_suspended_and_queued(h: &Harness) {
    let s: Arc<dyn Store> = h.store.clone();
    let (src, ids) = authority(s.clone()).await;
    let (org, conn) = riverside(&*s, &src.base, &src.token).await;
    sync(&*s, org, &conn).await;
    let before = queued(&*s, org).await.len();

    // nurse0 disabled at the source; nurse1 gone from it (and so from ICU).
    let (status, body) = src
        .call(
            Method::PATCH,
            &format!("/Users/{}", ids[0]),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "active", "value": false}],
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = src
        .call(Method::DELETE, &format!("/Users/{}", ids[1]), None)
        .await;
    assert_eq!(status, 204);

    let run = sync(&*s, org, &conn).await;
    assert_eq!(run.run.error, None);
    assert_eq!(
        (run.counts.suspended, run.counts.unchanged),
        (2, 4),
        "{:?}",
        run.counts
    );
    let here = users(&*s, org).await;
    let state = |name: &str| {
        here.iter()
            .find(|u| u.user_name == name)
            .map(|u| u.active)
            .unwrap()
    };
    assert!(!state("nurse0@riverside.example"));
    assert!(!state("nurse1@riverside.example"));
    assert!(state("nurse2@riverside.example"));
    let ops = queued(&*s, org).await;
    assert!(ops.len() > before);
    let suspends = ops
        .iter()
        .filter(|o| o.action == OperationAction::Suspend)
        .count();
    assert!(suspends >= 2, "{ops:?}");
    // ICU lost nurse1 (the authority removes a deleted user from its groups).
    let icu = groups(&*s, org)
        .await
        .into_iter()
        .find(|(n, _)| n == "ICU")
        .unwrap();
    assert!(
        !icu.1.contains(&"nurse1@riverside.example".to_string()),
        "{icu:?}"
    );

    // Enabled again: reactivated.
    let (status, _) = src
        .call(
            Method::PATCH,
            &format!("/Users/{}", ids[0]),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "active", "value": true}],
            })),
        )
        .await;
    assert_eq!(status, 200);
    let run = sync(&*s, org, &conn).await;
    assert_eq!(run.counts.reactivated, 1, "{:?}", run.counts);
}

async fn the_guard_stops_a_source_that_suddenly_has_nobody(h: &Harness) {
    let s: Arc<dyn Store> = h.store.clone();
    let (src, ids) = authority(s.clone()).await;
    let (org, conn) = riverside(&*s, &src.base, &src.token).await;
    sync(&*s, org, &conn).await;
    for id in &ids {
        let (status, _) = src
            .call(Method::DELETE, &format!("/Users/{id}"), None)
            .await;
        assert_eq!(status, 204);
    }
    let audits = audit_count(&*s, org).await;
    let ops = queued(&*s, org).await.len();

    let stopped = sync(&*s, org, &conn).await;
    let guard = stopped.guard.as_ref().expect("the guard trips");
    assert_eq!((guard.suspending, guard.active), (6, 6));
    assert!(
        stopped
            .run
            .error
            .as_deref()
            .unwrap()
            .contains("deletion guard")
    );
    assert!(
        users(&*s, org).await.iter().all(|u| u.active),
        "nobody suspended"
    );
    assert_eq!(queued(&*s, org).await.len(), ops, "nothing queued");
    // The run's record and the exception's raising are all that is written.
    assert_eq!(audit_count(&*s, org).await, audits + 1);
    let open = s
        .list_exceptions(
            org,
            &ExceptionFilter {
                state: Some(ExceptionState::Open),
                kind: Some(ExceptionKind::SyncGuard),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(Some(open[0].id), guard.exception);
    // A second stopped sync does not raise a second exception.
    let again = sync(&*s, org, &conn).await;
    assert_eq!(again.guard.as_ref().unwrap().exception, guard.exception);

    // "Apply anyway": the sync goes through and the exception is resolved.
    let settled = commands::resolve_exception(
        &*s,
        &op(),
        org,
        open[0].id,
        &Resolution::ApplySync,
        &Guard::default(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(settled.state, ExceptionState::Resolved);
    assert!(
        users(&*s, org).await.iter().all(|u| !u.active),
        "all suspended"
    );
}

async fn garbage_from_the_source_changes_nothing(h: &Harness) {
    let s: Arc<dyn Store> = h.store.clone();
    // A "SCIM server" that answers a sign-in page, then one that fails.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route(
            "/html/Users",
            axum::routing::get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html")],
                    "<html>Sign in</html>",
                )
                    .into_response()
            }),
        )
        .route(
            "/json/Users",
            axum::routing::get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route(
            "/down/Users",
            axum::routing::get(|| async {
                (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response()
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (org, conn) = riverside(&*s, &format!("{base}/html"), "t").await;
    let audits = audit_count(&*s, org).await;
    for (path, says) in [
        ("html", "JSON"),
        ("json", "not a ListResponse"),
        ("down", "500"),
    ] {
        s.update_connection(
            &op(),
            org,
            conn.id,
            &ConnectionUpdate {
                base_url: Some(Some(format!("{base}/{path}"))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let run = sync(&*s, org, &conn).await;
        let error = run.run.error.clone().unwrap_or_default();
        assert!(error.contains(says), "{path}: {error}");
        assert!(run.counts.changed_nothing());
    }
    assert!(users(&*s, org).await.is_empty());
    assert!(queued(&*s, org).await.is_empty());
    let runs = s.sync_runs(org, conn.id, 10).await.unwrap();
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| r.error.is_some()));
    // The connection updates and the three runs' records; nothing else.
    assert_eq!(audit_count(&*s, org).await, audits + 3 + 3);
}

async fn a_dry_run_reports_and_writes_nothing(h: &Harness) {
    let s: Arc<dyn Store> = h.store.clone();
    let (src, _) = authority(s.clone()).await;
    let (org, conn) = riverside(&*s, &src.base, &src.token).await;
    let dry = sync_source(
        &*s,
        &op(),
        org,
        conn.id,
        SyncOptions {
            full: true,
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!((dry.counts.created, dry.counts.groups_created), (6, 2));
    assert_eq!(dry.counts.memberships_added, 5);
    assert_eq!(dry.samples.created.len(), 6);
    assert!(dry.run.dry_run);
    assert!(users(&*s, org).await.is_empty());
    assert!(groups(&*s, org).await.is_empty());
    assert!(queued(&*s, org).await.is_empty());
}

async fn the_cli_adds_and_syncs_a_source(h: &Harness) {
    let s: Arc<dyn Store> = h.store.clone();
    let (src, _) = authority(s.clone()).await;
    s.create_organization(&op(), "Riverside").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: Option<&str>| run_cli(h, dir.path(), args, stdin);
    // The kebab-case spelling of the kind is accepted.
    let out = run(
        &[
            "connection",
            "add",
            "Upstream",
            "--kind",
            "scim-source",
            "--base-url",
            &src.base,
            "--secret-stdin",
        ],
        Some(&src.token),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["connection", "sync", "Upstream", "--dry-run"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("(dry run) synced \"Upstream\": 6 users and 2 groups"),
        "{text}"
    );
    assert!(
        text.contains("nurse0@riverside.example"),
        "the first rows: {text}"
    );
    let out = run(&["--json", "connection", "sync", "Upstream"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["counts"]["created"], 6);
    assert_eq!(report["counts"]["groups_created"], 2);
    // The token never appears in what the CLI prints.
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&src.token));
    // Its health is judged by its syncs.
    let out = run(&["--json", "connection", "health", "Upstream"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let health: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(health["state"], "healthy", "{health}");
    assert_eq!(
        health["runs_24h"]["attempts"], 1,
        "the dry run does not count"
    );
    let out = run(&["connection", "health"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Upstream") && text.contains("healthy"),
        "{text}"
    );
}

async fn one_sync_per_source_at_a_time(h: &Harness) {
    let s: Arc<dyn Store> = h.store.clone();
    let (src, _) = authority(s.clone()).await;
    let (org, conn) = riverside(&*s, &src.base, &src.token).await;
    // Another process holds the source's claim.
    let other = uuid::Uuid::now_v7();
    let later = Timestamp::now().after(std::time::Duration::from_secs(600));
    assert!(s.claim_sync(org, conn.id, other, later).await.unwrap());
    let busy = sync_source(&*s, &op(), org, conn.id, SyncOptions::default()).await;
    assert!(
        matches!(busy, Err(scimdesk::engine::sync::SyncError::Busy(_))),
        "{busy:?}"
    );
    assert!(users(&*s, org).await.is_empty());
    // Its claim given back (or expired), the sync runs, and gives its own back.
    s.release_sync(org, conn.id, other).await.unwrap();
    assert_eq!(sync(&*s, org, &conn).await.counts.created, 6);
    assert!(s.claim_sync(org, conn.id, other, later).await.unwrap());
    s.release_sync(org, conn.id, other).await.unwrap();
    // An expired claim does not hold a sync back.
    let past = Timestamp::now().before(std::time::Duration::from_secs(1));
    assert!(s.claim_sync(org, conn.id, other, past).await.unwrap());
    assert!(
        sync_source(&*s, &op(), org, conn.id, SyncOptions::default())
            .await
            .is_ok()
    );
}

async fn the_engine_syncs_sources_on_their_schedule(h: &Harness) {
    let s: Arc<dyn Store> = h.store.clone();
    let (src, _) = authority(s.clone()).await;
    let (org, conn) = riverside(&*s, &src.base, &src.token).await;
    s.update_connection(
        &op(),
        org,
        conn.id,
        &ConnectionUpdate {
            settings: Some(json!({"full_sync_every_secs": 1})),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let engine = scimdesk::engine::Engine::new(s.clone(), crate::support::idp::fast());
    engine.start();
    crate::support::idp::eventually(
        std::time::Duration::from_secs(30),
        "the scheduled sync",
        || async { users(&*s, org).await.len() == 6 },
    )
    .await;
    // A user added at the source arrives on a later run, with nobody asking.
    src.create_user("late@riverside.example").await;
    crate::support::idp::eventually(
        std::time::Duration::from_secs(30),
        "a second scheduled sync",
        || async { users(&*s, org).await.len() == 7 },
    )
    .await;
    engine.shutdown().await;
    let runs = s.sync_runs(org, conn.id, 10).await.unwrap();
    assert!(
        runs.len() >= 2
            && runs
                .iter()
                .all(|r| r.actor == "engine" && r.error.is_none())
    );
}

async fn incremental(
    s: &dyn Store,
    org: OrganizationId,
    c: &Connection,
    quiet: bool,
) -> scimdesk::engine::sync::SyncReport {
    sync_source(
        s,
        &op(),
        org,
        c.id,
        SyncOptions {
            quiet,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// The authority's own server filters on `meta.lastModified` and says so in its
/// ServiceProviderConfig, so a sync without `--full` reads only what changed there: a user
/// disabled and a member removed reach the store (and the target's queue), the rest of the
/// source is not read, and a poll that finds nothing records nothing.
async fn an_incremental_sync_reads_what_changed_since_the_cursor(h: &Harness) {
    let s: Arc<dyn Store> = h.store.clone();
    let (src, ids) = authority(s.clone()).await;
    // The cursor stays a second behind the newest change seen (a change committed late within
    // that second is still read): the six nurses are older than that.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    src.create_user("late@riverside.example").await;
    let (org, c) = riverside(&*s, &src.base, &src.token).await;
    let first = sync(&*s, org, &c).await;
    assert_eq!((first.counts.created, first.run.error), (7, None));
    assert!(
        s.sync_cursor(org, c.id).await.unwrap().is_some(),
        "a full sync leaves a cursor"
    );

    // Nothing changed yet: a quiet poll writes nothing at all.
    let (audits, ops) = (audit_count(&*s, org).await, queued(&*s, org).await.len());
    let idle = incremental(&*s, org, &c, true).await;
    assert!(!idle.run.full_sync, "{:?}", idle.run);
    assert!(idle.counts.changed_nothing(), "{:?}", idle.counts);
    assert_eq!(audit_count(&*s, org).await, audits);
    assert_eq!(queued(&*s, org).await.len(), ops);
    assert!(s.sync_runs(org, c.id, 10).await.unwrap().len() == 1);

    // One user disabled, one member removed from ICU, one user added.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (status, _) = src
        .call(
            Method::PATCH,
            &format!("/Users/{}", ids[0]),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "active", "value": false}],
            })),
        )
        .await;
    assert_eq!(status, 200);
    let icu = src
        .call(
            Method::GET,
            "/Groups?filter=displayName%20eq%20%22ICU%22",
            None,
        )
        .await
        .1["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = src
        .call(
            Method::PATCH,
            &format!("/Groups/{icu}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "remove", "path": format!("members[value eq \"{}\"]", ids[1])}],
            })),
        )
        .await;
    assert!(status == 200 || status == 204, "{status}");
    src.create_user("newcomer@riverside.example").await;

    let run = incremental(&*s, org, &c, true).await;
    assert_eq!(run.run.error, None);
    assert!(!run.run.full_sync, "read from the cursor: {:?}", run.run);
    assert_eq!(run.run.note, None);
    assert_eq!(
        (
            run.counts.created,
            run.counts.suspended,
            run.counts.groups_updated,
            run.counts.memberships_removed
        ),
        (1, 1, 1, 1),
        "{:?}",
        run.counts
    );
    assert!(
        run.counts.source_users < 6,
        "only what changed is read: {:?}",
        run.counts
    );
    let all = users(&*s, org).await;
    assert!(
        !all.iter()
            .find(|u| u.user_name == "nurse0@riverside.example")
            .unwrap()
            .active
    );
    assert_eq!(all.len(), 8);
    let g = groups(&*s, org).await;
    assert_eq!(
        g[0],
        (
            "ICU".to_string(),
            vec![
                "nurse0@riverside.example".to_string(),
                "nurse2@riverside.example".to_string()
            ]
        )
    );
    assert!(queued(&*s, org).await.len() > ops, "the target hears of it");
    assert_eq!(
        s.sync_runs(org, c.id, 10).await.unwrap().len(),
        2,
        "a run that changed something is recorded"
    );
}

/// `users` and `groups` show the directory with roles and status at each target; a target
/// bound to no role says that it receives nobody when it is added and in its health.
async fn the_cli_shows_users_groups_and_targets_that_receive_nobody(h: &Harness) {
    let s: Arc<dyn Store> = h.store.clone();
    let (src, _) = authority(s.clone()).await;
    let org = s.create_organization(&op(), "Riverside").await.unwrap();
    let icu = commands::ensure_role(&*s, &op(), org.id, "icu-nurse")
        .await
        .unwrap();
    commands::set_mapping(
        &*s,
        &op(),
        org.id,
        &commands::MappingChange::Set {
            id: None,
            draft: RoleMappingDraft {
                source_connection_id: None,
                selector: GroupSelector::DisplayName,
                match_mode: MatchMode::Exact,
                pattern: "ICU".into(),
                role_id: icu.id,
            },
        },
        &Guard::default(),
        true,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: Option<&str>| {
        let out = run_cli(h, dir.path(), args, stdin);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    run(
        &[
            "connection",
            "add",
            "Upstream",
            "--kind",
            "scim-source",
            "--base-url",
            &src.base,
            "--secret-stdin",
        ],
        Some(&src.token),
    );
    let (_, warned) = run(
        &[
            "connection",
            "add",
            "EHR",
            "--kind",
            "scim-target",
            "--base-url",
            "http://127.0.0.1:9/scim/v2",
            "--auth",
            "none",
        ],
        None,
    );
    assert!(warned.contains("receives nobody"), "{warned}");
    let (health, _) = run(&["--json", "connection", "health", "EHR"], None);
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert!(
        health[0]["warning"]
            .as_str()
            .unwrap_or_default()
            .contains("receives nobody"),
        "{health}"
    );
    let (table, _) = run(&["connection", "health"], None);
    assert!(table.contains("receives nobody"), "{table}");
    run(&["connection", "set", "EHR", "--roles", "icu-nurse"], None);
    let (health, _) = run(&["--json", "connection", "health", "EHR"], None);
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert!(health[0]["warning"].is_null(), "{health}");
    run(&["connection", "sync", "Upstream"], None);

    let (list, _) = run(&["--json", "users", "list"], None);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 6);
    let nurse0 = list
        .iter()
        .find(|v| v["user"]["user_name"] == "nurse0@riverside.example")
        .unwrap();
    assert_eq!(nurse0["roles"], json!(["icu-nurse"]));
    assert_eq!(nurse0["source"], "Upstream");
    assert_eq!(nurse0["targets"][0]["target"], "EHR");
    assert_eq!(
        nurse0["targets"][0]["state"], "pending",
        "queued, no worker runs here"
    );
    let nurse4 = list
        .iter()
        .find(|v| v["user"]["user_name"] == "nurse4@riverside.example")
        .unwrap();
    assert_eq!(nurse4["roles"], json!([]));
    // Every change is queued for every target and each worker narrows it by its scope, so
    // an operation waits for nurse4 too.
    assert_eq!(nurse4["targets"][0]["target"], "EHR");
    let (found, _) = run(&["users", "list", "--search", "NURSE1"], None);
    assert!(found.contains("nurse1@riverside.example"), "{found}");
    assert!(!found.contains("nurse2@riverside.example"), "{found}");
    let (mine, _) = run(&["--json", "users", "list", "--source", "Upstream"], None);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&mine)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        6
    );
    let (shown, _) = run(&["users", "show", "nurse0@riverside.example"], None);
    for part in ["icu-nurse", "/ICU", "EHR", "pending", "Upstream"] {
        assert!(shown.contains(part), "{part}: {shown}");
    }

    let (groups, _) = run(&["groups", "list"], None);
    assert!(
        groups.contains("/ICU") && groups.contains("/Ward"),
        "{groups}"
    );
    let (g, _) = run(&["--json", "groups", "show", "ICU"], None);
    let g: serde_json::Value = serde_json::from_str(&g).unwrap();
    assert_eq!(
        (g["members"].as_u64(), &g["roles"]),
        (Some(3), &json!(["icu-nurse"]))
    );
    let out = h
        .cli(dir.path())
        .args(["--org", "Riverside", "groups", "show", "Nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no group \"Nope\""));
}
