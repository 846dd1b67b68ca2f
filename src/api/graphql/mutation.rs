//! The mutations. Each goes through `engine::commands`, the path the CLI and the workbench
//! take, and is audited with the token's name as the actor.

use super::error::{api_error, bad_input};
use super::principal::{Needs, principal};
use super::types::*;
use crate::domain::{Action, ConnectionId, OperationId};
use crate::engine::commands;
use crate::store::Store;
use async_graphql::{Context, ID, Object};
use std::sync::Arc;

/// The mutation root.
pub struct Mutation;

async fn connection_id(
    s: &dyn Store,
    org: crate::domain::OrganizationId,
    name: &str,
) -> async_graphql::Result<ConnectionId> {
    if let Ok(id) = name.parse::<ConnectionId>() {
        return Ok(id);
    }
    Ok(s.connection_by_name(org, name)
        .await
        .map_err(api_error)?
        .ok_or_else(|| bad_input(format!("no connection {name:?}")))?
        .id)
}

fn operation_id(id: &ID) -> async_graphql::Result<OperationId> {
    id.parse()
        .map_err(|_| bad_input(format!("{:?} is not an operation id", id.as_str())))
}

#[Object]
impl Mutation {
    /// Stops delivery to a target (operations keep queueing).
    #[graphql(guard = "Needs(Action::Pause)")]
    async fn pause_connection(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The connection's name or id.")] connection: String,
        reason: String,
    ) -> async_graphql::Result<ConnectionNode> {
        let p = principal(ctx)?;
        let s = ctx.data::<Arc<dyn Store>>()?;
        let id = connection_id(s.as_ref(), p.org, &connection).await?;
        let c = commands::pause(s.as_ref(), &p.actor, p.org, id, &reason)
            .await
            .map_err(api_error)?;
        Ok(ConnectionNode(c))
    }

    /// Resumes delivery to a paused or quarantined target.
    #[graphql(guard = "Needs(Action::Pause)")]
    async fn resume_connection(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The connection's name or id.")] connection: String,
    ) -> async_graphql::Result<ConnectionNode> {
        let p = principal(ctx)?;
        let s = ctx.data::<Arc<dyn Store>>()?;
        let id = connection_id(s.as_ref(), p.org, &connection).await?;
        let c = commands::resume(s.as_ref(), &p.actor, p.org, id)
            .await
            .map_err(api_error)?;
        Ok(ConnectionNode(c))
    }

    /// Puts one failed (or waiting) operation back in the queue, due now.
    #[graphql(guard = "Needs(Action::Retry)")]
    async fn retry_operation(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<OperationNode> {
        let p = principal(ctx)?;
        let s = ctx.data::<Arc<dyn Store>>()?;
        let op = commands::retry(s.as_ref(), &p.actor, p.org, operation_id(&id)?)
            .await
            .map_err(api_error)?;
        Ok(OperationNode(op))
    }

    /// Sets an operation aside with a reason.
    #[graphql(guard = "Needs(Action::Skip)")]
    async fn skip_operation(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
    ) -> async_graphql::Result<OperationNode> {
        let p = principal(ctx)?;
        let s = ctx.data::<Arc<dyn Store>>()?;
        let op = commands::skip(s.as_ref(), &p.actor, p.org, operation_id(&id)?, &reason)
            .await
            .map_err(api_error)?;
        Ok(OperationNode(op))
    }
}
