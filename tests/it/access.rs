//! `[access]` for local operators: the CLI checks the same levels API tokens carry
//! (`domain::access`), on both stores, by running the real binary as an operator would.

use crate::support;

use scimdesk::domain::*;
use serde_json::json;
use support::Harness;

on_both_backends!(operators_get_the_levels_access_gives_them);

fn op() -> Actor {
    Actor::operator("tester")
}

fn run(h: &Harness, dir: &std::path::Path, operator: &str, args: &[&str]) -> (i32, String) {
    let out = h
        .cli(dir)
        .env("SCIMDESK_OPERATOR", operator)
        .args(["--org", "Riverside"])
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

async fn operators_get_the_levels_access_gives_them(h: &Harness) {
    let s = &*h.store;
    let org = s.create_organization(&op(), "Riverside").await.unwrap();
    s.create_organization(&op(), "Lakeside").await.unwrap();
    s.create_connection(
        &op(),
        org.id,
        &NewConnection {
            name: "ehr".into(),
            kind: ConnectionKind::ScimTarget,
            base_url: Some("http://127.0.0.1:9/scim/v2".into()),
            auth_method: AuthMethod::Bearer,
            settings: json!({"user_scope": "all"}),
        },
        Some(&scimdesk::crypto::Secret::new("t")),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Without [access], a local operator is admin.
    let (code, text) = run(h, dir.path(), "anyone", &["token", "list"]);
    assert_eq!(code, 0, "{text}");

    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config").join("config.toml"),
        "[access.operators.viewer]\nRiverside = \"read\"\n\n[access.operators.oncall]\n\"*\" = \"operate\"\n",
    )
    .unwrap();
    // read: sees, may not pause; the refusal says why, with its own exit code.
    let (code, text) = run(h, dir.path(), "viewer", &["connection", "list"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ehr"), "{text}");
    let (code, text) = run(
        h,
        dir.path(),
        "viewer",
        &["connection", "pause", "ehr", "--reason", "x"],
    );
    assert_eq!(code, 8, "{text}");
    assert!(
        text.contains("not allowed to pause or resume connections: that needs operate access, and this has read"),
        "{text}"
    );
    // operate: pauses, may not manage tokens.
    let (code, text) = run(
        h,
        dir.path(),
        "oncall",
        &["connection", "pause", "ehr", "--reason", "maintenance"],
    );
    assert_eq!(code, 0, "{text}");
    let (code, text) = run(
        h,
        dir.path(),
        "oncall",
        &["token", "create", "--name", "x", "--scope", "admin"],
    );
    assert_eq!(code, 8, "{text}");
    assert!(s.list_api_tokens(org.id).await.unwrap().is_empty());
    // Someone [access] does not list has no access at all.
    let (code, text) = run(h, dir.path(), "stranger", &["users", "list"]);
    assert_eq!(code, 8, "{text}");
    assert!(
        text.contains("has no access to organization \"Riverside\""),
        "{text}"
    );
    let c = s.connection_by_name(org.id, "ehr").await.unwrap().unwrap();
    assert_eq!(
        c.state,
        ConnectionState::Paused,
        "only oncall's pause took effect"
    );
}
