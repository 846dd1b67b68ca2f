//! The master key a store uses, replaceable while the store is open.

use crate::crypto::MasterKey;
use std::sync::{Arc, RwLock};

/// The master key in use, replaceable by a rotation while the store is open.
pub(crate) struct KeyRing(RwLock<Arc<MasterKey>>);

impl KeyRing {
    /// A ring holding `key`.
    pub(crate) fn new(key: MasterKey) -> Self {
        Self(RwLock::new(Arc::new(key)))
    }

    /// The key in use now.
    pub(crate) fn current(&self) -> Arc<MasterKey> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Uses `key` from now on.
    pub(crate) fn replace(&self, key: MasterKey) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
    }
}
