//! `/Groups`: create, read, replace, patch, delete, list and search groups with their members.

use super::ScimState;
use super::list::{ListParams, ListRequest, list_response};
use super::request::{ScimBody, Tenant, if_match, if_none_match, require_version};
use super::response::{ApiError, ApiResult, ScimResponse};
use crate::api::changes::{Change, ChangeKind};
use crate::domain::{Group, GroupDraft, GroupId, ResourceType};
use crate::scim::convert::{Member, doc_to_group_draft, etag, group_to_doc};
use crate::store::StoreError;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use scimdesk_scim::projection::Projection;
use scimdesk_scim::resource::canonicalize;
use scimdesk_scim::schema::GROUP;
use scimdesk_scim::{ScimError, patch};

fn not_found(id: &str) -> ApiError {
    ApiError(ScimError::status(404, format!("no group {id}")))
}

async fn load(state: &ScimState, t: &Tenant, id: &str) -> Result<Group, ApiError> {
    let gid: GroupId = id.parse().map_err(|_| not_found(id))?;
    state
        .store
        .group(t.org, gid)
        .await?
        .ok_or_else(|| not_found(id))
}

/// A group's document, with its members unless `with_members` is false.
pub(super) async fn render(
    state: &ScimState,
    t: &Tenant,
    group: &Group,
    base: &str,
    with_members: bool,
) -> Result<serde_json::Value, ApiError> {
    let (refs, children) = if with_members {
        (
            state.store.group_member_refs(t.org, group.id).await?,
            state.store.group_child_refs(t.org, group.id).await?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let members: Vec<Member<'_>> = refs
        .iter()
        .map(|r| Member {
            id: r.user_id.0,
            display: r.display_name.as_deref().unwrap_or(&r.user_name),
            is_group: false,
        })
        .chain(children.iter().map(|c| Member {
            id: c.group_id.0,
            display: &c.display_name,
            is_group: true,
        }))
        .collect();
    let mut doc = group_to_doc(group, &members, base);
    if !with_members && let Some(m) = doc.as_object_mut() {
        m.remove("members");
    }
    Ok(doc)
}

/// Store errors on a member list: an unknown member is the client's mistake (400), not a 404.
fn member_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(what) if what.starts_with("user") => ApiError(
            ScimError::invalid_value(format!("{what} is not a user of this organization")),
        ),
        StoreError::NotFound(what) if what.starts_with("group") => ApiError(
            ScimError::invalid_value(format!("{what} is not a group of this organization")),
        ),
        other => other.into(),
    }
}

fn publish(state: &ScimState, t: &Tenant, id: GroupId, kind: ChangeKind) {
    state.changes.publish(Change {
        organization_id: t.org,
        resource_type: ResourceType::Group,
        id: id.0,
        kind,
    });
}

/// The draft of a group document, with the members it named without a `type` told apart:
/// those that are groups of the organization are groups inside this one, the rest users.
async fn draft(
    state: &ScimState,
    t: &Tenant,
    doc: &serde_json::Value,
    source: Option<crate::domain::ConnectionId>,
) -> Result<GroupDraft, ApiError> {
    let input = doc_to_group_draft(doc, source)?;
    let groups = if input.untyped.is_empty() {
        Default::default()
    } else {
        state.store.groups_among(t.org, &input.untyped).await?
    };
    Ok(input.resolve(&groups))
}

/// `POST /Groups`
pub async fn create(
    State(state): State<ScimState>,
    headers: HeaderMap,
    t: Tenant,
    ScimBody(body): ScimBody,
) -> ApiResult {
    let doc = canonicalize(&body, &GROUP)?;
    let group = state
        .store
        .create_group(
            &t.actor(),
            t.org,
            &draft(&state, &t, &doc, Some(t.connection.id)).await?,
        )
        .await
        .map_err(member_error)?;
    publish(&state, &t, group.id, ChangeKind::Created);
    let doc = render(&state, &t, &group, &state.base_url(&headers), true).await?;
    Ok(ScimResponse::resource(StatusCode::CREATED, doc))
}

/// `GET /Groups/{id}`
pub async fn get(
    State(state): State<ScimState>,
    headers: HeaderMap,
    t: Tenant,
    Path(id): Path<String>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let group = load(&state, &t, &id).await?;
    if if_none_match(&headers, &etag(group.version)) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let req = ListRequest::try_from(p)?;
    let projection = Projection::parse(
        req.attributes.as_deref(),
        req.excluded_attributes.as_deref(),
    )?;
    let doc = render(
        &state,
        &t,
        &group,
        &state.base_url(&headers),
        !projection.excludes("members"),
    )
    .await?;
    Ok(ScimResponse::resource(StatusCode::OK, projection.apply(doc, &GROUP)).into_response())
}

/// `GET /Groups`
pub async fn list(
    State(state): State<ScimState>,
    headers: HeaderMap,
    t: Tenant,
    Query(p): Query<ListParams>,
) -> ApiResult {
    run_list(&state, &headers, &t, ListRequest::try_from(p)?).await
}

/// `POST /Groups/.search`
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
    let (query, projection, start) = req.plan(&GROUP)?;
    let (groups, total) = state.store.scim_list_groups(t.org, &query).await?;
    let base = state.base_url(headers);
    let with_members = !projection.excludes("members");
    let mut docs = Vec::with_capacity(groups.len());
    for g in &groups {
        docs.push(projection.apply(render(state, t, g, &base, with_members).await?, &GROUP));
    }
    list_response(docs, total, start)
}

/// `PUT /Groups/{id}`
pub async fn replace(
    State(state): State<ScimState>,
    headers: HeaderMap,
    t: Tenant,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> ApiResult {
    let current = load(&state, &t, &id).await?;
    let version = if_match(&headers)?;
    let doc = canonicalize(&body, &GROUP)?;
    let d = draft(
        &state,
        &t,
        &doc,
        current.source_connection_id.or(Some(t.connection.id)),
    )
    .await?;
    let group = state
        .store
        .replace_group(&t.actor(), t.org, current.id, &d, version)
        .await
        .map_err(member_error)?;
    publish(&state, &t, group.id, ChangeKind::Updated);
    let doc = render(&state, &t, &group, &state.base_url(&headers), true).await?;
    Ok(ScimResponse::resource(StatusCode::OK, doc))
}

/// `PATCH /Groups/{id}`
pub async fn modify(
    State(state): State<ScimState>,
    headers: HeaderMap,
    t: Tenant,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> ApiResult {
    let wanted = if_match(&headers)?;
    let base = state.base_url(&headers);
    for _ in 0..5 {
        let current = load(&state, &t, &id).await?;
        require_version(wanted, current.version)?;
        let before = render(&state, &t, &current, &base, true).await?;
        let patched = patch::apply(&before, &body, &GROUP)?;
        let doc = canonicalize(&patched, &GROUP)?;
        let d = draft(
            &state,
            &t,
            &doc,
            current.source_connection_id.or(Some(t.connection.id)),
        )
        .await?;
        match state
            .store
            .replace_group(&t.actor(), t.org, current.id, &d, Some(current.version))
            .await
        {
            Ok(group) => {
                publish(&state, &t, group.id, ChangeKind::Updated);
                let doc = render(&state, &t, &group, &base, true).await?;
                return Ok(ScimResponse::resource(StatusCode::OK, doc));
            }
            Err(StoreError::VersionMismatch { .. }) if wanted.is_none() => continue,
            Err(e) => return Err(member_error(e)),
        }
    }
    Err(ApiError(ScimError::status(
        409,
        "the group is changing too fast; retry",
    )))
}

/// `DELETE /Groups/{id}`
pub async fn delete(
    State(state): State<ScimState>,
    headers: HeaderMap,
    t: Tenant,
    Path(id): Path<String>,
) -> ApiResult {
    let current = load(&state, &t, &id).await?;
    require_version(if_match(&headers)?, current.version)?;
    if !state
        .store
        .delete_group(&t.actor(), t.org, current.id)
        .await?
    {
        return Err(not_found(&id));
    }
    publish(&state, &t, current.id, ChangeKind::Deleted);
    Ok(ScimResponse::no_content())
}
