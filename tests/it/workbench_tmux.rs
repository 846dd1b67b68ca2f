//! The real binary driven in tmux as a person would: keys with `send-keys`, the screen read
//! with `capture-pane`. Each test runs its own tmux server (`-L`), so they run in parallel.
//!
//! tmux is required with `CI=true` (`.ci/run` installs it); elsewhere a missing tmux skips
//! these tests with a message.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_scimdesk");

fn tmux_available() -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tmux is required with CI=true (.ci/run installs it)"
        );
        eprintln!("skipping: tmux is not installed");
    }
    ok
}

/// A tmux server of its own with one window running `command` (then an exit marker and
/// whether the terminal is back in cooked mode), removed on drop.
struct Tmux {
    socket: String,
    dir: tempfile::TempDir,
}

impl Tmux {
    fn start(command: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = format!("scimdesk-{}", uuid::Uuid::new_v4().simple());
        let mut vars = format!(
            "SCIMDESK_CONFIG={} SCIMDESK_DATA_DIR={} TERM=xterm-256color",
            dir.path().join("config").display(),
            dir.path().join("data").display()
        );
        for (k, v) in env {
            vars.push_str(&format!(" {k}={v}"));
        }
        // After the program: its exit code, whether the terminal is cooked again, then a line
        // that says both have been printed (waiting for "EXITED" alone could read the screen
        // before `stty` had answered, as a loaded CI machine once did).
        let script = format!(
            "env {vars} {command}; echo \"EXITED $?\"; stty -a | grep -q ' icanon' && echo COOKED; echo CHECKED; sleep 600"
        );
        let t = Self { socket, dir };
        t.tmux(&[
            "new-session",
            "-d",
            "-s",
            "w",
            "-x",
            "120",
            "-y",
            "40",
            &script,
        ]);
        // Esc then a key must arrive as two keys, not as Alt+key.
        t.tmux(&["set", "-s", "escape-time", "0"]);
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "w"])
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.tmux(&["send-keys", "-t", "w", k]);
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "w", "-l", text]);
        std::thread::sleep(Duration::from_millis(150));
    }

    /// Waits until the screen satisfies `ok`, or fails showing the screen.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn alternate_screen(&self) -> bool {
        self.tmux(&["display", "-p", "-t", "w", "#{alternate_on}"])
            .trim()
            == "1"
    }

    fn program_pid(&self) -> u32 {
        let shell = self.tmux(&["display", "-p", "-t", "w", "#{pane_pid}"]);
        let out = Command::new("pgrep")
            .args(["-P", shell.trim(), "-f", "scimdesk"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no scimdesk process under the shell {shell}"))
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Stop the program as an operator would, then the server (a failed test must not
        // leave a demo running).
        let shell = self.tmux(&["display", "-p", "-t", "w", "#{pane_pid}"]);
        let _ = Command::new("pkill")
            .args(["-TERM", "-P", shell.trim()])
            .status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

fn cli(dir: &Path, db: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .env("SCIMDESK_CONFIG", dir.join("config"))
        .env("SCIMDESK_DATA_DIR", dir.join("data"))
        .args(["--database-url", db])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn db_url(dir: &Path) -> (PathBuf, String) {
    let file = dir.join("demo.db");
    let url = format!("sqlite:{}", file.display());
    (file, url)
}

/// Opens the demo, switches panes, opens a failed operation and retries it, re-maps the
/// unmapped group in the editor and confirms the impact, quits — then reads the store and the
/// audit log with the CLI.
#[test]
fn demo_driven_from_the_keyboard() {
    if !tmux_available() {
        return;
    }
    let probe = tempfile::tempdir().unwrap();
    let (_, url) = db_url(probe.path());
    let t = Tmux::start(
        &format!("{BIN} --database-url {url} --operator night-shift demo --speed 8 --nurses 40"),
        &[],
    );
    t.wait_for("the workbench", |s| {
        s.contains("Riverside Health") && s.contains("1 Connections")
    });
    assert!(t.alternate_screen());
    // Health: both applications appear with a state.
    t.wait_for("the two applications", |s| {
        s.contains("pharmacy") && s.contains("rostering")
    });
    // The Failed pane fills as Pharmacy refuses the agency contractors.
    t.keys(&["3"]);
    t.wait_for("a failed operation and the unmapped group", |s| {
        s.contains("failed     pharmacy") && s.contains("Agency Float Pool")
    });
    // Switch through the panes.
    t.keys(&["2"]);
    t.wait_for("the queue pane", |s| s.contains("Queue · rows"));
    t.keys(&["4"]);
    t.wait_for("the mappings pane", |s| {
        s.contains("Ward *") && s.contains("ward-nurse")
    });
    t.keys(&["5"]);
    t.wait_for("the users pane", |s| {
        s.contains("nurse000@riverside.example")
    });
    t.keys(&["Tab"]);
    t.wait_for("the audit pane", |s| s.contains("Audit · newest first"));
    // Open the first failed operation (the row under the exception) and retry it.
    t.keys(&["3"]);
    t.wait_for("the failed pane", |s| s.contains("Failed ·"));
    t.keys(&["j", "Enter"]);
    t.wait_for("the operation detail", |s| {
        s.contains("operation 0") && s.contains("HTTP 400") && s.contains("request")
    });
    t.keys(&["r"]);
    t.wait_for("the retry", |s| s.contains("back in the queue"));
    t.keys(&["Escape"]);
    // Re-map the unmapped group from its exception (the top row; the selection follows the
    // operation it was on, which moves as the retried operation fails again).
    t.keys(&["PPage", "m"]);
    t.wait_for("the mapping editor", |s| {
        s.contains("map the unmapped group") && s.contains("Agency Float Pool")
    });
    t.type_text("float-nurse");
    t.keys(&["Enter"]);
    let s = t.wait_for("the impact preview", |s| {
        s.contains("impact of the mapping")
    });
    assert!(s.contains("float-nurse") && s.contains("Who gains"), "{s}");
    t.keys(&["y"]);
    t.wait_for("the mapping saved", |s| s.contains("mapping saved"));
    t.keys(&["4"]);
    t.wait_for("the new mapping", |s| {
        s.contains("Agency Float Pool") && s.contains("float-nurse")
    });
    t.keys(&["q"]);
    let s = t.wait_for("the exit", |s| s.contains("CHECKED"));
    assert!(s.contains("EXITED 0") && s.contains("COOKED"), "{s}");
    assert!(!t.alternate_screen());

    // What was done is in the store and the audit log, under the operator's name.
    let dir = t.path();
    let audit = cli(
        dir,
        &url,
        &[
            "--org",
            "Riverside Health",
            "--json",
            "audit",
            "list",
            "--actor",
            "night-shift",
            "--limit",
            "100",
        ],
    );
    let events: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for wanted in ["operation.retry", "role.create", "mapping.create"] {
        assert!(actions.contains(&wanted), "{wanted} not in {actions:?}");
    }
    let mappings = cli(
        dir,
        &url,
        &["--org", "Riverside Health", "--json", "mapping", "list"],
    );
    assert!(
        mappings.contains("Agency Float Pool") && mappings.contains("float-nurse"),
        "{mappings}"
    );
    let open = cli(
        dir,
        &url,
        &["--org", "Riverside Health", "--json", "exceptions", "list"],
    );
    assert!(!open.contains("Agency Float Pool"), "still open: {open}");
}

/// A panic and a SIGTERM both give the terminal back: cooked mode, main screen.
#[test]
fn the_terminal_is_restored_after_a_panic_and_after_sigterm() {
    if !tmux_available() {
        return;
    }
    let probe = tempfile::tempdir().unwrap();
    let (_, url) = db_url(probe.path());
    let panicking = Tmux::start(
        &format!("{BIN} --database-url {url}"),
        &[
            ("SCIMDESK_WORKBENCH_TEST_PANIC", "1"),
            ("RUST_BACKTRACE", "0"),
        ],
    );
    let s = panicking.wait_for("the exit after the panic", |s| s.contains("CHECKED"));
    assert!(s.contains("panicking after the first frame"), "{s}");
    assert!(!s.contains("EXITED 0") && s.contains("COOKED"), "{s}");
    assert!(!panicking.alternate_screen());

    let running = Tmux::start(&format!("{BIN} --database-url {url} --no-workers"), &[]);
    running.wait_for("the workbench", |s| {
        s.contains("No organization yet") && s.contains("watching")
    });
    assert!(running.alternate_screen());
    let pid = running.program_pid();
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let s = running.wait_for("the exit after SIGTERM", |s| s.contains("CHECKED"));
    assert!(s.contains("EXITED 0") && s.contains("COOKED"), "{s}");
    assert!(!running.alternate_screen());
}
