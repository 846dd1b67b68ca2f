//! The workbench without a terminal: what each key does to the state and which engine command
//! it asks for, and snapshots (insta, ratatui `TestBackend`) of every pane and overlay at 80×24
//! and 160×48, drawn from fixed data.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use scimdesk::domain::*;
use scimdesk::engine::health::{ReconcileSummary, WindowRate};
use scimdesk::engine::{HealthReport, HealthState};
use scimdesk::policy::impact::{Guard, Impact, PlannedOperation, RoleChange};
use scimdesk::store::OperationFilter;
use scimdesk::tui::data::*;
use scimdesk::tui::keymap::Keymap;
use scimdesk::tui::state::*;
use scimdesk::tui::theme::Theme;
use scimdesk::tui::ui;
use sqlx::types::Json;
use std::collections::BTreeMap;
use uuid::Uuid;

// ---- fixed data ---------------------------------------------------------------------------

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn now() -> Timestamp {
    at("2026-11-28T09:30:00Z")
}

fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(0x01a2_0000_0000_7000_8000_0000_0000_0000 + n)
}

fn org() -> OrgRef {
    OrgRef {
        id: OrganizationId(uuid(1)),
        name: "Riverside Health".into(),
    }
}

fn connection(n: u128, name: &str, kind: ConnectionKind, state: ConnectionState) -> Connection {
    Connection {
        id: ConnectionId(uuid(n)),
        organization_id: org().id,
        name: name.into(),
        kind,
        base_url: (!kind.is_source())
            .then(|| format!("https://{}.example/scim/v2", name.to_lowercase())),
        auth_method: AuthMethod::Bearer,
        has_secret: true,
        settings: Json(serde_json::json!({})),
        state,
        created_at: at("2026-11-01T08:00:00Z"),
        updated_at: at("2026-11-01T08:00:00Z"),
    }
}

fn health(
    c: &Connection,
    state: HealthState,
    pending: u64,
    failed: u64,
    errors: u64,
) -> HealthReport {
    HealthReport {
        organization_id: c.organization_id,
        connection_id: c.id,
        name: c.name.clone(),
        state,
        reason: match state {
            HealthState::Degraded => "36% of 120 attempts failed in 5 minutes".into(),
            HealthState::Paused => "paused by an operator".into(),
            _ => "ok".into(),
        },
        last_success_at: Some(at("2026-11-28T09:29:52Z")),
        last_attempt_at: Some(at("2026-11-28T09:29:58Z")),
        errors_5m: WindowRate {
            attempts: 120,
            failures: errors,
        },
        errors_1h: WindowRate {
            attempts: 900,
            failures: errors * 2,
        },
        errors_24h: WindowRate {
            attempts: 4000,
            failures: errors * 3,
        },
        queue: QueueCounts {
            pending,
            in_flight: 2,
            retry_wait: 5,
            failed,
            oldest_pending: Some(at("2026-11-28T09:28:00Z")),
        },
        oldest_pending_secs: Some(120),
        p50_ms: Some(25),
        p95_ms: Some(100),
        last_reconcile: Some(ReconcileSummary {
            finished_at: at("2026-11-28T09:00:00Z"),
            dry_run: false,
            drift: 2,
            error: None,
        }),
        warning: None,
    }
}

fn connections() -> Vec<ConnectionRow> {
    let idp = connection(
        10,
        "Workday IdP",
        ConnectionKind::ScimInbound,
        ConnectionState::Active,
    );
    let rostering = connection(
        11,
        "Rostering",
        ConnectionKind::ScimTarget,
        ConnectionState::Active,
    );
    let pharmacy = connection(
        12,
        "Pharmacy",
        ConnectionKind::ScimTarget,
        ConnectionState::Active,
    );
    let payroll = connection(
        13,
        "Payroll",
        ConnectionKind::ScimTarget,
        ConnectionState::Paused,
    );
    let wave: Vec<u64> = (0..30)
        .map(|i| if i > 20 { (i - 20) * 12 } else { 0 })
        .collect();
    let errs: Vec<u64> = (0..30).map(|i| if i > 24 { 9 } else { 0 }).collect();
    vec![
        ConnectionRow {
            connection: idp,
            health: None,
            source: None,
            throughput: vec![],
            errors: vec![],
        },
        ConnectionRow {
            health: Some(health(&rostering, HealthState::Degraded, 36, 0, 43)),
            source: None,
            connection: rostering,
            throughput: wave.clone(),
            errors: errs,
        },
        ConnectionRow {
            health: Some(health(&pharmacy, HealthState::Healthy, 0, 3, 3)),
            source: None,
            connection: pharmacy,
            throughput: wave,
            errors: vec![0; 30],
        },
        ConnectionRow {
            health: Some(health(&payroll, HealthState::Paused, 12, 0, 0)),
            source: None,
            connection: payroll,
            throughput: vec![0; 30],
            errors: vec![0; 30],
        },
    ]
}

fn operation(
    n: u128,
    conn: u128,
    action: OperationAction,
    state: OperationState,
    subject: &str,
) -> OperationRow {
    OperationRow {
        operation: Operation {
            id: OperationId(uuid(100 + n)),
            seq: n as i64,
            organization_id: org().id,
            connection_id: ConnectionId(uuid(conn)),
            resource_type: ResourceType::User,
            resource_id: uuid(500 + n),
            action,
            payload: Json(serde_json::json!({})),
            state,
            attempts: if state == OperationState::Pending {
                0
            } else {
                2
            },
            budget_from: 0,
            not_before: if state == OperationState::RetryWait {
                at("2026-11-28T09:30:20Z")
            } else {
                at("2026-11-28T09:29:00Z")
            },
            lease_until: None,
            last_status: match state {
                OperationState::Failed => Some(400),
                OperationState::RetryWait => Some(429),
                _ => None,
            },
            last_error: match state {
                OperationState::Failed => {
                    Some("target answered 400 (invalidValue): the target refuses this value".into())
                }
                OperationState::RetryWait => Some("target answered 429: retry after 2 s".into()),
                _ => None,
            },
            note: None,
            created_at: at("2026-11-28T09:28:30Z"),
            updated_at: at("2026-11-28T09:29:40Z"),
        },
        subject: subject.into(),
    }
}

fn queue() -> Page<OperationRow> {
    let mut rows = Vec::new();
    for i in 0..12u128 {
        let (state, action) = match i % 4 {
            0 => (OperationState::InFlight, OperationAction::Create),
            1 => (OperationState::RetryWait, OperationAction::Update),
            2 => (OperationState::Pending, OperationAction::Create),
            _ => (OperationState::Pending, OperationAction::Suspend),
        };
        rows.push(operation(
            i,
            11 + (i % 2),
            action,
            state,
            &format!("nurse{i:03}@riverside.example"),
        ));
    }
    Page {
        rows,
        offset: 0,
        more: true,
        total: None,
    }
}

fn unmapped() -> PolicyException {
    PolicyException {
        id: ExceptionId(uuid(300)),
        organization_id: org().id,
        kind: ExceptionKind::UnmappedGroup,
        subject_key: "group:float".into(),
        connection_id: None,
        subject: "Agency Float Pool".into(),
        summary: "no mapping covers group \"Agency Float Pool\"; its 3 members get no role from it"
            .into(),
        details: Json(serde_json::json!({"group_id": uuid(400).to_string(), "members": 3})),
        state: ExceptionState::Open,
        resolution: None,
        resolved_by: None,
        created_at: at("2026-11-28T09:25:00Z"),
        resolved_at: None,
    }
}

fn failed() -> Page<FailedItem> {
    let conflict = PolicyException {
        id: ExceptionId(uuid(301)),
        kind: ExceptionKind::Conflict,
        subject_key: "user:x".into(),
        connection_id: Some(ConnectionId(uuid(12))),
        subject: "ward.clerk@riverside.example".into(),
        summary: "Pharmacy holds ward.clerk with another provisioner's externalId".into(),
        ..unmapped()
    };
    Page {
        rows: vec![
            FailedItem::Exception(unmapped()),
            FailedItem::Exception(conflict),
            FailedItem::Operation(operation(
                20,
                12,
                OperationAction::Create,
                OperationState::Failed,
                "nurse009@riverside.example",
            )),
            FailedItem::Operation(operation(
                21,
                12,
                OperationAction::Update,
                OperationState::Failed,
                "nurse019@riverside.example",
            )),
        ],
        offset: 0,
        more: false,
        total: None,
    }
}

fn role(n: u128, name: &str) -> Role {
    Role {
        id: RoleId(uuid(200 + n)),
        organization_id: org().id,
        name: name.into(),
        description: String::new(),
        created_at: at("2026-11-01T08:00:00Z"),
    }
}

fn mappings() -> Vec<MappingRow> {
    let rows = [
        ("Ward *", MatchMode::Glob, "ward-nurse", None),
        ("Maternity", MatchMode::Exact, "ward-nurse", None),
        ("Oncology", MatchMode::Exact, "ward-nurse", None),
        (
            "ICU Nurses",
            MatchMode::Exact,
            "icu-nurse",
            Some("Workday IdP"),
        ),
    ];
    rows.iter()
        .enumerate()
        .map(|(i, (pattern, mode, r, source))| MappingRow {
            mapping: RoleMapping {
                id: RoleMappingId(uuid(250 + i as u128)),
                organization_id: org().id,
                source_connection_id: source.map(|_| ConnectionId(uuid(10))),
                selector: GroupSelector::DisplayName,
                match_mode: *mode,
                pattern: pattern.to_string(),
                role_id: role(if *r == "icu-nurse" { 1 } else { 0 }, r).id,
                created_at: at("2026-11-01T08:00:00Z"),
            },
            role: r.to_string(),
            source: source.map(str::to_string),
        })
        .collect()
}

fn user(n: u128, name: &str, active: bool) -> User {
    User {
        id: UserId(uuid(500 + n)),
        organization_id: org().id,
        user_name: format!("{name}@riverside.example"),
        external_id: Some(format!("wd-{:05}", n)),
        display_name: Some(name.replace('.', " ")),
        given_name: None,
        family_name: None,
        emails: Json(vec![Email {
            value: format!("{name}@riverside.example"),
            kind: Some("work".into()),
            primary: Some(true),
            display: None,
        }]),
        active,
        lifecycle_state: if active {
            LifecycleState::Active
        } else {
            LifecycleState::Suspended
        },
        source_connection_id: Some(ConnectionId(uuid(10))),
        attributes: Json(serde_json::json!({})),
        version: 1,
        created_at: at("2026-11-28T09:20:00Z"),
        updated_at: at("2026-11-28T09:20:00Z"),
    }
}

fn users() -> Page<User> {
    Page {
        rows: vec![
            user(0, "ann.lee", true),
            user(1, "bo.chen", true),
            user(2, "cara.diaz", true),
            user(3, "dev.patel", false),
            user(4, "eve.okafor", true),
        ],
        offset: 0,
        more: false,
        total: Some(5),
    }
}

fn audit() -> Page<AuditEvent> {
    let event =
        |n: u128, t: &str, kind: ActorKind, actor: &str, action: &str, subject: &str| AuditEvent {
            id: AuditEventId(uuid(700 + n)),
            organization_id: org().id,
            occurred_at: at(t),
            actor_kind: kind,
            actor: actor.into(),
            action: action.into(),
            subject_type: subject.into(),
            subject_id: uuid(800 + n).to_string(),
            details: Json(serde_json::json!({"note": format!("event {n}")})),
        };
    Page {
        rows: vec![
            event(
                0,
                "2026-11-28T09:29:40Z",
                ActorKind::Operator,
                "maria",
                "operation.retry",
                "operation",
            ),
            event(
                1,
                "2026-11-28T09:29:10Z",
                ActorKind::Operator,
                "maria",
                "mapping.create",
                "role_mapping",
            ),
            event(
                2,
                "2026-11-28T09:28:00Z",
                ActorKind::System,
                "engine",
                "connection.quarantine",
                "connection",
            ),
            event(
                3,
                "2026-11-28T09:27:30Z",
                ActorKind::Scim,
                "Workday IdP",
                "user.create",
                "user",
            ),
            event(
                4,
                "2026-11-28T09:27:29Z",
                ActorKind::Scim,
                "Workday IdP",
                "group.add_member",
                "group",
            ),
        ],
        offset: 0,
        more: true,
        total: None,
    }
}

fn loaded(body: PaneData) -> Loaded {
    Loaded {
        organizations: vec![
            OrgRef {
                id: OrganizationId(uuid(2)),
                name: "Lakeside Clinic".into(),
            },
            org(),
        ],
        organization: Some(org()),
        connections: connections(),
        roles: vec![role(0, "ward-nurse"), role(1, "icu-nurse")],
        body,
        at: now(),
    }
}

/// A workbench holding every pane's fixed rows, on the Connections pane.
fn app() -> App {
    let theme = Theme::load("default", false).unwrap();
    let mut app = App::new(
        Keymap::default(),
        theme,
        "sqlite scimdesk.db".into(),
        Workers::Running,
    );
    app.operator = "maria".into();
    app.organization = Some(org());
    for body in [
        PaneData::Queue(queue()),
        PaneData::Failed(failed()),
        PaneData::Mappings(mappings()),
        PaneData::Users(users()),
        PaneData::Audit(audit()),
        PaneData::Connections,
    ] {
        app.on_loaded(loaded(body));
    }
    app.now = now();
    app
}

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn code(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn press(app: &mut App, keys: &str) -> Vec<Effect> {
    let mut effects = Vec::new();
    for c in keys.chars() {
        effects.extend(app.on_key(key(c)));
    }
    effects
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        assert!(app.on_key(key(c)).is_empty());
    }
}

fn commands(effects: &[Effect]) -> Vec<Command> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Run(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

// ---- keys → state → commands --------------------------------------------------------------

#[test]
fn panes_switch_by_number_and_tab_and_each_switch_reads_the_pane() {
    let mut app = app();
    let effects = press(&mut app, "3");
    assert_eq!(app.pane, Pane::Failed);
    assert!(
        matches!(&effects[..], [Effect::Load(r)] if r.pane == Pane::Failed && r.organization == Some(org().id))
    );
    app.on_key(code(KeyCode::Tab));
    assert_eq!(app.pane, Pane::Mappings);
    app.on_key(code(KeyCode::BackTab));
    app.on_key(code(KeyCode::BackTab));
    assert_eq!(app.pane, Pane::Queue);
    press(&mut app, "6");
    assert_eq!(app.pane, Pane::Audit);
    assert_eq!(press(&mut app, "q"), vec![Effect::Quit]);
    assert!(app.quitting);
}

#[test]
fn retry_skip_and_retry_all_on_failed_operations() {
    let mut app = app();
    press(&mut app, "3jj");
    let op = OperationId(uuid(120));
    assert_eq!(commands(&press(&mut app, "r")), vec![Command::Retry(op)]);
    // Skip asks for a reason; an empty one skips nothing.
    assert!(press(&mut app, "s").is_empty());
    assert!(matches!(app.overlays.last(), Some(Overlay::Prompt { .. })));
    assert!(app.on_key(code(KeyCode::Enter)).is_empty());
    assert!(app.toast.as_ref().unwrap().error);
    press(&mut app, "s");
    typed(&mut app, "duplicate of HR-1234");
    assert_eq!(
        commands(&app.on_key(code(KeyCode::Enter))),
        vec![Command::Skip(op, "duplicate of HR-1234".into())]
    );
    // Retry all asks with the count from health (3 failed at Pharmacy).
    assert!(press(&mut app, "R").is_empty());
    match app.overlays.last() {
        Some(Overlay::Confirm(c)) => assert!(
            c.question
                .contains("Retry 3 operations failed at every target"),
            "{}",
            c.question
        ),
        _ => panic!("no confirmation"),
    }
    assert!(press(&mut app, "n").is_empty());
    press(&mut app, "R");
    assert_eq!(
        commands(&press(&mut app, "y")),
        vec![Command::RetryAll(OperationFilter {
            state: Some(OperationState::Failed),
            ..Default::default()
        })]
    );
}

#[test]
fn remap_from_an_unmapped_group_previews_then_asks_again_when_guarded() {
    let mut app = app();
    press(&mut app, "3");
    assert!(press(&mut app, "m").is_empty());
    let Some(Overlay::Editor(ed)) = app.overlays.last() else {
        panic!("no editor")
    };
    assert_eq!(ed.current().pattern, "Agency Float Pool");
    assert_eq!(ed.current().from_exception, Some(ExceptionId(uuid(300))));
    assert_eq!(ed.focus, 1, "the cursor starts in the role field");
    // Saving without a role is refused in the form.
    assert!(app.on_key(code(KeyCode::Enter)).is_empty());
    let Some(Overlay::Editor(ed)) = app.overlays.last() else {
        panic!("the editor closed")
    };
    assert!(ed.error.as_deref().unwrap().contains("a role"));
    typed(&mut app, "float-nurse");
    let effects = app.on_key(code(KeyCode::Enter));
    let [Command::Preview(form)] = &commands(&effects)[..] else {
        panic!("{effects:?}")
    };
    assert_eq!(
        (form.pattern.as_str(), form.role.as_str()),
        ("Agency Float Pool", "float-nurse")
    );
    // The preview comes back refused by the guard: yes asks once more, then forces.
    let view = ImpactView {
        form: form.clone(),
        impact: impact(),
        guard_refusal: Some("64 users (32%) would lose access".into()),
        guard: Guard::default(),
    };
    app.on_reply(Reply::Impact(Box::new(view)));
    assert!(press(&mut app, "y").is_empty());
    assert!(
        matches!(app.overlays.last(), Some(Overlay::Confirm(c)) if c.question.contains("Apply anyway"))
    );
    assert_eq!(
        commands(&press(&mut app, "y")),
        vec![Command::Apply(form.clone(), true)]
    );
    // Done closes the editor and the preview and re-reads.
    let effects = app.on_reply(Reply::Done("mapping saved".into()));
    assert!(app.overlays.is_empty(), "{:?}", app.overlays.len());
    assert!(matches!(&effects[..], [Effect::Load(_)]));
}

#[test]
fn the_editor_cycles_choices_and_unguarded_changes_apply_on_yes() {
    let mut app = app();
    press(&mut app, "4");
    press(&mut app, "a");
    typed(&mut app, "Ward ?");
    app.on_key(code(KeyCode::Tab));
    typed(&mut app, "ward-nurse");
    app.on_key(code(KeyCode::Tab));
    app.on_key(code(KeyCode::Right)); // display_name → id
    app.on_key(code(KeyCode::Left)); // back to display_name
    app.on_key(code(KeyCode::Tab));
    app.on_key(key(' ')); // glob on
    app.on_key(code(KeyCode::Tab));
    app.on_key(code(KeyCode::Right)); // the one source
    let effects = app.on_key(code(KeyCode::Enter));
    let [Command::Preview(form)] = &commands(&effects)[..] else {
        panic!("{effects:?}")
    };
    assert_eq!(form.selector, GroupSelector::DisplayName);
    assert!(form.glob);
    assert_eq!(form.source, Some(ConnectionId(uuid(10))));
    assert_eq!(form.pattern, "Ward ?");
    let view = ImpactView {
        form: form.clone(),
        impact: impact(),
        guard_refusal: None,
        guard: Guard::default(),
    };
    app.on_reply(Reply::Impact(Box::new(view)));
    assert_eq!(
        commands(&app.on_key(code(KeyCode::Enter))),
        vec![Command::Apply(form.clone(), false)]
    );
    // Delete previews first, with the selected mapping.
    app.overlays.clear();
    press(&mut app, "j");
    let [Command::Preview(del)] = &commands(&press(&mut app, "d"))[..] else {
        panic!()
    };
    assert!(del.remove);
    assert_eq!(del.pattern, "Maternity");
}

#[test]
fn connection_commands_pause_resume_sync_and_reconcile() {
    let mut app = app();
    // Row 0 is a source: pausing it is refused with a reason.
    assert!(press(&mut app, "p").is_empty());
    assert!(app.toast.as_ref().unwrap().error);
    press(&mut app, "j");
    let rostering = ConnectionId(uuid(11));
    assert!(
        matches!(&commands(&press(&mut app, "p"))[..], [Command::Pause(id, reason)] if *id == rostering && reason.contains("maria"))
    );
    assert_eq!(
        commands(&press(&mut app, "S")),
        vec![Command::SyncNow(rostering)]
    );
    assert!(press(&mut app, "F").is_empty());
    assert_eq!(
        commands(&press(&mut app, "y")),
        vec![Command::Reconcile(rostering)]
    );
    press(&mut app, "jj");
    assert_eq!(
        commands(&press(&mut app, "p")),
        vec![Command::Resume(ConnectionId(uuid(13)))]
    );
}

#[test]
fn selection_follows_the_item_when_rows_move() {
    let mut app = app();
    press(&mut app, "2jjj");
    let chosen = app.queue.rows[3].operation.id;
    let mut page = queue();
    page.rows.insert(
        0,
        operation(
            90,
            11,
            OperationAction::Create,
            OperationState::Pending,
            "new@riverside.example",
        ),
    );
    page.rows.insert(
        0,
        operation(
            91,
            11,
            OperationAction::Create,
            OperationState::Pending,
            "newer@riverside.example",
        ),
    );
    app.on_loaded(loaded(PaneData::Queue(page)));
    assert_eq!(app.pane_state().selected, 5);
    assert_eq!(app.queue.rows[5].operation.id, chosen);
    // When the row is gone, the selection stays in place.
    let mut page = queue();
    page.rows.retain(|r| r.operation.id != chosen);
    app.on_loaded(loaded(PaneData::Queue(page)));
    assert_eq!(app.pane_state().selected, 5);
}

#[test]
fn paging_past_the_loaded_rows_reads_the_next_page() {
    let mut app = app();
    press(&mut app, "2");
    for _ in 0..11 {
        assert!(press(&mut app, "j").is_empty());
    }
    let effects = press(&mut app, "j");
    assert!(
        matches!(&effects[..], [Effect::Load(r)] if r.offset == u64::from(PAGE / 2)),
        "{effects:?}"
    );
}

#[test]
fn filter_organization_detail_and_rebound_keys() {
    let mut app = app();
    press(&mut app, "2/");
    typed(&mut app, "conn:Rostering state:retry_wait");
    let effects = app.on_key(code(KeyCode::Enter));
    assert!(
        matches!(&effects[..], [Effect::Load(r)] if r.filter == "conn:Rostering state:retry_wait")
    );
    // Enter opens a detail: a "reading" box until it arrives.
    let effects = app.on_key(code(KeyCode::Enter));
    assert!(matches!(
        &effects[..],
        [Effect::Detail(DetailRequest::Operation(_))]
    ));
    app.on_key(code(KeyCode::Esc));
    assert!(app.overlays.is_empty());
    // The organization switcher resets the panes and reads the new one.
    press(&mut app, "o");
    let effects = app.on_key(code(KeyCode::Up));
    assert!(effects.is_empty());
    let effects = app.on_key(code(KeyCode::Enter));
    assert_eq!(app.organization.as_ref().unwrap().name, "Lakeside Clinic");
    assert!(
        matches!(&effects[..], [Effect::Load(r)] if r.organization == Some(OrganizationId(uuid(2))) && r.filter.is_empty())
    );
    // Keys are rebindable: retry on x.
    let keys = BTreeMap::from([("retry".to_string(), vec!["x".to_string()])]);
    let mut app = app_with(Keymap::with_overrides(&keys).unwrap());
    press(&mut app, "3jj");
    assert!(press(&mut app, "r").is_empty());
    assert_eq!(
        commands(&press(&mut app, "x")),
        vec![Command::Retry(OperationId(uuid(120)))]
    );
}

fn app_with(keymap: Keymap) -> App {
    let mut a = app();
    a.keymap = keymap;
    a
}

// ---- snapshots ----------------------------------------------------------------------------

fn impact() -> Impact {
    Impact {
        role_changes: vec![
            RoleChange {
                user_id: UserId(uuid(500)),
                user_name: "ann.lee@riverside.example".into(),
                gained: vec!["float-nurse".into()],
                lost: vec![],
            },
            RoleChange {
                user_id: UserId(uuid(501)),
                user_name: "bo.chen@riverside.example".into(),
                gained: vec![],
                lost: vec!["ward-nurse".into()],
            },
        ],
        operations: vec![PlannedOperation {
            connection: "Rostering".into(),
            connection_id: ConnectionId(uuid(11)),
            resource_type: ResourceType::User,
            resource_id: uuid(501),
            action: OperationAction::Delete,
            subject: "bo.chen@riverside.example".into(),
            joining: vec![],
            leaving: vec![],
        }],
        organization_users: 200,
        newly_unmapped: vec![],
        newly_covered: vec![],
        skipped_targets: vec![],
    }
}

fn details() -> Vec<(&'static str, Detail)> {
    let op = operation(
        20,
        12,
        OperationAction::Create,
        OperationState::Failed,
        "nurse009@riverside.example",
    );
    let attempt = |n: i32, status: i32| {
        Attempt {
        operation_id: op.operation.id,
        attempt_no: n,
        organization_id: org().id,
        connection_id: op.operation.connection_id,
        started_at: at("2026-11-28T09:29:40Z"),
        duration_ms: 13,
        http_status: Some(status),
        error: (status >= 400).then(|| "target answered 400 (invalidValue)".to_string()),
        request_excerpt: Some("GET /Users?filter=userName eq \"nurse009@riverside.example\"\nPOST /Users {\"title\":\"Agency Contractor\"}".into()),
        response_excerpt: Some("{\"status\":\"400\",\"scimType\":\"invalidValue\"}".into()),
    }
    };
    let rows = connections();
    vec![
        (
            "connection",
            Detail::Connection {
                row: Box::new(rows[1].clone()),
                attempts: vec![(op.clone(), attempt(2, 400)), (op.clone(), attempt(1, 429))],
            },
        ),
        (
            "operation",
            Detail::Operation {
                row: op.clone(),
                attempts: vec![attempt(1, 429), attempt(2, 400)],
            },
        ),
        ("exception", Detail::Exception(unmapped())),
        (
            "user",
            Detail::User(Box::new(UserDetail {
                user: user(0, "ann.lee", true),
                groups: vec!["Ward A".into(), "Agency Float Pool".into()],
                roles: vec!["ward-nurse".into()],
                targets: vec![("Rostering".into(), None), ("Pharmacy".into(), None)],
                operations: vec![op],
            })),
        ),
        ("audit", Detail::Audit(audit().rows[1].clone())),
    ]
}

fn snapshot(app: &mut App, name: &str) {
    for (w, h) in [(80u16, 24u16), (160, 48)] {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
        terminal.draw(|f| ui::draw(f, app)).unwrap();
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), terminal.backend());
    }
}

#[test]
fn snapshots_of_every_pane() {
    let mut app = app();
    for (n, name) in [
        "connections",
        "queue",
        "failed",
        "mappings",
        "users",
        "audit",
    ]
    .iter()
    .enumerate()
    {
        press(&mut app, &(n + 1).to_string());
        snapshot(&mut app, &format!("pane_{name}"));
    }
    // A filter shows in the pane's title.
    app.panes[Pane::Audit.index()].filter = "actor:maria".into();
    snapshot(&mut app, "pane_audit_filtered");
}

#[test]
fn snapshots_of_every_overlay() {
    let mut app = app();
    press(&mut app, "?");
    snapshot(&mut app, "overlay_help");
    app.overlays.clear();
    for (name, detail) in details() {
        app.overlays.clear();
        app.overlays.push(Overlay::Detail {
            detail: Box::new(detail),
            scroll: 0,
        });
        snapshot(&mut app, &format!("overlay_detail_{name}"));
    }
    app.overlays.clear();
    press(&mut app, "2/");
    typed(&mut app, "conn:Rostering");
    snapshot(&mut app, "overlay_filter_prompt");
    app.overlays.clear();
    press(&mut app, "3R");
    snapshot(&mut app, "overlay_confirm_retry_all");
    app.overlays.clear();
    press(&mut app, "o");
    snapshot(&mut app, "overlay_organizations");
    app.overlays.clear();
    press(&mut app, "m");
    typed(&mut app, "float-nurse");
    snapshot(&mut app, "overlay_mapping_editor");
    let form = match app.overlays.last() {
        Some(Overlay::Editor(ed)) => ed.current(),
        _ => panic!("no editor"),
    };
    app.on_reply(Reply::Impact(Box::new(ImpactView {
        form,
        impact: impact(),
        guard_refusal: Some("1 user (0.5%) would lose access; the guard allows 0".into()),
        guard: Guard::default(),
    })));
    snapshot(&mut app, "overlay_impact_guarded");
    press(&mut app, "y");
    snapshot(&mut app, "overlay_guard_confirmation");
}

#[test]
fn an_empty_store_says_what_to_do() {
    let theme = Theme::load("default", false).unwrap();
    let mut app = App::new(
        Keymap::default(),
        theme,
        "sqlite scimdesk.db".into(),
        Workers::Off,
    );
    app.on_loaded(Loaded {
        organizations: vec![],
        organization: None,
        connections: vec![],
        roles: vec![],
        body: PaneData::Connections,
        at: now(),
    });
    snapshot(&mut app, "empty_store");
}

/// A source scimdesk pulls from shows how its syncs go, and `S` syncs it now.
#[test]
fn a_pulled_source_shows_its_syncs_and_syncs_on_s() {
    use scimdesk::engine::health::SourceHealth;
    let mut app = app();
    let kc = connection(
        20,
        "Keycloak",
        ConnectionKind::Keycloak,
        ConnectionState::Active,
    );
    app.connections.push(ConnectionRow {
        source: Some(SourceHealth {
            organization_id: org().id,
            connection_id: kc.id,
            name: kc.name.clone(),
            state: HealthState::Degraded,
            reason: "the last sync failed: reading the source: 503".into(),
            last_sync_at: Some(at("2026-11-28T09:29:00Z")),
            last_success_at: Some(at("2026-11-28T09:10:00Z")),
            last_error: Some("reading the source: 503".into()),
            runs_24h: WindowRate {
                attempts: 4,
                failures: 1,
            },
            full_only: None,
            recent_errors: vec![],
        }),
        connection: kc,
        health: None,
        throughput: vec![],
        errors: vec![],
    });
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).unwrap();
    terminal.draw(|f| ui::draw(f, &mut app)).unwrap();
    let screen: String = terminal
        .backend()
        .buffer()
        .content
        .iter()
        .map(|c| c.symbol())
        .collect();
    assert!(screen.contains("Keycloak"), "{screen}");
    assert!(screen.contains("degraded"));
    assert!(screen.contains("20m"), "last success 20 minutes ago");
    assert!(screen.contains("25%"), "one failed sync of four");
    assert!(screen.contains("reading the source: 503"));
    press(&mut app, "jjjj");
    assert_eq!(
        commands(&press(&mut app, "S")),
        vec![Command::SyncSource(ConnectionId(uuid(20)))]
    );
}

/// A target bound to no role looks healthy otherwise; its row says it receives nobody.
#[test]
fn a_target_bound_to_no_role_says_so_on_its_row() {
    let mut app = app();
    let mut h = health(
        &app.connections[0].connection,
        HealthState::Healthy,
        0,
        0,
        0,
    );
    h.warning = Some("bound to no role, so it receives nobody".into());
    app.connections[0].health = Some(h);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|f| ui::draw(f, &mut app)).unwrap();
    let screen: String = terminal
        .backend()
        .buffer()
        .content
        .iter()
        .map(|c| c.symbol())
        .collect();
    assert!(screen.contains("Workday IdP         no role"), "{screen}");
}

/// A sync the deletion guard stopped waits in Failed; its detail shows what it would have
/// suspended, and the re-map key asks before applying it anyway.
#[test]
fn a_sync_stopped_by_the_guard_is_reviewed_then_applied_from_failed() {
    let mut app = App::new(
        Keymap::default(),
        Theme::load("default", false).unwrap(),
        "sqlite scimdesk.db".into(),
        Workers::Running,
    );
    app.organization = Some(org());
    let guard = PolicyException {
        id: ExceptionId(uuid(310)),
        kind: ExceptionKind::SyncGuard,
        subject_key: "sync_guard:x".into(),
        connection_id: Some(ConnectionId(uuid(20))),
        subject: "Keycloak".into(),
        summary: "the sync would suspend 40 of the source's 40 active users, more than its deletion guard allows; nothing was changed".into(),
        details: Json(serde_json::json!({
            "suspending": 40, "active": 40, "first": ["aokafor", "ehughes", "lbrennan"],
        })),
        ..unmapped()
    };
    app.on_loaded(loaded(PaneData::Failed(Page {
        rows: vec![FailedItem::Exception(guard.clone())],
        offset: 0,
        more: false,
        total: None,
    })));
    app.now = now();
    press(&mut app, "3");
    assert_eq!(
        app.on_key(code(KeyCode::Enter)),
        vec![Effect::Detail(DetailRequest::Exception(ExceptionId(uuid(
            310
        ))))]
    );
    app.on_detail(Detail::Exception(guard));
    let mut terminal = Terminal::new(TestBackend::new(100, 40)).unwrap();
    terminal.draw(|f| ui::draw(f, &mut app)).unwrap();
    let screen: String = terminal
        .backend()
        .buffer()
        .content
        .iter()
        .map(|c| c.symbol())
        .collect();
    assert!(screen.contains("\"suspending\": 40"), "{screen}");
    assert!(screen.contains("ehughes"), "{screen}");
    assert!(screen.contains("apply the sync anyway"), "{screen}");
    assert!(press(&mut app, "m").is_empty(), "asks first");
    let Some(Overlay::Confirm(c)) = app.overlays.last() else {
        panic!("no question")
    };
    assert!(
        c.question.contains("suspends 40 of 40 users"),
        "{}",
        c.question
    );
    assert_eq!(
        commands(&press(&mut app, "y")),
        vec![Command::ApplySync(ExceptionId(uuid(310)))]
    );
}
