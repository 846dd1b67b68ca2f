//! The durable operation queue and its history (docs/operations.md).

use crate::domain::{
    Actor, Attempt, ConnectionId, NewOperation, Operation, OperationAction, OperationId,
    OperationState, OrganizationId, Outcome, QueueCounts, Timestamp,
};
use crate::store::StoreResult;
use async_trait::async_trait;
use uuid::Uuid;

/// Narrows an operation listing. Unfinished states read the queue, `succeeded` and `skipped`
/// the history; without a state, the queue (all unfinished work) is listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationFilter {
    /// Only this target.
    pub connection_id: Option<ConnectionId>,
    /// Only this state.
    pub state: Option<OperationState>,
    /// Only this action.
    pub action: Option<OperationAction>,
    /// Only operations on this local user or group.
    pub resource_id: Option<Uuid>,
    /// Rows to pass over.
    pub offset: u64,
    /// At most this many, in queue order (history: most recently finished first).
    pub limit: u32,
}

/// Queued operations: what changes enqueue, workers claim and complete, and operators retry
/// or skip.
#[async_trait]
pub trait Queue {
    /// Enqueues operations in one transaction; a waiting, unattempted create or update of the
    /// same resource at the same target absorbs a new update. Returns how many were added.
    async fn enqueue_operations(
        &self,
        org: OrganizationId,
        ops: &[NewOperation],
    ) -> StoreResult<usize>;
    /// Enqueues an operation in state `pending` (changes enqueue their own operations; this is
    /// for tools and tests).
    async fn enqueue_operation(
        &self,
        org: OrganizationId,
        new: &NewOperation,
    ) -> StoreResult<Operation>;
    /// One operation by id, unfinished or finished.
    async fn operation(
        &self,
        org: OrganizationId,
        id: OperationId,
    ) -> StoreResult<Option<Operation>>;
    /// Operations matching a filter (see [`OperationFilter`]).
    async fn list_operations(
        &self,
        org: OrganizationId,
        filter: &OperationFilter,
    ) -> StoreResult<Vec<Operation>>;
    /// A page of operations matching `filter` (its offset and limit ignored), newest first:
    /// those with ids before `before` (the last id of the previous page), at most `limit`.
    /// Unfinished and finished operations together, unless the filter's state picks one. The
    /// pages stay as they were while operations are added (new ones come before the first).
    async fn operations_page(
        &self,
        org: OrganizationId,
        filter: &OperationFilter,
        before: Option<OperationId>,
        limit: u32,
    ) -> StoreResult<Vec<Operation>>;
    /// How many operations match `filter` (its offset and limit ignored).
    async fn count_operations(
        &self,
        org: OrganizationId,
        filter: &OperationFilter,
    ) -> StoreResult<u64>;
    /// The attempts of one operation, in order.
    async fn operation_attempts(
        &self,
        org: OrganizationId,
        id: OperationId,
    ) -> StoreResult<Vec<Attempt>>;
    /// Counts of unfinished work at one target.
    async fn queue_counts(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
    ) -> StoreResult<QueueCounts>;
    /// Leases up to `limit` due operations of one target to `owner` until `lease` from now:
    /// only the oldest unfinished operation of each resource is eligible, so operations on one
    /// resource run strictly in order. Each claim counts as an attempt started. Only
    /// operations at or after `from` (due time, sequence) in queue order are looked at: a
    /// worker passes where its last claim started, so claims do not walk over the finished
    /// rows that vacuum has not yet removed, and passes `None` now and then to look at
    /// everything.
    async fn claim_operations(
        &self,
        connection: ConnectionId,
        owner: Uuid,
        lease: std::time::Duration,
        limit: u32,
        from: Option<(Timestamp, i64)>,
    ) -> StoreResult<Vec<Operation>>;
    /// Records the outcomes of attempts in one transaction: attempts, state changes, finished
    /// work moved to the history, target links. An outcome whose lease `owner` no longer holds
    /// (it expired and another worker took it) is ignored. Returns how many were applied.
    async fn complete_operations(&self, outcomes: &[Outcome]) -> StoreResult<u64>;
    /// Gives back every lease `owner` holds (graceful shutdown). Returns how many.
    async fn release_leases(&self, owner: Uuid) -> StoreResult<u64>;
    /// Extends to `lease` from now the leases `owner` still holds on `ids` (attempts still
    /// running), so a slow attempt is not claimed a second time while it runs. Returns how
    /// many were extended.
    async fn renew_leases(
        &self,
        owner: Uuid,
        ids: &[OperationId],
        lease: std::time::Duration,
    ) -> StoreResult<u64>;
    /// Which of `resource_ids` have work at a target that will finish by itself: queued and
    /// not held up by a failed operation, which waits for an operator (a group's members are
    /// waited for while theirs is in progress, and left out while it is stuck). One query per
    /// 500 ids.
    async fn resources_in_progress(
        &self,
        connection: ConnectionId,
        resource_ids: &[Uuid],
    ) -> StoreResult<Vec<Uuid>>;
    /// Puts failed (and waiting) operations back to `pending`, due now, with a fresh attempt
    /// budget: one operation (`id`), or every one matching `filter`. The groups of the users
    /// retried are queued again at those targets (policy's fan-out). Audited. Returns how many.
    async fn retry_operations(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: Option<OperationId>,
        filter: &OperationFilter,
    ) -> StoreResult<u64>;
    /// Sets an unfinished, unleased operation aside with a reason. Audited.
    async fn skip_operation(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: OperationId,
        reason: &str,
    ) -> StoreResult<Operation>;
    /// Deletes finished operations (and their attempts) that finished before `before`, at most
    /// `batch` of them. Returns how many were deleted.
    async fn prune_history(&self, before: Timestamp, batch: u32) -> StoreResult<u64>;
}
