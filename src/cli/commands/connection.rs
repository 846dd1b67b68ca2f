//! `scimdesk connection add|list|show|remove|rotate-secret`

use crate::cli::context::Context;
use crate::cli::error::{CliError, CliResult};
use crate::cli::{ConnectionAdd, ConnectionCommand, output};
use crate::crypto::MASK;
use crate::domain::{AuthMethod, Connection, ConnectionKind, Organization, TargetSettings};
use crate::engine::commands::{ConnectionSpec, create_connection};
use crate::engine::{commands, health};
use serde_json::{Map, Value};

fn state_changed(c: &Connection, json: bool) -> CliResult {
    if json {
        return output::json(c);
    }
    println!("connection {:?} is {}", c.name, c.state);
    Ok(())
}

pub async fn run(
    ctx: &Context,
    org: Option<&str>,
    cmd: ConnectionCommand,
    json: bool,
) -> CliResult {
    use crate::domain::Action;
    let action = match &cmd {
        ConnectionCommand::List
        | ConnectionCommand::Show { .. }
        | ConnectionCommand::Health { .. } => Action::View,
        ConnectionCommand::Pause { .. } | ConnectionCommand::Resume { .. } => Action::Pause,
        ConnectionCommand::Sync { .. } => Action::Sync,
        ConnectionCommand::RotateSecret { .. } => Action::ManageSecrets,
        ConnectionCommand::Add(_)
        | ConnectionCommand::Set(_)
        | ConnectionCommand::Remove { .. } => Action::ManageConnections,
    };
    let org = ctx.organization_for(org, action).await?;
    match cmd {
        ConnectionCommand::Add(args) => add(ctx, &org, *args, json).await,
        ConnectionCommand::List => {
            let conns = ctx.store.list_connections(org.id).await?;
            if json {
                return output::json(&conns);
            }
            output::table(
                &["name", "kind", "state", "auth", "secret", "base url"],
                conns.iter().map(|c| {
                    vec![
                        c.name.clone(),
                        c.kind.to_string(),
                        c.state.to_string(),
                        c.auth_method.to_string(),
                        secret_label(c),
                        output::or_dash(c.base_url.as_deref()),
                    ]
                }),
            );
            Ok(())
        }
        ConnectionCommand::Show { name } => {
            let c = find(ctx, &org, &name).await?;
            if json {
                return output::json(&c);
            }
            output::fields(&[
                ("id", c.id.to_string()),
                ("organization", org.name.clone()),
                ("name", c.name.clone()),
                ("kind", c.kind.to_string()),
                ("state", c.state.to_string()),
                ("base url", output::or_dash(c.base_url.as_deref())),
                ("auth", c.auth_method.to_string()),
                ("secret", secret_label(&c)),
                ("settings", c.settings.0.to_string()),
                ("created", c.created_at.to_string()),
                ("updated", c.updated_at.to_string()),
            ]);
            Ok(())
        }
        ConnectionCommand::Remove { name } => {
            let c = find(ctx, &org, &name).await?;
            commands::remove_connection(ctx.store.as_ref(), &ctx.actor, org.id, c.id).await?;
            if json {
                output::json(&serde_json::json!({ "removed": c.id }))
            } else {
                println!("removed connection {:?} ({})", c.name, c.id);
                Ok(())
            }
        }
        ConnectionCommand::Pause { name, reason } => {
            let c = find(ctx, &org, &name).await?;
            let c = commands::pause(ctx.store.as_ref(), &ctx.actor, org.id, c.id, &reason).await?;
            state_changed(&c, json)
        }
        ConnectionCommand::Resume { name } => {
            let c = find(ctx, &org, &name).await?;
            let c = commands::resume(ctx.store.as_ref(), &ctx.actor, org.id, c.id).await?;
            state_changed(&c, json)
        }
        ConnectionCommand::Sync {
            name,
            full,
            dry_run,
        } if is_source(ctx, &org, &name).await? => {
            let c = find(ctx, &org, &name).await?;
            sync_source(ctx, &org, &c, full, dry_run, json).await
        }
        ConnectionCommand::Sync {
            dry_run: true,
            full: false,
            ..
        } => Err(CliError::invalid(
            "--dry-run of a target goes with --full (a reconciliation that reports only)",
        )),
        ConnectionCommand::Sync {
            name,
            full: true,
            dry_run,
        } => {
            let c = find(ctx, &org, &name).await?;
            let report =
                commands::reconcile(ctx.store.as_ref(), &ctx.actor, org.id, c.id, dry_run).await?;
            if json {
                return output::json(&report);
            }
            let k = &report.counts;
            println!(
                "{}reconciled {:?}: {} checked, {} at the target; {} unchanged, {} corrected, {} recreated, {} created, {} removed, {} adopted, {} flagged, {} unknown deleted, {} still queued",
                if dry_run { "(dry run) " } else { "" },
                c.name,
                k.checked,
                k.remote,
                k.unchanged,
                k.corrected,
                k.recreated,
                k.created,
                k.removed,
                k.adopted,
                k.flagged,
                k.deleted_unknown,
                k.in_queue
            );
            if !report.findings.is_empty() {
                output::table(
                    &["finding", "subject", "detail"],
                    report
                        .findings
                        .iter()
                        .map(|f| vec![f.kind.to_string(), f.subject.clone(), f.detail.clone()]),
                );
            }
            if let Some(e) = &report.run.error {
                return Err(CliError::new(
                    crate::cli::error::Exit::Unavailable,
                    format!("the reconciliation stopped: {e}"),
                ));
            }
            Ok(())
        }
        ConnectionCommand::Set(args)
            if args.refresh_metadata
                || args.metadata_file.is_some()
                || args.metadata_url.is_some() =>
        {
            let c = find(ctx, &org, &args.name).await?;
            let source = metadata_source(args.metadata_file.as_ref(), args.metadata_url.as_ref())?;
            let before = crate::domain::SamlSettings::from_json(&c.settings.0).ok();
            let updated = commands::refresh_saml_metadata(
                ctx.store.as_ref(),
                &ctx.actor,
                org.id,
                c.id,
                source,
            )
            .await?;
            if json {
                return output::json(&updated);
            }
            let after = crate::domain::SamlSettings::from_json(&updated.settings.0)
                .map_err(|e| CliError::invalid(e.to_string()))?;
            let had = before.map(|b| b.idp_certificates).unwrap_or_default();
            let added = after
                .idp_certificates
                .iter()
                .filter(|c| !had.contains(c))
                .count();
            let dropped = had
                .iter()
                .filter(|c| !after.idp_certificates.contains(c))
                .count();
            println!(
                "IdP metadata of {:?} refreshed: entityID {}, {} signing certificates ({added} new, {dropped} no longer trusted)",
                updated.name,
                after.idp_entity_id,
                after.idp_certificates.len()
            );
            Ok(())
        }
        ConnectionCommand::Set(args) => {
            let c = find(ctx, &org, &args.name).await?;
            if c.kind != ConnectionKind::ScimTarget {
                return Err(CliError::invalid(format!(
                    "{:?} is a {} connection; policy settings apply to SCIM targets",
                    c.name, c.kind
                )));
            }
            let changes = settings_changes(&c, &args)?;
            if changes.is_empty() {
                return Err(CliError::invalid(
                    "nothing to change (see `scimdesk connection set --help`)",
                ));
            }
            let updated =
                commands::configure_target(ctx.store.as_ref(), &ctx.actor, org.id, c.id, &changes)
                    .await?;
            let roles = ctx.store.list_roles(org.id).await?;
            if let Some(Value::Array(bound)) = updated.settings.0.get("roles") {
                for b in bound.iter().filter_map(Value::as_str) {
                    if !roles.iter().any(|r| r.name.eq_ignore_ascii_case(b)) {
                        eprintln!(
                            "note: role {b:?} does not exist yet; it binds nobody until a mapping grants it"
                        );
                    }
                }
            }
            if json {
                return output::json(&updated);
            }
            println!(
                "settings of {:?} are now {}",
                updated.name, updated.settings.0
            );
            Ok(())
        }
        ConnectionCommand::Sync { name, .. } => {
            let c = find(ctx, &org, &name).await?;
            let n = commands::sync_now(ctx.store.as_ref(), &ctx.actor, org.id, c.id).await?;
            if json {
                return output::json(&serde_json::json!({ "connection": c.name, "made_due": n }));
            }
            println!("{n} waiting operations of {:?} are due now", c.name);
            Ok(())
        }
        ConnectionCommand::Health { name } => {
            // A source scimdesk pulls from is judged by its syncs.
            if let Some(n) = &name {
                let c = find(ctx, &org, n).await?;
                if c.kind.records_runs() {
                    let h = health::source_health(ctx.store.as_ref(), &c).await?;
                    if json {
                        return output::json(&h);
                    }
                    source_table(std::slice::from_ref(&h));
                    if !h.recent_errors.is_empty() {
                        let what = if c.kind == ConnectionKind::Saml {
                            "refused logins"
                        } else {
                            "failed syncs"
                        };
                        println!("\nlatest {what}:");
                        output::table(
                            &["at", "why"],
                            h.recent_errors
                                .iter()
                                .map(|e| vec![e.at.to_string(), e.reason.clone()]),
                        );
                    }
                    return Ok(());
                }
            }
            let all = ctx.store.list_connections(org.id).await?;
            let conns = match &name {
                Some(n) => vec![find(ctx, &org, n).await?],
                None => all
                    .iter()
                    .filter(|c| c.kind == ConnectionKind::ScimTarget)
                    .cloned()
                    .collect(),
            };
            let mut reports = Vec::with_capacity(conns.len());
            for c in &conns {
                reports.push(
                    health::connection_health(ctx.store.as_ref(), c, &ctx.config.engine.health)
                        .await?,
                );
            }
            if json {
                return output::json(&reports);
            }
            let pct = |w: &health::WindowRate| {
                if w.attempts == 0 {
                    "-".to_string()
                } else {
                    format!("{:.1}% of {}", w.rate() * 100.0, w.attempts)
                }
            };
            output::table(
                &[
                    "connection",
                    "state",
                    "last success",
                    "errors 5m",
                    "errors 1h",
                    "errors 24h",
                    "pending",
                    "in flight",
                    "retry",
                    "failed",
                    "oldest",
                    "p50",
                    "p95",
                    "why",
                ],
                reports.iter().map(|r| {
                    vec![
                        r.name.clone(),
                        r.state.to_string(),
                        output::or_dash(r.last_success_at),
                        pct(&r.errors_5m),
                        pct(&r.errors_1h),
                        pct(&r.errors_24h),
                        r.queue.pending.to_string(),
                        r.queue.in_flight.to_string(),
                        r.queue.retry_wait.to_string(),
                        r.queue.failed.to_string(),
                        output::or_dash(r.oldest_pending_secs.map(|s| format!("{s}s"))),
                        output::or_dash(r.p50_ms.map(|m| format!("≤{m}ms"))),
                        output::or_dash(r.p95_ms.map(|m| format!("≤{m}ms"))),
                        match &r.warning {
                            Some(w) => format!("{}; {w}", r.reason),
                            None => r.reason.clone(),
                        },
                    ]
                }),
            );
            let pulled: Vec<&Connection> = all.iter().filter(|c| c.kind.records_runs()).collect();
            if name.is_none() && !pulled.is_empty() {
                let mut sources = Vec::with_capacity(pulled.len());
                for c in pulled {
                    sources.push(health::source_health(ctx.store.as_ref(), c).await?);
                }
                println!();
                source_table(&sources);
            }
            Ok(())
        }
        ConnectionCommand::RotateSecret { name, secret } => {
            let c = find(ctx, &org, &name).await?;
            if !secret.is_given() {
                return Err(CliError::invalid(
                    "give the new secret with --secret-file PATH or --secret-stdin",
                ));
            }
            let Some(secret) = secret.read()? else {
                return Err(CliError::invalid("the new secret is empty"));
            };
            commands::rotate_secret(ctx.store.as_ref(), &ctx.actor, org.id, c.id, &secret).await?;
            if json {
                output::json(&serde_json::json!({ "rotated": c.id }))
            } else {
                println!("stored a new secret for connection {:?}", c.name);
                Ok(())
            }
        }
    }
}

fn secret_label(c: &Connection) -> String {
    match (c.has_secret, c.auth_method) {
        (true, _) => MASK.to_string(),
        (false, AuthMethod::None) => "-".to_string(),
        (false, _) => "(missing)".to_string(),
    }
}

/// A connection by name or id, or a clear not-found error.
pub(super) async fn find(ctx: &Context, org: &Organization, name: &str) -> CliResult<Connection> {
    let by_id = match name.parse() {
        Ok(id) => ctx.store.connection(org.id, id).await?,
        Err(_) => None,
    };
    let found = match by_id {
        Some(c) => Some(c),
        None => ctx.store.connection_by_name(org.id, name).await?,
    };
    found.ok_or_else(|| {
        CliError::not_found(format!(
            "no connection {name:?} in organization {:?} (see `scimdesk connection list`)",
            org.name
        ))
    })
}

async fn add(ctx: &Context, org: &Organization, args: ConnectionAdd, json: bool) -> CliResult {
    let kind: ConnectionKind = args.kind.parse()?;
    let auth = match &args.auth {
        Some(a) => Some(a.parse()?),
        None => None,
    };
    let mut settings = Map::new();
    for pair in &args.settings {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| CliError::invalid(format!("--setting {pair:?} is not KEY=VALUE")))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(CliError::invalid(format!(
                "--setting {pair:?} has an empty key"
            )));
        }
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        settings.insert(key.to_string(), value);
    }
    let mut secret = args.secret.read()?;
    if kind == ConnectionKind::Saml {
        let saml = saml_spec(&args.saml)?;
        let mut from_metadata = commands::saml_settings(&saml).await?;
        from_metadata.extend(settings);
        settings = from_metadata;
        if let Some(path) = &args.saml.sp_key_file {
            if secret.is_some() {
                return Err(CliError::invalid(
                    "a SAML source's secret is its SP key: give --sp-key-file or --secret-file, not both",
                ));
            }
            secret = crate::cli::SecretSource {
                secret_file: Some(path.clone()),
                secret_stdin: false,
            }
            .read()?;
        }
    } else if args.saml.metadata_file.is_some()
        || args.saml.metadata_url.is_some()
        || args.saml.sp_entity_id.is_some()
        || args.saml.groups_attribute.is_some()
    {
        return Err(CliError::invalid(format!(
            "--metadata-file, --metadata-url, --sp-entity-id and --groups-attribute go with --kind saml, not {kind}"
        )));
    }
    let spec = ConnectionSpec {
        name: args.name,
        kind,
        base_url: args.base_url,
        auth,
        settings,
        client_id: args.client_id,
        issuer: args.issuer,
    };
    let conn = create_connection(
        ctx.store.as_ref(),
        &ctx.actor,
        org.id,
        spec,
        secret.as_ref(),
    )
    .await?;
    let auth = conn.auth_method;
    if json {
        return output::json(&conn);
    }
    println!(
        "added {} connection {:?} ({}) to {:?}",
        conn.kind, conn.name, conn.id, org.name
    );
    if conn.kind == ConnectionKind::ScimTarget
        && let Some(w) = TargetSettings::from_json(&conn.settings.0)
            .ok()
            .and_then(|s| s.receives_nobody())
    {
        eprintln!("warning: {:?} is {w}", conn.name);
    }
    if conn.kind == ConnectionKind::Saml
        && let Ok(s) = crate::domain::SamlSettings::from_json(&conn.settings.0)
    {
        println!("  IdP entityID:     {}", s.idp_entity_id);
        println!("  signing certs:    {}", s.idp_certificates.len());
        println!("  ACS URL:          {}", s.acs_url(conn.id));
        println!("  SP metadata:      {}", s.metadata_url_of_sp(conn.id));
    }
    if auth != AuthMethod::None && !conn.has_secret {
        eprintln!(
            "note: no secret stored yet; add one with `scimdesk --org {:?} connection rotate-secret {:?} --secret-stdin`",
            org.name, conn.name
        );
    }
    Ok(())
}

/// The settings a `connection set` changes (a `null` value removes a key).
fn settings_changes(
    c: &Connection,
    args: &crate::cli::ConnectionSet,
) -> CliResult<Map<String, Value>> {
    let mut out = Map::new();
    let word = |flag: &str, v: &Option<String>, allowed: &[&str]| -> CliResult<Option<Value>> {
        match v {
            Some(v) if allowed.contains(&v.as_str()) => Ok(Some(Value::String(v.clone()))),
            Some(v) => Err(CliError::invalid(format!(
                "--{flag} {v:?}: use {}",
                allowed.join(", ")
            ))),
            None => Ok(None),
        }
    };
    if let Some(roles) = &args.roles {
        let list: Vec<Value> = roles
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| Value::String(r.to_string()))
            .collect();
        out.insert("roles".into(), Value::Array(list));
    }
    if let Some(scope) = &args.user_scope {
        out.insert(
            "user_scope".into(),
            if scope.trim().eq_ignore_ascii_case("roles") {
                Value::Null
            } else {
                Value::String(scope.clone())
            },
        );
    }
    if let Some(v) = word(
        "role-delivery",
        &args.role_delivery,
        &["groups", "roles", "entitlements"],
    )? {
        out.insert("role_delivery".into(), v);
    }
    if let Some(b) = args.source_groups {
        out.insert("source_groups".into(), Value::Bool(b));
    }
    if let Some(v) = word(
        "unknown-resources",
        &args.unknown_resources,
        &["flag", "adopt", "remove"],
    )? {
        out.insert("unknown_resources".into(), v);
    }
    if let Some(v) = word("delete-mode", &args.delete_mode, &["delete", "suspend"])? {
        out.insert("delete_mode".into(), v);
    }
    if let Some(secs) = args.reconcile_every {
        out.insert("reconcile_every_secs".into(), Value::from(secs));
    }
    let current = |key: &str| match c.settings.0.get(key) {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    if !args.attributes.is_empty() || !args.unset_attributes.is_empty() {
        let mut attrs = current("attributes");
        for a in &args.attributes {
            let (path, rule) = a
                .split_once('=')
                .ok_or_else(|| CliError::invalid(format!("--attribute {a:?} is not PATH=RULE")))?;
            let rule = match rule.split_once(':') {
                _ if rule == "drop" => Value::String("drop".into()),
                Some(("from", p)) => serde_json::json!({ "from": p }),
                Some(("template", t)) => serde_json::json!({ "template": t }),
                Some(("const", v)) => {
                    serde_json::json!({ "const": serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.into())) })
                }
                _ => {
                    return Err(CliError::invalid(format!(
                        "--attribute {a:?}: the rule is drop, from:PATH, const:VALUE or template:TEXT"
                    )));
                }
            };
            attrs.insert(path.trim().to_string(), rule);
        }
        for p in &args.unset_attributes {
            attrs.remove(p.trim());
        }
        out.insert("attributes".into(), Value::Object(attrs));
    }
    if !args.variables.is_empty() {
        let mut vars = current("variables");
        for v in &args.variables {
            let (k, val) = v
                .split_once('=')
                .ok_or_else(|| CliError::invalid(format!("--variable {v:?} is not NAME=VALUE")))?;
            vars.insert(k.trim().to_string(), Value::String(val.to_string()));
        }
        out.insert("variables".into(), Value::Object(vars));
    }
    for pair in &args.settings {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| CliError::invalid(format!("--setting {pair:?} is not KEY=VALUE")))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        out.insert(key.trim().to_string(), value);
    }
    Ok(out)
}

/// The usual authentication for each kind of connection.
/// Whether `name` is a source (synced) rather than a target (reconciled).
async fn is_source(ctx: &Context, org: &Organization, name: &str) -> CliResult<bool> {
    Ok(find(ctx, org, name).await?.kind.is_source())
}

/// `connection sync NAME` of a source: read it and apply what changed (or, dry, report it).
async fn sync_source(
    ctx: &Context,
    org: &Organization,
    c: &Connection,
    full: bool,
    dry_run: bool,
    json: bool,
) -> CliResult<()> {
    use crate::engine::sync::{SyncError, SyncOptions, sync_source};
    let options = SyncOptions {
        full,
        dry_run,
        ..Default::default()
    };
    let report = sync_source(ctx.store.as_ref(), &ctx.actor, org.id, c.id, options)
        .await
        .map_err(|e| match e {
            SyncError::Store(s) => CliError::from(s),
            other => CliError::invalid(other.to_string()),
        })?;
    if json {
        output::json(&report)?;
    } else {
        let k = &report.counts;
        println!(
            "{}synced {:?}: {} users and {} groups at the source; {} created, {} updated, {} suspended, {} reactivated, {} unchanged, {} left to another source; groups: {} created, {} updated, {} deleted; memberships: {} added, {} removed",
            if dry_run { "(dry run) " } else { "" },
            c.name,
            k.source_users,
            k.source_groups,
            k.created,
            k.updated,
            k.suspended,
            k.reactivated,
            k.unchanged,
            k.conflicts,
            k.groups_created,
            k.groups_updated,
            k.groups_deleted,
            k.memberships_added,
            k.memberships_removed
        );
        let s = &report.samples;
        let rows = [
            ("created", &s.created),
            ("updated", &s.updated),
            ("left to another source", &s.conflicts),
            ("group created", &s.groups_created),
            ("group updated", &s.groups_updated),
        ];
        let lines: Vec<Vec<String>> = rows
            .iter()
            .flat_map(|(kind, names)| names.iter().map(|n| vec![kind.to_string(), n.clone()]))
            .collect();
        if !lines.is_empty() {
            output::table(&["change", "subject"], lines);
        }
    }
    if let Some(g) = &report.guard {
        let how = match g.exception {
            Some(id) => format!(
                "; review exception {id}, then `scimdesk exceptions resolve {id} --apply` (or --dismiss --reason TEXT)"
            ),
            None => String::new(),
        };
        return Err(CliError::new(
            crate::cli::error::Exit::Refused,
            format!(
                "the deletion guard stopped the sync of {:?}: it would suspend {} of {} active users ({}…); nothing was changed{how}",
                c.name,
                g.suspending,
                g.active,
                g.first
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if let Some(e) = &report.run.error {
        return Err(CliError::new(
            crate::cli::error::Exit::Unavailable,
            format!("the sync of {:?} stopped: {e}", c.name),
        ));
    }
    Ok(())
}

/// The sources' health, one row each.
fn source_table(sources: &[health::SourceHealth]) {
    output::table(
        &[
            "source",
            "state",
            "last sync",
            "last success",
            "syncs 24h",
            "failed 24h",
            "why",
        ],
        sources.iter().map(|h| {
            vec![
                h.name.clone(),
                h.state.to_string(),
                output::or_dash(h.last_sync_at),
                output::or_dash(h.last_success_at),
                h.runs_24h.attempts.to_string(),
                h.runs_24h.failures.to_string(),
                h.reason.clone(),
            ]
        }),
    );
}

/// Where `--metadata-file` or `--metadata-url` says the IdP's metadata is.
fn metadata_source(
    file: Option<&std::path::PathBuf>,
    url: Option<&String>,
) -> CliResult<Option<commands::MetadataSource>> {
    if let Some(path) = file {
        let xml = std::fs::read_to_string(path).map_err(|e| {
            CliError::invalid(format!("cannot read metadata file {}: {e}", path.display()))
        })?;
        return Ok(Some(commands::MetadataSource::Xml(xml)));
    }
    Ok(url.map(|u| commands::MetadataSource::Url(u.clone())))
}

/// The SAML source `connection add --kind saml` describes.
fn saml_spec(args: &crate::cli::SamlArgs) -> CliResult<commands::SamlSpec> {
    let metadata = metadata_source(args.metadata_file.as_ref(), args.metadata_url.as_ref())?
        .ok_or_else(|| {
            CliError::invalid("a saml connection needs --metadata-file PATH or --metadata-url URL")
        })?;
    let need = |v: &Option<String>, flag: &str| {
        v.clone()
            .ok_or_else(|| CliError::invalid(format!("a saml connection needs {flag}")))
    };
    let sp_certificate_pem = match &args.sp_cert_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| CliError::invalid(format!("cannot read {}: {e}", path.display())))?,
        ),
        None => None,
    };
    Ok(commands::SamlSpec {
        metadata,
        sp_entity_id: need(&args.sp_entity_id, "--sp-entity-id ID")?,
        groups_attribute: need(&args.groups_attribute, "--groups-attribute ATTR")?,
        email_attribute: args.email_attribute.clone(),
        given_name_attribute: args.given_name_attribute.clone(),
        family_name_attribute: args.family_name_attribute.clone(),
        username_from: args.username_from.clone(),
        clock_skew_secs: args.clock_skew_secs,
        public_url: args.public_url.clone(),
        acs_url: args.acs_url.clone(),
        relay_state_allow: args.relay_state_allow.clone(),
        sp_certificate_pem,
    })
}
