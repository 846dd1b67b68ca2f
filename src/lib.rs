//! scimdesk: a multi-tenant SCIM 2.0 provisioning engine with a terminal workbench.
//!
//! Layers, outermost first: `cli` → `api` / `engine` → `store` → `domain`; `connectors` call
//! outward; `crypto` seals what the store keeps. See `docs/architecture.md`.
#![warn(missing_docs)]

pub mod api;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod crypto;
pub mod domain;
pub mod engine;
pub mod group_commit;
pub mod logging;
pub mod policy;
pub mod scim;
pub mod stand_ins;
pub mod store;
pub mod tui;
