//! Which local roles a user holds: the union of the roles that the organization's mappings
//! grant for each external group the user is in. Pure: the same resolver serves delivery,
//! impact previews and reconciliation, so they cannot disagree.

use crate::domain::{Group, GroupSelector, MatchMode, RoleId, RoleMapping};
use std::collections::BTreeSet;
use wildmatch::WildMatch;

enum Matcher {
    /// Lower-cased pattern.
    Exact(String),
    Glob(WildMatch),
}

impl Matcher {
    fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(p) => value.to_lowercase() == *p,
            Matcher::Glob(g) => g.matches(value),
        }
    }
}

struct Rule {
    mapping: RoleMapping,
    matcher: Matcher,
}

impl Rule {
    fn matches(&self, group: &Group) -> bool {
        if let Some(source) = self.mapping.source_connection_id
            && group.source_connection_id != Some(source)
        {
            return false;
        }
        match self.mapping.selector {
            // The source's id for the group is its externalId; scimdesk's own id matches too.
            GroupSelector::Id => {
                group
                    .external_id
                    .as_deref()
                    .is_some_and(|x| self.matcher.matches(x))
                    || self.matcher.matches(&group.id.to_string())
            }
            GroupSelector::DisplayName => self.matcher.matches(&group.display_name),
            GroupSelector::Path => self.matcher.matches(&group.path()),
        }
    }
}

/// Compiled mappings of one organization.
pub struct RoleResolver {
    rules: Vec<Rule>,
}

impl RoleResolver {
    /// Compiles `mappings` (exact patterns and globs, both ignoring case).
    pub fn new(mappings: &[RoleMapping]) -> Self {
        let rules = mappings
            .iter()
            .map(|m| Rule {
                matcher: match m.match_mode {
                    MatchMode::Exact => Matcher::Exact(m.pattern.to_lowercase()),
                    MatchMode::Glob => Matcher::Glob(WildMatch::new_case_insensitive(&m.pattern)),
                },
                mapping: m.clone(),
            })
            .collect();
        Self { rules }
    }

    /// The roles that membership of `group` grants.
    pub fn group_roles(&self, group: &Group) -> BTreeSet<RoleId> {
        self.rules
            .iter()
            .filter(|r| r.matches(group))
            .map(|r| r.mapping.role_id)
            .collect()
    }

    /// The mappings that cover `group`.
    pub fn covering<'a>(&'a self, group: &'a Group) -> impl Iterator<Item = &'a RoleMapping> {
        self.rules
            .iter()
            .filter(|r| r.matches(group))
            .map(|r| &r.mapping)
    }

    /// Whether no mapping exists, so no group gives any role (a user's groups then need not
    /// be read to know its roles).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The roles of a member of `groups`.
    pub fn user_roles<'a>(&self, groups: impl IntoIterator<Item = &'a Group>) -> BTreeSet<RoleId> {
        groups
            .into_iter()
            .flat_map(|g| self.group_roles(g))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Json;
    use crate::domain::{GroupId, OrganizationId, RoleMappingId, Timestamp};

    fn group(name: &str, external: Option<&str>, path: Option<&str>) -> Group {
        Group {
            id: GroupId::new(),
            organization_id: OrganizationId::new(),
            display_name: name.into(),
            external_id: external.map(str::to_string),
            source_connection_id: None,
            attributes: Json(match path {
                Some(p) => serde_json::json!({ "path": p }),
                None => serde_json::json!({}),
            }),
            version: 1,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        }
    }

    fn mapping(
        selector: GroupSelector,
        mode: MatchMode,
        pattern: &str,
        role: RoleId,
    ) -> RoleMapping {
        RoleMapping {
            id: RoleMappingId::new(),
            organization_id: OrganizationId::new(),
            source_connection_id: None,
            selector,
            match_mode: mode,
            pattern: pattern.into(),
            role_id: role,
            created_at: Timestamp::now(),
        }
    }

    #[test]
    fn exact_glob_id_and_path_rules_union() {
        let (icu, nurse, kc) = (RoleId::new(), RoleId::new(), RoleId::new());
        let r = RoleResolver::new(&[
            mapping(
                GroupSelector::DisplayName,
                MatchMode::Exact,
                "ICU Nurses",
                icu,
            ),
            mapping(
                GroupSelector::DisplayName,
                MatchMode::Glob,
                "*nurses",
                nurse,
            ),
            mapping(GroupSelector::Id, MatchMode::Exact, "grp-7", kc),
            mapping(GroupSelector::Path, MatchMode::Glob, "/hospital/*/icu", kc),
        ]);
        let g1 = group("icu nurses", None, None);
        assert_eq!(r.group_roles(&g1), [icu, nurse].into_iter().collect());
        let g2 = group("Pharmacy", Some("GRP-7"), None);
        assert_eq!(r.group_roles(&g2), [kc].into_iter().collect());
        let g3 = group("ICU", None, Some("/hospital/north/icu"));
        assert_eq!(r.group_roles(&g3), [kc].into_iter().collect());
        assert!(r.group_roles(&group("Porters", None, None)).is_empty());
        assert_eq!(r.user_roles([&g1, &g2]).len(), 3);
    }
}
