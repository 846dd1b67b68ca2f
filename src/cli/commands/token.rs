//! `scimdesk token create|list|revoke`

use crate::cli::TokenCommand;
use crate::cli::context::Context;
use crate::cli::error::{CliError, CliResult};
use crate::cli::output;
use crate::domain::{NewApiToken, Timestamp, TokenScope};

pub async fn run(ctx: &Context, org: Option<&str>, cmd: TokenCommand, json: bool) -> CliResult {
    let org = ctx.organization(org).await?;
    match cmd {
        TokenCommand::Create {
            name,
            connection,
            scope,
            expires_in_days,
        } => {
            let connection_id = match &connection {
                Some(c) => Some(
                    ctx.store
                        .connection_by_name(org.id, c)
                        .await?
                        .ok_or_else(|| {
                            CliError::not_found(format!(
                                "no connection {c:?} in organization {:?}",
                                org.name
                            ))
                        })?
                        .id,
                ),
                None => None,
            };
            let scope = match scope {
                Some(s) => s.parse()?,
                None if connection_id.is_some() => TokenScope::Scim,
                None => TokenScope::Api,
            };
            let expires_at =
                expires_in_days.map(|d| Timestamp::now().add(time::Duration::days(i64::from(d))));
            let issued = ctx
                .store
                .create_api_token(
                    &ctx.actor,
                    org.id,
                    &NewApiToken {
                        name,
                        scope,
                        connection_id,
                        expires_at,
                    },
                )
                .await?;
            // The one place a secret is printed: the token's only copy, to its owner.
            if json {
                output::json(&serde_json::json!({
                    "token": issued.token,
                    "text": issued.text.expose(),
                }))?;
            } else {
                println!("{}", issued.text.expose());
                eprintln!(
                    "issued {} token {:?} ({}); this is the only time it is shown",
                    issued.token.scope, issued.token.name, issued.token.id
                );
            }
            Ok(())
        }
        TokenCommand::List => {
            let tokens = ctx.store.list_api_tokens(org.id).await?;
            if json {
                return output::json(&tokens);
            }
            let now = Timestamp::now();
            let conns = ctx.store.list_connections(org.id).await?;
            output::table(
                &[
                    "id",
                    "name",
                    "scope",
                    "connection",
                    "created",
                    "expires",
                    "status",
                ],
                tokens.iter().map(|t| {
                    let conn = t
                        .connection_id
                        .and_then(|id| conns.iter().find(|c| c.id == id).map(|c| c.name.clone()));
                    let status = if t.revoked_at.is_some() {
                        "revoked"
                    } else if !t.is_usable_at(now) {
                        "expired"
                    } else {
                        "active"
                    };
                    vec![
                        t.id.to_string(),
                        t.name.clone(),
                        t.scope.to_string(),
                        output::or_dash(conn),
                        t.created_at.to_string(),
                        output::or_dash(t.expires_at),
                        status.to_string(),
                    ]
                }),
            );
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            let token_id = id
                .parse()
                .map_err(|_| CliError::invalid(format!("{id:?} is not a token id")))?;
            if !ctx
                .store
                .revoke_api_token(&ctx.actor, org.id, token_id)
                .await?
            {
                return Err(CliError::not_found(format!(
                    "no active token {id} in organization {:?}",
                    org.name
                )));
            }
            if json {
                output::json(&serde_json::json!({ "revoked": token_id }))
            } else {
                println!("revoked token {id}");
                Ok(())
            }
        }
    }
}
