//! The leases a worker holds, kept renewed while their attempts run.
//!
//! A lease is how a crashed worker's work comes back: it expires and another claim takes the
//! operation. But an attempt may outlive it while its process is healthy (a target that
//! answers slowly, a `Retry-After` that holds requests already under way, a loaded machine),
//! and an expired lease lets a second attempt of the same operation start beside the first:
//! a create then reaches the target twice (the second meets 409 and links, but it is work done
//! twice). So a worker renews, every third of the lease, the leases of the operations whose
//! outcome it has not recorded yet; a crashed process renews nothing, and its leases expire
//! as before.

use crate::domain::{Operation, OperationId};
use crate::store::Store;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// The operations a worker has claimed and not yet recorded an outcome for.
#[derive(Debug, Default)]
pub(crate) struct HeldLeases {
    ids: Mutex<HashSet<OperationId>>,
}

impl HeldLeases {
    /// Claimed: held until [`let_go`](Self::let_go).
    pub fn hold(&self, ops: &[Operation]) {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.extend(ops.iter().map(|o| o.id));
    }

    /// Outcome recorded (or given up): no longer renewed.
    pub fn let_go(&self, done: impl IntoIterator<Item = OperationId>) {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        for id in done {
            ids.remove(&id);
        }
    }

    /// What is held now.
    pub fn held(&self) -> Vec<OperationId> {
        let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.iter().copied().collect()
    }
}

/// How often held leases are renewed: a third of the lease, so two renewals can fail (the
/// store briefly unreachable) before one expires.
pub(crate) fn renewal_interval(lease: Duration) -> Duration {
    (lease / 3).max(Duration::from_millis(50))
}

/// Renews `owner`'s held leases every [`renewal_interval`], for as long as the worker runs
/// (it aborts this task when it stops, just before it gives its leases back).
pub(crate) async fn keep_renewed(
    store: Arc<dyn Store>,
    owner: Uuid,
    held: Arc<HeldLeases>,
    lease: Duration,
) {
    let every = renewal_interval(lease);
    loop {
        tokio::time::sleep(every).await;
        let ids = held.held();
        if ids.is_empty() {
            continue;
        }
        if let Err(e) = store.renew_leases(owner, &ids, lease).await {
            tracing::warn!("could not renew {} leases (retrying): {e}", ids.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_come_three_times_per_lease_and_never_in_a_busy_loop() {
        assert_eq!(
            renewal_interval(Duration::from_secs(60)),
            Duration::from_secs(20)
        );
        assert_eq!(
            renewal_interval(Duration::from_millis(30)),
            Duration::from_millis(50)
        );
    }

    #[test]
    fn held_until_let_go() {
        let held = HeldLeases::default();
        let (a, b) = (OperationId::new(), OperationId::new());
        held.ids.lock().unwrap().extend([a, b]);
        held.let_go([a]);
        assert_eq!(held.held(), vec![b]);
        held.let_go([b, a]);
        assert!(held.held().is_empty());
    }
}
