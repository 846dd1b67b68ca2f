//! The append-only audit log.

use crate::domain::{Actor, AuditEvent, AuditFilter, OrganizationId};
use crate::store::StoreResult;
use async_trait::async_trait;

/// The audit log. Changes write their own events in their transactions; this records the
/// events that are not part of another change, and reads the log.
#[async_trait]
pub trait Audit {
    /// Records an event that is not part of another change (e.g. an operator command).
    async fn record_audit(
        &self,
        actor: &Actor,
        org: OrganizationId,
        action: &str,
        subject_type: &str,
        subject_id: &str,
        details: serde_json::Value,
    ) -> StoreResult<AuditEvent>;
    /// Audit events, newest first.
    async fn list_audit(
        &self,
        org: OrganizationId,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEvent>>;
}
