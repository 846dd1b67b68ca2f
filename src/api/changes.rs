//! The narrow interface through which surfaces tell the provisioning engine (and live views)
//! that a resource changed. Published after the change's transaction has committed.

use crate::domain::{OrganizationId, ResourceType};
use tokio::sync::broadcast;
use uuid::Uuid;

/// What happened to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// It was created.
    Created,
    /// Its content or memberships changed.
    Updated,
    /// It was removed.
    Deleted,
}

/// One committed change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The tenant.
    pub organization_id: OrganizationId,
    /// User or group.
    pub resource_type: ResourceType,
    /// The local id.
    pub id: Uuid,
    /// What happened.
    pub kind: ChangeKind,
}

/// A broadcast of committed changes; cheap to clone, every subscriber sees every change after it
/// subscribed. A slow subscriber loses the oldest changes (and is told so by the channel), which
/// is safe because the engine reconciles from the store, not from this feed.
#[derive(Debug, Clone)]
pub struct ChangeFeed(broadcast::Sender<Change>);

impl ChangeFeed {
    /// A feed that buffers up to `capacity` changes per subscriber.
    pub fn new(capacity: usize) -> Self {
        Self(broadcast::channel(capacity.max(1)).0)
    }

    /// Publishes a change (no subscriber is fine).
    pub fn publish(&self, change: Change) {
        let _ = self.0.send(change);
    }

    /// Receives changes published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.0.subscribe()
    }
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self::new(4096)
    }
}
