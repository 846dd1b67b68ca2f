//! SCIM filters run as SQL give exactly what the in-memory evaluator gives, on generated data,
//! on real SQLite and real PostgreSQL.

use crate::support;

use scimdesk::domain::{Actor, GroupDraft, UserId};
use scimdesk::scim::convert::{doc_to_user_draft, user_to_doc};
use scimdesk::store::{ScimQuery, StoreError};
use scimdesk_scim::filter::{AttrPath, matches, parse, validate};
use scimdesk_scim::resource::canonicalize;
use scimdesk_scim::schema::USER;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use support::Harness;

on_both_backends!(
    sql_matches_the_evaluator,
    sort_and_page,
    group_member_filters,
    bad_sort_and_filters_are_refused
);

/// A small deterministic generator (no external randomness: the tests must be repeatable).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn generated_user(rng: &mut Lcg, i: usize) -> Value {
    let first = rng.pick(&["Ada", "ada", "Bob", "CARL", "Dana", "Eve", "Zoë"]);
    let last = rng.pick(&[
        "Okafor",
        "Hughes",
        "brennan",
        "Natarajan",
        "Marquez",
        "Wojcik",
    ]);
    let domain = rng.pick(&["riverside.example", "Agency.Example", "contractors.example"]);
    let mut u = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("{first}.{last}{i}@{domain}"),
        "name": { "givenName": first, "familyName": last },
        "active": rng.chance(70),
    });
    if rng.chance(60) {
        u["displayName"] = json!(format!("{first} {last}"));
    }
    if rng.chance(50) {
        u["externalId"] = json!(format!("ext-{}", rng.next() % 20));
    }
    if rng.chance(40) {
        u["title"] = json!(rng.pick(&["Nurse", "Charge Nurse", "Surgeon", "nurse practitioner"]));
    }
    let mut emails = Vec::new();
    if rng.chance(80) {
        emails.push(json!({ "value": format!("{first}.{last}{i}@{domain}").to_lowercase(), "type": "work", "primary": rng.chance(50) }));
    }
    if rng.chance(40) {
        emails.push(json!({ "value": format!("{first}{i}@home.example"), "type": rng.pick(&["home", "other"]) }));
    }
    if !emails.is_empty() {
        u["emails"] = Value::Array(emails);
    }
    if rng.chance(50) {
        u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] = json!({
            "department": rng.pick(&["ICU", "Emergency", "icu", "Radiology"]),
            "employeeNumber": format!("{}", 1000 + i),
        });
    }
    u
}

const FILTERS: &[&str] = &[
    r#"userName eq "ada.okafor0@riverside.example""#,
    r#"userName sw "ada""#,
    r#"userName co "BRENNAN""#,
    r#"userName ew ".example""#,
    r#"userName ew "agency.example""#,
    r#"userName gt "d""#,
    r#"userName le "carl""#,
    r#"userName ne "bob.hughes1@riverside.example""#,
    r#"displayName pr"#,
    r#"not (displayName pr)"#,
    r#"displayName eq "ada okafor""#,
    r#"displayName co "Na""#,
    r#"name.givenName eq "ADA""#,
    r#"name.familyName sw "br""#,
    r#"active eq true"#,
    r#"active eq false"#,
    r#"active ne true"#,
    r#"externalId eq "ext-3""#,
    r#"externalId eq "EXT-3""#,
    r#"externalId pr"#,
    r#"externalId eq null"#,
    r#"title pr"#,
    r#"title eq "nurse""#,
    r#"title co "nurse""#,
    r#"title sw "Charge""#,
    r#"not (title co "nurse")"#,
    r#"emails pr"#,
    r#"emails co "home.example""#,
    r#"emails.value ew "@home.example""#,
    r#"emails.type eq "work""#,
    r#"emails[type eq "work" and primary eq true]"#,
    r#"emails[type eq "home" or type eq "other"]"#,
    r#"emails[not (type eq "work")]"#,
    r#"emails[value co "agency"]"#,
    r#"not (emails[type eq "work"])"#,
    r#"emails.primary eq true"#,
    r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "icu""#,
    r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department pr"#,
    r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber ge "1020""#,
    r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
    r#"schemas eq "urn:ietf:params:scim:schemas:core:2.0:User""#,
    r#"meta.resourceType eq "User""#,
    r#"meta.created gt "2000-01-01T00:00:00Z""#,
    r#"meta.lastModified lt "2000-01-01T00:00:00Z""#,
    r#"userName sw "a" and active eq true"#,
    r#"userName sw "a" or title pr and active eq false"#,
    r#"(userName sw "a" or title pr) and active eq false"#,
    r#"not (userName sw "a" or displayName pr)"#,
    r#"title pr and not (emails[type eq "work"]) or externalId eq "ext-1""#,
    r#"id eq "not-a-uuid""#,
];

async fn sql_matches_the_evaluator(h: &Harness) {
    let s = &*h.store;
    let actor = Actor::system("test");
    let org = s.create_organization(&actor, "Gen").await.unwrap();
    let other = s.create_organization(&actor, "Other").await.unwrap();
    let mut rng = Lcg(7);
    let mut docs = Vec::new();
    for i in 0..120 {
        let doc = canonicalize(&generated_user(&mut rng, i), &USER).unwrap();
        let user = s
            .create_user(&actor, org.id, &doc_to_user_draft(&doc, None).unwrap())
            .await
            .unwrap();
        docs.push((user.id, user_to_doc(&user, None, "https://x")));
        // The same people in another organization must never show up.
        s.create_user(&actor, other.id, &doc_to_user_draft(&doc, None).unwrap())
            .await
            .unwrap();
    }
    let mut nonempty = 0;
    for text in FILTERS.iter().copied().chain([r#"id eq "PLACEHOLDER""#]) {
        let text = text.replace("PLACEHOLDER", &docs[5].0.to_string());
        let f = parse(&text).unwrap();
        validate(&f, &USER).unwrap();
        let expected: BTreeSet<UserId> = docs
            .iter()
            .filter(|(_, d)| matches(&f, d, &USER))
            .map(|(id, _)| *id)
            .collect();
        let q = ScimQuery {
            filter: Some(f),
            limit: 1000,
            ..Default::default()
        };
        let (rows, total) = s
            .scim_list_users(org.id, &q)
            .await
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        let got: BTreeSet<UserId> = rows.iter().map(|u| u.id).collect();
        assert_eq!(
            got, expected,
            "{} differs from the evaluator for {text}",
            h.backend
        );
        assert_eq!(total as usize, expected.len(), "{text}");
        if !expected.is_empty() && expected.len() < docs.len() {
            nonempty += 1;
        }
    }
    assert!(
        nonempty >= 30,
        "the generated data should make most filters selective ({nonempty})"
    );
}

async fn sort_and_page(h: &Harness) {
    let s = &*h.store;
    let actor = Actor::system("test");
    let org = s.create_organization(&actor, "Gen").await.unwrap();
    let mut rng = Lcg(11);
    for i in 0..30 {
        let doc = canonicalize(&generated_user(&mut rng, i), &USER).unwrap();
        s.create_user(&actor, org.id, &doc_to_user_draft(&doc, None).unwrap())
            .await
            .unwrap();
    }
    let all = |desc| ScimQuery {
        sort_by: Some(AttrPath::new("userName")),
        descending: desc,
        limit: 100,
        ..Default::default()
    };
    let (asc, total) = s.scim_list_users(org.id, &all(false)).await.unwrap();
    assert_eq!(total, 30);
    let names: Vec<String> = asc.iter().map(|u| u.user_name.to_lowercase()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let (desc, _) = s.scim_list_users(org.id, &all(true)).await.unwrap();
    assert_eq!(desc.first().map(|u| u.id), asc.last().map(|u| u.id));
    // Pages are disjoint and cover everything, in order.
    let mut paged = Vec::new();
    for page in 0..4 {
        let q = ScimQuery {
            sort_by: Some(AttrPath::new("userName")),
            offset: page * 8,
            limit: 8,
            ..Default::default()
        };
        let (rows, total) = s.scim_list_users(org.id, &q).await.unwrap();
        assert_eq!(total, 30);
        paged.extend(rows.into_iter().map(|u| u.id));
    }
    assert_eq!(paged, asc.iter().map(|u| u.id).collect::<Vec<_>>());
    // Sorting by an attribute some users lack puts them last.
    let q = ScimQuery {
        sort_by: Some(AttrPath::new("displayName")),
        limit: 100,
        ..Default::default()
    };
    let (rows, _) = s.scim_list_users(org.id, &q).await.unwrap();
    let first_missing = rows
        .iter()
        .position(|u| u.display_name.is_none())
        .unwrap_or(rows.len());
    assert!(
        rows[first_missing..]
            .iter()
            .all(|u| u.display_name.is_none())
    );
}

async fn group_member_filters(h: &Harness) {
    let s = &*h.store;
    let actor = Actor::system("test");
    let org = s.create_organization(&actor, "Gen").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..4 {
        let doc = canonicalize(&json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("u{i}") }), &USER).unwrap();
        ids.push(
            s.create_user(&actor, org.id, &doc_to_user_draft(&doc, None).unwrap())
                .await
                .unwrap()
                .id,
        );
    }
    let mut icu = GroupDraft::new("Ward ICU");
    icu.members = Some(vec![ids[0], ids[1]]);
    let icu = s.create_group(&actor, org.id, &icu).await.unwrap();
    let mut er = GroupDraft::new("Ward ER");
    er.members = Some(vec![ids[2]]);
    s.create_group(&actor, org.id, &er).await.unwrap();
    let run = |text: &str| {
        let f = parse(text).unwrap();
        async move {
            let (rows, _) = s
                .scim_list_groups(
                    org.id,
                    &ScimQuery {
                        filter: Some(f),
                        limit: 10,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            rows.into_iter().map(|g| g.display_name).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        run(&format!(r#"members[value eq "{}"]"#, ids[1])).await,
        ["Ward ICU"]
    );
    assert_eq!(
        run(&format!(r#"members.value eq "{}""#, ids[2])).await,
        ["Ward ER"]
    );
    assert!(
        run(&format!(r#"members.value eq "{}""#, ids[3]))
            .await
            .is_empty()
    );
    assert_eq!(run(r#"displayName eq "ward icu""#).await, ["Ward ICU"]);
    assert_eq!(run("members pr").await.len(), 2);
    let users_in_icu = {
        let f = parse(&format!(r#"groups.value eq "{}""#, icu.id)).unwrap();
        let (rows, _) = s
            .scim_list_users(
                org.id,
                &ScimQuery {
                    filter: Some(f),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        rows.into_iter().map(|u| u.id).collect::<Vec<_>>()
    };
    assert_eq!(users_in_icu, vec![ids[0], ids[1]]);
    // Replacing with an exact list adds and removes.
    let mut again = GroupDraft::new("Ward ICU");
    again.members = Some(vec![ids[1], ids[3]]);
    s.replace_group(&actor, org.id, icu.id, &again, None)
        .await
        .unwrap();
    let mut members = s.group_members(org.id, icu.id).await.unwrap();
    members.sort();
    let mut want = vec![ids[1], ids[3]];
    want.sort();
    assert_eq!(members, want);
    // A member from nowhere is refused and nothing changes.
    let mut bad = GroupDraft::new("Ward ICU");
    bad.members = Some(vec![ids[0], UserId::new()]);
    assert!(matches!(
        s.replace_group(&actor, org.id, icu.id, &bad, None).await,
        Err(StoreError::NotFound(_))
    ));
    let mut after = s.group_members(org.id, icu.id).await.unwrap();
    after.sort();
    assert_eq!(after, want);
}

async fn bad_sort_and_filters_are_refused(h: &Harness) {
    let s = &*h.store;
    let org = s
        .create_organization(&Actor::system("t"), "Gen")
        .await
        .unwrap();
    let q = ScimQuery {
        sort_by: Some(AttrPath::new("emails")),
        limit: 10,
        ..Default::default()
    };
    assert!(matches!(
        s.scim_list_users(org.id, &q).await,
        Err(StoreError::Scim(_))
    ));
    let q = ScimQuery {
        filter: Some(parse(r#"meta.version eq "x""#).unwrap()),
        limit: 10,
        ..Default::default()
    };
    assert!(matches!(
        s.scim_list_users(org.id, &q).await,
        Err(StoreError::Scim(_))
    ));
}
