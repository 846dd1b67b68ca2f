//! A SAML 2.0 identity provider as a source: its metadata, and the verification of the
//! responses it posts to our assertion consumer service. Nothing here touches the store: a
//! verified response becomes a [`VerifiedLogin`](crate::domain::VerifiedLogin), which the
//! engine checks against the replay cache and hands to the same plan every source uses.

pub mod metadata;
pub mod refusal;
pub mod verify;

pub use refusal::{Refusal, RefusalKind};
pub use verify::{IdpTrust, MAX_RESPONSE_BYTES, SpKey, Verification, verify_response};
