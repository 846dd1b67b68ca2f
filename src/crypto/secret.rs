//! A string that must never reach a log, a terminal or an error message.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// What a secret prints as, everywhere.
pub const MASK: &str = "********";

/// A secret value (token, client secret, key). `Debug` and `Display` print [`MASK`];
/// the memory is zeroed on drop.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The plain value, for the one place that must send or encrypt it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s}"), MASK);
        assert_eq!(format!("{s:?}"), MASK);
        assert_eq!(format!("{:?}", Some(s.clone())), format!("Some({MASK})"));
        assert_eq!(s.expose(), "hunter2-very-secret");
    }
}
