//! The durable queue: enqueueing (with coalescing), claims, outcomes, retries and skips, and
//! the history.

use super::{Conn, Db, ThisStore, as_i64, audit, connections, fanout};
use crate::domain::{
    Actor, Attempt, ConnectionId, Disposition, InvalidInput, Json, LinkUpdate, NewOperation,
    Operation, OperationAction, OperationId, OperationState, OrganizationId, Outcome, QueueCounts,
    ResourceType, Timestamp, UserId, validate,
};
use crate::store::api::{OperationFilter, Queue};
use crate::store::{StoreError, StoreResult};
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;
use uuid::Uuid;

/// The waiting, unattempted create or update of a resource at a target that absorbs a new
/// update, locked (where the backend has row locks) until the change commits.
static WAITING_UPDATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id FROM operation_queue WHERE connection_id = $1 AND resource_id = $2 AND {} LIMIT 1{}",
        coalescible!(),
        ThisStore::ROW_LOCK
    )
});

/// The claim: lease the oldest due operations of a connection whose resource has nothing
/// earlier unfinished. `LIMIT 1 OFFSET 0` keeps the "nothing earlier for this resource" test a
/// per-candidate probe of operation_queue_resource on all three columns. Without it PostgreSQL
/// turns NOT EXISTS into an anti-join, and while its statistics know nothing of a new
/// connection (one row estimated) it scanned the whole connection's queue once per candidate:
/// 73 ms instead of 0.13 ms for a claim of 32 from 10,000 waiting operations, and quadratic over
/// a wave. How the chosen rows are locked is the backend's (`CLAIM_OPEN`, `CLAIM_CLOSE`).
static CLAIM: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE operation_queue SET lease_owner = $2, lease_until = $3, attempts = attempts + 1 \
         WHERE id {open}SELECT o.id FROM operation_queue o WHERE o.connection_id = $1 \
         AND (o.not_before, o.seq) >= ($6, $7) AND o.not_before <= $4 \
         AND (o.lease_until IS NULL OR o.lease_until < $4) AND o.state <> 'failed' \
         AND NOT EXISTS (SELECT 1 FROM operation_queue p WHERE p.connection_id = $1 \
         AND p.resource_id = o.resource_id AND p.seq < o.seq LIMIT 1 OFFSET 0) \
         ORDER BY o.not_before, o.seq LIMIT $5{close} RETURNING {cols}",
        open = ThisStore::CLAIM_OPEN,
        close = ThisStore::CLAIM_CLOSE,
        cols = queue_cols!(),
    )
});

/// Enqueues one operation on the caller's transaction. A waiting, not yet attempted create or
/// update of the same resource at the same target absorbs a new update (the worker renders the
/// newest state when it runs); it is row-locked until this transaction commits, so no worker
/// can claim it and render the state before this change. Creates, suspensions and deletions
/// are distinct steps, and member changes carry different users, so they never coalesce.
pub(super) async fn enqueue_one(
    conn: &mut Conn,
    org: OrganizationId,
    op: &NewOperation,
) -> StoreResult<usize> {
    if op.action == OperationAction::Update {
        let waiting: Option<OperationId> = sqlx::query_scalar(WAITING_UPDATE.as_str())
            .bind(op.connection_id)
            .bind(op.resource_id)
            .fetch_optional(&mut *conn)
            .await?;
        if waiting.is_some() {
            return Ok(0);
        }
    }
    let now = Timestamp::now();
    Ok(sqlx::query(concat!(
        insert_operation!(),
        "VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8, $8)"
    ))
    .bind(OperationId::new())
    .bind(org)
    .bind(op.connection_id)
    .bind(op.resource_type.as_str())
    .bind(op.resource_id)
    .bind(op.action.as_str())
    .bind(Json(&op.payload))
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected() as usize)
}

/// [`enqueue_one`] of an update of each of `users` (distinct) at `target`, by the same rule,
/// in two statements per 500 users rather than two per user: a group's members change by the
/// thousand in one request.
pub(super) async fn enqueue_user_updates(
    conn: &mut Conn,
    org: OrganizationId,
    target: ConnectionId,
    users: &[UserId],
) -> StoreResult<usize> {
    let mut queued = 0;
    for chunk in users.chunks(500) {
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "SELECT resource_id FROM operation_queue WHERE connection_id = ",
        );
        q.push_bind(target);
        q.push(" AND resource_id");
        push_in_list!(q, chunk, |user| user.0);
        q.push(concat!(" AND ", coalescible!()));
        q.push(ThisStore::ROW_LOCK);
        let waiting: HashSet<Uuid> = q
            .build_query_scalar::<Uuid>()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
        let fresh: Vec<&UserId> = chunk.iter().filter(|u| !waiting.contains(&u.0)).collect();
        if fresh.is_empty() {
            continue;
        }
        let now = Timestamp::now();
        let mut q = sqlx::QueryBuilder::<Db>::new(insert_operation!());
        q.push_values(fresh, |mut row, user| {
            row.push_bind(OperationId::new())
                .push_bind(org)
                .push_bind(target)
                .push_bind(ResourceType::User.as_str())
                .push_bind(user.0)
                .push_bind(OperationAction::Update.as_str())
                .push_bind(Json(serde_json::json!({})))
                .push_bind("pending")
                .push_bind(0_i32)
                .push_bind(now)
                .push_bind(now)
                .push_bind(now);
        });
        queued += q
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await?
            .rows_affected() as usize;
    }
    Ok(queued)
}

/// Enqueues `action` on `user` for every SCIM target of the organization, on the caller's
/// transaction, so a change and the work it causes commit together (the worker decides the
/// user's scope at each target when it runs).
pub(super) async fn enqueue_user_for_targets(
    conn: &mut Conn,
    org: OrganizationId,
    user: UserId,
    action: OperationAction,
) -> StoreResult<usize> {
    let mut queued = 0;
    for target in connections::target_ids(conn, org).await? {
        let op = NewOperation {
            connection_id: target,
            resource_type: ResourceType::User,
            resource_id: user.0,
            action,
            payload: serde_json::json!({}),
        };
        queued += enqueue_one(conn, org, &op).await?;
    }
    Ok(queued)
}

/// Records an attempt's outcome on an operation that stays in the queue (waiting, failed, or
/// given back), if its lease is still `o.lease_owner`'s. Returns the rows changed: 0 for
/// succeeded work, which moved to the history, and for a lease lost meanwhile.
async fn record_disposition(conn: &mut Conn, o: &Outcome, now: Timestamp) -> StoreResult<u64> {
    let op = &o.operation;
    let status = o.attempt.as_ref().and_then(|a| a.http_status);
    let error = o.attempt.as_ref().and_then(|a| a.error.clone());
    let done = match &o.disposition {
        Disposition::Succeeded { .. } => return Ok(0),
        Disposition::RetryAt { not_before } => sqlx::query(concat!(
            "UPDATE operation_queue SET state = 'retry_wait', not_before = $3, lease_owner = NULL, ",
            "lease_until = NULL, last_status = $4, last_error = $5, updated_at = $6 ",
            "WHERE id = $1 AND lease_owner = $2"
        ))
        .bind(op.id)
        .bind(o.lease_owner)
        .bind(*not_before)
        .bind(status)
        .bind(error)
        .bind(now)
        .execute(&mut *conn)
        .await?,
        Disposition::WaitUntil { not_before, reason } => sqlx::query(concat!(
            "UPDATE operation_queue SET state = 'pending', not_before = $3, lease_owner = NULL, ",
            "lease_until = NULL, attempts = attempts - $6, last_error = $4, updated_at = $5 ",
            "WHERE id = $1 AND lease_owner = $2"
        ))
        .bind(op.id)
        .bind(o.lease_owner)
        .bind(*not_before)
        .bind(format!("waiting: {reason}"))
        .bind(now)
        // A wait that sent nothing gives its attempt back.
        .bind(i32::from(o.attempt.is_none()))
        .execute(&mut *conn)
        .await?,
        Disposition::Failed => sqlx::query(concat!(
            "UPDATE operation_queue SET state = 'failed', not_before = $3, lease_owner = NULL, ",
            "lease_until = NULL, last_status = $4, last_error = $5, updated_at = $6 ",
            "WHERE id = $1 AND lease_owner = $2"
        ))
        .bind(op.id)
        .bind(o.lease_owner)
        .bind(Timestamp::parked())
        .bind(status)
        .bind(error)
        .bind(now)
        .execute(&mut *conn)
        .await?,
        Disposition::Released => sqlx::query(concat!(
            "UPDATE operation_queue SET lease_owner = NULL, lease_until = NULL, ",
            "attempts = attempts - 1 WHERE id = $1 AND lease_owner = $2"
        ))
        .bind(op.id)
        .bind(o.lease_owner)
        .execute(&mut *conn)
        .await?,
    };
    Ok(done.rows_affected())
}

/// Writes the target links of finished work: one upsert for the new ones (one row per
/// resource; strict ordering means a batch never holds two for one resource, but keep the
/// last to be safe), single deletes for resources that are gone.
async fn record_links(conn: &mut Conn, finished: &[&Outcome], now: Timestamp) -> StoreResult<()> {
    let mut links: HashMap<(ConnectionId, ResourceType, Uuid), (&Operation, &LinkUpdate)> =
        HashMap::new();
    for o in finished {
        if let Disposition::Succeeded { link: Some(link) } = &o.disposition {
            let op = &o.operation;
            links.insert(
                (op.connection_id, op.resource_type, op.resource_id),
                (op, link),
            );
        }
    }
    let sets: Vec<(&Operation, &LinkUpdate)> = links
        .values()
        .filter(|(_, l)| matches!(l, LinkUpdate::Set { .. }))
        .copied()
        .collect();
    if !sets.is_empty() {
        let mut q = sqlx::QueryBuilder::<Db>::new(concat!(
            "INSERT INTO target_links (",
            link_cols!(),
            ") "
        ));
        q.push_values(sets, |mut b, (op, link)| {
            if let LinkUpdate::Set {
                remote_id,
                remote_etag,
                content_hash,
                last_sent,
            } = link
            {
                b.push_bind(op.organization_id)
                    .push_bind(op.connection_id)
                    .push_bind(op.resource_type.as_str())
                    .push_bind(op.resource_id)
                    .push_bind(remote_id.clone())
                    .push_bind(remote_etag.clone())
                    .push_bind(content_hash.clone())
                    .push_bind(now)
                    .push_bind(last_sent.clone().map(Json));
            }
        });
        q.push(concat!(
            " ON CONFLICT (connection_id, resource_type, local_id) DO UPDATE SET ",
            "remote_id = excluded.remote_id, remote_etag = excluded.remote_etag, ",
            "content_hash = excluded.content_hash, synced_at = excluded.synced_at, last_sent = excluded.last_sent"
        ));
        q.build().execute(&mut *conn).await?;
    }
    for (op, link) in links.values() {
        if matches!(link, LinkUpdate::Remove) {
            sqlx::query(
                "DELETE FROM target_links WHERE connection_id = $1 AND resource_type = $2 AND local_id = $3",
            )
            .bind(op.connection_id)
            .bind(op.resource_type.as_str())
            .bind(op.resource_id)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

impl ThisStore {
    /// The answer to a retry or skip of one operation that matched nothing: it does not exist,
    /// or it is in a state that does not allow it (`why`).
    async fn not_retryable(
        &self,
        org: OrganizationId,
        id: OperationId,
        why: impl FnOnce(OperationState) -> String,
    ) -> StoreError {
        match self.operation(org, id).await {
            Ok(None) => StoreError::NotFound(format!("operation {id}")),
            Ok(Some(op)) => StoreError::Conflict(why(op.state)),
            Err(e) => e,
        }
    }
}

#[async_trait::async_trait]
impl Queue for ThisStore {
    async fn enqueue_operations(
        &self,
        org: OrganizationId,
        ops: &[NewOperation],
    ) -> StoreResult<usize> {
        if ops.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let mut queued = 0;
        for op in ops {
            queued += enqueue_one(&mut tx, org, op).await?;
        }
        tx.commit().await?;
        self.signal.bump(org);
        Ok(queued)
    }

    async fn enqueue_operation(
        &self,
        org: OrganizationId,
        new: &NewOperation,
    ) -> StoreResult<Operation> {
        let now = Timestamp::now();
        let op: Option<Operation> = sqlx::query_as(concat!(
            insert_operation!(),
            "SELECT $1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8, $8 ",
            "WHERE EXISTS (SELECT 1 FROM connections WHERE organization_id = $2 AND id = $3) ",
            "RETURNING ",
            queue_cols!()
        ))
        .bind(OperationId::new())
        .bind(org)
        .bind(new.connection_id)
        .bind(new.resource_type.as_str())
        .bind(new.resource_id)
        .bind(new.action.as_str())
        .bind(Json(&new.payload))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let op =
            op.ok_or_else(|| StoreError::NotFound(format!("connection {}", new.connection_id)))?;
        self.signal.bump(org);
        Ok(op)
    }

    async fn operation(
        &self,
        org: OrganizationId,
        id: OperationId,
    ) -> StoreResult<Option<Operation>> {
        let now = Timestamp::now();
        let queued: Option<Operation> = sqlx::query_as(concat!(
            "SELECT ",
            queue_cols!(),
            " FROM operation_queue WHERE organization_id = $1 AND id = $2"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(op) = queued {
            return Ok(Some(op.with_effective_state(now)));
        }
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            history_cols!(),
            " FROM operation_history WHERE organization_id = $1 AND id = $2"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_operations(
        &self,
        org: OrganizationId,
        filter: &OperationFilter,
    ) -> StoreResult<Vec<Operation>> {
        let now = Timestamp::now();
        let finished = filter
            .state
            .is_some_and(|s| matches!(s, OperationState::Succeeded | OperationState::Skipped));
        let rows: Vec<Operation> = if finished {
            sqlx::query_as(concat!(
                "SELECT ",
                history_cols!(),
                " FROM operation_history WHERE organization_id = $1 ",
                "AND ($2 IS NULL OR connection_id = $2) AND state = $3 AND ($4 IS NULL OR action = $4) ",
                "AND ($5 IS NULL OR resource_id = $5) ORDER BY finished_at DESC, id LIMIT $6 OFFSET $7"
            ))
            .bind(org)
            .bind(filter.connection_id)
            .bind(filter.state.map(|s| s.as_str()))
            .bind(filter.action.map(|a| a.as_str()))
            .bind(filter.resource_id)
            .bind(i64::from(filter.limit))
            .bind(as_i64(filter.offset))
            .fetch_all(&self.pool)
            .await?
        } else {
            sqlx::query_as(concat!(
                "SELECT ",
                queue_cols!(),
                " FROM operation_queue WHERE organization_id = $1 ",
                "AND ($2 IS NULL OR connection_id = $2) ",
                "AND ($3 IS NULL OR (CASE WHEN state <> 'failed' AND lease_until > $8 THEN 'in_flight' ELSE state END) = $3) ",
                "AND ($4 IS NULL OR action = $4) AND ($5 IS NULL OR resource_id = $5) ",
                "ORDER BY not_before, seq LIMIT $6 OFFSET $7"
            ))
            .bind(org)
            .bind(filter.connection_id)
            .bind(filter.state.map(|s| s.as_str()))
            .bind(filter.action.map(|a| a.as_str()))
            .bind(filter.resource_id)
            .bind(i64::from(filter.limit))
            .bind(as_i64(filter.offset))
            .bind(now)
            .fetch_all(&self.pool)
            .await?
        };
        Ok(rows
            .into_iter()
            .map(|o| o.with_effective_state(now))
            .collect())
    }

    async fn operations_page(
        &self,
        org: OrganizationId,
        filter: &OperationFilter,
        before: Option<OperationId>,
        limit: u32,
    ) -> StoreResult<Vec<Operation>> {
        let now = Timestamp::now();
        let (queue, history) = tables_for(filter.state);
        let mut rows: Vec<Operation> = Vec::new();
        if queue {
            rows.extend(
                sqlx::query_as::<_, Operation>(concat!(
                    "SELECT ",
                    queue_cols!(),
                    " FROM operation_queue WHERE organization_id = $1 ",
                    "AND ($2 IS NULL OR connection_id = $2) ",
                    "AND ($3 IS NULL OR (CASE WHEN state <> 'failed' AND lease_until > $8 THEN 'in_flight' ELSE state END) = $3) ",
                    "AND ($4 IS NULL OR action = $4) AND ($5 IS NULL OR resource_id = $5) ",
                    "AND ($6 IS NULL OR id < $6) ORDER BY id DESC LIMIT $7"
                ))
                .bind(org)
                .bind(filter.connection_id)
                .bind(filter.state.map(|s| s.as_str()))
                .bind(filter.action.map(|a| a.as_str()))
                .bind(filter.resource_id)
                .bind(before)
                .bind(i64::from(limit))
                .bind(now)
                .fetch_all(&self.pool)
                .await?,
            );
        }
        if history {
            rows.extend(
                sqlx::query_as::<_, Operation>(concat!(
                    "SELECT ",
                    history_cols!(),
                    " FROM operation_history WHERE organization_id = $1 ",
                    "AND ($2 IS NULL OR connection_id = $2) AND ($3 IS NULL OR state = $3) ",
                    "AND ($4 IS NULL OR action = $4) AND ($5 IS NULL OR resource_id = $5) ",
                    "AND ($6 IS NULL OR id < $6) ORDER BY id DESC LIMIT $7"
                ))
                .bind(org)
                .bind(filter.connection_id)
                .bind(filter.state.map(|s| s.as_str()))
                .bind(filter.action.map(|a| a.as_str()))
                .bind(filter.resource_id)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?,
            );
        }
        // Both halves are newest first; the page is the newest `limit` of the two.
        rows.sort_by_key(|o| std::cmp::Reverse(o.id));
        rows.truncate(limit as usize);
        Ok(rows
            .into_iter()
            .map(|o| o.with_effective_state(now))
            .collect())
    }

    async fn count_operations(
        &self,
        org: OrganizationId,
        filter: &OperationFilter,
    ) -> StoreResult<u64> {
        let (queue, history) = tables_for(filter.state);
        let mut n: i64 = 0;
        if queue {
            n += sqlx::query_scalar::<_, i64>(concat!(
                "SELECT COUNT(*) FROM operation_queue WHERE organization_id = $1 ",
                "AND ($2 IS NULL OR connection_id = $2) ",
                "AND ($3 IS NULL OR (CASE WHEN state <> 'failed' AND lease_until > $6 THEN 'in_flight' ELSE state END) = $3) ",
                "AND ($4 IS NULL OR action = $4) AND ($5 IS NULL OR resource_id = $5)"
            ))
            .bind(org)
            .bind(filter.connection_id)
            .bind(filter.state.map(|s| s.as_str()))
            .bind(filter.action.map(|a| a.as_str()))
            .bind(filter.resource_id)
            .bind(Timestamp::now())
            .fetch_one(&self.pool)
            .await?;
        }
        if history {
            n += sqlx::query_scalar::<_, i64>(concat!(
                "SELECT COUNT(*) FROM operation_history WHERE organization_id = $1 ",
                "AND ($2 IS NULL OR connection_id = $2) AND ($3 IS NULL OR state = $3) ",
                "AND ($4 IS NULL OR action = $4) AND ($5 IS NULL OR resource_id = $5)"
            ))
            .bind(org)
            .bind(filter.connection_id)
            .bind(filter.state.map(|s| s.as_str()))
            .bind(filter.action.map(|a| a.as_str()))
            .bind(filter.resource_id)
            .fetch_one(&self.pool)
            .await?;
        }
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn operation_attempts(
        &self,
        org: OrganizationId,
        id: OperationId,
    ) -> StoreResult<Vec<Attempt>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            attempt_cols!(),
            " FROM operation_attempts WHERE organization_id = $1 AND operation_id = $2 ORDER BY attempt_no"
        ))
        .bind(org)
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn queue_counts(
        &self,
        org: OrganizationId,
        connection: ConnectionId,
    ) -> StoreResult<QueueCounts> {
        let (pending, in_flight, retry_wait, failed, oldest): (
            i64,
            i64,
            i64,
            i64,
            Option<Timestamp>,
        ) = sqlx::query_as(concat!(
            "SELECT ",
            "COALESCE(SUM(CASE WHEN state = 'pending' AND (lease_until IS NULL OR lease_until <= $3) THEN 1 ELSE 0 END), 0), ",
            "COALESCE(SUM(CASE WHEN state <> 'failed' AND lease_until > $3 THEN 1 ELSE 0 END), 0), ",
            "COALESCE(SUM(CASE WHEN state = 'retry_wait' AND (lease_until IS NULL OR lease_until <= $3) THEN 1 ELSE 0 END), 0), ",
            "COALESCE(SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END), 0), ",
            "MIN(CASE WHEN state <> 'failed' THEN created_at END) ",
            "FROM operation_queue WHERE connection_id = $2 AND organization_id = $1"
        ))
        .bind(org)
        .bind(connection)
        .bind(Timestamp::now())
        .fetch_one(&self.pool)
        .await?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(QueueCounts {
            pending: n(pending),
            in_flight: n(in_flight),
            retry_wait: n(retry_wait),
            failed: n(failed),
            oldest_pending: oldest,
        })
    }

    async fn claim_operations(
        &self,
        connection: ConnectionId,
        owner: Uuid,
        lease: std::time::Duration,
        limit: u32,
        from: Option<(Timestamp, i64)>,
    ) -> StoreResult<Vec<Operation>> {
        let now = Timestamp::now();
        let mut tx = self.begin_write().await?;
        if !ThisStore::RELAXED_COMMIT.is_empty() {
            sqlx::query(ThisStore::RELAXED_COMMIT)
                .execute(&mut *tx)
                .await?;
        }
        let mut claimed: Vec<Operation> = sqlx::query_as(CLAIM.as_str())
            .bind(connection)
            .bind(owner)
            .bind(now.after(lease))
            .bind(now)
            .bind(i64::from(limit))
            .bind(
                from.map(|f| f.0)
                    .unwrap_or_else(|| Timestamp::from_unix_micros(0).unwrap_or(now)),
            )
            .bind(from.map(|f| f.1).unwrap_or(0))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        claimed.sort_by_key(|o| o.seq);
        Ok(claimed
            .into_iter()
            .map(|o| o.with_effective_state(now))
            .collect())
    }

    async fn complete_operations(&self, outcomes: &[Outcome]) -> StoreResult<u64> {
        if outcomes.is_empty() {
            return Ok(0);
        }
        let now = Timestamp::now();
        let mut tx = self.begin_write().await?;
        if !ThisStore::RELAXED_COMMIT.is_empty() {
            sqlx::query(ThisStore::RELAXED_COMMIT)
                .execute(&mut *tx)
                .await?;
        }
        let mut held: HashSet<OperationId> = HashSet::new();
        // Finished work moves to the history in two batched statements per lease owner.
        let mut owners: Vec<Uuid> = outcomes.iter().map(|o| o.lease_owner).collect();
        owners.sort();
        owners.dedup();
        for owner in owners {
            let done: Vec<OperationId> = outcomes
                .iter()
                .filter(|o| {
                    o.lease_owner == owner && matches!(o.disposition, Disposition::Succeeded { .. })
                })
                .map(|o| o.operation.id)
                .collect();
            if !done.is_empty() {
                held.extend(ThisStore::move_to_history(&mut tx, owner, &done, now).await?);
            }
        }
        for o in outcomes {
            if record_disposition(&mut tx, o, now).await? > 0 {
                held.insert(o.operation.id);
            }
        }
        let attempts: Vec<&Attempt> = outcomes
            .iter()
            .filter(|o| held.contains(&o.operation.id))
            .filter_map(|o| o.attempt.as_ref())
            .collect();
        if !attempts.is_empty() {
            ThisStore::insert_attempts(&mut tx, &attempts).await?;
        }
        let finished: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| held.contains(&o.operation.id))
            .collect();
        record_links(&mut tx, &finished, now).await?;
        tx.commit().await?;
        for o in outcomes.iter().filter(|o| {
            !matches!(
                o.disposition,
                Disposition::Succeeded { .. } | Disposition::Failed
            )
        }) {
            self.signal.bump(o.operation.organization_id);
        }
        Ok(held.len() as u64)
    }

    async fn release_leases(&self, owner: Uuid) -> StoreResult<u64> {
        Ok(sqlx::query(
            "UPDATE operation_queue SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn renew_leases(
        &self,
        owner: Uuid,
        ids: &[OperationId],
        lease: std::time::Duration,
    ) -> StoreResult<u64> {
        let until = Timestamp::now().after(lease);
        let mut renewed = 0;
        for chunk in ids.chunks(500) {
            let mut q = sqlx::QueryBuilder::<Db>::new("UPDATE operation_queue SET lease_until = ");
            q.push_bind(until);
            q.push(" WHERE lease_owner = ");
            q.push_bind(owner);
            q.push(" AND id");
            push_in_list!(q, chunk, |id| *id);
            renewed += q
                .build()
                .persistent(false)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(renewed)
    }

    async fn resources_in_progress(
        &self,
        connection: ConnectionId,
        resource_ids: &[Uuid],
    ) -> StoreResult<Vec<Uuid>> {
        let mut found = Vec::new();
        for chunk in resource_ids.chunks(500) {
            let mut q = sqlx::QueryBuilder::<Db>::new(
                "SELECT resource_id FROM operation_queue WHERE connection_id = ",
            );
            q.push_bind(connection);
            q.push(" AND resource_id");
            push_in_list!(q, chunk, |id| *id);
            // A failed operation holds up everything after it for its resource until an
            // operator acts: none of that work finishes by itself.
            q.push(
                " GROUP BY resource_id HAVING SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END) = 0",
            );
            found.extend(q.build_query_scalar::<Uuid>().fetch_all(&self.pool).await?);
        }
        Ok(found)
    }

    async fn retry_operations(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: Option<OperationId>,
        filter: &OperationFilter,
    ) -> StoreResult<u64> {
        let now = Timestamp::now();
        let state = filter.state.unwrap_or(OperationState::Failed);
        if !matches!(state, OperationState::Failed | OperationState::RetryWait) {
            return Err(InvalidInput::new(
                "state",
                "only failed or retry_wait operations can be retried",
            )
            .into());
        }
        let mut tx = self.begin_write().await?;
        let retried = if let Some(id) = id {
            let back: Vec<(ConnectionId, String, Uuid)> = sqlx::query_as(concat!(
                "UPDATE operation_queue SET state = 'pending', not_before = $3, budget_from = attempts, updated_at = $3 ",
                "WHERE organization_id = $1 AND id = $2 AND state IN ('failed', 'retry_wait') ",
                "AND (lease_until IS NULL OR lease_until <= $3) RETURNING connection_id, resource_type, resource_id"
            ))
            .bind(org)
            .bind(id)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            if back.is_empty() {
                drop(tx);
                return Err(self
                    .not_retryable(org, id, |state| {
                        format!(
                            "operation {id} is {state}; only failed or retry_wait operations can be retried"
                        )
                    })
                    .await);
            }
            fanout::users_retried(self, &mut tx, org, &back).await?;
            audit::append(
                &mut tx,
                actor,
                org,
                "operation.retry",
                "operation",
                &id.to_string(),
                serde_json::json!({}),
            )
            .await?;
            back.len() as u64
        } else {
            let back: Vec<(ConnectionId, String, Uuid)> = sqlx::query_as(concat!(
                "UPDATE operation_queue SET state = 'pending', not_before = $6, budget_from = attempts, updated_at = $6 ",
                "WHERE organization_id = $1 AND ($2 IS NULL OR connection_id = $2) AND state = $3 ",
                "AND ($4 IS NULL OR action = $4) AND ($5 IS NULL OR resource_id = $5) ",
                "AND (lease_until IS NULL OR lease_until <= $6) RETURNING connection_id, resource_type, resource_id"
            ))
            .bind(org)
            .bind(filter.connection_id)
            .bind(state.as_str())
            .bind(filter.action.map(|a| a.as_str()))
            .bind(filter.resource_id)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            fanout::users_retried(self, &mut tx, org, &back).await?;
            let subject = filter
                .connection_id
                .map(|c| c.to_string())
                .unwrap_or_else(|| "*".into());
            audit::append(
                &mut tx,
                actor,
                org,
                "operation.retry_all",
                "connection",
                &subject,
                serde_json::json!({
                    "count": back.len(),
                    "state": state.as_str(),
                    "action": filter.action.map(|a| a.as_str()),
                    "resource_id": filter.resource_id,
                }),
            )
            .await?;
            back.len() as u64
        };
        tx.commit().await?;
        self.signal.bump(org);
        Ok(retried)
    }

    async fn skip_operation(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: OperationId,
        reason: &str,
    ) -> StoreResult<Operation> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(InvalidInput::new("reason", "say why the operation is skipped").into());
        }
        validate::storable_text("reason", reason, false)?;
        let now = Timestamp::now();
        let mut tx = self.begin_write().await?;
        let moved: Option<OperationId> = sqlx::query_scalar(concat!(
            "INSERT INTO operation_history (",
            history_insert_cols!(),
            ") ",
            "SELECT id, organization_id, connection_id, resource_type, resource_id, action, payload, ",
            "'skipped', attempts, last_status, last_error, $3, created_at, $4 FROM operation_queue ",
            "WHERE organization_id = $1 AND id = $2 AND (lease_until IS NULL OR lease_until <= $4) RETURNING id"
        ))
        .bind(org)
        .bind(id)
        .bind(reason)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if moved.is_none() {
            drop(tx);
            return Err(self
                .not_retryable(org, id, |state| {
                    format!("operation {id} is {state}; it cannot be skipped now")
                })
                .await);
        }
        sqlx::query("DELETE FROM operation_queue WHERE organization_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        audit::append(
            &mut tx,
            actor,
            org,
            "operation.skip",
            "operation",
            &id.to_string(),
            serde_json::json!({ "reason": reason }),
        )
        .await?;
        tx.commit().await?;
        // Work behind it on the same resource is free to run now.
        self.signal.bump(org);
        self.operation(org, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("operation {id}")))
    }

    async fn prune_history(&self, before: Timestamp, batch: u32) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        // By connection, so the (connection_id, finished_at) index serves (one index less for
        // every finished operation to maintain).
        let ids: Vec<OperationId> = sqlx::query_scalar(concat!(
            "SELECT h.id FROM connections c JOIN operation_history h ON h.connection_id = c.id ",
            "WHERE h.finished_at < $1 LIMIT $2"
        ))
        .bind(before)
        .bind(i64::from(batch))
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        for table in [
            "DELETE FROM operation_attempts WHERE operation_id",
            "DELETE FROM operation_history WHERE id",
        ] {
            let mut q = sqlx::QueryBuilder::<Db>::new(table);
            push_in_list!(q, &ids, |id| *id);
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }
}

/// Which tables hold operations in `state`: (the queue, the history). Finished states live in
/// the history only; the others in the queue only; no state, both.
fn tables_for(state: Option<OperationState>) -> (bool, bool) {
    match state {
        Some(OperationState::Succeeded | OperationState::Skipped) => (false, true),
        Some(_) => (true, false),
        None => (true, true),
    }
}
