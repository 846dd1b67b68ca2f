//! Reading a Keycloak realm as a source of truth through its admin REST API (Keycloak 23 and
//! later; shapes as of 26.x), with a service-account client that has `view-users` and
//! `query-groups`:
//!
//! - users: `GET /admin/realms/{realm}/users?first&max&briefRepresentation=false`, paged until a
//!   page comes back short; `enabled` is `active`;
//! - groups: `GET /admin/realms/{realm}/groups?first&max`, then each group's
//!   `GET /groups/{id}/children?first&max`, paged, however deep. Since Keycloak 23 a listing's
//!   `subGroups` is empty unless `search` or `q` is given, so the tree is walked through
//!   `children` (where `subGroupCount` says there are any), and each group keeps its `path`;
//! - members: `GET /groups/{id}/members?first&max&briefRepresentation=true`, paged.
//!
//! Nested groups are reported as they are; the sync plan flattens them for mapping.

use super::scim_client::ScimClient;
use super::scim_source::SourceError;
use crate::domain::{Email, SourceGroup, SourceSnapshot, SourceUser};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashSet;

/// Rows asked for per page.
pub const PAGE: u32 = 100;
/// Pages of one listing at the most: a server that never stops paging is broken.
const MAX_PAGES: u32 = 100_000;
/// Groups walked at the most (a cycle in a broken server's tree stops here).
const MAX_GROUPS: usize = 1_000_000;

/// A Keycloak realm read as a source.
pub struct KeycloakSource {
    client: ScimClient,
    realm: String,
    page: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KcUser {
    id: String,
    username: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KcGroup {
    id: String,
    name: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    sub_group_count: Option<u64>,
    #[serde(default)]
    sub_groups: Vec<KcGroup>,
}

#[derive(Deserialize)]
struct KcMember {
    id: String,
}

impl KeycloakSource {
    /// A reader of `realm` over `client` (whose base URL is the Keycloak server's root, and
    /// which asks for `application/json`).
    pub fn new(client: ScimClient, realm: &str, page: u32) -> Self {
        Self {
            client,
            realm: realm.to_string(),
            page: page.max(1),
        }
    }

    /// Everything the realm holds.
    pub async fn read_all(&self) -> Result<SourceSnapshot, SourceError> {
        let users: Vec<KcUser> = self.list("users", "briefRepresentation=false").await?;
        let users: Vec<SourceUser> = users.into_iter().map(source_user).collect();

        // The tree, breadth first from the top-level groups.
        let top: Vec<KcGroup> = self.list("groups", "").await?;
        let mut queue: Vec<(KcGroup, Option<String>)> =
            top.into_iter().map(|g| (g, None)).collect();
        let mut walked: Vec<(KcGroup, Option<String>)> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        while let Some((mut g, parent)) = queue.pop() {
            if !seen.insert(g.id.clone()) || seen.len() > MAX_GROUPS {
                continue;
            }
            // Children given inline (an older server, or a search) are used; otherwise they
            // are asked for when the count says there are some.
            let mut children = std::mem::take(&mut g.sub_groups);
            if children.is_empty() && g.sub_group_count.unwrap_or(0) > 0 {
                children = self
                    .list(&format!("groups/{}/children", encode(&g.id)), "")
                    .await?;
            }
            queue.extend(children.into_iter().map(|c| (c, Some(g.id.clone()))));
            walked.push((g, parent));
        }
        let mut groups = Vec::with_capacity(walked.len());
        for (g, _) in &walked {
            let members: Vec<KcMember> = self
                .list(
                    &format!("groups/{}/members", encode(&g.id)),
                    "briefRepresentation=true",
                )
                .await?;
            let child_groups = walked
                .iter()
                .filter(|(_, p)| p.as_deref() == Some(g.id.as_str()))
                .map(|(c, _)| c.id.clone())
                .collect();
            groups.push(SourceGroup {
                external_id: g.id.clone(),
                display_name: g.name.clone(),
                path: g.path.clone().or_else(|| Some(format!("/{}", g.name))),
                members: members.into_iter().map(|m| m.id).collect(),
                child_groups,
            });
        }
        groups.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(SourceSnapshot {
            users,
            groups,
            cursor: None,
        })
    }

    /// Every row of one listing, `first`/`max` page by page until a page comes back short.
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        extra: &str,
    ) -> Result<Vec<T>, SourceError> {
        let mut all = Vec::new();
        let mut first = 0u64;
        for _ in 0..MAX_PAGES {
            let mut path = format!(
                "admin/realms/{}/{what}?first={first}&max={}",
                encode(&self.realm),
                self.page
            );
            if !extra.is_empty() {
                path.push('&');
                path.push_str(extra);
            }
            let body = self.client.get_path(&path).await?;
            let rows = match body {
                Some(Value::Array(rows)) => rows,
                _ => {
                    return Err(SourceError::Garbage(format!(
                        "GET {what} answered something other than a JSON array"
                    )));
                }
            };
            let n = rows.len() as u64;
            for row in rows {
                all.push(serde_json::from_value(row).map_err(|e| {
                    SourceError::Garbage(format!("GET {what}: a row of the wrong shape: {e}"))
                })?);
            }
            if n < u64::from(self.page) {
                return Ok(all);
            }
            first += n;
        }
        Err(SourceError::Garbage(format!(
            "GET {what} kept paging past {MAX_PAGES} pages"
        )))
    }
}

fn source_user(u: KcUser) -> SourceUser {
    let display = match (&u.first_name, &u.last_name) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        _ => None,
    };
    SourceUser {
        external_id: u.id,
        user_name: u.username,
        display_name: display,
        given_name: u.first_name,
        family_name: u.last_name,
        emails: u
            .email
            .filter(|e| !e.is_empty())
            .map(|value| Email {
                value,
                kind: Some("work".into()),
                primary: Some(true),
                display: None,
            })
            .into_iter()
            .collect(),
        active: u.enabled,
        attributes: serde_json::json!({}),
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
