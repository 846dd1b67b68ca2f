//! The users and links a claimed batch of user operations needs, read for the whole batch at
//! once before its attempts start (two queries rather than two per operation).

use super::ScimDelivery;
use crate::domain::*;
use crate::store::StoreError;
use std::collections::HashMap;
use std::time::Duration;

/// A user operation's user and link, read for its whole claimed batch at once after the claim.
/// As fresh as reading them in the attempt: a change committed later queues an operation of
/// its own, which cannot run before this one ends, and the resource's previous operation at
/// this target (which wrote the link) was recorded before this one could be claimed.
pub(super) struct Prefetched {
    pub(super) user: Option<User>,
    pub(super) link: Option<TargetLink>,
    pub(super) at: std::time::Instant,
}

/// How long a prefetched entry whose attempt never ran (a shutdown) is kept.
const PREFETCH_KEEP: Duration = Duration::from_secs(60);

impl ScimDelivery {
    /// Reads, in two queries, the users and links that a claimed batch's user operations need.
    pub(super) async fn prefetch(&self, ops: &[Operation]) -> Result<(), StoreError> {
        let users: Vec<&Operation> = ops
            .iter()
            .filter(|o| o.resource_type == ResourceType::User)
            .collect();
        if users.len() < 2 {
            return Ok(());
        }
        let at = std::time::Instant::now();
        let org = self.org();
        let ids: Vec<UserId> = users.iter().map(|o| UserId(o.resource_id)).collect();
        let raw: Vec<uuid::Uuid> = ids.iter().map(|u| u.0).collect();
        let mut found: HashMap<UserId, User> = self
            .store
            .users_by_ids(org, &ids)
            .await?
            .into_iter()
            .map(|u| (u.id, u))
            .collect();
        let mut links: HashMap<uuid::Uuid, TargetLink> = self
            .store
            .target_links_for(org, self.connection.id, ResourceType::User, &raw)
            .await?
            .into_iter()
            .map(|l| (l.local_id, l))
            .collect();
        let mut map = self.prefetched.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, p| p.at.elapsed() < PREFETCH_KEEP);
        for op in users {
            map.insert(
                (op.id, op.attempts),
                Prefetched {
                    user: found.remove(&UserId(op.resource_id)),
                    link: links.remove(&op.resource_id),
                    at,
                },
            );
        }
        Ok(())
    }
}
