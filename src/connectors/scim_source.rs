//! Reading a SCIM 2.0 server as a source of truth: every user and group, paged with
//! `startIndex`/`count` (RFC 7644 §3.4.2.4), into [`SourceSnapshot`]. It tolerates what real
//! servers do: pages shorter than asked (the server's own page size), `totalResults` that
//! changes during the walk, members without `type` (or with only a `$ref`), a member `value`
//! that is a userName rather than an id, and missing `meta`. What it does not tolerate is an
//! answer that is not a ListResponse: that stops the read, so a broken server never looks
//! like an empty one.
//!
//! Incremental reads use `filter=meta.lastModified gt "…"` on `/Users` and `/Groups`, when the
//! server's `/ServiceProviderConfig` says it filters and the filter is seen to work (a server
//! that answers resources older than asked ignores it). The cursor is the newest
//! `meta.lastModified` seen, less a second, so a change committed late within that second is
//! still read; reading a resource again changes nothing. Deletions are not in such a feed:
//! the periodic full sync finds them.

use super::scim_client::{ScimClient, TargetError};
pub use super::source::SourceError;
use super::source::{Incremental, Known, SourceReader};
use crate::domain::{
    GroupScope, SourceChanges, SourceGroup, SourceSnapshot, SourceUser, Timestamp,
};
use crate::scim::convert::doc_to_user_draft;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// Resources asked for per page (a server may answer with fewer).
pub const PAGE: u32 = 200;
/// Pages read of one resource type at the most: a server that never stops paging is broken.
const MAX_PAGES: u64 = 100_000;
/// How far the cursor stays behind the newest change seen.
const CURSOR_MARGIN: std::time::Duration = std::time::Duration::from_secs(1);

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

    /// Every user the server holds (what a Zitadel source reads through its SCIM endpoint).
    pub async fn read_users(&self) -> Result<Vec<SourceUser>, SourceError> {
        Ok(self.read_users_with_cursor().await?.0)
    }

    /// Every user, converted as each page arrives, with the newest `meta.lastModified` seen.
    async fn read_users_with_cursor(
        &self,
    ) -> Result<(Vec<SourceUser>, Option<Timestamp>), SourceError> {
        let mut users = Vec::new();
        let mut newest: Option<Timestamp> = None;
        self.visit("Users", "", |doc| {
            newest = newest.max(last_modified(&doc));
            users.push(source_user(&doc)?);
            Ok(())
        })
        .await?;
        Ok((users, newest))
    }

    /// Every resource of one endpoint matching `filter` (all when empty), page by page, each
    /// once.
    async fn walk(&self, endpoint: &str, filter: &str) -> Result<Vec<Value>, SourceError> {
        let mut all = Vec::new();
        self.visit(endpoint, filter, |doc| {
            all.push(doc);
            Ok(())
        })
        .await?;
        Ok(all)
    }

    /// [`ScimSource::walk`], handing each resource to `each` as its page arrives (so a
    /// large listing is never held whole as JSON).
    async fn visit(
        &self,
        endpoint: &str,
        filter: &str,
        mut each: impl FnMut(Value) -> Result<(), SourceError>,
    ) -> Result<(), SourceError> {
        let mut ids: HashSet<String> = HashSet::new();
        let mut start = 1u64;
        let filter = if filter.is_empty() {
            String::new()
        } else {
            format!("&filter={}", encode(filter))
        };
        for _ in 0..MAX_PAGES {
            let path = format!("{endpoint}?startIndex={start}&count={}{filter}", self.page);
            let body = self.client.get_path(&path).await?;
            let (resources, total) = list_response(endpoint, body)?;
            if resources.is_empty() {
                return Ok(());
            }
            start += resources.len() as u64;
            for r in resources {
                let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
                // A resource seen twice (rows moved between pages) is kept once.
                if id.is_empty() || ids.insert(id.to_string()) {
                    each(r)?;
                }
            }
            if start > total {
                return Ok(());
            }
        }
        Err(SourceError::Garbage(format!(
            "{endpoint} kept paging past {MAX_PAGES} pages"
        )))
    }

    /// The resources of `endpoint` changed after `since`; `Err(Ok(why))` when the server
    /// cannot filter on `meta.lastModified`.
    async fn changed(
        &self,
        endpoint: &str,
        since: Timestamp,
        cursor: &str,
    ) -> Result<Result<Vec<Value>, String>, SourceError> {
        let filter = format!("meta.lastModified gt \"{cursor}\"");
        let docs = match self.walk(endpoint, &filter).await {
            Ok(d) => d,
            Err(SourceError::Call(TargetError::Http { status, .. }))
                if matches!(status, 400 | 403 | 404 | 501) =>
            {
                return Ok(Err(format!(
                    "{endpoint} refused a filter on meta.lastModified (HTTP {status})"
                )));
            }
            Err(e) => return Err(e),
        };
        // A resource older than asked, or without the attribute, means the filter was ignored.
        if docs
            .iter()
            .any(|d| last_modified(d).is_none_or(|t| t <= since))
        {
            return Ok(Err(format!(
                "{endpoint} ignores filters on meta.lastModified (it answered older resources)"
            )));
        }
        Ok(Ok(docs))
    }
}

#[async_trait::async_trait]
impl SourceReader for ScimSource {
    async fn read_all(&self) -> Result<SourceSnapshot, SourceError> {
        let (users, newest_user) = self.read_users_with_cursor().await?;
        let group_docs = self.walk("Groups", "").await?;
        let none = Known::default();
        let members = Members::of(&users, &none, &group_docs);
        let mut groups = Vec::with_capacity(group_docs.len());
        for doc in &group_docs {
            groups.push(members.source_group(doc)?);
        }
        let newest = group_docs
            .iter()
            .filter_map(last_modified)
            .chain(newest_user)
            .max();
        Ok(SourceSnapshot {
            users,
            groups,
            cursor: newest.map(|t| t.before(CURSOR_MARGIN).to_rfc3339()),
        })
    }

    async fn read_changes(&self, cursor: &str, known: &Known) -> Result<Incremental, SourceError> {
        let Ok(since) = Timestamp::parse_rfc3339(cursor) else {
            return Ok(Incremental::Unavailable(
                "no meta.lastModified was seen at the last full sync".into(),
            ));
        };
        let config = self.client.service_provider_config().await?;
        if config.pointer("/filter/supported").and_then(Value::as_bool) != Some(true) {
            return Ok(Incremental::Unavailable(
                "the server's ServiceProviderConfig says it does not filter".into(),
            ));
        }
        let user_docs = match self.changed("Users", since, cursor).await? {
            Ok(d) => d,
            Err(why) => return Ok(Incremental::Unavailable(why)),
        };
        let group_docs = match self.changed("Groups", since, cursor).await? {
            Ok(d) => d,
            Err(why) => return Ok(Incremental::Unavailable(why)),
        };
        let mut users = Vec::with_capacity(user_docs.len());
        for doc in &user_docs {
            users.push(source_user(doc)?);
        }
        let next = cursor_after(user_docs.iter().chain(&group_docs));
        let mut changes = SourceChanges {
            users,
            gone_users: Vec::new(),
            groups: None,
            cursor: next.filter(|n| n.as_str() != cursor),
        };
        if group_docs.is_empty() {
            return Ok(Incremental::Changes(changes));
        }
        // Where groups nest, a change inside one changes every group above it: the groups
        // are read again whole. Flat groups are replaced one by one.
        let nested = known
            .group_paths
            .values()
            .any(|p| p.matches('/').count() > 1)
            || group_docs.iter().any(|g| {
                g.get("members")
                    .and_then(Value::as_array)
                    .is_some_and(|m| m.iter().any(is_group_member))
            });
        let (group_docs, everything) = if nested {
            (self.walk("Groups", "").await?, true)
        } else {
            (group_docs, false)
        };
        let members = Members::of(&changes.users, known, &group_docs);
        let mut groups = Vec::with_capacity(group_docs.len());
        for doc in &group_docs {
            groups.push(members.source_group(doc)?);
        }
        changes.groups = Some(GroupScope {
            ids: groups.iter().map(|g| g.external_id.clone()).collect(),
            groups,
            paths: Vec::new(),
            everything,
        });
        Ok(Incremental::Changes(changes))
    }
}

/// A resource's `meta.lastModified`.
fn last_modified(doc: &Value) -> Option<Timestamp> {
    doc.pointer("/meta/lastModified")
        .and_then(Value::as_str)
        .and_then(|t| Timestamp::parse_rfc3339(t).ok())
}

/// The cursor after reading `docs`: their newest `meta.lastModified`, less the margin.
fn cursor_after<'a>(docs: impl Iterator<Item = &'a Value>) -> Option<String> {
    docs.filter_map(last_modified)
        .max()
        .map(|t| t.before(CURSOR_MARGIN).to_rfc3339())
}

fn is_group_member(m: &Value) -> bool {
    let kind = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let by_ref = m.get("$ref").and_then(Value::as_str).unwrap_or_default();
    kind.eq_ignore_ascii_case("group") || (kind.is_empty() && by_ref.contains("/Groups/"))
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
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

/// Who a group's members can be: the users read, and those the store holds for the source.
struct Members<'a> {
    users: HashSet<&'a str>,
    by_name: HashMap<String, &'a str>,
    groups: HashSet<&'a str>,
}

impl<'a> Members<'a> {
    fn of(users: &'a [SourceUser], known: &'a Known, group_docs: &'a [Value]) -> Self {
        let mut by_name: HashMap<String, &str> = known
            .user_names
            .iter()
            .map(|(n, e)| (n.clone(), e.as_str()))
            .collect();
        by_name.extend(
            users
                .iter()
                .map(|u| (u.user_name.to_lowercase(), u.external_id.as_str())),
        );
        Self {
            users: users
                .iter()
                .map(|u| u.external_id.as_str())
                .chain(known.users.iter().map(String::as_str))
                .collect(),
            by_name,
            groups: group_docs
                .iter()
                .filter_map(|g| g.get("id").and_then(Value::as_str))
                .chain(known.group_paths.keys().map(String::as_str))
                .collect(),
        }
    }

    fn source_group(&self, doc: &Value) -> Result<SourceGroup, SourceError> {
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
            if is_group_member(m) {
                child_groups.push(value.to_string());
            } else if self.users.contains(value) {
                members.push(value.to_string());
            } else if let Some(uid) = self.by_name.get(&value.to_lowercase()) {
                // Some servers name members by userName.
                members.push(uid.to_string());
            } else if self.groups.contains(value) {
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
}
