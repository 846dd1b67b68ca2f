//! `scimdesk demo --headless`: the whole story through the real binary, on a temporary store.

use assert_cmd::Command;

#[test]
fn headless_demo_tells_the_whole_story() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scimdesk"))
        .args([
            "--json",
            "demo",
            "--headless",
            "--speed",
            "5",
            "--nurses",
            "40",
        ])
        .env("SCIMDESK_CONFIG", dir.path().join("config"))
        .env("SCIMDESK_DATA_DIR", dir.path().join("data"))
        .env_remove("SCIMDESK_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .timeout(std::time::Duration::from_secs(300))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["organization"], "Riverside Health");
    assert_eq!(s["nurses"], 40);
    assert_eq!(s["offboarded"], 4);
    let target = |name: &str| {
        s["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["connection"] == name)
            .unwrap()
            .clone()
    };
    // The flaky application gets every nurse in the end; the removed contractor is gone.
    let rostering = target("rostering");
    assert!(rostering["users"].as_u64().unwrap() >= 36, "{s}");
    assert_eq!(rostering["failed"], 0, "{s}");
    // The strict one refuses the contractors' title: failures for an operator.
    let pharmacy = target("pharmacy");
    assert!(pharmacy["failed"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(
        pharmacy["users"], 36,
        "everyone but the four contractors: {s}"
    );
    // The float pool is deliberately unmapped.
    assert!(
        s["open_exceptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "unmapped_group: Agency Float Pool"),
        "{s}"
    );
    // The temporary store is gone; nothing was written to the default one.
    assert!(!dir.path().join("data").join("scimdesk.db").exists());
}
