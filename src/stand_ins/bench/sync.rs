//! `scimdesk bench sync`: a source scimdesk pulls from, at hospital scale. A generated SCIM
//! server in this process (users; groups nested three deep, users in the leaves) is synced in
//! full into a fresh store, synced again with nothing changed (counting what was written),
//! then changed a little at a time (a user disabled, a membership removed) and synced
//! incrementally while the engine delivers to a local SCIM application bound to one tree's
//! role, timing each change from the source to the application.

use super::*;
use crate::engine::sync::{SyncOptions, sync_source};
use axum::extract::{Query, State};
use axum::routing::get;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;

/// What to measure.
#[derive(Debug, Clone)]
pub struct SyncBenchOptions {
    /// PostgreSQL database URL (default: a temporary SQLite file).
    pub postgres: Option<String>,
    /// Users at the source.
    pub users: usize,
    /// Groups at the source (in three levels: a twentieth, then about a tenth, then the rest).
    pub groups: usize,
    /// Incremental changes timed.
    pub changes: usize,
}

/// The figures.
#[derive(Debug, Serialize)]
pub struct SyncBenchReport {
    /// `postgres` or `sqlite`.
    pub backend: String,
    /// Users at the source.
    pub users: usize,
    /// Groups at the source.
    pub groups: usize,
    /// Memberships in the store after flattening.
    pub memberships: u64,
    /// The first, full sync.
    pub full_secs: f64,
    /// A full re-sync with nothing changed.
    pub resync_secs: f64,
    /// What that re-sync wrote to the directory and queue: audit events and operations
    /// beyond the run's own record.
    pub resync_writes: u64,
    /// An incremental sync that finds nothing (what the schedule's poll costs).
    pub idle_incremental_secs: f64,
    /// Incremental syncs, each applying one change.
    pub incremental_secs: Percentiles,
    /// From the change at the source to its request arriving at the application (the sync
    /// started at once; the schedule's poll interval comes on top).
    pub change_to_target_ms: Percentiles,
    /// Peak resident memory of this process (the generated source included).
    pub peak_rss_mb: f64,
}

/// The generated source's state, kept small (documents are written when asked for), so that
/// the memory measured is scimdesk's.
struct SourceState {
    users: Vec<UserRow>,
    groups: Vec<GroupRow>,
}

struct UserRow {
    active: bool,
    modified: Timestamp,
}

struct GroupRow {
    users: Vec<u32>,
    children: Vec<u32>,
    modified: Timestamp,
}

type Shared = Arc<Mutex<SourceState>>;

/// `meta.lastModified gt "T"`'s T, if the filter is that.
fn since(filter: Option<&String>) -> Option<Timestamp> {
    let f = filter?;
    let start = f.find("gt \"")? + 4;
    let end = f[start..].find('"')? + start;
    Timestamp::parse_rfc3339(&f[start..end]).ok()
}

/// One page of a ListResponse over `rows`, the filter on `meta.lastModified` applied.
fn page<T>(
    rows: &[T],
    modified: impl Fn(&T) -> Timestamp,
    doc: impl Fn(usize, &T) -> Value,
    q: &HashMap<String, String>,
) -> axum::Json<Value> {
    let after = since(q.get("filter"));
    let picked: Vec<(usize, &T)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| after.is_none_or(|t| modified(r) > t))
        .collect();
    let start: usize = q
        .get("startIndex")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let count: usize = q
        .get("count")
        .and_then(|s| s.parse().ok())
        .unwrap_or(100)
        .min(1000);
    let resources: Vec<Value> = picked
        .iter()
        .skip(start.saturating_sub(1))
        .take(count)
        .map(|(i, r)| doc(*i, r))
        .collect();
    axum::Json(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": picked.len(),
        "startIndex": start,
        "itemsPerPage": count,
        "Resources": resources,
    }))
}

fn user_doc(i: usize, u: &UserRow) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": format!("u{i}"),
        "userName": format!("staff{i:06}@riverside.example"),
        "name": {"givenName": "Staff", "familyName": format!("No. {i}")},
        "emails": [{"value": format!("staff{i:06}@riverside.example"), "type": "work", "primary": true}],
        "active": u.active,
        "meta": {"resourceType": "User", "lastModified": u.modified.to_rfc3339()},
    })
}

fn group_doc(g: usize, row: &GroupRow) -> Value {
    let members: Vec<Value> = row
        .children
        .iter()
        .map(|c| json!({"value": format!("g{c}"), "type": "Group"}))
        .chain(row.users.iter().map(|u| json!({"value": format!("u{u}")})))
        .collect();
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": format!("g{g}"),
        "displayName": format!("Group {g:04}"),
        "members": members,
        "meta": {"resourceType": "Group", "lastModified": row.modified.to_rfc3339()},
    })
}

async fn users(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::Json<Value> {
    let s = s.lock().unwrap_or_else(|e| e.into_inner());
    page(&s.users, |u| u.modified, user_doc, &q)
}

async fn groups(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::Json<Value> {
    let s = s.lock().unwrap_or_else(|e| e.into_inner());
    page(&s.groups, |g| g.modified, group_doc, &q)
}

async fn config() -> axum::Json<Value> {
    axum::Json(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "filter": {"supported": true, "maxResults": 1000},
        "bulk": {"supported": false},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [],
    }))
}

/// The three levels of `groups`: tops, their children, and the leaves under those.
fn levels(groups: usize) -> (usize, usize, usize) {
    let tops = (groups / 20).max(1);
    let middles = (groups / 10).max(tops);
    let leaves = groups.saturating_sub(tops + middles).max(1);
    (tops, middles, leaves)
}

/// The generated directory: `users` users, `groups` groups in three [`levels`], every user
/// in one leaf, last changed over the past hour.
fn generate(users: usize, groups: usize) -> SourceState {
    let (tops, middles, leaves) = levels(groups);
    let hour_ago = Timestamp::now().before(Duration::from_secs(3600));
    let mut rows: Vec<GroupRow> = (0..tops + middles + leaves)
        .map(|_| GroupRow {
            users: Vec::new(),
            children: Vec::new(),
            modified: hour_ago,
        })
        .collect();
    for m in 0..middles {
        rows[m % tops].children.push((tops + m) as u32);
    }
    for l in 0..leaves {
        rows[tops + l % middles]
            .children
            .push((tops + middles + l) as u32);
    }
    let step = Duration::from_millis(3_000_000 / users.max(1) as u64);
    let user_rows = (0..users)
        .map(|i| {
            rows[tops + middles + i % leaves].users.push(i as u32);
            UserRow {
                active: true,
                modified: hour_ago.after(step * i as u32),
            }
        })
        .collect();
    SourceState {
        users: user_rows,
        groups: rows,
    }
}

/// Audit events of `org` since `since`, and its unfinished operations: what a sync that
/// changes nothing must not add to.
async fn writes(s: &dyn Store, org: OrganizationId, since: Timestamp) -> StoreResult<u64> {
    let audit = s
        .list_audit(
            org,
            &AuditFilter {
                since: Some(since),
                limit: 10_000,
                ..Default::default()
            },
        )
        .await?
        .len() as u64;
    let mut ops = 0;
    for c in s.list_connections(org).await? {
        let q = s.queue_counts(org, c.id).await?;
        ops += q.pending + q.in_flight + q.retry_wait + q.failed;
    }
    Ok(audit + ops)
}

/// Runs the benchmark.
pub async fn sync(options: SyncBenchOptions) -> BenchResult<SyncBenchReport> {
    let bench = BenchStore::open(options.postgres.as_deref()).await?;
    let result = run(bench.store.clone(), &options).await;
    bench.remove().await;
    result
}

async fn run(store: Arc<dyn LoadableStore>, o: &SyncBenchOptions) -> BenchResult<SyncBenchReport> {
    crate::connectors::ensure_tls_provider();
    let state: Shared = Arc::new(Mutex::new(generate(o.users, o.groups)));
    let app = axum::Router::new()
        .route("/scim/v2/Users", get(users))
        .route("/scim/v2/Groups", get(groups))
        .route("/scim/v2/ServiceProviderConfig", get(config))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/scim/v2", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let s: &dyn Store = store.as_ref();
    let actor = Actor::operator("bench");
    let org = s.create_organization(&actor, "Riverside").await?;
    let source = s
        .create_connection(
            &actor,
            org.id,
            &NewConnection {
                name: "Directory".into(),
                kind: ConnectionKind::ScimSource,
                base_url: Some(base),
                auth_method: AuthMethod::None,
                // The bench times each sync itself: the engine's schedule stays off.
                settings: json!({"page_size": 1000, "incremental_sync_every_secs": 0, "full_sync_every_secs": 0}),
            },
            None,
        )
        .await?;
    // The application receives one tree's people, through a role mapped from its top.
    let app = MemoryTarget::start().await?;
    let role = crate::engine::commands::ensure_role(s, &actor, org.id, "ward-0").await?;
    crate::engine::commands::set_mapping(
        s,
        &actor,
        org.id,
        &crate::engine::commands::MappingChange::Set {
            id: None,
            draft: RoleMappingDraft {
                source_connection_id: None,
                selector: GroupSelector::Path,
                match_mode: MatchMode::Exact,
                pattern: "/Group 0000".into(),
                role_id: role.id,
            },
        },
        &crate::policy::impact::Guard::default(),
        true,
    )
    .await?;
    s.create_connection(
        &actor,
        org.id,
        &NewConnection {
            name: "Rostering".into(),
            kind: ConnectionKind::ScimTarget,
            base_url: Some(app.base_url.clone()),
            auth_method: AuthMethod::Bearer,
            settings: json!({"roles": ["ward-0"], "concurrency": 16}),
        },
        Some(&Secret::new(app.token.clone())),
    )
    .await?;

    let sync = |full: bool, quiet: bool| {
        sync_source(
            s,
            &actor,
            org.id,
            source.id,
            SyncOptions {
                full,
                quiet,
                ..Default::default()
            },
        )
    };
    let failed = |r: &crate::engine::sync::SyncReport| {
        r.run
            .error
            .clone()
            .map(|e| StandInError::Stalled(format!("the sync failed: {e}")))
    };

    let t0 = Instant::now();
    let first = sync(true, false)
        .await
        .map_err(|e| StandInError::Stalled(e.to_string()))?;
    let full_secs = t0.elapsed().as_secs_f64();
    if let Some(e) = failed(&first) {
        return Err(e);
    }
    let memberships = s.organization_memberships(org.id).await?.len() as u64;

    let mark = Timestamp::now();
    let before = writes(s, org.id, mark).await?;
    let t0 = Instant::now();
    let again = sync(true, false)
        .await
        .map_err(|e| StandInError::Stalled(e.to_string()))?;
    let resync_secs = t0.elapsed().as_secs_f64();
    if let Some(e) = failed(&again) {
        return Err(e);
    }
    // The run's own record (one audit event) is not a change to the directory.
    let resync_writes = (writes(s, org.id, mark).await? - before).saturating_sub(1);

    // The application is brought up to date before the changes are timed.
    let engine = Engine::new(store.clone(), EngineConfig::default());
    engine.start();
    let target = s
        .list_connections(org.id)
        .await?
        .into_iter()
        .find(|c| c.kind == ConnectionKind::ScimTarget)
        .ok_or_else(|| StandInError::Stalled("the target is gone".into()))?;
    let started = Instant::now();
    loop {
        let q = s.queue_counts(org.id, target.id).await?;
        if q.pending + q.in_flight + q.retry_wait == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(StandInError::Stalled(
                "the first delivery did not finish".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let t0 = Instant::now();
    let idle = sync(false, true)
        .await
        .map_err(|e| StandInError::Stalled(e.to_string()))?;
    let idle_incremental_secs = t0.elapsed().as_secs_f64();
    if let Some(e) = failed(&idle) {
        return Err(e);
    }

    // Users of the first tree (who the application has), changed one at a time: every other
    // change disables one, the rest remove one from its leaf group.
    let (tops, middles, leaves) = levels(o.groups);
    let in_first_tree: Vec<usize> = (0..o.users)
        .filter(|i| ((i % leaves) % middles) % tops == 0)
        .take(o.changes.max(1))
        .collect();
    let mut sync_times = Vec::new();
    let mut latencies = Vec::new();
    for (n, i) in in_first_tree.iter().enumerate() {
        let changed_at = Instant::now();
        {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Timestamp::now();
            if n % 2 == 0 {
                if let Some(u) = st.users.get_mut(*i) {
                    u.active = false;
                    u.modified = now;
                }
            } else if let Some(g) = st.groups.get_mut(tops + middles + i % leaves) {
                g.users.retain(|u| *u as usize != *i);
                g.modified = now;
            }
        }
        let seen = app.received().len();
        let t0 = Instant::now();
        let r = sync(false, true)
            .await
            .map_err(|e| StandInError::Stalled(e.to_string()))?;
        sync_times.push(t0.elapsed().as_secs_f64());
        if let Some(e) = failed(&r) {
            return Err(e);
        }
        let waited = Instant::now();
        loop {
            let arrived = app
                .received()
                .iter()
                .skip(seen)
                .find(|r| r.method != "GET" && r.path.contains("/Users"))
                .map(|r| r.at);
            if let Some(at) = arrived {
                latencies.push(at.duration_since(changed_at).as_secs_f64() * 1000.0);
                break;
            }
            if waited.elapsed() > Duration::from_secs(30) {
                return Err(StandInError::Stalled(format!(
                    "change {n} never reached the application"
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    engine.shutdown().await;
    Ok(SyncBenchReport {
        backend: s.backend().to_string(),
        users: o.users,
        groups: o.groups,
        memberships,
        full_secs,
        resync_secs,
        resync_writes,
        idle_incremental_secs,
        incremental_secs: percentiles(sync_times),
        change_to_target_ms: percentiles(latencies),
        peak_rss_mb: peak_rss_mb(),
    })
}
