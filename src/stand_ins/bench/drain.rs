//! The drain: a large queue emptied against a target that acknowledges at once, with the rate
//! per interval.

use super::*;

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
pub(super) async fn queue_for_noop(
    store: &dyn LoadableStore,
    name: &str,
    operations: u64,
    settings: serde_json::Value,
) -> BenchResult<(OrganizationId, Connection)> {
    let actor = Actor::system("bench");
    let org = store.create_organization(&actor, name).await?;
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
        .await?;
    store.bulk_enqueue(org.id, conn.id, operations).await?;
    Ok((org.id, conn))
}

/// The queue's own work for `operations` operations: claimed, leased, recorded and moved to
/// the history by an engine configured as `config`, at a connection with `settings`, against
/// a delivery that acknowledges at once. Nothing the engine does for a real operation can
/// take less, so the engine's time is at least this plus the requests' own.
pub(super) async fn queue_floor(
    store: &Arc<dyn LoadableStore>,
    operations: u64,
    settings: serde_json::Value,
    config: EngineConfig,
) -> BenchResult<f64> {
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
) -> BenchResult<DrainReport> {
    let bench = BenchStore::open(postgres).await?;
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
            let counts = store.queue_counts(org, conn.id).await?;
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
