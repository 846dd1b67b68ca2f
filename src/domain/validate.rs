//! Checks on values that people and identity providers type in, shared by every surface.

use std::fmt;

/// A value that cannot be accepted, with the field it belongs to and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidInput {
    /// The field or concept the value was for.
    pub field: String,
    /// Why it was refused, in words a person can act on.
    pub reason: String,
}

impl InvalidInput {
    /// A refusal of `field` for `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.reason)
    }
}

/// The longest name (organization, connection, role, token) we accept, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Trims a display name and refuses empty, overlong or control-character names.
pub fn name(field: &str, value: &str) -> Result<String, InvalidInput> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(InvalidInput::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(InvalidInput::new(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(InvalidInput::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_string())
}

/// Accepts an absolute `http` or `https` URL with a host, normalised, without credentials.
pub fn base_url(value: &str) -> Result<String, InvalidInput> {
    let parsed = url::Url::parse(value.trim()).map_err(|e| {
        // Text with an '@' may carry credentials: do not echo it.
        let shown = if value.contains('@') {
            "the value".to_string()
        } else {
            format!("{value:?}")
        };
        InvalidInput::new("base URL", format!("{shown} is not a URL ({e})"))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(InvalidInput::new(
            "base URL",
            format!("scheme must be http or https, not {:?}", parsed.scheme()),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(InvalidInput::new("base URL", "must name a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(InvalidInput::new(
            "base URL",
            "must not contain credentials; give the secret with --secret-file",
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(InvalidInput::new(
            "base URL",
            "must not contain a query or fragment",
        ));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

/// The longest value, in bytes, of a text field the stores index (PostgreSQL refuses index
/// entries over about 2.7 kB; this leaves room and is far beyond any real identifier).
pub const MAX_INDEXED_BYTES: usize = 1024;

/// Refuses text a store cannot keep or index: NUL characters (PostgreSQL text and JSONB cannot
/// hold them) and, for indexed fields, values over [`MAX_INDEXED_BYTES`].
pub fn storable_text(field: &str, value: &str, indexed: bool) -> Result<(), InvalidInput> {
    if value.contains('\0') {
        return Err(InvalidInput::new(field, "must not contain NUL characters"));
    }
    if indexed && value.len() > MAX_INDEXED_BYTES {
        return Err(InvalidInput::new(
            field,
            format!("must be at most {MAX_INDEXED_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Refuses JSON with NUL characters in any key or string (PostgreSQL JSONB cannot hold them).
pub fn storable_json(field: &str, value: &serde_json::Value) -> Result<(), InvalidInput> {
    use serde_json::Value;
    let ok = match value {
        Value::String(s) => !s.contains('\0'),
        Value::Array(items) => return items.iter().try_for_each(|v| storable_json(field, v)),
        Value::Object(map) => {
            for (k, v) in map {
                storable_text(field, k, false)?;
                storable_json(field, v)?;
            }
            true
        }
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(InvalidInput::new(field, "must not contain NUL characters"))
    }
}

/// The case-insensitive key under which a SCIM `userName` must be unique in an organization.
///
/// RFC 7643 §4.1.1 makes `userName` caseExact=false; full Unicode lower-casing is done here,
/// once, so both stores compare the same key (SQLite's `lower()` only folds ASCII).
pub fn user_name_key(user_name: &str) -> String {
    user_name.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(name("n", "  Riverside ").as_deref(), Ok("Riverside"));
        assert!(name("n", "   ").is_err());
        assert!(name("n", "a\u{0007}b").is_err());
        assert!(name("n", &"x".repeat(MAX_NAME_CHARS + 1)).is_err());
    }

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(
            base_url("https://app.example.com/scim/v2/").as_deref(),
            Ok("https://app.example.com/scim/v2")
        );
        assert!(base_url("ftp://x").is_err());
        assert!(base_url("not a url").is_err());
        assert!(base_url("https://user:pw@host/scim").is_err());
        let e = base_url("https://user:se cret@ho st/x")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("se cret"), "{e}");
    }

    #[test]
    fn storable_refuses_nul_and_overlong() {
        assert!(storable_text("x", "fine", true).is_ok());
        assert!(storable_text("x", "a\0b", false).is_err());
        assert!(storable_text("x", &"y".repeat(MAX_INDEXED_BYTES + 1), true).is_err());
        assert!(storable_text("x", &"y".repeat(MAX_INDEXED_BYTES + 1), false).is_ok());
        assert!(storable_json("x", &serde_json::json!({ "a": ["ok", { "b\u{0}": 1 }] })).is_err());
        assert!(
            storable_json("x", &serde_json::json!({ "a": ["ok", { "b": "c\u{0}" }] })).is_err()
        );
        assert!(storable_json("x", &serde_json::json!({ "a": ["ok", { "b": "c" }] })).is_ok());
    }

    #[test]
    fn user_name_key_folds_unicode() {
        assert_eq!(user_name_key("ÅSA@Example.ORG"), "åsa@example.org");
    }
}
