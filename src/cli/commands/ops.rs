//! `scimdesk ops list|show|retry|skip`

use super::connection::find as find_connection;
use crate::cli::context::Context;
use crate::cli::error::{CliError, CliResult};
use crate::cli::{OpsCommand, output};
use crate::domain::{Operation, OperationAction, OperationId, OperationState, Organization};
use crate::engine::commands;
use crate::store::OperationFilter;
use std::collections::HashMap;

pub async fn run(ctx: &Context, org: Option<&str>, cmd: OpsCommand, json: bool) -> CliResult {
    let action = match &cmd {
        OpsCommand::List { .. } | OpsCommand::Show { .. } => crate::domain::Action::View,
        OpsCommand::Retry { .. } => crate::domain::Action::Retry,
        OpsCommand::Skip { .. } => crate::domain::Action::Skip,
    };
    let org = ctx.organization_for(org, action).await?;
    match cmd {
        OpsCommand::List {
            connection,
            state,
            action,
            resource,
            limit,
            offset,
        } => {
            let filter = OperationFilter {
                connection_id: connection_id(ctx, &org, connection.as_deref()).await?,
                state: parse_state(state.as_deref())?,
                action: parse_action(action.as_deref())?,
                resource_id: resource
                    .as_deref()
                    .map(|r| {
                        r.parse().map_err(|_| {
                            CliError::invalid(format!("--resource {r:?} is not a user or group id"))
                        })
                    })
                    .transpose()?,
                offset,
                limit: limit.clamp(1, 10_000),
            };
            let ops = ctx.store.list_operations(org.id, &filter).await?;
            if json {
                return output::json(&ops);
            }
            let names = connection_names(ctx, &org).await?;
            output::table(
                &[
                    "id",
                    "connection",
                    "action",
                    "resource",
                    "state",
                    "attempts",
                    "due",
                    "last error",
                ],
                ops.iter().map(|o| {
                    vec![
                        o.id.to_string(),
                        names
                            .get(&o.connection_id.to_string())
                            .cloned()
                            .unwrap_or_else(|| o.connection_id.to_string()),
                        o.action.to_string(),
                        format!("{} {}", o.resource_type, o.resource_id),
                        o.state.to_string(),
                        o.attempts.to_string(),
                        due(o),
                        output::or_dash(o.last_error.as_deref().map(|e| short(e, 60))),
                    ]
                }),
            );
            Ok(())
        }
        OpsCommand::Show { id } => {
            let id = parse_id(&id)?;
            let op = ctx.store.operation(org.id, id).await?.ok_or_else(|| {
                CliError::not_found(format!("no operation {id} in organization {:?}", org.name))
            })?;
            let attempts = ctx.store.operation_attempts(org.id, id).await?;
            if json {
                return output::json(&serde_json::json!({ "operation": op, "attempts": attempts }));
            }
            let names = connection_names(ctx, &org).await?;
            output::fields(&[
                ("id", op.id.to_string()),
                (
                    "connection",
                    names
                        .get(&op.connection_id.to_string())
                        .cloned()
                        .unwrap_or_else(|| op.connection_id.to_string()),
                ),
                ("action", op.action.to_string()),
                (
                    "resource",
                    format!("{} {}", op.resource_type, op.resource_id),
                ),
                ("payload", op.payload.0.to_string()),
                ("state", op.state.to_string()),
                ("attempts", op.attempts.to_string()),
                ("due", due(&op)),
                ("last status", output::or_dash(op.last_status)),
                ("last error", output::or_dash(op.last_error.as_deref())),
                ("note", output::or_dash(op.note.as_deref())),
                ("created", op.created_at.to_string()),
                ("updated", op.updated_at.to_string()),
            ]);
            if !attempts.is_empty() {
                println!();
                output::table(
                    &[
                        "#", "started", "ms", "status", "error", "request", "response",
                    ],
                    attempts.iter().map(|a| {
                        vec![
                            a.attempt_no.to_string(),
                            a.started_at.to_string(),
                            a.duration_ms.to_string(),
                            output::or_dash(a.http_status),
                            output::or_dash(a.error.as_deref()),
                            output::or_dash(a.request_excerpt.as_deref()),
                            output::or_dash(a.response_excerpt.as_deref()),
                        ]
                    }),
                );
            }
            Ok(())
        }
        OpsCommand::Retry {
            id,
            all,
            connection,
            state,
            action,
        } => {
            if all {
                let filter = OperationFilter {
                    connection_id: connection_id(ctx, &org, connection.as_deref()).await?,
                    state: parse_state(state.as_deref())?,
                    action: parse_action(action.as_deref())?,
                    ..Default::default()
                };
                let n =
                    commands::retry_all(ctx.store.as_ref(), &ctx.actor, org.id, &filter).await?;
                if json {
                    return output::json(&serde_json::json!({ "retried": n }));
                }
                println!("{n} operations put back in the queue");
                return Ok(());
            }
            let id = parse_id(id.as_deref().unwrap_or_default())?;
            let op = commands::retry(ctx.store.as_ref(), &ctx.actor, org.id, id).await?;
            if json {
                return output::json(&op);
            }
            println!("operation {} is {} again (due now)", op.id, op.state);
            Ok(())
        }
        OpsCommand::Skip { id, reason } => {
            let id = parse_id(&id)?;
            let op = commands::skip(ctx.store.as_ref(), &ctx.actor, org.id, id, &reason).await?;
            if json {
                return output::json(&op);
            }
            println!("operation {} skipped: {}", op.id, reason.trim());
            Ok(())
        }
    }
}

fn parse_id(id: &str) -> CliResult<OperationId> {
    id.parse().map_err(|_| {
        CliError::invalid(format!(
            "{id:?} is not an operation id (see `scimdesk ops list`)"
        ))
    })
}

fn parse_state(s: Option<&str>) -> CliResult<Option<OperationState>> {
    s.map(|s| {
        s.parse().map_err(|_| {
            CliError::invalid(format!(
                "unknown state {s:?}: use pending, in_flight, retry_wait, failed, succeeded or skipped"
            ))
        })
    })
    .transpose()
}

fn parse_action(s: Option<&str>) -> CliResult<Option<OperationAction>> {
    s.map(|s| {
        s.parse().map_err(|_| {
            CliError::invalid(format!(
                "unknown action {s:?}: use create, update, suspend, delete, add_members or remove_members"
            ))
        })
    })
    .transpose()
}

async fn connection_id(
    ctx: &Context,
    org: &Organization,
    name: Option<&str>,
) -> CliResult<Option<crate::domain::ConnectionId>> {
    match name {
        Some(n) => Ok(Some(find_connection(ctx, org, n).await?.id)),
        None => Ok(None),
    }
}

async fn connection_names(ctx: &Context, org: &Organization) -> CliResult<HashMap<String, String>> {
    Ok(ctx
        .store
        .list_connections(org.id)
        .await?
        .into_iter()
        .map(|c| (c.id.to_string(), c.name))
        .collect())
}

fn due(o: &Operation) -> String {
    match o.state {
        OperationState::Failed => "operator".into(),
        s if s.is_terminal() => o.updated_at.to_string(),
        _ => o.not_before.to_string(),
    }
}

fn short(s: &str, max: usize) -> String {
    crate::scim::render::truncate(s.replace('\n', " "), max)
}
