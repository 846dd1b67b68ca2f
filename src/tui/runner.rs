//! The workbench's event loop: keys from a reader thread, engine events, PostgreSQL
//! notifications and a one-second tick come in; reads and commands run on tasks and come back
//! as messages; a frame is drawn after each batch of messages. Drawing only reads the state,
//! so a slow database slows the data, never the keys.
//!
//! The loop, [`run_main_loop`], is generic over ratatui's [`Backend`] and takes its key
//! events from an [`Input`], so a test runs the very loop the operator does on a
//! `TestBackend` with keys fed in (as gitui's `run_main_loop` does).

use super::data::{Detail, Loaded};
use super::keymap::Keymap;
use super::loader::{LoadError, Loader};
use super::state::{App, DetailRequest, Effect, LoadRequest, Reply, Workers};
use super::theme::Theme;
use super::ui;
use crate::domain::{Actor, OrganizationId, Timestamp};
use crate::engine::Engine;
use crate::policy::impact::Guard;
use crate::store::Store;
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::crossterm::event::{self, Event};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Everything a workbench session runs on.
pub struct Session {
    /// The store.
    pub store: Arc<dyn Store>,
    /// This process's engine (started with workers, or only watching).
    pub engine: Arc<Engine>,
    /// Whether the engine delivers.
    pub workers: Workers,
    /// Who the audit log records.
    pub actor: Actor,
    /// The mass-removal guard.
    pub guard: Guard,
    /// The look.
    pub theme: Theme,
    /// The keys.
    pub keymap: Keymap,
    /// The store as the status bar shows it (redacted).
    pub store_label: String,
    /// The organization to open on (`None`: the first by name).
    pub organization: Option<OrganizationId>,
    /// The operator's levels (`[access]`; admin everywhere without it).
    pub grants: crate::domain::Grants,
}

/// Test hook: with this set, the workbench panics after its first frame, so the tmux test can
/// check that a panic restores the terminal.
pub const PANIC_ENV: &str = "SCIMDESK_WORKBENCH_TEST_PANIC";

/// Why the workbench could not run or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum WorkbenchError {
    /// The terminal could not be put in raw mode or the alternate screen.
    #[error("cannot open the terminal: {0}")]
    Terminal(std::io::Error),
    /// A frame could not be drawn.
    #[error("cannot draw: {0}")]
    Draw(String),
    /// The signal handlers could not be installed.
    #[error("cannot handle signals: {0}")]
    Signals(std::io::Error),
}

/// Where the loop's key events come from.
pub enum Input {
    /// The real terminal, read on a thread of its own; SIGTERM, SIGHUP and SIGINT close the
    /// workbench as `q` does.
    Terminal,
    /// Events sent by the caller (a test); the loop ends when the sender is dropped, as it
    /// does when a terminal hangs up. No signal handlers are installed.
    Events(mpsc::UnboundedReceiver<Event>),
}

enum Msg {
    Input(Event),
    /// The terminal is gone (hung up): nothing can be shown or typed any more.
    InputClosed,
    Loaded(Box<Result<Loaded, LoadError>>),
    Detail(Box<Result<Detail, LoadError>>),
    Reply(Reply),
}

/// Opens the workbench on the terminal and runs it until the operator quits or a SIGTERM,
/// SIGHUP or SIGINT arrives; the terminal is restored in every case, panics included.
pub async fn run(session: Session) -> Result<(), WorkbenchError> {
    let mut terminal = ratatui::try_init().map_err(WorkbenchError::Terminal)?;
    let result = run_main_loop(&mut terminal, session, Input::Terminal).await;
    ratatui::restore();
    result
}

/// The workbench's loop on any backend: draws, takes keys from `input`, reads and runs
/// commands off the render path, and returns when the operator quits or the input ends.
pub async fn run_main_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    s: Session,
    input: Input,
) -> Result<(), WorkbenchError> {
    let loader = Loader {
        store: s.store.clone(),
        actor: s.actor.clone(),
        guard: s.guard,
        thresholds: s.engine.config().health.clone(),
        engine: (s.workers == Workers::Running).then(|| s.engine.clone()),
        health_cache: Default::default(),
        grants: s.grants.clone(),
    };
    let mut app = App::new(s.keymap, s.theme, s.store_label, s.workers);
    app.operator = s.actor.name.clone();
    app.guard = s.guard;
    if let Some(id) = s.organization {
        app.organization = Some(super::data::OrgRef {
            id,
            name: String::new(),
        });
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let stop_input = Arc::new(AtomicBool::new(false));
    let (reader, mut signals) = match input {
        Input::Terminal => (
            Some(spawn_reader(tx.clone(), stop_input.clone())),
            Some(Signals::new()?),
        ),
        Input::Events(events) => {
            forward_events(events, tx.clone());
            (None, None)
        }
    };
    let mut events = s.engine.events().subscribe();
    let mut remote = s.engine.remote_changes();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let mut loads = Loads::default();
    draw(terminal, &mut app)?;
    if std::env::var_os(PANIC_ENV).is_some() {
        panic!("{PANIC_ENV} is set: panicking after the first frame, as asked");
    }
    loads.request(app.load_request(), &loader, &tx);

    let outcome = loop {
        let mut dirty = false;
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break Ok(()) };
                let mut batch = vec![msg];
                while let Ok(m) = rx.try_recv() {
                    batch.push(m);
                }
                for msg in batch {
                    let effects = handle(&mut app, &mut loads, msg);
                    perform(&mut app, effects, &loader, &mut loads, &tx);
                }
                dirty = true;
            }
            ev = events.recv() => {
                // Events are hints (a lagged receiver just re-reads): the store is the truth.
                if !matches!(ev, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    loads.request(app.load_request(), &loader, &tx);
                }
            }
            changed = remote.changed() => {
                if changed.is_ok() {
                    loads.request(app.load_request(), &loader, &tx);
                }
            }
            _ = tick.tick() => {
                app.now = Timestamp::now();
                loads.request(app.load_request(), &loader, &tx);
                dirty = true;
            }
            why = next_signal(&mut signals) => {
                tracing::info!("workbench closing on {why}");
                break Ok(());
            }
        }
        if app.quitting {
            break Ok(());
        }
        if dirty {
            draw(terminal, &mut app)?;
        }
    };
    stop_input.store(true, Ordering::Relaxed);
    if let Some(reader) = reader {
        let _ = reader.join();
    }
    outcome
}

fn draw<B: Backend>(terminal: &mut Terminal<B>, app: &mut App) -> Result<(), WorkbenchError> {
    terminal
        .draw(|f| ui::draw(f, app))
        .map(|_| ())
        .map_err(|e| WorkbenchError::Draw(e.to_string()))
}

/// Passes the caller's events into the loop, then says the input closed.
fn forward_events(mut events: mpsc::UnboundedReceiver<Event>, tx: mpsc::UnboundedSender<Msg>) {
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            if tx.send(Msg::Input(e)).is_err() {
                return;
            }
        }
        let _ = tx.send(Msg::InputClosed);
    });
}

/// The next closing signal, or never when none are handled.
async fn next_signal(signals: &mut Option<Signals>) -> &'static str {
    match signals {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

fn handle(app: &mut App, loads: &mut Loads, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Input(Event::Key(key)) => app.on_key(key),
        Msg::Input(_) => Vec::new(),
        Msg::InputClosed => {
            app.quitting = true;
            Vec::new()
        }
        Msg::Loaded(result) => {
            loads.in_flight = false;
            let mut effects = Vec::new();
            match *result {
                Ok(loaded) => app.on_loaded(loaded),
                Err(e) => {
                    app.toast = Some(super::state::Toast {
                        text: e.to_string(),
                        error: true,
                    })
                }
            }
            if let Some(next) = loads.waiting.take() {
                effects.push(Effect::Load(next));
            }
            effects
        }
        Msg::Detail(result) => match *result {
            Ok(detail) => {
                app.on_detail(detail);
                Vec::new()
            }
            Err(e) => app.on_reply(Reply::Failed(e.to_string())),
        },
        Msg::Reply(outcome) => app.on_reply(outcome),
    }
}

fn perform(
    app: &mut App,
    effects: Vec<Effect>,
    loader: &Loader,
    loads: &mut Loads,
    tx: &mpsc::UnboundedSender<Msg>,
) {
    for effect in effects {
        match effect {
            Effect::Quit => app.quitting = true,
            Effect::Load(req) => loads.request(req, loader, tx),
            Effect::Detail(req) => {
                let Some(org) = app.organization.as_ref().map(|o| o.id) else {
                    continue;
                };
                spawn_detail(loader.clone(), org, req, tx.clone());
            }
            Effect::Run(cmd) => {
                let Some(org) = app.organization.as_ref().map(|o| o.id) else {
                    app.toast = Some(super::state::Toast {
                        text: "no organization: nothing to act on".into(),
                        error: true,
                    });
                    continue;
                };
                let loader = loader.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let outcome = loader.run(org, &cmd).await;
                    let _ = tx.send(Msg::Reply(outcome));
                });
            }
        }
    }
}

fn spawn_detail(
    loader: Loader,
    org: OrganizationId,
    req: DetailRequest,
    tx: mpsc::UnboundedSender<Msg>,
) {
    tokio::spawn(async move {
        let result = loader.detail(org, &req).await;
        let _ = tx.send(Msg::Detail(Box::new(result)));
    });
}

/// One read at a time: a request made while one runs waits, and only the newest waits.
#[derive(Default)]
struct Loads {
    in_flight: bool,
    waiting: Option<LoadRequest>,
}

impl Loads {
    fn request(&mut self, req: LoadRequest, loader: &Loader, tx: &mpsc::UnboundedSender<Msg>) {
        if self.in_flight {
            self.waiting = Some(req);
            return;
        }
        self.in_flight = true;
        let loader = loader.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let result = loader.load(&req).await;
            let _ = tx.send(Msg::Loaded(Box::new(result)));
        });
    }
}

/// Reads terminal events on a thread of its own (crossterm's reader blocks), polling so it
/// notices when to stop.
fn spawn_reader(
    tx: mpsc::UnboundedSender<Msg>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match event::poll(Duration::from_millis(50)) {
                Ok(true) => match event::read() {
                    Ok(e) => {
                        if tx.send(Msg::Input(e)).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                },
                Ok(false) => {}
                Err(_) => break,
            }
        }
        if !stop.load(Ordering::Relaxed) {
            let _ = tx.send(Msg::InputClosed);
        }
    })
}

/// SIGTERM, SIGHUP and SIGINT, which close the workbench as `q` does.
struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self, WorkbenchError> {
        use tokio::signal::unix::{SignalKind, signal};
        let make = |k: SignalKind| signal(k).map_err(WorkbenchError::Signals);
        Ok(Self {
            term: make(SignalKind::terminate())?,
            hup: make(SignalKind::hangup())?,
            int: make(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
