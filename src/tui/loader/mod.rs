//! Reads what the workbench shows and carries out its commands, off the render path. Cut by
//! concern: [`panes`] reads each pane's rows, [`details`] what a detail view shows,
//! [`commands`] runs engine commands as the operator, [`filters`] parses the `/` filters.

mod commands;
mod details;
mod filters;
mod panes;

pub use filters::{FilterError, filter_terms, parse_time};

use super::data::*;
use super::state::{LoadRequest, Pane};
use crate::domain::*;
use crate::engine::commands::{Guarded, PolicyError};
use crate::engine::{Engine, HealthThresholds};
use crate::policy::impact::Guard;
use crate::store::{Store, StoreError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Why a read or a command from the workbench gave no answer; its text is what the message
/// line shows.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An engine command refused.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The pane's filter cannot be read.
    #[error("filter: {0}")]
    Filter(#[from] FilterError),
    /// The Users pane's search is not a filter.
    #[error("search: {0}")]
    Search(String),
    /// What the view shows no longer exists.
    #[error("{0}")]
    Gone(&'static str),
    /// The command does not apply to what is selected.
    #[error("{0}")]
    NotApplicable(&'static str),
    /// A source's sync could not start, or stopped.
    #[error("{0}")]
    Sync(String),
    /// The guard refused a mapping change that was not forced.
    #[error("{0} (not applied)")]
    NotApplied(Guarded),
}

/// Minutes of traffic in a connection's sparkline.
pub const SPARK_MINUTES: usize = 30;

/// What the loader needs: the store, the operator, the guard and the health thresholds, and
/// the engine of this process when its workers run (told about connection changes).
#[derive(Clone)]
pub struct Loader {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Who the audit log records.
    pub actor: Actor,
    /// The mass-removal guard.
    pub guard: Guard,
    /// Health thresholds.
    pub thresholds: HealthThresholds,
    /// This process's engine, if it delivers.
    pub engine: Option<Arc<Engine>>,
    /// The last health read, reused for a while by panes other than Connections.
    pub health_cache: HealthCache,
    /// The operator's levels (`[access]`): a command they may not take is refused, saying why.
    pub grants: crate::domain::Grants,
}

/// Health is the costly part of a read (queue counts and a day of statistics per target), so
/// panes other than Connections reuse it for [`HEALTH_MAX_AGE`]; commands clear it.
#[derive(Clone, Default)]
pub struct HealthCache(Arc<Mutex<Option<CachedHealth>>>);

/// When health was read, for which organization, and the rows.
type CachedHealth = (Instant, OrganizationId, Vec<ConnectionRow>);

/// How long other panes reuse a health read.
pub const HEALTH_MAX_AGE: Duration = Duration::from_secs(3);

impl HealthCache {
    fn get(&self, org: OrganizationId) -> Option<Vec<ConnectionRow>> {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some((at, o, rows)) if *o == org && at.elapsed() < HEALTH_MAX_AGE => Some(rows.clone()),
            _ => None,
        }
    }

    fn put(&self, org: OrganizationId, rows: &[ConnectionRow]) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), org, rows.to_vec()));
    }

    fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl Loader {
    /// Reads the current pane.
    pub async fn load(&self, req: &LoadRequest) -> Result<Loaded, LoadError> {
        let store = self.store.as_ref();
        let mut orgs: Vec<OrgRef> = store
            .list_organizations()
            .await?
            .into_iter()
            .map(|o| OrgRef {
                id: o.id,
                name: o.name,
            })
            .collect();
        orgs.sort_by_key(|a| a.name.to_lowercase());
        let org = match req.organization {
            Some(id) => orgs.iter().find(|o| o.id == id).cloned(),
            None => orgs.first().cloned(),
        };
        let at = Timestamp::now();
        let Some(org) = org else {
            return Ok(Loaded {
                organizations: orgs,
                organization: None,
                connections: Vec::new(),
                roles: Vec::new(),
                body: empty_body(req.pane),
                at,
            });
        };
        let connections = match self.health_cache.get(org.id) {
            Some(rows) if req.pane != Pane::Connections => rows,
            _ => {
                let rows = self.connection_rows(org.id).await?;
                self.health_cache.put(org.id, &rows);
                rows
            }
        };
        let roles = store.list_roles(org.id).await?;
        let body = match req.pane {
            Pane::Connections => PaneData::Connections,
            Pane::Queue => PaneData::Queue(self.queue(org.id, &connections, req).await?),
            Pane::Failed => PaneData::Failed(self.failed(org.id, &connections, req).await?),
            Pane::Mappings => {
                PaneData::Mappings(self.mappings(org.id, &connections, &roles).await?)
            }
            Pane::Users => PaneData::Users(self.users(org.id, req).await?),
            Pane::Audit => PaneData::Audit(self.audit(org.id, req).await?),
        };
        Ok(Loaded {
            organizations: orgs,
            organization: Some(org),
            connections,
            roles,
            body,
            at,
        })
    }
}

pub(super) fn empty_body(pane: Pane) -> PaneData {
    match pane {
        Pane::Connections => PaneData::Connections,
        Pane::Queue => PaneData::Queue(Page::default()),
        Pane::Failed => PaneData::Failed(Page::default()),
        Pane::Mappings => PaneData::Mappings(Vec::new()),
        Pane::Users => PaneData::Users(Page::default()),
        Pane::Audit => PaneData::Audit(Page::default()),
    }
}

pub(super) fn short(id: Uuid) -> String {
    id.to_string().chars().take(8).collect()
}
