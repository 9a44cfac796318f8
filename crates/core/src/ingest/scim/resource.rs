//! The SCIM User resource (RFC 7643 §4.1, and the enterprise extension of §4.3) as
//! offboard receives, keeps and returns it.
//!
//! offboard keeps what the provider sent, attribute for attribute, so a GET returns
//! it; it owns only `id` and `meta`, ignores `groups` (read-only on a User) and
//! never stores `password` (write-only, and offboard signs no one in). Attribute
//! names are case-insensitive (RFC 7643 §2.1): known ones are stored in the RFC's
//! spelling, so `Active` and `active` are one attribute. `active` is stored as a
//! boolean whether it came as `false` or as Entra ID's string `"False"`.

use axum::http::{HeaderMap, header};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::error::ScimError;
use crate::{
    domain::{Email, json_kind},
    store::{ScimUser, ScimUserValues},
};

/// The core User schema's URN.
pub const USER_SCHEMA: &str = scim_v2::schema_urns::USER;
/// The enterprise User extension's URN (department, employeeNumber, manager…).
pub const ENTERPRISE_SCHEMA: &str = scim_v2::schema_urns::ENTERPRISE_USER;

/// Every attribute name RFC 7643 gives a User (core and enterprise), in its spelling.
const KNOWN_ATTRIBUTES: &[&str] = &[
    "schemas",
    "id",
    "externalId",
    "meta",
    "userName",
    "name",
    "displayName",
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "active",
    "password",
    "emails",
    "phoneNumbers",
    "ims",
    "photos",
    "addresses",
    "groups",
    "entitlements",
    "roles",
    "x509Certificates",
    "employeeNumber",
    "costCenter",
    "organization",
    "division",
    "department",
    "manager",
];

/// `name` in the RFC's spelling when it is a known attribute (compared without
/// case), else as given.
pub fn canonical_name(name: &str) -> String {
    KNOWN_ATTRIBUTES
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_owned(), |known| (*known).to_owned())
}

/// The key of `object` that names `attribute` without regard to case.
pub fn find_key(object: &Map<String, Value>, attribute: &str) -> Option<String> {
    object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(attribute))
        .cloned()
}

/// A SCIM boolean: JSON `true`/`false`, or the strings `"true"`/`"false"` in any case
/// (Entra ID sends `"False"`).
pub fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Renames known attributes to their spelling, recursively into the enterprise
/// extension, and folds a schema-qualified core attribute
/// (`urn:…:core:2.0:User:userName`) into the root.
fn normalise(object: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in object {
        if key.eq_ignore_ascii_case(ENTERPRISE_SCHEMA) {
            let value = match value {
                Value::Object(ext) => Value::Object(normalise(ext)),
                other => other,
            };
            out.insert(ENTERPRISE_SCHEMA.to_owned(), value);
        } else if let Some(attr) = key.get(USER_SCHEMA.len() + 1..).filter(|_| {
            key.len() > USER_SCHEMA.len()
                && key[..USER_SCHEMA.len()].eq_ignore_ascii_case(USER_SCHEMA)
        }) {
            out.insert(canonical_name(attr), value);
        } else {
            out.insert(canonical_name(&key), value);
        }
    }
    out
}

/// A User as a client sent it (POST, PUT, or the result of a PATCH) → what offboard
/// stores. Checks what RFC 7643 requires and offboard relies on; `id`, `meta`,
/// `groups` and `password` are dropped. A body without `active` keeps
/// `active_if_absent`: true for a new user, the stored value for a change, so a
/// profile update that leaves `active` out never offboards or rehires anyone.
pub fn values_from(body: Value, active_if_absent: bool) -> Result<ScimUserValues, ScimError> {
    let Value::Object(object) = body else {
        return Err(ScimError::invalid_syntax(format!(
            "a User resource is a JSON object, not {}",
            json_kind(&body)
        )));
    };
    let mut resource = normalise(object);
    match resource.get("schemas") {
        Some(Value::Array(schemas))
            if schemas.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(USER_SCHEMA))
            }) => {}
        Some(_) => {
            return Err(ScimError::invalid_value(format!(
                "schemas must be an array that lists {USER_SCHEMA}"
            )));
        }
        None => {
            return Err(ScimError::invalid_value(format!(
                "schemas is required and must list {USER_SCHEMA}"
            )));
        }
    }
    for read_only in ["id", "meta", "groups", "password"] {
        resource.remove(read_only);
    }
    let user_name = match resource.get("userName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(other) if !other.is_null() => {
            return Err(ScimError::invalid_value(format!(
                "userName must be a non-empty string, not {}",
                json_kind(other)
            )));
        }
        _ => return Err(ScimError::invalid_value("userName is required")),
    };
    // offboard finds people in the CRM by work e-mail: a user it could never find
    // is refused now, where the identity provider's admin sees why, rather than
    // taken and then impossible to offboard when it is deprovisioned.
    let work_email = email_in(&resource, &user_name);
    if let Err(e) = Email::parse(&work_email) {
        return Err(ScimError::invalid_value(format!(
            "offboard offboards people by their work e-mail, and {work_email:?} is not one ({e}): send emails with a primary (or work) address, or a userName that is an e-mail address"
        )));
    }
    let external_id = match resource.get("externalId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(ScimError::invalid_value(format!(
                "externalId must be a string, not {}",
                json_kind(other)
            )));
        }
    };
    // RFC 7643 gives `active` no default; identity providers treat a user they
    // created without it as active, and so does offboard. Unassigned (absent or
    // null, RFC 7643 §2.5), it stays unassigned in the resource, so a GET returns
    // no value the client did not send, and a PATCH `remove` of it (RFC 7644
    // §3.5.2.2) leaves it unassigned; a sent value is kept as a boolean.
    let active = match resource.get("active") {
        None | Some(Value::Null) => {
            resource.remove("active");
            active_if_absent
        }
        Some(v) => {
            let active = as_bool(v).ok_or_else(|| {
                ScimError::invalid_value(format!(
                    "active must be true or false (or the strings \"True\"/\"False\"), not {v}"
                ))
            })?;
            resource.insert("active".into(), Value::Bool(active));
            active
        }
    };
    if let Some(Value::Object(ext)) = resource.get_mut(ENTERPRISE_SCHEMA)
        && let Some(Value::String(manager)) = ext.get("manager").cloned()
    {
        // Entra ID may send the manager as a bare id; the schema's shape is {value}.
        ext.insert("manager".into(), json!({ "value": manager }));
    }
    Ok(ScimUserValues {
        user_name,
        external_id,
        active,
        resource: Value::Object(resource),
    })
}

/// `meta.version`, the ETag of a stored user.
pub fn etag(user: &ScimUser) -> String {
    format!("W/\"{}\"", user.version)
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Where the SCIM API is reachable from the client's side, for `meta.location`:
/// the `Host` the client used (or `X-Forwarded-Host`/`-Proto` set by a proxy).
pub fn base_url(headers: &HeaderMap) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let host = header("x-forwarded-host")
        .or_else(|| header(header::HOST.as_str()))
        .unwrap_or("localhost");
    let proto = header("x-forwarded-proto").unwrap_or("http");
    format!("{proto}://{host}/scim/v2")
}

/// The stored user as a SCIM resource: what it was sent, with `id` and `meta`.
pub fn render(user: &ScimUser, base: &str) -> Value {
    let mut out = match &user.resource {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    out.insert("id".into(), Value::String(user.id.clone()));
    out.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": timestamp(user.created_at),
            "lastModified": timestamp(user.updated_at),
            "location": format!("{base}/Users/{}", user.id),
            "version": etag(user),
        }),
    );
    Value::Object(out)
}

/// RFC 7644 §3.9 `attributes` / `excludedAttributes` on a rendered resource:
/// `schemas`, `id` and `meta` are always returned. Names are top-level attributes
/// or `urn:…:User:attr` (compared without case).
pub fn project(resource: &mut Value, attributes: &[String], excluded: &[String]) {
    let Value::Object(o) = resource else { return };
    let always = ["schemas", "id", "meta"];
    let named = |list: &[String], key: &str| {
        list.iter().any(|a| {
            let a = a.rsplit_once(':').map_or(a.as_str(), |(_, attr)| attr);
            let a = a.split('.').next().unwrap_or(a);
            a.eq_ignore_ascii_case(key)
        })
    };
    if !attributes.is_empty() {
        o.retain(|k, _| always.contains(&k.as_str()) || named(attributes, k));
    }
    o.retain(|k, _| always.contains(&k.as_str()) || !named(excluded, k));
}

/// The user's work e-mail as offboard keys people: the primary `emails` value, else
/// a `work` one, else the first, else `userName`.
pub fn email(resource: &Value, user_name: &str) -> String {
    match resource {
        Value::Object(o) => email_in(o, user_name),
        _ => user_name.to_owned(),
    }
}

fn email_in(resource: &Map<String, Value>, user_name: &str) -> String {
    let emails = resource
        .get("emails")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let value = |e: &Value| e.get("value").and_then(Value::as_str).map(str::to_owned);
    emails
        .iter()
        .find(|e| e.get("primary").and_then(as_bool) == Some(true))
        .and_then(value)
        .or_else(|| {
            emails
                .iter()
                .find(|e| {
                    e.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t.eq_ignore_ascii_case("work"))
                })
                .and_then(value)
        })
        .or_else(|| emails.iter().find_map(value))
        .unwrap_or_else(|| user_name.to_owned())
}

/// A display name: `name.formatted`, else given and family name, else `displayName`.
pub fn display_name(resource: &Value) -> Option<String> {
    let name = resource.get("name");
    let part = |k: &str| name.and_then(|n| n.get(k)).and_then(Value::as_str);
    if let Some(formatted) = part("formatted") {
        return Some(formatted.to_owned());
    }
    let joined: Vec<&str> = [part("givenName"), part("familyName")]
        .into_iter()
        .flatten()
        .collect();
    if !joined.is_empty() {
        return Some(joined.join(" "));
    }
    resource
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// An attribute of the enterprise extension.
pub fn enterprise<'a>(resource: &'a Value, attribute: &str) -> Option<&'a Value> {
    resource.get(ENTERPRISE_SCHEMA)?.get(attribute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unassigned_active_stays_unassigned_and_keeps_the_given_state() {
        for (user, stored) in [
            (
                json!({ "schemas": [USER_SCHEMA], "userName": "a@example.com" }),
                true,
            ),
            (
                json!({ "schemas": [USER_SCHEMA], "userName": "a@example.com", "active": null }),
                false,
            ),
        ] {
            let values = values_from(user, stored).unwrap();
            assert_eq!(values.active, stored);
            assert!(
                values.resource.get("active").is_none(),
                "{}",
                values.resource
            );
        }
    }

    #[test]
    fn a_sent_active_is_kept_as_a_boolean() {
        let values = values_from(
            json!({ "schemas": [USER_SCHEMA], "userName": "a@example.com", "Active": "False" }),
            true,
        )
        .unwrap();
        assert!(!values.active);
        assert_eq!(values.resource["active"], json!(false));
    }

    #[test]
    fn a_user_without_any_e_mail_is_refused() {
        let refused = values_from(
            json!({ "schemas": [USER_SCHEMA], "userName": "jdoe" }),
            true,
        );
        assert!(refused.is_err_and(|e| e.detail.contains("work e-mail")));
        let by_emails = values_from(
            json!({ "schemas": [USER_SCHEMA], "userName": "jdoe", "emails": [{ "value": "j@example.com" }] }),
            true,
        );
        assert!(by_emails.is_ok());
    }
}
