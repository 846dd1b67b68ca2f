//! SAML 2.0 metadata: the IdP's (its entityID and signing certificates, read from a file or
//! fetched from its URL) and ours (what an IdP is configured with: our entityID, our ACS URL,
//! and our encryption certificate when we have one).

use super::verify::decode_base64;
use uppsala::{Document, NodeId};

const MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

/// The largest metadata document read (an IdP's, with a few certificates, is a few KiB;
/// federation aggregates are not IdP metadata).
pub const MAX_METADATA_BYTES: usize = 1024 * 1024;

/// What an IdP's metadata tells us.
#[derive(Debug, Clone, PartialEq)]
pub struct IdpMetadata {
    /// Its entityID: assertions' Issuer.
    pub entity_id: String,
    /// Its signing certificates, base64 DER (several during a rollover).
    pub signing_certificates: Vec<String>,
    /// Where it takes authentication requests (HTTP-Redirect or POST), if it says.
    pub sso_url: Option<String>,
}

/// Why metadata cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// Not the metadata of one IdP.
    #[error("the IdP metadata {0}")]
    Invalid(String),
    /// It could not be fetched.
    #[error("fetching the IdP metadata: {0}")]
    Fetch(String),
}

fn invalid(what: impl Into<String>) -> MetadataError {
    MetadataError::Invalid(what.into())
}

fn is(doc: &Document<'_>, node: NodeId, ns: &str, local: &str) -> bool {
    doc.element(node)
        .is_some_and(|e| e.matches_name_ns(ns, local))
}

/// Reads an IdP's metadata: an `EntityDescriptor` (or an `EntitiesDescriptor` holding exactly
/// one IdP) with an `IDPSSODescriptor`; its signing certificates are the `KeyDescriptor`s
/// with `use="signing"` or no `use`.
pub fn parse_idp_metadata(xml: &str) -> Result<IdpMetadata, MetadataError> {
    if xml.len() > MAX_METADATA_BYTES {
        return Err(invalid(format!(
            "is larger than {MAX_METADATA_BYTES} bytes"
        )));
    }
    let doc = uppsala::Parser::new()
        .with_forbid_dtd(true)
        .with_forbid_entities(true)
        .parse(xml)
        .map_err(|e| invalid(format!("is not well-formed XML without a DTD: {e}")))?;
    let root = doc.document_element().ok_or_else(|| invalid("is empty"))?;
    let idps: Vec<NodeId> = std::iter::once(root)
        .chain(doc.descendants(root))
        .filter(|n| is(&doc, *n, MD, "EntityDescriptor"))
        .filter(|n| {
            doc.children_iter(*n)
                .any(|c| is(&doc, c, MD, "IDPSSODescriptor"))
        })
        .collect();
    let [entity] = idps[..] else {
        return Err(invalid(format!(
            "describes {} identity providers; give the metadata of exactly one",
            idps.len()
        )));
    };
    let entity_id = doc
        .element(entity)
        .and_then(|e| e.get_attribute("entityID"))
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| invalid("has no entityID"))?
        .trim()
        .to_string();
    let mut certificates = Vec::new();
    let mut sso_url = None;
    for idp in doc
        .children_iter(entity)
        .filter(|c| is(&doc, *c, MD, "IDPSSODescriptor"))
    {
        for part in doc.children_iter(idp) {
            if is(&doc, part, MD, "KeyDescriptor") {
                let usage = doc.element(part).and_then(|e| e.get_attribute("use"));
                if usage.is_some_and(|u| u != "signing") {
                    continue;
                }
                for n in doc.descendants(part) {
                    if is(&doc, n, DSIG, "X509Certificate") {
                        let text = doc.text_content_deep(n);
                        let der = decode_base64(&text)
                            .ok_or_else(|| invalid("has a certificate that is not base64"))?;
                        bergshamra_keys::loader::load_x509_cert_der(&der)
                            .map_err(|e| invalid(format!("has an unreadable certificate: {e}")))?;
                        let b64 = base64::Engine::encode(
                            &base64::engine::general_purpose::STANDARD,
                            &der,
                        );
                        if !certificates.contains(&b64) {
                            certificates.push(b64);
                        }
                    }
                }
            } else if is(&doc, part, MD, "SingleSignOnService") && sso_url.is_none() {
                sso_url = doc
                    .element(part)
                    .and_then(|e| e.get_attribute("Location"))
                    .map(str::to_string);
            }
        }
    }
    if certificates.is_empty() {
        return Err(invalid("names no signing certificate"));
    }
    Ok(IdpMetadata {
        entity_id,
        signing_certificates: certificates,
        sso_url,
    })
}

/// Fetches an IdP's metadata from its URL (http or https, 30 s at most) and reads it.
pub async fn fetch_idp_metadata(url: &str) -> Result<IdpMetadata, MetadataError> {
    let fetch = |e: reqwest::Error| MetadataError::Fetch(crate::connectors::describe(&e));
    let parsed = url::Url::parse(url).map_err(|e| invalid(format!("URL is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("URL must be http or https"));
    }
    crate::connectors::ensure_tls_provider();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(fetch)?;
    let response = client.get(parsed).send().await.map_err(fetch)?;
    let status = response.status();
    if !status.is_success() {
        return Err(invalid(format!("URL answered {status}")));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_METADATA_BYTES as u64)
    {
        return Err(invalid(format!(
            "is larger than {MAX_METADATA_BYTES} bytes"
        )));
    }
    let body = response.bytes().await.map_err(fetch)?;
    if body.len() > MAX_METADATA_BYTES {
        return Err(invalid(format!(
            "is larger than {MAX_METADATA_BYTES} bytes"
        )));
    }
    let text = std::str::from_utf8(&body).map_err(|_| invalid("is not UTF-8"))?;
    parse_idp_metadata(text)
}

/// A PEM certificate as metadata carries it: its DER in base64 on one line, checked to be a
/// certificate.
pub fn certificate_from_pem(pem: &str) -> Result<String, MetadataError> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END CERTIFICATE-----"))
        .collect();
    let der = decode_base64(&body)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| invalid("certificate is not a PEM certificate"))?;
    bergshamra_keys::loader::load_x509_cert_der(&der)
        .map_err(|e| invalid(format!("certificate cannot be read: {e}")))?;
    Ok(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        der,
    ))
}

/// Escapes text for an XML attribute or element.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Our SP metadata: entityID, the ACS (HTTP-POST), and our encryption certificate if any.
pub fn sp_metadata(entity_id: &str, acs_url: &str, encryption_certificate: Option<&str>) -> String {
    let key = encryption_certificate
        .map(|c| {
            format!(
                "<md:KeyDescriptor use=\"encryption\"><ds:KeyInfo xmlns:ds=\"{DSIG}\"><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>",
                escape(c)
            )
        })
        .unwrap_or_default();
    format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
            "<md:EntityDescriptor xmlns:md=\"{md}\" entityID=\"{entity}\">",
            "<md:SPSSODescriptor AuthnRequestsSigned=\"false\" WantAssertionsSigned=\"true\" ",
            "protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">{key}",
            "<md:AssertionConsumerService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" ",
            "Location=\"{acs}\" index=\"0\" isDefault=\"true\"/>",
            "</md:SPSSODescriptor></md:EntityDescriptor>\n"
        ),
        md = MD,
        entity = escape(entity_id),
        key = key,
        acs = escape(acs_url),
    )
}
