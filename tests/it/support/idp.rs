//! The identity provider's side of end-to-end tests: an organization whose inbound SCIM
//! server it pushes to over HTTP, engine settings with short waits, and a polling wait.

use reqwest::Method;
use scimdesk::api::changes::ChangeFeed;
use scimdesk::api::serve;
use scimdesk::domain::*;
use scimdesk::engine::{EngineConfig, HealthThresholds};
use scimdesk::store::Store;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Engine settings that make a test's waits short.
pub fn fast() -> EngineConfig {
    EngineConfig {
        lease_secs: 5,
        poll_interval_ms: 100,
        supervise_interval_ms: 200,
        backoff_base_ms: 100,
        backoff_max_ms: 1_000,
        stats_flush_ms: 200,
        shutdown_grace_ms: 2_000,
        health: HealthThresholds {
            stall_after_secs: 1,
            quarantine_after_failures: 4,
            quarantine_after_secs: 3,
            probe_interval_secs: 1,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The identity provider's side: an organization whose inbound SCIM server it pushes to.
pub struct Source {
    pub org: OrganizationId,
    pub base: String,
    pub token: String,
    http: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Source {
    pub async fn start(store: Arc<dyn Store>) -> Source {
        scimdesk::connectors::ensure_tls_provider();
        let (org, token) = super::inbound_tenant(&*store, "Hospital").await;
        let (addr, tx) = serve::spawn_local(serve::app(store, ChangeFeed::default(), None))
            .await
            .unwrap();
        Source {
            org,
            base: format!("http://{addr}/scim/v2"),
            token,
            http: reqwest::Client::new(),
            _shutdown: tx,
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn create_user(&self, name: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/Users",
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": name,
                    "name": {"givenName": "N", "familyName": name},
                    "emails": [{"value": name, "type": "work", "primary": true}],
                    "active": true
                })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// Pushes a group with these members (by id); returns its id.
    pub async fn create_group(&self, name: &str, members: &[String]) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/Groups",
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": name,
                    "members": members.iter().map(|m| json!({"value": m})).collect::<Vec<_>>(),
                })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }
}

/// Waits until `check` holds, or fails the test with `what` after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
