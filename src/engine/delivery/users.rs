//! Users: in scope at this target, created or brought up to date; out of scope, deprovisioned
//! or deleted, suspended or removed per the connection's policy.

use super::attempt_log::{Log, acknowledged, store_stop};
use super::{DeliveryResult, EXCERPT_BYTES, ScimDelivery, Stop};
use crate::connectors::scim_client::TargetError;
use crate::domain::*;
use crate::scim::render::{self, excerpt};
use serde_json::{Value, json};
use std::time::Duration;

impl ScimDelivery {
    /// Makes the target match what policy says about a user, whatever the operation's action:
    /// in scope → created or brought up to date (suspended users as `active=false`); out of
    /// scope, deprovisioned or deleted → removed per the connection's policy.
    pub(super) async fn converge_user(
        &self,
        op: &Operation,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let org = self.org();
        let pre = self
            .prefetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(op.id, op.attempts));
        let (user, link) = match pre {
            Some(p) => (p.user, p.link),
            None => (
                self.store
                    .user(org, UserId(op.resource_id))
                    .await
                    .map_err(store_stop)?,
                self.link(ResourceType::User, op.resource_id).await?,
            ),
        };
        let Some(user) = user else {
            return if op.action == OperationAction::Delete {
                self.remove_user(op, link, log).await
            } else {
                // Deleted since: the deletion that follows in the queue removes it.
                Ok(LinkUpdate::Keep)
            };
        };
        if op.action == OperationAction::Delete
            && user.lifecycle_state == LifecycleState::Deprovisioned
        {
            return self.remove_user(op, link, log).await;
        }
        let p = self.policy(log.began).await?;
        let (policy, resolver) = (&p.target, &p.roles);
        // Groups matter only through roles or a scope filter; without either, not reading
        // them saves a query per user.
        let groups = if resolver.is_empty() && !policy.scope_reads_user() {
            Vec::new()
        } else {
            self.store
                .user_groups(org, user.id)
                .await
                .map_err(store_stop)?
        };
        let roles = resolver.user_roles(&groups);
        let group_refs: Vec<&Group> = groups.iter().collect();
        if !policy.in_scope(&user, &roles, &group_refs) {
            return self.remove_user(op, link, log).await;
        }
        let doc = policy
            .user_document(&user, &roles)
            .map_err(|e| DeliveryResult::Permanent {
                error: format!("cannot map user {:?} for this target: {e}", user.user_name),
            })?;
        self.sync_document(op, link, doc, render::is_active(&user), log)
            .await
    }

    /// Removes a user per the connection's policy: suspend (soft delete), or suspend for the
    /// grace period and then DELETE.
    pub(super) async fn remove_user(
        &self,
        op: &Operation,
        link: Option<TargetLink>,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let Some(link) = link else {
            return Ok(LinkUpdate::Keep);
        };
        let grace = Duration::from_secs(self.settings.delete_grace_secs);
        let hard_at = op.created_at.after(grace);
        let soft = self.settings.delete_mode == DeleteMode::Suspend || Timestamp::now() < hard_at;
        if soft {
            let mut doc = link
                .last_sent
                .as_ref()
                .map(|j| j.0.clone())
                .unwrap_or_else(|| json!({}));
            if let Some(m) = doc.as_object_mut() {
                m.insert("active".into(), json!(false));
            }
            let hash = render::content_hash(&doc);
            let suspended = if link.content_hash == hash {
                LinkUpdate::Keep
            } else {
                self.suspend(&link, doc, hash, log).await?
            };
            if self.settings.delete_mode == DeleteMode::Delete {
                // Suspended for the grace period; the DELETE comes when it ends (the link is
                // updated then, when it is removed).
                return Err(DeliveryResult::Wait {
                    until: hard_at,
                    reason: format!(
                        "suspended; deleted after the {}s grace period",
                        grace.as_secs()
                    ),
                });
            }
            return Ok(suspended);
        }
        self.delete(ResourceType::User, &link, log).await
    }

    pub(super) async fn suspend(
        &self,
        link: &TargetLink,
        doc: Value,
        hash: String,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let path = format!("/Users/{}", link.remote_id);
        let result = if self.use_patch(log).await? {
            let ops = vec![json!({ "op": "replace", "path": "active", "value": false })];
            log.sent(format!("PATCH {path} active=false"));
            self.client
                .patch(ResourceType::User, &link.remote_id, ops)
                .await
        } else {
            log.sent(format!("PUT {path} {}", excerpt(&doc, EXCERPT_BYTES)));
            self.client
                .replace(ResourceType::User, &link.remote_id, &doc, None)
                .await
        };
        match result {
            Ok(resp) => {
                log.answered(&resp);
                Ok(acknowledged(link, &resp, hash, doc))
            }
            Err(TargetError::Http { status: 404, .. }) => Ok(LinkUpdate::Remove),
            Err(e) => Err(log.fail(e)),
        }
    }
}
