//! SAML 2.0 as an authoritative source, on both stores. Every response here is made and signed
//! (and encrypted) by Debian's `xmlsec1` with keys `openssl` made (`support::saml_idp`), not
//! by scimdesk. St Mary's has a SAML source mapped by group to a role, and a target bound to
//! that role; no workers run, so the target's queue shows what each login caused.

use crate::support::Harness;
use crate::support::idp::{eventually, fast};
use crate::support::saml_idp::{self, Claims, KeyPair, RSA_SHA1, RSA_SHA256, keys};
use scimdesk::api::changes::ChangeFeed;
use scimdesk::api::serve;
use scimdesk::connectors::saml::RefusalKind;
use scimdesk::domain::*;
use scimdesk::engine::Engine;
use scimdesk::engine::commands::{self, ConnectionSpec, MetadataSource, SamlSpec};
use scimdesk::engine::directory::Directory;
use scimdesk::engine::saml::{LoginError, ingest};
use scimdesk::stand_ins::target_double::TargetDouble;
use scimdesk::store::{ListRange, OperationFilter, Store};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

on_both_backends!(
    a_signed_login_creates_the_user_with_roles_and_target_work,
    a_later_login_with_fewer_groups_takes_roles_away,
    forged_and_broken_responses_are_refused_and_change_nothing,
    a_replay_is_refused_in_one_process_and_across_processes,
    dtds_entities_and_oversized_bodies_are_refused,
    either_certificate_verifies_during_a_rollover,
    an_encrypted_assertion_is_decrypted_and_accepted,
    a_signed_response_covers_its_assertion,
    the_cli_adds_a_saml_source_and_both_metadata_are_served,
    health_shows_logins_and_each_refusal,
);

const ISSUER: &str = "https://idp.stmary.example/saml";
const SP: &str = "https://scimdesk.stmary.example/sp";
const PUBLIC: &str = "https://scimdesk.stmary.example";

const FORM: &str = "application/x-www-form-urlencoded";

/// An HTTP-POST binding's form body.
fn form(pairs: &[(&str, String)]) -> String {
    let mut f = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        f.append_pair(k, v);
    }
    f.finish()
}

fn op() -> Actor {
    Actor::operator("tester")
}

/// St Mary's, with its SAML source trusting `trusted` and a target bound to `icu-nurse`,
/// which `/ICU` maps to.
struct Scene {
    store: Arc<dyn Store>,
    org: OrganizationId,
    source: Connection,
    target: Connection,
    acs: String,
}

async fn scene(h: &Harness, trusted: &[&KeyPair]) -> Scene {
    scimdesk::connectors::ensure_tls_provider();
    let store: Arc<dyn Store> = h.store.clone();
    let org = store
        .create_organization(&op(), "St Mary")
        .await
        .unwrap()
        .id;
    let settings = commands::saml_settings(&SamlSpec {
        metadata: MetadataSource::Xml(saml_idp::idp_metadata(ISSUER, trusted)),
        sp_entity_id: SP.into(),
        groups_attribute: "groups".into(),
        email_attribute: Some("email".into()),
        given_name_attribute: None,
        family_name_attribute: None,
        username_from: None,
        clock_skew_secs: Some(60),
        public_url: Some(PUBLIC.into()),
        acs_url: None,
        relay_state_allow: vec!["https://portal.stmary.example/".into()],
        sp_certificate_pem: Some(std::fs::read_to_string(&keys().sp.cert).unwrap()),
    })
    .await
    .unwrap();
    let source = commands::create_connection(
        &*store,
        &op(),
        org,
        ConnectionSpec {
            name: "Okta".into(),
            kind: ConnectionKind::Saml,
            base_url: None,
            auth: None,
            settings,
            client_id: None,
            issuer: None,
        },
        Some(&scimdesk::crypto::Secret::new(keys().sp.key_pem())),
    )
    .await
    .unwrap();
    let target = store
        .create_connection(
            &op(),
            org,
            &NewConnection {
                name: "EHR".into(),
                kind: ConnectionKind::ScimTarget,
                base_url: Some("http://127.0.0.1:9/scim/v2".into()),
                auth_method: AuthMethod::Bearer,
                settings: json!({"roles": ["icu-nurse"]}),
            },
            Some(&scimdesk::crypto::Secret::new("t")),
        )
        .await
        .unwrap();
    crate::support::map_path_to_role(&*store, org, "/ICU", "icu-nurse").await;
    let acs = format!("{PUBLIC}/saml/{}/acs", source.id);
    Scene {
        store,
        org,
        source,
        target,
        acs,
    }
}

impl Scene {
    fn claims(&self, name_id: &str, groups: &[&str]) -> Claims {
        Claims::login(ISSUER, SP, &self.acs, name_id, groups)
    }

    fn signed(&self, name_id: &str, groups: &[&str]) -> String {
        saml_idp::signed_response(&self.claims(name_id, groups), &keys().idp, RSA_SHA256)
    }

    async fn login(&self, xml: &str) -> Result<scimdesk::engine::saml::LoginSummary, LoginError> {
        let source = self
            .store
            .connection(self.org, self.source.id)
            .await
            .unwrap()
            .unwrap();
        ingest(&*self.store, &source, xml).await
    }

    async fn refused(&self, xml: &str) -> RefusalKind {
        match self.login(xml).await {
            Err(LoginError::Refused(r)) => r.kind,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Users with their groups and roles, and how many operations are queued: what a
    /// refusal must leave as it was.
    async fn state(&self) -> (Vec<(String, Vec<String>, Vec<String>)>, usize) {
        let dir = Directory::open(&*self.store, self.org).await.unwrap();
        let mut out = Vec::new();
        for u in self
            .store
            .list_users(self.org, ListRange::first(1000))
            .await
            .unwrap()
        {
            let v = dir.user(u).await.unwrap();
            let mut groups: Vec<String> = v.groups.iter().map(|g| g.name.clone()).collect();
            groups.sort();
            out.push((v.user.user_name.clone(), groups, v.roles.clone()));
        }
        (out, self.queued().await.len())
    }

    async fn queued(&self) -> Vec<Operation> {
        self.store
            .list_operations(
                self.org,
                &OperationFilter {
                    connection_id: Some(self.target.id),
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
    }
}

async fn a_signed_login_creates_the_user_with_roles_and_target_work(h: &Harness) {
    if !saml_idp::ready() {
        return;
    }
    let s = scene(h, &[&keys().idp]).await;
    let (addr, _stop) =
        serve::spawn_local(serve::app(s.store.clone(), ChangeFeed::default(), None))
            .await
            .unwrap();
    let xml = s.signed("ana@stmary.example", &["ICU", "Nurses"]);
    let http = reqwest::Client::new();
    let answer = http
        .post(format!("http://{addr}/saml/{}/acs", s.source.id))
        .header("content-type", FORM)
        .body(form(&[("SAMLResponse", saml_idp::post_value(&xml))]))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["status"], "accepted", "{body}");
    assert_eq!(body["login"]["user"], "created");
    assert_eq!(body["login"]["joined"], 2);
    // The answer says what happened by ids and counts; nothing of the assertion is echoed.
    for echoed in ["ana@stmary.example", "ICU", "Nurses", "Assertion"] {
        assert!(
            !body.to_string().contains(echoed),
            "{echoed} echoed: {body}"
        );
    }

    let (users, _) = s.state().await;
    assert_eq!(
        users,
        vec![(
            "ana@stmary.example".to_string(),
            vec!["ICU".to_string(), "Nurses".to_string()],
            vec!["icu-nurse".to_string()]
        )]
    );
    let user = s
        .store
        .user_by_user_name(s.org, "ana@stmary.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.source_connection_id, Some(s.source.id));
    assert_eq!(user.external_id.as_deref(), Some("ana@stmary.example"));
    assert_eq!(user.emails.0[0].value, "ana@stmary.example");
    // The role-bound target has work for her.
    let queued = s.queued().await;
    assert!(
        queued.iter().any(|o| o.resource_id == user.id.0),
        "nothing queued for the new user at the target: {queued:?}"
    );
    // A RelayState on the allow-list is followed; another is not.
    let xml = s.signed("ana@stmary.example", &["ICU", "Nurses"]);
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = no_redirects
        .post(format!("http://{addr}/saml/{}/acs", s.source.id))
        .header("content-type", FORM)
        .body(form(&[
            ("SAMLResponse", saml_idp::post_value(&xml)),
            ("RelayState", "https://portal.stmary.example/rota".into()),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    assert_eq!(
        answer.headers()["location"],
        "https://portal.stmary.example/rota"
    );
    let xml = s.signed("ana@stmary.example", &["ICU", "Nurses"]);
    let answer = no_redirects
        .post(format!("http://{addr}/saml/{}/acs", s.source.id))
        .header("content-type", FORM)
        .body(form(&[
            ("SAMLResponse", saml_idp::post_value(&xml)),
            ("RelayState", "https://evil.example/".into()),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["login"]["user"], "unchanged");
    // An unknown connection is a 404.
    let answer = http
        .post(format!("http://{addr}/saml/{}/acs", uuid::Uuid::new_v4()))
        .header("content-type", FORM)
        .body(form(&[("SAMLResponse", "x".into())]))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
}

async fn a_later_login_with_fewer_groups_takes_roles_away(h: &Harness) {
    if !saml_idp::ready() {
        return;
    }
    let s = scene(h, &[&keys().idp]).await;
    // The rota application is real (scimdesk's inbound server in another organization), and
    // the engine delivers to it: roles and the role group there follow each login.
    commands::remove_connection(&*s.store, &op(), s.org, s.target.id)
        .await
        .unwrap();
    let rota = TargetDouble::start(s.store.clone(), "Rota").await.unwrap();
    s.store
        .create_connection(
            &op(),
            s.org,
            &NewConnection {
                name: "Rota".into(),
                kind: ConnectionKind::ScimTarget,
                base_url: Some(rota.base_url.clone()),
                auth_method: AuthMethod::Bearer,
                settings: json!({"roles": ["icu-nurse"], "role_delivery": "groups", "delete_mode": "suspend"}),
            },
            Some(&scimdesk::crypto::Secret::new(rota.token.clone())),
        )
        .await
        .unwrap();
    let engine = Engine::new(s.store.clone(), fast());
    engine.start();
    // Another source's group membership is not this source's to take away.
    let other = s
        .store
        .create_group(&op(), s.org, &GroupDraft::new("Volunteers"))
        .await
        .unwrap();
    let first = s
        .login(&s.signed("ben@stmary.example", &["ICU", "Nurses"]))
        .await
        .unwrap();
    s.store
        .add_member(&op(), s.org, other.id, first.user_id)
        .await
        .unwrap();
    let at_rota = |active: bool, in_role_group: bool| {
        let store = s.store.clone();
        let org = rota.organization_id;
        async move {
            let ben = store
                .user_by_user_name(org, "ben@stmary.example")
                .await
                .unwrap();
            let groups = store.list_groups(org, ListRange::first(100)).await.unwrap();
            let mut member = false;
            for g in groups.iter().filter(|g| g.display_name == "icu-nurse") {
                let refs = store.group_member_refs(org, g.id).await.unwrap();
                member |= refs.iter().any(|m| m.user_name == "ben@stmary.example");
            }
            ben.is_some_and(|b| b.active == active) && member == in_role_group
        }
    };
    eventually(
        Duration::from_secs(60),
        "Ben provisioned at the rota, in its icu-nurse group",
        || at_rota(true, true),
    )
    .await;
    let second = s
        .login(&s.signed("ben@stmary.example", &["Nurses"]))
        .await
        .unwrap();
    assert_eq!(
        (second.user, second.joined, second.left),
        ("unchanged", 0, 1)
    );
    let (users, _) = s.state().await;
    assert_eq!(
        users,
        vec![(
            "ben@stmary.example".to_string(),
            vec!["Nurses".to_string(), "Volunteers".to_string()],
            vec![]
        )]
    );
    // Without the role he is out of the rota's scope: out of its group, and suspended there.
    eventually(
        Duration::from_secs(60),
        "Ben out of the rota's icu-nurse group and suspended there",
        || at_rota(false, false),
    )
    .await;
    engine.shutdown().await;
    // The group stays for its other members; he is simply not in it.
    let icu = s
        .store
        .list_groups(s.org, ListRange::first(100))
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.display_name == "ICU")
        .unwrap();
    assert!(
        s.store
            .group_members(s.org, icu.id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn forged_and_broken_responses_are_refused_and_change_nothing(h: &Harness) {
    if !saml_idp::ready() {
        return;
    }
    let s = scene(h, &[&keys().idp]).await;
    // One accepted login first, so "nothing changes" covers a stored user too.
    s.login(&s.signed("cara@stmary.example", &["ICU"]))
        .await
        .unwrap();
    let before = s.state().await;
    let k = keys();
    let c = |name: &str| s.claims(name, &["ICU", "Pharmacy"]);
    let mut cases: Vec<(&str, String, RefusalKind)> = Vec::new();

    let unsigned = c("cara@stmary.example");
    cases.push((
        "unsigned",
        saml_idp::response_xml(&unsigned, &saml_idp::assertion_xml(&unsigned, None), None),
        RefusalKind::Unsigned,
    ));
    cases.push((
        "signed by an unknown key",
        saml_idp::signed_response(&c("cara@stmary.example"), &k.stranger, RSA_SHA256),
        RefusalKind::BadSignature,
    ));
    cases.push((
        "SHA-1",
        saml_idp::signed_response(&c("cara@stmary.example"), &k.idp, RSA_SHA1),
        RefusalKind::WeakAlgorithm,
    ));
    let good = s.signed("cara@stmary.example", &["ICU"]);
    cases.push((
        "an attribute tampered with after signing",
        good.replace(
            "<saml:AttributeValue>ICU</saml:AttributeValue>",
            "<saml:AttributeValue>Pharmacy</saml:AttributeValue>",
        ),
        RefusalKind::Tampered,
    ));
    // Signature wrapping: the signed assertion kept, a forged one placed where a careless
    // reader looks.
    let forged_claims = c("mallory@stmary.example");
    let forged = saml_idp::assertion_xml(&forged_claims, None);
    let signed_assertion = {
        let a = good.find("<saml:Assertion").unwrap();
        let b = good.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
        good[a..b].to_string()
    };
    let status_end = good.find("</samlp:Status>").unwrap() + "</samlp:Status>".len();
    cases.push((
        "a second, unsigned assertion before the signed one",
        format!("{}{}{}", &good[..status_end], forged, &good[status_end..]),
        RefusalKind::Wrapping,
    ));
    cases.push((
        "a second, unsigned assertion after the signed one",
        good.replace("</samlp:Response>", &format!("{forged}</samlp:Response>")),
        RefusalKind::Wrapping,
    ));
    cases.push((
        "the signed assertion moved into Extensions",
        good.replace(
            &signed_assertion,
            &format!("<samlp:Extensions>{signed_assertion}</samlp:Extensions>{forged}"),
        ),
        RefusalKind::Wrapping,
    ));
    // The forged assertion carries the signature, the signed original hidden in its Object.
    let sig_start = signed_assertion.find("<ds:Signature").unwrap();
    let sig_end = signed_assertion.find("</ds:Signature>").unwrap();
    let original_without_sig = format!(
        "{}{}",
        &signed_assertion[..sig_start],
        &signed_assertion[sig_end + "</ds:Signature>".len()..]
    );
    let moved_signature = format!(
        "{}<ds:Object>{}</ds:Object></ds:Signature>",
        &signed_assertion[sig_start..sig_end],
        original_without_sig
    );
    let forged_same_id = forged.replace(&forged_claims.assertion_id, &signed_assertion_id(&good));
    let issuer_end = forged_same_id.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
    cases.push((
        "the signed assertion moved into the signature's Object",
        good.replace(
            &signed_assertion,
            &format!(
                "{}{}{}",
                &forged_same_id[..issuer_end],
                moved_signature,
                &forged_same_id[issuer_end..]
            ),
        ),
        RefusalKind::Wrapping,
    ));
    cases.push((
        "duplicate IDs",
        good.replace(
            &signed_assertion,
            &format!("{signed_assertion}<samlp:Extensions>{forged_same_id}</samlp:Extensions>"),
        ),
        RefusalKind::Wrapping,
    ));
    // Comment truncation: the IdP signed user@evil.example.trusted.example.
    let evil = s.signed("user@evil.example.trusted.example", &["ICU"]);
    cases.push((
        "a comment inside the NameID",
        evil.replacen(
            ">user@evil.example.trusted.example</saml:NameID>",
            ">user@evil.example<!---->.trusted.example</saml:NameID>",
            1,
        ),
        RefusalKind::Comment,
    ));
    // Validly signed responses whose claims are wrong, one at a time.
    let wrong_claims: [(&str, Wrong, RefusalKind); 7] = [
        (
            "expired",
            |c| {
                c.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
                c.not_on_or_after = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
            },
            RefusalKind::Expired,
        ),
        (
            "not yet valid",
            |c| {
                c.not_before = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
                c.not_on_or_after = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
            },
            RefusalKind::NotYetValid,
        ),
        (
            "a wrong audience",
            |c| c.audience = "https://other-sp.example".into(),
            RefusalKind::Audience,
        ),
        (
            "a wrong destination",
            |c| {
                c.destination = "https://evil.example/acs".into();
                c.recipient = "https://evil.example/acs".into();
            },
            RefusalKind::Destination,
        ),
        (
            "a wrong issuer",
            |c| c.issuer = "https://idp.other.example".into(),
            RefusalKind::Issuer,
        ),
        (
            "a confirmation that is not bearer",
            |c| c.method = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key".into(),
            RefusalKind::Confirmation,
        ),
        (
            "a non-Success status",
            |c| c.status = "urn:oasis:names:tc:SAML:2.0:status:Responder".into(),
            RefusalKind::Status,
        ),
    ];
    for (name, wrong, kind) in wrong_claims {
        let mut claims = c("cara@stmary.example");
        wrong(&mut claims);
        cases.push((
            name,
            saml_idp::signed_response(&claims, &k.idp, RSA_SHA256),
            kind,
        ));
    }
    for (name, xml, kind) in &cases {
        let got = s.refused(xml).await;
        assert_eq!(got, *kind, "{name}: refused as {got:?}, expected {kind:?}");
        assert_eq!(s.state().await, before, "{name} changed something");
    }
    // Each refusal is recorded with its reason.
    let runs = s.store.sync_runs(s.org, s.source.id, 100).await.unwrap();
    assert_eq!(
        runs.iter().filter(|r| r.error.is_some()).count(),
        cases.len()
    );
}

/// What makes a validly signed response's claims wrong.
type Wrong = fn(&mut Claims);

/// The ID of the signed assertion in `xml`.
fn signed_assertion_id(xml: &str) -> String {
    let a = xml.find("<saml:Assertion").unwrap();
    let id = xml[a..].find(" ID=\"").unwrap() + a + 5;
    let end = xml[id..].find('"').unwrap() + id;
    xml[id..end].to_string()
}

async fn a_replay_is_refused_in_one_process_and_across_processes(h: &Harness) {
    if !saml_idp::ready() {
        return;
    }
    let s = scene(h, &[&keys().idp]).await;
    let xml = s.signed("dan@stmary.example", &["ICU"]);
    s.login(&xml).await.unwrap();
    let after_first = s.state().await;
    assert_eq!(s.refused(&xml).await, RefusalKind::Replay);
    assert_eq!(s.state().await, after_first);

    // Another process (the real binary, on the same store) refuses it as well.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("response.xml");
    std::fs::write(&file, &xml).unwrap();
    let out = h
        .cli(dir.path())
        .args(["--org", "St Mary", "saml", "ingest", "--connection", "Okta"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains("replay"), "{stderr}");

    // Two processes given one new response at once: exactly one accepts it.
    let fresh = s.signed("eve@stmary.example", &["ICU"]);
    let b64 = dir.path().join("fresh.b64");
    std::fs::write(&b64, saml_idp::post_value(&fresh)).unwrap();
    let spawn = || {
        h.cli(dir.path())
            .args(["--org", "St Mary", "saml", "ingest", "--connection", "Okta"])
            .arg(&b64)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut codes = vec![a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(
        codes,
        vec![Some(0), Some(7)],
        "{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let eves = s
        .store
        .list_users(s.org, ListRange::first(100))
        .await
        .unwrap()
        .into_iter()
        .filter(|u| u.user_name == "eve@stmary.example")
        .count();
    assert_eq!(eves, 1);
}

async fn dtds_entities_and_oversized_bodies_are_refused(h: &Harness) {
    if !saml_idp::ready() {
        return;
    }
    let s = scene(h, &[&keys().idp]).await;
    let before = s.state().await;
    let good = s.signed("fay@stmary.example", &["ICU"]);
    let body = good.trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let with_doctype = |dtd: &str| format!("<?xml version=\"1.0\"?>\n{dtd}\n{body}");
    let cases = [
        ("a DTD", with_doctype("<!DOCTYPE samlp:Response>")),
        (
            "an external entity",
            with_doctype("<!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>")
                .replace(">fay@stmary.example<", ">&xxe;<"),
        ),
        (
            "an entity-expansion bomb",
            with_doctype(concat!(
                "<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\">",
                "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">",
                "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">",
                "<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">",
                "<!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">",
                "<!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\">]>"
            ))
            .replace(">ICU<", ">&f;<"),
        ),
        ("an undeclared entity", good.replace(">ICU<", ">&lol;<")),
    ];
    for (name, xml) in &cases {
        let kind = s.refused(xml).await;
        assert!(
            matches!(kind, RefusalKind::Dtd | RefusalKind::Malformed),
            "{name}: {kind:?}"
        );
        assert_eq!(s.state().await, before, "{name} changed something");
    }
    assert_eq!(
        s.refused(&with_doctype("<!DOCTYPE r>")).await,
        RefusalKind::Dtd
    );

    // Oversized: refused by the ACS with 413, and by the verifier itself.
    let (addr, _stop) =
        serve::spawn_local(serve::app(s.store.clone(), ChangeFeed::default(), None))
            .await
            .unwrap();
    let huge = "A".repeat(scimdesk::api::saml::MAX_ACS_BODY + 1);
    let answer = reqwest::Client::new()
        .post(format!("http://{addr}/saml/{}/acs", s.source.id))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("SAMLResponse={huge}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 413);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["reason"], "too_large");
    let padded = good.replace(
        "</samlp:Response>",
        &format!(
            "<samlp:Extensions>{}</samlp:Extensions></samlp:Response>",
            "x".repeat(scimdesk::connectors::saml::MAX_RESPONSE_BYTES)
        ),
    );
    assert_eq!(s.refused(&padded).await, RefusalKind::TooLarge);
    assert_eq!(s.state().await, before);
}

async fn either_certificate_verifies_during_a_rollover(h: &Harness) {
    if !saml_idp::ready() {
        return;
    }
    let k = keys();
    let s = scene(h, &[&k.idp, &k.idp_next]).await;
    let old = saml_idp::signed_response(
        &s.claims("gus@stmary.example", &["ICU"]),
        &k.idp,
        RSA_SHA256,
    );
    let new = saml_idp::signed_response(
        &s.claims("gus@stmary.example", &["ICU"]),
        &k.idp_next,
        RSA_SHA256,
    );
    s.login(&old).await.unwrap();
    s.login(&new).await.unwrap();
    // The IdP publishes its metadata at a URL (a real HTTP server here); the source is pointed
    // at it, then refreshed after the rollover, when it lists the new certificate only.
    let served = Arc::new(std::sync::Mutex::new(saml_idp::idp_metadata(
        ISSUER,
        &[&k.idp, &k.idp_next],
    )));
    let app = axum::Router::new().route(
        "/metadata",
        axum::routing::get({
            let served = served.clone();
            move || {
                let served = served.clone();
                async move { served.lock().unwrap().clone() }
            }
        }),
    );
    let (addr, _stop) = serve::spawn_local(app).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let set = |args: &[&str]| {
        let out = h
            .cli(dir.path())
            .args(["--org", "St Mary", "connection", "set", "Okta"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let url = format!("http://{addr}/metadata");
    let said = set(&["--metadata-url", &url]);
    assert!(said.contains("0 new, 0 no longer trusted"), "{said}");
    *served.lock().unwrap() = saml_idp::idp_metadata(ISSUER, &[&k.idp_next]);
    let said = set(&["--refresh-metadata"]);
    assert!(said.contains("0 new, 1 no longer trusted"), "{said}");
    let old = saml_idp::signed_response(
        &s.claims("gus@stmary.example", &["ICU"]),
        &k.idp,
        RSA_SHA256,
    );
    assert_eq!(s.refused(&old).await, RefusalKind::BadSignature);
    let new = saml_idp::signed_response(
        &s.claims("gus@stmary.example", &["ICU"]),
        &k.idp_next,
        RSA_SHA256,
    );
    s.login(&new).await.unwrap();
}

async fn an_encrypted_assertion_is_decrypted_and_accepted(h: &Harness) {
    if !saml_idp::ready() {
        return;
    }
    let s = scene(h, &[&keys().idp]).await;
    let signed = s.signed("hal@stmary.example", &["ICU"]);
    let encrypted = saml_idp::encrypt_assertion(&signed, &keys().sp);
    assert!(encrypted.contains("EncryptedAssertion"));
    assert!(!encrypted.contains("hal@stmary.example"), "not encrypted");
    let summary = s.login(&encrypted).await.unwrap();
    assert_eq!(summary.user_name, "hal@stmary.example");
    let (users, _) = s.state().await;
    assert_eq!(users[0].2, vec!["icu-nurse".to_string()]);
    // Encrypted to another key, it cannot be read.
    let other =
        saml_idp::encrypt_assertion(&s.signed("hal@stmary.example", &["ICU"]), &keys().stranger);
    assert_eq!(s.refused(&other).await, RefusalKind::Decryption);
    // An encrypted assertion that nobody signed is refused.
    let c = s.claims("hal@stmary.example", &["ICU"]);
    let unsigned = saml_idp::response_xml(&c, &saml_idp::assertion_xml(&c, None), None);
    let unsigned = saml_idp::encrypt_assertion(&unsigned, &keys().sp);
    assert_eq!(s.refused(&unsigned).await, RefusalKind::Unsigned);
}

/// IdPs sign the Response, the Assertion, or both: what a Response signature covers is read from
/// the Response's verified bytes, so changing the assertion inside it is tampering.
async fn a_signed_response_covers_its_assertion(h: &Harness) {
    if !saml_idp::ready() {
        return;
    }
    let s = scene(h, &[&keys().idp]).await;
    let k = keys();
    let c = s.claims("ivy@stmary.example", &["ICU"]);
    let response_only = saml_idp::sign(
        &saml_idp::response_xml(&c, &saml_idp::assertion_xml(&c, None), Some(RSA_SHA256)),
        &k.idp,
    );
    assert_eq!(s.login(&response_only).await.unwrap().user, "created");
    let c = s.claims("ivy@stmary.example", &["ICU"]);
    let response_only = saml_idp::sign(
        &saml_idp::response_xml(&c, &saml_idp::assertion_xml(&c, None), Some(RSA_SHA256)),
        &k.idp,
    );
    let before = s.state().await;
    assert_eq!(
        s.refused(&response_only.replace(">ICU<", ">Pharmacy<"))
            .await,
        RefusalKind::Tampered
    );
    assert_eq!(s.state().await, before);
    // Both signed: the assertion first, on its own, then the Response around it.
    let c = s.claims("ivy@stmary.example", &["ICU", "Nurses"]);
    let assertion = saml_idp::sign(&saml_idp::assertion_xml(&c, Some(RSA_SHA256)), &k.idp);
    let assertion = &assertion[assertion.find("<saml:Assertion").unwrap()..];
    let both = saml_idp::sign(
        &saml_idp::response_xml(&c, assertion.trim_end(), Some(RSA_SHA256)),
        &k.idp,
    );
    assert_eq!(both.matches("<ds:SignatureValue>").count(), 2);
    assert_eq!(s.login(&both).await.unwrap().joined, 1);
    // A signed Response around an encrypted, unsigned assertion.
    let c = s.claims("ivy@stmary.example", &["ICU"]);
    let plain = saml_idp::response_xml(&c, &saml_idp::assertion_xml(&c, None), Some(RSA_SHA256));
    let sealed = saml_idp::sign(&saml_idp::encrypt_assertion(&plain, &k.sp), &k.idp);
    assert!(!sealed.contains("ivy@stmary.example"));
    std::fs::write(format!("/tmp/sealed-{}.xml", h.backend), &sealed).unwrap();
    assert_eq!(s.login(&sealed).await.unwrap().left, 1);
    // A Response signed by a stranger is refused even though its assertion is fine.
    let c = s.claims("ivy@stmary.example", &["ICU"]);
    let assertion = saml_idp::sign(&saml_idp::assertion_xml(&c, Some(RSA_SHA256)), &k.idp);
    let assertion = &assertion[assertion.find("<saml:Assertion").unwrap()..];
    let mixed = saml_idp::sign(
        &saml_idp::response_xml(&c, assertion.trim_end(), Some(RSA_SHA256)),
        &k.stranger,
    );
    assert_eq!(s.refused(&mixed).await, RefusalKind::BadSignature);
}

async fn the_cli_adds_a_saml_source_and_both_metadata_are_served(h: &Harness) {
    if !saml_idp::ready() {
        return;
    }
    scimdesk::connectors::ensure_tls_provider();
    let store: Arc<dyn Store> = h.store.clone();
    store.create_organization(&op(), "St Mary").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let metadata = dir.path().join("idp.xml");
    std::fs::write(&metadata, saml_idp::idp_metadata(ISSUER, &[&keys().idp])).unwrap();
    let run = |args: &[&str]| {
        h.cli(dir.path())
            .args(["--org", "St Mary"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "connection",
        "add",
        "Entra",
        "--kind",
        "saml",
        "--metadata-file",
        metadata.to_str().unwrap(),
        "--sp-entity-id",
        SP,
        "--groups-attribute",
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
        "--email-attribute",
        "email",
        "--username-from",
        "nameid",
        "--clock-skew-secs",
        "30",
        "--public-url",
        PUBLIC,
        "--sp-key-file",
        keys().sp.key.to_str().unwrap(),
        "--sp-cert-file",
        keys().sp.cert.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ACS URL:"), "{stdout}");
    assert!(stdout.contains(ISSUER), "{stdout}");
    // The SP key is sealed: never shown.
    let show = run(&["connection", "show", "Entra"]);
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    // A new SP key must be a private key.
    std::fs::write(dir.path().join("not-a-key.pem"), "hello").unwrap();
    let out = run(&[
        "connection",
        "rotate-secret",
        "Entra",
        "--secret-file",
        dir.path().join("not-a-key.pem").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SP key"));
    // A captured file that is not a response is refused, recorded, and changes nothing.
    std::fs::write(dir.path().join("garbage.txt"), "not base64 at all!").unwrap();
    let out = run(&[
        "saml",
        "ingest",
        "--connection",
        "Entra",
        dir.path().join("garbage.txt").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&out.stderr).contains("malformed"));
    // Missing flags are named; a bad metadata file is refused plainly.
    let out = run(&[
        "connection",
        "add",
        "X",
        "--kind",
        "saml",
        "--sp-entity-id",
        SP,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--metadata-file"));
    std::fs::write(dir.path().join("bad.xml"), "<nope/>").unwrap();
    let out = run(&[
        "connection",
        "add",
        "Y",
        "--kind",
        "saml",
        "--metadata-file",
        dir.path().join("bad.xml").to_str().unwrap(),
        "--sp-entity-id",
        SP,
        "--groups-attribute",
        "groups",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("identity providers"));

    let org = store
        .organization_by_name("St Mary")
        .await
        .unwrap()
        .unwrap();
    let conn = store
        .connection_by_name(org.id, "Entra")
        .await
        .unwrap()
        .unwrap();
    let (addr, _stop) = serve::spawn_local(serve::app(store.clone(), ChangeFeed::default(), None))
        .await
        .unwrap();
    let answer = reqwest::get(format!("http://{addr}/saml/{}/metadata", conn.id))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let xml = answer.text().await.unwrap();
    assert!(xml.contains(&format!("entityID=\"{SP}\"")), "{xml}");
    assert!(xml.contains(&format!("Location=\"{PUBLIC}/saml/{}/acs\"", conn.id)));
    assert!(xml.contains(&keys().sp.cert_base64()));
    let printed = run(&["saml", "metadata", "--connection", "Entra"]);
    assert_eq!(String::from_utf8_lossy(&printed.stdout), xml);
    // The metadata is read back by the IdP-metadata reader as an SP (no IdP): refused.
    assert!(scimdesk::connectors::saml::metadata::parse_idp_metadata(&xml).is_err());
}

async fn health_shows_logins_and_each_refusal(h: &Harness) {
    if !saml_idp::ready() {
        return;
    }
    let s = scene(h, &[&keys().idp]).await;
    let source = s
        .store
        .connection(s.org, s.source.id)
        .await
        .unwrap()
        .unwrap();
    let health = scimdesk::engine::health::source_health(&*s.store, &source)
        .await
        .unwrap();
    assert_eq!(health.reason, "no login yet");
    s.login(&s.signed("ida@stmary.example", &["ICU"]))
        .await
        .unwrap();
    let mut audience = s.claims("ida@stmary.example", &["ICU"]);
    audience.audience = "https://other-sp.example".into();
    s.refused(&saml_idp::signed_response(
        &audience,
        &keys().idp,
        RSA_SHA256,
    ))
    .await;
    let health = scimdesk::engine::health::source_health(&*s.store, &source)
        .await
        .unwrap();
    assert!(health.last_success_at.is_some());
    assert_eq!((health.runs_24h.attempts, health.runs_24h.failures), (2, 1));
    assert!(health.reason.contains("Audience"), "{}", health.reason);
    assert_eq!(health.recent_errors.len(), 1);
    // The CLI lists the refusal with its reason.
    let dir = tempfile::tempdir().unwrap();
    let out = h
        .cli(dir.path())
        .args(["--org", "St Mary", "connection", "health", "Okta"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("refused logins"), "{stdout}");
    assert!(stdout.contains("audience"), "{stdout}");
    // The audit log names each login and refusal.
    let events = s
        .store
        .list_audit(
            s.org,
            &AuditFilter {
                action_prefix: Some("saml.".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"saml.login") && actions.contains(&"saml.login_refused"));
}
