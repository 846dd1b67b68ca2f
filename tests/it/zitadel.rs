//! A Zitadel organization as a source, against the Zitadel double (a real HTTP server answering
//! the v2 user search, the Connect authorization search and the SCIM endpoint from the
//! fixtures), on both stores: users and their states, each active authorization's role keys as
//! groups that a mapping by path can name, the token asked with the API audience, paging by
//! offset, users read from SCIM instead when configured, and a re-sync that changes nothing.

use crate::support::Harness;
use crate::support::zitadel::{ORG, SECRET, Zitadel};
use scimdesk::domain::*;
use scimdesk::engine::sync::{SyncOptions, SyncReport, sync_source};
use scimdesk::policy::roles::RoleResolver;
use scimdesk::store::{ListRange, Store};
use serde_json::json;

on_both_backends!(
    users_and_role_keys_are_read_and_mapped,
    users_can_come_from_the_scim_endpoint,
    a_zitadel_source_needs_its_organization,
);

fn op() -> Actor {
    Actor::operator("tester")
}

async fn source(
    s: &dyn Store,
    z: &Zitadel,
    settings: serde_json::Value,
) -> (OrganizationId, Connection) {
    let org = s.create_organization(&op(), "Riverside").await.unwrap();
    let c = s
        .create_connection(
            &op(),
            org.id,
            &NewConnection {
                name: "Zitadel".into(),
                kind: ConnectionKind::Zitadel,
                base_url: Some(z.base.clone()),
                auth_method: AuthMethod::OAuth2ClientCredentials,
                settings,
            },
            Some(&scimdesk::crypto::Secret::new(SECRET)),
        )
        .await
        .unwrap();
    (org.id, c)
}

async fn sync(s: &dyn Store, org: OrganizationId, c: &Connection) -> SyncReport {
    sync_source(s, &op(), org, c.id, SyncOptions::default())
        .await
        .unwrap()
}

const AMARA: &str = "amara.okafor@riverside-hospital.example";
const LIAM: &str = "liam.brennan@riverside-hospital.example";

async fn users_and_role_keys_are_read_and_mapped(h: &Harness) {
    let s = &*h.store;
    let z = Zitadel::start().await;
    let (org, c) = source(
        s,
        &z,
        json!({"organization_id": ORG, "client_id": "scimdesk", "page_size": 2}),
    )
    .await;
    let writer =
        crate::support::map_path_to_role(s, org, "/EHR Portal/chart-write", "chart-writer").await;

    let run = sync(s, org, &c).await;
    assert_eq!(run.run.error, None);
    assert!(run.run.full_sync, "Zitadel has no change feed: read whole");
    assert_eq!((run.counts.source_users, run.counts.created), (4, 4));
    let users = s.list_users(org, ListRange::first(100)).await.unwrap();
    let by = |name: &str| users.iter().find(|u| u.user_name == name).unwrap();
    assert!(
        !by("sofia.marquez@riverside-hospital.example").active,
        "USER_STATE_INACTIVE"
    );
    assert!(
        by("tomasz.wojcik@riverside-hospital.example").active,
        "USER_STATE_INITIAL: created, not yet signed in"
    );
    assert_eq!(by(AMARA).given_name.as_deref(), Some("Amara"));
    assert_eq!(by(AMARA).display_name.as_deref(), Some("Amara Okafor"));
    assert_eq!(by(AMARA).external_id.as_deref(), Some("311521604982734851"));
    assert_eq!(by(AMARA).emails.0[0].value, AMARA);

    // Role keys of active authorizations only (Sofia's is inactive: no medication-verify).
    let t = crate::support::group_tree(s, org).await;
    let both = vec![AMARA.to_string(), LIAM.to_string()];
    assert_eq!(t["/EHR Portal/chart-read"], both);
    assert_eq!(t["/EHR Portal/chart-write"], both);
    assert_eq!(t["/EHR Portal/order-entry"], vec![AMARA.to_string()]);
    assert_eq!(t.len(), 3, "{t:?}");
    let mappings = s.list_role_mappings(org).await.unwrap();
    let groups = s.user_groups(org, by(LIAM).id).await.unwrap();
    assert!(
        RoleResolver::new(&mappings)
            .user_roles(groups.iter())
            .contains(&writer.id)
    );

    // The token carried the API audience; both searches were paged by offset.
    let (scopes, requests) = {
        let i = z.instance.lock().unwrap();
        (i.scopes.clone(), i.requests.clone())
    };
    assert!(
        scopes[0].contains("urn:zitadel:iam:org:project:id:zitadel:aud"),
        "{scopes:?}"
    );
    for asked in [
        "POST /v2/users offset=0",
        "POST /v2/users offset=2",
        "POST ListAuthorizations offset=2",
    ] {
        assert!(requests.iter().any(|r| r == asked), "{requests:?}");
    }

    // Nothing changed: nothing written. Then a role revoked and a user deactivated.
    let again = sync(s, org, &c).await;
    assert!(again.counts.changed_nothing(), "{:?}", again.counts);
    z.revoke("311521605083398147", "chart-write");
    z.set_state(AMARA, "USER_STATE_INACTIVE");
    let changed = sync(s, org, &c).await;
    assert_eq!(
        (changed.counts.suspended, changed.counts.memberships_removed),
        (1, 1),
        "{:?}",
        changed.counts
    );
    let t = crate::support::group_tree(s, org).await;
    assert_eq!(t["/EHR Portal/chart-write"], vec![AMARA.to_string()]);
}

async fn users_can_come_from_the_scim_endpoint(h: &Harness) {
    let s = &*h.store;
    let z = Zitadel::start().await;
    let (org, c) = source(
        s,
        &z,
        json!({"organization_id": ORG, "client_id": "scimdesk", "users_from": "scim"}),
    )
    .await;
    let run = sync(s, org, &c).await;
    assert_eq!(run.run.error, None);
    assert_eq!(run.counts.created, 3, "the SCIM fixture's three users");
    let users = s.list_users(org, ListRange::first(100)).await.unwrap();
    let sofia = users
        .iter()
        .find(|u| u.user_name == "sofia.marquez@riverside-hospital.example")
        .unwrap();
    assert!(!sofia.active);
    assert!(
        z.instance
            .lock()
            .unwrap()
            .requests
            .iter()
            .any(|r| r.starts_with(&format!("GET /scim/v2/{ORG}/Users")))
    );
    // Liam's role keys still come from the authorizations (Amara is not among the SCIM
    // users, so her grants have no member here).
    let t = crate::support::group_tree(s, org).await;
    assert_eq!(t["/EHR Portal/chart-read"], vec![LIAM.to_string()]);
}

async fn a_zitadel_source_needs_its_organization(h: &Harness) {
    let s = &*h.store;
    let z = Zitadel::start().await;
    let (org, c) = source(s, &z, json!({"client_id": "scimdesk"})).await;
    let run = sync(s, org, &c).await;
    let error = run.run.error.unwrap_or_default();
    assert!(error.contains("organization_id"), "{error}");
}
