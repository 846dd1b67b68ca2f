//! scimdesk run against local stand-ins rather than real identity providers and
//! applications: SCIM targets that misbehave on request ([`target_double`]), the Riverside
//! Health story of `scimdesk demo` ([`demo`]) and the measurements of `scimdesk bench`
//! ([`bench`]). No production path uses anything here; the layering check keeps it so.

pub mod bench;
pub mod demo;
pub mod target_double;

use crate::store::StoreError;

/// Why a stand-in run (the demo, a benchmark) did not reach its end.
#[derive(Debug, thiserror::Error)]
pub enum StandInError {
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An engine command refused.
    #[error(transparent)]
    Policy(#[from] crate::engine::commands::PolicyError),
    /// A key could not be made or read.
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    /// An HTTP request to a stand-in or to scimdesk's own server failed.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// A process, file or socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A task of the run panicked or was cancelled.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
    /// An answer was not the JSON expected.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A target's settings do not compile into a policy.
    #[error(transparent)]
    Target(#[from] crate::policy::target::TargetPolicyError),
    /// A rendered document broke an attribute rule.
    #[error(transparent)]
    Attributes(#[from] crate::policy::attributes::AttributeError),
    /// A document is not a valid SCIM resource.
    #[error("{}", .0.detail)]
    Scim(scimdesk_scim::ScimError),
    /// A server answered with an error status.
    #[error("{0}")]
    Refused(String),
    /// The run did not get where it should within its limit, or got somewhere else.
    #[error("{0}")]
    Stalled(String),
    /// The workbench could not read what the run measures.
    #[error(transparent)]
    Workbench(#[from] crate::tui::loader::LoadError),
    /// The workbench's theme could not be loaded.
    #[error(transparent)]
    Theme(#[from] crate::tui::theme::ThemeError),
    /// Something the run needs was not given.
    #[error("{0}")]
    Missing(&'static str),
}

impl From<std::convert::Infallible> for StandInError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}
