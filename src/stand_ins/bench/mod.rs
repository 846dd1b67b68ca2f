//! `scimdesk bench`: the engine's speed figures, measured on this machine in one run.
//!
//! * `wave` — an onboarding wave (users, then groups with members) pushed by HTTP to the
//!   inbound SCIM server, delivered by the engine to a local SCIM target (the
//!   [`TargetDouble`]); compared, in the same run, with pushing the same requests straight to
//!   a fresh target with a plain HTTP client; then a paced run for latency.
//! * `drain` — a large queue drained against a target that acknowledges at once, reporting
//!   the rate per interval to show whether it holds.
//! * `policy` — a mapping change's impact preview and a full reconciliation over a large
//!   directory (see [`policy`]).
//!
//! Each run uses a store of its own: a temporary PostgreSQL schema (dropped afterwards) or a
//! temporary SQLite file.

pub mod policy;
pub mod workbench;

use crate::crypto::{MasterKey, Secret};
use crate::domain::*;
use crate::engine::{Deliver, Engine, EngineConfig, NoopDelivery};
use crate::policy::fanout;
use crate::stand_ins::target_double::{FaultyServer, MemoryTarget, TargetDouble};
use crate::store::{
    LoadableStore, OperationFilter, PgStore, SqliteStore, Store, StoreError, StoreResult,
};
use serde::Serialize;
use serde_json::json;
use sqlx::{AssertSqlSafe, ConnectOptions as _, Connection as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A store for one benchmark run, removed when dropped.
pub struct BenchStore {
    /// The store (which benchmarks may also load in bulk).
    pub store: Arc<dyn LoadableStore>,
    cleanup: Cleanup,
}

enum Cleanup {
    Schema { url: String, name: String },
    File(std::path::PathBuf),
}

impl BenchStore {
    /// A fresh schema in the PostgreSQL database at `postgres`, or a temporary SQLite file.
    pub async fn open(postgres: Option<&str>) -> StoreResult<Self> {
        let key = MasterKey::generate().map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Self::open_with_key(postgres, key).await
    }

    /// [`BenchStore::open`] with a given master key (so another process can open it too).
    pub async fn open_with_key(postgres: Option<&str>, key: MasterKey) -> StoreResult<Self> {
        match postgres {
            Some(url) => {
                let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
                let base = crate::store::postgres_connect_options(url)?;
                let mut admin = base
                    .connect()
                    .await
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
                    .execute(&mut admin)
                    .await?;
                let _ = admin.close().await;
                let options = base.options([("search_path", name.as_str())]);
                let store = PgStore::open_with(
                    options,
                    format!("bench schema {name}"),
                    key,
                    fanout::decide,
                )
                .await?;
                Ok(Self {
                    store: Arc::new(store),
                    cleanup: Cleanup::Schema {
                        url: url.to_string(),
                        name,
                    },
                })
            }
            None => {
                let path = std::env::temp_dir().join(format!(
                    "scimdesk-bench-{}.db",
                    uuid::Uuid::new_v4().simple()
                ));
                let store =
                    SqliteStore::open(&format!("sqlite://{}", path.display()), key, fanout::decide)
                        .await?;
                Ok(Self {
                    store: Arc::new(store),
                    cleanup: Cleanup::File(path),
                })
            }
        }
    }

    /// Where another process finds this store: a PostgreSQL URL and schema, or a file.
    pub fn location(&self) -> StoreLocation {
        match &self.cleanup {
            Cleanup::Schema { url, name } => StoreLocation::Schema {
                url: url.clone(),
                schema: name.clone(),
            },
            Cleanup::File(path) => StoreLocation::File(path.clone()),
        }
    }

    /// Removes the schema or file.
    pub async fn remove(self) {
        match self.cleanup {
            Cleanup::Schema { url, name } => {
                if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                    let _ = sqlx::query(AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS {name} CASCADE"
                    )))
                    .execute(&mut c)
                    .await;
                }
            }
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
        }
    }
}

/// Where a benchmark store lives, for a second process to open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A schema in a PostgreSQL database.
    Schema {
        /// The database URL.
        url: String,
        /// The schema.
        schema: String,
    },
    /// A SQLite file.
    File(std::path::PathBuf),
}

impl StoreLocation {
    /// Opens the store there with `key`.
    pub async fn open(&self, key: MasterKey) -> StoreResult<Arc<dyn Store>> {
        Ok(match self {
            StoreLocation::Schema { url, schema } => {
                let base = crate::store::postgres_connect_options(url)?;
                let options = base.options([("search_path", schema.as_str())]);
                Arc::new(
                    PgStore::open_with(
                        options,
                        format!("bench schema {schema}"),
                        key,
                        fanout::decide,
                    )
                    .await?,
                )
            }
            StoreLocation::File(path) => Arc::new(
                SqliteStore::open(&format!("sqlite://{}", path.display()), key, fanout::decide)
                    .await?,
            ),
        })
    }
}

/// Which application the wave provisions to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WaveTarget {
    /// An in-memory SCIM application ([`MemoryTarget`]): fast, so the figures are scimdesk's.
    Memory,
    /// scimdesk's own inbound server in another organization on the same store
    /// ([`TargetDouble`]): every request the target answers costs database writes too.
    Scimdesk,
}

/// What a wave run does.
#[derive(Debug, Clone)]
pub struct WaveOptions {
    /// Run on a temporary schema in this PostgreSQL database (else a temporary SQLite file).
    pub postgres: Option<String>,
    /// Users in the wave.
    pub users: usize,
    /// Groups (members spread over them).
    pub groups: usize,
    /// Requests the identity provider (and the direct push) sends at once.
    pub concurrency: usize,
    /// Offered rate of the paced run (users/s).
    pub paced_rate: u32,
    /// Users in the paced run.
    pub paced_users: usize,
    /// The target connection's settings.
    pub settings: serde_json::Value,
    /// Latency the target adds to every answer, as a remote application would.
    pub target_latency: Duration,
    /// Which application is the target.
    pub target: WaveTarget,
}

/// Figures of a wave run.
#[derive(Debug, Serialize)]
pub struct WaveReport {
    /// Which store.
    pub backend: String,
    /// Which application the target was.
    pub target: WaveTarget,
    /// Latency the target adds to every answer (ms), as a remote application would.
    pub target_latency_ms: u64,
    /// Users in the wave.
    pub users: usize,
    /// Groups in the wave (members spread over them).
    pub groups: usize,
    /// Seconds to push every request straight to a target with a plain client.
    pub direct_secs: f64,
    /// Seconds the engine took to deliver the same wave once it was queued (the inbound push
    /// done before the workers started): the engine's own time.
    pub delivery_secs: f64,
    /// delivery_secs / direct_secs.
    pub delivery_vs_direct: f64,
    /// Seconds the queue's own work took for as many operations (claimed, recorded, moved to
    /// the history) against a delivery that acknowledges at once: a floor under
    /// `delivery_secs` that no sending can lower.
    pub queue_floor_secs: f64,
    /// queue_floor_secs / direct_secs.
    pub queue_floor_vs_direct: f64,
    /// Seconds the inbound server took to accept that queued wave with no worker running: the
    /// inbound side's own time.
    pub inbound_secs: f64,
    /// Seconds from the first request to the source until the target acknowledged the last.
    pub engine_secs: f64,
    /// Of which: seconds the identity provider took to push the wave to the inbound server.
    pub source_push_secs: f64,
    /// engine_secs / direct_secs.
    pub engine_vs_direct: f64,
    /// Users provisioned per second end to end.
    pub users_per_sec: f64,
    /// Requests the target received per user delivered end to end (the direct push sends 1
    /// per user, plus the groups).
    pub requests_per_user: f64,
    /// Source commit to target acknowledgement (recorded), over the whole wave, ms.
    pub wave_latency_ms: Percentiles,
    /// The offered rate of the paced run (users/s).
    pub paced_rate: u32,
    /// Source commit to target acknowledgement at the paced rate, ms.
    pub paced_latency_ms: Percentiles,
    /// Peak resident memory of this process (MB).
    pub peak_rss_mb: f64,
    /// CPU per user of the direct push.
    pub direct_cpu: CpuPerUser,
    /// CPU per user of the inbound server alone.
    pub inbound_cpu: CpuPerUser,
    /// CPU per user of the engine alone.
    pub delivery_cpu: CpuPerUser,
    /// CPU per user end to end.
    pub engine_cpu: CpuPerUser,
}

/// p50/p95/p99.
#[derive(Debug, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

pub(crate) fn percentiles(mut v: Vec<f64>) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Percentiles {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
    }
}

/// User `i` of a generated benchmark directory (`u000042@bench.example`), active.
pub(crate) fn directory_user(
    org: OrganizationId,
    i: usize,
    attributes: serde_json::Value,
    now: Timestamp,
) -> User {
    User {
        id: UserId::new(),
        organization_id: org,
        user_name: format!("u{i:06}@bench.example"),
        external_id: Some(format!("hr-{i}")),
        display_name: Some(format!("User {i}")),
        given_name: Some("User".into()),
        family_name: Some(format!("{i}")),
        emails: sqlx::types::Json(vec![Email {
            value: format!("u{i:06}@bench.example"),
            kind: Some("work".into()),
            primary: Some(true),
            display: None,
        }]),
        active: true,
        lifecycle_state: LifecycleState::Active,
        source_connection_id: None,
        attributes: sqlx::types::Json(attributes),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

/// A generated benchmark group.
pub(crate) fn directory_group(org: OrganizationId, name: String, now: Timestamp) -> Group {
    Group {
        id: GroupId::new(),
        organization_id: org,
        display_name: name,
        external_id: None,
        source_connection_id: None,
        attributes: sqlx::types::Json(json!({})),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

/// CPU time used so far, by the whole machine (every process but idle: scimdesk, PostgreSQL and
/// the in-process target alike) and by this process, in seconds (Linux; `None` elsewhere).
/// Wall-clock figures on a shared two-core machine vary by ±20 % between runs; the CPU a
/// phase costs per user varies far less, so it shows whether a change made the work cheaper.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuClock {
    machine: f64,
    process: f64,
}

/// Clock ticks per second in `/proc` (USER_HZ, 100 on every Linux architecture we run on).
const USER_HZ: f64 = 100.0;

impl CpuClock {
    /// Reads both clocks now.
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let ticks: Vec<f64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|t| t.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
        let busy: f64 = ticks
            .iter()
            .take(8)
            .enumerate()
            .filter(|(i, _)| *i != 3 && *i != 4)
            .map(|(_, t)| t)
            .sum();
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command (which may hold spaces) start at the last ')'.
        let rest: Vec<&str> = own.get(own.rfind(')')? + 1..)?.split_whitespace().collect();
        let utime: f64 = rest.get(11)?.parse().ok()?;
        let stime: f64 = rest.get(12)?.parse().ok()?;
        Some(Self {
            machine: busy / USER_HZ,
            process: (utime + stime) / USER_HZ,
        })
    }

    /// CPU per user since `self`, in ms (machine, this process).
    fn per_user_since(self, users: usize) -> CpuPerUser {
        let Some(now) = Self::now() else {
            return CpuPerUser::default();
        };
        let n = users.max(1) as f64;
        CpuPerUser {
            machine_ms: (now.machine - self.machine) * 1000.0 / n,
            scimdesk_ms: (now.process - self.process) * 1000.0 / n,
        }
    }
}

/// CPU a phase cost per user, in ms.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuPerUser {
    /// The whole machine's (scimdesk, PostgreSQL, the bench's client and target).
    pub machine_ms: f64,
    /// This process's (scimdesk, plus the bench's own client and in-process target).
    pub scimdesk_ms: f64,
}

/// Peak resident set size of this process in MB (Linux; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn user_doc(i: usize, prefix: &str) -> serde_json::Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("{prefix}{i:06}@hospital.example"),
        "name": {"givenName": "Nurse", "familyName": format!("N{i}")},
        "emails": [{"value": format!("{prefix}{i:06}@hospital.example"), "type": "work", "primary": true}],
        "active": true
    })
}

/// Pushes `docs` to `url` with `concurrency` requests at once; returns the created ids in order.
async fn push(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    docs: Vec<serde_json::Value>,
    concurrency: usize,
) -> Result<Vec<String>, String> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(docs.len());
    for doc in docs {
        let permit = sem
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let http = http.clone();
        let url = url.to_string();
        let token = token.to_string();
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/scim+json")
                .body(doc.to_string())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            drop(permit);
            if r.status().as_u16() != 201 {
                return Err(format!("{url} answered {}", r.status()));
            }
            let body: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
            Ok::<String, String>(body["id"].as_str().unwrap_or_default().to_string())
        }));
    }
    let mut ids = Vec::with_capacity(tasks.len());
    for t in tasks {
        ids.push(t.await.map_err(|e| e.to_string())??);
    }
    Ok(ids)
}

fn group_docs(ids: &[String], groups: usize) -> Vec<serde_json::Value> {
    let groups = groups.max(1);
    (0..groups)
        .map(|g| {
            let members: Vec<serde_json::Value> = ids
                .iter()
                .enumerate()
                .filter(|(i, _)| i % groups == g)
                .map(|(_, id)| json!({"value": id}))
                .collect();
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": format!("Ward {g}"), "members": members})
        })
        .collect()
}

async fn serve_inbound(
    store: Arc<dyn Store>,
    name: &str,
) -> StoreResult<(
    OrganizationId,
    String,
    String,
    tokio::sync::oneshot::Sender<()>,
)> {
    let (org, token) = crate::stand_ins::target_double::inbound_organization(
        store.as_ref(),
        &Actor::system("bench"),
        name,
        "idp",
    )
    .await?;
    let (addr, tx) =
        crate::api::serve::spawn_local(crate::api::serve::app(store, Default::default(), None))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    Ok((org, format!("http://{addr}/scim/v2"), token, tx))
}

/// A wave's target application, of either kind.
enum BenchTarget {
    Memory(MemoryTarget),
    Scimdesk(TargetDouble),
}

impl BenchTarget {
    async fn start(
        kind: WaveTarget,
        store: &Arc<dyn Store>,
        name: &str,
        latency: Duration,
    ) -> Result<Self, String> {
        let t = match kind {
            WaveTarget::Memory => {
                BenchTarget::Memory(MemoryTarget::start().await.map_err(|e| e.to_string())?)
            }
            WaveTarget::Scimdesk => BenchTarget::Scimdesk(
                TargetDouble::start(store.clone(), name)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
        };
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        t.server()
            .faults
            .delay_ms
            .store(ms, std::sync::atomic::Ordering::SeqCst);
        Ok(t)
    }

    fn server(&self) -> &FaultyServer {
        match self {
            BenchTarget::Memory(t) => &t.server,
            BenchTarget::Scimdesk(t) => &t.server,
        }
    }

    fn token(&self) -> &str {
        match self {
            BenchTarget::Memory(t) => &t.token,
            BenchTarget::Scimdesk(t) => &t.token,
        }
    }
}

/// A source organization served by an inbound server, with one SCIM target connection.
struct WaveRoute {
    org: OrganizationId,
    base: String,
    token: String,
    target: BenchTarget,
    _inbound: tokio::sync::oneshot::Sender<()>,
}

impl WaveRoute {
    async fn start(store: &Arc<dyn Store>, name: &str, o: &WaveOptions) -> Result<Self, String> {
        let target =
            BenchTarget::start(o.target, store, &format!("{name} target"), o.target_latency)
                .await?;
        let (org, base, token, inbound) = serve_inbound(store.clone(), name)
            .await
            .map_err(|e| e.to_string())?;
        store
            .create_connection(
                &Actor::system("bench"),
                org,
                &NewConnection {
                    name: "target".into(),
                    kind: ConnectionKind::ScimTarget,
                    base_url: Some(target.server().base_url.clone()),
                    auth_method: AuthMethod::Bearer,
                    settings: o.settings.clone(),
                },
                Some(&Secret::new(target.token().to_string())),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            org,
            base,
            token,
            target,
            _inbound: inbound,
        })
    }

    /// Pushes the wave's users, then its groups; returns the seconds it took.
    async fn push_wave(
        &self,
        http: &reqwest::Client,
        o: &WaveOptions,
        prefix: &str,
    ) -> Result<f64, String> {
        push_wave(http, &self.base, &self.token, o, prefix).await
    }
}

/// Pushes `o.users` users and then `o.groups` groups holding them to a SCIM server.
async fn push_wave(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    o: &WaveOptions,
    prefix: &str,
) -> Result<f64, String> {
    let t0 = Instant::now();
    let ids = push(
        http,
        &format!("{base}/Users"),
        token,
        (0..o.users).map(|i| user_doc(i, prefix)).collect(),
        o.concurrency,
    )
    .await?;
    let users_secs = t0.elapsed().as_secs_f64();
    push(
        http,
        &format!("{base}/Groups"),
        token,
        group_docs(&ids, o.groups),
        o.concurrency,
    )
    .await?;
    tracing::info!(
        users_secs,
        total_secs = t0.elapsed().as_secs_f64(),
        "pushed a wave to {base}"
    );
    Ok(t0.elapsed().as_secs_f64())
}

/// Waits until `target` has created `users` users and `groups` groups (watched in its request
/// log, which costs the database nothing), then until the organization's queue is empty.
async fn wait_delivered(
    store: &dyn Store,
    org: OrganizationId,
    target: &BenchTarget,
    users: usize,
    groups: usize,
) -> Result<(), String> {
    let start = Instant::now();
    let server = target.server();
    let (mut seen_users, mut seen_groups) = (0, 0);
    let (mut users_from, mut groups_from) = (0, 0);
    loop {
        let (n, next) = server.count_since(users_from, "POST", "/scim/v2/Users", 201);
        (seen_users, users_from) = (seen_users + n, next);
        let (n, next) = server.count_since(groups_from, "POST", "/scim/v2/Groups", 201);
        (seen_groups, groups_from) = (seen_groups + n, next);
        if seen_users >= users && seen_groups >= groups {
            break;
        }
        if start.elapsed() > Duration::from_secs(3600) {
            return Err("the wave did not reach the target within an hour".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_drained(store, org, Duration::from_secs(600)).await
}

async fn wait_drained(
    store: &dyn Store,
    org: OrganizationId,
    limit: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let left = store
            .list_operations(
                org,
                &OperationFilter {
                    limit: 1,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        if left.is_empty() {
            return Ok(());
        }
        if start.elapsed() > limit {
            return Err(format!("the queue did not drain within {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn latencies(
    store: &dyn Store,
    org: OrganizationId,
    action: OperationAction,
) -> Result<Vec<f64>, String> {
    let done = store
        .list_operations(
            org,
            &OperationFilter {
                state: Some(OperationState::Succeeded),
                action: Some(action),
                limit: 10_000_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(done
        .iter()
        .map(|o| o.updated_at.since(o.created_at).as_secs_f64() * 1000.0)
        .collect())
}

/// The engine's configuration in the wave (and its queue floor).
fn wave_engine_config() -> EngineConfig {
    EngineConfig {
        poll_interval_ms: 200,
        ..Default::default()
    }
}

/// Runs the wave benchmark: the direct push; the queue's own work for as many operations; the
/// engine delivering a queued wave; the wave end to end; a paced run for latency.
pub async fn wave(o: WaveOptions) -> Result<WaveReport, String> {
    crate::connectors::ensure_tls_provider();
    // The wave mirrors the direct push: every user, and the source's groups.
    let mut o = o;
    if let Some(m) = o.settings.as_object_mut() {
        m.entry("user_scope").or_insert(json!("all"));
        m.entry("source_groups").or_insert(json!(true));
    }
    let latency_ms = u64::try_from(o.target_latency.as_millis()).unwrap_or(u64::MAX);
    let bench = BenchStore::open(o.postgres.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    let store: Arc<dyn Store> = bench.store.clone();
    let result = async {
        let http = reqwest::Client::new();
        // Straight to a target.
        let direct =
            BenchTarget::start(o.target, &store, "direct target", o.target_latency).await?;
        let clock = CpuClock::now().unwrap_or_default();
        let direct_secs =
            push_wave(&http, &direct.server().base_url, direct.token(), &o, "d").await?;
        let direct_cpu = clock.per_user_since(o.users);
        drop(direct);

        // The queue's own work for as many operations, in a store of its own (an engine with
        // a no-op delivery would acknowledge whatever it found in this one).
        let floor = BenchStore::open(o.postgres.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        let queue_floor_secs = queue_floor(
            &floor.store,
            (o.users + o.groups) as u64,
            o.settings.clone(),
            wave_engine_config(),
        )
        .await;
        floor.remove().await;
        let queue_floor_secs = queue_floor_secs?;

        // Queued first, then delivered: the engine alone.
        let queued = WaveRoute::start(&store, "queued source", &o).await?;
        let clock = CpuClock::now().unwrap_or_default();
        let inbound_secs = queued.push_wave(&http, &o, "q").await?;
        let inbound_cpu = clock.per_user_since(o.users);
        let engine = Engine::new(store.clone(), wave_engine_config());
        let t0 = Instant::now();
        let clock = CpuClock::now().unwrap_or_default();
        engine.start();
        wait_delivered(
            store.as_ref(),
            queued.org,
            &queued.target,
            o.users,
            o.groups.max(1),
        )
        .await?;
        let delivery_secs = t0.elapsed().as_secs_f64();
        let delivery_cpu = clock.per_user_since(o.users);
        check_delivered(&queued.target, o.users)?;
        drop(queued);

        // End to end.
        let route = WaveRoute::start(&store, "source", &o).await?;
        engine.refresh_connections();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t0 = Instant::now();
        let clock = CpuClock::now().unwrap_or_default();
        let source_push_secs = route.push_wave(&http, &o, "e").await?;
        wait_delivered(
            store.as_ref(),
            route.org,
            &route.target,
            o.users,
            o.groups.max(1),
        )
        .await?;
        let engine_secs = t0.elapsed().as_secs_f64();
        let engine_cpu = clock.per_user_since(o.users);
        let wave_latency = latencies(store.as_ref(), route.org, OperationAction::Create).await?;
        check_delivered(&route.target, o.users)?;
        let requests = route.target.server().received().len();
        drop(route);

        // Paced: latency at an offered rate.
        let paced = WaveRoute::start(&store, "paced source", &o).await?;
        engine.refresh_connections();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut tick = tokio::time::interval(Duration::from_secs_f64(
            1.0 / f64::from(o.paced_rate.max(1)),
        ));
        let mut tasks = Vec::new();
        for i in 0..o.paced_users {
            tick.tick().await;
            let http = http.clone();
            let url = format!("{}/Users", paced.base);
            let token = paced.token.clone();
            tasks.push(tokio::spawn(async move {
                push(&http, &url, &token, vec![user_doc(i, "p")], 1).await
            }));
        }
        for t in tasks {
            t.await.map_err(|e| e.to_string())??;
        }
        wait_drained(store.as_ref(), paced.org, Duration::from_secs(600)).await?;
        let paced_latency = latencies(store.as_ref(), paced.org, OperationAction::Create).await?;
        engine.shutdown().await;
        Ok(WaveReport {
            backend: store.backend().to_string(),
            target: o.target,
            target_latency_ms: latency_ms,
            users: o.users,
            groups: o.groups,
            direct_secs,
            delivery_secs,
            delivery_vs_direct: delivery_secs / direct_secs.max(1e-9),
            queue_floor_secs,
            queue_floor_vs_direct: queue_floor_secs / direct_secs.max(1e-9),
            inbound_secs,
            engine_secs,
            source_push_secs,
            engine_vs_direct: engine_secs / direct_secs.max(1e-9),
            users_per_sec: o.users as f64 / engine_secs.max(1e-9),
            requests_per_user: requests as f64 / o.users.max(1) as f64,
            wave_latency_ms: percentiles(wave_latency),
            paced_rate: o.paced_rate,
            paced_latency_ms: percentiles(paced_latency),
            peak_rss_mb: peak_rss_mb(),
            direct_cpu,
            inbound_cpu,
            delivery_cpu,
            engine_cpu,
        })
    }
    .await;
    bench.remove().await;
    result
}

/// Fails unless the target created every user exactly once.
fn check_delivered(target: &BenchTarget, users: usize) -> Result<(), String> {
    let delivered = target.server().count("POST", "/scim/v2/Users", 201);
    if delivered != users {
        return Err(format!("{delivered} of {users} users reached the target"));
    }
    Ok(())
}

/// Figures of a drain run.
#[derive(Debug, Serialize)]
pub struct DrainReport {
    /// Which store.
    pub backend: String,
    /// Operations drained.
    pub operations: u64,
    /// Seconds to enqueue them.
    pub enqueue_secs: f64,
    /// Seconds to drain them.
    pub drain_secs: f64,
    /// Overall rate.
    pub ops_per_sec: f64,
    /// The rate in each interval, to show whether it holds.
    pub interval_rates: Vec<f64>,
    /// Peak resident memory of this process (MB).
    pub peak_rss_mb: f64,
}

/// A new organization `name` with a SCIM target connection (with `settings`) that has
/// `operations` queued updates, each of a resource of its own: work for a no-op delivery.
async fn queue_for_noop(
    store: &dyn LoadableStore,
    name: &str,
    operations: u64,
    settings: serde_json::Value,
) -> Result<(OrganizationId, Connection), String> {
    let actor = Actor::system("bench");
    let org = store
        .create_organization(&actor, name)
        .await
        .map_err(|e| e.to_string())?;
    let conn = store
        .create_connection(
            &actor,
            org.id,
            &NewConnection {
                name: "noop".into(),
                kind: ConnectionKind::ScimTarget,
                base_url: Some("http://127.0.0.1:9/scim/v2".into()),
                auth_method: AuthMethod::None,
                settings,
            },
            None,
        )
        .await
        .map_err(|e| e.to_string())?;
    store
        .bulk_enqueue(org.id, conn.id, operations)
        .await
        .map_err(|e| e.to_string())?;
    Ok((org.id, conn))
}

/// The queue's own work for `operations` operations: claimed, leased, recorded and moved to
/// the history by an engine configured as `config`, at a connection with `settings`, against
/// a delivery that acknowledges at once. Nothing the engine does for a real operation can
/// take less, so the engine's time is at least this plus the requests' own.
async fn queue_floor(
    store: &Arc<dyn LoadableStore>,
    operations: u64,
    settings: serde_json::Value,
    config: EngineConfig,
) -> Result<f64, String> {
    let (org, _) = queue_for_noop(store.as_ref(), "queue floor", operations, settings).await?;
    let engine = Engine::new(store.clone(), config).with_delivery(Arc::new(NoopDelivery));
    let t0 = Instant::now();
    engine.start();
    let drained = wait_drained(store.as_ref(), org, Duration::from_secs(600)).await;
    let secs = t0.elapsed().as_secs_f64();
    engine.shutdown().await;
    drained.map(|()| secs)
}

/// Runs the drain benchmark: `operations` queued updates, each for its own resource, drained
/// by one connection's worker against a target that acknowledges at once.
pub async fn drain(
    postgres: Option<&str>,
    operations: u64,
    concurrency: u32,
    interval: Duration,
) -> Result<DrainReport, String> {
    let bench = BenchStore::open(postgres)
        .await
        .map_err(|e| e.to_string())?;
    let store = bench.store.clone();
    let result = async {
        let t0 = Instant::now();
        let (org, conn) = queue_for_noop(
            store.as_ref(),
            "drain",
            operations,
            json!({"concurrency": concurrency}),
        )
        .await?;
        let enqueue_secs = t0.elapsed().as_secs_f64();
        let noop: Arc<dyn Deliver> = Arc::new(NoopDelivery);
        let engine = Engine::new(
            store.clone(),
            EngineConfig {
                claim_batch: 256,
                complete_batch: 512,
                ..Default::default()
            },
        )
        .with_delivery(noop);
        let t0 = Instant::now();
        engine.start();
        let mut rates = Vec::new();
        let mut last = operations;
        let mut last_t = Instant::now();
        loop {
            tokio::time::sleep(interval).await;
            let counts = store
                .queue_counts(org, conn.id)
                .await
                .map_err(|e| e.to_string())?;
            let left = counts.pending + counts.in_flight + counts.retry_wait + counts.failed;
            let now = Instant::now();
            rates.push((last - left) as f64 / now.duration_since(last_t).as_secs_f64());
            last = left;
            last_t = now;
            if left == 0 {
                break;
            }
        }
        let drain_secs = t0.elapsed().as_secs_f64();
        engine.shutdown().await;
        Ok(DrainReport {
            backend: store.backend().to_string(),
            operations,
            enqueue_secs,
            drain_secs,
            ops_per_sec: operations as f64 / drain_secs.max(1e-9),
            interval_rates: rates,
            peak_rss_mb: peak_rss_mb(),
        })
    }
    .await;
    bench.remove().await;
    result
}
