//! scimdesk: a multi-tenant SCIM 2.0 provisioning engine with a terminal workbench.
//!
//! Data flows one way: sources → `store` → `policy` decides (pure) → `engine` queues → workers
//! → targets (through `connectors`). Surfaces (`cli`, `api`, `tui`) act through
//! `engine::commands` and never call targets; `domain` and `scim` (with the protocol core,
//! the `scimdesk-scim` crate) are plain data and pure functions; `stand_ins` holds the target
//! doubles, the demo and the bench, which production code never uses. `tests/it/layering.rs`
//! enforces the rules written in `docs/architecture.md`.
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
