//! Checking a filter against a schema, and evaluating it on a resource's JSON.

use super::{AttrPath, CompValue, CompareOp, Filter};
use crate::error::{ScimError, ScimResult};
use crate::schema::{AttrDef, AttrType, ResourceSchema};
use serde_json::Value;
use std::cmp::Ordering;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Where paths are looked up: the resource itself, or one value of a multi-valued attribute
/// (inside `attr[...]`).
#[derive(Clone, Copy)]
enum Scope {
    Root,
    Within(&'static AttrDef),
}

/// A path resolved against the schema.
struct Resolved<'p> {
    /// The extension URN whose object holds the attribute, if it is an extension attribute.
    extension: Option<&'static str>,
    /// The top-level attribute (or, within a value filter, the sub-attribute).
    top: &'static AttrDef,
    /// The sub-attribute named by the path, or `value` implied for complex attributes.
    leaf: Option<&'static AttrDef>,
    path: &'p AttrPath,
}

impl Resolved<'_> {
    /// The definition whose type and case-exactness govern comparison.
    fn compared(&self) -> &'static AttrDef {
        self.leaf.unwrap_or(self.top)
    }
}

fn resolve<'p>(
    path: &'p AttrPath,
    schema: &ResourceSchema,
    scope: Scope,
) -> ScimResult<Resolved<'p>> {
    let unknown = || ScimError::invalid_filter(format!("unknown attribute {path}"));
    let (extension, top) = match scope {
        Scope::Root => {
            let top = schema
                .attribute(path.uri.as_deref(), &path.name)
                .ok_or_else(unknown)?;
            let extension = path
                .uri
                .as_deref()
                .filter(|u| schema.is_extension(u))
                .and_then(|u| {
                    schema
                        .extensions
                        .iter()
                        .find(|e| e.id.eq_ignore_ascii_case(u))
                })
                .map(|e| e.id);
            (extension, top)
        }
        Scope::Within(parent) => {
            if path.uri.is_some() || path.sub.is_some() {
                return Err(ScimError::invalid_filter(format!(
                    "{path} cannot be used inside a value filter on {}",
                    parent.name
                )));
            }
            (None, parent.sub(&path.name).ok_or_else(unknown)?)
        }
    };
    let leaf = match &path.sub {
        Some(sub) => Some(top.sub(sub).ok_or_else(unknown)?),
        None if top.ty == AttrType::Complex => top.sub("value"),
        None => None,
    };
    Ok(Resolved {
        extension,
        top,
        leaf,
        path,
    })
}

/// Checks that every attribute exists and every comparison suits its attribute's type.
pub fn validate(filter: &Filter, schema: &ResourceSchema) -> ScimResult<()> {
    check(filter, schema, Scope::Root)
}

fn check(filter: &Filter, schema: &ResourceSchema, scope: Scope) -> ScimResult<()> {
    match filter {
        Filter::And(l, r) | Filter::Or(l, r) => {
            check(l, schema, scope)?;
            check(r, schema, scope)
        }
        Filter::Not(inner) => check(inner, schema, scope),
        Filter::Present(path) => resolve(path, schema, scope).map(|_| ()),
        Filter::ValuePath(path, inner) => {
            let r = resolve(path, schema, scope)?;
            if r.top.ty != AttrType::Complex {
                return Err(ScimError::invalid_filter(format!(
                    "{path} has no sub-attributes to filter on"
                )));
            }
            check(inner, schema, Scope::Within(r.top))
        }
        Filter::Compare(path, op, value) => {
            let r = resolve(path, schema, scope)?;
            if r.top.ty == AttrType::Complex && r.leaf.is_none() {
                return Err(ScimError::invalid_filter(format!(
                    "{path} is complex; compare one of its sub-attributes"
                )));
            }
            check_comparison(r.compared(), path, *op, value)
        }
    }
}

fn check_comparison(
    def: &AttrDef,
    path: &AttrPath,
    op: CompareOp,
    value: &CompValue,
) -> ScimResult<()> {
    let refuse = |why: &str| {
        Err(ScimError::invalid_filter(format!(
            "{path} {} {value}: {why}",
            op.as_str()
        )))
    };
    if *value == CompValue::Null {
        return if matches!(op, CompareOp::Eq | CompareOp::Ne) {
            Ok(())
        } else {
            refuse("null can only be compared with eq or ne")
        };
    }
    match def.ty {
        AttrType::Boolean => match (op, value) {
            (CompareOp::Eq | CompareOp::Ne, CompValue::Bool(_)) => Ok(()),
            (CompareOp::Eq | CompareOp::Ne, _) => refuse("the attribute is boolean"),
            _ => refuse("booleans can only be compared with eq or ne"),
        },
        AttrType::Integer | AttrType::Decimal => match value {
            CompValue::Number(_) if !op.is_substring() => Ok(()),
            CompValue::Number(_) => refuse("co, sw and ew apply to strings"),
            _ => refuse("the attribute is a number"),
        },
        AttrType::DateTime => match value {
            CompValue::Str(s) if !op.is_substring() => match OffsetDateTime::parse(s, &Rfc3339) {
                Ok(_) => Ok(()),
                Err(_) => refuse("the value is not an RFC 3339 date-time"),
            },
            CompValue::Str(_) => refuse("co, sw and ew apply to strings"),
            _ => refuse("the attribute is a date-time; give it as a string"),
        },
        AttrType::String | AttrType::Reference | AttrType::Binary => match value {
            CompValue::Str(_) => Ok(()),
            _ => refuse("the attribute is a string; give the value in double quotes"),
        },
        AttrType::Complex => refuse("the attribute is complex"),
    }
}

/// Checks a value filter (`attr[...]`) whose paths are sub-attributes of `parent`.
pub fn validate_within(
    filter: &Filter,
    parent: &'static AttrDef,
    schema: &ResourceSchema,
) -> ScimResult<()> {
    check(filter, schema, Scope::Within(parent))
}

/// Whether one value of the multi-valued attribute `parent` matches a value filter.
pub fn matches_within(
    filter: &Filter,
    item: &Value,
    parent: &'static AttrDef,
    schema: &ResourceSchema,
) -> bool {
    eval(filter, item, schema, Scope::Within(parent))
}

/// Looks up a key in a JSON object ignoring case (attribute names are case-insensitive).
pub(crate) fn get_ci<'v>(obj: &'v Value, key: &str) -> Option<&'v Value> {
    let map = obj.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The JSON node the resolved path's top-level attribute lives in.
fn base<'v>(resource: &'v Value, r: &Resolved<'_>) -> Option<&'v Value> {
    match r.extension {
        Some(urn) => get_ci(resource, urn),
        None => Some(resource),
    }
}

/// Every value the path reaches (multi-valued attributes give several), nulls left out.
fn values<'v>(node: &'v Value, r: &Resolved<'_>) -> Vec<&'v Value> {
    let Some(top) = base(node, r).and_then(|b| get_ci(b, r.top.name)) else {
        return Vec::new();
    };
    let items: Vec<&Value> = match top {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let leaf_name = r.path.sub.as_deref().or(r.leaf.map(|l| l.name));
    let mut out = Vec::new();
    for item in items {
        let v = match (r.top.ty, leaf_name) {
            (AttrType::Complex, Some(sub)) => get_ci(item, sub),
            _ => Some(item),
        };
        match v {
            Some(Value::Array(vs)) => out.extend(vs.iter().filter(|v| !v.is_null())),
            Some(Value::Null) | None => {}
            Some(v) => out.push(v),
        }
    }
    out
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(present),
        Value::Object(o) => o.values().any(present),
        _ => true,
    }
}

/// Whether `resource` matches `filter`. Call [`validate`] first: attributes it would refuse
/// simply do not match here.
pub fn matches(filter: &Filter, resource: &Value, schema: &ResourceSchema) -> bool {
    eval(filter, resource, schema, Scope::Root)
}

fn eval(filter: &Filter, node: &Value, schema: &ResourceSchema, scope: Scope) -> bool {
    match filter {
        Filter::And(l, r) => eval(l, node, schema, scope) && eval(r, node, schema, scope),
        Filter::Or(l, r) => eval(l, node, schema, scope) || eval(r, node, schema, scope),
        Filter::Not(inner) => !eval(inner, node, schema, scope),
        Filter::Present(path) => match resolve(path, schema, scope) {
            Ok(r) => {
                if path.sub.is_none() {
                    base(node, &r)
                        .and_then(|b| get_ci(b, r.top.name))
                        .is_some_and(present)
                } else {
                    values(node, &r).into_iter().any(present)
                }
            }
            Err(_) => false,
        },
        Filter::ValuePath(path, inner) => match resolve(path, schema, scope) {
            Ok(r) => {
                let Some(top) = base(node, &r).and_then(|b| get_ci(b, r.top.name)) else {
                    return false;
                };
                let items: Vec<&Value> = match top {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                items
                    .into_iter()
                    .any(|item| eval(inner, item, schema, Scope::Within(r.top)))
            }
            Err(_) => false,
        },
        Filter::Compare(path, op, value) => match resolve(path, schema, scope) {
            Ok(r) => {
                let def = r.compared();
                let vals = values(node, &r);
                match (op, value) {
                    (CompareOp::Eq, CompValue::Null) => vals.is_empty(),
                    (CompareOp::Ne, CompValue::Null) => !vals.is_empty(),
                    // ne is the negation of eq, so absent attributes are "not equal".
                    (CompareOp::Ne, _) => {
                        !vals.iter().any(|v| compare(def, CompareOp::Eq, v, value))
                    }
                    _ => vals.iter().any(|v| compare(def, *op, v, value)),
                }
            }
            Err(_) => false,
        },
    }
}

/// Compares one stored value with a literal under the attribute's type.
pub(crate) fn compare(def: &AttrDef, op: CompareOp, stored: &Value, literal: &CompValue) -> bool {
    match (def.ty, literal) {
        (AttrType::Boolean, CompValue::Bool(b)) => {
            let s = match stored {
                Value::Bool(v) => Some(*v),
                Value::String(s) => {
                    s.parse::<bool>()
                        .ok()
                        .or_else(|| match s.to_ascii_lowercase().as_str() {
                            "true" => Some(true),
                            "false" => Some(false),
                            _ => None,
                        })
                }
                _ => None,
            };
            s.is_some_and(|s| (s == *b) == (op == CompareOp::Eq))
        }
        (AttrType::Integer | AttrType::Decimal, CompValue::Number(n)) => {
            match (stored.as_f64(), n.as_f64()) {
                (Some(a), Some(b)) => ordering_holds(op, a.partial_cmp(&b)),
                _ => false,
            }
        }
        (AttrType::DateTime, CompValue::Str(s)) => {
            let a = stored
                .as_str()
                .and_then(|v| OffsetDateTime::parse(v, &Rfc3339).ok());
            let b = OffsetDateTime::parse(s, &Rfc3339).ok();
            match (a, b) {
                (Some(a), Some(b)) => ordering_holds(op, Some(a.cmp(&b))),
                _ => false,
            }
        }
        (_, CompValue::Str(s)) => {
            let Some(v) = stored.as_str() else {
                return false;
            };
            if def.case_exact {
                string_op(op, v, s)
            } else {
                string_op(op, &v.to_lowercase(), &s.to_lowercase())
            }
        }
        _ => false,
    }
}

fn string_op(op: CompareOp, a: &str, b: &str) -> bool {
    match op {
        CompareOp::Eq => a == b,
        CompareOp::Ne => a != b,
        CompareOp::Co => a.contains(b),
        CompareOp::Sw => a.starts_with(b),
        CompareOp::Ew => a.ends_with(b),
        _ => ordering_holds(op, Some(a.cmp(b))),
    }
}

fn ordering_holds(op: CompareOp, ord: Option<Ordering>) -> bool {
    let Some(ord) = ord else { return false };
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}
