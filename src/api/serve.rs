//! The HTTP server `scimdesk serve` runs: the SCIM API and health endpoints.

use super::changes::ChangeFeed;
use super::scim::{self, BASE_PATH, ScimState};
use crate::store::Store;
use axum::Router;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Everything `serve` mounts.
pub fn app(store: Arc<dyn Store>, changes: ChangeFeed, public_url: Option<String>) -> Router {
    let state = ScimState {
        store,
        changes,
        public_url,
        auth_cache: Default::default(),
    };
    Router::new()
        .nest(BASE_PATH, scim::router(state))
        .route("/healthz", get(|| async { "ok" }))
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds a listener, with a clear error.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
