//! Store errors as GraphQL errors: what the caller got wrong in our words, with a `code`; a
//! failure of ours as "internal error" only (logged here), so no SQL, file path or stack trace
//! ever reaches a response.

use crate::store::StoreError;
use async_graphql::ErrorExtensions;

/// The GraphQL error for a store error.
pub fn api_error(e: StoreError) -> async_graphql::Error {
    let (code, message) = match &e {
        StoreError::NotFound(_) => ("NOT_FOUND", e.to_string()),
        StoreError::Conflict(_) => ("CONFLICT", e.to_string()),
        StoreError::VersionMismatch { .. } => ("CONFLICT", e.to_string()),
        StoreError::Invalid(_) | StoreError::Scim(_) => ("BAD_INPUT", e.to_string()),
        StoreError::Unavailable(_) => ("UNAVAILABLE", "the store is unavailable".to_string()),
        _ => {
            tracing::error!("GraphQL request failed in the store: {e}");
            ("INTERNAL", "internal error".to_string())
        }
    };
    async_graphql::Error::new(message).extend_with(|_, x| x.set("code", code))
}

/// An error the caller made in the request itself.
pub fn bad_input(message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message.into()).extend_with(|_, x| x.set("code", "BAD_INPUT"))
}

/// The GraphQL error for a policy command's refusal. A guard refusal is typed: code
/// `GUARDED`, with the impact's figures (who would lose access, of how many, the limits) in
/// its extensions, and nothing was changed.
pub fn policy_error(e: crate::engine::commands::PolicyError) -> async_graphql::Error {
    use crate::engine::commands::PolicyError;
    match e {
        PolicyError::Store(s) => api_error(s),
        PolicyError::Invalid(why) => bad_input(why),
        PolicyError::Target(t) => bad_input(t.to_string()),
        PolicyError::Guarded(g) => async_graphql::Error::new(g.to_string()).extend_with(|_, x| {
            x.set("code", "GUARDED");
            x.set("losing", g.losing as u64);
            x.set("total", g.total);
            x.set("percent", g.percent);
            x.set("maxUsers", g.max_users);
            x.set("maxPercent", g.max_percent);
            x.set("sample", g.sample.clone());
        }),
    }
}
