//! A SAML 2.0 identity provider as a source: what a `saml` connection's settings say (the
//! IdP's entityID and signing certificates, our SP's entityID and ACS URL, which attributes
//! carry what), what a verified assertion yields, and what one login writes. Plain data: the
//! verification is `connectors::saml`'s, the plan `policy::login`'s, the writes the store's.

use super::UserId;
use super::{ConnectionId, GroupId, SettingsError, SourceUser, SyncRun, Timestamp, UserDraft};
use serde::{Deserialize, Serialize};

/// Where a SAML login's userName comes from unless told otherwise.
pub const USERNAME_FROM_NAMEID: &str = "nameid";

/// How far apart our clock and the IdP's may be when the settings do not say (seconds).
pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 120;

/// The base URL the ACS and metadata URLs are given under when the settings do not say.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// A `saml` connection's settings (kept in the connection's settings; never secrets: the SP's
/// private key for encrypted assertions is the connection's sealed secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamlSettings {
    /// The IdP's entityID: an assertion's `Issuer` must be exactly this.
    pub idp_entity_id: String,
    /// The IdP's signing certificates, base64 DER (several during a rollover: any verifies).
    pub idp_certificates: Vec<String>,
    /// Where the metadata came from, when it was fetched (`connection set --refresh-metadata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    /// Our entityID: an assertion's `Audience` must name it.
    pub sp_entity_id: String,
    /// The base URL this scimdesk is reached at; the ACS URL is `{public_url}/saml/{id}/acs`.
    #[serde(default = "default_public_url")]
    pub public_url: String,
    /// The ACS URL exactly, when it is not the one `public_url` gives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acs_url: Option<String>,
    /// The attribute whose values are the user's groups.
    pub groups_attribute: String,
    /// The attribute carrying the e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_attribute: Option<String>,
    /// The attribute carrying the given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name_attribute: Option<String>,
    /// The attribute carrying the family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name_attribute: Option<String>,
    /// `nameid`, or the attribute whose value is the userName.
    #[serde(default = "default_username_from")]
    pub username_from: String,
    /// How far apart the clocks may be (seconds).
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u64,
    /// URL prefixes a RelayState may redirect to after a login (none: a JSON answer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relay_state_allow: Vec<String>,
    /// Our certificate (base64 DER) for IdPs that encrypt assertions to us, published in our
    /// metadata; its private key is the connection's secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_certificate: Option<String>,
}

fn default_public_url() -> String {
    DEFAULT_PUBLIC_URL.to_string()
}

fn default_username_from() -> String {
    USERNAME_FROM_NAMEID.to_string()
}

fn default_skew() -> u64 {
    DEFAULT_CLOCK_SKEW_SECS
}

impl SamlSettings {
    /// Reads a connection's settings.
    pub fn from_json(settings: &serde_json::Value) -> Result<Self, SettingsError> {
        let s: Self = serde_json::from_value(settings.clone())
            .map_err(|e| SettingsError::Malformed(format!("SAML settings: {e}")))?;
        if s.idp_certificates.is_empty() {
            return Err(SettingsError::Malformed(
                "SAML settings: no IdP signing certificate (the metadata named none)".into(),
            ));
        }
        if s.clock_skew_secs > 3600 {
            return Err(SettingsError::Malformed(
                "clock_skew_secs must be at most 3600".into(),
            ));
        }
        Ok(s)
    }

    /// The URL assertions are posted to for `connection`: `Destination` and `Recipient` must
    /// be exactly this.
    pub fn acs_url(&self, connection: ConnectionId) -> String {
        self.acs_url.clone().unwrap_or_else(|| {
            format!(
                "{}/saml/{connection}/acs",
                self.public_url.trim_end_matches('/')
            )
        })
    }

    /// Where our SP metadata is published for `connection`.
    pub fn metadata_url_of_sp(&self, connection: ConnectionId) -> String {
        format!(
            "{}/saml/{connection}/metadata",
            self.public_url.trim_end_matches('/')
        )
    }

    /// Whether the login may redirect to `relay_state` afterwards: it must start with one of
    /// the allowed prefixes, each a whole URL up to a path boundary.
    pub fn allows_relay_state(&self, relay_state: &str) -> bool {
        self.relay_state_allow.iter().any(|p| {
            relay_state == p
                || relay_state.strip_prefix(p.as_str()).is_some_and(|rest| {
                    p.ends_with('/') || rest.starts_with('/') || rest.starts_with('?')
                })
        })
    }
}

/// What a verified assertion says about one login: who, with which groups, until when the
/// assertion could be replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedLogin {
    /// The assertion's `ID` (the replay cache's key).
    pub assertion_id: String,
    /// Past this the assertion is refused anyway, so the replay cache may forget it.
    pub expires_at: Timestamp,
    /// The user as the assertion describes them (`external_id` is the NameID).
    pub user: SourceUser,
    /// The asserted groups' values, as the IdP spells them, without duplicates.
    pub groups: Vec<String>,
}

/// What one login writes: the user, the groups of the source they are named in from now on,
/// the assertion id that must never be accepted again, and the login's record.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginBatch {
    /// The assertion's id, refused if already seen for this source.
    pub assertion_id: String,
    /// When the replay cache may forget it.
    pub expires_at: Timestamp,
    /// The user's write.
    pub user: LoginUser,
    /// Groups of the source (by the IdP's value) the user must be named in; those not stored
    /// yet are created.
    pub join: Vec<String>,
    /// Groups of the source the user must no longer be named in.
    pub leave: Vec<GroupId>,
    /// The login's record (a sync run of the source).
    pub run: SyncRun,
}

/// The user half of a login.
#[derive(Debug, Clone, PartialEq)]
pub enum LoginUser {
    /// A user seen for the first time, with the id it gets.
    Create(UserId, UserDraft),
    /// A stored user whose content changed.
    Update(UserId, UserDraft),
    /// A stored user whose content is as asserted.
    Keep(UserId),
}

impl LoginUser {
    /// The user's id.
    pub fn id(&self) -> UserId {
        match self {
            LoginUser::Create(id, _) | LoginUser::Update(id, _) | LoginUser::Keep(id) => *id,
        }
    }
}

/// What the store holds that a login is planned against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoginView {
    /// The users the login may be: this source's user with the NameID as external id, and
    /// the user of that userName (each at most once).
    pub users: Vec<super::User>,
    /// The groups of this source the found user is named in directly, with their external ids.
    pub groups: Vec<(GroupId, String)>,
}
