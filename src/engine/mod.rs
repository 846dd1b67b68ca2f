//! The provisioning engine: embedded sync workers that carry queued operations to SCIM
//! targets, with connection health, events and metrics (docs/operations.md).
//!
//! Every process that opens the store for writing runs an [`Engine`]. Workers coordinate only
//! through the store (leases, per-resource ordering), so any number of processes can share a
//! PostgreSQL database; on PostgreSQL they also wake each other with NOTIFY.

pub mod backoff;
pub mod commands;
pub mod config;
pub mod delivery;
pub mod directory;
pub mod events;
pub mod health;
mod leases;
pub mod lookup;
pub mod metrics;
pub mod rate_limit;
pub mod reconcile;
pub mod saml;
pub mod sync;

mod worker;

pub use config::{EngineConfig, HealthThresholds};
pub use delivery::{Deliver, Delivery, DeliveryResult, NoopDelivery};
pub use events::{EngineEvent, EventBus};
pub use health::{HealthReport, HealthState};
pub use metrics::Metrics;

use crate::domain::{ConnectionId, TargetSettings, Timestamp};
use crate::store::{Channel, Store};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// An event as it crosses processes: who sent it, so a process ignores its own.
#[derive(Serialize, Deserialize)]
struct Envelope {
    from: Uuid,
    event: EngineEvent,
}

/// New queue work as it crosses processes: who queued it (a process ignores its own) and for
/// which organizations (only their workers wake). An empty or unreadable payload wakes every
/// worker.
#[derive(Serialize, Deserialize)]
pub(crate) struct QueueNotice {
    from: Uuid,
    orgs: Vec<crate::domain::OrganizationId>,
}

impl QueueNotice {
    /// The NOTIFY payload announcing work of `orgs` from `from` (an empty payload, which
    /// wakes every worker, should serialising ever fail).
    fn payload(from: Uuid, orgs: Vec<crate::domain::OrganizationId>) -> String {
        serde_json::to_string(&QueueNotice { from, orgs }).unwrap_or_default()
    }

    /// The payload announcing work of `org` from a party that is no engine (an operator's
    /// command, a reconcile): from a fresh id, so every engine, this process's included, wakes
    /// that organization's workers, and no other.
    pub(crate) fn for_organization(org: crate::domain::OrganizationId) -> String {
        Self::payload(Uuid::now_v7(), vec![org])
    }
}

/// Organizations named in one NOTIFY (PostgreSQL's payload limit is 8,000 bytes; a quoted id
/// takes 39).
const ORGS_PER_NOTICE: usize = 150;

/// Resolves once `stop` is true (without holding its lock across an await).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The engine of one process.
pub struct Engine {
    store: Arc<dyn Store>,
    config: EngineConfig,
    process_id: Uuid,
    events: EventBus,
    metrics: Arc<Metrics>,
    stats: Arc<health::StatsRecorder>,
    remote_wake: watch::Sender<u64>,
    stop: watch::Sender<bool>,
    refresh: Arc<Notify>,
    delivery_override: Option<Arc<dyn Deliver>>,
    health: Arc<Mutex<HashMap<ConnectionId, HealthReport>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Engine {
    /// An engine over `store`; nothing runs until [`Engine::start`].
    pub fn new(store: Arc<dyn Store>, config: EngineConfig) -> Self {
        let process_id = Uuid::now_v7();
        Self {
            store,
            config,
            process_id,
            events: EventBus::default(),
            metrics: Arc::new(Metrics::new()),
            stats: Arc::new(health::StatsRecorder::new(process_id)),
            remote_wake: watch::channel(0).0,
            stop: watch::channel(false).0,
            refresh: Arc::new(Notify::new()),
            delivery_override: None,
            health: Arc::new(Mutex::new(HashMap::new())),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Delivers with `delivery` instead of SCIM (benchmarks measure the queue alone).
    pub fn with_delivery(mut self, delivery: Arc<dyn Deliver>) -> Self {
        self.delivery_override = Some(delivery);
        self
    }

    /// The store the engine works on.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Live events (health, state changes, finished batches).
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// Prometheus metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The latest health of every connection this engine serves.
    pub fn health(&self) -> Vec<HealthReport> {
        let mut v: Vec<HealthReport> = self
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| (a.organization_id, &a.name).cmp(&(b.organization_id, &b.name)));
        v
    }

    /// The latest health assessment of one connection this engine serves (its supervisor
    /// re-assesses every target every few seconds), if there is one.
    pub fn health_of(&self, id: ConnectionId) -> Option<HealthReport> {
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Re-reads the connection list now (after an operator command in this process).
    pub fn refresh_connections(&self) {
        self.refresh.notify_one();
    }

    /// Starts the workers and the housekeeping tasks.
    pub fn start(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.push(tokio::spawn(supervise(
            self.shared(),
            self.stop.subscribe(),
            self.refresh.clone(),
        )));
        tasks.push(tokio::spawn(housekeep(
            self.store.clone(),
            self.config.clone(),
            self.stats.clone(),
            self.stop.subscribe(),
        )));
        tasks.push(tokio::spawn(reconcile_on_schedule(
            self.store.clone(),
            self.config.clone(),
            self.stop.subscribe(),
        )));
        tasks.push(tokio::spawn(sync_on_schedule(
            self.store.clone(),
            self.config.clone(),
            self.stop.subscribe(),
        )));
        tasks.push(tokio::spawn(assess_health(
            self.store.clone(),
            self.config.clone(),
            self.metrics.clone(),
            self.events.clone(),
            self.health.clone(),
            self.stop.subscribe(),
        )));
        if self.store.is_shared() {
            let (out_tx, out_rx) = mpsc::unbounded_channel();
            self.events.forward_to(out_tx);
            tasks.push(tokio::spawn(listen(
                self.process_id,
                self.store.clone(),
                self.remote_wake.clone(),
                self.events.clone(),
                self.stop.subscribe(),
            )));
            tasks.push(tokio::spawn(notify(
                self.process_id,
                self.store.clone(),
                out_rx,
                self.stop.subscribe(),
            )));
        }
    }

    /// Only watches, for a view that does not deliver (`scimdesk --no-workers`): on PostgreSQL,
    /// listens for other processes' events and queue changes; nothing is sent to targets.
    pub fn start_watching(&self) {
        if self.store.is_shared() {
            let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            tasks.push(tokio::spawn(listen(
                self.process_id,
                self.store.clone(),
                self.remote_wake.clone(),
                self.events.clone(),
                self.stop.subscribe(),
            )));
        }
    }

    /// Changes whenever another process announces new queue work (PostgreSQL NOTIFY), so a
    /// live view can re-read.
    pub fn remote_changes(&self) -> watch::Receiver<u64> {
        self.remote_wake.subscribe()
    }

    /// Stops every worker: requests in flight finish (up to the configured grace), their
    /// outcomes are recorded, and unfinished leases are given back.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
        if let Err(e) = self.stats.flush(self.store.as_ref()).await {
            tracing::warn!("final statistics not written: {e}");
        }
    }

    fn shared(&self) -> worker::Shared {
        worker::Shared {
            store: self.store.clone(),
            config: self.config.clone(),
            stats: self.stats.clone(),
            metrics: self.metrics.clone(),
            events: self.events.clone(),
            delivery_override: self.delivery_override.clone(),
        }
    }
}

/// Keeps one worker per SCIM target connection, following connections as they come and go.
async fn supervise(shared: worker::Shared, mut stop: watch::Receiver<bool>, refresh: Arc<Notify>) {
    let mut workers: HashMap<ConnectionId, worker::WorkerHandle> = HashMap::new();
    let interval = Duration::from_millis(shared.config.supervise_interval_ms.max(50));
    loop {
        match shared.store.target_connections().await {
            Ok(conns) => {
                let live: std::collections::HashSet<ConnectionId> =
                    conns.iter().map(|c| c.id).collect();
                for c in conns {
                    match workers.get(&c.id) {
                        Some(w) => {
                            w.connection.send_if_modified(|old| {
                                let changed = *old != c;
                                if changed {
                                    *old = c.clone();
                                }
                                changed
                            });
                        }
                        None => {
                            workers.insert(c.id, worker::spawn(shared.clone(), c));
                        }
                    }
                }
                let gone: Vec<ConnectionId> = workers
                    .keys()
                    .filter(|id| !live.contains(id))
                    .copied()
                    .collect();
                for id in gone {
                    if let Some(w) = workers.remove(&id) {
                        let _ = w.stop.send(true);
                        let _ = w.join.await;
                    }
                }
            }
            Err(e) => tracing::warn!("cannot list connections (will retry): {e}"),
        }
        tokio::select! {
            _ = stopped(&mut stop) => break,
            _ = refresh.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
    for w in workers.values() {
        let _ = w.stop.send(true);
    }
    for (_, w) in workers {
        let _ = w.join.await;
    }
}

/// Whether a scheduled run is due: `every` has passed since the last run's start (by any
/// process), and since this process last tried (a run that could not even be recorded is not
/// retried before its interval either).
fn due(
    last_started: Option<crate::domain::Timestamp>,
    every: Duration,
    tried: Option<&tokio::time::Instant>,
) -> bool {
    last_started.is_none_or(|s| s.after(every) <= crate::domain::Timestamp::now())
        && tried.is_none_or(|t| t.elapsed() >= every)
}

/// Syncs each source scimdesk pulls from on its schedule: in full when its
/// `full_sync_every_secs` has passed since its last full run by any process (the runs are in
/// the store), and in between incrementally every `incremental_sync_every_secs` (5 s unless
/// set) where the source has a change feed. A source whose feed cannot serve (the run says
/// why in its note) is not polled again until its next full sync. A claim in the store keeps
/// a second process from syncing the same source at the same time.
async fn sync_on_schedule(
    store: Arc<dyn Store>,
    config: EngineConfig,
    mut stop: watch::Receiver<bool>,
) {
    use crate::domain::ConnectionId;
    use std::collections::{HashMap, HashSet};
    // Intervals are whole seconds: checking more often than once a second finds nothing due.
    let check_every =
        Duration::from_millis(config.supervise_interval_ms.max(50)).max(Duration::from_secs(1));
    let actor = crate::domain::Actor::system("engine");
    let mut tried_full: HashMap<ConnectionId, tokio::time::Instant> = HashMap::new();
    let mut tried_incremental: HashMap<ConnectionId, tokio::time::Instant> = HashMap::new();
    let mut no_feed: HashSet<ConnectionId> = HashSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = tokio::time::sleep(check_every) => {}
        }
        let Ok(sources) = store.pulled_sources().await else {
            continue;
        };
        for c in sources {
            if c.state != crate::domain::ConnectionState::Active {
                continue;
            }
            let full_due = match sync::full_sync_interval(&c) {
                Some(every) => {
                    let last = store
                        .sync_runs(c.organization_id, c.id, 20)
                        .await
                        .ok()
                        .and_then(|runs| runs.into_iter().find(|r| !r.dry_run && r.full_sync))
                        .map(|r| r.started_at);
                    due(last, every, tried_full.get(&c.id))
                }
                None => false,
            };
            let incremental_due = !full_due
                && !no_feed.contains(&c.id)
                && sync::incremental_sync_interval(&c).is_some_and(|every| {
                    tried_incremental
                        .get(&c.id)
                        .is_none_or(|t| t.elapsed() >= every)
                });
            if !full_due && !incremental_due {
                continue;
            }
            let now = tokio::time::Instant::now();
            tried_incremental.insert(c.id, now);
            if full_due {
                tried_full.insert(c.id, now);
                no_feed.remove(&c.id);
            }
            let options = sync::SyncOptions {
                full: full_due,
                quiet: true,
                ..Default::default()
            };
            match sync::sync_source(store.as_ref(), &actor, c.organization_id, c.id, options).await
            {
                Ok(r) => {
                    if r.run.note.is_some() {
                        no_feed.insert(c.id);
                    }
                    match r.run.error {
                        None if r.counts.changed_nothing() => {
                            tracing::debug!(connection = %c.name, "scheduled sync: no change")
                        }
                        None => {
                            tracing::info!(connection = %c.name, full = r.run.full_sync, counts = ?r.counts, "scheduled sync")
                        }
                        Some(e) => {
                            tracing::warn!(connection = %c.name, "scheduled sync stopped: {e}")
                        }
                    }
                }
                Err(sync::SyncError::Busy(_)) => {
                    tracing::debug!(connection = %c.name, "another process is syncing it")
                }
                Err(e) => tracing::warn!(connection = %c.name, "scheduled sync not run: {e}"),
            }
        }
    }
}

/// Runs each target's full reconciliation when its `reconcile_every_secs` has passed since
/// the last run (by any process: the runs are in the store).
async fn reconcile_on_schedule(
    store: Arc<dyn Store>,
    config: EngineConfig,
    mut stop: watch::Receiver<bool>,
) {
    let check_every =
        Duration::from_millis(config.supervise_interval_ms.max(50)).max(Duration::from_secs(1));
    let actor = crate::domain::Actor::system("engine");
    // Runs that could not even be recorded (invalid settings) are not retried before their
    // interval either.
    let mut tried: std::collections::HashMap<crate::domain::ConnectionId, tokio::time::Instant> =
        Default::default();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = tokio::time::sleep(check_every) => {}
        }
        let Ok(targets) = store.target_connections().await else {
            continue;
        };
        for c in targets {
            let every = match TargetSettings::from_json(&c.settings.0) {
                Ok(s) if s.reconcile_every_secs > 0 => Duration::from_secs(s.reconcile_every_secs),
                _ => continue,
            };
            if c.state != crate::domain::ConnectionState::Active {
                continue;
            }
            let last = store
                .reconcile_runs(c.organization_id, c.id, 5)
                .await
                .ok()
                .and_then(|runs| runs.into_iter().find(|r| !r.dry_run))
                .map(|r| r.started_at);
            if !due(last, every, tried.get(&c.id)) {
                continue;
            }
            tried.insert(c.id, tokio::time::Instant::now());
            match reconcile::reconcile(store.as_ref(), &actor, c.organization_id, c.id, false).await
            {
                Ok(r) => {
                    tracing::info!(connection = %c.name, counts = ?r.counts, "scheduled reconciliation")
                }
                Err(e) => {
                    tracing::warn!(connection = %c.name, "scheduled reconciliation failed: {e}")
                }
            }
        }
    }
}

/// Writes statistics and prunes finished history and old statistics.
async fn housekeep(
    store: Arc<dyn Store>,
    config: EngineConfig,
    stats: Arc<health::StatsRecorder>,
    mut stop: watch::Receiver<bool>,
) {
    let flush_every = Duration::from_millis(config.stats_flush_ms.max(100));
    let prune_every = Duration::from_secs(60);
    let mut last_prune: Option<tokio::time::Instant> = None;
    let mut last_vacuum = tokio::time::Instant::now();
    let vacuum_every = Duration::from_secs(config.queue_vacuum_secs);
    loop {
        // Upkeep of the database's planner (statistics, and the queue's dead rows), which only
        // a shared store needs; `queue_vacuum_secs = 0` turns it off.
        if !vacuum_every.is_zero() {
            let vacuum = last_vacuum.elapsed() >= vacuum_every;
            if vacuum {
                last_vacuum = tokio::time::Instant::now();
            }
            if let Err(e) = store.maintain(vacuum).await {
                tracing::debug!("database upkeep failed: {e}");
            }
        }
        if let Err(e) = stats.flush(store.as_ref()).await {
            tracing::warn!("statistics not written (will retry): {e}");
        }
        if last_prune.is_none_or(|t| t.elapsed() >= prune_every) {
            last_prune = Some(tokio::time::Instant::now());
            let now = Timestamp::now();
            let keep = Duration::from_secs(config.retention_hours.saturating_mul(3600));
            let before = now.before(keep);
            loop {
                match store.prune_history(before, config.prune_batch.max(1)).await {
                    Ok(n) if n >= u64::from(config.prune_batch.max(1)) && !*stop.borrow() => {
                        continue;
                    }
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!("pruning history failed (will retry): {e}");
                        break;
                    }
                }
            }
            let day = now.before(Duration::from_secs(25 * 3_600));
            if let Err(e) = store.prune_connection_stats(day).await {
                tracing::warn!("pruning statistics failed: {e}");
            }
            // SAML assertion IDs are kept until their assertions would be refused as expired.
            if let Err(e) = store.forget_expired_assertions(now).await {
                tracing::warn!("pruning the SAML replay cache failed: {e}");
            }
        }
        tokio::select! {
            _ = stopped(&mut stop) => break,
            _ = tokio::time::sleep(flush_every) => {}
        }
    }
}

/// Re-assesses every target's health, for metrics, live views and events on change.
async fn assess_health(
    store: Arc<dyn Store>,
    config: EngineConfig,
    metrics: Arc<Metrics>,
    events: EventBus,
    cache: Arc<Mutex<HashMap<ConnectionId, HealthReport>>>,
    mut stop: watch::Receiver<bool>,
) {
    let every = Duration::from_millis(config.stats_flush_ms.clamp(200, 5_000));
    loop {
        if let Ok(conns) = store.target_connections().await {
            let mut fresh = HashMap::new();
            for c in conns {
                match health::connection_health(store.as_ref(), &c, &config.health).await {
                    Ok(report) => {
                        metrics.set_health(&report);
                        fresh.insert(c.id, report);
                    }
                    Err(e) => tracing::debug!("health of {} not assessed: {e}", c.name),
                }
            }
            let changed: Vec<HealthReport> = {
                let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
                let changed = fresh
                    .values()
                    .filter(|r| {
                        cache
                            .get(&r.connection_id)
                            .is_none_or(|old| old.state != r.state)
                    })
                    .cloned()
                    .collect();
                *cache = fresh;
                changed
            };
            for r in changed {
                events.publish(EngineEvent::Health(Box::new(r)));
            }
        }
        tokio::select! {
            _ = stopped(&mut stop) => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Listens for other processes' notices (listening again after a database restart).
async fn listen(
    me: Uuid,
    store: Arc<dyn Store>,
    wake: watch::Sender<u64>,
    events: EventBus,
    mut stop: watch::Receiver<bool>,
) {
    let woken = |wake: &watch::Sender<u64>| wake.send_modify(|n| *n = n.wrapping_add(1));
    loop {
        let mut listener = match store.listen().await {
            Ok(Some(l)) => l,
            Ok(None) => return, // one process uses this store: nobody else speaks
            Err(e) => {
                tracing::warn!("LISTEN unavailable (polling meanwhile): {e}");
                tokio::select! {
                    _ = stopped(&mut stop) => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        // Anything may have happened while not listening.
        store.queue_signal().wake_all();
        woken(&wake);
        loop {
            tokio::select! {
                _ = stopped(&mut stop) => return,
                n = listener.next() => match n {
                    Ok(Some(n)) if n.channel == Channel::Queue => {
                        match serde_json::from_str::<QueueNotice>(&n.payload) {
                            Ok(notice) if notice.from == me => continue,
                            Ok(notice) => {
                                for org in notice.orgs {
                                    store.queue_signal().wake(org);
                                }
                            }
                            Err(_) => store.queue_signal().wake_all(),
                        }
                        woken(&wake);
                    }
                    Ok(Some(n)) => {
                        if let Ok(env) = serde_json::from_str::<Envelope>(&n.payload)
                            && env.from != me
                        {
                            events.publish_remote(env.event);
                        }
                    }
                    // The connection was lost; the listener connects again on the next call.
                    Ok(None) => {
                        store.queue_signal().wake_all();
                        woken(&wake);
                    }
                    Err(e) => {
                        tracing::warn!("LISTEN connection failed (reconnecting): {e}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        break;
                    }
                }
            }
        }
    }
}

/// Tells other processes about this one's new queue work (at most every few milliseconds,
/// outside the writing transactions so commits never wait on the notification queue) and
/// forwards this process's state and health events.
async fn notify(
    me: Uuid,
    store: Arc<dyn Store>,
    mut outbox: mpsc::UnboundedReceiver<EngineEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let mut signal = store.queue_signal().subscribe_local();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            changed = signal.changed() => {
                if changed.is_err() {
                    return;
                }
                let orgs = store.queue_signal().take_unannounced();
                for orgs in orgs.chunks(ORGS_PER_NOTICE) {
                    let payload = QueueNotice::payload(me, orgs.to_vec());
                    if let Err(e) = store.announce(Channel::Queue, &payload).await {
                        tracing::debug!("announcing new work failed (other processes poll): {e}");
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Some(event) = outbox.recv() => {
                if let Ok(payload) = serde_json::to_string(&Envelope { from: me, event })
                    && payload.len() < 7_900
                    && let Err(e) = store.announce(Channel::Events, &payload).await
                {
                    tracing::debug!("announcing an event failed: {e}");
                }
            }
        }
    }
}
