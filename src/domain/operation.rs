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

/// An operation as stored: unfinished ones in the queue, finished ones in the history.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Operation {
    /// Stable identifier (time-ordered).
    pub id: OperationId,
    /// Position in the queue; operations of one resource at one target run in this order
    /// (0 once finished).
    pub seq: i64,
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
    /// Current state (`in_flight` while a worker holds an unexpired lease).
    #[sqlx(try_from = "String")]
    pub state: OperationState,
    /// Attempts started so far (a claim counts, so a crash mid-attempt is remembered).
    pub attempts: i32,
    /// `attempts` when an operator last retried it: the attempt budget counts from here.
    pub budget_from: i32,
    /// Not to be attempted before this time (for finished operations: when they finished).
    pub not_before: Timestamp,
    /// Until when a worker holds it.
    pub lease_until: Option<Timestamp>,
    /// The HTTP status of the last attempt, if a response arrived.
    pub last_status: Option<i32>,
    /// The last error, for people.
    pub last_error: Option<String>,
    /// Why an operator skipped it.
    pub note: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl Operation {
    /// Shows a leased operation as `in_flight` (the queue does not store that state: a claim
    /// only writes the lease, see docs/operations.md).
    pub fn with_effective_state(mut self, now: Timestamp) -> Self {
        if matches!(
            self.state,
            OperationState::Pending | OperationState::RetryWait
        ) && self.lease_until.is_some_and(|l| l > now)
        {
            self.state = OperationState::InFlight;
        }
        self
    }

    /// For the deletion of a resource at the target that nothing here knows (queued by a
    /// reconciliation): its id there.
    pub fn unknown_remote_id(&self) -> Option<&str> {
        self.payload.0.get(UNKNOWN_REMOTE_ID)?.as_str()
    }
}

/// The payload key that names the target's id of a resource nothing here knows.
const UNKNOWN_REMOTE_ID: &str = "unknown_remote_id";

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

impl NewOperation {
    /// Deletes, at `connection`, the resource `remote_id` that nothing here knows (found by a
    /// reconciliation whose policy is to remove such resources). Like every repair it is
    /// queued, so it has attempts, retries and a place in the failed inbox. Its resource id is
    /// derived from the connection and the target's id, so two reconciliations that find the
    /// same resource queue the deletion for the same resource, one after the other.
    pub fn delete_unknown(
        connection: ConnectionId,
        resource_type: ResourceType,
        remote_id: &str,
        subject: &str,
    ) -> Self {
        use sha2::{Digest as _, Sha256};
        let digest = Sha256::new()
            .chain_update(connection.0.as_bytes())
            .chain_update(resource_type.as_str())
            .chain_update([0])
            .chain_update(remote_id)
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self {
            connection_id: connection,
            resource_type,
            resource_id: uuid::Builder::from_custom_bytes(bytes).into_uuid(),
            action: OperationAction::Delete,
            payload: serde_json::json!({ UNKNOWN_REMOTE_ID: remote_id, "subject": subject, "reconcile": true }),
        }
    }
}

/// One try of an operation against its target.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Attempt {
    /// The operation.
    pub operation_id: OperationId,
    /// 1 for the first try.
    pub attempt_no: i32,
    /// The owning tenant.
    pub organization_id: OrganizationId,
    /// The target connection.
    pub connection_id: ConnectionId,
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

/// How an attempt ended, as the queue records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    /// Done; the target link is now `link` (or, with `None`, forgotten: the resource is gone).
    Succeeded {
        /// What the target holds now.
        link: Option<LinkUpdate>,
    },
    /// Try again at `not_before` (back-off, `Retry-After`, or a dependency not yet delivered).
    RetryAt {
        /// The next eligible time.
        not_before: Timestamp,
    },
    /// Nothing failed, but it must wait (for another resource, or a grace period): due again
    /// at `not_before`, without using an attempt.
    WaitUntil {
        /// When to look again.
        not_before: Timestamp,
        /// Why, for people.
        reason: String,
    },
    /// Retrying cannot fix it: wait for an operator.
    Failed,
    /// Give the lease back untouched (graceful shutdown before the request was sent).
    Released,
}

/// The new state of a target link after a successful attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkUpdate {
    /// Record what the target now holds.
    Set {
        /// The id the target assigned.
        remote_id: String,
        /// The target's version, if it gives one.
        remote_etag: Option<String>,
        /// Hash of the representation sent.
        content_hash: String,
        /// The representation sent (for a later PATCH of only what changed).
        last_sent: Option<serde_json::Value>,
    },
    /// The resource no longer exists at the target.
    Remove,
    /// Leave the link as it is.
    Keep,
}

/// The result of one attempt, handed to the queue by the worker that held the lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The operation (as claimed).
    pub operation: Operation,
    /// The worker's lease id.
    pub lease_owner: Uuid,
    /// The attempt to record (`None` when nothing was tried, e.g. [`Disposition::Released`]).
    pub attempt: Option<Attempt>,
    /// What happens to the operation.
    pub disposition: Disposition,
}

/// Counts of unfinished work at one target, for health and the queue view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct QueueCounts {
    /// Waiting for a worker (due now or later).
    pub pending: u64,
    /// Leased by a worker.
    pub in_flight: u64,
    /// Waiting for a retry.
    pub retry_wait: u64,
    /// Waiting for an operator.
    pub failed: u64,
    /// Creation time of the oldest unfinished, not failed operation.
    pub oldest_pending: Option<Timestamp>,
}
