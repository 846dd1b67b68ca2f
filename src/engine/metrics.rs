//! Prometheus metrics for `/metrics`: queue depth and health per connection (read from the
//! store, so they agree across processes) and this process's attempt latencies.

use super::health::{HealthReport, HealthState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Mutex;

/// Labels that name a connection.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    /// Organization id.
    pub organization: String,
    /// Connection name.
    pub connection: String,
}

/// Labels of an attempt's outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// Organization id.
    pub organization: String,
    /// Connection name.
    pub connection: String,
    /// `succeeded`, `retry` or `failed`.
    pub outcome: String,
}

/// Labels of a health state gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// Organization id.
    pub organization: String,
    /// Connection name.
    pub connection: String,
    /// One of the health states.
    pub state: String,
}

/// Every metric scimdesk exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    pending: Family<ConnectionLabels, Gauge>,
    in_flight: Family<ConnectionLabels, Gauge>,
    retry_wait: Family<ConnectionLabels, Gauge>,
    failed: Family<ConnectionLabels, Gauge>,
    health: Family<StateLabels, Gauge>,
    attempts: Family<OutcomeLabels, Counter>,
    latency: Family<ConnectionLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("scimdesk");
        let pending = Family::<ConnectionLabels, Gauge>::default();
        let in_flight = Family::<ConnectionLabels, Gauge>::default();
        let retry_wait = Family::<ConnectionLabels, Gauge>::default();
        let failed = Family::<ConnectionLabels, Gauge>::default();
        let health = Family::<StateLabels, Gauge>::default();
        let attempts = Family::<OutcomeLabels, Counter>::default();
        let latency = Family::<ConnectionLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
        });
        registry.register(
            "operations_pending",
            "Operations waiting for a worker",
            pending.clone(),
        );
        registry.register(
            "operations_in_flight",
            "Operations leased by a worker",
            in_flight.clone(),
        );
        registry.register(
            "operations_retry_wait",
            "Operations waiting for a retry",
            retry_wait.clone(),
        );
        registry.register(
            "operations_failed",
            "Operations waiting for an operator",
            failed.clone(),
        );
        registry.register(
            "connection_health",
            "1 for the connection's current health state, 0 for the others",
            health.clone(),
        );
        registry.register(
            "attempts",
            "Attempts made by this process",
            attempts.clone(),
        );
        registry.register(
            "attempt_duration_seconds",
            "Attempt latency in this process",
            latency.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            pending,
            in_flight,
            retry_wait,
            failed,
            health,
            attempts,
            latency,
        }
    }

    /// Counts one attempt of this process.
    pub fn observe_attempt(&self, organization: &str, connection: &str, outcome: &str, secs: f64) {
        let labels = ConnectionLabels {
            organization: organization.to_string(),
            connection: connection.to_string(),
        };
        self.latency.get_or_create(&labels).observe(secs);
        self.attempts
            .get_or_create(&OutcomeLabels {
                organization: organization.to_string(),
                connection: connection.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Sets the queue and health gauges of a connection from its latest report.
    pub fn set_health(&self, report: &HealthReport) {
        let labels = ConnectionLabels {
            organization: report.organization_id.to_string(),
            connection: report.name.clone(),
        };
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.pending
            .get_or_create(&labels)
            .set(n(report.queue.pending));
        self.in_flight
            .get_or_create(&labels)
            .set(n(report.queue.in_flight));
        self.retry_wait
            .get_or_create(&labels)
            .set(n(report.queue.retry_wait));
        self.failed
            .get_or_create(&labels)
            .set(n(report.queue.failed));
        for state in HealthState::ALL {
            self.health
                .get_or_create(&StateLabels {
                    organization: labels.organization.clone(),
                    connection: labels.connection.clone(),
                    state: state.as_str().to_string(),
                })
                .set(i64::from(state == report.state));
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}
