//! Organizations: the tenants everything else belongs to.

use crate::domain::{Actor, Organization, OrganizationId};
use crate::store::StoreResult;
use async_trait::async_trait;

/// Organizations, each with its own data key.
#[async_trait]
pub trait Tenants {
    /// Creates an organization with a fresh data key wrapped by the current master key.
    async fn create_organization(&self, actor: &Actor, name: &str) -> StoreResult<Organization>;
    /// One organization by id.
    async fn organization(&self, id: OrganizationId) -> StoreResult<Option<Organization>>;
    /// One organization by name (case-insensitive).
    async fn organization_by_name(&self, name: &str) -> StoreResult<Option<Organization>>;
    /// Every organization (an operator-wide view), by name.
    async fn list_organizations(&self) -> StoreResult<Vec<Organization>>;
    /// Renames an organization.
    async fn rename_organization(
        &self,
        actor: &Actor,
        id: OrganizationId,
        name: &str,
    ) -> StoreResult<Organization>;
}
