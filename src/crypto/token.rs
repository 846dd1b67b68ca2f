//! Bearer tokens that scimdesk issues (inbound SCIM, management API).
//!
//! Text form: `scd_<token id, 32 hex>_<secret, 43 base64url>`. The id finds the row; only the
//! SHA-256 of the secret part is stored (the secret has 256 bits of entropy, so a slow password
//! hash adds nothing), and it is compared in constant time.

use super::{CryptoError, Secret};
use crate::domain::ApiTokenId;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const PREFIX: &str = "scd_";

/// A newly issued token: the text to hand out once, and the hash to store.
pub struct IssuedToken {
    /// The full token text. Shown once, never stored.
    pub text: Secret,
    /// SHA-256 of the secret part.
    pub hash: Vec<u8>,
}

/// Issues a token for the row `id`.
pub fn issue(id: ApiTokenId) -> Result<IssuedToken, CryptoError> {
    let mut raw = Zeroizing::new([0u8; 32]);
    getrandom::fill(raw.as_mut()).map_err(|_| CryptoError::Random)?;
    let secret = Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_ref()));
    let text = Secret::new(format!("{PREFIX}{}_{}", id.0.simple(), secret.as_str()));
    Ok(IssuedToken {
        text,
        hash: hash_secret(&secret),
    })
}

/// Splits presented token text into the row id and the secret part, or `None` if it is not ours.
pub fn parse(presented: &str) -> Option<(ApiTokenId, &str)> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 32 || secret.is_empty() {
        return None;
    }
    let id = uuid::Uuid::try_parse(id).ok()?;
    Some((ApiTokenId(id), secret))
}

/// SHA-256 of a secret part.
pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Whether `secret` matches `stored_hash`, in constant time.
pub fn verify(secret: &str, stored_hash: &[u8]) -> bool {
    hash_secret(secret).ct_eq(stored_hash).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_parse_verify() {
        let id = ApiTokenId::new();
        let issued = issue(id).unwrap();
        let (parsed_id, secret) = parse(issued.text.expose()).unwrap();
        assert_eq!(parsed_id, id);
        assert!(verify(secret, &issued.hash));
        assert!(!verify("wrong", &issued.hash));
    }

    #[test]
    fn foreign_text_is_not_parsed() {
        assert!(parse("Bearer abc").is_none());
        assert!(parse("scd_").is_none());
        assert!(parse("scd_123_abc").is_none());
        assert!(parse(&format!("scd_{}_", "0".repeat(32))).is_none());
        assert!(parse(&format!("scd_{}_x", "z".repeat(32))).is_none());
    }
}
