//! The SCIM client of a target connection, with the credentials the store keeps for it.

use crate::connectors::oauth::{ClientCredentialsConfig, TokenEndpoint};
use crate::connectors::scim_client::{ScimClient, TargetAuth};
use crate::domain::*;
use crate::store::Store;

/// The SCIM client of a target connection, authenticating with its decrypted secret (a
/// Bearer token, or OAuth 2.0 client credentials).
pub async fn target_client(
    store: &dyn Store,
    connection: &Connection,
    settings: &TargetSettings,
) -> Result<ScimClient, String> {
    let base = connection
        .base_url
        .clone()
        .ok_or_else(|| "the connection has no base URL".to_string())?;
    let secret = store
        .connection_secret(connection.organization_id, connection.id)
        .await
        .map_err(|e| format!("cannot read the connection's secret: {e}"))?;
    let auth = match connection.auth_method {
        AuthMethod::None => TargetAuth::None,
        AuthMethod::Bearer => TargetAuth::Bearer(
            secret.ok_or_else(|| "bearer authentication needs a secret (the token)".to_string())?,
        ),
        AuthMethod::OAuth2ClientCredentials => {
            let client_id = settings
                .client_id
                .clone()
                .ok_or_else(|| "OAuth client credentials need settings.client_id".to_string())?;
            let endpoint = match (&settings.issuer, &settings.token_url) {
                (Some(issuer), _) => TokenEndpoint::Discover {
                    issuer: issuer.clone(),
                },
                (None, Some(url)) => TokenEndpoint::Fixed(url.clone()),
                (None, None) => {
                    return Err(
                        "OAuth client credentials need settings.issuer or settings.token_url"
                            .into(),
                    );
                }
            };
            TargetAuth::OAuth2(ClientCredentialsConfig {
                endpoint,
                client_id,
                client_secret: secret.ok_or_else(|| {
                    "OAuth client credentials need a secret (the client secret)".to_string()
                })?,
                scope: settings.scope.clone(),
                client_auth: settings.client_auth,
            })
        }
    };
    ScimClient::new(&base, auth, settings.timeout()).map_err(|e| e.to_string())
}
