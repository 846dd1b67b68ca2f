//! `scimdesk users list|show` and `scimdesk groups list|show`: the directory as
//! [`crate::engine::directory`] shows it.

use super::connection::find as find_connection;
use crate::cli::context::Context;
use crate::cli::error::{CliError, CliResult};
use crate::cli::{DirectoryFilter, GroupsCommand, UsersCommand, output};
use crate::domain::*;
use crate::engine::directory::{Directory, TargetStatus};
use crate::store::ListRange;

/// Rows read per page while listing.
const PAGE: u32 = 1000;

/// A list filter as the listing uses it: the search lower-cased, the source connection's id,
/// the limit.
async fn resolve(
    ctx: &Context,
    org: &Organization,
    filter: DirectoryFilter,
) -> CliResult<(Option<String>, Option<ConnectionId>, usize)> {
    let source = match filter.source {
        Some(s) => Some(find_connection(ctx, org, &s).await?.id),
        None => None,
    };
    Ok((
        filter.search.map(|s| s.to_lowercase()),
        source,
        filter.limit,
    ))
}

/// `name:state` per target, for a table cell.
fn at_targets(targets: &[TargetStatus]) -> String {
    if targets.is_empty() {
        return "-".into();
    }
    targets
        .iter()
        .map(|t| format!("{}:{}", t.target, t.state))
        .collect::<Vec<_>>()
        .join(", ")
}

fn or_dash_list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

/// The state a person reads: active, suspended, or the lifecycle state.
fn status(user: &User) -> String {
    match (user.active, user.lifecycle_state) {
        (true, LifecycleState::Active) => "active".into(),
        (false, LifecycleState::Active) => "inactive".into(),
        (_, state) => state.to_string(),
    }
}

pub async fn users(ctx: &Context, org: Option<&str>, cmd: UsersCommand, json: bool) -> CliResult {
    let org = ctx
        .organization_for(org, crate::domain::Action::View)
        .await?;
    let store = ctx.store.as_ref();
    let dir = Directory::open(store, org.id).await?;
    match cmd {
        UsersCommand::List(filter) => {
            let (search, source, limit) = resolve(ctx, &org, filter).await?;
            let query = crate::engine::directory::UserQuery { search, source };
            let (mut found, _) =
                crate::engine::directory::find_users(store, org.id, &query, None, limit).await?;
            found.sort_by(|a, b| a.user_name.cmp(&b.user_name));
            let mut views = Vec::with_capacity(found.len());
            for u in found {
                views.push(dir.user(u).await?);
            }
            if json {
                return output::json(&views);
            }
            output::table(
                &["id", "userName", "status", "source", "roles", "targets"],
                views.iter().map(|v| {
                    vec![
                        v.user.id.to_string(),
                        v.user.user_name.clone(),
                        status(&v.user),
                        output::or_dash(v.source.as_ref()),
                        or_dash_list(&v.roles),
                        at_targets(&v.targets),
                    ]
                }),
            );
            Ok(())
        }
        UsersCommand::Show { user } => {
            let found = match user.parse::<uuid::Uuid>() {
                Ok(id) => store.user(org.id, UserId(id)).await?,
                Err(_) => None,
            };
            let found = match found {
                Some(u) => Some(u),
                None => store.user_by_user_name(org.id, &user).await?,
            };
            let u = found
                .ok_or_else(|| CliError::not_found(format!("no user {user:?} in {}", org.name)))?;
            let v = dir.user(u).await?;
            if json {
                return output::json(&v);
            }
            output::fields(&[
                ("id", v.user.id.to_string()),
                ("userName", v.user.user_name.clone()),
                ("displayName", output::or_dash(v.user.display_name.as_ref())),
                ("status", status(&v.user)),
                ("externalId", output::or_dash(v.user.external_id.as_ref())),
                ("source", output::or_dash(v.source.as_ref())),
                (
                    "emails",
                    or_dash_list(
                        &v.user
                            .emails
                            .0
                            .iter()
                            .map(|e| e.value.clone())
                            .collect::<Vec<_>>(),
                    ),
                ),
                (
                    "groups",
                    or_dash_list(&v.groups.iter().map(|g| g.path.clone()).collect::<Vec<_>>()),
                ),
                ("roles", or_dash_list(&v.roles)),
            ]);
            println!();
            print_targets(&v.targets);
            Ok(())
        }
    }
}

fn print_targets(targets: &[TargetStatus]) {
    output::table(
        &["target", "state", "remote id", "synced", "error"],
        targets.iter().map(|t| {
            vec![
                t.target.clone(),
                t.state.clone(),
                output::or_dash(t.remote_id.as_ref()),
                output::or_dash(t.synced_at),
                output::or_dash(t.error.as_ref()),
            ]
        }),
    );
}

pub async fn groups(ctx: &Context, org: Option<&str>, cmd: GroupsCommand, json: bool) -> CliResult {
    let org = ctx
        .organization_for(org, crate::domain::Action::View)
        .await?;
    let store = ctx.store.as_ref();
    let dir = Directory::open(store, org.id).await?;
    let mut all = Vec::new();
    let mut offset = 0u64;
    loop {
        let page = store
            .list_groups(
                org.id,
                ListRange {
                    offset,
                    limit: PAGE,
                },
            )
            .await?;
        let n = page.len();
        offset += n as u64;
        all.extend(page);
        if n < PAGE as usize {
            break;
        }
    }
    match cmd {
        GroupsCommand::List(filter) => {
            let (needle, source, limit) = resolve(ctx, &org, filter).await?;
            let mut found: Vec<Group> = all
                .into_iter()
                .filter(|g| source.is_none_or(|s| g.source_connection_id == Some(s)))
                .filter(|g| {
                    needle.as_deref().is_none_or(|n| {
                        g.display_name.to_lowercase().contains(n)
                            || g.path().to_lowercase().contains(n)
                    })
                })
                .collect();
            found.sort_by_key(|g| g.path());
            found.truncate(limit);
            let mut views = Vec::with_capacity(found.len());
            for g in found {
                views.push(dir.group(g).await?);
            }
            if json {
                return output::json(&views);
            }
            output::table(
                &["id", "path", "members", "source", "roles", "targets"],
                views.iter().map(|v| {
                    vec![
                        v.group.id.to_string(),
                        v.path.clone(),
                        v.members.to_string(),
                        output::or_dash(v.source.as_ref()),
                        or_dash_list(&v.roles),
                        at_targets(&v.targets),
                    ]
                }),
            );
            Ok(())
        }
        GroupsCommand::Show { group } => {
            let id = group.parse::<uuid::Uuid>().ok();
            let matches: Vec<Group> = all
                .into_iter()
                .filter(|g| Some(g.id.0) == id || g.path() == group || g.display_name == group)
                .collect();
            let g = match matches.len() {
                0 => {
                    return Err(CliError::not_found(format!(
                        "no group {group:?} in {}",
                        org.name
                    )));
                }
                1 => matches
                    .into_iter()
                    .next()
                    .ok_or_else(|| CliError::not_found("gone"))?,
                _ => {
                    return Err(CliError::invalid(format!(
                        "{} groups are called {group:?}; name one by its path or id: {}",
                        matches.len(),
                        matches
                            .iter()
                            .map(|g| format!("{} ({})", g.path(), g.id))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            };
            let v = dir.group(g).await?;
            if json {
                return output::json(&v);
            }
            output::fields(&[
                ("id", v.group.id.to_string()),
                ("name", v.group.display_name.clone()),
                ("path", v.path.clone()),
                ("externalId", output::or_dash(v.group.external_id.as_ref())),
                ("source", output::or_dash(v.source.as_ref())),
                ("members", v.members.to_string()),
                ("roles", or_dash_list(&v.roles)),
            ]);
            println!();
            print_targets(&v.targets);
            Ok(())
        }
    }
}
