//! The look-up before a create, batched. Every create first asks the target whether it already
//! holds the resource (by `externalId`, then by `userName` / `displayName`), so a crash between
//! "sent" and "recorded" never makes a duplicate. One request per create would double the
//! requests of an onboarding wave; instead, the look-ups of creates running at the same time
//! go out as one filtered `GET` (`externalId eq "a" or userName eq "b" or ...`, RFC 7644 §3.4.2.2)
//! and each create picks its match out of the answer.
//!
//! Batching is group commit ([`crate::group_commit`]): a look-up waits only while another
//! batch is on the wire, so one create alone is not delayed, and a busy connection sends few
//! large requests. The
//! answer is matched here, never trusted to be filtered: a target that ignores the filter or
//! returns a partial page makes these creates look up one by one instead, and a target that
//! refuses `or` (400) is asked one key at a time from then on.

use crate::connectors::scim_client::{ScimClient, TargetError};
use crate::domain::ResourceType;
use crate::group_commit::{GroupCommit, Waiting};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};

/// Most creates whose look-ups share one request.
const MAX_BATCH: usize = 25;
/// Longest filter sent in one request (characters, before URL encoding).
const MAX_FILTER_CHARS: usize = 3000;
/// Batches on the wire at once, per resource type.
const SENDERS: usize = 2;

/// What identifies a resource at a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupKeys {
    /// scimdesk's id, sent as `externalId`.
    pub external_id: Option<String>,
    /// `userName` of a user, `displayName` of a group.
    pub name: Option<String>,
}

/// What a look-up found, and the request line to record with the attempt.
#[derive(Debug, Clone)]
pub struct Found {
    /// The resource the target holds for these keys, if any.
    pub resource: Option<Value>,
    /// The request(s) sent, redacted of nothing (filters carry names, not secrets).
    pub sent: Vec<String>,
}

type Answer = Result<Found, (TargetError, Vec<String>)>;
type Pending = Waiting<LookupKeys, Answer>;

/// Batches the look-ups of one connection.
pub struct LookupBatcher {
    /// Look-ups of users and of groups, each batched on its own (one filter per request).
    batches: [GroupCommit<LookupKeys, Answer>; 2],
    /// The target answered 400 to an `or` filter: look up one key at a time.
    or_refused: AtomicBool,
}

impl Default for LookupBatcher {
    fn default() -> Self {
        Self {
            batches: [GroupCommit::new(SENDERS), GroupCommit::new(SENDERS)],
            or_refused: AtomicBool::new(false),
        }
    }
}

fn slot(rt: ResourceType) -> usize {
    match rt {
        ResourceType::User => 0,
        ResourceType::Group => 1,
    }
}

fn name_attr(rt: ResourceType) -> &'static str {
    match rt {
        ResourceType::User => "userName",
        ResourceType::Group => "displayName",
    }
}

fn endpoint(rt: ResourceType) -> &'static str {
    match rt {
        ResourceType::User => "/Users",
        ResourceType::Group => "/Groups",
    }
}

/// The `attr eq "value"` terms of `keys`, `externalId` first.
fn terms(rt: ResourceType, keys: &LookupKeys) -> Vec<String> {
    [
        ("externalId", &keys.external_id),
        (name_attr(rt), &keys.name),
    ]
    .into_iter()
    .filter_map(|(attr, v)| v.as_ref().map(|v| format!("{attr} eq {}", json!(v))))
    .collect()
}

/// The resource among `resources` that is the one `keys` name: the one with our `externalId`,
/// else the one with the name (case-insensitively: `userName` is not case-exact).
pub fn pick(rt: ResourceType, keys: &LookupKeys, resources: &[Value]) -> Option<Value> {
    let text = |r: &Value, attr: &str| r.get(attr).and_then(Value::as_str).map(str::to_string);
    if let Some(ext) = &keys.external_id
        && let Some(r) = resources
            .iter()
            .find(|r| text(r, "externalId").as_deref() == Some(ext.as_str()))
    {
        return Some(r.clone());
    }
    let name = keys.name.as_ref()?;
    resources
        .iter()
        .find(|r| text(r, name_attr(rt)).is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .cloned()
}

/// The oldest waiting look-ups that fit one request.
fn take_batch(rt: ResourceType, q: &mut Vec<Pending>) -> Vec<Pending> {
    let mut chars = 0;
    let mut n = 0;
    for p in q.iter() {
        let len: usize = terms(rt, &p.item).iter().map(|t| t.len() + 4).sum();
        if n > 0 && (n == MAX_BATCH || chars + len > MAX_FILTER_CHARS) {
            break;
        }
        chars += len;
        n += 1;
    }
    q.drain(..n).collect()
}

impl LookupBatcher {
    /// Finds the resource `keys` name at the target, sharing the request with look-ups made
    /// at the same time. The error carries the requests sent before it.
    pub async fn find(
        &self,
        client: &ScimClient,
        rt: ResourceType,
        keys: LookupKeys,
    ) -> Result<Found, (TargetError, Vec<String>)> {
        if terms(rt, &keys).is_empty() {
            return Ok(Found {
                resource: None,
                sent: Vec::new(),
            });
        }
        self.batches[slot(rt)]
            .submit(
                keys,
                |q| take_batch(rt, q),
                |batch| self.send(client, rt, batch),
            )
            .await
            .unwrap_or_else(|| Err((TargetError::Config("look-up abandoned".into()), Vec::new())))
    }

    async fn send(&self, client: &ScimClient, rt: ResourceType, batch: Vec<Pending>) {
        if self.or_refused.load(Ordering::Relaxed) {
            for p in batch {
                let answer = one_by_one(client, rt, &p.item).await;
                p.answer(answer);
            }
            return;
        }
        let mut all: Vec<String> = Vec::new();
        for p in &batch {
            for t in terms(rt, &p.item) {
                if !all.contains(&t) {
                    all.push(t);
                }
            }
        }
        let filter = all.join(" or ");
        // Each attempt records its own part of the filter, not the whole batch's.
        let n = batch.len();
        let line = |keys: &LookupKeys| {
            let own = terms(rt, keys).join(" or ");
            match n {
                1 => format!("GET {}?filter={own}", endpoint(rt)),
                _ => format!(
                    "GET {}?filter={own} ...(one request for {n} creates)",
                    endpoint(rt)
                ),
            }
        };
        let count = u32::try_from(all.len() * 2).unwrap_or(u32::MAX);
        match client.search(rt, &filter, count).await {
            Ok((resources, total)) if total as usize <= resources.len() => {
                for p in batch {
                    let resource = pick(rt, &p.item, &resources);
                    let sent = vec![line(&p.item)];
                    p.answer(Ok(Found { resource, sent }));
                }
            }
            Ok(_) => {
                // A partial answer: it may miss a match; ask for each create alone.
                tracing::debug!("a batched look-up came back partial; looking up one by one");
                for p in batch {
                    let answer = one_by_one(client, rt, &p.item).await;
                    p.answer(answer);
                }
            }
            Err(TargetError::Http { status: 400, .. }) => {
                tracing::info!("the target refuses `or` filters; looking up one key at a time");
                self.or_refused.store(true, Ordering::Relaxed);
                for p in batch {
                    let answer = one_by_one(client, rt, &p.item).await;
                    p.answer(answer);
                }
            }
            Err(e) => {
                for p in batch {
                    let sent = vec![line(&p.item)];
                    p.answer(Err((e.clone(), sent)));
                }
            }
        }
    }
}

/// The look-up of one create: by `externalId`, then by name, one request each.
async fn one_by_one(
    client: &ScimClient,
    rt: ResourceType,
    keys: &LookupKeys,
) -> Result<Found, (TargetError, Vec<String>)> {
    let mut sent = Vec::new();
    for (attr, value) in [
        ("externalId", &keys.external_id),
        (name_attr(rt), &keys.name),
    ] {
        let Some(value) = value else { continue };
        sent.push(format!(
            "GET {}?filter={attr} eq {}",
            endpoint(rt),
            json!(value)
        ));
        match client.find_by(rt, attr, value).await {
            Ok(Some(found)) => {
                let by_ext = LookupKeys {
                    external_id: (attr == "externalId").then(|| value.clone()),
                    name: (attr != "externalId").then(|| value.clone()),
                };
                // A target that ignores the filter returns something else: check.
                let resource = pick(rt, &by_ext, std::slice::from_ref(&found));
                if resource.is_some() {
                    return Ok(Found { resource, sent });
                }
            }
            Ok(None) => {}
            Err(e) => return Err((e, sent)),
        }
    }
    Ok(Found {
        resource: None,
        sent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ext: &str, name: &str) -> LookupKeys {
        LookupKeys {
            external_id: Some(ext.into()),
            name: Some(name.into()),
        }
    }

    #[test]
    fn pick_prefers_the_external_id_over_the_name() {
        let resources = vec![
            json!({"id": "1", "userName": "ann@x", "externalId": "other"}),
            json!({"id": "2", "userName": "someone@x", "externalId": "e-ann"}),
        ];
        let found = pick(ResourceType::User, &keys("e-ann", "ann@x"), &resources);
        assert_eq!(
            found.and_then(|r| r["id"].as_str().map(str::to_string)),
            Some("2".into())
        );
    }

    #[test]
    fn pick_matches_names_case_insensitively_and_ignores_strangers() {
        let resources = vec![
            json!({"id": "1", "userName": "bob@x"}),
            json!({"id": "2", "userName": "ANN@X"}),
        ];
        let found = pick(ResourceType::User, &keys("e-ann", "ann@x"), &resources);
        assert_eq!(
            found.and_then(|r| r["id"].as_str().map(str::to_string)),
            Some("2".into())
        );
        assert!(pick(ResourceType::User, &keys("e-cy", "cy@x"), &resources).is_none());
        let groups = vec![json!({"id": "g", "displayName": "Ward 1"})];
        assert!(pick(ResourceType::Group, &keys("e-g", "ward 1"), &groups).is_some());
    }

    #[test]
    fn terms_quote_values_as_json_strings() {
        let t = terms(ResourceType::User, &keys("a\"b", "x@y"));
        assert_eq!(
            t,
            vec![
                r#"externalId eq "a\"b""#.to_string(),
                r#"userName eq "x@y""#.to_string()
            ]
        );
        let none = LookupKeys {
            external_id: None,
            name: None,
        };
        assert!(terms(ResourceType::Group, &none).is_empty());
    }
}
