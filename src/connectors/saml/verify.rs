//! Verifying a SAML 2.0 Response posted to our ACS (HTTP-POST binding), all of it, every time.
//!
//! The XML signature itself (references, transforms, canonicalisation, the RSA or ECDSA
//! check against the configured IdP certificates only) is `bergshamra`'s, a pure-Rust
//! XML-DSig/XML-Enc implementation tested against the xmlsec interop suite: nothing here
//! canonicalises or checks a signature by hand. What this module adds is SAML's part, in an
//! order that lets nothing unverified through:
//!
//! 1. the body's size, then a parse that refuses any DTD (so no entity, external or expanding);
//! 2. the shape: one `Response` holding exactly one assertion (plain or encrypted), directly,
//!    and no other assertion anywhere; every signature enveloped in the Response or that
//!    assertion, with one same-document reference to its parent's ID, and only SHA-256 or
//!    stronger algorithms on an allow-list;
//! 3. every signature verified by a configured certificate (`trusted_keys_only`, strict
//!    reference positions, duplicate IDs refused);
//! 4. the signed element canonicalised again exactly as its reference says, its digest checked
//!    against the signed `DigestValue`, and those bytes parsed anew: everything read
//!    afterwards (subject, attributes, conditions) is read from the verified bytes only;
//! 5. the SAML conditions: Issuer, Audience, Destination and Recipient, NotBefore and
//!    NotOnOrAfter within the clock skew, bearer confirmation, Success status; no comment
//!    inside the assertion (the NameID truncation trick).
//!
//! The replay check needs the store and is the engine's (`engine::saml`).

use super::refusal::{Refusal, RefusalKind as K};
use crate::domain::{Email, SamlSettings, SourceUser, Timestamp, VerifiedLogin};
use base64::Engine as _;
use bergshamra_c14n::C14nMode;
use bergshamra_dsig::{DsigContext, VerifyResult};
use bergshamra_keys::{Key, KeysManager};
use bergshamra_xml::nodeset::NodeSet;
use sha2::Digest as _;
use uppsala::{Document, NodeId, NodeKind};

/// The largest SAML Response accepted (the decoded XML; IdPs send a few KiB).
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

const SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// Signature algorithms accepted: RSA PKCS#1 v1.5 and ECDSA over SHA-256 or stronger.
const SIGNATURE_METHODS: &[&str] = &[
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
];

/// A reference digest we accept, and how to compute it.
#[derive(Clone, Copy)]
enum DigestMethod {
    Sha256,
    Sha384,
    Sha512,
}

impl DigestMethod {
    fn from_uri(uri: &str) -> Option<Self> {
        match uri {
            "http://www.w3.org/2001/04/xmlenc#sha256" => Some(Self::Sha256),
            "http://www.w3.org/2001/04/xmldsig-more#sha384" => Some(Self::Sha384),
            "http://www.w3.org/2001/04/xmlenc#sha512" => Some(Self::Sha512),
            _ => None,
        }
    }

    fn digest(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => sha2::Sha256::digest(bytes).to_vec(),
            Self::Sha384 => sha2::Sha384::digest(bytes).to_vec(),
            Self::Sha512 => sha2::Sha512::digest(bytes).to_vec(),
        }
    }
}

/// Names SHA-1 and other weak algorithms plainly when refusing them.
fn weak(what: &str, uri: &str) -> Refusal {
    if uri.to_ascii_lowercase().contains("sha1") {
        Refusal::new(
            K::WeakAlgorithm,
            format!("the {what} uses SHA-1 ({uri}); only SHA-256 or stronger is accepted"),
        )
    } else {
        Refusal::new(
            K::WeakAlgorithm,
            format!("the {what} algorithm {uri} is not accepted (SHA-256 or stronger only)"),
        )
    }
}

/// The IdP's signing certificates: the only keys a signature may verify with.
pub struct IdpTrust {
    keys: KeysManager,
}

impl std::fmt::Debug for IdpTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdpTrust({} certificates)", self.keys.len())
    }
}

impl IdpTrust {
    /// Trusts these certificates (base64 DER, as metadata carries them).
    pub fn from_certificates(certificates: &[String]) -> Result<Self, String> {
        let mut keys = KeysManager::new();
        for (i, c) in certificates.iter().enumerate() {
            let der = decode_base64(c)
                .ok_or_else(|| format!("IdP certificate {} is not base64", i + 1))?;
            let key = bergshamra_keys::loader::load_x509_cert_der(&der)
                .map_err(|e| format!("IdP certificate {}: {e}", i + 1))?;
            keys.add_key(key);
        }
        if keys.is_empty() {
            return Err("no IdP signing certificate is configured".into());
        }
        Ok(Self { keys })
    }
}

/// Our SP's private key, for assertions the IdP encrypts to us. Never printed.
pub struct SpKey {
    key: Key,
}

impl std::fmt::Debug for SpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpKey(********)")
    }
}

impl SpKey {
    /// Reads a PEM private key (PKCS#1 or PKCS#8, RSA or EC).
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let key = bergshamra_keys::loader::load_pem_auto(pem.as_bytes(), None)
            .map_err(|_| "the SP key is not a PEM private key".to_string())?;
        if !key.data.has_private_key() {
            return Err("the SP key must be a private key, not a certificate".into());
        }
        Ok(Self { key })
    }
}

/// Decodes base64 that may be folded over lines (as metadata and XML-DSig write it).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
}

/// Parses XML as untrusted input: any DOCTYPE is refused (so no entity of any kind).
fn parse(xml: &str) -> Result<Document<'_>, Refusal> {
    uppsala::Parser::new()
        .with_forbid_dtd(true)
        .with_forbid_entities(true)
        .with_max_depth(64)
        .parse(xml)
        .map_err(|e| {
            let text = e.to_string();
            if text.contains("DOCTYPE") || text.contains("DTD") || text.contains("ENTITY") {
                Refusal::new(
                    K::Dtd,
                    "a DTD is refused (no entities, external or internal)",
                )
            } else if text.to_ascii_lowercase().contains("entit") {
                Refusal::new(
                    K::Dtd,
                    format!("an entity reference that is not XML's own: {text}"),
                )
            } else {
                Refusal::new(K::Malformed, format!("not well-formed XML: {text}"))
            }
        })
}

/// Whether `node` is the element `ns:local`.
fn is(doc: &Document<'_>, node: NodeId, ns: &str, local: &str) -> bool {
    doc.element(node)
        .is_some_and(|e| e.matches_name_ns(ns, local))
}

/// The child elements of `node` named `ns:local`.
fn children<'d>(
    doc: &'d Document<'_>,
    node: NodeId,
    ns: &'d str,
    local: &'d str,
) -> impl Iterator<Item = NodeId> + 'd {
    doc.children_iter(node)
        .filter(move |c| is(doc, *c, ns, local))
}

/// The first child element of `node` named `ns:local`.
fn child(doc: &Document<'_>, node: NodeId, ns: &str, local: &str) -> Option<NodeId> {
    children(doc, node, ns, local).next()
}

/// Every element under `node` (itself included) named `ns:local`.
fn all_named(doc: &Document<'_>, node: NodeId, ns: &str, local: &str) -> Vec<NodeId> {
    std::iter::once(node)
        .chain(doc.descendants(node))
        .filter(|n| is(doc, *n, ns, local))
        .collect()
}

/// An element's whole text (every text node, so nothing hides behind a split).
fn text(doc: &Document<'_>, node: NodeId) -> String {
    doc.text_content_deep(node).trim().to_string()
}

fn attr<'d>(doc: &'d Document<'_>, node: NodeId, name: &str) -> Option<&'d str> {
    doc.element(node).and_then(|e| e.get_attribute(name))
}

/// One signature's claim: which element it signs, and how, as its SignedInfo says.
struct SignatureShape {
    signature: NodeId,
    /// The element it is enveloped in, which its one reference must name.
    signed: NodeId,
    mode: C14nMode,
    prefixes: Vec<String>,
    digest: DigestMethod,
    digest_value: Vec<u8>,
}

/// Checks a signature's SignedInfo before anything is verified: allowed algorithms only, one
/// reference, to the ID of the element the signature is enveloped in.
fn signature_shape(doc: &Document<'_>, signature: NodeId) -> Result<SignatureShape, Refusal> {
    let malformed = |what: &str| Refusal::new(K::Malformed, format!("the signature {what}"));
    let signed_info =
        child(doc, signature, DSIG, "SignedInfo").ok_or_else(|| malformed("has no SignedInfo"))?;
    let method = child(doc, signed_info, DSIG, "SignatureMethod")
        .and_then(|m| attr(doc, m, "Algorithm"))
        .ok_or_else(|| malformed("names no SignatureMethod"))?;
    if !SIGNATURE_METHODS.contains(&method) {
        return Err(weak("signature", method));
    }
    let c14n = child(doc, signed_info, DSIG, "CanonicalizationMethod")
        .and_then(|m| attr(doc, m, "Algorithm"))
        .ok_or_else(|| malformed("names no CanonicalizationMethod"))?;
    if C14nMode::from_uri(c14n).is_none() {
        return Err(Refusal::new(
            K::WeakAlgorithm,
            format!("the canonicalization {c14n} is not accepted"),
        ));
    }
    let references: Vec<NodeId> = children(doc, signed_info, DSIG, "Reference").collect();
    let [reference] = references[..] else {
        return Err(Refusal::new(
            K::Wrapping,
            format!(
                "a signature with {} references; exactly one, to the signed element, is accepted",
                references.len()
            ),
        ));
    };
    let uri = attr(doc, reference, "URI").unwrap_or_default();
    let Some(id) = uri.strip_prefix('#').filter(|id| !id.is_empty()) else {
        return Err(Refusal::new(
            K::Wrapping,
            "the signature's reference is not to an element of the response by its ID",
        ));
    };
    let signed = doc
        .parent(signature)
        .filter(|p| doc.element(*p).is_some())
        .ok_or_else(|| malformed("is not inside an element"))?;
    if attr(doc, signed, "ID") != Some(id) {
        return Err(Refusal::new(
            K::Wrapping,
            "the signature covers another element than the one it is enveloped in",
        ));
    }
    let digest_uri = child(doc, reference, DSIG, "DigestMethod")
        .and_then(|m| attr(doc, m, "Algorithm"))
        .ok_or_else(|| malformed("reference names no DigestMethod"))?;
    let digest = DigestMethod::from_uri(digest_uri).ok_or_else(|| weak("digest", digest_uri))?;
    let digest_value = child(doc, reference, DSIG, "DigestValue")
        .and_then(|v| decode_base64(&text(doc, v)))
        .ok_or_else(|| malformed("reference has no DigestValue"))?;
    // Transforms: the enveloped-signature transform and one canonicalization, nothing else
    // (no XPath, no XSLT, no Base64: a reference must mean exactly the element).
    let mut mode = None;
    let mut prefixes = Vec::new();
    let mut enveloped = false;
    if let Some(transforms) = child(doc, reference, DSIG, "Transforms") {
        for t in children(doc, transforms, DSIG, "Transform") {
            let alg = attr(doc, t, "Algorithm").unwrap_or_default();
            if alg == ENVELOPED {
                enveloped = true;
            } else if let Some(m) = C14nMode::from_uri(alg) {
                mode = Some(m);
                for inc in doc.children_iter(t) {
                    if let Some(list) = attr(doc, inc, "PrefixList") {
                        prefixes.extend(list.split_whitespace().map(str::to_string));
                    }
                }
            } else {
                return Err(Refusal::new(
                    K::WeakAlgorithm,
                    format!("the transform {alg} is not accepted"),
                ));
            }
        }
    }
    if !enveloped {
        return Err(Refusal::new(
            K::Wrapping,
            "the signature is not an enveloped signature of the element it is in",
        ));
    }
    Ok(SignatureShape {
        signature,
        signed,
        // Without a canonicalization transform, XML-DSig converts the node-set with
        // Canonical XML 1.0.
        mode: mode.unwrap_or(C14nMode::Inclusive),
        prefixes,
        digest,
        digest_value,
    })
}

/// The bytes a verified reference digested: the signed element, canonicalized as its
/// reference says, without its enveloped signature (and without comments: a same-document
/// reference by ID leaves them out). Checked against the signed DigestValue, so what is read
/// from them is exactly what was signed.
fn verified_bytes(doc: &Document<'_>, shape: &SignatureShape) -> Result<String, Refusal> {
    let set = NodeSet::tree_without_comments(shape.signed, doc)
        .subtract(&NodeSet::tree_with_comments(shape.signature, doc));
    let bytes = bergshamra_c14n::canonicalize_doc(doc, shape.mode, Some(&set), &shape.prefixes)
        .map_err(|e| Refusal::new(K::Malformed, format!("canonicalization failed: {e}")))?;
    if shape.digest.digest(&bytes) != shape.digest_value {
        return Err(Refusal::new(
            K::Tampered,
            "the signed element was changed after signing (its digest does not match)",
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| Refusal::new(K::Malformed, "the signed element is not UTF-8"))
}

/// Verifies every signature of `doc` with the IdP's certificates and checks its shape.
/// Returns the shapes by the element each signs.
fn verify_signatures(
    doc: &Document<'_>,
    source: &str,
    trust: &IdpTrust,
    allowed_parents: &[NodeId],
) -> Result<Vec<SignatureShape>, Refusal> {
    let signatures = all_named(doc, doc.root(), DSIG, "Signature");
    if signatures.is_empty() {
        return Ok(Vec::new());
    }
    let mut shapes = Vec::new();
    for s in &signatures {
        let shape = signature_shape(doc, *s)?;
        if !allowed_parents.contains(&shape.signed) {
            return Err(Refusal::new(
                K::Wrapping,
                "a signature on an element other than the Response or its one Assertion",
            ));
        }
        shapes.push(shape);
    }
    let ctx = DsigContext::new(trust.keys.clone());
    let results = bergshamra_dsig::verify::verify_all_document_with_source(&ctx, doc, Some(source))
        .map_err(|e| {
            let text = e.to_string();
            if text.contains("duplicate ID") {
                Refusal::new(K::Wrapping, "duplicate IDs in the response")
            } else {
                Refusal::new(
                    K::BadSignature,
                    format!("the signature cannot be checked: {text}"),
                )
            }
        })?;
    if results.len() != shapes.len() {
        return Err(Refusal::new(K::Malformed, "a signature was not checked"));
    }
    for (result, shape) in results.iter().zip(&shapes) {
        match result {
            VerifyResult::Valid { references, .. } => {
                let covers = references
                    .iter()
                    .all(|r| r.digest_verified && r.resolved_node == Some(shape.signed));
                if references.len() != 1 || !covers {
                    return Err(Refusal::new(
                        K::Wrapping,
                        "the signature's reference resolved to another element",
                    ));
                }
            }
            VerifyResult::Invalid { reason } => {
                let lower = reason.to_ascii_lowercase();
                return Err(if lower.contains("digest") {
                    Refusal::new(
                        K::Tampered,
                        "the signed content was changed after signing (a digest does not match)",
                    )
                } else if lower.contains("strict mode") || lower.contains("duplicate") {
                    Refusal::new(K::Wrapping, format!("a signed element was moved: {reason}"))
                } else {
                    Refusal::new(
                        K::BadSignature,
                        "the signature does not verify with any configured IdP certificate",
                    )
                });
            }
        }
    }
    Ok(shapes)
}

/// Refuses comments and processing instructions inside the assertion: canonicalization
/// drops them, so `user@evil.example<!---->.trusted.example` still verifies, and a reader
/// that stops at the first text node would see another user.
fn refuse_comments(doc: &Document<'_>, assertion: NodeId) -> Result<(), Refusal> {
    for n in doc.descendants(assertion) {
        if matches!(
            doc.node_kind(n),
            Some(NodeKind::Comment(_) | NodeKind::ProcessingInstruction(_))
        ) {
            let in_name_id = doc.ancestors(n).iter().any(|a| is(doc, *a, SAML, "NameID"));
            return Err(Refusal::new(
                K::Comment,
                if in_name_id {
                    "a comment inside NameID (the comment-truncation trick)"
                } else {
                    "a comment or processing instruction inside the assertion"
                },
            ));
        }
    }
    Ok(())
}

/// What verification needs besides the response: the connection's settings, its ACS URL,
/// the trusted certificates, our key for encrypted assertions, and the time.
#[derive(Debug)]
pub struct Verification<'a> {
    /// The connection's settings.
    pub settings: &'a SamlSettings,
    /// Where responses must be addressed.
    pub acs_url: &'a str,
    /// The IdP's certificates.
    pub trust: &'a IdpTrust,
    /// Our key, if the IdP encrypts assertions.
    pub sp_key: Option<&'a SpKey>,
    /// Now.
    pub now: Timestamp,
}

/// Verifies a SAML Response (its XML, decoded from the POST's base64) and returns what its
/// assertion says, or why it is refused.
pub fn verify_response(xml: &str, v: &Verification<'_>) -> Result<VerifiedLogin, Refusal> {
    if xml.len() > MAX_RESPONSE_BYTES {
        return Err(Refusal::new(
            K::TooLarge,
            format!("the response is larger than {MAX_RESPONSE_BYTES} bytes"),
        ));
    }
    let doc = parse(xml)?;
    let response = doc
        .document_element()
        .filter(|r| is(&doc, *r, SAMLP, "Response"))
        .ok_or_else(|| Refusal::new(K::Malformed, "not a SAML 2.0 Response"))?;
    // A status other than Success carries no assertion worth reading.
    let status = child(&doc, response, SAMLP, "Status")
        .and_then(|s| child(&doc, s, SAMLP, "StatusCode"))
        .and_then(|c| attr(&doc, c, "Value"))
        .unwrap_or_default();
    if status != SUCCESS {
        return Err(Refusal::new(
            K::Status,
            format!("the IdP answered with status {status:?}, not Success"),
        ));
    }
    // Exactly one assertion, directly inside the Response, and none anywhere else.
    let plain = all_named(&doc, response, SAML, "Assertion");
    let encrypted = all_named(&doc, response, SAML, "EncryptedAssertion");
    let direct: Vec<NodeId> = plain
        .iter()
        .chain(&encrypted)
        .copied()
        .filter(|a| doc.parent(*a) == Some(response))
        .collect();
    if plain.len() + encrypted.len() != 1 || direct.len() != 1 {
        return Err(Refusal::new(
            K::Wrapping,
            format!(
                "{} assertions in the response; exactly one, directly inside the Response, is accepted",
                plain.len() + encrypted.len()
            ),
        ));
    }
    let outer = direct[0];
    let shapes = verify_signatures(&doc, xml, v.trust, &[response, outer])?;
    let response_shape = shapes.iter().find(|s| s.signed == response);
    // The Response as signed, when it is: its Destination is then read from what was signed.
    let response_text = response_shape
        .map(|s| verified_bytes(&doc, s))
        .transpose()?;
    let response_doc = response_text.as_deref().map(parse).transpose()?;
    let (rdoc, rnode) = match &response_doc {
        Some(d) => (
            d,
            d.document_element()
                .ok_or_else(|| Refusal::new(K::Malformed, "the signed Response is empty"))?,
        ),
        None => (&doc, response),
    };
    if attr(rdoc, rnode, "Destination") != Some(v.acs_url) {
        return Err(Refusal::new(
            K::Destination,
            "the response's Destination is not this connection's ACS URL",
        ));
    }
    // The one assertion, as verified bytes.
    let assertion_text: String = if is(&doc, outer, SAML, "Assertion") {
        refuse_comments(&doc, outer)?;
        match shapes.iter().find(|s| s.signed == outer) {
            Some(s) => verified_bytes(&doc, s)?,
            None => match &response_doc {
                Some(d) => canonical_assertion(d)?,
                None => {
                    return Err(Refusal::new(
                        K::Unsigned,
                        "neither the Response nor the Assertion is signed",
                    ));
                }
            },
        }
    } else {
        // Decrypted from the signed Response if it is signed, else from the body; the
        // assertion inside must then be signed itself.
        let (edoc, enode) = match &response_doc {
            Some(d) => {
                let root = d
                    .document_element()
                    .ok_or_else(|| Refusal::new(K::Malformed, "the signed Response is empty"))?;
                let e = child(d, root, SAML, "EncryptedAssertion").ok_or_else(|| {
                    Refusal::new(K::Malformed, "the signed Response lost its assertion")
                })?;
                (d, e)
            }
            None => (&doc, outer),
        };
        let plaintext = decrypt(edoc, enode, v.sp_key)?;
        let pdoc = parse(&plaintext)?;
        let root = pdoc
            .document_element()
            .ok_or_else(|| Refusal::new(K::Decryption, "the decrypted assertion is empty"))?;
        let inner: Vec<NodeId> = all_named(&pdoc, root, SAML, "Assertion");
        let inner_encrypted = all_named(&pdoc, root, SAML, "EncryptedAssertion");
        let [assertion] = inner[..] else {
            return Err(Refusal::new(
                K::Wrapping,
                "the encrypted assertion holds other than one Assertion",
            ));
        };
        if inner_encrypted.len() != 1 || pdoc.parent(assertion).is_some_and(|p| p != root) {
            return Err(Refusal::new(
                K::Wrapping,
                "an unexpected encrypted assertion",
            ));
        }
        refuse_comments(&pdoc, assertion)?;
        let inner_shapes = verify_signatures(&pdoc, &plaintext, v.trust, &[assertion])?;
        match inner_shapes.first() {
            Some(s) => verified_bytes(&pdoc, s)?,
            None if response_doc.is_some() => canonical_of(&pdoc, assertion)?,
            None => {
                return Err(Refusal::new(
                    K::Unsigned,
                    "neither the Response nor the decrypted Assertion is signed",
                ));
            }
        }
    };
    let adoc = parse(&assertion_text)?;
    let assertion = adoc
        .document_element()
        .filter(|a| is(&adoc, *a, SAML, "Assertion"))
        .ok_or_else(|| Refusal::new(K::Malformed, "the signed element is not an Assertion"))?;
    read_assertion(&adoc, assertion, v)
}

/// The one Assertion of a verified Response, canonical (exclusive C14N) so it parses alone.
fn canonical_assertion(response: &Document<'_>) -> Result<String, Refusal> {
    let root = response
        .document_element()
        .ok_or_else(|| Refusal::new(K::Malformed, "the signed Response is empty"))?;
    let assertion = child(response, root, SAML, "Assertion")
        .ok_or_else(|| Refusal::new(K::Malformed, "the signed Response lost its assertion"))?;
    canonical_of(response, assertion)
}

/// An element of a verified document as text that parses alone.
fn canonical_of(doc: &Document<'_>, node: NodeId) -> Result<String, Refusal> {
    let set = NodeSet::tree_without_comments(node, doc);
    let bytes =
        bergshamra_c14n::canonicalize_doc::<&str>(doc, C14nMode::Exclusive, Some(&set), &[])
            .map_err(|e| Refusal::new(K::Malformed, format!("canonicalization failed: {e}")))?;
    String::from_utf8(bytes).map_err(|_| Refusal::new(K::Malformed, "the assertion is not UTF-8"))
}

/// Decrypts an `EncryptedAssertion` with our key; returns the `EncryptedAssertion` element
/// with the plaintext Assertion in place of its `EncryptedData`.
fn decrypt(doc: &Document<'_>, encrypted: NodeId, key: Option<&SpKey>) -> Result<String, Refusal> {
    let Some(key) = key else {
        return Err(Refusal::new(
            K::Decryption,
            "the assertion is encrypted and this connection has no SP key (--sp-key-file)",
        ));
    };
    // The element alone, with the namespaces in scope declared on it (inclusive C14N).
    let set = NodeSet::tree_without_comments(encrypted, doc);
    let bytes =
        bergshamra_c14n::canonicalize_doc::<&str>(doc, C14nMode::Inclusive, Some(&set), &[])
            .map_err(|e| Refusal::new(K::Malformed, format!("canonicalization failed: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Refusal::new(K::Malformed, "the encrypted assertion is not UTF-8"))?;
    let mut keys = KeysManager::new();
    keys.add_key(key.key.clone());
    let ctx = bergshamra_enc::EncContext::new(keys)
        .with_disable_cipher_reference(true)
        .with_max_pbkdf2_iterations(0);
    bergshamra_enc::decrypt::decrypt(&ctx, &text).map_err(|_| {
        Refusal::new(
            K::Decryption,
            "the assertion cannot be decrypted with our key",
        )
    })
}

/// Parses an `xs:dateTime` of SAML (UTC, RFC 3339).
fn instant(value: &str, what: &str) -> Result<Timestamp, Refusal> {
    Timestamp::parse_rfc3339(value.trim())
        .map_err(|_| Refusal::new(K::Malformed, format!("{what} is not a date and time")))
}

/// Reads the verified assertion: checks its conditions and returns the login it describes.
fn read_assertion(
    doc: &Document<'_>,
    assertion: NodeId,
    v: &Verification<'_>,
) -> Result<VerifiedLogin, Refusal> {
    let s = v.settings;
    let skew = std::time::Duration::from_secs(s.clock_skew_secs);
    let id = attr(doc, assertion, "ID")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Refusal::new(K::Malformed, "the assertion has no ID"))?
        .to_string();
    let issuer = child(doc, assertion, SAML, "Issuer")
        .map(|i| text(doc, i))
        .unwrap_or_default();
    if issuer != s.idp_entity_id {
        return Err(Refusal::new(
            K::Issuer,
            "the assertion's Issuer is not the configured IdP",
        ));
    }
    let conditions = child(doc, assertion, SAML, "Conditions")
        .ok_or_else(|| Refusal::new(K::Audience, "the assertion has no Conditions"))?;
    let mut expires = None;
    if let Some(nb) = attr(doc, conditions, "NotBefore")
        && instant(nb, "NotBefore")? > v.now.after(skew)
    {
        return Err(Refusal::new(
            K::NotYetValid,
            "the assertion is not valid yet",
        ));
    }
    if let Some(na) = attr(doc, conditions, "NotOnOrAfter") {
        let na = instant(na, "NotOnOrAfter")?;
        if na.after(skew) <= v.now {
            return Err(Refusal::new(K::Expired, "the assertion has expired"));
        }
        expires = Some(na);
    }
    // Every AudienceRestriction must include us (SAML core §2.5.1.4), and there must be one.
    let restrictions: Vec<NodeId> =
        children(doc, conditions, SAML, "AudienceRestriction").collect();
    let ours =
        |r: &NodeId| children(doc, *r, SAML, "Audience").any(|a| text(doc, a) == s.sp_entity_id);
    if restrictions.is_empty() || !restrictions.iter().all(ours) {
        return Err(Refusal::new(
            K::Audience,
            "the assertion's Audience does not name this SP's entityID",
        ));
    }
    let subject = child(doc, assertion, SAML, "Subject")
        .ok_or_else(|| Refusal::new(K::Malformed, "the assertion has no Subject"))?;
    let name_id_node = child(doc, subject, SAML, "NameID")
        .ok_or_else(|| Refusal::new(K::Malformed, "the Subject has no NameID"))?;
    if doc
        .children_iter(name_id_node)
        .any(|c| doc.element(c).is_some())
    {
        return Err(Refusal::new(K::Malformed, "NameID holds elements"));
    }
    let name_id = text(doc, name_id_node);
    if name_id.is_empty() {
        return Err(Refusal::new(K::Malformed, "the NameID is empty"));
    }
    // A bearer confirmation addressed to our ACS, still valid.
    let mut confirmed = false;
    let mut why = "the Subject has no bearer SubjectConfirmation";
    for c in children(doc, subject, SAML, "SubjectConfirmation") {
        if attr(doc, c, "Method") != Some(BEARER) {
            why = "the SubjectConfirmation is not bearer";
            continue;
        }
        let Some(data) = child(doc, c, SAML, "SubjectConfirmationData") else {
            why = "the bearer SubjectConfirmation has no SubjectConfirmationData";
            continue;
        };
        if attr(doc, data, "Recipient") != Some(v.acs_url) {
            return Err(Refusal::new(
                K::Destination,
                "the SubjectConfirmationData's Recipient is not this connection's ACS URL",
            ));
        }
        if let Some(na) = attr(doc, data, "NotOnOrAfter") {
            let na = instant(na, "NotOnOrAfter")?;
            if na.after(skew) <= v.now {
                return Err(Refusal::new(
                    K::Expired,
                    "the subject confirmation has expired",
                ));
            }
            expires = Some(expires.map_or(na, |e: Timestamp| e.min(na)));
        }
        if let Some(nb) = attr(doc, data, "NotBefore")
            && instant(nb, "NotBefore")? > v.now.after(skew)
        {
            return Err(Refusal::new(
                K::NotYetValid,
                "the subject confirmation is not valid yet",
            ));
        }
        confirmed = true;
        break;
    }
    if !confirmed {
        return Err(Refusal::new(K::Confirmation, why));
    }
    // Without an expiry the replay cache keeps the ID for a day past the skew.
    let expires_at = expires
        .unwrap_or_else(|| v.now.after(std::time::Duration::from_secs(86_400)))
        .after(skew);
    let values = |name: &str| -> Vec<String> {
        let mut out = Vec::new();
        for statement in children(doc, assertion, SAML, "AttributeStatement") {
            for a in children(doc, statement, SAML, "Attribute") {
                if attr(doc, a, "Name") == Some(name) || attr(doc, a, "FriendlyName") == Some(name)
                {
                    for value in children(doc, a, SAML, "AttributeValue") {
                        let t = text(doc, value);
                        if !t.is_empty() && !out.contains(&t) {
                            out.push(t);
                        }
                    }
                }
            }
        }
        out
    };
    let first = |name: &Option<String>| name.as_deref().and_then(|n| values(n).into_iter().next());
    let user_name = if s
        .username_from
        .eq_ignore_ascii_case(crate::domain::saml::USERNAME_FROM_NAMEID)
    {
        name_id.clone()
    } else {
        values(&s.username_from).into_iter().next().ok_or_else(|| {
            Refusal::new(
                K::Malformed,
                format!(
                    "the assertion has no {} attribute (the userName)",
                    s.username_from
                ),
            )
        })?
    };
    let given_name = first(&s.given_name_attribute);
    let family_name = first(&s.family_name_attribute);
    let display_name = match (&given_name, &family_name) {
        (Some(g), Some(f)) => Some(format!("{g} {f}")),
        _ => None,
    };
    let user = SourceUser {
        external_id: name_id,
        user_name,
        display_name,
        given_name,
        family_name,
        emails: Email::primary_work(first(&s.email_attribute))
            .into_iter()
            .collect(),
        active: true,
        attributes: serde_json::json!({}),
    };
    Ok(VerifiedLogin {
        assertion_id: id,
        expires_at,
        user,
        groups: values(&s.groups_attribute),
    })
}
