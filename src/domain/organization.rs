//! Organizations: the tenants that scope every other record.

use super::{OrganizationId, Timestamp};
use serde::Serialize;

/// A tenant. Its data key (for connection secrets) is kept by the store, wrapped, never here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Organization {
    /// Stable identifier.
    pub id: OrganizationId,
    /// Unique display name, e.g. "Riverside Health".
    pub name: String,
    /// When it was created.
    pub created_at: Timestamp,
}
