//! Logins from SAML sources: what a login is planned against, the login written in one
//! transaction with its replay check, and the replay cache's upkeep.

use crate::domain::{Actor, ConnectionId, GroupId, LoginBatch, LoginView, OrganizationId};
use crate::domain::{SyncRun, Timestamp};
use crate::store::StoreResult;
use async_trait::async_trait;

/// What a login's write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginApplied {
    /// Written: the user, their memberships, the record; with the groups it had to create.
    Written {
        /// Groups of the source seen for the first time.
        groups_created: u64,
    },
    /// Nothing written: the assertion's ID was accepted before for this source.
    Replayed,
}

/// Just-in-time logins of a source whose assertions arrive as people sign in.
#[async_trait]
pub trait Logins {
    /// The users a login may be (this source's user whose external id is `external_id`, the
    /// user named `user_name`) and the groups of `source` the first of them is named in, and
    /// which of the asserted `groups` (external ids) the source already has.
    async fn login_view(
        &self,
        org: OrganizationId,
        source: ConnectionId,
        external_id: &str,
        user_name: &str,
        groups: &[String],
    ) -> StoreResult<(LoginView, Vec<(GroupId, String)>)>;
    /// Writes one login in one transaction: the assertion's ID into the replay cache (a
    /// replay writes nothing), the user, the groups to create, the memberships to add and
    /// remove (each with what it causes at targets, as if pushed), and the login's record
    /// with its audit event.
    async fn apply_login(
        &self,
        actor: &Actor,
        org: OrganizationId,
        source: ConnectionId,
        login: &LoginBatch,
    ) -> StoreResult<LoginApplied>;
    /// Records a refused login (a sync run with its reason) and audits it.
    async fn record_refused_login(&self, run: &SyncRun) -> StoreResult<()>;
    /// Forgets accepted assertion IDs whose assertions expired before `now` (they would be
    /// refused as expired anyway). Returns how many.
    async fn forget_expired_assertions(&self, now: Timestamp) -> StoreResult<u64>;
}
