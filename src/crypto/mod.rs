//! Secrets: tenant envelope encryption, the master key, issued tokens, and the masked secret type.

mod envelope;
mod master_key;
mod secret;
pub mod token;

pub use envelope::{DataKey, open_secret, seal_secret, unwrap_data_key, wrap_data_key};
pub use master_key::{
    MASTER_KEY_ENV, MasterKey, MasterKeySource, load_or_create, pending_key_path, read_key_file,
    write_key_file,
};
pub use secret::{MASK, Secret};

use std::path::PathBuf;

/// Why a cryptographic step failed. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The operating system's random source failed.
    #[error("the system random number generator failed")]
    Random,
    /// Encryption failed (should not happen with valid keys).
    #[error("encryption failed")]
    Seal,
    /// Wrong key, wrong owner (associated data) or tampered ciphertext.
    #[error("decryption failed: wrong key, or the ciphertext belongs elsewhere or was altered")]
    Open,
    /// Not a blob we produced.
    #[error("the encrypted value is malformed")]
    Malformed,
    /// The master key text is unusable.
    #[error("the master key is unusable: {0}")]
    BadMasterKey(String),
    /// The key file cannot be read or written.
    #[error("master key file {}: {}", .0.display(), .1)]
    KeyFile(PathBuf, String),
}
