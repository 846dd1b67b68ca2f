//! Target links (what each target was last told about each local resource) and the
//! reconciliation runs that compare them with what the targets really hold.

use crate::domain::{
    ConnectionId, OrganizationId, ReconcileRun, Repairs, ResourceType, TargetLink,
};
use crate::store::StoreResult;
use async_trait::async_trait;
use uuid::Uuid;

/// Target links and reconciliation runs.
#[async_trait]
pub trait Links {
    /// Records what a target now holds for a local resource (insert or replace).
    async fn upsert_target_link(&self, link: &TargetLink) -> StoreResult<()>;
    /// What a target holds for a local resource.
    async fn target_link(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        resource_type: ResourceType,
        local_id: Uuid,
    ) -> StoreResult<Option<TargetLink>>;
    /// The links of one target for the given local resources (those that have one).
    async fn target_links_for(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        resource_type: ResourceType,
        local_ids: &[Uuid],
    ) -> StoreResult<Vec<TargetLink>>;
    /// Every link of one target.
    async fn list_target_links(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
    ) -> StoreResult<Vec<TargetLink>>;
    /// Forgets a link. Returns whether it existed.
    async fn delete_target_link(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        resource_type: ResourceType,
        local_id: Uuid,
    ) -> StoreResult<bool>;
    /// Commits a reconciliation's repairs of one target in one transaction: links written and
    /// forgotten, exceptions raised and settled, repairs queued. Returns how many operations
    /// were queued.
    async fn commit_reconcile(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        repairs: &Repairs,
    ) -> StoreResult<usize>;
    /// Records a reconciliation run, audited.
    async fn record_reconcile_run(&self, run: &ReconcileRun) -> StoreResult<()>;
    /// A target's latest runs, newest first.
    async fn reconcile_runs(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        limit: u32,
    ) -> StoreResult<Vec<ReconcileRun>>;
}
