//! SCIM 2.0 without I/O: RFC 7643 resources and schemas, and the RFC 7644 protocol pieces a
//! service provider and a client both need — filters (parse, print, validate, evaluate),
//! PATCH, canonical documents, attribute projection and error bodies.
//!
//! A crate of its own so that the compiler enforces what the module always promised: nothing
//! here touches a socket, a file or a database (it depends on serde_json and time only). The
//! HTTP server, the outbound client and the store's filter-to-SQL translator use it.
#![warn(missing_docs)]

pub mod error;
pub mod filter;
pub mod patch;
pub mod projection;
pub mod resource;
pub mod schema;

pub use error::{ScimError, ScimResult, ScimType};
