//! `scimdesk token create|list|revoke`

use crate::cli::TokenCommand;
use crate::cli::context::Context;
use crate::cli::error::{CliError, CliResult};
use crate::cli::output;
use crate::domain::{Access, NewApiToken, Timestamp, TokenScope};

pub async fn run(ctx: &Context, org: Option<&str>, cmd: TokenCommand, json: bool) -> CliResult {
    let action = match &cmd {
        TokenCommand::List => crate::domain::Action::View,
        TokenCommand::Create { .. } | TokenCommand::Revoke { .. } => {
            crate::domain::Action::ManageTokens
        }
    };
    let org = ctx.organization_for(org, action).await?;
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
            let (scope, access) = token_scope(scope.as_deref(), connection_id.is_some())?;
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
                        access,
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
                let what = match issued.token.scope {
                    TokenScope::Scim => "SCIM".to_string(),
                    TokenScope::Api => format!("{} API", issued.token.access),
                };
                eprintln!(
                    "issued {what} token {:?} ({}); this is the only time it is shown",
                    issued.token.name, issued.token.id
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
                        match t.scope {
                            TokenScope::Scim => "scim".to_string(),
                            TokenScope::Api => t.access.to_string(),
                        },
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

/// The kind and level a `--scope` names: `scim` (the default with `--connection`), or an API
/// token's `read` (the default otherwise: least privilege), `operate` or `admin`. `api`, the
/// spelling before levels existed, is refused with what to write instead.
fn token_scope(scope: Option<&str>, has_connection: bool) -> CliResult<(TokenScope, Access)> {
    match scope.map(|s| s.trim().to_ascii_lowercase()) {
        None if has_connection => Ok((TokenScope::Scim, Access::Read)),
        None => Ok((TokenScope::Api, Access::Read)),
        Some(s) if s == "scim" => Ok((TokenScope::Scim, Access::Read)),
        Some(s) if s == "api" => Err(CliError::invalid(
            "--scope api is not a level: use read, operate or admin",
        )),
        Some(s) => match s.parse::<Access>() {
            Ok(access) if !has_connection => Ok((TokenScope::Api, access)),
            Ok(_) => Err(CliError::invalid(
                "an API token (read, operate, admin) is not bound to a connection; drop --connection or use --scope scim",
            )),
            Err(_) => Err(CliError::invalid(format!(
                "unknown --scope {s:?}: use read, operate, admin or scim"
            ))),
        },
    }
}
