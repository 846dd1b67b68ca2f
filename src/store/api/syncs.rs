//! Source syncs: a sync's changes applied in batches, each in one transaction with what the
//! changes cause at targets and with the source's cursor, and the record of every run.

use crate::domain::{Actor, ConnectionId, OrganizationId, SyncBatch, SyncRun, Timestamp};
use crate::store::StoreResult;
use async_trait::async_trait;

/// What a source sync writes.
#[async_trait]
pub trait Syncs {
    /// Applies one batch of a sync of `source` in one transaction: its user and group writes
    /// (each with its operations at targets and its audit event, as if pushed) and, when the
    /// batch carries one, the source's cursor. A failed batch leaves nothing behind.
    async fn apply_sync_batch(
        &self,
        actor: &Actor,
        org: OrganizationId,
        source: ConnectionId,
        batch: &SyncBatch,
    ) -> StoreResult<()>;
    /// Takes the source's sync for `owner` until `until`, unless another owner holds it and
    /// its claim has not expired: one sync per source at a time, across every process that
    /// shares the store. Returns whether it was taken.
    async fn claim_sync(
        &self,
        org: OrganizationId,
        source: ConnectionId,
        owner: uuid::Uuid,
        until: Timestamp,
    ) -> StoreResult<bool>;
    /// Gives the claim back (if `owner` still holds it).
    async fn release_sync(
        &self,
        org: OrganizationId,
        source: ConnectionId,
        owner: uuid::Uuid,
    ) -> StoreResult<()>;
    /// Where the source's next incremental sync starts.
    async fn sync_cursor(
        &self,
        org: OrganizationId,
        source: ConnectionId,
    ) -> StoreResult<Option<String>>;
    /// Records a finished (or stopped) sync run, and audits it.
    async fn record_sync_run(&self, run: &SyncRun) -> StoreResult<()>;
    /// The latest runs of a source, newest first.
    async fn sync_runs(
        &self,
        org: OrganizationId,
        source: ConnectionId,
        limit: u32,
    ) -> StoreResult<Vec<SyncRun>>;
}
