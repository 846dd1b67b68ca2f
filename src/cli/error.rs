//! CLI failures and the exit codes scripts can rely on (listed in README.md).

use crate::config::ConfigError;
use crate::crypto::CryptoError;
use crate::domain::InvalidInput;
use crate::store::StoreError;
use std::process::ExitCode;

/// Exit codes. Stable: scripts depend on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 1: anything unexpected.
    Internal = 1,
    /// 2: bad arguments or input (clap uses 2 for usage errors too).
    Invalid = 2,
    /// 3: the organization, connection, token... does not exist.
    NotFound = 3,
    /// 4: it already exists, or changed meanwhile.
    Conflict = 4,
    /// 5: the database cannot be reached or migrated.
    Unavailable = 5,
    /// 6: configuration or master key problem.
    Config = 6,
    /// 7: a guard refused the change (`--force` overrides it).
    Refused = 7,
    /// 8: the operator's access level does not allow it (`[access]` in config.toml).
    Forbidden = 8,
}

/// A failure with a message for people and an exit code for scripts.
#[derive(Debug)]
pub struct CliError {
    /// Which exit code.
    pub exit: Exit,
    /// What went wrong and, where possible, what to do. Never a secret.
    pub message: String,
}

impl CliError {
    /// A failure of kind `exit`.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }

    /// Bad input.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Exit::Invalid, message)
    }

    /// Something named does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Exit::NotFound, message)
    }

    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit as u8)
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        let exit = match &e {
            StoreError::NotFound(_) => Exit::NotFound,
            StoreError::Conflict(_) | StoreError::VersionMismatch { .. } => Exit::Conflict,
            StoreError::Invalid(_) | StoreError::Scim(_) => Exit::Invalid,
            StoreError::Unavailable(_) | StoreError::Migration(_) => Exit::Unavailable,
            StoreError::WrongMasterKey { .. } | StoreError::Crypto(_) => Exit::Config,
            StoreError::Refused(_) | StoreError::Database(_) => Exit::Internal,
        };
        Self::new(exit, e.to_string())
    }
}

impl From<crate::engine::commands::PolicyError> for CliError {
    fn from(e: crate::engine::commands::PolicyError) -> Self {
        use crate::engine::commands::PolicyError;
        match e {
            PolicyError::Store(s) => s.into(),
            PolicyError::Invalid(m) => Self::invalid(m),
            PolicyError::Target(t) => Self::invalid(t.to_string()),
            PolicyError::Guarded(g) => Self::new(Exit::Refused, g.to_string()),
        }
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        Self::new(Exit::Config, e.to_string())
    }
}

impl From<CryptoError> for CliError {
    fn from(e: CryptoError) -> Self {
        Self::new(Exit::Config, e.to_string())
    }
}

impl From<InvalidInput> for CliError {
    fn from(e: InvalidInput) -> Self {
        Self::invalid(e.to_string())
    }
}

/// Shorthand for CLI results.
pub type CliResult<T = ()> = Result<T, CliError>;
