//! Provisioning operations: durable units of work for one resource at one target.

use super::text_enum::text_enum;
use super::{ConnectionId, OperationId, OrganizationId, ResourceType, Timestamp};
use serde::Serialize;
use sqlx::types::Json;
use uuid::Uuid;

text_enum!(
    /// What an operation does at the target.
    OperationAction {
        /// Create the resource (after looking it up, so a retry never duplicates it).
        Create = "create",
        /// Bring the resource up to date.
        Update = "update",
        /// Set `active=false`.
        Suspend = "suspend",
        /// Remove the resource.
        Delete = "delete",
        /// Add members to a group.
        AddMembers = "add_members",
        /// Remove members from a group.
        RemoveMembers = "remove_members",
    }
);

text_enum!(
    /// Where an operation is in its life (see docs/operations.md).
    OperationState {
        /// Waiting for a worker.
        Pending = "pending",
        /// Leased by a worker.
        InFlight = "in_flight",
        /// Failed transiently; waiting for its next attempt.
        RetryWait = "retry_wait",
        /// Failed in a way retrying cannot fix; needs an operator.
        Failed = "failed",
        /// Done.
        Succeeded = "succeeded",
        /// Set aside by an operator, with a reason.
        Skipped = "skipped",
    }
);

impl OperationState {
    /// Whether no worker will touch the operation again without an operator.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            OperationState::Succeeded | OperationState::Skipped | OperationState::Failed
        )
    }
}

/// An operation as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Operation {
    /// Stable identifier (time-ordered).
    pub id: OperationId,
    /// The owning tenant.
    pub organization_id: OrganizationId,
    /// The target connection.
    pub connection_id: ConnectionId,
    /// User or group.
    #[sqlx(try_from = "String")]
    pub resource_type: ResourceType,
    /// The local resource.
    pub resource_id: Uuid,
    /// What to do.
    #[sqlx(try_from = "String")]
    pub action: OperationAction,
    /// Action-specific data (e.g. member ids).
    pub payload: Json<serde_json::Value>,
    /// Current state.
    #[sqlx(try_from = "String")]
    pub state: OperationState,
    /// Attempts made so far.
    pub attempts: i32,
    /// Not to be attempted before this time.
    pub not_before: Timestamp,
    /// The last error, for people.
    pub last_error: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// What is needed to enqueue an operation.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOperation {
    /// The target connection.
    pub connection_id: ConnectionId,
    /// User or group.
    pub resource_type: ResourceType,
    /// The local resource.
    pub resource_id: Uuid,
    /// What to do.
    pub action: OperationAction,
    /// Action-specific data.
    pub payload: serde_json::Value,
}

/// One try of an operation against its target.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Attempt {
    /// The operation.
    pub operation_id: OperationId,
    /// The owning tenant.
    pub organization_id: OrganizationId,
    /// 1 for the first try.
    pub attempt_no: i32,
    /// When it started.
    pub started_at: Timestamp,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// The HTTP status, if a response arrived.
    pub http_status: Option<i32>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// Redacted excerpt of the request.
    pub request_excerpt: Option<String>,
    /// Redacted excerpt of the response.
    pub response_excerpt: Option<String>,
}
