//! Clients the engine calls outward: downstream SCIM targets (and, next, identity sources).

pub mod scim_client;
