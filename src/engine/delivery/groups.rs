//! Groups: the source's own groups (mirrored) and the target groups that carry roles, sent
//! with the members that are at the target; member changes as PATCH; and the races with the
//! members' own work at the same target.

use super::attempt_log::{Log, acknowledged, holds, store_stop};
use super::resources::is_no_target;
use super::{DeliveryResult, EXCERPT_BYTES, ScimDelivery, Stop};
use crate::connectors::scim_client::TargetError;
use crate::domain::*;
use crate::scim::render::{self, excerpt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

/// How soon an operation waiting for another resource (a group for its members) looks again.
const DEPENDENCY_WAIT: Duration = Duration::from_millis(500);

/// The target ids of group members given as (local id, remote id).
pub(super) fn remote_ids(members: &[(uuid::Uuid, String)]) -> Vec<String> {
    members.iter().map(|(_, r)| r.clone()).collect()
}

impl ScimDelivery {
    /// The target ids of a group's members; waits while a member is still on its way there.
    pub(super) async fn remote_members(
        &self,
        members: &[UserId],
    ) -> Result<Vec<(uuid::Uuid, String)>, Stop> {
        let ids: Vec<uuid::Uuid> = members.iter().map(|m| m.0).collect();
        let links = self
            .store
            .target_links_for(self.org(), self.connection.id, ResourceType::User, &ids)
            .await
            .map_err(store_stop)?;
        let mut linked: std::collections::HashMap<uuid::Uuid, String> = links
            .into_iter()
            .map(|l| (l.local_id, l.remote_id))
            .collect();
        let unlinked: Vec<uuid::Uuid> = ids
            .iter()
            .filter(|id| !linked.contains_key(id))
            .copied()
            .collect();
        if !unlinked.is_empty() {
            let pending = self
                .store
                .resources_in_progress(self.connection.id, &unlinked)
                .await
                .map_err(store_stop)?;
            if let Some(id) = pending.first() {
                return Err(DeliveryResult::Wait {
                    until: Timestamp::now().after(DEPENDENCY_WAIT),
                    reason: format!("member {id} is not at the target yet"),
                });
            }
            // A member's operation may have finished between the two reads above: it was
            // not linked at the first and no longer unfinished at the second. Its link was
            // written with its completion, so it is visible now; without this second look it
            // was left out of the group, and nothing would have sent the group again.
            let late = self
                .store
                .target_links_for(
                    self.org(),
                    self.connection.id,
                    ResourceType::User,
                    &unlinked,
                )
                .await
                .map_err(store_stop)?;
            linked.extend(late.into_iter().map(|l| (l.local_id, l.remote_id)));
        }
        // Members neither linked nor in progress are not provisioned to this target
        // (suspended, out of scope, or stuck behind a failed operation that waits for an
        // operator): they are not members there. Waiting for a stuck member held up the
        // group for everyone else.
        let remote = ids
            .iter()
            .filter_map(|id| linked.get(id).map(|r| (*id, r.clone())))
            .collect();
        Ok(remote)
    }

    /// Sends a group (source or role group) holding `members` (local id, remote id) and
    /// links it. A member sent may have been removed at the target by one of this target's
    /// own operations running alongside (a member leaving is deleted there while the group
    /// that still named them is on its way), and the target then refuses the whole group
    /// (400 for an unknown member). That is no reason for an operator: if any member sent
    /// has work unfinished here or is no longer linked as sent, the group is retried (with
    /// back-off) and rendered again from what is true by then. A refusal with every member
    /// still as sent stays a failure.
    pub(super) async fn send_group(
        &self,
        op: &Operation,
        doc: Value,
        members: &[(uuid::Uuid, String)],
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let link = self.link(op.resource_type, op.resource_id).await?;
        match self.sync_document(op, link, doc, true, log).await {
            Err(stop) => Err(self.unless_members_moved(stop, members, log).await),
            done => done,
        }
    }

    /// A target's refusal (4xx) of a group naming `members`, or a retry if any has moved
    /// since (see [`send_group`](Self::send_group)).
    pub(super) async fn unless_members_moved(
        &self,
        stop: Stop,
        members: &[(uuid::Uuid, String)],
        log: &Log,
    ) -> Stop {
        let DeliveryResult::Permanent { error } = &stop else {
            return stop;
        };
        if !log.status.is_some_and(|s| (400..500).contains(&s)) {
            return stop;
        }
        // A retry with back-off, not a wait: the race settles within a retry or two, while a
        // member whose work is stuck (failed, waiting for an operator) must not make the group
        // knock at the target every half second for ever; it uses up the attempt budget and
        // fails with this message instead.
        match self.members_moved(members).await {
            Ok(true) => DeliveryResult::Transient {
                retry_after: None,
                error: format!(
                    "a member changed at this target while the group was sent; it is sent again ({error})"
                ),
            },
            Ok(false) => stop,
            Err(e) => e,
        }
    }

    /// Whether any of `members` (local id, remote id as sent) now has work unfinished at this
    /// target or a link other than the one sent.
    pub(super) async fn members_moved(
        &self,
        members: &[(uuid::Uuid, String)],
    ) -> Result<bool, Stop> {
        if members.is_empty() {
            return Ok(false);
        }
        let ids: Vec<uuid::Uuid> = members.iter().map(|(id, _)| *id).collect();
        let busy = self
            .store
            .resources_in_progress(self.connection.id, &ids)
            .await
            .map_err(store_stop)?;
        if !busy.is_empty() {
            return Ok(true);
        }
        let now: HashMap<uuid::Uuid, String> = self
            .store
            .target_links_for(self.org(), self.connection.id, ResourceType::User, &ids)
            .await
            .map_err(store_stop)?
            .into_iter()
            .map(|l| (l.local_id, l.remote_id))
            .collect();
        Ok(members
            .iter()
            .any(|(id, remote)| now.get(id) != Some(remote)))
    }

    /// Create or update of a group with its members.
    pub(super) async fn sync_group(
        &self,
        op: &Operation,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let org = self.org();
        let Some(group) = self
            .store
            .group(org, GroupId(op.resource_id))
            .await
            .map_err(store_stop)?
        else {
            return Ok(LinkUpdate::Keep);
        };
        let members = self
            .store
            .group_members(org, group.id)
            .await
            .map_err(store_stop)?;
        let remote = self.remote_members(&members).await?;
        let doc = render::group_document(&group, &remote_ids(&remote));
        self.send_group(op, doc, &remote, log).await
    }

    /// A group operation is about a source group, or (its id being a role's) about the target
    /// group that carries a role.
    pub(super) async fn converge_group(
        &self,
        op: &Operation,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let org = self.org();
        if self
            .store
            .group(org, GroupId(op.resource_id))
            .await
            .map_err(store_stop)?
            .is_some()
        {
            if !self.settings.source_groups {
                return Ok(LinkUpdate::Keep);
            }
            return self.sync_group(op, log).await;
        }
        match self
            .store
            .role(org, RoleId(op.resource_id))
            .await
            .map_err(store_stop)?
        {
            Some(role) => self.sync_role_group(op, &role, log).await,
            None => Ok(LinkUpdate::Keep),
        }
    }

    /// Makes the target group of `role` hold exactly the role's holders in scope at this
    /// target (those already there; the others join when they arrive).
    pub(super) async fn sync_role_group(
        &self,
        op: &Operation,
        role: &Role,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let org = self.org();
        let p = self.policy(log.began).await?;
        let (policy, resolver) = (&p.target, &p.roles);
        if !policy.roles_as_groups() || !policy.bound_roles().contains(&role.id) {
            return Ok(LinkUpdate::Keep);
        }
        let groups = self
            .store
            .list_groups(org, crate::store::ListRange::first(u32::MAX))
            .await
            .map_err(store_stop)?;
        let granting: Vec<GroupId> = groups
            .iter()
            .filter(|g| resolver.group_roles(g).contains(&role.id))
            .map(|g| g.id)
            .collect();
        // One query for all the granting groups (a glob can match thousands).
        let mut holders: Vec<UserId> = self
            .store
            .memberships_of_groups(org, &granting)
            .await
            .map_err(store_stop)?
            .into_iter()
            .map(|(_, u)| u)
            .collect();
        holders.sort();
        holders.dedup();
        if policy.scope_reads_user() {
            let by_id: std::collections::HashMap<GroupId, &Group> =
                groups.iter().map(|g| (g.id, g)).collect();
            let mut of_user: std::collections::HashMap<UserId, Vec<&Group>> = Default::default();
            for (g, u) in self
                .store
                .organization_memberships(org)
                .await
                .map_err(store_stop)?
            {
                if let Some(g) = by_id.get(&g) {
                    of_user.entry(u).or_default().push(g);
                }
            }
            let users = self
                .store
                .users_by_ids(org, &holders)
                .await
                .map_err(store_stop)?;
            holders = users
                .iter()
                .filter(|u| {
                    let gs = of_user.get(&u.id).cloned().unwrap_or_default();
                    let roles = resolver.user_roles(gs.iter().copied());
                    policy.in_scope(u, &roles, &gs)
                })
                .map(|u| u.id)
                .collect();
        }
        let remote = self.remote_members(&holders).await?;
        let doc = policy.role_group_document(role.id, &remote_ids(&remote));
        self.send_group(op, doc, &remote, log).await
    }

    /// Adds or removes the members named in the payload (PATCH), or re-sends the group (PUT).
    pub(super) async fn change_members(
        &self,
        op: &Operation,
        log: &mut Log,
    ) -> Result<LinkUpdate, Stop> {
        let Some(link) = self.link(ResourceType::Group, op.resource_id).await? else {
            // The group itself is not at the target yet: sending it whole includes the change.
            return self.sync_group(op, log).await;
        };
        if !self.use_patch(log).await? {
            return self.sync_group(op, log).await;
        }
        let ids: Vec<UserId> = op
            .payload
            .0
            .get("members")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()).map(UserId))
                    .collect()
            })
            .unwrap_or_default();
        let adding = op.action == OperationAction::AddMembers;
        let remote = if adding {
            self.remote_members(&ids).await?
        } else {
            let links = self
                .store
                .target_links_for(
                    self.org(),
                    self.connection.id,
                    ResourceType::User,
                    &ids.iter().map(|u| u.0).collect::<Vec<_>>(),
                )
                .await
                .map_err(store_stop)?;
            links
                .into_iter()
                .map(|l| (l.local_id, l.remote_id))
                .collect()
        };
        if remote.is_empty() {
            return Ok(LinkUpdate::Keep);
        }
        let sent = remote_ids(&remote);
        let (added, removed): (Vec<String>, Vec<String>) = if adding {
            (sent, Vec::new())
        } else {
            (Vec::new(), sent)
        };
        let ops = render::member_operations(&added, &removed);
        let path = format!("/Groups/{}", link.remote_id);
        // What the target holds once the change is made.
        let last = link
            .last_sent
            .as_ref()
            .map(|j| j.0.clone())
            .unwrap_or_else(|| json!({}));
        let now_there = render::with_members_changed(&last, &added, &removed);
        let hash = render::content_hash(&now_there);
        log.sent(format!(
            "PATCH {path} {}",
            excerpt(&Value::Array(ops.clone()), EXCERPT_BYTES)
        ));
        match self
            .client
            .patch(ResourceType::Group, &link.remote_id, ops)
            .await
        {
            Ok(resp) => {
                log.answered(&resp);
                Ok(acknowledged(&link, &resp, hash, now_there))
            }
            Err(e) if !adding && is_no_target(&e) => {
                // The members are not there any more: what this operation wanted is true.
                log.failed(&e);
                Ok(holds(&link, hash, now_there))
            }
            Err(TargetError::Http { status: 404, .. }) => {
                log.status = Some(404);
                // The group is gone at the target: forget it; the next group change recreates it.
                let _ = self
                    .store
                    .delete_target_link(
                        self.org(),
                        self.connection.id,
                        ResourceType::Group,
                        op.resource_id,
                    )
                    .await;
                self.sync_group(op, log).await
            }
            Err(e) => {
                let stop = log.fail(e);
                Err(self.unless_members_moved(stop, &remote, log).await)
            }
        }
    }
}
