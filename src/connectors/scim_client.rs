//! The outbound SCIM 2.0 client that provisions downstream applications (RFC 7644), with
//! OAuth 2.0 Bearer authentication (RFC 6750).
//!
//! Tolerant of what real servers do: PATCH answered with 200 and a body or 204 without one,
//! `Location` and `ETag` used when present, error bodies whose `status` is a string or a number.
//! Failures are classified so the engine can decide: retry later (with the server's
//! `Retry-After`, in seconds or as an HTTP date), or hand the operation to an operator.

use super::oauth::{ClientCredentials, ClientCredentialsConfig, OAuthError};
use crate::crypto::Secret;
use crate::domain::ResourceType;
use reqwest::Method;
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

/// The SCIM media type.
const SCIM_JSON: &str = "application/scim+json";
/// How much of a response body an error keeps (for the failed-operations view).
const EXCERPT_BYTES: usize = 2048;

/// How the client authenticates.
#[derive(Clone)]
pub enum TargetAuth {
    /// No Authorization header.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// `Authorization: Bearer <token>` with tokens from an OAuth 2.0 client-credentials grant.
    OAuth2(ClientCredentialsConfig),
}

/// The authentication a built client uses.
enum Auth {
    None,
    Bearer(Secret),
    OAuth2(Box<ClientCredentials>),
}

/// A failed call, classified for the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// No HTTP answer: refused, reset, timed out, DNS. Retrying may help.
    #[error("target unreachable: {0}")]
    Transport(String),
    /// The target answered with an error status.
    #[error("target answered {status}{}: {}", scim_type.as_deref().map(|t| format!(" ({t})")).unwrap_or_default(), detail.as_deref().unwrap_or("no detail"))]
    Http {
        /// HTTP status.
        status: u16,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
        /// The SCIM `scimType`, if the body had one.
        scim_type: Option<String>,
        /// The SCIM `detail`, if the body had one.
        detail: Option<String>,
        /// The start of the response body, for people.
        excerpt: String,
    },
    /// The target answered 2xx with something that is not what SCIM promises.
    #[error("target answered with an invalid response: {0}")]
    InvalidResponse(String),
    /// The client could not be set up (bad base URL).
    #[error("cannot call the target: {0}")]
    Config(String),
    /// No access token could be had (OAuth client credentials).
    #[error("cannot get an access token: {0}")]
    Auth(Box<OAuthError>),
}

impl TargetError {
    /// Whether retrying later can succeed (transport errors, 408, 429, 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            TargetError::Transport(_) => true,
            TargetError::Http { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            TargetError::InvalidResponse(_) | TargetError::Config(_) => false,
            TargetError::Auth(e) => e.is_retryable(),
        }
    }

    /// How long the target asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TargetError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status, if there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            TargetError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetResponse {
    /// HTTP status.
    pub status: u16,
    /// The `ETag` header, if any.
    pub etag: Option<String>,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

impl TargetResponse {
    /// The resource id: from the body, else the last segment of `Location`.
    pub fn resource_id(&self) -> Option<String> {
        self.body
            .as_ref()
            .and_then(|b| b.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                self.location
                    .as_deref()
                    .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
    }

    /// The version: the `ETag` header, else `meta.version`.
    pub fn version(&self) -> Option<String> {
        self.etag.clone().or_else(|| {
            self.body
                .as_ref()
                .and_then(|b| b.pointer("/meta/version"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
    }
}

/// A client for one target's SCIM base URL (share it behind an `Arc`: it holds the
/// connection pool and the cached OAuth token).
pub struct ScimClient {
    http: reqwest::Client,
    base: String,
    auth: Auth,
    /// Requests in flight at once, when limited (see [`ScimClient::limit_requests`]).
    in_flight: Option<tokio::sync::Semaphore>,
    /// No request is sent before this: the target's last `Retry-After` (429 or 503), honoured
    /// by every request of this client, including those already on their way when it came.
    hold_until: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// The media type asked for and sent (SCIM's, unless [`ScimClient::answering_json`]).
    accept: &'static str,
    /// Headers every request carries (an API's protocol version, say).
    headers: HeaderMap,
}

fn endpoint(rt: ResourceType) -> &'static str {
    match rt {
        ResourceType::User => "Users",
        ResourceType::Group => "Groups",
    }
}

/// Parses `Retry-After`: delta-seconds or an HTTP date (RFC 9110 §10.2.3), relative to `now`.
/// A date in the past means "now" (zero).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    // A target asking for more than a day is not taken at its word (and an absurd value must
    // not overflow the clock arithmetic that schedules the retry).
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Builds the error for a non-success answer, reading SCIM error bodies whose `status` is a
/// string or a number.
pub fn error_from(status: u16, headers: &HeaderMap, body: &[u8]) -> TargetError {
    let retry_after = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        json.as_ref().and_then(|j| j.get(k)).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let excerpt = String::from_utf8_lossy(&body[..body.len().min(EXCERPT_BYTES)]).into_owned();
    TargetError::Http {
        status,
        retry_after,
        scim_type: field("scimType"),
        detail: field("detail"),
        excerpt,
    }
}

impl ScimClient {
    /// A client for `base_url` (e.g. `https://app.example.com/scim/v2`) with a request timeout.
    pub fn new(base_url: &str, auth: TargetAuth, timeout: Duration) -> Result<Self, TargetError> {
        super::ensure_tls_provider();
        let base = crate::domain::validate::base_url(base_url)
            .map_err(|e| TargetError::Config(e.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("scimdesk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TargetError::Config(e.to_string()))?;
        let auth = match auth {
            TargetAuth::None => Auth::None,
            TargetAuth::Bearer(t) => Auth::Bearer(t),
            TargetAuth::OAuth2(c) => {
                Auth::OAuth2(Box::new(ClientCredentials::new(http.clone(), c)))
            }
        };
        Ok(Self {
            http,
            base,
            auth,
            in_flight: None,
            hold_until: std::sync::Mutex::new(None),
            accept: SCIM_JSON,
            headers: HeaderMap::new(),
        })
    }

    /// Asks for `application/json` rather than SCIM's media type: for the JSON APIs of
    /// identity systems (Keycloak's admin API) that refuse `application/scim+json`.
    pub fn answering_json(mut self) -> Self {
        self.accept = "application/json";
        self
    }

    /// Sends `name: value` with every request (Zitadel's Connect API wants
    /// `Connect-Protocol-Version: 1`).
    pub fn with_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.insert(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
        self
    }

    /// Sends at most `n` requests at once (a connection's concurrency limit): the limit holds
    /// for requests, so an operation waiting between two of its requests takes no slot.
    pub fn limit_requests(mut self, n: usize) -> Self {
        self.in_flight = Some(tokio::sync::Semaphore::new(n.max(1)));
        self
    }

    /// Sends one request; with OAuth, a 401 fetches a new token and tries once more.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<TargetResponse, TargetError> {
        let _slot = match &self.in_flight {
            Some(limit) => Some(
                limit
                    .acquire()
                    .await
                    .map_err(|_| TargetError::Config("the client is closed".into()))?,
            ),
            None => None,
        };
        self.wait_out_retry_after().await;
        let first = self.call_once(method.clone(), path, body, if_match).await;
        let result = match (&self.auth, first) {
            (Auth::OAuth2(source), Err(TargetError::Http { status: 401, .. })) => {
                source.invalidate().await;
                self.call_once(method, path, body, if_match).await
            }
            (_, result) => result,
        };
        if let Err(TargetError::Http {
            status: 429 | 503,
            retry_after: Some(wait),
            ..
        }) = &result
            && let Some(until) = tokio::time::Instant::now().checked_add(*wait)
        {
            let mut hold = self.hold_until.lock().unwrap_or_else(|e| e.into_inner());
            if hold.is_none_or(|h| h < until) {
                *hold = Some(until);
            }
        }
        result
    }

    /// Sleeps until the target's last `Retry-After` has passed.
    async fn wait_out_retry_after(&self) {
        let until = *self.hold_until.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = until
            && until > tokio::time::Instant::now()
        {
            tokio::time::sleep_until(until).await;
        }
    }

    async fn call_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<TargetResponse, TargetError> {
        let mut req = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .header(header::ACCEPT, self.accept)
            .headers(self.headers.clone());
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(token) => req = req.bearer_auth(token.expose()),
            Auth::OAuth2(source) => {
                let token = source
                    .token()
                    .await
                    .map_err(|e| TargetError::Auth(Box::new(e)))?;
                req = req.bearer_auth(token.expose());
            }
        }
        if let Some(tag) = if_match {
            req = req.header(header::IF_MATCH, tag);
        }
        if let Some(b) = body {
            req = req
                .header(header::CONTENT_TYPE, HeaderValue::from_static(self.accept))
                .body(b.to_string());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| TargetError::Transport(super::describe(&e)))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| TargetError::Transport(super::describe(&e)))?;
        if !status.is_success() {
            return Err(error_from(status.as_u16(), &headers, &bytes));
        }
        let text = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| TargetError::InvalidResponse(format!("body is not JSON: {e}")))?,
            )
        };
        Ok(TargetResponse {
            status: status.as_u16(),
            etag: text(header::ETAG),
            location: text(header::LOCATION),
            body,
        })
    }

    /// `GET /ServiceProviderConfig`.
    pub async fn service_provider_config(&self) -> Result<Value, TargetError> {
        self.call(Method::GET, "ServiceProviderConfig", None, None)
            .await?
            .body
            .ok_or_else(|| TargetError::InvalidResponse("empty ServiceProviderConfig".into()))
    }

    /// Whether the target says it supports PATCH.
    pub async fn supports_patch(&self) -> Result<bool, TargetError> {
        Ok(self
            .service_provider_config()
            .await?
            .pointer("/patch/supported")
            == Some(&Value::Bool(true)))
    }

    /// The first resource whose `attribute` equals `value` (e.g. `userName`, `externalId`), for
    /// the look-up before a create that makes retries idempotent.
    pub async fn find_by(
        &self,
        rt: ResourceType,
        attribute: &str,
        value: &str,
    ) -> Result<Option<Value>, TargetError> {
        let filter = format!("{attribute} eq {}", json!(value));
        let (found, _) = self.search(rt, &filter, 2).await?;
        Ok(found.into_iter().next())
    }

    /// `GET /Users` or `/Groups` with a filter: the first page of at most `count` resources
    /// and `totalResults`.
    pub async fn search(
        &self,
        rt: ResourceType,
        filter: &str,
        count: u32,
    ) -> Result<(Vec<Value>, u64), TargetError> {
        let url_filter: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
        self.list(rt, &format!("filter={url_filter}&count={count}"))
            .await
    }

    /// `POST /Users` or `/Groups`.
    pub async fn create(
        &self,
        rt: ResourceType,
        doc: &Value,
    ) -> Result<TargetResponse, TargetError> {
        self.call(Method::POST, endpoint(rt), Some(doc), None).await
    }

    /// `GET` one resource; `None` on 404.
    pub async fn get(
        &self,
        rt: ResourceType,
        id: &str,
    ) -> Result<Option<TargetResponse>, TargetError> {
        match self
            .call(
                Method::GET,
                &format!("{}/{}", endpoint(rt), encode(id)),
                None,
                None,
            )
            .await
        {
            Ok(r) => Ok(Some(r)),
            Err(TargetError::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT` one resource, optionally only if it is still at version `if_match`.
    pub async fn replace(
        &self,
        rt: ResourceType,
        id: &str,
        doc: &Value,
        if_match: Option<&str>,
    ) -> Result<TargetResponse, TargetError> {
        self.call(
            Method::PUT,
            &format!("{}/{}", endpoint(rt), encode(id)),
            Some(doc),
            if_match,
        )
        .await
    }

    /// `PATCH` one resource with PatchOp operations (200 with a body and 204 both succeed).
    pub async fn patch(
        &self,
        rt: ResourceType,
        id: &str,
        operations: Vec<Value>,
    ) -> Result<TargetResponse, TargetError> {
        let body = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations });
        self.call(
            Method::PATCH,
            &format!("{}/{}", endpoint(rt), encode(id)),
            Some(&body),
            None,
        )
        .await
    }

    /// `DELETE` one resource; `false` if it was already gone (404).
    pub async fn delete(&self, rt: ResourceType, id: &str) -> Result<bool, TargetError> {
        match self
            .call(
                Method::DELETE,
                &format!("{}/{}", endpoint(rt), encode(id)),
                None,
                None,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(TargetError::Http { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET` of `path` (relative to the base URL, with its query): the JSON body, if any.
    /// What a source's reader uses, which checks the answer's shape itself.
    pub async fn get_path(&self, path: &str) -> Result<Option<Value>, TargetError> {
        Ok(self.call(Method::GET, path, None, None).await?.body)
    }

    /// `POST` of a JSON `body` to `path` (relative to the base URL): the JSON answer, if any.
    /// What a reader of a JSON API that searches by POST (Zitadel's) uses.
    pub async fn post_path(&self, path: &str, body: &Value) -> Result<Option<Value>, TargetError> {
        Ok(self.call(Method::POST, path, Some(body), None).await?.body)
    }

    /// One page of `GET /Users` or `/Groups`: the resources and `totalResults`.
    pub async fn list_page(
        &self,
        rt: ResourceType,
        start_index: u64,
        count: u32,
    ) -> Result<(Vec<Value>, u64), TargetError> {
        self.list(rt, &format!("startIndex={start_index}&count={count}"))
            .await
    }

    /// A `GET` of the resource type's endpoint with `query`: the ListResponse's resources and
    /// `totalResults` (the number of resources when a target leaves it out).
    async fn list(&self, rt: ResourceType, query: &str) -> Result<(Vec<Value>, u64), TargetError> {
        let resp = self
            .call(
                Method::GET,
                &format!("{}?{query}", endpoint(rt)),
                None,
                None,
            )
            .await?;
        let body = resp.body.unwrap_or(Value::Null);
        let resources = match body.get("Resources") {
            Some(Value::Array(r)) => r.clone(),
            _ => Vec::new(),
        };
        let total = body
            .get("totalResults")
            .and_then(Value::as_u64)
            .unwrap_or(resources.len() as u64);
        Ok((resources, total))
    }
}

fn encode(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_784_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let in_90s = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&in_90s, now),
            Some(Duration::from_secs(90))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        // Absurd waits are capped, never overflowing the scheduler's clock arithmetic.
        assert_eq!(
            parse_retry_after("18446744073709551615", now),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn error_bodies_with_string_or_number_status() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        let e = error_from(429, &h, br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"429","detail":"slow down"}"#);
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let e = error_from(
            409,
            &HeaderMap::new(),
            br#"{"status":409,"scimType":"uniqueness","detail":"User already exists"}"#,
        );
        assert!(!e.is_retryable());
        assert!(
            matches!(&e, TargetError::Http { scim_type: Some(t), detail: Some(d), .. } if t == "uniqueness" && d == "User already exists")
        );
        let e = error_from(503, &HeaderMap::new(), b"<html>down</html>");
        assert!(e.is_retryable());
        assert!(
            matches!(&e, TargetError::Http { excerpt, detail: None, .. } if excerpt == "<html>down</html>")
        );
        assert!(!error_from(400, &HeaderMap::new(), b"").is_retryable());
        assert!(TargetError::Transport("refused".into()).is_retryable());
    }

    #[test]
    fn resource_id_from_body_or_location() {
        let r = TargetResponse {
            status: 201,
            etag: None,
            location: Some("https://t/scim/v2/Users/abc".into()),
            body: None,
        };
        assert_eq!(r.resource_id().as_deref(), Some("abc"));
        let r = TargetResponse {
            status: 201,
            etag: None,
            location: None,
            body: Some(json!({ "id": "x", "meta": { "version": "W/\"2\"" } })),
        };
        assert_eq!(
            (r.resource_id().as_deref(), r.version().as_deref()),
            (Some("x"), Some("W/\"2\""))
        );
    }
}
