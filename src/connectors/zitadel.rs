//! Reading a Zitadel organization as a source of truth (Zitadel v4 APIs), with a service user
//! that has the org role `ORG_USER_MANAGER` (or `ORG_OWNER_VIEWER`), its token asked with the
//! scope `urn:zitadel:iam:org:project:id:zitadel:aud`:
//!
//! - users, by default from the user service v2: `POST /v2/users` with
//!   `{query: {offset, limit, asc}, sortingColumn: USER_FIELD_NAME_CREATION_DATE, queries:
//!   [{organizationIdQuery}, {typeQuery: TYPE_HUMAN}]}`, paged until `details.totalResult`;
//!   or, with the setting `users_from=scim`, from its SCIM endpoint `/scim/v2/{orgId}/Users`.
//!   `USER_STATE_ACTIVE` and `USER_STATE_INITIAL` (created, no password set yet) are active;
//!   inactive, locked and deleted users are not;
//! - authorizations (user grants with role keys), from the Connect call
//!   `POST /zitadel.authorization.v2.AuthorizationService/ListAuthorizations` with
//!   `{pagination: {offset, limit, asc}, filters: [{organizationId: {id}}, {projectId: {id}}]}`
//!   (the project filter only when the setting `project_id` is given). Each role key of an
//!   active authorization is a group-like input: external id `{projectId}:{roleKey}`, name the
//!   role key, path `/{project name}/{role key}`, members the users granted it.
//!
//! The Zitadel organization (`organization_id`) is bound to the scimdesk organization that owns
//! the connection. Zitadel's APIs used here have no change feed, so every sync of a Zitadel
//! source reads it whole; the sync plan writes only what changed.

use super::scim_client::ScimClient;
use super::scim_source::ScimSource;
use super::source::{Incremental, Known, SourceError, SourceReader};
use crate::domain::{Email, SourceGroup, SourceSnapshot, SourceUser};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Rows asked for per page (Zitadel's default limit is 100, its maximum 1000).
pub const PAGE: u32 = 100;
/// Pages of one listing at the most: a server that never stops paging is broken.
const MAX_PAGES: u64 = 100_000;

/// Where a Zitadel source's users are read.
pub enum ZitadelUsers {
    /// The user service v2 (`POST /v2/users`).
    V2,
    /// The organization's SCIM endpoint, through this reader.
    Scim(Box<ScimSource>),
}

/// A Zitadel organization read as a source.
pub struct ZitadelSource {
    client: ScimClient,
    organization: String,
    project: Option<String>,
    page: u32,
    users: ZitadelUsers,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZUser {
    user_id: String,
    #[serde(default)]
    state: String,
    username: String,
    #[serde(default)]
    human: Option<ZHuman>,
}

#[derive(Deserialize)]
struct ZHuman {
    #[serde(default)]
    profile: Option<ZProfile>,
    #[serde(default)]
    email: Option<ZEmail>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZProfile {
    #[serde(default)]
    given_name: Option<String>,
    #[serde(default)]
    family_name: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct ZEmail {
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
struct ZAuthorization {
    #[serde(default)]
    state: String,
    project: ZRef,
    user: ZRef,
    #[serde(default)]
    roles: Vec<ZRole>,
}

#[derive(Deserialize)]
struct ZRef {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct ZRole {
    key: String,
}

impl ZitadelSource {
    /// A reader of the Zitadel organization `organization` over `client` (whose base URL is
    /// the Zitadel instance's root), granting only roles of `project` when given.
    pub fn new(
        client: ScimClient,
        organization: &str,
        project: Option<&str>,
        page: u32,
        users: ZitadelUsers,
    ) -> Self {
        Self {
            client: client
                .answering_json()
                .with_header("connect-protocol-version", "1"),
            organization: organization.to_string(),
            project: project.map(str::to_string),
            page: page.max(1),
            users,
        }
    }

    /// Every row of a POST search: `make(offset)` gives the request, `rows` the answer's list
    /// field, `total` the JSON pointer to where the answer says how many there are.
    async fn search<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        rows: &str,
        total: &str,
        make: impl Fn(u64) -> Value,
    ) -> Result<Vec<T>, SourceError> {
        let mut all = Vec::new();
        let mut offset = 0u64;
        for _ in 0..MAX_PAGES {
            let answer = self.client.post_path(path, &make(offset)).await?;
            let Some(answer @ Value::Object(_)) = answer else {
                return Err(SourceError::Garbage(format!(
                    "POST {path} answered without a JSON object"
                )));
            };
            let page = match answer.get(rows) {
                Some(Value::Array(r)) => r.clone(),
                // protojson leaves an empty list out.
                None => Vec::new(),
                Some(_) => {
                    return Err(SourceError::Garbage(format!(
                        "POST {path}: `{rows}` is not a list"
                    )));
                }
            };
            // 64-bit integers come as strings in protojson; accept numbers too.
            let total = answer
                .pointer(total)
                .and_then(|t| t.as_u64().or_else(|| t.as_str()?.parse().ok()));
            let n = page.len() as u64;
            for row in page {
                all.push(serde_json::from_value(row).map_err(|e| {
                    SourceError::Garbage(format!("POST {path}: a row of the wrong shape: {e}"))
                })?);
            }
            offset += n;
            if n == 0 || n < u64::from(self.page) || total.is_some_and(|t| offset >= t) {
                return Ok(all);
            }
        }
        Err(SourceError::Garbage(format!(
            "POST {path} kept paging past {MAX_PAGES} pages"
        )))
    }

    async fn read_users(&self) -> Result<Vec<SourceUser>, SourceError> {
        if let ZitadelUsers::Scim(scim) = &self.users {
            return scim.read_users().await;
        }
        let users: Vec<ZUser> = self
            .search("v2/users", "result", "/details/totalResult", |offset| {
                json!({
                    "query": {"offset": offset.to_string(), "limit": self.page, "asc": true},
                    "sortingColumn": "USER_FIELD_NAME_CREATION_DATE",
                    "queries": [
                        {"organizationIdQuery": {"organizationId": self.organization}},
                        {"typeQuery": {"type": "TYPE_HUMAN"}},
                    ],
                })
            })
            .await?;
        Ok(users.into_iter().map(source_user).collect())
    }

    async fn read_grants(&self) -> Result<Vec<SourceGroup>, SourceError> {
        let mut filters = vec![json!({"organizationId": {"id": self.organization}})];
        if let Some(p) = &self.project {
            filters.push(json!({"projectId": {"id": p}}));
        }
        let grants: Vec<ZAuthorization> = self
            .search(
                "zitadel.authorization.v2.AuthorizationService/ListAuthorizations",
                "authorizations",
                "/pagination/totalResult",
                |offset| {
                    json!({
                        "pagination": {"offset": offset.to_string(), "limit": self.page, "asc": true},
                        "sortingColumn": "AUTHORIZATION_FIELD_NAME_USER_ID",
                        "filters": filters,
                    })
                },
            )
            .await?;
        let mut groups: BTreeMap<String, SourceGroup> = BTreeMap::new();
        for g in grants.into_iter().filter(|g| g.state == "STATE_ACTIVE") {
            let project = g
                .project
                .name
                .clone()
                .unwrap_or_else(|| g.project.id.clone());
            for role in g.roles {
                let id = format!("{}:{}", g.project.id, role.key);
                let group = groups.entry(id.clone()).or_insert_with(|| SourceGroup {
                    external_id: id,
                    display_name: role.key.clone(),
                    path: Some(format!("/{project}/{}", role.key)),
                    members: Vec::new(),
                    child_groups: Vec::new(),
                });
                if !group.members.contains(&g.user.id) {
                    group.members.push(g.user.id.clone());
                }
            }
        }
        Ok(groups.into_values().collect())
    }
}

#[async_trait::async_trait]
impl SourceReader for ZitadelSource {
    async fn read_all(&self) -> Result<SourceSnapshot, SourceError> {
        Ok(SourceSnapshot {
            users: self.read_users().await?,
            groups: self.read_grants().await?,
            cursor: None,
        })
    }

    async fn read_changes(
        &self,
        _cursor: &str,
        _known: &Known,
    ) -> Result<Incremental, SourceError> {
        Ok(Incremental::Unavailable(
            "Zitadel's user and authorization APIs have no change feed; every sync reads it whole"
                .into(),
        ))
    }
}

fn source_user(u: ZUser) -> SourceUser {
    let active = matches!(u.state.as_str(), "USER_STATE_ACTIVE" | "USER_STATE_INITIAL");
    let (profile, email) = match u.human {
        Some(h) => (h.profile, h.email.and_then(|e| e.email)),
        None => (None, None),
    };
    let nonempty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    let (given, family, display) = match profile {
        Some(p) => (
            nonempty(p.given_name),
            nonempty(p.family_name),
            nonempty(p.display_name),
        ),
        None => (None, None, None),
    };
    SourceUser {
        external_id: u.user_id,
        user_name: u.username,
        display_name: display,
        given_name: given,
        family_name: family,
        emails: Email::primary_work(email).into_iter().collect(),
        active,
        attributes: json!({}),
    }
}
