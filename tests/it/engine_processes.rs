//! The engine across processes on PostgreSQL: `scimdesk serve` killed with SIGKILL mid-wave and
//! restarted, two `serve` processes sharing one database, and the database dropping every
//! connection mid-wave. The target is the target double in this test process, on its own store.

use crate::support;

use scimdesk::crypto::{MasterKey, Secret};
use scimdesk::domain::*;
use scimdesk::engine::{Engine, EngineConfig};
use scimdesk::stand_ins::target_double::TargetDouble;
use scimdesk::store::{ListRange, OperationFilter, PgStore, Store};
use serde_json::json;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A PostgreSQL deployment of scimdesk: a schema, a master key, a config directory, the
/// identity provider's organization and token, and a target double.
struct Deployment {
    schema: support::PgSchema,
    key: String,
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    org: OrganizationId,
    idp_token: String,
    target: TargetDouble,
    _target_store: support::Harness,
}

impl Deployment {
    async fn new() -> Option<Deployment> {
        scimdesk::connectors::ensure_tls_provider();
        let schema = support::pg_schema().await?;
        let master = MasterKey::generate().unwrap();
        let key = master.to_base64().expose().to_string();
        let store: Arc<dyn Store> = Arc::new(
            PgStore::open_with(
                schema.options(),
                "test".into(),
                master,
                scimdesk::policy::fanout::decide,
            )
            .await
            .unwrap(),
        );
        let (org, idp_token) = support::inbound_tenant(&*store, "Hospital").await;
        let target_store = support::Harness::sqlite().await;
        let target = TargetDouble::start(target_store.store.clone(), "App")
            .await
            .unwrap();
        store
            .create_connection(
                &Actor::operator("tester"),
                org,
                &NewConnection {
                    name: "app".into(),
                    kind: ConnectionKind::ScimTarget,
                    base_url: Some(target.base_url.clone()),
                    auth_method: AuthMethod::Bearer,
                    settings: json!({"concurrency": 8, "user_scope": "all", "source_groups": true}),
                },
                Some(&Secret::new(target.token.clone())),
            )
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::write(
            dir.path().join("config").join("config.toml"),
            "[engine]\nlease_secs = 3\npoll_interval_ms = 100\nsupervise_interval_ms = 200\nbackoff_base_ms = 100\nbackoff_max_ms = 1000\n",
        )
        .unwrap();
        Some(Deployment {
            schema,
            key,
            dir,
            store,
            org,
            idp_token,
            target,
            _target_store: target_store,
        })
    }

    /// An engine on a store of its own (as another process would have) that polls only once a
    /// minute: whatever it delivers within seconds, a notification woke it for.
    async fn engine_polling_once_a_minute(&self) -> Engine {
        let master = MasterKey::from_base64(&self.key).unwrap();
        let engine_store: Arc<dyn Store> = Arc::new(
            PgStore::open_with(
                self.schema.options(),
                "engine".into(),
                master,
                scimdesk::policy::fanout::decide,
            )
            .await
            .unwrap(),
        );
        Engine::new(
            engine_store,
            EngineConfig {
                poll_interval_ms: 60_000,
                supervise_interval_ms: 200,
                ..Default::default()
            },
        )
    }

    /// Starts `scimdesk serve` on a free port; returns the process and its SCIM base URL.
    fn serve(&self) -> (Served, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_scimdesk"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("SCIMDESK_CONFIG", self.dir.path().join("config"))
            .env("SCIMDESK_DATA_DIR", self.dir.path().join("data"))
            .env("SCIMDESK_DATABASE_URL", self.schema.url())
            .env("SCIMDESK_MASTER_KEY", &self.key)
            .env_remove("DATABASE_URL")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "serve said: {line:?}");
        (Served(child), url)
    }

    /// Pushes one user; `Ok` when it exists at the source (201, or 409 because an earlier
    /// push whose answer was lost created it).
    async fn push(&self, http: &reqwest::Client, base: &str, i: usize) -> Result<(), String> {
        let resp = http
            .post(format!("{base}/Users"))
            .bearer_auth(&self.idp_token)
            .header("content-type", "application/scim+json")
            .body(
                json!({"userName": format!("nurse{i:04}@hospital.example"), "active": true})
                    .to_string(),
            )
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match resp.status().as_u16() {
            201 | 409 => Ok(()),
            s => Err(format!("status {s}")),
        }
    }

    async fn wait_delivered(&self, n: usize, limit: Duration) {
        let start = Instant::now();
        loop {
            let at_target = self
                ._target_store
                .store
                .count_users(self.target.organization_id)
                .await
                .unwrap();
            let unfinished = self
                .store
                .list_operations(
                    self.org,
                    &OperationFilter {
                        limit: 10,
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
                .len();
            if at_target as usize == n && unfinished == 0 {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "after {limit:?}: {at_target} of {n} users at the target, {unfinished}+ operations unfinished"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every user at the target exactly once, and no operation lost or run twice.
    async fn assert_exactly_once(&self, n: usize) {
        assert_eq!(
            self.target.count("POST", "/scim/v2/Users", 201),
            n,
            "one create per user"
        );
        let names: std::collections::HashSet<String> = self
            ._target_store
            .store
            .list_users(self.target.organization_id, ListRange::first(100_000))
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.user_name)
            .collect();
        assert_eq!(names.len(), n);
        let links = self
            .store
            .list_target_links(
                self.org,
                self.store
                    .list_connections(self.org)
                    .await
                    .unwrap()
                    .iter()
                    .find(|c| c.name == "app")
                    .unwrap()
                    .id,
            )
            .await
            .unwrap();
        assert_eq!(links.len(), n, "every user linked");
        let done = self
            .store
            .list_operations(
                self.org,
                &OperationFilter {
                    state: Some(OperationState::Succeeded),
                    limit: 100_000,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(done.len(), n, "one succeeded create per user");
    }
}

/// A `serve` process, killed when the test ends without stopping it (a failed assertion), so
/// it does not keep running and holding database connections.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Served {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Served {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

fn kill9(child: &mut Child) {
    // Child::kill sends SIGKILL on Unix: no shutdown code runs.
    child.kill().unwrap();
    let _ = child.wait();
}

fn sigterm(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

async fn push_all(
    d: &Arc<Deployment>,
    base: &str,
    range: impl Iterator<Item = usize>,
) -> Vec<usize> {
    let http = reqwest::Client::new();
    let mut failed = Vec::new();
    let items: Vec<usize> = range.collect();
    for chunk in items.chunks(8) {
        let mut tasks = Vec::new();
        for &i in chunk {
            let d = d.clone();
            let http = http.clone();
            let base = base.to_string();
            tasks.push(tokio::spawn(
                async move { (i, d.push(&http, &base, i).await) },
            ));
        }
        for t in tasks {
            let (i, r) = t.await.unwrap();
            if r.is_err() {
                failed.push(i);
            }
        }
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_wave_loses_nothing_and_duplicates_nothing() {
    let Some(d) = Deployment::new().await else {
        return;
    };
    let d = Arc::new(d);
    d.target
        .faults
        .delay_ms
        .store(20, std::sync::atomic::Ordering::SeqCst);
    let (mut first, base) = d.serve();
    let failed_before = push_all(&d, &base, 0..150).await;
    assert!(failed_before.is_empty(), "{failed_before:?}");
    // Mid-wave: users are being delivered, leases are held, outcomes are unrecorded. Killed as
    // soon as the first have arrived (a fixed pause let a fast engine finish the wave first).
    let started = std::time::Instant::now();
    while d.target.count("POST", "/scim/v2/Users", 201) == 0
        && started.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivered = d.target.count("POST", "/scim/v2/Users", 201);
    eprintln!("killed with {delivered} of 150 delivered");
    kill9(&mut first);
    assert!(
        delivered < 150,
        "the wave was over before the kill ({delivered} delivered)"
    );
    let (mut second, base) = d.serve();
    let failed = push_all(&d, &base, 150..300).await;
    assert!(failed.is_empty(), "{failed:?}");
    d.wait_delivered(300, Duration::from_secs(120)).await;
    d.assert_exactly_once(300).await;
    sigterm(&mut second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_share_the_work_without_doing_any_twice() {
    let Some(d) = Deployment::new().await else {
        return;
    };
    let d = Arc::new(d);
    let (mut a, base_a) = d.serve();
    let (mut b, base_b) = d.serve();
    let (ra, rb) = tokio::join!(
        push_all(&d, &base_a, (0..300).filter(|i| i % 2 == 0)),
        push_all(&d, &base_b, (0..300).filter(|i| i % 2 == 1)),
    );
    assert!(
        ra.is_empty() && rb.is_empty(),
        "pushes failed: {ra:?} {rb:?}"
    );
    d.wait_delivered(300, Duration::from_secs(120)).await;
    d.assert_exactly_once(300).await;
    // Each create was attempted once: its look-up (shared with other creates of the same
    // moment, one filtered GET for several) names each user exactly once, and one POST.
    let filters: Vec<String> = support::user_lookups(&d.target)
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    support::assert_each_looked_up_once(
        &filters,
        (0..300).map(|i| format!("nurse{i:04}@hospital.example")),
    );
    assert!(
        filters.len() <= 300,
        "{} look-ups for 300 creates",
        filters.len()
    );
    assert_eq!(d.target.count("POST", "/scim/v2/Users", 201), 300);
    let done = d
        .store
        .list_operations(
            d.org,
            &OperationFilter {
                state: Some(OperationState::Succeeded),
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        done.iter().all(|o| o.attempts == 1),
        "an operation was attempted twice"
    );
    sigterm(&mut a);
    sigterm(&mut b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_connections_dropped_mid_wave_lose_nothing() {
    // What a PostgreSQL restart looks like to scimdesk: every connection it holds is
    // terminated by the server. (Restarting the shared server itself would break the other
    // tests running beside this one.)
    let Some(d) = Deployment::new().await else {
        return;
    };
    let app_name = format!("scimdesk_{}", uuid::Uuid::new_v4().simple());
    let master = MasterKey::from_base64(&d.key).unwrap();
    let store: Arc<dyn Store> = Arc::new(
        PgStore::open_with(
            d.schema.options().application_name(&app_name),
            "test".into(),
            master,
            scimdesk::policy::fanout::decide,
        )
        .await
        .unwrap(),
    );
    let engine = Engine::new(
        store.clone(),
        EngineConfig {
            lease_secs: 3,
            poll_interval_ms: 100,
            backoff_base_ms: 100,
            backoff_max_ms: 1000,
            ..Default::default()
        },
    );
    engine.start();
    let admin = sqlx::PgPool::connect(&support::pg_url()).await.unwrap();
    let actor = Actor::operator("idp");
    for i in 0..200 {
        if i == 60 || i == 140 {
            let killed: Vec<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            )
            .bind(&app_name)
            .fetch_all(&admin)
            .await
            .unwrap();
            assert!(!killed.is_empty(), "no connection to terminate");
        }
        // The identity provider retries a failed push, as real ones do.
        loop {
            match store
                .create_user(
                    &actor,
                    d.org,
                    &UserDraft::new(format!("nurse{i:04}@hospital.example")),
                )
                .await
            {
                Ok(_) | Err(scimdesk::store::StoreError::Conflict(_)) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    d.wait_delivered(200, Duration::from_secs(120)).await;
    d.assert_exactly_once(200).await;
    engine.shutdown().await;
}

/// Starts `engine` and waits until it listens for other processes' notices: on connecting, the
/// listener wakes every worker once (anything may have happened while it was not listening),
/// and under load that could come seconds after the start, waking a worker a test expects idle.
async fn start_listening(engine: &Engine) {
    let mut listening = engine.remote_changes();
    engine.start();
    tokio::time::timeout(Duration::from_secs(30), listening.changed())
        .await
        .expect("the engine listens within 30 s")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_from_another_process_wakes_idle_workers() {
    // The engine polls only once a minute here: delivery within seconds proves the worker was
    // woken by PostgreSQL NOTIFY from another process (here: another store, as the CLI is),
    // and only by the notice that names its organization.
    let Some(d) = Deployment::new().await else {
        return;
    };
    let engine = d.engine_polling_once_a_minute().await;
    start_listening(&engine).await;
    // Let the worker go idle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let actor = Actor::operator("idp");
    for i in 0..5 {
        d.store
            .create_user(
                &actor,
                d.org,
                &UserDraft::new(format!("woken{i}@hospital.example")),
            )
            .await
            .unwrap();
    }
    // A command's notice names its organization: one for another organization wakes nobody here.
    scimdesk::engine::commands::wake_other_processes(&*d.store, OrganizationId::new()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        d.target.count("POST", "/scim/v2/Users", 201),
        0,
        "a command's notice for another organization woke this one's worker"
    );
    scimdesk::engine::commands::wake_other_processes(&*d.store, d.org).await;
    let start = Instant::now();
    d.wait_delivered(5, Duration::from_secs(20)).await;
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_notice_wakes_only_the_organization_it_names() {
    // As above, the engine polls once a minute. Another process announces queue work as
    // `{"from": <process>, "orgs": [...]}`: a notice naming another organization leaves this
    // organization's idle worker asleep; one naming this organization wakes it.
    let Some(d) = Deployment::new().await else {
        return;
    };
    let engine = d.engine_polling_once_a_minute().await;
    let actor = Actor::operator("idp");
    // Queued before the engine starts: its first claim delivers it, so once it has arrived the
    // worker is past starting up and (a moment later) asleep.
    d.store
        .create_user(&actor, d.org, &UserDraft::new("early@hospital.example"))
        .await
        .unwrap();
    start_listening(&engine).await;
    d.wait_delivered(1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..3 {
        d.store
            .create_user(
                &actor,
                d.org,
                &UserDraft::new(format!("named{i}@hospital.example")),
            )
            .await
            .unwrap();
    }
    let pool = sqlx::PgPool::connect_with(d.schema.options())
        .await
        .unwrap();
    let announce = |org: OrganizationId| {
        let pool = pool.clone();
        async move {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(scimdesk::engine::events::QUEUE_CHANNEL)
                .bind(json!({"from": uuid::Uuid::now_v7(), "orgs": [org]}).to_string())
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    announce(OrganizationId::new()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        d.target.count("POST", "/scim/v2/Users", 201),
        1,
        "a notice for another organization woke this one's worker"
    );
    announce(d.org).await;
    let start = Instant::now();
    d.wait_delivered(4, Duration::from_secs(20)).await;
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_reach_other_processes_as_notifications() {
    // Another process (here: a plain LISTEN connection) hears the engine quarantine a target.
    let Some(d) = Deployment::new().await else {
        return;
    };
    let mut listener = sqlx::postgres::PgListener::connect_with(
        &sqlx::PgPool::connect_with(d.schema.options())
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    listener
        .listen(scimdesk::engine::events::EVENTS_CHANNEL)
        .await
        .unwrap();
    d.target.set_down(true);
    let master = MasterKey::from_base64(&d.key).unwrap();
    let engine_store: Arc<dyn Store> = Arc::new(
        PgStore::open_with(
            d.schema.options(),
            "engine".into(),
            master,
            scimdesk::policy::fanout::decide,
        )
        .await
        .unwrap(),
    );
    let engine = Engine::new(
        engine_store,
        EngineConfig {
            poll_interval_ms: 100,
            backoff_base_ms: 50,
            backoff_max_ms: 200,
            stats_flush_ms: 200,
            health: scimdesk::engine::HealthThresholds {
                quarantine_after_failures: 2,
                quarantine_after_secs: 1,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    engine.start();
    d.store
        .create_user(
            &Actor::operator("idp"),
            d.org,
            &UserDraft::new("late@hospital.example"),
        )
        .await
        .unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let n = listener.recv().await.unwrap();
            let v: serde_json::Value = serde_json::from_str(n.payload()).unwrap();
            if v["event"]["event"] == "connection_state_changed" {
                return v;
            }
        }
    })
    .await
    .expect("no state change notification within 30 s");
    assert_eq!(heard["event"]["state"], "quarantined", "{heard}");
    engine.shutdown().await;
}
