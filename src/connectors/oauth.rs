//! OAuth 2.0 client credentials (RFC 6749 §4.4) for targets that want a fresh access token
//! rather than a static one: the token endpoint comes from OIDC discovery when an issuer is
//! configured, and the token is cached until shortly before it expires.

use super::scim_client::{TargetError, error_from};
use crate::crypto::Secret;
use crate::domain::ClientAuth;
use reqwest::header;
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Where the token endpoint is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenEndpoint {
    /// Read `token_endpoint` from `{issuer}/.well-known/openid-configuration`.
    Discover {
        /// The issuer URL.
        issuer: String,
    },
    /// This URL.
    Fixed(String),
}

/// What a client-credentials grant needs.
#[derive(Clone)]
pub struct ClientCredentialsConfig {
    /// Where to ask.
    pub endpoint: TokenEndpoint,
    /// The client id.
    pub client_id: String,
    /// The client secret (from the connection's encrypted secret).
    pub client_secret: Secret,
    /// Scope to ask for, if any.
    pub scope: Option<String>,
    /// How to present the secret.
    pub client_auth: ClientAuth,
}

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

/// Issues access tokens for one connection, caching them.
pub struct ClientCredentials {
    http: reqwest::Client,
    config: ClientCredentialsConfig,
    token_url: Mutex<Option<String>>,
    cached: Mutex<Option<Cached>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct Discovery {
    token_endpoint: String,
}

impl ClientCredentials {
    /// A token source using `http` (the target client's, so connections are reused).
    pub fn new(http: reqwest::Client, config: ClientCredentialsConfig) -> Self {
        Self {
            http,
            config,
            token_url: Mutex::new(None),
            cached: Mutex::new(None),
        }
    }

    /// A valid access token: the cached one, or a new one when it is about to expire.
    pub async fn token(&self) -> Result<Secret, TargetError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(c.token.clone());
        }
        let (token, lifetime) = self.fetch().await?;
        // Refresh a minute early, or at 80% of a short lifetime.
        let early = lifetime.mul_f64(0.2).min(Duration::from_secs(60));
        *cached = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(early),
        });
        Ok(token)
    }

    /// Forgets the cached token (the target refused it).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn endpoint(&self) -> Result<String, TargetError> {
        let mut known = self.token_url.lock().await;
        if let Some(url) = known.as_ref() {
            return Ok(url.clone());
        }
        let url = match &self.config.endpoint {
            TokenEndpoint::Fixed(url) => url.clone(),
            TokenEndpoint::Discover { issuer } => {
                let doc = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let resp = self
                    .http
                    .get(&doc)
                    .send()
                    .await
                    .map_err(|e| TargetError::Transport(format!("OIDC discovery: {e}")))?;
                let status = resp.status();
                let headers = resp.headers().clone();
                let bytes = resp
                    .bytes()
                    .await
                    .map_err(|e| TargetError::Transport(format!("OIDC discovery: {e}")))?;
                if !status.is_success() {
                    return Err(error_from(status.as_u16(), &headers, &bytes));
                }
                serde_json::from_slice::<Discovery>(&bytes)
                    .map_err(|e| {
                        TargetError::InvalidResponse(format!(
                            "OIDC discovery document has no token_endpoint: {e}"
                        ))
                    })?
                    .token_endpoint
            }
        };
        *known = Some(url.clone());
        Ok(url)
    }

    async fn fetch(&self) -> Result<(Secret, Duration), TargetError> {
        let url = self.endpoint().await?;
        let c = &self.config;
        let mut req = self
            .http
            .post(&url)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if let Some(scope) = &c.scope {
                form.append_pair("scope", scope);
            }
            match c.client_auth {
                ClientAuth::Basic => {
                    // RFC 6749 §2.3.1: id and secret are form-encoded before Basic encoding.
                    let enc = |s: &str| -> String {
                        url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
                    };
                    req = req.basic_auth(enc(&c.client_id), Some(enc(c.client_secret.expose())));
                }
                ClientAuth::Post => {
                    form.append_pair("client_id", &c.client_id);
                    form.append_pair("client_secret", c.client_secret.expose());
                }
            }
            form.finish()
        };
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| TargetError::Transport(format!("token endpoint: {e}")))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| TargetError::Transport(format!("token endpoint: {e}")))?;
        if !status.is_success() {
            return Err(error_from(status.as_u16(), &headers, &bytes));
        }
        let t: TokenResponse = serde_json::from_slice(&bytes).map_err(|e| {
            TargetError::InvalidResponse(format!("token endpoint answered without a token: {e}"))
        })?;
        Ok((
            Secret::new(t.access_token),
            Duration::from_secs(t.expires_in.unwrap_or(300).max(1)),
        ))
    }
}
