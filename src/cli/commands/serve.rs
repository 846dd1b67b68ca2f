//! `scimdesk serve`: the inbound SCIM server until Ctrl-C or SIGTERM.

use crate::api::changes::ChangeFeed;
use crate::api::serve;
use crate::cli::context::Context;
use crate::cli::error::{CliError, CliResult, Exit};
use std::net::SocketAddr;

pub async fn run(ctx: &Context, listen: SocketAddr, public_url: Option<String>) -> CliResult {
    if let Some(url) = &public_url {
        crate::domain::validate::base_url(url)?;
    }
    let listener = serve::bind(listen)
        .await
        .map_err(|e| CliError::new(Exit::Unavailable, format!("cannot listen on {listen}: {e}")))?;
    let bound = listener.local_addr().unwrap_or(listen);
    let app = serve::app(ctx.store.clone(), ChangeFeed::default(), public_url);
    tracing::info!(%bound, store = ctx.store.backend(), "serving SCIM");
    // Scripts and tests read this line to learn the port (e.g. with --listen 127.0.0.1:0).
    println!(
        "scimdesk serving SCIM 2.0 at http://{bound}{}",
        crate::api::scim::BASE_PATH
    );
    serve::serve(listener, app, shutdown_signal())
        .await
        .map_err(|e| CliError::new(Exit::Internal, format!("server failed: {e}")))
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
