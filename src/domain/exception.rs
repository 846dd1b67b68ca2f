//! Exceptions: situations the engine will not guess about, kept as records that people
//! resolve — a group no mapping covers, a conflict at a target, a resource at a target that
//! nobody here knows.

use super::text_enum::text_enum;
use super::{ConnectionId, ExceptionId, GroupId, OrganizationId, Timestamp};
use serde::Serialize;
use sqlx::types::Json;

text_enum!(
    /// What kind of situation an exception is.
    ExceptionKind {
        /// A group with members that no mapping covers: its members get nothing from it.
        UnmappedGroup = "unmapped_group",
        /// A target refused a create (409) and its existing resource cannot safely be linked.
        Conflict = "conflict",
        /// A full reconciliation found a resource at a target that nothing here knows.
        UnknownAtTarget = "unknown_at_target",
        /// A source's sync would have suspended more users than the deletion guard allows,
        /// and stopped before writing anything.
        SyncGuard = "sync_guard",
    }
);

text_enum!(
    /// Whether an exception still needs someone.
    ExceptionState {
        /// Waiting for a person (or for the situation to go away).
        Open = "open",
        /// Settled by a mapping, a link, or because the situation went away.
        Resolved = "resolved",
        /// Set aside by a person, with a reason.
        Dismissed = "dismissed",
    }
);

/// An exception as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct PolicyException {
    /// Stable identifier.
    pub id: ExceptionId,
    /// The owning tenant.
    pub organization_id: OrganizationId,
    /// What kind.
    #[sqlx(try_from = "String")]
    pub kind: ExceptionKind,
    /// What it is about, as a key that keeps one open exception per subject (e.g.
    /// `group:<id>`, `<connection>:user:<id>`).
    pub subject_key: String,
    /// The target involved, if any.
    pub connection_id: Option<ConnectionId>,
    /// What it is about, for people (a group's name, a userName).
    pub subject: String,
    /// One line that says what is wrong.
    pub summary: String,
    /// Both sides and anything else a person needs to decide.
    pub details: Json<serde_json::Value>,
    /// Open, resolved or dismissed.
    #[sqlx(try_from = "String")]
    pub state: ExceptionState,
    /// How it was settled.
    pub resolution: Option<String>,
    /// Who settled it.
    pub resolved_by: Option<String>,
    /// When it was raised.
    pub created_at: Timestamp,
    /// When it was settled.
    pub resolved_at: Option<Timestamp>,
}

/// An exception to raise.
#[derive(Debug, Clone, PartialEq)]
pub struct NewException {
    /// What kind.
    pub kind: ExceptionKind,
    /// The de-duplication key (see [`PolicyException::subject_key`]).
    pub subject_key: String,
    /// The target involved.
    pub connection_id: Option<ConnectionId>,
    /// What it is about, for people.
    pub subject: String,
    /// What is wrong.
    pub summary: String,
    /// Details.
    pub details: serde_json::Value,
}

/// Which exceptions to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExceptionFilter {
    /// Only this state (all when `None`).
    pub state: Option<ExceptionState>,
    /// Only this kind.
    pub kind: Option<ExceptionKind>,
    /// Only this target.
    pub connection_id: Option<ConnectionId>,
    /// Rows to skip.
    pub offset: u64,
    /// At most this many (newest first).
    pub limit: u32,
}

/// One full reconciliation of a target, with what it found and did.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ReconcileRun {
    /// Stable identifier.
    pub id: super::ReconcileRunId,
    /// The owning tenant.
    pub organization_id: OrganizationId,
    /// The target.
    pub connection_id: ConnectionId,
    /// Start.
    pub started_at: Timestamp,
    /// End.
    pub finished_at: Timestamp,
    /// Whether it only looked.
    pub dry_run: bool,
    /// Who asked (an operator, or `engine` for the schedule).
    pub actor: String,
    /// Counts per finding (see `policy::reconcile::ReconcileCounts`).
    pub counts: Json<serde_json::Value>,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// The subject key of a group's unmapped-group exception.
pub fn unmapped_group_key(group: GroupId) -> String {
    format!("group:{group}")
}
