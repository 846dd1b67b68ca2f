//! What crosses processes through the store, and the database's own upkeep: the queue signal
//! that wakes this process's workers, notices to and from the other processes sharing the
//! database (PostgreSQL `NOTIFY` / `LISTEN`), and planner statistics and vacuum. The engine
//! decides when and what to say; only the store speaks to the database.

use crate::store::{QueueSignal, StoreResult};
use async_trait::async_trait;

/// A channel between the processes sharing one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// New queue work (the payload names the organizations).
    Queue,
    /// Engine events: state and health changes.
    Events,
}

impl Channel {
    /// Its name in the database (PostgreSQL's `LISTEN` channel).
    pub const fn name(self) -> &'static str {
        match self {
            Channel::Queue => "scimdesk_queue",
            Channel::Events => "scimdesk_events",
        }
    }

    /// The channel of that name.
    pub fn named(name: &str) -> Option<Self> {
        [Channel::Queue, Channel::Events]
            .into_iter()
            .find(|c| c.name() == name)
    }
}

/// One notice from another process (or from this one: a listener hears its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Where it was sent.
    pub channel: Channel,
    /// What was said.
    pub payload: String,
}

/// Notices as they arrive.
#[async_trait]
pub trait Listener: Send {
    /// The next notice; `Ok(None)` when the connection was lost (notices sent meanwhile are
    /// gone: assume anything happened) and will be made again on the next call; `Err` when it
    /// cannot be (call [`Notices::listen`] again later).
    async fn next(&mut self) -> StoreResult<Option<Notice>>;
}

/// Coordination between processes, and the database's upkeep.
#[async_trait]
pub trait Notices {
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;
    /// Where the store is, with any password removed (safe to print).
    fn location(&self) -> &str;
    /// Versions and descriptions of the applied migrations.
    async fn applied_migrations(&self) -> StoreResult<Vec<(i64, String)>>;
    /// Wakes workers when this process commits new queue work for their organization (or is
    /// told, by another process's notice, that there is some).
    fn queue_signal(&self) -> &QueueSignal;
    /// Whether other processes may share this store (PostgreSQL), so that announcing and
    /// listening mean something.
    fn is_shared(&self) -> bool;
    /// Says `payload` on `channel` to every process sharing the database (best effort; a
    /// store that one process uses at a time, SQLite, says nothing).
    async fn announce(&self, channel: Channel, payload: &str) -> StoreResult<()>;
    /// Starts listening to both channels; `None` for a store that one process uses at a time
    /// (SQLite), where nobody else speaks.
    async fn listen(&self) -> StoreResult<Option<Box<dyn Listener>>>;
    /// Brings the planner statistics of fast-changing tables up to date and, with
    /// `vacuum_queue`, vacuums the queue, leaving alone what another process is already doing
    /// (a no-op where the database needs no such help).
    async fn maintain(&self, vacuum_queue: bool) -> StoreResult<()>;
}
