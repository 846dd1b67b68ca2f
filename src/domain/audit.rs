//! The append-only audit trail: who did what, to what, why and when, per organization.

use super::text_enum::text_enum;
use super::{AuditEventId, OrganizationId, Timestamp};
use serde::Serialize;
use sqlx::types::Json;

text_enum!(
    /// What kind of party acted.
    ActorKind {
        /// A person at the CLI or workbench.
        Operator = "operator",
        /// An identity provider through the inbound SCIM server.
        Scim = "scim",
        /// A client of the management API.
        Api = "api",
        /// scimdesk itself (workers, schedules).
        System = "system",
    }
);

/// Who performed an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// What kind of party.
    pub kind: ActorKind,
    /// The operator's name, the connection's name, or the subsystem.
    pub name: String,
}

impl Actor {
    /// A person, by name.
    pub fn operator(name: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::Operator,
            name: name.into(),
        }
    }

    /// scimdesk itself, naming the subsystem.
    pub fn system(subsystem: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::System,
            name: subsystem.into(),
        }
    }
}

/// One recorded event. Rows can be inserted, never updated or deleted.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AuditEvent {
    /// Stable, time-ordered identifier.
    pub id: AuditEventId,
    /// The tenant the event belongs to.
    pub organization_id: OrganizationId,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// What kind of party acted.
    #[sqlx(try_from = "String")]
    pub actor_kind: ActorKind,
    /// Who acted.
    pub actor: String,
    /// Dotted verb, e.g. `connection.create`.
    pub action: String,
    /// What was acted on, e.g. `connection`.
    pub subject_type: String,
    /// The subject's id or name.
    pub subject_id: String,
    /// Details (never secrets).
    pub details: Json<serde_json::Value>,
}

/// Narrows an audit listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this actor.
    pub actor: Option<String>,
    /// Only actions starting with this prefix (e.g. `connection.`).
    pub action_prefix: Option<String>,
    /// Only this subject id.
    pub subject_id: Option<String>,
    /// Only events before this id (for paging backwards).
    pub before: Option<AuditEventId>,
    /// Only events at or after this time.
    pub since: Option<super::Timestamp>,
    /// Only events before this time.
    pub until: Option<super::Timestamp>,
    /// At most this many, newest first.
    pub limit: u32,
}
