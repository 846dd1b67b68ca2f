//! What every reader of a source of truth offers the sync driver: a full read, and, where the
//! source has a change feed, an incremental read from a cursor. The readers are
//! [`super::scim_source`], [`super::keycloak`] and [`super::zitadel`].

use super::scim_client::TargetError;
use crate::domain::{SourceChanges, SourceSnapshot};
use std::collections::{HashMap, HashSet};

/// Why a source could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The server did not answer, refused, or no access token could be had.
    #[error(transparent)]
    Call(#[from] TargetError),
    /// The server answered something that is not what its API promises.
    #[error("{0}")]
    Garbage(String),
}

impl SourceError {
    /// Whether the source refused us for want of a permission (403).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Self::Call(TargetError::Http { status: 403, .. }))
    }
}

/// What an incremental read found.
#[derive(Debug, Clone, PartialEq)]
pub enum Incremental {
    /// The changes since the cursor.
    Changes(SourceChanges),
    /// The source's change feed cannot serve: why, for connection health. The driver runs a
    /// full sync instead.
    Unavailable(String),
}

/// What the store already holds for the source, which an incremental read needs to place what
/// it re-reads: the groups' paths (a deleted group's tree is known only from here) and the
/// users (a group member may be named by userName).
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Each stored group's path, by its external id.
    pub group_paths: HashMap<String, String>,
    /// The external ids of the stored users of the source.
    pub users: HashSet<String>,
    /// The same users' external ids by lower-cased userName.
    pub user_names: HashMap<String, String>,
}

/// A source the sync driver reads.
#[async_trait::async_trait]
pub trait SourceReader: Send + Sync {
    /// Everything the source holds, with the cursor an incremental read starts from next.
    async fn read_all(&self) -> Result<SourceSnapshot, SourceError>;

    /// What changed since `cursor` (a cursor this reader returned before).
    async fn read_changes(&self, cursor: &str, known: &Known) -> Result<Incremental, SourceError>;
}
