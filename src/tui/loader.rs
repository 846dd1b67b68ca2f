//! The workbench's I/O: reading what a pane or a detail shows (paged, indexed queries; never
//! a whole table) and carrying out operator commands through the engine command API. The
//! runner calls these on tasks, so the render path never waits on them.

use super::data::*;
use super::state::{Command, DetailRequest, LoadRequest, Pane, Reply};
use crate::domain::*;
use crate::engine::commands::PolicyError;
use crate::engine::commands::{self, MappingChange, MappingRule, Resolution};
use crate::engine::{Engine, HealthThresholds, health};
use crate::policy::impact::Guard;
use crate::policy::roles::RoleResolver;
use crate::store::{ListRange, OperationFilter, ScimQuery, Store};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Minutes of traffic in a connection's sparkline.
pub const SPARK_MINUTES: usize = 30;

/// What the loader needs: the store, the operator, the guard and the health thresholds, and
/// the engine of this process when its workers run (told about connection changes).
#[derive(Clone)]
pub struct Loader {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Who the audit log records.
    pub actor: Actor,
    /// The mass-removal guard.
    pub guard: Guard,
    /// Health thresholds.
    pub thresholds: HealthThresholds,
    /// This process's engine, if it delivers.
    pub engine: Option<Arc<Engine>>,
    /// The last health read, reused for a while by panes other than Connections.
    pub health_cache: HealthCache,
}

/// Health is the costly part of a read (queue counts and a day of statistics per target), so
/// panes other than Connections reuse it for [`HEALTH_MAX_AGE`]; commands clear it.
#[derive(Clone, Default)]
pub struct HealthCache(Arc<Mutex<Option<CachedHealth>>>);

/// When health was read, for which organization, and the rows.
type CachedHealth = (Instant, OrganizationId, Vec<ConnectionRow>);

/// How long other panes reuse a health read.
pub const HEALTH_MAX_AGE: Duration = Duration::from_secs(3);

impl HealthCache {
    fn get(&self, org: OrganizationId) -> Option<Vec<ConnectionRow>> {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some((at, o, rows)) if *o == org && at.elapsed() < HEALTH_MAX_AGE => Some(rows.clone()),
            _ => None,
        }
    }

    fn put(&self, org: OrganizationId, rows: &[ConnectionRow]) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), org, rows.to_vec()));
    }

    fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

impl Loader {
    /// Reads the current pane.
    pub async fn load(&self, req: &LoadRequest) -> Result<Loaded, String> {
        let store = self.store.as_ref();
        let mut orgs: Vec<OrgRef> = store
            .list_organizations()
            .await
            .map_err(text)?
            .into_iter()
            .map(|o| OrgRef {
                id: o.id,
                name: o.name,
            })
            .collect();
        orgs.sort_by_key(|a| a.name.to_lowercase());
        let org = match req.organization {
            Some(id) => orgs.iter().find(|o| o.id == id).cloned(),
            None => orgs.first().cloned(),
        };
        let at = Timestamp::now();
        let Some(org) = org else {
            return Ok(Loaded {
                organizations: orgs,
                organization: None,
                connections: Vec::new(),
                roles: Vec::new(),
                body: empty_body(req.pane),
                at,
            });
        };
        let connections = match self.health_cache.get(org.id) {
            Some(rows) if req.pane != Pane::Connections => rows,
            _ => {
                let rows = self.connection_rows(org.id).await?;
                self.health_cache.put(org.id, &rows);
                rows
            }
        };
        let roles = store.list_roles(org.id).await.map_err(text)?;
        let body = match req.pane {
            Pane::Connections => PaneData::Connections,
            Pane::Queue => PaneData::Queue(self.queue(org.id, &connections, req).await?),
            Pane::Failed => PaneData::Failed(self.failed(org.id, &connections, req).await?),
            Pane::Mappings => {
                PaneData::Mappings(self.mappings(org.id, &connections, &roles).await?)
            }
            Pane::Users => PaneData::Users(self.users(org.id, req).await?),
            Pane::Audit => PaneData::Audit(self.audit(org.id, req).await?),
        };
        Ok(Loaded {
            organizations: orgs,
            organization: Some(org),
            connections,
            roles,
            body,
            at,
        })
    }

    async fn connection_rows(&self, org: OrganizationId) -> Result<Vec<ConnectionRow>, String> {
        let store = self.store.as_ref();
        let mut rows = Vec::new();
        for c in store.list_connections(org).await.map_err(text)? {
            rows.push(self.connection_row(c).await?);
        }
        Ok(rows)
    }

    async fn connection_row(&self, c: Connection) -> Result<ConnectionRow, String> {
        let store = self.store.as_ref();
        if c.kind.is_source() {
            return Ok(ConnectionRow {
                connection: c,
                health: None,
                throughput: Vec::new(),
                errors: Vec::new(),
            });
        }
        let report = health::connection_health(store, &c, &self.thresholds)
            .await
            .map_err(text)?;
        let now = Timestamp::now();
        let since = now.before(Duration::from_secs(60 * SPARK_MINUTES as u64));
        let stats = store
            .connection_stats(c.organization_id, c.id, since)
            .await
            .map_err(text)?;
        let mut throughput = vec![0u64; SPARK_MINUTES];
        let mut errors = vec![0u64; SPARK_MINUTES];
        for s in stats {
            let age = now.since(s.minute).as_secs() / 60;
            let Ok(age) = usize::try_from(age) else {
                continue;
            };
            if age < SPARK_MINUTES {
                let slot = SPARK_MINUTES - 1 - age;
                throughput[slot] += u64::try_from(s.attempts).unwrap_or(0);
                errors[slot] += u64::try_from(s.failures).unwrap_or(0);
            }
        }
        Ok(ConnectionRow {
            connection: c,
            health: Some(report),
            throughput,
            errors,
        })
    }

    async fn queue(
        &self,
        org: OrganizationId,
        conns: &[ConnectionRow],
        req: &LoadRequest,
    ) -> Result<Page<OperationRow>, String> {
        let mut filter = OperationFilter {
            offset: req.offset,
            limit: req.limit + 1,
            ..Default::default()
        };
        for (key, value) in filter_terms(&req.filter) {
            match key.as_deref() {
                Some("conn" | "connection") => {
                    filter.connection_id = Some(connection_named(conns, &value)?)
                }
                Some("state") => {
                    let state: OperationState = value
                        .parse()
                        .map_err(|_| format!("filter: unknown state {value:?}"))?;
                    if state.is_terminal() && state != OperationState::Failed {
                        return Err(format!(
                            "filter: the queue holds unfinished work; {state} operations are in the history (`scimdesk ops list --state {state}`)"
                        ));
                    }
                    filter.state = Some(state);
                }
                Some("action") => {
                    filter.action = Some(
                        value
                            .parse()
                            .map_err(|_| format!("filter: unknown action {value:?}"))?,
                    )
                }
                Some("user") | None => {
                    let user = self
                        .store
                        .user_by_user_name(org, &value)
                        .await
                        .map_err(text)?
                        .ok_or_else(|| format!("filter: no user {value:?}"))?;
                    filter.resource_id = Some(user.id.0);
                }
                Some(other) => return Err(unknown_key(other, "conn, state, action, user")),
            }
        }
        let mut ops = self
            .store
            .list_operations(org, &filter)
            .await
            .map_err(text)?;
        let more = ops.len() > req.limit as usize;
        ops.truncate(req.limit as usize);
        let now = Timestamp::now();
        let ops: Vec<Operation> = ops
            .into_iter()
            .map(|o| o.with_effective_state(now))
            .collect();
        Ok(Page {
            rows: self.operation_rows(org, ops).await?,
            offset: req.offset,
            more,
            total: None,
        })
    }

    /// Names what each operation concerns (one query for the users of a page).
    async fn operation_rows(
        &self,
        org: OrganizationId,
        ops: Vec<Operation>,
    ) -> Result<Vec<OperationRow>, String> {
        let store = self.store.as_ref();
        let user_ids: Vec<UserId> = ops
            .iter()
            .filter(|o| o.resource_type == ResourceType::User)
            .map(|o| UserId(o.resource_id))
            .collect();
        let users: HashMap<Uuid, String> = if user_ids.is_empty() {
            HashMap::new()
        } else {
            store
                .users_by_ids(org, &user_ids)
                .await
                .map_err(text)?
                .into_iter()
                .map(|u| (u.id.0, u.user_name))
                .collect()
        };
        let mut groups: HashMap<Uuid, String> = HashMap::new();
        let mut roles: Option<Vec<Role>> = None;
        let mut rows = Vec::with_capacity(ops.len());
        for op in ops {
            let subject = match op.resource_type {
                ResourceType::User => users
                    .get(&op.resource_id)
                    .cloned()
                    .unwrap_or_else(|| format!("user {}", short(op.resource_id))),
                _ => {
                    if let Some(role) = op.payload.0.get("role").and_then(|r| r.as_str()) {
                        format!("role {role}")
                    } else if let Some(name) = groups.get(&op.resource_id) {
                        name.clone()
                    } else {
                        let name = match store
                            .group(org, GroupId(op.resource_id))
                            .await
                            .map_err(text)?
                        {
                            Some(g) => g.display_name,
                            None => {
                                if roles.is_none() {
                                    roles = Some(store.list_roles(org).await.map_err(text)?);
                                }
                                roles
                                    .iter()
                                    .flatten()
                                    .find(|r| r.id.0 == op.resource_id)
                                    .map_or_else(
                                        || format!("group {}", short(op.resource_id)),
                                        |r| format!("role {}", r.name),
                                    )
                            }
                        };
                        groups.insert(op.resource_id, name.clone());
                        name
                    }
                }
            };
            rows.push(OperationRow {
                operation: op,
                subject,
            });
        }
        Ok(rows)
    }

    async fn failed(
        &self,
        org: OrganizationId,
        conns: &[ConnectionRow],
        req: &LoadRequest,
    ) -> Result<Page<FailedItem>, String> {
        let store = self.store.as_ref();
        let mut conn = None;
        let mut kind: Option<ExceptionKind> = None;
        let mut words = Vec::new();
        for (key, value) in filter_terms(&req.filter) {
            match key.as_deref() {
                Some("conn" | "connection") => conn = Some(connection_named(conns, &value)?),
                Some("kind") => {
                    kind = Some(
                        value
                            .parse()
                            .map_err(|_| format!("filter: unknown exception kind {value:?}"))?,
                    )
                }
                None => words.push(value.to_lowercase()),
                Some(other) => return Err(unknown_key(other, "conn, kind")),
            }
        }
        let exceptions = store
            .list_exceptions(
                org,
                &ExceptionFilter {
                    state: Some(ExceptionState::Open),
                    kind,
                    connection_id: conn,
                    offset: 0,
                    limit: 1000,
                },
            )
            .await
            .map_err(text)?;
        let exceptions: Vec<PolicyException> = exceptions
            .into_iter()
            // A connection filter keeps exceptions about that connection only.
            .filter(|e| conn.is_none() || e.connection_id == conn)
            .collect();
        let ex_count = exceptions.len() as u64;
        let mut rows: Vec<FailedItem> = exceptions
            .into_iter()
            .skip(usize::try_from(req.offset).unwrap_or(usize::MAX))
            .map(FailedItem::Exception)
            .collect();
        let mut more = false;
        if kind.is_none() && rows.len() < req.limit as usize {
            let want = req.limit as usize - rows.len();
            let filter = OperationFilter {
                connection_id: conn,
                state: Some(OperationState::Failed),
                offset: req.offset.saturating_sub(ex_count),
                limit: u32::try_from(want + 1).unwrap_or(u32::MAX),
                ..Default::default()
            };
            let mut ops = store.list_operations(org, &filter).await.map_err(text)?;
            more = ops.len() > want;
            ops.truncate(want);
            rows.extend(
                self.operation_rows(org, ops)
                    .await?
                    .into_iter()
                    .map(FailedItem::Operation),
            );
        }
        if !words.is_empty() {
            rows.retain(|item| {
                let hay = match item {
                    FailedItem::Exception(e) => format!("{} {} {}", e.kind, e.subject, e.summary),
                    FailedItem::Operation(r) => format!(
                        "{} {} {}",
                        r.operation.action,
                        r.subject,
                        r.operation.last_error.as_deref().unwrap_or("")
                    ),
                }
                .to_lowercase();
                words.iter().all(|w| hay.contains(w))
            });
        }
        Ok(Page {
            rows,
            offset: req.offset,
            more,
            total: None,
        })
    }

    async fn mappings(
        &self,
        org: OrganizationId,
        conns: &[ConnectionRow],
        roles: &[Role],
    ) -> Result<Vec<MappingRow>, String> {
        let store = self.store.as_ref();
        let rows = store
            .list_role_mappings(org)
            .await
            .map_err(text)?
            .into_iter()
            .map(|m| MappingRow {
                role: roles
                    .iter()
                    .find(|r| r.id == m.role_id)
                    .map_or_else(|| m.role_id.to_string(), |r| r.name.clone()),
                source: m.source_connection_id.map(|id| {
                    conns
                        .iter()
                        .find(|c| c.connection.id == id)
                        .map_or_else(|| id.to_string(), |c| c.connection.name.clone())
                }),
                mapping: m,
            })
            .collect();
        Ok(rows)
    }

    async fn users(&self, org: OrganizationId, req: &LoadRequest) -> Result<Page<User>, String> {
        let store = self.store.as_ref();
        let search = req.filter.trim();
        if search.is_empty() {
            let mut rows = store
                .list_users(
                    org,
                    ListRange {
                        offset: req.offset,
                        limit: req.limit + 1,
                    },
                )
                .await
                .map_err(text)?;
            let more = rows.len() > req.limit as usize;
            rows.truncate(req.limit as usize);
            let total = store.count_users(org).await.map_err(text)?;
            return Ok(Page {
                rows,
                offset: req.offset,
                more,
                total: Some(total),
            });
        }
        let quoted = serde_json::Value::String(search.to_string()).to_string();
        let filter = scimdesk_scim::filter::parse(&format!(
            "userName co {quoted} or emails.value co {quoted} or externalId eq {quoted}"
        ))
        .map_err(|e| format!("search: {}", e.detail))?;
        let (rows, total) = store
            .scim_list_users(
                org,
                &ScimQuery {
                    filter: Some(filter),
                    sort_by: None,
                    descending: false,
                    offset: req.offset,
                    limit: req.limit,
                },
            )
            .await
            .map_err(text)?;
        Ok(Page {
            more: req.offset + (rows.len() as u64) < total,
            rows,
            offset: req.offset,
            total: Some(total),
        })
    }

    async fn audit(
        &self,
        org: OrganizationId,
        req: &LoadRequest,
    ) -> Result<Page<AuditEvent>, String> {
        let mut filter = AuditFilter {
            limit: req.limit + 1,
            ..Default::default()
        };
        let now = Timestamp::now();
        for (key, value) in filter_terms(&req.filter) {
            match key.as_deref() {
                Some("actor") => filter.actor = Some(value),
                Some("action") | None => filter.action_prefix = Some(value),
                Some("subject") => filter.subject_id = Some(value),
                Some("since") => filter.since = Some(parse_time(&value, now)?),
                Some("until") => filter.until = Some(parse_time(&value, now)?),
                Some(other) => {
                    return Err(unknown_key(other, "actor, action, subject, since, until"));
                }
            }
        }
        // The audit log pages by id (newest first); an offset skips whole pages from the top.
        let mut rows = Vec::new();
        let mut skipped = 0u64;
        loop {
            let batch = self.store.list_audit(org, &filter).await.map_err(text)?;
            let n = batch.len();
            filter.before = batch.last().map(|e| e.id);
            let skip = usize::try_from(req.offset.saturating_sub(skipped))
                .unwrap_or(usize::MAX)
                .min(n);
            skipped += skip as u64;
            rows.extend(batch.into_iter().skip(skip));
            if rows.len() > req.limit as usize || n < filter.limit as usize {
                break;
            }
        }
        let more = rows.len() > req.limit as usize;
        rows.truncate(req.limit as usize);
        Ok(Page {
            rows,
            offset: req.offset,
            more,
            total: None,
        })
    }

    // ---- details ------------------------------------------------------------------------

    /// Reads what a detail view shows.
    pub async fn detail(&self, org: OrganizationId, req: &DetailRequest) -> Result<Detail, String> {
        let store = self.store.as_ref();
        match req {
            DetailRequest::Connection(id) => {
                let c = store
                    .connection(org, *id)
                    .await
                    .map_err(text)?
                    .ok_or("the connection is gone")?;
                let row = self.connection_row(c).await?;
                let mut ops = store
                    .list_operations(
                        org,
                        &OperationFilter {
                            connection_id: Some(*id),
                            limit: 10,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(text)?;
                ops.extend(
                    store
                        .list_operations(
                            org,
                            &OperationFilter {
                                connection_id: Some(*id),
                                state: Some(OperationState::Succeeded),
                                limit: 10,
                                ..Default::default()
                            },
                        )
                        .await
                        .map_err(text)?,
                );
                let mut attempts = Vec::new();
                for row in self.operation_rows(org, ops).await? {
                    for a in store
                        .operation_attempts(org, row.operation.id)
                        .await
                        .map_err(text)?
                    {
                        attempts.push((row.clone(), a));
                    }
                }
                attempts.sort_by_key(|b| std::cmp::Reverse(b.1.started_at));
                attempts.truncate(20);
                Ok(Detail::Connection {
                    row: Box::new(row),
                    attempts,
                })
            }
            DetailRequest::Operation(id) => {
                let op = store
                    .operation(org, *id)
                    .await
                    .map_err(text)?
                    .ok_or("the operation is gone (pruned from the history)")?
                    .with_effective_state(Timestamp::now());
                let attempts = store.operation_attempts(org, *id).await.map_err(text)?;
                let row = self
                    .operation_rows(org, vec![op])
                    .await?
                    .pop()
                    .ok_or("the operation is gone")?;
                Ok(Detail::Operation { row, attempts })
            }
            DetailRequest::Exception(id) => Ok(Detail::Exception(
                store
                    .exception(org, *id)
                    .await
                    .map_err(text)?
                    .ok_or("the exception is gone")?,
            )),
            DetailRequest::User(id) => {
                let user = store
                    .user(org, *id)
                    .await
                    .map_err(text)?
                    .ok_or("the user is gone")?;
                let groups = store.user_groups(org, *id).await.map_err(text)?;
                let mappings = store.list_role_mappings(org).await.map_err(text)?;
                let all_roles = store.list_roles(org).await.map_err(text)?;
                let role_ids = RoleResolver::new(&mappings).user_roles(groups.iter());
                let roles = all_roles
                    .iter()
                    .filter(|r| role_ids.contains(&r.id))
                    .map(|r| r.name.clone())
                    .collect();
                let mut targets = Vec::new();
                for c in store.list_connections(org).await.map_err(text)? {
                    if c.kind.is_source() {
                        continue;
                    }
                    let link = store
                        .target_links_for(org, c.id, ResourceType::User, &[id.0])
                        .await
                        .map_err(text)?
                        .pop();
                    targets.push((c.name, link));
                }
                let mut ops = store
                    .list_operations(
                        org,
                        &OperationFilter {
                            resource_id: Some(id.0),
                            limit: 20,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(text)?;
                for state in [OperationState::Succeeded, OperationState::Skipped] {
                    ops.extend(
                        store
                            .list_operations(
                                org,
                                &OperationFilter {
                                    resource_id: Some(id.0),
                                    state: Some(state),
                                    limit: 10,
                                    ..Default::default()
                                },
                            )
                            .await
                            .map_err(text)?,
                    );
                }
                let now = Timestamp::now();
                let ops = ops
                    .into_iter()
                    .map(|o| o.with_effective_state(now))
                    .collect();
                let operations = self.operation_rows(org, ops).await?;
                Ok(Detail::User(Box::new(UserDetail {
                    user,
                    groups: groups.into_iter().map(|g| g.display_name).collect(),
                    roles,
                    targets,
                    operations,
                })))
            }
        }
    }

    // ---- commands -----------------------------------------------------------------------

    /// Carries out a command through the engine command API (audited as the operator).
    pub async fn run(&self, org: OrganizationId, cmd: &Command) -> Reply {
        let reply = self.try_run(org, cmd).await;
        // A command may change what health shows (state, queue counts): read it afresh.
        self.health_cache.clear();
        match reply {
            Ok(outcome) => outcome,
            Err(e) => Reply::Failed(e),
        }
    }

    async fn try_run(&self, org: OrganizationId, cmd: &Command) -> Result<Reply, String> {
        let store = self.store.as_ref();
        let actor = &self.actor;
        let done = |s: String| Ok(Reply::Done(s));
        match cmd {
            Command::Retry(id) => {
                let op = commands::retry(store, actor, org, *id)
                    .await
                    .map_err(text)?;
                done(format!(
                    "{} {} is back in the queue ({})",
                    op.action, op.resource_type, op.state
                ))
            }
            Command::RetryAll(filter) => {
                let n = commands::retry_all(store, actor, org, filter)
                    .await
                    .map_err(text)?;
                done(format!("{n} operations are back in the queue"))
            }
            Command::Skip(id, reason) => {
                let op = commands::skip(store, actor, org, *id, reason)
                    .await
                    .map_err(text)?;
                done(format!("{} {} skipped", op.action, op.resource_type))
            }
            Command::Dismiss(id, reason) => {
                let ex = commands::resolve_exception(
                    store,
                    actor,
                    org,
                    *id,
                    &Resolution::Dismiss(reason.clone()),
                    &self.guard,
                    false,
                )
                .await
                .map_err(text)?;
                done(format!("{} {:?} dismissed", ex.kind, ex.subject))
            }
            Command::Pause(id, reason) => {
                let c = commands::pause(store, actor, org, *id, reason)
                    .await
                    .map_err(text)?;
                self.tell_engine();
                done(format!("{} paused", c.name))
            }
            Command::Resume(id) => {
                let c = commands::resume(store, actor, org, *id)
                    .await
                    .map_err(text)?;
                self.tell_engine();
                done(format!("{} resumed", c.name))
            }
            Command::SyncNow(id) => {
                let n = commands::sync_now(store, actor, org, *id)
                    .await
                    .map_err(text)?;
                self.tell_engine();
                done(format!("{n} waiting operations made due now"))
            }
            Command::Reconcile(id) => {
                let report = commands::reconcile(store, actor, org, *id, false)
                    .await
                    .map_err(text)?;
                let c = &report.counts;
                done(format!(
                    "reconciled: {} checked, {} corrected, {} recreated, {} removed, {} adopted, {} flagged",
                    c.checked, c.corrected, c.recreated, c.removed, c.adopted, c.flagged
                ))
            }
            Command::RemapOperation(id) => self.remap_form(org, *id).await,
            Command::Preview(form) => {
                let impact = if form.remove {
                    let id = form.id.ok_or("no mapping to delete")?;
                    commands::preview(store, org, &MappingChange::Remove(id)).await
                } else {
                    commands::preview_rule(store, org, &rule(form)).await
                }
                .map_err(text)?;
                let guard_refusal = match self.guard.check(&impact) {
                    Err(e) => Some(e.to_string()),
                    Ok(()) => None,
                };
                Ok(Reply::Impact(Box::new(ImpactView {
                    form: form.clone(),
                    impact,
                    guard_refusal,
                    guard: self.guard,
                })))
            }
            Command::Apply(form, force) => {
                let result = if form.remove {
                    let id = form.id.ok_or("no mapping to delete")?;
                    commands::set_mapping(
                        store,
                        actor,
                        org,
                        &MappingChange::Remove(id),
                        &self.guard,
                        *force,
                    )
                    .await
                } else {
                    commands::apply_rule(store, actor, org, &rule(form), &self.guard, *force).await
                };
                let (impact, _) = result.map_err(|e| match e {
                    e @ PolicyError::Guarded { .. } => format!("{e} (not applied)"),
                    other => other.to_string(),
                })?;
                done(format!(
                    "mapping {}: {} users change roles, {} operations queued{}",
                    if form.remove { "deleted" } else { "saved" },
                    impact.role_changes.len(),
                    impact.operations.len(),
                    if *force {
                        " (forced past the guard)"
                    } else {
                        ""
                    }
                ))
            }
        }
    }

    fn tell_engine(&self) {
        if let Some(engine) = &self.engine {
            engine.refresh_connections();
        }
    }

    /// The editor for a failed operation's user: prefilled with their first group that no
    /// mapping covers (else their first group).
    async fn remap_form(&self, org: OrganizationId, id: OperationId) -> Result<Reply, String> {
        let store = self.store.as_ref();
        let op = store
            .operation(org, id)
            .await
            .map_err(text)?
            .ok_or("the operation is gone")?;
        if op.resource_type != ResourceType::User {
            return Err("re-map opens from a user's operation".into());
        }
        let groups = store
            .user_groups(org, UserId(op.resource_id))
            .await
            .map_err(text)?;
        let mappings = store.list_role_mappings(org).await.map_err(text)?;
        let resolver = RoleResolver::new(&mappings);
        let group = groups
            .iter()
            .find(|g| resolver.covering(g).next().is_none())
            .or_else(|| groups.first())
            .ok_or("this user is in no group; there is nothing to map")?;
        Ok(Reply::Edit(Box::new(MappingForm {
            id: None,
            remove: false,
            pattern: group.display_name.clone(),
            role: String::new(),
            selector: GroupSelector::DisplayName,
            glob: false,
            source: group.source_connection_id,
            from_exception: None,
        })))
    }
}

fn rule(form: &MappingForm) -> MappingRule {
    MappingRule {
        id: form.id,
        pattern: form.pattern.clone(),
        role: form.role.clone(),
        selector: form.selector,
        glob: form.glob,
        source: form.source,
    }
}

fn empty_body(pane: Pane) -> PaneData {
    match pane {
        Pane::Connections => PaneData::Connections,
        Pane::Queue => PaneData::Queue(Page::default()),
        Pane::Failed => PaneData::Failed(Page::default()),
        Pane::Mappings => PaneData::Mappings(Vec::new()),
        Pane::Users => PaneData::Users(Page::default()),
        Pane::Audit => PaneData::Audit(Page::default()),
    }
}

fn short(id: Uuid) -> String {
    id.to_string().chars().take(8).collect()
}

fn unknown_key(key: &str, known: &str) -> String {
    format!("filter: unknown key {key:?} (use {known})")
}

fn connection_named(conns: &[ConnectionRow], name: &str) -> Result<ConnectionId, String> {
    conns
        .iter()
        .find(|c| c.connection.name.eq_ignore_ascii_case(name))
        .map(|c| c.connection.id)
        .ok_or_else(|| format!("filter: no connection {name:?}"))
}

/// Splits a filter into `key:value` terms and bare words (key `None`). A value may be quoted
/// to hold spaces: `user:"a b"`.
pub fn filter_terms(filter: &str) -> Vec<(Option<String>, String)> {
    let mut terms = Vec::new();
    let mut chars = filter.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut word = String::new();
        let mut quoted = false;
        while let Some(&c) = chars.peek() {
            if c == '"' {
                quoted = !quoted;
                chars.next();
                continue;
            }
            if c.is_whitespace() && !quoted {
                break;
            }
            word.push(c);
            chars.next();
        }
        match word.split_once(':') {
            Some((k, v)) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphabetic()) => {
                terms.push((Some(k.to_ascii_lowercase()), v.to_string()))
            }
            _ => terms.push((None, word)),
        }
    }
    terms
}

/// A time in a filter: RFC 3339, a date (`2026-11-28`, midnight UTC), or an age before `now`
/// (`90s`, `15m`, `2h`, `3d`).
pub fn parse_time(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    if let Ok(t) = Timestamp::parse_rfc3339(text) {
        return Ok(t);
    }
    if let Ok(t) = Timestamp::parse_rfc3339(&format!("{text}T00:00:00Z")) {
        return Ok(t);
    }
    let units: BTreeMap<char, u64> = [('s', 1), ('m', 60), ('h', 3600), ('d', 86_400)].into();
    let unit = text.chars().last().and_then(|c| units.get(&c).copied());
    let number = text
        .get(..text.len().saturating_sub(1))
        .and_then(|n| n.parse::<u64>().ok());
    match (number, unit) {
        (Some(n), Some(u)) => Ok(now.before(Duration::from_secs(n.saturating_mul(u)))),
        _ => Err(format!(
            "filter: {text:?} is not a time (use 2026-11-28T09:00:00Z, 2026-11-28, or an age such as 15m, 2h, 3d)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_terms_split_keys_words_and_quotes() {
        assert_eq!(
            filter_terms(r#"conn:Rostering  state:failed alice user:"Ann Lee""#),
            vec![
                (Some("conn".into()), "Rostering".into()),
                (Some("state".into()), "failed".into()),
                (None, "alice".into()),
                (Some("user".into()), "Ann Lee".into()),
            ]
        );
        assert!(filter_terms("   ").is_empty());
        // A time's colons are not a key.
        assert_eq!(
            filter_terms("since:2026-11-28T09:00:00Z"),
            vec![(Some("since".into()), "2026-11-28T09:00:00Z".into())]
        );
    }

    #[test]
    fn times_in_filters() {
        let now = Timestamp::parse_rfc3339("2026-11-28T12:00:00Z").unwrap();
        assert_eq!(
            parse_time("15m", now).unwrap(),
            Timestamp::parse_rfc3339("2026-11-28T11:45:00Z").unwrap()
        );
        assert_eq!(
            parse_time("2026-11-27", now).unwrap(),
            Timestamp::parse_rfc3339("2026-11-27T00:00:00Z").unwrap()
        );
        assert!(
            parse_time("yesterday", now)
                .unwrap_err()
                .contains("not a time")
        );
        assert!(parse_time("", now).is_err());
    }
}
