//! `scimdesk status` (and `scimdesk` alone, until the workbench lands): what is configured.

use crate::cli::context::Context;
use crate::cli::error::CliResult;
use crate::cli::output;
use crate::crypto::MasterKeySource;

pub async fn run(ctx: &Context, json: bool) -> CliResult {
    let orgs = ctx.store.list_organizations().await?;
    let mut rows = Vec::new();
    for org in &orgs {
        let conns = ctx.store.list_connections(org.id).await?;
        let users = ctx.store.count_users(org.id).await?;
        rows.push((org, conns, users));
    }
    let key_source = match &ctx.key_source {
        MasterKeySource::Env => "SCIMDESK_MASTER_KEY".to_string(),
        MasterKeySource::File(p) => p.display().to_string(),
    };
    if json {
        let orgs: Vec<_> = rows
            .iter()
            .map(|(o, c, u)| serde_json::json!({ "organization": o, "connections": c, "users": u }))
            .collect();
        return output::json(&serde_json::json!({
            "store": { "backend": ctx.store.backend(), "location": ctx.store.location() },
            "master_key": key_source,
            "operator": ctx.config.operator,
            "organizations": orgs,
        }));
    }
    output::fields(&[
        (
            "store",
            format!("{} {}", ctx.store.backend(), ctx.store.location()),
        ),
        ("master key", key_source),
        ("logs", ctx.config.log_dir().display().to_string()),
        ("operator", ctx.config.operator.clone()),
    ]);
    println!();
    if rows.is_empty() {
        println!("no organizations yet: create one with `scimdesk org create NAME`");
        return Ok(());
    }
    output::table(
        &["organization", "users", "connections"],
        rows.iter().map(|(o, c, u)| {
            let names: Vec<String> = c
                .iter()
                .map(|c| format!("{} ({}, {})", c.name, c.kind, c.state))
                .collect();
            vec![
                o.name.clone(),
                u.to_string(),
                output::or_dash((!names.is_empty()).then(|| names.join(", "))),
            ]
        }),
    );
    Ok(())
}
