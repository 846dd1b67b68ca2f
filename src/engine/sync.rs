//! Syncing a source that scimdesk pulls from, driven: the source is read whole, what the store
//! holds for it is read, policy plans the users ([`plan_users`], behind the deletion guard),
//! the store applies them in batches, then the groups are planned against the users' ids and
//! applied the same way. Every batch is one store transaction through the writes a push makes,
//! so the fan-out to targets, the queue and the audit log treat a synced change exactly as a
//! pushed one. The run is recorded with its counts, also when it stops.
//!
//! A sync is full (the whole source is read; a stored user it leaves out is gone) or
//! incremental (the reader's change feed names what changed since the stored cursor, and only
//! that is read and planned). An incremental sync whose feed cannot serve runs in full and
//! says why in the run's note. The cursor is written with the last batch of the changes it
//! covers, so a sync that dies midway starts again from where the last whole one ended.

use super::commands::wake_other_processes;
use super::delivery::{ClientSetupError, target_client};
use crate::connectors::keycloak::{self, KeycloakSource};
use crate::connectors::scim_source::{PAGE, ScimSource};
use crate::connectors::source::{Incremental, Known, SourceError, SourceReader};
use crate::connectors::zitadel::{self, ZitadelSource, ZitadelUsers};
use crate::domain::*;
use crate::policy::sync::{GuardTripped, StoredUser, plan_groups, plan_users, suspension_of};
use crate::store::{ListRange, Store, StoreError};
use serde::Serialize;
use std::collections::HashMap;

/// Resources written per store transaction.
const BATCH: usize = 500;
/// How long a sync's claim on its source lasts unless renewed (`sync_claim_secs`): the sync
/// renews it every third of that while it runs, so a sync of any length keeps it, and one
/// whose process died frees it this soon.
const CLAIM_FOR: std::time::Duration = std::time::Duration::from_secs(60);
/// Rows of each kind a report names.
const SAMPLE: usize = 10;

/// How to sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Read the whole source (else: what changed since the stored cursor, where the source
    /// has a change feed and a cursor is stored).
    pub full: bool,
    /// Only report what would change.
    pub dry_run: bool,
    /// Apply even what the deletion guard would stop (an operator's "apply anyway").
    pub force: bool,
    /// Record nothing for an incremental sync that found nothing to change (the schedule's
    /// polls: a run row and an audit event every few seconds would drown the real ones).
    pub quiet: bool,
}

/// The first rows of each kind of change, for the person reading the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyncSamples {
    /// userNames created.
    pub created: Vec<String>,
    /// userNames updated (suspensions and reactivations included).
    pub updated: Vec<String>,
    /// userNames left to another source.
    pub conflicts: Vec<String>,
    /// Groups created.
    pub groups_created: Vec<String>,
    /// Groups changed.
    pub groups_updated: Vec<String>,
}

/// What a sync did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncReport {
    /// The recorded run.
    pub run: SyncRun,
    /// Its counts.
    pub counts: SyncCounts,
    /// The first rows of each kind.
    pub samples: SyncSamples,
    /// Set when the deletion guard stopped the sync (nothing was written).
    pub guard: Option<GuardRefusal>,
}

/// The deletion guard's refusal, as a report gives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardRefusal {
    /// Users it would have suspended.
    pub suspending: u64,
    /// Active users of the source.
    pub active: u64,
    /// The first of them.
    pub first: Vec<String>,
    /// The exception raised for an operator (none on a dry run).
    pub exception: Option<ExceptionId>,
}

/// Why a sync could not start.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The connection is a target, not a source.
    #[error(
        "{0} is a target; targets are reconciled (`connection sync NAME --full`), sources are synced"
    )]
    NotASource(String),
    /// Pushing sources (`scim_inbound`) are not read; they push to the inbound server.
    #[error("{0} pushes to scimdesk's inbound SCIM server; there is nothing to pull")]
    Pushed(String),
    /// A source kind whose reader does not exist yet.
    #[error(
        "{name} is a {kind} source; its users arrive when they sign in, there is nothing to pull"
    )]
    Unsupported {
        /// The connection.
        name: String,
        /// Its kind.
        kind: ConnectionKind,
    },
    /// Another process (or task) is syncing this source now.
    #[error("{0} is being synced by another process; try again when it is done")]
    Busy(String),
    /// The guard settings cannot be read.
    #[error("{connection}: {error}")]
    Settings {
        /// The connection.
        connection: String,
        /// Why.
        error: SettingsError,
    },
}

/// Syncs one source. Returns the report, with `run.error` set when the source could not be
/// read or written (the store then holds what it held before the failing batch: batches that
/// went through stand, each whole).
pub async fn sync_source(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    connection_id: ConnectionId,
    options: SyncOptions,
) -> Result<SyncReport, SyncError> {
    let started_at = Timestamp::now();
    let connection = store
        .connection(org, connection_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("connection {connection_id}")))?;
    match connection.kind {
        ConnectionKind::ScimSource | ConnectionKind::Keycloak | ConnectionKind::Zitadel => {}
        ConnectionKind::ScimInbound => return Err(SyncError::Pushed(connection.name)),
        ConnectionKind::Saml => {
            return Err(SyncError::Unsupported {
                name: connection.name,
                kind: connection.kind,
            });
        }
        ConnectionKind::ScimTarget => return Err(SyncError::NotASource(connection.name)),
    }
    let guard =
        SyncGuard::from_settings(&connection.settings.0).map_err(|error| SyncError::Settings {
            connection: connection.name.clone(),
            error,
        })?;
    // One sync per source at a time, across processes; the claim expires if this one dies.
    let owner = uuid::Uuid::now_v7();
    let lease = interval(&connection, "sync_claim_secs", CLAIM_FOR).unwrap_or(CLAIM_FOR);
    if !store
        .claim_sync(org, connection_id, owner, Timestamp::now().after(lease))
        .await?
    {
        return Err(SyncError::Busy(connection.name));
    }
    let mut run = Run {
        store,
        actor,
        org,
        connection: &connection,
        options,
        counts: SyncCounts::default(),
        samples: SyncSamples::default(),
        guard: None,
        incremental: false,
        note: None,
        group_rows: None,
    };
    // The claim is renewed while the run goes; a run that loses it (its renewals failed
    // past the lease, and another process took over) stops.
    let renew = async {
        loop {
            tokio::time::sleep(lease / 3).await;
            // A failed renewal is tried again; only a claim another owner holds stops us.
            if let Ok(false) = store
                .claim_sync(org, connection_id, owner, Timestamp::now().after(lease))
                .await
            {
                return;
            }
        }
    };
    let error = tokio::select! {
        r = run.go(guard) => r.err().map(|e| e.to_string()),
        () = renew => Some("another process took the source over (this sync's claim expired)".into()),
    };
    let released = store.release_sync(org, connection_id, owner).await;
    let record = SyncRun {
        id: SyncRunId::new(),
        organization_id: org,
        connection_id,
        started_at,
        finished_at: Timestamp::now(),
        full_sync: !run.incremental,
        dry_run: options.dry_run,
        actor: actor.name.clone(),
        counts: Json(serde_json::to_value(&run.counts).unwrap_or(serde_json::Value::Null)),
        error,
        note: run.note.clone(),
    };
    let idle = options.quiet
        && run.incremental
        && record.error.is_none()
        && run.counts.changed_nothing()
        && run.guard.is_none();
    if !idle {
        store.record_sync_run(&record).await?;
    }
    released?;
    if !options.dry_run && !run.counts.changed_nothing() {
        wake_other_processes(store, org).await;
    }
    Ok(SyncReport {
        run: record,
        counts: run.counts,
        samples: run.samples,
        guard: run.guard,
    })
}

/// Why a run stopped; recorded with it.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("cannot call the source: {0}")]
    Client(#[from] ClientSetupError),
    #[error("reading the source: {0}")]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Guarded(#[from] GuardTripped),
    #[error("a {0} source needs the setting {1} (`--setting {1}=…`)")]
    Missing(&'static str, &'static str),
}

/// How often a source is synced in full when its settings do not say
/// (`full_sync_every_secs`; 0 turns the schedule off).
pub const FULL_SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// How often a source without a change feed (Zitadel) is synced in full when its settings do
/// not say: it can only keep up by reading.
pub const FULL_SYNC_WITHOUT_FEED_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// How often a source with a change feed is synced incrementally when its settings do not say
/// (`incremental_sync_every_secs`; 0 turns it off).
pub const INCREMENTAL_SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A duration setting in seconds: the default when unset, `None` when 0.
fn interval(
    connection: &Connection,
    key: &str,
    default: std::time::Duration,
) -> Option<std::time::Duration> {
    match connection.settings.0.get(key).and_then(|v| v.as_u64()) {
        Some(0) => None,
        Some(secs) => Some(std::time::Duration::from_secs(secs)),
        None => Some(default),
    }
}

/// How often `connection` is synced in full by the schedule (`full_sync_every_secs`): `None`
/// when its schedule is off.
pub fn full_sync_interval(connection: &Connection) -> Option<std::time::Duration> {
    // A SAML source is never read: its users arrive as they sign in.
    if !connection.kind.is_pulled() {
        return None;
    }
    let default = if has_change_feed(connection.kind) {
        FULL_SYNC_EVERY
    } else {
        FULL_SYNC_WITHOUT_FEED_EVERY
    };
    interval(connection, "full_sync_every_secs", default)
}

/// How often `connection` is synced incrementally by the schedule
/// (`incremental_sync_every_secs`): `None` when off, or when the source has no change feed.
pub fn incremental_sync_interval(connection: &Connection) -> Option<std::time::Duration> {
    if !has_change_feed(connection.kind) {
        return None;
    }
    interval(
        connection,
        "incremental_sync_every_secs",
        INCREMENTAL_SYNC_EVERY,
    )
}

/// Whether sources of this kind can be read incrementally: Keycloak (admin events) and SCIM
/// servers (`meta.lastModified`); Zitadel's APIs have no feed.
pub fn has_change_feed(kind: ConnectionKind) -> bool {
    matches!(kind, ConnectionKind::Keycloak | ConnectionKind::ScimSource)
}

/// A string setting of `conn`, if set and not empty.
fn setting<'a>(conn: &'a Connection, key: &str) -> Option<&'a str> {
    conn.settings
        .0
        .get(key)
        .and_then(|r| r.as_str())
        .filter(|r| !r.is_empty())
}

/// The reader of the source `conn`.
async fn reader(store: &dyn Store, conn: &Connection) -> Result<Box<dyn SourceReader>, RunError> {
    let mut settings = TargetSettings::from_json(&conn.settings.0).unwrap_or_default();
    // Rows asked per page (`page_size`); the source may answer with fewer.
    let page = |default: u32| {
        conn.settings
            .0
            .get("page_size")
            .and_then(|p| p.as_u64())
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0)
            .unwrap_or(default)
    };
    let base = conn
        .base_url
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    let oauth = conn.auth_method == AuthMethod::OAuth2ClientCredentials;
    match conn.kind {
        ConnectionKind::Keycloak => {
            let realm = setting(conn, "realm")
                .ok_or(RunError::Missing("Keycloak", "realm"))?
                .to_string();
            // The realm's own issuer, unless another is configured.
            if oauth && settings.issuer.is_none() && settings.token_url.is_none() {
                settings.issuer = Some(format!("{base}/realms/{realm}"));
            }
            let client = target_client(store, conn, &settings)
                .await?
                .answering_json();
            Ok(Box::new(KeycloakSource::new(
                client,
                &realm,
                page(keycloak::PAGE),
            )))
        }
        ConnectionKind::Zitadel => {
            let org = setting(conn, "organization_id")
                .ok_or(RunError::Missing("Zitadel", "organization_id"))?
                .to_string();
            // The instance is its own issuer; its APIs want their audience in the token.
            if oauth && settings.issuer.is_none() && settings.token_url.is_none() {
                settings.issuer = Some(base.clone());
            }
            if oauth && settings.scope.is_none() {
                settings.scope = Some("openid urn:zitadel:iam:org:project:id:zitadel:aud".into());
            }
            let users = match setting(conn, "users_from") {
                None | Some("v2") => ZitadelUsers::V2,
                Some("scim") => {
                    let mut scim = conn.clone();
                    scim.base_url = Some(format!("{base}/scim/v2/{org}"));
                    ZitadelUsers::Scim(Box::new(ScimSource::new(
                        target_client(store, &scim, &settings).await?,
                        page(PAGE),
                    )))
                }
                Some(_) => return Err(RunError::Missing("Zitadel", "users_from (v2 or scim)")),
            };
            let client = target_client(store, conn, &settings).await?;
            Ok(Box::new(ZitadelSource::new(
                client,
                &org,
                setting(conn, "project_id"),
                page(zitadel::PAGE),
                users,
            )))
        }
        _ => {
            let client = target_client(store, conn, &settings).await?;
            Ok(Box::new(ScimSource::new(client, page(PAGE))))
        }
    }
}

/// What one run read, full or incremental, in the one shape the plan takes.
struct Reading {
    /// Users read (all of them, or those that changed).
    users: Vec<SourceUser>,
    /// `None` for a full read; else the users gone at the source.
    gone: Option<Vec<String>>,
    /// The groups to plan, and which stored ones they replace.
    groups: Option<GroupScope>,
    /// The cursor after this read.
    cursor: Option<String>,
}

impl Reading {
    fn full(snapshot: SourceSnapshot) -> Self {
        Self {
            users: snapshot.users,
            gone: None,
            groups: Some(GroupScope {
                groups: snapshot.groups,
                everything: true,
                ..Default::default()
            }),
            cursor: snapshot.cursor,
        }
    }
}

/// One run in progress.
struct Run<'a> {
    store: &'a dyn Store,
    actor: &'a Actor,
    org: OrganizationId,
    connection: &'a Connection,
    options: SyncOptions,
    counts: SyncCounts,
    samples: SyncSamples,
    guard: Option<GuardRefusal>,
    /// Whether it read only what changed.
    incremental: bool,
    /// Why an incremental sync ran in full.
    note: Option<String>,
    /// The source's stored groups, once read (an incremental read needs their paths before
    /// the group half needs them again; user writes do not change them).
    group_rows: Option<Vec<Group>>,
}

impl Run<'_> {
    /// Reads the source: what changed, when asked and the source can say, else everything.
    async fn read(
        &mut self,
        local: &[StoredUser],
        stored: Option<&str>,
    ) -> Result<Reading, RunError> {
        let reader = reader(self.store, self.connection).await?;
        if !self.options.full {
            match stored {
                Some(cursor) => {
                    let known = self.known(local).await?;
                    match reader.read_changes(cursor, &known).await? {
                        Incremental::Changes(c) => {
                            self.incremental = true;
                            return Ok(Reading {
                                users: c.users,
                                gone: Some(c.gone_users),
                                groups: c.groups,
                                cursor: c.cursor,
                            });
                        }
                        Incremental::Unavailable(why) => self.note = Some(why),
                    }
                }
                None if has_change_feed(self.connection.kind) => {
                    self.note = Some(
                        "no cursor is stored yet (the source gave none at its last full sync)"
                            .into(),
                    );
                }
                None => {}
            }
        }
        Ok(Reading::full(reader.read_all().await?))
    }

    /// What the store holds for the source, as an incremental read needs it.
    async fn known(&mut self, local: &[StoredUser]) -> Result<Known, StoreError> {
        let mut known = Known::default();
        for u in local {
            if u.source_connection_id == Some(self.connection.id)
                && let Some(e) = &u.external_id
            {
                known.users.insert(e.clone());
                known
                    .user_names
                    .insert(u.user_name.to_lowercase(), e.clone());
            }
        }
        let rows = self.source_group_rows().await?;
        for g in &rows {
            if let Some(e) = &g.external_id {
                known.group_paths.insert(e.clone(), g.path());
            }
        }
        self.group_rows = Some(rows);
        Ok(known)
    }

    async fn go(&mut self, guard: SyncGuard) -> Result<(), RunError> {
        let conn = self.connection;
        let local = self.all_users().await?;
        let stored = self.store.sync_cursor(self.org, conn.id).await?;
        let Reading {
            users: source_users,
            gone,
            groups: group_scope,
            cursor: new_cursor,
        } = self.read(&local, stored.as_deref()).await?;
        let planned = plan_users(
            conn.id,
            &source_users,
            gone.as_deref(),
            &local,
            guard,
            self.options.force,
        );
        // The plan holds what it needs; a large source's users are not kept twice.
        drop(source_users);
        let users = match planned {
            Ok(plan) => plan,
            Err(tripped) => return Err(self.refuse(tripped).await?.into()),
        };
        self.counts = users.counts.clone();
        self.samples.created = users
            .create
            .iter()
            .take(SAMPLE)
            .map(|d| d.user_name.clone())
            .collect();
        self.samples.updated = users
            .update
            .iter()
            .map(|(_, d)| &d.user_name)
            .chain(users.suspend.iter().map(|(_, name)| name))
            .take(SAMPLE)
            .cloned()
            .collect();
        self.samples.conflicts = users.conflicts.iter().take(SAMPLE).cloned().collect();

        // The users' ids by the source's ids, as the group half needs them: those stored,
        // those an update gives this source's id (a take-over by userName), and the new ones.
        // Then the organization's users are let go: a large source is not held twice.
        let mut ids: HashMap<String, UserId> = local
            .iter()
            .filter(|u| u.source_connection_id == Some(conn.id))
            .filter_map(|u| u.external_id.clone().map(|e| (e, u.id)))
            .collect();
        drop(local);
        for (id, d) in &users.update {
            if let Some(e) = &d.external_id {
                ids.insert(e.clone(), *id);
            }
        }
        let creates: Vec<(UserId, UserDraft)> = users
            .create
            .into_iter()
            .map(|d| (UserId::new(), d))
            .collect();
        for (id, d) in &creates {
            if let Some(e) = &d.external_id {
                ids.insert(e.clone(), *id);
            }
        }
        if !self.options.dry_run {
            let mut batch = SyncBatch::default();
            for c in creates {
                batch.create_users.push(c);
                self.flush_if_full(&mut batch).await?;
            }
            for u in users.update {
                batch.update_users.push(u);
                self.flush_if_full(&mut batch).await?;
            }
            // Users gone from the source are suspended as they are stored: read back in
            // pages, as only these few are needed whole.
            let gone: Vec<UserId> = users.suspend.iter().map(|(id, _)| *id).collect();
            for chunk in gone.chunks(BATCH) {
                for user in self.store.users_by_ids(self.org, chunk).await? {
                    batch.update_users.push((user.id, suspension_of(&user)));
                    self.flush_if_full(&mut batch).await?;
                }
            }
            self.flush(&mut batch).await?;
        }

        // The cursor goes with the last batch, so it never runs ahead of the changes; an
        // unchanged one is not written again.
        let cursor = new_cursor.filter(|c| stored.as_ref() != Some(c));
        let Some(scope) = group_scope else {
            if !self.options.dry_run {
                let mut batch = SyncBatch {
                    cursor,
                    ..Default::default()
                };
                self.flush(&mut batch).await?;
            }
            return Ok(());
        };
        let reported: std::collections::HashSet<&str> = scope
            .groups
            .iter()
            .map(|g| g.external_id.as_str())
            .collect();
        let groups = self
            .source_groups(|g| {
                let e = g.external_id.as_deref();
                scope.covers(e, &g.path()) || e.is_some_and(|e| reported.contains(e))
            })
            .await?;
        let plan = plan_groups(conn.id, &scope.groups, &ids, &groups, &mut self.counts);
        self.samples.groups_created = plan
            .create
            .iter()
            .take(SAMPLE)
            .map(|g| g.display_name.clone())
            .collect();
        self.samples.groups_updated = plan
            .update
            .iter()
            .take(SAMPLE)
            .map(|(_, g)| g.display_name.clone())
            .collect();
        if self.options.dry_run {
            return Ok(());
        }
        let mut batch = SyncBatch::default();
        for g in plan.create {
            batch.create_groups.push(g);
            self.flush_if_full(&mut batch).await?;
        }
        for g in plan.update {
            batch.update_groups.push(g);
            self.flush_if_full(&mut batch).await?;
        }
        for g in plan.delete {
            batch.delete_groups.push(g);
            self.flush_if_full(&mut batch).await?;
        }
        batch.cursor = cursor;
        self.flush(&mut batch).await?;
        if self.options.force {
            self.settle_guard("applied anyway").await?;
        }
        Ok(())
    }

    async fn flush_if_full(&self, batch: &mut SyncBatch) -> Result<(), StoreError> {
        if batch.len() >= BATCH {
            self.flush(batch).await?;
        }
        Ok(())
    }

    async fn flush(&self, batch: &mut SyncBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let full = std::mem::take(batch);
        self.store
            .apply_sync_batch(self.actor, self.org, self.connection.id, &full)
            .await
    }

    /// Every user of the organization (userNames are unique across sources), as the plan
    /// compares them: a page at a time is held whole.
    async fn all_users(&self) -> Result<Vec<StoredUser>, StoreError> {
        let mut users = Vec::new();
        let mut after = None;
        loop {
            let page = self.store.users_after(self.org, after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            users.extend(page.iter().map(StoredUser::of));
        }
        Ok(users)
    }

    /// The source's groups in the store that `keep` chooses, with their members (read for
    /// those only: an incremental sync of one tree does not read every group's members).
    async fn source_groups(
        &mut self,
        keep: impl Fn(&Group) -> bool,
    ) -> Result<Vec<(Group, Vec<UserId>)>, StoreError> {
        let mut mine = match self.group_rows.take() {
            Some(rows) => rows,
            None => self.source_group_rows().await?,
        };
        mine.retain(|g| keep(g));
        let ids: Vec<GroupId> = mine.iter().map(|g| g.id).collect();
        let mut members: HashMap<GroupId, Vec<UserId>> = HashMap::new();
        for chunk in ids.chunks(1000) {
            for (g, u) in self.store.memberships_of_groups(self.org, chunk).await? {
                members.entry(g).or_default().push(u);
            }
        }
        Ok(mine
            .into_iter()
            .map(|g| {
                let m = members.remove(&g.id).unwrap_or_default();
                (g, m)
            })
            .collect())
    }

    /// The source's groups in the store.
    async fn source_group_rows(&self) -> Result<Vec<Group>, StoreError> {
        let mut mine = Vec::new();
        let mut offset = 0u64;
        loop {
            let page = self
                .store
                .list_groups(
                    self.org,
                    ListRange {
                        offset,
                        limit: 1000,
                    },
                )
                .await?;
            let n = page.len();
            offset += n as u64;
            mine.extend(
                page.into_iter()
                    .filter(|g| g.source_connection_id == Some(self.connection.id)),
            );
            if n < 1000 {
                break;
            }
        }
        Ok(mine)
    }

    /// The guard stopped the sync: an exception for an operator (not on a dry run).
    async fn refuse(&mut self, tripped: GuardTripped) -> Result<GuardTripped, StoreError> {
        let conn = self.connection;
        let mut exception = None;
        if !self.options.dry_run {
            let raised = self
                .store
                .raise_exception(
                    self.org,
                    &NewException {
                        kind: ExceptionKind::SyncGuard,
                        subject_key: sync_guard_key(conn.id),
                        connection_id: Some(conn.id),
                        subject: conn.name.clone(),
                        summary: tripped.to_string(),
                        details: serde_json::json!({
                            "suspending": tripped.suspending,
                            "active": tripped.active,
                            "first": tripped.first,
                        }),
                    },
                )
                .await?;
            exception = match raised {
                Some(e) => Some(e.id),
                None => self.open_guard().await?.map(|e| e.id),
            };
        }
        self.counts.suspended = tripped.suspending;
        self.guard = Some(GuardRefusal {
            suspending: tripped.suspending,
            active: tripped.active,
            first: tripped.first.clone(),
            exception,
        });
        Ok(tripped)
    }

    /// The source's open guard exception, if any.
    async fn open_guard(&self) -> Result<Option<PolicyException>, StoreError> {
        Ok(self
            .store
            .list_exceptions(
                self.org,
                &ExceptionFilter {
                    state: Some(ExceptionState::Open),
                    kind: Some(ExceptionKind::SyncGuard),
                    connection_id: Some(self.connection.id),
                    offset: 0,
                    limit: 1,
                },
            )
            .await?
            .pop())
    }

    /// A forced sync settles the guard exception it answers.
    async fn settle_guard(&self, how: &str) -> Result<(), StoreError> {
        if let Some(e) = self.open_guard().await? {
            self.store
                .settle_exception(self.actor, self.org, e.id, ExceptionState::Resolved, how)
                .await?;
        }
        Ok(())
    }
}
