//! `scimdesk db migrate`

use crate::cli::DbCommand;
use crate::cli::context::Context;
use crate::cli::error::CliResult;
use crate::cli::output;

pub async fn run(ctx: &Context, cmd: DbCommand, json: bool) -> CliResult {
    let DbCommand::Migrate = cmd;
    // Opening the context already applied pending migrations; report the result.
    let applied = ctx.store.applied_migrations().await?;
    if json {
        let list: Vec<_> = applied
            .iter()
            .map(|(v, d)| serde_json::json!({ "version": v, "description": d }))
            .collect();
        return output::json(&serde_json::json!({
            "backend": ctx.store.backend(),
            "location": ctx.store.location(),
            "applied": list,
        }));
    }
    println!(
        "{} database at {} is up to date",
        ctx.store.backend(),
        ctx.store.location()
    );
    output::table(
        &["version", "migration"],
        applied.iter().map(|(v, d)| vec![v.to_string(), d.clone()]),
    );
    Ok(())
}
