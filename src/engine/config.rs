//! Engine tuning that applies to every connection (the `[engine]` section of `config.toml`).
//! Per-connection delivery settings live in the connection's settings ([`crate::domain::TargetSettings`]).

use serde::Deserialize;
use std::time::Duration;

/// How the engine claims, retries, keeps history and judges health.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// How long a claimed operation stays leased; a crashed worker's work returns after this.
    pub lease_secs: u64,
    /// Operations claimed at once per connection.
    pub claim_batch: u32,
    /// How often idle workers look for due work when nothing woke them (milliseconds).
    pub poll_interval_ms: u64,
    /// How often the engine re-reads the list of connections (milliseconds).
    pub supervise_interval_ms: u64,
    /// First retry delay (milliseconds); doubles per attempt, with jitter.
    pub backoff_base_ms: u64,
    /// Longest retry delay (milliseconds).
    pub backoff_max_ms: u64,
    /// How long succeeded and skipped operations are kept (hours).
    pub retention_hours: u64,
    /// Finished operations deleted per pruning statement.
    pub prune_batch: u32,
    /// Outcomes recorded per transaction at most.
    pub complete_batch: usize,
    /// How often delivery statistics are written (milliseconds).
    pub stats_flush_ms: u64,
    /// How often the queue table is vacuumed by the engine on PostgreSQL (seconds; 0: leave
    /// it to autovacuum, whose one-minute naptime lets dead rows of finished work pile up
    /// at the head of the claim index during a wave).
    pub queue_vacuum_secs: u64,
    /// How long shutdown waits for requests in flight before giving leases back (milliseconds).
    pub shutdown_grace_ms: u64,
    /// When a connection is degraded, stalled or quarantined.
    pub health: HealthThresholds,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            lease_secs: 60,
            claim_batch: 32,
            poll_interval_ms: 1_000,
            supervise_interval_ms: 2_000,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            retention_hours: 24 * 7,
            prune_batch: 5_000,
            complete_batch: 128,
            stats_flush_ms: 2_000,
            shutdown_grace_ms: 10_000,
            queue_vacuum_secs: 10,
            health: HealthThresholds::default(),
        }
    }
}

impl EngineConfig {
    /// The lease as a duration.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs.max(1))
    }
}

/// Explicit thresholds for connection health states (docs/operations.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthThresholds {
    /// Degraded when more than this percentage of the last 5 minutes' attempts failed.
    pub degraded_error_percent: u32,
    /// Fewer attempts than this in 5 minutes are too few to call a connection degraded.
    pub degraded_min_attempts: u64,
    /// Stalled when work has waited this long and nothing succeeded for as long (seconds).
    pub stall_after_secs: u64,
    /// Quarantined after this many transient failures in a row ...
    pub quarantine_after_failures: u32,
    /// ... with no success for at least this long (seconds).
    pub quarantine_after_secs: u64,
    /// A quarantined connection is probed with one operation this often (seconds).
    pub probe_interval_secs: u64,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            degraded_error_percent: 5,
            degraded_min_attempts: 5,
            stall_after_secs: 120,
            quarantine_after_failures: 20,
            quarantine_after_secs: 300,
            probe_interval_secs: 30,
        }
    }
}
