//! Opening the store for a command: configuration, master key, migrations, key checks.

use super::error::{CliError, CliResult, Exit};
use crate::config::Config;
use crate::crypto::{self, MASTER_KEY_ENV, MasterKeySource};
use crate::domain::{Actor, Organization};
use crate::store::{self, Backend, Store, StoreError};
use std::sync::Arc;

/// What every store-using command has at hand.
pub struct Context {
    /// The resolved configuration.
    pub config: Config,
    /// The open, migrated store.
    pub store: Arc<dyn Store>,
    /// The operator, as the audit log records them.
    pub actor: Actor,
    /// Where the master key came from.
    pub key_source: MasterKeySource,
}

impl Context {
    /// Loads the master key, opens and migrates the store, and checks that the key is the one
    /// the database's data keys are wrapped with (finishing an interrupted rotation if needed).
    pub async fn open(config: Config) -> CliResult<Self> {
        Backend::of_url(&config.database_url)?;
        if config.database_is_default {
            std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                CliError::new(
                    Exit::Config,
                    format!(
                        "cannot create data directory {}: {e}",
                        config.data_dir.display()
                    ),
                )
            })?;
        }
        let env_key = std::env::var(MASTER_KEY_ENV).ok();
        let (key, key_source) =
            crypto::load_or_create(env_key.as_deref(), &config.master_key_file)?;
        let key_id = key.id();
        let store = store::open(&config.database_url, key, crate::policy::fanout::decide)
            .await
            .map_err(|e| match e {
                StoreError::Unavailable(msg) => CliError::new(
                    Exit::Unavailable,
                    format!(
                        "cannot reach the database at {}: {msg}",
                        store::redact_url(&config.database_url)
                    ),
                ),
                other => other.into(),
            })?;
        let actor = Actor::operator(config.operator.clone());
        let ctx = Self {
            config,
            store,
            actor,
            key_source,
        };
        ctx.check_master_key(&key_id).await?;
        Ok(ctx)
    }

    async fn check_master_key(&self, key_id: &str) -> CliResult {
        let stored = self.store.master_key_ids().await?;
        let Some(other) = stored.iter().find(|id| *id != key_id).cloned() else {
            return Ok(());
        };
        // A rotation that committed in the database but did not get to replace the key file
        // leaves the new key beside it; finish the job.
        if let MasterKeySource::File(path) = &self.key_source {
            let pending = crypto::pending_key_path(path);
            if pending.exists() {
                let next = crypto::read_key_file(&pending)?;
                if stored.contains(&next.id()) {
                    let next_id = next.id();
                    self.store.rotate_master_key(&self.actor, next).await?;
                    std::fs::rename(&pending, path).map_err(|e| {
                        CliError::new(Exit::Config, format!("finishing key rotation: {e}"))
                    })?;
                    tracing::warn!(key_id = %next_id, "finished an interrupted master key rotation");
                    return Ok(());
                }
            }
        }
        Err(StoreError::WrongMasterKey {
            configured: key_id.to_string(),
            stored: other,
        }
        .into())
    }

    /// The organization, once the operator may take `action` in it (`[access]`; the same
    /// check the API applies to tokens).
    pub async fn organization_for(
        &self,
        name_or_id: Option<&str>,
        action: crate::domain::Action,
    ) -> CliResult<Organization> {
        let org = self.organization(name_or_id).await?;
        self.authorize(&org, action)?;
        Ok(org)
    }

    /// Whether the operator may take `action` in `org`, as a CLI error if not.
    pub fn authorize(&self, org: &Organization, action: crate::domain::Action) -> CliResult<()> {
        self.config
            .operator_grants()
            .check(&self.config.operator, &org.name, action)
            .map_err(|refused| CliError::new(Exit::Forbidden, refused.to_string()))
    }

    /// Finds an organization by id or name, with a clear error naming what was asked for.
    pub async fn organization(&self, name_or_id: Option<&str>) -> CliResult<Organization> {
        let Some(name_or_id) = name_or_id else {
            return Err(CliError::invalid(
                "this command needs an organization: pass --org NAME (or set SCIMDESK_ORG)",
            ));
        };
        let found = match name_or_id.parse() {
            Ok(id) => self.store.organization(id).await?,
            Err(_) => None,
        };
        let found = match found {
            Some(org) => Some(org),
            None => self.store.organization_by_name(name_or_id).await?,
        };
        found.ok_or_else(|| {
            CliError::not_found(format!(
                "unknown organization {name_or_id:?} (see `scimdesk org list`)"
            ))
        })
    }
}
