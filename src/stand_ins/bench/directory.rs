//! The generated directory: users and groups as the store holds them (for bulk loads) and as
//! SCIM documents, pushed to scimdesk's inbound server like an identity provider would.

use super::*;

/// User `i` of a generated benchmark directory (`u000042@bench.example`), active.
pub fn directory_user(
    org: OrganizationId,
    i: usize,
    attributes: serde_json::Value,
    now: Timestamp,
) -> User {
    User {
        id: UserId::new(),
        organization_id: org,
        user_name: format!("u{i:06}@bench.example"),
        external_id: Some(format!("hr-{i}")),
        display_name: Some(format!("User {i}")),
        given_name: Some("User".into()),
        family_name: Some(format!("{i}")),
        emails: sqlx::types::Json(vec![Email {
            value: format!("u{i:06}@bench.example"),
            kind: Some("work".into()),
            primary: Some(true),
            display: None,
        }]),
        active: true,
        lifecycle_state: LifecycleState::Active,
        source_connection_id: None,
        attributes: sqlx::types::Json(attributes),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

/// A generated benchmark group.
pub fn directory_group(org: OrganizationId, name: String, now: Timestamp) -> Group {
    Group {
        id: GroupId::new(),
        organization_id: org,
        display_name: name,
        external_id: None,
        source_connection_id: None,
        attributes: sqlx::types::Json(json!({})),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

pub(super) fn user_doc(i: usize, prefix: &str) -> serde_json::Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("{prefix}{i:06}@hospital.example"),
        "name": {"givenName": "Nurse", "familyName": format!("N{i}")},
        "emails": [{"value": format!("{prefix}{i:06}@hospital.example"), "type": "work", "primary": true}],
        "active": true
    })
}

pub(super) fn group_docs(ids: &[String], groups: usize) -> Vec<serde_json::Value> {
    let groups = groups.max(1);
    (0..groups)
        .map(|g| {
            let members: Vec<serde_json::Value> = ids
                .iter()
                .enumerate()
                .filter(|(i, _)| i % groups == g)
                .map(|(_, id)| json!({"value": id}))
                .collect();
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": format!("Ward {g}"), "members": members})
        })
        .collect()
}

/// Pushes `docs` to `url` with `concurrency` requests at once; returns the created ids in order.
pub(super) async fn push(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    docs: Vec<serde_json::Value>,
    concurrency: usize,
) -> BenchResult<Vec<String>> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(docs.len());
    for doc in docs {
        let permit = sem
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| StandInError::Stalled(e.to_string()))?;
        let http = http.clone();
        let url = url.to_string();
        let token = token.to_string();
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/scim+json")
                .body(doc.to_string())
                .send()
                .await?;
            drop(permit);
            if r.status().as_u16() != 201 {
                return Err(StandInError::Refused(format!(
                    "{url} answered {}",
                    r.status()
                )));
            }
            let body: serde_json::Value = r.json().await?;
            Ok::<String, StandInError>(body["id"].as_str().unwrap_or_default().to_string())
        }));
    }
    let mut ids = Vec::with_capacity(tasks.len());
    for t in tasks {
        ids.push(t.await??);
    }
    Ok(ids)
}

pub(super) async fn serve_inbound(
    store: Arc<dyn Store>,
    name: &str,
) -> StoreResult<(
    OrganizationId,
    String,
    String,
    tokio::sync::oneshot::Sender<()>,
)> {
    let (org, token) = crate::stand_ins::target_double::inbound_organization(
        store.as_ref(),
        &Actor::system("bench"),
        name,
        "idp",
    )
    .await?;
    let (addr, tx) =
        crate::api::serve::spawn_local(crate::api::serve::app(store, Default::default(), None))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    Ok((org, format!("http://{addr}/scim/v2"), token, tx))
}
