//! Resource documents: SCIM JSON brought to canonical form against a schema.
//!
//! Canonical form is what the store keeps and every other step assumes: attribute names spelled
//! as the schema spells them, values of the schema's types (Entra's `"False"` becomes `false`),
//! multi-valued attributes as arrays, at most one `primary` value, read-only and write-only
//! attributes dropped from client input (RFC 7643 §2.2), and `schemas` listing the core schema and
//! the extensions present.

use super::error::{ScimError, ScimResult};
use super::schema::{AttrDef, AttrType, Mutability, ResourceSchema, find};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Brings one attribute's value to the schema's type. `Null` stays `Null` (= unassigned).
pub fn coerce(def: &AttrDef, value: &Value) -> ScimResult<Value> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    if def.multi_valued {
        // Values of a multi-valued complex attribute must be objects (the bare-value shortcut
        // below is for single-valued ones like `manager`).
        let element = |v: &Value| {
            if def.ty == AttrType::Complex && !v.is_object() && !v.is_null() {
                return Err(wrong_type(def, v));
            }
            coerce_single(def, v)
        };
        let items = match value {
            Value::Array(items) => items.iter().map(element).collect::<ScimResult<Vec<_>>>()?,
            single => vec![element(single)?],
        };
        let mut items: Vec<Value> = items.into_iter().filter(|v| !v.is_null()).collect();
        normalize_primary(&mut items, None);
        return Ok(Value::Array(items));
    }
    match value {
        // A single-valued attribute sent as a one-element list (Entra's `manager`).
        Value::Array(items) if items.len() == 1 => coerce_single(def, &items[0]),
        Value::Array(_) => Err(ScimError::invalid_value(format!(
            "{} takes a single value, not a list",
            def.name
        ))),
        single => coerce_single(def, single),
    }
}

fn wrong_type(def: &AttrDef, value: &Value) -> ScimError {
    let got = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    ScimError::invalid_value(format!(
        "{} must be {}, not {got}",
        def.name,
        expected(def.ty)
    ))
}

fn expected(ty: AttrType) -> &'static str {
    match ty {
        AttrType::String | AttrType::Reference | AttrType::Binary => "a string",
        AttrType::Boolean => "a boolean",
        AttrType::Decimal => "a number",
        AttrType::Integer => "an integer",
        AttrType::DateTime => "an RFC 3339 date-time string",
        AttrType::Complex => "an object",
    }
}

fn coerce_single(def: &AttrDef, value: &Value) -> ScimResult<Value> {
    match (def.ty, value) {
        (_, Value::Null) => Ok(Value::Null),
        (AttrType::String | AttrType::Reference | AttrType::Binary, Value::String(_)) => {
            Ok(value.clone())
        }
        (AttrType::Boolean, Value::Bool(_)) => Ok(value.clone()),
        // Entra ID sends booleans as "True"/"False" strings.
        (AttrType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => {
            Ok(Value::Bool(true))
        }
        (AttrType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => {
            Ok(Value::Bool(false))
        }
        (AttrType::Decimal, Value::Number(_)) => Ok(value.clone()),
        (AttrType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(value.clone()),
        (AttrType::DateTime, Value::String(s)) => match OffsetDateTime::parse(s, &Rfc3339) {
            Ok(_) => Ok(value.clone()),
            Err(_) => Err(ScimError::invalid_value(format!(
                "{} must be an RFC 3339 date-time, not {s:?}",
                def.name
            ))),
        },
        (AttrType::Complex, Value::Object(obj)) => {
            Ok(Value::Object(canonical_object(def.sub_attributes, obj)?))
        }
        // A complex attribute given its value alone (Entra's manager: "id").
        (AttrType::Complex, Value::String(_)) if def.sub("value").is_some() => {
            let mut obj = Map::new();
            obj.insert("value".into(), value.clone());
            Ok(Value::Object(obj))
        }
        _ => Err(wrong_type(def, value)),
    }
}

/// Canonical keys and typed values for the sub-attributes of a complex value; unknown keys and
/// nulls are dropped.
fn canonical_object(
    defs: &'static [AttrDef],
    obj: &Map<String, Value>,
) -> ScimResult<Map<String, Value>> {
    let mut out = Map::new();
    for (k, v) in obj {
        let Some(def) = find(defs, k) else { continue };
        let v = coerce(def, v)?;
        if !v.is_null() {
            out.insert(def.name.to_string(), v);
        }
    }
    Ok(out)
}

/// At most one value of a multi-valued attribute may be primary (RFC 7643 §2.4). `keep` is the
/// index that just became primary and wins; otherwise the first primary wins.
pub fn normalize_primary(items: &mut [Value], keep: Option<usize>) {
    let winner = keep
        .filter(|i| items.get(*i).and_then(|v| v.get("primary")) == Some(&Value::Bool(true)))
        .or_else(|| {
            items
                .iter()
                .position(|v| v.get("primary") == Some(&Value::Bool(true)))
        });
    if let Some(w) = winner {
        for (i, item) in items.iter_mut().enumerate() {
            if i != w
                && let Some(obj) = item.as_object_mut()
                && obj.get("primary") == Some(&Value::Bool(true))
            {
                obj.insert("primary".into(), Value::Bool(false));
            }
        }
    }
}

/// Whether clients may write this attribute.
pub fn client_writable(def: &AttrDef) -> bool {
    def.mutability != Mutability::ReadOnly
}

/// Canonicalizes a client's resource (POST or PUT body): known attributes only, typed,
/// read-only and write-only attributes dropped. Extension objects whose schema we do not know
/// are kept verbatim so no data is lost; they cannot be filtered on.
pub fn canonicalize(body: &Value, schema: &ResourceSchema) -> ScimResult<Value> {
    let Value::Object(input) = body else {
        return Err(ScimError::invalid_syntax("the body must be a JSON object"));
    };
    let mut out = Map::new();
    for (key, value) in input {
        if key.eq_ignore_ascii_case("schemas") {
            check_schemas(value, schema)?;
            continue;
        }
        if let Some(ext) = schema
            .extensions
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(key))
        {
            let Value::Object(obj) = value else {
                if value.is_null() {
                    continue;
                }
                return Err(ScimError::invalid_value(format!("{key} must be an object")));
            };
            let mut ext_out = Map::new();
            for (k, v) in obj {
                let Some(def) = find(ext.attributes, k) else {
                    continue;
                };
                if !client_writable(def) || def.mutability == Mutability::WriteOnly {
                    continue;
                }
                let v = coerce(def, v)?;
                if !v.is_null() {
                    ext_out.insert(def.name.to_string(), v);
                }
            }
            if !ext_out.is_empty() {
                out.insert(ext.id.to_string(), Value::Object(ext_out));
            }
            continue;
        }
        if key.len() > 4 && key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
            if value.is_object() {
                out.insert(key.clone(), value.clone());
            }
            continue;
        }
        let Some(def) = schema.attribute(None, key) else {
            continue;
        };
        if !client_writable(def) || def.mutability == Mutability::WriteOnly {
            continue;
        }
        let v = coerce(def, value)?;
        if !v.is_null() {
            out.insert(def.name.to_string(), v);
        }
    }
    set_schemas(&mut out, schema);
    for def in schema.core.attributes.iter().filter(|d| d.required) {
        if !out.contains_key(def.name) {
            return Err(ScimError::invalid_value(format!(
                "{} is required",
                def.name
            )));
        }
    }
    Ok(Value::Object(out))
}

fn check_schemas(value: &Value, schema: &ResourceSchema) -> ScimResult<()> {
    let Some(list) = value.as_array() else {
        return Err(ScimError::invalid_syntax("schemas must be a list of URNs"));
    };
    let urns: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
    if urns.len() != list.len() {
        return Err(ScimError::invalid_syntax("schemas must be a list of URNs"));
    }
    if !urns.iter().any(|u| u.eq_ignore_ascii_case(schema.core.id)) {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must include {} for a {}",
            schema.core.id, schema.name
        )));
    }
    Ok(())
}

/// Rewrites `schemas`: the core URN, then each extension whose object is present.
pub fn set_schemas(doc: &mut Map<String, Value>, schema: &ResourceSchema) {
    let mut urns = vec![Value::String(schema.core.id.into())];
    for key in doc.keys() {
        if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
            urns.push(Value::String(key.clone()));
        }
    }
    doc.insert("schemas".into(), Value::Array(urns));
}
