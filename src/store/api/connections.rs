//! Connections (sources and targets) and their sealed secrets.

use crate::crypto::Secret;
use crate::domain::{
    Actor, Connection, ConnectionId, ConnectionState, ConnectionUpdate, NewConnection,
    OrganizationId,
};
use crate::store::StoreResult;
use async_trait::async_trait;

/// A connection state change, conditional on the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange<'a> {
    /// Only from these states.
    pub from: &'a [ConnectionState],
    /// The new state.
    pub to: ConnectionState,
    /// The audit action (e.g. `connection.pause`).
    pub action: &'a str,
    /// Why, for the audit log.
    pub reason: &'a str,
}

/// An organization's connections.
#[async_trait]
pub trait Connections {
    /// Creates a connection, sealing `secret` with the organization's data key.
    async fn create_connection(
        &self,
        actor: &Actor,
        org: OrganizationId,
        new: &NewConnection,
        secret: Option<&Secret>,
    ) -> StoreResult<Connection>;
    /// One connection by id.
    async fn connection(
        &self,
        org: OrganizationId,
        id: ConnectionId,
    ) -> StoreResult<Option<Connection>>;
    /// A SAML source by id, in whichever organization it is: an identity provider posts to
    /// `/saml/{id}/acs` without a token, so the connection decides the organization (as a
    /// token does for the other unauthenticated look-up, token authentication).
    async fn saml_connection(&self, id: ConnectionId) -> StoreResult<Option<Connection>>;
    /// One connection by name (case-insensitive).
    async fn connection_by_name(
        &self,
        org: OrganizationId,
        name: &str,
    ) -> StoreResult<Option<Connection>>;
    /// An organization's connections, by name.
    async fn list_connections(&self, org: OrganizationId) -> StoreResult<Vec<Connection>>;
    /// Every SCIM target connection of every organization (what the engine serves).
    async fn target_connections(&self) -> StoreResult<Vec<Connection>>;
    /// Every source scimdesk pulls from (`scim_source`, `keycloak`, `zitadel`), of every
    /// organization (what the sync schedule serves).
    async fn pulled_sources(&self) -> StoreResult<Vec<Connection>>;
    /// Changes a connection's configuration.
    async fn update_connection(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: ConnectionId,
        update: &ConnectionUpdate,
    ) -> StoreResult<Connection>;
    /// Moves a connection to `change.to` (pause, resume, quarantine, recover), only if it is
    /// in one of `change.from` (so the engine never overrides an operator's pause). Audited.
    /// Returns the connection if it changed.
    async fn set_connection_state(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: ConnectionId,
        change: &StateChange<'_>,
    ) -> StoreResult<Option<Connection>>;
    /// Replaces (or with `None`, clears) a connection's secret.
    async fn set_connection_secret(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: ConnectionId,
        secret: Option<&Secret>,
    ) -> StoreResult<()>;
    /// Decrypts a connection's secret, for the one component that must send it.
    async fn connection_secret(
        &self,
        org: OrganizationId,
        id: ConnectionId,
    ) -> StoreResult<Option<Secret>>;
    /// Removes a connection with its links, operations, mappings and tokens; users and groups it
    /// was the source of are kept and detached. Returns whether it existed.
    async fn delete_connection(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: ConnectionId,
    ) -> StoreResult<bool>;
}
