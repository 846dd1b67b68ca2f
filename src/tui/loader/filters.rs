//! The `/` filters of the panes: `key:value` terms, bare words, and times.

use crate::domain::{ConnectionId, OperationState, Timestamp};
use crate::tui::data::ConnectionRow;
use std::collections::BTreeMap;
use std::time::Duration;

/// Why a pane's filter cannot be read; the text names the term and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A `key:` the pane does not know.
    #[error("unknown key {key:?} (use {known})")]
    UnknownKey {
        /// The key as typed.
        key: String,
        /// The keys the pane knows.
        known: &'static str,
    },
    /// A value that is not one of its kind (a state, an action, an exception kind).
    #[error("unknown {what} {value:?}")]
    UnknownValue {
        /// What the value should be.
        what: &'static str,
        /// The value as typed.
        value: String,
    },
    /// `conn:` names no connection of the organization.
    #[error("no connection {0:?}")]
    NoConnection(String),
    /// `user:` names no user.
    #[error("no user {0:?}")]
    NoUser(String),
    /// A finished state asked of the queue, which holds unfinished work only.
    #[error(
        "the queue holds unfinished work; {0} operations are in the history (`scimdesk ops list --state {0}`)"
    )]
    Finished(OperationState),
    /// `since:` or `until:` is not a time.
    #[error(
        "{0:?} is not a time (use 2026-11-28T09:00:00Z, 2026-11-28, or an age such as 15m, 2h, 3d)"
    )]
    NotATime(String),
}

/// A key the pane does not know, naming those it does.
pub(super) fn unknown_key(key: &str, known: &'static str) -> FilterError {
    FilterError::UnknownKey {
        key: key.to_string(),
        known,
    }
}

pub(super) fn connection_named(
    conns: &[ConnectionRow],
    name: &str,
) -> Result<ConnectionId, FilterError> {
    conns
        .iter()
        .find(|c| c.connection.name.eq_ignore_ascii_case(name))
        .map(|c| c.connection.id)
        .ok_or_else(|| FilterError::NoConnection(name.to_string()))
}

/// Splits a filter into `key:value` terms and bare words (key `None`). A value may be quoted
/// to hold spaces: `user:"a b"`.
pub fn filter_terms(filter: &str) -> Vec<(Option<String>, String)> {
    let mut terms = Vec::new();
    let mut chars = filter.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut word = String::new();
        let mut quoted = false;
        while let Some(&c) = chars.peek() {
            if c == '"' {
                quoted = !quoted;
                chars.next();
                continue;
            }
            if c.is_whitespace() && !quoted {
                break;
            }
            word.push(c);
            chars.next();
        }
        match word.split_once(':') {
            Some((k, v)) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphabetic()) => {
                terms.push((Some(k.to_ascii_lowercase()), v.to_string()))
            }
            _ => terms.push((None, word)),
        }
    }
    terms
}

/// A time in a filter: RFC 3339, a date (`2026-11-28`, midnight UTC), or an age before `now`
/// (`90s`, `15m`, `2h`, `3d`).
pub fn parse_time(text: &str, now: Timestamp) -> Result<Timestamp, FilterError> {
    if let Ok(t) = Timestamp::parse_rfc3339(text) {
        return Ok(t);
    }
    if let Ok(t) = Timestamp::parse_rfc3339(&format!("{text}T00:00:00Z")) {
        return Ok(t);
    }
    let units: BTreeMap<char, u64> = [('s', 1), ('m', 60), ('h', 3600), ('d', 86_400)].into();
    let unit = text.chars().last().and_then(|c| units.get(&c).copied());
    let number = text
        .get(..text.len().saturating_sub(1))
        .and_then(|n| n.parse::<u64>().ok());
    match (number, unit) {
        (Some(n), Some(u)) => Ok(now.before(Duration::from_secs(n.saturating_mul(u)))),
        _ => Err(FilterError::NotATime(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_terms_split_keys_words_and_quotes() {
        assert_eq!(
            filter_terms(r#"conn:Rostering  state:failed alice user:"Ann Lee""#),
            vec![
                (Some("conn".into()), "Rostering".into()),
                (Some("state".into()), "failed".into()),
                (None, "alice".into()),
                (Some("user".into()), "Ann Lee".into()),
            ]
        );
        assert!(filter_terms("   ").is_empty());
        // A time's colons are not a key.
        assert_eq!(
            filter_terms("since:2026-11-28T09:00:00Z"),
            vec![(Some("since".into()), "2026-11-28T09:00:00Z".into())]
        );
    }

    #[test]
    fn times_in_filters() {
        let now = Timestamp::parse_rfc3339("2026-11-28T12:00:00Z").unwrap();
        assert_eq!(
            parse_time("15m", now).unwrap(),
            Timestamp::parse_rfc3339("2026-11-28T11:45:00Z").unwrap()
        );
        assert_eq!(
            parse_time("2026-11-27", now).unwrap(),
            Timestamp::parse_rfc3339("2026-11-27T00:00:00Z").unwrap()
        );
        assert!(
            parse_time("yesterday", now)
                .unwrap_err()
                .to_string()
                .contains("not a time")
        );
        assert!(parse_time("", now).is_err());
    }
}
