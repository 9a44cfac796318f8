//! RFC 7644 §4 discovery: what this service provider supports, said honestly. A
//! provider (or a compliance checker) reads these before anything else and skips
//! what is marked unsupported: bulk, sort, password change, Groups, `/.search`.
//! Filtering is "supported" in the RFC's sense — the `filter` parameter works —
//! for the expressions README.md lists (`userName eq`, `externalId eq`, `and`);
//! other filters are 400 `invalidFilter`.

use serde_json::{Value, json};

use super::{
    error::ScimError,
    filter::MAX_COUNT,
    resource::{ENTERPRISE_SCHEMA, USER_SCHEMA},
};

/// `GET /ServiceProviderConfig`.
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": [scim_v2::schema_urns::SERVICE_PROVIDER_CONFIG],
        "patch": { "supported": true },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": MAX_COUNT },
        "changePassword": { "supported": false },
        "sort": { "supported": false },
        "etag": { "supported": true },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "Authorization: Bearer <the token offboard reads from [scim] token_env or token_file>",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })
}

fn user_resource_type(base: &str) -> Value {
    json!({
        "schemas": [scim_v2::schema_urns::RESOURCE_TYPE],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "A person the identity provider assigned to offboard; deactivating or deleting one offboards them from the CRM",
        "schema": USER_SCHEMA,
        "schemaExtensions": [{ "schema": ENTERPRISE_SCHEMA, "required": false }],
        "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User") },
    })
}

/// `GET /ResourceTypes` (a ListResponse) or `/ResourceTypes/{id}`.
pub fn resource_types(base: &str, id: Option<&str>) -> Result<Value, ScimError> {
    let user = user_resource_type(base);
    match id {
        None => Ok(list(vec![user])),
        Some(id) if id.eq_ignore_ascii_case("User") => Ok(user),
        Some(id) => Err(ScimError::not_found(format!(
            "no resource type {id:?}: offboard serves User only (no Groups)"
        ))),
    }
}

/// The core User and enterprise User schemas, as RFC 7643 §8.7 publishes them
/// (the `scim_v2` crate carries them), with this server's `meta.location`.
fn schemas(base: &str) -> Result<Vec<Value>, ScimError> {
    let schemas = scim_v2::models::scim_schema::get_schemas(vec!["user", "enterprise_user"])
        .map_err(ScimError::internal)?;
    schemas
        .into_iter()
        .map(|schema| {
            let mut value = serde_json::to_value(&schema).map_err(ScimError::internal)?;
            let id = value
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            value["schemas"] = json!([scim_v2::schema_urns::SCHEMA]);
            value["meta"] = json!({
                "resourceType": "Schema",
                "location": format!("{base}/Schemas/{id}"),
            });
            Ok(value)
        })
        .collect()
}

/// `GET /Schemas` (a ListResponse) or `/Schemas/{urn}`.
pub fn schemas_response(base: &str, id: Option<&str>) -> Result<Value, ScimError> {
    let all = schemas(base)?;
    match id {
        None => Ok(list(all)),
        Some(id) => all
            .into_iter()
            .find(|s| {
                s.get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.eq_ignore_ascii_case(id))
            })
            .ok_or_else(|| ScimError::not_found(format!("no schema {id:?}"))),
    }
}

/// A ListResponse of every item at once (discovery endpoints don't page).
pub fn list(items: Vec<Value>) -> Value {
    json!({
        "schemas": [scim_v2::schema_urns::LIST_RESPONSE],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}
