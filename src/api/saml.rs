//! The SAML 2.0 service provider endpoints of `scimdesk serve`, one pair per `saml` connection:
//! `GET /saml/{connection}/metadata` publishes our SP metadata, and
//! `POST /saml/{connection}/acs` takes the IdP's response (HTTP-POST binding: `SAMLResponse`,
//! optional `RelayState`) and hands it to `engine::saml`. The answer is a small JSON summary,
//! or a redirect to a RelayState on the connection's allow-list; it never echoes the
//! assertion.

use crate::domain::{Connection, ConnectionId};
use crate::engine::saml::{self, LoginError};
use crate::engine::saml::{MAX_RESPONSE_BYTES, Refusal, RefusalKind};
use crate::store::Store;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::sync::Arc;

/// The largest ACS body read: a response at [`MAX_RESPONSE_BYTES`] in base64, form-encoded
/// (`+`, `/` and `=` become three bytes each at worst), and a RelayState.
pub const MAX_ACS_BODY: usize = MAX_RESPONSE_BYTES * 4 + 8 * 1024;

/// The SAML routes.
pub fn router(store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/saml/{connection}/metadata", get(metadata))
        .route("/saml/{connection}/acs", post(acs))
        .layer(DefaultBodyLimit::max(MAX_ACS_BODY))
        .with_state(store)
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// The SAML connection a path names, or the answer that it names none.
async fn connection_of(store: &dyn Store, id: &str) -> Result<Connection, Response> {
    let not_found = || {
        answer(
            StatusCode::NOT_FOUND,
            json!({"status": "error", "error": "no SAML connection has this id"}),
        )
    };
    let id = uuid::Uuid::parse_str(id).map_err(|_| not_found())?;
    match store.saml_connection(ConnectionId(id)).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(not_found()),
        Err(e) => {
            tracing::error!("reading a SAML connection failed: {e}");
            Err(answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"status": "error", "error": "internal error"}),
            ))
        }
    }
}

async fn metadata(State(store): State<Arc<dyn Store>>, Path(id): Path<String>) -> Response {
    let connection = match connection_of(store.as_ref(), &id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match saml::sp_metadata(&connection) {
        Ok(xml) => (
            [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
            xml,
        )
            .into_response(),
        Err(e) => error_answer(&e),
    }
}

/// The status and body a refused or failed login is answered with.
fn error_answer(e: &LoginError) -> Response {
    match e {
        LoginError::Refused(r) => {
            let status = match r.kind {
                RefusalKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                RefusalKind::Malformed | RefusalKind::Dtd => StatusCode::BAD_REQUEST,
                _ => StatusCode::FORBIDDEN,
            };
            answer(
                status,
                json!({"status": "refused", "reason": r.kind.as_str(), "detail": r.detail}),
            )
        }
        LoginError::Conflict(why) => answer(
            StatusCode::CONFLICT,
            json!({"status": "refused", "reason": "conflict", "detail": why}),
        ),
        LoginError::Unavailable(why) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "refused", "reason": "unavailable", "detail": why}),
        ),
        LoginError::Settings { .. } => {
            tracing::error!("{e}");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"status": "error", "error": "this SAML connection is misconfigured; see the server's log"}),
            )
        }
        LoginError::Store(err) => {
            tracing::error!("a SAML login failed in the store: {err}");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"status": "error", "error": "internal error"}),
            )
        }
    }
}

async fn acs(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let connection = match connection_of(store.as_ref(), &id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(body) = body else {
        let refusal = Refusal::new(
            RefusalKind::TooLarge,
            format!("the request body is larger than {MAX_ACS_BODY} bytes"),
        );
        let e = saml::record_refusal(store.as_ref(), &connection, refusal).await;
        return error_answer(&e);
    };
    let mut response = None;
    let mut relay_state = None;
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "SAMLResponse" if response.is_none() => response = Some(v.into_owned()),
            "RelayState" if relay_state.is_none() => relay_state = Some(v.into_owned()),
            _ => {}
        }
    }
    let Some(response) = response else {
        let refusal = Refusal::new(
            RefusalKind::Malformed,
            "the form has no SAMLResponse (HTTP-POST binding)",
        );
        let e = saml::record_refusal(store.as_ref(), &connection, refusal).await;
        return error_answer(&e);
    };
    let xml = match saml::decode_post(&response) {
        Ok(x) => x,
        Err(refusal) => {
            let e = saml::record_refusal(store.as_ref(), &connection, refusal).await;
            return error_answer(&e);
        }
    };
    match saml::ingest(store.as_ref(), &connection, &xml).await {
        Ok(summary) => {
            let allowed = relay_state
                .as_deref()
                .filter(|r| saml::settings_of(&connection).is_ok_and(|s| s.allows_relay_state(r)));
            if let Some(target) = allowed.and_then(|r| HeaderValue::from_str(r).ok()) {
                let mut r = StatusCode::SEE_OTHER.into_response();
                r.headers_mut().insert(header::LOCATION, target);
                return r;
            }
            // Ids and counts only: nothing the assertion said is echoed to the browser.
            let mut body = json!({"status": "accepted", "login": {
                "connection": connection.id,
                "user_id": summary.user_id,
                "user": summary.user,
                "joined": summary.joined,
                "left": summary.left,
                "groups_created": summary.groups_created,
                "run": summary.run,
            }});
            if relay_state.is_some() {
                body["relay_state"] =
                    json!("not followed: it is not on this connection's allow-list");
            }
            answer(StatusCode::OK, body)
        }
        Err(e) => error_answer(&e),
    }
}
