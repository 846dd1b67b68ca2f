//! Delivery statistics: one row per connection, minute and process, which connection health
//! aggregates (error rates, latency percentiles, last success).

use super::{ConnectionId, OrganizationId, Timestamp};
use serde::Serialize;
use uuid::Uuid;

/// Upper bounds (milliseconds) of the latency histogram buckets; the last bucket is unbounded.
pub const LATENCY_BOUNDS_MS: [u64; 14] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000,
];

/// Attempts of one process at one connection in one minute.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ConnectionStats {
    /// The target connection.
    pub connection_id: ConnectionId,
    /// The start of the minute.
    pub minute: Timestamp,
    /// The process that made the attempts.
    pub process_id: Uuid,
    /// The owning tenant.
    pub organization_id: OrganizationId,
    /// Attempts that got an answer or failed.
    pub attempts: i64,
    /// Attempts that failed (any error, retryable or not).
    pub failures: i64,
    /// Counts per [`LATENCY_BOUNDS_MS`] bucket (plus one for the overflow), as a JSON array.
    pub latency_buckets: String,
    /// The last attempt in the minute.
    pub last_attempt_at: Option<Timestamp>,
    /// The last successful attempt in the minute.
    pub last_success_at: Option<Timestamp>,
}

/// A latency histogram with the fixed [`LATENCY_BOUNDS_MS`] buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
}

impl LatencyHistogram {
    /// Counts one observation.
    pub fn observe(&mut self, millis: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; LATENCY_BOUNDS_MS.len() + 1];
        }
        let i = LATENCY_BOUNDS_MS
            .iter()
            .position(|b| millis <= *b)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.counts[i] += 1;
    }

    /// Adds a histogram stored as JSON (ignores malformed text: statistics are advisory).
    pub fn merge_json(&mut self, json: &str) {
        let other: Vec<u64> = serde_json::from_str(json).unwrap_or_default();
        if self.counts.is_empty() {
            self.counts = vec![0; LATENCY_BOUNDS_MS.len() + 1];
        }
        for (a, b) in self.counts.iter_mut().zip(other) {
            *a += b;
        }
    }

    /// The JSON form stored in [`ConnectionStats::latency_buckets`].
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.counts).unwrap_or_else(|_| "[]".into())
    }

    /// How many observations.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The upper bound (ms) of the bucket holding quantile `q` (0..=1); `None` when empty.
    /// Observations beyond the last bound report that bound.
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(
                    LATENCY_BOUNDS_MS
                        .get(i)
                        .copied()
                        .unwrap_or(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1]),
                );
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_report_bucket_bounds() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile_ms(0.5), None);
        for _ in 0..90 {
            h.observe(3);
        }
        for _ in 0..10 {
            h.observe(400);
        }
        assert_eq!(h.quantile_ms(0.5), Some(5));
        assert_eq!(h.quantile_ms(0.95), Some(500));
        let mut merged = LatencyHistogram::default();
        merged.merge_json(&h.to_json());
        merged.merge_json("not json");
        assert_eq!(merged, h);
    }
}
