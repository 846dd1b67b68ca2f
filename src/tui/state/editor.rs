//! The mapping editor: a form of text fields and choices, saved into an impact preview.

use super::*;
use ratatui_textarea::TextArea;

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

/// Fields of the editor.
pub const EDITOR_FIELDS: usize = 5;

pub(super) fn text_field(text: &str) -> TextArea<'static> {
    let mut t = TextArea::new(vec![text.to_string()]);
    t.move_cursor(ratatui_textarea::CursorMove::End);
    t
}

pub(super) fn field_text(t: &TextArea<'_>) -> String {
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

impl App {
    pub(super) fn on_editor_key(&mut self, mut ed: Editor, key: KeyEvent) -> Vec<Effect> {
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

    pub(super) fn save_editor(&mut self, mut ed: Editor) -> Vec<Effect> {
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

    pub(super) fn open_editor(&mut self, form: MappingForm) {
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
}
