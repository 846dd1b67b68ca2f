//! The workbench's real event loop ([`run_main_loop`]) on ratatui's `TestBackend`, with keys fed
//! in as an operator would press them: the loop reads the store, draws, switches panes, opens
//! and closes the help, and ends on `q` or when its input closes. What is asserted is what the
//! screen shows, waited for as a person would wait for it, on both stores.

use crate::support::Harness;
use crate::support::idp::{Source, fast};
use ratatui::Terminal;
use ratatui::backend::{Backend, ClearType, TestBackend, WindowSize};
use ratatui::buffer::Cell;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Position, Size};
use scimdesk::domain::{
    Access, Actor, AuthMethod, ConnectionKind, ConnectionState, Grants, NewConnection,
};
use scimdesk::engine::Engine;
use scimdesk::policy::impact::Guard;
use scimdesk::store::Store;
use scimdesk::tui::keymap::Keymap;
use scimdesk::tui::runner::{Input, Session, run_main_loop};
use scimdesk::tui::state::Workers;
use scimdesk::tui::theme::Theme;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

on_both_backends!(
    the_loop_reads_draws_and_answers_keys,
    the_loop_ends_when_its_input_closes,
    a_key_the_operators_access_refuses_says_why,
);

/// A `TestBackend` the test can read while the loop draws on it.
#[derive(Clone)]
struct Shared(Arc<Mutex<TestBackend>>);

impl Shared {
    fn new(width: u16, height: u16) -> Self {
        Self(Arc::new(Mutex::new(TestBackend::new(width, height))))
    }

    /// The screen as text, one line per row.
    fn screen(&self) -> String {
        let backend = self.0.lock().unwrap();
        let buffer = backend.buffer();
        let width = usize::from(buffer.area.width);
        buffer
            .content
            .chunks(width)
            .map(|row| row.iter().map(Cell::symbol).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Backend for Shared {
    type Error = std::convert::Infallible;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), Self::Error>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        self.0.lock().unwrap().draw(content)
    }

    fn hide_cursor(&mut self) -> Result<(), Self::Error> {
        self.0.lock().unwrap().hide_cursor()
    }

    fn show_cursor(&mut self) -> Result<(), Self::Error> {
        self.0.lock().unwrap().show_cursor()
    }

    fn get_cursor_position(&mut self) -> Result<Position, Self::Error> {
        self.0.lock().unwrap().get_cursor_position()
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> Result<(), Self::Error> {
        self.0.lock().unwrap().set_cursor_position(position)
    }

    fn clear(&mut self) -> Result<(), Self::Error> {
        self.0.lock().unwrap().clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> Result<(), Self::Error> {
        self.0.lock().unwrap().clear_region(clear_type)
    }

    fn size(&self) -> Result<Size, Self::Error> {
        self.0.lock().unwrap().size()
    }

    fn window_size(&mut self) -> Result<WindowSize, Self::Error> {
        self.0.lock().unwrap().window_size()
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.lock().unwrap().flush()
    }
}

/// A workbench session on `store` that only watches (no workers), as `--no-workers` runs.
fn session(store: Arc<dyn Store>) -> Session {
    let engine = Arc::new(Engine::new(store.clone(), fast()));
    engine.start_watching();
    Session {
        store,
        engine,
        workers: Workers::Off,
        actor: Actor::operator("tester"),
        guard: Guard::default(),
        theme: Theme::load("default", true).unwrap(),
        keymap: Keymap::default(),
        store_label: "test store".into(),
        organization: None,
        grants: Grants::Everywhere(Access::Admin),
    }
}

fn key(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

/// Waits until the screen shows `text` (or, with `shown` false, no longer does); fails with
/// the screen as it is.
async fn until_screen(backend: &Shared, text: &str, shown: bool) {
    let start = Instant::now();
    loop {
        let screen = backend.screen();
        if screen.contains(text) == shown {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "waited 20 s for the screen to {} {text:?}; it shows:\n{screen}",
            if shown { "show" } else { "drop" }
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn shows(backend: &Shared, text: &str) {
    until_screen(backend, text, true).await
}

async fn hides(backend: &Shared, text: &str) {
    until_screen(backend, text, false).await
}

async fn the_loop_reads_draws_and_answers_keys(h: &Harness) {
    let store: Arc<dyn Store> = h.store.clone();
    let source = Source::start(store.clone()).await;
    source.create_user("ann.lee@riverside.example").await;

    let backend = Shared::new(120, 32);
    let (keys, input) = mpsc::unbounded_channel();
    let mut terminal = Terminal::new(backend.clone()).unwrap();
    let running = tokio::spawn(async move {
        run_main_loop(&mut terminal, session(store), Input::Events(input)).await
    });

    // The first read names the organization and its source connection.
    shows(&backend, "Hospital IdP").await;
    assert!(!backend.screen().contains("ann.lee@riverside.example"));
    // 5: the Users pane, read from the store.
    keys.send(key('5')).unwrap();
    shows(&backend, "ann.lee@riverside.example").await;
    // ?: the help over the pane; any key closes it.
    keys.send(key('?')).unwrap();
    shows(&backend, "keys (any key closes)").await;
    keys.send(key('x')).unwrap();
    hides(&backend, "keys (any key closes)").await;
    assert!(backend.screen().contains("ann.lee@riverside.example"));
    // q: the loop returns.
    keys.send(key('q')).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(20), running).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
}

async fn the_loop_ends_when_its_input_closes(h: &Harness) {
    let store: Arc<dyn Store> = h.store.clone();
    let backend = Shared::new(80, 24);
    let (keys, input) = mpsc::unbounded_channel::<Event>();
    let mut terminal = Terminal::new(backend.clone()).unwrap();
    let running = tokio::spawn(async move {
        run_main_loop(&mut terminal, session(store), Input::Events(input)).await
    });
    // An empty store: the loop draws and says there is no organization yet.
    shows(&backend, "no organization").await;
    // The input closing (a terminal hanging up) ends the loop as `q` does.
    drop(keys);
    let ended = tokio::time::timeout(Duration::from_secs(20), running).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
}

/// With `[access]` giving the operator `read` in the organization, pausing a target is
/// refused on screen, saying which level it needs, and the target stays active.
async fn a_key_the_operators_access_refuses_says_why(h: &Harness) {
    let store: Arc<dyn Store> = h.store.clone();
    let source = Source::start(store.clone()).await;
    let target = store
        .create_connection(
            &Actor::operator("tester"),
            source.org,
            &NewConnection {
                name: "ehr".into(),
                kind: ConnectionKind::ScimTarget,
                base_url: Some("http://127.0.0.1:9/scim/v2".into()),
                auth_method: AuthMethod::Bearer,
                settings: serde_json::json!({"user_scope": "all"}),
            },
            Some(&scimdesk::crypto::Secret::new("t")),
        )
        .await
        .unwrap();
    let backend = Shared::new(120, 32);
    let (keys, input) = mpsc::unbounded_channel();
    let mut terminal = Terminal::new(backend.clone()).unwrap();
    let mut s = session(store.clone());
    s.grants = Grants::PerOrganization([("Hospital".to_string(), Access::Read)].into());
    let running =
        tokio::spawn(async move { run_main_loop(&mut terminal, s, Input::Events(input)).await });
    shows(&backend, "ehr").await;
    // The target is one of two rows; try `p` on each until the refusal shows.
    let refusal = "needs operate access";
    let mut refused = false;
    for _ in 0..3 {
        keys.send(key('p')).unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            if backend.screen().contains(refusal) {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if refused {
            break;
        }
        keys.send(key('j')).unwrap();
    }
    assert!(refused, "{}", backend.screen());
    let still = store
        .connection(source.org, target.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.state, ConnectionState::Active);
    keys.send(key('q')).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(20), running).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
}
