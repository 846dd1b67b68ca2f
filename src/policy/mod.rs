//! Provisioning policy: who gets what where, decided without I/O — rows in, decisions out.
//! External groups become local roles through mappings ([`roles`]); each target receives the
//! users in its scope with their roles and its attribute mapping ([`target`], [`attributes`]);
//! a directory change causes work at targets ([`fanout`], which the store runs inside the
//! change's transaction); a mapping change is previewed and committed from the same
//! computation ([`impact`]); and a full reconciliation plans the repairs of drift at a target
//! ([`reconcile`]); a source's sync is planned against what the store holds for it, behind
//! the deletion guard ([`sync`]). Nothing here reads the store or calls a target: the engine does, and hands
//! the rows over.

pub mod attributes;
pub mod fanout;
pub mod impact;
pub mod login;
pub mod reconcile;
pub mod roles;
pub mod sync;
pub mod target;
