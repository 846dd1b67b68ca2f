//! Local roles and the group-to-role mappings that grant them.

use crate::domain::{
    Actor, MappingCommit, OrganizationId, Role, RoleId, RoleMapping, RoleMappingDraft,
    RoleMappingId,
};
use crate::store::StoreResult;
use async_trait::async_trait;

/// An organization's roles and mappings.
#[async_trait]
pub trait Mappings {
    /// Creates a role.
    async fn create_role(
        &self,
        actor: &Actor,
        org: OrganizationId,
        name: &str,
        description: &str,
    ) -> StoreResult<Role>;
    /// One role by id.
    async fn role(&self, org: OrganizationId, id: RoleId) -> StoreResult<Option<Role>>;
    /// An organization's roles, by name.
    async fn list_roles(&self, org: OrganizationId) -> StoreResult<Vec<Role>>;
    /// Renames or re-describes a role.
    async fn update_role(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: RoleId,
        name: &str,
        description: &str,
    ) -> StoreResult<Role>;
    /// Deletes a role and the mappings that grant it. Returns whether it existed.
    async fn delete_role(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: RoleId,
    ) -> StoreResult<bool>;
    /// Creates a group-to-role mapping (no work is queued: see [`Self::commit_mapping_change`]).
    async fn create_role_mapping(
        &self,
        actor: &Actor,
        org: OrganizationId,
        draft: &RoleMappingDraft,
    ) -> StoreResult<RoleMapping>;
    /// One mapping by id.
    async fn role_mapping(
        &self,
        org: OrganizationId,
        id: RoleMappingId,
    ) -> StoreResult<Option<RoleMapping>>;
    /// An organization's mappings, oldest first.
    async fn list_role_mappings(&self, org: OrganizationId) -> StoreResult<Vec<RoleMapping>>;
    /// Replaces a mapping's content.
    async fn replace_role_mapping(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: RoleMappingId,
        draft: &RoleMappingDraft,
    ) -> StoreResult<RoleMapping>;
    /// Deletes a mapping. Returns whether it existed.
    async fn delete_role_mapping(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: RoleMappingId,
    ) -> StoreResult<bool>;
    /// Commits a mapping change with the work it causes, in one transaction, audited. Returns
    /// the mapping written (`None` for a delete). Surfaces call `engine::commands`, which
    /// computes the work; the plain mapping methods above commit no work.
    async fn commit_mapping_change(
        &self,
        actor: &Actor,
        org: OrganizationId,
        commit: &MappingCommit,
    ) -> StoreResult<Option<RoleMapping>>;
}
