//! Reading a SCIM 2.0 server as a source of truth: every user and group, paged with
//! `startIndex`/`count` (RFC 7644 §3.4.2.4), into [`SourceSnapshot`]. It tolerates what real
//! servers do: pages shorter than asked (the server's own page size), `totalResults` that
//! changes during the walk, members without `type` (or with only a `$ref`), a member `value`
//! that is a userName rather than an id, and missing `meta`. What it does not tolerate is an
//! answer that is not a ListResponse: that stops the read, so a broken server never looks
//! like an empty one.

use super::scim_client::{ScimClient, TargetError};
use crate::domain::{SourceGroup, SourceSnapshot, SourceUser};
use crate::scim::convert::doc_to_user_draft;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// Resources asked for per page (a server may answer with fewer).
pub const PAGE: u32 = 200;
/// Pages read of one resource type at the most: a server that never stops paging is broken.
const MAX_PAGES: u64 = 100_000;

/// Why a source could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The server did not answer, refused, or no access token could be had.
    #[error(transparent)]
    Call(#[from] TargetError),
    /// The server answered something that is not what SCIM promises.
    #[error("{0}")]
    Garbage(String),
}

/// A SCIM server read as a source.
pub struct ScimSource {
    client: ScimClient,
    page: u32,
}

impl ScimSource {
    /// A reader over `client`, asking `page` resources at a time.
    pub fn new(client: ScimClient, page: u32) -> Self {
        Self {
            client,
            page: page.max(1),
        }
    }

    /// Everything the server holds.
    pub async fn read_all(&self) -> Result<SourceSnapshot, SourceError> {
        let user_docs = self.walk("Users").await?;
        let group_docs = self.walk("Groups").await?;
        let mut users = Vec::with_capacity(user_docs.len());
        for doc in &user_docs {
            users.push(source_user(doc)?);
        }
        let user_ids: HashSet<&str> = users.iter().map(|u| u.external_id.as_str()).collect();
        let by_name: HashMap<String, &str> = users
            .iter()
            .map(|u| (u.user_name.to_lowercase(), u.external_id.as_str()))
            .collect();
        let group_ids: HashSet<&str> = group_docs
            .iter()
            .filter_map(|g| g.get("id").and_then(Value::as_str))
            .collect();
        let mut groups = Vec::with_capacity(group_docs.len());
        for doc in &group_docs {
            groups.push(source_group(doc, &user_ids, &by_name, &group_ids)?);
        }
        Ok(SourceSnapshot {
            users,
            groups,
            cursor: None,
        })
    }

    /// Every resource of one endpoint, page by page, each once.
    async fn walk(&self, endpoint: &str) -> Result<Vec<Value>, SourceError> {
        let mut all = Vec::new();
        let mut ids: HashSet<String> = HashSet::new();
        let mut start = 1u64;
        for _ in 0..MAX_PAGES {
            let path = format!("{endpoint}?startIndex={start}&count={}", self.page);
            let body = self.client.get_path(&path).await?;
            let (resources, total) = list_response(endpoint, body)?;
            if resources.is_empty() {
                return Ok(all);
            }
            start += resources.len() as u64;
            for r in resources {
                let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
                // A resource seen twice (rows moved between pages) is kept once.
                if id.is_empty() || ids.insert(id.to_string()) {
                    all.push(r);
                }
            }
            if start > total {
                return Ok(all);
            }
        }
        Err(SourceError::Garbage(format!(
            "{endpoint} kept paging past {MAX_PAGES} pages"
        )))
    }
}

/// A ListResponse's resources and `totalResults`; anything else is garbage.
fn list_response(endpoint: &str, body: Option<Value>) -> Result<(Vec<Value>, u64), SourceError> {
    let Some(Value::Object(body)) = body else {
        return Err(SourceError::Garbage(format!(
            "GET {endpoint} answered without a JSON object"
        )));
    };
    let total = body.get("totalResults").and_then(Value::as_u64);
    let resources = match body.get("Resources") {
        Some(Value::Array(r)) => r.clone(),
        None | Some(Value::Null) if total == Some(0) => Vec::new(),
        _ => {
            return Err(SourceError::Garbage(format!(
                "GET {endpoint} answered a JSON object that is not a ListResponse (no Resources)"
            )));
        }
    };
    Ok((resources.clone(), total.unwrap_or(u64::MAX)))
}

fn source_user(doc: &Value) -> Result<SourceUser, SourceError> {
    let id = doc
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SourceError::Garbage("a user without an id".into()))?;
    let draft = doc_to_user_draft(doc, None)
        .map_err(|e| SourceError::Garbage(format!("user {id}: {}", e.detail)))?;
    Ok(SourceUser {
        external_id: id.to_string(),
        user_name: draft.user_name,
        display_name: draft.display_name,
        given_name: draft.given_name,
        family_name: draft.family_name,
        emails: draft.emails,
        active: draft.active,
        attributes: draft.attributes,
    })
}

fn source_group(
    doc: &Value,
    users: &HashSet<&str>,
    by_name: &HashMap<String, &str>,
    groups: &HashSet<&str>,
) -> Result<SourceGroup, SourceError> {
    let id = doc
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SourceError::Garbage("a group without an id".into()))?;
    let display_name = doc
        .get("displayName")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| SourceError::Garbage(format!("group {id} has no displayName")))?;
    let mut members = Vec::new();
    let mut child_groups = Vec::new();
    for m in doc
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let value = m.get("value").and_then(Value::as_str).unwrap_or_default();
        let kind = m.get("type").and_then(Value::as_str).unwrap_or_default();
        let by_ref = m.get("$ref").and_then(Value::as_str).unwrap_or_default();
        if kind.eq_ignore_ascii_case("group") || (kind.is_empty() && by_ref.contains("/Groups/")) {
            child_groups.push(value.to_string());
        } else if users.contains(value) {
            members.push(value.to_string());
        } else if let Some(uid) = by_name.get(&value.to_lowercase()) {
            // Some servers name members by userName.
            members.push(uid.to_string());
        } else if groups.contains(value) {
            child_groups.push(value.to_string());
        }
        // A member the server does not list is left out: it is not ours to invent.
    }
    Ok(SourceGroup {
        external_id: id.to_string(),
        display_name: display_name.to_string(),
        path: None,
        members,
        child_groups,
    })
}
