//! The audit log: events appended on the caller's transaction, and the log read back.

use super::{Conn, ThisStore};
use crate::domain::{
    Actor, AuditEvent, AuditEventId, AuditFilter, Json, OrganizationId, Timestamp,
};
use crate::store::api::Audit;
use crate::store::{StoreError, StoreResult};

/// Appends an audit event on the caller's transaction, so a change and its event commit
/// together.
pub(super) async fn append(
    conn: &mut Conn,
    actor: &Actor,
    org: OrganizationId,
    action: &str,
    subject_type: &str,
    subject_id: &str,
    details: serde_json::Value,
) -> StoreResult<AuditEvent> {
    // Built here rather than read back with RETURNING: one less row to decode on every write.
    let event = AuditEvent {
        id: AuditEventId::new(),
        organization_id: org,
        occurred_at: Timestamp::now(),
        actor_kind: actor.kind,
        actor: actor.name.clone(),
        action: action.to_string(),
        subject_type: subject_type.to_string(),
        subject_id: subject_id.to_string(),
        details: Json(details),
    };
    let written = sqlx::query(concat!(
        "INSERT INTO audit_events (",
        audit_cols!(),
        ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9",
        " WHERE EXISTS (SELECT 1 FROM organizations WHERE id = $2)"
    ))
    .bind(event.id)
    .bind(event.organization_id)
    .bind(event.occurred_at)
    .bind(event.actor_kind.as_str())
    .bind(&event.actor)
    .bind(&event.action)
    .bind(&event.subject_type)
    .bind(&event.subject_id)
    .bind(&event.details)
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::from_sqlx(e, || "organization".into()))?;
    if written.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("organization {org}")));
    }
    Ok(event)
}

#[async_trait::async_trait]
impl Audit for ThisStore {
    async fn record_audit(
        &self,
        actor: &Actor,
        org: OrganizationId,
        action: &str,
        subject_type: &str,
        subject_id: &str,
        details: serde_json::Value,
    ) -> StoreResult<AuditEvent> {
        let mut conn = self.pool.acquire().await?;
        append(
            &mut conn,
            actor,
            org,
            action,
            subject_type,
            subject_id,
            details,
        )
        .await
    }

    async fn list_audit(
        &self,
        org: OrganizationId,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEvent>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            audit_cols!(),
            " FROM audit_events WHERE organization_id = $1 ",
            "AND ($2 IS NULL OR actor = $2) ",
            "AND ($3 IS NULL OR substr(action, 1, length(CAST($3 AS TEXT))) = CAST($3 AS TEXT)) ",
            "AND ($4 IS NULL OR subject_id = $4) ",
            "AND ($5 IS NULL OR id < $5) ",
            "AND ($7 IS NULL OR id >= $7) ",
            "AND ($8 IS NULL OR id < $8) ",
            "ORDER BY id DESC LIMIT $6"
        ))
        .bind(org)
        .bind(&filter.actor)
        .bind(&filter.action_prefix)
        .bind(&filter.subject_id)
        .bind(filter.before)
        .bind(i64::from(filter.limit))
        .bind(filter.since.map(AuditEventId::lowest_at))
        .bind(filter.until.map(AuditEventId::lowest_at))
        .fetch_all(&self.pool)
        .await?)
    }
}
