//! Provisioning policy: who gets what where. External groups become local roles through
//! mappings ([`roles`]); each target receives the users in its scope with their roles and its
//! attribute mapping ([`target`], [`attributes`]); a mapping change is previewed and applied
//! by the same code ([`impact`]); full reconciliation repairs drift at a target
//! ([`reconcile`]).

pub mod attributes;
pub mod impact;
pub mod reconcile;
pub mod roles;
pub mod target;
