//! The six panes, each a table of the rows the loader brought.

use super::{age, fit, seconds, sparkline};
use crate::domain::*;
use crate::engine::HealthState;
use crate::tui::data::FailedItem;
use crate::tui::state::{App, Pane};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Row, Table, TableState};

/// Whether a pane has room for its wide columns.
fn wide(area: Rect) -> bool {
    area.width >= 120
}

pub(super) fn draw(frame: &mut Frame, app: &mut App, area: Rect) {
    let (header, rows, widths, title) = match app.pane {
        Pane::Connections => connections(app, area),
        Pane::Queue => queue(app, area),
        Pane::Failed => failed(app, area),
        Pane::Mappings => mappings(app, area),
        Pane::Users => users(app, area),
        Pane::Audit => audit(app, area),
    };
    let pane = app.pane_state().clone();
    let filter = if pane.filter.is_empty() {
        String::new()
    } else {
        format!(" filter: {} ", pane.filter)
    };
    let empty = rows.is_empty();
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(app.theme.style("muted"))
        .title(Span::styled(
            format!(" {title} "),
            app.theme.style("header"),
        ))
        .title(Span::styled(filter, app.theme.style("key")));
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(app.theme.style("header")))
        .row_highlight_style(app.theme.style("selected"))
        .block(block);
    let mut state = TableState::default()
        .with_offset(app.table_offsets[app.pane.index()])
        .with_selected(if empty { None } else { Some(pane.selected) });
    frame.render_stateful_widget(table, area, &mut state);
    app.table_offsets[app.pane.index()] = state.offset();
    if empty {
        let hint = match app.pane {
            Pane::Failed => "Nothing needs an operator.",
            Pane::Queue => "The queue is empty: everything has been delivered.",
            _ if app.organization.is_none() => {
                "No organization yet: create one with `scimdesk org create NAME`, or run `scimdesk demo`."
            }
            _ => "Nothing here.",
        };
        let inner = Rect {
            x: area.x + 2,
            y: area.y + 2,
            width: area.width.saturating_sub(4),
            height: 1.min(area.height.saturating_sub(3)),
        };
        frame.render_widget(
            ratatui::widgets::Paragraph::new(Span::styled(hint, app.theme.style("muted"))),
            inner,
        );
    }
}

type PaneTable = (
    Vec<Cell<'static>>,
    Vec<Row<'static>>,
    Vec<Constraint>,
    String,
);

fn cells(texts: &[&str]) -> Vec<Cell<'static>> {
    texts.iter().map(|t| Cell::from(t.to_string())).collect()
}

fn health_word(app: &App, state: HealthState) -> Cell<'static> {
    Cell::from(Span::styled(state.as_str(), app.theme.health(state)))
}

fn connections(app: &App, area: Rect) -> PaneTable {
    let wide = wide(area);
    let now = app.now;
    let rows = app
        .visible_connections()
        .into_iter()
        .map(|c| {
            let conn = &c.connection;
            match (&c.health, &c.source) {
                (None, Some(s)) => {
                    // A source scimdesk pulls from: its sync state, when it last synced, and
                    // why when something is wrong.
                    let mut v = vec![
                        Cell::from(conn.name.clone()),
                        health_word(app, s.state),
                        Cell::from(s.last_success_at.map_or("never".into(), |t| age(now, t))),
                        Cell::from(format!("{:.0}%", s.runs_24h.rate() * 100.0)),
                        Cell::from(""),
                        Cell::from(""),
                        Cell::from(""),
                        Cell::from(""),
                    ];
                    if wide {
                        v.insert(1, Cell::from(conn.kind.to_string()));
                        v.push(Cell::from(Span::styled(
                            if s.state == HealthState::Healthy {
                                String::new()
                            } else {
                                s.reason.clone()
                            },
                            app.theme.style("muted"),
                        )));
                    }
                    Row::new(v)
                }
                (None, None) => {
                    let state = if conn.state == ConnectionState::Paused {
                        Cell::from(Span::styled("paused", app.theme.style("paused")))
                    } else {
                        Cell::from(Span::styled("source", app.theme.style("muted")))
                    };
                    let mut v = vec![Cell::from(conn.name.clone()), state];
                    v.extend((0..6).map(|_| Cell::from("")));
                    if wide {
                        v.insert(1, Cell::from(conn.kind.to_string()));
                        v.push(Cell::from(""));
                    }
                    Row::new(v)
                }
                (Some(h), _) => {
                    let pending = h.queue.pending + h.queue.in_flight + h.queue.retry_wait;
                    // A target that receives nobody looks healthy otherwise.
                    let state = match &h.warning {
                        Some(_) if h.state == HealthState::Healthy => {
                            Cell::from(Span::styled("no role", app.theme.style("degraded")))
                        }
                        _ => health_word(app, h.state),
                    };
                    let mut v = vec![
                        Cell::from(conn.name.clone()),
                        state,
                        Cell::from(h.last_success_at.map_or("never".into(), |t| age(now, t))),
                        Cell::from(format!("{:.0}%", h.errors_5m.rate() * 100.0)),
                        Cell::from(pending.to_string()),
                        Cell::from(h.queue.failed.to_string()),
                        Cell::from(h.oldest_pending_secs.map_or("-".into(), seconds)),
                        Cell::from(h.p95_ms.map_or("-".into(), |ms| format!("{ms}ms"))),
                    ];
                    if wide {
                        v.insert(1, Cell::from(conn.kind.to_string()));
                        v.push(Cell::from(Line::from(vec![
                            Span::raw(sparkline(&c.throughput)),
                            Span::raw(" "),
                            Span::styled(sparkline(&c.errors), app.theme.style("error")),
                        ])));
                    }
                    Row::new(v)
                }
            }
        })
        .collect();
    let mut header = cells(&[
        "Connection",
        "State",
        "Last sync",
        "Err 5m",
        "Pending",
        "Failed",
        "Oldest",
        "p95",
    ]);
    let mut widths = vec![
        Constraint::Min(12),
        Constraint::Length(11),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(7),
    ];
    if wide {
        header.insert(1, Cell::from("Kind"));
        header.push(Cell::from("Traffic / errors (30 min)"));
        widths.insert(1, Constraint::Length(12));
        widths.push(Constraint::Length(61));
    }
    (header, rows, widths, "Connections".into())
}

fn state_cell(app: &App, state: OperationState) -> Cell<'static> {
    let style = match state {
        OperationState::Failed => app.theme.style("error"),
        OperationState::RetryWait => app.theme.health(HealthState::Degraded),
        OperationState::InFlight => app.theme.health(HealthState::Healthy),
        _ => Style::default(),
    };
    Cell::from(Span::styled(state.to_string(), style))
}

fn connection_name(app: &App, id: ConnectionId) -> String {
    app.connections
        .iter()
        .find(|c| c.connection.id == id)
        .map_or_else(|| "?".to_string(), |c| c.connection.name.clone())
}

fn queue(app: &App, area: Rect) -> PaneTable {
    let wide = wide(area);
    let now = app.now;
    let rows = app
        .queue
        .rows
        .iter()
        .map(|r| {
            let op = &r.operation;
            let due = if op.not_before > now {
                format!("in {}", seconds(op.not_before.since(now).as_secs()))
            } else {
                "now".to_string()
            };
            let mut v = vec![
                Cell::from(connection_name(app, op.connection_id)),
                Cell::from(op.action.to_string()),
                Cell::from(r.subject.clone()),
                state_cell(app, op.state),
                Cell::from(op.attempts.to_string()),
                Cell::from(due),
            ];
            if wide {
                v.push(Cell::from(age(now, op.created_at)));
                v.push(Cell::from(op.last_error.clone().unwrap_or_default()));
            }
            Row::new(v)
        })
        .collect();
    let mut header = cells(&["Target", "Action", "Subject", "State", "Tries", "Due"]);
    let mut widths = vec![
        Constraint::Length(12),
        Constraint::Length(14),
        Constraint::Min(14),
        Constraint::Length(10),
        Constraint::Length(5),
        Constraint::Length(7),
    ];
    if wide {
        header.extend(cells(&["Age", "Last error"]));
        widths.extend([Constraint::Length(5), Constraint::Percentage(35)]);
    }
    let title = format!(
        "Queue · rows {}–{}{}",
        app.queue.offset + u64::from(!app.queue.rows.is_empty()),
        app.queue.offset + app.queue.rows.len() as u64,
        if app.queue.more { " of more" } else { "" }
    );
    (header, rows, widths, title)
}

fn failed(app: &App, area: Rect) -> PaneTable {
    let wide = wide(area);
    let now = app.now;
    let error = app.theme.style("error");
    let rows = app
        .failed
        .rows
        .iter()
        .map(|item| {
            let mut v = match item {
                FailedItem::Exception(e) => vec![
                    Cell::from(Span::styled(
                        e.kind.to_string(),
                        app.theme.style("degraded"),
                    )),
                    Cell::from(
                        e.connection_id
                            .map_or("-".into(), |c| connection_name(app, c)),
                    ),
                    Cell::from(e.subject.clone()),
                    Cell::from(e.summary.clone()),
                ],
                FailedItem::Operation(r) => vec![
                    Cell::from(Span::styled(
                        format!("{} failed", r.operation.action),
                        error,
                    )),
                    Cell::from(connection_name(app, r.operation.connection_id)),
                    Cell::from(r.subject.clone()),
                    Cell::from(format!(
                        "{}{}",
                        r.operation
                            .last_status
                            .map_or(String::new(), |s| format!("HTTP {s}: ")),
                        r.operation.last_error.clone().unwrap_or_default()
                    )),
                ],
            };
            if wide {
                let at = match item {
                    FailedItem::Exception(e) => e.created_at,
                    FailedItem::Operation(r) => r.operation.updated_at,
                };
                v.push(Cell::from(age(now, at)));
            }
            Row::new(v)
        })
        .collect();
    let mut header = cells(&["What", "Where", "Subject", "Why"]);
    let mut widths = vec![
        Constraint::Length(17),
        Constraint::Length(11),
        Constraint::Length(18),
        Constraint::Min(20),
    ];
    if wide {
        header.push(Cell::from("Age"));
        widths.push(Constraint::Length(5));
    }
    let exceptions = app
        .failed
        .rows
        .iter()
        .filter(|i| matches!(i, FailedItem::Exception(_)))
        .count();
    let title = format!(
        "Failed · {} exceptions, {}{} operations",
        exceptions,
        app.failed.rows.len() - exceptions,
        if app.failed.more { "+" } else { "" }
    );
    (header, rows, widths, title)
}

fn mappings(app: &App, _area: Rect) -> PaneTable {
    let rows = app
        .visible_mappings()
        .into_iter()
        .map(|m| {
            Row::new(vec![
                Cell::from(m.mapping.pattern.clone()),
                Cell::from(m.mapping.selector.to_string()),
                Cell::from(m.mapping.match_mode.to_string()),
                Cell::from(m.source.clone().unwrap_or_else(|| "any".into())),
                Cell::from(Span::styled(m.role.clone(), app.theme.style("key"))),
            ])
        })
        .collect();
    let header = cells(&["Group", "By", "Match", "Source", "Role"]);
    let widths = vec![
        Constraint::Min(18),
        Constraint::Length(12),
        Constraint::Length(6),
        Constraint::Length(12),
        Constraint::Min(14),
    ];
    let title = format!("Mappings · {} group → role rules", app.mappings.len());
    (header, rows, widths, title)
}

fn users(app: &App, area: Rect) -> PaneTable {
    let wide = wide(area);
    let rows = app
        .users
        .rows
        .iter()
        .map(|u| {
            let email = u
                .emails
                .0
                .iter()
                .find(|e| e.primary == Some(true))
                .or_else(|| u.emails.0.first())
                .map(|e| e.value.clone())
                .unwrap_or_default();
            let state = if u.active {
                Cell::from(Span::styled("active", app.theme.style("healthy")))
            } else {
                Cell::from(Span::styled(
                    u.lifecycle_state.to_string(),
                    app.theme.style("muted"),
                ))
            };
            let mut v = vec![
                Cell::from(u.user_name.clone()),
                Cell::from(u.display_name.clone().unwrap_or_default()),
                state,
            ];
            if wide {
                v.push(Cell::from(email));
                v.push(Cell::from(u.external_id.clone().unwrap_or_default()));
            }
            Row::new(v)
        })
        .collect();
    let mut header = cells(&["userName", "Name", "State"]);
    let mut widths = vec![
        Constraint::Min(24),
        Constraint::Min(16),
        Constraint::Length(12),
    ];
    if wide {
        header.extend(cells(&["Email", "externalId"]));
        widths.extend([Constraint::Min(24), Constraint::Length(24)]);
    }
    let title = format!(
        "Users · {}",
        app.users
            .total
            .map_or_else(|| "…".to_string(), |t| format!("{t} found"))
    );
    (header, rows, widths, title)
}

fn audit(app: &App, area: Rect) -> PaneTable {
    let wide = wide(area);
    let rows = app
        .audit
        .rows
        .iter()
        .map(|e| {
            let dt = e.occurred_at.as_datetime();
            let when = if wide {
                format!("{} {}", dt.date(), super::clock(e.occurred_at))
            } else {
                super::clock(e.occurred_at)
            };
            let mut v = vec![
                Cell::from(when),
                Cell::from(e.actor.clone()),
                Cell::from(e.action.clone()),
                Cell::from(format!("{} {}", e.subject_type, fit(&e.subject_id, 8))),
            ];
            if wide {
                v.push(Cell::from(e.details.0.to_string()));
            }
            Row::new(v)
        })
        .collect();
    let mut header = cells(&[
        if wide { "Time (UTC)" } else { "Time" },
        "Actor",
        "Action",
        "Subject",
    ]);
    let mut widths = vec![
        Constraint::Length(if wide { 19 } else { 8 }),
        Constraint::Length(12),
        Constraint::Min(18),
        Constraint::Length(22),
    ];
    if wide {
        header.push(Cell::from("Details"));
        widths.push(Constraint::Percentage(40));
    }
    (header, rows, widths, "Audit · newest first".into())
}
