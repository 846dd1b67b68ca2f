//! Workbench themes, kept as files (`themes/*.toml`). Four are built in (`default`, which uses
//! the 16 ANSI colours only, plus `dark`, `light` and `high-contrast`), and any other file can be
//! named by its path. `NO_COLOR` keeps bold, underline and reverse and drops every colour.

use crate::engine::HealthState;
use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr as _;

/// The built-in themes, by name, with their file text.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("default", include_str!("../../themes/default.toml")),
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

/// The style slots a theme sets; a file that leaves one out inherits the default theme's.
const SLOTS: &[&str] = &[
    "base",
    "header",
    "selected",
    "status_bar",
    "muted",
    "key",
    "error",
    "healthy",
    "degraded",
    "stalled",
    "quarantined",
    "paused",
];

/// How one slot looks, as written in a theme file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StyleSpec {
    fg: Option<String>,
    bg: Option<String>,
    #[serde(default)]
    bold: bool,
    #[serde(default)]
    underlined: bool,
    #[serde(default)]
    reversed: bool,
}

/// A loaded theme.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    /// Its name.
    pub name: String,
    styles: BTreeMap<String, Style>,
}

/// Why a theme could not be loaded: names the file (or theme) and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("theme {source_name}: {problem}")]
pub struct ThemeError {
    /// The theme name or file path.
    pub source_name: String,
    /// What is wrong.
    pub problem: String,
}

/// A value that is not a colour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a colour (use a name such as \"red\" or \"lightblue\", an index 0-255, or \"#rrggbb\")"
)]
struct NotAColour(String);

fn parse_color(value: &str) -> Result<Color, NotAColour> {
    Color::from_str(value.trim()).map_err(|_| NotAColour(value.to_string()))
}

impl Theme {
    /// Parses theme text; `source_name` is what errors call it.
    pub fn parse(text: &str, source_name: &str, no_color: bool) -> Result<Self, ThemeError> {
        let fail = |problem: String| ThemeError {
            source_name: source_name.to_string(),
            problem,
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| fail(e.to_string()))?;
        let mut name = source_name.to_string();
        let mut specs: BTreeMap<String, StyleSpec> = BTreeMap::new();
        for (key, value) in table {
            if key == "name" {
                name = value
                    .as_str()
                    .ok_or_else(|| fail("`name` must be a string".into()))?
                    .to_string();
                continue;
            }
            if !SLOTS.contains(&key.as_str()) {
                return Err(fail(format!(
                    "unknown style {key:?} (the styles are: {})",
                    SLOTS.join(", ")
                )));
            }
            let spec: StyleSpec = value
                .try_into()
                .map_err(|e: toml::de::Error| fail(format!("style {key:?}: {}", e.message())))?;
            specs.insert(key, spec);
        }
        let mut styles = BTreeMap::new();
        for (key, spec) in specs {
            let mut style = Style::default();
            if !no_color {
                if let Some(fg) = &spec.fg {
                    style = style.fg(parse_color(fg).map_err(|e| fail(format!("{key}.fg: {e}")))?);
                }
                if let Some(bg) = &spec.bg {
                    style = style.bg(parse_color(bg).map_err(|e| fail(format!("{key}.bg: {e}")))?);
                }
            }
            for (on, m) in [
                (spec.bold, Modifier::BOLD),
                (spec.underlined, Modifier::UNDERLINED),
                (spec.reversed, Modifier::REVERSED),
            ] {
                if on {
                    style = style.add_modifier(m);
                }
            }
            styles.insert(key, style);
        }
        Ok(Self { name, styles })
    }

    /// Loads a built-in theme by name, or a theme file by path. A file leaves out what it
    /// does not change: missing slots come from the default theme.
    pub fn load(name_or_path: &str, no_color: bool) -> Result<Self, ThemeError> {
        let mut theme = match BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            Some((n, text)) => Self::parse(text, n, no_color)?,
            None => {
                let path = Path::new(name_or_path);
                let text = std::fs::read_to_string(path).map_err(|e| ThemeError {
                    source_name: name_or_path.to_string(),
                    problem: format!(
                        "no built-in theme has this name ({}) and the file cannot be read: {e}",
                        BUILT_IN
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })?;
                Self::parse(&text, &path.display().to_string(), no_color)?
            }
        };
        if theme.styles.len() < SLOTS.len() {
            let fallback = Self::parse(BUILT_IN[0].1, "default", no_color)?;
            for (k, v) in fallback.styles {
                theme.styles.entry(k).or_insert(v);
            }
        }
        Ok(theme)
    }

    /// Whether `NO_COLOR` asks for no colour (set and not empty, per no-color.org).
    pub fn no_color_from_env() -> bool {
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
    }

    /// The style of a slot (plain if the slot is unknown).
    pub fn style(&self, slot: &str) -> Style {
        self.styles.get(slot).copied().unwrap_or_default()
    }

    /// The style that shows a connection's health state.
    pub fn health(&self, state: HealthState) -> Style {
        self.style(match state {
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
            HealthState::Stalled => "stalled",
            HealthState::Quarantined => "quarantined",
            HealthState::Paused => "paused",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_themes_load_and_set_every_slot() {
        for (name, _) in BUILT_IN {
            let t = Theme::load(name, false).unwrap();
            assert_eq!(&t.name, name);
            for slot in SLOTS {
                assert!(t.styles.contains_key(*slot), "{name} sets {slot}");
            }
        }
        // The default uses the 16 ANSI colours only.
        let d = Theme::load("default", false).unwrap();
        for style in d.styles.values() {
            for c in [style.fg, style.bg].into_iter().flatten() {
                assert!(!matches!(c, Color::Rgb(..) | Color::Indexed(_)), "{c:?}");
            }
        }
    }

    #[test]
    fn no_color_keeps_modifiers_only() {
        let t = Theme::load("dark", true).unwrap();
        assert_eq!(
            t.health(HealthState::Quarantined),
            Style::default().add_modifier(Modifier::BOLD)
        );
        assert!(t.styles.values().all(|s| s.fg.is_none() && s.bg.is_none()));
    }

    #[test]
    fn bad_theme_files_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.toml");
        std::fs::write(&path, "healthy = { fg = \"chartreuse-ish\" }").unwrap();
        let e = Theme::load(path.to_str().unwrap(), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mine.toml") && e.contains("healthy.fg") && e.contains("chartreuse-ish"),
            "{e}"
        );
        std::fs::write(&path, "blinking = { bold = true }").unwrap();
        let e = Theme::load(path.to_str().unwrap(), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown style \"blinking\""), "{e}");
        std::fs::write(&path, "healthy = [").unwrap();
        assert!(Theme::load(path.to_str().unwrap(), false).is_err());
        let e = Theme::load("solarized", false).unwrap_err().to_string();
        assert!(
            e.contains("solarized") && e.contains("high-contrast"),
            "{e}"
        );
        // A partial file inherits the rest from the default theme.
        std::fs::write(&path, "name = \"mine\"\nhealthy = { fg = \"#00ff00\" }").unwrap();
        let t = Theme::load(path.to_str().unwrap(), false).unwrap();
        assert_eq!(t.name, "mine");
        assert_eq!(
            t.health(HealthState::Healthy).fg,
            Some(Color::Rgb(0, 255, 0))
        );
        assert_eq!(
            t.style("key"),
            Theme::load("default", false).unwrap().style("key")
        );
    }
}
