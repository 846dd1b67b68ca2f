//! Group commit: requests for the same kind of work that arrive while earlier ones are being
//! sent wait, and go out together as one batch when a sender is free. One request alone is
//! never delayed (a free sender takes it at once); under load the fixed cost of each send (a
//! round trip, a statement, a commit) is shared by everything that queued behind it.
//!
//! Two parts of scimdesk batch this way: the look-ups before creates at a target (one filtered
//! `GET` for many creates) and PostgreSQL's inbound user creates (one statement for many).
//! Written here because the batching crates looked at (`batched`, `batchy`) gather for a
//! time window before sending, which delays a request that arrives alone, and `batched` works
//! only on free functions, not on a store's methods.

use std::sync::Mutex;
use tokio::sync::{Semaphore, oneshot};

/// One request waiting to be sent, with the way back to its caller.
pub struct Waiting<T, R> {
    /// What was asked.
    pub item: T,
    reply: oneshot::Sender<R>,
}

impl<T, R> Waiting<T, R> {
    /// A request outside any batcher, and where its answer will arrive: for tests that call a
    /// batch's writer directly.
    #[cfg(test)]
    pub fn detached(item: T) -> (Self, oneshot::Receiver<R>) {
        let (reply, answer) = oneshot::channel();
        (Self { item, reply }, answer)
    }

    /// Hands `answer` to the caller that is waiting for it (a caller that gave up is ignored).
    pub fn answer(self, answer: R) {
        let _ = self.reply.send(answer);
    }
}

/// Requests of one kind, and the senders that take them out in batches.
pub struct GroupCommit<T, R> {
    waiting: Mutex<Vec<Waiting<T, R>>>,
    senders: Semaphore,
}

impl<T, R> GroupCommit<T, R> {
    /// At most `senders` batches are sent at once; the rest wait and gather.
    pub fn new(senders: usize) -> Self {
        Self {
            waiting: Mutex::new(Vec::new()),
            senders: Semaphore::new(senders.max(1)),
        }
    }

    /// Queues `item` and returns its answer. While a sender is free this caller sends: `take`
    /// picks the oldest requests that fit one batch out of those waiting (it must take at
    /// least one when any wait), and `send` sends them and answers each. A caller whose
    /// request went out in another caller's batch just waits for that answer.
    ///
    /// `None` when the request was dropped unanswered (a `send` that forgot it, or that was
    /// itself dropped: callers that may be cancelled run the work of `send` in a task of its
    /// own, so one caller's cancellation does not leave the others of its batch without an
    /// answer).
    pub async fn submit<Take, Send, Sent>(&self, item: T, take: Take, mut send: Send) -> Option<R>
    where
        Take: Fn(&mut Vec<Waiting<T, R>>) -> Vec<Waiting<T, R>>,
        Send: FnMut(Vec<Waiting<T, R>>) -> Sent,
        Sent: Future<Output = ()>,
    {
        let (reply, mut answer) = oneshot::channel();
        self.queue().push(Waiting { item, reply });
        loop {
            let permit = self.senders.acquire().await.ok()?;
            if let Some(done) = answered(&mut answer) {
                return done;
            }
            let batch = take(&mut self.queue());
            if batch.is_empty() {
                // Ours is on its way in another caller's batch.
                drop(permit);
                return answer.await.ok();
            }
            send(batch).await;
            drop(permit);
            if let Some(done) = answered(&mut answer) {
                return done;
            }
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Waiting<T, R>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `Some` once `answer` is settled: its value, or `None` when it was dropped unanswered (a
/// settled receiver must not be polled again).
fn answered<R>(answer: &mut oneshot::Receiver<R>) -> Option<Option<R>> {
    match answer.try_recv() {
        Ok(a) => Some(Some(a)),
        Err(oneshot::error::TryRecvError::Closed) => Some(None),
        Err(oneshot::error::TryRecvError::Empty) => None,
    }
}

/// A `take` for [`GroupCommit::submit`]: the oldest `max` requests.
pub fn oldest<T, R>(max: usize) -> impl Fn(&mut Vec<Waiting<T, R>>) -> Vec<Waiting<T, R>> {
    move |q| {
        let n = q.len().min(max.max(1));
        q.drain(..n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn a_request_alone_goes_out_at_once_in_a_batch_of_its_own() {
        let commit = GroupCommit::<u32, u32>::new(1);
        let sizes = Mutex::new(Vec::new());
        let got = commit
            .submit(7, oldest(10), |batch| {
                sizes.lock().unwrap().push(batch.len());
                async move {
                    for w in batch {
                        let v = w.item * 2;
                        w.answer(v);
                    }
                }
            })
            .await;
        assert_eq!(got, Some(14));
        assert_eq!(*sizes.lock().unwrap(), vec![1]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_that_arrive_while_one_is_sent_share_the_next_batch() {
        let commit = Arc::new(GroupCommit::<u32, u32>::new(1));
        let batches = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let sends = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..20u32 {
            let (commit, batches, sends) = (commit.clone(), batches.clone(), sends.clone());
            tasks.push(tokio::spawn(async move {
                commit
                    .submit(i, oldest(8), |batch| {
                        batches
                            .lock()
                            .unwrap()
                            .push(batch.iter().map(|w| w.item).collect());
                        sends.fetch_add(1, Ordering::SeqCst);
                        async move {
                            // Slow enough that the other requests queue behind this one.
                            tokio::time::sleep(Duration::from_millis(30)).await;
                            for w in batch {
                                let v = w.item + 100;
                                w.answer(v);
                            }
                        }
                    })
                    .await
            }));
            if i == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let mut answers = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            answers.push((i as u32, t.await.unwrap()));
        }
        for (i, a) in answers {
            assert_eq!(a, Some(i + 100), "each caller gets its own answer");
        }
        let batches = batches.lock().unwrap();
        let mut all: Vec<u32> = batches.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..20).collect::<Vec<_>>(), "every request sent once");
        assert!(batches.iter().all(|b| b.len() <= 8), "{batches:?}");
        assert!(
            sends.load(Ordering::SeqCst) <= 5,
            "20 requests behind one slow send go out in few batches: {batches:?}"
        );
    }

    #[tokio::test]
    async fn a_request_the_sender_forgets_gets_no_answer_rather_than_hanging() {
        let commit = GroupCommit::<u32, u32>::new(1);
        let got = commit
            .submit(1, oldest(4), |batch| {
                drop(batch);
                async {}
            })
            .await;
        assert_eq!(got, None);
    }
}
