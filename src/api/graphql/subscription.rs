//! Live updates over WebSocket (`graphql-transport-ws`, and the older `graphql-ws`): a
//! connection's health when it changes, and the queue's counts when work is queued or
//! finished, for the token's organization only. They are fed by the engine of the serving
//! process: its events (its own supervisor's health assessments, and, on PostgreSQL, other
//! processes' events through NOTIFY) and the queue's signals (this process's commits, and
//! other processes' through NOTIFY), as the workbench is.

use super::error::api_error;
use super::inputs::connection_named;
use super::principal::{Needs, principal};
use super::types::Health;
use crate::domain::{Action, ConnectionId, OrganizationId};
use crate::engine::events::EngineEvent;
use crate::engine::health::{HealthReport, connection_health};
use crate::engine::{Engine, HealthThresholds};
use crate::store::Store;
use async_graphql::futures_util::Stream;
use async_graphql::futures_util::stream;
use async_graphql::{Context, ID, SimpleObject, Subscription};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// A connection's health, as it changed.
#[derive(SimpleObject, Clone)]
pub struct HealthChange {
    /// The connection.
    pub connection_id: ID,
    /// Its name.
    pub name: String,
    /// Its health now.
    pub health: Health,
}

impl From<&HealthReport> for HealthChange {
    fn from(r: &HealthReport) -> Self {
        Self {
            connection_id: ID(r.connection_id.to_string()),
            name: r.name.clone(),
            health: Health::from(r),
        }
    }
}

/// One target's queue.
#[derive(SimpleObject, Clone)]
pub struct QueueCount {
    /// The target.
    pub connection_id: ID,
    /// Its name.
    pub name: String,
    /// Waiting for a worker.
    pub pending: u64,
    /// Leased by a worker.
    pub in_flight: u64,
    /// Waiting to be retried.
    pub retry_wait: u64,
    /// Failed, waiting for an operator.
    pub failed: u64,
}

/// The organization's queues after a change.
#[derive(SimpleObject, Clone)]
pub struct QueueChange {
    /// Each target's counts.
    pub targets: Vec<QueueCount>,
}

/// How long a queue change waits for the ones right behind it before the counts are read.
const COALESCE: Duration = Duration::from_millis(50);

/// The subscription root.
pub struct Subscription;

fn engine(ctx: &Context<'_>) -> async_graphql::Result<Arc<Engine>> {
    ctx.data::<Arc<Engine>>()
        .cloned()
        .map_err(|_| async_graphql::Error::new("live updates need the engine of `scimdesk serve`"))
}

#[Subscription]
impl Subscription {
    /// A connection's health each time it changes (all the organization's connections, or
    /// the one named).
    #[graphql(guard = "Needs(Action::View)")]
    async fn health_changed(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The connection's name or id.")] connection: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = HealthChange> + use<>> {
        let p = principal(ctx)?;
        let org = p.org;
        let store = ctx.data::<Arc<dyn Store>>()?.clone();
        let thresholds = ctx.data::<HealthThresholds>()?.clone();
        let only = match connection {
            Some(c) => Some(connection_named(store.as_ref(), org, &c).await?),
            None => None,
        };
        let events = engine(ctx)?.events().subscribe();
        Ok(stream::unfold(events, move |mut events| {
            let store = store.clone();
            let thresholds = thresholds.clone();
            async move {
                loop {
                    let wanted = |o: OrganizationId, c: ConnectionId| {
                        o == org && only.is_none_or(|x| x == c)
                    };
                    match events.recv().await {
                        Ok(EngineEvent::Health(r))
                            if wanted(r.organization_id, r.connection_id) =>
                        {
                            return Some((HealthChange::from(r.as_ref()), events));
                        }
                        Ok(EngineEvent::ConnectionStateChanged {
                            organization_id,
                            connection_id,
                            ..
                        }) if wanted(organization_id, connection_id) => {
                            // Judged afresh: the event says only what moved.
                            if let Ok(Some(c)) = store.connection(org, connection_id).await
                                && let Ok(r) =
                                    connection_health(store.as_ref(), &c, &thresholds).await
                            {
                                return Some((HealthChange::from(&r), events));
                            }
                        }
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return None,
                    }
                }
            }
        }))
    }

    /// The organization's queue counts, each time work is queued, finished, retried or
    /// skipped (here or, on PostgreSQL, in another process).
    #[graphql(guard = "Needs(Action::View)")]
    async fn queue_changed(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = QueueChange> + use<>> {
        let p = principal(ctx)?;
        let org = p.org;
        let store = ctx.data::<Arc<dyn Store>>()?.clone();
        let engine = engine(ctx)?;
        let state = (
            store.queue_signal().subscribe_org(org),
            engine.remote_changes(),
            engine.events().subscribe(),
        );
        Ok(stream::unfold(
            state,
            move |(mut local, mut remote, mut events)| {
                let store = store.clone();
                async move {
                    loop {
                        let changed = tokio::select! {
                            r = local.changed() => r.is_ok(),
                            r = remote.changed() => r.is_ok(),
                            e = events.recv() => match e {
                                Ok(EngineEvent::OperationsFinished { organization_id, .. }) => {
                                    if organization_id != org {
                                        continue;
                                    }
                                    true
                                }
                                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                                Err(RecvError::Closed) => false,
                            },
                        };
                        if !changed {
                            return None;
                        }
                        tokio::time::sleep(COALESCE).await;
                        local.borrow_and_update();
                        remote.borrow_and_update();
                        match queue_counts(store.as_ref(), org).await {
                            Ok(c) => return Some((c, (local, remote, events))),
                            Err(e) => {
                                tracing::warn!("reading queue counts for a subscription: {e:?}")
                            }
                        }
                    }
                }
            },
        ))
    }
}

/// Every target's queue counts.
async fn queue_counts(
    store: &dyn Store,
    org: OrganizationId,
) -> async_graphql::Result<QueueChange> {
    let mut targets = Vec::new();
    for c in store.list_connections(org).await.map_err(api_error)? {
        if c.kind.is_source() {
            continue;
        }
        let q = store.queue_counts(org, c.id).await.map_err(api_error)?;
        targets.push(QueueCount {
            connection_id: ID(c.id.to_string()),
            name: c.name,
            pending: q.pending,
            in_flight: q.in_flight,
            retry_wait: q.retry_wait,
            failed: q.failed,
        });
    }
    Ok(QueueChange { targets })
}
