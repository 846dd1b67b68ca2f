//! Clients the engine calls outward: downstream SCIM targets, OAuth token endpoints, and the
//! sources of truth scimdesk pulls from (any SCIM server, Keycloak, Zitadel), and the
//! verification of what a SAML identity provider posts.

pub mod keycloak;
pub mod oauth;
pub mod saml;
pub mod scim_client;
pub mod scim_source;
pub mod source;
pub mod zitadel;

/// Installs the process-wide TLS provider (rustls with ring; sqlx uses the same), once.
/// Every HTTP client must be built after this; calling it again does nothing.
pub fn ensure_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only if another provider was installed first, which is equally usable.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A transport error in words, without the URL's query (which could carry data).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}
