//! What can go wrong in the store, in terms the surfaces can turn into exit codes and HTTP statuses.

use crate::crypto::CryptoError;
use crate::domain::InvalidInput;

/// A store failure. Messages never contain secrets or database passwords.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist in this organization.
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness rule refused the change.
    #[error("{0} already exists")]
    Conflict(String),
    /// An optimistic-concurrency check failed (SCIM If-Match).
    #[error("version mismatch: expected {expected}, current is {current}")]
    VersionMismatch {
        /// The version the caller had.
        expected: i64,
        /// The version stored.
        current: i64,
    },
    /// The input was refused before it reached the database.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// A secret could not be sealed or opened.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The data keys were wrapped by a master key other than the one configured.
    #[error(
        "the configured master key (id {configured}) is not the one that wraps this database's data keys (id {stored}); set SCIMDESK_MASTER_KEY or the key file to the right key"
    )]
    WrongMasterKey {
        /// Id of the key in use.
        configured: String,
        /// Id the database expects.
        stored: String,
    },
    /// The database cannot be reached.
    #[error("the database cannot be reached: {0}")]
    Unavailable(String),
    /// The database refused the statement (e.g. an append-only trigger).
    #[error("the database refused the change: {0}")]
    Refused(String),
    /// Applying migrations failed.
    #[error("migrating the database failed: {0}")]
    Migration(String),
    /// A SCIM filter or sort order that cannot be run (carries its `scimType`).
    #[error("{}", .0.detail)]
    Scim(scimdesk_scim::ScimError),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(String),
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// Converts a sqlx error, naming `what` (e.g. `connection "okta"`) for uniqueness and
    /// reference failures.
    pub fn from_sqlx(err: sqlx::Error, what: impl FnOnce() -> String) -> Self {
        use sqlx::error::ErrorKind;
        match &err {
            sqlx::Error::RowNotFound => StoreError::NotFound(what()),
            sqlx::Error::Database(db) => match db.kind() {
                ErrorKind::UniqueViolation => StoreError::Conflict(what()),
                ErrorKind::ForeignKeyViolation => {
                    StoreError::NotFound(format!("a record that {} refers to", what()))
                }
                _ if db.message().contains("append-only") => {
                    StoreError::Refused(db.message().to_string())
                }
                _ => StoreError::Database(db.message().to_string()),
            },
            sqlx::Error::Io(e) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Tls(e) => StoreError::Unavailable(format!("TLS: {e}")),
            sqlx::Error::PoolTimedOut => {
                StoreError::Unavailable("timed out waiting for a connection".into())
            }
            sqlx::Error::PoolClosed => StoreError::Unavailable("the pool is closed".into()),
            other => StoreError::Database(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        StoreError::from_sqlx(err, || "record".to_string())
    }
}
