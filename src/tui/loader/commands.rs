//! The workbench's commands, carried out through the engine command API as the operator.

use super::*;
use crate::engine::commands::{self, MappingChange, MappingRule, Resolution};
use crate::policy::roles::RoleResolver;
use crate::tui::state::{Command, Reply};

impl Loader {
    /// Carries out a command through the engine command API (audited as the operator).
    pub async fn run(&self, org: OrganizationId, cmd: &Command) -> Reply {
        if let Err(why) = self.authorize(org, cmd).await {
            return Reply::Failed(why);
        }
        let reply = self.try_run(org, cmd).await;
        // A command may change what health shows (state, queue counts): read it afresh.
        self.health_cache.clear();
        match reply {
            Ok(outcome) => outcome,
            Err(e) => Reply::Failed(e.to_string()),
        }
    }

    /// Whether the operator may run `cmd` in `org`; why not, if not.
    async fn authorize(&self, org: OrganizationId, cmd: &Command) -> Result<(), String> {
        if let crate::domain::Grants::Everywhere(level) = &self.grants {
            return level.check(cmd.action()).map_err(|d| d.to_string());
        }
        let name = match self.store.organization(org).await {
            Ok(Some(o)) => o.name,
            Ok(None) => return Err(format!("organization {org} is gone")),
            Err(e) => return Err(e.to_string()),
        };
        self.grants
            .check(&self.actor.name, &name, cmd.action())
            .map_err(|refused| refused.to_string())
    }

    async fn try_run(&self, org: OrganizationId, cmd: &Command) -> Result<Reply, LoadError> {
        let store = self.store.as_ref();
        let actor = &self.actor;
        let done = |s: String| Ok(Reply::Done(s));
        match cmd {
            Command::Retry(id) => {
                let op = commands::retry(store, actor, org, *id).await?;
                done(format!(
                    "{} {} is back in the queue ({})",
                    op.action, op.resource_type, op.state
                ))
            }
            Command::RetryAll(filter) => {
                let n = commands::retry_all(store, actor, org, filter).await?;
                done(format!("{n} operations are back in the queue"))
            }
            Command::Skip(id, reason) => {
                let op = commands::skip(store, actor, org, *id, reason).await?;
                done(format!("{} {} skipped", op.action, op.resource_type))
            }
            Command::Dismiss(id, reason) => {
                let ex = commands::resolve_exception(
                    store,
                    actor,
                    org,
                    *id,
                    &Resolution::Dismiss(reason.clone()),
                    &self.guard,
                    false,
                )
                .await?;
                done(format!("{} {:?} dismissed", ex.kind, ex.subject))
            }
            Command::ApplySync(id) => {
                let ex = commands::resolve_exception(
                    store,
                    actor,
                    org,
                    *id,
                    &Resolution::ApplySync,
                    &self.guard,
                    true,
                )
                .await?;
                self.tell_engine();
                done(format!("the stopped sync of {} was applied", ex.subject))
            }
            Command::Pause(id, reason) => {
                let c = commands::pause(store, actor, org, *id, reason).await?;
                self.tell_engine();
                done(format!("{} paused", c.name))
            }
            Command::Resume(id) => {
                let c = commands::resume(store, actor, org, *id).await?;
                self.tell_engine();
                done(format!("{} resumed", c.name))
            }
            Command::SyncSource(id) => {
                let options = crate::engine::sync::SyncOptions {
                    full: true,
                    ..Default::default()
                };
                let report = crate::engine::sync::sync_source(store, actor, org, *id, options)
                    .await
                    .map_err(|e| LoadError::Sync(e.to_string()))?;
                self.tell_engine();
                let k = &report.counts;
                if let Some(g) = &report.guard {
                    return Err(LoadError::Sync(format!(
                        "the deletion guard stopped the sync: it would suspend {} of {} users; see Failed",
                        g.suspending, g.active
                    )));
                }
                if let Some(e) = &report.run.error {
                    return Err(LoadError::Sync(format!("the sync stopped: {e}")));
                }
                done(format!(
                    "synced: {} created, {} updated, {} suspended, {} reactivated; groups {} created, {} updated, {} deleted",
                    k.created,
                    k.updated,
                    k.suspended,
                    k.reactivated,
                    k.groups_created,
                    k.groups_updated,
                    k.groups_deleted
                ))
            }
            Command::SyncNow(id) => {
                let n = commands::sync_now(store, actor, org, *id).await?;
                self.tell_engine();
                done(format!("{n} waiting operations made due now"))
            }
            Command::Reconcile(id) => {
                let report = commands::reconcile(store, actor, org, *id, false).await?;
                let c = &report.counts;
                done(format!(
                    "reconciled: {} checked, {} corrected, {} recreated, {} removed, {} adopted, {} flagged",
                    c.checked, c.corrected, c.recreated, c.removed, c.adopted, c.flagged
                ))
            }
            Command::RemapOperation(id) => self.remap_form(org, *id).await,
            Command::Preview(form) => {
                let impact = if form.remove {
                    let id = form
                        .id
                        .ok_or(LoadError::NotApplicable("no mapping to delete"))?;
                    commands::preview(store, org, &MappingChange::Remove(id)).await
                } else {
                    commands::preview_rule(store, org, &rule(form)).await
                }?;
                let guard_refusal = match self.guard.check(&impact) {
                    Err(e) => Some(e.to_string()),
                    Ok(()) => None,
                };
                Ok(Reply::Impact(Box::new(ImpactView {
                    form: form.clone(),
                    impact,
                    guard_refusal,
                    guard: self.guard,
                })))
            }
            Command::Apply(form, force) => {
                let result = if form.remove {
                    let id = form
                        .id
                        .ok_or(LoadError::NotApplicable("no mapping to delete"))?;
                    commands::set_mapping(
                        store,
                        actor,
                        org,
                        &MappingChange::Remove(id),
                        &self.guard,
                        *force,
                    )
                    .await
                } else {
                    commands::apply_rule(store, actor, org, &rule(form), &self.guard, *force).await
                };
                let (impact, _) = result.map_err(|e| match e {
                    PolicyError::Guarded(g) => LoadError::NotApplied(g),
                    other => LoadError::Policy(other),
                })?;
                done(format!(
                    "mapping {}: {} users change roles, {} operations queued{}",
                    if form.remove { "deleted" } else { "saved" },
                    impact.role_changes.len(),
                    impact.operations.len(),
                    if *force {
                        " (forced past the guard)"
                    } else {
                        ""
                    }
                ))
            }
        }
    }

    fn tell_engine(&self) {
        if let Some(engine) = &self.engine {
            engine.refresh_connections();
        }
    }

    /// The editor for a failed operation's user: prefilled with their first group that no
    /// mapping covers (else their first group).
    async fn remap_form(&self, org: OrganizationId, id: OperationId) -> Result<Reply, LoadError> {
        let store = self.store.as_ref();
        let op = store
            .operation(org, id)
            .await?
            .ok_or(LoadError::Gone("the operation is gone"))?;
        if op.resource_type != ResourceType::User {
            return Err(LoadError::NotApplicable(
                "re-map opens from a user's operation",
            ));
        }
        let groups = store.user_groups(org, UserId(op.resource_id)).await?;
        let mappings = store.list_role_mappings(org).await?;
        let resolver = RoleResolver::new(&mappings);
        let group = groups
            .iter()
            .find(|g| resolver.covering(g).next().is_none())
            .or_else(|| groups.first())
            .ok_or(LoadError::NotApplicable(
                "this user is in no group; there is nothing to map",
            ))?;
        Ok(Reply::Edit(Box::new(MappingForm {
            id: None,
            remove: false,
            pattern: group.display_name.clone(),
            role: String::new(),
            selector: GroupSelector::DisplayName,
            glob: false,
            source: group.source_connection_id,
            from_exception: None,
        })))
    }
}

fn rule(form: &MappingForm) -> MappingRule {
    MappingRule {
        id: form.id,
        pattern: form.pattern.clone(),
        role: form.role.clone(),
        selector: form.selector,
        glob: form.glob,
        source: form.source,
    }
}
