//! The API's input objects and how they become the engine's: names resolved in the token's
//! organization, words parsed as the CLI parses them (kebab-case and upper case accepted).

use super::error::{api_error, bad_input};
use crate::domain::{ConnectionId, GroupSelector, OrganizationId, RoleMappingId};
use crate::engine::commands::MappingRule;
use crate::store::{OperationFilter, Store};
use async_graphql::{ID, InputObject};

/// A connection of the organization by name or id.
pub async fn connection_named(
    s: &dyn Store,
    org: OrganizationId,
    name_or_id: &str,
) -> async_graphql::Result<ConnectionId> {
    if let Ok(id) = name_or_id.parse::<ConnectionId>()
        && s.connection(org, id).await.map_err(api_error)?.is_some()
    {
        return Ok(id);
    }
    Ok(s.connection_by_name(org, name_or_id)
        .await
        .map_err(api_error)?
        .ok_or_else(|| {
            bad_input(format!("no connection {name_or_id:?}"))
                .extend_with(|_, e| e.set("code", "NOT_FOUND"))
        })?
        .id)
}

use async_graphql::ErrorExtensions;

/// An optional word parsed as `T` parses it, naming the argument when it does not.
pub fn parse_word<T: std::str::FromStr>(
    word: Option<&str>,
    what: &str,
) -> async_graphql::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    match word {
        None => Ok(None),
        Some(w) => w
            .parse::<T>()
            .map(Some)
            .map_err(|e| bad_input(format!("{what}: {e}"))),
    }
}

/// Which operations a listing wants.
#[derive(InputObject, Default)]
pub struct OperationFilterInput {
    /// The target's name or id.
    pub connection: Option<String>,
    /// pending, in_flight, retry_wait, failed, succeeded or skipped.
    pub state: Option<String>,
    /// create, update, suspend, delete, add_members or remove_members.
    pub action: Option<String>,
    /// Only operations on this user (or group).
    pub user: Option<ID>,
}

impl OperationFilterInput {
    /// The store's filter, names resolved in `org`.
    pub async fn resolve(
        self,
        s: &dyn Store,
        org: OrganizationId,
    ) -> async_graphql::Result<OperationFilter> {
        let connection_id = match &self.connection {
            Some(c) => Some(connection_named(s, org, c).await?),
            None => None,
        };
        let resource_id = match &self.user {
            Some(id) => Some(
                id.parse::<uuid::Uuid>()
                    .map_err(|_| bad_input(format!("user: {:?} is not an id", id.as_str())))?,
            ),
            None => None,
        };
        Ok(OperationFilter {
            connection_id,
            state: parse_word(self.state.as_deref(), "state")?,
            action: parse_word(self.action.as_deref(), "action")?,
            resource_id,
            ..Default::default()
        })
    }
}

/// A role mapping to preview or set: groups matching `pattern` get `role`.
#[derive(InputObject)]
pub struct RoleMappingInput {
    /// The mapping to change; absent adds one.
    pub id: Option<ID>,
    /// The group pattern (exact, or a glob with `glob: true`).
    pub pattern: String,
    /// The role granted, by name (created when it does not exist).
    pub role: String,
    /// What the pattern is compared with: display_name (default), external_id or path.
    pub selector: Option<String>,
    /// Whether the pattern is a glob.
    #[graphql(default = false)]
    pub glob: bool,
    /// Only groups of this source (name or id).
    pub source: Option<String>,
}

impl RoleMappingInput {
    /// The engine's rule, names resolved in `org`.
    pub async fn rule(
        &self,
        s: &dyn Store,
        org: OrganizationId,
    ) -> async_graphql::Result<MappingRule> {
        let id = match &self.id {
            Some(id) => Some(
                id.parse::<RoleMappingId>()
                    .map_err(|_| bad_input(format!("id: {:?} is not a mapping id", id.as_str())))?,
            ),
            None => None,
        };
        let source = match &self.source {
            Some(c) => Some(connection_named(s, org, c).await?),
            None => None,
        };
        Ok(MappingRule {
            id,
            pattern: self.pattern.clone(),
            role: self.role.clone(),
            selector: parse_word::<GroupSelector>(self.selector.as_deref(), "selector")?
                .unwrap_or(GroupSelector::DisplayName),
            glob: self.glob,
            source,
        })
    }
}

/// Which audit events a listing wants.
#[derive(InputObject, Default)]
pub struct AuditFilterInput {
    /// Only this actor (an operator's or a token's name).
    pub actor: Option<String>,
    /// Only actions starting with this (e.g. `connection.`).
    pub action: Option<String>,
    /// Only events about this subject id.
    pub subject: Option<String>,
    /// Only events at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only events before this time (RFC 3339).
    pub until: Option<String>,
}

impl AuditFilterInput {
    /// The store's filter (its page bounds left to the caller).
    pub fn resolve(self) -> async_graphql::Result<crate::domain::AuditFilter> {
        let time = |t: Option<String>, what: &str| -> async_graphql::Result<_> {
            match t {
                None => Ok(None),
                Some(t) => crate::domain::Timestamp::parse_rfc3339(&t)
                    .map(Some)
                    .map_err(|_| bad_input(format!("{what}: {t:?} is not an RFC 3339 time"))),
            }
        };
        Ok(crate::domain::AuditFilter {
            actor: self.actor,
            action_prefix: self.action,
            subject_id: self.subject,
            since: time(self.since, "since")?,
            until: time(self.until, "until")?,
            ..Default::default()
        })
    }
}
