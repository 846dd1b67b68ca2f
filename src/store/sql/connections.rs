//! Connections and their sealed secrets.

use super::{Conn, Db, ThisStore, audit, conflict, keys};
use crate::crypto::{self, Secret};
use crate::domain::{
    Actor, Connection, ConnectionId, ConnectionState, ConnectionUpdate, Json, NewConnection,
    OrganizationId, Timestamp, validate,
};
use crate::store::api::{Connections, StateChange};
use crate::store::{StoreError, StoreResult};

/// The connection's name; NotFound unless it exists in the organization.
pub(super) async fn require(
    conn: &mut Conn,
    org: OrganizationId,
    id: ConnectionId,
) -> StoreResult<String> {
    sqlx::query_scalar("SELECT name FROM connections WHERE organization_id = $1 AND id = $2")
        .bind(org)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("connection {id}")))
}

/// The ids of the organization's SCIM targets, in id order.
pub(super) async fn target_ids(
    conn: &mut Conn,
    org: OrganizationId,
) -> StoreResult<Vec<ConnectionId>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM connections WHERE organization_id = $1 AND kind = 'scim_target' ORDER BY id",
    )
    .bind(org)
    .fetch_all(&mut *conn)
    .await?)
}

#[async_trait::async_trait]
impl Connections for ThisStore {
    async fn create_connection(
        &self,
        actor: &Actor,
        org: OrganizationId,
        new: &NewConnection,
        secret: Option<&Secret>,
    ) -> StoreResult<Connection> {
        let name = validate::name("connection name", &new.name)?;
        let base_url = new
            .base_url
            .as_deref()
            .map(validate::base_url)
            .transpose()?;
        validate::storable_json("settings", &new.settings)?;
        let id = ConnectionId::new();
        let now = Timestamp::now();
        let mut tx = self.begin_write().await?;
        let sealed = match secret {
            Some(s) => Some(crypto::seal_secret(
                &keys::data_key(self, &mut tx, org).await?,
                org,
                id,
                s,
            )?),
            None => None,
        };
        let conn: Connection = sqlx::query_as(concat!(
            "INSERT INTO connections (id, organization_id, name, name_key, kind, base_url, auth_method, ",
            "secret_sealed, settings, state, created_at, updated_at) ",
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING ",
            connection_cols!()
        ))
        .bind(id)
        .bind(org)
        .bind(&name)
        .bind(name.to_lowercase())
        .bind(new.kind.as_str())
        .bind(&base_url)
        .bind(new.auth_method.as_str())
        .bind(sealed)
        .bind(Json(&new.settings))
        .bind(ConnectionState::Active.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict(format!("a connection named {name:?}")))?;
        audit::append(
            &mut tx,
            actor,
            org,
            "connection.create",
            "connection",
            &id.to_string(),
            serde_json::json!({
                "name": name, "kind": new.kind.as_str(), "base_url": base_url,
                "auth_method": new.auth_method.as_str(), "has_secret": secret.is_some(),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(conn)
    }

    async fn saml_connection(&self, id: ConnectionId) -> StoreResult<Option<Connection>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            connection_cols!(),
            " FROM connections WHERE id = $1 AND kind = 'saml'"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn connection(
        &self,
        org: OrganizationId,
        id: ConnectionId,
    ) -> StoreResult<Option<Connection>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            connection_cols!(),
            " FROM connections WHERE organization_id = $1 AND id = $2"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn connection_by_name(
        &self,
        org: OrganizationId,
        name: &str,
    ) -> StoreResult<Option<Connection>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            connection_cols!(),
            " FROM connections WHERE organization_id = $1 AND name_key = $2"
        ))
        .bind(org)
        .bind(name.trim().to_lowercase())
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_connections(&self, org: OrganizationId) -> StoreResult<Vec<Connection>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            connection_cols!(),
            " FROM connections WHERE organization_id = $1 ORDER BY name_key"
        ))
        .bind(org)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn target_connections(&self) -> StoreResult<Vec<Connection>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            connection_cols!(),
            " FROM connections WHERE kind = 'scim_target' ORDER BY organization_id, name"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn pulled_sources(&self) -> StoreResult<Vec<Connection>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            connection_cols!(),
            " FROM connections WHERE kind IN ('scim_source', 'keycloak', 'zitadel') ",
            "ORDER BY organization_id, name"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn update_connection(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: ConnectionId,
        update: &ConnectionUpdate,
    ) -> StoreResult<Connection> {
        if let Some(settings) = &update.settings {
            validate::storable_json("settings", settings)?;
        }
        let base_url = match &update.base_url {
            Some(Some(url)) => Some(Some(validate::base_url(url)?)),
            other => other.clone(),
        };
        let mut tx = self.begin_write().await?;
        let conn: Connection = sqlx::query_as(concat!(
            "UPDATE connections SET ",
            "base_url = CASE WHEN $3 THEN $4 ELSE base_url END, ",
            "auth_method = COALESCE($5, auth_method), ",
            "settings = COALESCE($6, settings), ",
            "state = COALESCE($7, state), ",
            "updated_at = $8 ",
            "WHERE organization_id = $1 AND id = $2 RETURNING ",
            connection_cols!()
        ))
        .bind(org)
        .bind(id)
        .bind(base_url.is_some())
        .bind(base_url.clone().flatten())
        .bind(update.auth_method.map(|a| a.as_str()))
        .bind(update.settings.as_ref().map(Json))
        .bind(update.state.map(|s| s.as_str()))
        .bind(Timestamp::now())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("connection {id}")))?;
        audit::append(
            &mut tx,
            actor,
            org,
            "connection.update",
            "connection",
            &id.to_string(),
            serde_json::json!({
                "name": conn.name,
                "base_url": base_url,
                "auth_method": update.auth_method.map(|a| a.as_str()),
                "settings_changed": update.settings.is_some(),
                "state": update.state.map(|s| s.as_str()),
            }),
        )
        .await?;
        tx.commit().await?;
        self.signal.bump(org);
        Ok(conn)
    }

    async fn set_connection_state(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: ConnectionId,
        change: &StateChange<'_>,
    ) -> StoreResult<Option<Connection>> {
        let StateChange {
            from,
            to: state,
            action,
            reason,
        } = *change;
        let mut tx = self.begin_write().await?;
        let mut q = sqlx::QueryBuilder::<Db>::new("UPDATE connections SET state = ");
        q.push_bind(state.as_str());
        q.push(", updated_at = ");
        q.push_bind(Timestamp::now());
        q.push(" WHERE organization_id = ");
        q.push_bind(org);
        q.push(" AND id = ");
        q.push_bind(id);
        q.push(" AND state");
        push_in_list!(q, from, |f| f.as_str());
        q.push(concat!(" RETURNING ", connection_cols!()));
        let changed: Option<Connection> = q.build_query_as().fetch_optional(&mut *tx).await?;
        let Some(conn) = changed else {
            drop(tx);
            require(&mut *self.pool.acquire().await?, org, id).await?;
            return Ok(None);
        };
        audit::append(
            &mut tx,
            actor,
            org,
            action,
            "connection",
            &id.to_string(),
            serde_json::json!({ "name": conn.name, "state": state.as_str(), "reason": reason }),
        )
        .await?;
        tx.commit().await?;
        self.signal.bump(org);
        Ok(Some(conn))
    }

    async fn set_connection_secret(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: ConnectionId,
        secret: Option<&Secret>,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let name = require(&mut tx, org, id).await?;
        let sealed = match secret {
            Some(s) => Some(crypto::seal_secret(
                &keys::data_key(self, &mut tx, org).await?,
                org,
                id,
                s,
            )?),
            None => None,
        };
        sqlx::query(
            "UPDATE connections SET secret_sealed = $3, updated_at = $4 WHERE organization_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(id)
        .bind(sealed)
        .bind(Timestamp::now())
        .execute(&mut *tx)
        .await?;
        let action = if secret.is_some() {
            "connection.secret_rotate"
        } else {
            "connection.secret_clear"
        };
        audit::append(
            &mut tx,
            actor,
            org,
            action,
            "connection",
            &id.to_string(),
            serde_json::json!({ "name": name }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn connection_secret(
        &self,
        org: OrganizationId,
        id: ConnectionId,
    ) -> StoreResult<Option<Secret>> {
        let mut conn = self.pool.acquire().await?;
        let sealed: Option<Option<Vec<u8>>> = sqlx::query_scalar(
            "SELECT secret_sealed FROM connections WHERE organization_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        match sealed {
            None => Err(StoreError::NotFound(format!("connection {id}"))),
            Some(None) => Ok(None),
            Some(Some(blob)) => {
                let key = keys::data_key(self, &mut conn, org).await?;
                Ok(Some(crypto::open_secret(&key, org, id, &blob)?))
            }
        }
    }

    async fn delete_connection(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: ConnectionId,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let Ok(name) = require(&mut tx, org, id).await else {
            return Ok(false);
        };
        for sql in [
            "UPDATE users SET source_connection_id = NULL WHERE organization_id = $1 AND source_connection_id = $2",
            "UPDATE groups SET source_connection_id = NULL WHERE organization_id = $1 AND source_connection_id = $2",
            // No foreign key cascades these on PostgreSQL (migrations/postgres/0003, 0004).
            "DELETE FROM operation_queue WHERE organization_id = $1 AND connection_id = $2",
            "DELETE FROM operation_history WHERE organization_id = $1 AND connection_id = $2",
            "DELETE FROM operation_attempts WHERE organization_id = $1 AND connection_id = $2",
            "DELETE FROM connection_stats WHERE organization_id = $1 AND connection_id = $2",
            "DELETE FROM target_links WHERE organization_id = $1 AND connection_id = $2",
            "DELETE FROM connections WHERE organization_id = $1 AND id = $2",
        ] {
            sqlx::query(sql)
                .bind(org)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        audit::append(
            &mut tx,
            actor,
            org,
            "connection.delete",
            "connection",
            &id.to_string(),
            serde_json::json!({ "name": name }),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
