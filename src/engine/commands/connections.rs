//! Connections as people add, re-key and remove them: the checks every surface applies before
//! the store writes (a URL where one is needed, a secret only where one is used, OAuth with a
//! client id), in one place so the CLI and the API refuse the same things.

use super::PolicyError;
use crate::crypto::Secret;
use crate::domain::*;
use crate::store::{Store, StoreError};
use serde_json::{Map, Value};

/// A connection to add, as a person gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSpec {
    /// Unique (per organization) name.
    pub name: String,
    /// What is at the other end.
    pub kind: ConnectionKind,
    /// The remote API's base URL (targets and sources that are read need one).
    pub base_url: Option<String>,
    /// How to authenticate (each kind has a default).
    pub auth: Option<AuthMethod>,
    /// Kind-specific settings (never secrets).
    pub settings: Map<String, Value>,
    /// The OAuth client id, kept in the settings.
    pub client_id: Option<String>,
    /// The OIDC issuer, kept in the settings.
    pub issuer: Option<String>,
}

/// How a kind authenticates unless told otherwise.
pub fn default_auth(kind: ConnectionKind) -> AuthMethod {
    match kind {
        ConnectionKind::ScimTarget | ConnectionKind::ScimSource => AuthMethod::Bearer,
        ConnectionKind::Keycloak | ConnectionKind::Zitadel => AuthMethod::OAuth2ClientCredentials,
        ConnectionKind::ScimInbound | ConnectionKind::Saml => AuthMethod::None,
    }
}

/// Checks `spec` and adds the connection, sealing `secret` with the organization's key.
pub async fn create_connection(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    spec: ConnectionSpec,
    secret: Option<&Secret>,
) -> Result<Connection, PolicyError> {
    let kind = spec.kind;
    let auth = spec.auth.unwrap_or_else(|| default_auth(kind));
    let needs_url = matches!(
        kind,
        ConnectionKind::ScimTarget
            | ConnectionKind::ScimSource
            | ConnectionKind::Keycloak
            | ConnectionKind::Zitadel
    );
    if needs_url && spec.base_url.is_none() {
        return Err(PolicyError::Invalid(format!(
            "a {kind} connection needs --base-url URL"
        )));
    }
    if let Some(url) = &spec.base_url {
        validate::base_url(url).map_err(StoreError::from)?;
    }
    let mut settings = spec.settings;
    if let Some(id) = spec.client_id {
        settings.insert("client_id".into(), Value::String(id));
    }
    if let Some(issuer) = &spec.issuer {
        let issuer = validate::base_url(issuer).map_err(StoreError::from)?;
        settings.insert("issuer".into(), Value::String(issuer));
    }
    if kind == ConnectionKind::Saml {
        SamlSettings::from_json(&Value::Object(settings.clone()))
            .map_err(|e| PolicyError::Invalid(e.to_string()))?;
        if let Some(pem) = secret {
            super::check_sp_key(pem.expose())?;
        }
    }
    if let Some(policy) = settings.get("delete_policy")
        && !matches!(policy.as_str(), Some("delete" | "deprovision"))
    {
        return Err(PolicyError::Invalid(format!(
            "delete_policy must be \"delete\" or \"deprovision\", not {policy}"
        )));
    }
    // A SAML source's secret is our SP's private key, for assertions encrypted to us.
    if auth == AuthMethod::None && secret.is_some() && kind != ConnectionKind::Saml {
        return Err(PolicyError::Invalid(
            "this connection authenticates with `none`; a secret would never be used (choose --auth bearer or oauth2_client_credentials)".into(),
        ));
    }
    if auth == AuthMethod::OAuth2ClientCredentials && !settings.contains_key("client_id") {
        return Err(PolicyError::Invalid(
            "oauth2_client_credentials needs --client-id (and --issuer or --setting token_url=URL)"
                .into(),
        ));
    }
    let new = NewConnection {
        name: spec.name,
        kind,
        base_url: spec.base_url,
        auth_method: auth,
        settings: Value::Object(settings),
    };
    Ok(store.create_connection(actor, org, &new, secret).await?)
}

/// Stores a new secret for a connection (audited; the old one is gone).
pub async fn rotate_secret(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    id: ConnectionId,
    secret: &Secret,
) -> Result<(), PolicyError> {
    // A SAML source's secret is our SP key: a new one must be a key we can decrypt with.
    if let Some(c) = store.connection(org, id).await?
        && c.kind == ConnectionKind::Saml
    {
        super::check_sp_key(secret.expose())?;
    }
    store
        .set_connection_secret(actor, org, id, Some(secret))
        .await?;
    Ok(())
}

/// Removes a connection with its links, queued operations, mappings and tokens. Returns
/// whether it existed.
pub async fn remove_connection(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    id: ConnectionId,
) -> Result<bool, PolicyError> {
    Ok(store.delete_connection(actor, org, id).await?)
}
