//! Settling exceptions: dismissed, mapped (a guarded mapping change), or linked to the
//! target's resource and retried.

use super::mappings::{ensure_role, set_mapping};
use super::{Guard, MappingChange, PolicyError, retry};
use crate::domain::*;
use crate::store::{Store, StoreError};

/// How an operator settles an exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Set it aside, with why.
    Dismiss(String),
    /// An unmapped group: map it (by its display name, from its source) to this role.
    MapTo(String),
    /// A conflict: link the local resource to this resource at the target, then retry.
    Link(String),
    /// A sync the deletion guard stopped: run it again past the guard.
    ApplySync,
}

/// Settles an exception, audited. Mapping an unmapped group is a mapping change (previewed,
/// guarded, and provisioning the group's members).
pub async fn resolve_exception(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    id: ExceptionId,
    resolution: &Resolution,
    guard: &Guard,
    force: bool,
) -> Result<PolicyException, PolicyError> {
    let ex = store
        .exception(org, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("exception {id}")))?;
    if ex.state != ExceptionState::Open {
        return Err(StoreError::Conflict(format!("exception {id} is already {}", ex.state)).into());
    }
    let settled = match resolution {
        Resolution::Dismiss(reason) => {
            store
                .settle_exception(actor, org, id, ExceptionState::Dismissed, reason)
                .await?
        }
        Resolution::MapTo(role) => {
            if ex.kind != ExceptionKind::UnmappedGroup {
                return Err(PolicyError::Invalid(format!(
                    "only unmapped-group exceptions are resolved with a mapping; this is a {}",
                    ex.kind
                )));
            }
            let group_id: GroupId = ex.details.0["group_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| PolicyError::Invalid("the exception names no group".into()))?;
            let group = store
                .group(org, group_id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("group {group_id}")))?;
            let role = ensure_role(store, actor, org, role).await?;
            let change = MappingChange::Set {
                id: None,
                draft: RoleMappingDraft {
                    source_connection_id: group.source_connection_id,
                    ..RoleMappingDraft::by_display_name(group.display_name.clone(), false, role.id)
                },
            };
            set_mapping(store, actor, org, &change, guard, force).await?;
            match store.exception(org, id).await? {
                Some(e) if e.state != ExceptionState::Open => e,
                _ => {
                    store
                        .settle_exception(
                            actor,
                            org,
                            id,
                            ExceptionState::Resolved,
                            &format!("mapped to role {}", role.name),
                        )
                        .await?
                }
            }
        }
        Resolution::ApplySync => {
            let (ExceptionKind::SyncGuard, Some(conn)) = (ex.kind, ex.connection_id) else {
                return Err(PolicyError::Invalid(format!(
                    "only a sync the deletion guard stopped is applied; this is a {}",
                    ex.kind
                )));
            };
            let options = crate::engine::sync::SyncOptions {
                full: true,
                force: true,
                ..Default::default()
            };
            let report = crate::engine::sync::sync_source(store, actor, org, conn, options)
                .await
                .map_err(|e| match e {
                    crate::engine::sync::SyncError::Store(s) => PolicyError::Store(s),
                    other => PolicyError::Invalid(other.to_string()),
                })?;
            if let Some(error) = report.run.error {
                return Err(PolicyError::Invalid(format!(
                    "the sync stopped, so the exception stays open: {error}"
                )));
            }
            match store.exception(org, id).await? {
                Some(e) => e,
                None => return Err(StoreError::NotFound(format!("exception {id}")).into()),
            }
        }
        Resolution::Link(remote_id) => {
            if ex.kind != ExceptionKind::Conflict {
                return Err(PolicyError::Invalid(format!(
                    "only conflicts are resolved by linking; this is a {}",
                    ex.kind
                )));
            }
            let d = &ex.details.0;
            let (Some(conn), Some(rt), Some(local)) = (
                ex.connection_id,
                d["resource_type"]
                    .as_str()
                    .and_then(|s| ResourceType::try_from(s.to_string()).ok()),
                d["resource_id"].as_str().and_then(|s| s.parse().ok()),
            ) else {
                return Err(PolicyError::Invalid(
                    "the exception does not say which resource it is about".into(),
                ));
            };
            store
                .upsert_target_link(&TargetLink {
                    organization_id: org,
                    connection_id: conn,
                    resource_type: rt,
                    local_id: local,
                    remote_id: remote_id.clone(),
                    remote_etag: None,
                    content_hash: String::new(),
                    synced_at: Timestamp::now(),
                    last_sent: None,
                })
                .await?;
            let settled = store
                .settle_exception(
                    actor,
                    org,
                    id,
                    ExceptionState::Resolved,
                    &format!("linked to {remote_id} at the target"),
                )
                .await?;
            if let Some(op) = d["operation_id"].as_str().and_then(|s| s.parse().ok())
                && store
                    .operation(org, op)
                    .await?
                    .is_some_and(|o| o.state == OperationState::Failed)
            {
                retry(store, actor, org, op).await?;
            }
            settled
        }
    };
    Ok(settled)
}
