//! What the engine tells live views: health and queue changes, in process through a broadcast
//! channel and, on PostgreSQL, to other processes through NOTIFY.

use super::health::HealthReport;
use crate::domain::{ConnectionId, ConnectionState, OrganizationId};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc};

/// The PostgreSQL channel that says "there is new queue work" (payload: who queued it and for
/// which organizations, as JSON; empty wakes every worker).
pub const QUEUE_CHANNEL: &str = crate::store::Channel::Queue.name();
/// The PostgreSQL channel that carries [`EngineEvent`]s as JSON (health and state changes).
pub const EVENTS_CHANNEL: &str = crate::store::Channel::Events.name();

/// Something a live view may want to redraw for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EngineEvent {
    /// A batch of attempts was recorded.
    OperationsFinished {
        /// The tenant.
        organization_id: OrganizationId,
        /// The target.
        connection_id: ConnectionId,
        /// Operations that succeeded.
        succeeded: u64,
        /// Operations that will be retried (or wait for something).
        retrying: u64,
        /// Operations handed to an operator.
        failed: u64,
    },
    /// The engine or an operator changed a connection's state.
    ConnectionStateChanged {
        /// The tenant.
        organization_id: OrganizationId,
        /// The connection.
        connection_id: ConnectionId,
        /// The new state.
        state: ConnectionState,
        /// Why.
        reason: String,
    },
    /// A connection's health was re-assessed (sent when its state changes).
    Health(Box<HealthReport>),
}

/// The in-process broadcast of engine events; cheap to clone. Events made in this process can
/// also be forwarded (to PostgreSQL NOTIFY); events that arrived from other processes are not
/// forwarded again.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<EngineEvent>,
    outbox: Arc<Mutex<Option<mpsc::UnboundedSender<EngineEvent>>>>,
}

impl EventBus {
    /// A bus that buffers `capacity` events per subscriber (slow subscribers lose the oldest,
    /// and should re-read the store: events are hints, the store is the truth).
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity.max(1)).0,
            outbox: Arc::new(Mutex::new(None)),
        }
    }

    /// Publishes an event made in this process (no subscriber is fine).
    pub fn publish(&self, event: EngineEvent) {
        let forward = !matches!(event, EngineEvent::OperationsFinished { .. });
        if forward
            && let Some(out) = self
                .outbox
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
        {
            let _ = out.send(event.clone());
        }
        let _ = self.tx.send(event);
    }

    /// Publishes an event that another process made.
    pub fn publish_remote(&self, event: EngineEvent) {
        let _ = self.tx.send(event);
    }

    /// Receives events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.tx.subscribe()
    }

    /// Sends this process's state and health events to `out` as well.
    pub fn forward_to(&self, out: mpsc::UnboundedSender<EngineEvent>) {
        *self.outbox.lock().unwrap_or_else(|e| e.into_inner()) = Some(out);
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(1024)
    }
}
