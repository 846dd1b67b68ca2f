//! The workbench's state and what a key press does to it. [`App::on_key`] changes the state
//! and returns the [`Effect`]s to carry out (reads and engine commands), which the runner
//! performs off the render path; their results come back through [`App::on_loaded`],
//! [`App::on_detail`] and [`App::on_reply`]. Nothing here does I/O, so every key's effect
//! can be unit-tested.
//!
//! The state is cut by concern: [`effects`] is what the state asks the runner for,
//! [`overlays`] what is drawn over a pane and its keys, [`editor`] the mapping editor,
//! [`selection`] which row is selected and what is visible, [`actions`] what a pane's keys do.

mod actions;
mod editor;
mod effects;
mod overlays;
mod selection;

pub use editor::{EDITOR_FIELDS, Editor};
pub use effects::{Command, DetailRequest, Effect, LoadRequest, Reply};
use overlays::detail_subject;
pub use overlays::{Confirm, Overlay, PromptPurpose};
pub use selection::PaneState;

use super::data::*;
use super::keymap::{Action, Keymap};
use super::theme::Theme;
use crate::domain::*;
use crate::policy::impact::Guard;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use uuid::Uuid;

/// The six panes, in key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pane {
    /// Connections and their health.
    Connections,
    /// Unfinished operations.
    Queue,
    /// Failed operations and exceptions.
    Failed,
    /// The group→role mappings.
    Mappings,
    /// Users.
    Users,
    /// The audit log.
    Audit,
}

impl Pane {
    /// All panes, in order.
    pub const ALL: [Pane; 6] = [
        Pane::Connections,
        Pane::Queue,
        Pane::Failed,
        Pane::Mappings,
        Pane::Users,
        Pane::Audit,
    ];

    /// Its title.
    pub fn title(&self) -> &'static str {
        match self {
            Pane::Connections => "Connections",
            Pane::Queue => "Queue",
            Pane::Failed => "Failed",
            Pane::Mappings => "Mappings",
            Pane::Users => "Users",
            Pane::Audit => "Audit",
        }
    }

    /// Its position, 0-based.
    pub fn index(&self) -> usize {
        Pane::ALL.iter().position(|p| p == self).unwrap_or(0)
    }

    /// What `/` filters by here, for the prompt.
    pub fn filter_hint(&self) -> &'static str {
        match self {
            Pane::Connections => "name contains…",
            Pane::Queue => "conn:NAME state:pending|in_flight|retry_wait action:create user:NAME",
            Pane::Failed => "conn:NAME kind:unmapped_group|conflict|unknown_at_target or text",
            Pane::Mappings => "group or role contains…",
            Pane::Users => "userName, email or externalId",
            Pane::Audit => "actor:NAME action:PREFIX subject:ID since:TIME until:TIME",
        }
    }
}

/// Whether this process delivers or only watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// The embedded sync workers run.
    Running,
    /// `--no-workers`: other processes deliver.
    Off,
}

/// A message for the operator under the pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toast {
    /// The text.
    pub text: String,
    /// Whether it reports a failure.
    pub error: bool,
}

/// Rows per load: enough for the tallest terminal, with room to scroll before re-reading.
pub const PAGE: u32 = 200;

/// The whole state of the workbench.
pub struct App {
    /// The keys.
    pub keymap: Keymap,
    /// The look.
    pub theme: Theme,
    /// The store, as shown in the status bar (password redacted).
    pub store_label: String,
    /// Whether this process delivers.
    pub workers: Workers,
    /// The operator, as the audit log records them.
    pub operator: String,
    /// The mass-removal guard.
    pub guard: Guard,
    /// Every organization.
    pub organizations: Vec<OrgRef>,
    /// The current organization.
    pub organization: Option<OrgRef>,
    /// The current pane.
    pub pane: Pane,
    /// The organization's connections.
    pub connections: Vec<ConnectionRow>,
    /// Queue rows.
    pub queue: Page<OperationRow>,
    /// Failed rows.
    pub failed: Page<FailedItem>,
    /// Mapping rows.
    pub mappings: Vec<MappingRow>,
    /// Roles.
    pub roles: Vec<Role>,
    /// User rows.
    pub users: Page<User>,
    /// Audit rows.
    pub audit: Page<AuditEvent>,
    /// Per-pane positions, by [`Pane::index`].
    pub panes: [PaneState; 6],
    /// Overlays, bottom first.
    pub overlays: Vec<Overlay>,
    /// The message line.
    pub toast: Option<Toast>,
    /// When the rows were last read.
    pub refreshed_at: Option<Timestamp>,
    /// The clock the view shows ages against (fixed in tests).
    pub now: Timestamp,
    /// Rows visible in the pane body (set by the renderer), for page up and down.
    pub visible_rows: usize,
    /// Each pane's first row on screen (kept by the renderer, so scrolling is steady).
    pub table_offsets: [usize; 6],
    /// Set once the operator quits.
    pub quitting: bool,
}

impl App {
    /// A workbench with nothing loaded yet.
    pub fn new(keymap: Keymap, theme: Theme, store_label: String, workers: Workers) -> Self {
        Self {
            keymap,
            theme,
            store_label,
            workers,
            operator: String::new(),
            guard: Guard::default(),
            organizations: Vec::new(),
            organization: None,
            pane: Pane::Connections,
            connections: Vec::new(),
            queue: Page::default(),
            failed: Page::default(),
            mappings: Vec::new(),
            roles: Vec::new(),
            users: Page::default(),
            audit: Page::default(),
            panes: Default::default(),
            overlays: Vec::new(),
            toast: None,
            refreshed_at: None,
            now: Timestamp::now(),
            visible_rows: 10,
            table_offsets: [0; 6],
            quitting: false,
        }
    }

    /// The read that shows the current pane.
    pub fn load_request(&self) -> LoadRequest {
        let p = &self.panes[self.pane.index()];
        LoadRequest {
            organization: self.organization.as_ref().map(|o| o.id),
            pane: self.pane,
            filter: p.filter.clone(),
            offset: p.offset,
            limit: PAGE,
        }
    }

    fn reload(&self) -> Vec<Effect> {
        vec![Effect::Load(self.load_request())]
    }

    fn say(&mut self, text: impl Into<String>) {
        self.toast = Some(Toast {
            text: text.into(),
            error: false,
        });
    }

    fn warn(&mut self, text: impl Into<String>) {
        self.toast = Some(Toast {
            text: text.into(),
            error: true,
        });
    }

    /// Takes in freshly read rows, keeping the selection on the same item.
    pub fn on_loaded(&mut self, loaded: Loaded) {
        self.organizations = loaded.organizations;
        if let (Some(want), Some(got)) = (&self.organization, &loaded.organization)
            && want.id != got.id
        {
            // A load for another organization finished after a switch: drop it.
            return;
        }
        self.organization = loaded.organization;
        self.connections = loaded.connections;
        self.roles = loaded.roles;
        let pane = match loaded.body {
            PaneData::Connections => Pane::Connections,
            PaneData::Queue(p) => {
                self.queue = p;
                Pane::Queue
            }
            PaneData::Failed(p) => {
                self.failed = p;
                Pane::Failed
            }
            PaneData::Mappings(rows) => {
                self.mappings = rows;
                Pane::Mappings
            }
            PaneData::Users(p) => {
                self.users = p;
                Pane::Users
            }
            PaneData::Audit(p) => {
                self.audit = p;
                Pane::Audit
            }
        };
        self.refreshed_at = Some(loaded.at);
        self.now = loaded.at;
        // The Connections rows come with every load.
        self.reselect(Pane::Connections);
        if pane != Pane::Connections {
            self.reselect(pane);
        }
    }

    /// Shows a detail that was read: in place of its "reading…" box, or over the same item's
    /// open detail (re-read after a command), keeping the scroll position. A detail the
    /// operator no longer waits for is dropped.
    pub fn on_detail(&mut self, detail: Detail) {
        let subject = detail_subject(&detail);
        match self.overlays.last_mut() {
            Some(Overlay::Loading(_)) => {
                self.overlays.pop();
                self.overlays.push(Overlay::Detail {
                    detail: Box::new(detail),
                    scroll: 0,
                });
            }
            Some(Overlay::Detail { detail: open, .. }) if detail_subject(open) == subject => {
                **open = detail;
            }
            _ => {}
        }
    }

    /// Takes in a command's outcome; returns what to read next.
    pub fn on_reply(&mut self, reply: Reply) -> Vec<Effect> {
        match reply {
            Reply::Done(text) => {
                self.say(text);
                // A finished mapping change closes its editor and preview.
                self.overlays
                    .retain(|o| !matches!(o, Overlay::Editor(_) | Overlay::Impact { .. }));
                let mut effects = self.reload();
                if let Some(req) = self.open_detail_request() {
                    effects.push(Effect::Detail(req));
                }
                effects
            }
            Reply::Failed(text) => {
                if matches!(self.overlays.last(), Some(Overlay::Loading(_))) {
                    self.overlays.pop();
                }
                if let Some(Overlay::Editor(ed)) = self.overlays.last_mut() {
                    ed.error = Some(text.clone());
                }
                self.warn(text);
                Vec::new()
            }
            Reply::Impact(view) => {
                self.overlays.push(Overlay::Impact { view, scroll: 0 });
                Vec::new()
            }
            Reply::Edit(form) => {
                self.open_editor(*form);
                Vec::new()
            }
        }
    }

    /// What the open detail shows, to read it again after a command.
    fn open_detail_request(&self) -> Option<DetailRequest> {
        match self.overlays.last() {
            Some(Overlay::Detail { detail, .. }) => match detail.as_ref() {
                Detail::Connection { row, .. } => {
                    Some(DetailRequest::Connection(row.connection.id))
                }
                Detail::Operation { row, .. } => Some(DetailRequest::Operation(row.operation.id)),
                Detail::Exception(e) => Some(DetailRequest::Exception(e.id)),
                Detail::User(u) => Some(DetailRequest::User(u.user.id)),
                Detail::Audit(_) => None,
            },
            _ => None,
        }
    }

    /// What a key press does.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.kind != ratatui::crossterm::event::KeyEventKind::Press {
            return Vec::new();
        }
        // Ctrl-C always quits, whatever is open.
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            self.quitting = true;
            return vec![Effect::Quit];
        }
        match self.overlays.pop() {
            None => self.on_pane_key(key),
            Some(overlay) => self.on_overlay_key(overlay, key),
        }
    }
}
