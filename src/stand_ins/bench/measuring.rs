//! Measuring: percentiles, CPU time and peak memory of this process, and latencies read
//! from the attempt log.

use super::*;

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

/// The median, 95th and 99th percentiles and the largest of a set of samples.
pub fn percentiles(mut v: Vec<f64>) -> Percentiles {
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
pub(super) const USER_HZ: f64 = 100.0;

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
    pub(super) fn per_user_since(self, users: usize) -> CpuPerUser {
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

pub(super) async fn latencies(
    store: &dyn Store,
    org: OrganizationId,
    action: OperationAction,
) -> BenchResult<Vec<f64>> {
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
        .await?;
    Ok(done
        .iter()
        .map(|o| o.updated_at.since(o.created_at).as_secs_f64() * 1000.0)
        .collect())
}

pub(super) async fn wait_drained(
    store: &dyn Store,
    org: OrganizationId,
    limit: Duration,
) -> BenchResult<()> {
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
            .await?;
        if left.is_empty() {
            return Ok(());
        }
        if start.elapsed() > limit {
            return Err(StandInError::Stalled(format!(
                "the queue did not drain within {limit:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
