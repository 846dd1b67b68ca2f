//! Between stored users and groups and their SCIM representations.
//!
//! A user's SCIM document is split on the way in: the attributes the store indexes get columns
//! (`userName`, `externalId`, `displayName`, `active`, `emails`, and `name.givenName` /
//! `name.familyName` as copies for search); everything else, extension objects included, stays in
//! the `attributes` JSON. On the way out the two are joined again with `id`, `groups` and `meta`.

use crate::domain::{ConnectionId, Email, Group, GroupDraft, GroupId, User, UserDraft, UserId};
use scimdesk_scim::error::{ScimError, ScimResult};
use scimdesk_scim::schema::{GROUP_SCHEMA, USER_SCHEMA};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use uuid::Uuid;

/// Keys that live in columns or are computed, never in `attributes`.
const USER_COLUMN_KEYS: &[&str] = &[
    "schemas",
    "id",
    "meta",
    "userName",
    "externalId",
    "displayName",
    "active",
    "emails",
    "groups",
];
const GROUP_COLUMN_KEYS: &[&str] = &[
    "schemas",
    "id",
    "meta",
    "displayName",
    "externalId",
    "members",
];

/// The weak ETag of a stored version.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The SCIM document of a user. `base` is the SCIM base URL, e.g. `https://host/scim/v2`.
/// `groups` are the user's groups, each with whether the user was named as its member
/// (`type: "direct"`) or is there through a group inside it (`"indirect"`).
pub fn user_to_doc(user: &User, groups: Option<&[(&Group, bool)]>, base: &str) -> Value {
    let mut doc = match &user.attributes.0 {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for k in USER_COLUMN_KEYS {
        doc.remove(*k);
    }
    doc.insert("id".into(), json!(user.id.to_string()));
    doc.insert("userName".into(), json!(user.user_name));
    if let Some(x) = &user.external_id {
        doc.insert("externalId".into(), json!(x));
    }
    if let Some(x) = &user.display_name {
        doc.insert("displayName".into(), json!(x));
    }
    doc.insert("active".into(), json!(user.active));
    if !user.emails.0.is_empty() {
        doc.insert(
            "emails".into(),
            serde_json::to_value(&user.emails.0).unwrap_or(Value::Null),
        );
    }
    if let Some(groups) = groups.filter(|g| !g.is_empty()) {
        let list: Vec<Value> = groups
            .iter()
            .map(|(g, direct)| {
                let kind = if *direct { "direct" } else { "indirect" };
                json!({ "value": g.id.to_string(), "$ref": format!("{base}/Groups/{}", g.id), "display": g.display_name, "type": kind })
            })
            .collect();
        doc.insert("groups".into(), Value::Array(list));
    }
    let mut schemas = vec![json!(USER_SCHEMA)];
    schemas.extend(
        doc.keys()
            .filter(|k| k.starts_with("urn:"))
            .map(|k| json!(k)),
    );
    doc.insert("schemas".into(), Value::Array(schemas));
    doc.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": user.created_at.to_rfc3339(),
            "lastModified": user.updated_at.to_rfc3339(),
            "location": format!("{base}/Users/{}", user.id),
            "version": etag(user.version),
        }),
    );
    Value::Object(doc)
}

fn str_field(doc: &Map<String, Value>, key: &str) -> Option<String> {
    doc.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The stored form of a canonical user document.
pub fn doc_to_user_draft(doc: &Value, source: Option<ConnectionId>) -> ScimResult<UserDraft> {
    let Value::Object(m) = doc else {
        return Err(ScimError::invalid_syntax("a user must be a JSON object"));
    };
    let user_name =
        str_field(m, "userName").ok_or_else(|| ScimError::invalid_value("userName is required"))?;
    if user_name.trim().is_empty() {
        return Err(ScimError::invalid_value("userName must not be empty"));
    }
    if user_name.chars().any(char::is_control) {
        return Err(ScimError::invalid_value(
            "userName must not contain control characters",
        ));
    }
    let emails: Vec<Email> = match m.get("emails") {
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| ScimError::invalid_value(format!("emails: {e}")))?,
        None => Vec::new(),
    };
    let name = m.get("name");
    let mut attributes = m.clone();
    for k in USER_COLUMN_KEYS {
        attributes.remove(*k);
    }
    Ok(UserDraft {
        user_name,
        external_id: str_field(m, "externalId"),
        display_name: str_field(m, "displayName"),
        given_name: name
            .and_then(|n| n.get("givenName"))
            .and_then(Value::as_str)
            .map(str::to_string),
        family_name: name
            .and_then(|n| n.get("familyName"))
            .and_then(Value::as_str)
            .map(str::to_string),
        emails,
        active: m.get("active").and_then(Value::as_bool).unwrap_or(true),
        source_connection_id: source,
        attributes: Value::Object(attributes),
    })
}

/// A group member as `members` shows it: a user named as a member of the group itself, or
/// a group inside it (RFC 7643 §4.2).
pub struct Member<'a> {
    /// The user's or the group's id.
    pub id: Uuid,
    /// What to show.
    pub display: &'a str,
    /// Whether the member is a group.
    pub is_group: bool,
}

/// The SCIM document of a group.
pub fn group_to_doc(group: &Group, members: &[Member<'_>], base: &str) -> Value {
    let mut doc = match &group.attributes.0 {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for k in GROUP_COLUMN_KEYS {
        doc.remove(*k);
    }
    doc.insert("schemas".into(), json!([GROUP_SCHEMA]));
    doc.insert("id".into(), json!(group.id.to_string()));
    doc.insert("displayName".into(), json!(group.display_name));
    if let Some(x) = &group.external_id {
        doc.insert("externalId".into(), json!(x));
    }
    let list: Vec<Value> = members
        .iter()
        .map(|m| {
            let (kind, path) = if m.is_group { ("Group", "Groups") } else { ("User", "Users") };
            json!({ "value": m.id.to_string(), "$ref": format!("{base}/{path}/{}", m.id), "display": m.display, "type": kind })
        })
        .collect();
    doc.insert("members".into(), Value::Array(list));
    doc.insert(
        "meta".into(),
        json!({
            "resourceType": "Group",
            "created": group.created_at.to_rfc3339(),
            "lastModified": group.updated_at.to_rfc3339(),
            "location": format!("{base}/Groups/{}", group.id),
            "version": etag(group.version),
        }),
    );
    Value::Object(doc)
}

/// A group document as received: its draft, and the members it named without saying whether
/// they are users or groups (no `type`, no telling `$ref`), which only the store can tell
/// apart. [`GroupInput::resolve`] settles them.
#[derive(Debug)]
pub struct GroupInput {
    /// The draft, with the typed members placed.
    pub draft: GroupDraft,
    /// Member ids that may be users or groups.
    pub untyped: Vec<Uuid>,
}

impl GroupInput {
    /// The draft, with each untyped member that is one of `groups` placed as a group inside
    /// this one and every other as a user.
    pub fn resolve(mut self, groups: &HashSet<Uuid>) -> GroupDraft {
        let users = self.draft.members.get_or_insert_with(Vec::new);
        let children = self.draft.child_groups.get_or_insert_with(Vec::new);
        // Each id was named once (doc_to_group_draft drops repeats), so nothing is doubled.
        for id in self.untyped {
            if groups.contains(&id) {
                children.push(GroupId(id));
            } else {
                users.push(UserId(id));
            }
        }
        self.draft
    }
}

/// What a `members` value names, by its `type` or else its `$ref`.
enum MemberType {
    User,
    Group,
    Unknown,
}

fn member_type(v: &Value) -> MemberType {
    if let Some(t) = v.get("type").and_then(Value::as_str) {
        if t.eq_ignore_ascii_case("group") {
            return MemberType::Group;
        }
        if t.eq_ignore_ascii_case("user") {
            return MemberType::User;
        }
    }
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) if r.contains("/Groups/") => MemberType::Group,
        Some(r) if r.contains("/Users/") => MemberType::User,
        _ => MemberType::Unknown,
    }
}

/// The stored form of a canonical group document, with its exact member lists: users, groups
/// inside it, and the members whose kind the store must tell.
pub fn doc_to_group_draft(doc: &Value, source: Option<ConnectionId>) -> ScimResult<GroupInput> {
    let Value::Object(m) = doc else {
        return Err(ScimError::invalid_syntax("a group must be a JSON object"));
    };
    let display_name = str_field(m, "displayName")
        .ok_or_else(|| ScimError::invalid_value("displayName is required"))?;
    if display_name.trim().is_empty() {
        return Err(ScimError::invalid_value("displayName must not be empty"));
    }
    let mut members: Vec<UserId> = Vec::new();
    let mut children: Vec<GroupId> = Vec::new();
    let mut untyped: Vec<Uuid> = Vec::new();
    let mut seen: HashSet<Uuid> = HashSet::new();
    for v in m
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = v.get("value").and_then(Value::as_str).unwrap_or_default();
        let kind = member_type(v);
        let parsed = id.parse::<Uuid>().map_err(|_| {
            let what = match kind {
                MemberType::Group => "group",
                MemberType::User => "user",
                MemberType::Unknown => "user or group",
            };
            ScimError::invalid_value(format!(
                "member {id:?} is not a {what} of this organization"
            ))
        })?;
        // A member named twice is one member.
        if !seen.insert(parsed) {
            continue;
        }
        match kind {
            MemberType::User => members.push(UserId(parsed)),
            MemberType::Group => children.push(GroupId(parsed)),
            MemberType::Unknown => untyped.push(parsed),
        }
    }
    let mut attributes = m.clone();
    for k in GROUP_COLUMN_KEYS {
        attributes.remove(*k);
    }
    Ok(GroupInput {
        draft: GroupDraft {
            display_name,
            external_id: str_field(m, "externalId"),
            source_connection_id: source,
            attributes: Value::Object(attributes),
            members: Some(members),
            child_groups: Some(children),
        },
        untyped,
    })
}
