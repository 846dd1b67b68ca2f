//! The inbound SCIM server over real HTTP on 127.0.0.1, on real SQLite and PostgreSQL stores,
//! driven the way Entra ID and Okta drive it (request shapes from tests/fixtures).

use crate::support;

use reqwest::{Method, StatusCode};
use scimdesk::api::changes::{ChangeFeed, ChangeKind};
use scimdesk::api::serve;
use scimdesk::domain::*;
use scimdesk::store::Store;
use serde_json::{Value, json};
use std::sync::Arc;
use support::Harness;

on_both_backends!(
    entra_drives_a_full_lifecycle,
    okta_drives_a_full_lifecycle,
    tenants_never_see_each_other,
    bad_input_gets_the_right_error_and_persists_nothing,
    discovery_tells_the_truth,
    delete_follows_the_connection_policy,
);

/// A running server and a client with one organization's token.
struct Server {
    base: String,
    token: String,
    client: reqwest::Client,
    org: OrganizationId,
    changes: ChangeFeed,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn start(store: Arc<dyn Store>) -> Server {
    scimdesk::connectors::ensure_tls_provider();
    let (org, token) = support::inbound_tenant(&*store, "Riverside").await;
    let changes = ChangeFeed::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = serve::app(store, changes.clone(), None);
    tokio::spawn(serve::serve(listener, app, async {
        let _ = rx.await;
    }));
    Server {
        base: format!("http://{addr}/scim/v2"),
        token,
        client: reqwest::Client::new(),
        org,
        changes,
        _shutdown: tx,
    }
}

impl Server {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.call_as(&self.token, method, path, body).await
    }

    async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        if status.as_u16() >= 400 || (!text.is_empty()) {
            let ct = headers
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            assert_eq!(ct, "application/scim+json", "{path}");
        }
        (status, headers, value)
    }
}

/// A fixture's request: method, path (under the SCIM base, query kept) and body, with ids from
/// the vendor's documentation replaced by ours.
fn fixture(name: &str, subst: &[(&str, &str)]) -> (Method, String, Option<Value>) {
    let path = format!(
        "{}/tests/fixtures/{name}.request.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in subst {
        text = text.replace(from, to);
    }
    let v: Value = serde_json::from_str(&text).unwrap();
    let method = Method::from_bytes(v["method"].as_str().unwrap().as_bytes()).unwrap();
    let mut p = v["path"].as_str().unwrap().to_string();
    for prefix in ["/scim/v2", "/scim"] {
        if let Some(rest) = p.strip_prefix(prefix) {
            p = rest.to_string();
            break;
        }
    }
    // Entra's docs print filters unencoded; a real client percent-encodes them.
    let p = p.replace(' ', "%20").replace('"', "%22");
    let body = Some(v["body"].clone()).filter(|b| !b.is_null());
    (method, p, body)
}

async fn send(
    s: &Server,
    name: &str,
    subst: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let (m, p, b) = fixture(name, subst);
    s.call(m, &p, b.as_ref()).await
}

fn ids(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

async fn entra_drives_a_full_lifecycle(h: &Harness) {
    let s = start(h.store.clone()).await;
    let mut feed = s.changes.subscribe();
    let (st, _, body) = send(&s, "entra/01-get-user-by-query-zero-results", &[]).await;
    assert_eq!(
        (st, body["totalResults"].as_u64()),
        (StatusCode::OK, Some(0))
    );
    assert_eq!(body["Resources"], json!([]));

    let (st, headers, created) = send(&s, "entra/02-create-user", &[]).await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        created["userName"],
        "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee"
    );
    assert_eq!(headers["etag"], "W/\"1\"");
    assert_eq!(
        headers["location"].to_str().unwrap(),
        format!("{}/Users/{id}", s.base)
    );
    assert_eq!(
        created["meta"]["location"],
        format!("{}/Users/{id}", s.base)
    );
    let change = feed.recv().await.unwrap();
    assert_eq!(
        (change.kind, change.resource_type, change.organization_id),
        (ChangeKind::Created, ResourceType::User, s.org)
    );

    let (st, _, got) = send(&s, "entra/03-get-user", &[("5d48a0a8e9f04aa38008", &id)]).await;
    assert_eq!(
        (st, got["id"].as_str()),
        (StatusCode::OK, Some(id.as_str()))
    );
    let (st, _, err) = send(&s, "entra/04-get-user-not-found", &[]).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(err["status"], "404");
    let (st, _, found) = send(&s, "entra/05-get-user-by-query", &[]).await;
    assert_eq!((st, ids(&found)), (StatusCode::OK, vec![id.clone()]));

    let (st, _, patched) = send(
        &s,
        "entra/06-patch-user-multivalued",
        &[("6764549bef60420686bc", &id)],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{patched}");
    assert_eq!(patched["emails"][0]["value"], "updatedEmail@microsoft.com");
    assert_eq!(patched["name"]["familyName"], "updatedFamilyName");
    let (st, _, patched) = send(
        &s,
        "entra/07-patch-user-single-valued",
        &[("5171a35d82074e068ce2", &id)],
    )
    .await;
    assert_eq!(
        (st, patched["userName"].as_str()),
        (
            StatusCode::OK,
            Some("5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com")
        )
    );
    let (st, _, patched) = send(
        &s,
        "entra/20-patch-user-disable-string-false",
        &[("5171a35d82074e068ce2", &id)],
    )
    .await;
    assert_eq!((st, &patched["active"]), (StatusCode::OK, &json!(false)));
    // Suspended, not removed.
    let uid: UserId = id.parse().unwrap();
    let stored = h.store.user(s.org, uid).await.unwrap().unwrap();
    assert_eq!(
        (stored.active, stored.lifecycle_state),
        (false, LifecycleState::Suspended)
    );
    assert_eq!(stored.version, 4);
    let (st, _, _) = send(
        &s,
        "entra/28-patch-user-enable-string-true-DERIVED",
        &[("5171a35d82074e068ce2", &id)],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(h.store.user(s.org, uid).await.unwrap().unwrap().active);

    // A second user, created with nulls and looked up by an unquoted externalId.
    let (st, _, joy) = send(&s, "entra/31-create-user-with-nulls", &[]).await;
    assert_eq!(st, StatusCode::CREATED, "{joy}");
    let (st, _, found) = send(&s, "entra/30-get-user-by-externalid-unquoted", &[]).await;
    assert_eq!(
        (st, ids(&found)),
        (
            StatusCode::OK,
            vec![joy["id"].as_str().unwrap().to_string()]
        )
    );

    // Groups.
    let (st, _, group) = send(&s, "entra/10-create-group", &[]).await;
    assert_eq!(st, StatusCode::CREATED, "{group}");
    let gid = group["id"].as_str().unwrap().to_string();
    let (st, _, g) = send(
        &s,
        "entra/11-get-group-excluded-members",
        &[("40734ae655284ad3abcc", &gid)],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(g.get("members").is_none() && g["displayName"] == "displayName");
    let (st, _, found) = send(&s, "entra/12-get-group-by-displayname", &[]).await;
    assert_eq!((st, ids(&found)), (StatusCode::OK, vec![gid.clone()]));
    assert!(found["Resources"][0].get("members").is_none());
    let sub = [
        ("a99962b9f99d4c4fac67", gid.as_str()),
        ("f648f8d5ea4e4cd38e9c", id.as_str()),
    ];
    let (st, _, g) = send(&s, "entra/14-patch-group-add-members", &sub).await;
    assert_eq!(st, StatusCode::OK, "{g}");
    assert_eq!(g["members"][0]["value"], id.as_str());
    let gid_typed: GroupId = gid.parse().unwrap();
    assert_eq!(
        h.store.group_members(s.org, gid_typed).await.unwrap(),
        vec![uid]
    );
    let (st, _, g) = send(&s, "entra/15-patch-group-remove-members", &sub).await;
    assert_eq!((st, g["members"].clone()), (StatusCode::OK, json!([])));
    let (st, _, g) = send(
        &s,
        "entra/13-patch-group-displayname",
        &[("fa2ce26709934589afc5", &gid)],
    )
    .await;
    assert_eq!(
        (st, g["displayName"].as_str()),
        (
            StatusCode::OK,
            Some("1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName")
        )
    );
    let (st, _, _) = send(
        &s,
        "entra/16-delete-group",
        &[("cdb1ce18f65944079d37", &gid)],
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert!(h.store.group(s.org, gid_typed).await.unwrap().is_none());

    // Deprovision.
    let (st, _, _) = send(&s, "entra/09-delete-user", &[("5171a35d82074e068ce2", &id)]).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _, _) = s.call(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Every write is in the audit log, attributed to the identity provider's connection.
    let audit = h
        .store
        .list_audit(
            s.org,
            &AuditFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let by_scim: Vec<&str> = audit
        .iter()
        .filter(|e| e.actor_kind == ActorKind::Scim)
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(by_scim.iter().filter(|a| **a == "user.replace").count(), 4);
    assert!(
        by_scim.contains(&"user.create")
            && by_scim.contains(&"user.delete")
            && by_scim.contains(&"group.delete")
    );
    assert!(
        audit
            .iter()
            .filter(|e| e.actor_kind == ActorKind::Scim)
            .all(|e| e.actor == "Riverside IdP")
    );
}

async fn okta_drives_a_full_lifecycle(h: &Harness) {
    let s = start(h.store.clone()).await;
    let (st, _, body) = send(&s, "okta/01-get-user-by-username-not-found", &[]).await;
    assert_eq!(
        (st, body["totalResults"].as_u64()),
        (StatusCode::OK, Some(0))
    );
    let (st, _, user) = send(&s, "okta/03-create-user", &[]).await;
    assert_eq!(st, StatusCode::CREATED, "{user}");
    assert!(
        user.get("password").is_none(),
        "passwords are never returned"
    );
    let id = user["id"].as_str().unwrap().to_string();
    let (st, _, conflict) = send(&s, "okta/04-create-user-conflict", &[]).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(
        (conflict["scimType"].as_str(), conflict["status"].as_str()),
        (Some("uniqueness"), Some("409"))
    );
    let (st, _, found) = send(&s, "okta/05-get-user-by-username-found-DERIVED", &[]).await;
    assert_eq!((st, ids(&found)), (StatusCode::OK, vec![id.clone()]));
    let (st, _, page) = send(&s, "okta/06-list-users-import-page-DERIVED", &[]).await;
    assert_eq!((st, ids(&page)), (StatusCode::OK, vec![id.clone()]));
    let okta_id = "23a35c27-23d3-4c03-b4c5-6443c09e7173";
    let (st, _, got) = send(&s, "okta/07-get-user", &[(okta_id, &id)]).await;
    assert_eq!(
        (st, got["userName"].as_str()),
        (StatusCode::OK, Some("test.user@okta.local"))
    );
    let (st, _, put) = send(&s, "okta/08-put-user-profile-update", &[(okta_id, &id)]).await;
    assert_eq!(st, StatusCode::OK, "{put}");
    assert_eq!(put["name"]["middleName"], "Excited");
    assert_eq!(put["name"]["givenName"], "Another");
    let (st, _, off) = send(&s, "okta/09-patch-user-deactivate", &[(okta_id, &id)]).await;
    assert_eq!((st, &off["active"]), (StatusCode::OK, &json!(false)));

    // A second member for the group exchanges.
    let (_, _, other) = s.call(Method::POST, "/Users", Some(&json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "second@okta.local" }))).await;
    let other_id = other["id"].as_str().unwrap().to_string();
    let (st, _, group) = send(&s, "okta/10-create-group", &[]).await;
    assert_eq!(st, StatusCode::CREATED, "{group}");
    let gid = group["id"].as_str().unwrap().to_string();
    let okta_gid = "abf4dd94-a4c0-4f67-89c9-76b03340cb9b";
    let sub = [
        (okta_gid, gid.as_str()),
        (okta_id, id.as_str()),
        ("89bb1940-b905-4575-9e7f-6f887cfb368e", other_id.as_str()),
    ];
    let (st, _, page) = send(&s, "okta/11-list-groups-import-page-DERIVED", &[]).await;
    assert_eq!((st, ids(&page)), (StatusCode::OK, vec![gid.clone()]));
    let (st, _, g) = send(&s, "okta/12-get-group", &sub).await;
    assert_eq!(
        (st, g["displayName"].as_str()),
        (StatusCode::OK, Some("Test SCIMv2"))
    );
    let (st, _, g) = send(&s, "okta/13-patch-group-rename", &sub).await;
    assert_eq!(st, StatusCode::OK, "{g}");
    // Put `other` in, then Okta's remove-other/add-user exchange.
    s.call(Method::PATCH, &format!("/Groups/{gid}"), Some(&json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{ "op": "add", "path": "members", "value": [{ "value": other_id }] }] }))).await;
    let (st, _, g) = send(&s, "okta/14-patch-group-members-remove-add", &sub).await;
    assert_eq!(st, StatusCode::OK, "{g}");
    let members: Vec<&str> = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(members, [id.as_str()]);
    let (st, _, g) = send(&s, "okta/15-patch-group-members-replace", &sub).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(g["members"].as_array().unwrap().len(), 2);
    let (st, _, _) = send(&s, "okta/16-delete-group", &sub).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}

async fn tenants_never_see_each_other(h: &Harness) {
    let s = start(h.store.clone()).await;
    let (_, other_token) = support::inbound_tenant(&*h.store, "Elsewhere").await;
    let user = json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "shared.name@example.org" });
    let (st, _, mine) = s.call(Method::POST, "/Users", Some(&user)).await;
    assert_eq!(st, StatusCode::CREATED);
    let id = mine["id"].as_str().unwrap();
    // The same userName is free in the other organization.
    let (st, _, theirs) = s
        .call_as(&other_token, Method::POST, "/Users", Some(&user))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    // The other organization cannot read, list, change or delete ours.
    for (m, body) in [
        (Method::GET, None),
        (Method::PUT, Some(user.clone())),
        (
            Method::PATCH,
            Some(
                json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{ "op": "replace", "path": "active", "value": false }] }),
            ),
        ),
        (Method::DELETE, None),
    ] {
        let (st, _, _) = s
            .call_as(
                &other_token,
                m.clone(),
                &format!("/Users/{id}"),
                body.as_ref(),
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{m}");
    }
    let (_, _, list) = s.call_as(&other_token, Method::GET, "/Users", None).await;
    assert_eq!(ids(&list), vec![theirs["id"].as_str().unwrap().to_string()]);
    // Nor put our user into their group.
    let g = json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "g", "members": [{ "value": id }] });
    let (st, _, err) = s
        .call_as(&other_token, Method::POST, "/Groups", Some(&g))
        .await;
    assert_eq!(
        (st, err["scimType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalidValue"))
    );
    let (_, _, still) = s.call(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(still["active"], true);
    // No token, a wrong token, an API token: 401 with a Bearer challenge.
    let api = h
        .store
        .create_api_token(
            &Actor::operator("t"),
            s.org,
            &NewApiToken {
                access: Access::Read,
                name: "api".into(),
                scope: TokenScope::Api,
                connection_id: None,
                expires_at: None,
            },
        )
        .await
        .unwrap();
    for token in [
        "",
        "scd_00000000000000000000000000000000_nope",
        api.text.expose(),
    ] {
        let resp = s
            .client
            .get(format!("{}/Users", s.base))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(
            resp.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
    let resp = s
        .client
        .get(format!("{}/Users", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

async fn bad_input_gets_the_right_error_and_persists_nothing(h: &Harness) {
    let s = start(h.store.clone()).await;
    let (_, _, u) = s.call(Method::POST, "/Users", Some(&json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "keep@example.org" }))).await;
    let id = u["id"].as_str().unwrap().to_string();
    let audit_before = h
        .store
        .list_audit(
            s.org,
            &AuditFilter {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .len();
    let raw = |method: Method, path: String, ct: Option<&'static str>, body: String| {
        let s = &s;
        async move {
            let mut req = s
                .client
                .request(method, format!("{}{path}", s.base))
                .bearer_auth(&s.token)
                .body(body);
            if let Some(ct) = ct {
                req = req.header("content-type", ct);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let body: Value =
                serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null);
            (status, body)
        }
    };
    let user = |extra: Value| {
        let mut u = json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "new@example.org" });
        u.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        u.to_string()
    };
    let scim = Some("application/scim+json");
    /// (method, path, content type, body, expected status, expected scimType)
    type Case = (
        Method,
        String,
        Option<&'static str>,
        String,
        u16,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (Method::POST, "/Users".into(), scim, "{\"userName\": ".into(), 400, Some("invalidSyntax")),
        (Method::POST, "/Users".into(), scim, "[1,2,3]".into(), 400, Some("invalidSyntax")),
        (Method::POST, "/Users".into(), Some("text/plain"), user(json!({})), 415, None),
        (Method::POST, "/Users".into(), None, user(json!({})), 415, None),
        (Method::POST, "/Users".into(), scim, format!("{{\"userName\":\"{}\"}}", "x".repeat(2 * 1024 * 1024)), 413, None),
        (Method::POST, "/Users".into(), scim, json!({ "schemas": ["urn:example:not:scim"], "userName": "a" }).to_string(), 400, Some("invalidSyntax")),
        (Method::POST, "/Users".into(), scim, json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"] }).to_string(), 400, Some("invalidValue")),
        (Method::POST, "/Users".into(), scim, user(json!({ "active": "perhaps" })), 400, Some("invalidValue")),
        (Method::POST, "/Users".into(), scim, user(json!({ "emails": "not-a-list-of-objects" })), 400, Some("invalidValue")),
        (Method::POST, "/Users".into(), scim, json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bad\u{0007}bell" }).to_string(), 400, Some("invalidValue")),
        (Method::POST, "/Users".into(), scim, json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "KEEP@example.org" }).to_string(), 409, Some("uniqueness")),
        (Method::GET, "/Users?filter=userName%20eq".into(), None, String::new(), 400, Some("invalidFilter")),
        (Method::GET, "/Users?filter=shoeSize%20eq%20%229%22".into(), None, String::new(), 400, Some("invalidFilter")),
        (Method::GET, "/Users?filter=active%20gt%20true".into(), None, String::new(), 400, Some("invalidFilter")),
        (Method::POST, "/Users".into(), scim, json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x".repeat(3000) }).to_string(), 400, Some("invalidValue")),
        (Method::POST, "/Users".into(), scim, user(json!({ "displayName": "nul\u{0}inside" })), 400, Some("invalidValue")),
        (Method::POST, "/Users".into(), scim, user(json!({ "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "\u{0}" } })), 400, Some("invalidValue")),
        (Method::GET, "/Users?filter=userName%20eq%20%22%5Cu0000%22".into(), None, String::new(), 400, Some("invalidFilter")),
        (Method::GET, "/Users?count=many".into(), None, String::new(), 400, Some("invalidValue")),
        (Method::GET, "/Users?sortOrder=sideways".into(), None, String::new(), 400, Some("invalidValue")),
        (Method::GET, "/Users/not-a-uuid".into(), None, String::new(), 404, None),
        (Method::GET, "/Nope".into(), None, String::new(), 404, None),
        (Method::PATCH, format!("/Users/{id}"), scim, json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{ "op": "replace", "path": "id", "value": "x" }] }).to_string(), 400, Some("mutability")),
        (Method::PATCH, format!("/Users/{id}"), scim, json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{ "op": "replace", "path": "displayName", "value": "ok" }, { "op": "remove", "path": "emails[type eq \"pager\"]" }] }).to_string(), 400, Some("noTarget")),
        (Method::PATCH, format!("/Users/{id}"), scim, json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{ "op": "replace", "path": "emails[type eq", "value": "x" }] }).to_string(), 400, Some("invalidPath")),
        (Method::PUT, format!("/Users/{id}"), scim, user(json!({})), 412, None),
    ];
    for (method, path, ct, body, status, scim_type) in cases {
        let resp_status;
        let resp_body;
        if status == 412 {
            let resp = s
                .client
                .request(method.clone(), format!("{}{path}", s.base))
                .bearer_auth(&s.token)
                .header("content-type", "application/scim+json")
                .header("if-match", "W/\"99\"")
                .body(body)
                .send()
                .await
                .unwrap();
            resp_status = resp.status();
            resp_body = serde_json::from_str::<Value>(&resp.text().await.unwrap()).unwrap();
        } else {
            (resp_status, resp_body) = raw(method.clone(), path.clone(), ct, body).await;
        }
        assert_eq!(resp_status.as_u16(), status, "{method} {path}: {resp_body}");
        assert_eq!(resp_body["status"], status.to_string(), "{method} {path}");
        assert_eq!(
            resp_body["scimType"].as_str(),
            scim_type,
            "{method} {path}: {resp_body}"
        );
        assert_eq!(
            resp_body["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
        );
    }
    // Nothing was persisted: one user, unchanged, and no new audit events.
    assert_eq!(h.store.count_users(s.org).await.unwrap(), 1);
    let (_, _, kept) = s.call(Method::GET, &format!("/Users/{id}"), None).await;
    assert!(
        kept.get("displayName").is_none(),
        "the all-or-nothing PATCH changed nothing"
    );
    assert_eq!(kept["meta"]["version"], "W/\"1\"");
    let audit_after = h
        .store
        .list_audit(
            s.org,
            &AuditFilter {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .len();
    assert_eq!(audit_after, audit_before);
    // Hostile but valid Unicode is data: stored and returned exactly.
    let name = "ʇǝsʇ\u{202e}evil\u{200d}🧑‍⚕️@example.org";
    let (st, _, u) = s.call(Method::POST, "/Users", Some(&json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name }))).await;
    assert_eq!(
        (st, u["userName"].as_str()),
        (StatusCode::CREATED, Some(name))
    );
    // If-Match with the right version works; If-None-Match gives 304.
    let resp = s
        .client
        .get(format!("{}/Users/{id}", s.base))
        .bearer_auth(&s.token)
        .header("if-none-match", "W/\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    let resp = s.client.put(format!("{}/Users/{id}", s.base)).bearer_auth(&s.token).header("content-type", "application/scim+json").header("if-match", "W/\"1\"").body(json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "keep@example.org", "title": "Nurse" }).to_string()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["etag"], "W/\"2\"");
}

async fn discovery_tells_the_truth(h: &Harness) {
    let s = start(h.store.clone()).await;
    let (st, _, spc) = s.call(Method::GET, "/ServiceProviderConfig", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        (
            spc["patch"]["supported"].as_bool(),
            spc["filter"]["supported"].as_bool(),
            spc["bulk"]["supported"].as_bool()
        ),
        (Some(true), Some(true), Some(false))
    );
    assert_eq!(spc["etag"]["supported"], true);
    assert_eq!(spc["sort"]["supported"], true);
    let (_, _, types) = s.call(Method::GET, "/ResourceTypes", None).await;
    assert_eq!(types["totalResults"], 2);
    let (_, _, user_type) = s.call(Method::GET, "/ResourceTypes/User", None).await;
    assert_eq!(
        user_type["schemaExtensions"][0]["schema"],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    );
    let (_, _, schemas) = s.call(Method::GET, "/Schemas", None).await;
    assert_eq!(schemas["totalResults"], 3);
    let (_, _, user_schema) = s
        .call(
            Method::GET,
            "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
            None,
        )
        .await;
    let password = user_schema["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "password")
        .unwrap();
    assert_eq!(
        (
            password["returned"].as_str(),
            password["mutability"].as_str()
        ),
        (Some("never"), Some("writeOnly"))
    );
    // Sorting and paging as advertised.
    for n in ["c", "a", "b"] {
        s.call(Method::POST, "/Users", Some(&json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": n }))).await;
    }
    let (_, _, page) = s
        .call(
            Method::GET,
            "/Users?sortBy=userName&sortOrder=descending&startIndex=2&count=1&attributes=userName",
            None,
        )
        .await;
    assert_eq!(
        (
            page["totalResults"].as_u64(),
            page["startIndex"].as_u64(),
            page["itemsPerPage"].as_u64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(page["Resources"][0]["userName"], "b");
    assert!(
        page["Resources"][0].get("active").is_none(),
        "attributes=userName trims the rest"
    );
    assert!(
        page["Resources"][0]["id"].is_string(),
        "id is always returned"
    );
    let (_, _, searched) = s.call(Method::POST, "/Users/.search", Some(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": "userName sw \"a\" or userName eq \"c\"", "sortBy": "userName", "excludedAttributes": ["meta"]
    }))).await;
    let names: Vec<&str> = searched["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "c"]);
    assert!(searched["Resources"][0].get("meta").is_none());
}

async fn delete_follows_the_connection_policy(h: &Harness) {
    let s = start(h.store.clone()).await;
    let conn = h.store.list_connections(s.org).await.unwrap().remove(0);
    h.store
        .update_connection(
            &Actor::operator("t"),
            s.org,
            conn.id,
            &ConnectionUpdate {
                settings: Some(json!({ "delete_policy": "deprovision" })),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let body = json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "leaver@example.org" });
    let (_, _, u) = s.call(Method::POST, "/Users", Some(&body)).await;
    let id = u["id"].as_str().unwrap().to_string();
    let (_, _, g) = s.call(Method::POST, "/Groups", Some(&json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Ward", "members": [{ "value": id }] }))).await;
    let (st, _, _) = s.call(Method::DELETE, &format!("/Users/{id}"), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    // Gone for SCIM...
    let (st, _, _) = s.call(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, _, list) = s
        .call(
            Method::GET,
            "/Users?filter=userName%20eq%20%22leaver@example.org%22",
            None,
        )
        .await;
    assert_eq!(list["totalResults"], 0);
    let (st, _, _) = s.call(Method::DELETE, &format!("/Users/{id}"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // ...kept in the store, suspended and out of its groups, with the audit trail.
    let uid: UserId = id.parse().unwrap();
    let kept = h.store.user(s.org, uid).await.unwrap().unwrap();
    assert_eq!(
        (kept.active, kept.lifecycle_state),
        (false, LifecycleState::Deprovisioned)
    );
    let gid: GroupId = g["id"].as_str().unwrap().parse().unwrap();
    assert!(h.store.group_members(s.org, gid).await.unwrap().is_empty());
    let audit = h
        .store
        .list_audit(
            s.org,
            &AuditFilter {
                action_prefix: Some("user.deprovision".into()),
                limit: 5,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    // Coming back re-provisions the same record.
    let (st, _, back) = s.call(Method::POST, "/Users", Some(&body)).await;
    assert_eq!(
        (st, back["id"].as_str()),
        (StatusCode::CREATED, Some(id.as_str()))
    );
    assert_eq!(back["active"], true);
    assert_eq!(
        h.store
            .user(s.org, uid)
            .await
            .unwrap()
            .unwrap()
            .lifecycle_state,
        LifecycleState::Active
    );
}
