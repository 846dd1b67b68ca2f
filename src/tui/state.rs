//! The workbench's state and what a key press does to it. [`App::on_key`] changes the state
//! and returns the [`Effect`]s to carry out (reads and engine commands), which the runner
//! performs off the render path; their results come back through [`App::on_loaded`],
//! [`App::on_detail`] and [`App::on_reply`]. Nothing here does I/O, so every key's effect
//! can be unit-tested.

use super::data::*;
use super::keymap::{Action, Keymap};
use super::theme::Theme;
use crate::domain::*;
use crate::policy::impact::Guard;
use crate::store::OperationFilter;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui_textarea::TextArea;
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

/// Something to read for the current pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadRequest {
    /// The organization (`None`: the first one).
    pub organization: Option<OrganizationId>,
    /// The pane.
    pub pane: Pane,
    /// Its filter text.
    pub filter: String,
    /// The first row wanted.
    pub offset: u64,
    /// How many rows.
    pub limit: u32,
}

/// Something to open in detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetailRequest {
    /// A connection.
    Connection(ConnectionId),
    /// An operation.
    Operation(OperationId),
    /// An exception.
    Exception(ExceptionId),
    /// A user.
    User(UserId),
}

/// An engine command (or a read that prepares one), carried out by the runner.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Retry one operation.
    Retry(OperationId),
    /// Retry every operation matching the filter.
    RetryAll(OperationFilter),
    /// Skip one operation.
    Skip(OperationId, String),
    /// Dismiss an exception.
    Dismiss(ExceptionId, String),
    /// Pause a connection.
    Pause(ConnectionId, String),
    /// Resume a connection.
    Resume(ConnectionId),
    /// Send what waits now.
    SyncNow(ConnectionId),
    /// Reconcile in full.
    Reconcile(ConnectionId),
    /// Open the editor prefilled for a failed operation's user (reads their groups).
    RemapOperation(OperationId),
    /// Compute the impact of a mapping change.
    Preview(MappingForm),
    /// Make a mapping change (`force` past the guard).
    Apply(MappingForm, bool),
}

/// What a key asks the runner to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Read the current pane again.
    Load(LoadRequest),
    /// Read something to show in detail.
    Detail(DetailRequest),
    /// Run a command.
    Run(Command),
    /// Leave.
    Quit,
}

/// What a command answers: how it ended (for the message line), or the next view it opens.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// It worked; what happened.
    Done(String),
    /// It did not; why.
    Failed(String),
    /// A mapping change's impact, to confirm.
    Impact(Box<ImpactView>),
    /// A form to edit (from [`Command::RemapOperation`]).
    Edit(Box<MappingForm>),
}

/// What a one-line prompt is for.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptPurpose {
    /// The current pane's filter.
    Filter,
    /// Why an operation is skipped.
    Skip(OperationId),
    /// Why an exception is dismissed.
    Dismiss(ExceptionId),
}

/// A yes/no question.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    /// The question.
    pub question: String,
    /// What yes runs.
    pub then: Command,
}

/// The mapping editor: a form whose text fields are `ratatui-textarea` editors.
#[derive(Debug, Clone)]
pub struct Editor {
    /// The change being edited (its text fields are read from the editors on save).
    pub form: MappingForm,
    /// The group pattern.
    pub pattern: TextArea<'static>,
    /// The role name.
    pub role: TextArea<'static>,
    /// Which field has the cursor: 0 pattern, 1 role, 2 match by, 3 glob, 4 source.
    pub focus: usize,
    /// Sources the mapping may be limited to (id, name).
    pub sources: Vec<(ConnectionId, String)>,
    /// Roles that exist, as a hint.
    pub roles: Vec<String>,
    /// Why the last save was refused.
    pub error: Option<String>,
}

/// What a detail is about, to match a re-read with the open view.
fn detail_subject(d: &Detail) -> Uuid {
    match d {
        Detail::Connection { row, .. } => row.connection.id.0,
        Detail::Operation { row, .. } => row.operation.id.0,
        Detail::Exception(e) => e.id.0,
        Detail::User(u) => u.user.id.0,
        Detail::Audit(e) => e.id.0,
    }
}

/// Fields of the editor.
pub const EDITOR_FIELDS: usize = 5;

fn text_field(text: &str) -> TextArea<'static> {
    let mut t = TextArea::new(vec![text.to_string()]);
    t.move_cursor(ratatui_textarea::CursorMove::End);
    t
}

fn field_text(t: &TextArea<'_>) -> String {
    t.lines().join(" ").trim().to_string()
}

impl Editor {
    /// An editor on `form`.
    pub fn new(
        form: MappingForm,
        sources: Vec<(ConnectionId, String)>,
        roles: Vec<String>,
    ) -> Self {
        Self {
            pattern: text_field(&form.pattern),
            role: text_field(&form.role),
            focus: if form.pattern.is_empty() { 0 } else { 1 },
            form,
            sources,
            roles,
            error: None,
        }
    }

    /// The form with the editors' text.
    pub fn current(&self) -> MappingForm {
        let mut f = self.form.clone();
        f.pattern = field_text(&self.pattern);
        f.role = field_text(&self.role);
        f
    }

    fn cycle(&mut self, forward: bool) {
        match self.focus {
            2 => {
                let all = [
                    GroupSelector::DisplayName,
                    GroupSelector::Id,
                    GroupSelector::Path,
                ];
                let i = all
                    .iter()
                    .position(|s| *s == self.form.selector)
                    .unwrap_or(0);
                let n = if forward { i + 1 } else { i + all.len() - 1 };
                self.form.selector = all[n % all.len()];
            }
            3 => self.form.glob = !self.form.glob,
            4 => {
                // None, then each source.
                let i = match self.form.source {
                    None => 0,
                    Some(id) => 1 + self.sources.iter().position(|s| s.0 == id).unwrap_or(0),
                };
                let len = self.sources.len() + 1;
                let n = if forward { i + 1 } else { i + len - 1 } % len;
                self.form.source = if n == 0 {
                    None
                } else {
                    Some(self.sources[n - 1].0)
                };
            }
            _ => {}
        }
    }
}

/// Something drawn over the pane; they stack (`esc` closes the top one).
#[derive(Debug, Clone)]
pub enum Overlay {
    /// The key help.
    Help,
    /// A detail view, scrolled by `scroll` lines.
    Detail {
        /// What is shown.
        detail: Box<Detail>,
        /// Lines scrolled.
        scroll: u16,
    },
    /// A detail being read.
    Loading(DetailRequest),
    /// A one-line prompt.
    Prompt {
        /// What it is for.
        purpose: PromptPurpose,
        /// The text.
        input: Box<TextArea<'static>>,
    },
    /// A yes/no question.
    Confirm(Confirm),
    /// The organization switcher.
    Organizations {
        /// The highlighted row.
        selected: usize,
    },
    /// The mapping editor.
    Editor(Box<Editor>),
    /// An impact preview waiting for yes or no.
    Impact {
        /// The preview.
        view: Box<ImpactView>,
        /// Lines scrolled.
        scroll: u16,
    },
}

/// Per-pane position: the selected row and its key, the first row loaded, and the filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PaneState {
    /// Selected row within the loaded rows.
    pub selected: usize,
    /// The selected row's key, so the selection follows the row when rows move.
    pub key: Option<Uuid>,
    /// The first row to load.
    pub offset: u64,
    /// The filter text.
    pub filter: String,
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

    /// The current pane's position.
    pub fn pane_state(&self) -> &PaneState {
        &self.panes[self.pane.index()]
    }

    /// Rows of the current pane after its client-side filter (Connections and Mappings filter
    /// in memory: they are small; the others filter in the query).
    pub fn visible_connections(&self) -> Vec<&ConnectionRow> {
        let f = self.panes[Pane::Connections.index()].filter.to_lowercase();
        self.connections
            .iter()
            .filter(|c| f.is_empty() || c.connection.name.to_lowercase().contains(&f))
            .collect()
    }

    /// Mapping rows after the filter.
    pub fn visible_mappings(&self) -> Vec<&MappingRow> {
        let f = self.panes[Pane::Mappings.index()].filter.to_lowercase();
        self.mappings
            .iter()
            .filter(|m| {
                f.is_empty()
                    || m.mapping.pattern.to_lowercase().contains(&f)
                    || m.role.to_lowercase().contains(&f)
            })
            .collect()
    }

    /// How many rows the current pane has loaded (after in-memory filters).
    pub fn row_count(&self) -> usize {
        self.rows_in(self.pane)
    }

    /// How many rows a pane has loaded (after in-memory filters).
    fn rows_in(&self, pane: Pane) -> usize {
        match pane {
            Pane::Connections => self.visible_connections().len(),
            Pane::Queue => self.queue.rows.len(),
            Pane::Failed => self.failed.rows.len(),
            Pane::Mappings => self.visible_mappings().len(),
            Pane::Users => self.users.rows.len(),
            Pane::Audit => self.audit.rows.len(),
        }
    }

    fn row_key(&self, pane: Pane, i: usize) -> Option<Uuid> {
        match pane {
            Pane::Connections => self.visible_connections().get(i).map(|c| c.connection.id.0),
            Pane::Queue => self.queue.rows.get(i).map(|r| r.operation.id.0),
            Pane::Failed => self.failed.rows.get(i).map(FailedItem::key),
            Pane::Mappings => self.visible_mappings().get(i).map(|m| m.mapping.id.0),
            Pane::Users => self.users.rows.get(i).map(|u| u.id.0),
            Pane::Audit => self.audit.rows.get(i).map(|e| e.id.0),
        }
    }

    fn index_of_key(&self, pane: Pane, key: Uuid) -> Option<usize> {
        (0..self.rows_in(pane)).find(|i| self.row_key(pane, *i) == Some(key))
    }

    /// The selected connection: the row in Connections, else the connection of the selected
    /// operation or exception.
    pub fn selected_connection(&self) -> Option<&ConnectionRow> {
        let sel = self.pane_state().selected;
        let id = match self.pane {
            Pane::Connections => return self.visible_connections().get(sel).copied(),
            Pane::Queue => self.queue.rows.get(sel).map(|r| r.operation.connection_id),
            Pane::Failed => match self.failed.rows.get(sel) {
                Some(FailedItem::Operation(r)) => Some(r.operation.connection_id),
                Some(FailedItem::Exception(e)) => e.connection_id,
                None => None,
            },
            _ => None,
        }?;
        self.connections.iter().find(|c| c.connection.id == id)
    }

    /// The selected operation, in a detail or in the Queue or Failed pane.
    pub fn selected_operation(&self) -> Option<&OperationRow> {
        if let Some(Overlay::Detail { detail, .. }) = self.overlays.last() {
            return match detail.as_ref() {
                Detail::Operation { row, .. } => Some(row),
                _ => None,
            };
        }
        let sel = self.pane_state().selected;
        match self.pane {
            Pane::Queue => self.queue.rows.get(sel),
            Pane::Failed => match self.failed.rows.get(sel) {
                Some(FailedItem::Operation(r)) => Some(r),
                _ => None,
            },
            _ => None,
        }
    }

    /// The selected exception, in a detail or in the Failed pane.
    pub fn selected_exception(&self) -> Option<&PolicyException> {
        if let Some(Overlay::Detail { detail, .. }) = self.overlays.last() {
            return match detail.as_ref() {
                Detail::Exception(e) => Some(e),
                _ => None,
            };
        }
        match (self.pane, self.failed.rows.get(self.pane_state().selected)) {
            (Pane::Failed, Some(FailedItem::Exception(e))) => Some(e),
            _ => None,
        }
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

    // ---- results coming back ------------------------------------------------------------

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

    fn reselect(&mut self, pane: Pane) {
        let i = pane.index();
        let count = self.rows_in(pane);
        let found = self.panes[i].key.and_then(|k| self.index_of_key(pane, k));
        let selected = found.unwrap_or(self.panes[i].selected.min(count.saturating_sub(1)));
        self.panes[i].selected = selected;
        self.panes[i].key = self.row_key(pane, selected);
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

    // ---- keys ---------------------------------------------------------------------------

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

    fn on_overlay_key(&mut self, overlay: Overlay, key: KeyEvent) -> Vec<Effect> {
        let action = self.keymap.action(&key);
        match overlay {
            Overlay::Help => Vec::new(),
            Overlay::Loading(req) => {
                if action != Some(Action::Back) {
                    self.overlays.push(Overlay::Loading(req));
                }
                Vec::new()
            }
            Overlay::Prompt { purpose, mut input } => match key.code {
                KeyCode::Esc => Vec::new(),
                KeyCode::Enter => self.submit_prompt(purpose, field_text(&input)),
                _ => {
                    input.input(key);
                    self.overlays.push(Overlay::Prompt { purpose, input });
                    Vec::new()
                }
            },
            Overlay::Confirm(c) => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    self.say("working…");
                    vec![Effect::Run(c.then)]
                }
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                    self.say("cancelled");
                    Vec::new()
                }
                _ => {
                    self.overlays.push(Overlay::Confirm(c));
                    Vec::new()
                }
            },
            Overlay::Organizations { mut selected } => match (key.code, action) {
                (KeyCode::Esc, _) => Vec::new(),
                (KeyCode::Enter, _) => match self.organizations.get(selected).cloned() {
                    Some(org) => {
                        let changed = self.organization.as_ref().map(|o| o.id) != Some(org.id);
                        self.organization = Some(org);
                        if changed {
                            self.panes = Default::default();
                            self.queue = Page::default();
                            self.failed = Page::default();
                            self.mappings.clear();
                            self.users = Page::default();
                            self.audit = Page::default();
                            self.connections.clear();
                        }
                        self.reload()
                    }
                    None => Vec::new(),
                },
                (_, Some(Action::Up)) => {
                    selected = selected.saturating_sub(1);
                    self.overlays.push(Overlay::Organizations { selected });
                    Vec::new()
                }
                (_, Some(Action::Down)) => {
                    selected = (selected + 1).min(self.organizations.len().saturating_sub(1));
                    self.overlays.push(Overlay::Organizations { selected });
                    Vec::new()
                }
                _ => {
                    self.overlays.push(Overlay::Organizations { selected });
                    Vec::new()
                }
            },
            Overlay::Editor(ed) => self.on_editor_key(*ed, key),
            Overlay::Impact { view, mut scroll } => match (key.code, action) {
                (KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter, _) => {
                    if let Some(refusal) = &view.guard_refusal {
                        // The guard asks once more, naming what it guards against.
                        let question = format!("{refusal} Apply anyway?");
                        let then = Command::Apply(view.form.clone(), true);
                        self.overlays.push(Overlay::Impact { view, scroll });
                        self.overlays
                            .push(Overlay::Confirm(Confirm { question, then }));
                        Vec::new()
                    } else {
                        let then = Command::Apply(view.form.clone(), false);
                        self.overlays.push(Overlay::Impact { view, scroll });
                        self.say("applying…");
                        vec![Effect::Run(then)]
                    }
                }
                (KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc, _) => {
                    self.say("not applied");
                    Vec::new()
                }
                (_, Some(Action::Down)) => {
                    scroll = scroll.saturating_add(1);
                    self.overlays.push(Overlay::Impact { view, scroll });
                    Vec::new()
                }
                (_, Some(Action::Up)) => {
                    scroll = scroll.saturating_sub(1);
                    self.overlays.push(Overlay::Impact { view, scroll });
                    Vec::new()
                }
                _ => {
                    self.overlays.push(Overlay::Impact { view, scroll });
                    Vec::new()
                }
            },
            Overlay::Detail { detail, mut scroll } => match action {
                Some(Action::Back) => Vec::new(),
                Some(Action::Down) => {
                    scroll = scroll.saturating_add(1);
                    self.overlays.push(Overlay::Detail { detail, scroll });
                    Vec::new()
                }
                Some(Action::Up) => {
                    scroll = scroll.saturating_sub(1);
                    self.overlays.push(Overlay::Detail { detail, scroll });
                    Vec::new()
                }
                Some(Action::PageDown) => {
                    scroll = scroll.saturating_add(10);
                    self.overlays.push(Overlay::Detail { detail, scroll });
                    Vec::new()
                }
                Some(Action::PageUp) => {
                    scroll = scroll.saturating_sub(10);
                    self.overlays.push(Overlay::Detail { detail, scroll });
                    Vec::new()
                }
                Some(a @ (Action::Retry | Action::Skip | Action::Remap | Action::Quit)) => {
                    self.overlays.push(Overlay::Detail { detail, scroll });
                    if a == Action::Quit {
                        self.quitting = true;
                        return vec![Effect::Quit];
                    }
                    self.on_item_action(a)
                }
                Some(Action::Help) => {
                    self.overlays.push(Overlay::Detail { detail, scroll });
                    self.overlays.push(Overlay::Help);
                    Vec::new()
                }
                _ => {
                    self.overlays.push(Overlay::Detail { detail, scroll });
                    Vec::new()
                }
            },
        }
    }

    fn on_editor_key(&mut self, mut ed: Editor, key: KeyEvent) -> Vec<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => {
                self.say("mapping not changed");
                return Vec::new();
            }
            KeyCode::Enter => return self.save_editor(ed),
            KeyCode::Char('s') if ctrl => return self.save_editor(ed),
            KeyCode::Tab | KeyCode::Down => ed.focus = (ed.focus + 1) % EDITOR_FIELDS,
            KeyCode::BackTab | KeyCode::Up => {
                ed.focus = (ed.focus + EDITOR_FIELDS - 1) % EDITOR_FIELDS
            }
            _ => match ed.focus {
                0 => {
                    ed.pattern.input(key);
                }
                1 => {
                    ed.role.input(key);
                }
                _ => match key.code {
                    KeyCode::Left => ed.cycle(false),
                    KeyCode::Right | KeyCode::Char(' ') => ed.cycle(true),
                    _ => {}
                },
            },
        }
        self.overlays.push(Overlay::Editor(Box::new(ed)));
        Vec::new()
    }

    fn save_editor(&mut self, mut ed: Editor) -> Vec<Effect> {
        let form = ed.current();
        if !form.remove && (form.pattern.is_empty() || form.role.is_empty()) {
            ed.error = Some("a mapping needs a group pattern and a role".into());
            self.overlays.push(Overlay::Editor(Box::new(ed)));
            return Vec::new();
        }
        ed.error = None;
        self.overlays.push(Overlay::Editor(Box::new(ed)));
        self.say("computing the impact…");
        vec![Effect::Run(Command::Preview(form))]
    }

    fn submit_prompt(&mut self, purpose: PromptPurpose, text: String) -> Vec<Effect> {
        match purpose {
            PromptPurpose::Filter => {
                let i = self.pane.index();
                self.panes[i].filter = text;
                self.panes[i].offset = 0;
                self.panes[i].selected = 0;
                self.panes[i].key = None;
                self.reload()
            }
            _ if text.is_empty() => {
                self.warn("a reason is required; nothing was changed");
                Vec::new()
            }
            PromptPurpose::Skip(id) => vec![Effect::Run(Command::Skip(id, text))],
            PromptPurpose::Dismiss(id) => vec![Effect::Run(Command::Dismiss(id, text))],
        }
    }

    fn prompt(&mut self, purpose: PromptPurpose, initial: &str, placeholder: &str) {
        let mut input = Box::new(text_field(initial));
        input.set_placeholder_text(placeholder.to_string());
        self.overlays.push(Overlay::Prompt { purpose, input });
    }

    fn on_pane_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(action) = self.keymap.action(&key) else {
            return Vec::new();
        };
        match action {
            Action::Quit => {
                self.quitting = true;
                vec![Effect::Quit]
            }
            Action::Help => {
                self.overlays.push(Overlay::Help);
                Vec::new()
            }
            Action::NextPane => self.switch((self.pane.index() + 1) % Pane::ALL.len()),
            Action::PreviousPane => {
                self.switch((self.pane.index() + Pane::ALL.len() - 1) % Pane::ALL.len())
            }
            Action::Pane(n) => self.switch(usize::from(n).saturating_sub(1)),
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::PageUp => self.move_selection(-(self.visible_rows.max(1) as i64)),
            Action::PageDown => self.move_selection(self.visible_rows.max(1) as i64),
            Action::Refresh => self.reload(),
            Action::Back => {
                self.toast = None;
                Vec::new()
            }
            Action::SwitchOrganization => {
                let selected = self
                    .organization
                    .as_ref()
                    .and_then(|o| self.organizations.iter().position(|x| x.id == o.id))
                    .unwrap_or(0);
                self.overlays.push(Overlay::Organizations { selected });
                Vec::new()
            }
            Action::Filter => {
                let current = self.pane_state().filter.clone();
                self.prompt(PromptPurpose::Filter, &current, self.pane.filter_hint());
                Vec::new()
            }
            Action::Detail if self.pane == Pane::Audit => {
                match self.audit.rows.get(self.pane_state().selected) {
                    Some(e) => {
                        let detail = Box::new(Detail::Audit(e.clone()));
                        self.overlays.push(Overlay::Detail { detail, scroll: 0 });
                    }
                    None => self.warn("nothing selected"),
                }
                Vec::new()
            }
            Action::Detail => match self.detail_request() {
                Some(req) => {
                    self.overlays.push(Overlay::Loading(req.clone()));
                    vec![Effect::Detail(req)]
                }
                None => {
                    if self.pane == Pane::Mappings {
                        return self.on_pane_action(Action::Edit);
                    }
                    self.warn("nothing selected");
                    Vec::new()
                }
            },
            other => self.on_pane_action(other),
        }
    }

    fn on_pane_action(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Retry | Action::Skip | Action::Remap => self.on_item_action(action),
            Action::RetryAll => self.retry_all(),
            Action::TogglePause => match self.selected_connection() {
                Some(c) if c.connection.kind.is_source() => {
                    self.warn("sources are not paused here; the engine only sends to targets");
                    Vec::new()
                }
                Some(c) => {
                    let id = c.connection.id;
                    if c.connection.state == ConnectionState::Paused {
                        self.say(format!("resuming {}…", c.connection.name));
                        vec![Effect::Run(Command::Resume(id))]
                    } else {
                        let reason = format!("paused by {} from the workbench", self.operator);
                        self.say(format!("pausing {}…", c.connection.name));
                        vec![Effect::Run(Command::Pause(id, reason))]
                    }
                }
                None => self.no_connection(),
            },
            Action::SyncNow => match self.selected_connection() {
                Some(c) if !c.connection.kind.is_source() => {
                    let id = c.connection.id;
                    vec![Effect::Run(Command::SyncNow(id))]
                }
                _ => self.no_connection(),
            },
            Action::FullReconcile => match self.selected_connection() {
                Some(c) if !c.connection.kind.is_source() => {
                    let question = format!(
                        "Reconcile {} in full now? It reads every resource there and queues the repairs.",
                        c.connection.name
                    );
                    let then = Command::Reconcile(c.connection.id);
                    self.overlays
                        .push(Overlay::Confirm(Confirm { question, then }));
                    Vec::new()
                }
                _ => self.no_connection(),
            },
            Action::Add if self.pane == Pane::Mappings => {
                self.open_editor(MappingForm {
                    id: None,
                    remove: false,
                    pattern: String::new(),
                    role: String::new(),
                    selector: GroupSelector::DisplayName,
                    glob: false,
                    source: None,
                    from_exception: None,
                });
                Vec::new()
            }
            Action::Edit | Action::Delete if self.pane == Pane::Mappings => {
                let sel = self.pane_state().selected;
                let Some(row) = self.visible_mappings().get(sel).map(|r| (*r).clone()) else {
                    self.warn("no mapping selected");
                    return Vec::new();
                };
                let form = MappingForm {
                    id: Some(row.mapping.id),
                    remove: action == Action::Delete,
                    pattern: row.mapping.pattern.clone(),
                    role: row.role.clone(),
                    selector: row.mapping.selector,
                    glob: row.mapping.match_mode == MatchMode::Glob,
                    source: row.mapping.source_connection_id,
                    from_exception: None,
                };
                if action == Action::Delete {
                    self.say("computing the impact…");
                    vec![Effect::Run(Command::Preview(form))]
                } else {
                    self.open_editor(form);
                    Vec::new()
                }
            }
            Action::Add | Action::Edit | Action::Delete => {
                self.warn("mappings are added, edited and deleted in the Mappings pane (4)");
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn no_connection(&mut self) -> Vec<Effect> {
        self.warn("select a target connection (or an operation at one) first");
        Vec::new()
    }

    /// Retry, skip and re-map act on the selected operation or exception, in a pane or a
    /// detail.
    fn on_item_action(&mut self, action: Action) -> Vec<Effect> {
        if let Some(ex) = self.selected_exception().cloned() {
            return match action {
                Action::Remap if ex.kind == ExceptionKind::UnmappedGroup => {
                    self.open_editor(MappingForm {
                        id: None,
                        remove: false,
                        pattern: ex.subject.clone(),
                        role: String::new(),
                        selector: GroupSelector::DisplayName,
                        glob: false,
                        source: ex.connection_id,
                        from_exception: Some(ex.id),
                    });
                    Vec::new()
                }
                Action::Skip => {
                    self.prompt(
                        PromptPurpose::Dismiss(ex.id),
                        "",
                        "why is this exception dismissed?",
                    );
                    Vec::new()
                }
                _ => {
                    self.warn(format!(
                        "a {} exception is resolved with {} (map) or {} (dismiss); conflicts also with `scimdesk exceptions resolve --link`",
                        ex.kind,
                        self.key_name(Action::Remap),
                        self.key_name(Action::Skip)
                    ));
                    Vec::new()
                }
            };
        }
        let Some(row) = self.selected_operation().cloned() else {
            self.warn("select an operation or an exception first");
            return Vec::new();
        };
        let id = row.operation.id;
        match action {
            Action::Retry => {
                self.say(format!(
                    "retrying {} {}…",
                    row.operation.action, row.subject
                ));
                vec![Effect::Run(Command::Retry(id))]
            }
            Action::Skip => {
                self.prompt(
                    PromptPurpose::Skip(id),
                    "",
                    "why is this operation skipped?",
                );
                Vec::new()
            }
            Action::Remap if row.operation.resource_type == ResourceType::User => {
                vec![Effect::Run(Command::RemapOperation(id))]
            }
            _ => {
                self.warn("re-map opens from an unmapped-group exception or a user's operation");
                Vec::new()
            }
        }
    }

    fn retry_all(&mut self) -> Vec<Effect> {
        let (state, word) = match self.pane {
            Pane::Queue => (OperationState::RetryWait, "waiting to retry"),
            _ => (OperationState::Failed, "failed"),
        };
        let conn = match self.pane {
            Pane::Connections => self.selected_connection().map(|c| c.connection.id),
            _ => self.filter_connection(),
        };
        let count: u64 = self
            .connections
            .iter()
            .filter(|c| conn.is_none_or(|id| c.connection.id == id))
            .filter_map(|c| c.health.as_ref())
            .map(|h| match state {
                OperationState::RetryWait => h.queue.retry_wait,
                _ => h.queue.failed,
            })
            .sum();
        if count == 0 {
            self.say(format!("no operations {word} here"));
            return Vec::new();
        }
        let place = conn
            .and_then(|id| self.connections.iter().find(|c| c.connection.id == id))
            .map_or_else(
                || "at every target".to_string(),
                |c| format!("at {}", c.connection.name),
            );
        let question = format!("Retry {count} operations {word} {place}?");
        let then = Command::RetryAll(OperationFilter {
            connection_id: conn,
            state: Some(state),
            ..Default::default()
        });
        self.overlays
            .push(Overlay::Confirm(Confirm { question, then }));
        Vec::new()
    }

    /// The connection the current pane's filter names (`conn:NAME`), if any.
    fn filter_connection(&self) -> Option<ConnectionId> {
        let f = &self.pane_state().filter;
        let name = f.split_whitespace().find_map(|t| t.strip_prefix("conn:"))?;
        self.connections
            .iter()
            .find(|c| c.connection.name.eq_ignore_ascii_case(name))
            .map(|c| c.connection.id)
    }

    fn open_editor(&mut self, form: MappingForm) {
        let sources = self
            .connections
            .iter()
            .filter(|c| c.connection.kind.is_source())
            .map(|c| (c.connection.id, c.connection.name.clone()))
            .collect();
        let roles = self.roles.iter().map(|r| r.name.clone()).collect();
        self.overlays
            .push(Overlay::Editor(Box::new(Editor::new(form, sources, roles))));
    }

    /// The first key bound to an action, for messages.
    pub fn key_name(&self, action: Action) -> String {
        // The shortest spelling: `q` rather than `ctrl-c`.
        self.keymap
            .keys_of(action)
            .iter()
            .map(ToString::to_string)
            .min_by_key(|k| k.chars().count())
            .unwrap_or_else(|| action.name())
    }

    fn detail_request(&self) -> Option<DetailRequest> {
        let sel = self.pane_state().selected;
        match self.pane {
            Pane::Connections => self
                .visible_connections()
                .get(sel)
                .map(|c| DetailRequest::Connection(c.connection.id)),
            Pane::Queue => self
                .queue
                .rows
                .get(sel)
                .map(|r| DetailRequest::Operation(r.operation.id)),
            Pane::Failed => self.failed.rows.get(sel).map(|i| match i {
                FailedItem::Exception(e) => DetailRequest::Exception(e.id),
                FailedItem::Operation(r) => DetailRequest::Operation(r.operation.id),
            }),
            Pane::Users => self.users.rows.get(sel).map(|u| DetailRequest::User(u.id)),
            Pane::Mappings | Pane::Audit => None,
        }
    }

    fn switch(&mut self, index: usize) -> Vec<Effect> {
        let Some(pane) = Pane::ALL.get(index).copied() else {
            return Vec::new();
        };
        self.pane = pane;
        self.reload()
    }

    fn move_selection(&mut self, by: i64) -> Vec<Effect> {
        let i = self.pane.index();
        let count = self.row_count();
        if count == 0 {
            return Vec::new();
        }
        let page = match self.pane {
            Pane::Queue => Some((self.queue.offset, self.queue.more)),
            Pane::Failed => Some((self.failed.offset, self.failed.more)),
            Pane::Users => Some((self.users.offset, self.users.more)),
            Pane::Audit => Some((self.audit.offset, self.audit.more)),
            _ => None,
        };
        let target = self.panes[i].selected as i64 + by;
        // Past the loaded rows: read the next or previous page around the selection.
        if let Some((offset, more)) = page {
            if target >= count as i64 && more {
                let step = u64::from(PAGE / 2);
                self.panes[i].offset = offset + step;
                self.panes[i].selected = (target as u64).saturating_sub(step) as usize;
                self.panes[i].key = None;
                return self.reload();
            }
            if target < 0 && offset > 0 {
                let step = u64::from(PAGE / 2).min(offset);
                self.panes[i].offset = offset - step;
                self.panes[i].selected = (target + step as i64).max(0) as usize;
                self.panes[i].key = None;
                return self.reload();
            }
        }
        let selected = target.clamp(0, count as i64 - 1) as usize;
        self.panes[i].selected = selected;
        self.panes[i].key = self.row_key(self.pane, selected);
        Vec::new()
    }
}
