//! The SQL of every aggregate, written once and compiled once for each backend.
//!
//! PostgreSQL and SQLite run the same SQL text: SQLite accepts `$N` placeholders, both have
//! `RETURNING` and `ON CONFLICT`, and the few type differences are absorbed by the codecs (ids,
//! JSON, booleans, [`Timestamp`](crate::domain::Timestamp)). sqlx cannot express "a database
//! that encodes all our column types" as a generic bound that reaches the call sites (a
//! trait's where-clauses are not implied where it is used), so this folder is ordinary Rust
//! written against two names, `Db` (the sqlx database) and `ThisStore` (the backend's store
//! type), and each backend includes it as its module `sql` (`#[path]` in `postgres/mod.rs` and
//! `sqlite/mod.rs`) with those names bound to itself. The compiler checks each copy against its
//! backend; rustfmt and clippy read it like any other module.
//!
//! What a backend does its own way, the shared code calls by name on `ThisStore`: opening a
//! write transaction (`begin_write`), reading users and links by id (`users_in_org`,
//! `links_for`), moving finished work to the history and recording attempts
//! (`move_to_history`, `insert_attempts`), writing inbound creates together (`write_batch`),
//! the filter translator's dialect (`DIALECT`), and a few statement fragments (`CLAIM_OPEN`,
//! `CLAIM_CLOSE`, `ROW_LOCK`, `RELAXED_COMMIT`).
//!
//! One file per aggregate, each implementing its role trait of `store::api`; `fanout` carries
//! out, inside a change's transaction, what policy's fan-out decides.

use super::{Db, ThisStore};
use crate::store::StoreError;

mod audit;
mod bulk;
mod connections;
mod directory;
mod exceptions;
mod fanout;
mod groups;
mod keys;
mod links;
mod logins;
mod mappings;
mod memberships;
mod queue;
mod statistics;
mod syncs;
mod tenants;
mod tokens;
mod users;

/// A connection of this backend, on which a change's statements run.
type Conn = <Db as sqlx::Database>::Connection;

/// Converts a sqlx error, naming `what` for uniqueness and reference failures.
fn conflict(what: String) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(e, move || what)
}

/// Converts an unsigned count or offset for binding as BIGINT.
fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
