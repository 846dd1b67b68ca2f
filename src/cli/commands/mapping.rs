//! `scimdesk mapping list|set|remove|impact`

use super::connection::find as find_connection;
use crate::cli::context::Context;
use crate::cli::error::{CliError, CliResult};
use crate::cli::{MappingCommand, MappingRule, output};
use crate::domain::*;
use crate::engine::commands::{self, MappingChange};
use crate::policy::impact::Impact;

pub async fn run(ctx: &Context, org: Option<&str>, cmd: MappingCommand, json: bool) -> CliResult {
    let action = match &cmd {
        MappingCommand::List | MappingCommand::Impact { .. } => crate::domain::Action::View,
        MappingCommand::Set { .. } | MappingCommand::Remove { .. } => {
            crate::domain::Action::ManageMappings
        }
    };
    let org = ctx.organization_for(org, action).await?;
    let guard = ctx.config.policy.guard;
    match cmd {
        MappingCommand::List => list(ctx, &org, json).await,
        MappingCommand::Set {
            rule,
            id,
            force,
            dry_run,
        } => {
            let id = id.as_deref().map(parse_id).transpose()?;
            if dry_run {
                return preview(ctx, &org, Some(&rule), id, false, 50, json).await;
            }
            let (pattern, role_name) = rule.required()?;
            // The guard is checked before a new role is created, so a refusal leaves nothing.
            let spec = commands::MappingRule {
                id,
                pattern: pattern.to_string(),
                role: role_name.to_string(),
                selector: rule.by.parse().map_err(|_| {
                    CliError::invalid(format!("--by {:?}: use display_name, id or path", rule.by))
                })?,
                glob: rule.glob,
                source: match &rule.source {
                    Some(name) => Some(find_connection(ctx, &org, name).await?.id),
                    None => None,
                },
            };
            let (impact, mapping) =
                commands::apply_rule(ctx.store.as_ref(), &ctx.actor, org.id, &spec, &guard, force)
                    .await?;
            report_applied(&impact, mapping.as_ref(), json)
        }
        MappingCommand::Remove { id, force, dry_run } => {
            let id = parse_id(&id)?;
            if dry_run {
                return preview(ctx, &org, None, Some(id), true, 50, json).await;
            }
            let (impact, _) = commands::set_mapping(
                ctx.store.as_ref(),
                &ctx.actor,
                org.id,
                &MappingChange::Remove(id),
                &guard,
                force,
            )
            .await?;
            report_applied(&impact, None, json)
        }
        MappingCommand::Impact {
            rule,
            id,
            remove,
            limit,
        } => {
            let id = id.as_deref().map(parse_id).transpose()?;
            let given = rule.group.is_some() || rule.role.is_some();
            if !given && !remove {
                return Err(CliError::invalid(
                    "say what to preview: --group PATTERN --role ROLE [--id MAPPING], or --id MAPPING --remove",
                ));
            }
            if given && remove {
                return Err(CliError::invalid(
                    "--remove previews removing --id; leave out the rule",
                ));
            }
            preview(ctx, &org, given.then_some(&rule), id, remove, limit, json).await
        }
    }
}

impl MappingRule {
    /// The pattern and the role name, which a rule must have.
    fn required(&self) -> CliResult<(&str, &str)> {
        match (self.group.as_deref(), self.role.as_deref()) {
            (Some(g), Some(r)) if !g.trim().is_empty() && !r.trim().is_empty() => Ok((g, r)),
            _ => Err(CliError::invalid(
                "a mapping needs --group PATTERN and --role ROLE",
            )),
        }
    }
}

fn parse_id(s: &str) -> CliResult<RoleMappingId> {
    s.parse().map_err(|_| {
        CliError::invalid(format!(
            "{s:?} is not a mapping id (see `scimdesk mapping list`)"
        ))
    })
}

async fn draft(
    ctx: &Context,
    org: &Organization,
    rule: &MappingRule,
    role: RoleId,
) -> CliResult<RoleMappingDraft> {
    let selector: GroupSelector = rule.by.parse().map_err(|_| {
        CliError::invalid(format!("--by {:?}: use display_name, id or path", rule.by))
    })?;
    let source_connection_id = match &rule.source {
        Some(name) => Some(find_connection(ctx, org, name).await?.id),
        None => None,
    };
    let (pattern, _) = rule.required()?;
    Ok(RoleMappingDraft {
        source_connection_id,
        selector,
        match_mode: if rule.glob {
            MatchMode::Glob
        } else {
            MatchMode::Exact
        },
        pattern: pattern.to_string(),
        role_id: role,
    })
}

async fn list(ctx: &Context, org: &Organization, json: bool) -> CliResult {
    let mappings = ctx.store.list_role_mappings(org.id).await?;
    let roles = ctx.store.list_roles(org.id).await?;
    let conns = ctx.store.list_connections(org.id).await?;
    let role_name = |id: RoleId| {
        roles
            .iter()
            .find(|r| r.id == id)
            .map_or_else(|| id.to_string(), |r| r.name.clone())
    };
    if json {
        let rows: Vec<serde_json::Value> = mappings
            .iter()
            .map(|m| {
                serde_json::json!({
                    "id": m.id, "group": m.pattern, "by": m.selector, "match": m.match_mode,
                    "role": role_name(m.role_id), "role_id": m.role_id,
                    "source_connection_id": m.source_connection_id,
                })
            })
            .collect();
        return output::json(&rows);
    }
    output::table(
        &["id", "group", "by", "match", "source", "role"],
        mappings.iter().map(|m| {
            vec![
                m.id.to_string(),
                m.pattern.clone(),
                m.selector.to_string(),
                m.match_mode.to_string(),
                output::or_dash(m.source_connection_id.map(|c| {
                    conns
                        .iter()
                        .find(|x| x.id == c)
                        .map_or_else(|| c.to_string(), |x| x.name.clone())
                })),
                role_name(m.role_id),
            ]
        }),
    );
    Ok(())
}

async fn preview(
    ctx: &Context,
    org: &Organization,
    rule: Option<&MappingRule>,
    id: Option<RoleMappingId>,
    remove: bool,
    limit: usize,
    json: bool,
) -> CliResult {
    let (change, new_role) = match (rule, id, remove) {
        (_, Some(id), true) => (MappingChange::Remove(id), None),
        (Some(rule), id, false) => {
            // A role that does not exist yet is previewed as if created.
            let (_, role_name) = rule.required()?;
            let (role, new_role) =
                match commands::find_role(ctx.store.as_ref(), org.id, role_name).await? {
                    Some(r) => (r, None),
                    None => {
                        let r = Role {
                            id: RoleId::new(),
                            organization_id: org.id,
                            name: role_name.trim().to_string(),
                            description: String::new(),
                            created_at: Timestamp::now(),
                        };
                        (r.clone(), Some(r))
                    }
                };
            let draft = draft(ctx, org, rule, role.id).await?;
            (MappingChange::Set { id, draft }, new_role)
        }
        _ => return Err(CliError::invalid("nothing to preview")),
    };
    let impact =
        commands::preview_with(ctx.store.as_ref(), org.id, &change, new_role.as_ref()).await?;
    if json {
        return output::json(&impact);
    }
    print_impact(&impact, limit);
    if let Err(e) = ctx.config.policy.guard.check(&impact) {
        println!("\nthe guard would refuse this change without --force:\n  {e}");
    }
    Ok(())
}

fn report_applied(impact: &Impact, mapping: Option<&RoleMapping>, json: bool) -> CliResult {
    if json {
        return output::json(&serde_json::json!({ "mapping": mapping, "impact": impact }));
    }
    match mapping {
        Some(m) => println!("mapping {} saved", m.id),
        None => println!("mapping removed"),
    }
    print_impact(impact, 20);
    Ok(())
}

/// The impact for people: a summary line, then who changes and what is sent where.
fn print_impact(impact: &Impact, limit: usize) {
    let gaining = impact
        .role_changes
        .iter()
        .filter(|c| !c.gained.is_empty())
        .count();
    println!(
        "{gaining} users gain a role, {} lose one (of {}); {} target operations",
        impact.losing_access().len(),
        impact.organization_users,
        impact.operations.len()
    );
    for g in &impact.newly_unmapped {
        println!(
            "group {:?} would be covered by no mapping (an exception is raised)",
            g.display_name
        );
    }
    for g in &impact.newly_covered {
        println!(
            "group {:?} would be covered (its exception is resolved)",
            g.display_name
        );
    }
    for t in &impact.skipped_targets {
        println!("skipped target {t}");
    }
    if !impact.role_changes.is_empty() {
        println!();
        output::table(
            &["user", "gains", "loses"],
            impact
                .role_changes
                .iter()
                .take(limit)
                .map(|c| vec![c.user_name.clone(), c.gained.join(", "), c.lost.join(", ")]),
        );
        if impact.role_changes.len() > limit {
            println!(
                "... and {} more users (--limit, or --json for all)",
                impact.role_changes.len() - limit
            );
        }
    }
    if !impact.operations.is_empty() {
        println!();
        output::table(
            &["target", "action", "resource", "joining", "leaving"],
            impact.operations.iter().take(limit).map(|o| {
                let kind = if o.resource_type == ResourceType::Group {
                    "role group"
                } else {
                    "user"
                };
                vec![
                    o.connection.clone(),
                    o.action.to_string(),
                    format!("{kind} {}", o.subject),
                    if o.joining.is_empty() {
                        String::new()
                    } else {
                        o.joining.len().to_string()
                    },
                    if o.leaving.is_empty() {
                        String::new()
                    } else {
                        o.leaving.len().to_string()
                    },
                ]
            }),
        );
        if impact.operations.len() > limit {
            println!(
                "... and {} more operations",
                impact.operations.len() - limit
            );
        }
    }
}
