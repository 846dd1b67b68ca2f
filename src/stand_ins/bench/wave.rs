//! The onboarding wave: pushed through the inbound server, delivered by the engine to a local
//! target, compared with pushing straight to a target, then a paced run for latency.

use super::*;

/// Which application the wave provisions to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WaveTarget {
    /// An in-memory SCIM application ([`MemoryTarget`]): fast, so the figures are scimdesk's.
    Memory,
    /// scimdesk's own inbound server in another organization on the same store
    /// ([`TargetDouble`]): every request the target answers costs database writes too.
    Scimdesk,
}

/// What a wave run does.
#[derive(Debug, Clone)]
pub struct WaveOptions {
    /// Run on a temporary schema in this PostgreSQL database (else a temporary SQLite file).
    pub postgres: Option<String>,
    /// Users in the wave.
    pub users: usize,
    /// Groups (members spread over them).
    pub groups: usize,
    /// Requests the identity provider (and the direct push) sends at once.
    pub concurrency: usize,
    /// Offered rate of the paced run (users/s).
    pub paced_rate: u32,
    /// Users in the paced run.
    pub paced_users: usize,
    /// The target connection's settings.
    pub settings: serde_json::Value,
    /// Latency the target adds to every answer, as a remote application would.
    pub target_latency: Duration,
    /// Which application is the target.
    pub target: WaveTarget,
}

/// Figures of a wave run.
#[derive(Debug, Serialize)]
pub struct WaveReport {
    /// Which store.
    pub backend: String,
    /// Which application the target was.
    pub target: WaveTarget,
    /// Latency the target adds to every answer (ms), as a remote application would.
    pub target_latency_ms: u64,
    /// Users in the wave.
    pub users: usize,
    /// Groups in the wave (members spread over them).
    pub groups: usize,
    /// Seconds to push every request straight to a target with a plain client.
    pub direct_secs: f64,
    /// Seconds the engine took to deliver the same wave once it was queued (the inbound push
    /// done before the workers started): the engine's own time.
    pub delivery_secs: f64,
    /// delivery_secs / direct_secs.
    pub delivery_vs_direct: f64,
    /// Seconds the queue's own work took for as many operations (claimed, recorded, moved to
    /// the history) against a delivery that acknowledges at once: a floor under
    /// `delivery_secs` that no sending can lower.
    pub queue_floor_secs: f64,
    /// queue_floor_secs / direct_secs.
    pub queue_floor_vs_direct: f64,
    /// Seconds the inbound server took to accept that queued wave with no worker running: the
    /// inbound side's own time.
    pub inbound_secs: f64,
    /// Seconds from the first request to the source until the target acknowledged the last.
    pub engine_secs: f64,
    /// Of which: seconds the identity provider took to push the wave to the inbound server.
    pub source_push_secs: f64,
    /// engine_secs / direct_secs.
    pub engine_vs_direct: f64,
    /// Users provisioned per second end to end.
    pub users_per_sec: f64,
    /// Requests the target received per user delivered end to end (the direct push sends 1
    /// per user, plus the groups).
    pub requests_per_user: f64,
    /// Source commit to target acknowledgement (recorded), over the whole wave, ms.
    pub wave_latency_ms: Percentiles,
    /// The offered rate of the paced run (users/s).
    pub paced_rate: u32,
    /// Source commit to target acknowledgement at the paced rate, ms.
    pub paced_latency_ms: Percentiles,
    /// Peak resident memory of this process (MB).
    pub peak_rss_mb: f64,
    /// CPU per user of the direct push.
    pub direct_cpu: CpuPerUser,
    /// CPU per user of the inbound server alone.
    pub inbound_cpu: CpuPerUser,
    /// CPU per user of the engine alone.
    pub delivery_cpu: CpuPerUser,
    /// CPU per user end to end.
    pub engine_cpu: CpuPerUser,
}

/// A wave's target application, of either kind.
pub(super) enum BenchTarget {
    Memory(MemoryTarget),
    Scimdesk(TargetDouble),
}

impl BenchTarget {
    pub(super) async fn start(
        kind: WaveTarget,
        store: &Arc<dyn Store>,
        name: &str,
        latency: Duration,
    ) -> BenchResult<Self> {
        let t = match kind {
            WaveTarget::Memory => BenchTarget::Memory(MemoryTarget::start().await?),
            WaveTarget::Scimdesk => {
                BenchTarget::Scimdesk(TargetDouble::start(store.clone(), name).await?)
            }
        };
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        t.server()
            .faults
            .delay_ms
            .store(ms, std::sync::atomic::Ordering::SeqCst);
        Ok(t)
    }

    pub(super) fn server(&self) -> &FaultyServer {
        match self {
            BenchTarget::Memory(t) => &t.server,
            BenchTarget::Scimdesk(t) => &t.server,
        }
    }

    pub(super) fn token(&self) -> &str {
        match self {
            BenchTarget::Memory(t) => &t.token,
            BenchTarget::Scimdesk(t) => &t.token,
        }
    }
}

/// A source organization served by an inbound server, with one SCIM target connection.
pub(super) struct WaveRoute {
    org: OrganizationId,
    base: String,
    token: String,
    target: BenchTarget,
    _inbound: tokio::sync::oneshot::Sender<()>,
}

impl WaveRoute {
    pub(super) async fn start(
        store: &Arc<dyn Store>,
        name: &str,
        o: &WaveOptions,
    ) -> BenchResult<Self> {
        let target =
            BenchTarget::start(o.target, store, &format!("{name} target"), o.target_latency)
                .await?;
        let (org, base, token, inbound) = serve_inbound(store.clone(), name).await?;
        store
            .create_connection(
                &Actor::system("bench"),
                org,
                &NewConnection {
                    name: "target".into(),
                    kind: ConnectionKind::ScimTarget,
                    base_url: Some(target.server().base_url.clone()),
                    auth_method: AuthMethod::Bearer,
                    settings: o.settings.clone(),
                },
                Some(&Secret::new(target.token().to_string())),
            )
            .await?;
        Ok(Self {
            org,
            base,
            token,
            target,
            _inbound: inbound,
        })
    }

    /// Pushes the wave's users, then its groups; returns the seconds it took.
    pub(super) async fn push_wave(
        &self,
        http: &reqwest::Client,
        o: &WaveOptions,
        prefix: &str,
    ) -> BenchResult<f64> {
        push_wave(http, &self.base, &self.token, o, prefix).await
    }
}

/// Pushes `o.users` users and then `o.groups` groups holding them to a SCIM server.
pub(super) async fn push_wave(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    o: &WaveOptions,
    prefix: &str,
) -> BenchResult<f64> {
    let t0 = Instant::now();
    let ids = push(
        http,
        &format!("{base}/Users"),
        token,
        (0..o.users).map(|i| user_doc(i, prefix)).collect(),
        o.concurrency,
    )
    .await?;
    let users_secs = t0.elapsed().as_secs_f64();
    push(
        http,
        &format!("{base}/Groups"),
        token,
        group_docs(&ids, o.groups),
        o.concurrency,
    )
    .await?;
    tracing::info!(
        users_secs,
        total_secs = t0.elapsed().as_secs_f64(),
        "pushed a wave to {base}"
    );
    Ok(t0.elapsed().as_secs_f64())
}

/// Waits until `target` has created `users` users and `groups` groups (watched in its request
/// log, which costs the database nothing), then until the organization's queue is empty.
pub(super) async fn wait_delivered(
    store: &dyn Store,
    org: OrganizationId,
    target: &BenchTarget,
    users: usize,
    groups: usize,
) -> BenchResult<()> {
    let start = Instant::now();
    let server = target.server();
    let (mut seen_users, mut seen_groups) = (0, 0);
    let (mut users_from, mut groups_from) = (0, 0);
    loop {
        let (n, next) = server.count_since(users_from, "POST", "/scim/v2/Users", 201);
        (seen_users, users_from) = (seen_users + n, next);
        let (n, next) = server.count_since(groups_from, "POST", "/scim/v2/Groups", 201);
        (seen_groups, groups_from) = (seen_groups + n, next);
        if seen_users >= users && seen_groups >= groups {
            break;
        }
        if start.elapsed() > Duration::from_secs(3600) {
            return Err(StandInError::Stalled(
                "the wave did not reach the target within an hour".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_drained(store, org, Duration::from_secs(600)).await
}

/// The engine's configuration in the wave (and its queue floor).
pub(super) fn wave_engine_config() -> EngineConfig {
    EngineConfig {
        poll_interval_ms: 200,
        ..Default::default()
    }
}

/// Runs the wave benchmark: the direct push; the queue's own work for as many operations; the
/// engine delivering a queued wave; the wave end to end; a paced run for latency.
pub async fn wave(o: WaveOptions) -> BenchResult<WaveReport> {
    crate::connectors::ensure_tls_provider();
    // The wave mirrors the direct push: every user, and the source's groups.
    let mut o = o;
    if let Some(m) = o.settings.as_object_mut() {
        m.entry("user_scope").or_insert(json!("all"));
        m.entry("source_groups").or_insert(json!(true));
    }
    let latency_ms = u64::try_from(o.target_latency.as_millis()).unwrap_or(u64::MAX);
    let bench = BenchStore::open(o.postgres.as_deref()).await?;
    let store: Arc<dyn Store> = bench.store.clone();
    let result = async {
        let http = reqwest::Client::new();
        // Straight to a target.
        let direct =
            BenchTarget::start(o.target, &store, "direct target", o.target_latency).await?;
        let clock = CpuClock::now().unwrap_or_default();
        let direct_secs =
            push_wave(&http, &direct.server().base_url, direct.token(), &o, "d").await?;
        let direct_cpu = clock.per_user_since(o.users);
        drop(direct);

        // The queue's own work for as many operations, in a store of its own (an engine with
        // a no-op delivery would acknowledge whatever it found in this one).
        let floor = BenchStore::open(o.postgres.as_deref()).await?;
        let queue_floor_secs = queue_floor(
            &floor.store,
            (o.users + o.groups) as u64,
            o.settings.clone(),
            wave_engine_config(),
        )
        .await;
        floor.remove().await;
        let queue_floor_secs = queue_floor_secs?;

        // Queued first, then delivered: the engine alone.
        let queued = WaveRoute::start(&store, "queued source", &o).await?;
        let clock = CpuClock::now().unwrap_or_default();
        let inbound_secs = queued.push_wave(&http, &o, "q").await?;
        let inbound_cpu = clock.per_user_since(o.users);
        let engine = Engine::new(store.clone(), wave_engine_config());
        let t0 = Instant::now();
        let clock = CpuClock::now().unwrap_or_default();
        engine.start();
        wait_delivered(
            store.as_ref(),
            queued.org,
            &queued.target,
            o.users,
            o.groups.max(1),
        )
        .await?;
        let delivery_secs = t0.elapsed().as_secs_f64();
        let delivery_cpu = clock.per_user_since(o.users);
        check_delivered(&queued.target, o.users)?;
        drop(queued);

        // End to end.
        let route = WaveRoute::start(&store, "source", &o).await?;
        engine.refresh_connections();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t0 = Instant::now();
        let clock = CpuClock::now().unwrap_or_default();
        let source_push_secs = route.push_wave(&http, &o, "e").await?;
        wait_delivered(
            store.as_ref(),
            route.org,
            &route.target,
            o.users,
            o.groups.max(1),
        )
        .await?;
        let engine_secs = t0.elapsed().as_secs_f64();
        let engine_cpu = clock.per_user_since(o.users);
        let wave_latency = latencies(store.as_ref(), route.org, OperationAction::Create).await?;
        check_delivered(&route.target, o.users)?;
        let requests = route.target.server().received().len();
        drop(route);

        // Paced: latency at an offered rate.
        let paced = WaveRoute::start(&store, "paced source", &o).await?;
        engine.refresh_connections();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut tick = tokio::time::interval(Duration::from_secs_f64(
            1.0 / f64::from(o.paced_rate.max(1)),
        ));
        let mut tasks = Vec::new();
        for i in 0..o.paced_users {
            tick.tick().await;
            let http = http.clone();
            let url = format!("{}/Users", paced.base);
            let token = paced.token.clone();
            tasks.push(tokio::spawn(async move {
                push(&http, &url, &token, vec![user_doc(i, "p")], 1).await
            }));
        }
        for t in tasks {
            t.await??;
        }
        wait_drained(store.as_ref(), paced.org, Duration::from_secs(600)).await?;
        let paced_latency = latencies(store.as_ref(), paced.org, OperationAction::Create).await?;
        engine.shutdown().await;
        Ok(WaveReport {
            backend: store.backend().to_string(),
            target: o.target,
            target_latency_ms: latency_ms,
            users: o.users,
            groups: o.groups,
            direct_secs,
            delivery_secs,
            delivery_vs_direct: delivery_secs / direct_secs.max(1e-9),
            queue_floor_secs,
            queue_floor_vs_direct: queue_floor_secs / direct_secs.max(1e-9),
            inbound_secs,
            engine_secs,
            source_push_secs,
            engine_vs_direct: engine_secs / direct_secs.max(1e-9),
            users_per_sec: o.users as f64 / engine_secs.max(1e-9),
            requests_per_user: requests as f64 / o.users.max(1) as f64,
            wave_latency_ms: percentiles(wave_latency),
            paced_rate: o.paced_rate,
            paced_latency_ms: percentiles(paced_latency),
            peak_rss_mb: peak_rss_mb(),
            direct_cpu,
            inbound_cpu,
            delivery_cpu,
            engine_cpu,
        })
    }
    .await;
    bench.remove().await;
    result
}

/// Fails unless the target created every user exactly once.
pub(super) fn check_delivered(target: &BenchTarget, users: usize) -> BenchResult<()> {
    let delivered = target.server().count("POST", "/scim/v2/Users", 201);
    if delivered != users {
        return Err(StandInError::Stalled(format!(
            "{delivered} of {users} users reached the target"
        )));
    }
    Ok(())
}
