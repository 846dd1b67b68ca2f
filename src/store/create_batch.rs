//! Inbound user creates written together. During an onboarding wave an identity provider sends
//! many creates at once, and each one alone pays a statement's (or a transaction's) fixed
//! cost: executor start-up, constraint set-up, the commit, the round trip or the hand-off to
//! SQLite's thread. Creates that arrive while earlier ones are being written wait and share
//! the next write ([`crate::group_commit`]); one that arrives alone goes out at once.
//!
//! Each backend writes a batch its own way (`write_batch` in `postgres.rs` / `sqlite.rs`) and
//! answers, for each create, whether it wrote it. A create it did not write (a taken
//! `userName`, a missing organization or source connection, or the batch failing as a whole)
//! is created again by `create_user`'s own transaction, which gives it its own answer or error.

use crate::domain::{Actor, AuditEventId, Timestamp, User};
use crate::group_commit::{GroupCommit, Waiting, oldest};

/// Most users one batch writes.
const MAX_USERS_PER_BATCH: usize = 64;

/// Batches being written at once; the creates that arrive meanwhile wait and share the next.
/// Two keep both of a small machine's cores busy (SQLite's single writer takes them in turn).
const BATCHES_AT_ONCE: usize = 2;

/// A user to create with its audit event, waiting to share a write with others.
pub(crate) struct NewUser {
    pub user: User,
    pub audit_id: AuditEventId,
    pub audit_at: Timestamp,
    pub actor_kind: &'static str,
    pub actor: String,
    pub details: serde_json::Value,
}

/// One create waiting in a batch; answered `true` once written.
pub(crate) type Pending = Waiting<NewUser, bool>;

/// The creates of one store.
pub(crate) struct CreateBatches {
    commit: GroupCommit<NewUser, bool>,
}

impl Default for CreateBatches {
    fn default() -> Self {
        Self {
            commit: GroupCommit::new(BATCHES_AT_ONCE),
        }
    }
}

impl CreateBatches {
    /// Writes `user` (with its queued creates and audit event) together with the creates that
    /// arrive meanwhile, using `write` on `pool`. `false` when it was not written: the caller
    /// creates it alone.
    ///
    /// Each batch is written in a task of its own, so a caller cancelled while its batch is
    /// written (its client hung up) does not leave the others without an answer. A create
    /// whose caller gives up while it waits is still written, as one whose caller gave up
    /// during its own statement always could be; the client, having had no answer, finds the
    /// user on its retry (409).
    pub async fn create<P, W, Written>(
        &self,
        pool: &P,
        write: W,
        actor: &Actor,
        user: &User,
        details: serde_json::Value,
    ) -> bool
    where
        P: Clone + Send + 'static,
        W: Fn(P, Vec<Pending>) -> Written,
        Written: Future<Output = ()> + Send + 'static,
    {
        let new = NewUser {
            user: user.clone(),
            audit_id: AuditEventId::new(),
            audit_at: Timestamp::now(),
            actor_kind: actor.kind.as_str(),
            actor: actor.name.clone(),
            details,
        };
        self.commit
            .submit(new, oldest(MAX_USERS_PER_BATCH), |batch| {
                let task = tokio::spawn(write(pool.clone(), batch));
                async move {
                    let _ = task.await;
                }
            })
            .await
            .unwrap_or(false)
    }
}

impl NewUser {
    /// A create of `user` by `actor`, for tests that call a batch's writer directly.
    #[cfg(test)]
    pub fn for_test(actor: &Actor, user: User) -> Self {
        Self {
            user,
            audit_id: AuditEventId::new(),
            audit_at: Timestamp::now(),
            actor_kind: actor.kind.as_str(),
            actor: actor.name.clone(),
            details: serde_json::json!({}),
        }
    }
}

/// Answers each create of `batch`: written when the batch's write succeeded and its id is
/// among the ids written. A write that failed as a whole answers every create `false`, and
/// each is then created alone, with its own error.
pub(crate) fn answer_all(
    batch: Vec<Pending>,
    written: super::StoreResult<std::collections::HashSet<uuid::Uuid>>,
) {
    let written = written.unwrap_or_else(|e| {
        tracing::debug!(
            "writing {} users together failed, so one by one: {e}",
            batch.len()
        );
        Default::default()
    });
    for w in batch {
        let done = written.contains(&w.item.user.id.0);
        w.answer(done);
    }
}
