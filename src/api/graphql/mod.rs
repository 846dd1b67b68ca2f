//! The GraphQL management API at `/graphql` on `scimdesk serve`'s listener (async-graphql 7.2,
//! June 2018 specification): typed reads of connections, health, the directory, mappings and
//! the audit log, and the operator's mutations through `engine::commands`. Every request is an
//! API token's ([`principal::Principal`]); every field declares the action it needs
//! ([`principal::Needs`]), checked with the one authorization model of `domain::access`.
//!
//! Hardening: a request body limit (413 beyond it), limits on query depth and complexity (a
//! list field costs its page size times its children), introspection only for authenticated
//! tokens (and off when configured), and errors that never carry SQL, paths or traces.

pub mod error;
pub mod inputs;
pub mod mutation;
pub mod principal;
pub mod query;
pub mod subscription;
pub mod types;

use crate::domain::TokenScope;
use crate::engine::Engine;
use crate::engine::HealthThresholds;
use crate::store::Store;
use async_graphql::extensions::apollo_persisted_queries::{
    ApolloPersistedQueries, LruCacheStorage,
};
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::{Data, Schema};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::Router;
use axum::body::Bytes;
use axum::extract::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use principal::Principal;
use std::sync::Arc;

/// The schema type.
pub type ApiSchema = Schema<query::Query, mutation::Mutation, subscription::Subscription>;

/// Where the API is mounted.
pub const PATH: &str = "/graphql";
/// The deepest query accepted. The schema has no cycles, so data queries stay under 8; the
/// standard introspection query (its `TypeRef` fragment nests `ofType` eight times) needs
/// about 13, and clients such as PyPI `gql` send it before anything else.
pub const MAX_DEPTH: usize = 16;
/// The most a query may cost (each field 1, list fields their page size times their children).
pub const MAX_COMPLEXITY: usize = 20_000;
/// How many persisted queries a process remembers.
pub const PERSISTED_QUERIES: usize = 1024;
/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The API's settings.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Health thresholds, as `connection health` uses them.
    pub health: HealthThresholds,
    /// The mass-removal guard of mapping changes.
    pub guard: crate::policy::impact::Guard,
    /// Whether authenticated tokens may introspect the schema.
    pub introspection: bool,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            health: HealthThresholds::default(),
            guard: Default::default(),
            introspection: true,
        }
    }
}

/// The schema, with the store, the serving process's engine (for live updates) and the
/// settings its resolvers read.
pub fn schema(
    store: Arc<dyn Store>,
    engine: Option<Arc<Engine>>,
    settings: &ApiSettings,
) -> ApiSchema {
    let mut builder = Schema::build(query::Query, mutation::Mutation, subscription::Subscription);
    if let Some(engine) = engine {
        builder = builder.data(engine);
    }
    builder
        // Persisted queries (APQ): a client may send a query's SHA-256 alone once the
        // server has seen it; a bounded cache per process.
        .extension(ApolloPersistedQueries::new(LruCacheStorage::new(
            PERSISTED_QUERIES,
        )))
        .data(store)
        .data(settings.health.clone())
        .data(settings.guard)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The schema in SDL, as `schema.graphql` holds it.
pub fn sdl() -> String {
    Schema::build(query::Query, mutation::Mutation, subscription::Subscription)
        .finish()
        .sdl()
}

#[derive(Clone)]
struct ApiState {
    store: Arc<dyn Store>,
    schema: ApiSchema,
    introspection: bool,
}

/// The `/graphql` routes: POST for queries and mutations, a WebSocket upgrade (GET) for
/// subscriptions. Without `engine`, subscriptions answer that they need one.
pub fn router(
    store: Arc<dyn Store>,
    engine: Option<Arc<Engine>>,
    settings: &ApiSettings,
) -> Router {
    let state = ApiState {
        schema: schema(store.clone(), engine, settings),
        store,
        introspection: settings.introspection,
    };
    Router::new()
        .route(PATH, post(execute).get(subscribe))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A GraphQL error body with one error.
fn refusal(status: StatusCode, message: &str, code: &str) -> Response {
    let body = serde_json::json!({
        "data": null,
        "errors": [{ "message": message, "extensions": { "code": code } }],
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The API token a request presents, if it is a usable API (not SCIM) token.
async fn authenticate(store: &dyn Store, headers: &HeaderMap) -> Option<Principal> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    principal_of(store, value).await
}

/// The principal an `Authorization` value (`Bearer …`) names, if it is a usable API token.
async fn principal_of(store: &dyn Store, value: &str) -> Option<Principal> {
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    match store.authenticate_token(token.trim()).await {
        Ok(Some(t)) if t.scope == TokenScope::Api => Some(Principal::of(&t)),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("authenticating a GraphQL request failed: {e}");
            None
        }
    }
}

async fn execute(State(state): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(principal) = authenticate(state.store.as_ref(), &headers).await else {
        return refusal(
            StatusCode::UNAUTHORIZED,
            &principal::unauthenticated().message,
            "UNAUTHENTICATED",
        );
    };
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                &format!("the body is not a GraphQL request: {e}"),
                "BAD_REQUEST",
            );
        }
    };
    let mut request = request.data(principal);
    if !state.introspection {
        request = request.disable_introspection();
    }
    let response = state.schema.execute(request).await;
    match serde_json::to_string(&response) {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            text,
        )
            .into_response(),
        Err(_) => refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
            "INTERNAL",
        ),
    }
}

/// A WebSocket for subscriptions. The token comes in the upgrade's `Authorization` header, or
/// in the `connection_init` payload (`{"Authorization": "Bearer …"}`, as browsers must send
/// it); without a usable API token the socket is closed at init.
async fn subscribe(
    State(state): State<ApiState>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let from_header = authenticate(state.store.as_ref(), &headers).await;
    let store = state.store.clone();
    let schema = state.schema.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let presented = ["Authorization", "authorization"]
                        .iter()
                        .find_map(|k| payload.get(*k).and_then(|v| v.as_str()).map(str::to_string));
                    let principal = match (from_header, presented) {
                        (Some(p), _) => Some(p),
                        (None, Some(value)) => principal_of(store.as_ref(), &value).await,
                        (None, None) => None,
                    };
                    let Some(principal) = principal else {
                        // The socket is closed with this as the reason, which must fit in a
                        // control frame (125 bytes).
                        return Err(async_graphql::Error::new(
                            "authentication required: an API token",
                        ));
                    };
                    let mut data = Data::default();
                    data.insert(principal);
                    Ok(data)
                })
                .serve()
        })
}
