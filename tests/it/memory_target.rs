//! The in-memory SCIM application (`scimdesk bench wave`'s fast target) answers like a SCIM
//! service provider, driven over real HTTP by scimdesk's own SCIM client.

use scimdesk::connectors::scim_client::{ScimClient, TargetAuth, TargetError};
use scimdesk::crypto::Secret;
use scimdesk::domain::ResourceType;
use scimdesk::stand_ins::target_double::MemoryTarget;
use serde_json::{Value, json};
use std::time::Duration;

fn client(t: &MemoryTarget, token: &str) -> ScimClient {
    ScimClient::new(
        &t.base_url,
        TargetAuth::Bearer(Secret::new(token.to_string())),
        Duration::from_secs(5),
    )
    .unwrap()
}

fn user(name: &str, external_id: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "externalId": external_id,
        "active": true
    })
}

fn http_status(e: &TargetError) -> Option<(u16, Option<String>)> {
    match e {
        TargetError::Http {
            status, scim_type, ..
        } => Some((*status, scim_type.clone())),
        _ => None,
    }
}

#[tokio::test]
async fn users_are_created_found_changed_and_deleted_like_at_a_real_provider() {
    let t = MemoryTarget::start().await.unwrap();
    let c = client(&t, &t.token);
    assert!(c.supports_patch().await.unwrap());

    let ann = c
        .create(ResourceType::User, &user("ann@x.example", "e-ann"))
        .await
        .unwrap();
    assert_eq!(ann.status, 201);
    let ann_id = ann.resource_id().unwrap();
    assert_eq!(ann.version().as_deref(), Some("W/\"1\""));
    c.create(ResourceType::User, &user("bob@x.example", "e-bob"))
        .await
        .unwrap();

    // userName is unique regardless of case.
    let dup = c
        .create(ResourceType::User, &user("ANN@x.example", "e-other"))
        .await
        .unwrap_err();
    assert_eq!(http_status(&dup), Some((409, Some("uniqueness".into()))));

    // Equality and `or` filters, by externalId and by userName (case-insensitively).
    let (found, total) = c
        .search(
            ResourceType::User,
            r#"externalId eq "e-bob" or userName eq "ANN@X.EXAMPLE" or externalId eq "nobody""#,
            10,
        )
        .await
        .unwrap();
    assert_eq!(total, 2);
    let mut names: Vec<&str> = found
        .iter()
        .filter_map(|u| u["userName"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["ann@x.example", "bob@x.example"]);
    // A filter that needs a scan works too; paging is honoured.
    let (page, total) = c
        .search(ResourceType::User, r#"userName sw "a""#, 10)
        .await
        .unwrap();
    assert_eq!((page.len(), total), (1, 1));
    let (page, total) = c.list_page(ResourceType::User, 2, 1).await.unwrap();
    assert_eq!((page.len(), total), (1, 2));
    let bad = c
        .search(ResourceType::User, "userName eq", 10)
        .await
        .unwrap_err();
    assert_eq!(http_status(&bad).map(|s| s.0), Some(400));

    // PATCH and PUT bump the version; renaming onto a taken name is refused.
    let patched = c
        .patch(
            ResourceType::User,
            &ann_id,
            vec![json!({"op": "replace", "path": "active", "value": false})],
        )
        .await
        .unwrap();
    assert_eq!(patched.body.as_ref().unwrap()["active"], json!(false));
    assert_eq!(patched.version().as_deref(), Some("W/\"2\""));
    let taken = c
        .replace(
            ResourceType::User,
            &ann_id,
            &user("bob@x.example", "e-ann"),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(http_status(&taken).map(|s| s.0), Some(409));
    let renamed = c
        .replace(
            ResourceType::User,
            &ann_id,
            &user("anne@x.example", "e-ann"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        renamed.body.as_ref().unwrap()["userName"],
        json!("anne@x.example")
    );
    assert!(
        c.find_by(ResourceType::User, "userName", "ann@x.example")
            .await
            .unwrap()
            .is_none()
    );

    // A group holds members; deleting a user takes it out of its groups.
    let g = c
        .create(
            ResourceType::Group,
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Ward 1",
                "members": [{"value": ann_id}]
            }),
        )
        .await
        .unwrap();
    let gid = g.resource_id().unwrap();
    assert!(c.delete(ResourceType::User, &ann_id).await.unwrap());
    assert!(c.get(ResourceType::User, &ann_id).await.unwrap().is_none());
    let group = c.get(ResourceType::Group, &gid).await.unwrap().unwrap();
    let members = group.body.as_ref().unwrap().get("members").cloned();
    assert!(members.is_none_or(|m| m.as_array().is_none_or(|a| a.is_empty())));
    assert!(!c.delete(ResourceType::User, &ann_id).await.unwrap());
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_bad_bodies_get_scim_errors() {
    let t = MemoryTarget::start().await.unwrap();
    let wrong = client(&t, "not-the-token");
    let e = wrong
        .list_page(ResourceType::User, 1, 10)
        .await
        .unwrap_err();
    assert_eq!(http_status(&e).map(|s| s.0), Some(401));
    let c = client(&t, &t.token);
    let e = c
        .create(
            ResourceType::User,
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}),
        )
        .await
        .unwrap_err();
    assert_eq!(http_status(&e).map(|s| s.0), Some(400));
    let e = c
        .patch(
            ResourceType::User,
            "000000000042",
            vec![json!({"op": "remove", "path": "title"})],
        )
        .await
        .unwrap_err();
    assert_eq!(http_status(&e).map(|s| s.0), Some(404));
}
