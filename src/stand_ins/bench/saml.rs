//! `bench saml`: SAML logins, each a signed assertion (RSA-2048, SHA-256) verified and
//! ingested exactly as the ACS does it (`engine::saml::ingest`: verification, the replay
//! cache, the plan, the login's transaction with its fan-out to a role-bound target, the
//! record in health), on a store of its own.
//!
//! The IdP's key is made by the `openssl` command; the assertions are signed beforehand by
//! bergshamra's signer (the bench measures the verifier, not a signer; the tests use xmlsec1
//! for independence). Every assertion has an ID of its own, so none is a replay.
//!
//! Three runs: every user's first login (users created), then a closed loop of concurrent
//! logins for the highest rate, then logins paced at `rate` per second for the latency at that
//! rate. Most later logins repeat the user's groups; one in ten changes them.

use super::{BenchResult, BenchStore, Percentiles, StandInError, percentiles};
use crate::connectors::saml::{IdpTrust, Verification, verify_response};
use crate::domain::*;
use crate::engine::commands::{self, ConnectionSpec, MetadataSource, SamlSpec};
use crate::engine::saml::ingest;
use crate::store::Store;
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const ISSUER: &str = "https://idp.bench.example/saml";
const SP: &str = "https://scimdesk.bench.example/sp";
const GROUPS: usize = 20;

/// What to run.
#[derive(Debug, Clone)]
pub struct SamlBenchOptions {
    /// A temporary schema in this PostgreSQL database (else a temporary SQLite file).
    pub postgres: Option<String>,
    /// Distinct users (each logs in once first).
    pub users: usize,
    /// Logins in the closed-loop run.
    pub logins: usize,
    /// Logins in flight at once in the closed-loop run.
    pub concurrency: usize,
    /// Offered logins per second in the paced run.
    pub rate: u32,
    /// Seconds of the paced run.
    pub paced_secs: u64,
}

/// A run's figures.
#[derive(Debug, Serialize)]
pub struct RunFigures {
    /// Logins made.
    pub logins: usize,
    /// Logins refused or failed (0 expected).
    pub errors: usize,
    /// Logins per second.
    pub per_sec: f64,
    /// Each login's latency (ms).
    pub latency_ms: Percentiles,
}

/// What `bench saml` measured.
#[derive(Debug, Serialize)]
pub struct SamlBenchReport {
    /// The store.
    pub backend: String,
    /// Distinct users.
    pub users: usize,
    /// Verification alone (parse, signature, re-canonicalised bytes, conditions), ms.
    pub verify_ms: Percentiles,
    /// Every user's first login.
    pub first_logins: RunFigures,
    /// The closed loop.
    pub saturated: RunFigures,
    /// The paced run.
    pub paced: RunFigures,
    /// The rate offered in the paced run.
    pub offered_rate: u32,
}

/// Runs the benchmark.
pub async fn saml(options: SamlBenchOptions) -> BenchResult<SamlBenchReport> {
    let bench = BenchStore::open(options.postgres.as_deref()).await?;
    let result = run(bench.store.clone(), &options).await;
    bench.remove().await;
    result
}

/// An RSA-2048 key and its self-signed certificate, by the `openssl` command.
fn idp_key(dir: &std::path::Path) -> BenchResult<(String, String)> {
    let key = dir.join("idp.key");
    let cert = dir.join("idp.crt");
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/CN=idp.bench.example", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()?;
    if !out.status.success() {
        return Err(StandInError::Refused(format!(
            "openssl could not make the IdP's key: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok((
        std::fs::read_to_string(key)?,
        std::fs::read_to_string(cert)?,
    ))
}

/// The IdP's metadata with its certificate.
fn metadata(cert_pem: &str) -> BenchResult<String> {
    let b64 = crate::connectors::saml::metadata::certificate_from_pem(cert_pem)
        .map_err(|e| StandInError::Refused(e.to_string()))?;
    Ok(format!(
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"{ISSUER}\"><md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\"><md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor></md:IDPSSODescriptor></md:EntityDescriptor>"
    ))
}

/// One response template: user `n` asserting `groups`, with an ID of its own.
fn template(acs: &str, n: usize, groups: &[usize], seq: usize) -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| Timestamp::from_datetime(t).to_rfc3339();
    let (nb, na) = (
        fmt(now - time::Duration::minutes(1)),
        fmt(now + time::Duration::minutes(30)),
    );
    let values: String = groups
        .iter()
        .map(|g| format!("<saml:AttributeValue>Ward {g}</saml:AttributeValue>"))
        .collect();
    let icu = if n.is_multiple_of(3) {
        "<saml:AttributeValue>ICU</saml:AttributeValue>"
    } else {
        ""
    };
    let id = format!("_b{seq}x{}", uuid::Uuid::new_v4().simple());
    format!(
        concat!(
            "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_r{id}\" Version=\"2.0\" IssueInstant=\"{nb}\" Destination=\"{acs}\">",
            "<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>",
            "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{nb}\">",
            "<saml:Issuer>{issuer}</saml:Issuer>",
            "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>",
            "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
            "<ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>",
            "<ds:Reference URI=\"#{id}\"><ds:Transforms>",
            "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>",
            "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms>",
            "<ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><ds:DigestValue></ds:DigestValue>",
            "</ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue></ds:Signature>",
            "<saml:Subject><saml:NameID>nurse{n}@bench.example</saml:NameID>",
            "<saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\"><saml:SubjectConfirmationData NotOnOrAfter=\"{na}\" Recipient=\"{acs}\"/></saml:SubjectConfirmation></saml:Subject>",
            "<saml:Conditions NotBefore=\"{nb}\" NotOnOrAfter=\"{na}\"><saml:AudienceRestriction><saml:Audience>{sp}</saml:Audience></saml:AudienceRestriction></saml:Conditions>",
            "<saml:AttributeStatement><saml:Attribute Name=\"email\"><saml:AttributeValue>nurse{n}@bench.example</saml:AttributeValue></saml:Attribute>",
            "<saml:Attribute Name=\"groups\">{icu}{values}</saml:Attribute></saml:AttributeStatement>",
            "</saml:Assertion></samlp:Response>"
        ),
        id = id,
        nb = nb,
        na = na,
        acs = acs,
        issuer = ISSUER,
        n = n,
        sp = SP,
        icu = icu,
        values = values,
    )
}

/// The groups user `n` asserts at login `seq`: two wards of their own, and one time in ten
/// a third (a membership that comes and goes).
fn groups_of(n: usize, seq: usize) -> Vec<usize> {
    let mut g = vec![n % GROUPS, (n * 7 + 3) % GROUPS];
    if seq % 10 == 9 {
        g.push((n + seq) % GROUPS);
    }
    g.dedup();
    g
}

/// Signs `count` logins (users in turn, from `first_seq`) on every core.
fn sign_all(
    key_pem: &str,
    acs: &str,
    users: usize,
    first_seq: usize,
    count: usize,
) -> BenchResult<Vec<String>> {
    let key = bergshamra_keys::loader::load_pem_auto(key_pem.as_bytes(), None)
        .map_err(|e| StandInError::Refused(format!("the IdP key: {e}")))?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = count.div_ceil(threads).max(1);
    let mut handles = Vec::new();
    for t in 0..threads {
        let (key, acs) = (key.clone(), acs.to_string());
        let from = t * chunk;
        let to = ((t + 1) * chunk).min(count);
        handles.push(std::thread::spawn(
            move || -> Result<Vec<String>, String> {
                let mut keys = bergshamra_keys::KeysManager::new();
                keys.add_key(key);
                let ctx = bergshamra_dsig::DsigContext::new(keys);
                (from..to)
                    .map(|i| {
                        let seq = first_seq + i;
                        let n = seq % users;
                        bergshamra_dsig::sign::sign(
                            &ctx,
                            &template(&acs, n, &groups_of(n, seq), seq),
                        )
                        .map_err(|e| e.to_string())
                    })
                    .collect()
            },
        ));
    }
    let mut out = Vec::with_capacity(count);
    for h in handles {
        let part = h
            .join()
            .map_err(|_| StandInError::Stalled("a signing thread panicked".into()))?
            .map_err(|e| StandInError::Refused(format!("signing: {e}")))?;
        out.extend(part);
    }
    Ok(out)
}

/// Logs in with each response, `concurrency` at a time, or paced at `rate` per second.
async fn logins(
    store: Arc<dyn Store>,
    connection: &Connection,
    responses: Vec<String>,
    concurrency: usize,
    rate: Option<u32>,
) -> BenchResult<RunFigures> {
    let n = responses.len();
    let responses = Arc::new(responses);
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(n);
    let mut errors = 0;
    match rate {
        None => {
            let next = Arc::new(AtomicUsize::new(0));
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..concurrency.max(1) {
                let (store, next, responses, c) = (
                    store.clone(),
                    next.clone(),
                    responses.clone(),
                    connection.clone(),
                );
                tasks.spawn(async move {
                    let mut mine = Vec::new();
                    let mut errors = 0;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(xml) = responses.get(i) else { break };
                        let t = Instant::now();
                        if let Err(e) = ingest(&*store, &c, xml).await {
                            if errors == 0 {
                                tracing::warn!("bench saml: a login failed: {e}");
                                eprintln!("a login failed: {e}");
                            }
                            errors += 1;
                        }
                        mine.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    (mine, errors)
                });
            }
            while let Some(done) = tasks.join_next().await {
                let (mine, e) = done?;
                latencies.extend(mine);
                errors += e;
            }
        }
        Some(rate) => {
            let every = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..n {
                let due = started + every * i as u32;
                tokio::time::sleep_until(due.into()).await;
                let (store, responses, c) = (store.clone(), responses.clone(), connection.clone());
                tasks.spawn(async move {
                    let t = Instant::now();
                    let ok = ingest(&*store, &c, &responses[i]).await.is_ok();
                    (t.elapsed().as_secs_f64() * 1000.0, ok)
                });
            }
            while let Some(done) = tasks.join_next().await {
                let (ms, ok) = done?;
                latencies.push(ms);
                errors += usize::from(!ok);
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(RunFigures {
        logins: n,
        errors,
        per_sec: n as f64 / secs.max(1e-9),
        latency_ms: percentiles(latencies),
    })
}

async fn run(
    store: Arc<dyn crate::store::LoadableStore>,
    o: &SamlBenchOptions,
) -> BenchResult<SamlBenchReport> {
    let store: Arc<dyn Store> = store;
    let op = Actor::operator("bench");
    let dir = std::env::temp_dir().join(format!(
        "scimdesk-bench-saml-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    let keys = idp_key(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let (key_pem, cert_pem) = keys?;
    let org = store.create_organization(&op, "Bench Hospital").await?.id;
    let settings = commands::saml_settings(&SamlSpec {
        metadata: MetadataSource::Xml(metadata(&cert_pem)?),
        sp_entity_id: SP.into(),
        groups_attribute: "groups".into(),
        email_attribute: Some("email".into()),
        given_name_attribute: None,
        family_name_attribute: None,
        username_from: None,
        clock_skew_secs: None,
        public_url: None,
        acs_url: None,
        relay_state_allow: vec![],
        sp_certificate_pem: None,
    })
    .await?;
    let connection = commands::create_connection(
        &*store,
        &op,
        org,
        ConnectionSpec {
            name: "IdP".into(),
            kind: ConnectionKind::Saml,
            base_url: None,
            auth: None,
            settings,
            client_id: None,
            issuer: None,
        },
        None,
    )
    .await?;
    // A target bound to the role ICU maps to: logins that grant or take it queue work there
    // (nothing delivers it; the queue shows what a login costs to write).
    store
        .create_connection(
            &op,
            org,
            &NewConnection {
                name: "EHR".into(),
                kind: ConnectionKind::ScimTarget,
                base_url: Some("http://127.0.0.1:9/scim/v2".into()),
                auth_method: AuthMethod::Bearer,
                settings: json!({"roles": ["icu-nurse"]}),
            },
            Some(&crate::crypto::Secret::new("bench")),
        )
        .await?;
    let role = commands::ensure_role(&*store, &op, org, "icu-nurse").await?;
    commands::set_mapping(
        &*store,
        &op,
        org,
        &commands::MappingChange::Set {
            id: None,
            draft: RoleMappingDraft {
                source_connection_id: None,
                selector: GroupSelector::Path,
                match_mode: MatchMode::Exact,
                pattern: "/ICU".into(),
                role_id: role.id,
            },
        },
        &commands::Guard::default(),
        true,
    )
    .await?;
    let acs = SamlSettings::from_json(&connection.settings.0)
        .map_err(|e| StandInError::Refused(e.to_string()))?
        .acs_url(connection.id);
    let users = o.users.max(1);
    let paced_n = (u64::from(o.rate) * o.paced_secs) as usize;
    let first = sign_all(&key_pem, &acs, users, 0, users)?;
    let loop_set = sign_all(&key_pem, &acs, users, users, o.logins)?;
    let paced_set = sign_all(&key_pem, &acs, users, users + o.logins, paced_n)?;

    // Verification alone, on the first responses (no store).
    let s = SamlSettings::from_json(&connection.settings.0)
        .map_err(|e| StandInError::Refused(e.to_string()))?;
    let mut verify = Vec::new();
    for xml in first.iter().take(500) {
        let t = Instant::now();
        let trust =
            IdpTrust::from_certificates(&s.idp_certificates).map_err(StandInError::Refused)?;
        verify_response(
            xml,
            &Verification {
                settings: &s,
                acs_url: &acs,
                trust: &trust,
                sp_key: None,
                now: Timestamp::now(),
            },
        )
        .map_err(|e| StandInError::Refused(format!("the bench's own assertion: {e}")))?;
        verify.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let first_logins = logins(store.clone(), &connection, first, o.concurrency, None).await?;
    let saturated = logins(store.clone(), &connection, loop_set, o.concurrency, None).await?;
    let paced = logins(
        store.clone(),
        &connection,
        paced_set,
        o.concurrency,
        Some(o.rate),
    )
    .await?;
    Ok(SamlBenchReport {
        backend: store.backend().to_string(),
        users,
        verify_ms: percentiles(verify),
        first_logins,
        saturated,
        paced,
        offered_rate: o.rate,
    })
}
