//! Groups and their memberships, which decide users' roles.

use super::{ListRange, ScimQuery};
use crate::domain::{Actor, Group, GroupDraft, GroupId, OrganizationId, UserId};
use crate::store::StoreResult;
use async_trait::async_trait;

/// A group member as a SCIM `members` value shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MemberRef {
    /// The user.
    pub user_id: UserId,
    /// Their userName.
    pub user_name: String,
    /// Their display name, if set.
    pub display_name: Option<String>,
}

/// A group inside another, as a SCIM `members` value shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChildGroupRef {
    /// The group inside.
    pub group_id: GroupId,
    /// Its display name.
    pub display_name: String,
}

/// A group a user is in, and whether they were named as its member (`direct`) or are there
/// through a group inside it (RFC 7643 §4.1.2 `groups.type`: direct or indirect).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UserGroup {
    /// The group.
    #[sqlx(flatten)]
    pub group: Group,
    /// Named as a member of the group itself.
    pub direct: bool,
}

/// An organization's groups and memberships. A change queues, in its own transaction, what
/// policy's fan-out says it causes at the organization's targets.
#[async_trait]
pub trait Groups {
    /// Creates a group.
    async fn create_group(
        &self,
        actor: &Actor,
        org: OrganizationId,
        draft: &GroupDraft,
    ) -> StoreResult<Group>;
    /// One group by id.
    async fn group(&self, org: OrganizationId, id: GroupId) -> StoreResult<Option<Group>>;
    /// Groups in creation order.
    async fn list_groups(&self, org: OrganizationId, range: ListRange) -> StoreResult<Vec<Group>>;
    /// Groups matching a SCIM query, and how many match in all.
    async fn scim_list_groups(
        &self,
        org: OrganizationId,
        query: &ScimQuery,
    ) -> StoreResult<(Vec<Group>, u64)>;
    /// Replaces a group's content; with `if_version`, only if the stored version matches.
    async fn replace_group(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: GroupId,
        draft: &GroupDraft,
        if_version: Option<i64>,
    ) -> StoreResult<Group>;
    /// Deletes a group (and its memberships). Returns whether it existed.
    async fn delete_group(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: GroupId,
    ) -> StoreResult<bool>;
    /// Adds a user to a group of the same organization. Returns false if already a member.
    async fn add_member(
        &self,
        actor: &Actor,
        org: OrganizationId,
        group: GroupId,
        user: UserId,
    ) -> StoreResult<bool>;
    /// Removes a user from a group. Returns whether they were a member.
    async fn remove_member(
        &self,
        actor: &Actor,
        org: OrganizationId,
        group: GroupId,
        user: UserId,
    ) -> StoreResult<bool>;
    /// A group's effective members: those named directly and, flattened, the users of every
    /// group inside it.
    async fn group_members(&self, org: OrganizationId, group: GroupId) -> StoreResult<Vec<UserId>>;
    /// The groups a user is in, directly or through a group inside them.
    async fn user_groups(&self, org: OrganizationId, user: UserId) -> StoreResult<Vec<Group>>;
    /// The groups a user is in, each saying whether directly, for SCIM `groups`.
    async fn user_group_refs(
        &self,
        org: OrganizationId,
        user: UserId,
    ) -> StoreResult<Vec<UserGroup>>;
    /// The groups directly inside a group, for SCIM `members` of `type: "Group"`.
    async fn group_child_refs(
        &self,
        org: OrganizationId,
        group: GroupId,
    ) -> StoreResult<Vec<ChildGroupRef>>;
    /// Which of `ids` are groups of the organization: tells apart the members a client
    /// named without a `type`.
    async fn groups_among(
        &self,
        org: OrganizationId,
        ids: &[uuid::Uuid],
    ) -> StoreResult<std::collections::HashSet<uuid::Uuid>>;
    /// The users named as members of a group itself, with their names, for SCIM `members`.
    async fn group_member_refs(
        &self,
        org: OrganizationId,
        group: GroupId,
    ) -> StoreResult<Vec<MemberRef>>;
    /// Every (group, user) membership of an organization.
    async fn organization_memberships(
        &self,
        org: OrganizationId,
    ) -> StoreResult<Vec<(GroupId, UserId)>>;
    /// The (group, user) memberships of these groups.
    async fn memberships_of_groups(
        &self,
        org: OrganizationId,
        groups: &[GroupId],
    ) -> StoreResult<Vec<(GroupId, UserId)>>;
}
