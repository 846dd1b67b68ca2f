//! Mapping changes: previewed by policy from what the store holds, refused by the guard when
//! they remove too much access, and committed with exactly the work the preview lists.

use super::{Guard, Impact, MappingChange, PolicyError, wake_other_processes};
use crate::domain::*;
use crate::policy::impact::Preview;
use crate::store::{ListRange, Store, StoreResult};

/// Computes what `change` would do, without changing anything.
pub async fn preview(
    store: &dyn Store,
    org: OrganizationId,
    change: &MappingChange,
) -> Result<Impact, PolicyError> {
    preview_with(store, org, change, None).await
}

/// [`preview`] of a change whose role `new_role` does not exist yet (it is created when the
/// change is applied). Reads only what the change can touch: the memberships and users only
/// when some group's roles change.
pub async fn preview_with(
    store: &dyn Store,
    org: OrganizationId,
    change: &MappingChange,
    new_role: Option<&Role>,
) -> Result<Impact, PolicyError> {
    let mut roles = store.list_roles(org).await?;
    roles.extend(new_role.cloned());
    let mappings = store.list_role_mappings(org).await?;
    let groups = store.list_groups(org, ListRange::first(u32::MAX)).await?;
    let mut preview = Preview::new(org, &roles, mappings, &groups, change)?;
    let organization_users = store.count_users(org).await?;
    if preview.changes_nothing() {
        return Ok(preview.finish(organization_users, &[], &[]));
    }
    let memberships = store.organization_memberships(org).await?;
    let affected = preview.affected(&memberships);
    let users = store.users_by_ids(org, &affected).await?;
    let connections = store.list_connections(org).await?;
    Ok(preview.finish(organization_users, &users, &connections))
}

/// Makes a mapping change with the operations its preview computes, in one transaction, unless
/// the guard refuses (and `force` is not set). Returns the impact applied and the mapping
/// written.
pub async fn set_mapping(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    change: &MappingChange,
    guard: &Guard,
    force: bool,
) -> Result<(Impact, Option<RoleMapping>), PolicyError> {
    let impact = preview(store, org, change).await?;
    if !force {
        guard.check(&impact)?;
    }
    let mapping = store
        .commit_mapping_change(actor, org, &impact.commit(change, force))
        .await?;
    wake_other_processes(store, org).await;
    Ok((impact, mapping))
}

/// A mapping rule as people write it: the role by name, created when the change is applied
/// if it does not exist yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingRule {
    /// The mapping changed (`None`: a new one).
    pub id: Option<RoleMappingId>,
    /// The group pattern.
    pub pattern: String,
    /// The role granted, by name.
    pub role: String,
    /// What the pattern is compared with.
    pub selector: GroupSelector,
    /// Whether the pattern is a glob.
    pub glob: bool,
    /// Only groups of this source.
    pub source: Option<ConnectionId>,
}

impl MappingRule {
    fn change(&self, role: RoleId) -> MappingChange {
        MappingChange::Set {
            id: self.id,
            draft: RoleMappingDraft {
                source_connection_id: self.source,
                selector: self.selector,
                match_mode: if self.glob {
                    MatchMode::Glob
                } else {
                    MatchMode::Exact
                },
                pattern: self.pattern.trim().to_string(),
                role_id: role,
            },
        }
    }
}

/// What setting `rule` would do, without changing anything (a role that does not exist yet is
/// previewed as if created).
pub async fn preview_rule(
    store: &dyn Store,
    org: OrganizationId,
    rule: &MappingRule,
) -> Result<Impact, PolicyError> {
    let (role, new_role) = match find_role(store, org, &rule.role).await? {
        Some(r) => (r, None),
        None => {
            let r = Role {
                id: RoleId::new(),
                organization_id: org,
                name: rule.role.trim().to_string(),
                description: String::new(),
                created_at: Timestamp::now(),
            };
            (r.clone(), Some(r))
        }
    };
    preview_with(store, org, &rule.change(role.id), new_role.as_ref()).await
}

/// Sets `rule` (creating its role if needed) with the operations it causes, unless the guard
/// refuses and `force` is not set.
pub async fn apply_rule(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    rule: &MappingRule,
    guard: &Guard,
    force: bool,
) -> Result<(Impact, Option<RoleMapping>), PolicyError> {
    if rule.pattern.trim().is_empty() || rule.role.trim().is_empty() {
        return Err(PolicyError::Invalid(
            "a mapping needs a group pattern and a role".into(),
        ));
    }
    if !force {
        // Refuse before creating the role, so a refused change leaves nothing behind.
        guard.check(&preview_rule(store, org, rule).await?)?;
    }
    let role = ensure_role(store, actor, org, &rule.role).await?;
    set_mapping(store, actor, org, &rule.change(role.id), guard, force).await
}

/// The role named `name`, created (audited) when it does not exist yet.
pub async fn ensure_role(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    name: &str,
) -> StoreResult<Role> {
    match find_role(store, org, name).await? {
        Some(r) => Ok(r),
        None => store.create_role(actor, org, name.trim(), "").await,
    }
}

/// The role named `name` (ignoring case), if it exists.
pub async fn find_role(
    store: &dyn Store,
    org: OrganizationId,
    name: &str,
) -> StoreResult<Option<Role>> {
    Ok(store
        .list_roles(org)
        .await?
        .into_iter()
        .find(|r| r.name.eq_ignore_ascii_case(name.trim())))
}
