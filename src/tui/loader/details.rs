//! What a detail view shows: a connection's recent attempts, an operation's attempts, an
//! exception, a user's groups, roles and status at each target.

use super::*;
use crate::policy::roles::RoleResolver;
use crate::store::OperationFilter;
use crate::tui::state::DetailRequest;

impl Loader {
    /// Reads what a detail view shows.
    pub async fn detail(
        &self,
        org: OrganizationId,
        req: &DetailRequest,
    ) -> Result<Detail, LoadError> {
        let store = self.store.as_ref();
        match req {
            DetailRequest::Connection(id) => {
                let c = store
                    .connection(org, *id)
                    .await?
                    .ok_or(LoadError::Gone("the connection is gone"))?;
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
                    .await?;
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
                        .await?,
                );
                let mut attempts = Vec::new();
                for row in self.operation_rows(org, ops).await? {
                    for a in store.operation_attempts(org, row.operation.id).await? {
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
                    .await?
                    .ok_or(LoadError::Gone(
                        "the operation is gone (pruned from the history)",
                    ))?
                    .with_effective_state(Timestamp::now());
                let attempts = store.operation_attempts(org, *id).await?;
                let row = self
                    .operation_rows(org, vec![op])
                    .await?
                    .pop()
                    .ok_or(LoadError::Gone("the operation is gone"))?;
                Ok(Detail::Operation { row, attempts })
            }
            DetailRequest::Exception(id) => Ok(Detail::Exception(
                store
                    .exception(org, *id)
                    .await?
                    .ok_or(LoadError::Gone("the exception is gone"))?,
            )),
            DetailRequest::User(id) => {
                let user = store
                    .user(org, *id)
                    .await?
                    .ok_or(LoadError::Gone("the user is gone"))?;
                let groups = store.user_groups(org, *id).await?;
                let mappings = store.list_role_mappings(org).await?;
                let all_roles = store.list_roles(org).await?;
                let role_ids = RoleResolver::new(&mappings).user_roles(groups.iter());
                let roles = all_roles
                    .iter()
                    .filter(|r| role_ids.contains(&r.id))
                    .map(|r| r.name.clone())
                    .collect();
                let mut targets = Vec::new();
                for c in store.list_connections(org).await? {
                    if c.kind.is_source() {
                        continue;
                    }
                    let link = store
                        .target_links_for(org, c.id, ResourceType::User, &[id.0])
                        .await?
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
                    .await?;
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
                            .await?,
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
}
