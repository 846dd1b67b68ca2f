//! What the engine and the surfaces may ask of persistent state, as one role trait per
//! aggregate (the shape of lldap's backend handlers): [`Tenants`], [`Connections`], [`Users`],
//! [`Groups`], [`Mappings`], [`Exceptions`], [`Queue`], [`Links`], [`Logins`], [`Statistics`], [`Syncs`], [`Audit`],
//! [`Tokens`], [`Keys`], and [`Notices`] for what crosses processes. [`Store`] is their sum:
//! what `store::open` returns and every surface holds as an `Arc<dyn Store>`.
//!
//! Every method that touches tenant data takes the organization id and finds or changes nothing
//! of any other organization. Every method that changes something takes the [`Actor`] (where a
//! person or a source caused it) and writes its audit event in the same transaction as the
//! change.
//!
//! [`Actor`]: crate::domain::Actor

mod audit;
mod bulk;
mod connections;
mod exceptions;
mod groups;
mod keys;
mod links;
mod logins;
mod mappings;
mod notices;
mod queue;
mod statistics;
mod syncs;
mod tenants;
mod tokens;
mod users;

pub use audit::Audit;
pub use bulk::{BulkLoad, BulkRows, LoadableStore};
pub use connections::{Connections, StateChange};
pub use exceptions::Exceptions;
pub use groups::{ChildGroupRef, Groups, MemberRef, UserGroup};
pub use keys::Keys;
pub use links::Links;
pub use logins::{LoginApplied, Logins};
pub use mappings::Mappings;
pub use notices::{Channel, Listener, Notice, Notices};
pub use queue::{OperationFilter, Queue};
pub use statistics::Statistics;
pub use syncs::Syncs;
pub use tenants::Tenants;
pub use tokens::{IssuedApiToken, Tokens};
pub use users::Users;

/// Persistent state of scimdesk, implemented for PostgreSQL and SQLite: every role trait.
pub trait Store:
    Tenants
    + Connections
    + Users
    + Groups
    + Mappings
    + Exceptions
    + Queue
    + Links
    + Logins
    + Statistics
    + Syncs
    + Audit
    + Tokens
    + Keys
    + Notices
    + Send
    + Sync
{
}

impl<T> Store for T where
    T: Tenants
        + Connections
        + Users
        + Groups
        + Mappings
        + Exceptions
        + Queue
        + Links
        + Logins
        + Statistics
        + Syncs
        + Audit
        + Tokens
        + Keys
        + Notices
        + Send
        + Sync
{
}

/// A window into a listing, in the listing's stable order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListRange {
    /// Rows to pass over.
    pub offset: u64,
    /// Rows to return at most.
    pub limit: u32,
}

impl ListRange {
    /// The first `limit` rows.
    pub fn first(limit: u32) -> Self {
        Self { offset: 0, limit }
    }
}

/// A SCIM list request: filter, order and page, run in SQL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScimQuery {
    /// Only resources matching this (validated) filter.
    pub filter: Option<scimdesk_scim::filter::Filter>,
    /// Order by this attribute (then by id); default: creation order.
    pub sort_by: Option<scimdesk_scim::filter::AttrPath>,
    /// Descending order.
    pub descending: bool,
    /// Rows to pass over (SCIM `startIndex` - 1).
    pub offset: u64,
    /// Rows to return at most (SCIM `count`).
    pub limit: u32,
}
