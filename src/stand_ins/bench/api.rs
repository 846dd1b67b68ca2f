//! `bench api`: the GraphQL management API over real HTTP on 127.0.0.1, against an
//! organization with many targets and a large queue: `connections` with health, pages of
//! `operations` anywhere in the queue, a mutation's effect reaching a subscriber, and a
//! sustained read rate at a given concurrency.
//!
//! The targets are paused, so the engine (running, with its supervisor) delivers nothing and
//! the queue stays as loaded. The subscriber runs in process through the schema the server
//! uses (the WebSocket hop, local and a frame each way, is not included).

use super::*;
use crate::api::changes::ChangeFeed;
use crate::api::graphql::principal::Principal;
use crate::api::graphql::{self, ApiSettings};
use crate::api::serve;
use async_graphql::futures_util::StreamExt;

/// What to run.
#[derive(Debug, Clone)]
pub struct ApiBenchOptions {
    /// A PostgreSQL URL (else a temporary SQLite file).
    pub postgres: Option<String>,
    /// Target connections.
    pub connections: usize,
    /// Operations queued over them.
    pub operations: u64,
    /// Concurrent clients of the sustained run.
    pub concurrency: usize,
    /// Offered rate of the sustained run (requests per second, all clients together).
    pub rate: u32,
    /// Seconds of the sustained run.
    pub seconds: u64,
}

/// Figures of an API run (milliseconds).
#[derive(Debug, Serialize)]
pub struct ApiBenchReport {
    /// Which store.
    pub backend: String,
    /// Target connections.
    pub connections: usize,
    /// Operations stored.
    pub operations: u64,
    /// `connections { … health { … } }`.
    pub connections_ms: Percentiles,
    /// `operations(first: 100, after: …)` at random places in the queue.
    pub operations_page_ms: Percentiles,
    /// From sending `pauseConnection` (or `resumeConnection`) to the subscriber's
    /// `healthChanged`.
    pub mutation_to_subscriber_ms: Percentiles,
    /// The mutation's own round trip, of those.
    pub mutation_ms: Percentiles,
    /// Requests answered per second in the sustained run.
    pub sustained_rate: f64,
    /// Latency in the sustained run.
    pub sustained_ms: Percentiles,
    /// Requests that failed in the sustained run.
    pub sustained_errors: u64,
}

/// One POST, timed; an error if the answer carries errors.
async fn post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &serde_json::Value,
) -> BenchResult<(f64, serde_json::Value)> {
    let t = Instant::now();
    let resp = http.post(url).bearer_auth(token).json(body).send().await?;
    let v: serde_json::Value = resp.json().await?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if !v["errors"].is_null() {
        return Err(StandInError::Refused(format!(
            "the API answered errors: {v}"
        )));
    }
    Ok((ms, v))
}

/// Runs the API benchmark.
pub async fn api(o: ApiBenchOptions) -> BenchResult<ApiBenchReport> {
    crate::connectors::ensure_tls_provider();
    let bench = BenchStore::open(o.postgres.as_deref()).await?;
    let store = bench.store.clone();
    let s: Arc<dyn Store> = store.clone();
    let actor = Actor::operator("bench");
    let org = s.create_organization(&actor, "Riverside").await?;
    let per = o.operations / o.connections.max(1) as u64;
    let mut conns = Vec::with_capacity(o.connections);
    for i in 0..o.connections {
        let c = s
            .create_connection(
                &actor,
                org.id,
                &NewConnection {
                    name: format!("app-{i:03}"),
                    kind: ConnectionKind::ScimTarget,
                    base_url: Some("http://127.0.0.1:9/scim/v2".into()),
                    auth_method: AuthMethod::None,
                    settings: json!({"user_scope": "all"}),
                },
                None,
            )
            .await?;
        crate::engine::commands::pause(s.as_ref(), &actor, org.id, c.id, "bench").await?;
        store.bulk_enqueue(org.id, c.id, per).await?;
        conns.push(c);
    }
    let operations = per * o.connections as u64;
    let engine = Arc::new(Engine::new(
        s.clone(),
        EngineConfig {
            stats_flush_ms: 1_000,
            ..Default::default()
        },
    ));
    engine.start();
    let settings = ApiSettings::default();
    let app = serve::app_with_engine(
        s.clone(),
        ChangeFeed::default(),
        None,
        engine.clone(),
        &settings,
    );
    let (addr, _stop) = serve::spawn_local(app).await?;
    let url = format!("http://{addr}{}", graphql::PATH);
    let issue = |name: &'static str, access: Access| {
        let s = s.clone();
        async move {
            s.create_api_token(
                &Actor::operator("bench"),
                org.id,
                &NewApiToken {
                    name: name.into(),
                    scope: TokenScope::Api,
                    access,
                    connection_id: None,
                    expires_at: None,
                },
            )
            .await
        }
    };
    let read = issue("bench-read", Access::Read).await?;
    let admin = issue("bench-admin", Access::Admin).await?;
    let (read_token, admin_token) = (
        read.text.expose().to_string(),
        admin.text.expose().to_string(),
    );
    let http = reqwest::Client::new();
    // The engine's first health assessment of every target.
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    let connections_query = json!({"query": "{ connections { name state health { state reason pending failed p95LatencyMs } } }"});
    let mut samples = Vec::new();
    for i in 0..220 {
        let (ms, _) = post(&http, &url, &read_token, &connections_query).await?;
        if i >= 20 {
            samples.push(ms);
        }
    }
    let connections_ms = percentiles(samples);

    // Cursors anywhere in the queue: every 100th id, newest first.
    let mut cursors: Vec<String> = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .operations_page(org.id, &OperationFilter::default(), before, 10_000)
            .await?;
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        cursors.extend(page.iter().step_by(100).map(|o| o.id.to_string()));
        if page.len() < 10_000 {
            break;
        }
    }
    let mut samples = Vec::new();
    let step = (cursors.len() / 300).max(1);
    for (i, cursor) in cursors.iter().step_by(step).enumerate() {
        let q = json!({
            "query": "query($after: String) { operations(first: 100, after: $after) { edges { cursor node { id connectionId action state attemptCount } } pageInfo { hasNextPage } } }",
            "variables": {"after": cursor},
        });
        let (ms, _) = post(&http, &url, &read_token, &q).await?;
        if i >= 10 {
            samples.push(ms);
        }
    }
    let operations_page_ms = percentiles(samples);

    // A mutation's effect at a subscriber: pause and resume one target, twenty times.
    let schema = graphql::schema(s.clone(), Some(engine.clone()), &settings);
    let target = &conns[0];
    let sub = async_graphql::Request::new(format!(
        "subscription {{ healthChanged(connection: \"{}\") {{ health {{ state }} }} }}",
        target.name
    ))
    .data(Principal::of(&read.token));
    let mut stream = Box::pin(schema.execute_stream(sub));
    // Polled once, the subscription starts (a stream runs its resolver only when polled, as
    // the WebSocket server does at `subscribe`); anything it says before the first mutation
    // is not counted.
    let _ = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    let mut samples = Vec::new();
    let mut mutation_samples = Vec::new();
    for i in 0..40u32 {
        // Resumed, the target is anything but paused (its queue waits at an address that
        // refuses, so it may well be degraded); paused, it is paused.
        let (mutation, paused) = if i.is_multiple_of(2) {
            ("resumeConnection(connection: $c)", false)
        } else {
            ("pauseConnection(connection: $c, reason: \"bench\")", true)
        };
        let q = json!({
            "query": format!("mutation($c: String!) {{ {mutation} {{ state }} }}"),
            "variables": {"c": target.name},
        });
        let t = Instant::now();
        let (ms, _) = post(&http, &url, &admin_token, &q).await?;
        mutation_samples.push(ms);
        loop {
            let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .map_err(|_| StandInError::Stalled("no health change within 10 s".into()))?
                .ok_or_else(|| StandInError::Stalled("the subscription ended".into()))?;
            let state =
                next.data.into_json().unwrap_or_default()["healthChanged"]["health"]["state"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
            if !state.is_empty() && (state == "paused") == paused {
                break;
            }
        }
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mutation_to_subscriber_ms = percentiles(samples);
    let mutation_ms = percentiles(mutation_samples);

    // The sustained run: `concurrency` clients sharing `rate` requests a second, a mix of
    // one connection with health and a page of operations.
    let gap = Duration::from_secs_f64(o.concurrency.max(1) as f64 / f64::from(o.rate.max(1)));
    let until = Instant::now() + Duration::from_secs(o.seconds.max(1));
    let mut tasks = Vec::new();
    for c in 0..o.concurrency.max(1) {
        let (http, url, token) = (http.clone(), url.clone(), read_token.clone());
        let name = conns[c % conns.len()].name.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut next = Instant::now();
            let mut n = 0u64;
            while Instant::now() < until {
                let q = if n.is_multiple_of(2) {
                    json!({"query": format!("{{ connection(name: \"{name}\") {{ name state health {{ state pending }} }} }}")})
                } else {
                    json!({"query": "{ operations(first: 20) { edges { node { id state } } } }"})
                };
                n += 1;
                match post(&http, &url, &token, &q).await {
                    Ok((ms, _)) => lat.push(ms),
                    Err(_) => errors += 1,
                }
                next += gap;
                let now = Instant::now();
                if next > now {
                    tokio::time::sleep(next - now).await;
                }
            }
            (lat, errors)
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    let mut sustained_errors = 0;
    for t in tasks {
        if let Ok((lat, errors)) = t.await {
            all.extend(lat);
            sustained_errors += errors;
        }
    }
    let sustained_rate = all.len() as f64 / started.elapsed().as_secs_f64();
    let sustained_ms = percentiles(all);
    engine.shutdown().await;
    let report = ApiBenchReport {
        backend: s.backend().to_string(),
        connections: o.connections,
        operations,
        connections_ms,
        operations_page_ms,
        mutation_to_subscriber_ms,
        mutation_ms,
        sustained_rate,
        sustained_ms,
        sustained_errors,
    };
    drop(s);
    drop(store);
    bench.remove().await;
    Ok(report)
}
