//! What a pane's keys do: switch panes, open details, and start engine commands (retry,
//! skip, re-map, pause, sync, reconcile, mapping changes).

use super::*;
use crate::store::OperationFilter;

impl App {
    pub(super) fn on_pane_key(&mut self, key: KeyEvent) -> Vec<Effect> {
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

    pub(super) fn on_pane_action(&mut self, action: Action) -> Vec<Effect> {
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
                Some(c) if c.source.is_some() => {
                    let id = c.connection.id;
                    self.say(format!("syncing {}…", c.connection.name));
                    vec![Effect::Run(Command::SyncSource(id))]
                }
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

    pub(super) fn no_connection(&mut self) -> Vec<Effect> {
        self.warn("select a target connection (or an operation at one) first");
        Vec::new()
    }

    /// Retry, skip and re-map act on the selected operation or exception, in a pane or a
    /// detail.
    pub(super) fn on_item_action(&mut self, action: Action) -> Vec<Effect> {
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
                Action::Remap if ex.kind == ExceptionKind::SyncGuard => {
                    // The diff was in the detail; the question names it once more.
                    let n = |k: &str| ex.details.0.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
                    let first: Vec<&str> = ex
                        .details
                        .0
                        .get("first")
                        .and_then(|f| f.as_array())
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str())
                        .take(3)
                        .collect();
                    let question = format!(
                        "Apply the stopped sync of {} anyway? It suspends {} of {} users ({}…).",
                        ex.subject,
                        n("suspending"),
                        n("active"),
                        first.join(", ")
                    );
                    self.overlays.push(Overlay::Confirm(Confirm {
                        question,
                        then: Command::ApplySync(ex.id),
                    }));
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

    pub(super) fn retry_all(&mut self) -> Vec<Effect> {
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
}
