//! The SCIM client of a target connection, with the credentials the store keeps for it.

use crate::connectors::oauth::{ClientCredentialsConfig, TokenEndpoint};
use crate::connectors::scim_client::{ScimClient, TargetAuth, TargetError};
use crate::domain::*;
use crate::store::{Store, StoreError};

/// Why a target's client cannot be made: the connection lacks something, or its secret
/// cannot be read. The delivery waits (and health says why) until the connection is fixed.
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    /// The connection has no base URL.
    #[error("the connection has no base URL")]
    NoBaseUrl,
    /// The secret could not be read (or decrypted).
    #[error("cannot read the connection's secret: {0}")]
    Secret(StoreError),
    /// The authentication method needs something the connection lacks.
    #[error("{0}")]
    Incomplete(&'static str),
    /// The client refused the configuration (a bad URL, say).
    #[error(transparent)]
    Client(#[from] TargetError),
}

/// The SCIM client of a target connection, authenticating with its decrypted secret (a
/// Bearer token, or OAuth 2.0 client credentials).
pub async fn target_client(
    store: &dyn Store,
    connection: &Connection,
    settings: &TargetSettings,
) -> Result<ScimClient, ClientSetupError> {
    let base = connection
        .base_url
        .clone()
        .ok_or(ClientSetupError::NoBaseUrl)?;
    let secret = store
        .connection_secret(connection.organization_id, connection.id)
        .await
        .map_err(ClientSetupError::Secret)?;
    let auth = match connection.auth_method {
        AuthMethod::None => TargetAuth::None,
        AuthMethod::Bearer => TargetAuth::Bearer(secret.ok_or(ClientSetupError::Incomplete(
            "bearer authentication needs a secret (the token)",
        ))?),
        AuthMethod::OAuth2ClientCredentials => {
            let client_id = settings
                .client_id
                .clone()
                .ok_or(ClientSetupError::Incomplete(
                    "OAuth client credentials need settings.client_id",
                ))?;
            let endpoint = match (&settings.issuer, &settings.token_url) {
                (Some(issuer), _) => TokenEndpoint::Discover {
                    issuer: issuer.clone(),
                },
                (None, Some(url)) => TokenEndpoint::Fixed(url.clone()),
                (None, None) => {
                    return Err(ClientSetupError::Incomplete(
                        "OAuth client credentials need settings.issuer or settings.token_url",
                    ));
                }
            };
            TargetAuth::OAuth2(ClientCredentialsConfig {
                endpoint,
                client_id,
                client_secret: secret.ok_or(ClientSetupError::Incomplete(
                    "OAuth client credentials need a secret (the client secret)",
                ))?,
                scope: settings.scope.clone(),
                client_auth: settings.client_auth,
            })
        }
    };
    Ok(ScimClient::new(&base, auth, settings.timeout())?)
}
