//! What every SCIM request carries: the tenant its Bearer token names, and a JSON body checked
//! for size, media type and syntax before any handler sees it.

use super::ScimState;
use super::response::{ApiError, malformed};
use crate::domain::{Actor, ActorKind, Connection, ConnectionKind, OrganizationId};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, header, request::Parts};
use scimdesk_scim::ScimError;
use serde_json::Value;

/// The largest request body accepted (RFC 7644 §3.12 413 past it); advertised in
/// `/ServiceProviderConfig` as `bulk.maxPayloadSize`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How much of an oversized body is read (and dropped) before answering 413.
const DRAIN_CAP_BYTES: usize = 4 * MAX_BODY_BYTES;

/// The organization and inbound connection a request's Bearer token belongs to.
pub struct Tenant {
    /// The organization.
    pub org: OrganizationId,
    /// The inbound SCIM connection.
    pub connection: Connection,
}

impl Tenant {
    /// The audit actor: the identity provider, by connection name.
    pub fn actor(&self) -> Actor {
        Actor {
            kind: ActorKind::Scim,
            name: self.connection.name.clone(),
        }
    }
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError(ScimError::status(401, detail))
}

impl FromRequestParts<ScimState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ScimState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unauthorized("a Bearer token is required"))?;
        let presented = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or_else(|| unauthorized("use the Bearer authentication scheme"))?;
        if let Some((org, connection)) = state.auth_cache.get(presented) {
            return Ok(Tenant { org, connection });
        }
        let found = state.store.authenticate_token(presented).await?;
        let token = found
            .filter(|t| t.scope == crate::domain::TokenScope::Scim)
            .ok_or_else(|| unauthorized("the token is not valid"))?;
        let connection_id = token
            .connection_id
            .ok_or_else(|| unauthorized("the token is not valid"))?;
        let connection = state
            .store
            .connection(token.organization_id, connection_id)
            .await?
            .filter(|c| c.kind == ConnectionKind::ScimInbound)
            .ok_or_else(|| unauthorized("the token's connection no longer exists"))?;
        state
            .auth_cache
            .put(presented, token.organization_id, connection.clone());
        Ok(Tenant {
            org: token.organization_id,
            connection,
        })
    }
}

/// A JSON request body: at most [`MAX_BODY_BYTES`], `application/scim+json` or
/// `application/json`, well-formed.
pub struct ScimBody(pub Value);

fn media_type_ok(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/scim+json")
        || essence.eq_ignore_ascii_case("application/json")
}

impl FromRequest<ScimState> for ScimBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &ScimState) -> Result<Self, Self::Rejection> {
        if !media_type_ok(req.headers()) {
            return Err(ApiError(ScimError::status(
                415,
                "the body must be application/scim+json (or application/json)",
            )));
        }
        let too_large = || {
            ApiError(ScimError::status(
                413,
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            ))
        };
        // Read a little past the limit, so a moderately oversized body is consumed and the
        // client reliably receives the 413 on a healthy connection; a body past that drain cap
        // is cut off (the connection closes), so nobody can make us buffer more.
        let limited = axum::body::to_bytes(req.into_body(), DRAIN_CAP_BYTES).await;
        let bytes: Bytes = limited.map_err(|_| too_large())?;
        if bytes.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| malformed(format!("the body is not valid JSON: {e}")))?;
        Ok(ScimBody(value))
    }
}

/// Parses `If-Match` into a version: `None` when absent or `*`.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let v = v.trim();
    if v == "*" {
        return Ok(None);
    }
    let digits = v.trim_start_matches("W/").trim_matches('"');
    digits.parse::<i64>().map(Some).map_err(|_| {
        ApiError(ScimError::status(
            412,
            format!("If-Match {v:?} is not an ETag of this server"),
        ))
    })
}

/// Fails with 412 when `If-Match` named a version other than the current one.
pub fn require_version(wanted: Option<i64>, current: i64) -> Result<(), ApiError> {
    match wanted {
        Some(expected) if expected != current => {
            Err(crate::store::StoreError::VersionMismatch { expected, current }.into())
        }
        _ => Ok(()),
    }
}

/// Whether `If-None-Match` names the current version (a conditional GET answers 304).
pub fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}
