//! Making the target hold a resource's document: found before it is created (so never twice),
//! created, adopted, updated with the fewest changes, deleted; and the conflicts that need a
//! person.

use super::attempt_log::{Log, acknowledged, holds, store_stop};
use super::{DeliveryResult, EXCERPT_BYTES, ScimDelivery, Stop};
use crate::connectors::scim_client::TargetError;
use crate::domain::*;
use crate::engine::lookup::LookupKeys;
use crate::scim::render::{self, excerpt};
use serde_json::{Value, json};

/// Whether a target said a PATCH path matched nothing (RFC 7644 §3.12 `noTarget`).
pub(super) fn is_no_target(e: &TargetError) -> bool {
    matches!(e, TargetError::Http { status: 400, scim_type: Some(t), .. } if t.eq_ignore_ascii_case("noTarget"))
}

/// Whether a PATCH operation removes group members by value.
pub(super) fn is_member_removal(op: &Value) -> bool {
    op.get("op").and_then(Value::as_str) == Some("remove")
        && op
            .get("path")
            .and_then(Value::as_str)
            .is_some_and(|p| p.starts_with("members["))
}

pub(super) fn endpoint(rt: ResourceType) -> &'static str {
    match rt {
        ResourceType::User => "/Users",
        ResourceType::Group => "/Groups",
    }
}

impl ScimDelivery {
    /// Whether updates go as PATCH (asks the target's ServiceProviderConfig once).
    pub(super) async fn use_patch(&self, log: &mut Log) -> Result<bool, Stop> {
        match self.settings.update_mode {
            UpdateMode::Patch => return Ok(true),
            UpdateMode::Put => return Ok(false),
            UpdateMode::Auto => {}
        }
        if let Some(p) = self.patch.get() {
            return Ok(*p);
        }
        log.sent("GET /ServiceProviderConfig".into());
        let supported = self
            .client
            .supports_patch()
            .await
            .map_err(|e| log.fail(e))?;
        let _ = self.patch.set(supported);
        Ok(supported)
    }

    pub(super) async fn link(
        &self,
        rt: ResourceType,
        id: uuid::Uuid,
    ) -> Result<Option<TargetLink>, Stop> {
        self.store
            .target_link(self.org(), self.connection.id, rt, id)
            .await
            .map_err(store_stop)
    }

    /// Finds a resource at the target that is this one: by `externalId` (scimdesk's id), then by
    /// `userName` or `displayName`. A resource found by name that carries another provisioner's
    /// `externalId` is not ours to take over: that raises a conflict exception instead.
    pub(super) async fn find_existing(
        &self,
        op: &Operation,
        doc: &Value,
        log: &mut Log,
    ) -> Result<Option<Value>, Stop> {
        let rt = op.resource_type;
        let found = self.find_by_keys(rt, doc, log).await?;
        let Some(found) = found else {
            return Ok(None);
        };
        let ours = doc.get("externalId").and_then(Value::as_str);
        match found.get("externalId").and_then(Value::as_str) {
            Some(theirs) if Some(theirs) != ours => Err(self
                .conflict(
                    op,
                    doc,
                    Some(&found),
                    format!("the target holds a resource with this name that belongs to another source (externalId {theirs:?})"),
                )
                .await),
            _ => Ok(Some(found)),
        }
    }

    /// Raises a conflict exception with both sides and stops the operation for a person.
    pub(super) async fn conflict(
        &self,
        op: &Operation,
        ours: &Value,
        theirs: Option<&Value>,
        why: String,
    ) -> Stop {
        let subject = ours
            .get("userName")
            .or_else(|| ours.get("displayName"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let raised = self
            .store
            .raise_exception(
                self.org(),
                &NewException {
                    kind: ExceptionKind::Conflict,
                    subject_key: format!("conflict:{}:{}:{}", self.connection.id, op.resource_type, op.resource_id),
                    connection_id: Some(self.connection.id),
                    subject,
                    summary: why.clone(),
                    details: json!({
                        "operation_id": op.id,
                        "resource_type": op.resource_type,
                        "resource_id": op.resource_id,
                        "ours": serde_json::from_str::<Value>(&excerpt(ours, 4096)).unwrap_or(Value::Null),
                        "theirs": theirs.map(|t| serde_json::from_str::<Value>(&excerpt(t, 4096)).unwrap_or(Value::Null)),
                    }),
                },
            )
            .await;
        let note = match raised {
            Err(e) => format!(" (the conflict could not be recorded: {e})"),
            Ok(_) => " (see `scimdesk exceptions list`)".into(),
        };
        DeliveryResult::Permanent {
            error: format!("conflict: {why}{note}"),
        }
    }

    /// The target's resource with this document's `externalId` or name (one look-up shared
    /// with the creates running at the same time, see [`LookupBatcher`]).
    pub(super) async fn find_by_keys(
        &self,
        rt: ResourceType,
        doc: &Value,
        log: &mut Log,
    ) -> Result<Option<Value>, Stop> {
        let natural = match rt {
            ResourceType::User => "userName",
            ResourceType::Group => "displayName",
        };
        let text = |attr: &str| doc.get(attr).and_then(Value::as_str).map(str::to_string);
        let keys = LookupKeys {
            external_id: text("externalId"),
            name: text(natural),
        };
        match self.lookups.find(&self.client, rt, keys).await {
            Ok(found) => {
                found.sent.into_iter().for_each(|l| log.sent(l));
                Ok(found.resource)
            }
            Err((e, sent)) => {
                sent.into_iter().for_each(|l| log.sent(l));
                Err(log.fail(e))
            }
        }
    }

    /// Creates the resource, never twice: looks it up first (always, or after an attempt that
    /// may have reached the target), and links an existing one on 409.
    pub(super) async fn create(
        &self,
        op: &Operation,
        doc: &Value,
        hash: String,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let rt = op.resource_type;
        let look_first = self.settings.create_lookup == CreateLookup::Always || op.attempts > 1;
        if look_first && let Some(existing) = self.find_existing(op, doc, log).await? {
            return self.adopt(rt, &existing, doc, hash, log).await;
        }
        log.sent(format!(
            "POST {} {}",
            endpoint(rt),
            excerpt(doc, EXCERPT_BYTES)
        ));
        match self.client.create(rt, doc).await {
            Ok(resp) => {
                log.answered(&resp);
                let remote_id = resp
                    .resource_id()
                    .ok_or_else(|| DeliveryResult::Permanent {
                        error: "the target created the resource but returned no id".into(),
                    })?;
                Ok(LinkUpdate::Set {
                    remote_id,
                    remote_etag: resp.version(),
                    content_hash: hash,
                    last_sent: Some(doc.clone()),
                })
            }
            Err(TargetError::Http { status: 409, .. }) => {
                log.status = Some(409);
                match self.find_existing(op, doc, log).await? {
                    Some(existing) => self.adopt(rt, &existing, doc, hash, log).await,
                    None => Err(self
                        .conflict(
                            op,
                            doc,
                            None,
                            "the target answered 409 (already exists) but no resource with this externalId or name can be found there".into(),
                        )
                        .await),
                }
            }
            Err(e) => Err(log.fail(e)),
        }
    }

    /// Links a resource found at the target and brings it up to date.
    pub(super) async fn adopt(
        &self,
        rt: ResourceType,
        existing: &Value,
        doc: &Value,
        hash: String,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let remote_id = existing
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| DeliveryResult::Permanent {
                error: "a matching resource at the target has no id".into(),
            })?
            .to_string();
        // What it holds is unknown to us: send everything (PUT, or PATCH replacing all).
        let link = TargetLink {
            organization_id: self.org(),
            connection_id: self.connection.id,
            resource_type: rt,
            local_id: uuid::Uuid::nil(),
            remote_id,
            remote_etag: None,
            content_hash: String::new(),
            synced_at: Timestamp::now(),
            last_sent: None,
        };
        self.update(rt, &link, doc, hash, log).await
    }

    /// Brings a linked resource up to date; a 404 means it is gone at the target.
    pub(super) async fn update(
        &self,
        rt: ResourceType,
        link: &TargetLink,
        doc: &Value,
        hash: String,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let path = format!("{}/{}", endpoint(rt), link.remote_id);
        let result = if self.use_patch(log).await? {
            let ops = render::patch_operations(link.last_sent.as_ref().map(|j| &j.0), doc);
            if ops.is_empty() {
                return Ok(holds(link, hash, doc.clone()));
            }
            log.sent(format!(
                "PATCH {path} {}",
                excerpt(&Value::Array(ops.clone()), EXCERPT_BYTES)
            ));
            match self.client.patch(rt, &link.remote_id, ops.clone()).await {
                Err(e) if is_no_target(&e) && ops.iter().any(is_member_removal) => {
                    // A member we remove is already gone there (deleted at the target, which
                    // took it out of its groups): send the rest.
                    log.failed(&e);
                    let rest: Vec<Value> =
                        ops.into_iter().filter(|o| !is_member_removal(o)).collect();
                    if rest.is_empty() {
                        return Ok(holds(link, hash, doc.clone()));
                    }
                    log.sent(format!(
                        "PATCH {path} {}",
                        excerpt(&Value::Array(rest.clone()), EXCERPT_BYTES)
                    ));
                    self.client.patch(rt, &link.remote_id, rest).await
                }
                other => other,
            }
        } else {
            log.sent(format!("PUT {path} {}", excerpt(doc, EXCERPT_BYTES)));
            self.client.replace(rt, &link.remote_id, doc, None).await
        };
        match result {
            Ok(resp) => {
                log.answered(&resp);
                Ok(acknowledged(link, &resp, hash, doc.clone()))
            }
            Err(e) => Err(log.fail(e)),
        }
    }

    /// Makes the target hold `doc` for the operation's resource.
    pub(super) async fn sync_document(
        &self,
        op: &Operation,
        link: Option<TargetLink>,
        doc: Value,
        wanted_at_target: bool,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let hash = render::content_hash(&doc);
        match link {
            Some(link) if link.content_hash == hash => Ok(LinkUpdate::Keep),
            Some(link) => match self
                .update(op.resource_type, &link, &doc, hash.clone(), log)
                .await
            {
                Err(DeliveryResult::Permanent { .. }) if log.status == Some(404) => {
                    // Removed at the target behind our back: create it again if it should exist.
                    if wanted_at_target {
                        self.create(op, &doc, hash, log).await
                    } else {
                        Ok(LinkUpdate::Remove)
                    }
                }
                other => other,
            },
            // A suspended user that the target never had needs nothing there.
            None if !wanted_at_target => Ok(LinkUpdate::Keep),
            None => self.create(op, &doc, hash, log).await,
        }
    }

    pub(super) async fn delete(
        &self,
        rt: ResourceType,
        link: &TargetLink,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        log.sent(format!("DELETE {}/{}", endpoint(rt), link.remote_id));
        match self.client.delete(rt, &link.remote_id).await {
            Ok(existed) => {
                log.status = Some(if existed { 204 } else { 404 });
                Ok(LinkUpdate::Remove)
            }
            Err(e) => Err(log.fail(e)),
        }
    }

    /// Deletes a resource at the target that nothing here knows (a reconciliation's repair):
    /// gone already counts as done, and there is no link to keep.
    pub(super) async fn delete_unknown(
        &self,
        rt: ResourceType,
        remote_id: &str,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        log.sent(format!("DELETE {}/{remote_id}", endpoint(rt)));
        match self.client.delete(rt, remote_id).await {
            Ok(existed) => {
                log.status = Some(if existed { 204 } else { 404 });
                Ok(LinkUpdate::Keep)
            }
            Err(e) => Err(log.fail(e)),
        }
    }
}
