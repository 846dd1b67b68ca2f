//! Each pane's rows, read page by page with the pane's filter.

use super::filters::{connection_named, filter_terms, parse_time, unknown_key};
use super::*;
use crate::engine::health;
use crate::store::{ListRange, OperationFilter, ScimQuery};
use std::collections::HashMap;

impl Loader {
    pub(super) async fn connection_rows(
        &self,
        org: OrganizationId,
    ) -> Result<Vec<ConnectionRow>, LoadError> {
        let store = self.store.as_ref();
        let mut rows = Vec::new();
        for c in store.list_connections(org).await? {
            rows.push(self.connection_row(c).await?);
        }
        Ok(rows)
    }

    pub(super) async fn connection_row(&self, c: Connection) -> Result<ConnectionRow, LoadError> {
        let store = self.store.as_ref();
        if c.kind.is_source() {
            let source = if c.kind.records_runs() {
                Some(health::source_health(store, &c).await?)
            } else {
                None
            };
            return Ok(ConnectionRow {
                connection: c,
                health: None,
                source,
                throughput: Vec::new(),
                errors: Vec::new(),
            });
        }
        let report = health::connection_health(store, &c, &self.thresholds).await?;
        let now = Timestamp::now();
        let since = now.before(Duration::from_secs(60 * SPARK_MINUTES as u64));
        let stats = store
            .connection_stats(c.organization_id, c.id, since)
            .await?;
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
            source: None,
            throughput,
            errors,
        })
    }

    pub(super) async fn queue(
        &self,
        org: OrganizationId,
        conns: &[ConnectionRow],
        req: &LoadRequest,
    ) -> Result<Page<OperationRow>, LoadError> {
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
                    let state: OperationState =
                        value.parse().map_err(|_| FilterError::UnknownValue {
                            what: "state",
                            value: value.clone(),
                        })?;
                    if state.is_terminal() && state != OperationState::Failed {
                        return Err(FilterError::Finished(state).into());
                    }
                    filter.state = Some(state);
                }
                Some("action") => {
                    filter.action = Some(value.parse().map_err(|_| FilterError::UnknownValue {
                        what: "action",
                        value: value.clone(),
                    })?)
                }
                Some("user") | None => {
                    let user = self
                        .store
                        .user_by_user_name(org, &value)
                        .await?
                        .ok_or_else(|| FilterError::NoUser(value.clone()))?;
                    filter.resource_id = Some(user.id.0);
                }
                Some(other) => return Err(unknown_key(other, "conn, state, action, user").into()),
            }
        }
        let mut ops = self.store.list_operations(org, &filter).await?;
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
    pub(super) async fn operation_rows(
        &self,
        org: OrganizationId,
        ops: Vec<Operation>,
    ) -> Result<Vec<OperationRow>, LoadError> {
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
                .await?
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
                        let name = match store.group(org, GroupId(op.resource_id)).await? {
                            Some(g) => g.display_name,
                            None => {
                                if roles.is_none() {
                                    roles = Some(store.list_roles(org).await?);
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

    pub(super) async fn failed(
        &self,
        org: OrganizationId,
        conns: &[ConnectionRow],
        req: &LoadRequest,
    ) -> Result<Page<FailedItem>, LoadError> {
        let store = self.store.as_ref();
        let mut conn = None;
        let mut kind: Option<ExceptionKind> = None;
        let mut words = Vec::new();
        for (key, value) in filter_terms(&req.filter) {
            match key.as_deref() {
                Some("conn" | "connection") => conn = Some(connection_named(conns, &value)?),
                Some("kind") => {
                    kind = Some(value.parse().map_err(|_| FilterError::UnknownValue {
                        what: "exception kind",
                        value: value.clone(),
                    })?)
                }
                None => words.push(value.to_lowercase()),
                Some(other) => return Err(unknown_key(other, "conn, kind").into()),
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
            .await?;
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
            let mut ops = store.list_operations(org, &filter).await?;
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

    pub(super) async fn mappings(
        &self,
        org: OrganizationId,
        conns: &[ConnectionRow],
        roles: &[Role],
    ) -> Result<Vec<MappingRow>, LoadError> {
        let store = self.store.as_ref();
        let rows = store
            .list_role_mappings(org)
            .await?
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

    pub(super) async fn users(
        &self,
        org: OrganizationId,
        req: &LoadRequest,
    ) -> Result<Page<User>, LoadError> {
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
                .await?;
            let more = rows.len() > req.limit as usize;
            rows.truncate(req.limit as usize);
            let total = store.count_users(org).await?;
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
        .map_err(|e| LoadError::Search(e.detail))?;
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
            .await?;
        Ok(Page {
            more: req.offset + (rows.len() as u64) < total,
            rows,
            offset: req.offset,
            total: Some(total),
        })
    }

    pub(super) async fn audit(
        &self,
        org: OrganizationId,
        req: &LoadRequest,
    ) -> Result<Page<AuditEvent>, LoadError> {
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
                    return Err(unknown_key(other, "actor, action, subject, since, until").into());
                }
            }
        }
        // The audit log pages by id (newest first); an offset skips whole pages from the top.
        let mut rows = Vec::new();
        let mut skipped = 0u64;
        loop {
            let batch = self.store.list_audit(org, &filter).await?;
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
}
