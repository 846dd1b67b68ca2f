//! A SCIM target for tests and benchmarks that behaves like a real one because it is one:
//! scimdesk's own inbound SCIM server, serving an organization of its own over real HTTP on
//! 127.0.0.1, wrapped in a layer that can be told to misbehave — fail a share of requests
//! with 500 or 429 + `Retry-After`, answer slowly, or go down (refuse new connections and
//! close the ones it has) — and that logs every request it receives.
//!
//! It is a test double: provisioning to real applications never starts one. `scimdesk demo`
//! uses it as its two downstream applications. [`MemoryTarget`] is the same fault layer in
//! front of an in-memory SCIM application ([`memory`]): the "fast local SCIM target" of
//! `scimdesk bench wave`.

pub mod memory;

use crate::api::changes::ChangeFeed;
use crate::api::serve;
use crate::domain::{
    Actor, AuthMethod, ConnectionKind, NewApiToken, NewConnection, OrganizationId, TokenScope,
};
use crate::store::{Store, StoreResult};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

/// A new organization named `name` with an inbound SCIM connection named `connection` and a
/// SCIM token for it: what an identity provider is given. Returns the token's text (the only
/// copy). Used by the target double, `scimdesk bench` and the tests.
pub async fn inbound_organization(
    store: &dyn Store,
    actor: &Actor,
    name: &str,
    connection: &str,
) -> StoreResult<(OrganizationId, String)> {
    let org = store.create_organization(actor, name).await?;
    let conn = store
        .create_connection(
            actor,
            org.id,
            &NewConnection {
                name: connection.into(),
                kind: ConnectionKind::ScimInbound,
                base_url: None,
                auth_method: AuthMethod::None,
                settings: serde_json::json!({}),
            },
            None,
        )
        .await?;
    let token = store
        .create_api_token(
            actor,
            org.id,
            &NewApiToken {
                access: crate::domain::Access::Read,
                name: "idp".into(),
                scope: TokenScope::Scim,
                connection_id: Some(conn.id),
                expires_at: None,
            },
        )
        .await?;
    Ok((org.id, token.text.expose().to_string()))
}

/// What the double is told to do wrong.
#[derive(Debug, Default)]
pub struct Faults {
    /// Share of requests (0..=100) that fail, chosen by a fixed pattern so runs repeat.
    pub fail_percent: AtomicU32,
    /// With failures: every other one is a 429 carrying this `Retry-After` (seconds); 0 means
    /// failures are all 500.
    pub retry_after_secs: AtomicU32,
    /// Added to every answer (milliseconds).
    pub delay_ms: AtomicU64,
    /// Refuse new connections and close existing ones after answering 503.
    pub down: AtomicBool,
    /// Answer this status (e.g. 400) to requests whose body contains `poison`.
    pub poison_status: AtomicU32,
    /// See `poison_status`.
    pub poison: Mutex<Option<String>>,
    /// Answer 400 `invalidFilter` to a filter with `or` in it, as some applications do.
    pub refuse_or_filters: AtomicBool,
    /// Answer this status to every request with this method (e.g. `DELETE` refused with 403,
    /// as an application that forbids removing accounts does).
    pub refused_method: Mutex<Option<(String, u16)>>,
    counter: AtomicU64,
}

/// One request as the double received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The status it was answered with.
    pub status: u16,
    /// The `Retry-After` it was answered with, if any.
    pub retry_after: Option<u32>,
}

#[derive(Clone)]
struct Shared {
    faults: Arc<Faults>,
    log: Arc<Mutex<Vec<Received>>>,
}

/// A SCIM application served over real HTTP on 127.0.0.1 behind the fault layer, logging
/// every request: what both doubles share.
pub struct FaultyServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its SCIM base URL (`http://127.0.0.1:PORT/scim/v2`).
    pub base_url: String,
    /// Tell it what to do wrong.
    pub faults: Arc<Faults>,
    log: Arc<Mutex<Vec<Received>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FaultyServer {
    /// Binds an ephemeral port and serves the application `make` builds for that base URL.
    async fn start(make: impl FnOnce(String) -> axum::Router) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}/scim/v2");
        let shared = Shared {
            faults: Arc::new(Faults::default()),
            log: Arc::new(Mutex::new(Vec::new())),
        };
        let app =
            make(base_url.clone()).layer(middleware::from_fn_with_state(shared.clone(), misbehave));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let listener = FlakyListener {
            inner: listener,
            faults: shared.faults.clone(),
        };
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            base_url,
            faults: shared.faults,
            log: shared.log,
            shutdown: Some(tx),
        })
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many requests matched `method` and a path starting with `prefix` and got `status`.
    pub fn count(&self, method: &str, prefix: &str, status: u16) -> usize {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(prefix) && r.status == status)
            .count()
    }

    /// Like [`count`](Self::count) over the requests received from position `from` on, with
    /// the position to continue from: a poller counts each request once instead of rescanning
    /// (and locking out the server for) the whole log every time.
    pub fn count_since(
        &self,
        from: usize,
        method: &str,
        prefix: &str,
        status: u16,
    ) -> (usize, usize) {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let n = log
            .get(from..)
            .unwrap_or_default()
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(prefix) && r.status == status)
            .count();
        (n, log.len())
    }

    /// Makes a share of requests fail (see [`Faults`]).
    pub fn fail(&self, percent: u32, retry_after_secs: u32) {
        self.faults
            .fail_percent
            .store(percent.min(100), Ordering::SeqCst);
        self.faults
            .retry_after_secs
            .store(retry_after_secs, Ordering::SeqCst);
    }

    /// Takes the target down or brings it back.
    pub fn set_down(&self, down: bool) {
        self.faults.down.store(down, Ordering::SeqCst);
    }

    /// Answers `status` to every request with `method` (`None` stops it).
    pub fn refuse_method(&self, method: Option<&str>, status: u16) {
        *self
            .faults
            .refused_method
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = method.map(|m| (m.to_ascii_uppercase(), status));
    }

    /// Answers `status` to requests whose body contains `needle` (`None` stops it).
    pub fn poison(&self, needle: Option<&str>, status: u16) {
        *self.faults.poison.lock().unwrap_or_else(|e| e.into_inner()) = needle.map(str::to_string);
        self.faults
            .poison_status
            .store(u32::from(status), Ordering::SeqCst);
    }
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A running target double: scimdesk's inbound server for an organization of its own.
pub struct TargetDouble {
    /// The server (its address, base URL, faults and request log).
    pub server: FaultyServer,
    /// The bearer token a client must present.
    pub token: String,
    /// Its organization in the store.
    pub organization_id: OrganizationId,
}

impl TargetDouble {
    /// Starts a double serving a new organization named `name` in `store`.
    pub async fn start(store: Arc<dyn Store>, name: &str) -> StoreResult<Self> {
        let (org, token) = inbound_organization(
            store.as_ref(),
            &Actor::system("target-double"),
            name,
            &format!("{name} IdP"),
        )
        .await?;
        let server = FaultyServer::start(|_| serve::app(store, ChangeFeed::default(), None))
            .await
            .map_err(|e| crate::store::StoreError::Unavailable(e.to_string()))?;
        Ok(Self {
            server,
            token,
            organization_id: org,
        })
    }
}

/// The double's server is what tests talk to and steer.
impl std::ops::Deref for TargetDouble {
    type Target = FaultyServer;
    fn deref(&self) -> &FaultyServer {
        &self.server
    }
}

/// A running in-memory SCIM application behind the fault layer (see [`memory`]).
pub struct MemoryTarget {
    /// The server (its address, base URL, faults and request log).
    pub server: FaultyServer,
    /// The bearer token a client must present.
    pub token: String,
}

impl MemoryTarget {
    /// Starts an empty application with a random bearer token.
    pub async fn start() -> std::io::Result<Self> {
        let token = format!("memory-{}", uuid::Uuid::new_v4().simple());
        let t = token.clone();
        let server = FaultyServer::start(move |base| memory::app(base, t)).await?;
        Ok(Self { server, token })
    }
}

/// The application's server is what tests talk to and steer.
impl std::ops::Deref for MemoryTarget {
    type Target = FaultyServer;
    fn deref(&self) -> &FaultyServer {
        &self.server
    }
}

/// Drops new connections while the target is down.
struct FlakyListener {
    inner: TcpListener,
    faults: Arc<Faults>,
}

impl axum::serve::Listener for FlakyListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((s, _)) if self.faults.down.load(Ordering::SeqCst) => drop(s),
                Ok(pair) => return pair,
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Runs each request to its end in a task of its own, as a real server does: a client that
/// goes away (a killed process) does not cancel the work, and the request is always logged.
async fn misbehave(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    match tokio::spawn(handle(shared, request, next)).await {
        Ok(r) => r,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The status the double is told to answer to every `method` request, if any.
fn refused(f: &Faults, method: &str) -> Option<StatusCode> {
    let refused = f.refused_method.lock().unwrap_or_else(|e| e.into_inner());
    let (m, status) = refused.as_ref()?;
    (m == method).then(|| StatusCode::from_u16(*status).unwrap_or(StatusCode::FORBIDDEN))
}

async fn handle(shared: Shared, request: Request, next: Next) -> Response {
    let at = Instant::now();
    let f = &shared.faults;
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let delay = f.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut retry_after = None;
    let response = if f.down.load(Ordering::SeqCst) {
        let mut r = (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    } else if let Some(r) = fail_by_pattern(f, &mut retry_after) {
        r
    } else if f.refuse_or_filters.load(Ordering::SeqCst) && has_or_filter(&path) {
        (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/scim+json")],
            serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "400",
                "scimType": "invalidFilter",
                "detail": "this application supports only simple filters"
            })
            .to_string(),
        )
            .into_response()
    } else if let Some(status) = refused(f, &method) {
        (
            status,
            [(header::CONTENT_TYPE, "application/scim+json")],
            serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": status.as_u16().to_string(),
                "detail": format!("this application does not allow {method}")
            })
            .to_string(),
        )
            .into_response()
    } else {
        let poison = f.poison.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match poison {
            Some(needle) => {
                let (parts, body) = request.into_parts();
                let bytes = axum::body::to_bytes(body, 4 << 20)
                    .await
                    .unwrap_or_default();
                if String::from_utf8_lossy(&bytes).contains(&needle) {
                    let status =
                        StatusCode::from_u16(f.poison_status.load(Ordering::SeqCst) as u16)
                            .unwrap_or(StatusCode::BAD_REQUEST);
                    (
                        status,
                        [(header::CONTENT_TYPE, "application/scim+json")],
                        serde_json::json!({
                            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                            "status": status.as_u16().to_string(),
                            "scimType": "invalidValue",
                            "detail": "the target refuses this value"
                        })
                        .to_string(),
                    )
                        .into_response()
                } else {
                    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                        .await
                }
            }
            None => next.run(request).await,
        }
    };
    shared
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Received {
            at,
            method,
            path,
            status: response.status().as_u16(),
            retry_after,
        });
    response
}

/// Whether a request's query has a `filter` with an `or` in it.
fn has_or_filter(path_and_query: &str) -> bool {
    let Some((_, query)) = path_and_query.split_once('?') else {
        return false;
    };
    url::form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| k == "filter" && v.to_ascii_lowercase().contains(" or "))
}

fn fail_by_pattern(f: &Faults, retry_after: &mut Option<u32>) -> Option<Response> {
    let percent = u64::from(f.fail_percent.load(Ordering::SeqCst));
    if percent == 0 {
        return None;
    }
    let n = f.counter.fetch_add(1, Ordering::SeqCst);
    // Fails requests n where (n * percent) crosses a multiple of 100: exactly `percent` in
    // every hundred, spread out.
    let fails = (n * percent) / 100 != ((n + 1) * percent) / 100;
    if !fails {
        return None;
    }
    let ra = f.retry_after_secs.load(Ordering::SeqCst);
    let body = |status: u16| {
        serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": status.to_string(),
            "detail": "injected failure"
        })
        .to_string()
    };
    if ra > 0 && n.is_multiple_of(2) {
        *retry_after = Some(ra);
        let mut r = (StatusCode::TOO_MANY_REQUESTS, body(429)).into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(ra));
        Some(r)
    } else {
        Some((StatusCode::INTERNAL_SERVER_ERROR, body(500)).into_response())
    }
}
