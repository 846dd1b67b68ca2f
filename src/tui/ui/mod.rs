//! Drawing the workbench from its state: tabs, the current pane, the message line, the status
//! bar and any overlays. Drawing reads [`App`] only; it never waits on I/O.

mod overlays;
mod panes;

use super::keymap::Action;
use super::state::{App, Pane, Workers};
use crate::domain::Timestamp;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

/// Draws one frame. Also tells the state how many rows fit, for page up and down.
pub fn draw(frame: &mut Frame, app: &mut App) {
    let area = frame.area();
    let base = app.theme.style("base");
    frame.render_widget(Block::new().style(base), area);
    let [tabs, body, message, keys, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_tabs(frame, app, tabs);
    // Rows inside the pane's border, less its header row.
    app.visible_rows = usize::from(body.height.saturating_sub(3)).max(1);
    panes::draw(frame, app, body);
    draw_message(frame, app, message);
    draw_keys(frame, app, keys);
    draw_status(frame, app, status);
    // Overlays leave the message, keys and status lines in view.
    let above = Rect {
        height: area.height.saturating_sub(3),
        ..area
    };
    for overlay in &app.overlays {
        overlays::draw(frame, app, overlay, above);
    }
}

fn draw_tabs(frame: &mut Frame, app: &App, area: Rect) {
    let header = app.theme.style("header");
    let muted = app.theme.style("muted");
    let selected = app.theme.style("selected");
    let mut spans = vec![Span::styled(" scimdesk ", header), Span::raw(" ")];
    for (i, pane) in Pane::ALL.iter().enumerate() {
        let label = format!(" {} {} ", i + 1, pane.title());
        spans.push(if *pane == app.pane {
            Span::styled(label, selected)
        } else {
            Span::styled(label, muted)
        });
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_message(frame: &mut Frame, app: &App, area: Rect) {
    let Some(toast) = &app.toast else {
        return;
    };
    let style = if toast.error {
        app.theme.style("error")
    } else {
        Style::default()
    };
    frame.render_widget(
        Paragraph::new(Span::styled(toast.text.clone(), style)),
        area,
    );
}

/// The actions the status bar offers in each pane, in order.
fn pane_keys(pane: Pane) -> &'static [Action] {
    match pane {
        Pane::Connections => &[
            Action::Detail,
            Action::TogglePause,
            Action::SyncNow,
            Action::FullReconcile,
            Action::RetryAll,
            Action::Filter,
        ],
        Pane::Queue => &[
            Action::Detail,
            Action::Retry,
            Action::Skip,
            Action::RetryAll,
            Action::Filter,
        ],
        Pane::Failed => &[
            Action::Detail,
            Action::Retry,
            Action::Remap,
            Action::Skip,
            Action::RetryAll,
            Action::Filter,
        ],
        Pane::Mappings => &[Action::Add, Action::Edit, Action::Delete, Action::Filter],
        Pane::Users => &[Action::Filter, Action::Detail],
        Pane::Audit => &[Action::Filter, Action::Detail],
    }
}

fn short_name(action: Action) -> &'static str {
    match action {
        Action::Detail => "open",
        Action::TogglePause => "pause",
        Action::SyncNow => "sync",
        Action::FullReconcile => "reconcile",
        Action::RetryAll => "retry all",
        Action::Retry => "retry",
        Action::Skip => "skip",
        Action::Remap => "re-map",
        Action::Filter => "filter",
        Action::Add => "add",
        Action::Edit => "edit",
        Action::Delete => "delete",
        _ => "",
    }
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect) {
    let bar = app.theme.style("status_bar");
    let org = app
        .organization
        .as_ref()
        .map_or("no organization", |o| o.name.as_str());
    let workers = match app.workers {
        Workers::Running => "workers on",
        Workers::Off => "watching",
    };
    let refreshed = app
        .refreshed_at
        .map_or_else(|| "loading…".to_string(), |t| format!("⟳ {}", clock(t)));
    let line = Line::from(Span::styled(
        format!(" {} │ {workers} │ {org} │ {refreshed}", app.store_label),
        bar,
    ));
    frame.render_widget(Paragraph::new(line).style(bar), area);
}

/// The keys that work here, from the keymap (so a rebound key shows as bound).
fn draw_keys(frame: &mut Frame, app: &App, area: Rect) {
    let key = app.theme.style("key");
    let muted = app.theme.style("muted");
    let mut spans = Vec::new();
    let keys: Vec<Action> = if app.overlays.is_empty() {
        let mut k = pane_keys(app.pane).to_vec();
        k.extend([Action::SwitchOrganization, Action::Help, Action::Quit]);
        k
    } else {
        vec![Action::Back, Action::Help]
    };
    for action in keys {
        let label = match action {
            Action::SwitchOrganization => "org",
            Action::Help => "help",
            Action::Quit => "quit",
            Action::Back => "back",
            other => short_name(other),
        };
        spans.push(Span::styled(format!(" {}", app.key_name(action)), key));
        spans.push(Span::styled(format!(" {label} "), muted));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// `HH:MM:SS` (UTC).
pub fn clock(t: Timestamp) -> String {
    let dt = t.as_datetime();
    format!("{:02}:{:02}:{:02}", dt.hour(), dt.minute(), dt.second())
}

/// How long ago `t` was, short: `4s`, `12m`, `3h`, `2d`.
pub fn age(now: Timestamp, t: Timestamp) -> String {
    let secs = now.since(t).as_secs();
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// A duration in seconds, short.
pub fn seconds(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// A row of sparkline bars for `values`, scaled to their maximum.
pub fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|v| {
            if *v == 0 || max == 0 {
                ' '
            } else {
                let i = (v * 7).div_ceil(max) as usize;
                BARS[i.min(7)]
            }
        })
        .collect()
}

/// `text` cut to `width` characters, with `…` when cut.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}
