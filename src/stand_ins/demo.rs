//! `scimdesk demo`: the story a newcomer watches, told with real parts.
//!
//! The organization "Riverside Health" gets an inbound SCIM connection and two downstream
//! applications. Both are scimdesk's own SCIM server, in-process on 127.0.0.1, behind the fault
//! layer of the target double:
//!
//! - **Rostering** is flaky: a share of requests get 429 with Retry-After, or 500.
//! - **Pharmacy** refuses one attribute value with a 400.
//!
//! Mappings cover the ward and ICU groups; the agency float pool is deliberately left unmapped.
//! The story is replayed as real SCIM HTTP requests to the inbound endpoint:
//!
//! 1. an onboarding wave of nurses across wards, paced so it can be watched;
//! 2. a few contractor off-boardings.
//!
//! The engine delivers the changes while the story plays. Health changes, failures arrive and
//! an exception is raised, ready to be retried and re-mapped.

use crate::api::changes::ChangeFeed;
use crate::api::serve;
use crate::crypto::Secret;
use crate::domain::*;
use crate::engine::{Engine, EngineConfig, commands};
use crate::policy::impact::{Guard, MappingChange};
use crate::stand_ins::StandInError;
use crate::stand_ins::target_double::{TargetDouble, inbound_organization};
use crate::store::{OperationFilter, Store};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The organization the demo creates.
pub const ORGANIZATION: &str = "Riverside Health";
/// The title the pharmacy application refuses.
pub const REFUSED_TITLE: &str = "Agency Contractor";
/// The group the demo leaves unmapped.
pub const UNMAPPED_GROUP: &str = "Agency Float Pool";
/// Wards of the onboarding wave.
const WARDS: [&str; 5] = ["Ward A", "Ward B", "Ward C", "Maternity", "Oncology"];

/// How the story is told.
#[derive(Debug, Clone, Copy)]
pub struct DemoOptions {
    /// Nurses in the onboarding wave.
    pub nurses: usize,
    /// Pace multiplier: 1 pushes about 20 nurses a second; higher is faster.
    pub speed: f64,
    /// How long to wait for the queue to settle after the story (headless runs).
    pub settle: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            nurses: 200,
            speed: 1.0,
            settle: Duration::from_secs(60),
        }
    }
}

/// A running demo: the engine, the servers, and what the workbench needs to attach.
pub struct Demo {
    /// The store everything lives in.
    pub store: Arc<dyn Store>,
    /// The demo organization.
    pub organization: OrganizationId,
    /// The engine delivering the story.
    pub engine: Arc<Engine>,
    /// The inbound SCIM base URL (`.../scim/v2`).
    pub inbound_url: String,
    rostering: TargetDouble,
    pharmacy: TargetDouble,
    token: String,
    _inbound: tokio::sync::oneshot::Sender<()>,
}

/// What happened, for people and for tests.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    /// The organization.
    pub organization: String,
    /// Nurses pushed by the identity provider.
    pub nurses: usize,
    /// Contractors suspended and removed at the end.
    pub offboarded: usize,
    /// Per application: users there, active ones, failed operations.
    pub targets: Vec<TargetSummary>,
    /// Exceptions open (kind and subject).
    pub open_exceptions: Vec<String>,
    /// Operations still unfinished (failed ones included).
    pub unfinished: usize,
    /// Seconds the story took.
    pub seconds: f64,
}

/// One application in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct TargetSummary {
    /// Connection name.
    pub connection: String,
    /// Health state and why.
    pub health: String,
    /// Users held there.
    pub users: u64,
    /// Active ones.
    pub active: usize,
    /// Failed operations waiting for an operator.
    pub failed: usize,
}

impl Demo {
    /// Sets the scene in `store`: organization, connections, roles and mappings, the two
    /// applications and the inbound server, and starts the engine (`workers: false` only
    /// watches).
    pub async fn start(store: Arc<dyn Store>, workers: bool) -> Result<Self, StandInError> {
        crate::connectors::ensure_tls_provider();
        if store.organization_by_name(ORGANIZATION).await?.is_some() {
            return Err(StandInError::Refused(format!(
                "this store already has an organization {ORGANIZATION:?}; run the demo on a fresh store (leave out --database-url for a temporary one)"
            )));
        }
        let actor = Actor::system("demo");
        let (org, token) =
            inbound_organization(store.as_ref(), &actor, ORGANIZATION, "Workday IdP").await?;
        let rostering = TargetDouble::start(store.clone(), "Rostering app").await?;
        rostering.faults.fail_percent.store(15, Ordering::SeqCst);
        rostering.faults.retry_after_secs.store(2, Ordering::SeqCst);
        rostering.faults.delay_ms.store(20, Ordering::SeqCst);
        let pharmacy = TargetDouble::start(store.clone(), "Pharmacy app").await?;
        *pharmacy
            .faults
            .poison
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(REFUSED_TITLE.into());
        pharmacy.faults.poison_status.store(400, Ordering::SeqCst);
        for (name, target, settings) in [
            (
                "rostering",
                &rostering,
                json!({"roles": ["ward-nurse", "icu-nurse"], "role_delivery": "groups", "concurrency": 4}),
            ),
            (
                "pharmacy",
                &pharmacy,
                json!({"roles": ["icu-nurse", "ward-nurse"], "role_delivery": "roles", "delete_mode": "suspend", "max_attempts": 5}),
            ),
        ] {
            store
                .create_connection(
                    &actor,
                    org,
                    &NewConnection {
                        name: name.into(),
                        kind: ConnectionKind::ScimTarget,
                        base_url: Some(target.base_url.clone()),
                        auth_method: AuthMethod::Bearer,
                        settings,
                    },
                    Some(&Secret::new(target.token.clone())),
                )
                .await?;
        }
        for (pattern, glob, role) in [
            ("Ward *", true, "ward-nurse"),
            ("Maternity", false, "ward-nurse"),
            ("Oncology", false, "ward-nurse"),
            ("ICU Nurses", false, "icu-nurse"),
        ] {
            let role = commands::ensure_role(store.as_ref(), &actor, org, role).await?;
            let change = MappingChange::Set {
                id: None,
                draft: RoleMappingDraft::by_display_name(pattern, glob, role.id),
            };
            commands::set_mapping(
                store.as_ref(),
                &actor,
                org,
                &change,
                &Guard::default(),
                true,
            )
            .await?;
        }
        let (addr, tx) =
            serve::spawn_local(serve::app(store.clone(), ChangeFeed::default(), None)).await?;
        let engine = Engine::new(
            store.clone(),
            EngineConfig {
                poll_interval_ms: 250,
                backoff_base_ms: 500,
                backoff_max_ms: 10_000,
                ..Default::default()
            },
        );
        if workers {
            engine.start();
        } else {
            engine.start_watching();
        }
        let engine = Arc::new(engine);
        Ok(Self {
            store,
            organization: org,
            engine,
            inbound_url: format!("http://{addr}/scim/v2"),
            rostering,
            pharmacy,
            token,
            _inbound: tx,
        })
    }

    async fn call(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, StandInError> {
        let mut req = http
            .request(method.clone(), format!("{}{path}", self.inbound_url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(StandInError::Refused(format!(
                "{method} {path}: {status}: {text}"
            )));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Plays the story: the onboarding wave, the groups, then the off-boardings. Returns how
    /// many were off-boarded.
    pub async fn play(&self, options: &DemoOptions) -> Result<usize, StandInError> {
        use reqwest::Method;
        let http = reqwest::Client::new();
        let pause = Duration::from_secs_f64(1.0 / (20.0 * options.speed.max(0.01)));
        let mut ids = Vec::with_capacity(options.nurses);
        for i in 0..options.nurses {
            // Every tenth nurse comes from an agency.
            let contractor = i % 10 == 9;
            let name = format!("nurse{i:03}@riverside.example");
            let doc = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": name,
                "name": {"givenName": "Nurse", "familyName": format!("No. {i}")},
                "displayName": format!("Nurse {i}"),
                "title": if contractor { REFUSED_TITLE } else { "Registered Nurse" },
                "emails": [{"value": name, "type": "work", "primary": true}],
                "active": true
            });
            let made = self.call(&http, Method::POST, "/Users", Some(doc)).await?;
            ids.push((
                made["id"].as_str().unwrap_or_default().to_string(),
                contractor,
            ));
            tokio::time::sleep(pause).await;
        }
        let members = |f: &dyn Fn(usize, bool) -> bool| -> Vec<Value> {
            ids.iter()
                .enumerate()
                .filter(|(i, (_, c))| f(*i, *c))
                .map(|(_, (id, _))| json!({"value": id}))
                .collect()
        };
        let mut groups: Vec<(String, Vec<Value>)> = WARDS
            .iter()
            .enumerate()
            .map(|(w, name)| (name.to_string(), members(&|i, _| i % WARDS.len() == w)))
            .collect();
        groups.push(("ICU Nurses".into(), members(&|i, _| i % 4 == 0)));
        groups.push((UNMAPPED_GROUP.into(), members(&|_, c| c)));
        for (name, m) in groups {
            self.call(
                &http,
                Method::POST,
                "/Groups",
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": name,
                    "members": m,
                })),
            )
            .await?;
            tokio::time::sleep(pause * 10).await;
        }
        // Off-boarding: three contractors suspended, two removed.
        let leaving: Vec<&String> = ids
            .iter()
            .filter(|(_, c)| *c)
            .map(|(id, _)| id)
            .take(5)
            .collect();
        for (n, id) in leaving.iter().enumerate() {
            if n < 3 {
                self.call(
                    &http,
                    Method::PATCH,
                    &format!("/Users/{id}"),
                    Some(json!({
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "active", "value": false}]
                    })),
                )
                .await?;
            } else {
                self.call(&http, Method::DELETE, &format!("/Users/{id}"), None)
                    .await?;
            }
            tokio::time::sleep(pause * 10).await;
        }
        Ok(leaving.len())
    }

    /// Waits until nothing is left to deliver but failures (or `limit` passes).
    pub async fn settle(&self, limit: Duration) -> Result<(), StandInError> {
        let start = Instant::now();
        loop {
            let ops = self
                .store
                .list_operations(
                    self.organization,
                    &OperationFilter {
                        limit: 10_000,
                        ..Default::default()
                    },
                )
                .await?;
            // Failed work waits for an operator, and so does what queues behind it.
            let failed: std::collections::HashSet<(ConnectionId, uuid::Uuid)> = ops
                .iter()
                .filter(|o| o.state == OperationState::Failed)
                .map(|o| (o.connection_id, o.resource_id))
                .collect();
            if ops
                .iter()
                .all(|o| failed.contains(&(o.connection_id, o.resource_id)))
            {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(StandInError::Stalled(format!(
                    "{} operations still unfinished after {limit:?}",
                    ops.len()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// What the story left behind.
    pub async fn summary(
        &self,
        nurses: usize,
        offboarded: usize,
        seconds: f64,
    ) -> Result<DemoSummary, StandInError> {
        let org = self.organization;
        let mut targets = Vec::new();
        for (name, double) in [("rostering", &self.rostering), ("pharmacy", &self.pharmacy)] {
            let conn = self
                .store
                .connection_by_name(org, name)
                .await?
                .ok_or(StandInError::Missing("a demo connection is missing"))?;
            let health = crate::engine::health::connection_health(
                self.store.as_ref(),
                &conn,
                &self.engine.config().health,
            )
            .await?;
            let users = self
                .store
                .list_users(
                    double.organization_id,
                    crate::store::ListRange::first(100_000),
                )
                .await?;
            targets.push(TargetSummary {
                connection: name.into(),
                health: format!("{} ({})", health.state, health.reason),
                users: users.len() as u64,
                active: users.iter().filter(|u| u.active).count(),
                failed: health.queue.failed as usize,
            });
        }
        let open = self
            .store
            .list_exceptions(
                org,
                &ExceptionFilter {
                    state: Some(ExceptionState::Open),
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await?;
        let unfinished = self
            .store
            .list_operations(
                org,
                &OperationFilter {
                    limit: 100_000,
                    ..Default::default()
                },
            )
            .await?
            .len();
        Ok(DemoSummary {
            organization: ORGANIZATION.into(),
            nurses,
            offboarded,
            targets,
            open_exceptions: open
                .iter()
                .map(|e| format!("{}: {}", e.kind, e.subject))
                .collect(),
            unfinished,
            seconds,
        })
    }

    /// Stops the engine and the servers.
    pub async fn stop(self) {
        self.engine.shutdown().await;
    }
}

/// Runs the whole story without a screen and returns its summary (`scimdesk demo --headless`).
pub async fn headless(
    store: Arc<dyn Store>,
    options: DemoOptions,
) -> Result<DemoSummary, StandInError> {
    let start = Instant::now();
    let demo = Demo::start(store, true).await?;
    let outcome = async {
        let offboarded = demo.play(&options).await?;
        demo.settle(options.settle).await?;
        demo.summary(options.nurses, offboarded, start.elapsed().as_secs_f64())
            .await
    }
    .await;
    demo.stop().await;
    outcome
}
