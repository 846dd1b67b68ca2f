//! Users: the identities sources give and targets receive.

use super::{ListRange, ScimQuery};
use crate::domain::{Actor, OrganizationId, User, UserDraft, UserId};
use crate::store::StoreResult;
use async_trait::async_trait;

/// An organization's users. A change queues, in its own transaction, what it causes at the
/// organization's targets.
#[async_trait]
pub trait Users {
    /// Creates a user; `userName` must be unique in the organization, ignoring case.
    async fn create_user(
        &self,
        actor: &Actor,
        org: OrganizationId,
        draft: &UserDraft,
    ) -> StoreResult<User>;
    /// One user by id.
    async fn user(&self, org: OrganizationId, id: UserId) -> StoreResult<Option<User>>;
    /// One user by userName (case-insensitive).
    async fn user_by_user_name(
        &self,
        org: OrganizationId,
        user_name: &str,
    ) -> StoreResult<Option<User>>;
    /// Users in creation order.
    async fn list_users(&self, org: OrganizationId, range: ListRange) -> StoreResult<Vec<User>>;
    /// How many users the organization has.
    async fn count_users(&self, org: OrganizationId) -> StoreResult<u64>;
    /// The users with these ids (missing ones are left out).
    async fn users_by_ids(&self, org: OrganizationId, ids: &[UserId]) -> StoreResult<Vec<User>>;
    /// Users in id order after `after` (keyset paging for full passes).
    async fn users_after(
        &self,
        org: OrganizationId,
        after: Option<UserId>,
        limit: u32,
    ) -> StoreResult<Vec<User>>;
    /// Users matching a SCIM query, and how many match in all. Deprovisioned users are not
    /// listed: to SCIM clients they no longer exist.
    async fn scim_list_users(
        &self,
        org: OrganizationId,
        query: &ScimQuery,
    ) -> StoreResult<(Vec<User>, u64)>;
    /// Replaces a user's content; with `if_version`, only if the stored version matches.
    async fn replace_user(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: UserId,
        draft: &UserDraft,
        if_version: Option<i64>,
    ) -> StoreResult<User>;
    /// Marks a user deprovisioned (kept for the audit trail and for off-boarding at targets,
    /// `active=false`, memberships removed). Returns whether an active or suspended user existed.
    async fn deprovision_user(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: UserId,
    ) -> StoreResult<bool>;
    /// Deletes a user (and their memberships). Returns whether it existed.
    async fn delete_user(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: UserId,
    ) -> StoreResult<bool>;
}
