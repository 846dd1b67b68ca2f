//! What one attempt exchanged with the target (for its attempt record), how its failures are
//! classified for the worker, and the links it leaves.

use super::{DeliveryResult, EXCERPT_BYTES, Stop};
use crate::connectors::scim_client::{TargetError, TargetResponse};
use crate::domain::{LinkUpdate, TargetLink};
use crate::scim::render::{self, excerpt};
use crate::store::StoreError;
use serde_json::Value;

/// What was exchanged during one attempt.
pub(super) struct Log {
    pub(super) status: Option<u16>,
    pub(super) request: Vec<String>,
    pub(super) response: Option<String>,
    /// When the attempt began (after its operation was claimed).
    pub(super) began: std::time::Instant,
}

impl Log {
    pub(super) fn new() -> Self {
        Self {
            status: None,
            request: Vec::new(),
            response: None,
            began: std::time::Instant::now(),
        }
    }

    pub(super) fn sent(&mut self, line: String) {
        self.request.push(line);
    }

    pub(super) fn answered(&mut self, r: &TargetResponse) {
        self.status = Some(r.status);
        self.response = r.body.as_ref().map(|b| excerpt(b, EXCERPT_BYTES));
    }

    pub(super) fn failed(&mut self, e: &TargetError) {
        self.status = e.status();
        if let TargetError::Http { excerpt, .. } = e {
            self.response = Some(render::truncate(excerpt.clone(), EXCERPT_BYTES));
        }
    }

    /// Records a failed call and classifies it.
    pub(super) fn fail(&mut self, e: TargetError) -> Stop {
        self.failed(&e);
        stop(e)
    }
}

pub(super) fn stop(e: TargetError) -> Stop {
    if e.is_retryable() {
        DeliveryResult::Transient {
            retry_after: e.retry_after(),
            error: e.to_string(),
        }
    } else {
        let body = match &e {
            TargetError::Http { excerpt, .. } if !excerpt.is_empty() => {
                format!("; target said: {}", render::truncate(excerpt.clone(), 512))
            }
            _ => String::new(),
        };
        DeliveryResult::Permanent {
            error: format!("{e}{body}"),
        }
    }
}

pub(super) fn store_stop(e: StoreError) -> Stop {
    // The store being unreachable is transient; nothing was sent.
    DeliveryResult::Transient {
        error: format!("store: {e}"),
        retry_after: None,
    }
}

/// The link after the target accepted `sent` for a resource it already holds (its version
/// from the answer, else the one known before).
pub(super) fn acknowledged(
    link: &TargetLink,
    resp: &TargetResponse,
    content_hash: String,
    sent: Value,
) -> LinkUpdate {
    LinkUpdate::Set {
        remote_id: link.remote_id.clone(),
        remote_etag: resp.version().or_else(|| link.remote_etag.clone()),
        content_hash,
        last_sent: Some(sent),
    }
}

/// The link of a resource the target holds as `now_there` without a request (or whose
/// request only confirmed it), its version unchanged.
pub(super) fn holds(link: &TargetLink, content_hash: String, now_there: Value) -> LinkUpdate {
    LinkUpdate::Set {
        remote_id: link.remote_id.clone(),
        remote_etag: link.remote_etag.clone(),
        content_hash,
        last_sent: Some(now_there),
    }
}
