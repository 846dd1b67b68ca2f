//! The queries. Every field declares the action it needs (all of them: `view`), and every read
//! is scoped to the token's organization.

use super::error::{api_error, bad_input, policy_error};
use super::inputs::{
    AuditFilterInput, OperationFilterInput, RoleMappingInput, connection_named, parse_word,
};
use super::principal::{Needs, principal};
use super::types::*;
use crate::domain::{
    Action, AuditEventId, AuditFilter, ConnectionId, ExceptionFilter, OperationId, OperationState,
    OrganizationId, UserId,
};
use crate::engine::commands;
use crate::engine::directory::{UserQuery, find_users};
use crate::store::{OperationFilter, Store};
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

    /// The organization's users in creation order, a page at a time, optionally only those
    /// a search (userName, display name, e-mail; any case) or a source picks, the same users
    /// `scimdesk users list --search --source` lists. The cursor is the last user's id (ids
    /// are time-ordered), so pages stay stable while users are added.
    #[graphql(
        guard = "Needs(Action::View)",
        complexity = "first.unwrap_or(50).clamp(0, MAX_PAGE) as usize * child_complexity"
    )]
    async fn users(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        #[graphql(desc = "The source connection's name or id.")] source: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, UserNode, EmptyFields, EmptyFields>> {
        let p = principal(ctx)?.clone();
        let s = store(ctx)?.clone();
        let source = match source {
            Some(name) => Some(connection_named(s.as_ref(), p.org, &name).await?),
            None => None,
        };
        let user_query = UserQuery { search, source };
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
                let (page, more) = find_users(s.as_ref(), p.org, &user_query, after, limit)
                    .await
                    .map_err(api_error)?;
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

    /// Operations, newest first, a page at a time: unfinished and finished together unless
    /// the filter's state picks one. The cursor is the last operation's id, so pages stay
    /// stable while operations are added.
    #[graphql(
        guard = "Needs(Action::View)",
        complexity = "first.unwrap_or(50).clamp(0, MAX_PAGE) as usize * child_complexity"
    )]
    async fn operations(
        &self,
        ctx: &Context<'_>,
        filter: Option<OperationFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, OperationNode, OperationsTotal, EmptyFields>>
    {
        let p = principal(ctx)?.clone();
        let s = store(ctx)?.clone();
        let filter = filter
            .unwrap_or_default()
            .resolve(s.as_ref(), p.org)
            .await?;
        operations_page(s, p.org, filter, first, after).await
    }

    /// Failed operations waiting for an operator, newest first.
    #[graphql(
        guard = "Needs(Action::View)",
        complexity = "first.unwrap_or(50).clamp(0, MAX_PAGE) as usize * child_complexity"
    )]
    async fn failed_operations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, OperationNode, OperationsTotal, EmptyFields>>
    {
        let p = principal(ctx)?.clone();
        let s = store(ctx)?.clone();
        let filter = OperationFilter {
            state: Some(OperationState::Failed),
            ..Default::default()
        };
        operations_page(s, p.org, filter, first, after).await
    }

    /// One operation, with its attempts.
    #[graphql(guard = "Needs(Action::View)")]
    async fn operation(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<OperationNode>> {
        let p = principal(ctx)?;
        let Ok(id) = id.parse::<OperationId>() else {
            return Ok(None);
        };
        Ok(store(ctx)?
            .operation(p.org, id)
            .await
            .map_err(api_error)?
            .map(OperationNode))
    }

    /// Policy exceptions, newest first.
    #[graphql(
        guard = "Needs(Action::View)",
        complexity = "first.clamp(0, MAX_PAGE) as usize * child_complexity"
    )]
    async fn exceptions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "open, resolved or dismissed (all when absent).")] state: Option<String>,
        #[graphql(desc = "unmapped_group, link_conflict, sync_guard, …")] kind: Option<String>,
        #[graphql(default = 100)] first: i32,
    ) -> async_graphql::Result<Vec<ExceptionNode>> {
        let p = principal(ctx)?;
        let filter = ExceptionFilter {
            state: parse_word(state.as_deref(), "state")?,
            kind: parse_word(kind.as_deref(), "kind")?,
            limit: first.clamp(0, MAX_PAGE) as u32,
            ..Default::default()
        };
        Ok(store(ctx)?
            .list_exceptions(p.org, &filter)
            .await
            .map_err(api_error)?
            .into_iter()
            .map(ExceptionNode)
            .collect())
    }

    /// A source's latest sync runs, newest first.
    #[graphql(
        guard = "Needs(Action::View)",
        complexity = "first.clamp(0, MAX_PAGE) as usize * child_complexity"
    )]
    async fn sync_runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The source connection's name or id.")] connection: String,
        #[graphql(default = 20)] first: i32,
    ) -> async_graphql::Result<Vec<SyncRunNode>> {
        let p = principal(ctx)?;
        let s = store(ctx)?;
        let id = connection_named(s.as_ref(), p.org, &connection).await?;
        Ok(s.sync_runs(p.org, id, first.clamp(0, MAX_PAGE) as u32)
            .await
            .map_err(api_error)?
            .into_iter()
            .map(SyncRunNode)
            .collect())
    }

    /// What setting a mapping would do, without changing anything: the preview the
    /// workbench shows before a change is confirmed.
    #[graphql(guard = "Needs(Action::View)")]
    async fn mapping_impact(
        &self,
        ctx: &Context<'_>,
        input: RoleMappingInput,
    ) -> async_graphql::Result<ImpactNode> {
        let p = principal(ctx)?;
        let s = store(ctx)?;
        let rule = input.rule(s.as_ref(), p.org).await?;
        let impact = commands::preview_rule(s.as_ref(), p.org, &rule)
            .await
            .map_err(policy_error)?;
        Ok(ImpactNode(impact))
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

    /// The audit log, newest first, a page at a time (the cursor is the last event's id, so
    /// pages stay stable while events are added).
    #[graphql(
        guard = "Needs(Action::View)",
        complexity = "first.unwrap_or(50).clamp(0, MAX_PAGE) as usize * child_complexity"
    )]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, AuditEventNode, EmptyFields, EmptyFields>> {
        let p = principal(ctx)?.clone();
        let s = store(ctx)?.clone();
        let base = filter.unwrap_or_default().resolve()?;
        query(
            after,
            None,
            first,
            None,
            |after: Option<String>, _before: Option<String>, first, _last| async move {
                let limit = first.unwrap_or(50).min(MAX_PAGE as usize);
                let before = match after {
                    Some(c) => Some(
                        c.parse::<AuditEventId>()
                            .map_err(|_| bad_input(format!("bad cursor {c:?}")))?,
                    ),
                    None => None,
                };
                let filter = AuditFilter {
                    before,
                    limit: limit as u32 + 1,
                    ..base
                };
                let mut page = s.list_audit(p.org, &filter).await.map_err(api_error)?;
                let more = page.len() > limit;
                page.truncate(limit);
                let mut conn = Connection::new(before.is_some(), more);
                conn.edges.extend(
                    page.into_iter()
                        .map(|e| Edge::new(e.id.to_string(), AuditEventNode(e))),
                );
                Ok::<_, async_graphql::Error>(conn)
            },
        )
        .await
    }
}

/// The total of an operations listing, counted only when a query asks for it.
pub struct OperationsTotal {
    org: OrganizationId,
    filter: OperationFilter,
}

#[Object]
impl OperationsTotal {
    /// How many operations match, on every page.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        store(ctx)?
            .count_operations(self.org, &self.filter)
            .await
            .map_err(api_error)
    }
}

/// One page of operations matching `filter`, after the cursor `after`.
async fn operations_page(
    s: Arc<dyn Store>,
    org: OrganizationId,
    filter: OperationFilter,
    first: Option<i32>,
    after: Option<String>,
) -> async_graphql::Result<Connection<String, OperationNode, OperationsTotal, EmptyFields>> {
    query(
        after,
        None,
        first,
        None,
        |after: Option<String>, _before: Option<String>, first, _last| async move {
            let limit = first.unwrap_or(50).min(MAX_PAGE as usize);
            let before = match after {
                Some(c) => Some(
                    c.parse::<OperationId>()
                        .map_err(|_| bad_input(format!("bad cursor {c:?}")))?,
                ),
                None => None,
            };
            let mut page = s
                .operations_page(org, &filter, before, limit as u32 + 1)
                .await
                .map_err(api_error)?;
            let more = page.len() > limit;
            page.truncate(limit);
            let mut conn = Connection::with_additional_fields(
                before.is_some(),
                more,
                OperationsTotal { org, filter },
            );
            conn.edges.extend(
                page.into_iter()
                    .map(|o| Edge::new(o.id.to_string(), OperationNode(o))),
            );
            Ok::<_, async_graphql::Error>(conn)
        },
    )
    .await
}
