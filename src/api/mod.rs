//! The HTTP surfaces that `scimdesk serve` mounts. Each is a caller of the store (and, from the
//! engine issue on, of the engine); none talks to a downstream target itself.

pub mod changes;
pub mod graphql;
pub mod saml;
pub mod scim;
pub mod serve;
