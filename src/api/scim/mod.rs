//! The inbound SCIM 2.0 service provider that identity providers push to (RFC 7644).
//!
//! The Bearer token decides the organization and inbound connection of every request; nothing
//! of another organization is ever visible. Writes go through the store (change + audit in one
//! transaction), then a [`Change`](crate::api::changes::Change) is published for the engine.

mod auth_cache;
mod discovery;
mod groups;
pub mod list;
pub mod request;
pub mod response;
mod search;
mod users;

use crate::api::changes::ChangeFeed;
use crate::store::Store;
use axum::Router;
use axum::http::{HeaderMap, header};
use axum::routing::{get, post};
use response::ApiError;
use scimdesk_scim::ScimError;
use std::sync::Arc;

/// Where the SCIM API is mounted.
pub const BASE_PATH: &str = "/scim/v2";

/// What every SCIM handler has at hand.
#[derive(Clone)]
pub struct ScimState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Where committed changes are announced.
    pub changes: ChangeFeed,
    /// The public base URL (e.g. `https://scim.example.com`), for `meta.location`; when unset
    /// it is taken from the request's `Host`.
    pub public_url: Option<String>,
    /// Recently authenticated tokens.
    pub auth_cache: Arc<auth_cache::AuthCache>,
}

impl ScimState {
    /// The SCIM base URL resources are located under.
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        let root = match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .filter(|h| {
                        h.chars()
                            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
                    })
                    .unwrap_or("localhost");
                format!("http://{host}")
            }
        };
        format!("{root}{BASE_PATH}")
    }
}

async fn unknown_endpoint() -> ApiError {
    ApiError(ScimError::status(404, "no such SCIM endpoint"))
}

/// The SCIM routes, to be nested under [`BASE_PATH`].
pub fn router(state: ScimState) -> Router {
    Router::new()
        .route("/Users", get(users::list).post(users::create))
        .route("/Users/.search", post(users::search))
        .route(
            "/Users/{id}",
            get(users::get)
                .put(users::replace)
                .patch(users::modify)
                .delete(users::delete),
        )
        .route("/Groups", get(groups::list).post(groups::create))
        .route("/Groups/.search", post(groups::search))
        .route(
            "/Groups/{id}",
            get(groups::get)
                .put(groups::replace)
                .patch(groups::modify)
                .delete(groups::delete),
        )
        .route("/.search", post(search::search))
        .route(
            "/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route("/ResourceTypes", get(discovery::resource_types))
        .route(
            "/ResourceTypes/{name}",
            get(discovery::resource_type_by_name),
        )
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema_by_id))
        .fallback(unknown_endpoint)
        .with_state(state)
}
