//! One connection's worker: claims due operations, runs them concurrently within the
//! connection's limits, and hands every outcome to a completer that records them in batches.

use super::backoff::{jitter, retry_delay};
use super::config::EngineConfig;
use super::delivery::{Deliver, Delivery, DeliveryResult, ScimDelivery};
use super::events::{EngineEvent, EventBus};
use super::health::StatsRecorder;
use super::leases::{self, HeldLeases};
use super::metrics::Metrics;
use super::rate_limit::RateLimiter;
use super::stopped;
use crate::domain::TargetSettings;
use crate::domain::*;
use crate::store::{StateChange, Store};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;
use uuid::Uuid;

/// How long a completer waits for more outcomes to record in the same transaction.
const COMPLETE_LINGER: Duration = Duration::from_millis(2);

/// How often a worker's claim looks at the whole queue rather than from its last position.
const FULL_SCAN_EVERY: Duration = Duration::from_secs(5);

/// What every worker of a process shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub store: Arc<dyn Store>,
    pub config: EngineConfig,
    pub stats: Arc<StatsRecorder>,
    pub metrics: Arc<Metrics>,
    pub events: EventBus,
    /// A delivery other than SCIM (benchmarks); `None` for the real one.
    pub delivery_override: Option<Arc<dyn Deliver>>,
}

/// Consecutive failures and recent success, for quarantine decisions.
#[derive(Debug)]
struct Tracker {
    consecutive_failures: u32,
    last_success: Instant,
}

/// A running worker; dropping the stop sender (or sending `true`) ends it.
pub(crate) struct WorkerHandle {
    pub connection: watch::Sender<Connection>,
    pub stop: watch::Sender<bool>,
    pub join: tokio::task::JoinHandle<()>,
}

/// Starts the worker of `connection`.
pub(crate) fn spawn(shared: Shared, connection: Connection) -> WorkerHandle {
    let (conn_tx, conn_rx) = watch::channel(connection);
    let (stop_tx, stop_rx) = watch::channel(false);
    let join = tokio::spawn(run(shared, conn_rx, stop_rx));
    WorkerHandle {
        connection: conn_tx,
        stop: stop_tx,
        join,
    }
}

/// The decision for one attempt's result.
pub(crate) fn decide(
    op: &Operation,
    result: &DeliveryResult,
    max_attempts: u32,
    config: &EngineConfig,
    now: Timestamp,
) -> (Disposition, Option<String>) {
    match result {
        DeliveryResult::Done(link) => (
            Disposition::Succeeded {
                link: Some(link.clone()),
            },
            None,
        ),
        DeliveryResult::Wait { until, reason } => (
            Disposition::WaitUntil {
                not_before: *until,
                reason: reason.clone(),
            },
            None,
        ),
        DeliveryResult::Permanent { error } => (Disposition::Failed, Some(error.clone())),
        DeliveryResult::Transient { error, retry_after } => {
            let used = u32::try_from(op.attempts - op.budget_from).unwrap_or(0);
            if used >= max_attempts.max(1) {
                return (
                    Disposition::Failed,
                    Some(format!("gave up after {used} attempts: {error}")),
                );
            }
            let delay = retry_delay(
                used.max(1),
                Duration::from_millis(config.backoff_base_ms),
                Duration::from_millis(config.backoff_max_ms),
                jitter(),
                *retry_after,
            );
            (
                Disposition::RetryAt {
                    not_before: now.after(delay),
                },
                Some(error.clone()),
            )
        }
    }
}

/// Why a worker cannot deliver to its connection yet.
#[derive(Debug, thiserror::Error)]
enum DeliverySetupError {
    /// The stored settings cannot be read.
    #[error("connection {connection} has invalid settings: {error}")]
    Settings {
        connection: String,
        error: crate::domain::SettingsError,
    },
    /// The target's client cannot be made.
    #[error(transparent)]
    Client(#[from] super::delivery::ClientSetupError),
}

async fn build_delivery(
    shared: &Shared,
    conn: &Connection,
) -> Result<(Arc<dyn Deliver>, TargetSettings), DeliverySetupError> {
    let settings = TargetSettings::from_json(&conn.settings.0).map_err(|error| {
        DeliverySetupError::Settings {
            connection: conn.name.clone(),
            error,
        }
    })?;
    if let Some(d) = &shared.delivery_override {
        return Ok((d.clone(), settings));
    }
    let d = ScimDelivery::new(shared.store.clone(), conn.clone(), settings.clone()).await?;
    Ok((Arc::new(d), settings))
}

async fn run(
    shared: Shared,
    mut conn_rx: watch::Receiver<Connection>,
    mut stop: watch::Receiver<bool>,
) {
    let owner = Uuid::now_v7();
    let store = shared.store.clone();
    // Wakes for this organization's work only, this process's or (through LISTEN) another's.
    let mut signal = store
        .queue_signal()
        .subscribe_org(conn_rx.borrow().organization_id);
    let (out_tx, out_rx) = mpsc::channel::<Outcome>(4096);
    // Two completers record outcomes in parallel transactions (a batch's cost is mostly fixed,
    // and one transaction at a time leaves the database's other core idle).
    let out_rx = Arc::new(tokio::sync::Mutex::new(out_rx));
    let held = Arc::new(HeldLeases::default());
    let renewer = tokio::spawn(leases::keep_renewed(
        store.clone(),
        owner,
        held.clone(),
        shared.config.lease(),
    ));
    let completers: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(complete(
                shared.clone(),
                out_rx.clone(),
                held.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let poll = Duration::from_millis(shared.config.poll_interval_ms.max(10));
    let tracker = Arc::new(Mutex::new(Tracker {
        consecutive_failures: 0,
        last_success: Instant::now(),
    }));
    let mut conn = conn_rx.borrow_and_update().clone();
    let mut delivery: Option<(Arc<dyn Deliver>, TargetSettings)> = None;
    let mut limiter = Arc::new(RateLimiter::new(0.0, 0));
    let mut sem = Arc::new(Semaphore::new(1));
    let mut next_probe = Instant::now();
    let mut config_error_logged = false;
    let mut low_water: Option<(Timestamp, i64)> = None;
    let mut last_full_scan = Instant::now();
    loop {
        if *stop.borrow() {
            break;
        }
        // Compare rather than ask `has_changed`: waiting in `idle` marks changes as seen.
        let fresh = conn_rx.borrow_and_update().clone();
        if fresh != conn {
            if fresh.updated_at != conn.updated_at
                || fresh.settings != conn.settings
                || fresh.base_url != conn.base_url
            {
                delivery = None;
            }
            if fresh.state == ConnectionState::Quarantined
                && conn.state != ConnectionState::Quarantined
            {
                next_probe =
                    Instant::now() + Duration::from_secs(shared.config.health.probe_interval_secs);
            }
            conn = fresh;
        }
        if conn.state == ConnectionState::Paused {
            idle(&mut stop, &mut conn_rx, &mut signal, poll * 10).await;
            continue;
        }
        if delivery.is_none() {
            match build_delivery(&shared, &conn).await {
                Ok((d, settings)) => {
                    limiter = Arc::new(RateLimiter::new(settings.rate_per_sec, settings.burst));
                    sem = Arc::new(Semaphore::new(attempts_in_flight(&settings)));
                    delivery = Some((d, settings));
                    config_error_logged = false;
                }
                Err(e) => {
                    if !config_error_logged {
                        tracing::warn!(connection = %conn.id, "cannot deliver: {e}");
                        config_error_logged = true;
                    }
                    idle(&mut stop, &mut conn_rx, &mut signal, poll * 5).await;
                    continue;
                }
            }
        }
        let Some((deliver, settings)) = delivery.clone() else {
            continue;
        };
        let quarantined = conn.state == ConnectionState::Quarantined;
        if quarantined && Instant::now() < next_probe {
            let wait = next_probe
                .saturating_duration_since(Instant::now())
                .min(poll * 10);
            idle(&mut stop, &mut conn_rx, &mut signal, wait).await;
            continue;
        }
        // Claim in batches: wait until half a batch of permits is free rather than claiming
        // one operation per finished one (each claim is a transaction).
        let want = attempts_in_flight(&settings).min(shared.config.claim_batch.max(1) as usize);
        let threshold = if quarantined { 1 } else { (want / 2).max(1) };
        let free = sem.available_permits();
        if free < threshold {
            tokio::select! {
                p = sem.clone().acquire_many_owned(threshold as u32) => drop(p),
                _ = stop.changed() => {}
            }
            continue;
        }
        let limit = if quarantined {
            1
        } else {
            free.min(shared.config.claim_batch.max(1) as usize) as u32
        };
        signal.borrow_and_update();
        // Look from where the last claim started; from the beginning every few seconds (and
        // after finding nothing), for work that was skipped while locked or blocked.
        if last_full_scan.elapsed() >= FULL_SCAN_EVERY {
            low_water = None;
        }
        if low_water.is_none() {
            last_full_scan = Instant::now();
        }
        let claimed = match store
            .claim_operations(conn.id, owner, shared.config.lease(), limit, low_water)
            .await
        {
            Ok(ops) => {
                low_water = ops.iter().map(|o| (o.not_before, o.seq)).min();
                ops
            }
            Err(e) => {
                tracing::warn!(connection = %conn.id, "claiming failed (will retry): {e}");
                idle(&mut stop, &mut conn_rx, &mut signal, poll).await;
                continue;
            }
        };
        if quarantined {
            next_probe =
                Instant::now() + Duration::from_secs(shared.config.health.probe_interval_secs);
        }
        if claimed.is_empty() {
            idle(&mut stop, &mut conn_rx, &mut signal, poll).await;
            continue;
        }
        held.hold(&claimed);
        // Take the batch's slots here (so the next claim sees them taken), then prepare and
        // start it in its own task: the claim loop is serial, and waiting here for the batch's
        // reads left the next claim waiting behind them.
        let mut permits = Vec::with_capacity(claimed.len());
        for _ in 0..claimed.len() {
            match sem.clone().acquire_owned().await {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        let task = Attempt {
            shared: shared.clone(),
            conn: conn.clone(),
            settings: settings.clone(),
            deliver: deliver.clone(),
            limiter: limiter.clone(),
            tracker: tracker.clone(),
            out: out_tx.clone(),
            owner,
            stop: stop.clone(),
        };
        tokio::spawn(async move {
            task.deliver.prepare(&claimed).await;
            for (op, permit) in claimed.into_iter().zip(permits) {
                let task = task.clone();
                tokio::spawn(async move {
                    task.run(op).await;
                    drop(permit);
                });
            }
        });
    }
    // Shutdown: let requests in flight finish (up to the grace), then record and give back.
    let grace = Duration::from_millis(shared.config.shutdown_grace_ms);
    let all = u32::try_from(
        delivery
            .as_ref()
            .map(|(_, s)| attempts_in_flight(s))
            .unwrap_or(1),
    )
    .unwrap_or(1);
    let _ = tokio::time::timeout(grace, sem.acquire_many(all)).await;
    drop(out_tx);
    for c in completers {
        let _ = c.await;
    }
    renewer.abort();
    if let Err(e) = store.release_leases(owner).await {
        tracing::warn!("could not give leases back (they expire by themselves): {e}");
    }
}

/// Attempts in flight per request slot. The connection's concurrency limits *requests* (its
/// SCIM client holds a slot per request); an attempt spends much of its time outside a request
/// (reading the store, waiting for a shared look-up, recording), so with only one attempt per
/// slot the target saw far fewer requests at once than it allows. Ordering is unaffected: the
/// claim never hands out two operations of one resource at once.
const ATTEMPTS_PER_REQUEST_SLOT: usize = 4;

/// Attempts a connection runs at once.
fn attempts_in_flight(settings: &TargetSettings) -> usize {
    settings.concurrency() * ATTEMPTS_PER_REQUEST_SLOT
}

/// Waits for anything that could mean new work, or `max`.
async fn idle(
    stop: &mut watch::Receiver<bool>,
    conn: &mut watch::Receiver<Connection>,
    signal: &mut watch::Receiver<u64>,
    max: Duration,
) {
    tokio::select! {
        _ = stop.changed() => {}
        _ = conn.changed() => {}
        _ = signal.changed() => {}
        _ = tokio::time::sleep(max) => {}
    }
}

/// One operation's attempt, run in its own task.
#[derive(Clone)]
struct Attempt {
    shared: Shared,
    conn: Connection,
    settings: TargetSettings,
    deliver: Arc<dyn Deliver>,
    limiter: Arc<RateLimiter>,
    tracker: Arc<Mutex<Tracker>>,
    out: mpsc::Sender<Outcome>,
    owner: Uuid,
    stop: watch::Receiver<bool>,
}

impl Attempt {
    async fn run(mut self, op: Operation) {
        // Shutting down before the request is sent gives the operation back untouched.
        let released = tokio::select! {
            _ = self.limiter.acquire() => false,
            _ = stopped(&mut self.stop) => true,
        };
        if released {
            let _ = self
                .out
                .send(Outcome {
                    operation: op,
                    lease_owner: self.owner,
                    attempt: None,
                    disposition: Disposition::Released,
                })
                .await;
            return;
        }
        let started_at = Timestamp::now();
        let t0 = Instant::now();
        let Delivery {
            result,
            http_status,
            request,
            response,
        } = self.deliver.deliver(&op).await;
        let took = t0.elapsed();
        let now = Timestamp::now();
        let (disposition, error) = decide(
            &op,
            &result,
            self.settings.max_attempts,
            &self.shared.config,
            now,
        );
        let transient = matches!(result, DeliveryResult::Transient { .. });
        if let DeliveryResult::Transient {
            retry_after: Some(ra),
            ..
        } = &result
            && let Some(until) = Instant::now().checked_add(*ra)
        {
            self.limiter.hold_until(until);
        }
        let counts_as_request = http_status.is_some() || !request.is_empty() || transient;
        let success = matches!(
            result,
            DeliveryResult::Done(_) | DeliveryResult::Wait { .. }
        );
        if counts_as_request {
            self.shared
                .stats
                .record(op.organization_id, op.connection_id, now, took, success);
            let outcome = match &disposition {
                Disposition::Succeeded { .. } => "succeeded",
                Disposition::Failed => "failed",
                _ => "retry",
            };
            self.shared.metrics.observe_attempt(
                &op.organization_id.to_string(),
                &self.conn.name,
                outcome,
                took.as_secs_f64(),
            );
        }
        self.track(transient, success).await;
        // A wait sent nothing that failed: it is not an attempt.
        let waited = matches!(disposition, Disposition::WaitUntil { .. }) && http_status.is_none();
        let attempt = (!waited).then(|| Attempt_ {
            operation_id: op.id,
            attempt_no: op.attempts,
            organization_id: op.organization_id,
            connection_id: op.connection_id,
            started_at,
            duration_ms: i64::try_from(took.as_millis()).unwrap_or(i64::MAX),
            http_status: http_status.map(i32::from),
            error,
            request_excerpt: (!request.is_empty()).then(|| request.join("\n")),
            response_excerpt: response,
        });
        let _ = self
            .out
            .send(Outcome {
                operation: op,
                lease_owner: self.owner,
                attempt,
                disposition,
            })
            .await;
    }

    /// Updates the failure streak; quarantines a connection that keeps failing and brings a
    /// quarantined one back on its first success.
    async fn track(&self, transient: bool, success: bool) {
        let t = &self.shared.config.health;
        let quarantine_now = {
            let mut tr = self.tracker.lock().unwrap_or_else(|e| e.into_inner());
            if transient {
                tr.consecutive_failures += 1;
            } else if success {
                tr.consecutive_failures = 0;
                tr.last_success = Instant::now();
            }
            transient
                && tr.consecutive_failures >= t.quarantine_after_failures.max(1)
                && tr.last_success.elapsed() >= Duration::from_secs(t.quarantine_after_secs)
        };
        let store = &self.shared.store;
        let actor = Actor::system("engine");
        let (from, to, action, reason) =
            if quarantine_now && self.conn.state == ConnectionState::Active {
                (
                    ConnectionState::Active,
                    ConnectionState::Quarantined,
                    "connection.quarantine",
                    format!(
                        "{} transient failures in a row and no success for {}s or more",
                        t.quarantine_after_failures, t.quarantine_after_secs
                    ),
                )
            } else if success && self.conn.state == ConnectionState::Quarantined {
                (
                    ConnectionState::Quarantined,
                    ConnectionState::Active,
                    "connection.recover",
                    "a probe succeeded".to_string(),
                )
            } else {
                return;
            };
        match store
            .set_connection_state(
                &actor,
                self.conn.organization_id,
                self.conn.id,
                &StateChange {
                    from: &[from],
                    to,
                    action,
                    reason: &reason,
                },
            )
            .await
        {
            Ok(Some(_)) => {
                tracing::info!(connection = %self.conn.id, "{action}: {reason}");
                self.shared
                    .events
                    .publish(EngineEvent::ConnectionStateChanged {
                        organization_id: self.conn.organization_id,
                        connection_id: self.conn.id,
                        state: to,
                        reason,
                    });
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(connection = %self.conn.id, "cannot record {action}: {e}"),
        }
    }
}

use crate::domain::Attempt as Attempt_;

/// Records outcomes in batches, retrying while the store is unreachable (an outcome is only
/// lost if the process ends first, and then the lease expires and the work is redone).
async fn complete(
    shared: Shared,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Outcome>>>,
    held: Arc<HeldLeases>,
    stop: watch::Receiver<bool>,
) {
    let max = shared.config.complete_batch.max(1);
    let mut batch: Vec<Outcome> = Vec::with_capacity(max);
    loop {
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { break };
            batch.push(first);
            // Gather what arrives within a moment: a transaction's cost is mostly fixed, and
            // outcomes of a busy connection come a few at a time.
            let until = Instant::now() + COMPLETE_LINGER;
            while batch.len() < max {
                match rx.try_recv() {
                    Ok(o) => batch.push(o),
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        match tokio::time::timeout_at(until, rx.recv()).await {
                            Ok(Some(o)) => batch.push(o),
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
            }
        }
        let mut delay = Duration::from_millis(100);
        let mut failing_since: Option<Instant> = None;
        loop {
            match shared.store.complete_operations(&batch).await {
                Ok(_) => break,
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if *stop.borrow()
                        && since.elapsed() > Duration::from_millis(shared.config.shutdown_grace_ms)
                    {
                        tracing::warn!(
                            "giving up recording {} outcomes at shutdown (their leases expire and the work is redone): {e}",
                            batch.len()
                        );
                        break;
                    }
                    tracing::warn!("recording {} outcomes failed (retrying): {e}", batch.len());
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        held.let_go(batch.iter().map(|o| o.operation.id));
        publish_finished(&shared.events, &batch);
        batch.clear();
    }
}

fn publish_finished(events: &EventBus, batch: &[Outcome]) {
    let mut per: std::collections::HashMap<(OrganizationId, ConnectionId), (u64, u64, u64)> =
        Default::default();
    for o in batch {
        let e = per
            .entry((o.operation.organization_id, o.operation.connection_id))
            .or_default();
        match o.disposition {
            Disposition::Succeeded { .. } => e.0 += 1,
            Disposition::RetryAt { .. } | Disposition::WaitUntil { .. } => e.1 += 1,
            Disposition::Failed => e.2 += 1,
            Disposition::Released => {}
        }
    }
    for ((organization_id, connection_id), (succeeded, retrying, failed)) in per {
        events.publish(EngineEvent::OperationsFinished {
            organization_id,
            connection_id,
            succeeded,
            retrying,
            failed,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Json;
    use serde_json::json;

    fn op(attempts: i32, budget_from: i32) -> Operation {
        let now = Timestamp::now();
        Operation {
            id: OperationId::new(),
            seq: 1,
            organization_id: OrganizationId::new(),
            connection_id: ConnectionId::new(),
            resource_type: ResourceType::User,
            resource_id: Uuid::now_v7(),
            action: OperationAction::Create,
            payload: Json(json!({})),
            state: OperationState::InFlight,
            attempts,
            budget_from,
            not_before: now,
            lease_until: None,
            last_status: None,
            last_error: None,
            note: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn transient_failures_back_off_then_give_up() {
        let cfg = EngineConfig::default();
        let now = Timestamp::now();
        let t = DeliveryResult::Transient {
            error: "503".into(),
            retry_after: None,
        };
        let (d, e) = decide(&op(1, 0), &t, 3, &cfg, now);
        match d {
            Disposition::RetryAt { not_before } => {
                let wait = not_before.since(now);
                assert!(
                    wait >= Duration::from_millis(500) && wait <= Duration::from_secs(1),
                    "{wait:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.as_deref(), Some("503"));
        let (d, e) = decide(&op(3, 0), &t, 3, &cfg, now);
        assert_eq!(d, Disposition::Failed);
        assert!(e.unwrap().starts_with("gave up after 3 attempts"));
        // An operator's retry starts a fresh budget.
        assert!(matches!(
            decide(&op(4, 3), &t, 3, &cfg, now).0,
            Disposition::RetryAt { .. }
        ));
    }

    #[test]
    fn retry_after_sets_the_next_attempt() {
        let cfg = EngineConfig::default();
        let now = Timestamp::now();
        let t = DeliveryResult::Transient {
            error: "429".into(),
            retry_after: Some(Duration::from_secs(30)),
        };
        let Disposition::RetryAt { not_before } = decide(&op(1, 0), &t, 5, &cfg, now).0 else {
            panic!()
        };
        assert_eq!(not_before.since(now), Duration::from_secs(30));
    }

    #[test]
    fn permanent_errors_and_waits() {
        let cfg = EngineConfig::default();
        let now = Timestamp::now();
        let p = DeliveryResult::Permanent {
            error: "400 invalidValue".into(),
        };
        assert_eq!(decide(&op(1, 0), &p, 5, &cfg, now).0, Disposition::Failed);
        let w = DeliveryResult::Wait {
            until: now,
            reason: "member".into(),
        };
        assert_eq!(
            decide(&op(9, 0), &w, 5, &cfg, now).0,
            Disposition::WaitUntil {
                not_before: now,
                reason: "member".into()
            }
        );
    }
}
