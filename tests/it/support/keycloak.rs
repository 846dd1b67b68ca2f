//! A Keycloak test double: a real HTTP server on 127.0.0.1 that answers the admin REST API and
//! the realm's OIDC endpoints as Keycloak 26 does, from the fixtures in
//! `tests/fixtures/keycloak/` (realm `riverside`). It pages with `first`/`max`, returns empty
//! `subGroups` in listings (Keycloak 23+), answers `children` and `members` per group, issues
//! client-credentials tokens (refusing a wrong secret with `invalid_client`, and, when asked,
//! refusing a token after some uses as if it had expired), refuses a request whose `Accept`
//! does not allow JSON (406, as its JAX-RS resources do), and records what was asked. Changes
//! made through its helpers are logged as admin events (`GET /admin-events` with repeated
//! `resourceTypes`, `dateFrom` in epoch ms, `first`/`max`, `direction`), unless admin events
//! are turned off (`GET /events/config` then says so); single users, groups and
//! `group-by-path` are answered as Keycloak does, 404 for what is gone.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The client secret the double accepts.
pub const SECRET: &str = "kc-client-secret";

fn fixture(name: &str) -> Value {
    super::fixture_body("keycloak", name)
}

/// The realm's state, changeable by tests.
pub struct Realm {
    /// Users as the admin API represents them.
    pub users: Vec<Value>,
    /// Top-level groups (as listed: `subGroups` empty).
    pub top: Vec<Value>,
    /// Children by parent id.
    pub children: HashMap<String, Vec<Value>>,
    /// Member user ids by group id.
    pub members: HashMap<String, Vec<String>>,
    /// Tokens issued so far.
    pub issued: u32,
    /// Refuse a token after it has served this many requests (as if it expired).
    pub token_uses: Option<u32>,
    uses: HashMap<String, u32>,
    /// Every admin request's path and query, in order.
    pub requests: Vec<String>,
    /// Admin events logged so far (oldest first).
    pub events: Vec<Value>,
    /// Whether the realm logs admin events.
    pub admin_events: bool,
    /// The time of the last event (epoch ms): the wall clock, and later than the one before.
    pub clock: i64,
}

/// The double and where it listens.
#[derive(Clone)]
pub struct Keycloak {
    /// `http://127.0.0.1:PORT`: the server's root, as a connection's base URL.
    pub base: String,
    /// The realm.
    pub realm: Arc<Mutex<Realm>>,
}

impl Keycloak {
    /// Starts the double with the fixtures' realm: six users, the groups of
    /// `03-groups-top-level`, Clinical's children (`05-group-children`), Nursing's child ICU
    /// Nurses (from `04-groups-search-hierarchy`) and its members (`06-group-members`).
    pub async fn start() -> Keycloak {
        let users = fixture("01-users-list").as_array().unwrap().clone();
        let top = fixture("03-groups-top-level").as_array().unwrap().clone();
        let clinical = fixture("05-group-children").as_array().unwrap().clone();
        let hierarchy = fixture("04-groups-search-hierarchy");
        let mut icu = hierarchy[0]["subGroups"][0]["subGroups"][0].clone();
        icu["subGroups"] = json!([]);
        let clinical_id = top.iter().find(|g| g["name"] == "Clinical").unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let nursing_id = clinical.iter().find(|g| g["name"] == "Nursing").unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let icu_id = icu["id"].as_str().unwrap().to_string();
        let members: Vec<String> = fixture("06-group-members")
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        let realm = Realm {
            users,
            top,
            children: HashMap::from([(clinical_id, clinical), (nursing_id, vec![icu])]),
            members: HashMap::from([(icu_id, members)]),
            issued: 0,
            token_uses: None,
            uses: HashMap::new(),
            requests: Vec::new(),
            events: Vec::new(),
            admin_events: true,
            clock: 0,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let kc = Keycloak {
            base,
            realm: Arc::new(Mutex::new(realm)),
        };
        let app = Router::new()
            .route(
                "/realms/riverside/.well-known/openid-configuration",
                get(discovery),
            )
            .route(
                "/realms/riverside/protocol/openid-connect/token",
                post(token),
            )
            .route("/admin/realms/riverside/users", get(realm_users))
            .route("/admin/realms/riverside/groups", get(top_groups))
            .route(
                "/admin/realms/riverside/groups/{id}/children",
                get(children),
            )
            .route(
                "/admin/realms/riverside/groups/{id}/members",
                get(group_members),
            )
            .route("/admin/realms/riverside/users/{id}", get(one_user))
            .route("/admin/realms/riverside/groups/{id}", get(one_group))
            .route(
                "/admin/realms/riverside/group-by-path/{*path}",
                get(group_by_path),
            )
            .route("/admin/realms/riverside/events/config", get(events_config))
            .route("/admin/realms/riverside/admin-events", get(admin_events))
            .with_state(kc.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        kc
    }

    /// Sets a user's `enabled` (an admin event USER UPDATE).
    pub fn enable(&self, username: &str, enabled: bool) {
        let mut r = self.realm.lock().unwrap();
        let u = r
            .users
            .iter_mut()
            .find(|u| u["username"] == username)
            .unwrap();
        u["enabled"] = json!(enabled);
        let id = u["id"].as_str().unwrap().to_string();
        r.log("USER", "UPDATE", format!("users/{id}"));
    }

    /// Removes a user from a group, by the group's path (an admin event GROUP_MEMBERSHIP
    /// DELETE).
    pub fn leave(&self, username: &str, group_path: &str) {
        let uid = self.user_id(username);
        let mut r = self.realm.lock().unwrap();
        let gid = r.group(|g| g["path"] == group_path).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        r.members
            .entry(gid.clone())
            .or_default()
            .retain(|m| *m != uid);
        r.log(
            "GROUP_MEMBERSHIP",
            "DELETE",
            format!("users/{uid}/groups/{gid}"),
        );
    }

    /// Deletes a user (an admin event USER DELETE).
    pub fn delete_user(&self, username: &str) {
        let uid = self.user_id(username);
        let mut r = self.realm.lock().unwrap();
        r.users.retain(|u| u["id"] != uid.as_str());
        for m in r.members.values_mut() {
            m.retain(|m| *m != uid);
        }
        r.log("USER", "DELETE", format!("users/{uid}"));
    }

    /// The id of a user.
    pub fn user_id(&self, username: &str) -> String {
        let r = self.realm.lock().unwrap();
        r.users.iter().find(|u| u["username"] == username).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Realm {
    fn log(&mut self, resource: &str, operation: &str, path: String) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        self.clock = now.max(self.clock + 1);
        if self.admin_events {
            self.events.push(json!({
                "id": uuid::Uuid::new_v4().to_string(),
                "time": self.clock,
                "realmId": "51460a23-3bc9-4dfa-aad2-65a1a5a193d1",
                "operationType": operation,
                "resourceType": resource,
                "resourcePath": path,
            }));
        }
    }

    /// The first group, at any depth, that `pick` chooses.
    fn group(&self, pick: impl Fn(&Value) -> bool) -> Option<Value> {
        self.top
            .iter()
            .chain(self.children.values().flatten())
            .find(|g| pick(g))
            .cloned()
    }
}

async fn discovery(State(kc): State<Keycloak>) -> Response {
    let doc = fixture("10-openid-configuration")
        .to_string()
        .replace("https://sso.riverside-hospital.example", &kc.base);
    ([(header::CONTENT_TYPE, "application/json")], doc).into_response()
}

async fn token(State(kc): State<Keycloak>, headers: HeaderMap, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    // client_secret_basic (the id and secret form-encoded, then Base64) or client_secret_post.
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(b).ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| {
            let (_, secret) = pair.split_once(':')?;
            url::form_urlencoded::parse(format!("s={secret}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        });
    let secret = basic.or_else(|| form.get("client_secret").cloned());
    if secret.as_deref() != Some(SECRET)
        || form.get("grant_type").map(String::as_str) != Some("client_credentials")
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(fixture("09-token-invalid-client")),
        )
            .into_response();
    }
    let mut r = kc.realm.lock().unwrap();
    r.issued += 1;
    let mut answer = fixture("08-token-client-credentials");
    answer["access_token"] = json!(format!("kc-token-{}", r.issued));
    axum::Json(answer).into_response()
}

/// Checks the request as Keycloak would: JSON acceptable, a valid token. Records it; the
/// answer to send instead when it is refused.
fn refused(kc: &Keycloak, headers: &HeaderMap, what: String) -> Option<Response> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    if !(accept.contains("application/json") || accept.contains("*/*")) {
        return Some(StatusCode::NOT_ACCEPTABLE.into_response());
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let mut r = kc.realm.lock().unwrap();
    let known = token
        .strip_prefix("kc-token-")
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n >= 1 && n <= r.issued);
    let limit = r.token_uses;
    let used = r.uses.entry(token).or_insert(0);
    *used += 1;
    if !known || limit.is_some_and(|l| *used > l) {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": "HTTP 401 Unauthorized"})),
            )
                .into_response(),
        );
    }
    r.requests.push(what);
    None
}

fn page(rows: &[Value], q: &HashMap<String, String>) -> Vec<Value> {
    let first: usize = q.get("first").and_then(|f| f.parse().ok()).unwrap_or(0);
    let max: usize = q.get("max").and_then(|m| m.parse().ok()).unwrap_or(100);
    rows.iter().skip(first).take(max).cloned().collect()
}

fn described(path: &str, q: &HashMap<String, String>) -> String {
    let mut keys: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    keys.sort();
    format!("{path}?{}", keys.join("&"))
}

async fn realm_users(
    State(kc): State<Keycloak>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = refused(&kc, &headers, described("users", &q)) {
        return r;
    }
    let r = kc.realm.lock().unwrap();
    axum::Json(page(&r.users, &q)).into_response()
}

async fn top_groups(
    State(kc): State<Keycloak>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = refused(&kc, &headers, described("groups", &q)) {
        return r;
    }
    let r = kc.realm.lock().unwrap();
    axum::Json(page(&r.top, &q)).into_response()
}

async fn children(
    State(kc): State<Keycloak>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = refused(
        &kc,
        &headers,
        described(&format!("groups/{id}/children"), &q),
    ) {
        return r;
    }
    let r = kc.realm.lock().unwrap();
    let rows = r.children.get(&id).cloned().unwrap_or_default();
    axum::Json(page(&rows, &q)).into_response()
}

async fn group_members(
    State(kc): State<Keycloak>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = refused(
        &kc,
        &headers,
        described(&format!("groups/{id}/members"), &q),
    ) {
        return r;
    }
    let r = kc.realm.lock().unwrap();
    let ids = r.members.get(&id).cloned().unwrap_or_default();
    let rows: Vec<Value> = ids
        .iter()
        .filter_map(|m| r.users.iter().find(|u| u["id"] == m.as_str()).cloned())
        .collect();
    axum::Json(page(&rows, &q)).into_response()
}

async fn one_user(
    State(kc): State<Keycloak>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = refused(&kc, &headers, format!("users/{id}")) {
        return r;
    }
    let r = kc.realm.lock().unwrap();
    match r.users.iter().find(|u| u["id"] == id.as_str()) {
        Some(u) => axum::Json(u.clone()).into_response(),
        None => not_found("User not found"),
    }
}

async fn one_group(
    State(kc): State<Keycloak>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = refused(&kc, &headers, format!("groups/{id}")) {
        return r;
    }
    let r = kc.realm.lock().unwrap();
    match r.group(|g| g["id"] == id.as_str()) {
        Some(g) => axum::Json(g).into_response(),
        None => not_found("Could not find group by id"),
    }
}

async fn group_by_path(
    State(kc): State<Keycloak>,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Response {
    if let Some(r) = refused(&kc, &headers, format!("group-by-path/{path}")) {
        return r;
    }
    let r = kc.realm.lock().unwrap();
    let want = format!("/{}", path.trim_start_matches('/'));
    match r.group(|g| g["path"] == want.as_str()) {
        Some(g) => axum::Json(g).into_response(),
        None => not_found("Group path does not exist"),
    }
}

async fn events_config(State(kc): State<Keycloak>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&kc, &headers, "events/config".into()) {
        return r;
    }
    let r = kc.realm.lock().unwrap();
    axum::Json(json!({
        "eventsEnabled": false,
        "eventsListeners": ["jboss-logging"],
        "enabledEventTypes": [],
        "adminEventsEnabled": r.admin_events,
        "adminEventsDetailsEnabled": false,
    }))
    .into_response()
}

async fn admin_events(
    State(kc): State<Keycloak>,
    headers: HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let mut described: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    described.sort();
    if let Some(r) = refused(
        &kc,
        &headers,
        format!("admin-events?{}", described.join("&")),
    ) {
        return r;
    }
    let one = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let types: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "resourceTypes")
        .map(|(_, v)| v.as_str())
        .collect();
    let from: i64 = one("dateFrom").and_then(|d| d.parse().ok()).unwrap_or(0);
    let r = kc.realm.lock().unwrap();
    let mut rows: Vec<Value> = r
        .events
        .iter()
        .filter(|e| e["time"].as_i64().unwrap_or(0) >= from)
        .filter(|e| types.is_empty() || types.contains(&e["resourceType"].as_str().unwrap_or("")))
        .cloned()
        .collect();
    // Newest first unless asked otherwise, as Keycloak lists them.
    if one("direction").as_deref() != Some("asc") {
        rows.reverse();
    }
    let q: HashMap<String, String> = pairs.iter().cloned().collect();
    axum::Json(page(&rows, &q)).into_response()
}

fn not_found(message: &str) -> Response {
    (StatusCode::NOT_FOUND, axum::Json(json!({"error": message}))).into_response()
}
