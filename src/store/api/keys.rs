//! The organizations' data keys under the master key.

use crate::crypto::MasterKey;
use crate::domain::Actor;
use crate::store::StoreResult;
use async_trait::async_trait;

/// Master-key bookkeeping.
#[async_trait]
pub trait Keys {
    /// The ids of master keys that wrap data keys in this database.
    async fn master_key_ids(&self) -> StoreResult<Vec<String>>;
    /// Re-wraps every organization's data key under `new` in one transaction, audits it per
    /// organization, then uses `new` from here on. Returns how many organizations.
    async fn rotate_master_key(&self, actor: &Actor, new: MasterKey) -> StoreResult<u64>;
}
