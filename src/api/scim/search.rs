//! `POST /.search` at the service provider root (RFC 7644 §3.4.3): Users, then Groups.
//!
//! A filter that only one resource type's schema accepts searches that type alone; one that
//! neither accepts is refused with the User schema's error.

use super::ScimState;
use super::list::{ListRequest, list_response};
use super::request::{ScimBody, Tenant};
use super::response::ApiResult;
use crate::scim::convert::user_to_doc;
use crate::store::ScimQuery;
use axum::extract::State;
use axum::http::HeaderMap;
use scimdesk_scim::schema::{GROUP, USER};

/// `POST /.search`
pub async fn search(
    State(state): State<ScimState>,
    headers: HeaderMap,
    t: Tenant,
    ScimBody(body): ScimBody,
) -> ApiResult {
    let req = ListRequest::from_search(&body)?;
    let users = req.plan(&USER);
    let groups = req.plan(&GROUP);
    let (start, count) = match (&users, &groups) {
        (Ok((q, _, s)), _) | (Err(_), Ok((q, _, s))) => (*s, q.limit),
        (Err(e), Err(_)) => return Err(super::response::ApiError(e.0.clone())),
    };
    let base = state.base_url(&headers);
    let mut docs = Vec::new();
    let mut offset = start - 1;
    let mut remaining = count;
    let mut total = 0u64;
    if let Ok((q, projection, _)) = &users {
        let (_, n) = state
            .store
            .scim_list_users(
                t.org,
                &ScimQuery {
                    limit: 0,
                    ..q.clone()
                },
            )
            .await?;
        total += n;
        if offset < n && remaining > 0 {
            let page = ScimQuery {
                offset,
                limit: remaining,
                ..q.clone()
            };
            let (rows, _) = state.store.scim_list_users(t.org, &page).await?;
            remaining -= rows.len() as u32;
            docs.extend(
                rows.iter()
                    .map(|u| projection.apply(user_to_doc(u, None, &base), &USER)),
            );
        }
        offset = offset.saturating_sub(n);
    }
    if let Ok((q, projection, _)) = &groups {
        let (_, n) = state
            .store
            .scim_list_groups(
                t.org,
                &ScimQuery {
                    limit: 0,
                    ..q.clone()
                },
            )
            .await?;
        total += n;
        if offset < n && remaining > 0 {
            let page = ScimQuery {
                offset,
                limit: remaining,
                ..q.clone()
            };
            let (rows, _) = state.store.scim_list_groups(t.org, &page).await?;
            for g in &rows {
                let doc =
                    super::groups::render(&state, &t, g, &base, !projection.excludes("members"))
                        .await?;
                docs.push(projection.apply(doc, &GROUP));
            }
        }
    }
    list_response(docs, total, start)
}
