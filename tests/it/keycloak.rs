//! A Keycloak realm as a source, against the Keycloak double (a real HTTP server answering the
//! admin REST API from the fixtures), on both stores: the group tree walked through
//! `children` (Keycloak 23+ lists no `subGroups`), members flattened so that a mapping by path
//! on a parent covers the members of its children, OIDC client credentials discovered from the
//! realm's issuer, a token that stops working mid-sync refreshed once, and a user disabled in
//! Keycloak suspended here.

use crate::support::Harness;
use crate::support::keycloak::{Keycloak, SECRET};
use scimdesk::domain::*;
use scimdesk::engine::sync::{SyncOptions, SyncReport, sync_source};
use scimdesk::policy::roles::RoleResolver;
use scimdesk::store::{ListRange, Store};
use serde_json::json;

on_both_backends!(
    the_tree_is_walked_flattened_and_mapped_by_path,
    a_token_refused_mid_sync_is_renewed_once,
    a_user_disabled_in_keycloak_is_suspended,
    a_wrong_secret_is_said_plainly,
    admin_events_drive_an_incremental_sync,
    without_admin_events_syncs_run_in_full_and_say_so,
);

fn op() -> Actor {
    Actor::operator("tester")
}

async fn realm_source(s: &dyn Store, kc: &Keycloak, secret: &str) -> (OrganizationId, Connection) {
    let org = s.create_organization(&op(), "Riverside").await.unwrap();
    let c = s
        .create_connection(
            &op(),
            org.id,
            &NewConnection {
                name: "Keycloak".into(),
                kind: ConnectionKind::Keycloak,
                base_url: Some(kc.base.clone()),
                auth_method: AuthMethod::OAuth2ClientCredentials,
                // Small pages, so that every listing is really paged.
                settings: json!({"realm": "riverside", "client_id": "scimdesk-sync", "page_size": 2}),
            },
            Some(&scimdesk::crypto::Secret::new(secret)),
        )
        .await
        .unwrap();
    (org.id, c)
}

async fn sync(s: &dyn Store, org: OrganizationId, c: &Connection) -> SyncReport {
    sync_source(
        s,
        &op(),
        org,
        c.id,
        SyncOptions {
            full: true,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn the_tree_is_walked_flattened_and_mapped_by_path(h: &Harness) {
    let s = &*h.store;
    let kc = Keycloak::start().await;
    let (org, c) = realm_source(s, &kc, SECRET).await;
    let nurse = crate::support::map_path_to_role(s, org, "/Clinical/Nursing", "nurse").await;

    let run = sync(s, org, &c).await;
    assert_eq!(run.run.error, None);
    assert_eq!((run.counts.source_users, run.counts.created), (6, 6));
    assert_eq!(run.counts.source_groups, 7);
    let users = s.list_users(org, ListRange::first(100)).await.unwrap();
    let smarquez = users.iter().find(|u| u.user_name == "smarquez").unwrap();
    assert!(!smarquez.active, "disabled in Keycloak");
    let ehughes = users.iter().find(|u| u.user_name == "ehughes").unwrap();
    assert_eq!(ehughes.given_name.as_deref(), Some("Eleanor"));
    assert_eq!(
        ehughes.emails.0[0].value,
        "eleanor.hughes@riverside-hospital.example"
    );
    assert_eq!(
        ehughes.external_id.as_deref(),
        Some(kc.user_id("ehughes").as_str())
    );

    let both = vec!["ehughes".to_string(), "lbrennan".to_string()];
    let t = crate::support::group_tree(s, org).await;
    assert_eq!(t["/Clinical/Nursing/ICU Nurses"], both);
    assert_eq!(
        t["/Clinical/Nursing"], both,
        "a child's members are the parent's too"
    );
    assert_eq!(t["/Clinical"], both);
    assert!(t["/Radiology"].is_empty() && t["/Clinical/Pharmacy"].is_empty());
    assert_eq!(t.len(), 7);

    // The mapping on the parent's path gives the child's members the role.
    let mappings = s.list_role_mappings(org).await.unwrap();
    let groups = s.user_groups(org, ehughes.id).await.unwrap();
    assert!(
        RoleResolver::new(&mappings)
            .user_roles(groups.iter())
            .contains(&nurse.id)
    );
    let aokafor = users.iter().find(|u| u.user_name == "aokafor").unwrap();
    // The profile attributes SCIM has a place for.
    let ent = &aokafor.attributes.0["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
    assert_eq!(
        (ent["department"].as_str(), ent["employeeNumber"].as_str()),
        (Some("Cardiology"), Some("RH-004417"))
    );
    assert_eq!(aokafor.attributes.0["title"], "Attending Physician");
    let groups = s.user_groups(org, aokafor.id).await.unwrap();
    assert!(
        RoleResolver::new(&mappings)
            .user_roles(groups.iter())
            .is_empty()
    );

    // Listings as Keycloak wants them: paged, full users, children asked where there are some.
    let asked = kc.realm.lock().unwrap().requests.clone();
    assert!(
        asked.contains(&"users?briefRepresentation=false&first=0&max=2".to_string()),
        "{asked:?}"
    );
    assert!(asked.contains(&"users?briefRepresentation=false&first=4&max=2".to_string()));
    assert!(asked.iter().any(|r| {
        r.starts_with("groups/3c3805b6-d97c-4d85-a47a-a790c4f2f3b1/children")
            && r.contains("first=2")
    }));
    assert!(
        asked
            .iter()
            .any(|r| r.starts_with("groups/6f07b519-f21e-4556-a3ac-f916b6c1f67b/children"))
    );
    assert!(
        !asked
            .iter()
            .any(|r| r.starts_with("groups/b3ce39ba-f6f8-43ab-9044-ba84a7a41b09/children")),
        "Administration has no children"
    );

    // A second sync changes nothing.
    let again = sync(s, org, &c).await;
    assert!(again.counts.changed_nothing(), "{:?}", again.counts);
}

async fn a_token_refused_mid_sync_is_renewed_once(h: &Harness) {
    let s = &*h.store;
    let kc = Keycloak::start().await;
    kc.realm.lock().unwrap().token_uses = Some(3);
    let (org, c) = realm_source(s, &kc, SECRET).await;
    let run = sync(s, org, &c).await;
    assert_eq!(run.run.error, None);
    assert_eq!(run.counts.created, 6);
    // Each token serves three requests here; the reader's requests need several, and each
    // refusal costs exactly one new token.
    let r = kc.realm.lock().unwrap();
    let requests = r.requests.len() as u32;
    assert_eq!(r.issued, requests.div_ceil(3), "one renewal per refusal");
}

async fn a_user_disabled_in_keycloak_is_suspended(h: &Harness) {
    let s = &*h.store;
    let kc = Keycloak::start().await;
    let (org, c) = realm_source(s, &kc, SECRET).await;
    sync(s, org, &c).await;
    kc.enable("ehughes", false);
    kc.enable("smarquez", true);
    let run = sync(s, org, &c).await;
    assert_eq!(
        (run.counts.suspended, run.counts.reactivated),
        (1, 1),
        "{:?}",
        run.counts
    );
    let users = s.list_users(org, ListRange::first(100)).await.unwrap();
    assert!(
        !users
            .iter()
            .find(|u| u.user_name == "ehughes")
            .unwrap()
            .active
    );
    assert!(
        users
            .iter()
            .find(|u| u.user_name == "smarquez")
            .unwrap()
            .active
    );
}

async fn a_wrong_secret_is_said_plainly(h: &Harness) {
    let s = &*h.store;
    let kc = Keycloak::start().await;
    let (org, c) = realm_source(s, &kc, "not-the-secret").await;
    let run = sync(s, org, &c).await;
    let error = run.run.error.unwrap_or_default();
    assert!(error.contains("invalid_client"), "{error}");
    assert!(!error.contains("not-the-secret"));
    assert!(
        s.list_users(org, ListRange::first(10))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn incremental(s: &dyn Store, org: OrganizationId, c: &Connection) -> SyncReport {
    sync_source(
        s,
        &op(),
        org,
        c.id,
        SyncOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn admin_events_drive_an_incremental_sync(h: &Harness) {
    let s = &*h.store;
    let kc = Keycloak::start().await;
    let (org, c) = realm_source(s, &kc, SECRET).await;
    assert_eq!(sync(s, org, &c).await.run.error, None);

    kc.enable("ehughes", false);
    kc.leave("lbrennan", "/Clinical/Nursing/ICU Nurses");
    let asked_before = kc.realm.lock().unwrap().requests.len();
    let run = incremental(s, org, &c).await;
    assert_eq!(run.run.error, None);
    assert_eq!(run.run.note, None);
    assert!(!run.run.full_sync, "read from the admin events");
    assert_eq!(
        (run.counts.suspended, run.counts.memberships_removed),
        (1, 3),
        "lbrennan leaves ICU Nurses and so Nursing and Clinical: {:?}",
        run.counts
    );
    let users = s.list_users(org, ListRange::first(100)).await.unwrap();
    assert!(
        !users
            .iter()
            .find(|u| u.user_name == "ehughes")
            .unwrap()
            .active
    );
    let t = crate::support::group_tree(s, org).await;
    let only = vec!["ehughes".to_string()];
    assert_eq!(t["/Clinical/Nursing/ICU Nurses"], only);
    assert_eq!(t["/Clinical/Nursing"], only);
    assert_eq!(t["/Clinical"], only);
    assert_eq!(t.len(), 7, "the other trees are left as they were");

    // What was asked: the events (repeated resourceTypes, from the cursor, oldest first),
    // the user they name, the tree the membership lives in; never the whole realm.
    let asked: Vec<String> = kc.realm.lock().unwrap().requests[asked_before..].to_vec();
    let events = asked
        .iter()
        .find(|r| r.starts_with("admin-events?"))
        .unwrap();
    for part in [
        "resourceTypes=USER",
        "resourceTypes=GROUP",
        "resourceTypes=GROUP_MEMBERSHIP",
        "direction=asc",
        "dateFrom=",
        "first=0",
    ] {
        assert!(events.contains(part), "{events}");
    }
    assert!(
        asked.contains(&format!("users/{}", kc.user_id("ehughes"))),
        "{asked:?}"
    );
    assert!(
        asked.contains(&"group-by-path/Clinical".to_string()),
        "{asked:?}"
    );
    assert!(
        !asked
            .iter()
            .any(|r| r.starts_with("users?") || r.starts_with("groups?")),
        "no full listing: {asked:?}"
    );

    // Polling again finds nothing new to change, and records nothing.
    let runs = s.sync_runs(org, c.id, 10).await.unwrap().len();
    let again = incremental(s, org, &c).await;
    assert!(again.counts.changed_nothing(), "{:?}", again.counts);
    assert_eq!(s.sync_runs(org, c.id, 10).await.unwrap().len(), runs);

    // A user deleted in Keycloak is suspended here.
    kc.delete_user("aokafor");
    let gone = incremental(s, org, &c).await;
    assert_eq!(gone.counts.suspended, 1, "{:?}", gone.counts);
}

async fn without_admin_events_syncs_run_in_full_and_say_so(h: &Harness) {
    let s = &*h.store;
    let kc = Keycloak::start().await;
    kc.realm.lock().unwrap().admin_events = false;
    let (org, c) = realm_source(s, &kc, SECRET).await;
    sync(s, org, &c).await;
    kc.enable("ehughes", false);
    let run = incremental(s, org, &c).await;
    assert!(run.run.full_sync, "fell back to a full read");
    let note = run.run.note.clone().unwrap_or_default();
    assert!(note.contains("admin events are off"), "{note}");
    assert_eq!(
        run.counts.suspended, 1,
        "the full read still finds the change"
    );
    let health = scimdesk::engine::health::source_health(s, &c)
        .await
        .unwrap();
    assert!(health.full_only.is_some());
    assert!(health.reason.contains("full only"), "{}", health.reason);
}
