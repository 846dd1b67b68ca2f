//! What a reconciliation decided to repair at one target, for the store to commit together.

use super::{NewException, NewOperation, ResourceType, TargetLink};
use uuid::Uuid;

/// The repairs a reconciliation decided for one page of a target's resources (or for what its
/// walk found missing): committed in one transaction, so a page is repaired entirely or not at
/// all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Repairs {
    /// Links to write: what the target really holds for a resource.
    pub links: Vec<TargetLink>,
    /// Links to forget: (type, local id) of resources gone at the target.
    pub unlink: Vec<(ResourceType, Uuid)>,
    /// Exceptions to raise (unknown resources flagged).
    pub raise: Vec<NewException>,
    /// Open unknown-resource exceptions to resolve, by subject key, with the resolution.
    pub settle: Vec<(String, String)>,
    /// Repairs to queue: updates, creates, removals, and deletions of unknown resources.
    pub operations: Vec<NewOperation>,
}

impl Repairs {
    /// Whether there is nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
            && self.unlink.is_empty()
            && self.raise.is_empty()
            && self.settle.is_empty()
            && self.operations.is_empty()
    }

    /// Adds `other`'s repairs after these.
    pub fn extend(&mut self, other: Repairs) {
        self.links.extend(other.links);
        self.unlink.extend(other.unlink);
        self.raise.extend(other.raise);
        self.settle.extend(other.settle);
        self.operations.extend(other.operations);
    }
}
