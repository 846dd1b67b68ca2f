//! What a source reports and what syncing it changes: the plain data passed between a
//! source's reader (`connectors`), the sync plan (`policy::sync`), the store that applies it
//! in batches, and the record of each run.

use super::{
    ConnectionId, Email, GroupDraft, GroupId, OrganizationId, SettingsError, SyncRunId, Timestamp,
    UserDraft, UserId,
};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;

/// A user as a source reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceUser {
    /// The source's own, stable id for the user (kept as the user's `externalId`).
    pub external_id: String,
    /// The user's login name.
    pub user_name: String,
    /// Name to show.
    pub display_name: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// E-mail addresses.
    pub emails: Vec<Email>,
    /// Whether the source has the user enabled.
    pub active: bool,
    /// Other attributes worth keeping (a JSON object).
    pub attributes: serde_json::Value,
}

/// A group as a source reports it. Groups may hold groups; the plan flattens them, so a
/// member of `/hospital/icu` is also a member of `/hospital` for mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceGroup {
    /// The source's own, stable id for the group.
    pub external_id: String,
    /// Its name.
    pub display_name: String,
    /// Its full path (`/hospital/icu`) when the source has a hierarchy.
    pub path: Option<String>,
    /// Its direct members, by the users' external ids.
    pub members: Vec<String>,
    /// The groups directly inside it, by their external ids.
    pub child_groups: Vec<String>,
}

/// Everything one full read of a source returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceSnapshot {
    /// Every user.
    pub users: Vec<SourceUser>,
    /// Every group.
    pub groups: Vec<SourceGroup>,
    /// Where an incremental sync would start from after this read, if the source has one.
    pub cursor: Option<String>,
}

/// What changed at a source since its cursor, as an incremental read reports it: the
/// resources a change feed named, each re-read whole (so applying a change twice is applying
/// the same state twice).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceChanges {
    /// Users that changed, as they are now.
    pub users: Vec<SourceUser>,
    /// Users the source no longer has, by external id.
    pub gone_users: Vec<String>,
    /// The groups to plan again, if any changed.
    pub groups: Option<GroupScope>,
    /// Where the next incremental read starts; `None` keeps the stored one.
    pub cursor: Option<String>,
}

/// Groups re-read by an incremental sync, and which of the source's stored groups they
/// replace: stored groups in scope that are not in `groups` are gone at the source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupScope {
    /// The groups as they are now, whole trees where the source nests them.
    pub groups: Vec<SourceGroup>,
    /// Stored groups of these external ids are in scope...
    pub ids: Vec<String>,
    /// ...and so are those whose path is one of these or lies below one of them.
    pub paths: Vec<String>,
    /// Every stored group of the source is in scope (its whole group list was re-read).
    pub everything: bool,
}

impl GroupScope {
    /// Whether a stored group (by its external id and path) is one this scope replaces.
    pub fn covers(&self, external_id: Option<&str>, path: &str) -> bool {
        self.everything
            || external_id.is_some_and(|e| self.ids.iter().any(|i| i == e))
            || self.paths.iter().any(|p| {
                path == p
                    || path
                        .strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
    }
}

/// One batch of what a sync changes, applied by the store in one transaction (with what the
/// changes cause at targets, their audit events, and the cursor when the batch carries it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncBatch {
    /// Users to create, with the ids the sync gives them (so it knows them without reading
    /// them back).
    pub create_users: Vec<(UserId, UserDraft)>,
    /// Users to replace (updates, suspensions and reactivations), by id.
    pub update_users: Vec<(UserId, UserDraft)>,
    /// Groups to create, with their (flattened) members.
    pub create_groups: Vec<GroupDraft>,
    /// Groups to replace, with their (flattened) members, by id.
    pub update_groups: Vec<(GroupId, GroupDraft)>,
    /// Groups gone at the source.
    pub delete_groups: Vec<GroupId>,
    /// The source's cursor once this batch is applied.
    pub cursor: Option<String>,
}

impl SyncBatch {
    /// Whether it changes nothing (a cursor alone still counts as a change).
    pub fn is_empty(&self) -> bool {
        self.create_users.is_empty()
            && self.update_users.is_empty()
            && self.create_groups.is_empty()
            && self.update_groups.is_empty()
            && self.delete_groups.is_empty()
            && self.cursor.is_none()
    }

    /// How many resources it writes.
    pub fn len(&self) -> usize {
        self.create_users.len()
            + self.update_users.len()
            + self.create_groups.len()
            + self.update_groups.len()
            + self.delete_groups.len()
    }
}

/// What a sync found and did, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCounts {
    /// Users the source reported.
    pub source_users: u64,
    /// Groups the source reported.
    pub source_groups: u64,
    /// Users created.
    pub created: u64,
    /// Users whose content changed.
    pub updated: u64,
    /// Users suspended: disabled at the source, or gone from it.
    pub suspended: u64,
    /// Suspended users the source has enabled again.
    pub reactivated: u64,
    /// Users that needed nothing.
    pub unchanged: u64,
    /// Source users left alone because another source owns a user of that userName.
    pub conflicts: u64,
    /// Groups created.
    pub groups_created: u64,
    /// Groups whose name, path or members changed.
    pub groups_updated: u64,
    /// Groups gone at the source, deleted here.
    pub groups_deleted: u64,
    /// Memberships added (after flattening).
    pub memberships_added: u64,
    /// Memberships removed (after flattening).
    pub memberships_removed: u64,
}

impl SyncCounts {
    /// Whether the run changed nothing.
    pub fn changed_nothing(&self) -> bool {
        self.created == 0
            && self.updated == 0
            && self.suspended == 0
            && self.reactivated == 0
            && self.groups_created == 0
            && self.groups_updated == 0
            && self.groups_deleted == 0
    }
}

/// One sync of a source, with what it did.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct SyncRun {
    /// Stable identifier.
    pub id: SyncRunId,
    /// The owning tenant.
    pub organization_id: OrganizationId,
    /// The source.
    pub connection_id: ConnectionId,
    /// Start.
    pub started_at: Timestamp,
    /// End.
    pub finished_at: Timestamp,
    /// Whether it read the whole source (else: from its cursor).
    pub full_sync: bool,
    /// Whether it only looked.
    pub dry_run: bool,
    /// Who asked (an operator, or `engine` for the schedule).
    pub actor: String,
    /// What it found and did ([`SyncCounts`]).
    pub counts: Json<serde_json::Value>,
    /// Why it stopped, if it did.
    pub error: Option<String>,
    /// What the operator should know about how it ran (an incremental sync that ran in full
    /// because the source's change feed is off, and why).
    pub note: Option<String>,
}

/// The deletion guard of a source: a sync that would suspend more than `share` of the
/// source's active users, and at least `min_users` of them, stops before writing anything.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SyncGuard {
    /// The share of the source's active users a sync may suspend (0.10 = 10 %).
    pub share: f64,
    /// Suspensions below this many never trip the guard.
    pub min_users: u64,
}

impl Default for SyncGuard {
    fn default() -> Self {
        Self {
            share: 0.10,
            min_users: 5,
        }
    }
}

impl SyncGuard {
    /// The guard a source's settings give (`sync_guard_share`, `sync_guard_min_users`), the
    /// default for what they leave out.
    pub fn from_settings(settings: &serde_json::Value) -> Result<Self, SettingsError> {
        let mut guard = Self::default();
        if let Some(v) = settings.get("sync_guard_share") {
            guard.share = v
                .as_f64()
                .filter(|s| (0.0..=1.0).contains(s))
                .ok_or_else(|| {
                    SettingsError::Malformed(format!(
                        "sync_guard_share must be a share from 0 to 1, not {v}"
                    ))
                })?;
        }
        if let Some(v) = settings.get("sync_guard_min_users") {
            guard.min_users = v.as_u64().ok_or_else(|| {
                SettingsError::Malformed(format!(
                    "sync_guard_min_users must be a whole number, not {v}"
                ))
            })?;
        }
        Ok(guard)
    }

    /// Whether suspending `suspending` of `active` users is more than the guard allows.
    pub fn trips(&self, suspending: u64, active: u64) -> bool {
        suspending >= self.min_users && (suspending as f64) > self.share * active as f64
    }
}

/// The subject key of a source's guard exception.
pub fn sync_guard_key(connection: ConnectionId) -> String {
    format!("sync_guard:{connection}")
}
