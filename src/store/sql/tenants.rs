//! Organizations.

use super::{ThisStore, audit, conflict};
use crate::crypto::{self, DataKey};
use crate::domain::{Actor, Organization, OrganizationId, Timestamp, validate};
use crate::store::api::Tenants;
use crate::store::{StoreError, StoreResult};

#[async_trait::async_trait]
impl Tenants for ThisStore {
    async fn create_organization(&self, actor: &Actor, name: &str) -> StoreResult<Organization> {
        let name = validate::name("organization name", name)?;
        let id = OrganizationId::new();
        let master = self.keys.current();
        let wrapped = crypto::wrap_data_key(&master, id, &DataKey::generate()?)?;
        let mut tx = self.begin_write().await?;
        let org: Organization = sqlx::query_as(concat!(
            "INSERT INTO organizations (id, name, name_key, data_key_wrapped, master_key_id, created_at) ",
            "VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
            organization_cols!()
        ))
        .bind(id)
        .bind(&name)
        .bind(name.to_lowercase())
        .bind(wrapped)
        .bind(master.id())
        .bind(Timestamp::now())
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict(format!("an organization named {name:?}")))?;
        audit::append(
            &mut tx,
            actor,
            id,
            "organization.create",
            "organization",
            &id.to_string(),
            serde_json::json!({ "name": name }),
        )
        .await?;
        tx.commit().await?;
        Ok(org)
    }

    async fn organization(&self, id: OrganizationId) -> StoreResult<Option<Organization>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            organization_cols!(),
            " FROM organizations WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn organization_by_name(&self, name: &str) -> StoreResult<Option<Organization>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            organization_cols!(),
            " FROM organizations WHERE name_key = $1"
        ))
        .bind(name.trim().to_lowercase())
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_organizations(&self) -> StoreResult<Vec<Organization>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            organization_cols!(),
            " FROM organizations ORDER BY name_key"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn rename_organization(
        &self,
        actor: &Actor,
        id: OrganizationId,
        name: &str,
    ) -> StoreResult<Organization> {
        let name = validate::name("organization name", name)?;
        let mut tx = self.begin_write().await?;
        let org: Organization = sqlx::query_as(concat!(
            "UPDATE organizations SET name = $2, name_key = $3 WHERE id = $1 RETURNING ",
            organization_cols!()
        ))
        .bind(id)
        .bind(&name)
        .bind(name.to_lowercase())
        .fetch_optional(&mut *tx)
        .await
        .map_err(conflict(format!("an organization named {name:?}")))?
        .ok_or_else(|| StoreError::NotFound(format!("organization {id}")))?;
        audit::append(
            &mut tx,
            actor,
            id,
            "organization.rename",
            "organization",
            &id.to_string(),
            serde_json::json!({ "name": name }),
        )
        .await?;
        tx.commit().await?;
        Ok(org)
    }
}
