//! Data keys under the master key: unwrapping one for a change, and re-wrapping all of them.

use super::{Conn, ThisStore, audit};
use crate::crypto::{self, DataKey, MasterKey};
use crate::domain::{Actor, OrganizationId};
use crate::store::api::Keys;
use crate::store::{StoreError, StoreResult};

/// Unwraps an organization's data key on the caller's connection.
pub(super) async fn data_key(
    store: &ThisStore,
    conn: &mut Conn,
    org: OrganizationId,
) -> StoreResult<DataKey> {
    let row: Option<(Vec<u8>, String)> =
        sqlx::query_as("SELECT data_key_wrapped, master_key_id FROM organizations WHERE id = $1")
            .bind(org)
            .fetch_optional(&mut *conn)
            .await?;
    let (wrapped, key_id) =
        row.ok_or_else(|| StoreError::NotFound(format!("organization {org}")))?;
    let master = store.keys.current();
    if key_id != master.id() {
        return Err(StoreError::WrongMasterKey {
            configured: master.id(),
            stored: key_id,
        });
    }
    Ok(crypto::unwrap_data_key(&master, org, &wrapped)?)
}

#[async_trait::async_trait]
impl Keys for ThisStore {
    async fn master_key_ids(&self) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT master_key_id FROM organizations ORDER BY master_key_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn rotate_master_key(&self, actor: &Actor, new: MasterKey) -> StoreResult<u64> {
        let old = self.keys.current();
        let mut tx = self.begin_write().await?;
        let rows: Vec<(OrganizationId, Vec<u8>, String)> = sqlx::query_as(
            "SELECT id, data_key_wrapped, master_key_id FROM organizations ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut count = 0u64;
        for (org, wrapped, key_id) in rows {
            let data_key = if key_id == new.id() {
                continue; // already under the new key (an interrupted earlier rotation)
            } else if key_id == old.id() {
                crypto::unwrap_data_key(&old, org, &wrapped)?
            } else {
                return Err(StoreError::WrongMasterKey {
                    configured: old.id(),
                    stored: key_id,
                });
            };
            let rewrapped = crypto::wrap_data_key(&new, org, &data_key)?;
            sqlx::query(
                "UPDATE organizations SET data_key_wrapped = $2, master_key_id = $3 WHERE id = $1",
            )
            .bind(org)
            .bind(rewrapped)
            .bind(new.id())
            .execute(&mut *tx)
            .await?;
            audit::append(
                &mut tx,
                actor,
                org,
                "key.rotate",
                "organization",
                &org.to_string(),
                serde_json::json!({ "from_master_key_id": old.id(), "to_master_key_id": new.id() }),
            )
            .await?;
            count += 1;
        }
        tx.commit().await?;
        self.keys.replace(new);
        Ok(count)
    }
}
