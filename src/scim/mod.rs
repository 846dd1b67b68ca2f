//! SCIM 2.0 (RFC 7643 resources and schemas, RFC 7644 protocol pieces) without any I/O:
//! schemas, filters, PATCH, errors. The HTTP server and client use this; nothing here touches a
//! socket or a database.

pub mod convert;
pub mod error;
pub mod filter;
pub mod patch;
pub mod projection;
pub mod resource;
pub mod schema;

pub use error::{ScimError, ScimResult, ScimType};
