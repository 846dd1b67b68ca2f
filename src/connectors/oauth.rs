//! OAuth 2.0 client credentials (RFC 6749 §4.4), for targets that want a fresh access token
//! rather than a static one and for the sources scimdesk pulls from (Keycloak, Zitadel, SCIM
//! servers): the token endpoint comes from OIDC discovery when an issuer is configured (and
//! the discovery document must name that issuer), the secret is presented as
//! `client_secret_basic` or `client_secret_post`, and the token is cached until shortly before
//! it expires. Every failure is an [`OAuthError`] that says what went wrong where.

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
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct Discovery {
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
}

/// An OAuth error answer (RFC 6749 §5.2).
#[derive(Deserialize, Default)]
struct ErrorAnswer {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// How much of an unexpected answer an error quotes.
const EXCERPT_CHARS: usize = 120;

/// Why no access token could be had. Each variant names the step and the URL; none holds a
/// secret (answers are quoted only when they are not JSON, and only their start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// No HTTP answer from the discovery or token endpoint (refused, reset, timed out, DNS).
    #[error("{step} at {url} is unreachable: {reason}")]
    Unreachable {
        /// `OIDC discovery` or `the token endpoint`.
        step: &'static str,
        /// Where.
        url: String,
        /// What the transport said.
        reason: String,
    },
    /// The discovery document is another issuer's: the configured issuer URL is wrong.
    #[error(
        "OIDC discovery at {url} names the issuer {found:?}, not {expected:?}: is the issuer URL right?"
    )]
    WrongIssuer {
        /// The discovery document's URL.
        url: String,
        /// The issuer configured.
        expected: String,
        /// The issuer the document names (empty when it names none).
        found: String,
    },
    /// The discovery document has no `token_endpoint`.
    #[error("OIDC discovery at {url} gives no token_endpoint")]
    NoTokenEndpoint {
        /// The discovery document's URL.
        url: String,
    },
    /// The token endpoint refused the client: a wrong client id or secret, or the wrong way
    /// of presenting it (`client_auth`).
    #[error(
        "the token endpoint at {url} refused the client credentials (invalid_client{}): check the client id, the secret and client_auth",
        description.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
    )]
    InvalidClient {
        /// The token endpoint.
        url: String,
        /// The server's `error_description`, if it gave one.
        description: Option<String>,
    },
    /// Another error status (`invalid_scope`, `unauthorized_client`, 5xx…).
    #[error(
        "{step} at {url} answered {status}{}",
        error.as_deref().map(|e| format!(" ({e}{})", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())).unwrap_or_default()
    )]
    Refused {
        /// `OIDC discovery` or `the token endpoint`.
        step: &'static str,
        /// Where.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The OAuth `error` code, if the body had one.
        error: Option<String>,
        /// The server's `error_description`, if it gave one.
        description: Option<String>,
    },
    /// A 2xx answer that is not a JSON object (an HTML login page, a proxy's page, a
    /// truncated body).
    #[error(
        "{step} at {url} answered {content_type} where a JSON object was expected: {excerpt:?}"
    )]
    NotJson {
        /// `OIDC discovery` or `the token endpoint`.
        step: &'static str,
        /// Where.
        url: String,
        /// The answer's `Content-Type` (or `no content type`).
        content_type: String,
        /// The start of the answer.
        excerpt: String,
    },
    /// The token endpoint answered 2xx JSON without an `access_token`.
    #[error("the token endpoint at {url} answered without an access_token")]
    NoAccessToken {
        /// The token endpoint.
        url: String,
    },
}

impl OAuthError {
    /// Whether asking again later can succeed: no answer, 429 or a server error. A refused
    /// client or a wrong issuer needs a person.
    pub fn is_retryable(&self) -> bool {
        match self {
            OAuthError::Unreachable { .. } => true,
            OAuthError::Refused { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// An answer read whole: status, content type and body.
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

/// Sends `req` and reads the answer; no answer is [`OAuthError::Unreachable`].
async fn send(
    req: reqwest::RequestBuilder,
    step: &'static str,
    url: &str,
) -> Result<Answer, OAuthError> {
    let unreachable = |e: reqwest::Error| OAuthError::Unreachable {
        step,
        url: url.to_string(),
        reason: super::describe(&e),
    };
    let resp = req.send().await.map_err(unreachable)?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no content type")
        .to_string();
    let body = resp.bytes().await.map_err(unreachable)?.to_vec();
    Ok(Answer {
        status,
        content_type,
        body,
    })
}

impl Answer {
    /// The body as `T`, or the error the answer amounts to.
    fn json<T: serde::de::DeserializeOwned>(
        &self,
        step: &'static str,
        url: &str,
    ) -> Result<T, OAuthError> {
        if (200..300).contains(&self.status) {
            return serde_json::from_slice::<T>(&self.body).map_err(|_| OAuthError::NotJson {
                step,
                url: url.to_string(),
                content_type: self.content_type.clone(),
                excerpt: String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(EXCERPT_CHARS)
                    .collect(),
            });
        }
        let answer: ErrorAnswer = serde_json::from_slice(&self.body).unwrap_or_default();
        if answer.error.as_deref() == Some("invalid_client")
            || (step == TOKEN_STEP && self.status == 401)
        {
            return Err(OAuthError::InvalidClient {
                url: url.to_string(),
                description: answer.error_description,
            });
        }
        Err(OAuthError::Refused {
            step,
            url: url.to_string(),
            status: self.status,
            error: answer.error,
            description: answer.error_description,
        })
    }
}

const DISCOVERY_STEP: &str = "OIDC discovery";
const TOKEN_STEP: &str = "the token endpoint";

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
    pub async fn token(&self) -> Result<Secret, OAuthError> {
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

    async fn endpoint(&self) -> Result<String, OAuthError> {
        let mut known = self.token_url.lock().await;
        if let Some(url) = known.as_ref() {
            return Ok(url.clone());
        }
        let url = match &self.config.endpoint {
            TokenEndpoint::Fixed(url) => url.clone(),
            TokenEndpoint::Discover { issuer } => {
                let expected = issuer.trim_end_matches('/');
                let doc = format!("{expected}/.well-known/openid-configuration");
                let answer = send(
                    self.http
                        .get(&doc)
                        .header(header::ACCEPT, "application/json"),
                    DISCOVERY_STEP,
                    &doc,
                )
                .await?;
                let found: Discovery = answer.json(DISCOVERY_STEP, &doc)?;
                // OpenID Connect Discovery §4.3: the issuer in the document is the one asked.
                let named = found.issuer.unwrap_or_default();
                if named.trim_end_matches('/') != expected {
                    return Err(OAuthError::WrongIssuer {
                        url: doc,
                        expected: expected.to_string(),
                        found: named,
                    });
                }
                found
                    .token_endpoint
                    .filter(|u| !u.is_empty())
                    .ok_or(OAuthError::NoTokenEndpoint { url: doc })?
            }
        };
        *known = Some(url.clone());
        Ok(url)
    }

    async fn fetch(&self) -> Result<(Secret, Duration), OAuthError> {
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
        let answer = send(req.body(body), TOKEN_STEP, &url).await?;
        let t: TokenResponse = answer.json(TOKEN_STEP, &url)?;
        let token = t
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or(OAuthError::NoAccessToken { url })?;
        Ok((
            Secret::new(token),
            Duration::from_secs(t.expires_in.unwrap_or(300).max(1)),
        ))
    }
}
