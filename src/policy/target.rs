//! One target's policy: which users it receives (scope), how their roles reach it, and what
//! their documents look like there. Compiled once from the connection's settings and the
//! organization's roles; every decision here is pure.

use super::attributes::{self, AttributeError};
use crate::domain::{Connection, ConnectionId, Group, OperationAction, Role, RoleId, User};
use crate::domain::{DeleteMode, RoleDelivery, SettingsError, TargetSettings, UserScope};
use crate::scim::convert::user_to_doc;
use crate::scim::render;
use scimdesk_scim::filter::{self, Filter};
use scimdesk_scim::schema::{self, USER_SCHEMA};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};

/// Which users a target receives.
#[derive(Debug, Clone)]
enum Scope {
    /// Users holding at least one role the target is bound to (the default).
    BoundRoles,
    /// Every user.
    All,
    /// A SCIM filter over the user with its `roles` and `groups`.
    Filter(Filter),
}

/// A target connection's compiled policy.
#[derive(Debug, Clone)]
pub struct TargetPolicy {
    /// The connection.
    pub connection_id: ConnectionId,
    /// Its name, for people.
    pub name: String,
    /// Its settings.
    pub settings: TargetSettings,
    scope: Scope,
    /// Every role of the organization by id (scope filters may name any of them).
    role_names: HashMap<RoleId, String>,
    /// The roles the target is bound to.
    bound: BTreeSet<RoleId>,
}

/// Why a target's policy cannot be compiled from its settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetPolicyError {
    /// The stored settings cannot be read.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// `user_scope` is not a valid filter on users.
    #[error("user_scope {filter:?}: {detail}")]
    Scope {
        /// The filter as configured.
        filter: String,
        /// What is wrong with it.
        detail: String,
    },
    /// An attribute rule is refused.
    #[error(transparent)]
    Attributes(#[from] AttributeError),
}

impl TargetPolicy {
    /// Compiles the policy of `connection`; a bad scope filter or attribute rule is an error
    /// that names it.
    pub fn new(connection: &Connection, roles: &[Role]) -> Result<Self, TargetPolicyError> {
        let settings = TargetSettings::from_json(&connection.settings.0)?;
        Self::from_settings(connection.id, &connection.name, settings, roles)
    }

    /// Compiles a policy from parsed settings.
    pub fn from_settings(
        connection_id: ConnectionId,
        name: &str,
        settings: TargetSettings,
        roles: &[Role],
    ) -> Result<Self, TargetPolicyError> {
        let scope = match settings.scope() {
            UserScope::BoundRoles => Scope::BoundRoles,
            UserScope::All => Scope::All,
            UserScope::Filter(s) => {
                let refused = |e: scimdesk_scim::ScimError| TargetPolicyError::Scope {
                    filter: s.to_string(),
                    detail: e.detail,
                };
                let f = filter::parse(s).map_err(refused)?;
                filter::validate(&f, &schema::USER).map_err(refused)?;
                Scope::Filter(f)
            }
        };
        attributes::validate(&settings.attributes)?;
        let role_names: HashMap<RoleId, String> =
            roles.iter().map(|r| (r.id, r.name.clone())).collect();
        // A bound role that does not exist (yet) binds nobody; `connection set` warns about it.
        let bound: BTreeSet<RoleId> = roles
            .iter()
            .filter(|r| {
                settings
                    .roles
                    .iter()
                    .any(|w| w.eq_ignore_ascii_case(&r.name))
            })
            .map(|r| r.id)
            .collect();
        Ok(Self {
            connection_id,
            name: name.to_string(),
            settings,
            scope,
            role_names,
            bound,
        })
    }

    /// The roles the target is bound to.
    pub fn bound_roles(&self) -> &BTreeSet<RoleId> {
        &self.bound
    }

    /// A role's name.
    pub fn role_name(&self, id: RoleId) -> String {
        self.role_names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    /// Whether deciding scope needs the user's attributes (a filter), not only its roles.
    pub fn scope_reads_user(&self) -> bool {
        matches!(self.scope, Scope::Filter(_))
    }

    /// Whether the target receives a user holding `roles`, in `groups`.
    pub fn in_scope(&self, user: &User, roles: &BTreeSet<RoleId>, groups: &[&Group]) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::BoundRoles => roles.iter().any(|r| self.bound.contains(r)),
            Scope::Filter(f) => {
                let of: Vec<(&Group, bool)> = groups.iter().map(|g| (*g, true)).collect();
                let mut doc = user_to_doc(user, Some(&of), "");
                if let Some(m) = doc.as_object_mut() {
                    let mut names: Vec<&String> = roles
                        .iter()
                        .filter_map(|r| self.role_names.get(r))
                        .collect();
                    names.sort();
                    m.insert(
                        "roles".into(),
                        Value::Array(names.into_iter().map(|n| json!({ "value": n })).collect()),
                    );
                }
                filter::matches(f, &doc, &schema::USER)
            }
        }
    }

    /// The roles a user holding `roles` is given at this target (bound ones only), by name.
    pub fn delivered_roles(&self, roles: &BTreeSet<RoleId>) -> Vec<String> {
        let mut names: Vec<String> = roles
            .iter()
            .filter(|r| self.bound.contains(r))
            .map(|r| self.role_name(*r))
            .collect();
        names.sort();
        names
    }

    /// Whether roles travel as target groups.
    pub fn roles_as_groups(&self) -> bool {
        self.settings.role_delivery == RoleDelivery::Groups
    }

    /// The action that takes a user out of this target (suspend or delete, per its policy).
    pub fn leave_action(&self) -> OperationAction {
        match self.settings.delete_mode {
            DeleteMode::Suspend => OperationAction::Suspend,
            DeleteMode::Delete => OperationAction::Delete,
        }
    }

    /// The document the target receives for `user`: the default mapping, its roles (as
    /// `roles` or `entitlements` when delivered that way), then the attribute overrides.
    pub fn user_document(
        &self,
        user: &User,
        roles: &BTreeSet<RoleId>,
    ) -> Result<Value, AttributeError> {
        let mut doc = render::user_document(user);
        let delivered = self.delivered_roles(roles);
        let key = match self.settings.role_delivery {
            RoleDelivery::Groups => None,
            RoleDelivery::Roles => Some("roles"),
            RoleDelivery::Entitlements => Some("entitlements"),
        };
        if let (Some(key), Some(m)) = (key, doc.as_object_mut())
            && !delivered.is_empty()
        {
            m.insert(
                key.into(),
                Value::Array(delivered.iter().map(|n| json!({ "value": n })).collect()),
            );
        }
        attributes::apply(
            &mut doc,
            &self.settings.attributes,
            &self.settings.variables,
        )?;
        if let Some(m) = doc.as_object_mut() {
            let mut schemas = vec![json!(USER_SCHEMA)];
            schemas.extend(
                m.keys()
                    .filter(|k| k.starts_with("urn:") && m[*k].is_object())
                    .map(|k| json!(k)),
            );
            m.insert("schemas".into(), Value::Array(schemas));
        }
        Ok(doc)
    }

    /// The document of the target group that carries `role`, with its members' target ids.
    pub fn role_group_document(&self, role: RoleId, remote_members: &[String]) -> Value {
        let mut members: Vec<&String> = remote_members.iter().collect();
        members.sort();
        members.dedup();
        json!({
            "schemas": [schema::GROUP_SCHEMA],
            "displayName": self.role_name(role),
            "externalId": role.to_string(),
            "members": members.into_iter().map(|m| json!({ "value": m })).collect::<Vec<_>>(),
        })
    }
}
