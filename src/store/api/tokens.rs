//! Issued tokens, kept as hashes.

use crate::crypto::Secret;
use crate::domain::{Actor, ApiToken, ApiTokenId, NewApiToken, OrganizationId};
use crate::store::StoreResult;
use async_trait::async_trait;

/// A newly issued token: its record and the text shown exactly once.
#[derive(Debug)]
pub struct IssuedApiToken {
    /// The stored record.
    pub token: ApiToken,
    /// The bearer text. Never stored; print it once and drop it.
    pub text: Secret,
}

/// Tokens that authenticate inbound SCIM clients and API callers.
#[async_trait]
pub trait Tokens {
    /// Issues a token; the returned text is the only copy.
    async fn create_api_token(
        &self,
        actor: &Actor,
        org: OrganizationId,
        new: &NewApiToken,
    ) -> StoreResult<IssuedApiToken>;
    /// An organization's tokens (records only), oldest first.
    async fn list_api_tokens(&self, org: OrganizationId) -> StoreResult<Vec<ApiToken>>;
    /// Revokes a token. Returns false if it did not exist or was already revoked.
    async fn revoke_api_token(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: ApiTokenId,
    ) -> StoreResult<bool>;
    /// Finds the usable token that `presented` is, in constant time. The token decides the
    /// organization, so this is the one lookup not scoped by an organization argument.
    async fn authenticate_token(&self, presented: &str) -> StoreResult<Option<ApiToken>>;
}
