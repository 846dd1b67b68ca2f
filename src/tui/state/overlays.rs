//! What is drawn over a pane (help, details, prompts, questions, the organization switcher,
//! the editor, an impact preview) and what a key does while one is open.

use super::editor::{field_text, text_field};
use super::*;
use ratatui_textarea::TextArea;

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

/// What a detail is about, to match a re-read with the open view.
pub(super) fn detail_subject(d: &Detail) -> Uuid {
    match d {
        Detail::Connection { row, .. } => row.connection.id.0,
        Detail::Operation { row, .. } => row.operation.id.0,
        Detail::Exception(e) => e.id.0,
        Detail::User(u) => u.user.id.0,
        Detail::Audit(e) => e.id.0,
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

impl App {
    pub(super) fn on_overlay_key(&mut self, overlay: Overlay, key: KeyEvent) -> Vec<Effect> {
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

    pub(super) fn submit_prompt(&mut self, purpose: PromptPurpose, text: String) -> Vec<Effect> {
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

    pub(super) fn prompt(&mut self, purpose: PromptPurpose, initial: &str, placeholder: &str) {
        let mut input = Box::new(text_field(initial));
        input.set_placeholder_text(placeholder.to_string());
        self.overlays.push(Overlay::Prompt { purpose, input });
    }
}
