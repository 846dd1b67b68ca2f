//! Logins from SAML sources, driven: a response posted to the ACS (or replayed with
//! `scimdesk saml ingest`) is verified (`connectors::saml`), planned as an incremental sync of
//! one user (`policy::login`), and written in one store transaction with its replay check, so
//! mapped roles reach every target in scope as for any other source. Every login, accepted or
//! refused, is a sync run of the source: health shows the last login, the share refused and
//! each refusal's reason.

use super::commands::wake_other_processes;
use crate::connectors::saml::{IdpTrust, SpKey, Verification, metadata, verify_response};
/// What the surfaces answer with: why an assertion was refused, and the size limit.
pub use crate::connectors::saml::{MAX_RESPONSE_BYTES, Refusal, RefusalKind};
use crate::domain::*;
use crate::policy::login::plan_login;
use crate::store::{LoginApplied, Store, StoreError};
use serde::Serialize;

/// What an accepted login did, as the ACS answers it (never the assertion's content beyond the
/// user it names).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoginSummary {
    /// The connection.
    pub connection: String,
    /// The user's id.
    pub user_id: UserId,
    /// Their userName.
    pub user_name: String,
    /// `created`, `updated`, `reactivated` or `unchanged`.
    pub user: &'static str,
    /// Memberships of this source added.
    pub joined: u64,
    /// Memberships of this source removed.
    pub left: u64,
    /// Groups of the source seen for the first time.
    pub groups_created: u64,
    /// The recorded run.
    pub run: SyncRunId,
}

/// Why a login was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The assertion was refused (recorded, and nothing changed).
    #[error("assertion refused: {0}")]
    Refused(Refusal),
    /// The assertion is valid but the user cannot be written: their userName belongs to a
    /// user of another source (recorded, and nothing changed).
    #[error("{0}")]
    Conflict(String),
    /// The connection is not one that takes logins, or is paused.
    #[error("{0}")]
    Unavailable(String),
    /// The connection's settings cannot be used.
    #[error("the SAML connection {connection:?} is misconfigured: {error}")]
    Settings {
        /// The connection.
        connection: String,
        /// Why.
        error: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The longest `SAMLResponse` value read: a response at [`MAX_RESPONSE_BYTES`] in base64,
/// with room for the line breaks some IdPs fold it with.
pub const MAX_POST_VALUE: usize = MAX_RESPONSE_BYTES * 4 / 3 + 8192;

/// Decodes the HTTP-POST binding's `SAMLResponse` (base64 of the XML; line breaks allowed).
pub fn decode_post(saml_response: &str) -> Result<String, Refusal> {
    if saml_response.len() > MAX_POST_VALUE {
        return Err(Refusal::new(
            RefusalKind::TooLarge,
            format!("the response is larger than {MAX_RESPONSE_BYTES} bytes"),
        ));
    }
    let bytes = crate::connectors::saml::verify::decode_base64(saml_response)
        .ok_or_else(|| Refusal::new(RefusalKind::Malformed, "SAMLResponse is not base64"))?;
    String::from_utf8(bytes)
        .map_err(|_| Refusal::new(RefusalKind::Malformed, "the response is not UTF-8 XML"))
}

/// The connection's SAML settings, or why they cannot be used.
pub fn settings_of(connection: &Connection) -> Result<SamlSettings, LoginError> {
    if connection.kind != ConnectionKind::Saml {
        return Err(LoginError::Unavailable(format!(
            "{:?} is a {} connection, not a SAML source",
            connection.name, connection.kind
        )));
    }
    SamlSettings::from_json(&connection.settings.0).map_err(|e| LoginError::Settings {
        connection: connection.name.clone(),
        error: e.to_string(),
    })
}

/// Our SP metadata for `connection`.
pub fn sp_metadata(connection: &Connection) -> Result<String, LoginError> {
    let s = settings_of(connection)?;
    Ok(metadata::sp_metadata(
        &s.sp_entity_id,
        &s.acs_url(connection.id),
        s.sp_certificate.as_deref(),
    ))
}

/// The actor a login of `connection` writes as.
fn actor_of(connection: &Connection) -> Actor {
    Actor::system(format!("saml:{}", connection.name))
}

/// A run of `connection` from `started_at` until now, with `counts` and `error`.
fn run_of(
    connection: &Connection,
    started_at: Timestamp,
    counts: &SyncCounts,
    error: Option<String>,
) -> SyncRun {
    SyncRun {
        id: SyncRunId::new(),
        organization_id: connection.organization_id,
        connection_id: connection.id,
        started_at,
        finished_at: Timestamp::now(),
        full_sync: false,
        dry_run: false,
        actor: actor_of(connection).name,
        counts: Json(serde_json::to_value(counts).unwrap_or(serde_json::Value::Null)),
        error,
        note: None,
    }
}

/// Records a refused login and logs why (never the assertion).
async fn refuse(
    store: &dyn Store,
    connection: &Connection,
    started_at: Timestamp,
    error: LoginError,
) -> LoginError {
    tracing::warn!(
        connection = %connection.name,
        organization = %connection.organization_id,
        "SAML login refused: {error}"
    );
    let run = run_of(
        connection,
        started_at,
        &SyncCounts::default(),
        Some(error.to_string()),
    );
    if let Err(e) = store.record_refused_login(&run).await {
        tracing::warn!("the refused login was not recorded: {e}");
    }
    error
}

/// Records a refusal found before verification (an oversized body, a form without a
/// response, base64 that does not decode) as a refused login of `connection`, and returns it.
pub async fn record_refusal(
    store: &dyn Store,
    connection: &Connection,
    refusal: Refusal,
) -> LoginError {
    refuse(
        store,
        connection,
        Timestamp::now(),
        LoginError::Refused(refusal),
    )
    .await
}

/// Verifies a SAML response (its XML) posted for `connection` and applies the login it
/// carries, or records why not. Nothing changes unless every check passes.
pub async fn ingest(
    store: &dyn Store,
    connection: &Connection,
    xml: &str,
) -> Result<LoginSummary, LoginError> {
    let started_at = Timestamp::now();
    let settings = settings_of(connection)?;
    if connection.state == ConnectionState::Paused {
        return Err(refuse(
            store,
            connection,
            started_at,
            LoginError::Unavailable(format!(
                "the SAML connection {:?} is paused; logins are refused until it is resumed",
                connection.name
            )),
        )
        .await);
    }
    let trust = IdpTrust::from_certificates(&settings.idp_certificates).map_err(|error| {
        LoginError::Settings {
            connection: connection.name.clone(),
            error,
        }
    })?;
    // Our key is opened only for a response that carries an encrypted assertion.
    let sp_key = if connection.has_secret && xml.contains("EncryptedAssertion") {
        let pem = store
            .connection_secret(connection.organization_id, connection.id)
            .await?;
        match pem.map(|p| SpKey::from_pem(p.expose())) {
            Some(Ok(key)) => Some(key),
            Some(Err(error)) => {
                return Err(LoginError::Settings {
                    connection: connection.name.clone(),
                    error,
                });
            }
            None => None,
        }
    } else {
        None
    };
    let acs_url = settings.acs_url(connection.id);
    let verified = match verify_response(
        xml,
        &Verification {
            settings: &settings,
            acs_url: &acs_url,
            trust: &trust,
            sp_key: sp_key.as_ref(),
            now: Timestamp::now(),
        },
    ) {
        Ok(v) => v,
        Err(refusal) => {
            return Err(refuse(store, connection, started_at, LoginError::Refused(refusal)).await);
        }
    };
    let org = connection.organization_id;
    // Two first logins of one user race on the userName: the loser plans again.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (view, known) = store
            .login_view(
                org,
                connection.id,
                &verified.user.external_id,
                &verified.user.user_name,
                &verified.groups,
            )
            .await?;
        let plan = match plan_login(connection.id, &verified, &view, &known) {
            Ok(plan) => plan,
            Err(conflict) => {
                return Err(refuse(
                    store,
                    connection,
                    started_at,
                    LoginError::Conflict(conflict.to_string()),
                )
                .await);
            }
        };
        let user_word = match (&plan.user, plan.counts.reactivated) {
            (LoginUser::Create(..), _) => "created",
            (LoginUser::Update(..), 1) => "reactivated",
            (LoginUser::Update(..), _) => "updated",
            (LoginUser::Keep(_), _) => "unchanged",
        };
        let changed = !matches!(plan.user, LoginUser::Keep(_))
            || !plan.join.is_empty()
            || !plan.leave.is_empty();
        let batch = LoginBatch {
            assertion_id: verified.assertion_id.clone(),
            expires_at: verified.expires_at,
            user: plan.user.clone(),
            join: plan.join.clone(),
            leave: plan.leave.clone(),
            run: run_of(connection, started_at, &plan.counts, None),
        };
        match store
            .apply_login(&actor_of(connection), org, connection.id, &batch)
            .await
        {
            Ok(LoginApplied::Written { groups_created }) => {
                if changed {
                    wake_other_processes(store, org).await;
                }
                return Ok(LoginSummary {
                    connection: connection.name.clone(),
                    user_id: plan.user.id(),
                    user_name: verified.user.user_name.clone(),
                    user: user_word,
                    joined: plan.join.len() as u64,
                    left: plan.leave.len() as u64,
                    groups_created,
                    run: batch.run.id,
                });
            }
            Ok(LoginApplied::Replayed) => {
                let refusal = Refusal::new(
                    RefusalKind::Replay,
                    "this assertion was already used (its ID is in the replay cache)",
                );
                return Err(
                    refuse(store, connection, started_at, LoginError::Refused(refusal)).await,
                );
            }
            Err(StoreError::Conflict(_)) if attempts < 3 => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
