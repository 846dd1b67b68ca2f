//! Envelope encryption of connection secrets.
//!
//! A random 256-bit data key per organization seals that organization's secrets with
//! XChaCha20-Poly1305 (random 192-bit nonces are safe at any volume we will see). The data key is
//! stored only wrapped (sealed) by the master key. Associated data binds every ciphertext to where
//! it belongs: a wrapped data key to its organization, a sealed secret to its organization *and*
//! connection, so a ciphertext copied elsewhere fails to open.

use super::{CryptoError, MasterKey, Secret};
use crate::domain::{ConnectionId, OrganizationId};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// Format version of sealed blobs: `[version][24-byte nonce][ciphertext+tag]`.
const SEALED_V1: u8 = 1;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// An organization's data key, in memory only while it is used.
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.as_mut()).map_err(|_| CryptoError::Random)?;
        Ok(Self(bytes))
    }
}

/// Seals `plaintext` under a 32-byte key with associated data.
fn seal(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
    let ciphertext = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Seal)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    out.push(SEALED_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Opens a blob made by [`seal`]; fails on any tampering, wrong key or wrong associated data.
fn open(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < 1 + NONCE_LEN || sealed[0] != SEALED_V1 {
        return Err(CryptoError::Malformed);
    }
    let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Malformed)?;
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Open)
}

fn data_key_aad(org: OrganizationId) -> Vec<u8> {
    let mut aad = b"scimdesk/data-key/v1/".to_vec();
    aad.extend_from_slice(org.as_bytes());
    aad
}

fn secret_aad(org: OrganizationId, conn: ConnectionId) -> Vec<u8> {
    let mut aad = b"scimdesk/connection-secret/v1/".to_vec();
    aad.extend_from_slice(org.as_bytes());
    aad.extend_from_slice(conn.as_bytes());
    aad
}

/// Wraps an organization's data key under the master key.
pub fn wrap_data_key(
    master: &MasterKey,
    org: OrganizationId,
    key: &DataKey,
) -> Result<Vec<u8>, CryptoError> {
    seal(master.bytes(), &data_key_aad(org), key.0.as_ref())
}

/// Unwraps an organization's data key.
pub fn unwrap_data_key(
    master: &MasterKey,
    org: OrganizationId,
    wrapped: &[u8],
) -> Result<DataKey, CryptoError> {
    let plain = open(master.bytes(), &data_key_aad(org), wrapped)?;
    let bytes: [u8; KEY_LEN] = plain
        .as_slice()
        .try_into()
        .map_err(|_| CryptoError::Malformed)?;
    Ok(DataKey(Zeroizing::new(bytes)))
}

/// Seals a connection secret under its organization's data key.
pub fn seal_secret(
    key: &DataKey,
    org: OrganizationId,
    conn: ConnectionId,
    secret: &Secret,
) -> Result<Vec<u8>, CryptoError> {
    seal(&key.0, &secret_aad(org, conn), secret.expose().as_bytes())
}

/// Opens a connection secret.
pub fn open_secret(
    key: &DataKey,
    org: OrganizationId,
    conn: ConnectionId,
    sealed: &[u8],
) -> Result<Secret, CryptoError> {
    let plain = open(&key.0, &secret_aad(org, conn), sealed)?;
    let text = std::str::from_utf8(&plain).map_err(|_| CryptoError::Malformed)?;
    Ok(Secret::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (MasterKey, OrganizationId, ConnectionId, DataKey) {
        (
            MasterKey::generate().unwrap(),
            OrganizationId::new(),
            ConnectionId::new(),
            DataKey::generate().unwrap(),
        )
    }

    #[test]
    fn secret_round_trip() {
        let (_, org, conn, key) = fixture();
        let sealed = seal_secret(&key, org, conn, &Secret::new("s3cret")).unwrap();
        assert_eq!(
            open_secret(&key, org, conn, &sealed).unwrap().expose(),
            "s3cret"
        );
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
    }

    #[test]
    fn secret_bound_to_org_and_connection() {
        let (_, org, conn, key) = fixture();
        let sealed = seal_secret(&key, org, conn, &Secret::new("s3cret")).unwrap();
        assert!(open_secret(&key, OrganizationId::new(), conn, &sealed).is_err());
        assert!(open_secret(&key, org, ConnectionId::new(), &sealed).is_err());
        let other_key = DataKey::generate().unwrap();
        assert!(open_secret(&other_key, org, conn, &sealed).is_err());
    }

    #[test]
    fn data_key_bound_to_org_and_master() {
        let (master, org, conn, key) = fixture();
        let wrapped = wrap_data_key(&master, org, &key).unwrap();
        let unwrapped = unwrap_data_key(&master, org, &wrapped).unwrap();
        let sealed = seal_secret(&key, org, conn, &Secret::new("x")).unwrap();
        assert_eq!(
            open_secret(&unwrapped, org, conn, &sealed)
                .unwrap()
                .expose(),
            "x"
        );
        assert!(unwrap_data_key(&master, OrganizationId::new(), &wrapped).is_err());
        assert!(unwrap_data_key(&MasterKey::generate().unwrap(), org, &wrapped).is_err());
    }

    #[test]
    fn tampering_and_garbage_are_refused() {
        let (_, org, conn, key) = fixture();
        let mut sealed = seal_secret(&key, org, conn, &Secret::new("abc")).unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(
            open_secret(&key, org, conn, &sealed),
            Err(CryptoError::Open)
        ));
        assert!(matches!(
            open_secret(&key, org, conn, &[]),
            Err(CryptoError::Malformed)
        ));
        assert!(matches!(
            open_secret(&key, org, conn, &[9; 40]),
            Err(CryptoError::Malformed)
        ));
    }
}
