//! SCIM PATCH: every example of RFC 7644 §3.5.2, and the request shapes Entra ID and Okta send
//! (from tests/fixtures, copied from their public documentation).

use scimdesk_scim::ScimType;
use scimdesk_scim::patch::apply;
use scimdesk_scim::resource::canonicalize;
use scimdesk_scim::schema::{GROUP, USER};
use serde_json::{Value, json};

fn ops(ops: Value) -> Value {
    json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops })
}

fn user() -> Value {
    canonicalize(
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "bjensen",
            "name": { "givenName": "Barbara", "familyName": "Jensen" },
            "emails": [
                { "value": "bjensen@example.com", "type": "work", "primary": true },
                { "value": "babs@jensen.org", "type": "home" }
            ],
            "addresses": [
                { "type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood" },
                { "type": "home", "streetAddress": "456 Hollywood Blvd", "locality": "Hollywood" }
            ],
            "active": true
        }),
        &USER,
    )
    .unwrap()
}

fn group(members: &[&str]) -> Value {
    let members: Vec<Value> = members
        .iter()
        .map(|m| json!({ "value": m, "display": m }))
        .collect();
    canonicalize(
        &json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Tour Guides", "members": members }),
        &GROUP,
    )
    .unwrap()
}

fn member_ids(g: &Value) -> Vec<&str> {
    g.get("members")
        .and_then(Value::as_array)
        .map(|m| m.iter().map(|v| v["value"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

// ---- RFC 7644 §3.5.2 examples ------------------------------------------------------------------

#[test]
fn rfc_add_member_to_group() {
    let g = apply(
        &group(&["a"]),
        &ops(json!([{ "op": "add", "path": "members", "value": [{
            "display": "Babs Jensen",
            "$ref": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
            "value": "2819c223-7f76-453a-919d-413861904646"
        }]}])),
        &GROUP,
    )
    .unwrap();
    assert_eq!(
        member_ids(&g),
        ["a", "2819c223-7f76-453a-919d-413861904646"]
    );
    assert_eq!(
        g["members"][1]["$ref"],
        "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646"
    );
    // Adding an existing member again changes nothing.
    let again = apply(
        &g,
        &ops(json!([{ "op": "add", "path": "members", "value": [{ "value": "a" }] }])),
        &GROUP,
    )
    .unwrap();
    assert_eq!(member_ids(&again).len(), 2);
}

#[test]
fn rfc_add_without_path() {
    let u = apply(&user(), &ops(json!([{ "op": "add", "value": {
        "emails": [{ "value": "babs@jensen.org", "type": "home" }, { "value": "b@new.example", "type": "other" }],
        "nickname": "Babs"
    }}])), &USER).unwrap();
    assert_eq!(u["nickName"], "Babs", "attribute names are canonicalised");
    let emails: Vec<&str> = u["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["bjensen@example.com", "babs@jensen.org", "b@new.example"]
    );
}

#[test]
fn rfc_remove_all_members() {
    let g = apply(
        &group(&["a", "b"]),
        &ops(json!([{ "op": "remove", "path": "members" }])),
        &GROUP,
    )
    .unwrap();
    assert!(g.get("members").is_none());
}

#[test]
fn rfc_remove_one_member() {
    let g = apply(
        &group(&["2819c223-7f76-453a-919d-413861904646", "b"]),
        &ops(json!([{
            "op": "remove", "path": "members[value eq \"2819c223-7f76-453a-919d-413861904646\"]"
        }])),
        &GROUP,
    )
    .unwrap();
    assert_eq!(member_ids(&g), ["b"]);
}

#[test]
fn rfc_remove_complex_value_by_filter() {
    let u = apply(&user(), &ops(json!([{ "op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]" }])), &USER).unwrap();
    assert_eq!(u["emails"].as_array().unwrap().len(), 1);
    assert_eq!(u["emails"][0]["value"], "babs@jensen.org");
}

#[test]
fn rfc_remove_all_then_add() {
    let g = apply(&group(&["a", "b"]), &ops(json!([
        { "op": "remove", "path": "members" },
        { "op": "add", "path": "members", "value": [{ "display": "Babs", "value": "c" }, { "display": "James", "value": "d" }] }
    ])), &GROUP).unwrap();
    assert_eq!(member_ids(&g), ["c", "d"]);
}

#[test]
fn rfc_replace_members() {
    let g = apply(
        &group(&["a", "b"]),
        &ops(json!([{ "op": "replace", "path": "members", "value": [
            { "display": "Babs Jensen", "value": "c" }, { "display": "James Smith", "value": "d" }
        ]}])),
        &GROUP,
    )
    .unwrap();
    assert_eq!(member_ids(&g), ["c", "d"]);
}

#[test]
fn rfc_replace_work_address() {
    let u = apply(&user(), &ops(json!([{ "op": "replace", "path": "addresses[type eq \"work\"]", "value": {
        "type": "work", "streetAddress": "911 Universal City Plaza", "locality": "Hollywood",
        "region": "CA", "postalCode": "91608", "country": "US", "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US",
        "primary": true
    }}])), &USER).unwrap();
    let work = &u["addresses"][0];
    assert_eq!(work["streetAddress"], "911 Universal City Plaza");
    assert_eq!(work["postalCode"], "91608");
    assert_eq!(work["primary"], true);
    assert_eq!(u["addresses"][1]["streetAddress"], "456 Hollywood Blvd");
}

#[test]
fn rfc_replace_sub_attribute_of_filtered_value() {
    let u = apply(&user(), &ops(json!([{ "op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1010 Broadway Ave" }])), &USER).unwrap();
    assert_eq!(u["addresses"][0]["streetAddress"], "1010 Broadway Ave");
    assert_eq!(u["addresses"][0]["locality"], "Hollywood");
}

#[test]
fn rfc_replace_without_path() {
    let u = apply(&user(), &ops(json!([{ "op": "replace", "value": {
        "emails": [{ "value": "bjensen@example.com", "type": "work", "primary": true }, { "value": "babs@jensen.org", "type": "home" }],
        "nickname": "Babs"
    }}])), &USER).unwrap();
    assert_eq!(u["nickName"], "Babs");
    assert_eq!(u["emails"].as_array().unwrap().len(), 2);
    assert_eq!(
        u["name"]["givenName"], "Barbara",
        "untouched attributes stay"
    );
}

// ---- rules ------------------------------------------------------------------------------------

#[test]
fn operations_are_all_or_nothing() {
    let before = user();
    let err = apply(
        &before,
        &ops(json!([
            { "op": "replace", "path": "displayName", "value": "Changed" },
            { "op": "replace", "path": "id", "value": "hijack" }
        ])),
        &USER,
    )
    .unwrap_err();
    assert_eq!(err.scim_type, Some(ScimType::Mutability));
    assert!(err.detail.starts_with("operation 2:"), "{}", err.detail);
    assert!(
        before.get("displayName").is_none(),
        "the input is untouched"
    );
}

#[test]
fn at_most_one_primary() {
    let u = apply(&user(), &ops(json!([{ "op": "add", "path": "emails", "value": [{ "value": "new@x.example", "type": "other", "primary": true }] }])), &USER).unwrap();
    let primaries: Vec<&str> = u["emails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["primary"] == true)
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(primaries, ["new@x.example"]);
    let u = apply(
        &u,
        &ops(
            json!([{ "op": "replace", "path": "emails[type eq \"home\"].primary", "value": true }]),
        ),
        &USER,
    )
    .unwrap();
    let primaries: Vec<&str> = u["emails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["primary"] == true)
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(primaries, ["babs@jensen.org"]);
}

#[test]
fn errors_carry_the_right_scim_type() {
    let u = user();
    let cases: &[(Value, ScimType, &str)] = &[
        (
            json!([{ "op": "remove" }]),
            ScimType::NoTarget,
            "needs a path",
        ),
        (
            json!([{ "op": "replace", "path": "addresses[type ne \"work\" and type ne \"home\"].locality", "value": "x" }]),
            ScimType::NoTarget,
            "matches the filter",
        ),
        (
            json!([{ "op": "remove", "path": "emails[type eq \"pager\"]" }]),
            ScimType::NoTarget,
            "matches the filter",
        ),
        (
            json!([{ "op": "replace", "path": "shoeSize", "value": 9 }]),
            ScimType::InvalidPath,
            "unknown attribute",
        ),
        (
            json!([{ "op": "replace", "path": "name.nickname", "value": "x" }]),
            ScimType::InvalidPath,
            "unknown attribute",
        ),
        (
            json!([{ "op": "replace", "path": "emails[type eq ]", "value": "x" }]),
            ScimType::InvalidPath,
            "expected a value",
        ),
        (
            json!([{ "op": "replace", "path": "userName[type eq \"x\"]", "value": "x" }]),
            ScimType::InvalidPath,
            "not a multi-valued complex",
        ),
        (
            json!([{ "op": "replace", "path": "emails.value", "value": "x" }]),
            ScimType::InvalidPath,
            "select the values with a filter",
        ),
        (
            json!([{ "op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z" }]),
            ScimType::Mutability,
            "read-only",
        ),
        (
            json!([{ "op": "add", "path": "groups", "value": [{ "value": "g" }] }]),
            ScimType::Mutability,
            "read-only",
        ),
        (
            json!([{ "op": "replace", "value": { "id": "other" } }]),
            ScimType::Mutability,
            "read-only",
        ),
        (
            json!([{ "op": "replace", "path": "active", "value": "maybe" }]),
            ScimType::InvalidValue,
            "must be a boolean",
        ),
        (
            json!([{ "op": "replace", "path": "userName", "value": 42 }]),
            ScimType::InvalidValue,
            "must be a string",
        ),
        (
            json!([{ "op": "replace", "path": "userName" }]),
            ScimType::InvalidValue,
            "value is missing",
        ),
        (
            json!([{ "op": "replace", "value": "x" }]),
            ScimType::InvalidValue,
            "must be an object",
        ),
        (
            json!([{ "op": "jump", "path": "userName", "value": "x" }]),
            ScimType::InvalidSyntax,
            "unknown op",
        ),
        (
            json!([{ "path": "userName", "value": "x" }]),
            ScimType::InvalidSyntax,
            "op is missing",
        ),
        (json!(["add"]), ScimType::InvalidSyntax, "must be an object"),
        (json!([]), ScimType::InvalidSyntax, "empty"),
    ];
    for (o, scim_type, fragment) in cases {
        let e = apply(&u, &ops(o.clone()), &USER).expect_err(&o.to_string());
        assert_eq!(e.status, 400);
        assert_eq!(e.scim_type, Some(*scim_type), "{o}: {}", e.detail);
        assert!(
            e.detail.contains(fragment),
            "{o}: {:?} lacks {fragment:?}",
            e.detail
        );
    }
    let no_schema = apply(
        &u,
        &json!({ "Operations": [{ "op": "add", "path": "nickName", "value": "x" }] }),
        &USER,
    )
    .unwrap_err();
    assert_eq!(no_schema.scim_type, Some(ScimType::InvalidSyntax));
    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({ "op": "add", "path": "nickName", "value": "x" }))
        .collect();
    assert_eq!(
        apply(&u, &ops(Value::Array(too_many)), &USER)
            .unwrap_err()
            .scim_type,
        Some(ScimType::TooMany)
    );
}

// ---- what identity providers send -------------------------------------------------------------

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/fixtures/{name}.request.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str::<Value>(&text).unwrap()["body"].clone()
}

#[test]
fn entra_replace_multivalued_and_sub_attribute() {
    let u = apply(&user(), &fixture("entra/06-patch-user-multivalued"), &USER).unwrap();
    assert_eq!(u["emails"][0]["value"], "updatedEmail@microsoft.com");
    assert_eq!(u["emails"][0]["type"], "work");
    assert_eq!(u["name"]["familyName"], "updatedFamilyName");
}

#[test]
fn entra_work_email_is_created_when_missing() {
    let mut u = user();
    u.as_object_mut().unwrap().remove("emails");
    let u = apply(&u, &fixture("entra/06-patch-user-multivalued"), &USER).unwrap();
    assert_eq!(
        u["emails"],
        json!([{ "type": "work", "value": "updatedEmail@microsoft.com" }])
    );
}

#[test]
fn entra_replace_user_name() {
    let u = apply(
        &user(),
        &fixture("entra/07-patch-user-single-valued"),
        &USER,
    )
    .unwrap();
    assert_eq!(
        u["userName"],
        "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
    );
}

#[test]
fn entra_disable_and_enable_with_booleans_and_strings() {
    for (f, expected) in [
        ("entra/08-patch-user-disable", false),
        ("entra/20-patch-user-disable-string-false", false),
        ("entra/21-patch-user-disable-flagged", false),
        ("entra/28-patch-user-enable-string-true-DERIVED", true),
    ] {
        let mut start = user();
        start["active"] = json!(!expected);
        let u = apply(&start, &fixture(f), &USER).unwrap();
        assert_eq!(u["active"], json!(expected), "{f}");
    }
}

#[test]
fn entra_add_single_value() {
    for f in [
        "entra/22-patch-user-add-single-value",
        "entra/23-patch-user-add-single-value-flagged",
    ] {
        assert_eq!(
            apply(&user(), &fixture(f), &USER).unwrap()["nickName"],
            "Babs",
            "{f}"
        );
    }
}

#[test]
fn entra_replace_multiple_with_extension_paths() {
    let u = apply(
        &user(),
        &fixture("entra/24-patch-user-replace-multiple"),
        &USER,
    )
    .unwrap();
    assert_eq!(u["displayName"], "Pvlo");
    assert_eq!(u["emails"][0]["value"], "TestBcwqnm@test.microsoft.com");
    assert_eq!(u["name"]["givenName"], "Gtfd");
    assert_eq!(u["name"]["familyName"], "Pkqf");
    assert_eq!(u["externalId"], "Eqpj");
    assert_eq!(
        u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["employeeNumber"],
        "Eqpj"
    );
    assert!(u["schemas"].as_array().unwrap().contains(&json!(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    )));
}

#[test]
fn entra_flagged_path_less_replace_with_dotted_and_urn_keys() {
    let u = apply(
        &user(),
        &fixture("entra/25-patch-user-replace-multiple-flagged"),
        &USER,
    )
    .unwrap();
    assert_eq!(u["emails"][0]["value"], "TestMhvaes@test.microsoft.com");
    assert_eq!(u["displayName"], "Bjfe");
    assert_eq!(u["name"]["givenName"], "Kkom");
    assert_eq!(u["name"]["familyName"], "Unua");
    assert_eq!(
        u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["employeeNumber"],
        "Aklq"
    );
}

#[test]
fn entra_add_manager_without_urn() {
    let u = apply(&user(), &fixture("entra/32-patch-user-add-manager"), &USER).unwrap();
    assert_eq!(
        u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"]["value"],
        "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"
    );
}

#[test]
fn entra_group_membership_and_rename() {
    let g = apply(
        &group(&["u1091"]),
        &fixture("entra/14-patch-group-add-members"),
        &GROUP,
    )
    .unwrap();
    assert_eq!(member_ids(&g), ["u1091", "f648f8d5ea4e4cd38e9c"]);
    let g = apply(&g, &fixture("entra/15-patch-group-remove-members"), &GROUP).unwrap();
    assert_eq!(member_ids(&g), ["u1091"]);
    let g = apply(&g, &fixture("entra/26-patch-group-remove-member"), &GROUP).unwrap();
    assert!(member_ids(&g).is_empty());
    let g2 = apply(
        &group(&["7f4bc1a3-285e-48ae-8202-5accb43efb0e", "x"]),
        &fixture("entra/27-patch-group-remove-member-flagged"),
        &GROUP,
    )
    .unwrap();
    assert_eq!(member_ids(&g2), ["x"]);
    let g = apply(&g, &fixture("entra/13-patch-group-displayname"), &GROUP).unwrap();
    assert_eq!(
        g["displayName"],
        "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    );
}

#[test]
fn okta_deactivate_rename_and_membership() {
    let u = apply(&user(), &fixture("okta/09-patch-user-deactivate"), &USER).unwrap();
    assert_eq!(u["active"], false);

    let mut g = group(&["89bb1940-b905-4575-9e7f-6f887cfb368e"]);
    g["id"] = json!("abf4dd94-a4c0-4f67-89c9-76b03340cb9b");
    let renamed = apply(&g, &fixture("okta/13-patch-group-rename"), &GROUP).unwrap();
    assert_eq!(renamed["displayName"], "Test SCIMv2");
    let swapped = apply(
        &g,
        &fixture("okta/14-patch-group-members-remove-add"),
        &GROUP,
    )
    .unwrap();
    assert_eq!(
        member_ids(&swapped),
        ["23a35c27-23d3-4c03-b4c5-6443c09e7173"]
    );
    let replaced = apply(&g, &fixture("okta/15-patch-group-members-replace"), &GROUP).unwrap();
    assert_eq!(
        member_ids(&replaced),
        [
            "23a35c27-23d3-4c03-b4c5-6443c09e7173",
            "89bb1940-b905-4575-9e7f-6f887cfb368e"
        ]
    );
}

#[test]
fn canonicalize_accepts_entra_and_okta_create_bodies() {
    for f in [
        "entra/02-create-user",
        "entra/31-create-user-with-nulls",
        "okta/03-create-user",
    ] {
        let body = fixture(f);
        let doc = canonicalize(&body, &USER).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(doc["userName"].is_string(), "{f}");
        assert!(
            doc.get("meta").is_none() && doc.get("id").is_none(),
            "{f}: read-only attributes are dropped"
        );
        assert!(
            doc.get("password").is_none(),
            "{f}: passwords are never kept"
        );
    }
    for f in ["entra/10-create-group", "okta/10-create-group"] {
        let doc = canonicalize(&fixture(f), &GROUP).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(doc["displayName"].is_string(), "{f}");
    }
    let e = canonicalize(
        &json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"] }),
        &USER,
    )
    .unwrap_err();
    assert_eq!(
        (e.scim_type, e.detail.as_str()),
        (Some(ScimType::InvalidValue), "userName is required")
    );
    let e = canonicalize(&json!({ "schemas": ["urn:x"], "userName": "a" }), &USER).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-zA-Z0-9 @.\"\\[\\]:]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "value",
                        "type",
                        "primary",
                        "display",
                        "userName",
                        "emails",
                        "name",
                        "givenName",
                        "members",
                        "active",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
                    ])
                    .prop_map(String::from),
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_path() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "userName",
                "emails",
                "emails[type eq \"work\"].value",
                "emails[type eq \"work\"]",
                "name.givenName",
                "name",
                "active",
                "members",
                "members[value eq \"x\"]",
                "manager",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
                "id",
                "meta.created",
                "emails[not (primary eq true)].display",
                "addresses[type eq \"work\" or type eq \"home\"].locality",
            ])
            .prop_map(String::from),
            "\\PC{0,20}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Whatever a client sends, PATCH and canonicalisation answer with a value or a SCIM
        /// error, never a panic; and a successful PATCH yields a storable document.
        #[test]
        fn patch_and_canonicalize_never_panic(
            op in prop::sample::select(vec!["add", "remove", "replace", "Replace", "bogus"]),
            path in prop::option::of(arb_path()),
            value in prop::option::of(arb_json()),
            body in arb_json(),
        ) {
            let mut operation = json!({ "op": op });
            if let Some(p) = path { operation["path"] = json!(p); }
            if let Some(v) = value { operation["value"] = v; }
            for schema in [&USER, &GROUP] {
                if let Ok(doc) = apply(&user(), &ops(json!([operation.clone()])), schema) {
                    let _ = canonicalize(&doc, schema);
                }
                let _ = canonicalize(&body, schema);
            }
        }
    }
}
