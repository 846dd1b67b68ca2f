//! Target links: what each target was last told about each local resource.

use super::text_enum::text_enum;
use super::{ConnectionId, OrganizationId, Timestamp};
use serde::Serialize;
use uuid::Uuid;

text_enum!(
    /// The kind of SCIM resource.
    ResourceType {
        /// A SCIM User.
        User = "user",
        /// A SCIM Group.
        Group = "group",
    }
);

/// The remote counterpart of a local resource at one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TargetLink {
    /// The owning tenant.
    pub organization_id: OrganizationId,
    /// The target connection.
    pub connection_id: ConnectionId,
    /// User or group.
    #[sqlx(try_from = "String")]
    pub resource_type: ResourceType,
    /// The local user or group id.
    pub local_id: Uuid,
    /// The id the target assigned.
    pub remote_id: String,
    /// The target's last ETag, if it gives one.
    pub remote_etag: Option<String>,
    /// Hash of the representation last sent, so unchanged resources send nothing.
    pub content_hash: String,
    /// When the target last acknowledged a change.
    pub synced_at: Timestamp,
    /// The representation last sent, so an update can PATCH only what changed.
    pub last_sent: Option<sqlx::types::Json<serde_json::Value>>,
}
