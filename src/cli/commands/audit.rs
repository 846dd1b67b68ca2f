//! `scimdesk audit list`

use crate::cli::AuditCommand;
use crate::cli::context::Context;
use crate::cli::error::CliResult;
use crate::cli::output;
use crate::domain::AuditFilter;

pub async fn run(ctx: &Context, org: Option<&str>, cmd: AuditCommand, json: bool) -> CliResult {
    let org = ctx
        .organization_for(org, crate::domain::Action::View)
        .await?;
    let AuditCommand::List {
        limit,
        actor,
        action,
        subject,
        since,
        until,
    } = cmd;
    let now = crate::domain::Timestamp::now();
    let time = |t: Option<String>| {
        t.map(|t| crate::tui::loader::parse_time(&t, now))
            .transpose()
            .map_err(|e| crate::cli::error::CliError::invalid(e.to_string()))
    };
    let filter = AuditFilter {
        actor,
        action_prefix: action,
        subject_id: subject,
        before: None,
        since: time(since)?,
        until: time(until)?,
        limit,
    };
    let events = ctx.store.list_audit(org.id, &filter).await?;
    if json {
        return output::json(&events);
    }
    output::table(
        &["time", "actor", "action", "subject", "details"],
        events.iter().map(|e| {
            vec![
                e.occurred_at.to_string(),
                format!("{}:{}", e.actor_kind, e.actor),
                e.action.clone(),
                format!("{} {}", e.subject_type, e.subject_id),
                e.details.0.to_string(),
            ]
        }),
    );
    Ok(())
}
