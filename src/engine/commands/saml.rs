//! SAML sources as people add them and keep their IdP's certificates current: the settings a
//! `saml` connection is created with (from the IdP's metadata, a file's text or fetched from
//! its URL), checked the way a login will read them, and the refresh of the metadata from
//! its URL (certificate rollover).

use super::PolicyError;
use crate::connectors::saml::metadata::{self, IdpMetadata};
use crate::connectors::saml::verify::SpKey;
use crate::domain::*;
use crate::store::Store;
use serde_json::{Map, Value};

/// Where the IdP's metadata comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataSource {
    /// Its XML, as read from a file.
    Xml(String),
    /// Its URL, fetched now and again by `connection set --refresh-metadata`.
    Url(String),
}

/// What a person gives to add a SAML source.
#[derive(Debug, Clone, PartialEq)]
pub struct SamlSpec {
    /// The IdP's metadata.
    pub metadata: MetadataSource,
    /// Our entityID.
    pub sp_entity_id: String,
    /// The attribute listing the user's groups.
    pub groups_attribute: String,
    /// The e-mail attribute.
    pub email_attribute: Option<String>,
    /// The given-name attribute.
    pub given_name_attribute: Option<String>,
    /// The family-name attribute.
    pub family_name_attribute: Option<String>,
    /// `nameid` or the attribute holding the userName.
    pub username_from: Option<String>,
    /// Clock skew allowed, seconds.
    pub clock_skew_secs: Option<u64>,
    /// The base URL scimdesk is reached at.
    pub public_url: Option<String>,
    /// The exact ACS URL, when not `{public_url}/saml/{id}/acs`.
    pub acs_url: Option<String>,
    /// URL prefixes a RelayState may redirect to.
    pub relay_state_allow: Vec<String>,
    /// Our encryption certificate (PEM), published in our metadata.
    pub sp_certificate_pem: Option<String>,
}

/// Reads the metadata `source` gives.
async fn read_metadata(source: &MetadataSource) -> Result<IdpMetadata, PolicyError> {
    let read = match source {
        MetadataSource::Xml(xml) => metadata::parse_idp_metadata(xml),
        MetadataSource::Url(url) => metadata::fetch_idp_metadata(url).await,
    };
    read.map_err(|e| PolicyError::Invalid(e.to_string()))
}

/// A PEM certificate as the base64 DER metadata carries.
fn certificate_from_pem(pem: &str) -> Result<String, PolicyError> {
    metadata::certificate_from_pem(pem)
        .map_err(|_| PolicyError::Invalid("--sp-cert-file is not a PEM certificate".into()))
}

/// The settings of a new SAML source, checked as a login reads them; the IdP's metadata is
/// fetched when a URL is given.
pub async fn saml_settings(spec: &SamlSpec) -> Result<Map<String, Value>, PolicyError> {
    let idp = read_metadata(&spec.metadata).await?;
    let mut settings = SamlSettings {
        idp_entity_id: idp.entity_id,
        idp_certificates: idp.signing_certificates,
        metadata_url: match &spec.metadata {
            MetadataSource::Url(u) => Some(u.clone()),
            MetadataSource::Xml(_) => None,
        },
        sp_entity_id: spec.sp_entity_id.trim().to_string(),
        public_url: crate::domain::saml::DEFAULT_PUBLIC_URL.to_string(),
        acs_url: None,
        groups_attribute: spec.groups_attribute.trim().to_string(),
        email_attribute: spec.email_attribute.clone(),
        given_name_attribute: spec.given_name_attribute.clone(),
        family_name_attribute: spec.family_name_attribute.clone(),
        username_from: spec
            .username_from
            .clone()
            .unwrap_or_else(|| crate::domain::saml::USERNAME_FROM_NAMEID.to_string()),
        clock_skew_secs: spec
            .clock_skew_secs
            .unwrap_or(crate::domain::saml::DEFAULT_CLOCK_SKEW_SECS),
        relay_state_allow: Vec::new(),
        sp_certificate: spec
            .sp_certificate_pem
            .as_deref()
            .map(certificate_from_pem)
            .transpose()?,
    };
    if settings.sp_entity_id.is_empty() {
        return Err(PolicyError::Invalid(
            "--sp-entity-id must not be empty".into(),
        ));
    }
    if settings.groups_attribute.is_empty() {
        return Err(PolicyError::Invalid(
            "--groups-attribute must not be empty".into(),
        ));
    }
    if let Some(url) = &spec.public_url {
        settings.public_url = validate::base_url(url).map_err(crate::store::StoreError::from)?;
    }
    if let Some(url) = &spec.acs_url {
        settings.acs_url = Some(validate::base_url(url).map_err(crate::store::StoreError::from)?);
    }
    for prefix in &spec.relay_state_allow {
        let url = url::Url::parse(prefix).map_err(|e| {
            PolicyError::Invalid(format!("--relay-state-allow {prefix:?} is not a URL: {e}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(PolicyError::Invalid(format!(
                "--relay-state-allow {prefix:?} must be an http or https URL"
            )));
        }
        settings.relay_state_allow.push(prefix.clone());
    }
    let value = serde_json::to_value(&settings)
        .map_err(|e| PolicyError::Invalid(format!("SAML settings: {e}")))?;
    SamlSettings::from_json(&value).map_err(|e| PolicyError::Invalid(e.to_string()))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(PolicyError::Invalid(
            "SAML settings are not an object".into(),
        )),
    }
}

/// Checks our SP private key (the connection's secret) before it is sealed.
pub fn check_sp_key(pem: &str) -> Result<(), PolicyError> {
    SpKey::from_pem(pem)
        .map(|_| ())
        .map_err(PolicyError::Invalid)
}

/// Reads the IdP's metadata again (from `source`, or the URL the connection was added with)
/// and stores its entityID and signing certificates: a certificate rollover without
/// downtime, since every certificate the metadata lists verifies.
pub async fn refresh_saml_metadata(
    store: &dyn Store,
    actor: &Actor,
    org: OrganizationId,
    id: ConnectionId,
    source: Option<MetadataSource>,
) -> Result<Connection, PolicyError> {
    let connection = store
        .connection(org, id)
        .await?
        .ok_or_else(|| crate::store::StoreError::NotFound(format!("connection {id}")))?;
    if connection.kind != ConnectionKind::Saml {
        return Err(PolicyError::Invalid(format!(
            "{:?} is a {} connection; only SAML sources have IdP metadata",
            connection.name, connection.kind
        )));
    }
    let mut settings = SamlSettings::from_json(&connection.settings.0)
        .map_err(|e| PolicyError::Invalid(e.to_string()))?;
    let source = match source {
        Some(s) => s,
        None => MetadataSource::Url(settings.metadata_url.clone().ok_or_else(|| {
            PolicyError::Invalid(
                "this connection was added from a metadata file; give --metadata-file or --metadata-url"
                    .into(),
            )
        })?),
    };
    let idp = read_metadata(&source).await?;
    settings.idp_entity_id = idp.entity_id;
    settings.idp_certificates = idp.signing_certificates;
    if let MetadataSource::Url(u) = source {
        settings.metadata_url = Some(u);
    }
    let value = serde_json::to_value(&settings)
        .map_err(|e| PolicyError::Invalid(format!("SAML settings: {e}")))?;
    Ok(store
        .update_connection(
            actor,
            org,
            id,
            &ConnectionUpdate {
                settings: Some(value),
                ..Default::default()
            },
        )
        .await?)
}
