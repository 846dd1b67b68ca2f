//! A SAML identity provider for tests, whose responses are made by an independent
//! implementation: keys and certificates by the `openssl` command, signatures and encryption
//! by Debian's `xmlsec1` (the reference XML-Security tool, libxmlsec1 over libxml2 and
//! OpenSSL), never by scimdesk's own code. `.ci/run` installs `xmlsec1`.
//!
//! [`Claims`] describe a response; [`response_xml`] and [`assertion_xml`] write its XML with
//! signature templates, and [`sign`] and [`encrypt_assertion`] have `xmlsec1` sign and encrypt it. Tests that attack the verifier take a
//! validly signed response and rearrange it as an attacker would.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
pub const RSA_SHA256: (&str, &str) = (
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmlenc#sha256",
);
pub const RSA_SHA1: (&str, &str) = (
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "http://www.w3.org/2000/09/xmldsig#sha1",
);

/// Whether `xmlsec1` and `openssl` are here. With `CI=true` they are required (`.ci/run`
/// installs them); elsewhere a missing one skips the SAML tests, saying so.
pub fn ready() -> bool {
    let have = |tool: &str, arg: &str| {
        Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let ok = have("xmlsec1", "--version") && have("openssl", "version");
    if !ok {
        assert!(
            !crate::support::pg_required(),
            "xmlsec1 and openssl are required with CI=true (.ci/run installs them)"
        );
        eprintln!(
            "skipping: the SAML tests need xmlsec1 and openssl (apt-get install xmlsec1 openssl)"
        );
    }
    ok
}

/// A key pair with its self-signed certificate, made by `openssl`.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub key: PathBuf,
    pub cert: PathBuf,
}

impl KeyPair {
    /// The certificate as metadata carries it: base64 DER on one line.
    pub fn cert_base64(&self) -> String {
        let pem = std::fs::read_to_string(&self.cert).unwrap();
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    pub fn key_pem(&self) -> String {
        std::fs::read_to_string(&self.key).unwrap()
    }
}

/// The keys every test shares (made once per test process): the IdP's current and next
/// signing keys (a rollover), a stranger's, and our SP's encryption key.
pub struct Keys {
    _dir: tempfile::TempDir,
    pub idp: KeyPair,
    pub idp_next: KeyPair,
    pub stranger: KeyPair,
    pub sp: KeyPair,
}

fn make_key(dir: &Path, name: &str) -> KeyPair {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
        ])
        .arg("-subj")
        .arg(format!("/CN={name}.example"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl must be installed (see .ci/run)");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    KeyPair { key, cert }
}

/// The shared keys.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        Keys {
            idp: make_key(dir.path(), "idp"),
            idp_next: make_key(dir.path(), "idp-next"),
            stranger: make_key(dir.path(), "stranger"),
            sp: make_key(dir.path(), "sp"),
            _dir: dir,
        }
    })
}

/// The IdP's metadata listing these signing certificates.
pub fn idp_metadata(entity_id: &str, certs: &[&KeyPair]) -> String {
    let descriptors: String = certs
        .iter()
        .map(|k| {
            format!(
                "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>",
                k.cert_base64()
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\"?>\n<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"{entity_id}\"><md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">{descriptors}<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"https://idp.example/sso\"/></md:IDPSSODescriptor></md:EntityDescriptor>\n"
    )
}

/// What a response says.
#[derive(Debug, Clone)]
pub struct Claims {
    pub response_id: String,
    pub assertion_id: String,
    pub issuer: String,
    pub name_id: String,
    pub audience: String,
    pub destination: String,
    pub recipient: String,
    pub not_before: OffsetDateTime,
    pub not_on_or_after: OffsetDateTime,
    pub status: String,
    pub method: String,
    pub groups_attribute: String,
    pub groups: Vec<String>,
    pub email: Option<String>,
}

impl Claims {
    /// A valid login of `name_id` with `groups`, for the SP `audience` at `acs`.
    pub fn login(issuer: &str, audience: &str, acs: &str, name_id: &str, groups: &[&str]) -> Self {
        let now = OffsetDateTime::now_utc();
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            response_id: format!("_r{id}"),
            assertion_id: format!("_a{id}"),
            issuer: issuer.into(),
            name_id: name_id.into(),
            audience: audience.into(),
            destination: acs.into(),
            recipient: acs.into(),
            not_before: now - time::Duration::minutes(1),
            not_on_or_after: now + time::Duration::minutes(5),
            status: SUCCESS.into(),
            method: BEARER.into(),
            groups_attribute: "groups".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            email: Some(name_id.into()),
        }
    }
}

fn at(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap().format(&Rfc3339).unwrap()
}

/// A signature template for xmlsec1 over the element with `id`.
pub fn signature_template(id: &str, (method, digest): (&str, &str)) -> String {
    format!(
        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/><ds:SignatureMethod Algorithm=\"{method}\"/><ds:Reference URI=\"#{id}\"><ds:Transforms><ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/><ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms><ds:DigestMethod Algorithm=\"{digest}\"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate></ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"
    )
}

/// The assertion's XML, with a signature template after its Issuer when `signed`.
pub fn assertion_xml(c: &Claims, signed: Option<(&str, &str)>) -> String {
    let sig = signed
        .map(|alg| signature_template(&c.assertion_id, alg))
        .unwrap_or_default();
    let email = c
        .email
        .as_ref()
        .map(|e| format!("<saml:Attribute Name=\"email\"><saml:AttributeValue>{e}</saml:AttributeValue></saml:Attribute>"))
        .unwrap_or_default();
    let groups: String = c
        .groups
        .iter()
        .map(|g| format!("<saml:AttributeValue>{g}</saml:AttributeValue>"))
        .collect();
    format!(
        concat!(
            "<saml:Assertion xmlns:saml=\"{saml}\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{now}\">",
            "<saml:Issuer>{issuer}</saml:Issuer>{sig}",
            "<saml:Subject><saml:NameID Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress\">{name_id}</saml:NameID>",
            "<saml:SubjectConfirmation Method=\"{method}\"><saml:SubjectConfirmationData NotOnOrAfter=\"{nooa}\" Recipient=\"{recipient}\"/></saml:SubjectConfirmation></saml:Subject>",
            "<saml:Conditions NotBefore=\"{nb}\" NotOnOrAfter=\"{nooa}\"><saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions>",
            "<saml:AuthnStatement AuthnInstant=\"{now}\"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>",
            "<saml:AttributeStatement>{email}<saml:Attribute Name=\"{ga}\">{groups}</saml:Attribute></saml:AttributeStatement>",
            "</saml:Assertion>"
        ),
        saml = SAML,
        id = c.assertion_id,
        now = at(OffsetDateTime::now_utc()),
        issuer = c.issuer,
        sig = sig,
        name_id = c.name_id,
        method = c.method,
        nooa = at(c.not_on_or_after),
        recipient = c.recipient,
        nb = at(c.not_before),
        audience = c.audience,
        email = email,
        ga = c.groups_attribute,
        groups = groups,
    )
}

/// The response's XML around `assertion` (already XML), with a signature template after its
/// Issuer when `signed`.
pub fn response_xml(c: &Claims, assertion: &str, signed: Option<(&str, &str)>) -> String {
    let sig = signed
        .map(|alg| signature_template(&c.response_id, alg))
        .unwrap_or_default();
    format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
            "<samlp:Response xmlns:samlp=\"{samlp}\" xmlns:saml=\"{saml}\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{now}\" Destination=\"{dest}\">",
            "<saml:Issuer>{issuer}</saml:Issuer>{sig}",
            "<samlp:Status><samlp:StatusCode Value=\"{status}\"/></samlp:Status>",
            "{assertion}</samlp:Response>\n"
        ),
        samlp = SAMLP,
        saml = SAML,
        id = c.response_id,
        now = at(OffsetDateTime::now_utc()),
        dest = c.destination,
        issuer = c.issuer,
        sig = sig,
        status = c.status,
        assertion = assertion,
    )
}

/// Runs xmlsec1 with `args` on a template, returning its output document.
fn xmlsec1(args: &[&str], template: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xml");
    let output = dir.path().join("out.xml");
    std::fs::write(&input, template).unwrap();
    let out = Command::new("xmlsec1")
        .args(args)
        .arg("--output")
        .arg(&output)
        .arg(&input)
        .output()
        .expect("xmlsec1 must be installed (see .ci/run)");
    assert!(
        out.status.success(),
        "xmlsec1 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&output).unwrap()
}

/// Signs every signature template of `xml` with `key` (IDs of Assertions and Responses).
pub fn sign(xml: &str, key: &KeyPair) -> String {
    let keys = format!("{},{}", key.key.display(), key.cert.display());
    // xmlsec1 signs the first template it finds; a document with two is signed inside out.
    let mut doc = xml.to_string();
    // (libxml2 writes an empty template element as `<ds:SignatureValue/>` once it has been
    // through xmlsec1, e.g. to encrypt.)
    let templates = doc
        .matches("<ds:SignatureValue></ds:SignatureValue>")
        .count()
        + doc.matches("<ds:SignatureValue/>").count();
    for _ in 0..templates {
        doc = xmlsec1(
            &[
                "--sign",
                "--privkey-pem",
                &keys,
                "--id-attr:ID",
                &format!("{SAML}:Assertion"),
                "--id-attr:ID",
                &format!("{SAMLP}:Response"),
            ],
            &doc,
        );
    }
    doc
}

/// Wraps the (signed) Assertion of a response in an EncryptedAssertion and has xmlsec1
/// encrypt it to our SP certificate (AES-256-GCM, the key by RSA-OAEP: `rsa-oaep-mgf1p`, what
/// SAML IdPs send and the only OAEP this xmlsec1 writes).
pub fn encrypt_assertion(response: &str, sp: &KeyPair) -> String {
    let start = response.find("<saml:Assertion").unwrap();
    let end = response.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
    let wrapped = format!(
        "{}<saml:EncryptedAssertion>{}</saml:EncryptedAssertion>{}",
        &response[..start],
        &response[start..end],
        &response[end..]
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.xml");
    std::fs::write(&data, &wrapped).unwrap();
    let template = concat!(
        "<xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\" Type=\"http://www.w3.org/2001/04/xmlenc#Element\">",
        "<xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2009/xmlenc11#aes256-gcm\"/>",
        "<ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><xenc:EncryptedKey>",
        "<xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p\"/>",
        "<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>",
        "<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>"
    );
    xmlsec1(
        &[
            "--encrypt",
            "--pubkey-cert-pem",
            &sp.cert.display().to_string(),
            "--session-key",
            "aes-256",
            "--xml-data",
            &data.display().to_string(),
            "--node-name",
            &format!("{SAML}:Assertion"),
        ],
        template,
    )
}

/// A response whose assertion `key` signed with `alg`.
pub fn signed_response(c: &Claims, key: &KeyPair, alg: (&str, &str)) -> String {
    sign(&response_xml(c, &assertion_xml(c, Some(alg)), None), key)
}

/// The base64 `SAMLResponse` of the HTTP-POST binding.
pub fn post_value(xml: &str) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, xml)
}
