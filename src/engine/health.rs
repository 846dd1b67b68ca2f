//! Connection health: what operators see first. Computed from the store (queue counts and
//! every process's delivery statistics), so any process — the CLI included — reports the same.

use super::config::HealthThresholds;
use crate::domain::*;
use crate::store::{Store, StoreResult};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use uuid::Uuid;

/// The states a connection can be in, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Work flows; few errors.
    Healthy,
    /// Work flows, but many attempts fail or operations wait for an operator.
    Degraded,
    /// Work is waiting and nothing has succeeded for a while.
    Stalled,
    /// Sustained failures: only periodic probes are sent until the target recovers.
    Quarantined,
    /// Stopped by an operator.
    Paused,
}

impl HealthState {
    /// The word operators see.
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
            HealthState::Stalled => "stalled",
            HealthState::Quarantined => "quarantined",
            HealthState::Paused => "paused",
        }
    }

    /// Every state, for metrics.
    pub const ALL: [HealthState; 5] = [
        HealthState::Healthy,
        HealthState::Degraded,
        HealthState::Stalled,
        HealthState::Quarantined,
        HealthState::Paused,
    ];
}

impl std::fmt::Display for HealthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error rate over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowRate {
    /// Attempts in the window.
    pub attempts: u64,
    /// Failed attempts in the window.
    pub failures: u64,
}

impl WindowRate {
    /// Failures per attempt (0 with no attempts).
    pub fn rate(&self) -> f64 {
        if self.attempts == 0 {
            0.0
        } else {
            self.failures as f64 / self.attempts as f64
        }
    }
}

/// Everything known about one connection's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The tenant.
    pub organization_id: OrganizationId,
    /// The connection.
    pub connection_id: ConnectionId,
    /// Its name.
    pub name: String,
    /// The verdict.
    pub state: HealthState,
    /// Why, in words.
    pub reason: String,
    /// Last successful attempt.
    pub last_success_at: Option<Timestamp>,
    /// Last attempt.
    pub last_attempt_at: Option<Timestamp>,
    /// Errors over the last 5 minutes.
    pub errors_5m: WindowRate,
    /// Errors over the last hour.
    pub errors_1h: WindowRate,
    /// Errors over the last 24 hours.
    pub errors_24h: WindowRate,
    /// Unfinished work.
    pub queue: QueueCounts,
    /// Age of the oldest unfinished operation, in seconds.
    pub oldest_pending_secs: Option<u64>,
    /// Median attempt latency over the last hour (bucket bound, ms).
    pub p50_ms: Option<u64>,
    /// 95th percentile attempt latency over the last hour (bucket bound, ms).
    pub p95_ms: Option<u64>,
    /// The latest full reconciliation.
    #[serde(default)]
    pub last_reconcile: Option<ReconcileSummary>,
    /// What is wrong with its policy though nothing fails: a target bound to no role
    /// receives nobody.
    pub warning: Option<String>,
}

/// The latest full reconciliation of a target, as health reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconcileSummary {
    /// When it finished.
    pub finished_at: Timestamp,
    /// Whether it only looked.
    pub dry_run: bool,
    /// Drift it found (corrected, recreated, created, removed, adopted, flagged, deleted).
    pub drift: u64,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// Judges a connection from its state, queue and statistics at `now`.
pub fn assess(
    connection: &Connection,
    queue: QueueCounts,
    stats: &[ConnectionStats],
    thresholds: &HealthThresholds,
    now: Timestamp,
) -> HealthReport {
    let window = |d: Duration| {
        let since = now.before(d);
        stats
            .iter()
            // A minute row counts if any of it is inside the window.
            .filter(|s| s.minute.after(Duration::from_secs(60)) > since)
            .fold(WindowRate::default(), |mut w, s| {
                w.attempts += u64::try_from(s.attempts).unwrap_or(0);
                w.failures += u64::try_from(s.failures).unwrap_or(0);
                w
            })
    };
    let errors_5m = window(Duration::from_secs(300));
    let errors_1h = window(Duration::from_secs(3_600));
    let errors_24h = window(Duration::from_secs(86_400));
    let mut hist = LatencyHistogram::default();
    let hour_ago = now.before(Duration::from_secs(3_600));
    for s in stats.iter().filter(|s| s.minute >= hour_ago) {
        hist.merge_json(&s.latency_buckets);
    }
    let last_success_at = stats.iter().filter_map(|s| s.last_success_at).max();
    let last_attempt_at = stats.iter().filter_map(|s| s.last_attempt_at).max();
    let oldest_pending_secs = queue.oldest_pending.map(|t| now.since(t).as_secs());
    let stall = Duration::from_secs(thresholds.stall_after_secs);
    let waiting = queue.pending + queue.in_flight + queue.retry_wait;
    let no_recent_success = last_success_at.is_none_or(|t| now.since(t) >= stall);
    let (state, reason) = if connection.state == ConnectionState::Paused {
        (HealthState::Paused, "paused by an operator".to_string())
    } else if connection.state == ConnectionState::Quarantined {
        (
            HealthState::Quarantined,
            "sustained failures; probing periodically".to_string(),
        )
    } else if waiting > 0
        && oldest_pending_secs.is_some_and(|a| a >= stall.as_secs())
        && no_recent_success
    {
        (
            HealthState::Stalled,
            format!(
                "{waiting} operations waiting, oldest {}s, no success for {}s or more",
                oldest_pending_secs.unwrap_or(0),
                stall.as_secs()
            ),
        )
    } else if errors_5m.attempts >= thresholds.degraded_min_attempts
        && errors_5m.rate() * 100.0 > f64::from(thresholds.degraded_error_percent)
    {
        (
            HealthState::Degraded,
            format!(
                "{:.0}% of {} attempts failed in 5 minutes",
                errors_5m.rate() * 100.0,
                errors_5m.attempts
            ),
        )
    } else if queue.failed > 0 {
        (
            HealthState::Degraded,
            format!("{} failed operations wait for an operator", queue.failed),
        )
    } else {
        (HealthState::Healthy, "ok".to_string())
    };
    HealthReport {
        organization_id: connection.organization_id,
        connection_id: connection.id,
        name: connection.name.clone(),
        state,
        reason,
        last_success_at,
        last_attempt_at,
        errors_5m,
        errors_1h,
        errors_24h,
        queue,
        oldest_pending_secs,
        p50_ms: hist.quantile_ms(0.5),
        p95_ms: hist.quantile_ms(0.95),
        last_reconcile: None,
        warning: crate::domain::TargetSettings::from_json(&connection.settings.0)
            .ok()
            .and_then(|s| s.receives_nobody())
            .map(str::to_string),
    }
}

/// Reads what [`assess`] needs from the store and judges the connection.
pub async fn connection_health(
    store: &dyn Store,
    connection: &Connection,
    thresholds: &HealthThresholds,
) -> StoreResult<HealthReport> {
    let now = Timestamp::now();
    let day_ago = now.before(Duration::from_secs(86_400));
    let queue = store
        .queue_counts(connection.organization_id, connection.id)
        .await?;
    let stats = store
        .connection_stats(connection.organization_id, connection.id, day_ago)
        .await?;
    let mut report = assess(connection, queue, &stats, thresholds, now);
    report.last_reconcile = store
        .reconcile_runs(connection.organization_id, connection.id, 1)
        .await?
        .into_iter()
        .next()
        .map(|r| ReconcileSummary {
            finished_at: r.finished_at,
            dry_run: r.dry_run,
            drift: [
                "corrected",
                "recreated",
                "created",
                "removed",
                "adopted",
                "flagged",
                "deleted_unknown",
            ]
            .iter()
            .filter_map(|k| r.counts.0.get(*k).and_then(serde_json::Value::as_u64))
            .sum(),
            error: r.error,
        });
    // Settings that do not compile stop every delivery; a reconciliation that could not
    // finish means drift goes unrepaired. Both outrank "healthy".
    if connection.kind == ConnectionKind::ScimTarget && report.state == HealthState::Healthy {
        let roles = store.list_roles(connection.organization_id).await?;
        if let Err(e) = crate::policy::target::TargetPolicy::new(connection, &roles) {
            report.state = HealthState::Degraded;
            report.reason = format!("invalid settings: {e}");
        } else if let Some(e) = report
            .last_reconcile
            .as_ref()
            .and_then(|r| r.error.as_ref())
        {
            report.state = HealthState::Degraded;
            report.reason = format!("the last full reconciliation failed: {e}");
        }
    }
    Ok(report)
}

/// The health of a source scimdesk pulls from, judged from its sync runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceHealth {
    /// The tenant.
    pub organization_id: OrganizationId,
    /// The connection.
    pub connection_id: ConnectionId,
    /// Its name.
    pub name: String,
    /// The verdict.
    pub state: HealthState,
    /// Why, in words.
    pub reason: String,
    /// When the last sync (of any outcome, dry runs aside) finished.
    pub last_sync_at: Option<Timestamp>,
    /// When the last successful sync finished.
    pub last_success_at: Option<Timestamp>,
    /// Why the last sync stopped, if it did.
    pub last_error: Option<String>,
    /// Syncs over the last 24 hours, and how many of them failed.
    pub runs_24h: WindowRate,
    /// Why the source is synced in full only, when its change feed cannot serve (admin
    /// events off, a server that does not filter on `meta.lastModified`).
    pub full_only: Option<String>,
    /// The latest failed runs (for a SAML source: refused logins), newest first, each with
    /// its reason.
    #[serde(default)]
    pub recent_errors: Vec<RunError>,
}

/// A failed run and why, as health lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunError {
    /// When it ended.
    pub at: Timestamp,
    /// Why.
    pub reason: String,
}

/// How many failed runs health lists.
const RECENT_ERRORS: usize = 10;

/// A SAML source's verdict: its logins, accepted or refused; it is never read, so it cannot
/// stall, and one refused login (a user's stale bookmark) is not a broken source.
fn assess_logins(
    connection: &Connection,
    last: Option<&crate::domain::SyncRun>,
    day: &WindowRate,
) -> (HealthState, String) {
    if connection.state == ConnectionState::Paused {
        return (
            HealthState::Paused,
            "paused by an operator: logins are refused".to_string(),
        );
    }
    let Some(last) = last else {
        return (HealthState::Healthy, "no login yet".to_string());
    };
    if day.attempts >= 4 && day.failures * 2 >= day.attempts {
        return (
            HealthState::Degraded,
            format!(
                "{} of {} logins refused in 24 h; the last: {}",
                day.failures,
                day.attempts,
                last.error.as_deref().unwrap_or("accepted")
            ),
        );
    }
    match &last.error {
        Some(e) => (
            HealthState::Healthy,
            format!("the last login was refused: {e}"),
        ),
        None => (HealthState::Healthy, "logins accepted".to_string()),
    }
}

/// How many intervals without a successful sync make a source stalled.
pub const STALLED_AFTER_INTERVALS: u32 = 3;

/// Judges a source from its latest runs (newest first), whether a deletion guard exception
/// waits for an operator, and its full-sync interval, at `now`. Pure.
pub fn assess_source(
    connection: &Connection,
    runs: &[crate::domain::SyncRun],
    guard_open: bool,
    every: Option<Duration>,
    now: Timestamp,
) -> SourceHealth {
    let real: Vec<&crate::domain::SyncRun> = runs.iter().filter(|r| !r.dry_run).collect();
    let last = real.first().copied();
    let last_success = real.iter().find(|r| r.error.is_none()).copied();
    let day_ago = now.before(Duration::from_secs(86_400));
    let recent: Vec<_> = real.iter().filter(|r| r.finished_at >= day_ago).collect();
    let runs_24h = WindowRate {
        attempts: recent.len() as u64,
        failures: recent.iter().filter(|r| r.error.is_some()).count() as u64,
    };
    let recent_errors = real
        .iter()
        .filter_map(|r| {
            r.error.as_ref().map(|e| RunError {
                at: r.finished_at,
                reason: e.clone(),
            })
        })
        .take(RECENT_ERRORS)
        .collect();
    let (state, reason) = if connection.kind == crate::domain::ConnectionKind::Saml {
        assess_logins(connection, last, &runs_24h)
    } else if connection.state == ConnectionState::Paused {
        (HealthState::Paused, "paused by an operator".to_string())
    } else if guard_open {
        (
            HealthState::Degraded,
            "the deletion guard stopped a sync: an exception waits for an operator".to_string(),
        )
    } else if let Some(e) = last.and_then(|r| r.error.as_ref()) {
        (HealthState::Degraded, format!("the last sync failed: {e}"))
    } else if last.is_none() {
        (HealthState::Degraded, "never synced yet".to_string())
    } else if let (Some(every), Some(ok)) = (every, last_success)
        && ok.finished_at.after(every * STALLED_AFTER_INTERVALS) < now
    {
        (
            HealthState::Stalled,
            format!(
                "no successful sync for {} s ({STALLED_AFTER_INTERVALS} intervals)",
                now.since(ok.finished_at).as_secs()
            ),
        )
    } else if let Some(why) = last.and_then(|r| r.note.as_ref()) {
        (HealthState::Healthy, format!("syncing in full only: {why}"))
    } else {
        (HealthState::Healthy, "syncing".to_string())
    };
    SourceHealth {
        organization_id: connection.organization_id,
        connection_id: connection.id,
        name: connection.name.clone(),
        state,
        reason,
        last_sync_at: last.map(|r| r.finished_at),
        last_success_at: last_success.map(|r| r.finished_at),
        last_error: last.and_then(|r| r.error.clone()),
        runs_24h,
        full_only: last.and_then(|r| r.note.clone()),
        recent_errors,
    }
}

/// Reads what [`assess_source`] needs and judges the source.
pub async fn source_health(
    store: &dyn Store,
    connection: &Connection,
) -> StoreResult<SourceHealth> {
    let org = connection.organization_id;
    let runs = store.sync_runs(org, connection.id, 200).await?;
    let guard_open = !store
        .list_exceptions(
            org,
            &crate::domain::ExceptionFilter {
                state: Some(crate::domain::ExceptionState::Open),
                kind: Some(crate::domain::ExceptionKind::SyncGuard),
                connection_id: Some(connection.id),
                offset: 0,
                limit: 1,
            },
        )
        .await?
        .is_empty();
    let every = super::sync::full_sync_interval(connection);
    Ok(assess_source(
        connection,
        &runs,
        guard_open,
        every,
        Timestamp::now(),
    ))
}

#[derive(Debug, Default, Clone)]
struct Accum {
    organization_id: Option<OrganizationId>,
    attempts: i64,
    failures: i64,
    hist: LatencyHistogram,
    last_attempt_at: Option<Timestamp>,
    last_success_at: Option<Timestamp>,
}

/// This process's delivery statistics, per connection and minute, until they are written.
#[derive(Debug)]
pub struct StatsRecorder {
    process_id: Uuid,
    minutes: Mutex<HashMap<(ConnectionId, i64), Accum>>,
}

impl StatsRecorder {
    /// A recorder writing rows as process `process_id`.
    pub fn new(process_id: Uuid) -> Self {
        Self {
            process_id,
            minutes: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt.
    pub fn record(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        at: Timestamp,
        latency: Duration,
        success: bool,
    ) {
        let minute = at.unix_micros().div_euclid(60_000_000);
        let mut m = self.minutes.lock().unwrap_or_else(|e| e.into_inner());
        let a = m.entry((connection, minute)).or_default();
        a.organization_id = Some(org);
        a.attempts += 1;
        if success {
            a.last_success_at = a.last_success_at.max(Some(at));
        } else {
            a.failures += 1;
        }
        a.last_attempt_at = a.last_attempt_at.max(Some(at));
        a.hist.observe(latency.as_millis() as u64);
    }

    /// Writes the current rows; forgets minutes that are over.
    pub async fn flush(&self, store: &dyn Store) -> StoreResult<()> {
        let now_minute = Timestamp::now().unix_micros().div_euclid(60_000_000);
        let rows: Vec<ConnectionStats> = {
            let m = self.minutes.lock().unwrap_or_else(|e| e.into_inner());
            m.iter()
                .filter_map(|((conn, minute), a)| {
                    Some(ConnectionStats {
                        connection_id: *conn,
                        minute: Timestamp::from_unix_micros(minute * 60_000_000)?,
                        process_id: self.process_id,
                        organization_id: a.organization_id?,
                        attempts: a.attempts,
                        failures: a.failures,
                        latency_buckets: a.hist.to_json(),
                        last_attempt_at: a.last_attempt_at,
                        last_success_at: a.last_success_at,
                    })
                })
                .collect()
        };
        store.record_connection_stats(&rows).await?;
        let mut m = self.minutes.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|(_, minute), _| *minute >= now_minute - 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Json;
    use serde_json::json;

    fn connection(state: ConnectionState) -> Connection {
        Connection {
            id: ConnectionId::new(),
            organization_id: OrganizationId::new(),
            name: "app".into(),
            kind: ConnectionKind::ScimTarget,
            base_url: None,
            auth_method: AuthMethod::None,
            has_secret: false,
            settings: Json(json!({})),
            state,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        }
    }

    fn stats(
        c: &Connection,
        minute: Timestamp,
        attempts: i64,
        failures: i64,
        ok_at: Option<Timestamp>,
    ) -> ConnectionStats {
        ConnectionStats {
            connection_id: c.id,
            minute,
            process_id: Uuid::nil(),
            organization_id: c.organization_id,
            attempts,
            failures,
            latency_buckets: "[]".into(),
            last_attempt_at: Some(minute),
            last_success_at: ok_at,
        }
    }

    #[test]
    fn states_follow_the_thresholds() {
        let t = HealthThresholds::default();
        let now = Timestamp::now();
        let ago = |s: u64| now.before(Duration::from_secs(s));
        let c = connection(ConnectionState::Active);
        assert_eq!(
            assess(&c, QueueCounts::default(), &[], &t, now).state,
            HealthState::Healthy
        );
        // 30% errors: degraded.
        let s = [stats(&c, ago(30), 10, 3, Some(ago(30)))];
        assert_eq!(
            assess(&c, QueueCounts::default(), &s, &t, now).state,
            HealthState::Degraded
        );
        // Errors an hour ago do not count for "now".
        let s = [stats(&c, ago(3_000), 10, 10, None)];
        let r = assess(&c, QueueCounts::default(), &s, &t, now);
        assert_eq!((r.state, r.errors_1h.failures), (HealthState::Healthy, 10));
        // Work waiting 10 minutes with no success: stalled.
        let q = QueueCounts {
            pending: 4,
            oldest_pending: Some(ago(600)),
            ..Default::default()
        };
        assert_eq!(assess(&c, q, &s, &t, now).state, HealthState::Stalled);
        // ... but not when things succeed.
        let ok = [stats(&c, ago(10), 5, 0, Some(ago(10)))];
        assert_eq!(assess(&c, q, &ok, &t, now).state, HealthState::Healthy);
        // Operator and engine states win.
        assert_eq!(
            assess(&connection(ConnectionState::Paused), q, &s, &t, now).state,
            HealthState::Paused
        );
        assert_eq!(
            assess(&connection(ConnectionState::Quarantined), q, &s, &t, now).state,
            HealthState::Quarantined
        );
        // Failed operations make it degraded.
        let q = QueueCounts {
            failed: 1,
            ..Default::default()
        };
        assert_eq!(assess(&c, q, &ok, &t, now).state, HealthState::Degraded);
    }

    fn run(c: &Connection, finished: Timestamp, error: Option<&str>) -> crate::domain::SyncRun {
        crate::domain::SyncRun {
            id: crate::domain::SyncRunId::new(),
            organization_id: c.organization_id,
            connection_id: c.id,
            started_at: finished,
            finished_at: finished,
            full_sync: true,
            dry_run: false,
            actor: "engine".into(),
            counts: Json(json!({})),
            error: error.map(str::to_string),
            note: None,
        }
    }

    #[test]
    fn a_source_is_judged_by_its_syncs() {
        let c = connection(ConnectionState::Active);
        let now = Timestamp::now();
        let hour = Duration::from_secs(3600);
        let judge = |runs: &[crate::domain::SyncRun], guard| {
            assess_source(&c, runs, guard, Some(hour), now)
        };
        assert_eq!(
            judge(&[], false).state,
            HealthState::Degraded,
            "never synced"
        );
        let ok = run(&c, now.before(Duration::from_secs(60)), None);
        let h = judge(std::slice::from_ref(&ok), false);
        assert_eq!(h.state, HealthState::Healthy);
        assert_eq!(h.last_success_at, Some(ok.finished_at));
        let failed = run(&c, now, Some("reading the source: 500"));
        let h = judge(&[failed.clone(), ok.clone()], false);
        assert_eq!(h.state, HealthState::Degraded);
        assert!(h.reason.contains("500"));
        assert_eq!((h.runs_24h.attempts, h.runs_24h.failures), (2, 1));
        assert_eq!(
            judge(std::slice::from_ref(&ok), true).state,
            HealthState::Degraded,
            "guard"
        );
        // Three intervals without a success: stalled.
        let old = run(&c, now.before(hour * 4), None);
        assert_eq!(judge(&[old], false).state, HealthState::Stalled);
        let paused = connection(ConnectionState::Paused);
        assert_eq!(
            assess_source(&paused, &[ok], false, Some(hour), now).state,
            HealthState::Paused
        );
    }
}
