//! The terminal workbench (issue 6), being built: so far its themes ([`theme`]) and its keys
//! ([`keymap`]), both configurable from files. The panes and the event loop come next.

pub mod keymap;
pub mod theme;

use serde::Deserialize;
use std::collections::BTreeMap;

/// `[workbench]` in config.toml.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkbenchConfig {
    /// A built-in theme name or a theme file path.
    pub theme: Option<String>,
    /// Key overrides: action name → keys (see [`keymap::Keymap::with_overrides`]).
    pub keys: BTreeMap<String, Vec<String>>,
}
