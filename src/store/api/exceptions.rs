//! Exceptions: situations the engine will not guess about, for people to settle.

use crate::domain::{
    Actor, ExceptionFilter, ExceptionId, ExceptionState, NewException, OrganizationId,
    PolicyException,
};
use crate::store::StoreResult;
use async_trait::async_trait;

/// An organization's exceptions.
#[async_trait]
pub trait Exceptions {
    /// Raises an exception unless one is already open for its subject. Returns the new one.
    async fn raise_exception(
        &self,
        org: OrganizationId,
        new: &NewException,
    ) -> StoreResult<Option<PolicyException>>;
    /// One exception.
    async fn exception(
        &self,
        org: OrganizationId,
        id: ExceptionId,
    ) -> StoreResult<Option<PolicyException>>;
    /// Exceptions, newest first.
    async fn list_exceptions(
        &self,
        org: OrganizationId,
        filter: &ExceptionFilter,
    ) -> StoreResult<Vec<PolicyException>>;
    /// Settles an open exception (resolved or dismissed) with how, audited. Conflict if it is
    /// not open.
    async fn settle_exception(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: ExceptionId,
        state: ExceptionState,
        resolution: &str,
    ) -> StoreResult<PolicyException>;
}
