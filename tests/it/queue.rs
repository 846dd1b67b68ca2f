//! The durable queue's rules on both stores: strict order per resource, coalescing, leases that
//! expire, disjoint concurrent claims, and leases given back.

use crate::support;

use scimdesk::domain::*;
use scimdesk::store::{OperationFilter, Store};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;
use support::Harness;
use uuid::Uuid;

on_both_backends!(
    updates_coalesce_until_a_worker_takes_them,
    one_resource_runs_in_order_many_resources_in_parallel,
    an_expired_lease_returns_the_work_and_the_late_result_is_ignored,
    a_renewed_lease_keeps_the_work_and_only_its_owner_renews_it,
    concurrent_claims_never_overlap,
    given_back_leases_are_claimable_at_once,
    failed_work_blocks_its_resource_until_an_operator_acts,
    a_claim_on_stale_statistics_leases_only_what_it_asked_for,
);

const LEASE: Duration = Duration::from_secs(30);

async fn setup(s: &dyn Store) -> (OrganizationId, Connection) {
    let org = s
        .create_organization(&Actor::operator("tester"), "Riverside")
        .await
        .unwrap();
    let conn = target(s, org.id, "app").await;
    (org.id, conn)
}

/// A SCIM target connection named `name` in `org`.
async fn target(s: &dyn Store, org: OrganizationId, name: &str) -> Connection {
    s.create_connection(
        &Actor::operator("tester"),
        org,
        &NewConnection {
            name: name.into(),
            kind: ConnectionKind::ScimTarget,
            base_url: Some(format!("https://{name}.example/scim/v2")),
            auth_method: AuthMethod::None,
            settings: json!({}),
        },
        None,
    )
    .await
    .unwrap()
}

/// Queues `n` updates at `conn`, each of a resource of its own, one by one as changes do.
async fn queue_updates(s: &dyn Store, org: OrganizationId, conn: ConnectionId, n: usize) {
    for _ in 0..n {
        s.enqueue_operation(
            org,
            &NewOperation {
                connection_id: conn,
                resource_type: ResourceType::User,
                resource_id: Uuid::now_v7(),
                action: OperationAction::Update,
                payload: json!({}),
            },
        )
        .await
        .unwrap();
    }
}

fn draft(n: u32) -> UserDraft {
    UserDraft::new(format!("nurse{n}@riverside.example"))
}

fn all() -> OperationFilter {
    OperationFilter {
        limit: 10_000,
        ..Default::default()
    }
}

fn done(op: &Operation, owner: Uuid) -> Outcome {
    Outcome {
        operation: op.clone(),
        lease_owner: owner,
        attempt: None,
        disposition: Disposition::Succeeded { link: None },
    }
}

async fn updates_coalesce_until_a_worker_takes_them(h: &Harness) {
    let s = &*h.store;
    let (org, conn) = setup(s).await;
    let actor = Actor::operator("tester");
    let u = s.create_user(&actor, org, &draft(1)).await.unwrap();
    for title in ["a", "b", "c"] {
        let mut d = draft(1);
        d.display_name = Some(title.into());
        s.replace_user(&actor, org, u.id, &d, None).await.unwrap();
    }
    let ops = s.list_operations(org, &all()).await.unwrap();
    assert_eq!(
        ops.iter().map(|o| o.action).collect::<Vec<_>>(),
        vec![OperationAction::Create],
        "three updates are absorbed by the waiting create, which sends the newest state"
    );
    // Once a worker holds the create, a change queues an update behind it, and later updates
    // coalesce into that one while it waits.
    let owner = Uuid::now_v7();
    let first = s
        .claim_operations(conn.id, owner, LEASE, 10, None)
        .await
        .unwrap();
    let mut d = draft(1);
    d.display_name = Some("b2".into());
    s.replace_user(&actor, org, u.id, &d, None).await.unwrap();
    s.replace_user(&actor, org, u.id, &d, None).await.unwrap();
    assert_eq!(s.list_operations(org, &all()).await.unwrap().len(), 2);
    s.complete_operations(&[done(&first[0], owner)])
        .await
        .unwrap();
    let update = s
        .claim_operations(conn.id, owner, LEASE, 10, None)
        .await
        .unwrap();
    assert_eq!(update[0].action, OperationAction::Update);
    let mut d = draft(1);
    d.display_name = Some("d".into());
    s.replace_user(&actor, org, u.id, &d, None).await.unwrap();
    let ops = s.list_operations(org, &all()).await.unwrap();
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[0].state, OperationState::InFlight);
    assert_eq!(
        (ops[1].action, ops[1].state),
        (OperationAction::Update, OperationState::Pending)
    );
    // Suspensions and member changes never coalesce.
    let mut d = draft(1);
    d.active = false;
    s.replace_user(&actor, org, u.id, &d, None).await.unwrap();
    s.replace_user(&actor, org, u.id, &d, None).await.unwrap();
    assert_eq!(s.list_operations(org, &all()).await.unwrap().len(), 4);
}

async fn one_resource_runs_in_order_many_resources_in_parallel(h: &Harness) {
    let s = &*h.store;
    let (org, conn) = setup(s).await;
    let actor = Actor::operator("tester");
    let a = s.create_user(&actor, org, &draft(1)).await.unwrap();
    let b = s.create_user(&actor, org, &draft(2)).await.unwrap();
    let mut off = draft(1);
    off.active = false;
    s.replace_user(&actor, org, a.id, &off, None).await.unwrap();
    s.delete_user(&actor, org, a.id).await.unwrap();
    let asked = [a.id.0, b.id.0, Uuid::now_v7()];
    let mut pending = s.resources_in_progress(conn.id, &asked).await.unwrap();
    pending.sort();
    let mut want = vec![a.id.0, b.id.0];
    want.sort();
    assert_eq!(pending, want, "the unknown resource has no work");
    let owner = Uuid::now_v7();
    let mut order = Vec::new();
    loop {
        let claimed = s
            .claim_operations(conn.id, owner, LEASE, 10, None)
            .await
            .unwrap();
        if claimed.is_empty() {
            break;
        }
        // Never two operations of one resource at once.
        let resources: HashSet<Uuid> = claimed.iter().map(|o| o.resource_id).collect();
        assert_eq!(resources.len(), claimed.len());
        for op in &claimed {
            order.push((op.resource_id, op.action));
        }
        let outcomes: Vec<Outcome> = claimed.iter().map(|o| done(o, owner)).collect();
        s.complete_operations(&outcomes).await.unwrap();
    }
    assert!(
        s.resources_in_progress(conn.id, &asked)
            .await
            .unwrap()
            .is_empty()
    );
    let of_a: Vec<OperationAction> = order
        .iter()
        .filter(|(r, _)| *r == a.id.0)
        .map(|(_, x)| *x)
        .collect();
    assert_eq!(
        of_a,
        vec![
            OperationAction::Create,
            OperationAction::Suspend,
            OperationAction::Delete
        ]
    );
    // b's create went in the first batch, beside a's create.
    assert_eq!(order[..2].iter().filter(|(r, _)| *r == b.id.0).count(), 1);
}

async fn an_expired_lease_returns_the_work_and_the_late_result_is_ignored(h: &Harness) {
    let s = &*h.store;
    let (org, conn) = setup(s).await;
    s.create_user(&Actor::operator("tester"), org, &draft(1))
        .await
        .unwrap();
    let crashed = Uuid::now_v7();
    let first = s
        .claim_operations(conn.id, crashed, Duration::from_millis(300), 10, None)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let other = Uuid::now_v7();
    assert!(
        s.claim_operations(conn.id, other, LEASE, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = s
        .claim_operations(conn.id, other, LEASE, 10, None)
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![first[0].id]
    );
    assert_eq!(again[0].attempts, 2, "the lost attempt still counts");
    // The worker that lost its lease reports late: nothing changes.
    assert_eq!(
        s.complete_operations(&[done(&first[0], crashed)])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.operation(org, first[0].id).await.unwrap().unwrap().state,
        OperationState::InFlight
    );
    assert_eq!(
        s.complete_operations(&[done(&again[0], other)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.operation(org, first[0].id).await.unwrap().unwrap().state,
        OperationState::Succeeded
    );
}

/// A worker whose attempt outlives its lease renews it: the operation is not claimed again
/// while the renewals come; another worker's renewal changes nothing; once renewals stop the
/// lease expires as before.
async fn a_renewed_lease_keeps_the_work_and_only_its_owner_renews_it(h: &Harness) {
    let s = &*h.store;
    let (org, conn) = setup(s).await;
    s.create_user(&Actor::operator("tester"), org, &draft(1))
        .await
        .unwrap();
    let short = Duration::from_millis(400);
    let owner = Uuid::now_v7();
    let claimed = s
        .claim_operations(conn.id, owner, short, 10, None)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let ids: Vec<OperationId> = claimed.iter().map(|o| o.id).collect();
    let other = Uuid::now_v7();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(s.renew_leases(owner, &ids, short).await.unwrap(), 1);
        assert_eq!(s.renew_leases(other, &ids, LEASE).await.unwrap(), 0);
    }
    // 600 ms after the claim, past the lease it was given: still held.
    assert!(
        s.claim_operations(conn.id, other, LEASE, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = s
        .claim_operations(conn.id, other, LEASE, 10, None)
        .await
        .unwrap();
    assert_eq!(again.iter().map(|o| o.id).collect::<Vec<_>>(), ids);
    // The lease is the other worker's now: the first one's renewal does not take it back.
    assert_eq!(s.renew_leases(owner, &ids, LEASE).await.unwrap(), 0);
    assert_eq!(
        s.complete_operations(&[done(&again[0], other)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.renew_leases(other, &ids, LEASE).await.unwrap(), 0);
}

async fn concurrent_claims_never_overlap(h: &Harness) {
    let store = h.store.clone();
    let (org, conn) = setup(&*store).await;
    queue_updates(&*store, org, conn.id, 300).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let owner = Uuid::now_v7();
            let mut mine = Vec::new();
            loop {
                let claimed = store
                    .claim_operations(conn.id, owner, LEASE, 16, None)
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    break;
                }
                mine.extend(claimed.iter().map(|o| o.id));
                let outcomes: Vec<Outcome> = claimed.iter().map(|o| done(o, owner)).collect();
                assert_eq!(
                    store.complete_operations(&outcomes).await.unwrap(),
                    outcomes.len() as u64
                );
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for t in tasks {
        for id in t.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "operation {id} claimed twice");
        }
    }
    assert_eq!(total, 300);
    assert_eq!(
        store.queue_counts(org, conn.id).await.unwrap(),
        QueueCounts::default()
    );
}

async fn given_back_leases_are_claimable_at_once(h: &Harness) {
    let s = &*h.store;
    let (org, conn) = setup(s).await;
    s.create_user(&Actor::operator("tester"), org, &draft(1))
        .await
        .unwrap();
    let owner = Uuid::now_v7();
    assert_eq!(
        s.claim_operations(conn.id, owner, LEASE, 10, None)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.queue_counts(org, conn.id).await.unwrap().in_flight, 1);
    assert_eq!(s.release_leases(owner).await.unwrap(), 1);
    let counts = s.queue_counts(org, conn.id).await.unwrap();
    assert_eq!((counts.pending, counts.in_flight), (1, 0));
    assert_eq!(
        s.claim_operations(conn.id, Uuid::now_v7(), LEASE, 10, None)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn failed_work_blocks_its_resource_until_an_operator_acts(h: &Harness) {
    let s = &*h.store;
    let (org, conn) = setup(s).await;
    let actor = Actor::operator("tester");
    let u = s.create_user(&actor, org, &draft(1)).await.unwrap();
    let mut off = draft(1);
    off.active = false;
    s.replace_user(&actor, org, u.id, &off, None).await.unwrap();
    let owner = Uuid::now_v7();
    let create = s
        .claim_operations(conn.id, owner, LEASE, 10, None)
        .await
        .unwrap();
    let failed = Outcome {
        disposition: Disposition::Failed,
        ..done(&create[0], owner)
    };
    s.complete_operations(&[failed]).await.unwrap();
    // The suspension waits behind the failed create.
    assert!(
        s.claim_operations(conn.id, owner, LEASE, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    let counts = s.queue_counts(org, conn.id).await.unwrap();
    assert_eq!((counts.failed, counts.pending), (1, 1));
    // Stuck, so not in progress: nothing of it finishes without an operator.
    assert!(
        s.resources_in_progress(conn.id, &[u.id.0])
            .await
            .unwrap()
            .is_empty()
    );
    // Skipping the create frees the suspension.
    s.skip_operation(&actor, org, create[0].id, "created by hand")
        .await
        .unwrap();
    let next = s
        .claim_operations(conn.id, owner, LEASE, 10, None)
        .await
        .unwrap();
    assert_eq!(next[0].action, OperationAction::Suspend);
    assert_eq!(
        s.resources_in_progress(conn.id, &[u.id.0]).await.unwrap(),
        vec![u.id.0]
    );
    // Skipping a leased operation is refused: its worker is busy with it.
    assert!(
        s.skip_operation(&actor, org, next[0].id, "x")
            .await
            .is_err()
    );
    // A skip needs a reason.
    assert!(
        s.skip_operation(&actor, org, next[0].id, "  ")
            .await
            .is_err()
    );
}

/// The planner's statistics describe a drained queue (another connection's work, done), as
/// when a new target's first wave arrives: a claim still leases exactly what it asked for, and
/// finds it without reading the whole queue per candidate.
async fn a_claim_on_stale_statistics_leases_only_what_it_asked_for(h: &Harness) {
    let s = &*h.store;
    let (org, old) = setup(s).await;
    s.bulk_enqueue(org, old.id, 10_000).await.unwrap();
    // Drained, then analyzed: the statistics now say the table's pages hold no rows at all,
    // which is what a queue's statistics usually say (autovacuum looks when it is empty).
    h.raw.exec("DELETE FROM operation_queue").await.unwrap();
    h.raw.exec("ANALYZE operation_queue").await.unwrap();
    let new = target(s, org, "new").await;
    queue_updates(s, org, new.id, 2000).await;
    // Claims run as a prepared statement: after a few runs PostgreSQL may plan it once for any
    // connection (a generic plan), which is where the bad plan appeared. On PostgreSQL the
    // claims below are made through connections that always use the generic plan.
    let generic = h
        .reopen_postgres_with(&[("plan_cache_mode", "force_generic_plan")])
        .await;
    let s: &dyn Store = generic.as_deref().unwrap_or(s);
    for _ in 0..8 {
        let probe = Uuid::now_v7();
        assert_eq!(
            s.claim_operations(new.id, probe, LEASE, 1, None)
                .await
                .unwrap()
                .len(),
            1
        );
        s.release_leases(probe).await.unwrap();
    }
    let owner = Uuid::now_v7();
    let claimed = s
        .claim_operations(new.id, owner, LEASE, 32, None)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 32);
    let counts = s.queue_counts(org, new.id).await.unwrap();
    assert_eq!((counts.in_flight, counts.pending), (32, 1968), "{counts:?}");
}
