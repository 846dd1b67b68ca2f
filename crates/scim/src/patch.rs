//! SCIM PATCH (RFC 7644 §3.5.2) applied to a canonical resource document.
//!
//! All operations apply to a copy; the first failure discards it, so a request changes all or
//! nothing. Besides the RFC, this accepts what real identity providers send: capitalised `op`
//! values (`"Replace"`), string booleans, path-less replace (`{"active": false}`), extension
//! attributes named without their URN (`manager`), remove-by-value for group members
//! (`{"op":"Remove","path":"members","value":[{"value":"id"}]}`), and `emails[type eq "work"].value`
//! on a user who has no work e-mail yet (the value is created).

use super::error::{ScimError, ScimResult};
use super::filter::{
    AttrPath, CompValue, CompareOp, Filter, matches_within, parse_path, validate_within,
};
use super::resource::{client_writable, coerce, normalize_primary, set_schemas};
use super::schema::{AttrDef, AttrType, ResourceSchema};
use serde_json::{Map, Value};

/// The PatchOp message schema URN.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The most operations one request may carry.
pub const MAX_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Replace,
}

/// Where an operation points, resolved against the schema.
struct Target {
    /// Canonical URN of the extension holding the attribute, if any.
    extension: Option<&'static str>,
    top: &'static AttrDef,
    /// `name.familyName`: the sub-attribute of a plain path.
    sub: Option<&'static AttrDef>,
    filter: Option<Filter>,
    /// `emails[...].value`: the sub-attribute after a value filter.
    sub_after: Option<&'static AttrDef>,
}

fn resolve(
    path: &AttrPath,
    schema: &ResourceSchema,
) -> ScimResult<(Option<&'static str>, &'static AttrDef)> {
    let unknown = || ScimError::invalid_path(format!("unknown attribute {path}"));
    match path.uri.as_deref() {
        Some(uri) => {
            let def = schema
                .attribute(Some(uri), &path.name)
                .ok_or_else(unknown)?;
            let ext = schema
                .extensions
                .iter()
                .find(|e| e.id.eq_ignore_ascii_case(uri))
                .map(|e| e.id);
            Ok((ext, def))
        }
        None => match schema.attribute(None, &path.name) {
            Some(def) => Ok((None, def)),
            // An extension attribute named without its URN, if exactly one extension has it.
            None => {
                let mut found = schema.extensions.iter().filter_map(|e| {
                    super::schema::find(e.attributes, &path.name).map(|d| (e.id, d))
                });
                match (found.next(), found.next()) {
                    (Some((ext, def)), None) => Ok((Some(ext), def)),
                    _ => Err(unknown()),
                }
            }
        },
    }
}

fn target(path_text: &str, schema: &ResourceSchema) -> ScimResult<Target> {
    let path = parse_path(path_text)?;
    let (extension, top) = resolve(&path.attr, schema)?;
    let sub =
        match &path.attr.sub {
            Some(s) => Some(top.sub(s).ok_or_else(|| {
                ScimError::invalid_path(format!("unknown attribute {}", path.attr))
            })?),
            None => None,
        };
    if let Some(f) = &path.filter {
        if top.ty != AttrType::Complex || !top.multi_valued {
            return Err(ScimError::invalid_path(format!(
                "{} is not a multi-valued complex attribute",
                top.name
            )));
        }
        validate_within(f, top, schema).map_err(|e| ScimError::invalid_path(e.detail))?;
    }
    let sub_after = match &path.sub_after_filter {
        Some(s) => Some(top.sub(s).ok_or_else(|| {
            ScimError::invalid_path(format!("{} has no sub-attribute {s}", top.name))
        })?),
        None => None,
    };
    let writable = client_writable(top)
        && sub.is_none_or(client_writable)
        && sub_after.is_none_or(client_writable);
    if !writable {
        return Err(ScimError::mutability(format!("{path_text} is read-only")));
    }
    Ok(Target {
        extension,
        top,
        sub,
        filter: path.filter,
        sub_after,
    })
}

/// Applies a PatchOp request to `doc` (canonical), returning the new document.
pub fn apply(doc: &Value, request: &Value, schema: &ResourceSchema) -> ScimResult<Value> {
    let Value::Object(req) = request else {
        return Err(ScimError::invalid_syntax("the body must be a JSON object"));
    };
    let schemas = get_ci(req, "schemas").and_then(Value::as_array);
    if !schemas.is_some_and(|s| {
        s.iter().any(|u| {
            u.as_str()
                .is_some_and(|u| u.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
        })
    }) {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must be [\"{PATCH_OP_SCHEMA}\"]"
        )));
    }
    let ops = get_ci(req, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("Operations must be a list"))?;
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax("Operations is empty"));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::bad_request(
            super::ScimType::TooMany,
            format!("at most {MAX_OPERATIONS} operations per request"),
        ));
    }
    let Value::Object(mut out) = doc.clone() else {
        return Err(ScimError::status(500, "stored resource is not an object"));
    };
    for (i, op) in ops.iter().enumerate() {
        apply_one(&mut out, op, schema).map_err(|mut e| {
            e.detail = format!("operation {}: {}", i + 1, e.detail);
            e
        })?;
    }
    set_schemas(&mut out, schema);
    Ok(Value::Object(out))
}

fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn apply_one(doc: &mut Map<String, Value>, op: &Value, schema: &ResourceSchema) -> ScimResult<()> {
    let Value::Object(op) = op else {
        return Err(ScimError::invalid_syntax(
            "each operation must be an object",
        ));
    };
    let kind = match get_ci(op, "op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("add") => Op::Add,
        Some("remove") => Op::Remove,
        Some("replace") => Op::Replace,
        Some(other) => {
            return Err(ScimError::invalid_syntax(format!(
                "unknown op {other:?}; use add, remove or replace"
            )));
        }
        None => return Err(ScimError::invalid_syntax("op is missing")),
    };
    let value = get_ci(op, "value");
    let path = match get_ci(op, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.as_str()),
        Some(_) => return Err(ScimError::invalid_path("path must be a string")),
    };
    match (kind, path) {
        (Op::Remove, None) => Err(ScimError::no_target("remove needs a path")),
        (_, None) => {
            // Path-less add/replace: each key of the value object is a path of its own.
            let Some(Value::Object(attrs)) = value else {
                return Err(ScimError::invalid_value(
                    "without a path, value must be an object of attributes",
                ));
            };
            for (key, v) in attrs {
                if key.eq_ignore_ascii_case("schemas") {
                    continue;
                }
                if let Some(ext) = schema
                    .extensions
                    .iter()
                    .find(|e| e.id.eq_ignore_ascii_case(key))
                {
                    let Value::Object(inner) = v else {
                        return Err(ScimError::invalid_value(format!("{key} must be an object")));
                    };
                    for (k, iv) in inner
                        .iter()
                        .filter(|(k, _)| !k.eq_ignore_ascii_case("schemas"))
                    {
                        let t = target(&format!("{}:{k}", ext.id), schema)?;
                        write(doc, &t, kind, Some(iv))?;
                    }
                    continue;
                }
                // Okta repeats read-only attributes (`id`) in path-less replaces: an unchanged
                // value is no attempt to modify it.
                if let Ok(path) = parse_path(key)
                    && let Ok((_, def)) = resolve(&path.attr, schema)
                    && !client_writable(def)
                {
                    if def.name == "meta" || get_ci(doc, def.name) == Some(v) {
                        continue;
                    }
                    return Err(ScimError::mutability(format!("{key} is read-only")));
                }
                let t = target(key, schema)?;
                write(doc, &t, kind, Some(v))?;
            }
            Ok(())
        }
        // The path names a whole extension (`urn:...:enterprise:2.0:User`).
        (_, Some(p)) if schema.is_extension(p.trim()) => {
            let ext = schema
                .extensions
                .iter()
                .find(|e| e.id.eq_ignore_ascii_case(p.trim()));
            let Some(ext) = ext else { return Ok(()) };
            if kind == Op::Remove {
                let key = doc.keys().find(|k| k.eq_ignore_ascii_case(ext.id)).cloned();
                if let Some(k) = key {
                    doc.remove(&k);
                }
                return Ok(());
            }
            let Some(Value::Object(inner)) = value else {
                return Err(ScimError::invalid_value(format!(
                    "{p}: value must be an object"
                )));
            };
            for (k, iv) in inner
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("schemas"))
            {
                let t = target(&format!("{}:{k}", ext.id), schema)?;
                write(doc, &t, kind, Some(iv))?;
            }
            Ok(())
        }
        (Op::Remove, Some(p)) => {
            let t = target(p, schema)?;
            remove(doc, &t, value)
        }
        (_, Some(p)) => {
            if value.is_none() {
                return Err(ScimError::invalid_value(format!("{p}: value is missing")));
            }
            let t = target(p, schema)?;
            write(doc, &t, kind, value)
        }
    }
}

/// The object the target's top-level attribute lives in, created when `create`.
fn container<'d>(
    doc: &'d mut Map<String, Value>,
    t: &Target,
    create: bool,
) -> Option<&'d mut Map<String, Value>> {
    match t.extension {
        None => Some(doc),
        Some(urn) => {
            let key = doc.keys().find(|k| k.eq_ignore_ascii_case(urn)).cloned();
            let key = match key {
                Some(k) => k,
                None if create => {
                    doc.insert(urn.to_string(), Value::Object(Map::new()));
                    urn.to_string()
                }
                None => return None,
            };
            doc.get_mut(&key).and_then(Value::as_object_mut)
        }
    }
}

fn write(
    doc: &mut Map<String, Value>,
    t: &Target,
    kind: Op,
    value: Option<&Value>,
) -> ScimResult<()> {
    let value = value.unwrap_or(&Value::Null);
    if value.is_null() {
        // Replacing with null unassigns (RFC 7643 §2.5); adding null adds nothing.
        return if kind == Op::Replace {
            remove(doc, t, None)
        } else {
            Ok(())
        };
    }
    let Some(obj) = container(doc, t, true) else {
        return Err(ScimError::status(500, "cannot create the extension object"));
    };
    let top = t.top;
    if let Some(filter) = &t.filter {
        return write_filtered(obj, t, filter, value);
    }
    if let Some(sub) = t.sub {
        if top.multi_valued {
            return Err(ScimError::invalid_path(format!(
                "{}.{}: select the values with a filter, e.g. {}[type eq \"work\"].{}",
                top.name, sub.name, top.name, sub.name
            )));
        }
        let v = coerce(sub, value)?;
        let entry = obj
            .entry(top.name.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Some(o) = entry.as_object_mut() {
            o.insert(sub.name.to_string(), v);
        }
        return Ok(());
    }
    let v = coerce(top, value)?;
    match (top.multi_valued, top.ty, kind) {
        (true, _, Op::Add) => {
            let existing = obj
                .entry(top.name.to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            if !existing.is_array() {
                *existing = Value::Array(Vec::new());
            }
            if let (Some(list), Value::Array(new)) = (existing.as_array_mut(), v) {
                let mut last_primary = None;
                for item in new {
                    if !list.iter().any(|e| same_value(e, &item)) {
                        if item.get("primary") == Some(&Value::Bool(true)) {
                            last_primary = Some(list.len());
                        }
                        list.push(item);
                    }
                }
                normalize_primary(list, last_primary);
            }
        }
        (false, AttrType::Complex, _) => {
            // RFC 7644 §3.5.2.3: sub-attributes not given are left unchanged.
            let entry = obj
                .entry(top.name.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            match (entry.as_object_mut(), v) {
                (Some(o), Value::Object(new)) => o.extend(new),
                (_, new) => *entry = new,
            }
        }
        _ => {
            obj.insert(top.name.to_string(), v);
        }
    }
    Ok(())
}

/// Two values of a multi-valued attribute are the same if their `value`s are (or, lacking one,
/// if they are equal).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The attribute values a filter of the form `a eq "x" and b eq "y"` describes, so a missing
/// value can be created; `None` for any other filter.
fn implied_values(
    filter: &Filter,
    sub_defs: &'static AttrDef,
    out: &mut Map<String, Value>,
) -> bool {
    match filter {
        Filter::Compare(path, CompareOp::Eq, value) => {
            let Some(def) = sub_defs.sub(&path.name) else {
                return false;
            };
            let v = match value {
                CompValue::Str(s) => Value::String(s.clone()),
                CompValue::Bool(b) => Value::Bool(*b),
                CompValue::Number(n) => Value::Number(n.clone()),
                CompValue::Null => return false,
            };
            out.insert(def.name.to_string(), v);
            true
        }
        Filter::And(a, b) => implied_values(a, sub_defs, out) && implied_values(b, sub_defs, out),
        _ => false,
    }
}

fn write_filtered(
    obj: &mut Map<String, Value>,
    t: &Target,
    filter: &Filter,
    value: &Value,
) -> ScimResult<()> {
    let top = t.top;
    let schema = &super::schema::USER; // within a value filter only `top`'s sub-attributes matter
    let list = obj
        .entry(top.name.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    let Some(list) = list.as_array_mut() else {
        return Ok(());
    };
    let hits: Vec<usize> = list
        .iter()
        .enumerate()
        .filter(|(_, item)| matches_within(filter, item, top, schema))
        .map(|(i, _)| i)
        .collect();
    let new_fields: Map<String, Value> = match t.sub_after {
        Some(sub) => {
            let mut m = Map::new();
            m.insert(sub.name.to_string(), coerce(sub, value)?);
            m
        }
        None => match coerce(top, value)? {
            Value::Array(mut items) if items.len() == 1 => match items.remove(0) {
                Value::Object(o) => o,
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "{}: value must be an object",
                        top.name
                    )));
                }
            },
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "{}: value must be one object",
                    top.name
                )));
            }
        },
    };
    if hits.is_empty() {
        let mut created = Map::new();
        if !implied_values(filter, top, &mut created) {
            return Err(ScimError::no_target(format!(
                "no value of {} matches the filter",
                top.name
            )));
        }
        // Add and replace both create the value the filter describes (what Entra ID expects of
        // `emails[type eq "work"].value` on a user without a work e-mail).
        created.extend(new_fields);
        let primary = created.get("primary") == Some(&Value::Bool(true));
        list.push(Value::Object(created));
        let last = list.len() - 1;
        normalize_primary(list, primary.then_some(last));
        return Ok(());
    }
    let mut last_primary = None;
    for i in hits {
        if let Some(item) = list[i].as_object_mut() {
            item.extend(new_fields.clone());
            if item.get("primary") == Some(&Value::Bool(true)) {
                last_primary = Some(i);
            }
        }
    }
    normalize_primary(list, last_primary);
    Ok(())
}

fn remove(doc: &mut Map<String, Value>, t: &Target, value: Option<&Value>) -> ScimResult<()> {
    let top = t.top;
    let Some(obj) = container(doc, t, false) else {
        return if t.filter.is_some() {
            Err(ScimError::no_target(format!(
                "no value of {} matches the filter",
                top.name
            )))
        } else {
            Ok(())
        };
    };
    if let Some(filter) = &t.filter {
        let schema = &super::schema::USER; // within a value filter only `top`'s sub-attributes matter
        let Some(list) = obj.get_mut(top.name).and_then(Value::as_array_mut) else {
            return Err(ScimError::no_target(format!(
                "no value of {} matches the filter",
                top.name
            )));
        };
        let before = list.len();
        match t.sub_after {
            Some(sub) => {
                let mut hit = false;
                for item in list
                    .iter_mut()
                    .filter(|item| matches_within(filter, item, top, schema))
                {
                    hit = true;
                    if let Some(o) = item.as_object_mut() {
                        o.remove(sub.name);
                    }
                }
                if !hit {
                    return Err(ScimError::no_target(format!(
                        "no value of {} matches the filter",
                        top.name
                    )));
                }
            }
            None => {
                list.retain(|item| !matches_within(filter, item, top, schema));
                if list.len() == before {
                    return Err(ScimError::no_target(format!(
                        "no value of {} matches the filter",
                        top.name
                    )));
                }
            }
        }
        if list.is_empty() {
            obj.remove(top.name);
        }
        return Ok(());
    }
    if let Some(sub) = t.sub {
        if let Some(o) = obj.get_mut(top.name).and_then(Value::as_object_mut) {
            o.remove(sub.name);
            if o.is_empty() {
                obj.remove(top.name);
            }
        }
        return Ok(());
    }
    // Remove-by-value on a multi-valued attribute (Entra and others for group members).
    if let (true, Some(v)) = (top.multi_valued, value.filter(|v| !v.is_null())) {
        let doomed = coerce(top, v)?;
        let doomed = doomed.as_array().cloned().unwrap_or_default();
        if let Some(list) = obj.get_mut(top.name).and_then(Value::as_array_mut) {
            list.retain(|item| !doomed.iter().any(|d| same_value(item, d)));
            if list.is_empty() {
                obj.remove(top.name);
            }
        }
        return Ok(());
    }
    obj.remove(top.name);
    Ok(())
}
