//! `/ServiceProviderConfig`, `/ResourceTypes` and `/Schemas` (RFC 7644 §4), generated from the
//! same definitions the server runs on, so they tell the truth.

use super::list::{LIST_RESPONSE, MAX_PAGE};
use super::request::MAX_BODY_BYTES;
use super::response::{ApiError, ApiResult, ScimResponse};
use axum::extract::Path;
use scimdesk_scim::ScimError;
use scimdesk_scim::schema::{
    AttrDef, GROUP, Mutability, ResourceSchema, Returned, SchemaDef, USER, Uniqueness,
};
use serde_json::{Value, json};

/// `GET /ServiceProviderConfig`
pub async fn service_provider_config() -> ApiResult {
    Ok(ScimResponse::ok(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/scimdesk/scimdesk",
        "patch": { "supported": true },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": MAX_BODY_BYTES },
        "filter": { "supported": true, "maxResults": MAX_PAGE },
        "changePassword": { "supported": false },
        "sort": { "supported": true },
        "etag": { "supported": true },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a scimdesk-issued Bearer token (RFC 6750)",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": true
        }],
        "meta": { "resourceType": "ServiceProviderConfig", "location": "/ServiceProviderConfig" }
    })))
}

fn resource_type(r: &ResourceSchema) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": r.name,
        "name": r.name,
        "endpoint": r.endpoint,
        "description": r.core.description,
        "schema": r.core.id,
        "schemaExtensions": r.extensions.iter().map(|e| json!({ "schema": e.id, "required": false })).collect::<Vec<_>>(),
        "meta": { "resourceType": "ResourceType", "location": format!("/ResourceTypes/{}", r.name) }
    })
}

fn list(items: Vec<Value>) -> ApiResult {
    Ok(ScimResponse::ok(json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })))
}

/// `GET /ResourceTypes`
pub async fn resource_types() -> ApiResult {
    list(vec![resource_type(&USER), resource_type(&GROUP)])
}

/// `GET /ResourceTypes/{name}`
pub async fn resource_type_by_name(Path(name): Path<String>) -> ApiResult {
    [&USER, &GROUP]
        .into_iter()
        .find(|r| r.name.eq_ignore_ascii_case(&name))
        .map(|r| ScimResponse::ok(resource_type(r)))
        .ok_or_else(|| ApiError(ScimError::status(404, format!("no resource type {name}"))))
}

fn attribute(a: &AttrDef) -> Value {
    let mut v = json!({
        "name": a.name,
        "type": a.ty.as_str(),
        "multiValued": a.multi_valued,
        "description": a.description,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": match a.mutability {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        },
        "returned": match a.returned {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        },
        "uniqueness": match a.uniqueness {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        },
    });
    if !a.sub_attributes.is_empty() {
        v["subAttributes"] = Value::Array(a.sub_attributes.iter().map(attribute).collect());
    }
    if !a.reference_types.is_empty() {
        v["referenceTypes"] = json!(a.reference_types);
    }
    v
}

fn schema(s: &SchemaDef) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "attributes": s.attributes.iter().map(attribute).collect::<Vec<_>>(),
        "meta": { "resourceType": "Schema", "location": format!("/Schemas/{}", s.id) }
    })
}

fn all_schemas() -> Vec<&'static SchemaDef> {
    let mut out = vec![&USER.core];
    out.extend(USER.extensions.iter());
    out.push(&GROUP.core);
    out
}

/// `GET /Schemas`
pub async fn schemas() -> ApiResult {
    list(all_schemas().into_iter().map(schema).collect())
}

/// `GET /Schemas/{id}`
pub async fn schema_by_id(Path(id): Path<String>) -> ApiResult {
    all_schemas()
        .into_iter()
        .find(|s| s.id.eq_ignore_ascii_case(&id))
        .map(|s| ScimResponse::ok(schema(s)))
        .ok_or_else(|| ApiError(ScimError::status(404, format!("no schema {id}"))))
}
