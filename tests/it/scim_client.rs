//! The outbound SCIM client against real SCIM servers on 127.0.0.1: scimdesk's own inbound
//! server (as a downstream application would be), and a small failing target double.

use crate::support;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use scimdesk::api::changes::ChangeFeed;
use scimdesk::api::serve;
use scimdesk::connectors::scim_client::{ScimClient, TargetAuth, TargetError};
use scimdesk::crypto::Secret;
use scimdesk::domain::*;
use serde_json::json;
use std::time::Duration;

/// Starts scimdesk's SCIM server on a fresh SQLite store; returns its base URL and a token.
async fn target() -> (String, String, support::Harness) {
    let h = support::Harness::sqlite().await;
    let (_, token) = support::inbound_tenant(&*h.store, "App").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = serve::app(h.store.clone(), ChangeFeed::default(), None);
    tokio::spawn(serve::serve(listener, app, std::future::pending()));
    (format!("http://{addr}/scim/v2"), token, h)
}

fn client(base: &str, token: &str) -> ScimClient {
    ScimClient::new(
        base,
        TargetAuth::Bearer(Secret::new(token)),
        Duration::from_secs(5),
    )
    .unwrap()
}

#[tokio::test]
async fn provisions_a_user_and_a_group_end_to_end() {
    let (base, token, _h) = target().await;
    let c = client(&base, &token);
    assert!(c.supports_patch().await.unwrap());
    assert_eq!(
        c.find_by(
            ResourceType::User,
            "userName",
            "nurse.ada@riverside.example"
        )
        .await
        .unwrap(),
        None
    );
    let created = c
        .create(ResourceType::User, &json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "nurse.ada@riverside.example", "externalId": "e-1", "active": true }))
        .await
        .unwrap();
    assert_eq!(created.status, 201);
    let id = created.resource_id().unwrap();
    assert_eq!(created.version().as_deref(), Some("W/\"1\""));
    assert!(created.location.as_deref().unwrap().ends_with(&id));
    // The look-up before create that keeps retries idempotent, by either key.
    let found = c
        .find_by(ResourceType::User, "externalId", "e-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found["id"], id.as_str());
    let found = c
        .find_by(
            ResourceType::User,
            "userName",
            "NURSE.ADA@riverside.example",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found["id"], id.as_str());
    // A second create is a conflict, which retrying cannot fix.
    let dup = c.create(ResourceType::User, &json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "nurse.ada@riverside.example" })).await.unwrap_err();
    assert!(
        matches!(&dup, TargetError::Http { status: 409, scim_type: Some(t), .. } if t == "uniqueness"),
        "{dup}"
    );
    assert!(!dup.is_retryable());
    // Suspend with PATCH, then replace with PUT guarded by the ETag.
    let patched = c
        .patch(
            ResourceType::User,
            &id,
            vec![json!({ "op": "replace", "path": "active", "value": false })],
        )
        .await
        .unwrap();
    assert_eq!(patched.body.as_ref().unwrap()["active"], false);
    let etag = patched.version().unwrap();
    let replaced = c
        .replace(ResourceType::User, &id, &json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "nurse.ada@riverside.example", "title": "Charge Nurse" }), Some(&etag))
        .await
        .unwrap();
    assert_eq!(replaced.body.as_ref().unwrap()["title"], "Charge Nurse");
    let stale = c
        .replace(
            ResourceType::User,
            &id,
            &json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x" }),
            Some(&etag),
        )
        .await
        .unwrap_err();
    assert_eq!(stale.status(), Some(412));
    // A group with the user, then paging.
    let g = c.create(ResourceType::Group, &json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "ICU", "members": [{ "value": id }] })).await.unwrap();
    let gid = g.resource_id().unwrap();
    let (page, total) = c.list_page(ResourceType::Group, 1, 10).await.unwrap();
    assert_eq!((page.len(), total), (1, 1));
    assert_eq!(page[0]["members"][0]["value"], id.as_str());
    // Delete, and delete again (already gone is not an error).
    assert!(c.delete(ResourceType::Group, &gid).await.unwrap());
    assert!(c.delete(ResourceType::User, &id).await.unwrap());
    assert!(!c.delete(ResourceType::User, &id).await.unwrap());
    assert!(c.get(ResourceType::User, &id).await.unwrap().is_none());
}

#[tokio::test]
async fn authentication_and_transport_failures_are_classified() {
    let (base, _token, _h) = target().await;
    let wrong = client(&base, "scd_00000000000000000000000000000000_wrong");
    let e = wrong.get(ResourceType::User, "x").await.unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert!(!e.is_retryable());
    // Nothing listens on the port of a listener we just closed.
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let c = client(&format!("http://{closed}/scim/v2"), "t");
    let e = c.get(ResourceType::User, "x").await.unwrap_err();
    assert!(matches!(e, TargetError::Transport(_)), "{e}");
    assert!(e.is_retryable());
    assert!(ScimClient::new("ftp://nope", TargetAuth::None, Duration::from_secs(1)).is_err());
}

/// A test double of a struggling target: a real HTTP server that answers 429 with
/// `Retry-After` in seconds, 503 with `Retry-After` as an HTTP date, and a slow 200.
async fn struggling_target() -> String {
    let app = axum::Router::new()
        .route("/scim/v2/Users/busy", get(|| async {
            let mut h = HeaderMap::new();
            h.insert("retry-after", "3".parse().unwrap());
            (StatusCode::TOO_MANY_REQUESTS, h, r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"429","detail":"rate limited"}"#)
        }))
        .route("/scim/v2/Users/down", get(|| async {
            let mut h = HeaderMap::new();
            let at = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(60));
            h.insert("retry-after", at.parse().unwrap());
            (StatusCode::SERVICE_UNAVAILABLE, h, "maintenance")
        }))
        .route("/scim/v2/Users/slow", get(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "{}"
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/scim/v2")
}

#[tokio::test]
async fn retry_after_and_timeouts_reach_the_caller() {
    let base = struggling_target().await;
    // A client per case: a client holds every later request until a Retry-After has passed,
    // which would make the next case wait 3 s and the last one a minute.
    let client = || ScimClient::new(&base, TargetAuth::None, Duration::from_millis(500)).unwrap();
    let c = client();
    let started = std::time::Instant::now();
    let busy = c.get(ResourceType::User, "busy").await.unwrap_err();
    assert!(busy.is_retryable());
    assert_eq!(busy.retry_after(), Some(Duration::from_secs(3)));
    // The same client waits out the 3 s before its next request.
    let again = c.get(ResourceType::User, "busy").await.unwrap_err();
    assert!(again.is_retryable());
    assert!(started.elapsed() >= Duration::from_secs(3));
    let down = client().get(ResourceType::User, "down").await.unwrap_err();
    assert!(down.is_retryable());
    let wait = down.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    let slow = client().get(ResourceType::User, "slow").await.unwrap_err();
    assert!(
        matches!(&slow, TargetError::Transport(m) if m.contains("timed out")),
        "{slow}"
    );
    assert!(slow.is_retryable());
}
