//! `scimdesk exceptions list|resolve`

use super::connection::find as find_connection;
use crate::cli::context::Context;
use crate::cli::error::{CliError, CliResult};
use crate::cli::{ExceptionsCommand, output};
use crate::domain::*;
use crate::engine::commands::{self, Resolution};

pub async fn run(
    ctx: &Context,
    org: Option<&str>,
    cmd: ExceptionsCommand,
    json: bool,
) -> CliResult {
    let action = match &cmd {
        ExceptionsCommand::List { .. } => crate::domain::Action::View,
        ExceptionsCommand::Resolve { .. } => crate::domain::Action::Resolve,
    };
    let org = ctx.organization_for(org, action).await?;
    match cmd {
        ExceptionsCommand::List {
            state,
            kind,
            connection,
            limit,
        } => {
            let state = match state.as_str() {
                "all" => None,
                s => Some(s.parse::<ExceptionState>().map_err(|_| {
                    CliError::invalid(format!(
                        "--state {s:?}: use open, resolved, dismissed or all"
                    ))
                })?),
            };
            let kind = kind
                .as_deref()
                .map(|k| {
                    k.parse::<ExceptionKind>().map_err(|_| {
                        CliError::invalid(format!(
                            "--kind {k:?}: use unmapped_group, conflict or unknown_at_target"
                        ))
                    })
                })
                .transpose()?;
            let connection_id = match connection {
                Some(c) => Some(find_connection(ctx, &org, &c).await?.id),
                None => None,
            };
            let list = ctx
                .store
                .list_exceptions(
                    org.id,
                    &ExceptionFilter {
                        state,
                        kind,
                        connection_id,
                        offset: 0,
                        limit: limit.clamp(1, 10_000),
                    },
                )
                .await?;
            if json {
                return output::json(&list);
            }
            output::table(
                &["id", "kind", "state", "subject", "raised", "summary"],
                list.iter().map(|e| {
                    vec![
                        e.id.to_string(),
                        e.kind.to_string(),
                        e.state.to_string(),
                        e.subject.clone(),
                        e.created_at.to_string(),
                        match &e.resolution {
                            Some(r) => format!("{} — {r}", e.summary),
                            None => e.summary.clone(),
                        },
                    ]
                }),
            );
            Ok(())
        }
        ExceptionsCommand::Resolve {
            id,
            map_to,
            link,
            apply,
            dismiss,
            reason,
            force,
        } => {
            let id: ExceptionId = id.parse().map_err(|_| {
                CliError::invalid(format!(
                    "{id:?} is not an exception id (see `scimdesk exceptions list`)"
                ))
            })?;
            let resolution = match (map_to, link, dismiss, reason) {
                _ if apply => Resolution::ApplySync,
                (Some(role), None, false, _) => Resolution::MapTo(role),
                (None, Some(remote), false, _) => Resolution::Link(remote),
                (None, None, true, Some(reason)) if !reason.trim().is_empty() => {
                    Resolution::Dismiss(reason)
                }
                _ => {
                    return Err(CliError::invalid(
                        "say how: --map-to ROLE, --link REMOTE_ID, --apply (a sync guard), or --dismiss --reason TEXT",
                    ));
                }
            };
            let settled = commands::resolve_exception(
                ctx.store.as_ref(),
                &ctx.actor,
                org.id,
                id,
                &resolution,
                &ctx.config.policy.guard,
                force,
            )
            .await?;
            if json {
                return output::json(&settled);
            }
            println!(
                "exception {} is {}: {}",
                settled.id,
                settled.state,
                settled.resolution.as_deref().unwrap_or("")
            );
            Ok(())
        }
    }
}
