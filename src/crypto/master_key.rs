//! The master key: wraps every organization's data key and never sits in the database.
//!
//! It comes from `SCIMDESK_MASTER_KEY` (base64 of 32 bytes) or from a key file in the config
//! directory, created on first run with mode 0600.

use super::{CryptoError, Secret};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const KEY_LEN: usize = 32;

/// The 256-bit key-encryption key.
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(id={})", self.id())
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.as_mut()).map_err(|_| CryptoError::Random)?;
        Ok(Self(bytes))
    }

    /// Parses base64 text (surrounding white space ignored).
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| CryptoError::BadMasterKey("it is not valid base64".into()))?,
        );
        let bytes: [u8; KEY_LEN] = decoded.as_slice().try_into().map_err(|_| {
            CryptoError::BadMasterKey(format!(
                "it decodes to {} bytes, not {KEY_LEN}",
                decoded.len()
            ))
        })?;
        Ok(Self(Zeroizing::new(bytes)))
    }

    /// The key as base64 text, for writing a key file.
    pub fn to_base64(&self) -> Secret {
        Secret::new(STANDARD.encode(self.0.as_ref()))
    }

    /// A short public fingerprint that says which master key wrapped a data key.
    pub fn id(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"scimdesk/master-key-id/v1/")
            .chain_update(self.0.as_ref())
            .finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

/// Where the master key in use came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    /// The `SCIMDESK_MASTER_KEY` environment variable.
    Env,
    /// A key file.
    File(PathBuf),
}

/// The environment variable that carries a base64 master key.
pub const MASTER_KEY_ENV: &str = "SCIMDESK_MASTER_KEY";

/// Loads the master key from `env_value` if given, else from `key_file`, creating the file
/// (mode 0600) with a new random key when it does not exist.
pub fn load_or_create(
    env_value: Option<&str>,
    key_file: &Path,
) -> Result<(MasterKey, MasterKeySource), CryptoError> {
    if let Some(text) = env_value.filter(|t| !t.trim().is_empty()) {
        return Ok((MasterKey::from_base64(text)?, MasterKeySource::Env));
    }
    if key_file.exists() {
        return Ok((
            read_key_file(key_file)?,
            MasterKeySource::File(key_file.into()),
        ));
    }
    let key = MasterKey::generate()?;
    write_key_file(key_file, &key)?;
    tracing::info!(path = %key_file.display(), id = %key.id(), "created a new master key file");
    Ok((key, MasterKeySource::File(key_file.into())))
}

/// Reads a key file, refusing one that others can read.
pub fn read_key_file(path: &Path) -> Result<MasterKey, CryptoError> {
    let io = |e: std::io::Error| CryptoError::KeyFile(path.into(), e.to_string());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(CryptoError::KeyFile(
                path.into(),
                format!(
                    "it is readable by others (mode {:o}); run `chmod 600 {}`",
                    mode & 0o777,
                    path.display()
                ),
            ));
        }
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
    MasterKey::from_base64(&text).map_err(|e| CryptoError::KeyFile(path.into(), e.to_string()))
}

/// Writes a new key file with mode 0600; refuses to overwrite an existing file.
pub fn write_key_file(path: &Path, key: &MasterKey) -> Result<(), CryptoError> {
    let io = |e: std::io::Error| CryptoError::KeyFile(path.into(), e.to_string());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    let text = key.to_base64();
    file.write_all(text.expose().as_bytes()).map_err(io)?;
    file.write_all(b"\n").map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(())
}

/// Where a rotation stages the next key before the database has switched to it.
pub fn pending_key_path(key_file: &Path) -> PathBuf {
    let mut name = key_file.file_name().unwrap_or_default().to_os_string();
    name.push(".next");
    key_file.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_and_id_is_stable() {
        let key = MasterKey::generate().unwrap();
        let again = MasterKey::from_base64(key.to_base64().expose()).unwrap();
        assert_eq!(key.id(), again.id());
        assert_eq!(key.id().len(), 16);
        assert_ne!(key.id(), MasterKey::generate().unwrap().id());
    }

    #[test]
    fn bad_keys_are_refused_clearly() {
        let err = MasterKey::from_base64("not base64!")
            .unwrap_err()
            .to_string();
        assert!(err.contains("base64"), "{err}");
        let err = MasterKey::from_base64("AAAA").unwrap_err().to_string();
        assert!(err.contains("3 bytes"), "{err}");
    }

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("master.key");
        let (first, source) = load_or_create(None, &path).unwrap();
        assert_eq!(source, MasterKeySource::File(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (second, _) = load_or_create(None, &path).unwrap();
        assert_eq!(first.id(), second.id());
        assert!(write_key_file(&path, &first).is_err(), "must not overwrite");
    }

    #[cfg(unix)]
    #[test]
    fn readable_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        write_key_file(&path, &MasterKey::generate().unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn env_wins_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::generate().unwrap();
        let (loaded, source) =
            load_or_create(Some(key.to_base64().expose()), &dir.path().join("k")).unwrap();
        assert_eq!(source, MasterKeySource::Env);
        assert_eq!(loaded.id(), key.id());
        assert!(!dir.path().join("k").exists());
    }
}
