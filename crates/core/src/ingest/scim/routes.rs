//! The `/scim/v2` handlers. Every request ends in exactly one
//! `offboard_scim_requests_total{operation,outcome}` increment.
//!
//! A write reads the user, computes the new resource (PUT: the body; PATCH: the
//! operations applied to what is stored), works out whether `active` changed, and
//! hands the store the new values, the version it read and the event the change
//! makes, as one transaction. Should another request have changed the user in
//! between, it reads again and recomputes (a bounded number of times), so two
//! concurrent PATCHes never lose one another and a deactivation makes exactly one
//! event whichever request carried it.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, Request, State, rejection::BytesRejection, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::{
    discovery,
    error::{SCIM_JSON, ScimError},
    event::{self, EventSettings, Lifecycle, Person},
    filter, patch, resource,
};
use crate::{
    config::Secret,
    domain::{Email, SharedClock},
    store::{
        IngestOutcome, ScimUser, ScimUserQuery, ScimUserValues, ScimWrite, ScimWriteOutcome,
        SharedStore, within,
    },
};

/// What the SCIM routes need.
#[derive(Clone)]
pub struct ScimState {
    /// Where users, and the events their changes make, are stored.
    pub store: SharedStore,
    /// `[store] unavailable_after_ms`: past it, 503 with `Retry-After`.
    pub store_deadline: std::time::Duration,
    /// `[scim] token_env`: the bearer token, compared in constant time.
    pub token: Arc<Secret>,
    /// How a change becomes an event.
    pub events: Arc<EventSettings>,
    /// Wakes a local worker when a job was stored.
    pub wake: Option<Arc<tokio::sync::Notify>>,
    /// "Now" for timestamps, events and jobs: the store's and the worker's clock.
    pub clock: SharedClock,
}

/// Times a write re-reads a user that changed under it before giving up.
const WRITE_ATTEMPTS: usize = 8;

fn count(operation: &'static str, outcome: &'static str) {
    metrics::counter!(crate::metrics::SCIM_REQUESTS_TOTAL, "operation" => operation, "outcome" => outcome)
        .increment(1);
}

/// Counts a handler's answer: `Ok` with its outcome, or the error's.
fn counted(
    operation: &'static str,
    result: Result<(Response, &'static str), ScimError>,
) -> Response {
    match result {
        Ok((response, outcome)) => {
            count(operation, outcome);
            response
        }
        Err(e) => {
            count(operation, e.outcome());
            if e.status.is_client_error() && e.status != StatusCode::NOT_FOUND {
                tracing::warn!(operation, status = e.status.as_u16(), detail = %e.detail, "scim request refused");
            }
            e.into_response()
        }
    }
}

/// A SCIM JSON body with its content type (and ETag when it is one user).
fn scim_json(status: StatusCode, body: &Value, etag: Option<&str>) -> Response {
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(t).ok()) {
        headers.insert(header::ETAG, tag);
    }
    response
}

/// The bearer-token check in front of every SCIM route.
pub async fn require_token(State(state): State<ScimState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.get(..7)
                .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                .map(|_| v[7..].trim())
        })
        .unwrap_or("");
    let expected = state.token.expose().as_bytes();
    if presented.is_empty() || !bool::from(presented.as_bytes().ct_eq(expected)) {
        count("auth", "unauthorized");
        return ScimError::unauthorized().into_response();
    }
    next.run(req).await
}

/// Any path under `/scim/v2` that is not a route: a SCIM 404 (Groups, Bulk and
/// `/.search` included: discovery says they are unsupported).
pub async fn not_found() -> Response {
    ScimError::not_found(
        "no such SCIM endpoint: offboard serves /Users, /ServiceProviderConfig, /ResourceTypes and /Schemas (no Groups, Bulk or .search)",
    )
    .into_response()
}

/// `/.search`, `/Users/.search`, `/Bulk`: features ServiceProviderConfig says
/// offboard lacks.
pub async fn not_implemented() -> Response {
    count("discovery", "invalid");
    ScimError::not_implemented(
        "offboard supports neither POST .search nor Bulk (see ServiceProviderConfig): list users with GET /Users?filter=…, one request per change",
    )
    .into_response()
}

/// A method a SCIM route does not take.
pub async fn method_not_allowed() -> Response {
    ScimError::method_not_allowed("this SCIM endpoint does not take that method").into_response()
}

fn body_json(body: Result<Bytes, BytesRejection>) -> Result<Value, ScimError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ScimError::too_large()
        } else {
            ScimError::invalid_syntax(format!(
                "could not read the body: {}",
                rejection.body_text()
            ))
        }
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| ScimError::invalid_syntax(format!("body is not valid JSON: {e}")))
}

fn params(
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<BTreeMap<String, String>, ScimError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ScimError::invalid_value(format!("bad query string: {}", e.body_text())))
}

fn store_error(e: crate::store::StoreError) -> ScimError {
    if e.is_unavailable() {
        ScimError::unavailable(&e)
    } else {
        ScimError::internal(e)
    }
}

/// `GET /ServiceProviderConfig`.
pub async fn service_provider_config(headers: HeaderMap) -> Response {
    count("discovery", "ok");
    let base = resource::base_url(&headers);
    scim_json(
        StatusCode::OK,
        &discovery::service_provider_config(&base),
        None,
    )
}

/// `GET /ResourceTypes` and `/ResourceTypes/{id}`.
pub async fn resource_types(headers: HeaderMap, id: Option<Path<String>>) -> Response {
    let base = resource::base_url(&headers);
    counted(
        "discovery",
        discovery::resource_types(&base, id.as_deref().map(String::as_str))
            .map(|v| (scim_json(StatusCode::OK, &v, None), "ok")),
    )
}

/// `GET /Schemas` and `/Schemas/{id}`.
pub async fn schemas(headers: HeaderMap, id: Option<Path<String>>) -> Response {
    let base = resource::base_url(&headers);
    counted(
        "discovery",
        discovery::schemas_response(&base, id.as_deref().map(String::as_str))
            .map(|v| (scim_json(StatusCode::OK, &v, None), "ok")),
    )
}

/// `GET /Users`: filter and page.
pub async fn list_users(
    State(state): State<ScimState>,
    headers: HeaderMap,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Response {
    counted("list", list(&state, &headers, query).await)
}

async fn list(
    state: &ScimState,
    headers: &HeaderMap,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<(Response, &'static str), ScimError> {
    let request = filter::list_request(&params(query)?)?;
    let page = if request.empty {
        crate::store::ScimUserPage {
            total: 0,
            users: Vec::new(),
        }
    } else {
        state
            .store
            .scim_users(&request.query)
            .await
            .map_err(store_error)?
    };
    let base = resource::base_url(headers);
    let resources: Vec<Value> = page
        .users
        .iter()
        .map(|u| {
            let mut r = resource::render(u, &base);
            resource::project(&mut r, &request.attributes, &request.excluded);
            r
        })
        .collect();
    let body = json!({
        "schemas": [scim_v2::schema_urns::LIST_RESPONSE],
        "totalResults": page.total,
        "startIndex": request.start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    });
    Ok((scim_json(StatusCode::OK, &body, None), "ok"))
}

/// `GET /Users/{id}`.
pub async fn get_user(
    State(state): State<ScimState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Response {
    counted("get", get(&state, &headers, &id, query).await)
}

async fn get(
    state: &ScimState,
    headers: &HeaderMap,
    id: &str,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<(Response, &'static str), ScimError> {
    let request = filter::list_request(&params(query)?)?;
    let user = find(state, id).await?;
    let tag = resource::etag(&user);
    if if_none_match(headers, &tag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&tag) {
            response.headers_mut().insert(header::ETAG, v);
        }
        return Ok((response, "ok"));
    }
    let mut body = resource::render(&user, &resource::base_url(headers));
    resource::project(&mut body, &request.attributes, &request.excluded);
    Ok((scim_json(StatusCode::OK, &body, Some(&tag)), "ok"))
}

async fn find(state: &ScimState, id: &str) -> Result<ScimUser, ScimError> {
    within(state.store_deadline, state.store.scim_user(id))
        .await
        .map_err(store_error)?
        .ok_or_else(|| ScimError::not_found(format!("no user {id:?}")))
}

fn header_tags(headers: &HeaderMap, name: header::HeaderName) -> Option<Vec<&str>> {
    let value = headers.get(name)?.to_str().ok()?;
    Some(value.split(',').map(str::trim).collect())
}

/// RFC 7232 weak comparison: `W/"3"` and `"3"` name the same version.
fn same_tag(a: &str, b: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    a == "*" || strip(a) == strip(b)
}

fn if_none_match(headers: &HeaderMap, tag: &str) -> bool {
    header_tags(headers, header::IF_NONE_MATCH)
        .is_some_and(|tags| tags.iter().any(|t| same_tag(t, tag)))
}

/// `If-Match` on a write: the user must still be at a version the client names.
fn check_if_match(headers: &HeaderMap, user: &ScimUser) -> Result<(), ScimError> {
    let tag = resource::etag(user);
    match header_tags(headers, header::IF_MATCH) {
        Some(tags) if !tags.iter().any(|t| same_tag(t, &tag)) => {
            Err(ScimError::precondition_failed(format!(
                "If-Match names another version; the user is at {tag}"
            )))
        }
        _ => Ok(()),
    }
}

/// `POST /Users`.
pub async fn create_user(
    State(state): State<ScimState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    counted("create", create(&state, &headers, body).await)
}

async fn create(
    state: &ScimState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Response, &'static str), ScimError> {
    let values = resource::values_from(body_json(body)?, true)?;
    let user_name = values.user_name.clone();
    let write = ScimWrite {
        id: uuid::Uuid::now_v7().to_string(),
        expected_version: None,
        values: Some(values),
        event: None,
    };
    match within(state.store_deadline, state.store.scim_write(write))
        .await
        .map_err(store_error)?
    {
        ScimWriteOutcome::Written {
            user: Some(user), ..
        } => {
            tracing::info!(scim_user = %user.id, "scim user created");
            let base = resource::base_url(headers);
            let body = resource::render(&user, &base);
            let mut response = scim_json(StatusCode::CREATED, &body, Some(&resource::etag(&user)));
            if let Ok(location) = HeaderValue::from_str(&format!("{base}/Users/{}", user.id)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok((response, "ok"))
        }
        ScimWriteOutcome::UserNameTaken => Err(ScimError::uniqueness(&user_name)),
        other => Err(ScimError::internal(format!("create answered {other:?}"))),
    }
}

/// `PUT /Users/{id}`: the body replaces the user.
pub async fn replace_user(
    State(state): State<ScimState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = match body_json(body) {
        Ok(body) => {
            change(&state, &headers, &id, |current| {
                resource::values_from(body.clone(), current.active).map(Some)
            })
            .await
        }
        Err(e) => Err(e),
    };
    counted("replace", result)
}

/// `PATCH /Users/{id}`: the operations applied to the stored user.
pub async fn patch_user(
    State(state): State<ScimState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = match body_json(body).and_then(patch::parse) {
        Ok(ops) => {
            change(&state, &headers, &id, |current| {
                let mut patched = patch::apply(&current.resource, &ops)?;
                // The patched resource is checked like a PUT body; it keeps the
                // stored schemas unless an operation changed them.
                if patched.get("schemas").is_none() {
                    patched["schemas"] = json!([resource::USER_SCHEMA]);
                }
                resource::values_from(patched, current.active).map(Some)
            })
            .await
        }
        Err(e) => Err(e),
    };
    counted("patch", result)
}

/// `DELETE /Users/{id}`: the user is gone; an active one is offboarded.
pub async fn delete_user(
    State(state): State<ScimState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    counted("delete", change(&state, &headers, &id, |_| Ok(None)).await)
}

/// Read, compute, write with the version read; again if the user changed between.
/// `next` returns the new values, or `None` to delete.
async fn change(
    state: &ScimState,
    headers: &HeaderMap,
    id: &str,
    next: impl Fn(&ScimUser) -> Result<Option<ScimUserValues>, ScimError>,
) -> Result<(Response, &'static str), ScimError> {
    for _ in 0..WRITE_ATTEMPTS {
        let current = find(state, id).await?;
        check_if_match(headers, &current)?;
        let after = next(&current)?;
        let lifecycle = Lifecycle::of(Some(current.active), after.as_ref().map(|v| v.active));
        let version = current.version.saturating_add(1);
        let event = match lifecycle {
            None => None,
            Some(change) => {
                Some(make_event(state, change, &current, after.as_ref(), version).await?)
            }
        };
        let user_name = after.as_ref().map(|v| v.user_name.clone());
        let write = ScimWrite {
            id: id.to_owned(),
            expected_version: Some(current.version),
            values: after,
            event,
        };
        match within(state.store_deadline, state.store.scim_write(write))
            .await
            .map_err(store_error)?
        {
            ScimWriteOutcome::Written { user, event } => {
                let outcome = announce(state, id, lifecycle, event.as_ref());
                let response = match user {
                    Some(user) => {
                        let body = resource::render(&user, &resource::base_url(headers));
                        scim_json(StatusCode::OK, &body, Some(&resource::etag(&user)))
                    }
                    None => StatusCode::NO_CONTENT.into_response(),
                };
                return Ok((response, outcome));
            }
            ScimWriteOutcome::VersionMismatch => continue,
            ScimWriteOutcome::NotFound => {
                return Err(ScimError::not_found(format!("no user {id:?}")));
            }
            ScimWriteOutcome::UserNameTaken => {
                return Err(ScimError::uniqueness(
                    user_name.as_deref().unwrap_or_default(),
                ));
            }
        }
    }
    Err(ScimError::internal(format!(
        "user {id} changed {WRITE_ATTEMPTS} times while this request was applied"
    )))
}

/// Logs the stored change, wakes a local worker, and names the metrics outcome.
fn announce(
    state: &ScimState,
    id: &str,
    lifecycle: Option<Lifecycle>,
    event: Option<&IngestOutcome>,
) -> &'static str {
    match (lifecycle, event) {
        (Some(change), Some(IngestOutcome::Accepted { event_id, job_id })) => {
            tracing::info!(scim_user = %id, %event_id, %job_id, change = change.outcome(), "scim change stored with its event: new job");
            if let Some(wake) = &state.wake {
                wake.notify_one();
            }
            change.outcome()
        }
        (Some(change), _) => change.outcome(),
        (None, _) => "ok",
    }
}

/// The event of `change`, naming the person as they are after it (before it, for
/// a delete), with the manager's e-mail resolved through the stored users.
async fn make_event(
    state: &ScimState,
    change: Lifecycle,
    current: &ScimUser,
    after: Option<&ScimUserValues>,
    version: u64,
) -> Result<crate::store::NewEvent, ScimError> {
    let (user_name, external_id, resource) = match after {
        Some(v) => (v.user_name.as_str(), v.external_id.as_deref(), &v.resource),
        None => (
            current.user_name.as_str(),
            current.external_id.as_deref(),
            &current.resource,
        ),
    };
    let manager_email = match event::manager_reference(resource) {
        None => None,
        Some(reference) => resolve_manager(state, &reference).await?,
    };
    let person = Person {
        id: &current.id,
        user_name,
        external_id,
        resource,
        manager_email,
    };
    event::new_event(&state.events, change, &person, version, state.clock.now())
}

/// A manager reference → an e-mail: itself when it is one, else the stored user it
/// names by id or externalId. A reference offboard can't resolve is left out (the
/// policy then falls back to the CRM's own manager or the fallback owner).
async fn resolve_manager(state: &ScimState, reference: &str) -> Result<Option<String>, ScimError> {
    if Email::parse(reference).is_ok() {
        return Ok(Some(reference.to_owned()));
    }
    let by_id = state
        .store
        .scim_user(reference)
        .await
        .map_err(store_error)?;
    let manager = match by_id {
        Some(m) => Some(m),
        None => within(
            state.store_deadline,
            state.store.scim_users(&ScimUserQuery {
                external_id: Some(reference.to_owned()),
                limit: 1,
                ..ScimUserQuery::default()
            }),
        )
        .await
        .map_err(store_error)?
        .users
        .into_iter()
        .next(),
    };
    Ok(manager
        .map(|m| event::manager_email(&m))
        .filter(|e| Email::parse(e).is_ok()))
}
