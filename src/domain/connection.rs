//! Connections: the identity sources scimdesk reads from and the targets it provisions.

use super::text_enum::text_enum;
use super::{ConnectionId, OrganizationId, Timestamp};
use serde::Serialize;
use sqlx::types::Json;

text_enum!(
    /// What is at the other end of a connection.
    ConnectionKind {
        /// A downstream SCIM 2.0 application that scimdesk provisions.
        ScimTarget = "scim_target",
        /// An identity provider that pushes SCIM to scimdesk's inbound server.
        ScimInbound = "scim_inbound",
        /// A SCIM server that scimdesk reads identities from.
        ScimSource = "scim_source",
        /// A Keycloak realm read through its admin API.
        Keycloak = "keycloak",
        /// A Zitadel instance read through its API.
        Zitadel = "zitadel",
        /// A SAML 2.0 identity provider whose assertions carry attributes.
        Saml = "saml",
    }
);

impl ConnectionKind {
    /// Whether identities flow *into* scimdesk through this connection.
    pub fn is_source(&self) -> bool {
        !matches!(self, ConnectionKind::ScimTarget)
    }

    /// Whether the source's work is recorded as sync runs (health judges it by them): the
    /// sources scimdesk pulls from, and SAML sources, whose every login is a run.
    pub fn records_runs(&self) -> bool {
        self.is_pulled() || matches!(self, ConnectionKind::Saml)
    }

    /// Whether scimdesk reads identities from the other end (rather than sending to it or
    /// being pushed to): the sources a sync pulls from.
    pub fn is_pulled(&self) -> bool {
        matches!(
            self,
            ConnectionKind::ScimSource | ConnectionKind::Keycloak | ConnectionKind::Zitadel
        )
    }
}

text_enum!(
    /// How scimdesk authenticates to the other end.
    AuthMethod {
        /// No credentials (inbound connections authenticate with scimdesk's own tokens).
        None = "none",
        /// A static OAuth 2.0 Bearer token (RFC 6750).
        Bearer = "bearer",
        /// OAuth 2.0 client credentials; the secret is the client secret.
        OAuth2ClientCredentials = "oauth2_client_credentials",
    }
);

text_enum!(
    /// Whether the engine works on a connection.
    ConnectionState {
        /// Operations flow.
        Active = "active",
        /// Stopped by an operator.
        Paused = "paused",
        /// Stopped automatically after sustained failure; probed periodically.
        Quarantined = "quarantined",
    }
);

/// A configured connection. The secret itself is never part of this value.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Connection {
    /// Stable identifier.
    pub id: ConnectionId,
    /// The owning tenant.
    pub organization_id: OrganizationId,
    /// Unique (per organization) name.
    pub name: String,
    /// What is at the other end.
    #[sqlx(try_from = "String")]
    pub kind: ConnectionKind,
    /// Base URL of the remote API, if it has one.
    pub base_url: Option<String>,
    /// How to authenticate.
    #[sqlx(try_from = "String")]
    pub auth_method: AuthMethod,
    /// Whether an encrypted secret is stored (the secret itself is only available decrypted on demand).
    pub has_secret: bool,
    /// Kind-specific settings (client id, issuer, delete policy, ...). Never secrets.
    pub settings: Json<serde_json::Value>,
    /// Engine state.
    #[sqlx(try_from = "String")]
    pub state: ConnectionState,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// What is needed to create a connection (the secret travels separately, sealed by the store).
#[derive(Debug, Clone, PartialEq)]
pub struct NewConnection {
    /// Unique (per organization) name.
    pub name: String,
    /// What is at the other end.
    pub kind: ConnectionKind,
    /// Base URL of the remote API.
    pub base_url: Option<String>,
    /// How to authenticate.
    pub auth_method: AuthMethod,
    /// Kind-specific settings.
    pub settings: serde_json::Value,
}

/// Changes to a connection's configuration; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionUpdate {
    /// New base URL (`Some(None)` clears it).
    pub base_url: Option<Option<String>>,
    /// New authentication method.
    pub auth_method: Option<AuthMethod>,
    /// New settings, replacing the old.
    pub settings: Option<serde_json::Value>,
    /// New engine state.
    pub state: Option<ConnectionState>,
}
