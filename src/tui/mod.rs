//! The terminal workbench: live panes over the store and the engine, driven from the keyboard.
//!
//! - [`state`]: what is on screen and what each key does (no I/O; unit-tested);
//! - [`loader`]: reads for panes and details, and operator commands through the engine API;
//! - [`ui`]: drawing the state (snapshot-tested with ratatui's `TestBackend`);
//! - [`runner`]: the event loop that joins them to a real terminal;
//! - [`theme`] and [`keymap`]: the look and the keys, both files the operator can change.

pub mod data;
pub mod keymap;
pub mod loader;
pub mod runner;
pub mod state;
pub mod theme;
pub mod ui;

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
