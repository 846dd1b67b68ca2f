//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5): which attributes a response carries.

use super::error::{ScimError, ScimResult};
use super::filter::{AttrPath, parse_path};
use super::schema::{AttrDef, ResourceSchema, Returned};
use serde_json::{Map, Value};

/// A parsed `attributes` / `excludedAttributes` pair.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    only: Option<Vec<AttrPath>>,
    excluded: Vec<AttrPath>,
}

fn parse_list(text: Option<&str>) -> ScimResult<Option<Vec<AttrPath>>> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    text.split(',')
        .map(|p| {
            let path = parse_path(p.trim()).map_err(|e| ScimError::invalid_value(e.detail))?;
            if path.filter.is_some() {
                return Err(ScimError::invalid_value(format!(
                    "{p:?}: filters are not allowed here"
                )));
            }
            Ok(path.attr)
        })
        .collect::<ScimResult<Vec<_>>>()
        .map(Some)
}

impl Projection {
    /// Parses the two query parameters.
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> ScimResult<Self> {
        Ok(Self {
            only: parse_list(attributes)?,
            excluded: parse_list(excluded)?.unwrap_or_default(),
        })
    }

    /// Whether `attribute` (a top-level name) is explicitly excluded.
    pub fn excludes(&self, name: &str) -> bool {
        self.excluded
            .iter()
            .any(|p| p.sub.is_none() && p.name.eq_ignore_ascii_case(name))
    }

    /// Applies the projection to a full document.
    pub fn apply(&self, doc: Value, schema: &ResourceSchema) -> Value {
        let Value::Object(mut map) = doc else {
            return doc;
        };
        let always = |name: &str| {
            name == "schemas"
                || schema
                    .attribute(None, name)
                    .is_some_and(|d: &AttrDef| d.returned == Returned::Always)
        };
        if let Some(only) = &self.only {
            let mut out = Map::new();
            for (k, v) in map.iter() {
                if always(k) {
                    out.insert(k.clone(), v.clone());
                    continue;
                }
                let is_ext = schema.is_extension(k);
                let wanted: Vec<&AttrPath> = only
                    .iter()
                    .filter(|p| {
                        if is_ext {
                            p.uri.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(k))
                                || p.name.eq_ignore_ascii_case(k)
                        } else {
                            p.name.eq_ignore_ascii_case(k)
                                && p.uri
                                    .as_deref()
                                    .is_none_or(|u| u.eq_ignore_ascii_case(schema.core.id))
                        }
                    })
                    .collect();
                if wanted.is_empty() {
                    continue;
                }
                if is_ext {
                    // urn:...:User (whole extension) or urn:...:User:attr (parts).
                    let whole = wanted
                        .iter()
                        .any(|p| p.name.eq_ignore_ascii_case(k) || p.uri.is_none());
                    if whole {
                        out.insert(k.clone(), v.clone());
                    } else if let Value::Object(ext) = v {
                        let kept: Map<String, Value> = ext
                            .iter()
                            .filter(|(ek, _)| {
                                wanted.iter().any(|p| p.name.eq_ignore_ascii_case(ek))
                            })
                            .map(|(a, b)| (a.clone(), b.clone()))
                            .collect();
                        if !kept.is_empty() {
                            out.insert(k.clone(), Value::Object(kept));
                        }
                    }
                    continue;
                }
                if wanted.iter().any(|p| p.sub.is_none()) {
                    out.insert(k.clone(), v.clone());
                } else {
                    out.insert(k.clone(), keep_subs(v, &wanted));
                }
            }
            map = out;
        }
        for p in &self.excluded {
            if always(&p.name) {
                continue;
            }
            let key = map
                .keys()
                .find(|k| k.eq_ignore_ascii_case(&p.name))
                .cloned();
            if let Some(key) = key {
                match &p.sub {
                    None => {
                        map.remove(&key);
                    }
                    Some(sub) => {
                        if let Some(v) = map.get_mut(&key) {
                            drop_sub(v, sub);
                        }
                    }
                }
            }
        }
        Value::Object(map)
    }
}

fn keep_subs(v: &Value, wanted: &[&AttrPath]) -> Value {
    let keep = |o: &Map<String, Value>| -> Value {
        Value::Object(
            o.iter()
                .filter(|(k, _)| {
                    wanted
                        .iter()
                        .any(|p| p.sub.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(k)))
                })
                .map(|(a, b)| (a.clone(), b.clone()))
                .collect(),
        )
    };
    match v {
        Value::Object(o) => keep(o),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| i.as_object().map(keep).unwrap_or_else(|| i.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn drop_sub(v: &mut Value, sub: &str) {
    match v {
        Value::Object(o) => {
            let key = o.keys().find(|k| k.eq_ignore_ascii_case(sub)).cloned();
            if let Some(k) = key {
                o.remove(&k);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| drop_sub(i, sub)),
        _ => {}
    }
}
