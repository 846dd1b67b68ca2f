//! Per-connection delivery statistics, one row per process and minute, which health reads.

use crate::domain::{ConnectionId, ConnectionStats, OrganizationId, Timestamp};
use crate::store::StoreResult;
use async_trait::async_trait;

/// Delivery statistics.
#[async_trait]
pub trait Statistics {
    /// Replaces this process's statistics rows (one per connection and minute).
    async fn record_connection_stats(&self, rows: &[ConnectionStats]) -> StoreResult<()>;
    /// Statistics rows of one connection since `since`, from every process.
    async fn connection_stats(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        since: Timestamp,
    ) -> StoreResult<Vec<ConnectionStats>>;
    /// Deletes statistics older than `before`.
    async fn prune_connection_stats(&self, before: Timestamp) -> StoreResult<u64>;
}
