//! Exceptions: raised at most once per open subject, settled by people or by the situation
//! going away.

use super::{Conn, ThisStore, as_i64, audit};
use crate::domain::{
    Actor, ExceptionFilter, ExceptionId, ExceptionKind, ExceptionState, InvalidInput, Json,
    NewException, OrganizationId, PolicyException, Timestamp,
};
use crate::store::api::Exceptions;
use crate::store::{StoreError, StoreResult};

/// Inserts an exception unless one is open for its subject; returns the new one.
pub(super) async fn raise(
    conn: &mut Conn,
    org: OrganizationId,
    new: &NewException,
) -> StoreResult<Option<PolicyException>> {
    Ok(sqlx::query_as(concat!(
        "INSERT INTO exceptions (id, organization_id, kind, subject_key, connection_id, subject, summary, details, state, created_at) ",
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9) ",
        "ON CONFLICT (organization_id, kind, subject_key) WHERE state = 'open' DO NOTHING RETURNING ",
        exception_cols!()
    ))
    .bind(ExceptionId::new())
    .bind(org)
    .bind(new.kind.as_str())
    .bind(&new.subject_key)
    .bind(new.connection_id)
    .bind(&new.subject)
    .bind(&new.summary)
    .bind(Json(&new.details))
    .bind(Timestamp::now())
    .fetch_optional(&mut *conn)
    .await?)
}

/// Resolves the open exception of a subject, if there is one; returns how many (0 or 1).
pub(super) async fn settle_open(
    conn: &mut Conn,
    org: OrganizationId,
    kind: ExceptionKind,
    key: &str,
    resolution: &str,
    by: &str,
) -> StoreResult<u64> {
    Ok(sqlx::query(
        "UPDATE exceptions SET state = 'resolved', resolution = $4, resolved_by = $5, resolved_at = $6 \
         WHERE organization_id = $1 AND kind = $2 AND subject_key = $3 AND state = 'open'",
    )
    .bind(org)
    .bind(kind.as_str())
    .bind(key)
    .bind(resolution)
    .bind(by)
    .bind(Timestamp::now())
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

#[async_trait::async_trait]
impl Exceptions for ThisStore {
    async fn raise_exception(
        &self,
        org: OrganizationId,
        new: &NewException,
    ) -> StoreResult<Option<PolicyException>> {
        let mut tx = self.begin_write().await?;
        let raised = raise(&mut tx, org, new).await?;
        tx.commit().await?;
        Ok(raised)
    }

    async fn exception(
        &self,
        org: OrganizationId,
        id: ExceptionId,
    ) -> StoreResult<Option<PolicyException>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            exception_cols!(),
            " FROM exceptions WHERE organization_id = $1 AND id = $2"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_exceptions(
        &self,
        org: OrganizationId,
        filter: &ExceptionFilter,
    ) -> StoreResult<Vec<PolicyException>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            exception_cols!(),
            " FROM exceptions WHERE organization_id = $1 ",
            "AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR kind = $3) AND ($4 IS NULL OR connection_id = $4) ",
            "ORDER BY created_at DESC, id LIMIT $5 OFFSET $6"
        ))
        .bind(org)
        .bind(filter.state.map(|s| s.as_str()))
        .bind(filter.kind.map(|k| k.as_str()))
        .bind(filter.connection_id)
        .bind(i64::from(filter.limit))
        .bind(as_i64(filter.offset))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn settle_exception(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: ExceptionId,
        state: ExceptionState,
        resolution: &str,
    ) -> StoreResult<PolicyException> {
        if state == ExceptionState::Open {
            return Err(InvalidInput::new("state", "settling means resolved or dismissed").into());
        }
        if resolution.trim().is_empty() {
            return Err(InvalidInput::new("resolution", "say how it was settled").into());
        }
        let mut tx = self.begin_write().await?;
        let settled: Option<PolicyException> = sqlx::query_as(concat!(
            "UPDATE exceptions SET state = $3, resolution = $4, resolved_by = $5, resolved_at = $6 ",
            "WHERE organization_id = $1 AND id = $2 AND state = 'open' RETURNING ",
            exception_cols!()
        ))
        .bind(org)
        .bind(id)
        .bind(state.as_str())
        .bind(resolution)
        .bind(&actor.name)
        .bind(Timestamp::now())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(settled) = settled else {
            let exists: Option<String> = sqlx::query_scalar(
                "SELECT state FROM exceptions WHERE organization_id = $1 AND id = $2",
            )
            .bind(org)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            return Err(match exists {
                Some(state) => StoreError::Conflict(format!("exception {id} is already {state}")),
                None => StoreError::NotFound(format!("exception {id}")),
            });
        };
        let action = if state == ExceptionState::Dismissed {
            "exception.dismiss"
        } else {
            "exception.resolve"
        };
        audit::append(
            &mut tx,
            actor,
            org,
            action,
            "exception",
            &id.to_string(),
            serde_json::json!({ "kind": settled.kind.as_str(), "subject": settled.subject, "resolution": resolution }),
        )
        .await?;
        tx.commit().await?;
        Ok(settled)
    }
}
