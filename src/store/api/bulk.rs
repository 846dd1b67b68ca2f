//! Loading rows in bulk, for benchmarks only: not part of [`Store`](super::Store), so no
//! production path can bypass the change path (which queues work and audits it).

use super::Store;
use crate::domain::{ConnectionId, Group, GroupId, OrganizationId, TargetLink, User, UserId};
use crate::store::StoreResult;
use async_trait::async_trait;

/// Rows a benchmark loads at once, bypassing the change path (no operations, no audit).
#[derive(Debug, Clone, Copy, Default)]
pub struct BulkRows<'a> {
    /// Users, as they are to be stored.
    pub users: &'a [User],
    /// Groups, as they are to be stored.
    pub groups: &'a [Group],
    /// Memberships.
    pub memberships: &'a [(GroupId, UserId)],
    /// Target links.
    pub links: &'a [TargetLink],
}

/// Bulk loading, which `scimdesk bench` needs to set up large stores fast.
#[async_trait]
pub trait BulkLoad {
    /// Queues `count` updates, each for a resource of its own, in one statement (`bench
    /// drain` needs a large queue fast).
    async fn bulk_enqueue(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
        count: u64,
    ) -> StoreResult<u64>;
    /// Loads a directory of users, groups, memberships and links in bulk (nothing is queued
    /// or audited).
    async fn bulk_load(&self, org: OrganizationId, rows: &BulkRows<'_>) -> StoreResult<()>;
}

/// A store that can also be loaded in bulk (what the benchmarks open).
pub trait LoadableStore: Store + BulkLoad {}

impl<T: Store + BulkLoad> LoadableStore for T {}
