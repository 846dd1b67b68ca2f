//! The layering rules of `docs/architecture.md`, checked on the source: data flows one way,
//! `sources → store → policy decides → engine queues → workers → targets`, so each layer may
//! name only what lies beneath it. A forbidden import fails this test with its file and line.
//!
//! The check reads every `.rs` file under `src/` with comments and string literals blanked
//! out, expands `use` trees (`use crate::{domain::X, engine::Y}` names `crate::engine`), and
//! looks for paths into forbidden modules (`crate::engine`) and crates (`sqlx::`). `super::super`
//! is refused everywhere, so no relative path can climb out of a layer unseen. The protocol
//! core's own rule ("no I/O") is the compiler's: `crates/scim` depends on nothing that does I/O,
//! which the last test checks in its manifest.

use std::path::{Path, PathBuf};

/// One layer: a folder under `src/` and what its files must not name.
struct Layer {
    dir: &'static str,
    /// Our modules it must not reach (`crate::<name>`).
    modules: &'static [&'static str],
    /// Crates (or `std` paths) it must not use.
    crates: &'static [&'static str],
    why: &'static str,
}

/// Everything outside production code: nothing in production may reach it.
const STAND_INS: &str = "stand_ins";

const LAYERS: &[Layer] = &[
    Layer {
        dir: "domain",
        modules: &[
            "store",
            "engine",
            "policy",
            "connectors",
            "api",
            "tui",
            "cli",
            "config",
            "crypto",
            STAND_INS,
        ],
        crates: &["reqwest", "axum", "tokio", "std::fs", "std::net"],
        why: "domain holds plain types (rows derive sqlx::FromRow: a derive, not I/O)",
    },
    Layer {
        dir: "scim",
        modules: &[
            "store",
            "engine",
            "policy",
            "connectors",
            "api",
            "tui",
            "cli",
            STAND_INS,
        ],
        crates: &["sqlx", "reqwest", "axum", "tokio", "std::fs", "std::net"],
        why: "scim/ joins the protocol core to the domain and does no I/O",
    },
    Layer {
        dir: "policy",
        modules: &[
            "store",
            "engine",
            "connectors",
            "api",
            "tui",
            "cli",
            "config",
            "crypto",
            STAND_INS,
        ],
        crates: &["sqlx", "reqwest", "axum", "tokio", "std::fs", "std::net"],
        why: "policy is pure: rows in, decisions out, no I/O and no engine",
    },
    Layer {
        dir: "store",
        modules: &[
            "engine",
            "policy",
            "connectors",
            "api",
            "tui",
            "cli",
            "config",
            STAND_INS,
        ],
        crates: &["reqwest", "axum"],
        why: "the store knows no engine and no policy (policy's fan-out is handed to it)",
    },
    Layer {
        dir: "connectors",
        modules: &["store", "engine", "policy", "api", "tui", "cli", STAND_INS],
        crates: &["sqlx", "axum"],
        why: "connectors call outward and know neither store nor engine",
    },
    Layer {
        dir: "engine",
        modules: &["api", "tui", "cli", STAND_INS],
        crates: &["sqlx", "axum"],
        why: "the engine runs no SQL (the store does) and knows no surface",
    },
    Layer {
        dir: "api",
        modules: &["connectors", "tui", "cli", STAND_INS],
        crates: &["sqlx", "reqwest"],
        why: "surfaces send commands through the engine and never call targets",
    },
    Layer {
        dir: "tui",
        modules: &["connectors", "api", "cli", STAND_INS],
        crates: &["sqlx", "reqwest", "axum"],
        why: "surfaces send commands through the engine and never call targets",
    },
    Layer {
        dir: "cli",
        modules: &["connectors"],
        crates: &["sqlx", "reqwest"],
        why: "surfaces send commands through the engine and never call targets",
    },
];

/// The source with comments and the contents of string and character literals replaced by
/// spaces (line breaks kept, so line numbers stay true).
fn code_only(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&chars, i) {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let end: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            out.push_str(&" ".repeat(j + 1 - i));
            i = j + 1;
            while i < chars.len() && !chars[i..].iter().collect::<String>().starts_with(&end) {
                out.push(blank(chars[i]));
                i += 1;
            }
            out.push_str(&" ".repeat(end.len()));
            i += end.len();
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || (next == Some('\\'))) {
            // A character literal ('x' or '\n'); anything else is a lifetime.
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                out.push(' ');
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// Every path a `use` tree names, in full (`a::{b, c::d}` → `a::b`, `a::c::d`).
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let mut out = Vec::new();
    expand_into("", &tree, &mut out);
    out
}

fn expand_into(prefix: &str, tree: &str, out: &mut Vec<String>) {
    for part in split_top(tree) {
        match part.find('{') {
            Some(open) if part.ends_with('}') => {
                let head = &part[..open];
                expand_into(
                    &format!("{prefix}{head}"),
                    &part[open + 1..part.len() - 1],
                    out,
                );
            }
            _ => out.push(format!("{prefix}{part}")),
        }
    }
}

/// Splits `a, b::{c, d}, e` at its top-level commas.
fn split_top(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// The paths a file names, with their line numbers: every `use` tree expanded, and every
/// other path written out in the code.
fn paths(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let bytes = code.as_bytes();
    let mut at = 0;
    while let Some(pos) = code[at..].find("use ") {
        let start = at + pos;
        at = start + 4;
        let word_start =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if !word_start {
            continue;
        }
        let Some(end) = code[at..].find(';') else {
            break;
        };
        let tree = &code[at..at + end];
        if tree.contains('(') || tree.contains('=') {
            continue; // not a use declaration (a word in code)
        }
        for p in expand(tree) {
            found.push((line_of(start), p));
        }
        at += end;
    }
    for (n, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(pos) = rest.find("::") {
            let head: String = rest[..pos]
                .chars()
                .rev()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let tail: String = rest[pos + 2..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            found.push((n + 1, format!("{head}::{tail}")));
            rest = &rest[pos + 2 + tail.len()..];
        }
    }
    found
}

/// Whether `path` starts with the module or crate path `root` (`std::fs` matches
/// `std::fs::read`, not `std::fsx`).
fn names(path: &str, root: &str) -> bool {
    path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with("::"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every breach of `layers` in the source tree at `src`: (file, line, what, why).
fn breaches(src: &Path, layers: &[Layer]) -> Vec<String> {
    let mut found = Vec::new();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    for file in files {
        let rel = file
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let code = code_only(&std::fs::read_to_string(&file).unwrap());
        let layer_dir = rel.split('/').next().unwrap_or("");
        let layer = layers.iter().find(|l| l.dir == layer_dir);
        for (line, path) in paths(&code) {
            if path.contains("super::super") {
                found.push(format!(
                    "src/{rel}:{line}: {path}: climbs out of its module (write crate:: paths)"
                ));
            }
            let Some(layer) = layer else { continue };
            for m in layer.modules {
                if names(&path, &format!("crate::{m}")) {
                    found.push(format!("src/{rel}:{line}: {path}: {}", layer.why));
                }
            }
            for c in layer.crates {
                if names(&path, c) || names(&path, &format!("::{c}")) {
                    found.push(format!("src/{rel}:{line}: {path}: {}", layer.why));
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_layer_names_only_what_lies_beneath_it() {
    let found = breaches(&src(), LAYERS);
    assert!(
        found.is_empty(),
        "layering rules broken (docs/architecture.md):\n{}",
        found.join("\n")
    );
}

/// The check itself catches what it is for, on a small tree written here: a grouped import of
/// the engine in the store, SQL in the engine, an HTTP client in policy, a climb out with
/// `super::super`, and nothing in comments or strings.
#[test]
fn the_check_catches_forbidden_imports_and_ignores_comments_and_strings() {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "store/users.rs",
        "use crate::{domain::User, engine::{Engine, commands}};\n// crate::policy in a comment\nfn f() { let _ = \"crate::policy in a string\"; }\n",
    );
    write(
        "engine/worker.rs",
        "fn g() {\n    let _ = sqlx::query(\"SELECT 1\");\n}\n",
    );
    write(
        "policy/roles.rs",
        "use reqwest::Client;\nuse crate::domain::Role;\n",
    );
    write("api/x/y.rs", "use super::super::connectors::ScimClient;\n");
    write(
        "domain/user.rs",
        "#[derive(sqlx::FromRow)] struct U<'a>(&'a str, char);\nconst C: char = 'x';\n",
    );
    let found = breaches(dir.path(), LAYERS);
    let at: Vec<&str> = found
        .iter()
        .map(|f| f.split(": ").next().unwrap_or(""))
        .collect();
    assert_eq!(
        at,
        vec![
            "src/api/x/y.rs:1",
            "src/engine/worker.rs:2",
            "src/policy/roles.rs:1",
            "src/store/users.rs:1",
            "src/store/users.rs:1",
        ],
        "{found:#?}"
    );
    assert!(found.iter().any(|f| f.contains("crate::engine::Engine")));
    assert!(found.iter().any(|f| f.contains("crate::engine::commands")));
}

/// The protocol core depends on nothing that does I/O, so the compiler keeps it pure.
#[test]
fn the_protocol_core_depends_on_nothing_that_does_io() {
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/scim/Cargo.toml"),
    )
    .unwrap();
    let deps: Vec<&str> = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap_or("")
        .split("\n[")
        .next()
        .unwrap_or("")
        .lines()
        .filter_map(|l| l.split('=').next())
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .collect();
    assert_eq!(deps, vec!["serde_json", "time"], "{manifest}");
}
