//! What a target is sent: the outbound SCIM documents of local users and groups, the hash that
//! tells an unchanged resource from a changed one, and the PATCH operations between what was
//! last sent and what should be there now.
//!
//! Outbound documents carry scimdesk's own id as `externalId`: RFC 7643 §3.1 defines it as the
//! provisioning client's identifier, and it is what the idempotent create looks up first.

use crate::domain::{Group, LifecycleState, User};
use crate::scim::convert::{group_to_doc, user_to_doc};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

/// Whether the user should be able to sign in at targets.
pub fn is_active(user: &User) -> bool {
    user.active && user.lifecycle_state == LifecycleState::Active
}

/// The document a target receives for `user` (no `id`, `meta` or `groups`: those are the
/// target's own).
pub fn user_document(user: &User) -> Value {
    let mut doc = match user_to_doc(user, None, "") {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    for k in ["id", "meta", "groups"] {
        doc.remove(k);
    }
    doc.insert("externalId".into(), json!(user.id.to_string()));
    doc.insert("active".into(), json!(is_active(user)));
    Value::Object(doc)
}

/// The document a target receives for `group`, whose members are given by their ids at the
/// target (sorted, so the hash does not depend on the order members were read in).
pub fn group_document(group: &Group, remote_members: &[String]) -> Value {
    let mut doc = match group_to_doc(group, &[], "") {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    for k in ["id", "meta"] {
        doc.remove(k);
    }
    doc.insert("externalId".into(), json!(group.id.to_string()));
    let mut members: Vec<&String> = remote_members.iter().collect();
    members.sort();
    members.dedup();
    doc.insert(
        "members".into(),
        Value::Array(members.into_iter().map(|m| json!({ "value": m })).collect()),
    );
    Value::Object(doc)
}

/// A stable hash of a document (serde_json orders object keys, so equal documents hash equal).
pub fn content_hash(doc: &Value) -> String {
    let digest = Sha256::digest(doc.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The member ids (`members[].value`) of a document.
pub fn member_values(doc: &Value) -> Vec<String> {
    doc.get("members")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| m.get("value").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// PATCH operations that turn `last` (what the target was last sent; `None` if unknown) into
/// `new`: `replace` for each changed attribute, `remove` for each dropped one, and members
/// added and removed one by one rather than the whole list replaced.
pub fn patch_operations(last: Option<&Value>, new: &Value) -> Vec<Value> {
    let empty = Map::new();
    let last_map = last.and_then(Value::as_object).unwrap_or(&empty);
    let Some(new_map) = new.as_object() else {
        return Vec::new();
    };
    let mut ops = Vec::new();
    for (k, v) in new_map {
        if k == "schemas" || k == "members" {
            continue;
        }
        if last.is_none() || last_map.get(k) != Some(v) {
            ops.push(json!({ "op": "replace", "path": k, "value": v }));
        }
    }
    for k in last_map.keys() {
        if k != "schemas" && k != "members" && !new_map.contains_key(k) {
            ops.push(json!({ "op": "remove", "path": k }));
        }
    }
    if new_map.contains_key("members") || last_map.contains_key("members") {
        let before = last.map(member_values).unwrap_or_default();
        let after = member_values(new);
        let added: Vec<String> = after
            .iter()
            .filter(|m| !before.contains(m))
            .cloned()
            .collect();
        let removed: Vec<String> = before
            .iter()
            .filter(|m| !after.contains(m))
            .cloned()
            .collect();
        ops.extend(member_operations(&added, &removed));
    }
    ops
}

/// PATCH operations that add and remove group members (by their ids at the target).
pub fn member_operations(added: &[String], removed: &[String]) -> Vec<Value> {
    let mut ops = Vec::new();
    if !added.is_empty() {
        let values: Vec<Value> = added.iter().map(|m| json!({ "value": m })).collect();
        ops.push(json!({ "op": "add", "path": "members", "value": values }));
    }
    for m in removed {
        ops.push(json!({ "op": "remove", "path": format!("members[value eq {}]", json!(m)) }));
    }
    ops
}

/// `doc` with its member list changed: `added` appended, `removed` taken out (what the target
/// holds after a member PATCH).
pub fn with_members_changed(doc: &Value, added: &[String], removed: &[String]) -> Value {
    let mut members = member_values(doc);
    members.retain(|m| !removed.contains(m));
    for a in added {
        if !members.contains(a) {
            members.push(a.clone());
        }
    }
    members.sort();
    let mut out = doc.clone();
    if let Some(m) = out.as_object_mut() {
        m.insert(
            "members".into(),
            Value::Array(members.into_iter().map(|v| json!({ "value": v })).collect()),
        );
    }
    out
}

/// A document with secrets blanked, cut to `max` bytes, for attempt excerpts.
pub fn excerpt(doc: &Value, max: usize) -> String {
    fn redact(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    let key = k.to_ascii_lowercase();
                    if key.contains("password") || key.contains("secret") || key.contains("token") {
                        *v = json!("[redacted]");
                    } else {
                        redact(v);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(redact),
            _ => {}
        }
    }
    let mut d = doc.clone();
    redact(&mut d);
    truncate(d.to_string(), max)
}

/// `s` cut to at most `max` bytes on a character boundary, marked when cut.
pub fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_replaces_changed_removes_dropped_and_diffs_members() {
        let last = json!({"schemas": ["x"], "displayName": "A", "title": "t", "members": [{"value": "1"}, {"value": "2"}]});
        let new = json!({"schemas": ["x"], "displayName": "B", "members": [{"value": "2"}, {"value": "3"}]});
        let ops = patch_operations(Some(&last), &new);
        assert_eq!(
            ops,
            vec![
                json!({"op": "replace", "path": "displayName", "value": "B"}),
                json!({"op": "remove", "path": "title"}),
                json!({"op": "add", "path": "members", "value": [{"value": "3"}]}),
                json!({"op": "remove", "path": "members[value eq \"1\"]"}),
            ]
        );
        assert!(patch_operations(Some(&new), &new).is_empty());
    }

    #[test]
    fn hash_ignores_key_order_and_excerpts_hide_secrets() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b":2,"a":1}"#).unwrap();
        assert_eq!(content_hash(&a), content_hash(&b));
        let e = excerpt(&json!({"userName": "u", "password": "hunter2"}), 100);
        assert!(!e.contains("hunter2") && e.contains("[redacted]"), "{e}");
        assert_eq!(truncate("ééé".into(), 3), "é…");
    }

    #[test]
    fn member_changes_apply_to_the_last_sent_document() {
        let doc = json!({"displayName": "g", "members": [{"value": "1"}]});
        let out = with_members_changed(&doc, &["2".into()], &["1".into()]);
        assert_eq!(member_values(&out), vec!["2".to_string()]);
    }
}
