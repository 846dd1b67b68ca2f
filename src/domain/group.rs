//! Local groups and their memberships.

use super::{ConnectionId, GroupId, OrganizationId, Timestamp};
use serde::Serialize;
use sqlx::types::Json;

/// A local group as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Group {
    /// Stable identifier.
    pub id: GroupId,
    /// The owning tenant.
    pub organization_id: OrganizationId,
    /// SCIM `displayName`.
    pub display_name: String,
    /// The source's identifier for this group.
    pub external_id: Option<String>,
    /// The connection that is authoritative for this group.
    pub source_connection_id: Option<ConnectionId>,
    /// Other SCIM attributes as received.
    pub attributes: Json<serde_json::Value>,
    /// Incremented on every change (membership changes included).
    pub version: i64,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl Group {
    /// The group's hierarchical path: its `path` attribute when the source gave one
    /// (Keycloak's `/hospital/icu`), else `/` and its display name.
    pub fn path(&self) -> String {
        self.attributes
            .0
            .get("path")
            .and_then(|p| p.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| format!("/{}", self.display_name))
    }

    /// Whether `before` differs from this group in what a mapping can select a group by
    /// (display name, external id, path, source): if so, which mappings cover it may have
    /// changed, and with them every member's roles. Compares the stored values, so a change
    /// that leaves the path the same in effect (a `path` attribute added that says what the
    /// display name implied) still counts: looking at every member once too often is safe.
    pub fn selectors_differ(&self, before: &Group) -> bool {
        self.display_name != before.display_name
            || self.external_id != before.external_id
            || self.source_connection_id != before.source_connection_id
            || self.attributes.0.get("path") != before.attributes.0.get("path")
    }
}

/// The writable content of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupDraft {
    /// SCIM `displayName`.
    pub display_name: String,
    /// The source's identifier.
    pub external_id: Option<String>,
    /// The authoritative connection.
    pub source_connection_id: Option<ConnectionId>,
    /// Other attributes.
    pub attributes: serde_json::Value,
    /// The exact list of users named as members of the group itself, or `None` to leave
    /// memberships as they are.
    pub members: Option<Vec<super::UserId>>,
    /// The exact list of groups inside this one (RFC 7643 §4.2 `type: "Group"` members), or
    /// `None` to leave them as they are. Their users are members of this group too, however
    /// deep: the store keeps the flattened memberships that mappings read.
    pub child_groups: Option<Vec<super::GroupId>>,
}

impl GroupDraft {
    /// A group with only a display name.
    pub fn new(display_name: impl Into<String>) -> Self {
        Self {
            display_name: display_name.into(),
            external_id: None,
            source_connection_id: None,
            attributes: serde_json::Value::Object(Default::default()),
            members: None,
            child_groups: None,
        }
    }
}
