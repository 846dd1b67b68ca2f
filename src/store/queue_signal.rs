//! Wakes workers when queue work is committed, per organization.
//!
//! Every write that queues work bumps its organization's counter; a connection's worker
//! watches its own organization's counter, so a bump between "found nothing" and "wait" is
//! never missed, and one tenant's writes do not send every other tenant's workers to claim
//! nothing (an onboarding wave of a thousand creates a second woke each idle connection of
//! every organization a thousand times a second). The organizations bumped here are also
//! collected for announcing to other processes (PostgreSQL NOTIFY); what other processes
//! announce wakes workers here without being announced again.

use crate::domain::OrganizationId;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use tokio::sync::watch;

/// Queue wake-ups of one process, per organization.
pub struct QueueSignal {
    /// Bumped by every local commit of queue work (the announcer watches it).
    local: watch::Sender<u64>,
    /// One counter per organization that a worker watches.
    orgs: Mutex<HashMap<OrganizationId, watch::Sender<u64>>>,
    /// Organizations with local work not yet announced to other processes.
    unannounced: Mutex<HashSet<OrganizationId>>,
}

impl Default for QueueSignal {
    fn default() -> Self {
        Self {
            local: watch::channel(0).0,
            orgs: Mutex::default(),
            unannounced: Mutex::default(),
        }
    }
}

fn bump(tx: &watch::Sender<u64>) {
    tx.send_modify(|n| *n = n.wrapping_add(1));
}

impl QueueSignal {
    /// This process committed queue work for `org`.
    pub fn bump(&self, org: OrganizationId) {
        self.lock_unannounced().insert(org);
        self.wake(org);
        bump(&self.local);
    }

    /// Another process has queue work for `org`: wake its workers here (not re-announced).
    pub fn wake(&self, org: OrganizationId) {
        if let Some(tx) = self.lock_orgs().get(&org) {
            bump(tx);
        }
    }

    /// Something may have been queued for any organization (another process's notification
    /// named none, or notifications were missed while reconnecting).
    pub fn wake_all(&self) {
        for tx in self.lock_orgs().values() {
            bump(tx);
        }
    }

    /// A receiver that changes whenever `org` may have new work.
    pub fn subscribe_org(&self, org: OrganizationId) -> watch::Receiver<u64> {
        let mut orgs = self.lock_orgs();
        // Forget organizations nobody watches any more (their workers stopped).
        orgs.retain(|_, tx| tx.receiver_count() > 0);
        orgs.entry(org)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// A receiver that changes whenever this process commits queue work (any organization).
    pub fn subscribe_local(&self) -> watch::Receiver<u64> {
        self.local.subscribe()
    }

    /// The organizations with local work since the last call, to announce to other processes.
    pub fn take_unannounced(&self) -> Vec<OrganizationId> {
        self.lock_unannounced().drain().collect()
    }

    fn lock_orgs(&self) -> std::sync::MutexGuard<'_, HashMap<OrganizationId, watch::Sender<u64>>> {
        self.orgs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_unannounced(&self) -> std::sync::MutexGuard<'_, HashSet<OrganizationId>> {
        self.unannounced.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bump_wakes_its_own_organization_only_and_is_announced_once() {
        let s = QueueSignal::default();
        let (a, b) = (OrganizationId::new(), OrganizationId::new());
        let mut ra = s.subscribe_org(a);
        let mut rb = s.subscribe_org(b);
        let mut local = s.subscribe_local();
        s.bump(a);
        assert!(ra.has_changed().unwrap());
        assert!(!rb.has_changed().unwrap());
        assert!(local.has_changed().unwrap());
        ra.borrow_and_update();
        local.borrow_and_update();
        assert_eq!(s.take_unannounced(), vec![a]);
        assert!(s.take_unannounced().is_empty());

        // Another process's work wakes workers here without being announced again.
        s.wake(b);
        assert!(rb.has_changed().unwrap());
        assert!(!ra.has_changed().unwrap());
        assert!(!local.has_changed().unwrap());
        assert!(s.take_unannounced().is_empty());

        rb.borrow_and_update();
        s.wake_all();
        assert!(ra.has_changed().unwrap() && rb.has_changed().unwrap());
    }
}
