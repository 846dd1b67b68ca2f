//! Per-target attribute mapping: the default outbound document (core and enterprise
//! attributes, as the source gave them) adjusted by a connection's overrides — drop, copy from
//! another attribute (a rename), a constant, or a template such as
//! `{givenName}.{familyName}@{domain}`.
//!
//! Paths are dotted (`name.givenName`); an extension attribute is written with its schema URN,
//! `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`.

use crate::domain::AttributeRule;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Short names templates may use for nested core attributes.
const ALIASES: &[(&str, &str)] = &[
    ("givenName", "name.givenName"),
    ("familyName", "name.familyName"),
    ("formattedName", "name.formatted"),
    ("email", "emails.value"),
    ("phoneNumber", "phoneNumbers.value"),
];

/// Splits a path into the keys to walk: an extension URN is one key.
fn keys(path: &str) -> Vec<String> {
    if path.starts_with("urn:")
        && let Some(i) = path.rfind(':')
    {
        let mut out = vec![path[..i].to_string()];
        out.extend(path[i + 1..].split('.').map(str::to_string));
        return out;
    }
    path.split('.').map(str::to_string).collect()
}

/// The value at `path` in `doc`; in a multi-valued attribute, the primary element's (else
/// the first one's).
pub fn get_path(doc: &Value, path: &str) -> Option<Value> {
    let mut node = doc;
    for key in keys(path) {
        if let Value::Array(items) = node {
            node = items
                .iter()
                .find(|i| i.get("primary").and_then(Value::as_bool) == Some(true))
                .or_else(|| items.first())?;
        }
        node = node
            .as_object()?
            .iter()
            .find_map(|(k, v)| k.eq_ignore_ascii_case(&key).then_some(v))?;
    }
    match node {
        Value::Null => None,
        v => Some(v.clone()),
    }
}

/// Sets (or with `None`, removes) the value at `path`, creating objects on the way.
fn set_path(doc: &mut Value, path: &str, value: Option<Value>) {
    let keys = keys(path);
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut node = doc;
    for key in parents {
        let Some(map) = node.as_object_mut() else {
            return;
        };
        if value.is_none() && !map.contains_key(key) {
            return;
        }
        node = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Some(map) = node.as_object_mut() {
        match value {
            Some(v) => {
                map.insert(last.clone(), v);
            }
            None => {
                map.remove(last);
            }
        }
    }
}

/// Why a template cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {template:?} {kind}")]
pub struct TemplateError {
    /// The template as configured.
    pub template: String,
    /// What is wrong with it.
    pub kind: TemplateFault,
}

/// What is wrong with a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateFault {
    /// A `}` with no `{` before it.
    #[error("has an unmatched '}}'")]
    Unmatched,
    /// A `{` with no `}` after it.
    #[error("has an unclosed '{{'")]
    Unclosed,
    /// A name with no value in this document.
    #[error("needs {0:?}, which has no value here")]
    NoValue(String),
}

/// Why attribute rules are refused, or could not be applied to a user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    /// A path scimdesk owns (`externalId`, `schemas`) or an empty one.
    #[error("attribute {0:?} cannot be overridden")]
    Reserved(String),
    /// A template whose braces do not match.
    #[error(transparent)]
    Template(TemplateError),
    /// A template that failed for this user, at the attribute it sets.
    #[error("{path}: {error}")]
    At {
        /// The attribute path.
        path: String,
        /// Why.
        error: TemplateError,
    },
}

/// Renders a template: `{name}` is a variable, an alias, or an attribute path of the local
/// document; `{{` and `}}` are literal braces. A name with no value is an error that says so.
pub fn render_template(
    template: &str,
    doc: &Value,
    variables: &BTreeMap<String, String>,
) -> Result<String, TemplateError> {
    let broken = |kind| TemplateError {
        template: template.to_string(),
        kind,
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            return Err(broken(TemplateFault::Unmatched));
        }
        let end = tail
            .find('}')
            .ok_or_else(|| broken(TemplateFault::Unclosed))?;
        let name = tail[1..end].trim();
        out.push_str(
            &lookup(name, doc, variables)
                .ok_or_else(|| broken(TemplateFault::NoValue(name.to_string())))?,
        );
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The attribute path an alias stands for (or the name itself).
fn unalias(name: &str) -> &str {
    ALIASES
        .iter()
        .find(|(a, _)| *a == name)
        .map(|(_, p)| *p)
        .unwrap_or(name)
}

fn lookup(name: &str, doc: &Value, variables: &BTreeMap<String, String>) -> Option<String> {
    if let Some(v) = variables.get(name) {
        return Some(v.clone());
    }
    match get_path(doc, unalias(name))? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Checks rules before they are saved, so a typo is refused at `connection set` rather than
/// found on the first delivery.
pub fn validate(rules: &BTreeMap<String, AttributeRule>) -> Result<(), AttributeError> {
    for (path, rule) in rules {
        if path.is_empty() || path == "externalId" || path == "schemas" {
            return Err(AttributeError::Reserved(path.clone()));
        }
        if let AttributeRule::Template(t) = rule {
            // Checks the braces; names are checked per user.
            let braces = render_template(t, &Value::Null, &BTreeMap::new());
            if let Err(e) = braces
                && !matches!(e.kind, TemplateFault::NoValue(_))
            {
                return Err(AttributeError::Template(e));
            }
        }
    }
    Ok(())
}

/// Applies `rules` to `doc` (the default outbound document); sources are read from the
/// document as it was before any rule.
pub fn apply(
    doc: &mut Value,
    rules: &BTreeMap<String, AttributeRule>,
    variables: &BTreeMap<String, String>,
) -> Result<(), AttributeError> {
    if rules.is_empty() {
        return Ok(());
    }
    let source = doc.clone();
    for (path, rule) in rules {
        let value = match rule {
            AttributeRule::Drop => None,
            AttributeRule::From(from) => get_path(&source, unalias(from)),
            AttributeRule::Const(v) => Some(v.clone()),
            AttributeRule::Template(t) => Some(Value::String(
                render_template(t, &source, variables).map_err(|e| AttributeError::At {
                    path: path.clone(),
                    error: e,
                })?,
            )),
        };
        set_path(doc, path, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(v: Value) -> BTreeMap<String, AttributeRule> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rename_constant_drop_and_template() {
        let mut doc = json!({
            "userName": "ann@idp.example",
            "name": {"givenName": "Ann", "familyName": "Lee"},
            "title": "RN",
            "emails": [{"value": "x@a", "primary": false}, {"value": "ann@a", "primary": true}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "ICU"}
        });
        let vars: BTreeMap<String, String> =
            [("domain".to_string(), "riverside.org".to_string())].into();
        apply(
            &mut doc,
            &rules(json!({
                "userName": {"template": "{givenName}.{familyName}@{domain}"},
                "title": "drop",
                "nickName": {"from": "email"},
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter": {"const": "4711"},
                "displayName": {"from": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}
            })),
            &vars,
        )
        .unwrap();
        assert_eq!(doc["userName"], "Ann.Lee@riverside.org");
        assert!(doc.get("title").is_none());
        assert_eq!(doc["nickName"], "ann@a");
        assert_eq!(
            doc["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            json!({"department": "ICU", "costCenter": "4711"})
        );
        assert_eq!(doc["displayName"], "ICU");
    }

    #[test]
    fn missing_template_values_and_bad_braces_are_clear_errors() {
        let mut doc = json!({"userName": "u"});
        let e = apply(
            &mut doc,
            &rules(json!({"userName": {"template": "{givenName}@x"}})),
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("userName") && e.contains("givenName"), "{e}");
        assert!(validate(&rules(json!({"a": {"template": "{x"}}))).is_err());
        assert!(validate(&rules(json!({"a": {"template": "{{literal}} {x}"}}))).is_ok());
        assert!(validate(&rules(json!({"externalId": "drop"}))).is_err());
        assert_eq!(
            render_template("{{a}}", &Value::Null, &BTreeMap::new()).unwrap(),
            "{a}"
        );
    }
}
