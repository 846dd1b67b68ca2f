//! The provisioning engine end to end, in process: identity-provider requests reach the inbound
//! SCIM server over HTTP, the engine's workers deliver them to real SCIM targets over HTTP (the
//! target double: scimdesk's own inbound server in another organization, told to misbehave),
//! on real SQLite and PostgreSQL.

use crate::support;

use reqwest::Method;
use scimdesk::domain::*;
use scimdesk::engine::{Engine, EngineConfig, HealthState, commands, health};
use scimdesk::stand_ins::target_double::TargetDouble;
use scimdesk::store::{ListRange, OperationFilter, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::Harness;
use support::idp::{Source, eventually, fast};

on_both_backends!(
    onboarding_wave_reaches_every_target_exactly_once,
    offboarding_suspends_then_deletes_per_policy,
    flaky_target_gets_everything_and_retry_after_is_honoured,
    down_target_stalls_then_quarantines_then_recovers,
    operators_retry_skip_pause_and_resume,
    oauth_client_credentials_with_discovery,
    deletion_waits_out_the_grace_period_suspended,
    a_slow_target_outliving_the_lease_gets_each_create_once,
);

/// Adds a SCIM target connection for `target` to `org`. These delivery tests send every user
/// and mirror the source's groups (`user_scope = "all"`, `source_groups`), unless `settings`
/// says otherwise; tests/policy.rs covers role-based scope.
async fn add_target(
    store: &dyn Store,
    org: OrganizationId,
    name: &str,
    target: &TargetDouble,
    mut settings: Value,
) -> Connection {
    if let Some(m) = settings.as_object_mut() {
        m.entry("user_scope").or_insert(json!("all"));
        m.entry("source_groups").or_insert(json!(true));
    }
    store
        .create_connection(
            &Actor::operator("tester"),
            org,
            &NewConnection {
                name: name.into(),
                kind: ConnectionKind::ScimTarget,
                base_url: Some(target.base_url.clone()),
                auth_method: AuthMethod::Bearer,
                settings,
            },
            Some(&scimdesk::crypto::Secret::new(target.token.clone())),
        )
        .await
        .unwrap()
}

async fn unfinished(store: &dyn Store, org: OrganizationId) -> usize {
    store
        .list_operations(
            org,
            &OperationFilter {
                limit: 10_000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .len()
}

async fn target_users(store: &dyn Store, target: &TargetDouble) -> Vec<User> {
    store
        .list_users(target.organization_id, ListRange::first(100_000))
        .await
        .unwrap()
}

async fn onboarding_wave_reaches_every_target_exactly_once(h: &Harness) {
    let store = h.store.clone();
    let source = Source::start(store.clone()).await;
    let t1 = TargetDouble::start(store.clone(), "App one").await.unwrap();
    let t2 = TargetDouble::start(store.clone(), "App two").await.unwrap();
    add_target(
        &*store,
        source.org,
        "app-one",
        &t1,
        json!({"concurrency": 8}),
    )
    .await;
    add_target(
        &*store,
        source.org,
        "app-two",
        &t2,
        json!({"concurrency": 4, "update_mode": "put"}),
    )
    .await;
    // App two understands only simple filters: its look-ups go one key at a time.
    t2.faults
        .refuse_or_filters
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let engine = Engine::new(store.clone(), fast());
    engine.start();

    // 200 nurses, pushed 8 at a time, then 10 groups of 20 members each.
    let source = Arc::new(source);
    let mut ids = Vec::new();
    let numbers: Vec<usize> = (0..200).collect();
    for chunk in numbers.chunks(8) {
        let futs = chunk.iter().copied().map(|i| {
            let s = source.clone();
            async move {
                s.create_user(&format!("nurse{i:03}@hospital.example"))
                    .await
            }
        });
        ids.extend(futures_join(futs).await);
    }
    for g in 0..10 {
        let members: Vec<Value> = ids[g * 20..(g + 1) * 20]
            .iter()
            .map(|id| json!({"value": id}))
            .collect();
        let (status, body) = source
            .call(
                Method::POST,
                "/Groups",
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": format!("Ward {g}"),
                    "members": members
                })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    for t in [&t1, &t2] {
        eventually(
            Duration::from_secs(120),
            "every user and group at the target",
            || async {
                target_users(&*store, t).await.len() == 200
                    && store
                        .list_groups(t.organization_id, ListRange::first(100))
                        .await
                        .unwrap()
                        .len()
                        == 10
                    && unfinished(&*store, source.org).await == 0
            },
        )
        .await;
    }
    for t in [&t1, &t2] {
        // Exactly once: one successful create per user and group, no conflicts, no duplicates.
        assert_eq!(t.count("POST", "/scim/v2/Users", 201), 200);
        assert_eq!(t.count("POST", "/scim/v2/Users", 409), 0);
        assert_eq!(t.count("POST", "/scim/v2/Groups", 201), 10);
        let users = target_users(&*store, t).await;
        let by_id: std::collections::HashMap<UserId, String> =
            users.iter().map(|u| (u.id, u.user_name.clone())).collect();
        assert!(users.iter().all(|u| u.active));
        // Memberships included: each target group has exactly its 20 nurses.
        for g in store
            .list_groups(t.organization_id, ListRange::first(100))
            .await
            .unwrap()
        {
            let n: usize = g.display_name.trim_start_matches("Ward ").parse().unwrap();
            let mut got: Vec<String> = store
                .group_members(t.organization_id, g.id)
                .await
                .unwrap()
                .iter()
                .map(|m| by_id[m].clone())
                .collect();
            got.sort();
            let want: Vec<String> = (n * 20..(n + 1) * 20)
                .map(|i| format!("nurse{i:03}@hospital.example"))
                .collect();
            assert_eq!(got, want, "members of {}", g.display_name);
        }
    }
    // Every create looked its user up first, in exactly one answered request at app one (which
    // shares a request among the creates of a moment), one key at a time at app two (after
    // its first refusal of an `or`).
    for (t, batched) in [(&t1, true), (&t2, false)] {
        let answered: Vec<String> = support::user_lookups(t)
            .into_iter()
            .filter(|(_, status)| *status == 200)
            .map(|(f, _)| f)
            .collect();
        support::assert_each_looked_up_once(
            &answered,
            (0..200).map(|i| format!("nurse{i:03}@hospital.example")),
        );
        assert_eq!(answered.iter().any(|f| f.contains(" or ")), batched);
    }
    assert!(support::user_lookups(&t2).iter().any(|(_, s)| *s == 400));
    // The connection that says PUT never gets a PATCH.
    assert_eq!(
        t2.count("PATCH", "/scim/v2", 200) + t2.count("PATCH", "/scim/v2", 204),
        0
    );
    engine.shutdown().await;
}

/// Runs futures concurrently, in order of their results.
async fn futures_join<F: std::future::Future<Output = T> + Send + 'static, T: Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<T> {
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

async fn offboarding_suspends_then_deletes_per_policy(h: &Harness) {
    let store = h.store.clone();
    let source = Source::start(store.clone()).await;
    let hard = TargetDouble::start(store.clone(), "Hard").await.unwrap();
    let soft = TargetDouble::start(store.clone(), "Soft").await.unwrap();
    add_target(
        &*store,
        source.org,
        "hard",
        &hard,
        json!({"delete_mode": "delete"}),
    )
    .await;
    add_target(
        &*store,
        source.org,
        "soft",
        &soft,
        json!({"delete_mode": "suspend"}),
    )
    .await;
    let engine = Engine::new(store.clone(), fast());
    engine.start();
    let id = source.create_user("contractor@hospital.example").await;
    for t in [&hard, &soft] {
        eventually(
            Duration::from_secs(20),
            "the contractor at the target",
            || async { target_users(&*store, t).await.len() == 1 },
        )
        .await;
    }
    // Unchanged content sends nothing: a PUT with the same values is not forwarded. (The
    // double logs a request after answering it: wait for the create's entry first.)
    eventually(Duration::from_secs(5), "the create in the log", || async {
        hard.count("POST", "/scim/v2/Users", 201) == 1
    })
    .await;
    let before = hard.received().len();
    let (_, current) = source
        .call(Method::GET, &format!("/Users/{id}"), None)
        .await;
    let (status, _) = source
        .call(Method::PUT, &format!("/Users/{id}"), Some(current))
        .await;
    assert_eq!(status, 200);
    eventually(
        Duration::from_secs(10),
        "the no-op update to finish",
        || async { unfinished(&*store, source.org).await == 0 },
    )
    .await;
    assert_eq!(
        hard.received().len(),
        before,
        "{:?}",
        &hard.received()[before..]
    );

    // active=false at the source: suspended at both targets within an engine tick.
    let t0 = Instant::now();
    let (status, _) = source
        .call(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "active", "value": false}]}),
            ),
        )
        .await;
    assert_eq!(status, 200);
    for t in [&hard, &soft] {
        eventually(
            Duration::from_secs(10),
            "suspended at the target",
            || async { target_users(&*store, t).await.iter().all(|u| !u.active) },
        )
        .await;
    }
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(2), "suspension took {took:?}");
    // The target supports PATCH (its ServiceProviderConfig says so): the suspension is one.
    // (The double logs a request just after answering it.)
    eventually(Duration::from_secs(5), "the PATCH in the log", || async {
        hard.count("PATCH", "/scim/v2/Users/", 200) >= 1
    })
    .await;
    assert_eq!(hard.count("PATCH", "/scim/v2/Users/", 200), 1);
    assert_eq!(hard.count("PUT", "/scim/v2/Users/", 200), 0);
    // DELETE at the source: hard-deleted at one, kept suspended at the other.
    let (status, _) = source
        .call(Method::DELETE, &format!("/Users/{id}"), None)
        .await;
    assert_eq!(status, 204);
    eventually(
        Duration::from_secs(10),
        "deleted at the hard target",
        || async {
            target_users(&*store, &hard).await.is_empty()
                && unfinished(&*store, source.org).await == 0
        },
    )
    .await;
    let kept = target_users(&*store, &soft).await;
    assert_eq!(kept.len(), 1);
    assert!(!kept[0].active);
    assert_eq!(hard.count("DELETE", "/scim/v2/Users/", 204), 1);
    assert_eq!(soft.count("DELETE", "/scim/v2/Users/", 204), 0);
    engine.shutdown().await;
}

async fn flaky_target_gets_everything_and_retry_after_is_honoured(h: &Harness) {
    let store = h.store.clone();
    let source = Source::start(store.clone()).await;
    let target = TargetDouble::start(store.clone(), "Flaky").await.unwrap();
    target.fail(30, 1);
    add_target(
        &*store,
        source.org,
        "flaky",
        &target,
        json!({"concurrency": 4}),
    )
    .await;
    let engine = Engine::new(store.clone(), fast());
    engine.start();
    for i in 0..40 {
        source
            .create_user(&format!("agency{i:02}@hospital.example"))
            .await;
    }
    eventually(
        Duration::from_secs(90),
        "all 40 users despite failures",
        || async {
            target_users(&*store, &target).await.len() == 40
                && unfinished(&*store, source.org).await == 0
        },
    )
    .await;
    let log = target.received();
    let failures = log
        .iter()
        .filter(|r| r.status == 500 || r.status == 429)
        .count();
    assert!(failures >= 10, "the target failed {failures} requests");
    assert_eq!(
        target.count("POST", "/scim/v2/Users", 201),
        40,
        "each user created exactly once"
    );
    // After each 429, nothing arrives until its Retry-After has passed (requests already on
    // the wire when the 429 was sent may still land within a moment of it).
    for r in log.iter().filter(|r| r.status == 429) {
        let ra = Duration::from_secs(u64::from(r.retry_after.unwrap()));
        let early: Vec<_> = log
            .iter()
            .filter(|x| x.at > r.at + Duration::from_millis(250) && x.at < r.at + ra)
            .collect();
        assert!(
            early.is_empty(),
            "requests during a Retry-After window: {early:?}"
        );
    }
    engine.shutdown().await;
}

async fn down_target_stalls_then_quarantines_then_recovers(h: &Harness) {
    let store = h.store.clone();
    let source = Source::start(store.clone()).await;
    let target = TargetDouble::start(store.clone(), "Down").await.unwrap();
    target.set_down(true);
    let conn = add_target(&*store, source.org, "down", &target, json!({})).await;
    let cfg = fast();
    let engine = Engine::new(store.clone(), cfg.clone());
    engine.start();
    for i in 0..5 {
        source
            .create_user(&format!("late{i}@hospital.example"))
            .await;
    }
    let mut seen: Vec<HealthState> = Vec::new();
    let start = Instant::now();
    loop {
        let c = store
            .connection(source.org, conn.id)
            .await
            .unwrap()
            .unwrap();
        let r = health::connection_health(&*store, &c, &cfg.health)
            .await
            .unwrap();
        if seen.last() != Some(&r.state) {
            seen.push(r.state);
        }
        if r.state == HealthState::Quarantined {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not quarantined; states seen: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen.contains(&HealthState::Stalled),
        "states seen: {seen:?}"
    );
    let audit = store
        .list_audit(
            source.org,
            &AuditFilter {
                limit: 500,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "connection.quarantine" && e.actor == "engine")
    );
    // While quarantined only probes go out: about one per probe interval.
    let before = target.received().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let probes = target.received().len() - before;
    assert!(probes <= 6, "{probes} requests in 2s while quarantined");
    // The target comes back: the next probe succeeds and everything flows again by itself.
    target.set_down(false);
    eventually(
        Duration::from_secs(30),
        "recovered and delivered",
        || async {
            let c = store
                .connection(source.org, conn.id)
                .await
                .unwrap()
                .unwrap();
            c.state == ConnectionState::Active
                && target_users(&*store, &target).await.len() == 5
                && unfinished(&*store, source.org).await == 0
        },
    )
    .await;
    let c = store
        .connection(source.org, conn.id)
        .await
        .unwrap()
        .unwrap();
    eventually(Duration::from_secs(10), "healthy again", || async {
        health::connection_health(&*store, &c, &cfg.health)
            .await
            .unwrap()
            .state
            != HealthState::Quarantined
    })
    .await;
    engine.shutdown().await;
}

async fn operators_retry_skip_pause_and_resume(h: &Harness) {
    let store = h.store.clone();
    let source = Source::start(store.clone()).await;
    let target = TargetDouble::start(store.clone(), "Strict").await.unwrap();
    target.poison(Some("poison"), 400);
    let conn = add_target(&*store, source.org, "strict", &target, json!({})).await;
    let cfg = fast();
    let engine = Engine::new(store.clone(), cfg.clone());
    engine.start();
    let op = Actor::operator("oncall");
    source.create_user("poison1@hospital.example").await;
    source.create_user("poison2@hospital.example").await;
    source.create_user("fine@hospital.example").await;
    let failed = OperationFilter {
        state: Some(OperationState::Failed),
        limit: 10,
        ..Default::default()
    };
    eventually(Duration::from_secs(20), "two failed operations", || async {
        store
            .list_operations(source.org, &failed)
            .await
            .unwrap()
            .len()
            == 2
    })
    .await;
    let ops = store.list_operations(source.org, &failed).await.unwrap();
    // The target's error body is kept for people, with every attempt.
    assert!(
        ops[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("the target refuses this value"),
        "{:?}",
        ops[0].last_error
    );
    assert_eq!(ops[0].last_status, Some(400));
    let attempts = store
        .operation_attempts(source.org, ops[0].id)
        .await
        .unwrap();
    assert_eq!(attempts.len(), 1);
    assert!(
        attempts[0]
            .request_excerpt
            .as_deref()
            .unwrap()
            .contains("POST /Users")
    );
    let c = store
        .connection(source.org, conn.id)
        .await
        .unwrap()
        .unwrap();
    eventually(Duration::from_secs(5), "degraded", || async {
        health::connection_health(&*store, &c, &cfg.health)
            .await
            .unwrap()
            .state
            == HealthState::Degraded
    })
    .await;
    // The target is fixed: retry one, skip the other.
    target.poison(None, 400);
    let retried = commands::retry(&*store, &op, source.org, ops[0].id)
        .await
        .unwrap();
    // Due at once: a worker may already hold it.
    assert!(
        matches!(
            retried.state,
            OperationState::Pending | OperationState::InFlight | OperationState::Succeeded
        ),
        "{:?}",
        retried.state
    );
    let skipped = commands::skip(
        &*store,
        &op,
        source.org,
        ops[1].id,
        "duplicate account, handled by hand",
    )
    .await
    .unwrap();
    assert_eq!(
        (skipped.state, skipped.note.as_deref()),
        (
            OperationState::Skipped,
            Some("duplicate account, handled by hand")
        )
    );
    eventually(
        Duration::from_secs(20),
        "the retried user delivered",
        || async {
            target_users(&*store, &target).await.len() == 2
                && unfinished(&*store, source.org).await == 0
        },
    )
    .await;
    // Pause: nothing is sent; resume: it flows.
    commands::pause(&*store, &op, source.org, conn.id, "maintenance window")
        .await
        .unwrap();
    engine.refresh_connections();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = target.received().len();
    source.create_user("during-pause@hospital.example").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(target.received().len(), before, "requests while paused");
    assert_eq!(
        store
            .queue_counts(source.org, conn.id)
            .await
            .unwrap()
            .pending,
        1
    );
    commands::resume(&*store, &op, source.org, conn.id)
        .await
        .unwrap();
    engine.refresh_connections();
    eventually(
        Duration::from_secs(20),
        "delivered after resume",
        || async { target_users(&*store, &target).await.len() == 3 },
    )
    .await;
    let audit: Vec<String> = store
        .list_audit(
            source.org,
            &AuditFilter {
                limit: 500,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.actor == "oncall")
        .map(|e| e.action)
        .collect();
    for action in [
        "operation.retry",
        "operation.skip",
        "connection.pause",
        "connection.resume",
    ] {
        assert!(
            audit.iter().any(|a| a == action),
            "{action} audited: {audit:?}"
        );
    }
    engine.shutdown().await;
}

async fn oauth_client_credentials_with_discovery(h: &Harness) {
    use axum::routing::{get, post};
    let store = h.store.clone();
    let source = Source::start(store.clone()).await;
    let target = TargetDouble::start(store.clone(), "OAuth app")
        .await
        .unwrap();
    // An authorization server: discovery plus a token endpoint that checks the client's
    // credentials (HTTP Basic) and issues the target's bearer token.
    let issued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let token_url = format!("{issuer}/oauth2/token");
    // Discovery names the issuer it was asked for (OpenID Connect Discovery §4.3).
    let named_issuer = issuer.clone();
    let target_token = target.token.clone();
    let counter = issued.clone();
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || {
                let (t, i) = (token_url.clone(), named_issuer.clone());
                async move { axum::Json(json!({"issuer": i, "token_endpoint": t})) }
            }),
        )
        .route(
            "/oauth2/token",
            post(move |headers: axum::http::HeaderMap, body: String| {
                let counter = counter.clone();
                let target_token = target_token.clone();
                async move {
                    use base64::Engine as _;
                    let want = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("scimdesk:s3cret"));
                    let ok = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(want.as_str())
                        && body.contains("grant_type=client_credentials");
                    if !ok {
                        return (axum::http::StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"})));
                    }
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    (axum::http::StatusCode::OK, axum::Json(json!({"access_token": target_token, "token_type": "Bearer", "expires_in": 3600})))
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    store
        .create_connection(
            &Actor::operator("tester"),
            source.org,
            &NewConnection {
                name: "oauth-app".into(),
                kind: ConnectionKind::ScimTarget,
                base_url: Some(target.base_url.clone()),
                auth_method: AuthMethod::OAuth2ClientCredentials,
                settings: json!({"client_id": "scimdesk", "issuer": issuer, "user_scope": "all"}),
            },
            Some(&scimdesk::crypto::Secret::new("s3cret")),
        )
        .await
        .unwrap();
    let engine = Engine::new(store.clone(), fast());
    engine.start();
    for i in 0..10 {
        source
            .create_user(&format!("oauth{i}@hospital.example"))
            .await;
    }
    eventually(
        Duration::from_secs(20),
        "users delivered with an OAuth token",
        || async { target_users(&*store, &target).await.len() == 10 },
    )
    .await;
    // One token, cached and reused for every request.
    assert_eq!(issued.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(target.count("POST", "/scim/v2/Users", 401), 0);
    engine.shutdown().await;
}

async fn deletion_waits_out_the_grace_period_suspended(h: &Harness) {
    let store = h.store.clone();
    let source = Source::start(store.clone()).await;
    let target = TargetDouble::start(store.clone(), "Graceful")
        .await
        .unwrap();
    add_target(
        &*store,
        source.org,
        "graceful",
        &target,
        json!({"delete_mode": "delete", "delete_grace_secs": 2}),
    )
    .await;
    let engine = Engine::new(store.clone(), fast());
    engine.start();
    let id = source.create_user("leaver@hospital.example").await;
    eventually(
        Duration::from_secs(20),
        "the leaver at the target",
        || async { target_users(&*store, &target).await.len() == 1 },
    )
    .await;
    let (status, _) = source
        .call(Method::DELETE, &format!("/Users/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let deleted_at = Instant::now();
    // At once: suspended, not deleted.
    eventually(
        Duration::from_secs(5),
        "suspended during the grace period",
        || async {
            target_users(&*store, &target)
                .await
                .iter()
                .all(|u| !u.active)
        },
    )
    .await;
    assert_eq!(target_users(&*store, &target).await.len(), 1);
    assert_eq!(target.count("DELETE", "/scim/v2/Users/", 204), 0);
    // The waiting deletion is visible (once its attempt is recorded), and not a failure.
    eventually(
        Duration::from_secs(5),
        "the deletion waiting out its grace period",
        || async {
            let waiting = store
                .list_operations(
                    source.org,
                    &OperationFilter {
                        limit: 10,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            waiting.len() == 1
                && waiting[0].state != OperationState::Failed
                && waiting[0]
                    .last_error
                    .as_deref()
                    .unwrap_or("")
                    .starts_with("waiting: suspended")
        },
    )
    .await;
    // After it: deleted.
    eventually(
        Duration::from_secs(20),
        "deleted after the grace period",
        || async { target_users(&*store, &target).await.is_empty() },
    )
    .await;
    assert!(deleted_at.elapsed() >= Duration::from_millis(1_500));
    // The double logs a request just after answering it.
    eventually(Duration::from_secs(5), "the DELETE in the log", || async {
        target.count("DELETE", "/scim/v2/Users/", 204) == 1
    })
    .await;
    engine.shutdown().await;
}

/// Each request to this target takes 2.5 s, so each create (a look-up, then the POST) takes
/// two and a half times the 2 s lease. The worker renews the leases of attempts still running, so no
/// operation is claimed a second time while its first attempt is on its way: each user is
/// looked up once and POSTed once, and nothing meets a 409.
async fn a_slow_target_outliving_the_lease_gets_each_create_once(h: &Harness) {
    let store = h.store.clone();
    let source = Source::start(store.clone()).await;
    let t = TargetDouble::start(store.clone(), "Slow app")
        .await
        .unwrap();
    add_target(&*store, source.org, "slow", &t, json!({"concurrency": 4})).await;
    t.faults
        .delay_ms
        .store(2_500, std::sync::atomic::Ordering::SeqCst);
    let engine = Engine::new(
        store.clone(),
        EngineConfig {
            lease_secs: 2,
            ..fast()
        },
    );
    engine.start();
    for i in 0..3 {
        source
            .create_user(&format!("late{i}@hospital.example"))
            .await;
    }
    eventually(
        Duration::from_secs(60),
        "three users at the target",
        || async {
            target_users(&*store, &t).await.len() == 3 && unfinished(&*store, source.org).await == 0
        },
    )
    .await;
    // The target logs a request just after answering it.
    eventually(Duration::from_secs(10), "the POSTs logged", || async {
        t.count("POST", "/scim/v2/Users", 201) == 3
    })
    .await;
    engine.shutdown().await;
    assert_eq!(t.count("POST", "/scim/v2/Users", 409), 0);
    let answered: Vec<String> = support::user_lookups(&t)
        .into_iter()
        .filter(|(_, status)| *status == 200)
        .map(|(f, _)| f)
        .collect();
    support::assert_each_looked_up_once(
        &answered,
        (0..3).map(|i| format!("late{i}@hospital.example")),
    );
}
