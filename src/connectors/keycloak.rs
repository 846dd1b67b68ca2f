//! Reading a Keycloak realm as a source of truth through its admin REST API (Keycloak 23 and
//! later; shapes as of 26.x), with a service-account client that has `view-users`,
//! `query-groups` and `view-events`:
//!
//! - users: `GET /admin/realms/{realm}/users?first&max&briefRepresentation=false`, paged until a
//!   page comes back short; `enabled` is `active`; the user profile attributes that SCIM has a
//!   place for (`employeeNumber`, `department`, `costCenter`, `organization`, `division`,
//!   `jobTitle`/`title`) become the enterprise extension and `title`;
//! - groups: `GET /admin/realms/{realm}/groups?first&max`, then each group's
//!   `GET /groups/{id}/children?first&max`, paged, however deep. Since Keycloak 23 a listing's
//!   `subGroups` is empty unless `search` or `q` is given, so the tree is walked through
//!   `children` (where `subGroupCount` says there are any), and each group keeps its `path`;
//! - members: `GET /groups/{id}/members?first&max&briefRepresentation=true`, paged.
//!
//! Incremental reads poll `GET /admin-events?resourceTypes=USER&resourceTypes=GROUP&
//! resourceTypes=GROUP_MEMBERSHIP&dateFrom={ms}&first&max&direction=asc` and re-read what each
//! event names: a user by `GET /users/{id}` (404: gone), a group by the whole tree it belongs
//! to (`GET /groups/{id}` for its path, `GET /group-by-path/{top}` for the tree's top, then
//! the walk above), because a membership change inside a tree changes every group above it.
//! `GET /events/config` is asked first: with admin events off (or refused, 403) the reader
//! says so and the driver runs full syncs. Admin events have gaps (LDAP federation and
//! "remove imported users" log nothing: Keycloak #16692, #9769), so the scheduled full sync
//! stays the safety net.
//!
//! Nested groups are reported as they are; the sync plan flattens them for mapping.

use super::scim_client::{ScimClient, TargetError};
use super::source::{Incremental, Known, SourceError, SourceReader};
use crate::domain::{Email, GroupScope, SourceChanges, SourceGroup, SourceSnapshot, SourceUser};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap, HashSet};

/// Rows asked for per page.
pub const PAGE: u32 = 100;
/// Pages of one listing at the most: a server that never stops paging is broken.
const MAX_PAGES: u32 = 100_000;
/// Groups walked at the most (a cycle in a broken server's tree stops here).
const MAX_GROUPS: usize = 1_000_000;
/// Admin events one incremental read applies at the most; past that a full sync is cheaper.
const MAX_EVENTS: usize = 10_000;
/// How far before a full read its cursor starts (clocks of two machines differ; an event
/// read twice is applied twice to the same effect).
const CURSOR_MARGIN_MS: i64 = 60_000;

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
    #[serde(default)]
    attributes: HashMap<String, Vec<String>>,
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KcEvent {
    #[serde(default)]
    time: i64,
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    resource_path: String,
    #[serde(default)]
    representation: Option<String>,
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

    fn path(&self, what: &str) -> String {
        format!("admin/realms/{}/{what}", encode(&self.realm))
    }

    /// One resource; `None` when Keycloak says it does not exist.
    async fn one<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
    ) -> Result<Option<T>, SourceError> {
        match self.client.get_path(&self.path(what)).await {
            Ok(Some(body)) => serde_json::from_value(body).map(Some).map_err(|e| {
                SourceError::Garbage(format!("GET {what}: an answer of the wrong shape: {e}"))
            }),
            Ok(None) => Err(SourceError::Garbage(format!("GET {what}: an empty answer"))),
            Err(TargetError::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The trees under `top`, walked breadth first through `children`, with each group's
    /// members.
    async fn walk(&self, top: Vec<KcGroup>) -> Result<Vec<SourceGroup>, SourceError> {
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
        Ok(groups)
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
            let mut path = format!("{}?first={first}&max={}", self.path(what), self.page);
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

    /// The time of the realm's newest admin event (epoch ms), if it has any to show us.
    async fn newest_event(&self) -> Option<i64> {
        let path = format!("{}?first=0&max=1&direction=desc", self.path("admin-events"));
        match self.client.get_path(&path).await {
            Ok(Some(Value::Array(rows))) => rows.first().and_then(|e| e.get("time")?.as_i64()),
            _ => None,
        }
    }

    /// The tops of the trees a changed group belongs to, by path (`/Clinical` for
    /// `/Clinical/Pharmacy`): where Keycloak has it now (or the event showed it), and where
    /// the store had it (a renamed or moved group leaves its old tree).
    async fn trees_of(
        &self,
        id: &str,
        hint: Option<&str>,
        known: &Known,
    ) -> Result<Vec<String>, SourceError> {
        let here: Option<KcGroup> = self.one(&format!("groups/{}", encode(id))).await?;
        let now = here
            .and_then(|g| g.path)
            .or_else(|| hint.map(str::to_string));
        Ok([now, known.group_paths.get(id).cloned()]
            .into_iter()
            .flatten()
            .filter_map(|p| {
                p.trim_start_matches('/')
                    .split('/')
                    .next()
                    .filter(|top| !top.is_empty())
                    .map(|top| format!("/{top}"))
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl SourceReader for KeycloakSource {
    async fn read_all(&self) -> Result<SourceSnapshot, SourceError> {
        // Where the next incremental read starts: just before this read, on Keycloak's clock
        // when it shows one.
        let start = self
            .newest_event()
            .await
            .unwrap_or_else(|| now_ms() - CURSOR_MARGIN_MS);
        let users: Vec<KcUser> = self.list("users", "briefRepresentation=false").await?;
        let users: Vec<SourceUser> = users.into_iter().map(source_user).collect();
        let top: Vec<KcGroup> = self.list("groups", "").await?;
        let groups = self.walk(top).await?;
        Ok(SourceSnapshot {
            users,
            groups,
            cursor: Some(start.to_string()),
        })
    }

    async fn read_changes(&self, cursor: &str, known: &Known) -> Result<Incremental, SourceError> {
        let Ok(from) = cursor.parse::<i64>() else {
            return Ok(Incremental::Unavailable(format!(
                "the stored cursor {cursor:?} is not an admin-event time"
            )));
        };
        match self.client.get_path(&self.path("events/config")).await {
            Ok(Some(config)) => {
                if config.get("adminEventsEnabled").and_then(Value::as_bool) != Some(true) {
                    return Ok(Incremental::Unavailable(format!(
                        "admin events are off in realm {}; turn them on (with \"include representation\") for incremental syncs",
                        self.realm
                    )));
                }
            }
            Ok(None) => {}
            Err(TargetError::Http { status: 403, .. }) => {
                return Ok(Incremental::Unavailable(
                    "the service account may not read the realm's events (403); give it view-events"
                        .into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let extra = format!(
            "resourceTypes=USER&resourceTypes=GROUP&resourceTypes=GROUP_MEMBERSHIP&dateFrom={from}&direction=asc"
        );
        let events: Vec<KcEvent> = match self.list("admin-events", &extra).await {
            Ok(e) => e,
            Err(e) if e.is_forbidden() => {
                return Ok(Incremental::Unavailable(
                    "the service account may not read admin events (403); give it view-events"
                        .into(),
                ));
            }
            Err(e) => return Err(e),
        };
        if events.len() > MAX_EVENTS {
            return Ok(Incremental::Unavailable(format!(
                "{} admin events since the last sync; a full sync reads them faster",
                events.len()
            )));
        }
        let mut users: BTreeSet<String> = BTreeSet::new();
        let mut groups: Vec<(String, Option<String>)> = Vec::new();
        for e in &events {
            let parts: Vec<&str> = e.resource_path.split('/').collect();
            let shown: Option<Value> = e
                .representation
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok());
            let shown_path = shown
                .as_ref()
                .and_then(|r| r.get("path")?.as_str().map(str::to_string));
            match (e.resource_type.as_str(), parts.as_slice()) {
                ("USER", ["users", id, ..]) => {
                    users.insert(id.to_string());
                }
                ("GROUP_MEMBERSHIP", ["users", _, "groups", gid]) => {
                    groups.push((gid.to_string(), shown_path));
                }
                ("GROUP", ["groups", id, ..]) => groups.push((id.to_string(), shown_path)),
                _ => {}
            }
        }
        let mut changes = SourceChanges {
            cursor: events
                .iter()
                .map(|e| e.time)
                .max()
                .filter(|t| *t > from)
                .map(|t| t.to_string()),
            ..Default::default()
        };
        for id in users {
            match self
                .one::<KcUser>(&format!("users/{}", encode(&id)))
                .await?
            {
                Some(u) => changes.users.push(source_user(u)),
                None => changes.gone_users.push(id),
            }
        }
        if groups.is_empty() {
            return Ok(Incremental::Changes(changes));
        }
        let mut trees: BTreeSet<String> = BTreeSet::new();
        let mut asked: HashSet<String> = HashSet::new();
        for (id, hint) in &groups {
            if asked.insert(id.clone()) {
                trees.extend(self.trees_of(id, hint.as_deref(), known).await?);
            }
        }
        let mut tops = Vec::new();
        for top in &trees {
            let by_path = top
                .trim_start_matches('/')
                .split('/')
                .map(encode_segment)
                .collect::<Vec<_>>()
                .join("/");
            if let Some(g) = self
                .one::<KcGroup>(&format!("group-by-path/{by_path}"))
                .await?
            {
                tops.push(g);
            }
        }
        changes.groups = Some(GroupScope {
            groups: self.walk(tops).await?,
            ids: Vec::new(),
            paths: trees.into_iter().collect(),
            everything: false,
        });
        Ok(Incremental::Changes(changes))
    }
}

fn now_ms() -> i64 {
    (crate::domain::Timestamp::now().unix_micros()) / 1000
}

/// The enterprise extension's URN.
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The Keycloak attributes SCIM has a place for, as SCIM attributes.
fn scim_attributes(attributes: &HashMap<String, Vec<String>>) -> Value {
    let first = |k: &str| {
        attributes
            .get(k)
            .and_then(|v| v.first())
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let mut out = Map::new();
    if let Some(t) = first("jobTitle").or_else(|| first("title")) {
        out.insert("title".into(), json!(t));
    }
    let mut enterprise = Map::new();
    for key in [
        "employeeNumber",
        "department",
        "costCenter",
        "organization",
        "division",
    ] {
        if let Some(v) = first(key) {
            enterprise.insert(key.into(), json!(v));
        }
    }
    if !enterprise.is_empty() {
        out.insert(ENTERPRISE.into(), Value::Object(enterprise));
    }
    Value::Object(out)
}

fn source_user(u: KcUser) -> SourceUser {
    let display = match (&u.first_name, &u.last_name) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        _ => None,
    };
    SourceUser {
        attributes: scim_attributes(&u.attributes),
        external_id: u.id,
        user_name: u.username,
        display_name: display,
        given_name: u.first_name,
        family_name: u.last_name,
        emails: Email::primary_work(u.email).into_iter().collect(),
        active: u.enabled,
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// One path segment, percent-encoded (a space as `%20`, not `+`).
fn encode_segment(s: &str) -> String {
    encode(s).replace('+', "%20")
}
