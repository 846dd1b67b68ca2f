//! `scimdesk serve`: the inbound SCIM server until Ctrl-C or SIGTERM.

use crate::api::changes::ChangeFeed;
use crate::api::serve;
use crate::cli::context::Context;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::engine::Engine;
use std::net::SocketAddr;
use std::sync::Arc;

pub async fn run(
    ctx: &Context,
    listen: SocketAddr,
    public_url: Option<String>,
    workers: bool,
) -> CliResult {
    if let Some(url) = &public_url {
        crate::domain::validate::base_url(url)?;
    }
    let listener = serve::bind(listen)
        .await
        .map_err(|e| CliError::new(Exit::Unavailable, format!("cannot listen on {listen}: {e}")))?;
    let bound = listener.local_addr().unwrap_or(listen);
    let engine = Arc::new(Engine::new(ctx.store.clone(), ctx.config.engine.clone()));
    if workers {
        engine.start();
    }
    let api = crate::api::graphql::ApiSettings {
        health: ctx.config.engine.health.clone(),
        guard: ctx.config.policy.guard,
        introspection: ctx.config.api.introspection,
    };
    let app = serve::app_with_engine(
        ctx.store.clone(),
        ChangeFeed::default(),
        public_url,
        engine.clone(),
        &api,
    );
    tracing::info!(%bound, store = ctx.store.backend(), workers, "serving SCIM");
    // Scripts and tests read this line to learn the port (e.g. with --listen 127.0.0.1:0).
    println!(
        "scimdesk serving SCIM 2.0 at http://{bound}{}",
        crate::api::scim::BASE_PATH
    );
    let served = serve::serve(listener, app, shutdown_signal()).await;
    // Requests in flight finish first; then the workers record what they did and give back
    // their leases.
    engine.shutdown().await;
    served.map_err(|e| CliError::new(Exit::Internal, format!("server failed: {e}")))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
