//! A SCIM 2.0 application that keeps its users and groups in memory: the "fast local SCIM
//! target" of `scimdesk bench wave`. It answers like a real service provider (RFC 7644):
//! `userName` unique case-insensitively (409 `uniqueness`), filters with `eq`/`or` and the
//! rest of the filter grammar, paging, PATCH (through scimdesk's own PatchOp engine), PUT,
//! DELETE, ETags and `Location`, and SCIM error bodies. It spends next to no CPU, so a
//! benchmark that provisions to it measures scimdesk and not the application.
//!
//! It is a test double: provisioning to real applications never starts one. Equality
//! look-ups on `id`, `userName`, `externalId` and `displayName` (and `or`s of them, which is
//! what the engine's batched look-up sends) use indexes; any other filter scans.

use crate::api::scim::list::list_response;
use crate::api::scim::response::{ApiError, ApiResult, ScimResponse};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use scimdesk_scim::filter::{CompValue, CompareOp, Filter, matches, parse, validate};
use scimdesk_scim::resource::canonicalize;
use scimdesk_scim::schema::{GROUP, ResourceSchema, USER};
use scimdesk_scim::{ScimError, patch};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

/// Most resources one page returns.
const MAX_PAGE: usize = 1000;

/// One resource type's documents and the indexes of its look-up attributes.
#[derive(Default)]
struct Collection {
    /// Documents by id, in creation order (ids are ordered).
    docs: BTreeMap<String, Value>,
    /// `userName` (users) or `displayName` (groups), lower-cased → ids.
    by_name: HashMap<String, HashSet<String>>,
    /// `externalId` → ids (case-exact, RFC 7643 §3.1).
    by_external_id: HashMap<String, HashSet<String>>,
    next: u64,
}

impl Collection {
    fn index(&mut self, id: &str, doc: &Value, name_attr: &str, add: bool) {
        let keys = [
            (
                doc.get(name_attr)
                    .and_then(Value::as_str)
                    .map(str::to_lowercase),
                true,
            ),
            (
                doc.get("externalId")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                false,
            ),
        ];
        for (key, is_name) in keys {
            let Some(key) = key else { continue };
            let map = if is_name {
                &mut self.by_name
            } else {
                &mut self.by_external_id
            };
            if add {
                map.entry(key).or_default().insert(id.to_string());
            } else if let Some(set) = map.get_mut(&key) {
                set.remove(id);
                if set.is_empty() {
                    map.remove(&key);
                }
            }
        }
    }
}

/// The application's state.
struct Memory {
    base: String,
    token: String,
    users: RwLock<Collection>,
    groups: RwLock<Collection>,
}

/// Which resource type a route serves.
#[derive(Clone, Copy)]
enum Kind {
    User,
    Group,
}

impl Kind {
    fn schema(self) -> &'static ResourceSchema {
        match self {
            Kind::User => &USER,
            Kind::Group => &GROUP,
        }
    }
    fn name_attr(self) -> &'static str {
        match self {
            Kind::User => "userName",
            Kind::Group => "displayName",
        }
    }
    fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }
    fn resource_type(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }
    /// `userName` is unique (RFC 7643 §4.1.1); a group's `displayName` is not.
    fn name_unique(self) -> bool {
        matches!(self, Kind::User)
    }
}

type Shared = Arc<Memory>;

/// The in-memory application as a router serving `/scim/v2/...`, accepting `token` as its
/// Bearer token; `base` is its SCIM base URL (for `meta.location`).
pub fn app(base: String, token: String) -> Router {
    let state = Arc::new(Memory {
        base,
        token,
        users: RwLock::default(),
        groups: RwLock::default(),
    });
    let router = Router::new().route(
        "/scim/v2/ServiceProviderConfig",
        get(service_provider_config),
    );
    resource_routes(resource_routes(router, Kind::User), Kind::Group).with_state(state)
}

/// The list, create, read, replace, modify and delete routes of one resource type.
fn resource_routes(router: Router<Shared>, kind: Kind) -> Router<Shared> {
    let base = format!("/scim/v2/{}", kind.endpoint());
    router
        .route(
            &base,
            get(move |s, h, q| list(s, h, q, kind)).post(move |s, h, b| create(s, h, b, kind)),
        )
        .route(
            &format!("{base}/{{id}}"),
            get(move |s, h, p| read(s, h, p, kind))
                .put(move |s, h, p, b| replace(s, h, p, b, kind))
                .patch(move |s, h, p, b| modify(s, h, p, b, kind))
                .delete(move |s, h, p| remove(s, h, p, kind)),
        )
}

fn authorize(state: &Memory, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented == Some(state.token.as_str()) {
        Ok(())
    } else {
        Err(ApiError(ScimError::status(
            401,
            "a valid bearer token is required",
        )))
    }
}

fn body_json(bytes: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError(ScimError::invalid_syntax(format!(
            "the body is not JSON: {e}"
        )))
    })
}

fn not_found(kind: Kind, id: &str) -> ApiError {
    ApiError(ScimError::status(
        404,
        format!("{} {id} not found", kind.resource_type()),
    ))
}

fn lock_err() -> ApiError {
    ApiError(ScimError::status(
        500,
        "the application's state is poisoned",
    ))
}

async fn service_provider_config(State(s): State<Shared>, headers: HeaderMap) -> ApiResult {
    authorize(&s, &headers)?;
    Ok(ScimResponse::ok(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_PAGE},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{"type": "oauthbearertoken", "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token"}]
    })))
}

/// Stamps `id`, `schemas` and `meta` on a canonical document.
fn finish(doc: &mut Value, kind: Kind, id: &str, version: u64, base: &str) {
    if let Some(m) = doc.as_object_mut() {
        m.insert("id".into(), json!(id));
        m.insert(
            "meta".into(),
            json!({
                "resourceType": kind.resource_type(),
                "location": format!("{base}/{}/{id}", kind.endpoint()),
                "version": format!("W/\"{version}\""),
            }),
        );
    }
}

fn version_of(doc: &Value) -> u64 {
    doc.pointer("/meta/version")
        .and_then(Value::as_str)
        .and_then(|v| v.trim_start_matches("W/").trim_matches('"').parse().ok())
        .unwrap_or(0)
}

/// Refuses a document whose unique name another resource holds.
fn check_unique(
    c: &Collection,
    kind: Kind,
    doc: &Value,
    own_id: Option<&str>,
) -> Result<(), ApiError> {
    if !kind.name_unique() {
        return Ok(());
    }
    let Some(name) = doc.get(kind.name_attr()).and_then(Value::as_str) else {
        return Err(ApiError(ScimError::invalid_value(format!(
            "{} is required",
            kind.name_attr()
        ))));
    };
    let taken = c
        .by_name
        .get(&name.to_lowercase())
        .is_some_and(|ids| ids.iter().any(|id| Some(id.as_str()) != own_id));
    if taken {
        return Err(ApiError(ScimError::uniqueness(format!(
            "{} {name:?} is taken",
            kind.name_attr()
        ))));
    }
    Ok(())
}

async fn create(State(s): State<Shared>, headers: HeaderMap, body: Bytes, kind: Kind) -> ApiResult {
    authorize(&s, &headers)?;
    let mut doc = canonicalize(&body_json(&body)?, kind.schema())?;
    let mut c = collection(&s, kind).write().map_err(|_| lock_err())?;
    check_unique(&c, kind, &doc, None)?;
    c.next += 1;
    let id = format!("{:012}", c.next);
    finish(&mut doc, kind, &id, 1, &s.base);
    c.index(&id, &doc, kind.name_attr(), true);
    c.docs.insert(id, doc.clone());
    Ok(ScimResponse::resource(StatusCode::CREATED, doc))
}

fn collection(s: &Memory, kind: Kind) -> &RwLock<Collection> {
    match kind {
        Kind::User => &s.users,
        Kind::Group => &s.groups,
    }
}

async fn read(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    kind: Kind,
) -> ApiResult {
    authorize(&s, &headers)?;
    let c = collection(&s, kind).read().map_err(|_| lock_err())?;
    let doc = c.docs.get(&id).ok_or_else(|| not_found(kind, &id))?;
    Ok(ScimResponse::resource(StatusCode::OK, doc.clone()))
}

/// Stores `doc` as the new state of `id` (already canonical), bumping its version.
fn store_new(s: &Memory, c: &mut Collection, kind: Kind, id: &str, mut doc: Value) -> ApiResult {
    let old = c.docs.get(id).ok_or_else(|| not_found(kind, id))?.clone();
    check_unique(c, kind, &doc, Some(id))?;
    finish(&mut doc, kind, id, version_of(&old) + 1, &s.base);
    c.index(id, &old, kind.name_attr(), false);
    c.index(id, &doc, kind.name_attr(), true);
    c.docs.insert(id.to_string(), doc.clone());
    Ok(ScimResponse::resource(StatusCode::OK, doc))
}

async fn replace(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
    kind: Kind,
) -> ApiResult {
    authorize(&s, &headers)?;
    let doc = canonicalize(&body_json(&body)?, kind.schema())?;
    let mut c = collection(&s, kind).write().map_err(|_| lock_err())?;
    store_new(&s, &mut c, kind, &id, doc)
}

async fn modify(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
    kind: Kind,
) -> ApiResult {
    authorize(&s, &headers)?;
    let request = body_json(&body)?;
    let mut c = collection(&s, kind).write().map_err(|_| lock_err())?;
    let current = c.docs.get(&id).ok_or_else(|| not_found(kind, &id))?;
    let mut base = current.clone();
    if let Some(m) = base.as_object_mut() {
        m.remove("meta");
        m.remove("id");
    }
    let doc = patch::apply(&base, &request, kind.schema())?;
    store_new(&s, &mut c, kind, &id, doc)
}

async fn remove(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    kind: Kind,
) -> ApiResult {
    authorize(&s, &headers)?;
    {
        let mut c = collection(&s, kind).write().map_err(|_| lock_err())?;
        let doc = c.docs.remove(&id).ok_or_else(|| not_found(kind, &id))?;
        c.index(&id, &doc, kind.name_attr(), false);
    }
    if matches!(kind, Kind::User) {
        // A deleted user leaves its groups, as a real application's would.
        let mut g = s.groups.write().map_err(|_| lock_err())?;
        for doc in g.docs.values_mut() {
            if let Some(members) = doc.get_mut("members").and_then(Value::as_array_mut) {
                members.retain(|m| m.get("value").and_then(Value::as_str) != Some(id.as_str()));
            }
        }
    }
    Ok(ScimResponse::no_content())
}

/// Query parameters of a list request.
#[derive(Debug, Deserialize)]
struct ListQuery {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<usize>,
    count: Option<usize>,
}

/// The ids an `or` of equality comparisons on indexed attributes selects, or `None` when the
/// filter needs a scan.
fn indexed(filter: &Filter, c: &Collection, kind: Kind) -> Option<HashSet<String>> {
    match filter {
        Filter::Or(l, r) => {
            let mut ids = indexed(l, c, kind)?;
            ids.extend(indexed(r, c, kind)?);
            Some(ids)
        }
        Filter::Compare(path, CompareOp::Eq, CompValue::Str(v))
            if path.uri.is_none() && path.sub.is_none() =>
        {
            let name = path.name.as_str();
            let hits = if name.eq_ignore_ascii_case("id") {
                c.docs
                    .contains_key(v)
                    .then(|| v.clone())
                    .into_iter()
                    .collect()
            } else if name.eq_ignore_ascii_case("externalId") {
                c.by_external_id.get(v).cloned().unwrap_or_default()
            } else if name.eq_ignore_ascii_case(kind.name_attr()) {
                // The index is lower-cased; the comparison is case-exact for a group's name.
                let found = c
                    .by_name
                    .get(&v.to_lowercase())
                    .cloned()
                    .unwrap_or_default();
                if kind.name_unique() {
                    found
                } else {
                    found
                        .into_iter()
                        .filter(|id| {
                            c.docs
                                .get(id)
                                .and_then(|d| d.get(kind.name_attr()))
                                .and_then(Value::as_str)
                                == Some(v.as_str())
                        })
                        .collect()
                }
            } else {
                return None;
            };
            Some(hits)
        }
        _ => None,
    }
}

async fn list(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
    kind: Kind,
) -> ApiResult {
    authorize(&s, &headers)?;
    let filter = match q.filter.as_deref() {
        Some(f) => {
            let f = parse(f)?;
            validate(&f, kind.schema())?;
            Some(f)
        }
        None => None,
    };
    let c = collection(&s, kind).read().map_err(|_| lock_err())?;
    let hits: Vec<&Value> = match &filter {
        None => c.docs.values().collect(),
        Some(f) => match indexed(f, &c, kind) {
            Some(ids) => {
                let mut ids: Vec<String> = ids.into_iter().collect();
                ids.sort();
                ids.iter().filter_map(|id| c.docs.get(id)).collect()
            }
            None => c
                .docs
                .values()
                .filter(|d| matches(f, d, kind.schema()))
                .collect(),
        },
    };
    let start = q.start_index.unwrap_or(1).max(1);
    let count = q.count.unwrap_or(100).min(MAX_PAGE);
    let page: Vec<Value> = hits
        .iter()
        .skip(start - 1)
        .take(count)
        .map(|d| (*d).clone())
        .collect();
    list_response(page, hits.len() as u64, start as u64)
}
