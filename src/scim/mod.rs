//! Local users and groups as SCIM documents. The protocol itself (schemas, filters, PATCH,
//! errors) is the `scimdesk-scim` crate, which knows nothing of scimdesk's domain; this module
//! joins the two: the documents the inbound server answers with and stores ([`convert`]), and
//! the documents targets are sent, with their hashes and PATCH operations ([`render`]). Pure,
//! like the crate.

pub mod convert;
pub mod render;
