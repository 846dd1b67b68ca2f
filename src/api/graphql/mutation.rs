//! The mutations. Each goes through `engine::commands`, the path the CLI and the workbench
//! take, and is audited with the token's name as the actor.

use super::error::{api_error, bad_input, policy_error};
use super::inputs::{OperationFilterInput, RoleMappingInput, connection_named, parse_word};
use super::principal::{Needs, principal};
use super::types::*;
use crate::crypto::Secret;
use crate::domain::{Action, ExceptionId, OperationId, RoleMappingId};
use crate::engine::commands::{
    self, ConnectionSpec, Guard, MappingChange, Resolution, SyncError, SyncOptions, sync_source,
};
use crate::store::Store;
use async_graphql::{Context, ErrorExtensions, ID, InputObject, Object, SimpleObject};
use std::sync::Arc;

/// A connection to add.
#[derive(InputObject)]
pub struct ConnectionInput {
    /// Unique (per organization) name.
    pub name: String,
    /// scim_target, scim_source, keycloak, zitadel, scim_inbound.
    pub kind: String,
    /// The remote API's base URL.
    pub base_url: Option<String>,
    /// bearer, oauth2_client_credentials or none (each kind has a default).
    pub auth: Option<String>,
    /// Kind-specific settings as a JSON object (never secrets).
    pub settings: Option<String>,
    /// The OAuth client id.
    pub client_id: Option<String>,
    /// The OIDC issuer.
    pub issuer: Option<String>,
    /// The secret (bearer token or client secret): stored sealed, never returned.
    pub secret: Option<String>,
}

/// How an exception is settled: exactly one of these.
#[derive(InputObject)]
pub struct ResolutionInput {
    /// Set it aside, with why.
    pub dismiss: Option<String>,
    /// An unmapped group: map it to this role (a guarded mapping change; needs admin).
    pub map_to: Option<String>,
    /// A conflict: link to this resource id at the target, then retry.
    pub link: Option<String>,
    /// A sync the deletion guard stopped: run it past the guard.
    #[graphql(default = false)]
    pub apply_sync: bool,
}

/// What a sync (of a source) or a push (to a target) did.
#[derive(SimpleObject)]
pub struct SyncResult {
    /// source or target.
    pub side: String,
    /// For a source: its counts per kind, as JSON text.
    pub counts: Option<String>,
    /// For a source: the run recorded.
    pub run: Option<SyncRunNode>,
    /// For a source the guard stopped: why (nothing was written; an exception is open).
    pub guard: Option<String>,
    /// For a target: operations made due now.
    pub made_due: Option<u64>,
}

/// A mapping change carried out (or, dry, previewed).
#[derive(SimpleObject)]
pub struct MappingResult {
    /// What it does.
    pub impact: ImpactNode,
    /// The mapping written (none when dry, or removed).
    pub mapping: Option<RoleMappingNode>,
    /// Whether it was only a preview.
    pub dry_run: bool,
}

/// Tells live views (this process's subscribers and, through the engine's forwarding,
/// other processes') that a connection's state changed, at once rather than at the engine's
/// next health assessment.
fn announce_state(ctx: &Context<'_>, c: &crate::domain::Connection, reason: &str) {
    if let Ok(engine) = ctx.data::<Arc<crate::engine::Engine>>() {
        engine
            .events()
            .publish(crate::engine::events::EngineEvent::ConnectionStateChanged {
                organization_id: c.organization_id,
                connection_id: c.id,
                state: c.state,
                reason: reason.to_string(),
            });
    }
}

fn guard(ctx: &Context<'_>) -> Guard {
    ctx.data::<Guard>().copied().unwrap_or_default()
}

async fn mapping_node(
    s: &dyn Store,
    org: crate::domain::OrganizationId,
    m: Option<crate::domain::RoleMapping>,
) -> async_graphql::Result<Option<RoleMappingNode>> {
    let Some(m) = m else { return Ok(None) };
    let roles = s.list_roles(org).await.map_err(api_error)?;
    let name = roles
        .iter()
        .find(|r| r.id == m.role_id)
        .map(|r| r.name.clone())
        .unwrap_or_default();
    Ok(Some(RoleMappingNode(m, name)))
}

/// The mutation root.
pub struct Mutation;

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
        let id = connection_named(s.as_ref(), p.org, &connection).await?;
        let c = commands::pause(s.as_ref(), &p.actor, p.org, id, &reason)
            .await
            .map_err(api_error)?;
        announce_state(ctx, &c, &reason);
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
        let id = connection_named(s.as_ref(), p.org, &connection).await?;
        let c = commands::resume(s.as_ref(), &p.actor, p.org, id)
            .await
            .map_err(api_error)?;
        announce_state(ctx, &c, "resumed by an operator");
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

    /// Adds a connection (its secret sealed with the organization's key, never returned).
    #[graphql(guard = "Needs(Action::ManageConnections)")]
    async fn create_connection(
        &self,
        ctx: &Context<'_>,
        input: ConnectionInput,
    ) -> async_graphql::Result<ConnectionNode> {
        let p = principal(ctx)?;
        let s = ctx.data::<Arc<dyn Store>>()?;
        let settings = match input.settings.as_deref() {
            None => Default::default(),
            Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::Object(m)) => m,
                _ => return Err(bad_input("settings must be a JSON object")),
            },
        };
        let spec = ConnectionSpec {
            name: input.name,
            kind: input
                .kind
                .parse()
                .map_err(|e| bad_input(format!("kind: {e}")))?,
            base_url: input.base_url,
            auth: parse_word(input.auth.as_deref(), "auth")?,
            settings,
            client_id: input.client_id,
            issuer: input.issuer,
        };
        let secret = input.secret.filter(|t| !t.is_empty()).map(Secret::new);
        let c = commands::create_connection(s.as_ref(), &p.actor, p.org, spec, secret.as_ref())
            .await
            .map_err(policy_error)?;
        Ok(ConnectionNode(c))
    }

    /// Changes a target's policy settings: `changes` (a JSON object) are merged over the
    /// current ones, a `null` removing a key, and the result must compile as a policy, as
    /// `connection set` checks it.
    #[graphql(guard = "Needs(Action::ManageConnections)")]
    async fn update_connection(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The connection's name or id.")] connection: String,
        changes: String,
    ) -> async_graphql::Result<ConnectionNode> {
        let p = principal(ctx)?;
        let s = ctx.data::<Arc<dyn Store>>()?;
        let id = connection_named(s.as_ref(), p.org, &connection).await?;
        let changes = match serde_json::from_str::<serde_json::Value>(&changes) {
            Ok(serde_json::Value::Object(m)) if !m.is_empty() => m,
            _ => return Err(bad_input("changes must be a non-empty JSON object")),
        };
        let c = commands::configure_target(s.as_ref(), &p.actor, p.org, id, &changes)
            .await
            .map_err(policy_error)?;
        Ok(ConnectionNode(c))
    }

    /// Stores a new secret for a connection. Answers only whether one is stored.
    #[graphql(guard = "Needs(Action::ManageSecrets)")]
    async fn rotate_connection_secret(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The connection's name or id.")] connection: String,
        secret: String,
    ) -> async_graphql::Result<ConnectionNode> {
        let p = principal(ctx)?;
        let s = ctx.data::<Arc<dyn Store>>()?;
        if secret.is_empty() {
            return Err(bad_input("the new secret is empty"));
        }
        let id = connection_named(s.as_ref(), p.org, &connection).await?;
        commands::rotate_secret(s.as_ref(), &p.actor, p.org, id, &Secret::new(secret))
            .await
            .map_err(policy_error)?;
        let c = s
            .connection(p.org, id)
            .await
            .map_err(api_error)?
            .ok_or_else(|| bad_input("the connection is gone"))?;
        Ok(ConnectionNode(c))
    }

    /// Removes a connection with its links, queued operations, mappings and tokens.
    #[graphql(guard = "Needs(Action::ManageConnections)")]
    async fn remove_connection(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The connection's name or id.")] connection: String,
    ) -> async_graphql::Result<bool> {
        let p = principal(ctx)?;
        let s = ctx.data::<Arc<dyn Store>>()?;
        let id = connection_named(s.as_ref(), p.org, &connection).await?;
        commands::remove_connection(s.as_ref(), &p.actor, p.org, id)
            .await
            .map_err(policy_error)
    }

    /// Syncs a source now (`full`: read it whole; `dryRun`: report and write nothing), or
    /// sends what waits for a target now.
    #[graphql(guard = "Needs(Action::Sync)")]
    async fn sync_connection(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The connection's name or id.")] connection: String,
        #[graphql(default = false)] full: bool,
        #[graphql(default = false)] dry_run: bool,
    ) -> async_graphql::Result<SyncResult> {
        let p = principal(ctx)?;
        let s = ctx.data::<Arc<dyn Store>>()?;
        let id = connection_named(s.as_ref(), p.org, &connection).await?;
        let c = s
            .connection(p.org, id)
            .await
            .map_err(api_error)?
            .ok_or_else(|| bad_input("the connection is gone"))?;
        if c.kind.is_source() {
            let options = SyncOptions {
                full,
                dry_run,
                ..Default::default()
            };
            let report = sync_source(s.as_ref(), &p.actor, p.org, id, options)
                .await
                .map_err(|e| match e {
                    SyncError::Store(e) => api_error(e),
                    other => async_graphql::Error::new(other.to_string())
                        .extend_with(|_, x| x.set("code", "SOURCE_FAILED")),
                })?;
            return Ok(SyncResult {
                side: "source".into(),
                counts: serde_json::to_string(&report.counts).ok(),
                guard: report.guard.as_ref().map(|g| {
                    format!(
                        "the deletion guard stopped the sync: it would suspend {} users",
                        g.suspending
                    )
                }),
                run: Some(SyncRunNode(report.run)),
                made_due: None,
            });
        }
        if dry_run {
            return Err(bad_input(
                "a dry run applies to sources; targets are reconciled",
            ));
        }
        let n = commands::sync_now(s.as_ref(), &p.actor, p.org, id)
            .await
            .map_err(api_error)?;
        Ok(SyncResult {
            side: "target".into(),
            counts: None,
            run: None,
            guard: None,
            made_due: Some(n),
        })
    }

    /// Puts every failed operation matching the filter back in the queue; returns how many.
    #[graphql(guard = "Needs(Action::Retry)")]
    async fn retry_operations(
        &self,
        ctx: &Context<'_>,
        filter: Option<OperationFilterInput>,
    ) -> async_graphql::Result<u64> {
        let p = principal(ctx)?;
        let s = ctx.data::<Arc<dyn Store>>()?;
        let filter = filter
            .unwrap_or_default()
            .resolve(s.as_ref(), p.org)
            .await?;
        commands::retry_all(s.as_ref(), &p.actor, p.org, &filter)
            .await
            .map_err(api_error)
    }

    /// Adds or changes a role mapping, with the operations it causes at targets. Refused by
    /// the guard (code `GUARDED`, with the impact's figures; nothing changes) when it removes
    /// too much access, unless `force`. `dryRun` only previews.
    #[graphql(guard = "Needs(Action::ManageMappings)")]
    async fn upsert_role_mapping(
        &self,
        ctx: &Context<'_>,
        input: RoleMappingInput,
        #[graphql(default = false)] force: bool,
        #[graphql(default = false)] dry_run: bool,
    ) -> async_graphql::Result<MappingResult> {
        let p = principal(ctx)?;
        let s = ctx.data::<Arc<dyn Store>>()?;
        let rule = input.rule(s.as_ref(), p.org).await?;
        if dry_run {
            let impact = commands::preview_rule(s.as_ref(), p.org, &rule)
                .await
                .map_err(policy_error)?;
            return Ok(MappingResult {
                impact: ImpactNode(impact),
                mapping: None,
                dry_run: true,
            });
        }
        let (impact, mapping) =
            commands::apply_rule(s.as_ref(), &p.actor, p.org, &rule, &guard(ctx), force)
                .await
                .map_err(policy_error)?;
        Ok(MappingResult {
            impact: ImpactNode(impact),
            mapping: mapping_node(s.as_ref(), p.org, mapping).await?,
            dry_run: false,
        })
    }

    /// Removes a role mapping, with what its members' losing the role causes; guarded as
    /// `upsertRoleMapping` is.
    #[graphql(guard = "Needs(Action::ManageMappings)")]
    async fn delete_role_mapping(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default = false)] force: bool,
    ) -> async_graphql::Result<MappingResult> {
        let p = principal(ctx)?;
        let s = ctx.data::<Arc<dyn Store>>()?;
        let id: RoleMappingId = id
            .parse()
            .map_err(|_| bad_input(format!("{:?} is not a mapping id", id.as_str())))?;
        let (impact, _) = commands::set_mapping(
            s.as_ref(),
            &p.actor,
            p.org,
            &MappingChange::Remove(id),
            &guard(ctx),
            force,
        )
        .await
        .map_err(policy_error)?;
        Ok(MappingResult {
            impact: ImpactNode(impact),
            mapping: None,
            dry_run: false,
        })
    }

    /// Settles an open exception. Mapping an unmapped group to a role is a mapping change
    /// and needs admin; `force` takes it past the guard.
    #[graphql(guard = "Needs(Action::Resolve)")]
    async fn resolve_exception(
        &self,
        ctx: &Context<'_>,
        id: ID,
        resolution: ResolutionInput,
        #[graphql(default = false)] force: bool,
    ) -> async_graphql::Result<ExceptionNode> {
        let p = principal(ctx)?;
        let s = ctx.data::<Arc<dyn Store>>()?;
        let id: ExceptionId = id
            .parse()
            .map_err(|_| bad_input(format!("{:?} is not an exception id", id.as_str())))?;
        let how = match (
            resolution.dismiss,
            resolution.map_to,
            resolution.link,
            resolution.apply_sync,
        ) {
            (Some(why), None, None, false) => Resolution::Dismiss(why),
            (None, Some(role), None, false) => {
                Needs(Action::ManageMappings).check_principal(p)?;
                Resolution::MapTo(role)
            }
            (None, None, Some(remote), false) => Resolution::Link(remote),
            (None, None, None, true) => Resolution::ApplySync,
            _ => {
                return Err(bad_input(
                    "give exactly one of dismiss, mapTo, link or applySync",
                ));
            }
        };
        let ex =
            commands::resolve_exception(s.as_ref(), &p.actor, p.org, id, &how, &guard(ctx), force)
                .await
                .map_err(policy_error)?;
        Ok(ExceptionNode(ex))
    }
}
