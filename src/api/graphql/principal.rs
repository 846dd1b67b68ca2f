//! Who a GraphQL request acts as, and the guard every field and mutation declares: the one
//! authorization model ([`crate::domain::access`]) applied to API tokens.

use crate::domain::{Access, Action, Actor, ActorKind, ApiToken, OrganizationId};
use async_graphql::{Context, ErrorExtensions, Guard};

/// The caller: an API token of one organization, with its level.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's organization: every read and change is scoped to it.
    pub org: OrganizationId,
    /// What the token may do.
    pub access: Access,
    /// Who the audit log names: the token's name.
    pub actor: Actor,
}

impl Principal {
    /// The principal an authenticated API token is.
    pub fn of(token: &ApiToken) -> Self {
        Self {
            org: token.organization_id,
            access: token.access,
            actor: Actor {
                kind: ActorKind::Api,
                name: token.name.clone(),
            },
        }
    }
}

/// The guard a field or mutation declares: `#[graphql(guard = "Needs(Action::Retry)")]`.
pub struct Needs(pub Action);

impl Needs {
    /// The guard's check on a principal already in hand (for a mutation whose need depends
    /// on its arguments).
    pub fn check_principal(&self, principal: &Principal) -> async_graphql::Result<()> {
        principal.access.check(self.0).map_err(|denied| {
            async_graphql::Error::new(denied.to_string()).extend_with(|_, e| {
                e.set("code", "FORBIDDEN");
                e.set("needs", denied.needs.as_str());
            })
        })
    }
}

impl Guard for Needs {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let principal = ctx.data::<Principal>().map_err(|_| unauthenticated())?;
        self.check_principal(principal)
    }
}

/// The one error an unauthenticated request gets.
pub fn unauthenticated() -> async_graphql::Error {
    async_graphql::Error::new(
        "authentication required: send an API token as `Authorization: Bearer …` (scimdesk token create --scope read|operate|admin)",
    )
    .extend_with(|_, e| e.set("code", "UNAUTHENTICATED"))
}

/// The principal of a resolver (its guard has already checked it is there).
pub fn principal<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Principal> {
    ctx.data::<Principal>().map_err(|_| unauthenticated())
}
