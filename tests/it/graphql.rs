//! The GraphQL management API over real HTTP against the server `scimdesk serve` mounts, on both
//! stores: authentication, the access levels, tenant isolation, pagination, limits, secrets
//! never returned, audit of mutations, and the exported schema.

use crate::support;

use reqwest::StatusCode;
use scimdesk::api::changes::ChangeFeed;
use scimdesk::api::serve;
use scimdesk::domain::*;
use scimdesk::store::Store;
use serde_json::{Value, json};
use std::sync::Arc;
use support::Harness;

on_both_backends!(
    only_api_tokens_get_in,
    access_levels_decide_what_a_token_may_do,
    a_token_never_sees_another_organization,
    users_page_with_stable_cursors,
    abusive_queries_are_refused,
    no_stored_secret_is_ever_returned,
    every_field_and_mutation_is_guarded_and_tenant_tight,
    operations_page_newest_first_with_a_total,
    a_guarded_mapping_change_is_a_typed_error_and_changes_nothing,
    subscriptions_see_another_process_pause_a_target,
    persisted_queries_are_accepted,
    introspection_can_be_turned_off,
);

fn op() -> Actor {
    Actor::operator("tester")
}

/// Every secret these tests store, in plain text: checked against every response body.
const STORED_SECRETS: &[&str] = &[
    "target-secret",
    "scene-secret",
    "lab-secret",
    "plaintext-target-secret-7643",
    "created-secret",
    "rotated-secret",
    "secret-a",
    "secret-b",
    "other-secret",
];

/// A running server on an ephemeral port.
struct Api {
    url: String,
    http: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn start(store: Arc<dyn Store>) -> Api {
    scimdesk::connectors::ensure_tls_provider();
    let (addr, tx) = serve::spawn_local(serve::app(store, ChangeFeed::default(), None))
        .await
        .unwrap();
    Api {
        url: format!("http://{addr}/graphql"),
        http: reqwest::Client::new(),
        _shutdown: tx,
    }
}

impl Api {
    async fn raw(&self, token: Option<&str>, body: String) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        // No response of the whole run carries a stored secret.
        for secret in STORED_SECRETS {
            assert!(
                !text.contains(secret),
                "a response shows a stored secret: {text}"
            );
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn query(&self, token: &str, query: &str, variables: Value) -> Value {
        let (status, body) = self
            .raw(
                Some(token),
                json!({"query": query, "variables": variables}).to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

/// An API token of `org` with `access`.
async fn token(s: &dyn Store, org: OrganizationId, name: &str, access: Access) -> String {
    s.create_api_token(
        &op(),
        org,
        &NewApiToken {
            name: name.into(),
            scope: TokenScope::Api,
            access,
            connection_id: None,
            expires_at: None,
        },
    )
    .await
    .unwrap()
    .text
    .expose()
    .to_string()
}

/// An organization with one target connection (secret `secret`) and `users` users.
async fn tenant(s: &dyn Store, name: &str, secret: &str, users: usize) -> OrganizationId {
    let org = s.create_organization(&op(), name).await.unwrap();
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
        Some(&scimdesk::crypto::Secret::new(secret.to_string())),
    )
    .await
    .unwrap();
    for i in 0..users {
        s.create_user(
            &op(),
            org.id,
            &UserDraft::new(format!("u{i:03}@{}.example", name.to_lowercase())),
        )
        .await
        .unwrap();
    }
    org.id
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

async fn only_api_tokens_get_in(h: &Harness) {
    let s = h.store.clone();
    let api = start(s.clone()).await;
    let (_, scim_token) = support::inbound_tenant(&*s, "Riverside").await;
    let q = json!({"query": "{ organization { name } }"}).to_string();
    for presented in [None, Some("not-a-token"), Some(scim_token.as_str())] {
        let (status, body) = api.raw(presented, q.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(code(&body), "UNAUTHENTICATED");
        assert!(body["data"].is_null(), "nothing but the error: {body}");
    }
    let org = s.organization_by_name("Riverside").await.unwrap().unwrap();
    let t = token(&*s, org.id, "dashboard", Access::Read).await;
    let body = api.query(&t, "{ organization { name } }", json!({})).await;
    assert_eq!(body["data"]["organization"]["name"], "Riverside");
}

async fn access_levels_decide_what_a_token_may_do(h: &Harness) {
    let s = h.store.clone();
    let api = start(s.clone()).await;
    let org = tenant(&*s, "Riverside", "target-secret", 1).await;
    let read = token(&*s, org, "dashboard", Access::Read).await;
    let operate = token(&*s, org, "oncall-bot", Access::Operate).await;
    let pause =
        "mutation { pauseConnection(connection: \"ehr\", reason: \"maintenance\") { state } }";
    let body = api.query(&read, pause, json!({})).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("needs operate access"),
        "{body}"
    );
    let c = s.connection_by_name(org, "ehr").await.unwrap().unwrap();
    assert_eq!(
        c.state,
        ConnectionState::Active,
        "a refusal changes nothing"
    );

    let body = api.query(&operate, pause, json!({})).await;
    assert_eq!(body["data"]["pauseConnection"]["state"], "paused", "{body}");
    let audit = s
        .list_audit(
            org,
            &AuditFilter {
                action_prefix: Some("connection.pause".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].actor_kind, audit[0].actor.as_str()),
        (ActorKind::Api, "oncall-bot"),
        "audited with the token's name"
    );
    // The API's audit log says the same, page by page.
    let audit_q = "query($after: String) { auditEvents(first: 1, after: $after, filter: {actor: \"oncall-bot\"}) { edges { node { action actorKind } } pageInfo { hasNextPage endCursor } } }";
    let body = api.query(&read, audit_q, json!({"after": null})).await;
    let page = &body["data"]["auditEvents"];
    assert_eq!(
        page["edges"][0]["node"]["action"], "connection.pause",
        "{body}"
    );
    assert_eq!(page["edges"][0]["node"]["actorKind"], "api", "{body}");
    let body = api
        .query(
            &read,
            audit_q,
            json!({"after": page["pageInfo"]["endCursor"]}),
        )
        .await;
    assert!(
        body["data"]["auditEvents"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["node"]["action"] != "connection.pause"),
        "the next page does not repeat the first: {body}"
    );
    let body = api
        .query(
            &operate,
            "mutation { resumeConnection(connection: \"ehr\") { state } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["resumeConnection"]["state"], "active",
        "{body}"
    );
    // Reading is every level's.
    let body = api
        .query(
            &read,
            "{ connections { name health { state pending failed } } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["connections"][0]["name"], "ehr", "{body}");
    assert!(body["data"]["connections"][0]["health"]["state"].is_string());
}

async fn a_token_never_sees_another_organization(h: &Harness) {
    let s = h.store.clone();
    let api = start(s.clone()).await;
    let a = tenant(&*s, "Riverside", "secret-a", 2).await;
    let b = tenant(&*s, "Lakeside", "secret-b", 2).await;
    let admin_a = token(&*s, a, "a-admin", Access::Admin).await;
    let b_user = s
        .list_users(b, scimdesk::store::ListRange::first(1))
        .await
        .unwrap();
    let b_conn = s.connection_by_name(b, "ehr").await.unwrap().unwrap();
    let body = api
        .query(
            &admin_a,
            "query($u: ID!, $c: ID!) { user(id: $u) { userName } connection(id: $c) { name } users { edges { node { userName } } } }",
            json!({"u": b_user[0].id.to_string(), "c": b_conn.id.to_string()}),
        )
        .await;
    assert!(body["data"]["user"].is_null(), "{body}");
    assert!(body["data"]["connection"].is_null(), "{body}");
    let names: Vec<&str> = body["data"]["users"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["userName"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| n.ends_with("@riverside.example")),
        "{names:?}"
    );
    // Pausing B's connection by its id from A's token: not found, and B's stays active.
    let body = api
        .query(
            &admin_a,
            "mutation($c: String!) { pauseConnection(connection: $c, reason: \"x\") { state } }",
            json!({"c": b_conn.id.to_string()}),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let still = s.connection(b, b_conn.id).await.unwrap().unwrap();
    assert_eq!(still.state, ConnectionState::Active);
}

async fn users_page_with_stable_cursors(h: &Harness) {
    let s = h.store.clone();
    let api = start(s.clone()).await;
    let org = tenant(&*s, "Riverside", "x", 5).await;
    let t = token(&*s, org, "reader", Access::Read).await;
    let page = "query($after: String) { users(first: 2, after: $after) { edges { cursor node { userName roles } } pageInfo { hasNextPage endCursor } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let body = api.query(&t, page, json!({"after": after})).await;
        let users = &body["data"]["users"];
        for e in users["edges"].as_array().unwrap() {
            seen.push(e["node"]["userName"].as_str().unwrap().to_string());
        }
        pages += 1;
        if pages == 1 {
            // Users added while paging come after the cursor: no page shifts or repeats.
            s.create_user(&op(), org, &UserDraft::new("late@riverside.example"))
                .await
                .unwrap();
        }
        if !users["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = users["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(pages, 3);
    let mut expected: Vec<String> = (0..5)
        .map(|i| format!("u{i:03}@riverside.example"))
        .collect();
    expected.push("late@riverside.example".into());
    assert_eq!(seen, expected);
    let body = api
        .query(
            &t,
            "{ users(after: \"nonsense\") { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "BAD_INPUT", "{body}");
}

async fn abusive_queries_are_refused(h: &Harness) {
    let s = h.store.clone();
    let api = start(s.clone()).await;
    let org = tenant(&*s, "Riverside", "x", 1).await;
    let t = token(&*s, org, "reader", Access::Read).await;
    // Too deep (introspection nests without end).
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {} name {} }} }} }} }}",
        "{ ofType ".repeat(20),
        "}".repeat(20)
    );
    let body = api.query(&t, &deep, json!({})).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{body}"
    );
    // Too complex: large pages of users, many times over.
    let aliases: String = (0..10)
        .map(|i| format!("a{i}: users(first: 500) {{ edges {{ node {{ userName roles groups {{ id name path }} targets {{ target status }} }} }} }} "))
        .collect();
    let body = api.query(&t, &format!("{{ {aliases} }}"), json!({})).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too complex"),
        "{body}"
    );
    // Too large a body: refused before it is read.
    let (status, _) = api
        .raw(
            Some(&t),
            json!({"query": format!("{{ organization {{ name }} }} #{}", "x".repeat(100_000))})
                .to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Not a GraphQL request at all: a clear 400.
    let (status, body) = api.raw(Some(&t), "<html>".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

async fn no_stored_secret_is_ever_returned(h: &Harness) {
    let s = h.store.clone();
    let api = start(s.clone()).await;
    let secret = "plaintext-target-secret-7643";
    let org = tenant(&*s, "Riverside", secret, 1).await;
    let t = token(&*s, org, "admin", Access::Admin).await;
    let body = api
        .query(
            &t,
            "{ connections { id name kind baseUrl authMethod hasSecret settings state health { reason } } organization { id name } }",
            json!({}),
        )
        .await;
    let text = body.to_string();
    assert!(!text.contains(secret), "{text}");
    assert!(!text.contains(&t), "the token itself is not echoed");
    assert_eq!(body["data"]["connections"][0]["hasSecret"], true);
}

/// The exported schema is the code's: regenerate with `SCIMDESK_UPDATE_SCHEMA=1`.
#[test]
fn schema_graphql_is_the_codes_schema() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let sdl = scimdesk::api::graphql::sdl();
    if std::env::var_os("SCIMDESK_UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &sdl).unwrap();
    }
    let stored = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        stored == sdl,
        "schema.graphql drifted from the code; run `SCIMDESK_UPDATE_SCHEMA=1 cargo test schema_graphql` and commit it"
    );
}

/// One organization's things, for the matrix: a target `ehr` (active) and `lab` (paused), a
/// user with queued work, a mapping, a group, an open exception.
struct Scene {
    org: OrganizationId,
    ids: std::collections::HashMap<&'static str, String>,
}

async fn scene(s: &dyn Store, name: &str) -> Scene {
    let org = tenant(s, name, "scene-secret", 1).await;
    let lab = s
        .create_connection(
            &op(),
            org,
            &NewConnection {
                name: "lab".into(),
                kind: ConnectionKind::ScimTarget,
                base_url: Some("http://127.0.0.1:9/scim/v2".into()),
                auth_method: AuthMethod::Bearer,
                settings: json!({"user_scope": "all"}),
            },
            Some(&scimdesk::crypto::Secret::new("lab-secret")),
        )
        .await
        .unwrap();
    scimdesk::engine::commands::pause(s, &op(), org, lab.id, "set up paused")
        .await
        .unwrap();
    let user = s
        .list_users(org, scimdesk::store::ListRange::first(1))
        .await
        .unwrap()
        .remove(0);
    let ehr = s.connection_by_name(org, "ehr").await.unwrap().unwrap();
    // ehr's work for the user failed (so it can be retried or skipped).
    let owner = uuid::Uuid::now_v7();
    let claimed = s
        .claim_operations(ehr.id, owner, std::time::Duration::from_secs(60), 10, None)
        .await
        .unwrap();
    assert!(!claimed.is_empty());
    let outcomes: Vec<Outcome> = claimed
        .into_iter()
        .map(|o| Outcome {
            operation: o,
            lease_owner: owner,
            attempt: None,
            disposition: Disposition::Failed,
        })
        .collect();
    s.complete_operations(&outcomes).await.unwrap();
    let ops = s
        .operations_page(
            org,
            &scimdesk::store::OperationFilter {
                state: Some(OperationState::Failed),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    let group = s
        .create_group(&op(), org, &GroupDraft::new("ICU"))
        .await
        .unwrap();
    let role = scimdesk::engine::commands::ensure_role(s, &op(), org, "nurse")
        .await
        .unwrap();
    let (_, mapping) = scimdesk::engine::commands::set_mapping(
        s,
        &op(),
        org,
        &scimdesk::engine::commands::MappingChange::Set {
            id: None,
            draft: RoleMappingDraft::by_display_name("Ward", false, role.id),
        },
        &Default::default(),
        true,
    )
    .await
    .unwrap();
    let exception = s
        .raise_exception(
            org,
            &NewException {
                kind: ExceptionKind::UnmappedGroup,
                subject_key: format!("matrix-{name}"),
                connection_id: None,
                subject: "Porters".into(),
                summary: "a group no mapping covers".into(),
                details: json!({}),
            },
        )
        .await
        .unwrap()
        .unwrap();
    let mut ids = std::collections::HashMap::new();
    ids.insert("conn", ehr.id.to_string());
    ids.insert("user", user.id.to_string());
    ids.insert("op", ops[0].id.to_string());
    ids.insert("group", group.id.to_string());
    ids.insert("map", mapping.unwrap().id.to_string());
    ids.insert("exc", exception.id.to_string());
    Scene { org, ids }
}

/// Every field of Query and Mutation: the request that exercises it (`{conn}`, `{user}`, …
/// are the scene's ids; `@` stands for the connection `ehr`, by name in its own organization
/// and by id from another), the level it needs, and whether it is audited.
const MATRIX: &[(&str, &str, Access, bool)] = &[
    (
        "organization",
        "{ organization { name } }",
        Access::Read,
        false,
    ),
    (
        "connections",
        "{ connections { name health { state } } }",
        Access::Read,
        false,
    ),
    (
        "connection",
        "{ connection(id: \"{conn}\") { name } }",
        Access::Read,
        false,
    ),
    (
        "users",
        "{ users(search: \"u0\") { edges { node { userName } } } }",
        Access::Read,
        false,
    ),
    (
        "user",
        "{ user(id: \"{user}\") { userName roles targets { status } } }",
        Access::Read,
        false,
    ),
    (
        "groups",
        "{ groups { displayName path } }",
        Access::Read,
        false,
    ),
    (
        "roleMappings",
        "{ roleMappings { role pattern } }",
        Access::Read,
        false,
    ),
    (
        "operations",
        "{ operations(first: 5) { totalCount edges { node { id } } } }",
        Access::Read,
        false,
    ),
    (
        "failedOperations",
        "{ failedOperations { totalCount } }",
        Access::Read,
        false,
    ),
    (
        "operation",
        "{ operation(id: \"{op}\") { id attempts { attemptNo } } }",
        Access::Read,
        false,
    ),
    (
        "exceptions",
        "{ exceptions(state: \"open\") { id kind } }",
        Access::Read,
        false,
    ),
    (
        "syncRuns",
        "{ syncRuns(connection: \"@\") { id } }",
        Access::Read,
        false,
    ),
    (
        "mappingImpact",
        "{ mappingImpact(input: {pattern: \"ICU\", role: \"nurse\"}) { losingAccess } }",
        Access::Read,
        false,
    ),
    (
        "auditEvents",
        "{ auditEvents(first: 5, filter: {action: \"group.\", since: \"2020-01-01T00:00:00Z\"}) { edges { cursor node { action actor } } pageInfo { hasNextPage } } }",
        Access::Read,
        false,
    ),
    (
        "pauseConnection",
        "mutation { pauseConnection(connection: \"@\", reason: \"x\") { state } }",
        Access::Operate,
        true,
    ),
    (
        "resumeConnection",
        "mutation { resumeConnection(connection: \"lab\") { state } }",
        Access::Operate,
        true,
    ),
    (
        "retryOperation",
        "mutation { retryOperation(id: \"{op}\") { id } }",
        Access::Operate,
        true,
    ),
    (
        "retryOperations",
        "mutation { retryOperations(filter: {state: \"failed\"}) }",
        Access::Operate,
        true,
    ),
    (
        "skipOperation",
        "mutation { skipOperation(id: \"{op}\", reason: \"x\") { state } }",
        Access::Operate,
        true,
    ),
    (
        "syncConnection",
        "mutation { syncConnection(connection: \"@\") { side madeDue } }",
        Access::Operate,
        true,
    ),
    (
        "resolveException",
        "mutation { resolveException(id: \"{exc}\", resolution: {dismiss: \"x\"}) { state } }",
        Access::Operate,
        true,
    ),
    (
        "createConnection",
        "mutation { createConnection(input: {name: \"new\", kind: \"scim-target\", baseUrl: \"http://127.0.0.1:9/scim/v2\", secret: \"created-secret\"}) { name hasSecret } }",
        Access::Admin,
        true,
    ),
    (
        "updateConnection",
        "mutation { updateConnection(connection: \"@\", changes: \"{\\\"delete_mode\\\": \\\"suspend\\\"}\") { settings } }",
        Access::Admin,
        true,
    ),
    (
        "rotateConnectionSecret",
        "mutation { rotateConnectionSecret(connection: \"@\", secret: \"rotated-secret\") { hasSecret } }",
        Access::Admin,
        true,
    ),
    (
        "removeConnection",
        "mutation { removeConnection(connection: \"@\") }",
        Access::Admin,
        true,
    ),
    (
        "upsertRoleMapping",
        "mutation { upsertRoleMapping(input: {pattern: \"ICU\", role: \"nurse\"}) { dryRun impact { losingAccess } mapping { id } } }",
        Access::Admin,
        true,
    ),
    (
        "deleteRoleMapping",
        "mutation { deleteRoleMapping(id: \"{map}\") { impact { losingAccess } } }",
        Access::Admin,
        true,
    ),
];

/// The fields of `type NAME` in the SDL.
fn fields_of(sdl: &str, name: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut inside = false;
    let mut in_description = false;
    for line in sdl.lines() {
        if line.starts_with(&format!("type {name} ")) {
            inside = true;
            continue;
        }
        if inside && line.starts_with('}') {
            break;
        }
        // Descriptions sit between `"""` lines at the fields' indentation.
        if inside && line.trim() == "\"\"\"" {
            in_description = !in_description;
            continue;
        }
        if inside
            && !in_description
            && let Some(rest) = line.strip_prefix('\t')
            && rest.starts_with(|c: char| c.is_ascii_lowercase())
        {
            let field: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            out.insert(field);
        }
    }
    out
}

fn fill(template: &str, scene: &Scene, own: bool) -> String {
    let mut q = template.replace(
        "\"@\"",
        &if own {
            "\"ehr\"".to_string()
        } else {
            format!("\"{}\"", scene.ids["conn"])
        },
    );
    for (k, v) in &scene.ids {
        q = q.replace(&format!("{{{k}}}"), v);
    }
    q
}

async fn every_field_and_mutation_is_guarded_and_tenant_tight(h: &Harness) {
    // The matrix covers the schema: a new field without a row fails here.
    let sdl = scimdesk::api::graphql::sdl();
    let mut schema_fields = fields_of(&sdl, "Query");
    schema_fields.extend(fields_of(&sdl, "Mutation"));
    let rows: std::collections::BTreeSet<String> = MATRIX.iter().map(|r| r.0.to_string()).collect();
    assert_eq!(
        schema_fields, rows,
        "every Query and Mutation field needs a row in MATRIX"
    );

    let s = h.store.clone();
    let api = start(s.clone()).await;
    let mut n = 0;
    for (field, template, needs, audited) in MATRIX {
        for level in [Access::Read, Access::Operate, Access::Admin] {
            n += 1;
            let sc = scene(&*s, &format!("Org{n}")).await;
            let t = token(&*s, sc.org, &format!("{level}-token"), level).await;
            let before = s
                .list_audit(
                    sc.org,
                    &AuditFilter {
                        limit: 10_000,
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
                .len();
            let body = api.query(&t, &fill(template, &sc, true), json!({})).await;
            if level >= *needs {
                assert!(body["errors"].is_null(), "{field} as {level}: {body}");
                let after = s
                    .list_audit(
                        sc.org,
                        &AuditFilter {
                            limit: 10_000,
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                if *audited {
                    assert!(after.len() > before, "{field} is audited");
                    assert!(
                        after.iter().any(|e| e.actor == format!("{level}-token")
                            && e.actor_kind == ActorKind::Api),
                        "{field} is audited as the token"
                    );
                }
            } else {
                assert_eq!(code(&body), "FORBIDDEN", "{field} as {level}: {body}");
                assert!(
                    body["data"].is_null() || body["data"][field].is_null(),
                    "{body}"
                );
                let after = s
                    .list_audit(
                        sc.org,
                        &AuditFilter {
                            limit: 10_000,
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap()
                    .len();
                assert_eq!(after, before, "{field} refused to {level} changes nothing");
            }
        }
        // Another organization's admin, naming this one's things: nothing of it is seen or
        // touched.
        n += 1;
        let sc = scene(&*s, &format!("Org{n}")).await;
        let other = tenant(&*s, &format!("Other{n}"), "other-secret", 0).await;
        let t = token(&*s, other, "other-admin", Access::Admin).await;
        let before = s
            .list_audit(
                sc.org,
                &AuditFilter {
                    limit: 10_000,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .len();
        let body = api.query(&t, &fill(template, &sc, false), json!({})).await;
        let text = body.to_string();
        for id in sc.ids.values() {
            assert!(
                !body["data"].to_string().contains(id.as_str()) || *field == "createConnection",
                "{field} from another organization shows {id}: {text}"
            );
        }
        assert!(
            !text.contains("scene-secret") && !text.contains("@org"),
            "{text}"
        );
        let after = s
            .list_audit(
                sc.org,
                &AuditFilter {
                    limit: 10_000,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .len();
        assert_eq!(
            after, before,
            "{field} from another organization changes nothing"
        );
    }
}

async fn operations_page_newest_first_with_a_total(h: &Harness) {
    let s = h.store.clone();
    let api = start(s.clone()).await;
    let org = tenant(&*s, "Riverside", "x", 5).await;
    let t = token(&*s, org, "reader", Access::Read).await;
    let q = "query($after: String) { operations(first: 2, after: $after) { totalCount edges { node { id resourceId action state } } pageInfo { hasNextPage endCursor } } }";
    let mut ids = Vec::new();
    let mut after = Value::Null;
    let mut totals = Vec::new();
    loop {
        let body = api.query(&t, q, json!({"after": after})).await;
        let page = &body["data"]["operations"];
        totals.push(page["totalCount"].as_u64().unwrap());
        for e in page["edges"].as_array().unwrap() {
            ids.push(e["node"]["id"].as_str().unwrap().to_string());
        }
        if ids.len() == 2 {
            // Work queued while paging is newer than the cursor: later pages do not shift.
            s.create_user(&op(), org, &UserDraft::new("late@riverside.example"))
                .await
                .unwrap();
        }
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(ids.len(), 5, "the five users' creates, each once: {ids:?}");
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(ids, sorted, "newest first");
    assert_eq!(totals[0], 5);
    assert_eq!(*totals.last().unwrap(), 6, "the total counts the late one");
    // The API and the store agree; a bad filter word is a clear error.
    let body = api
        .query(
            &t,
            "{ operations(filter: {state: \"nonsense\"}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "BAD_INPUT", "{body}");
}

async fn a_guarded_mapping_change_is_a_typed_error_and_changes_nothing(h: &Harness) {
    let s = h.store.clone();
    let api = start(s.clone()).await;
    let org = tenant(&*s, "Riverside", "x", 0).await;
    let group = s
        .create_group(&op(), org, &GroupDraft::new("Nurses"))
        .await
        .unwrap();
    let role = scimdesk::engine::commands::ensure_role(&*s, &op(), org, "nurse")
        .await
        .unwrap();
    let (_, mapping) = scimdesk::engine::commands::set_mapping(
        &*s,
        &op(),
        org,
        &scimdesk::engine::commands::MappingChange::Set {
            id: None,
            draft: RoleMappingDraft::by_display_name("Nurses", false, role.id),
        },
        &Default::default(),
        true,
    )
    .await
    .unwrap();
    for i in 0..30 {
        let u = s
            .create_user(
                &op(),
                org,
                &UserDraft::new(format!("n{i}@riverside.example")),
            )
            .await
            .unwrap();
        s.add_member(&op(), org, group.id, u.id).await.unwrap();
    }
    let t = token(&*s, org, "admin", Access::Admin).await;
    let delete = format!(
        "mutation {{ deleteRoleMapping(id: \"{}\") {{ impact {{ losingAccess }} }} }}",
        mapping.unwrap().id
    );
    let body = api.query(&t, &delete, json!({})).await;
    assert_eq!(code(&body), "GUARDED", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["losing"], 30, "{body}");
    assert_eq!(
        s.list_role_mappings(org).await.unwrap().len(),
        1,
        "nothing changed"
    );
    // A preview says the same without the error; `force` goes through.
    let body = api
        .query(
            &t,
            "mutation { upsertRoleMapping(input: {pattern: \"Nurses\", role: \"carer\"}, dryRun: true) { dryRun impact { organizationUsers } } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["upsertRoleMapping"]["dryRun"], true, "{body}");
    assert_eq!(
        s.list_role_mappings(org).await.unwrap().len(),
        1,
        "a dry run writes nothing"
    );
    let forced = delete.replace(") {", ", force: true) {");
    let body = api.query(&t, &forced, json!({})).await;
    assert_eq!(
        body["data"]["deleteRoleMapping"]["impact"]["losingAccess"], 30,
        "{body}"
    );
    assert!(s.list_role_mappings(org).await.unwrap().is_empty());
}

/// A WebSocket client speaking `graphql-transport-ws`.
struct Ws(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl Ws {
    async fn open(url: &str, token: Option<&str>) -> Ws {
        use futures_util::SinkExt;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = url
            .replace("http://", "ws://")
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let init = match token {
            Some(t) => {
                json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {t}")}})
            }
            None => json!({"type": "connection_init", "payload": {}}),
        };
        ws.send(init.to_string().into()).await.unwrap();
        Ws(ws)
    }

    /// The next JSON message, or `None` when the socket closes.
    async fn next(&mut self) -> Option<Value> {
        use futures_util::StreamExt;
        loop {
            let msg = tokio::time::timeout(std::time::Duration::from_secs(20), self.0.next())
                .await
                .expect("a message within 20 s")?;
            match msg {
                Ok(tokio_tungstenite::tungstenite::Message::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "ping" || v["type"] == "pong" {
                        continue;
                    }
                    return Some(v);
                }
                Ok(tokio_tungstenite::tungstenite::Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// The next frame as it came.
    async fn next_raw(&mut self) -> Option<tokio_tungstenite::tungstenite::Message> {
        use futures_util::StreamExt;
        tokio::time::timeout(std::time::Duration::from_secs(20), self.0.next())
            .await
            .expect("a frame within 20 s")?
            .ok()
    }

    async fn subscribe(&mut self, id: &str, query: &str) {
        use futures_util::SinkExt;
        let msg = json!({"id": id, "type": "subscribe", "payload": {"query": query}});
        self.0.send(msg.to_string().into()).await.unwrap();
    }
}

/// A subscriber of the serving process sees the health change that another process (the
/// real binary, `connection pause`) causes, and the queue change a new user causes; without
/// a token the socket is refused at init.
async fn subscriptions_see_another_process_pause_a_target(h: &Harness) {
    let s = h.store.clone();
    scimdesk::connectors::ensure_tls_provider();
    let engine = Arc::new(scimdesk::engine::Engine::new(
        s.clone(),
        support::idp::fast(),
    ));
    engine.start();
    let app = serve::app_with_engine(
        s.clone(),
        ChangeFeed::default(),
        None,
        engine.clone(),
        &Default::default(),
    );
    let (addr, _shutdown) = serve::spawn_local(app).await.unwrap();
    let url = format!("http://{addr}/graphql");
    let org = tenant(&*s, "Riverside", "x", 0).await;
    let t = token(&*s, org, "dashboard", Access::Read).await;

    // No token: closed at init, saying why, never acknowledged.
    let mut refused = Ws::open(&url, None).await;
    let first = refused.next_raw().await;
    assert!(
        matches!(&first, Some(tokio_tungstenite::tungstenite::Message::Close(Some(f)))
            if f.reason.as_str().contains("authentication required")),
        "{first:?}"
    );

    let mut ws = Ws::open(&url, Some(&t)).await;
    assert_eq!(ws.next().await.unwrap()["type"], "connection_ack");

    ws.subscribe(
        "h",
        "subscription { healthChanged(connection: \"ehr\") { name health { state reason } } }",
    )
    .await;
    ws.subscribe(
        "q",
        "subscription { queueChanged { targets { name pending inFlight retryWait } } }",
    )
    .await;
    // Let the subscriptions start before anything happens.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = h
        .cli(dir.path())
        .args([
            "--org",
            "Riverside",
            "connection",
            "pause",
            "ehr",
            "--reason",
            "maintenance",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.create_user(&op(), org, &UserDraft::new("new@riverside.example"))
        .await
        .unwrap();
    let (mut health, mut queue) = (None, None);
    while health.is_none() || queue.is_none() {
        let msg = ws
            .next()
            .await
            .expect("the subscriptions keep the socket open");
        assert_eq!(msg["type"], "next", "{msg}");
        match msg["id"].as_str() {
            Some("h") if msg["payload"]["data"]["healthChanged"]["health"]["state"] == "paused" => {
                health = Some(msg);
            }
            Some("q") => {
                let targets = &msg["payload"]["data"]["queueChanged"]["targets"];
                let waiting = ["pending", "inFlight", "retryWait"]
                    .iter()
                    .map(|k| targets[0][*k].as_u64().unwrap_or(0))
                    .sum::<u64>();
                if waiting >= 1 {
                    queue = Some(msg);
                }
            }
            _ => {}
        }
    }
    let health = health.unwrap();
    assert_eq!(health["payload"]["data"]["healthChanged"]["name"], "ehr");
    engine.shutdown().await;
}

async fn persisted_queries_are_accepted(h: &Harness) {
    use sha2::Digest;
    let s = h.store.clone();
    let api = start(s.clone()).await;
    let org = tenant(&*s, "Riverside", "x", 0).await;
    let t = token(&*s, org, "reader", Access::Read).await;
    let query = "{ organization { name } }";
    let hash = format!("{:x}", sha2::Sha256::digest(query.as_bytes()));
    let ext = json!({"persistedQuery": {"version": 1, "sha256Hash": hash}});
    // The hash alone, before the server has seen the query: it asks for the query.
    let (_, body) = api
        .raw(Some(&t), json!({"extensions": ext}).to_string())
        .await;
    assert_eq!(
        body["errors"][0]["message"], "PersistedQueryNotFound",
        "{body}"
    );
    // The query with its hash, then the hash alone.
    let (_, body) = api
        .raw(
            Some(&t),
            json!({"query": query, "extensions": ext}).to_string(),
        )
        .await;
    assert_eq!(body["data"]["organization"]["name"], "Riverside", "{body}");
    let (_, body) = api
        .raw(Some(&t), json!({"extensions": ext}).to_string())
        .await;
    assert_eq!(body["data"]["organization"]["name"], "Riverside", "{body}");
}

async fn introspection_can_be_turned_off(h: &Harness) {
    scimdesk::connectors::ensure_tls_provider();
    let s = h.store.clone();
    let settings = scimdesk::api::graphql::ApiSettings {
        introspection: false,
        ..Default::default()
    };
    let (addr, shutdown) = serve::spawn_local(serve::app_with(
        s.clone(),
        ChangeFeed::default(),
        None,
        &settings,
    ))
    .await
    .unwrap();
    let api = Api {
        url: format!("http://{addr}/graphql"),
        http: reqwest::Client::new(),
        _shutdown: shutdown,
    };
    let org = tenant(&*s, "Riverside", "x", 0).await;
    let t = token(&*s, org, "reader", Access::Read).await;
    // Turned off, the schema is not shown (async-graphql answers null, as for a field that
    // does not exist for this caller).
    let body = api
        .query(&t, "{ __schema { types { name } } }", json!({}))
        .await;
    assert!(body["data"]["__schema"].is_null(), "{body}");
    // Queries still answer.
    let body = api.query(&t, "{ organization { name } }", json!({})).await;
    assert_eq!(body["data"]["organization"]["name"], "Riverside");
}
