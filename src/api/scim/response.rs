//! SCIM responses: `application/scim+json` bodies, ETag and Location headers, error bodies.

use crate::store::StoreError;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use scimdesk_scim::{ScimError, ScimType};
use serde_json::Value;

/// The SCIM media type.
pub const SCIM_JSON: &str = "application/scim+json";

/// A JSON body with a status and optional ETag / Location.
pub struct ScimResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// The body (`None` for 204).
    pub body: Option<Value>,
    /// `ETag` header value.
    pub etag: Option<String>,
    /// `Location` header value.
    pub location: Option<String>,
}

impl ScimResponse {
    /// 200 with a body.
    pub fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body: Some(body),
            etag: None,
            location: None,
        }
    }

    /// A resource document: 200 or 201, with its ETag and Location taken from `meta`.
    pub fn resource(status: StatusCode, doc: Value) -> Self {
        let meta = doc.get("meta");
        let etag = meta
            .and_then(|m| m.get("version"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let location = meta
            .and_then(|m| m.get("location"))
            .and_then(Value::as_str)
            .map(str::to_string);
        Self {
            status,
            body: Some(doc),
            etag,
            location,
        }
    }

    /// 204.
    pub fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: None,
            etag: None,
            location: None,
        }
    }
}

impl IntoResponse for ScimResponse {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(e) = self.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
            headers.insert(header::ETAG, e);
        }
        if let Some(l) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, l);
        }
        match self.body {
            Some(body) => {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
                (self.status, headers, body.to_string()).into_response()
            }
            None => (self.status, headers).into_response(),
        }
    }
}

/// A failed request, rendered as a SCIM error body.
#[derive(Debug)]
pub struct ApiError(pub ScimError);

impl From<ScimError> for ApiError {
    fn from(e: ScimError) -> Self {
        Self(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self(match e {
            StoreError::NotFound(what) => ScimError::status(404, format!("{what} not found")),
            StoreError::Conflict(what) => ScimError::uniqueness(format!("{what} already exists")),
            StoreError::VersionMismatch { expected, current } => ScimError::status(
                412,
                format!(
                    "the resource changed: If-Match has version {expected}, it is now {current}"
                ),
            ),
            StoreError::Invalid(i) => ScimError::invalid_value(i.to_string()),
            StoreError::Scim(s) => s,
            StoreError::Unavailable(_) => {
                tracing::error!(error = %e, "store unavailable");
                ScimError::status(503, "the store is unavailable; retry later")
            }
            other => {
                tracing::error!(error = %other, "store error");
                ScimError::status(500, "internal error")
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"scimdesk\", error=\"invalid_token\""),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        (status, headers, self.0.to_json().to_string()).into_response()
    }
}

/// Shorthand for handler results.
pub type ApiResult = Result<ScimResponse, ApiError>;

/// `invalidSyntax` for a body that is not JSON.
pub fn malformed(detail: impl Into<String>) -> ApiError {
    ApiError(ScimError::bad_request(ScimType::InvalidSyntax, detail))
}
