//! Why an assertion was refused: a kind that scripts and tests can match on, and the words a
//! person reads in health and the logs. A refusal never quotes the assertion's content beyond
//! what names the problem (an algorithm, a status code, an attribute name).

use std::fmt;

/// What kind of check refused an assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalKind {
    /// The body is larger than the limit.
    TooLarge,
    /// A DTD, an entity declaration or an entity reference of our own (refused outright).
    Dtd,
    /// Not a well-formed SAML Response, or a value we need is missing.
    Malformed,
    /// The IdP's StatusCode is not Success.
    Status,
    /// Neither the Response nor the Assertion carries a signature.
    Unsigned,
    /// A signature that no configured IdP certificate verifies.
    BadSignature,
    /// The signed content was changed after signing (a digest does not match).
    Tampered,
    /// An algorithm weaker than SHA-256 (SHA-1), or one not on the allow-list.
    WeakAlgorithm,
    /// An XML-signature-wrapping shape: several assertions, a signature that covers another
    /// element than the one used, a signed element moved, duplicate IDs.
    Wrapping,
    /// A comment or processing instruction inside the assertion (NameID truncation).
    Comment,
    /// The Issuer is not the configured IdP.
    Issuer,
    /// The Audience does not name our SP.
    Audience,
    /// Destination or Recipient is not our ACS URL.
    Destination,
    /// The assertion is not valid yet.
    NotYetValid,
    /// The assertion has expired.
    Expired,
    /// SubjectConfirmation is not bearer.
    Confirmation,
    /// The assertion's ID was accepted before.
    Replay,
    /// An encrypted assertion that cannot be decrypted with our key.
    Decryption,
}

impl RefusalKind {
    /// The kind's stable name (in JSON answers, the logs and the tests).
    pub fn as_str(&self) -> &'static str {
        match self {
            RefusalKind::TooLarge => "too_large",
            RefusalKind::Dtd => "dtd",
            RefusalKind::Malformed => "malformed",
            RefusalKind::Status => "status",
            RefusalKind::Unsigned => "unsigned",
            RefusalKind::BadSignature => "bad_signature",
            RefusalKind::Tampered => "tampered",
            RefusalKind::WeakAlgorithm => "weak_algorithm",
            RefusalKind::Wrapping => "signature_wrapping",
            RefusalKind::Comment => "comment",
            RefusalKind::Issuer => "issuer",
            RefusalKind::Audience => "audience",
            RefusalKind::Destination => "destination",
            RefusalKind::NotYetValid => "not_yet_valid",
            RefusalKind::Expired => "expired",
            RefusalKind::Confirmation => "subject_confirmation",
            RefusalKind::Replay => "replay",
            RefusalKind::Decryption => "decryption",
        }
    }
}

/// An assertion refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Which check.
    pub kind: RefusalKind,
    /// What it found, in words.
    pub detail: String,
}

impl Refusal {
    /// A refusal of `kind` saying `detail`.
    pub fn new(kind: RefusalKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail, self.kind.as_str())
    }
}

impl std::error::Error for Refusal {}
