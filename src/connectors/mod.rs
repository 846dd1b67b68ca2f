//! Clients the engine calls outward: downstream SCIM targets (and, next, identity sources).

pub mod oauth;
pub mod scim_client;

/// Installs the process-wide TLS provider (rustls with ring; sqlx uses the same), once.
/// Every HTTP client must be built after this; calling it again does nothing.
pub fn ensure_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only if another provider was installed first, which is equally usable.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
