//! The queries. Every field declares the action it needs (all of them: `view`), and every read
//! is scoped to the token's organization.

use super::error::{api_error, bad_input};
use super::principal::{Needs, principal};
use super::types::*;
use crate::domain::{Action, AuditFilter, ConnectionId, UserId};
use crate::store::Store;
use async_graphql::connection::{Connection, Edge, EmptyFields, query};
use async_graphql::{Context, ID, Object};
use std::sync::Arc;

/// The most rows one page returns.
pub const MAX_PAGE: i32 = 500;

/// The query root.
pub struct Query;

fn store<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Arc<dyn Store>> {
    ctx.data::<Arc<dyn Store>>()
}

#[Object]
impl Query {
    /// The token's organization.
    #[graphql(guard = "Needs(Action::View)")]
    async fn organization(&self, ctx: &Context<'_>) -> async_graphql::Result<OrganizationNode> {
        let p = principal(ctx)?;
        let org = store(ctx)?
            .organization(p.org)
            .await
            .map_err(api_error)?
            .ok_or_else(|| bad_input("the token's organization is gone"))?;
        Ok(OrganizationNode(org))
    }

    /// The organization's connections.
    #[graphql(guard = "Needs(Action::View)", complexity = "50 * child_complexity")]
    async fn connections(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ConnectionNode>> {
        let p = principal(ctx)?;
        Ok(store(ctx)?
            .list_connections(p.org)
            .await
            .map_err(api_error)?
            .into_iter()
            .map(ConnectionNode)
            .collect())
    }

    /// One connection, by id or by name.
    #[graphql(guard = "Needs(Action::View)")]
    async fn connection(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        name: Option<String>,
    ) -> async_graphql::Result<Option<ConnectionNode>> {
        let p = principal(ctx)?;
        let s = store(ctx)?;
        let found = match (id, name) {
            (Some(id), _) => match id.parse::<ConnectionId>() {
                Ok(id) => s.connection(p.org, id).await.map_err(api_error)?,
                Err(_) => None,
            },
            (None, Some(name)) => s
                .connection_by_name(p.org, &name)
                .await
                .map_err(api_error)?,
            (None, None) => return Err(bad_input("give id or name")),
        };
        Ok(found.map(ConnectionNode))
    }

    /// The organization's users in creation order, a page at a time. The cursor is the last
    /// user's id (ids are time-ordered), so pages stay stable while users are added.
    #[graphql(
        guard = "Needs(Action::View)",
        complexity = "first.unwrap_or(50).clamp(0, MAX_PAGE) as usize * child_complexity"
    )]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, UserNode, EmptyFields, EmptyFields>> {
        let p = principal(ctx)?.clone();
        let s = store(ctx)?.clone();
        query(
            after,
            None,
            first,
            None,
            |after: Option<String>, _before: Option<String>, first, _last| async move {
                let limit = first.unwrap_or(50).min(MAX_PAGE as usize);
                let after = match after {
                    Some(c) => Some(
                        c.parse::<UserId>()
                            .map_err(|_| bad_input(format!("bad cursor {c:?}")))?,
                    ),
                    None => None,
                };
                let mut page = s
                    .users_after(p.org, after, limit as u32 + 1)
                    .await
                    .map_err(api_error)?;
                let more = page.len() > limit;
                page.truncate(limit);
                let nodes = user_nodes(s.as_ref(), p.org, page).await?;
                let mut conn = Connection::new(after.is_some(), more);
                conn.edges.extend(
                    nodes
                        .into_iter()
                        .map(|n| Edge::new(n.0.user.id.to_string(), n)),
                );
                Ok::<_, async_graphql::Error>(conn)
            },
        )
        .await
    }

    /// One user, by id.
    #[graphql(guard = "Needs(Action::View)")]
    async fn user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<UserNode>> {
        let p = principal(ctx)?;
        let s = store(ctx)?;
        let Ok(id) = id.parse::<UserId>() else {
            return Ok(None);
        };
        let Some(user) = s.user(p.org, id).await.map_err(api_error)? else {
            return Ok(None);
        };
        Ok(user_nodes(s.as_ref(), p.org, vec![user]).await?.pop())
    }

    /// The organization's groups.
    #[graphql(guard = "Needs(Action::View)", complexity = "100 * child_complexity")]
    async fn groups(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: i32,
    ) -> async_graphql::Result<Vec<GroupNode>> {
        let p = principal(ctx)?;
        let range = crate::store::ListRange::first(first.clamp(0, MAX_PAGE) as u32);
        Ok(store(ctx)?
            .list_groups(p.org, range)
            .await
            .map_err(api_error)?
            .into_iter()
            .map(GroupNode)
            .collect())
    }

    /// The organization's role mappings.
    #[graphql(guard = "Needs(Action::View)", complexity = "50 * child_complexity")]
    async fn role_mappings(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<RoleMappingNode>> {
        let p = principal(ctx)?;
        let s = store(ctx)?;
        let roles = s.list_roles(p.org).await.map_err(api_error)?;
        Ok(s.list_role_mappings(p.org)
            .await
            .map_err(api_error)?
            .into_iter()
            .map(|m| {
                let role = roles
                    .iter()
                    .find(|r| r.id == m.role_id)
                    .map(|r| r.name.clone())
                    .unwrap_or_default();
                RoleMappingNode(m, role)
            })
            .collect())
    }

    /// The audit log, newest first.
    #[graphql(
        guard = "Needs(Action::View)",
        complexity = "first.clamp(0, MAX_PAGE) as usize * child_complexity"
    )]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
        actor: Option<String>,
        action: Option<String>,
        subject: Option<String>,
    ) -> async_graphql::Result<Vec<AuditEventNode>> {
        let p = principal(ctx)?;
        let filter = AuditFilter {
            actor,
            action_prefix: action,
            subject_id: subject,
            limit: first.clamp(0, MAX_PAGE) as u32,
            ..Default::default()
        };
        Ok(store(ctx)?
            .list_audit(p.org, &filter)
            .await
            .map_err(api_error)?
            .into_iter()
            .map(AuditEventNode)
            .collect())
    }
}
