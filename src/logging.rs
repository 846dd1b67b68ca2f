//! Logging to a daily-rolling file in the data directory, never to the terminal.
//!
//! The workbench owns the terminal, and CLI output is for people and scripts; diagnostics go to
//! `<data dir>/logs/scimdesk.log.YYYY-MM-DD`. The filter comes from `RUST_LOG`, else the config.

use std::path::Path;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Starts file logging. Keep the returned guard alive until exit so buffered lines are flushed.
/// Returns `None` (logging off) if the directory cannot be created; commands still run.
pub fn init(log_dir: &Path, default_filter: &str) -> Option<WorkerGuard> {
    std::fs::create_dir_all(log_dir).ok()?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("scimdesk.log")
        .max_log_files(14)
        .build(log_dir)
        .ok()?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init()
        .ok()?;
    Some(guard)
}
