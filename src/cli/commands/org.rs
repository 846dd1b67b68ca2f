//! `scimdesk org create|list`

use crate::cli::OrgCommand;
use crate::cli::context::Context;
use crate::cli::error::CliResult;
use crate::cli::output;

pub async fn run(ctx: &Context, cmd: OrgCommand, json: bool) -> CliResult {
    match cmd {
        OrgCommand::Create { name } => {
            let org = ctx.store.create_organization(&ctx.actor, &name).await?;
            if json {
                output::json(&org)
            } else {
                println!("created organization {:?} ({})", org.name, org.id);
                Ok(())
            }
        }
        OrgCommand::List => {
            let orgs = ctx.store.list_organizations().await?;
            if json {
                return output::json(&orgs);
            }
            output::table(
                &["id", "name", "created"],
                orgs.iter()
                    .map(|o| vec![o.id.to_string(), o.name.clone(), o.created_at.to_string()]),
            );
            Ok(())
        }
    }
}
