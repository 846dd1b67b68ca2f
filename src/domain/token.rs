//! API and inbound SCIM tokens. Only their hashes are stored.

use super::text_enum::text_enum;
use super::{ApiTokenId, ConnectionId, OrganizationId, Timestamp};
use serde::Serialize;

text_enum!(
    /// What a token may be used for.
    TokenScope {
        /// An identity provider pushing SCIM to one inbound connection.
        Scim = "scim",
        /// The management API.
        Api = "api",
    }
);

/// A token's record; the secret part exists only once, at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ApiToken {
    /// Stable identifier, also embedded in the token text.
    pub id: ApiTokenId,
    /// The tenant the token acts for.
    pub organization_id: OrganizationId,
    /// For SCIM tokens: the inbound connection it authenticates.
    pub connection_id: Option<ConnectionId>,
    /// A label for people.
    pub name: String,
    /// What it may be used for.
    #[sqlx(try_from = "String")]
    pub scope: TokenScope,
    /// For API tokens: what it may do in its organization.
    #[sqlx(try_from = "String")]
    pub access: super::Access,
    /// Creation time.
    pub created_at: Timestamp,
    /// After this time it is refused.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl ApiToken {
    /// Whether the token may be used at `now`.
    pub fn is_usable_at(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// What is needed to issue a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiToken {
    /// A label.
    pub name: String,
    /// What it may be used for.
    pub scope: TokenScope,
    /// For SCIM tokens, the inbound connection.
    pub connection_id: Option<ConnectionId>,
    /// For API tokens, what it may do (SCIM tokens are stored as `read` and ignore it).
    pub access: super::Access,
    /// Optional expiry.
    pub expires_at: Option<Timestamp>,
}
