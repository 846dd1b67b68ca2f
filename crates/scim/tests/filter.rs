//! SCIM filter parsing, printing, validation and in-memory evaluation (RFC 7644 §3.4.2.2).

use proptest::prelude::*;
use scimdesk_scim::ScimType;
use scimdesk_scim::filter::{AttrPath, CompValue, CompareOp, Filter, matches, parse, validate};
use scimdesk_scim::schema::{GROUP, USER};
use serde_json::json;

/// (filter as written, its canonical printing). Includes every example of RFC 7644 §3.4.2.2.
const PARSES: &[(&str, &str)] = &[
    // RFC 7644 §3.4.2.2 examples, verbatim.
    (r#"userName eq "bjensen""#, r#"userName eq "bjensen""#),
    (
        r#"name.familyName co "O'Malley""#,
        r#"name.familyName co "O'Malley""#,
    ),
    (r#"userName sw "J""#, r#"userName sw "J""#),
    (
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
    ),
    ("title pr", "title pr"),
    (
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
    ),
    (
        r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
    ),
    (
        r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
    ),
    (
        r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
    ),
    (
        r#"title pr and userType eq "Employee""#,
        r#"title pr and userType eq "Employee""#,
    ),
    (
        r#"title pr or userType eq "Intern""#,
        r#"title pr or userType eq "Intern""#,
    ),
    (
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
    ),
    (
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
    ),
    (
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
    ),
    (
        r#"userType eq "Employee" and (emails.type eq "work")"#,
        r#"userType eq "Employee" and emails.type eq "work""#,
    ),
    (
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
    ),
    (
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
    ),
    // Every operator.
    (r#"userName ne "x""#, r#"userName ne "x""#),
    (r#"userName co "x""#, r#"userName co "x""#),
    (r#"userName ew "x""#, r#"userName ew "x""#),
    (r#"userName gt "x""#, r#"userName gt "x""#),
    (r#"userName ge "x""#, r#"userName ge "x""#),
    (r#"userName lt "x""#, r#"userName lt "x""#),
    (r#"userName le "x""#, r#"userName le "x""#),
    // Operators, keywords and literals ignore case.
    (r#"userName EQ "x""#, r#"userName eq "x""#),
    (r#"userName Eq "x""#, r#"userName eq "x""#),
    ("title PR", "title pr"),
    (
        r#"title pr AND userName SW "a""#,
        r#"title pr and userName sw "a""#,
    ),
    (
        r#"title pr Or userName sw "a""#,
        r#"title pr or userName sw "a""#,
    ),
    (r#"NOT (title pr)"#, "not (title pr)"),
    ("active eq TRUE", "active eq true"),
    ("active eq False", "active eq false"),
    ("title eq NULL", "title eq null"),
    // Literals.
    ("active eq true", "active eq true"),
    ("active eq false", "active eq false"),
    ("active ne true", "active ne true"),
    ("title eq null", "title eq null"),
    ("title ne null", "title ne null"),
    (
        "x509Certificates.value eq \"AAEC\"",
        "x509Certificates.value eq \"AAEC\"",
    ),
    (
        r#"userName eq "with \"quotes\" inside""#,
        r#"userName eq "with \"quotes\" inside""#,
    ),
    (
        r#"userName eq "back\\slash""#,
        r#"userName eq "back\\slash""#,
    ),
    (r#"userName eq "tab\there""#, r#"userName eq "tab\there""#),
    (r#"userName eq "\u00e9t\u00e9""#, r#"userName eq "été""#),
    (r#"userName eq "été 🚑""#, r#"userName eq "été 🚑""#),
    (r#"userName eq """#, r#"userName eq """#),
    (
        r#"userName eq "a and b or c""#,
        r#"userName eq "a and b or c""#,
    ),
    (r#"userName eq "(not) [x]""#, r#"userName eq "(not) [x]""#),
    // Numbers.
    (
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
    ),
    (
        "meta.version eq \"W/\\\"3\\\"\"",
        "meta.version eq \"W/\\\"3\\\"\"",
    ),
    // Extension paths with sub-attributes.
    (
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
    ),
    (
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Tour Operations""#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Tour Operations""#,
    ),
    (
        r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName sw "Bar""#,
        r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName sw "Bar""#,
    ),
    (
        r#"URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:USERNAME eq "x""#,
        r#"URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:USERNAME eq "x""#,
    ),
    // Attribute names are kept as written.
    (r#"USERNAME eq "x""#, r#"USERNAME eq "x""#),
    (r#"Name.FamilyName eq "x""#, r#"Name.FamilyName eq "x""#),
    (
        r#"members[value eq "2819c223"]"#,
        r#"members[value eq "2819c223"]"#,
    ),
    (r#"members.$ref pr"#, r#"members.$ref pr"#),
    (
        r#"members[$ref sw "https://"]"#,
        r#"members[$ref sw "https://"]"#,
    ),
    // Precedence: not > and > or; left-associative.
    (
        r#"a eq "1" or b eq "2" and c eq "3""#,
        r#"a eq "1" or b eq "2" and c eq "3""#,
    ),
    (
        r#"(a eq "1" or b eq "2") and c eq "3""#,
        r#"(a eq "1" or b eq "2") and c eq "3""#,
    ),
    (
        r#"a eq "1" and b eq "2" or c eq "3""#,
        r#"a eq "1" and b eq "2" or c eq "3""#,
    ),
    (
        r#"a eq "1" and (b eq "2" or c eq "3")"#,
        r#"a eq "1" and (b eq "2" or c eq "3")"#,
    ),
    (r#"a pr and b pr and c pr"#, r#"a pr and b pr and c pr"#),
    (r#"a pr and (b pr and c pr)"#, r#"a pr and (b pr and c pr)"#),
    (r#"a pr or b pr or c pr"#, r#"a pr or b pr or c pr"#),
    (r#"a pr or (b pr or c pr)"#, r#"a pr or (b pr or c pr)"#),
    (r#"not (a pr) and b pr"#, r#"not (a pr) and b pr"#),
    (r#"not (a pr and b pr)"#, r#"not (a pr and b pr)"#),
    (r#"not (not (a pr))"#, r#"not (not (a pr))"#),
    (r#"((a pr))"#, r#"a pr"#),
    (r#"(((a pr) or (b pr)))"#, r#"a pr or b pr"#),
    (
        r#"emails[not (type eq "work")]"#,
        r#"emails[not (type eq "work")]"#,
    ),
    (
        r#"emails[type eq "work" or (type eq "home" and primary eq true)]"#,
        r#"emails[type eq "work" or type eq "home" and primary eq true]"#,
    ),
    (
        r#"not (emails[type eq "work"])"#,
        r#"not (emails[type eq "work"])"#,
    ),
    // Entra ID's unquoted values (tests/fixtures/entra/30) are read as strings.
    ("externalId eq jyoung", r#"externalId eq "jyoung""#),
    // White space.
    ("  title   pr  ", "title pr"),
    ("title\tpr", "title pr"),
    ("(title pr)and(userName pr)", "title pr and userName pr"),
    ("emails[ type eq \"work\" ]", "emails[type eq \"work\"]"),
    // Identity-provider shapes.
    (
        r#"userName eq "non-existent user""#,
        r#"userName eq "non-existent user""#,
    ),
    (
        r#"userName eq "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081""#,
        r#"userName eq "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081""#,
    ),
    (
        r#"displayName eq "Group1DisplayName""#,
        r#"displayName eq "Group1DisplayName""#,
    ),
    (
        r#"externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef""#,
        r#"externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef""#,
    ),
    (
        r#"userName eq "isaac.brock@example.com""#,
        r#"userName eq "isaac.brock@example.com""#,
    ),
    (
        r#"id eq "2819c223-7f76-453a-919d-413861904646""#,
        r#"id eq "2819c223-7f76-453a-919d-413861904646""#,
    ),
];

/// (input, fragment of the error detail). Every one must be `invalidFilter`.
const REFUSED: &[(&str, &str)] = &[
    ("", "empty"),
    ("   ", "empty"),
    ("userName", "expected an operator"),
    ("userName eq", "expected a value"),
    ("userName equals \"x\"", "unknown operator"),
    ("userName eq \"x", "unterminated"),
    ("userName eq \"bad \\q escape\"", "invalid string literal"),
    ("(userName eq \"x\"", "expected ')'"),
    ("userName eq \"x\")", "unexpected text"),
    ("userName eq \"x\" and", "expected an attribute name"),
    ("userName eq \"x\" or", "expected an attribute name"),
    ("and userName eq \"x\"", "unknown operator"),
    ("not userName eq \"x\"", "expected '(' after 'not'"),
    ("not (userName eq \"x\"", "expected ')'"),
    ("emails[type eq \"work\"", "expected ']'"),
    (
        "emails[type eq \"work\" and addresses[type eq \"x\"]]",
        "cannot be nested",
    ),
    ("emails.value[type eq \"work\"]", "not a sub-attribute"),
    ("emails[]", "expected an attribute name"),
    ("9lives eq \"x\"", "not a valid attribute path"),
    ("user name eq \"x\"", "unknown operator"),
    ("user@name eq \"x\"", "not a valid attribute path"),
    ("name..familyName eq \"x\"", "not a valid attribute path"),
    ("userName eq \"x\" userName eq \"y\"", "unexpected text"),
    ("userName eq 12abc", "double quotes"),
    ("userName eq .5", "double quotes"),
    ("()", "expected an attribute name"),
    ("[", "expected an attribute name"),
    ("\"x\" eq userName", "expected an attribute name"),
    ("userName pr pr", "unexpected text"),
];

#[test]
fn parses_and_prints_canonically() {
    for (input, canonical) in PARSES {
        let f = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(f.to_string(), *canonical, "printing {input}");
        assert_eq!(parse(canonical).unwrap(), f, "re-parsing {canonical}");
    }
}

#[test]
fn refuses_invalid_filters_with_invalid_filter() {
    for (input, fragment) in REFUSED {
        let e = parse(input).expect_err(input);
        assert_eq!(e.status, 400, "{input}");
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{input}");
        assert!(
            e.detail.contains(fragment),
            "{input}: {:?} lacks {fragment:?}",
            e.detail
        );
    }
}

#[test]
fn hostile_filters_are_bounded() {
    let deep = format!("{}title pr{}", "(".repeat(200), ")".repeat(200));
    assert!(parse(&deep).unwrap_err().detail.contains("deeper than"));
    let nots = format!("{}title pr{}", "not (".repeat(100), ")".repeat(100));
    assert!(parse(&nots).is_err());
    let long = format!("userName eq \"{}\"", "x".repeat(10_000));
    assert!(parse(&long).unwrap_err().detail.contains("longer than"));
    // Raw control characters are not allowed in JSON strings: refused, clearly.
    let nul = parse("userName eq \"\u{0}\"").unwrap_err();
    assert!(
        nul.detail.contains("invalid string literal"),
        "{}",
        nul.detail
    );
    assert!(parse("\u{202e}userName eq \"x\"").is_err());
}

#[test]
fn precedence_builds_the_right_tree() {
    let f = parse(r#"a pr or b pr and not (c pr)"#).unwrap();
    let p = |n: &str| Box::new(Filter::Present(AttrPath::new(n)));
    assert_eq!(
        f,
        Filter::Or(
            p("a"),
            Box::new(Filter::And(p("b"), Box::new(Filter::Not(p("c")))))
        )
    );
    let f =
        parse(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x""#)
            .unwrap();
    let Filter::Compare(path, CompareOp::Eq, CompValue::Str(v)) = f else {
        panic!()
    };
    assert_eq!(
        path.uri.as_deref(),
        Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
    );
    assert_eq!(
        (path.name.as_str(), path.sub.as_deref(), v.as_str()),
        ("manager", Some("value"), "x")
    );
    let Filter::Compare(_, _, CompValue::Number(n)) = parse("x eq -12.5e3").unwrap() else {
        panic!()
    };
    assert_eq!(n.as_f64(), Some(-12500.0));
}

fn bjensen() -> serde_json::Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "701984",
        "userName": "bjensen@example.com",
        "name": { "formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara" },
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "userType": "Employee",
        "active": true,
        "emails": [
            { "value": "bjensen@example.com", "type": "work", "primary": true },
            { "value": "babs@jensen.org", "type": "home" }
        ],
        "ims": [{ "value": "someaimhandle", "type": "aim" }],
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34Z",
            "version": "W/\"3694e05e9dff591\""
        },
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "manager": { "value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith" }
        }
    })
}

/// (filter, whether bjensen matches).
const EVALUATES: &[(&str, bool)] = &[
    (r#"userName eq "bjensen@example.com""#, true),
    (r#"userName eq "BJENSEN@EXAMPLE.COM""#, true),
    (r#"userName eq "bjensen""#, false),
    (r#"userName sw "bj""#, true),
    (r#"userName sw "J""#, false),
    (r#"userName ew "@EXAMPLE.com""#, true),
    (r#"userName co "jens""#, true),
    (r#"userName ne "bjensen@example.com""#, false),
    (r#"userName ne "someone""#, true),
    (r#"userName gt "a""#, true),
    (r#"userName lt "a""#, false),
    (r#"userName ge "bjensen@example.com""#, true),
    (r#"userName le "bjensen@example.com""#, true),
    (r#"name.familyName co "ens""#, true),
    (r#"name.familyName co "O'Malley""#, false),
    (
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bj""#,
        true,
    ),
    ("title pr", true),
    ("nickName pr", false),
    ("name pr", true),
    ("name.middleName pr", false),
    ("emails pr", true),
    ("phoneNumbers pr", false),
    (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
    (r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true),
    (r#"meta.lastModified lt "2011-05-13T04:42:34Z""#, false),
    (r#"meta.lastModified le "2011-05-13T04:42:34Z""#, true),
    (r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#, true),
    (r#"meta.created lt "2010-01-23T04:56:23Z""#, true),
    (r#"title pr and userType eq "Employee""#, true),
    (r#"title pr and userType eq "Intern""#, false),
    (r#"nickName pr or userType eq "Employee""#, true),
    (
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        true,
    ),
    (
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        true,
    ),
    (
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
        false,
    ),
    (
        r#"userType eq "Employee" and (emails.type eq "work")"#,
        true,
    ),
    (
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        true,
    ),
    (
        r#"emails[type eq "home" and value co "@example.com"]"#,
        false,
    ),
    (
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        true,
    ),
    (r#"ims[type eq "xmpp"]"#, false),
    (r#"emails[primary eq true and type eq "work"]"#, true),
    (r#"emails[primary eq true and type eq "home"]"#, false),
    (r#"emails[not (primary eq true)]"#, true),
    (r#"emails.value eq "babs@jensen.org""#, true),
    (r#"emails eq "babs@jensen.org""#, true),
    ("active eq true", true),
    ("active eq false", false),
    ("active ne false", true),
    (
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour operations""#,
        true,
    ),
    (
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
        true,
    ),
    (
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter pr"#,
        false,
    ),
    (r#"externalId eq "701984""#, true),
    (r#"id eq "2819C223-7F76-453A-919D-413861904646""#, false),
    ("nickName eq null", true),
    ("title eq null", false),
    ("title ne null", true),
    (r#"not (userName eq "bjensen@example.com")"#, false),
    (r#"USERNAME EQ "bjensen@example.com""#, true),
    (r#"emails[TYPE eq "work"]"#, true),
];

#[test]
fn evaluates_against_a_user() {
    let user = bjensen();
    for (input, expected) in EVALUATES {
        let f = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        validate(&f, &USER).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(matches(&f, &user, &USER), *expected, "{input}");
    }
}

#[test]
fn evaluates_against_a_group() {
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "e9e30dba", "displayName": "Tour Guides",
        "members": [{ "value": "2819c223-7f76-453a-919d-413861904646", "display": "Babs Jensen" }]
    });
    for (input, expected) in [
        (r#"displayName eq "tour guides""#, true),
        (
            r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#,
            true,
        ),
        (
            r#"members[value eq "2819C223-7F76-453A-919D-413861904646"]"#,
            false,
        ),
        (r#"members.value eq "nobody""#, false),
        ("members pr", true),
    ] {
        let f = parse(input).unwrap();
        validate(&f, &GROUP).unwrap();
        assert_eq!(matches(&f, &group, &GROUP), expected, "{input}");
    }
}

/// (filter, fragment): parses, but the schema refuses it.
const SCHEMA_REFUSES: &[(&str, &str)] = &[
    (r#"shoeSize eq "9""#, "unknown attribute"),
    (r#"name.nickname eq "x""#, "unknown attribute"),
    (
        r#"urn:example:custom:1.0:User:thing eq "x""#,
        "unknown attribute",
    ),
    (r#"manager.value eq "x""#, "unknown attribute"),
    ("active gt true", "only be compared with eq or ne"),
    (r#"active eq "true""#, "boolean"),
    ("userName eq 5", "string"),
    ("userName eq true", "string"),
    ("userName gt null", "null can only"),
    (r#"meta.created gt "yesterday""#, "RFC 3339"),
    (r#"meta.created co "2011""#, "co, sw and ew"),
    (r#"name eq "Barbara""#, "complex"),
    (r#"userName[value eq "x"]"#, "no sub-attributes"),
    (r#"emails[display.value eq "x"]"#, "cannot be used inside"),
    (
        r#"emails[urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x"]"#,
        "cannot be used inside",
    ),
];

#[test]
fn schema_refuses_unknown_attributes_and_type_mismatches() {
    for (input, fragment) in SCHEMA_REFUSES {
        let f = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        let e = validate(&f, &USER).expect_err(input);
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{input}");
        assert!(
            e.detail.contains(fragment),
            "{input}: {:?} lacks {fragment:?}",
            e.detail
        );
    }
}

#[test]
fn there_are_at_least_a_hundred_cases() {
    let n = PARSES.len() + REFUSED.len() + EVALUATES.len() + SCHEMA_REFUSES.len();
    assert!(n >= 100, "{n} filter cases");
}

fn arb_path() -> impl Strategy<Value = AttrPath> {
    let name = "[a-zA-Z][a-zA-Z0-9_-]{0,8}";
    (
        prop::option::of(prop::sample::select(vec![
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        ])),
        name,
        prop::option::of(name),
    )
        .prop_map(|(uri, name, sub)| AttrPath {
            uri: uri.map(String::from),
            name,
            sub,
        })
}

fn arb_value() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        Just(CompValue::Null),
        any::<bool>().prop_map(CompValue::Bool),
        any::<i64>().prop_map(|n| CompValue::Number(n.into())),
        (-1e9f64..1e9).prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(CompValue::Number)),
        any::<String>().prop_map(CompValue::Str),
    ]
}

fn arb_op() -> impl Strategy<Value = CompareOp> {
    prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ])
}

fn arb_leaf() -> impl Strategy<Value = Filter> {
    prop_oneof![
        (arb_path(), arb_op(), arb_value()).prop_map(|(p, o, v)| Filter::Compare(p, o, v)),
        arb_path().prop_map(Filter::Present),
    ]
}

fn arb_inner() -> impl Strategy<Value = Filter> {
    let simple = ("[a-zA-Z][a-zA-Z0-9]{0,6}", arb_op(), arb_value())
        .prop_map(|(n, o, v)| Filter::Compare(AttrPath::new(n), o, v));
    simple.prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
}

fn arb_filter() -> impl Strategy<Value = Filter> {
    let leaf = prop_oneof![
        4 => arb_leaf(),
        1 => ("[a-zA-Z][a-zA-Z0-9]{0,6}", arb_inner())
            .prop_map(|(n, f)| Filter::ValuePath(AttrPath::new(n), Box::new(f))),
    ];
    leaf.prop_recursive(5, 32, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
}

fn is_keyword(name: &str) -> bool {
    [
        "and", "or", "not", "pr", "eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "true",
        "false", "null",
    ]
    .iter()
    .any(|k| k.eq_ignore_ascii_case(name))
}

fn uses_keyword_names(f: &Filter) -> bool {
    match f {
        Filter::Compare(p, ..) | Filter::Present(p) => is_keyword(&p.name),
        Filter::And(a, b) | Filter::Or(a, b) => uses_keyword_names(a) || uses_keyword_names(b),
        Filter::Not(a) => uses_keyword_names(a),
        Filter::ValuePath(p, a) => is_keyword(&p.name) || uses_keyword_names(a),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Printing a filter and parsing the text gives the same filter.
    #[test]
    fn print_then_parse_round_trips(f in arb_filter().prop_filter("attribute named like a keyword", |f| !uses_keyword_names(f))) {
        let text = f.to_string();
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(back, f, "{}", text);
    }

    /// No input makes the parser panic.
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,80}") {
        let _ = parse(&s);
    }
}
