//! Overlays drawn over the pane: help, details, prompts, confirmations, the organization
//! switcher, the mapping editor and the impact preview.

use super::{age, clock, fit};
use crate::domain::*;
use crate::tui::data::{Detail, ImpactView};
use crate::tui::state::{App, Editor, Overlay, PromptPurpose};
use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

/// A centred rectangle of at most `w`×`h` inside `area`.
fn centred(area: Rect, w: u16, h: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(h.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(w.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    cell
}

fn boxed<'a>(app: &App, title: &str) -> Block<'a> {
    Block::new()
        .borders(Borders::ALL)
        .border_style(app.theme.style("header"))
        .title(Span::styled(
            format!(" {title} "),
            app.theme.style("header"),
        ))
        .style(app.theme.style("base"))
}

fn panel(
    frame: &mut Frame,
    app: &App,
    area: Rect,
    title: &str,
    lines: Vec<Line<'static>>,
    scroll: u16,
) {
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .block(boxed(app, title))
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        area,
    );
}

pub(super) fn draw(frame: &mut Frame, app: &App, overlay: &Overlay, area: Rect) {
    // Large terminals get roomier overlays; small ones use nearly all of the screen.
    let big = centred(
        area,
        area.width.saturating_sub(4).min(120),
        area.height.saturating_sub(2),
    );
    match overlay {
        Overlay::Help => help(frame, app, area),
        Overlay::Loading(_) => panel(
            frame,
            app,
            centred(area, 30, 3),
            "",
            vec![Line::from("reading…")],
            0,
        ),
        Overlay::Detail { detail, scroll } => {
            let (title, lines) = detail_lines(app, detail);
            panel(frame, app, big, &title, lines, *scroll);
        }
        Overlay::Prompt { purpose, input } => {
            let title = match purpose {
                PromptPurpose::Filter => {
                    format!("filter {} (enter apply, esc cancel)", app.pane.title())
                }
                PromptPurpose::Skip(_) => "skip: reason (enter skip, esc cancel)".into(),
                PromptPurpose::Dismiss(_) => "dismiss: reason (enter dismiss, esc cancel)".into(),
            };
            let r = centred(area, area.width.saturating_sub(4).min(90), 3);
            frame.render_widget(Clear, r);
            let block = boxed(app, &title);
            let inner = block.inner(r);
            frame.render_widget(block, r);
            frame.render_widget(input.as_ref(), inner);
        }
        Overlay::Confirm(c) => {
            let r = centred(area, area.width.saturating_sub(4).min(70), 7);
            let lines = vec![
                Line::from(c.question.clone()),
                Line::from(""),
                Line::from(vec![
                    Span::styled("y", app.theme.style("key")),
                    Span::raw(" yes   "),
                    Span::styled("n", app.theme.style("key")),
                    Span::raw(" no"),
                ]),
            ];
            panel(frame, app, r, "confirm", lines, 0);
        }
        Overlay::Organizations { selected } => {
            let lines = app
                .organizations
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let current = app.organization.as_ref().is_some_and(|c| c.id == o.id);
                    let text = format!("{} {}", if current { "●" } else { " " }, o.name);
                    if i == *selected {
                        Line::from(Span::styled(text, app.theme.style("selected")))
                    } else {
                        Line::from(text)
                    }
                })
                .collect();
            let h = (app.organizations.len() as u16).saturating_add(2).min(20);
            panel(
                frame,
                app,
                centred(area, 40, h),
                "organization (enter switch)",
                lines,
                0,
            );
        }
        Overlay::Editor(ed) => editor(frame, app, ed, area),
        Overlay::Impact { view, scroll } => {
            let lines = impact_lines(app, view);
            let title = if view.form.remove {
                "impact of deleting the mapping"
            } else {
                "impact of the mapping (y apply, n cancel)"
            };
            panel(frame, app, big, title, lines, *scroll);
        }
    }
}

fn help(frame: &mut Frame, app: &App, area: Rect) {
    let key = app.theme.style("key");
    let entries = app.keymap.help_lines();
    // One column when it fits, else two side by side (80×24 shows every key).
    let rows = usize::from(area.height.saturating_sub(2)).max(1);
    let columns = if entries.len() <= rows { 1 } else { 2 };
    let per_column = entries.len().div_ceil(columns);
    let width = if columns == 1 {
        72
    } else {
        area.width.min(120)
    };
    let h = (per_column as u16 + 2).min(area.height);
    let r = centred(area, width, h);
    frame.render_widget(Clear, r);
    let block = boxed(app, "keys (any key closes)");
    let inner = block.inner(r);
    frame.render_widget(block, r);
    let cols = Layout::horizontal(vec![Constraint::Ratio(1, columns as u32); columns]).split(inner);
    for (c, chunk) in entries.chunks(per_column.max(1)).enumerate() {
        let keys_width = chunk
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(1);
        let lines: Vec<Line<'static>> = chunk
            .iter()
            .map(|(keys, what)| {
                Line::from(vec![
                    Span::styled(format!(" {keys:>keys_width$}  "), key),
                    Span::raw(what.clone()),
                ])
            })
            .collect();
        if let Some(area) = cols.get(c) {
            frame.render_widget(Paragraph::new(lines), *area);
        }
    }
}

fn kv(app: &App, k: &str, v: impl Into<String>) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{k:>14}  "), app.theme.style("muted")),
        Span::raw(v.into()),
    ])
}

fn heading(app: &App, text: &str) -> Line<'static> {
    Line::from(Span::styled(text.to_string(), app.theme.style("header")))
}

fn attempt_line(app: &App, a: &Attempt, prefix: String) -> Line<'static> {
    let status = a
        .http_status
        .map_or_else(|| "no response".to_string(), |s| format!("HTTP {s}"));
    let style = match a.http_status {
        Some(s) if s < 400 => app.theme.style("healthy"),
        _ => app.theme.style("error"),
    };
    Line::from(vec![
        Span::raw(format!(
            "{prefix}#{} {} ",
            a.attempt_no,
            clock(a.started_at)
        )),
        Span::styled(status, style),
        Span::raw(format!(
            " {}ms {}",
            a.duration_ms,
            a.error.clone().unwrap_or_default()
        )),
    ])
}

fn detail_lines(app: &App, detail: &Detail) -> (String, Vec<Line<'static>>) {
    let now = app.now;
    match detail {
        Detail::Connection { row, attempts } => {
            let c = &row.connection;
            let mut lines = vec![
                kv(app, "kind", c.kind.to_string()),
                kv(app, "base URL", c.base_url.clone().unwrap_or_default()),
                kv(app, "state", c.state.to_string()),
            ];
            if let Some(h) = &row.health {
                lines.extend([
                    Line::from(vec![
                        Span::styled(format!("{:>14}  ", "health"), app.theme.style("muted")),
                        Span::styled(h.state.as_str(), app.theme.health(h.state)),
                        Span::raw(format!(" — {}", h.reason)),
                    ]),
                    kv(
                        app,
                        "last success",
                        h.last_success_at
                            .map_or("never".into(), |t| format!("{} ago", age(now, t))),
                    ),
                    kv(
                        app,
                        "errors",
                        format!(
                            "{:.0}% of {} (5 min) · {:.0}% of {} (1 h) · {:.0}% of {} (24 h)",
                            h.errors_5m.rate() * 100.0,
                            h.errors_5m.attempts,
                            h.errors_1h.rate() * 100.0,
                            h.errors_1h.attempts,
                            h.errors_24h.rate() * 100.0,
                            h.errors_24h.attempts
                        ),
                    ),
                    kv(
                        app,
                        "queue",
                        format!(
                            "{} pending, {} in flight, {} retrying, {} failed",
                            h.queue.pending, h.queue.in_flight, h.queue.retry_wait, h.queue.failed
                        ),
                    ),
                    kv(
                        app,
                        "latency",
                        format!(
                            "p50 {} · p95 {}",
                            h.p50_ms.map_or("-".into(), |v| format!("{v}ms")),
                            h.p95_ms.map_or("-".into(), |v| format!("{v}ms"))
                        ),
                    ),
                    kv(
                        app,
                        "reconcile",
                        h.last_reconcile.as_ref().map_or("never".into(), |r| {
                            format!(
                                "{} ago, {} drift{}{}",
                                age(now, r.finished_at),
                                r.drift,
                                if r.dry_run { " (dry run)" } else { "" },
                                r.error
                                    .as_ref()
                                    .map_or(String::new(), |e| format!(", failed: {e}"))
                            )
                        }),
                    ),
                ]);
            }
            lines.push(Line::from(""));
            lines.push(heading(app, "Recent attempts"));
            if attempts.is_empty() {
                lines.push(Line::from("  none yet"));
            }
            for (op, a) in attempts {
                lines.push(attempt_line(
                    app,
                    a,
                    format!("  {} {} ", op.operation.action, fit(&op.subject, 24)),
                ));
            }
            (format!("connection {}", c.name), lines)
        }
        Detail::Operation { row, attempts } => {
            let op = &row.operation;
            let target = app
                .connections
                .iter()
                .find(|c| c.connection.id == op.connection_id)
                .map_or_else(
                    || op.connection_id.to_string(),
                    |c| c.connection.name.clone(),
                );
            let mut lines = vec![
                kv(app, "id", op.id.to_string()),
                kv(app, "target", target),
                kv(
                    app,
                    "action",
                    format!("{} {} {}", op.action, op.resource_type, row.subject),
                ),
                kv(app, "state", op.state.to_string()),
                kv(app, "attempts", op.attempts.to_string()),
                kv(app, "created", format!("{} ago", age(now, op.created_at))),
            ];
            if let Some(e) = &op.last_error {
                lines.push(Line::from(vec![
                    Span::styled(format!("{:>14}  ", "last error"), app.theme.style("muted")),
                    Span::styled(e.clone(), app.theme.style("error")),
                ]));
            }
            if let Some(n) = &op.note {
                lines.push(kv(app, "note", n.clone()));
            }
            if op.payload.0 != serde_json::json!({}) {
                lines.push(kv(app, "payload", op.payload.0.to_string()));
            }
            lines.push(Line::from(""));
            lines.push(heading(app, "Attempts"));
            for a in attempts {
                lines.push(attempt_line(app, a, "  ".into()));
                for (label, text) in [
                    ("request", &a.request_excerpt),
                    ("response", &a.response_excerpt),
                ] {
                    if let Some(text) = text {
                        lines.push(Line::from(Span::styled(
                            format!("      {label}"),
                            app.theme.style("muted"),
                        )));
                        lines.extend(text.lines().map(|l| Line::from(format!("        {l}"))));
                    }
                }
            }
            if attempts.is_empty() {
                lines.push(Line::from("  none yet"));
            }
            lines.push(Line::from(""));
            lines.push(Line::from(Span::styled(
                format!(
                    "{} retry · {} skip · {} re-map · {} back",
                    app.key_name(crate::tui::keymap::Action::Retry),
                    app.key_name(crate::tui::keymap::Action::Skip),
                    app.key_name(crate::tui::keymap::Action::Remap),
                    app.key_name(crate::tui::keymap::Action::Back)
                ),
                app.theme.style("muted"),
            )));
            (format!("operation {}", fit(&op.id.to_string(), 13)), lines)
        }
        Detail::Exception(e) => {
            let mut lines = vec![
                kv(app, "kind", e.kind.to_string()),
                kv(app, "subject", e.subject.clone()),
                kv(app, "state", e.state.to_string()),
                kv(app, "raised", format!("{} ago", age(now, e.created_at))),
                kv(app, "summary", e.summary.clone()),
            ];
            if let Ok(pretty) = serde_json::to_string_pretty(&e.details.0) {
                lines.push(Line::from(""));
                lines.push(heading(app, "Details"));
                lines.extend(pretty.lines().map(|l| Line::from(format!("  {l}"))));
            }
            lines.push(Line::from(""));
            let first = if e.kind == ExceptionKind::SyncGuard {
                "apply the sync anyway"
            } else {
                "map the group to a role"
            };
            lines.push(Line::from(Span::styled(
                format!(
                    "{} {first} · {} dismiss · {} back",
                    app.key_name(crate::tui::keymap::Action::Remap),
                    app.key_name(crate::tui::keymap::Action::Skip),
                    app.key_name(crate::tui::keymap::Action::Back)
                ),
                app.theme.style("muted"),
            )));
            (format!("exception: {}", e.kind), lines)
        }
        Detail::User(d) => {
            let u = &d.user;
            let mut lines = vec![
                kv(app, "userName", u.user_name.clone()),
                kv(app, "name", u.display_name.clone().unwrap_or_default()),
                kv(app, "externalId", u.external_id.clone().unwrap_or_default()),
                kv(
                    app,
                    "emails",
                    u.emails
                        .0
                        .iter()
                        .map(|e| e.value.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                kv(
                    app,
                    "state",
                    format!("{} (active: {})", u.lifecycle_state, u.active),
                ),
                kv(app, "groups", d.groups.join(", ")),
                kv(
                    app,
                    "roles",
                    if d.roles.is_empty() {
                        "none".into()
                    } else {
                        d.roles.join(", ")
                    },
                ),
                Line::from(""),
                heading(app, "At each target"),
            ];
            for (name, link) in &d.targets {
                lines.push(match link {
                    Some(l) => kv(
                        app,
                        name,
                        format!(
                            "linked as {} · last sent {} ago",
                            l.remote_id,
                            age(now, l.synced_at)
                        ),
                    ),
                    None => kv(app, name, "not provisioned"),
                });
            }
            lines.push(Line::from(""));
            lines.push(heading(app, "Operations"));
            for r in &d.operations {
                let o = &r.operation;
                lines.push(Line::from(format!(
                    "  {} {:<14} {:<10} tries {} {}",
                    app.connections
                        .iter()
                        .find(|c| c.connection.id == o.connection_id)
                        .map_or("?", |c| c.connection.name.as_str()),
                    o.action.to_string(),
                    o.state.to_string(),
                    o.attempts,
                    o.last_error.clone().unwrap_or_default()
                )));
            }
            if d.operations.is_empty() {
                lines.push(Line::from("  none"));
            }
            (format!("user {}", u.user_name), lines)
        }
        Detail::Audit(e) => {
            let mut lines = vec![
                kv(app, "time", e.occurred_at.to_rfc3339()),
                kv(app, "actor", format!("{} ({})", e.actor, e.actor_kind)),
                kv(app, "action", e.action.clone()),
                kv(
                    app,
                    "subject",
                    format!("{} {}", e.subject_type, e.subject_id),
                ),
                Line::from(""),
                heading(app, "Details"),
            ];
            let pretty = serde_json::to_string_pretty(&e.details.0).unwrap_or_default();
            lines.extend(pretty.lines().map(|l| Line::from(format!("  {l}"))));
            ("audit event".into(), lines)
        }
    }
}

fn editor(frame: &mut Frame, app: &App, ed: &Editor, area: Rect) {
    let r = centred(
        area,
        area.width.saturating_sub(4).min(80),
        16.min(area.height),
    );
    frame.render_widget(Clear, r);
    let title = match (&ed.form.id, ed.form.from_exception) {
        (_, Some(_)) => "map the unmapped group",
        (Some(_), _) => "edit mapping",
        (None, _) => "new mapping",
    };
    let block = boxed(app, title);
    let inner = block.inner(r);
    frame.render_widget(block, r);
    let rows = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(2),
        Constraint::Min(1),
    ])
    .split(inner);
    let label = |i: usize, text: &str| {
        let style = if ed.focus == i {
            app.theme.style("selected")
        } else {
            app.theme.style("muted")
        };
        Span::styled(format!("{text:>12} "), style)
    };
    let field = |frame: &mut Frame, i: usize, text: &str, area: Rect| {
        let [l, v] = Layout::horizontal([Constraint::Length(13), Constraint::Min(1)]).areas(area);
        frame.render_widget(Paragraph::new(label(i, text)), l);
        v
    };
    let v = field(frame, 0, "group", rows[0]);
    frame.render_widget(&ed.pattern, v);
    let v = field(frame, 1, "role", rows[1]);
    frame.render_widget(&ed.role, v);
    let choice = |text: String| Line::from(vec![Span::raw("◂ "), Span::raw(text), Span::raw(" ▸")]);
    let v = field(frame, 2, "match by", rows[2]);
    frame.render_widget(Paragraph::new(choice(ed.form.selector.to_string())), v);
    let v = field(frame, 3, "glob", rows[3]);
    frame.render_widget(
        Paragraph::new(choice(
            if ed.form.glob {
                "yes (* and ?)"
            } else {
                "no (exact)"
            }
            .into(),
        )),
        v,
    );
    let v = field(frame, 4, "source", rows[4]);
    let source = ed
        .form
        .source
        .and_then(|id| ed.sources.iter().find(|s| s.0 == id))
        .map_or_else(|| "any source".to_string(), |s| s.1.clone());
    frame.render_widget(Paragraph::new(choice(source)), v);
    let roles = if ed.roles.is_empty() {
        "roles: none yet (a new name creates one)".to_string()
    } else {
        format!("roles: {}", ed.roles.join(", "))
    };
    frame.render_widget(
        Paragraph::new(Span::styled(roles, app.theme.style("muted"))).wrap(Wrap { trim: true }),
        rows[6],
    );
    let mut foot = vec![Line::from(Span::styled(
        "tab next field · ←/→ change · enter preview the impact · esc cancel",
        app.theme.style("muted"),
    ))];
    if let Some(e) = &ed.error {
        foot.insert(
            0,
            Line::from(Span::styled(e.clone(), app.theme.style("error"))),
        );
    }
    frame.render_widget(Paragraph::new(foot).wrap(Wrap { trim: true }), rows[7]);
    // The cursor sits in the focused text field.
    let _ = Style::default();
}

fn impact_lines(app: &App, view: &ImpactView) -> Vec<Line<'static>> {
    let i = &view.impact;
    let gaining = i
        .role_changes
        .iter()
        .filter(|c| !c.gained.is_empty())
        .count();
    let losing = i.losing_access().len();
    let f = &view.form;
    let what = if f.remove {
        format!("delete the mapping {:?} → {}", f.pattern, f.role)
    } else {
        format!(
            "{} {} {:?} → {}",
            if f.id.is_some() { "change to" } else { "map" },
            if f.glob { "groups matching" } else { "group" },
            f.pattern,
            f.role
        )
    };
    let mut lines = vec![
        Line::from(what),
        Line::from(format!(
            "{} users change roles: {gaining} gain, {losing} lose · {} operations at the targets · {} users in the organization",
            i.role_changes.len(),
            i.operations.len(),
            i.organization_users
        )),
    ];
    if let Some(refusal) = &view.guard_refusal {
        lines.push(Line::from(Span::styled(
            format!("guard: {refusal}"),
            app.theme.style("error"),
        )));
    }
    for g in &i.newly_covered {
        lines.push(Line::from(format!("now covered: {}", g.display_name)));
    }
    for g in &i.newly_unmapped {
        lines.push(Line::from(Span::styled(
            format!("left unmapped: {}", g.display_name),
            app.theme.style("degraded"),
        )));
    }
    for t in &i.skipped_targets {
        lines.push(Line::from(Span::styled(
            format!("left out: {t}"),
            app.theme.style("degraded"),
        )));
    }
    lines.push(Line::from(""));
    lines.push(heading(app, "Who gains and who loses"));
    for c in &i.role_changes {
        let mut spans = vec![Span::raw(format!("  {:<28}", fit(&c.user_name, 28)))];
        for g in &c.gained {
            spans.push(Span::styled(format!(" +{g}"), app.theme.style("healthy")));
        }
        for l in &c.lost {
            spans.push(Span::styled(format!(" −{l}"), app.theme.style("error")));
        }
        lines.push(Line::from(spans));
    }
    if i.role_changes.is_empty() {
        lines.push(Line::from("  nobody's roles change"));
    }
    lines.push(Line::from(""));
    lines.push(heading(app, "At each target"));
    for op in &i.operations {
        let who = if op.joining.is_empty() && op.leaving.is_empty() {
            String::new()
        } else {
            format!(" ({} join, {} leave)", op.joining.len(), op.leaving.len())
        };
        lines.push(Line::from(format!(
            "  {:<12} {:<14} {}{who}",
            fit(&op.connection, 12),
            op.action.to_string(),
            op.subject
        )));
    }
    if i.operations.is_empty() {
        lines.push(Line::from("  no operations"));
    }
    lines
}
