//! The settings of one SCIM target, read from the connection's `settings` JSON: how it is
//! delivered to (so each downstream application is tuned to what it tolerates) and its policy
//! (bound roles, scope, attribute mapping, unknown resources). Plain data: the engine, policy
//! and the store all read it, and none of them owns it.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How a target learns which roles a user holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleDelivery {
    /// Membership of a target Group named after each role.
    #[default]
    Groups,
    /// The User's `roles` attribute.
    Roles,
    /// The User's `entitlements` attribute.
    Entitlements,
}

/// How the client secret is presented to an OAuth 2.0 token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret (`client_secret_basic`).
    #[default]
    Basic,
    /// Both in the form body (`client_secret_post`).
    Post,
}

/// What a full reconciliation does with a resource at the target that scimdesk does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownResources {
    /// Raise an exception for a person to decide.
    #[default]
    Flag,
    /// Link it to the local user with the same userName or externalId (flag it if none).
    Adopt,
    /// DELETE it at the target.
    Remove,
}

/// One override of how a target attribute is filled.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributeRule {
    /// Never send the attribute.
    Drop,
    /// Copy it from another local attribute (a rename), e.g. `"emails.value"`.
    From(String),
    /// Always send this value.
    Const(serde_json::Value),
    /// Build a string, e.g. `"{givenName}.{familyName}@{domain}"`.
    Template(String),
}

/// What removing a user at the source does at this target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// `DELETE` the resource (after the grace period, during which it is suspended).
    #[default]
    Delete,
    /// Only set `active=false` (soft delete); the account stays at the target.
    Suspend,
}

/// How updates are sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateMode {
    /// PATCH when the target's ServiceProviderConfig says it supports it, PUT otherwise.
    #[default]
    Auto,
    /// Always PATCH.
    Patch,
    /// Always PUT.
    Put,
}

/// When a create first looks the resource up at the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreateLookup {
    /// Before every create (finds accounts made out of band too).
    #[default]
    Always,
    /// Only when an earlier attempt may have reached the target (a retry or a crash); a
    /// first attempt relies on the target's 409 for accounts made out of band. Halves the
    /// requests of an onboarding wave.
    AfterUncertainAttempt,
}

/// Per-target delivery settings; every field has a default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct TargetSettings {
    /// Requests in flight at once.
    pub concurrency: u32,
    /// Requests per second (token bucket); 0 means unlimited.
    pub rate_per_sec: f64,
    /// Requests that may go at once after an idle period.
    pub burst: u32,
    /// Per-request timeout (seconds).
    pub timeout_secs: u64,
    /// What removing a user does.
    pub delete_mode: DeleteMode,
    /// With `delete`, how long the user stays suspended before the DELETE (seconds).
    pub delete_grace_secs: u64,
    /// PATCH or PUT.
    pub update_mode: UpdateMode,
    /// When a create looks the resource up first.
    pub create_lookup: CreateLookup,
    /// Attempts before a failing operation is handed to an operator.
    pub max_attempts: u32,
    /// OAuth 2.0 client id (with auth method `oauth2_client_credentials`).
    pub client_id: Option<String>,
    /// OIDC issuer whose discovery document names the token endpoint.
    pub issuer: Option<String>,
    /// Token endpoint, when there is no issuer to discover it from.
    pub token_url: Option<String>,
    /// OAuth scope to ask for.
    pub scope: Option<String>,
    /// How the client secret is presented to the token endpoint.
    pub client_auth: ClientAuth,
    /// Names of the local roles this target is bound to.
    pub roles: Vec<String>,
    /// Which users the target receives: absent means users holding at least one bound role;
    /// `"all"` means every user; anything else is a SCIM filter over the user, its `roles`
    /// and its `groups` (e.g. `roles eq "icu-nurse" and title eq "Charge Nurse"`).
    pub user_scope: Option<String>,
    /// How roles reach the target.
    pub role_delivery: RoleDelivery,
    /// Also mirror the source's own groups (with their in-scope members).
    pub source_groups: bool,
    /// Overrides of the default attribute mapping, keyed by target attribute path.
    pub attributes: BTreeMap<String, AttributeRule>,
    /// Values that templates may name, e.g. `domain`.
    pub variables: BTreeMap<String, String>,
    /// What a full reconciliation does with resources unknown here.
    pub unknown_resources: UnknownResources,
    /// Full reconciliation every this many seconds; 0 turns the schedule off.
    pub reconcile_every_secs: u64,
}

impl Default for TargetSettings {
    fn default() -> Self {
        Self {
            concurrency: 8,
            rate_per_sec: 0.0,
            burst: 0,
            timeout_secs: 30,
            delete_mode: DeleteMode::default(),
            delete_grace_secs: 0,
            update_mode: UpdateMode::default(),
            create_lookup: CreateLookup::default(),
            max_attempts: 25,
            client_id: None,
            issuer: None,
            token_url: None,
            scope: None,
            client_auth: ClientAuth::default(),
            roles: Vec::new(),
            user_scope: None,
            role_delivery: RoleDelivery::default(),
            source_groups: false,
            attributes: BTreeMap::new(),
            variables: BTreeMap::new(),
            unknown_resources: UnknownResources::default(),
            reconcile_every_secs: 0,
        }
    }
}

/// Which users a target receives, as its settings say (see [`TargetSettings::scope`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserScope<'a> {
    /// Users holding at least one role the target is bound to (no `user_scope`).
    BoundRoles,
    /// Every user (`"all"`).
    All,
    /// A SCIM filter over the user, its `roles` and its `groups` (its text, trimmed).
    Filter(&'a str),
}

impl TargetSettings {
    /// How `user_scope` reads: the one place that decides, for the compiled policy and for
    /// the store's choice of which changes can affect a user at this target.
    pub fn scope(&self) -> UserScope<'_> {
        match self.user_scope.as_deref().map(str::trim) {
            None | Some("") => UserScope::BoundRoles,
            Some(s) if s.eq_ignore_ascii_case("all") => UserScope::All,
            Some(s) => UserScope::Filter(s),
        }
    }

    /// Why the target receives nobody, when its settings say so: no user scope and no bound
    /// role (the state a new target starts in). Surfaces show it, since such a target
    /// otherwise looks healthy while provisioning no one.
    pub fn receives_nobody(&self) -> Option<&'static str> {
        (self.scope() == UserScope::BoundRoles && self.roles.is_empty()).then_some(
            "bound to no role, so it receives nobody: bind roles with `connection set NAME --roles R,...` (or --user-scope all)",
        )
    }

    /// Whether the target's scope is a filter, which may read a user's groups (so a change of
    /// membership can change whether the user belongs there even when no role changes).
    pub fn scope_is_filter(&self) -> bool {
        matches!(self.scope(), UserScope::Filter(_))
    }

    /// Reads the settings of a connection; unknown keys (other features' settings) are
    /// ignored, wrong types are an error that names the key.
    pub fn from_json(settings: &serde_json::Value) -> Result<Self, SettingsError> {
        let s: Self = serde_json::from_value(settings.clone())
            .map_err(|e| SettingsError::Malformed(e.to_string()))?;
        if !(s.rate_per_sec.is_finite() && s.rate_per_sec >= 0.0) {
            return Err(SettingsError::Rate);
        }
        Ok(s)
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.clamp(1, 600))
    }

    /// Requests in flight at once (at least one).
    pub fn concurrency(&self) -> usize {
        self.concurrency.clamp(1, 256) as usize
    }
}

/// Why a connection's stored settings cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A key has the wrong type or an unknown value; the text names it.
    #[error("{0}")]
    Malformed(String),
    /// `rate_per_sec` is negative or not a number.
    #[error("rate_per_sec must be a number >= 0")]
    Rate,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_overrides() {
        let s = TargetSettings::from_json(&json!({"delete_policy": "x"})).unwrap();
        assert_eq!(s, TargetSettings::default());
        let s = TargetSettings::from_json(&json!({
            "concurrency": 2, "rate_per_sec": 5.5, "delete_mode": "suspend", "update_mode": "put"
        }))
        .unwrap();
        assert_eq!((s.concurrency(), s.rate_per_sec), (2, 5.5));
        assert_eq!(s.delete_mode, DeleteMode::Suspend);
        assert_eq!(s.update_mode, UpdateMode::Put);
        let e = TargetSettings::from_json(&json!({"delete_mode": "shred"})).unwrap_err();
        assert!(e.to_string().contains("shred"), "{e}");
        assert!(TargetSettings::from_json(&json!({"rate_per_sec": -1})).is_err());
    }
}
