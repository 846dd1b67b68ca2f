//! Every integration test of scimdesk in one binary: the dependency tree is linked once and
//! `support` compiled once, instead of once per test file (sixteen binaries before). Each
//! module is what used to be a file of its own under `tests/`.
//!
//! Tests run in parallel threads of this one process. Each works in a store of its own (an
//! SQLite file in a temporary directory, or a PostgreSQL schema of its own), on ephemeral
//! ports, with its own tmux server; none changes the process's environment or working
//! directory. `.config/nextest.toml` puts the tests that are heavy on the machine in groups.

#[macro_use]
mod support;

mod access;
mod cli;
mod demo;
mod engine;
mod engine_processes;
mod graphql;
mod keycloak;
mod layering;
mod memory_target;
mod nested_groups;
mod oauth;
mod policy;
mod queue;
mod saml;
mod scim_client;
mod scim_http;
mod scim_sql;
mod sources;
mod store_conformance;
mod sync_kill;
mod workbench;
mod workbench_loop;
mod workbench_tmux;
mod zitadel;
