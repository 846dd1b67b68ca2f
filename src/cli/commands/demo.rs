//! `scimdesk demo [--headless] [--speed X] [--nurses N]`

use crate::cli::context::Context;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::output;
use crate::config::Config;
use crate::stand_ins::demo::{self, DemoOptions};
use std::time::Duration;

pub async fn run(
    config: Config,
    headless: bool,
    speed: f64,
    nurses: usize,
    json: bool,
    view: super::workbench::View,
) -> CliResult {
    if !(speed.is_finite() && speed > 0.0) {
        return Err(CliError::invalid("--speed must be a number above 0"));
    }
    let options = DemoOptions {
        nurses: nurses.clamp(1, 10_000),
        speed,
        settle: Duration::from_secs(120),
    };
    let fail = |e: crate::stand_ins::StandInError| {
        CliError::new(Exit::Internal, format!("the demo failed: {e}"))
    };
    if !headless {
        return super::workbench::demo(config, options, view).await;
    }
    // A temporary store unless a database was named: the demo never writes into the default
    // store of this machine.
    let summary = if config.database_is_default {
        let temp = crate::stand_ins::bench::BenchStore::open(None).await?;
        let result = demo::headless(temp.store.clone(), options).await;
        temp.remove().await;
        result.map_err(fail)?
    } else {
        let ctx = Context::open(config).await?;
        demo::headless(ctx.store.clone(), options)
            .await
            .map_err(fail)?
    };
    if json {
        return output::json(&summary);
    }
    println!(
        "{}: {} nurses onboarded, {} contractors off-boarded, in {:.1} s",
        summary.organization, summary.nurses, summary.offboarded, summary.seconds
    );
    output::table(
        &["application", "users", "active", "failed", "health"],
        summary.targets.iter().map(|t| {
            vec![
                t.connection.clone(),
                t.users.to_string(),
                t.active.to_string(),
                t.failed.to_string(),
                t.health.clone(),
            ]
        }),
    );
    for e in &summary.open_exceptions {
        println!("open exception: {e}");
    }
    println!("{} operations wait for an operator", summary.unfinished);
    Ok(())
}
