//! `scimdesk bench policy`: the provisioning-policy figures — the impact preview of a mapping
//! change over a large directory, and a full reconciliation of a target that already holds
//! every user (which must find nothing to do and send no write).
//!
//! The directory is loaded in bulk (users, groups, memberships; at the target, the users as
//! scimdesk would have provisioned them, with their links), so the figures measure the
//! policy code, not the loading.

use super::BenchStore;
use super::{BenchResult, StandInError};
use crate::crypto::Secret;
use crate::domain::*;
use crate::engine::commands::MappingChange;

use crate::policy::roles::RoleResolver;
use crate::policy::target::TargetPolicy;
use crate::scim::convert::doc_to_user_draft;
use crate::stand_ins::target_double::TargetDouble;
use crate::store::{BulkRows, LoadableStore};
use serde::Serialize;
use serde_json::json;
use sqlx::types::Json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

/// Figures of a policy run.
#[derive(Debug, Serialize)]
pub struct PolicyReport {
    /// Which store.
    pub backend: String,
    /// Users in the directory.
    pub users: usize,
    /// Groups in the directory.
    pub groups: usize,
    /// Memberships in the directory.
    pub memberships: usize,
    /// Seconds to load everything (not part of the targets).
    pub load_secs: f64,
    /// Fastest of three impact previews (seconds).
    pub impact_secs: f64,
    /// Users whose roles the previewed change alters.
    pub impact_users: usize,
    /// Target operations it would queue.
    pub impact_operations: usize,
    /// Seconds for the full reconciliation.
    pub reconcile_secs: f64,
    /// Resources it read from the target.
    pub reconcile_remote: u64,
    /// Resources it found unchanged.
    pub reconcile_unchanged: u64,
    /// Whether it found nothing to do.
    pub reconcile_clean: bool,
    /// Write requests (POST, PUT, PATCH, DELETE) the target received during it.
    pub reconcile_writes: usize,
    /// Peak resident memory of the process (MB).
    pub peak_rss_mb: f64,
}

/// Runs the policy benchmark.
pub async fn policy(
    postgres: Option<&str>,
    users: usize,
    groups: usize,
) -> BenchResult<PolicyReport> {
    crate::connectors::ensure_tls_provider();
    let bench = BenchStore::open(postgres).await?;
    let store = bench.store.clone();
    let result = run(store.clone(), users, groups.max(10)).await;
    bench.remove().await;
    result
}

async fn run(
    store: Arc<dyn LoadableStore>,
    users: usize,
    groups: usize,
) -> BenchResult<PolicyReport> {
    let actor = Actor::system("bench");
    let target = TargetDouble::start(store.clone(), "bench app").await?;
    let org = store.create_organization(&actor, "Bench Health").await?.id;
    let conn = store
        .create_connection(
            &actor,
            org,
            &NewConnection {
                name: "app".into(),
                kind: ConnectionKind::ScimTarget,
                base_url: Some(target.base_url.clone()),
                auth_method: AuthMethod::Bearer,
                settings: json!({"roles": ["staff", "icu"], "role_delivery": "roles"}),
            },
            Some(&Secret::new(target.token.clone())),
        )
        .await?;
    let staff = store.create_role(&actor, org, "staff", "").await?;
    let icu = store.create_role(&actor, org, "icu", "").await?;
    let rule = |pattern: &str, role: RoleId| RoleMappingDraft::by_display_name(pattern, true, role);
    store
        .create_role_mapping(&actor, org, &rule("ward-*", staff.id))
        .await?;
    store
        .create_role_mapping(&actor, org, &rule("ward-00*", icu.id))
        .await?;

    // The directory: every user in three wards.
    let t0 = Instant::now();
    let now = Timestamp::now();
    let local_users: Vec<User> = (0..users)
        .map(|i| super::directory_user(org, i, json!({"title": "Nurse"}), now))
        .collect();
    let wards: Vec<Group> = (0..groups)
        .map(|g| super::directory_group(org, format!("ward-{g:04}"), now))
        .collect();
    let mut memberships = Vec::with_capacity(users * 3);
    let mut of_user: Vec<Vec<usize>> = Vec::with_capacity(users);
    for (i, user) in local_users.iter().enumerate() {
        let set: BTreeSet<usize> = (0..3)
            .map(|k| (i * 7 + k * 613 + i / 97) % groups)
            .collect();
        memberships.extend(set.iter().map(|g| (wards[*g].id, user.id)));
        of_user.push(set.into_iter().collect());
    }

    // The target already holds every user exactly as scimdesk would send it.
    let roles = store.list_roles(org).await?;
    let policy = TargetPolicy::new(&conn, &roles)?;
    let resolver = RoleResolver::new(&store.list_role_mappings(org).await?);
    let mut remote_users = Vec::with_capacity(users);
    let mut links = Vec::with_capacity(users);
    for (i, u) in local_users.iter().enumerate() {
        let user_roles = resolver.user_roles(of_user[i].iter().map(|g| &wards[*g]));
        let doc = policy.user_document(u, &user_roles)?;
        let draft = doc_to_user_draft(&doc, None).map_err(StandInError::Scim)?;
        let remote = User::from_draft(UserId::new(), target.organization_id, &draft, now);
        links.push(TargetLink {
            organization_id: org,
            connection_id: conn.id,
            resource_type: ResourceType::User,
            local_id: u.id.0,
            remote_id: remote.id.to_string(),
            remote_etag: None,
            content_hash: crate::scim::render::content_hash(&doc),
            synced_at: now,
            last_sent: Some(Json(doc)),
        });
        remote_users.push(remote);
    }
    store
        .bulk_load(
            org,
            &BulkRows {
                users: &local_users,
                groups: &wards,
                memberships: &memberships,
                links: &links,
            },
        )
        .await?;
    store
        .bulk_load(
            target.organization_id,
            &BulkRows {
                users: &remote_users,
                ..Default::default()
            },
        )
        .await?;
    let load_secs = t0.elapsed().as_secs_f64();

    // Impact: icu for a second hundred wards.
    let change = MappingChange::Set {
        id: None,
        draft: rule("ward-01*", icu.id),
    };
    let mut impact_secs = f64::MAX;
    let mut last = None;
    for _ in 0..3 {
        let t = Instant::now();
        let i = crate::engine::commands::preview(store.as_ref(), org, &change).await?;
        impact_secs = impact_secs.min(t.elapsed().as_secs_f64());
        last = Some(i);
    }
    let last = last.ok_or_else(|| StandInError::Stalled("no impact run".into()))?;

    // Reconcile: nothing to do, nothing sent.
    let writes = |t: &TargetDouble| {
        ["POST", "PUT", "PATCH", "DELETE"]
            .iter()
            .map(|m| t.count(m, "/", 200) + t.count(m, "/", 201) + t.count(m, "/", 204))
            .sum::<usize>()
    };
    let before = writes(&target);
    let t = Instant::now();
    let report =
        crate::engine::commands::reconcile(store.as_ref(), &actor, org, conn.id, false).await?;
    let reconcile_secs = t.elapsed().as_secs_f64();
    if let Some(e) = &report.run.error {
        return Err(StandInError::Stalled(format!(
            "the reconciliation failed: {e}"
        )));
    }
    Ok(PolicyReport {
        backend: store.backend().to_string(),
        users,
        groups,
        memberships: memberships.len(),
        load_secs,
        impact_secs,
        impact_users: last.role_changes.len(),
        impact_operations: last.operations.len(),
        reconcile_secs,
        reconcile_remote: report.counts.remote,
        reconcile_unchanged: report.counts.unchanged,
        reconcile_clean: report.counts.is_clean(),
        reconcile_writes: writes(&target) - before,
        peak_rss_mb: super::peak_rss_mb(),
    })
}
