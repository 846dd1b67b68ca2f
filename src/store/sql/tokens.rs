//! Issued tokens: only hashes are kept, and a presented token is checked in constant time.

use super::{ThisStore, audit};
use crate::crypto;
use crate::domain::{
    Actor, ApiToken, ApiTokenId, ConnectionKind, InvalidInput, NewApiToken, OrganizationId,
    Timestamp, TokenScope, validate,
};
use crate::store::api::{IssuedApiToken, Tokens};
use crate::store::{StoreError, StoreResult};

/// A token row with its secret hash, read together when authenticating.
#[derive(sqlx::FromRow)]
struct TokenWithHash {
    secret_hash: Vec<u8>,
    #[sqlx(flatten)]
    token: ApiToken,
}

#[async_trait::async_trait]
impl Tokens for ThisStore {
    async fn create_api_token(
        &self,
        actor: &Actor,
        org: OrganizationId,
        new: &NewApiToken,
    ) -> StoreResult<IssuedApiToken> {
        let name = validate::name("token name", &new.name)?;
        if new.scope == TokenScope::Scim && new.connection_id.is_none() {
            return Err(InvalidInput::new(
                "token",
                "a SCIM token must name its inbound connection",
            )
            .into());
        }
        let id = ApiTokenId::new();
        let issued = crypto::token::issue(id)?;
        let mut tx = self.begin_write().await?;
        if let Some(conn_id) = new.connection_id {
            let kind: Option<String> = sqlx::query_scalar(
                "SELECT kind FROM connections WHERE organization_id = $1 AND id = $2",
            )
            .bind(org)
            .bind(conn_id)
            .fetch_optional(&mut *tx)
            .await?;
            match kind.as_deref() {
                None => return Err(StoreError::NotFound(format!("connection {conn_id}"))),
                Some(k)
                    if new.scope == TokenScope::Scim
                        && k != ConnectionKind::ScimInbound.as_str() =>
                {
                    return Err(InvalidInput::new(
                        "token",
                        format!(
                            "SCIM tokens authenticate scim_inbound connections; this connection is {k}"
                        ),
                    )
                    .into());
                }
                _ => {}
            }
        }
        let token: ApiToken = sqlx::query_as(concat!(
            "INSERT INTO api_tokens (id, organization_id, connection_id, name, scope, access, secret_hash, created_at, expires_at, revoked_at) ",
            "VALUES ($1, $2, $3, $4, $5, $9, $6, $7, $8, NULL) RETURNING ",
            token_cols!()
        ))
        .bind(id)
        .bind(org)
        .bind(new.connection_id)
        .bind(&name)
        .bind(new.scope.as_str())
        .bind(&issued.hash)
        .bind(Timestamp::now())
        .bind(new.expires_at)
        .bind(match new.scope {
            TokenScope::Scim => crate::domain::Access::Read,
            TokenScope::Api => new.access,
        }.as_str())
        .fetch_one(&mut *tx)
        .await?;
        audit::append(
            &mut tx,
            actor,
            org,
            "token.create",
            "api_token",
            &id.to_string(),
            serde_json::json!({ "name": name, "scope": new.scope.as_str(), "access": token.access.as_str(), "connection_id": new.connection_id }),
        )
        .await?;
        tx.commit().await?;
        Ok(IssuedApiToken {
            token,
            text: issued.text,
        })
    }

    async fn list_api_tokens(&self, org: OrganizationId) -> StoreResult<Vec<ApiToken>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            token_cols!(),
            " FROM api_tokens WHERE organization_id = $1 ORDER BY id"
        ))
        .bind(org)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn revoke_api_token(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: ApiTokenId,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let name: Option<String> = sqlx::query_scalar(
            "UPDATE api_tokens SET revoked_at = $3 WHERE organization_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING name",
        )
        .bind(org)
        .bind(id)
        .bind(Timestamp::now())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(name) = name else { return Ok(false) };
        audit::append(
            &mut tx,
            actor,
            org,
            "token.revoke",
            "api_token",
            &id.to_string(),
            serde_json::json!({ "name": name }),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn authenticate_token(&self, presented: &str) -> StoreResult<Option<ApiToken>> {
        let Some((id, secret)) = crypto::token::parse(presented) else {
            return Ok(None);
        };
        // One round trip: the record and its hash together.
        let row: Option<TokenWithHash> = sqlx::query_as(concat!(
            "SELECT secret_hash, ",
            token_cols!(),
            " FROM api_tokens WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        if !crypto::token::verify(secret, &row.secret_hash) {
            return Ok(None);
        }
        Ok(Some(row.token).filter(|t| t.is_usable_at(Timestamp::now())))
    }
}
