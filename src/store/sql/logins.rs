//! Logins from SAML sources: the login's whole write in one transaction, through the same
//! writes a push makes (so the fan-out, the queue and the audit log see a login's changes as
//! they see a pushed one), behind the replay cache's key.

use super::{Db, ThisStore, groups, syncs, users};
use crate::domain::{
    Actor, AuditEventId, ConnectionId, GroupDraft, GroupId, Json, LoginBatch, LoginUser, LoginView,
    OrganizationId, SyncRun, Timestamp, User, validate,
};
use crate::store::StoreResult;
use crate::store::api::{LoginApplied, Logins};
use std::collections::HashMap;

/// The source's groups among `external_ids`, by external id, on the caller's connection.
async fn source_groups<'c, E>(
    conn: E,
    org: OrganizationId,
    source: ConnectionId,
    external_ids: &[String],
) -> StoreResult<Vec<(GroupId, String)>>
where
    E: sqlx::Executor<'c, Database = Db>,
{
    if external_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = sqlx::QueryBuilder::<Db>::new(
        "SELECT id, external_id FROM groups WHERE organization_id = ",
    );
    q.push_bind(org)
        .push(" AND source_connection_id = ")
        .push_bind(source)
        .push(" AND external_id");
    push_in_list!(q, external_ids, |e| e);
    Ok(q.build_query_as::<(GroupId, String)>()
        .fetch_all(conn)
        .await?)
}

impl ThisStore {
    /// A login that writes nothing but its replay key and its record, as one statement
    /// (`QUIET_LOGIN`, where the backend has one): the most common login, a user signing in
    /// again with the groups they had.
    async fn quiet_login(
        &self,
        org: OrganizationId,
        source: ConnectionId,
        login: &LoginBatch,
    ) -> StoreResult<LoginApplied> {
        let run = &login.run;
        let actor = Actor::system(run.actor.clone());
        let details = syncs::run_event(
            run,
            serde_json::json!({ "user_id": login.user.id(), "groups_created": 0 }),
        );
        let written: i64 = sqlx::query_scalar(ThisStore::QUIET_LOGIN)
            .bind(source)
            .bind(&login.assertion_id)
            .bind(org)
            .bind(login.expires_at)
            .bind(run.id)
            .bind(run.started_at)
            .bind(run.finished_at)
            .bind(run.full_sync)
            .bind(run.dry_run)
            .bind(&run.actor)
            .bind(&run.counts)
            .bind(&run.error)
            .bind(&run.note)
            .bind(AuditEventId::new())
            .bind(Timestamp::now())
            .bind(actor.kind.as_str())
            .bind(&actor.name)
            .bind("saml.login")
            .bind("connection")
            .bind(source.to_string())
            .bind(Json(details))
            .fetch_one(&self.pool)
            .await?;
        Ok(if written > 0 {
            LoginApplied::Written { groups_created: 0 }
        } else {
            LoginApplied::Replayed
        })
    }
}

#[async_trait::async_trait]
impl Logins for ThisStore {
    async fn login_view(
        &self,
        org: OrganizationId,
        source: ConnectionId,
        external_id: &str,
        user_name: &str,
        groups: &[String],
    ) -> StoreResult<(LoginView, Vec<(GroupId, String)>)> {
        let mut found: Vec<User> = sqlx::query_as(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE organization_id = $1 AND ",
            "((source_connection_id = $2 AND external_id = $3) OR user_name_key = $4)"
        ))
        .bind(org)
        .bind(source)
        .bind(external_id)
        .bind(validate::user_name_key(user_name))
        .fetch_all(&self.pool)
        .await?;
        // This source's own user first: it is the one a login is.
        found.sort_by_key(|u| {
            !(u.source_connection_id == Some(source)
                && u.external_id.as_deref() == Some(external_id))
        });
        let named_in = match found.first() {
            Some(user) => {
                sqlx::query_as(
                    "SELECT g.id, g.external_id FROM memberships m JOIN groups g \
                     ON g.organization_id = m.organization_id AND g.id = m.group_id \
                     WHERE m.user_id = $1 AND m.organization_id = $2 AND m.direct \
                     AND g.source_connection_id = $3 AND g.external_id IS NOT NULL",
                )
                .bind(user.id)
                .bind(org)
                .bind(source)
                .fetch_all(&self.pool)
                .await?
            }
            None => Vec::new(),
        };
        // A user signing in again with the groups they had needs no look-up of the rest.
        let unnamed: Vec<String> = groups
            .iter()
            .filter(|g| !named_in.iter().any(|(_, e): &(GroupId, String)| e == *g))
            .cloned()
            .collect();
        let mut known = source_groups(&self.pool, org, source, &unnamed).await?;
        known.extend(named_in.iter().filter(|(_, e)| groups.contains(e)).cloned());
        Ok((
            LoginView {
                users: found,
                groups: named_in,
            },
            known,
        ))
    }

    async fn apply_login(
        &self,
        actor: &Actor,
        org: OrganizationId,
        source: ConnectionId,
        login: &LoginBatch,
    ) -> StoreResult<LoginApplied> {
        match &login.user {
            LoginUser::Create(_, d) | LoginUser::Update(_, d) => users::check(d)?,
            LoginUser::Keep(_) => {}
        }
        for g in &login.join {
            groups::check(&GroupDraft::new(g.clone()))?;
        }
        let quiet = matches!(login.user, LoginUser::Keep(_))
            && login.join.is_empty()
            && login.leave.is_empty();
        if quiet && !ThisStore::QUIET_LOGIN.is_empty() {
            return self.quiet_login(org, source, login).await;
        }
        let mut tx = self.begin_write().await?;
        // The replay cache's key first: a replay racing the original waits here for it.
        let fresh = sqlx::query(
            "INSERT INTO saml_assertions (connection_id, assertion_id, organization_id, expires_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (connection_id, assertion_id) DO NOTHING",
        )
        .bind(source)
        .bind(&login.assertion_id)
        .bind(org)
        .bind(login.expires_at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if !fresh {
            return Ok(LoginApplied::Replayed);
        }
        let user = login.user.id();
        match &login.user {
            LoginUser::Create(id, draft) => {
                let created = User::from_draft(*id, org, draft, Timestamp::now());
                let details = serde_json::json!({
                    "user_name": created.user_name, "active": created.active, "source": source,
                });
                users::insert(&mut tx, actor, &created, details).await?;
            }
            LoginUser::Update(id, draft) => {
                users::update(&mut tx, actor, org, *id, draft, None).await?;
            }
            LoginUser::Keep(_) => {}
        }
        // The groups joined, created when the source has not had them yet: first logins of
        // one new group take turns, so it is created once.
        let mut ids: HashMap<String, GroupId> = source_groups(&mut *tx, org, source, &login.join)
            .await?
            .into_iter()
            .map(|(id, e)| (e, id))
            .collect();
        let mut groups_created = 0;
        if login.join.iter().any(|g| !ids.contains_key(g)) {
            if !ThisStore::NESTING_LOCK.is_empty() {
                sqlx::query(ThisStore::NESTING_LOCK)
                    .bind(source)
                    .execute(&mut *tx)
                    .await?;
                ids.extend(
                    source_groups(&mut *tx, org, source, &login.join)
                        .await?
                        .into_iter()
                        .map(|(id, e)| (e, id)),
                );
            }
            for name in login
                .join
                .iter()
                .filter(|g| !ids.contains_key(*g))
                .cloned()
                .collect::<Vec<_>>()
            {
                let draft = GroupDraft {
                    external_id: Some(name.clone()),
                    source_connection_id: Some(source),
                    ..GroupDraft::new(name.clone())
                };
                let group = self.insert_group(&mut tx, actor, org, &draft).await?;
                ids.insert(name, group.id);
                groups_created += 1;
            }
        }
        // Group rows are locked in one order (by id) by every login, so two logins changing
        // the same groups wait for each other instead of deadlocking.
        let mut changes: Vec<(GroupId, bool)> = login
            .join
            .iter()
            .filter_map(|name| ids.get(name).map(|g| (*g, true)))
            .chain(login.leave.iter().map(|g| (*g, false)))
            .collect();
        changes.sort_by_key(|(g, _)| g.0);
        for (group, join) in changes {
            self.change_direct_member(&mut tx, actor, org, group, user, join)
                .await?;
        }
        syncs::record_run(
            &mut tx,
            &login.run,
            "saml.login",
            serde_json::json!({ "user_id": user, "groups_created": groups_created }),
        )
        .await?;
        tx.commit().await?;
        self.signal.bump(org);
        Ok(LoginApplied::Written { groups_created })
    }

    async fn record_refused_login(&self, run: &SyncRun) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        syncs::record_run(&mut tx, run, "saml.login_refused", serde_json::json!({})).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn forget_expired_assertions(&self, now: Timestamp) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM saml_assertions WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}
