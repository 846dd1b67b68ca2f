//! A short-lived memory of recently authenticated Bearer tokens.
//!
//! Every SCIM request would otherwise cost two extra database round trips (token, connection)
//! before its real work; identity providers send bursts on one token. A successful lookup is
//! remembered for [`TTL`], keyed by the SHA-256 of the token text (the text itself is not kept).
//! Consequence, documented in the README: revoking a token or removing its connection takes
//! effect within [`TTL`]. Failures are never cached.

use crate::domain::{Connection, OrganizationId};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a successful authentication is trusted without asking the store again.
pub const TTL: Duration = Duration::from_secs(5);
/// At most this many tokens are remembered.
const CAPACITY: usize = 10_000;

type Entry = (Instant, OrganizationId, Connection);

/// See the module documentation.
#[derive(Default)]
pub struct AuthCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl AuthCache {
    /// The tenant a token was recently found to belong to.
    pub fn get(&self, token: &str) -> Option<(OrganizationId, Connection)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&key(token))
            .filter(|(at, ..)| at.elapsed() < TTL)
            .map(|(_, org, conn)| (*org, conn.clone()))
    }

    /// Remembers a successful authentication.
    pub fn put(&self, token: &str, org: OrganizationId, connection: Connection) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            entries.retain(|_, (at, ..)| at.elapsed() < TTL);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key(token), (Instant::now(), org, connection));
    }
}
