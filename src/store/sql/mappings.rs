//! Roles and group-to-role mappings; a mapping change commits with the work it causes.

use super::{ThisStore, audit, conflict, exceptions, queue};
use crate::domain::{
    Actor, ExceptionKind, InvalidInput, MappingCommit, MappingWrite, OrganizationId, Role, RoleId,
    RoleMapping, RoleMappingDraft, RoleMappingId, Timestamp, validate,
};
use crate::store::api::Mappings;
use crate::store::{StoreError, StoreResult};

/// Refuses a mapping without a pattern.
fn check(draft: &RoleMappingDraft) -> StoreResult<()> {
    if draft.pattern.trim().is_empty() {
        return Err(InvalidInput::new("pattern", "must not be empty").into());
    }
    Ok(())
}

#[async_trait::async_trait]
impl Mappings for ThisStore {
    async fn create_role(
        &self,
        actor: &Actor,
        org: OrganizationId,
        name: &str,
        description: &str,
    ) -> StoreResult<Role> {
        let name = validate::name("role name", name)?;
        let id = RoleId::new();
        let mut tx = self.begin_write().await?;
        let role: Role = sqlx::query_as(concat!(
            "INSERT INTO roles (id, organization_id, name, name_key, description, created_at) ",
            "VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
            role_cols!()
        ))
        .bind(id)
        .bind(org)
        .bind(&name)
        .bind(name.to_lowercase())
        .bind(description)
        .bind(Timestamp::now())
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict(format!("a role named {name:?}")))?;
        audit::append(
            &mut tx,
            actor,
            org,
            "role.create",
            "role",
            &id.to_string(),
            serde_json::json!({ "name": name }),
        )
        .await?;
        tx.commit().await?;
        Ok(role)
    }

    async fn role(&self, org: OrganizationId, id: RoleId) -> StoreResult<Option<Role>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            role_cols!(),
            " FROM roles WHERE organization_id = $1 AND id = $2"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_roles(&self, org: OrganizationId) -> StoreResult<Vec<Role>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            role_cols!(),
            " FROM roles WHERE organization_id = $1 ORDER BY name_key"
        ))
        .bind(org)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn update_role(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: RoleId,
        name: &str,
        description: &str,
    ) -> StoreResult<Role> {
        let name = validate::name("role name", name)?;
        let mut tx = self.begin_write().await?;
        let role: Role = sqlx::query_as(concat!(
            "UPDATE roles SET name = $3, name_key = $4, description = $5 WHERE organization_id = $1 AND id = $2 RETURNING ",
            role_cols!()
        ))
        .bind(org)
        .bind(id)
        .bind(&name)
        .bind(name.to_lowercase())
        .bind(description)
        .fetch_optional(&mut *tx)
        .await
        .map_err(conflict(format!("a role named {name:?}")))?
        .ok_or_else(|| StoreError::NotFound(format!("role {id}")))?;
        audit::append(
            &mut tx,
            actor,
            org,
            "role.update",
            "role",
            &id.to_string(),
            serde_json::json!({ "name": name }),
        )
        .await?;
        tx.commit().await?;
        Ok(role)
    }

    async fn delete_role(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: RoleId,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let name: Option<String> = sqlx::query_scalar(
            "DELETE FROM roles WHERE organization_id = $1 AND id = $2 RETURNING name",
        )
        .bind(org)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(name) = name else { return Ok(false) };
        audit::append(
            &mut tx,
            actor,
            org,
            "role.delete",
            "role",
            &id.to_string(),
            serde_json::json!({ "name": name }),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn create_role_mapping(
        &self,
        actor: &Actor,
        org: OrganizationId,
        draft: &RoleMappingDraft,
    ) -> StoreResult<RoleMapping> {
        let commit = MappingCommit::plain(MappingWrite::Create(draft.clone()));
        self.commit_mapping_change(actor, org, &commit)
            .await?
            .ok_or_else(|| StoreError::NotFound("the new mapping".into()))
    }

    async fn role_mapping(
        &self,
        org: OrganizationId,
        id: RoleMappingId,
    ) -> StoreResult<Option<RoleMapping>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            mapping_cols!(),
            " FROM role_mappings WHERE organization_id = $1 AND id = $2"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_role_mappings(&self, org: OrganizationId) -> StoreResult<Vec<RoleMapping>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            mapping_cols!(),
            " FROM role_mappings WHERE organization_id = $1 ORDER BY id"
        ))
        .bind(org)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn replace_role_mapping(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: RoleMappingId,
        draft: &RoleMappingDraft,
    ) -> StoreResult<RoleMapping> {
        let commit = MappingCommit::plain(MappingWrite::Replace(id, draft.clone()));
        self.commit_mapping_change(actor, org, &commit)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("mapping {id}")))
    }

    async fn delete_role_mapping(
        &self,
        actor: &Actor,
        org: OrganizationId,
        id: RoleMappingId,
    ) -> StoreResult<bool> {
        let commit = MappingCommit::plain(MappingWrite::Delete(id));
        match self.commit_mapping_change(actor, org, &commit).await {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn commit_mapping_change(
        &self,
        actor: &Actor,
        org: OrganizationId,
        commit: &MappingCommit,
    ) -> StoreResult<Option<RoleMapping>> {
        let mut tx = self.begin_write().await?;
        let (mapping, action, id, mut details) = match &commit.write {
            MappingWrite::Create(draft) | MappingWrite::Replace(_, draft) => {
                check(draft)?;
                let (id, sql, action) = match &commit.write {
                    MappingWrite::Replace(id, _) => (
                        *id,
                        concat!(
                            "UPDATE role_mappings SET source_connection_id = $3, selector = $4, match_mode = $5, pattern = $6, role_id = $7 ",
                            "WHERE organization_id = $1 AND id = $2 RETURNING ",
                            mapping_cols!()
                        ),
                        "mapping.replace",
                    ),
                    _ => (
                        RoleMappingId::new(),
                        concat!(
                            "INSERT INTO role_mappings (id, organization_id, source_connection_id, selector, match_mode, pattern, role_id, created_at) ",
                            "VALUES ($2, $1, $3, $4, $5, $6, $7, $8) RETURNING ",
                            mapping_cols!()
                        ),
                        "mapping.create",
                    ),
                };
                let mapping: RoleMapping = sqlx::query_as(sql)
                    .bind(org)
                    .bind(id)
                    .bind(draft.source_connection_id)
                    .bind(draft.selector.as_str())
                    .bind(draft.match_mode.as_str())
                    .bind(&draft.pattern)
                    .bind(draft.role_id)
                    .bind(Timestamp::now())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(conflict("the mapping".into()))?
                    .ok_or_else(|| StoreError::NotFound(format!("mapping {id}")))?;
                let details = serde_json::json!({
                    "selector": draft.selector.as_str(), "match_mode": draft.match_mode.as_str(),
                    "pattern": draft.pattern, "role_id": draft.role_id,
                    "source_connection_id": draft.source_connection_id,
                });
                (Some(mapping), action, id, details)
            }
            MappingWrite::Delete(id) => {
                let pattern: Option<String> = sqlx::query_scalar(
                    "DELETE FROM role_mappings WHERE organization_id = $1 AND id = $2 RETURNING pattern",
                )
                .bind(org)
                .bind(*id)
                .fetch_optional(&mut *tx)
                .await?;
                let pattern =
                    pattern.ok_or_else(|| StoreError::NotFound(format!("mapping {id}")))?;
                (
                    None,
                    "mapping.delete",
                    *id,
                    serde_json::json!({ "pattern": pattern }),
                )
            }
        };
        let mut queued = 0;
        for op in &commit.operations {
            queued += queue::enqueue_one(&mut tx, org, op).await?;
        }
        let mut raised = Vec::new();
        for e in &commit.raise {
            if exceptions::raise(&mut tx, org, e).await?.is_some() {
                raised.push(e.subject.clone());
            }
        }
        // The exceptions a mapping change settles are named in its own audit event.
        let mut resolved = Vec::new();
        for (key, resolution) in &commit.resolve {
            let settled = exceptions::settle_open(
                &mut tx,
                org,
                ExceptionKind::UnmappedGroup,
                key,
                resolution,
                &actor.name,
            )
            .await?;
            if settled > 0 {
                resolved.push(key.clone());
            }
        }
        if let Some(m) = details.as_object_mut() {
            if !commit.summary.is_null() {
                m.insert("impact".into(), commit.summary.clone());
                m.insert("operations_queued".into(), serde_json::json!(queued));
            }
            if !raised.is_empty() {
                m.insert("exceptions_raised".into(), serde_json::json!(raised));
            }
            if !resolved.is_empty() {
                m.insert("exceptions_resolved".into(), serde_json::json!(resolved));
            }
        }
        audit::append(
            &mut tx,
            actor,
            org,
            action,
            "role_mapping",
            &id.to_string(),
            details,
        )
        .await?;
        tx.commit().await?;
        self.signal.bump(org);
        Ok(mapping)
    }
}
