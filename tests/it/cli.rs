//! The `scimdesk` binary end to end, on a temporary config and data directory.

use crate::support;

use assert_cmd::Command;
use serde_json::json;
use std::path::{Path, PathBuf};

/// A sandboxed scimdesk installation.
struct Sandbox {
    dir: tempfile::TempDir,
    database_url: Option<String>,
    _schema: Option<support::PgSchema>,
}

impl Sandbox {
    fn sqlite() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            database_url: None,
            _schema: None,
        }
    }

    async fn postgres() -> Option<Self> {
        let schema = support::pg_schema().await?;
        Some(Self {
            dir: tempfile::tempdir().unwrap(),
            database_url: Some(schema.url()),
            _schema: Some(schema),
        })
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_scimdesk"));
        for var in [
            "DATABASE_URL",
            "SCIMDESK_DATABASE_URL",
            "SCIMDESK_MASTER_KEY",
            "SCIMDESK_ORG",
            "RUST_LOG",
        ] {
            c.env_remove(var);
        }
        c.env("SCIMDESK_CONFIG", self.config_dir())
            .env("SCIMDESK_DATA_DIR", self.data_dir())
            .env("SCIMDESK_OPERATOR", "tester");
        if let Some(url) = &self.database_url {
            c.env("SCIMDESK_DATABASE_URL", url);
        }
        c
    }

    /// Runs and returns (exit code, stdout, stderr).
    fn run(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        let mut c = self.cmd();
        c.args(args);
        if let Some(input) = stdin {
            c.write_stdin(input.to_string());
        }
        let out = c.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs, asserts success, returns stdout.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (code, out, err) = self.run(args, stdin);
        assert_eq!(code, 0, "scimdesk {args:?} failed: {err}");
        out
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all, None)).unwrap()
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

const SECRET: &str = "s3cr3t-bearer-token-for-workday-91f2";

fn lifecycle(sb: &Sandbox) {
    let mut transcript = String::new();
    let mut run = |args: &[&str], stdin: Option<&str>| {
        let (code, out, err) = sb.run(args, stdin);
        transcript.push_str(&out);
        transcript.push_str(&err);
        assert_eq!(code, 0, "scimdesk {args:?}: {err}");
        out
    };
    let out = run(&["org", "create", "Riverside Health"], None);
    assert!(
        out.contains("created organization \"Riverside Health\""),
        "{out}"
    );
    let out = run(&["org", "list"], None);
    assert!(out.contains("Riverside Health"), "{out}");

    let out = run(
        &[
            "--org",
            "Riverside Health",
            "connection",
            "add",
            "workday",
            "--kind",
            "scim_target",
            "--base-url",
            "https://workday.example.com/scim/v2/",
            "--secret-stdin",
        ],
        Some(&format!("{SECRET}\n")),
    );
    assert!(
        out.contains("added scim_target connection \"workday\""),
        "{out}"
    );
    let out = run(&["--org", "riverside health", "connection", "list"], None);
    assert!(out.contains("workday") && out.contains("********"), "{out}");
    assert!(out.contains("https://workday.example.com/scim/v2"), "{out}");
    let out = run(
        &["--org", "Riverside Health", "connection", "show", "WORKDAY"],
        None,
    );
    assert!(out.contains("secret") && out.contains("********"), "{out}");

    // A secret from a file, then rotated from stdin.
    let secret_file = sb.dir.path().join("kc.secret");
    std::fs::write(&secret_file, format!("{SECRET}-kc\n")).unwrap();
    run(
        &[
            "--org",
            "Riverside Health",
            "connection",
            "add",
            "keycloak",
            "--kind",
            "keycloak",
            "--base-url",
            "https://sso.example.com",
            "--client-id",
            "scimdesk",
            "--issuer",
            "https://sso.example.com/realms/hospital",
            "--secret-file",
            secret_file.to_str().unwrap(),
        ],
        None,
    );
    run(
        &[
            "--org",
            "Riverside Health",
            "connection",
            "rotate-secret",
            "keycloak",
            "--secret-file",
            "-",
        ],
        Some(&format!("{SECRET}-rotated")),
    );

    let conns = sb.json(&["--org", "Riverside Health", "connection", "list"]);
    let conns = conns.as_array().unwrap();
    assert_eq!(conns.len(), 2);
    assert_eq!(conns[0]["name"], "keycloak");
    assert_eq!(conns[0]["auth_method"], "oauth2_client_credentials");
    assert_eq!(conns[0]["settings"]["client_id"], "scimdesk");
    assert_eq!(conns[1]["has_secret"], true);

    run(
        &[
            "--org",
            "Riverside Health",
            "connection",
            "add",
            "okta",
            "--kind",
            "scim_inbound",
        ],
        None,
    );
    let token = run(
        &[
            "--org",
            "Riverside Health",
            "token",
            "create",
            "--name",
            "okta push",
            "--connection",
            "okta",
        ],
        None,
    );
    let token = token.trim().to_string();
    assert!(token.starts_with("scd_"), "{token}");
    let tokens = run(&["--org", "Riverside Health", "token", "list"], None);
    assert!(
        tokens.contains("okta push") && tokens.contains("active") && !tokens.contains(&token),
        "{tokens}"
    );
    let listed = sb.json(&["--org", "Riverside Health", "token", "list"]);
    let id = listed[0]["id"].as_str().unwrap().to_string();
    run(&["--org", "Riverside Health", "token", "revoke", &id], None);
    assert!(run(&["--org", "Riverside Health", "token", "list"], None).contains("revoked"));

    run(
        &[
            "--org",
            "Riverside Health",
            "connection",
            "remove",
            "workday",
        ],
        None,
    );
    let out = run(&["--org", "Riverside Health", "connection", "list"], None);
    assert!(!out.contains("workday"), "{out}");

    let audit = sb.json(&["--org", "Riverside Health", "audit", "list"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "connection.delete",
            "token.revoke",
            "token.create",
            "connection.create",
            "connection.secret_rotate",
            "connection.create",
            "connection.create",
            "organization.create",
        ]
    );
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == "tester" && e["actor_kind"] == "operator")
    );
    let filtered = sb.json(&[
        "--org",
        "Riverside Health",
        "audit",
        "list",
        "--action",
        "token.",
        "--limit",
        "1",
    ]);
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    assert_eq!(filtered[0]["action"], "token.revoke");
    let table = run(&["--org", "Riverside Health", "audit", "list"], None);
    assert!(
        table.contains("operator:tester") && table.contains("connection.secret_rotate"),
        "{table}"
    );

    // No secret anywhere a person or a log could see it.
    for s in [
        SECRET,
        &format!("{SECRET}-kc"),
        &format!("{SECRET}-rotated"),
    ] {
        assert!(!transcript.contains(s), "secret printed");
    }
    assert!(
        transcript.matches(&token).count() == 1,
        "the token is printed exactly once, at creation"
    );
    for file in files_under(&sb.data_dir())
        .into_iter()
        .chain(files_under(&sb.config_dir()))
    {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "secret in {}",
            file.display()
        );
    }
}

#[test]
fn lifecycle_on_sqlite() {
    let sb = Sandbox::sqlite();
    lifecycle(&sb);
    assert!(
        sb.data_dir().join("scimdesk.db").exists(),
        "the default store is an SQLite file in the data dir"
    );
    let logs = files_under(&sb.data_dir().join("logs"));
    assert!(!logs.is_empty(), "a log file is written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_postgres() {
    let Some(sb) = Sandbox::postgres().await else {
        return;
    };
    tokio::task::spawn_blocking(move || {
        lifecycle(&sb);
        let status = sb.ok(&["status"], None);
        assert!(status.contains("postgres"), "{status}");
        assert!(
            !sb.data_dir().join("scimdesk.db").exists(),
            "no SQLite file when PostgreSQL is configured"
        );
    })
    .await
    .unwrap();
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_code() {
    let sb = Sandbox::sqlite();
    sb.ok(&["org", "create", "Riverside"], None);
    sb.ok(
        &[
            "--org",
            "Riverside",
            "connection",
            "add",
            "app",
            "--kind",
            "scim_target",
            "--base-url",
            "https://a.example",
        ],
        None,
    );
    let cases: &[(&[&str], Option<&str>, i32, &str)] = &[
        (&["org", "create", "RIVERSIDE"], None, 4, "already exists"),
        (&["org", "create", "   "], None, 2, "must not be empty"),
        (
            &["--org", "Nowhere", "connection", "list"],
            None,
            3,
            "unknown organization \"Nowhere\"",
        ),
        (&["connection", "list"], None, 2, "needs an organization"),
        (
            &["--org", "Riverside", "connection", "show", "ghost"],
            None,
            3,
            "no connection \"ghost\"",
        ),
        (
            &[
                "--org",
                "Riverside",
                "connection",
                "add",
                "app",
                "--kind",
                "scim_target",
                "--base-url",
                "https://b.example",
            ],
            None,
            4,
            "already exists",
        ),
        (
            &[
                "--org",
                "Riverside",
                "connection",
                "add",
                "x",
                "--kind",
                "scim_target",
                "--base-url",
                "not a url",
            ],
            None,
            2,
            "not a URL",
        ),
        (
            &[
                "--org",
                "Riverside",
                "connection",
                "add",
                "x",
                "--kind",
                "scim_target",
                "--base-url",
                "ftp://files.example",
            ],
            None,
            2,
            "http or https",
        ),
        (
            &[
                "--org",
                "Riverside",
                "connection",
                "add",
                "x",
                "--kind",
                "scim_target",
                "--base-url",
                "https://u:pw@h.example",
            ],
            None,
            2,
            "must not contain credentials",
        ),
        (
            &[
                "--org",
                "Riverside",
                "connection",
                "add",
                "x",
                "--kind",
                "scim_target",
            ],
            None,
            2,
            "needs --base-url",
        ),
        (
            &[
                "--org",
                "Riverside",
                "connection",
                "add",
                "x",
                "--kind",
                "ldap",
            ],
            None,
            2,
            "unknown value \"ldap\"",
        ),
        (
            &[
                "--org",
                "Riverside",
                "connection",
                "add",
                "x",
                "--kind",
                "scim_inbound",
                "--secret-stdin",
            ],
            Some("abc"),
            2,
            "never be used",
        ),
        (
            &[
                "--org",
                "Riverside",
                "connection",
                "add",
                "x",
                "--kind",
                "keycloak",
                "--base-url",
                "https://kc.example",
            ],
            None,
            2,
            "needs --client-id",
        ),
        (
            &[
                "--org",
                "Riverside",
                "connection",
                "add",
                "x",
                "--kind",
                "scim_target",
                "--base-url",
                "https://c.example",
                "--secret-stdin",
            ],
            Some("\n"),
            2,
            "the secret is empty",
        ),
        (
            &[
                "--org",
                "Riverside",
                "connection",
                "add",
                "x",
                "--kind",
                "scim_target",
                "--base-url",
                "https://c.example",
                "--secret-file",
                "/nonexistent/s",
            ],
            None,
            2,
            "cannot read secret file",
        ),
        (
            &[
                "--org",
                "Riverside",
                "connection",
                "add",
                "x",
                "--kind",
                "scim_target",
                "--base-url",
                "https://c.example",
                "--setting",
                "novalue",
            ],
            None,
            2,
            "is not KEY=VALUE",
        ),
        (
            &["--org", "Riverside", "connection", "rotate-secret", "app"],
            None,
            2,
            "--secret-file",
        ),
        (
            &[
                "--org",
                "Riverside",
                "token",
                "create",
                "--name",
                "t",
                "--connection",
                "app",
            ],
            None,
            2,
            "scim_inbound",
        ),
        (
            &["--org", "Riverside", "token", "revoke", "not-an-id"],
            None,
            2,
            "is not a token id",
        ),
        (
            &[
                "--org",
                "Riverside",
                "token",
                "revoke",
                "01a221d1-756b-706a-bd31-5a7732332c6f",
            ],
            None,
            3,
            "no active token",
        ),
        (
            &["--database-url", "mysql://db/x", "status"],
            None,
            2,
            "neither postgres",
        ),
    ];
    for (args, stdin, code, fragment) in cases {
        let (got, out, err) = sb.run(args, *stdin);
        assert_eq!(got, *code, "scimdesk {args:?}: stdout={out} stderr={err}");
        assert!(
            err.contains(fragment),
            "scimdesk {args:?}: expected {fragment:?} in {err:?}"
        );
        assert!(err.starts_with("error: "), "{err}");
    }
    // Refused input changed nothing.
    let conns = sb.json(&["--org", "Riverside", "connection", "list"]);
    assert_eq!(conns.as_array().unwrap().len(), 1);
    let orgs = sb.json(&["org", "list"]);
    assert_eq!(orgs.as_array().unwrap().len(), 1);
}

#[test]
fn secrets_are_never_taken_from_argv() {
    let sb = Sandbox::sqlite();
    let (code, _, err) = sb.run(
        &[
            "--org",
            "x",
            "connection",
            "add",
            "a",
            "--kind",
            "scim_target",
            "--secret",
            "hunter2",
        ],
        None,
    );
    assert_eq!(code, 2);
    assert!(err.contains("--secret"), "{err}");
    assert!(
        err.contains("unexpected argument") && !err.contains("hunter2"),
        "{err}"
    );
}

#[test]
fn unreachable_database_is_reported_without_its_password() {
    let sb = Sandbox::sqlite();
    let (code, _, err) = sb.run(
        &[
            "--database-url",
            "postgres://admin:hunter2@127.0.0.1:1/scimdesk",
            "org",
            "list",
        ],
        None,
    );
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("cannot reach the database at postgres://admin:********@127.0.0.1:1/scimdesk"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn db_migrate_is_idempotent() {
    let sb = Sandbox::sqlite();
    let first = sb.ok(&["db", "migrate"], None);
    assert!(
        first.contains("up to date") && first.contains("init"),
        "{first}"
    );
    let second = sb.json(&["db", "migrate"]);
    assert_eq!(second["backend"], "sqlite");
    assert_eq!(second["applied"][0]["version"], 1);
}

#[test]
fn key_rotate_rewraps_and_secrets_stay_usable() {
    let sb = Sandbox::sqlite();
    sb.ok(&["org", "create", "A"], None);
    sb.ok(&["org", "create", "B"], None);
    for org in ["A", "B"] {
        sb.ok(
            &[
                "--org",
                org,
                "connection",
                "add",
                "app",
                "--kind",
                "scim_target",
                "--base-url",
                "https://a.example",
                "--secret-stdin",
            ],
            Some(SECRET),
        );
    }
    let key_file = sb.config_dir().join("master.key");
    let before = std::fs::read_to_string(&key_file).unwrap();
    let out = sb.ok(&["key", "rotate"], None);
    assert!(
        out.contains("re-wrapped the data keys of 2 organization(s)"),
        "{out}"
    );
    let after = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(before, after);
    assert!(!out.contains(after.trim()), "the key is never printed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(!sb.config_dir().join("master.key.next").exists());
    // Sealing a new secret needs the data key, which only the new master key unwraps.
    for org in ["A", "B"] {
        sb.ok(
            &[
                "--org",
                org,
                "connection",
                "rotate-secret",
                "app",
                "--secret-stdin",
            ],
            Some("new"),
        );
    }
    let audit = sb.json(&["--org", "A", "audit", "list", "--action", "key."]);
    assert_eq!(audit.as_array().unwrap().len(), 1);

    // The old key is refused with a clear message naming both key ids.
    std::fs::remove_file(&key_file).unwrap();
    std::fs::write(&key_file, &before).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (code, _, err) = sb.run(&["org", "list"], None);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("is not the one that wraps"), "{err}");
}

#[test]
fn interrupted_rotation_is_finished_by_the_next_command() {
    let sb = Sandbox::sqlite();
    sb.ok(&["org", "create", "A"], None);
    sb.ok(
        &[
            "--org",
            "A",
            "connection",
            "add",
            "app",
            "--kind",
            "scim_target",
            "--base-url",
            "https://a.example",
            "--secret-stdin",
        ],
        Some(SECRET),
    );
    // Simulate a crash after the database switched but before the key file was replaced:
    // rotate with the env key, staging the new key where a file rotation would have.
    let key_file = sb.config_dir().join("master.key");
    let old = std::fs::read_to_string(&key_file).unwrap();
    let staged = sb.config_dir().join("master.key.next");
    let out = sb
        .cmd()
        .env("SCIMDESK_MASTER_KEY", old.trim())
        .args(["key", "rotate", "--new-key-file", staged.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), old);
    // The next command notices, finishes the rotation, and works.
    sb.ok(
        &[
            "--org",
            "A",
            "connection",
            "rotate-secret",
            "app",
            "--secret-stdin",
        ],
        Some("x"),
    );
    assert!(!staged.exists());
    assert_ne!(std::fs::read_to_string(&key_file).unwrap(), old);
}

#[test]
fn env_master_key_needs_a_place_for_the_new_one() {
    let sb = Sandbox::sqlite();
    let key = scimdesk::crypto::MasterKey::generate().unwrap();
    let text = key.to_base64();
    let out = sb
        .cmd()
        .env("SCIMDESK_MASTER_KEY", text.expose())
        .args(["org", "create", "A"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        !sb.config_dir().join("master.key").exists(),
        "no key file when the env provides the key"
    );
    let out = sb
        .cmd()
        .env("SCIMDESK_MASTER_KEY", text.expose())
        .args(["key", "rotate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--new-key-file"));
    let bad = sb
        .cmd()
        .env("SCIMDESK_MASTER_KEY", "short")
        .args(["org", "list"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("master key is unusable"));
}

#[test]
fn bare_scimdesk_shows_status() {
    let sb = Sandbox::sqlite();
    let out = sb.ok(&[], None);
    assert!(
        out.contains("sqlite") && out.contains("no organizations yet"),
        "{out}"
    );
    sb.ok(&["org", "create", "Riverside"], None);
    let out = sb.ok(&[], None);
    assert!(out.contains("Riverside"), "{out}");
}

#[test]
fn serve_answers_and_stops_cleanly_on_sigterm() {
    let sb = Sandbox::sqlite();
    sb.ok(&["org", "create", "Riverside"], None);
    sb.ok(
        &[
            "--org",
            "Riverside",
            "connection",
            "add",
            "idp",
            "--kind",
            "scim_inbound",
        ],
        None,
    );
    let token = sb
        .ok(
            &[
                "--org",
                "Riverside",
                "token",
                "create",
                "--name",
                "idp",
                "--connection",
                "idp",
            ],
            None,
        )
        .trim()
        .to_string();
    let (mut child, base) = start_serve(&sb, &[]);
    let url = format!("{base}/scim/v2");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    scimdesk::connectors::ensure_tls_provider();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .get(format!("{url}/Users"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "serve exits 0 after SIGTERM: {exit:?}");
}

/// Starts `scimdesk serve` in the sandbox; returns the process and its base URL (without
/// `/scim/v2`).
fn start_serve(sb: &Sandbox, extra: &[&str]) -> (std::process::Child, String) {
    use std::io::{BufRead as _, BufReader};
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_scimdesk"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("SCIMDESK_CONFIG", sb.config_dir())
        .env("SCIMDESK_DATA_DIR", sb.data_dir())
        .env_remove("SCIMDESK_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.split_whitespace().last().unwrap().to_string();
    (child, url.trim_end_matches("/scim/v2").to_string())
}

fn stop(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[test]
fn ops_and_connection_commands_steer_the_queue() {
    let sb = Sandbox::sqlite();
    let with_org = |args: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["--org", "Riverside"];
        v.extend_from_slice(args);
        v
    };
    sb.ok(&["org", "create", "Riverside"], None);
    sb.ok(
        &with_org(&["connection", "add", "idp", "--kind", "scim_inbound"]),
        None,
    );
    // A target nobody listens on: work queues up and waits.
    sb.ok(
        &with_org(&[
            "connection",
            "add",
            "app",
            "--kind",
            "scim_target",
            "--base-url",
            "http://127.0.0.1:9/scim/v2",
            "--secret-stdin",
        ]),
        Some("target-token\n"),
    );
    let token = sb
        .ok(
            &with_org(&["token", "create", "--name", "idp", "--connection", "idp"]),
            None,
        )
        .trim()
        .to_string();
    // An identity provider pushes a user while no worker runs.
    let (mut server, base) = start_serve(&sb, &["--no-workers"]);
    scimdesk::connectors::ensure_tls_provider();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (created, health, ready) = rt.block_on(async {
        let http = reqwest::Client::new();
        let created = http
            .post(format!("{base}/scim/v2/Users"))
            .bearer_auth(&token)
            .header("content-type", "application/scim+json")
            .body(r#"{"userName": "nurse@riverside.example"}"#)
            .send()
            .await
            .unwrap()
            .status();
        let health = http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status();
        let ready = http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status();
        (created, health, ready)
    });
    assert_eq!(
        (created.as_u16(), health.as_u16(), ready.as_u16()),
        (201, 200, 200)
    );
    stop(&mut server);

    let list = sb.json(&with_org(&["ops", "list"]));
    let ops = list.as_array().unwrap();
    assert_eq!(ops.len(), 1, "{list}");
    assert_eq!(
        (ops[0]["action"].as_str(), ops[0]["state"].as_str()),
        (Some("create"), Some("pending"))
    );
    let id = ops[0]["id"].as_str().unwrap().to_string();
    let out = sb.ok(
        &["--org", "Riverside", "ops", "list", "--connection", "app"],
        None,
    );
    assert!(out.contains(&id) && out.contains("pending"), "{out}");
    assert!(
        sb.json(&with_org(&["ops", "list", "--state", "failed"]))
            .as_array()
            .unwrap()
            .is_empty()
    );
    let shown = sb.ok(&["--org", "Riverside", "ops", "show", &id], None);
    assert!(
        shown.contains("create") && shown.contains("user"),
        "{shown}"
    );

    // Clear errors, nothing changed.
    let (code, _, err) = sb.run(
        &["--org", "Riverside", "ops", "list", "--state", "stuck"],
        None,
    );
    assert_eq!(code, 2);
    assert!(err.contains("unknown state \"stuck\""), "{err}");
    let (code, _, err) = sb.run(&["--org", "Riverside", "ops", "show", "nope"], None);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = sb.run(
        &[
            "--org",
            "Riverside",
            "ops",
            "show",
            "0196a1b2-0000-7000-8000-000000000000",
        ],
        None,
    );
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = sb.run(&["--org", "Riverside", "ops", "retry", &id], None);
    assert_eq!(code, 4, "a pending operation cannot be retried: {err}");
    assert!(err.contains("pending"), "{err}");
    let (code, _, _) = sb.run(&["--org", "Riverside", "ops", "skip", &id], None);
    assert_eq!(code, 2, "--reason is required");
    let (code, _, err) = sb.run(&with_org(&["connection", "pause", "idp"]), None);
    assert_eq!(code, 2);
    assert!(err.contains("not a SCIM target"), "{err}");

    // Pause, health, resume, sync.
    let out = sb.ok(
        &with_org(&[
            "connection",
            "pause",
            "app",
            "--reason",
            "vendor maintenance",
        ]),
        None,
    );
    assert!(out.contains("is paused"), "{out}");
    let health = sb.json(&with_org(&["connection", "health", "app"]));
    assert_eq!(health[0]["state"], "paused", "{health}");
    assert_eq!(health[0]["queue"]["pending"], 1, "{health}");
    let out = sb.ok(&with_org(&["connection", "health"]), None);
    assert!(
        out.contains("app") && out.contains("paused by an operator"),
        "{out}"
    );
    let out = sb.ok(&with_org(&["connection", "resume", "app"]), None);
    assert!(out.contains("is active"), "{out}");
    let out = sb.ok(&with_org(&["connection", "sync", "app"]), None);
    assert!(out.contains("0 waiting operations"), "{out}");
    let out = sb.ok(
        &with_org(&["ops", "retry", "--all", "--connection", "app"]),
        None,
    );
    assert!(out.contains("0 operations put back"), "{out}");

    // Skip with a reason: it moves to the finished history.
    let out = sb.ok(
        &[
            "--org",
            "Riverside",
            "ops",
            "skip",
            &id,
            "--reason",
            "account made by hand",
        ],
        None,
    );
    assert!(out.contains("skipped"), "{out}");
    let skipped = sb.json(&with_org(&["ops", "list", "--state", "skipped"]));
    assert_eq!(skipped[0]["note"], "account made by hand", "{skipped}");
    assert!(
        sb.json(&with_org(&["ops", "list"]))
            .as_array()
            .unwrap()
            .is_empty()
    );

    let audit = sb.ok(&with_org(&["audit", "list"]), None);
    for action in [
        "operation.skip",
        "connection.pause",
        "connection.resume",
        "connection.sync_now",
        "operation.retry_all",
    ] {
        assert!(
            audit.contains(action),
            "{action} in the audit log:\n{audit}"
        );
    }

    // With workers: metrics name the connection and its health.
    let (mut server, base) = start_serve(&sb, &[]);
    let metrics = rt.block_on(async {
        let http = reqwest::Client::new();
        let start = std::time::Instant::now();
        loop {
            let text = http
                .get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if text.contains("scimdesk_connection_health")
                || start.elapsed() > std::time::Duration::from_secs(10)
            {
                return text;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    stop(&mut server);
    assert!(metrics.contains("scimdesk_operations_pending"), "{metrics}");
    assert!(metrics.contains(r#"connection="app""#), "{metrics}");
    assert!(metrics.contains(r#"state="healthy"} 1"#), "{metrics}");
}

/// Pushes SCIM requests to a running `serve`; returns each response's status and body.
fn scim_push(
    base: &str,
    token: &str,
    requests: &[(&str, &str, serde_json::Value)],
) -> Vec<(u16, serde_json::Value)> {
    scimdesk::connectors::ensure_tls_provider();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let mut out = Vec::new();
        for (method, path, body) in requests {
            let resp = http
                .request(method.parse().unwrap(), format!("{base}/scim/v2{path}"))
                .bearer_auth(token)
                .header("content-type", "application/scim+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            out.push((status, resp.json().await.unwrap_or(serde_json::Value::Null)));
        }
        out
    })
}

#[test]
fn mapping_exceptions_and_full_sync_commands() {
    // The downstream application: another scimdesk, serving SCIM in its own process.
    let app = Sandbox::sqlite();
    app.ok(&["org", "create", "App"], None);
    app.ok(
        &[
            "--org",
            "App",
            "connection",
            "add",
            "upstream",
            "--kind",
            "scim_inbound",
        ],
        None,
    );
    let app_token = app
        .ok(
            &[
                "--org",
                "App",
                "token",
                "create",
                "--name",
                "upstream",
                "--connection",
                "upstream",
            ],
            None,
        )
        .trim()
        .to_string();
    let (mut app_server, app_base) = start_serve(&app, &["--no-workers"]);

    let sb = Sandbox::sqlite();
    let with_org = |args: &[&str]| -> Vec<String> {
        let mut v = vec!["--org".to_string(), "Riverside".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: &[&str]| {
        let v = with_org(args);
        let r: Vec<&str> = v.iter().map(String::as_str).collect();
        sb.run(&r, None)
    };
    let ok = |args: &[&str]| {
        let (code, out, err) = run(args);
        assert_eq!(code, 0, "scimdesk {args:?}: {out} {err}");
        out
    };
    let json = |args: &[&str]| -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&ok(&a)).unwrap()
    };
    sb.ok(&["org", "create", "Riverside"], None);
    ok(&["connection", "add", "idp", "--kind", "scim_inbound"]);
    let v = with_org(&[
        "connection",
        "add",
        "app",
        "--kind",
        "scim_target",
        "--base-url",
        &format!("{app_base}/scim/v2"),
        "--secret-stdin",
    ]);
    let r: Vec<&str> = v.iter().map(String::as_str).collect();
    sb.ok(&r, Some(&format!("{app_token}\n")));
    let out = ok(&[
        "connection",
        "set",
        "app",
        "--roles",
        "nurse",
        "--attribute",
        "title=const:Nurse",
    ]);
    assert!(
        out.contains("\"roles\":[\"nurse\"]") && out.contains("\"const\":\"Nurse\""),
        "{out}"
    );
    let (code, _, err) = run(&["connection", "set", "app", "--user-scope", "roles eq"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("user_scope"), "{err}");
    let (code, _, err) = run(&["connection", "set", "app", "--attribute", "title=shout:x"]);
    assert_eq!(code, 2, "{err}");
    let token = ok(&["token", "create", "--name", "idp", "--connection", "idp"])
        .trim()
        .to_string();

    // The identity provider pushes two nurses and their group, with no worker running.
    let (mut server, base) = start_serve(&sb, &["--no-workers"]);
    let user = |n: &str| json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": n, "name": {"givenName": "N", "familyName": n}, "active": true});
    let made = scim_push(
        &base,
        &token,
        &[
            ("POST", "/Users", user("ann@r.example")),
            ("POST", "/Users", user("bob@r.example")),
        ],
    );
    let ids: Vec<String> = made
        .iter()
        .map(|(s, b)| {
            assert_eq!(*s, 201, "{b}");
            b["id"].as_str().unwrap().to_string()
        })
        .collect();
    let group = scim_push(
        &base,
        &token,
        &[(
            "POST",
            "/Groups",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Nurses", "members": ids.iter().map(|i| json!({"value": i})).collect::<Vec<_>>()}),
        )],
    );
    assert_eq!(group[0].0, 201);
    stop(&mut server);

    // An unmapped group is an exception; the impact preview says what a mapping would do.
    let open = json(&["exceptions", "list"]);
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    assert_eq!(open[0]["kind"], "unmapped_group");
    let out = ok(&["exceptions", "list"]);
    assert!(
        out.contains("Nurses") && out.contains("unmapped_group"),
        "{out}"
    );
    let out = ok(&["mapping", "impact", "--group", "Nurses", "--role", "nurse"]);
    assert!(
        out.contains("2 users gain a role, 0 lose one")
            && out.contains("ann@r.example")
            && out.contains("create"),
        "{out}"
    );
    assert!(
        json(&["mapping", "list"]).as_array().unwrap().is_empty(),
        "a preview changes nothing"
    );
    let impact = json(&["mapping", "impact", "--group", "nurses", "--role", "nurse"]);
    assert_eq!(
        impact["operations"].as_array().unwrap().len(),
        3,
        "two users and the role group: {impact}"
    );

    let out = ok(&["mapping", "set", "--group", "Nurses", "--role", "nurse"]);
    assert!(
        out.contains("saved") && out.contains("3 target operations"),
        "{out}"
    );
    assert!(
        json(&["exceptions", "list"]).as_array().unwrap().is_empty(),
        "resolved by the mapping"
    );
    let mappings = json(&["mapping", "list"]);
    assert_eq!(mappings[0]["role"], "nurse");
    let mapping_id = mappings[0]["id"].as_str().unwrap().to_string();

    // Workers deliver; then a full reconcile finds nothing to do.
    let (mut server, _) = start_serve(&sb, &[]);
    let start = std::time::Instant::now();
    while !json(&["ops", "list"]).as_array().unwrap().is_empty() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "delivery timed out"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    stop(&mut server);
    let report = json(&["connection", "sync", "app", "--full", "--dry-run"]);
    assert_eq!(report["counts"]["unchanged"], 3, "{report}");
    assert_eq!(report["counts"]["corrected"], 0, "{report}");
    let out = ok(&["connection", "sync", "app", "--full"]);
    assert!(out.contains("3 unchanged, 0 corrected"), "{out}");
    let at_app = app.json(&["--org", "App", "audit", "list", "--limit", "100"]);
    assert!(
        at_app.to_string().contains("ann@r.example"),
        "the nurses reached the app"
    );

    // Removing the mapping takes everyone's access: the guard refuses, --force applies.
    let (code, _, err) = run(&["mapping", "remove", &mapping_id]);
    assert_eq!(code, 7, "{err}");
    assert!(
        err.contains("2 of 2 users") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(json(&["mapping", "list"]).as_array().unwrap().len(), 1);
    let out = ok(&["mapping", "remove", &mapping_id, "--force"]);
    assert!(
        out.contains("mapping removed") && out.contains("0 users gain a role, 2 lose one"),
        "{out}"
    );
    let open = json(&["exceptions", "list"]);
    assert_eq!(
        open.as_array().unwrap().len(),
        1,
        "Nurses is unmapped again: {open}"
    );
    let id = open[0]["id"].as_str().unwrap().to_string();
    let (code, _, err) = run(&["exceptions", "resolve", &id]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(&["exceptions", "resolve", &id, "--link", "x"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("only conflicts"), "{err}");
    let out = ok(&[
        "exceptions",
        "resolve",
        &id,
        "--dismiss",
        "--reason",
        "ward closed",
    ]);
    assert!(out.contains("dismissed"), "{out}");
    let all = json(&["exceptions", "list", "--state", "all"]);
    assert_eq!(all.as_array().unwrap().len(), 2);
    let audit = ok(&["audit", "list", "--limit", "200"]);
    for action in [
        "mapping.create",
        "mapping.delete",
        "exception.dismiss",
        "connection.reconcile",
        "connection.reconcile_dry_run",
    ] {
        assert!(
            audit.contains(action),
            "{action} in the audit log:\n{audit}"
        );
    }
    stop(&mut app_server);
}

/// `bench wave` runs its phases on both stores and reports figures that add up: every user
/// delivered, look-ups shared (fewer than two requests per user at the target), and the
/// queue's own work measured alone.
#[tokio::test]
async fn bench_wave_runs_on_both_stores() {
    let sandbox = Sandbox::sqlite();
    let mut runs = vec![vec![]];
    if support::pg_required() || support::pg_schema().await.is_some() {
        runs.push(vec!["--postgres".to_string(), support::pg_url()]);
    }
    for store in runs {
        let mut args = vec!["--json", "bench", "wave", "--users", "60", "--groups", "3"];
        args.extend(["--paced-users", "5", "--rate", "100"]);
        args.extend(store.iter().map(String::as_str));
        let (code, out, err) = sandbox.run(&args, None);
        assert_eq!(code, 0, "{err}");
        let r: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["users"], json!(60));
        assert_eq!(r["target"], json!("memory"));
        for figure in [
            "direct_secs",
            "queue_floor_secs",
            "delivery_secs",
            "engine_secs",
            "users_per_sec",
        ] {
            assert!(r[figure].as_f64().unwrap() > 0.0, "{figure}: {r}");
        }
        let per_user = r["requests_per_user"].as_f64().unwrap();
        assert!((1.0..2.0).contains(&per_user), "{r}");
        assert!(r["paced_latency_ms"]["p95"].as_f64().unwrap() > 0.0, "{r}");
    }
}

/// `bench sync` runs its phases on both stores: memberships flattened three levels up, a
/// re-sync of an unchanged source writing nothing, and changes reaching the application.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_sync_runs_on_both_stores() {
    let sandbox = Sandbox::sqlite();
    let mut runs = vec![vec![]];
    if support::pg_required() || support::pg_schema().await.is_some() {
        runs.push(vec!["--postgres".to_string(), support::pg_url()]);
    }
    for store in runs {
        let mut args = vec![
            "--json", "bench", "sync", "--users", "400", "--groups", "40",
        ];
        args.extend(["--changes", "2"]);
        args.extend(store.iter().map(String::as_str));
        let (code, out, err) = sandbox.run(&args, None);
        assert_eq!(code, 0, "{err}");
        let r: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["users"], json!(400));
        // Every user in one leaf, and so in its two groups above too.
        assert_eq!(r["memberships"], json!(1200), "{r}");
        assert_eq!(r["resync_writes"], json!(0), "{r}");
        for figure in ["full_secs", "resync_secs", "peak_rss_mb"] {
            assert!(r[figure].as_f64().unwrap() > 0.0, "{figure}: {r}");
        }
        assert!(
            r["change_to_target_ms"]["p95"].as_f64().unwrap() > 0.0,
            "{r}"
        );
    }
}

/// `bench api` runs end to end (at a small scale) on both stores, and reports every figure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_api_runs_on_both_stores() {
    let sandbox = Sandbox::sqlite();
    let mut runs = vec![vec![]];
    if support::pg_required() || support::pg_schema().await.is_some() {
        runs.push(vec!["--postgres".to_string(), support::pg_url()]);
    }
    for store in runs {
        let mut args = vec![
            "--json",
            "bench",
            "api",
            "--connections",
            "5",
            "--operations",
            "2000",
            "--seconds",
            "1",
            "--rate",
            "50",
        ];
        args.extend(store.iter().map(String::as_str));
        let (code, out, err) = sandbox.run(&args, None);
        assert_eq!(code, 0, "{err}");
        let r: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["operations"], json!(2000), "{r}");
        for figure in [
            "connections_ms",
            "operations_page_ms",
            "mutation_to_subscriber_ms",
            "sustained_ms",
        ] {
            assert!(r[figure]["p95"].as_f64().unwrap() > 0.0, "{figure}: {r}");
        }
        assert_eq!(r["sustained_errors"], json!(0), "{r}");
    }
}
