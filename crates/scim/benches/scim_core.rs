//! Micro-benchmarks of the SCIM core: filter parsing, validation and evaluation, and PATCH.
//! Run with `cargo bench --bench scim_core`.

use scimdesk_scim::filter::{matches, parse, validate};
use scimdesk_scim::patch::apply;
use scimdesk_scim::resource::canonicalize;
use scimdesk_scim::schema::{GROUP, USER};
use serde_json::{Value, json};

fn main() {
    divan::main();
}

const SIMPLE: &str = r#"userName eq "bjensen@example.com""#;
const COMPLEX: &str = r#"userType eq "Employee" and (emails[type eq "work" and value co "@example.com"] or urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department sw "Tour") and not (title pr)"#;

fn user() -> Value {
    canonicalize(
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "bjensen@example.com",
            "name": { "givenName": "Barbara", "familyName": "Jensen" },
            "userType": "Employee",
            "emails": [
                { "value": "bjensen@example.com", "type": "work", "primary": true },
                { "value": "babs@jensen.org", "type": "home" }
            ],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "Tour Operations" },
            "active": true
        }),
        &USER,
    )
    .unwrap()
}

#[divan::bench(args = [SIMPLE, COMPLEX])]
fn filter_parse(text: &str) -> scimdesk_scim::filter::Filter {
    parse(divan::black_box(text)).unwrap()
}

#[divan::bench(args = [SIMPLE, COMPLEX])]
fn filter_parse_validate_evaluate(bencher: divan::Bencher, text: &str) {
    let doc = user();
    bencher.bench(|| {
        let f = parse(divan::black_box(text)).unwrap();
        validate(&f, &USER).unwrap();
        matches(&f, &doc, &USER)
    });
}

#[divan::bench]
fn filter_evaluate_complex(bencher: divan::Bencher) {
    let doc = user();
    let f = parse(COMPLEX).unwrap();
    bencher.bench(|| matches(divan::black_box(&f), &doc, &USER));
}

#[divan::bench]
fn patch_entra_replace_multiple(bencher: divan::Bencher) {
    let doc = user();
    let req = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            { "op": "Replace", "path": "displayName", "value": "Babs" },
            { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@example.com" },
            { "op": "Replace", "path": "name.givenName", "value": "B" },
            { "op": "Replace", "path": "active", "value": "False" },
            { "op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "42" }
        ]
    });
    bencher.bench(|| apply(divan::black_box(&doc), &req, &USER).unwrap());
}

#[divan::bench(args = [10, 1000])]
fn patch_group_add_member(bencher: divan::Bencher, members: usize) {
    let list: Vec<Value> = (0..members)
        .map(|i| json!({ "value": format!("user-{i}") }))
        .collect();
    let group = canonicalize(&json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "g", "members": list }), &GROUP).unwrap();
    let req = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "add", "path": "members", "value": [{ "value": "newcomer" }] }]
    });
    bencher.bench(|| apply(divan::black_box(&group), &req, &GROUP).unwrap());
}
