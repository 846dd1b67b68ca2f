//! The workbench's keys: what each key does, rebindable in config.toml (`[workbench.keys]`,
//! an action name to a list of keys), and the `?` help, generated from the same table so it
//! cannot disagree with what the keys do.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::BTreeMap;

/// Something the operator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Retry the selected failed operation.
    Retry,
    /// Retry every failed operation in the current view (after confirming the count).
    RetryAll,
    /// Open the mapping editor prefilled from the selected exception or operation.
    Remap,
    /// Skip the selected operation, with a reason.
    Skip,
    /// Pause or resume the selected connection.
    TogglePause,
    /// Send what waits for the selected connection now.
    SyncNow,
    /// Reconcile the selected connection in full.
    FullReconcile,
    /// Filter the current view.
    Filter,
    /// Add an item (a mapping).
    Add,
    /// Edit the selected item (a mapping).
    Edit,
    /// Delete the selected item (a mapping), after the impact preview.
    Delete,
    /// Re-read everything now.
    Refresh,
    /// Next pane.
    NextPane,
    /// Previous pane.
    PreviousPane,
    /// Pane 1 to 6.
    Pane(u8),
    /// Open the selected item.
    Detail,
    /// Close a detail, an overlay or a form.
    Back,
    /// Switch organization.
    SwitchOrganization,
    /// Show or hide the key help.
    Help,
    /// Leave the workbench.
    Quit,
    /// Selection up.
    Up,
    /// Selection down.
    Down,
    /// A page up.
    PageUp,
    /// A page down.
    PageDown,
}

impl Action {
    /// The name used in config.toml.
    pub fn name(&self) -> String {
        match self {
            Action::Retry => "retry".into(),
            Action::RetryAll => "retry_all".into(),
            Action::Remap => "remap".into(),
            Action::Skip => "skip".into(),
            Action::TogglePause => "pause".into(),
            Action::SyncNow => "sync_now".into(),
            Action::FullReconcile => "full_reconcile".into(),
            Action::Filter => "filter".into(),
            Action::Add => "add".into(),
            Action::Edit => "edit".into(),
            Action::Delete => "delete".into(),
            Action::Refresh => "refresh".into(),
            Action::NextPane => "next_pane".into(),
            Action::PreviousPane => "previous_pane".into(),
            Action::Pane(n) => format!("pane_{n}"),
            Action::Detail => "detail".into(),
            Action::Back => "back".into(),
            Action::SwitchOrganization => "organization".into(),
            Action::Help => "help".into(),
            Action::Quit => "quit".into(),
            Action::Up => "up".into(),
            Action::Down => "down".into(),
            Action::PageUp => "page_up".into(),
            Action::PageDown => "page_down".into(),
        }
    }

    /// What it does, for the help.
    pub fn describe(&self) -> String {
        match self {
            Action::Retry => "retry the selected operation".into(),
            Action::RetryAll => "retry all failed here (asks)".into(),
            Action::Remap => "re-map in the mapping editor".into(),
            Action::Skip => "skip, with a reason".into(),
            Action::TogglePause => "pause or resume a connection".into(),
            Action::SyncNow => "sync now".into(),
            Action::FullReconcile => "full reconcile".into(),
            Action::Filter => "filter".into(),
            Action::Add => "add a mapping".into(),
            Action::Edit => "edit a mapping".into(),
            Action::Delete => "delete a mapping (previewed)".into(),
            Action::Refresh => "re-read now".into(),
            Action::NextPane => "next pane".into(),
            Action::PreviousPane => "previous pane".into(),
            Action::Pane(n) => format!("pane {n}"),
            Action::Detail => "details".into(),
            Action::Back => "back".into(),
            Action::SwitchOrganization => "switch organization".into(),
            Action::Help => "this help".into(),
            Action::Quit => "quit".into(),
            Action::Up => "up".into(),
            Action::Down => "down".into(),
            Action::PageUp => "page up".into(),
            Action::PageDown => "page down".into(),
        }
    }

    fn all() -> Vec<Action> {
        let mut v = vec![
            Action::Retry,
            Action::RetryAll,
            Action::Remap,
            Action::Skip,
            Action::TogglePause,
            Action::SyncNow,
            Action::FullReconcile,
            Action::Filter,
            Action::Add,
            Action::Edit,
            Action::Delete,
            Action::Refresh,
            Action::NextPane,
            Action::PreviousPane,
        ];
        v.extend((1..=6).map(Action::Pane));
        v.extend([
            Action::Detail,
            Action::Back,
            Action::SwitchOrganization,
            Action::Help,
            Action::Quit,
            Action::Up,
            Action::Down,
            Action::PageUp,
            Action::PageDown,
        ]);
        v
    }

    fn from_name(name: &str) -> Option<Action> {
        Action::all().into_iter().find(|a| a.name() == name)
    }
}

/// A key as written in config and shown in help: `r`, `R`, `ctrl-c`, `tab`, `enter`, `f5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    code: KeyCodeKey,
    ctrl: bool,
    alt: bool,
}

/// The comparable part of a key code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum KeyCodeKey {
    Char(char),
    F(u8),
    Named(&'static str),
}

const NAMED: &[(&str, KeyCode)] = &[
    ("tab", KeyCode::Tab),
    ("backtab", KeyCode::BackTab),
    ("enter", KeyCode::Enter),
    ("esc", KeyCode::Esc),
    ("up", KeyCode::Up),
    ("down", KeyCode::Down),
    ("left", KeyCode::Left),
    ("right", KeyCode::Right),
    ("pageup", KeyCode::PageUp),
    ("pagedown", KeyCode::PageDown),
    ("home", KeyCode::Home),
    ("end", KeyCode::End),
    ("backspace", KeyCode::Backspace),
    ("delete", KeyCode::Delete),
    ("space", KeyCode::Char(' ')),
];

/// Why a key binding in `[workbench.keys]` is refused; the text names it and what is
/// accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not a key's spelling.
    #[error(
        "{0:?} is not a key (a character, ctrl-X, alt-X, f1-f12, or one of: {names})",
        names = NAMED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    )]
    NotAKey(String),
    /// An action name the workbench does not have.
    #[error(
        "[workbench.keys]: unknown action {0:?} (actions: {actions})",
        actions = Action::all().iter().map(Action::name).collect::<Vec<_>>().join(", ")
    )]
    UnknownAction(String),
    /// A key of an action's list that is not a key.
    #[error("[workbench.keys] {action}: {error}")]
    In {
        /// The action.
        action: String,
        /// Why its key is refused.
        error: Box<KeyError>,
    },
    /// One key given to two actions.
    #[error("[workbench.keys]: {key} is bound to both {} and {}", first.name(), second.name())]
    Twice {
        /// The key.
        key: Key,
        /// The action it was given first.
        first: Action,
        /// The other action.
        second: Action,
    },
}

impl Key {
    /// Parses `ctrl-x`, `alt-x`, `X`, a named key or `f1`..`f12`.
    pub fn parse(text: &str) -> Result<Key, KeyError> {
        let mut ctrl = false;
        let mut alt = false;
        let mut rest = text.trim();
        loop {
            let lower = rest.to_ascii_lowercase();
            if let Some(r) = lower.strip_prefix("ctrl-").filter(|r| !r.is_empty()) {
                ctrl = true;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower.strip_prefix("alt-").filter(|r| !r.is_empty()) {
                alt = true;
                rest = &rest[rest.len() - r.len()..];
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCodeKey::Char(if ctrl { c.to_ascii_lowercase() } else { c }),
            _ => {
                let lower = rest.to_ascii_lowercase();
                if let Some((name, _)) = NAMED.iter().find(|(n, _)| *n == lower) {
                    if *name == "space" {
                        KeyCodeKey::Char(' ')
                    } else {
                        KeyCodeKey::Named(name)
                    }
                } else if let Some(n) = lower
                    .strip_prefix('f')
                    .and_then(|n| n.parse::<u8>().ok())
                    .filter(|n| (1..=12).contains(n))
                {
                    KeyCodeKey::F(n)
                } else {
                    return Err(KeyError::NotAKey(text.to_string()));
                }
            }
        };
        Ok(Key { code, ctrl, alt })
    }

    /// The key of a terminal event, if it is one a binding can name.
    pub fn from_event(e: &KeyEvent) -> Option<Key> {
        let ctrl = e.modifiers.contains(KeyModifiers::CONTROL);
        let alt = e.modifiers.contains(KeyModifiers::ALT);
        let code = match e.code {
            KeyCode::Char(c) => KeyCodeKey::Char(if ctrl { c.to_ascii_lowercase() } else { c }),
            KeyCode::F(n) => KeyCodeKey::F(n),
            other => KeyCodeKey::Named(NAMED.iter().find(|(_, k)| *k == other)?.0),
        };
        Some(Key { code, ctrl, alt })
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        match self.code {
            KeyCodeKey::Char(' ') => f.write_str("space"),
            KeyCodeKey::Char(c) => write!(f, "{c}"),
            KeyCodeKey::F(n) => write!(f, "f{n}"),
            KeyCodeKey::Named(n) => f.write_str(n),
        }
    }
}

/// Which key does what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    bindings: BTreeMap<Key, Action>,
}

impl Default for Keymap {
    fn default() -> Self {
        let mut m = Self {
            bindings: BTreeMap::new(),
        };
        let defaults: &[(&str, Action)] = &[
            ("r", Action::Retry),
            ("R", Action::RetryAll),
            ("m", Action::Remap),
            ("s", Action::Skip),
            ("p", Action::TogglePause),
            ("S", Action::SyncNow),
            ("F", Action::FullReconcile),
            ("/", Action::Filter),
            ("a", Action::Add),
            ("e", Action::Edit),
            ("d", Action::Delete),
            ("ctrl-r", Action::Refresh),
            ("tab", Action::NextPane),
            ("backtab", Action::PreviousPane),
            ("1", Action::Pane(1)),
            ("2", Action::Pane(2)),
            ("3", Action::Pane(3)),
            ("4", Action::Pane(4)),
            ("5", Action::Pane(5)),
            ("6", Action::Pane(6)),
            ("enter", Action::Detail),
            ("esc", Action::Back),
            ("o", Action::SwitchOrganization),
            ("?", Action::Help),
            ("q", Action::Quit),
            ("ctrl-c", Action::Quit),
            ("up", Action::Up),
            ("k", Action::Up),
            ("down", Action::Down),
            ("j", Action::Down),
            ("pageup", Action::PageUp),
            ("pagedown", Action::PageDown),
        ];
        for (k, a) in defaults {
            if let Ok(key) = Key::parse(k) {
                m.bindings.insert(key, *a);
            }
        }
        m
    }
}

impl Keymap {
    /// The defaults with `overrides` (action name → keys) applied: an action given here loses
    /// its default keys. A key bound to two actions, an unknown action or key is an error that
    /// names it.
    pub fn with_overrides(overrides: &BTreeMap<String, Vec<String>>) -> Result<Self, KeyError> {
        let mut map = Self::default();
        let mut claimed: BTreeMap<Key, Action> = BTreeMap::new();
        for (name, keys) in overrides {
            let action =
                Action::from_name(name).ok_or_else(|| KeyError::UnknownAction(name.clone()))?;
            map.bindings.retain(|_, a| *a != action);
            for k in keys {
                let key = Key::parse(k).map_err(|e| KeyError::In {
                    action: name.clone(),
                    error: Box::new(e),
                })?;
                if let Some(other) = claimed.insert(key, action)
                    && other != action
                {
                    return Err(KeyError::Twice {
                        key,
                        first: other,
                        second: action,
                    });
                }
            }
        }
        for (key, action) in claimed {
            map.bindings.insert(key, action);
        }
        Ok(map)
    }

    /// What a key press asks for.
    pub fn action(&self, e: &KeyEvent) -> Option<Action> {
        // Shifted letters arrive as the upper-case character (SHIFT is not part of a key).
        self.bindings.get(&Key::from_event(e)?).copied()
    }

    /// The keys of an action, in display order.
    pub fn keys_of(&self, action: Action) -> Vec<Key> {
        self.bindings
            .iter()
            .filter(|(_, a)| **a == action)
            .map(|(k, _)| *k)
            .collect()
    }

    /// The help: one line per action that has a key, `keys  description`.
    pub fn help_lines(&self) -> Vec<(String, String)> {
        Action::all()
            .into_iter()
            .filter_map(|a| {
                let keys = self.keys_of(a);
                (!keys.is_empty()).then(|| {
                    (
                        keys.iter()
                            .map(Key::to_string)
                            .collect::<Vec<_>>()
                            .join(" "),
                        a.describe(),
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn defaults_follow_the_issue() {
        let m = Keymap::default();
        let cases = [
            (press(KeyCode::Char('r'), KeyModifiers::NONE), Action::Retry),
            (
                press(KeyCode::Char('R'), KeyModifiers::SHIFT),
                Action::RetryAll,
            ),
            (press(KeyCode::Char('m'), KeyModifiers::NONE), Action::Remap),
            (press(KeyCode::Char('s'), KeyModifiers::NONE), Action::Skip),
            (
                press(KeyCode::Char('p'), KeyModifiers::NONE),
                Action::TogglePause,
            ),
            (
                press(KeyCode::Char('S'), KeyModifiers::SHIFT),
                Action::SyncNow,
            ),
            (
                press(KeyCode::Char('F'), KeyModifiers::SHIFT),
                Action::FullReconcile,
            ),
            (
                press(KeyCode::Char('/'), KeyModifiers::NONE),
                Action::Filter,
            ),
            (press(KeyCode::Tab, KeyModifiers::NONE), Action::NextPane),
            (
                press(KeyCode::Char('4'), KeyModifiers::NONE),
                Action::Pane(4),
            ),
            (press(KeyCode::Enter, KeyModifiers::NONE), Action::Detail),
            (press(KeyCode::Esc, KeyModifiers::NONE), Action::Back),
            (
                press(KeyCode::Char('o'), KeyModifiers::NONE),
                Action::SwitchOrganization,
            ),
            (press(KeyCode::Char('?'), KeyModifiers::NONE), Action::Help),
            (press(KeyCode::Char('q'), KeyModifiers::NONE), Action::Quit),
            (
                press(KeyCode::Char('c'), KeyModifiers::CONTROL),
                Action::Quit,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(m.action(&e), Some(want), "{e:?}");
        }
        assert_eq!(
            m.action(&press(KeyCode::Char('z'), KeyModifiers::NONE)),
            None
        );
    }

    #[test]
    fn overrides_replace_defaults_and_conflicts_are_refused() {
        let o: BTreeMap<String, Vec<String>> = [(
            "retry".to_string(),
            vec!["ctrl-r".to_string(), "f5".to_string()],
        )]
        .into();
        let m = Keymap::with_overrides(&o).unwrap();
        assert_eq!(
            m.action(&press(KeyCode::Char('r'), KeyModifiers::CONTROL)),
            Some(Action::Retry)
        );
        assert_eq!(
            m.action(&press(KeyCode::F(5), KeyModifiers::NONE)),
            Some(Action::Retry)
        );
        assert_eq!(
            m.action(&press(KeyCode::Char('r'), KeyModifiers::NONE)),
            None,
            "the default key is released"
        );
        let help = m.help_lines();
        assert!(
            help.iter()
                .any(|(k, d)| k == "ctrl-r f5" && d.contains("retry the selected")),
            "{help:?}"
        );
        let bad: BTreeMap<String, Vec<String>> = [
            ("retry".to_string(), vec!["x".to_string()]),
            ("skip".to_string(), vec!["x".to_string()]),
        ]
        .into();
        let e = Keymap::with_overrides(&bad).unwrap_err().to_string();
        assert!(e.contains("x is bound to both"), "{e}");
        let bad: BTreeMap<String, Vec<String>> =
            [("explode".to_string(), vec!["x".to_string()])].into();
        assert!(
            Keymap::with_overrides(&bad)
                .unwrap_err()
                .to_string()
                .contains("unknown action \"explode\"")
        );
        let bad: BTreeMap<String, Vec<String>> =
            [("retry".to_string(), vec!["hyper-q".to_string()])].into();
        assert!(
            Keymap::with_overrides(&bad)
                .unwrap_err()
                .to_string()
                .contains("not a key")
        );
    }

    #[test]
    fn every_action_is_in_the_help_with_its_keys() {
        let help = Keymap::default().help_lines();
        assert_eq!(help.len(), Action::all().len());
        assert!(help.iter().any(|(k, _)| k == "1"));
    }
}
