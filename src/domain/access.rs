//! One authorization model for every surface: an access level per organization, and the level
//! each kind of action needs. An API token carries one level for its organization; a local
//! operator gets theirs from the configuration's `[access]` (admin when there is none). The
//! GraphQL API, the CLI and the workbench all ask [`Access::allows`] with an [`Action`]'s
//! [`Action::needs`], so a surface cannot grant what another refuses.
//!
//! What it protects against: mistakes (an on-call operator who may retry but not remap), and
//! automation holding more than it needs (a dashboard's read token). What it does not: anyone
//! who holds the master key and the database URL reads and writes the store directly.

use super::text_enum::text_enum;

text_enum!(
    /// What a principal may do in one organization. Each level includes the ones before it.
    Access {
        /// Sees everything but secrets.
        Read = "read",
        /// Also retries, skips, pauses, resumes and syncs.
        Operate = "operate",
        /// Also manages connections, secrets, mappings and tokens.
        Admin = "admin",
    }
);

impl Access {
    /// Whether this level may take `action`.
    pub fn allows(self, action: Action) -> bool {
        self >= action.needs()
    }

    /// `Ok` if this level may take `action`, else why not, in words for the person refused.
    pub fn check(self, action: Action) -> Result<(), Denied> {
        if self.allows(action) {
            Ok(())
        } else {
            Err(Denied {
                action,
                needs: action.needs(),
                has: self,
            })
        }
    }
}

text_enum!(
    /// The kinds of action the surfaces offer, each with the level it needs.
    Action {
        /// Reading connections, health, the queue, the directory, mappings and the audit log.
        View = "view",
        /// Putting failed operations back in the queue.
        Retry = "retry",
        /// Skipping an operation.
        Skip = "skip",
        /// Pausing or resuming a connection.
        Pause = "pause",
        /// Syncing a source or reconciling a target now.
        Sync = "sync",
        /// Settling an exception.
        Resolve = "resolve",
        /// Creating, changing or removing connections and their policy settings.
        ManageConnections = "manage_connections",
        /// Setting or rotating a connection's secret.
        ManageSecrets = "manage_secrets",
        /// Changing role mappings.
        ManageMappings = "manage_mappings",
        /// Issuing and revoking tokens.
        ManageTokens = "manage_tokens",
    }
);

impl Action {
    /// The level this action needs.
    pub fn needs(self) -> Access {
        match self {
            Action::View => Access::Read,
            Action::Retry | Action::Skip | Action::Pause | Action::Sync | Action::Resolve => {
                Access::Operate
            }
            Action::ManageConnections
            | Action::ManageSecrets
            | Action::ManageMappings
            | Action::ManageTokens => Access::Admin,
        }
    }

    /// What the action is, for a refusal.
    pub fn describe(self) -> &'static str {
        match self {
            Action::View => "read",
            Action::Retry => "retry operations",
            Action::Skip => "skip operations",
            Action::Pause => "pause or resume connections",
            Action::Sync => "sync or reconcile connections",
            Action::Resolve => "resolve exceptions",
            Action::ManageConnections => "manage connections",
            Action::ManageSecrets => "set connection secrets",
            Action::ManageMappings => "change role mappings",
            Action::ManageTokens => "manage tokens",
        }
    }
}

/// A refusal: the action needs a level the principal does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not allowed to {}: that needs {needs} access, and this has {has}", action.describe())]
pub struct Denied {
    /// What was refused.
    pub action: Action,
    /// The level it needs.
    pub needs: Access,
    /// The level held.
    pub has: Access,
}

/// A local operator's levels, as `[access]` in config.toml gives them: one level everywhere
/// (without `[access]`: admin), or a level per organization name, `*` standing for every
/// other one (an organization it does not cover: no access).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grants {
    /// The same level in every organization.
    Everywhere(Access),
    /// Organization name (or `*`) → level.
    PerOrganization(std::collections::BTreeMap<String, Access>),
}

impl Grants {
    /// The level in the organization named `organization`, if any.
    pub fn level(&self, organization: &str) -> Option<Access> {
        match self {
            Grants::Everywhere(a) => Some(*a),
            Grants::PerOrganization(map) => map.get(organization).or_else(|| map.get("*")).copied(),
        }
    }

    /// `Ok` if `operator` may take `action` in `organization`, else why not.
    pub fn check(
        &self,
        operator: &str,
        organization: &str,
        action: Action,
    ) -> Result<(), OperatorRefused> {
        let Some(level) = self.level(organization) else {
            return Err(OperatorRefused::NoAccess {
                operator: operator.to_string(),
                organization: organization.to_string(),
            });
        };
        level
            .check(action)
            .map_err(|denied| OperatorRefused::Denied {
                operator: operator.to_string(),
                organization: organization.to_string(),
                denied,
            })
    }
}

/// Why a local operator was refused, in the words the CLI and the workbench show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorRefused {
    /// `[access]` gives them nothing in this organization.
    #[error(
        "operator {operator:?} has no access to organization {organization:?} ([access] in config.toml)"
    )]
    NoAccess {
        /// Who.
        operator: String,
        /// Where.
        organization: String,
    },
    /// Their level is too low for the action.
    #[error("operator {operator:?} in organization {organization:?}: {denied}")]
    Denied {
        /// Who.
        operator: String,
        /// Where.
        organization: String,
        /// What was refused.
        denied: Denied,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_includes_the_ones_before() {
        for action in Action::ALL {
            assert!(Access::Admin.allows(*action), "{action}");
        }
        assert!(Access::Read.allows(Action::View));
        assert!(!Access::Read.allows(Action::Retry));
        assert!(Access::Operate.allows(Action::Sync));
        assert!(!Access::Operate.allows(Action::ManageMappings));
        let denied = Access::Operate.check(Action::ManageTokens).unwrap_err();
        assert_eq!(
            denied.to_string(),
            "not allowed to manage tokens: that needs admin access, and this has operate"
        );
    }
}
