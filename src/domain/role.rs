//! Governed local roles and the rules that derive them from external groups.

use super::text_enum::text_enum;
use super::{ConnectionId, OrganizationId, RoleId, RoleMappingId, Timestamp};
use serde::Serialize;

/// A local role, the unit of entitlement that targets receive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Role {
    /// Stable identifier.
    pub id: RoleId,
    /// The owning tenant.
    pub organization_id: OrganizationId,
    /// Unique (per organization) name, e.g. "icu-nurse".
    pub name: String,
    /// What the role grants, for reviewers.
    pub description: String,
    /// Creation time.
    pub created_at: Timestamp,
}

text_enum!(
    /// Which property of an external group a mapping matches.
    GroupSelector {
        /// The source's group id.
        Id = "id",
        /// The group's display name.
        DisplayName = "display_name",
        /// A hierarchical path such as `/hospital/icu` (Keycloak).
        Path = "path",
    }
);

text_enum!(
    /// How a mapping's pattern is compared.
    MatchMode {
        /// Equal, ignoring case.
        Exact = "exact",
        /// A glob (`*` any run, `?` one character), ignoring case.
        Glob = "glob",
    }
);

/// A rule: members of matching external groups get a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RoleMapping {
    /// Stable identifier.
    pub id: RoleMappingId,
    /// The owning tenant.
    pub organization_id: OrganizationId,
    /// Only groups from this source match; `None` means any source.
    pub source_connection_id: Option<ConnectionId>,
    /// Which group property is matched.
    #[sqlx(try_from = "String")]
    pub selector: GroupSelector,
    /// How the pattern is compared.
    #[sqlx(try_from = "String")]
    pub match_mode: MatchMode,
    /// The pattern.
    pub pattern: String,
    /// The role granted.
    pub role_id: RoleId,
    /// Creation time.
    pub created_at: Timestamp,
}

/// The content of a mapping rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleMappingDraft {
    /// Restrict to one source.
    pub source_connection_id: Option<ConnectionId>,
    /// Which group property is matched.
    pub selector: GroupSelector,
    /// How the pattern is compared.
    pub match_mode: MatchMode,
    /// The pattern.
    pub pattern: String,
    /// The role granted.
    pub role_id: RoleId,
}

impl RoleMappingDraft {
    /// A mapping of groups by display name, from any source: exact, or a glob.
    pub fn by_display_name(pattern: impl Into<String>, glob: bool, role_id: RoleId) -> Self {
        Self {
            source_connection_id: None,
            selector: GroupSelector::DisplayName,
            match_mode: if glob {
                MatchMode::Glob
            } else {
                MatchMode::Exact
            },
            pattern: pattern.into(),
            role_id,
        }
    }
}

/// The mapping write of a mapping change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MappingWrite {
    /// Add a mapping.
    Create(RoleMappingDraft),
    /// Change a mapping.
    Replace(RoleMappingId, RoleMappingDraft),
    /// Remove a mapping.
    Delete(RoleMappingId),
}

/// Everything one mapping change commits together: the mapping, the operations its impact
/// causes, and the unmapped-group exceptions it raises or settles (see `policy::impact`).
#[derive(Debug, Clone, PartialEq)]
pub struct MappingCommit {
    /// The mapping write.
    pub write: MappingWrite,
    /// The operations to enqueue (waiting updates absorb repeated ones).
    pub operations: Vec<super::NewOperation>,
    /// Unmapped-group exceptions to raise.
    pub raise: Vec<super::NewException>,
    /// Open unmapped-group exceptions to resolve, by subject key, with the resolution.
    pub resolve: Vec<(String, String)>,
    /// What the audit event says about the impact (`null`: the event says nothing of it).
    pub summary: serde_json::Value,
}

impl MappingCommit {
    /// A mapping write that causes no work (tools and tests; surfaces preview and guard).
    pub fn plain(write: MappingWrite) -> Self {
        Self {
            write,
            operations: Vec::new(),
            raise: Vec::new(),
            resolve: Vec::new(),
            summary: serde_json::json!({}),
        }
    }
}
