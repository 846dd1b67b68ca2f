//! A Zitadel test double: a real HTTP server on 127.0.0.1 that answers the calls a Zitadel
//! source makes, as Zitadel v4 does, from the fixtures in `tests/fixtures/zitadel/`
//! (organization `311520947226181635`): OIDC discovery, client-credentials tokens (HTTP Basic,
//! refusing a token asked without the `urn:zitadel:iam:org:project:id:zitadel:aud` scope, as
//! Zitadel's APIs then refuse it), the user service v2 search `POST /v2/users` and the Connect
//! call `AuthorizationService/ListAuthorizations` (paged by offset and limit, with 64-bit
//! integers as protojson strings, and refusing a request without `Content-Type:
//! application/json`), and the organization's SCIM `/Users`. It records what was asked.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The Zitadel organization of the fixtures.
pub const ORG: &str = "311520947226181635";
/// The client secret the double accepts.
pub const SECRET: &str = "zitadel-secret";
const AUDIENCE: &str = "urn:zitadel:iam:org:project:id:zitadel:aud";

fn fixture(name: &str) -> Value {
    super::fixture_body("zitadel", name)
}

/// The instance's state, changeable by tests.
pub struct Instance {
    /// Users as the user service v2 represents them.
    pub users: Vec<Value>,
    /// Authorizations as the authorization service v2 represents them.
    pub authorizations: Vec<Value>,
    /// Users as its SCIM endpoint represents them.
    pub scim_users: Vec<Value>,
    /// The scopes each token was asked with.
    pub scopes: Vec<String>,
    /// Each API request: method, path and, for searches, the body's offset.
    pub requests: Vec<String>,
}

/// The double and where it listens.
#[derive(Clone)]
pub struct Zitadel {
    /// `http://127.0.0.1:PORT`: the instance's root, its issuer and a connection's base URL.
    pub base: String,
    /// Its state.
    pub instance: Arc<Mutex<Instance>>,
}

impl Zitadel {
    /// Starts the double with the fixtures' four users and three authorizations.
    pub async fn start() -> Zitadel {
        let instance = Instance {
            users: fixture("05-v2-list-users")["result"]
                .as_array()
                .unwrap()
                .clone(),
            authorizations: fixture("06-v2-list-authorizations")["authorizations"]
                .as_array()
                .unwrap()
                .clone(),
            scim_users: fixture("01-scim-list-users")["Resources"]
                .as_array()
                .unwrap()
                .clone(),
            scopes: Vec::new(),
            requests: Vec::new(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let z = Zitadel {
            base,
            instance: Arc::new(Mutex::new(instance)),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/oauth/v2/token", post(token))
            .route("/v2/users", post(list_users))
            .route(
                "/zitadel.authorization.v2.AuthorizationService/ListAuthorizations",
                post(list_authorizations),
            )
            .route("/scim/v2/{org}/Users", get(scim_users))
            .with_state(z.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        z
    }

    /// Sets a user's state (`USER_STATE_ACTIVE`, `USER_STATE_INACTIVE`, …).
    pub fn set_state(&self, username: &str, state: &str) {
        let mut i = self.instance.lock().unwrap();
        let u = i
            .users
            .iter_mut()
            .find(|u| u["username"] == username)
            .unwrap();
        u["state"] = json!(state);
    }

    /// Drops a role key from every authorization of a user.
    pub fn revoke(&self, user_id: &str, role: &str) {
        let mut i = self.instance.lock().unwrap();
        for a in i.authorizations.iter_mut() {
            if a["user"]["id"] == user_id
                && let Some(roles) = a["roles"].as_array_mut()
            {
                roles.retain(|r| r["key"] != role);
            }
        }
    }
}

async fn discovery(State(z): State<Zitadel>) -> Response {
    axum::Json(json!({
        "issuer": z.base,
        "authorization_endpoint": format!("{}/oauth/v2/authorize", z.base),
        "token_endpoint": format!("{}/oauth/v2/token", z.base),
        "jwks_uri": format!("{}/oauth/v2/keys", z.base),
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
    }))
    .into_response()
}

async fn token(State(z): State<Zitadel>, headers: HeaderMap, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(b).ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| pair.split_once(':').map(|(_, s)| s.to_string()))
        .or_else(|| form.get("client_secret").cloned());
    if secret.as_deref() != Some(SECRET) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client", "error_description": "client not found"})),
        )
            .into_response();
    }
    let scope = form.get("scope").cloned().unwrap_or_default();
    let mut i = z.instance.lock().unwrap();
    i.scopes.push(scope.clone());
    let mut answer = fixture("04-token-client-credentials");
    // A token without the API audience is issued, but the APIs refuse it.
    answer["access_token"] = json!(if scope.split(' ').any(|s| s == AUDIENCE) {
        "zitadel-api-token"
    } else {
        "zitadel-token-without-audience"
    });
    axum::Json(answer).into_response()
}

/// Checks a call of Zitadel's JSON APIs; the answer to send instead when it is refused.
fn refused(headers: &HeaderMap, connect: bool) -> Option<Response> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != "Bearer zitadel-api-token" {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"code": 16, "message": "auth header missing or invalid"})),
            )
                .into_response(),
        );
    }
    let content = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content.starts_with("application/json") {
        return Some(StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response());
    }
    if connect && headers.get("connect-protocol-version").is_none() {
        return Some(
            (
                StatusCode::BAD_REQUEST,
                "missing required header: set Connect-Protocol-Version to \"1\"",
            )
                .into_response(),
        );
    }
    None
}

/// An offset and limit from a search body, accepting protojson strings or numbers.
fn window(v: &Value) -> (usize, usize) {
    let num = |x: &Value| {
        x.as_u64()
            .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
    };
    (
        num(&v["offset"]).unwrap_or(0) as usize,
        num(&v["limit"]).unwrap_or(100) as usize,
    )
}

async fn list_users(State(z): State<Zitadel>, headers: HeaderMap, body: String) -> Response {
    if let Some(r) = refused(&headers, false) {
        return r;
    }
    let Ok(req) = serde_json::from_str::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let (offset, limit) = window(&req["query"]);
    let org = req["queries"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|q| q["organizationIdQuery"]["organizationId"].as_str())
        .map(str::to_string);
    let mut i = z.instance.lock().unwrap();
    i.requests.push(format!("POST /v2/users offset={offset}"));
    let rows: Vec<Value> = i
        .users
        .iter()
        .filter(|u| org.is_none() || u["details"]["resourceOwner"].as_str() == org.as_deref())
        .cloned()
        .collect();
    let total = rows.len();
    let page: Vec<Value> = rows.into_iter().skip(offset).take(limit).collect();
    axum::Json(json!({
        "details": {"totalResult": total.to_string(), "timestamp": "2026-11-28T08:41:03.512907Z"},
        "sortingColumn": "USER_FIELD_NAME_CREATION_DATE",
        "result": page,
    }))
    .into_response()
}

async fn list_authorizations(
    State(z): State<Zitadel>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(r) = refused(&headers, true) {
        return r;
    }
    let Ok(req) = serde_json::from_str::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let (offset, limit) = window(&req["pagination"]);
    let filters: Vec<Value> = req["filters"].as_array().cloned().unwrap_or_default();
    let wanted = |key: &str| {
        filters
            .iter()
            .find_map(|f| f[key]["id"].as_str().map(str::to_string))
    };
    let (org, project) = (wanted("organizationId"), wanted("projectId"));
    let mut i = z.instance.lock().unwrap();
    i.requests
        .push(format!("POST ListAuthorizations offset={offset}"));
    let rows: Vec<Value> = i
        .authorizations
        .iter()
        .filter(|a| org.is_none() || a["organization"]["id"].as_str() == org.as_deref())
        .filter(|a| project.is_none() || a["project"]["id"].as_str() == project.as_deref())
        .cloned()
        .collect();
    let total = rows.len();
    let page: Vec<Value> = rows.into_iter().skip(offset).take(limit).collect();
    axum::Json(json!({
        "pagination": {"totalResult": total.to_string(), "appliedLimit": limit.to_string()},
        "authorizations": page,
    }))
    .into_response()
}

async fn scim_users(
    State(z): State<Zitadel>,
    headers: HeaderMap,
    Path(org): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != "Bearer zitadel-api-token" {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if org != ORG {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(fixture("02-scim-error-no-membership")),
        )
            .into_response();
    }
    let start: usize = q
        .get("startIndex")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let count: usize = q.get("count").and_then(|s| s.parse().ok()).unwrap_or(100);
    let mut i = z.instance.lock().unwrap();
    i.requests
        .push(format!("GET /scim/v2/{org}/Users startIndex={start}"));
    let page: Vec<Value> = i
        .scim_users
        .iter()
        .skip(start.saturating_sub(1))
        .take(count)
        .cloned()
        .collect();
    (
        [(header::CONTENT_TYPE, "application/scim+json")],
        axum::Json(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            // As Zitadel does: the count asked for, not the number returned.
            "itemsPerPage": count,
            "totalResults": i.scim_users.len(),
            "startIndex": start,
            "Resources": page,
        })),
    )
        .into_response()
}
