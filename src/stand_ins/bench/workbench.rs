//! `scimdesk bench workbench`: the workbench over a large store — frame render time, key press
//! to screen, start-up to first frame, and memory.
//!
//! The store (50,000 users in 500 groups, 100,000 queued operations at two targets) is loaded
//! by this process; the workbench is then measured in a second process (`bench
//! workbench-probe`, hidden) that opens the same store, so its peak RSS is the workbench's
//! own and not the loader's. Frames are drawn into ratatui's `TestBackend` at 160×48: the same
//! drawing code as on a terminal, without the terminal's write time.

use super::{BenchResult, StandInError};
use super::{BenchStore, Percentiles, StoreLocation, peak_rss_mb, percentiles};
use crate::crypto::MasterKey;
use crate::domain::*;
use crate::store::{BulkRows, LoadableStore};
use crate::tui::keymap::Keymap;
use crate::tui::loader::Loader;
use crate::tui::state::{App, Effect, Workers};
use crate::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

/// What the probe measured.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ProbeReport {
    /// Opening the (migrated) store, making the workbench and drawing its first frame, ms.
    pub first_frame_ms: f64,
    /// Until the first frame with rows read from the store, ms.
    pub first_data_frame_ms: f64,
    /// Drawing a full frame of each pane with its rows, ms.
    pub render_ms: PercentilesOut,
    /// A key handled in memory (selection moves) until its frame is drawn, ms.
    pub key_local_ms: PercentilesOut,
    /// A key that needs a read (pane switch, page past the loaded rows) until the frame with
    /// the new rows is drawn, ms.
    pub key_read_ms: PercentilesOut,
    /// Per pane: median key-to-screen with a read, and the slowest frame drawn, ms.
    pub per_pane: Vec<PaneFigures>,
    /// Frames drawn.
    pub frames: usize,
    /// Peak RSS of the probe process, MB.
    pub peak_rss_mb: f64,
}

/// One pane's figures.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PaneFigures {
    /// The pane.
    pub pane: String,
    /// Median time from the key that opens it to the frame with its rows, ms.
    pub open_p50_ms: f64,
    /// The slowest frame of the pane, ms.
    pub render_max_ms: f64,
}

/// p50/p95/p99 that can be read back from JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PercentilesOut {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl From<Percentiles> for PercentilesOut {
    fn from(p: Percentiles) -> Self {
        Self {
            p50: p.p50,
            p95: p.p95,
            p99: p.p99,
        }
    }
}

/// The whole benchmark's figures.
#[derive(Debug, Serialize)]
pub struct WorkbenchReport {
    /// Which store.
    pub backend: String,
    /// Users in the store.
    pub users: usize,
    /// Operations queued.
    pub operations: u64,
    /// Seconds to load the store.
    pub load_secs: f64,
    /// The probe's figures.
    pub probe: ProbeReport,
}

/// Loads the store, runs the probe process on it, and returns both.
pub async fn workbench(
    postgres: Option<&str>,
    users: usize,
    operations: u64,
) -> BenchResult<WorkbenchReport> {
    let key = MasterKey::generate()?;
    let key_text = key.to_base64();
    let bench = BenchStore::open_with_key(postgres, key).await?;
    let t0 = Instant::now();
    let loaded = load(bench.store.clone(), users, operations).await;
    let load_secs = t0.elapsed().as_secs_f64();
    let result = match loaded {
        Ok(()) => probe_process(&bench.location(), key_text.expose()).await,
        Err(e) => Err(e),
    };
    bench.remove().await;
    Ok(WorkbenchReport {
        backend: if postgres.is_some() {
            "postgres".into()
        } else {
            "sqlite".into()
        },
        users,
        operations,
        load_secs,
        probe: result?,
    })
}

async fn load(store: Arc<dyn LoadableStore>, users: usize, operations: u64) -> BenchResult<()> {
    let actor = Actor::system("bench");
    let org = store.create_organization(&actor, "Bench Health").await?.id;
    store
        .create_connection(
            &actor,
            org,
            &NewConnection {
                name: "Workday IdP".into(),
                kind: ConnectionKind::ScimInbound,
                base_url: None,
                auth_method: AuthMethod::None,
                settings: json!({}),
            },
            None,
        )
        .await?;
    let mut targets = Vec::new();
    for name in ["Rostering", "Pharmacy"] {
        let c = store
            .create_connection(
                &actor,
                org,
                &NewConnection {
                    name: name.into(),
                    kind: ConnectionKind::ScimTarget,
                    base_url: Some(format!("https://{}.example/scim/v2", name.to_lowercase())),
                    auth_method: AuthMethod::None,
                    settings: json!({"user_scope": "all"}),
                },
                None,
            )
            .await?;
        // Paused, so nothing in this run tries to deliver.
        crate::engine::commands::pause(store.as_ref(), &actor, org, c.id, "benchmark").await?;
        targets.push(c.id);
    }
    let now = Timestamp::now();
    let groups: Vec<Group> = (0..500)
        .map(|g| super::directory_group(org, format!("Ward {g:03}"), now))
        .collect();
    let people: Vec<User> = (0..users)
        .map(|i| super::directory_user(org, i, json!({}), now))
        .collect();
    let memberships: Vec<(GroupId, UserId)> = people
        .iter()
        .enumerate()
        .map(|(i, u)| (groups[i % groups.len()].id, u.id))
        .collect();
    store
        .bulk_load(
            org,
            &BulkRows {
                users: &people,
                groups: &groups,
                memberships: &memberships,
                links: &[],
            },
        )
        .await?;
    let per_target = operations / targets.len() as u64;
    for t in &targets {
        store.bulk_enqueue(org, *t, per_target).await?;
    }
    Ok(())
}

async fn probe_process(location: &StoreLocation, key: &str) -> BenchResult<ProbeReport> {
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["bench", "workbench-probe"]);
    match location {
        StoreLocation::Schema { url, schema } => {
            cmd.args(["--postgres", url, "--schema", schema]);
        }
        StoreLocation::File(path) => {
            cmd.arg("--sqlite").arg(path);
        }
    }
    // The key reaches the child through its environment, never its arguments.
    cmd.env(crate::crypto::MASTER_KEY_ENV, key);
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(StandInError::Stalled(format!(
            "the probe failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| StandInError::Stalled(format!("the probe's report: {e}")))
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

/// The probe: opens the store at `location` with the key from the environment and measures
/// the workbench on it.
pub async fn probe(location: StoreLocation) -> BenchResult<ProbeReport> {
    let start = Instant::now();
    let key_text = std::env::var(crate::crypto::MASTER_KEY_ENV).map_err(|_| {
        StandInError::Missing("the probe needs the store's key in SCIMDESK_MASTER_KEY")
    })?;
    let master = MasterKey::from_base64(&key_text)?;
    let store = location.open(master).await?;
    let theme = Theme::load("default", false)?;
    let mut app = App::new(Keymap::default(), theme, "bench".into(), Workers::Off);
    let mut terminal = Terminal::new(TestBackend::new(160, 48))?;
    let mut frames = 0usize;
    let mut draw = |app: &mut App| -> BenchResult<f64> {
        let t = Instant::now();
        terminal.draw(|f| crate::tui::ui::draw(f, app))?;
        frames += 1;
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    };
    draw(&mut app)?;
    let first_frame_ms = start.elapsed().as_secs_f64() * 1000.0;
    let loader = Loader {
        store,
        actor: Actor::operator("bench"),
        guard: Default::default(),
        thresholds: Default::default(),
        engine: None,
        health_cache: Default::default(),
        grants: crate::domain::Grants::Everywhere(crate::domain::Access::Admin),
    };
    let loaded = loader.load(&app.load_request()).await?;
    app.on_loaded(loaded);
    draw(&mut app)?;
    let first_data_frame_ms = start.elapsed().as_secs_f64() * 1000.0;

    // Keys that need a read: each pane in turn, then paging past the loaded rows.
    let mut key_read = Vec::new();
    let mut render = Vec::new();
    let mut key_local = Vec::new();
    let mut per_pane: Vec<(Vec<f64>, f64)> = vec![(Vec::new(), 0.0); 6];
    for round in 0..10 {
        for (p, pane) in ['1', '2', '3', '4', '5', '6'].into_iter().enumerate() {
            let t = Instant::now();
            for effect in app.on_key(key(KeyCode::Char(pane))) {
                if let Effect::Load(req) = effect {
                    app.on_loaded(loader.load(&req).await?);
                }
            }
            draw(&mut app)?;
            let open = t.elapsed().as_secs_f64() * 1000.0;
            key_read.push(open);
            per_pane[p].0.push(open);
            // Frames of this pane, and keys handled in memory.
            for _ in 0..20 {
                let ms = draw(&mut app)?;
                per_pane[p].1 = per_pane[p].1.max(ms);
                render.push(ms);
            }
            for _ in 0..10 {
                let t = Instant::now();
                let code = if round % 2 == 0 {
                    KeyCode::Down
                } else {
                    KeyCode::Up
                };
                let effects = app.on_key(key(code));
                draw(&mut app)?;
                if effects.is_empty() {
                    key_local.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
    }
    // Page through the queue past its loaded rows (a read each time the window moves).
    app.on_key(key(KeyCode::Char('2')));
    app.on_loaded(loader.load(&app.load_request()).await?);
    for _ in 0..30 {
        let t = Instant::now();
        let effects = app.on_key(key(KeyCode::PageDown));
        let read = !effects.is_empty();
        for effect in effects {
            if let Effect::Load(req) = effect {
                app.on_loaded(loader.load(&req).await?);
            }
        }
        draw(&mut app)?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if read {
            key_read.push(ms);
        } else {
            key_local.push(ms);
        }
    }
    Ok(ProbeReport {
        first_frame_ms,
        first_data_frame_ms,
        render_ms: percentiles(render).into(),
        key_local_ms: percentiles(key_local).into(),
        key_read_ms: percentiles(key_read).into(),
        per_pane: per_pane
            .into_iter()
            .zip(crate::tui::state::Pane::ALL)
            .map(|((opens, max), pane)| PaneFigures {
                pane: pane.title().into(),
                open_p50_ms: percentiles(opens).p50,
                render_max_ms: max,
            })
            .collect(),
        frames,
        peak_rss_mb: peak_rss_mb(),
    })
}
