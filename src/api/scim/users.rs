//! `/Users`: create, read, replace, patch, delete, list and search users.

use super::ScimState;
use super::list::{ListParams, ListRequest, list_response};
use super::request::{ScimBody, Tenant, if_match, if_none_match, require_version};
use super::response::{ApiError, ApiResult, ScimResponse};
use crate::api::changes::{Change, ChangeKind};
use crate::domain::{LifecycleState, ResourceType, User, UserId};
use crate::scim::convert::{doc_to_user_draft, etag, user_to_doc};
use crate::store::StoreError;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use scimdesk_scim::projection::Projection;
use scimdesk_scim::resource::canonicalize;
use scimdesk_scim::schema::USER;
use scimdesk_scim::{ScimError, patch};

fn not_found(id: &str) -> ApiError {
    ApiError(ScimError::status(404, format!("no user {id}")))
}

async fn load(state: &ScimState, t: &Tenant, id: &str) -> Result<User, ApiError> {
    let uid: UserId = id.parse().map_err(|_| not_found(id))?;
    state
        .store
        .user(t.org, uid)
        .await?
        .filter(|u| u.lifecycle_state != LifecycleState::Deprovisioned)
        .ok_or_else(|| not_found(id))
}

async fn render(
    state: &ScimState,
    t: &Tenant,
    user: &User,
    base: &str,
) -> Result<serde_json::Value, ApiError> {
    let groups = state.store.user_group_refs(t.org, user.id).await?;
    let of: Vec<(&crate::domain::Group, bool)> =
        groups.iter().map(|g| (&g.group, g.direct)).collect();
    Ok(user_to_doc(user, Some(&of), base))
}

fn publish(state: &ScimState, t: &Tenant, id: UserId, kind: ChangeKind) {
    state.changes.publish(Change {
        organization_id: t.org,
        resource_type: ResourceType::User,
        id: id.0,
        kind,
    });
}

/// `POST /Users`
pub async fn create(
    State(state): State<ScimState>,
    headers: HeaderMap,
    t: Tenant,
    ScimBody(body): ScimBody,
) -> ApiResult {
    let doc = canonicalize(&body, &USER)?;
    let draft = doc_to_user_draft(&doc, Some(t.connection.id))?;
    let user = match state.store.create_user(&t.actor(), t.org, &draft).await {
        Ok(user) => user,
        // A deprovisioned user with this userName comes back: same id, new content.
        Err(StoreError::Conflict(what)) => match state
            .store
            .user_by_user_name(t.org, &draft.user_name)
            .await?
        {
            Some(old) if old.lifecycle_state == LifecycleState::Deprovisioned => {
                state
                    .store
                    .replace_user(&t.actor(), t.org, old.id, &draft, Some(old.version))
                    .await?
            }
            _ => return Err(StoreError::Conflict(what).into()),
        },
        Err(e) => return Err(e.into()),
    };
    publish(&state, &t, user.id, ChangeKind::Created);
    let base = state.base_url(&headers);
    Ok(ScimResponse::resource(
        StatusCode::CREATED,
        user_to_doc(&user, Some(&[]), &base),
    ))
}

/// `GET /Users/{id}`
pub async fn get(
    State(state): State<ScimState>,
    headers: HeaderMap,
    t: Tenant,
    Path(id): Path<String>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let user = load(&state, &t, &id).await?;
    if if_none_match(&headers, &etag(user.version)) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let req = ListRequest::try_from(p)?;
    let projection = Projection::parse(
        req.attributes.as_deref(),
        req.excluded_attributes.as_deref(),
    )?;
    let doc = render(&state, &t, &user, &state.base_url(&headers)).await?;
    Ok(ScimResponse::resource(StatusCode::OK, projection.apply(doc, &USER)).into_response())
}

/// `GET /Users`
pub async fn list(
    State(state): State<ScimState>,
    headers: HeaderMap,
    t: Tenant,
    Query(p): Query<ListParams>,
) -> ApiResult {
    run_list(&state, &headers, &t, ListRequest::try_from(p)?).await
}

/// `POST /Users/.search`
pub async fn search(
    State(state): State<ScimState>,
    headers: HeaderMap,
    t: Tenant,
    ScimBody(body): ScimBody,
) -> ApiResult {
    run_list(&state, &headers, &t, ListRequest::from_search(&body)?).await
}

async fn run_list(
    state: &ScimState,
    headers: &HeaderMap,
    t: &Tenant,
    req: ListRequest,
) -> ApiResult {
    let (query, projection, start) = req.plan(&USER)?;
    let (users, total) = state.store.scim_list_users(t.org, &query).await?;
    let base = state.base_url(headers);
    let docs = users
        .iter()
        .map(|u| projection.apply(user_to_doc(u, None, &base), &USER))
        .collect();
    list_response(docs, total, start)
}

/// `PUT /Users/{id}`
pub async fn replace(
    State(state): State<ScimState>,
    headers: HeaderMap,
    t: Tenant,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> ApiResult {
    let current = load(&state, &t, &id).await?;
    let version = if_match(&headers)?;
    let doc = canonicalize(&body, &USER)?;
    let draft = doc_to_user_draft(&doc, current.source_connection_id.or(Some(t.connection.id)))?;
    let user = state
        .store
        .replace_user(&t.actor(), t.org, current.id, &draft, version)
        .await?;
    publish(&state, &t, user.id, ChangeKind::Updated);
    let doc = render(&state, &t, &user, &state.base_url(&headers)).await?;
    Ok(ScimResponse::resource(StatusCode::OK, doc))
}

/// `PATCH /Users/{id}`
pub async fn modify(
    State(state): State<ScimState>,
    headers: HeaderMap,
    t: Tenant,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> ApiResult {
    let wanted = if_match(&headers)?;
    let base = state.base_url(&headers);
    // Optimistic concurrency: PATCH applies to the version it read; a concurrent change makes
    // it read again (unless the client pinned a version with If-Match).
    for _ in 0..5 {
        let current = load(&state, &t, &id).await?;
        require_version(wanted, current.version)?;
        let patched = patch::apply(&user_to_doc(&current, None, &base), &body, &USER)?;
        let doc = canonicalize(&patched, &USER)?;
        let draft =
            doc_to_user_draft(&doc, current.source_connection_id.or(Some(t.connection.id)))?;
        match state
            .store
            .replace_user(&t.actor(), t.org, current.id, &draft, Some(current.version))
            .await
        {
            Ok(user) => {
                publish(&state, &t, user.id, ChangeKind::Updated);
                let doc = render(&state, &t, &user, &base).await?;
                return Ok(ScimResponse::resource(StatusCode::OK, doc));
            }
            Err(StoreError::VersionMismatch { .. }) if wanted.is_none() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError(ScimError::status(
        409,
        "the user is changing too fast; retry",
    )))
}

/// `DELETE /Users/{id}`
pub async fn delete(
    State(state): State<ScimState>,
    headers: HeaderMap,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult {
    let current = load(&state, &t, &id).await?;
    require_version(if_match(&headers)?, current.version)?;
    // The inbound connection's `delete_policy`: `delete` (default) removes the user;
    // `deprovision` keeps the record (for audit and off-boarding) but it no longer exists in SCIM.
    let policy = t
        .connection
        .settings
        .0
        .get("delete_policy")
        .and_then(|v| v.as_str());
    let done = match policy {
        Some("deprovision") => {
            state
                .store
                .deprovision_user(&t.actor(), t.org, current.id)
                .await?
        }
        _ => {
            state
                .store
                .delete_user(&t.actor(), t.org, current.id)
                .await?
        }
    };
    if !done {
        return Err(not_found(&id));
    }
    publish(&state, &t, current.id, ChangeKind::Deleted);
    Ok(ScimResponse::no_content())
}
