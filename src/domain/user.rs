//! Local users: the desired identity state that sources write and targets receive.

use super::text_enum::text_enum;
use super::{ConnectionId, OrganizationId, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;

text_enum!(
    /// Where a user is in its lifecycle.
    LifecycleState {
        /// May sign in; provisioned to targets in scope.
        Active = "active",
        /// Kept but disabled (`active=false`): suspended at targets.
        Suspended = "suspended",
        /// Removed at the source; being removed at targets per policy.
        Deprovisioned = "deprovisioned",
    }
);

/// One e-mail address of a user (RFC 7643 §4.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    /// The address.
    pub value: String,
    /// A label such as "work".
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whether this is the preferred address (kept exactly as given: absent, true or false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    /// A label for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Email {
    /// A source's one address for a user (Keycloak's and Zitadel's `email`): the primary,
    /// work address; `None` when it is empty.
    pub fn primary_work(value: Option<String>) -> Option<Self> {
        value.filter(|v| !v.trim().is_empty()).map(|value| Email {
            value,
            kind: Some("work".into()),
            primary: Some(true),
            display: None,
        })
    }
}

/// A local user as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct User {
    /// Stable identifier (the SCIM `id` we hand out).
    pub id: UserId,
    /// The owning tenant.
    pub organization_id: OrganizationId,
    /// SCIM `userName`, unique per organization case-insensitively.
    pub user_name: String,
    /// The source's identifier for this user.
    pub external_id: Option<String>,
    /// Name to show.
    pub display_name: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// E-mail addresses.
    pub emails: Json<Vec<Email>>,
    /// SCIM `active`.
    pub active: bool,
    /// Lifecycle state.
    #[sqlx(try_from = "String")]
    pub lifecycle_state: LifecycleState,
    /// The connection that is authoritative for this user.
    pub source_connection_id: Option<ConnectionId>,
    /// Every other SCIM attribute, as received (extension attributes included).
    pub attributes: Json<serde_json::Value>,
    /// Incremented on every change; the SCIM ETag is derived from it.
    pub version: i64,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl User {
    /// The user `draft` becomes when stored as `id` in `org` at `now` (version 1).
    pub fn from_draft(id: UserId, org: OrganizationId, draft: &UserDraft, now: Timestamp) -> Self {
        Self {
            id,
            organization_id: org,
            user_name: draft.user_name.clone(),
            external_id: draft.external_id.clone(),
            display_name: draft.display_name.clone(),
            given_name: draft.given_name.clone(),
            family_name: draft.family_name.clone(),
            emails: Json(draft.emails.clone()),
            active: draft.active,
            lifecycle_state: draft.lifecycle_state(),
            source_connection_id: draft.source_connection_id,
            attributes: Json(draft.attributes.clone()),
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }
}

/// The writable content of a user, used for create and for full replacement.
#[derive(Debug, Clone, PartialEq)]
pub struct UserDraft {
    /// SCIM `userName`.
    pub user_name: String,
    /// The source's identifier.
    pub external_id: Option<String>,
    /// Name to show.
    pub display_name: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// E-mail addresses.
    pub emails: Vec<Email>,
    /// SCIM `active`.
    pub active: bool,
    /// The authoritative connection.
    pub source_connection_id: Option<ConnectionId>,
    /// Other attributes.
    pub attributes: serde_json::Value,
}

impl UserDraft {
    /// A minimal active user with only a userName.
    pub fn new(user_name: impl Into<String>) -> Self {
        Self {
            user_name: user_name.into(),
            external_id: None,
            display_name: None,
            given_name: None,
            family_name: None,
            emails: Vec::new(),
            active: true,
            source_connection_id: None,
            attributes: serde_json::Value::Object(Default::default()),
        }
    }

    /// The lifecycle state this content implies.
    pub fn lifecycle_state(&self) -> LifecycleState {
        if self.active {
            LifecycleState::Active
        } else {
            LifecycleState::Suspended
        }
    }
}
