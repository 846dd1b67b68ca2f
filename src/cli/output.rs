//! Output for people (aligned tables) and for scripts (`--json`).

use super::error::{CliError, CliResult};
use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

/// Prints rows under headers as a plain, aligned table.
pub fn table(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().map(|h| h.to_uppercase()));
    for row in rows {
        t.add_row(row);
    }
    // comfy-table pads every line; trailing white space helps nobody.
    for line in t.to_string().lines() {
        println!("{}", line.trim_end());
    }
}

/// Prints label/value pairs, one per line.
pub fn fields(pairs: &[(&str, String)]) {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in pairs {
        println!("{k:width$}  {v}");
    }
}

/// Prints a value as pretty JSON.
pub fn json<T: Serialize + ?Sized>(value: &T) -> CliResult {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::new(super::error::Exit::Internal, format!("JSON output: {e}")))?;
    println!("{text}");
    Ok(())
}

/// An optional value, or a dash.
pub fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}
