//! One conformance suite for the Store, run against real SQLite and real PostgreSQL.

use crate::support;

use scimdesk::crypto::{MasterKey, Secret};
use scimdesk::domain::*;
use scimdesk::store::{ListRange, OperationFilter, Store, StoreError};
use std::collections::HashSet;
use support::{Harness, Raw};

on_both_backends!(
    organizations_crud,
    connections_crud,
    users_crud,
    user_name_unique_per_org_ignoring_case,
    groups_and_memberships,
    membership_never_crosses_organizations,
    roles_and_mappings_crud,
    target_links_crud,
    batch_lookups_find_exactly_what_was_asked_for,
    operations_and_attempts,
    tokens_issue_authenticate_revoke,
    tenant_isolation,
    audit_written_with_each_change_and_only_then,
    audit_rows_cannot_be_updated_or_deleted,
    migrations_are_idempotent,
    secrets_never_stored_in_plaintext,
    sealed_secret_copied_elsewhere_fails_to_open,
    key_rotation_keeps_every_secret_readable,
    references_are_checked_without_foreign_keys,
    changes_enqueue_work_for_every_target,
    concurrent_creates_each_get_their_own_answer,
);

fn op() -> Actor {
    Actor::operator("tester")
}

async fn org(s: &dyn Store, name: &str) -> Organization {
    s.create_organization(&op(), name).await.unwrap()
}

fn target(name: &str) -> NewConnection {
    NewConnection {
        name: name.into(),
        kind: ConnectionKind::ScimTarget,
        base_url: Some("https://app.example.com/scim/v2".into()),
        auth_method: AuthMethod::Bearer,
        settings: serde_json::json!({ "delete_policy": "suspend", "source_groups": true }),
    }
}

fn inbound(name: &str) -> NewConnection {
    NewConnection {
        name: name.into(),
        kind: ConnectionKind::ScimInbound,
        base_url: None,
        auth_method: AuthMethod::None,
        settings: serde_json::json!({}),
    }
}

fn nurse(n: u32) -> UserDraft {
    let mut d = UserDraft::new(format!("nurse{n}@riverside.example"));
    d.given_name = Some("Nurse".into());
    d.family_name = Some(format!("Number {n}"));
    d.external_id = Some(format!("ext-{n}"));
    d.emails = vec![Email {
        value: format!("nurse{n}@riverside.example"),
        kind: Some("work".into()),
        primary: Some(true),
        display: None,
    }];
    d
}

async fn organizations_crud(h: &Harness) {
    let s = &*h.store;
    let a = org(s, "Riverside Health").await;
    assert_eq!(s.organization(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        s.organization_by_name("riverside health").await.unwrap(),
        Some(a.clone())
    );
    let dup = s
        .create_organization(&op(), "RIVERSIDE HEALTH")
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");
    assert!(matches!(
        s.create_organization(&op(), "  ").await,
        Err(StoreError::Invalid(_))
    ));
    let b = org(s, "Agency Staffing").await;
    let names: Vec<_> = s
        .list_organizations()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, ["Agency Staffing", "Riverside Health"]);
    let renamed = s
        .rename_organization(&op(), b.id, "Agency Nurses")
        .await
        .unwrap();
    assert_eq!(renamed.name, "Agency Nurses");
    assert!(matches!(
        s.rename_organization(&op(), b.id, "riverside health").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.rename_organization(&op(), OrganizationId::new(), "x")
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn connections_crud(h: &Harness) {
    let s = &*h.store;
    let o = org(s, "Riverside").await;
    let secret = Secret::new("bearer-token-123");
    let c = s
        .create_connection(&op(), o.id, &target("Workday App"), Some(&secret))
        .await
        .unwrap();
    assert!(c.has_secret);
    assert_eq!(c.state, ConnectionState::Active);
    assert_eq!(c.settings.0["delete_policy"], "suspend");
    assert_eq!(s.connection(o.id, c.id).await.unwrap(), Some(c.clone()));
    assert_eq!(
        s.connection_by_name(o.id, "workday app").await.unwrap(),
        Some(c.clone())
    );
    assert_eq!(
        s.connection_secret(o.id, c.id)
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "bearer-token-123"
    );

    let dup = s
        .create_connection(&op(), o.id, &target("WORKDAY APP"), None)
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");
    let mut bad = target("bad");
    bad.base_url = Some("ftp://nope".into());
    assert!(matches!(
        s.create_connection(&op(), o.id, &bad, None).await,
        Err(StoreError::Invalid(_))
    ));

    let i = s
        .create_connection(&op(), o.id, &inbound("okta-push"), None)
        .await
        .unwrap();
    assert!(!i.has_secret);
    assert_eq!(
        s.connection_secret(o.id, i.id)
            .await
            .unwrap()
            .map(|s| s.expose().to_string()),
        None
    );
    let names: Vec<_> = s
        .list_connections(o.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["okta-push", "Workday App"]);

    let updated = s
        .update_connection(
            &op(),
            o.id,
            c.id,
            &ConnectionUpdate {
                base_url: Some(Some("https://new.example.com/scim".into())),
                state: Some(ConnectionState::Paused),
                settings: Some(serde_json::json!({ "delete_policy": "delete" })),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        updated.base_url.as_deref(),
        Some("https://new.example.com/scim")
    );
    assert_eq!(updated.state, ConnectionState::Paused);
    assert_eq!(updated.auth_method, AuthMethod::Bearer);
    assert_eq!(updated.settings.0["delete_policy"], "delete");
    let cleared = s
        .update_connection(
            &op(),
            o.id,
            c.id,
            &ConnectionUpdate {
                base_url: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.base_url, None);
    assert_eq!(cleared.state, ConnectionState::Paused);

    s.set_connection_secret(&op(), o.id, c.id, Some(&Secret::new("rotated")))
        .await
        .unwrap();
    assert_eq!(
        s.connection_secret(o.id, c.id)
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "rotated"
    );
    s.set_connection_secret(&op(), o.id, c.id, None)
        .await
        .unwrap();
    assert!(s.connection_secret(o.id, c.id).await.unwrap().is_none());
    assert!(!s.connection(o.id, c.id).await.unwrap().unwrap().has_secret);

    // Users sourced from a removed connection are kept, detached.
    let mut d = nurse(1);
    d.source_connection_id = Some(i.id);
    let u = s.create_user(&op(), o.id, &d).await.unwrap();
    assert!(s.delete_connection(&op(), o.id, i.id).await.unwrap());
    assert!(!s.delete_connection(&op(), o.id, i.id).await.unwrap());
    assert_eq!(s.connection(o.id, i.id).await.unwrap(), None);
    assert_eq!(
        s.user(o.id, u.id)
            .await
            .unwrap()
            .unwrap()
            .source_connection_id,
        None
    );
}

async fn users_crud(h: &Harness) {
    let s = &*h.store;
    let o = org(s, "Riverside").await;
    let u = s.create_user(&op(), o.id, &nurse(1)).await.unwrap();
    assert_eq!(u.version, 1);
    assert_eq!(u.lifecycle_state, LifecycleState::Active);
    assert_eq!(u.emails.0[0].value, "nurse1@riverside.example");
    assert_eq!(s.user(o.id, u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(
        s.user_by_user_name(o.id, "NURSE1@Riverside.Example")
            .await
            .unwrap(),
        Some(u.clone())
    );
    for n in 2..=5 {
        s.create_user(&op(), o.id, &nurse(n)).await.unwrap();
    }
    assert_eq!(s.count_users(o.id).await.unwrap(), 5);
    let page: Vec<_> = s
        .list_users(
            o.id,
            ListRange {
                offset: 1,
                limit: 2,
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.user_name)
        .collect();
    assert_eq!(
        page,
        ["nurse2@riverside.example", "nurse3@riverside.example"]
    );

    let mut d = nurse(1);
    d.active = false;
    d.attributes = serde_json::json!({ "title": "Charge Nurse" });
    let v2 = s
        .replace_user(&op(), o.id, u.id, &d, Some(1))
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert!(!v2.active);
    assert_eq!(v2.lifecycle_state, LifecycleState::Suspended);
    assert_eq!(v2.attributes.0["title"], "Charge Nurse");
    assert!(v2.updated_at >= u.updated_at);
    assert_eq!(v2.created_at, u.created_at);
    let stale = s
        .replace_user(&op(), o.id, u.id, &d, Some(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            stale,
            StoreError::VersionMismatch {
                expected: 1,
                current: 2
            }
        ),
        "{stale}"
    );
    let v3 = s.replace_user(&op(), o.id, u.id, &d, None).await.unwrap();
    assert_eq!(v3.version, 3);
    assert!(matches!(
        s.replace_user(&op(), o.id, UserId::new(), &d, None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.create_user(&op(), o.id, &UserDraft::new(" ")).await,
        Err(StoreError::Invalid(_))
    ));

    assert!(s.delete_user(&op(), o.id, u.id).await.unwrap());
    assert!(!s.delete_user(&op(), o.id, u.id).await.unwrap());
    assert_eq!(s.user(o.id, u.id).await.unwrap(), None);
    assert_eq!(s.count_users(o.id).await.unwrap(), 4);
}

async fn user_name_unique_per_org_ignoring_case(h: &Harness) {
    let s = &*h.store;
    let a = org(s, "A").await;
    let b = org(s, "B").await;
    s.create_user(&op(), a.id, &UserDraft::new("Alice@Example.org"))
        .await
        .unwrap();
    let dup = s
        .create_user(&op(), a.id, &UserDraft::new("ALICE@example.ORG"))
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");
    assert!(dup.to_string().contains("ALICE@example.ORG"));
    // Not across organizations.
    s.create_user(&op(), b.id, &UserDraft::new("alice@example.org"))
        .await
        .unwrap();
    // Unicode case folding, not just ASCII.
    s.create_user(&op(), a.id, &UserDraft::new("ÅSA@example.org"))
        .await
        .unwrap();
    assert!(matches!(
        s.create_user(&op(), a.id, &UserDraft::new("åsa@EXAMPLE.org"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Renaming onto a taken name is refused too.
    let bob = s
        .create_user(&op(), a.id, &UserDraft::new("bob@example.org"))
        .await
        .unwrap();
    assert!(matches!(
        s.replace_user(
            &op(),
            a.id,
            bob.id,
            &UserDraft::new("alice@EXAMPLE.org"),
            None
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.count_users(a.id).await.unwrap(), 3);
    assert_eq!(s.count_users(b.id).await.unwrap(), 1);
}

async fn groups_and_memberships(h: &Harness) {
    let s = &*h.store;
    let o = org(s, "Riverside").await;
    let icu = s
        .create_group(&op(), o.id, &GroupDraft::new("Ward ICU"))
        .await
        .unwrap();
    let er = s
        .create_group(&op(), o.id, &GroupDraft::new("Ward ER"))
        .await
        .unwrap();
    assert_eq!(s.group(o.id, icu.id).await.unwrap(), Some(icu.clone()));
    assert_eq!(
        s.list_groups(o.id, ListRange::first(10))
            .await
            .unwrap()
            .len(),
        2
    );
    let u1 = s.create_user(&op(), o.id, &nurse(1)).await.unwrap();
    let u2 = s.create_user(&op(), o.id, &nurse(2)).await.unwrap();

    assert!(s.add_member(&op(), o.id, icu.id, u1.id).await.unwrap());
    assert!(
        !s.add_member(&op(), o.id, icu.id, u1.id).await.unwrap(),
        "second add is a no-op"
    );
    assert!(s.add_member(&op(), o.id, icu.id, u2.id).await.unwrap());
    assert!(s.add_member(&op(), o.id, er.id, u1.id).await.unwrap());
    let mut members = s.group_members(o.id, icu.id).await.unwrap();
    members.sort();
    let mut expected = vec![u1.id, u2.id];
    expected.sort();
    assert_eq!(members, expected);
    let groups: Vec<_> = s
        .user_groups(o.id, u1.id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.display_name)
        .collect();
    assert_eq!(groups, ["Ward ER", "Ward ICU"]);
    assert_eq!(
        s.group(o.id, icu.id).await.unwrap().unwrap().version,
        3,
        "membership changes bump the version"
    );

    assert!(s.remove_member(&op(), o.id, icu.id, u2.id).await.unwrap());
    assert!(!s.remove_member(&op(), o.id, icu.id, u2.id).await.unwrap());
    assert!(matches!(
        s.add_member(&op(), o.id, icu.id, UserId::new()).await,
        Err(StoreError::NotFound(_))
    ));

    let mut draft = GroupDraft::new("Ward ICU North");
    draft.external_id = Some("grp-1".into());
    let renamed = s
        .replace_group(&op(), o.id, icu.id, &draft, Some(4))
        .await
        .unwrap();
    assert_eq!(renamed.display_name, "Ward ICU North");
    assert!(matches!(
        s.replace_group(&op(), o.id, icu.id, &draft, Some(4)).await,
        Err(StoreError::VersionMismatch { .. })
    ));

    // Deleting a user or a group removes its memberships.
    assert!(s.delete_user(&op(), o.id, u1.id).await.unwrap());
    assert!(s.group_members(o.id, er.id).await.unwrap().is_empty());
    assert!(s.delete_group(&op(), o.id, icu.id).await.unwrap());
    assert!(!s.delete_group(&op(), o.id, icu.id).await.unwrap());
    assert!(s.user_groups(o.id, u2.id).await.unwrap().is_empty());
}

async fn membership_never_crosses_organizations(h: &Harness) {
    let s = &*h.store;
    let a = org(s, "A").await;
    let b = org(s, "B").await;
    let ga = s
        .create_group(&op(), a.id, &GroupDraft::new("g"))
        .await
        .unwrap();
    let ub = s.create_user(&op(), b.id, &nurse(1)).await.unwrap();
    // A's group with B's user, in either organization's name: refused.
    assert!(matches!(
        s.add_member(&op(), a.id, ga.id, ub.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.add_member(&op(), b.id, ga.id, ub.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.group_members(a.id, ga.id).await.unwrap().is_empty());
}

async fn roles_and_mappings_crud(h: &Harness) {
    let s = &*h.store;
    let o = org(s, "Riverside").await;
    let src = s
        .create_connection(&op(), o.id, &inbound("entra"), None)
        .await
        .unwrap();
    let role = s
        .create_role(&op(), o.id, "icu-nurse", "ICU ward access")
        .await
        .unwrap();
    assert_eq!(s.role(o.id, role.id).await.unwrap(), Some(role.clone()));
    assert!(matches!(
        s.create_role(&op(), o.id, "ICU-NURSE", "").await,
        Err(StoreError::Conflict(_))
    ));
    let er = s.create_role(&op(), o.id, "er-nurse", "").await.unwrap();
    let names: Vec<_> = s
        .list_roles(o.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["er-nurse", "icu-nurse"]);
    let updated = s
        .update_role(&op(), o.id, er.id, "emergency-nurse", "ER")
        .await
        .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.description.as_str()),
        ("emergency-nurse", "ER")
    );

    let draft = RoleMappingDraft {
        source_connection_id: Some(src.id),
        selector: GroupSelector::DisplayName,
        match_mode: MatchMode::Glob,
        pattern: "Ward ICU*".into(),
        role_id: role.id,
    };
    let m = s.create_role_mapping(&op(), o.id, &draft).await.unwrap();
    assert_eq!(s.role_mapping(o.id, m.id).await.unwrap(), Some(m.clone()));
    let mut d2 = draft.clone();
    d2.selector = GroupSelector::Id;
    d2.match_mode = MatchMode::Exact;
    d2.pattern = "grp-er".into();
    d2.role_id = er.id;
    let m2 = s.create_role_mapping(&op(), o.id, &d2).await.unwrap();
    assert_eq!(
        s.list_role_mappings(o.id).await.unwrap(),
        vec![m.clone(), m2.clone()]
    );
    let mut d3 = d2.clone();
    d3.pattern = "grp-emergency".into();
    assert_eq!(
        s.replace_role_mapping(&op(), o.id, m2.id, &d3)
            .await
            .unwrap()
            .pattern,
        "grp-emergency"
    );
    // A mapping to a role of nobody's is refused.
    let mut bad = draft.clone();
    bad.role_id = RoleId::new();
    assert!(matches!(
        s.create_role_mapping(&op(), o.id, &bad).await,
        Err(StoreError::NotFound(_))
    ));
    // Deleting a role removes the mappings that grant it.
    assert!(s.delete_role(&op(), o.id, er.id).await.unwrap());
    assert_eq!(s.list_role_mappings(o.id).await.unwrap(), vec![m.clone()]);
    assert!(s.delete_role_mapping(&op(), o.id, m.id).await.unwrap());
    assert!(!s.delete_role_mapping(&op(), o.id, m.id).await.unwrap());
    assert!(!s.delete_role(&op(), o.id, er.id).await.unwrap());
}

async fn target_links_crud(h: &Harness) {
    let s = &*h.store;
    let o = org(s, "Riverside").await;
    let t = s
        .create_connection(&op(), o.id, &target("app"), None)
        .await
        .unwrap();
    let u = s.create_user(&op(), o.id, &nurse(1)).await.unwrap();
    let mut link = TargetLink {
        organization_id: o.id,
        connection_id: t.id,
        resource_type: ResourceType::User,
        local_id: u.id.0,
        remote_id: "remote-1".into(),
        remote_etag: Some("W/\"1\"".into()),
        content_hash: "abc".into(),
        synced_at: Timestamp::now(),
        last_sent: None,
    };
    s.upsert_target_link(&link).await.unwrap();
    assert_eq!(
        s.target_link(o.id, t.id, ResourceType::User, u.id.0)
            .await
            .unwrap(),
        Some(link.clone())
    );
    link.content_hash = "def".into();
    link.remote_etag = None;
    s.upsert_target_link(&link).await.unwrap();
    assert_eq!(
        s.list_target_links(o.id, t.id).await.unwrap(),
        vec![link.clone()]
    );
    assert!(
        s.target_link(o.id, t.id, ResourceType::Group, u.id.0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.delete_target_link(o.id, t.id, ResourceType::User, u.id.0)
            .await
            .unwrap()
    );
    assert!(
        !s.delete_target_link(o.id, t.id, ResourceType::User, u.id.0)
            .await
            .unwrap()
    );
    // A link to an unknown connection is refused.
    link.connection_id = ConnectionId::new();
    assert!(s.upsert_target_link(&link).await.is_err());
}

/// The batched reads the engine makes per claimed batch (users by id, links by local id):
/// exactly the rows asked for, of this organization, connection and resource type only. On
/// PostgreSQL they are written so no plan can scan a whole organization or connection; this
/// pins down that they still mean the same.
async fn batch_lookups_find_exactly_what_was_asked_for(h: &Harness) {
    let s = &*h.store;
    let o = org(s, "Riverside").await;
    let other = org(s, "Lakeside").await;
    let t = s
        .create_connection(&op(), o.id, &target("app"), None)
        .await
        .unwrap();
    let t2 = s
        .create_connection(&op(), o.id, &target("other app"), None)
        .await
        .unwrap();
    let mut users = Vec::new();
    for n in 0..6 {
        users.push(s.create_user(&op(), o.id, &nurse(n)).await.unwrap());
    }
    let stranger = s.create_user(&op(), other.id, &nurse(1)).await.unwrap();
    let link =
        |conn: ConnectionId, rt: ResourceType, local: uuid::Uuid, remote: String| TargetLink {
            organization_id: o.id,
            connection_id: conn,
            resource_type: rt,
            local_id: local,
            remote_id: remote,
            remote_etag: None,
            content_hash: "h".into(),
            synced_at: Timestamp::now(),
            last_sent: Some(sqlx::types::Json(serde_json::json!({"userName": "x"}))),
        };
    for (i, u) in users.iter().enumerate() {
        s.upsert_target_link(&link(t.id, ResourceType::User, u.id.0, format!("r{i}")))
            .await
            .unwrap();
        // The same local id at another connection, and as another resource type.
        s.upsert_target_link(&link(t2.id, ResourceType::User, u.id.0, format!("o{i}")))
            .await
            .unwrap();
        s.upsert_target_link(&link(t.id, ResourceType::Group, u.id.0, format!("g{i}")))
            .await
            .unwrap();
    }
    let asked: Vec<uuid::Uuid> = users[..4]
        .iter()
        .map(|u| u.id.0)
        .chain([uuid::Uuid::now_v7(), stranger.id.0])
        .collect();
    let mut found = s
        .target_links_for(o.id, t.id, ResourceType::User, &asked)
        .await
        .unwrap();
    found.sort_by(|a, b| a.remote_id.cmp(&b.remote_id));
    let remote: Vec<&str> = found.iter().map(|l| l.remote_id.as_str()).collect();
    assert_eq!(remote, ["r0", "r1", "r2", "r3"]);
    assert!(found.iter().all(|l| l.last_sent.is_some()));
    assert!(
        s.target_links_for(other.id, t.id, ResourceType::User, &asked)
            .await
            .unwrap()
            .is_empty(),
        "links read across organizations"
    );
    assert!(
        s.target_links_for(o.id, t.id, ResourceType::User, &[])
            .await
            .unwrap()
            .is_empty()
    );

    let ids: Vec<UserId> = users[2..]
        .iter()
        .map(|u| u.id)
        .chain([stranger.id])
        .collect();
    let mut got: Vec<UserId> = s
        .users_by_ids(o.id, &ids)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    got.sort();
    let mut want: Vec<UserId> = users[2..].iter().map(|u| u.id).collect();
    want.sort();
    assert_eq!(got, want, "another organization's user was returned");
    assert_eq!(
        s.users_by_ids(other.id, &[stranger.id, users[0].id])
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.id)
            .collect::<Vec<_>>(),
        vec![stranger.id]
    );
}

async fn operations_and_attempts(h: &Harness) {
    let s = &*h.store;
    let o = org(s, "Riverside").await;
    let t = s
        .create_connection(&op(), o.id, &target("app"), None)
        .await
        .unwrap();
    let u = s.create_user(&op(), o.id, &nurse(1)).await.unwrap();
    // Creating the user already queued its create for the target, in the same transaction.
    let auto = s
        .list_operations(
            o.id,
            &OperationFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(auto.len(), 1);
    assert_eq!(
        (auto[0].action, auto[0].connection_id, auto[0].resource_id),
        (OperationAction::Create, t.id, u.id.0)
    );
    let new = NewOperation {
        connection_id: t.id,
        resource_type: ResourceType::User,
        resource_id: u.id.0,
        action: OperationAction::Create,
        payload: serde_json::json!({}),
    };
    let op1 = s.enqueue_operation(o.id, &new).await.unwrap();
    assert_eq!((op1.state, op1.attempts), (OperationState::Pending, 0));
    let op2 = s
        .enqueue_operation(
            o.id,
            &NewOperation {
                action: OperationAction::Suspend,
                ..new.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(s.operation(o.id, op1.id).await.unwrap(), Some(op1.clone()));
    let pending = s
        .list_operations(
            o.id,
            &OperationFilter {
                state: Some(OperationState::Pending),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        pending.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![auto[0].id, op1.id, op2.id]
    );

    // The oldest operation of the resource is claimed first, and only it: the ones behind it
    // wait until it finishes.
    let owner = uuid::Uuid::now_v7();
    let claimed = s
        .claim_operations(t.id, owner, std::time::Duration::from_secs(30), 10, None)
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![auto[0].id]
    );
    assert_eq!(
        (claimed[0].state, claimed[0].attempts),
        (OperationState::InFlight, 1)
    );
    let later = Timestamp::now().add(time::Duration::seconds(30));
    let attempt = Attempt {
        operation_id: auto[0].id,
        attempt_no: 1,
        organization_id: o.id,
        connection_id: t.id,
        started_at: Timestamp::now(),
        duration_ms: 42,
        http_status: Some(429),
        error: Some("rate limited".into()),
        request_excerpt: Some("POST /Users".into()),
        response_excerpt: Some("{\"status\":\"429\"}".into()),
    };
    let retry = Outcome {
        operation: claimed[0].clone(),
        lease_owner: owner,
        attempt: Some(attempt.clone()),
        disposition: Disposition::RetryAt { not_before: later },
    };
    assert_eq!(s.complete_operations(&[retry]).await.unwrap(), 1);
    let after = s.operation(o.id, auto[0].id).await.unwrap().unwrap();
    assert_eq!(
        (
            after.state,
            after.attempts,
            after.not_before,
            after.last_status
        ),
        (OperationState::RetryWait, 1, later, Some(429))
    );
    assert_eq!(after.last_error.as_deref(), Some("rate limited"));
    // Still first in line for its resource: nothing else is claimable yet.
    assert!(
        s.claim_operations(t.id, owner, std::time::Duration::from_secs(30), 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    // An operator makes it due now; it is claimed and succeeds.
    assert_eq!(
        s.retry_operations(&op(), o.id, Some(auto[0].id), &OperationFilter::default())
            .await
            .unwrap(),
        1
    );
    let claimed = s
        .claim_operations(t.id, owner, std::time::Duration::from_secs(30), 10, None)
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![auto[0].id]
    );
    let ok = Outcome {
        operation: claimed[0].clone(),
        lease_owner: owner,
        attempt: Some(Attempt {
            attempt_no: 2,
            http_status: Some(201),
            error: None,
            ..attempt.clone()
        }),
        disposition: Disposition::Succeeded {
            link: Some(LinkUpdate::Set {
                remote_id: "r-1".into(),
                remote_etag: None,
                content_hash: "h".into(),
                last_sent: Some(serde_json::json!({"userName": "n"})),
            }),
        },
    };
    assert_eq!(s.complete_operations(&[ok]).await.unwrap(), 1);
    let done = s.operation(o.id, auto[0].id).await.unwrap().unwrap();
    assert_eq!((done.state, done.attempts), (OperationState::Succeeded, 2));
    let link = s
        .target_link(o.id, t.id, ResourceType::User, u.id.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (link.remote_id.as_str(), link.content_hash.as_str()),
        ("r-1", "h")
    );
    let attempts = s.operation_attempts(o.id, auto[0].id).await.unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|a| (a.attempt_no, a.http_status))
            .collect::<Vec<_>>(),
        vec![(1, Some(429)), (2, Some(201))]
    );
    // Next in line for the resource.
    let claimed = s
        .claim_operations(t.id, owner, std::time::Duration::from_secs(30), 10, None)
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![op1.id]
    );

    // Pruning takes only finished operations older than the cut-off, with their attempts.
    let future = Timestamp::now().add(time::Duration::seconds(1));
    assert_eq!(s.prune_history(future, 100).await.unwrap(), 1);
    assert_eq!(s.operation(o.id, auto[0].id).await.unwrap(), None);
    assert!(
        s.operation_attempts(o.id, auto[0].id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.operation(o.id, op2.id).await.unwrap().is_some());
}

async fn tokens_issue_authenticate_revoke(h: &Harness) {
    let s = &*h.store;
    let o = org(s, "Riverside").await;
    let inb = s
        .create_connection(&op(), o.id, &inbound("okta"), None)
        .await
        .unwrap();
    let tgt = s
        .create_connection(&op(), o.id, &target("app"), None)
        .await
        .unwrap();
    let scim = |name: &str, connection_id| NewApiToken {
        access: Access::Read,
        name: name.into(),
        scope: TokenScope::Scim,
        connection_id,
        expires_at: None,
    };
    assert!(matches!(
        s.create_api_token(&op(), o.id, &scim("x", None)).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.create_api_token(&op(), o.id, &scim("x", Some(tgt.id)))
            .await,
        Err(StoreError::Invalid(_))
    ));
    let issued = s
        .create_api_token(&op(), o.id, &scim("okta push", Some(inb.id)))
        .await
        .unwrap();
    let found = s
        .authenticate_token(issued.text.expose())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.organization_id, found.connection_id),
        (o.id, Some(inb.id))
    );
    assert_eq!(
        s.list_api_tokens(o.id).await.unwrap(),
        vec![issued.token.clone()]
    );

    // Near misses are refused.
    let text = issued.text.expose().to_string();
    let mut tampered = text.clone();
    tampered.pop();
    tampered.push(if text.ends_with('A') { 'B' } else { 'A' });
    assert!(s.authenticate_token(&tampered).await.unwrap().is_none());
    assert!(s.authenticate_token("").await.unwrap().is_none());
    assert!(s.authenticate_token("Bearer xyz").await.unwrap().is_none());

    // Expired and revoked tokens are refused.
    let expired = s
        .create_api_token(
            &op(),
            o.id,
            &NewApiToken {
                access: Access::Read,
                name: "old".into(),
                scope: TokenScope::Api,
                connection_id: None,
                expires_at: Some(Timestamp::now().add(time::Duration::seconds(-1))),
            },
        )
        .await
        .unwrap();
    assert!(
        s.authenticate_token(expired.text.expose())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.revoke_api_token(&op(), o.id, issued.token.id)
            .await
            .unwrap()
    );
    assert!(
        !s.revoke_api_token(&op(), o.id, issued.token.id)
            .await
            .unwrap()
    );
    assert!(s.authenticate_token(&text).await.unwrap().is_none());
    // The hash, not the token, is what is stored.
    let everything = h.raw.everything().await;
    let (_, secret_part) = scimdesk::crypto::token::parse(&text).unwrap();
    assert!(secret_part.len() >= 40);
    assert!(!contains(&everything, secret_part.as_bytes()));
}

async fn tenant_isolation(h: &Harness) {
    let s = &*h.store;
    let a = org(s, "A").await;
    let b = org(s, "B").await;
    let conn = s
        .create_connection(&op(), a.id, &target("app"), Some(&Secret::new("sekrit")))
        .await
        .unwrap();
    let inb = s
        .create_connection(&op(), a.id, &inbound("in"), None)
        .await
        .unwrap();
    let user = s.create_user(&op(), a.id, &nurse(1)).await.unwrap();
    let group = s
        .create_group(&op(), a.id, &GroupDraft::new("g"))
        .await
        .unwrap();
    s.add_member(&op(), a.id, group.id, user.id).await.unwrap();
    let role = s.create_role(&op(), a.id, "r", "").await.unwrap();
    let mapping = s
        .create_role_mapping(
            &op(),
            a.id,
            &RoleMappingDraft {
                source_connection_id: None,
                selector: GroupSelector::DisplayName,
                match_mode: MatchMode::Exact,
                pattern: "g".into(),
                role_id: role.id,
            },
        )
        .await
        .unwrap();
    let link = TargetLink {
        organization_id: a.id,
        connection_id: conn.id,
        resource_type: ResourceType::User,
        local_id: user.id.0,
        remote_id: "r1".into(),
        remote_etag: None,
        content_hash: "h".into(),
        synced_at: Timestamp::now(),
        last_sent: None,
    };
    s.upsert_target_link(&link).await.unwrap();
    let operation = s
        .enqueue_operation(
            a.id,
            &NewOperation {
                connection_id: conn.id,
                resource_type: ResourceType::User,
                resource_id: user.id.0,
                action: OperationAction::Create,
                payload: serde_json::json!({}),
            },
        )
        .await
        .unwrap();
    let token = s
        .create_api_token(
            &op(),
            a.id,
            &NewApiToken {
                access: Access::Read,
                name: "t".into(),
                scope: TokenScope::Scim,
                connection_id: Some(inb.id),
                expires_at: None,
            },
        )
        .await
        .unwrap();

    // Every read with B's id finds nothing of A's.
    assert!(s.connection(b.id, conn.id).await.unwrap().is_none());
    assert!(s.connection_by_name(b.id, "app").await.unwrap().is_none());
    assert!(s.list_connections(b.id).await.unwrap().is_empty());
    assert!(s.connection_secret(b.id, conn.id).await.is_err());
    assert!(s.user(b.id, user.id).await.unwrap().is_none());
    assert!(
        s.user_by_user_name(b.id, &user.user_name)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.list_users(b.id, ListRange::first(100))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.count_users(b.id).await.unwrap(), 0);
    assert!(s.group(b.id, group.id).await.unwrap().is_none());
    assert!(
        s.list_groups(b.id, ListRange::first(100))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.group_members(b.id, group.id).await.unwrap().is_empty());
    assert!(s.user_groups(b.id, user.id).await.unwrap().is_empty());
    assert!(s.role(b.id, role.id).await.unwrap().is_none());
    assert!(s.list_roles(b.id).await.unwrap().is_empty());
    assert!(s.role_mapping(b.id, mapping.id).await.unwrap().is_none());
    assert!(s.list_role_mappings(b.id).await.unwrap().is_empty());
    assert!(
        s.target_link(b.id, conn.id, ResourceType::User, user.id.0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.list_target_links(b.id, conn.id).await.unwrap().is_empty());
    assert!(s.operation(b.id, operation.id).await.unwrap().is_none());
    assert!(
        s.list_operations(
            b.id,
            &OperationFilter {
                limit: 100,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .is_empty()
    );
    assert!(
        s.operation_attempts(b.id, operation.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.list_api_tokens(b.id).await.unwrap().is_empty());
    assert!(
        s.list_audit(
            b.id,
            &AuditFilter {
                limit: 1000,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .iter()
        .all(|e| e.organization_id == b.id)
    );

    // Every change with B's id changes nothing of A's.
    let any = |r: Result<bool, StoreError>| matches!(r, Ok(false) | Err(StoreError::NotFound(_)));
    assert!(
        s.update_connection(
            &op(),
            b.id,
            conn.id,
            &ConnectionUpdate {
                state: Some(ConnectionState::Paused),
                ..Default::default()
            }
        )
        .await
        .is_err()
    );
    assert!(
        s.set_connection_secret(&op(), b.id, conn.id, Some(&Secret::new("x")))
            .await
            .is_err()
    );
    assert!(
        s.replace_user(&op(), b.id, user.id, &nurse(9), None)
            .await
            .is_err()
    );
    assert!(
        s.replace_group(&op(), b.id, group.id, &GroupDraft::new("h"), None)
            .await
            .is_err()
    );
    assert!(s.update_role(&op(), b.id, role.id, "x", "").await.is_err());
    assert!(
        s.replace_role_mapping(
            &op(),
            b.id,
            mapping.id,
            &RoleMappingDraft {
                source_connection_id: None,
                selector: GroupSelector::Id,
                match_mode: MatchMode::Exact,
                pattern: "p".into(),
                role_id: role.id
            }
        )
        .await
        .is_err()
    );
    assert!(
        s.retry_operations(&op(), b.id, Some(operation.id), &OperationFilter::default())
            .await
            .is_err()
    );
    assert!(
        s.skip_operation(&op(), b.id, operation.id, "not yours")
            .await
            .is_err()
    );
    assert_eq!(
        s.retry_operations(&op(), b.id, None, &OperationFilter::default())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.queue_counts(b.id, conn.id).await.unwrap(),
        QueueCounts::default()
    );
    assert!(any(s.remove_member(&op(), b.id, group.id, user.id).await));
    assert!(any(s
        .delete_target_link(b.id, conn.id, ResourceType::User, user.id.0)
        .await));
    assert!(any(s.revoke_api_token(&op(), b.id, token.token.id).await));
    assert!(any(s.delete_role_mapping(&op(), b.id, mapping.id).await));
    assert!(any(s.delete_role(&op(), b.id, role.id).await));
    assert!(any(s.delete_group(&op(), b.id, group.id).await));
    assert!(any(s.delete_user(&op(), b.id, user.id).await));
    assert!(any(s.delete_connection(&op(), b.id, conn.id).await));
    let mut foreign_link = link.clone();
    foreign_link.organization_id = b.id;
    foreign_link.remote_id = "hijacked".into();
    assert!(s.upsert_target_link(&foreign_link).await.is_err());

    // A's data is exactly as it was.
    assert_eq!(
        s.connection(a.id, conn.id).await.unwrap(),
        Some(conn.clone())
    );
    assert_eq!(
        s.connection_secret(a.id, conn.id)
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "sekrit"
    );
    assert_eq!(s.user(a.id, user.id).await.unwrap(), Some(user.clone()));
    assert_eq!(
        s.group_members(a.id, group.id).await.unwrap(),
        vec![user.id]
    );
    assert_eq!(s.role(a.id, role.id).await.unwrap(), Some(role.clone()));
    assert_eq!(
        s.role_mapping(a.id, mapping.id).await.unwrap(),
        Some(mapping.clone())
    );
    assert_eq!(
        s.target_link(a.id, conn.id, ResourceType::User, user.id.0)
            .await
            .unwrap(),
        Some(link)
    );
    assert_eq!(
        s.operation(a.id, operation.id).await.unwrap(),
        Some(operation)
    );
    assert!(
        s.authenticate_token(token.text.expose())
            .await
            .unwrap()
            .is_some()
    );
}

async fn audit_written_with_each_change_and_only_then(h: &Harness) {
    let s = &*h.store;
    let o = org(s, "Riverside").await;
    let all = AuditFilter {
        limit: 1000,
        ..Default::default()
    };
    let count = || async { s.list_audit(o.id, &all).await.unwrap().len() };
    assert_eq!(count().await, 1, "organization.create");
    let c = s
        .create_connection(&op(), o.id, &target("app"), Some(&Secret::new("x")))
        .await
        .unwrap();
    let u = s.create_user(&op(), o.id, &nurse(1)).await.unwrap();
    assert_eq!(count().await, 3);
    // Refused changes leave no audit event behind.
    assert!(s.create_user(&op(), o.id, &nurse(1)).await.is_err());
    assert!(
        s.create_connection(&op(), o.id, &target("APP"), None)
            .await
            .is_err()
    );
    assert!(
        s.replace_user(&op(), o.id, u.id, &nurse(1), Some(99))
            .await
            .is_err()
    );
    assert_eq!(count().await, 3);
    s.set_connection_secret(&Actor::operator("bob"), o.id, c.id, Some(&Secret::new("y")))
        .await
        .unwrap();
    s.record_audit(
        &Actor::operator("bob"),
        o.id,
        "operation.retry",
        "operation",
        "op-1",
        serde_json::json!({ "reason": "target fixed" }),
    )
    .await
    .unwrap();

    let events = s.list_audit(o.id, &all).await.unwrap();
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "operation.retry",
            "connection.secret_rotate",
            "user.create",
            "connection.create",
            "organization.create"
        ]
    );
    assert!(events.iter().all(|e| e.organization_id == o.id));
    assert_eq!(events[0].actor, "bob");
    assert_eq!(events[0].actor_kind, ActorKind::Operator);
    assert_eq!(events[0].details.0["reason"], "target fixed");
    assert_eq!(events[2].subject_id, u.id.to_string());

    let by_bob = s
        .list_audit(
            o.id,
            &AuditFilter {
                actor: Some("bob".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_bob.len(), 2);
    let conn_events = s
        .list_audit(
            o.id,
            &AuditFilter {
                action_prefix: Some("connection.".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(conn_events.len(), 2);
    let about_user = s
        .list_audit(
            o.id,
            &AuditFilter {
                subject_id: Some(u.id.to_string()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(about_user.len(), 1);
    let older = s
        .list_audit(
            o.id,
            &AuditFilter {
                before: Some(events[1].id),
                limit: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        older.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["user.create", "connection.create"]
    );
}

async fn audit_rows_cannot_be_updated_or_deleted(h: &Harness) {
    let s = &*h.store;
    let o = org(s, "Riverside").await;
    s.create_user(&op(), o.id, &nurse(1)).await.unwrap();
    let before = s
        .list_audit(
            o.id,
            &AuditFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let update = h
        .raw
        .exec("UPDATE audit_events SET actor = 'mallory'")
        .await
        .unwrap_err();
    assert!(update.contains("append-only"), "{update}");
    let delete = h.raw.exec("DELETE FROM audit_events").await.unwrap_err();
    assert!(delete.contains("append-only"), "{delete}");
    if h.backend == "postgres" {
        let truncate = h.raw.exec("TRUNCATE audit_events").await.unwrap_err();
        assert!(truncate.contains("append-only"), "{truncate}");
    }
    // Inserting is still allowed (that is how the log grows).
    h.raw.exec("SELECT 1").await.unwrap();
    assert_eq!(
        s.list_audit(
            o.id,
            &AuditFilter {
                limit: 100,
                ..Default::default()
            }
        )
        .await
        .unwrap(),
        before
    );
}

async fn migrations_are_idempotent(h: &Harness) {
    let s = &*h.store;
    let applied = s.applied_migrations().await.unwrap();
    assert!(!applied.is_empty());
    let o = org(s, "Riverside").await;
    // Opening again re-runs the migrator: nothing to do, nothing lost; and once more.
    for _ in 0..2 {
        let again = h.reopen(h.key()).await;
        assert_eq!(again.applied_migrations().await.unwrap(), applied);
        assert_eq!(again.organization(o.id).await.unwrap(), Some(o.clone()));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn secrets_never_stored_in_plaintext(h: &Harness) {
    let s = &*h.store;
    let o = org(s, "Riverside").await;
    let plaintext = "pl41ntext-client-secret-4b1d0c";
    let c = s
        .create_connection(&op(), o.id, &target("app"), Some(&Secret::new(plaintext)))
        .await
        .unwrap();
    s.set_connection_secret(
        &op(),
        o.id,
        c.id,
        Some(&Secret::new(format!("{plaintext}-v2"))),
    )
    .await
    .unwrap();
    let everything = h.raw.everything().await;
    assert!(everything.len() > 1000, "the dump has content");
    assert!(
        contains(&everything, b"app"),
        "the dump sees the connection row"
    );
    assert!(
        !contains(&everything, plaintext.as_bytes()),
        "plaintext secret found in the {} database",
        h.backend
    );
    assert_eq!(
        s.connection_secret(o.id, c.id)
            .await
            .unwrap()
            .unwrap()
            .expose(),
        format!("{plaintext}-v2")
    );
}

async fn sealed_secret_copied_elsewhere_fails_to_open(h: &Harness) {
    let s = &*h.store;
    let a = org(s, "A").await;
    let b = org(s, "B").await;
    let c1 = s
        .create_connection(&op(), a.id, &target("one"), Some(&Secret::new("for-one")))
        .await
        .unwrap();
    let c2 = s
        .create_connection(&op(), a.id, &target("two"), Some(&Secret::new("for-two")))
        .await
        .unwrap();
    let c3 = s
        .create_connection(
            &op(),
            b.id,
            &target("three"),
            Some(&Secret::new("for-three")),
        )
        .await
        .unwrap();
    let id_literal = |id: uuid::Uuid| match h.backend {
        "postgres" => format!("'{id}'"),
        _ => format!("X'{}'", id.simple()),
    };
    let copy = |from: ConnectionId, to: ConnectionId| {
        format!(
            "UPDATE connections SET secret_sealed = (SELECT secret_sealed FROM connections WHERE id = {}) WHERE id = {}",
            id_literal(from.0),
            id_literal(to.0)
        )
    };
    // Another connection of the same organization.
    assert_eq!(h.raw.exec(&copy(c1.id, c2.id)).await.unwrap(), 1);
    assert!(matches!(
        s.connection_secret(a.id, c2.id).await,
        Err(StoreError::Crypto(_))
    ));
    // Another organization.
    assert_eq!(h.raw.exec(&copy(c1.id, c3.id)).await.unwrap(), 1);
    assert!(matches!(
        s.connection_secret(b.id, c3.id).await,
        Err(StoreError::Crypto(_))
    ));
    // The original still opens.
    assert_eq!(
        s.connection_secret(a.id, c1.id)
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "for-one"
    );
}

async fn key_rotation_keeps_every_secret_readable(h: &Harness) {
    let s = &*h.store;
    let mut expected = Vec::new();
    for (i, name) in ["A", "B", "C"].iter().enumerate() {
        let o = org(s, name).await;
        let c = s
            .create_connection(
                &op(),
                o.id,
                &target("app"),
                Some(&Secret::new(format!("secret-{i}"))),
            )
            .await
            .unwrap();
        expected.push((o.id, c.id, format!("secret-{i}")));
    }
    let old = h.key();
    let new = MasterKey::generate().unwrap();
    let new_text = new.to_base64();
    assert_eq!(s.master_key_ids().await.unwrap(), vec![old.id()]);
    assert_eq!(s.rotate_master_key(&op(), new).await.unwrap(), 3);
    let new = MasterKey::from_base64(new_text.expose()).unwrap();
    assert_eq!(s.master_key_ids().await.unwrap(), vec![new.id()]);
    for (o, c, secret) in &expected {
        assert_eq!(
            s.connection_secret(*o, *c).await.unwrap().unwrap().expose(),
            secret
        );
        let audit = s
            .list_audit(
                *o,
                &AuditFilter {
                    action_prefix: Some("key.".into()),
                    limit: 5,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(audit.len(), 1);
    }
    // A fresh process with the new key reads everything; with the old key it is told why not.
    let reopened = h
        .reopen(MasterKey::from_base64(new_text.expose()).unwrap())
        .await;
    for (o, c, secret) in &expected {
        assert_eq!(
            reopened
                .connection_secret(*o, *c)
                .await
                .unwrap()
                .unwrap()
                .expose(),
            secret
        );
    }
    let with_old = h.reopen(old).await;
    let err = with_old
        .connection_secret(expected[0].0, expected[0].1)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err}");
    // Rotating again to the same key is a no-op for organizations already under it.
    assert_eq!(
        reopened
            .rotate_master_key(&op(), MasterKey::from_base64(new_text.expose()).unwrap())
            .await
            .unwrap(),
        0
    );
}

/// On PostgreSQL, users, groups and audit events have no foreign keys to their hot parents
/// (migrations/postgres/0002); the store checks the references itself, the same on both backends.
async fn references_are_checked_without_foreign_keys(h: &Harness) {
    let s = &*h.store;
    let a = org(s, "A").await;
    let b = org(s, "B").await;
    let nowhere = OrganizationId::new();
    assert!(matches!(
        s.create_user(&op(), nowhere, &nurse(1)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.create_group(&op(), nowhere, &GroupDraft::new("g")).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.record_audit(&op(), nowhere, "x.y", "x", "1", serde_json::json!({}))
            .await,
        Err(StoreError::NotFound(_))
    ));
    // A source connection must belong to the same organization.
    let b_conn = s
        .create_connection(&op(), b.id, &inbound("b-idp"), None)
        .await
        .unwrap();
    let mut d = nurse(2);
    d.source_connection_id = Some(b_conn.id);
    assert!(matches!(
        s.create_user(&op(), a.id, &d).await,
        Err(StoreError::NotFound(_))
    ));
    let mut g = GroupDraft::new("g");
    g.source_connection_id = Some(b_conn.id);
    assert!(matches!(
        s.create_group(&op(), a.id, &g).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.count_users(a.id).await.unwrap(), 0);
    assert!(
        s.list_audit(
            a.id,
            &AuditFilter {
                action_prefix: Some("user.".into()),
                limit: 10,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .is_empty()
    );
    // And with a connection of its own organization it works.
    d.source_connection_id = Some(
        s.create_connection(&op(), a.id, &inbound("a-idp"), None)
            .await
            .unwrap()
            .id,
    );
    assert!(s.create_user(&op(), a.id, &d).await.is_ok());
}

/// Every change that a downstream application must see queues an operation per SCIM target in
/// the change's own transaction; updates coalesce while they wait.
async fn changes_enqueue_work_for_every_target(h: &Harness) {
    let s = &*h.store;
    let o = org(s, "Riverside").await;
    let other = org(s, "Other").await;
    let t1 = s
        .create_connection(&op(), o.id, &target("app-1"), None)
        .await
        .unwrap();
    let t2 = s
        .create_connection(&op(), o.id, &target("app-2"), None)
        .await
        .unwrap();
    s.create_connection(&op(), o.id, &inbound("idp"), None)
        .await
        .unwrap();
    s.create_connection(&op(), other.id, &target("elsewhere"), None)
        .await
        .unwrap();
    let ops = |resource: uuid::Uuid| async move {
        s.list_operations(
            o.id,
            &OperationFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|op| op.resource_id == resource)
        .map(|op| (op.connection_id, op.action))
        .collect::<Vec<_>>()
    };
    let both = |a: OperationAction| {
        let mut v = vec![(t1.id, a), (t2.id, a)];
        v.sort_by_key(|(c, _)| *c);
        v
    };
    let u = s.create_user(&op(), o.id, &nurse(1)).await.unwrap();
    assert_eq!(ops(u.id.0).await, both(OperationAction::Create));
    // Two updates while the create waits: the create absorbs them (it renders the newest
    // state when it runs).
    s.replace_user(&op(), o.id, u.id, &nurse(1), None)
        .await
        .unwrap();
    s.replace_user(&op(), o.id, u.id, &nurse(1), None)
        .await
        .unwrap();
    let mut want = both(OperationAction::Create);
    assert_eq!(ops(u.id.0).await, want);
    // Suspension, then removal.
    let mut off = nurse(1);
    off.active = false;
    s.replace_user(&op(), o.id, u.id, &off, None).await.unwrap();
    s.delete_user(&op(), o.id, u.id).await.unwrap();
    want.extend(both(OperationAction::Suspend));
    want.extend(both(OperationAction::Delete));
    assert_eq!(ops(u.id.0).await, want);
    // An inactive newcomer is not provisioned.
    let mut idle = nurse(2);
    idle.active = false;
    let idle = s.create_user(&op(), o.id, &idle).await.unwrap();
    assert!(ops(idle.id.0).await.is_empty());
    // Groups and memberships; member changes never coalesce (each names its user).
    let g = s
        .create_group(&op(), o.id, &GroupDraft::new("ICU"))
        .await
        .unwrap();
    let a = s.create_user(&op(), o.id, &nurse(3)).await.unwrap();
    let b = s.create_user(&op(), o.id, &nurse(4)).await.unwrap();
    s.add_member(&op(), o.id, g.id, a.id).await.unwrap();
    s.add_member(&op(), o.id, g.id, b.id).await.unwrap();
    let mut want = both(OperationAction::Create);
    want.extend(both(OperationAction::AddMembers));
    want.extend(both(OperationAction::AddMembers));
    assert_eq!(ops(g.id.0).await, want);
    let all = s
        .list_operations(
            o.id,
            &OperationFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let member_ops: Vec<_> = all
        .iter()
        .filter(|op| op.action == OperationAction::AddMembers && op.connection_id == t1.id)
        .collect();
    assert_eq!(
        member_ops[0].payload.0,
        serde_json::json!({ "members": [a.id] })
    );
    assert_eq!(
        member_ops[1].payload.0,
        serde_json::json!({ "members": [b.id] })
    );
    // Nothing for the other organization's target, nothing for the inbound connection.
    assert!(
        all.iter()
            .all(|op| op.connection_id == t1.id || op.connection_id == t2.id)
    );
    assert!(
        s.list_operations(
            other.id,
            &OperationFilter {
                limit: 100,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .is_empty()
    );
    // Removing a target removes its queued work.
    assert!(s.delete_connection(&op(), o.id, t2.id).await.unwrap());
    let left = s
        .list_operations(
            o.id,
            &OperationFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!left.is_empty() && left.iter().all(|op| op.connection_id == t1.id));
}

/// Creates arriving together (as an identity provider's wave does) are written together on
/// PostgreSQL (group commit); each must still get the answer it would get alone: its user
/// exactly as stored, its create queued at the target only when active, its audit event, and a
/// conflict or not-found error that is its own, without failing the others.
async fn concurrent_creates_each_get_their_own_answer(h: &Harness) {
    let s = h.store.clone();
    let o = org(&*s, "Riverside").await;
    let t = s
        .create_connection(&op(), o.id, &target("app"), None)
        .await
        .unwrap();
    let idp = s
        .create_connection(&op(), o.id, &inbound("idp"), None)
        .await
        .unwrap();
    let mut drafts = Vec::new();
    for n in 0..50 {
        let mut d = nurse(n);
        d.active = n % 10 != 3;
        d.source_connection_id = (n % 2 == 0).then_some(idp.id);
        drafts.push(d);
    }
    // The same userNames again (in another case), and users of a source that does not exist.
    for n in 0..5 {
        drafts.push(UserDraft::new(format!("NURSE{n}@Riverside.Example")));
        let mut lost = nurse(100 + n);
        lost.source_connection_id = Some(ConnectionId::new());
        drafts.push(lost);
    }
    let tasks: Vec<_> = drafts
        .iter()
        .cloned()
        .map(|d| {
            let s = s.clone();
            tokio::spawn(async move { s.create_user(&op(), o.id, &d).await })
        })
        .collect();
    let mut created = Vec::new();
    let (mut conflicts, mut missing) = (0, 0);
    for (d, t) in drafts.iter().zip(tasks) {
        match t.await.unwrap() {
            Ok(u) => {
                assert_eq!(u.user_name, d.user_name);
                assert_eq!(s.user(o.id, u.id).await.unwrap().as_ref(), Some(&u));
                created.push(u);
            }
            Err(StoreError::Conflict(what)) => {
                assert!(what.contains(&format!("{:?}", d.user_name)), "{what}");
                conflicts += 1;
            }
            Err(StoreError::NotFound(_)) => {
                assert!(d.user_name.starts_with("nurse10"), "{}", d.user_name);
                missing += 1;
            }
            Err(e) => panic!("{}: {e}", d.user_name),
        }
    }
    // Of each pair with one userName, exactly one won; whichever it was, it is the one stored.
    assert_eq!((created.len(), conflicts, missing), (50, 5, 5));
    assert_eq!(s.count_users(o.id).await.unwrap(), 50);
    let mut names: Vec<_> = created.iter().map(|u| u.user_name.to_lowercase()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 50);

    let queued: HashSet<_> = s
        .list_operations(
            o.id,
            &OperationFilter {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .inspect(|op| {
            assert_eq!(
                (op.connection_id, op.action),
                (t.id, OperationAction::Create)
            );
        })
        .map(|op| op.resource_id)
        .collect();
    let active: HashSet<_> = created
        .iter()
        .filter(|u| u.active)
        .map(|u| u.id.0)
        .collect();
    assert_eq!(
        queued, active,
        "one create per active user, none for the others"
    );

    let audited: Vec<_> = s
        .list_audit(
            o.id,
            &AuditFilter {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "user.create")
        .collect();
    let mut subjects: Vec<_> = audited.iter().map(|e| e.subject_id.clone()).collect();
    subjects.sort();
    let mut ids: Vec<_> = created.iter().map(|u| u.id.to_string()).collect();
    ids.sort();
    assert_eq!(
        subjects, ids,
        "one audit event per user created, none for refusals"
    );
    assert!(audited.iter().all(|e| e.actor == "tester"));

    if let Raw::Pg(pool) = &h.raw {
        // Rows written by one statement share its transaction id: fewer ids than users means
        // the creates were written together, not one statement each.
        let statements: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT xmin::text) FROM users WHERE organization_id = $1",
        )
        .bind(o.id.0)
        .fetch_one(pool)
        .await
        .unwrap();
        assert!(statements < 50, "{statements} statements for 50 users");
    }
}
