//! Listing and searching (RFC 7644 §3.4.2, §3.4.3): query parameters or a SearchRequest body,
//! run as one SQL query per page.

use super::response::{ApiError, ApiResult, ScimResponse};
use crate::store::ScimQuery;
use scimdesk_scim::ScimError;
use scimdesk_scim::filter::{AttrPath, parse, parse_path, validate};
use scimdesk_scim::projection::Projection;
use scimdesk_scim::schema::ResourceSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// The most resources one page returns; advertised as `filter.maxResults`.
pub const MAX_PAGE: u32 = 1000;
/// The page size when `count` is not given.
pub const DEFAULT_PAGE: u32 = 100;

/// The list response schema URN.
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The search request schema URN.
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// Query parameters of a GET list. Numbers arrive as text so bad ones get a SCIM error.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    filter: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

/// A list request, from query parameters or a `.search` body.
#[derive(Debug, Default)]
pub struct ListRequest {
    /// The filter text.
    pub filter: Option<String>,
    /// 1-based start.
    pub start_index: Option<i64>,
    /// Page size.
    pub count: Option<i64>,
    /// sortBy.
    pub sort_by: Option<String>,
    /// sortOrder.
    pub sort_order: Option<String>,
    /// attributes.
    pub attributes: Option<String>,
    /// excludedAttributes.
    pub excluded_attributes: Option<String>,
}

fn int(name: &str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    v.map(|s| {
        s.trim().parse::<i64>().map_err(|_| {
            ApiError(ScimError::invalid_value(format!(
                "{name} must be an integer, not {s:?}"
            )))
        })
    })
    .transpose()
}

impl TryFrom<ListParams> for ListRequest {
    type Error = ApiError;
    fn try_from(p: ListParams) -> Result<Self, ApiError> {
        Ok(Self {
            start_index: int("startIndex", p.start_index.as_deref())?,
            count: int("count", p.count.as_deref())?,
            filter: p.filter,
            sort_by: p.sort_by,
            sort_order: p.sort_order,
            attributes: p.attributes,
            excluded_attributes: p.excluded_attributes,
        })
    }
}

impl ListRequest {
    /// Reads a SearchRequest body (RFC 7644 §3.4.3).
    pub fn from_search(body: &Value) -> Result<Self, ApiError> {
        let Value::Object(m) = body else {
            return Err(ApiError(ScimError::invalid_syntax(
                "the body must be a SearchRequest object",
            )));
        };
        let schemas_ok = m.get("schemas").and_then(Value::as_array).is_some_and(|s| {
            s.iter().any(|u| {
                u.as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(SEARCH_REQUEST))
            })
        });
        if !schemas_ok {
            return Err(ApiError(ScimError::invalid_syntax(format!(
                "schemas must be [\"{SEARCH_REQUEST}\"]"
            ))));
        }
        let text = |k: &str| -> Result<Option<String>, ApiError> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Array(items)) => Ok(Some(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                )),
                Some(_) => Err(ApiError(ScimError::invalid_value(format!(
                    "{k} has the wrong type"
                )))),
            }
        };
        let num = |k: &str| -> Result<Option<i64>, ApiError> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_i64().map(Some).ok_or_else(|| {
                    ApiError(ScimError::invalid_value(format!("{k} must be an integer")))
                }),
            }
        };
        Ok(Self {
            filter: text("filter")?,
            start_index: num("startIndex")?,
            count: num("count")?,
            sort_by: text("sortBy")?,
            sort_order: text("sortOrder")?,
            attributes: text("attributes")?,
            excluded_attributes: text("excludedAttributes")?,
        })
    }

    /// The store query and projection for this request, after validating everything.
    pub fn plan(&self, schema: &ResourceSchema) -> Result<(ScimQuery, Projection, u64), ApiError> {
        let filter = match self.filter.as_deref().filter(|f| !f.trim().is_empty()) {
            Some(text) => {
                let f = parse(text)?;
                validate(&f, schema)?;
                Some(f)
            }
            None => None,
        };
        let start = self.start_index.unwrap_or(1).max(1) as u64;
        let count = self
            .count
            .unwrap_or(i64::from(DEFAULT_PAGE))
            .clamp(0, i64::from(MAX_PAGE)) as u32;
        let sort_by: Option<AttrPath> =
            match self.sort_by.as_deref().filter(|s| !s.trim().is_empty()) {
                Some(s) => {
                    let p =
                        parse_path(s).map_err(|e| ApiError(ScimError::invalid_value(e.detail)))?;
                    if p.filter.is_some() {
                        return Err(ApiError(ScimError::invalid_value(
                            "sortBy cannot have a filter",
                        )));
                    }
                    Some(p.attr)
                }
                None => None,
            };
        let descending = match self
            .sort_order
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("ascending") => false,
            Some("descending") => true,
            Some(other) => {
                return Err(ApiError(ScimError::invalid_value(format!(
                    "sortOrder must be ascending or descending, not {other:?}"
                ))));
            }
        };
        let projection = Projection::parse(
            self.attributes.as_deref(),
            self.excluded_attributes.as_deref(),
        )?;
        Ok((
            ScimQuery {
                filter,
                sort_by,
                descending,
                offset: start - 1,
                limit: count,
            },
            projection,
            start,
        ))
    }
}

/// A ListResponse page.
pub fn list_response(resources: Vec<Value>, total: u64, start: u64) -> ApiResult {
    Ok(ScimResponse::ok(json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })))
}
