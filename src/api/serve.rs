//! The HTTP server `scimdesk serve` runs: the SCIM API, the GraphQL management API and health
//! endpoints.

use super::changes::ChangeFeed;
use super::graphql::ApiSettings;
use super::scim::{self, BASE_PATH, ScimState};
use crate::engine::Engine;
use crate::store::Store;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The SCIM API and `/graphql` with `/healthz` and `/readyz` (no engine: no `/metrics`), with
/// the API's default settings.
pub fn app(store: Arc<dyn Store>, changes: ChangeFeed, public_url: Option<String>) -> Router {
    app_with(store, changes, public_url, &ApiSettings::default())
}

/// [`app`] with the API's settings.
pub fn app_with(
    store: Arc<dyn Store>,
    changes: ChangeFeed,
    public_url: Option<String>,
    api: &ApiSettings,
) -> Router {
    app_parts(store, changes, public_url, None, api)
}

fn app_parts(
    store: Arc<dyn Store>,
    changes: ChangeFeed,
    public_url: Option<String>,
    engine: Option<Arc<Engine>>,
    api: &ApiSettings,
) -> Router {
    let graphql = super::graphql::router(store.clone(), engine, api);
    let state = ScimState {
        store: store.clone(),
        changes,
        public_url,
        auth_cache: Default::default(),
    };
    Router::new()
        .nest(BASE_PATH, scim::router(state))
        .merge(graphql)
        .merge(super::saml::router(store.clone()))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let store = store.clone();
                async move { readiness(store.as_ref()).await }
            }),
        )
}

/// Everything `serve` mounts: [`app_with`] plus the engine's Prometheus `/metrics`.
pub fn app_with_engine(
    store: Arc<dyn Store>,
    changes: ChangeFeed,
    public_url: Option<String>,
    engine: Arc<Engine>,
    api: &ApiSettings,
) -> Router {
    app_parts(store, changes, public_url, Some(engine.clone()), api).route(
        "/metrics",
        get(move || {
            let engine = engine.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    engine.metrics().render(),
                )
            }
        }),
    )
}

/// Ready when the store answers (a load balancer stops sending SCIM traffic otherwise).
async fn readiness(store: &dyn Store) -> (StatusCode, String) {
    match store.applied_migrations().await {
        Ok(_) => (StatusCode::OK, "ready".into()),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {e}"),
        ),
    }
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

/// Serves `app` in the background on an ephemeral 127.0.0.1 port, for in-process use (the
/// demo, benchmarks, tests). Returns the address and the sender that stops it; dropping the
/// sender stops it too.
pub async fn spawn_local(
    app: Router,
) -> std::io::Result<(SocketAddr, tokio::sync::oneshot::Sender<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, app, async {
        let _ = rx.await;
    }));
    Ok((addr, tx))
}

/// Binds a listener, with a clear error.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
