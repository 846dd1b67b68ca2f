//! scimdesk run against local stand-ins rather than real identity providers and
//! applications: SCIM targets that misbehave on request ([`target_double`]), the Riverside
//! Health story of `scimdesk demo` ([`demo`]) and the measurements of `scimdesk bench`
//! ([`bench`]). No production path uses anything here; the layering check keeps it so.

pub mod bench;
pub mod demo;
pub mod target_double;
