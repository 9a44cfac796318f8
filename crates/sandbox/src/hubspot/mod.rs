//! The HubSpot dialect: the part of HubSpot's CRM v3 and settings v3 APIs
//! offboard uses (DESIGN.md §9), served from the same organisation model as
//! Sell and Pipedrive, answering as HubSpot does well enough for HubSpot's own
//! client libraries (the shapes of hubspot-api-nodejs' generated models).
//!
//! - owners: `GET /crm/v3/owners?email=&archived=&limit=&after=`, `GET
//!   /crm/v3/owners/{id}?idProperty=id|userId&archived=`. A seeded user `u` is
//!   owner [`OWNER_BASE`]` + u` (owner id ≠ user id, as in HubSpot) and
//!   settings user `u`; an inactive or deleted user's owner is archived and
//!   keeps only `userIdIncludingInactive`;
//! - users: `GET /settings/v3/users?limit=&after=`, `GET`/`DELETE
//!   /settings/v3/users/{id}` (the delete applies the model's rules: nothing
//!   open left; deleted users answer 404);
//! - records: `POST /crm/v3/objects/{contacts,companies,deals,tasks,tickets}/search`
//!   (filters `hubspot_owner_id EQ`, `hs_object_id GT`, `hs_task_status
//!   EQ|NEQ`; ascending ids; `limit` ≤ 200; `after` an offset; a page past
//!   10,000 results is a 400, as HubSpot's cap), `POST …/batch/update` (at most
//!   100 inputs, else 400; per-record errors answer 207 with `errors[]` naming
//!   the ids in `context.ids`), `POST /crm/v3/objects/tasks`;
//! - tickets: searched and batch-updated as above (`hs_pipeline_stage` `1` open,
//!   `4` closed), and `GET /crm/v3/pipelines/tickets` with the default support
//!   pipeline whose stages say which is closed (`metadata.ticketState`);
//! - the gate: `Authorization: Bearer`, a rolling 10-second window of
//!   `10 × rps` requests per token with `X-HubSpot-RateLimit-Interval-Milliseconds`,
//!   `-Max` and `-Remaining` on each answer and HubSpot's 429 body beyond, then
//!   the shared latency and faults.
//!
//! Companies are the contacts with `is_organization`; a deal's `hs_is_closed`
//! comes from its stage's category (won/lost); a task is `COMPLETED` when
//! `completed`.
//!
//! Sources: the client module `offboard_core::crm::hubspot` lists them (owners
//! guide, settings users reference, search guide and limits, the batch-update
//! 200/207 changelog, tasks guide, error handling, usage guidelines). Not
//! confirmed, so chosen and kept plain: the exact texts of errors, that a
//! batch with an inactive owner fails per record with `VALIDATION_ERROR` (207)
//! rather than as a whole, and HubSpot's answer to a removal of a user who still
//! owns open records (400 here, the model's rule).

mod gate;

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State, rejection::BytesRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Map, Value, json};

use crate::{
    SandboxState,
    db::{Db, Kind, WriteError},
    query::Params,
    seed::{Contact, Deal, Task, Ticket, User},
    state::now,
};
use offboard_domain::{Resource, UserRole};

pub(crate) use gate::admit;

/// Owner ids are the seeded user ids plus this, so that a client mixing up
/// owner and user ids is caught.
pub const OWNER_BASE: i64 = 90_000_000;

/// HubSpot's most results one search query can page through.
const SEARCH_CAP: usize = 10_000;
/// The largest search page.
const SEARCH_LIMIT: usize = 200;
/// Inputs per batch.
const BATCH_MAX: usize = 100;

/// The stage of an open ticket and of a closed one: HubSpot's default support
/// pipeline ("0") starts with "New" (`1`) and ends with "Closed" (`4`).
const TICKET_STAGE_NEW: &str = "1";
const TICKET_STAGE_CLOSED: &str = "4";

/// A HubSpot failure, with HubSpot's envelope.
#[derive(Debug, Clone)]
pub(crate) struct HsError {
    status: StatusCode,
    category: &'static str,
    message: String,
}

impl HsError {
    fn new(status: StatusCode, category: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            category,
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", message)
    }
    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found.",
        )
    }
    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "internal error",
        )
    }
    pub(crate) fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "service unavailable",
        )
    }
}

impl IntoResponse for HsError {
    fn into_response(self) -> Response {
        let body = json!({
            "status": "error",
            "message": self.message,
            "correlationId": uuid::Uuid::from_u128(rand::random()).to_string(),
            "category": self.category,
        });
        (self.status, Json(body)).into_response()
    }
}

type Answer = Result<Response, HsError>;

/// The CRM's routes (the gate is layered on by the caller).
pub(crate) fn router() -> Router<SandboxState> {
    Router::new()
        .route("/crm/v3/owners", get(owners))
        .route("/crm/v3/owners/", get(owners))
        .route("/crm/v3/owners/{id}", get(owner))
        .route("/settings/v3/users", get(users))
        .route("/settings/v3/users/", get(users))
        .route("/settings/v3/users/{id}", get(user).delete(delete_user))
        .route("/crm/v3/objects/tasks", post(create_task))
        .route("/crm/v3/pipelines/tickets", get(ticket_pipelines))
        .route("/crm/v3/objects/{kind}/search", post(search))
        .route("/crm/v3/objects/{kind}/batch/update", post(batch_update))
        .fallback(|| async { HsError::not_found("unknown endpoint") })
}

fn params(q: Option<String>) -> Result<Params, HsError> {
    Params::parse(q.as_deref()).map_err(|e| HsError::bad_request(e.details))
}

/// `after` is an offset here (HubSpot's cursors are opaque strings).
fn paged(items: Vec<Value>, p: &Params, max: usize) -> Result<Value, HsError> {
    let limit = match p
        .int("limit")
        .map_err(|e| HsError::bad_request(e.details))?
    {
        None => 100,
        Some(n) if n >= 1 && n as usize <= max => n as usize,
        Some(n) => return Err(HsError::bad_request(format!("limit {n} is out of range"))),
    };
    let after = p
        .get("after")
        .map(|a| a.parse::<usize>())
        .transpose()
        .map_err(|_| HsError::bad_request("after is not a valid cursor"))?
        .unwrap_or(0);
    Ok(page_of(items, after, limit))
}

fn page_of(items: Vec<Value>, after: usize, limit: usize) -> Value {
    let total = items.len();
    let results: Vec<Value> = items.into_iter().skip(after).take(limit).collect();
    let mut body = json!({ "results": results });
    if after + limit < total {
        let next = (after + limit).to_string();
        body["paging"] = json!({ "next": { "after": next, "link": format!("?after={next}") } });
    }
    body
}

fn owner_json(u: &User) -> Value {
    let active = u.is_active();
    let (first, last) = u.name.split_once(' ').unwrap_or((u.name.as_str(), ""));
    json!({
        "id": (OWNER_BASE + u.id).to_string(),
        "email": u.email,
        "type": "PERSON",
        "firstName": first,
        "lastName": last,
        "userId": active.then_some(u.id),
        "userIdIncludingInactive": u.id,
        "createdAt": u.created_at,
        "updatedAt": u.deleted_at.as_ref().unwrap_or(&u.updated_at),
        "archived": !active,
        "teams": [],
    })
}

fn user_json(u: &User) -> Value {
    json!({
        "id": u.id.to_string(),
        "email": u.email,
        "superAdmin": u.role == UserRole::Admin,
        "roleIds": [],
        "secondaryTeamIds": [],
    })
}

fn archived(p: &Params) -> Result<bool, HsError> {
    Ok(p.bool("archived")
        .map_err(|e| HsError::bad_request(e.details))?
        .unwrap_or(false))
}

async fn owners(State(s): State<SandboxState>, RawQuery(q): RawQuery) -> Answer {
    let p = params(q)?;
    let archived = archived(&p)?;
    let email = p.get("email").map(str::to_lowercase);
    let db = s.inner.db.read().await;
    let items: Vec<Value> = db
        .users
        .values()
        .filter(|u| u.is_active() != archived)
        .filter(|u| email.as_ref().is_none_or(|e| u.email.to_lowercase() == *e))
        .map(owner_json)
        .collect();
    Ok(Json(paged(items, &p, 500)?).into_response())
}

async fn owner(
    State(s): State<SandboxState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer {
    let p = params(q)?;
    let archived = archived(&p)?;
    let by_user = p.get("idProperty") == Some("userId");
    let n: i64 = id
        .parse()
        .map_err(|_| HsError::bad_request(format!("{id} is not an owner id")))?;
    let user_id = if by_user { n } else { n - OWNER_BASE };
    let db = s.inner.db.read().await;
    db.users
        .get(&user_id)
        .filter(|u| u.is_active() != archived)
        .map(|u| Json(owner_json(u)).into_response())
        .ok_or_else(|| HsError::not_found(format!("owner {id} not found")))
}

async fn users(State(s): State<SandboxState>, RawQuery(q): RawQuery) -> Answer {
    let p = params(q)?;
    let db = s.inner.db.read().await;
    let items: Vec<Value> = db
        .users
        .values()
        .filter(|u| u.deleted_at.is_none())
        .map(user_json)
        .collect();
    Ok(Json(paged(items, &p, 100)?).into_response())
}

fn user_id(id: &str) -> Result<i64, HsError> {
    id.parse()
        .map_err(|_| HsError::bad_request(format!("{id} is not a user id")))
}

async fn user(State(s): State<SandboxState>, Path(id): Path<String>) -> Answer {
    let n = user_id(&id)?;
    let db = s.inner.db.read().await;
    db.visible_user(n)
        .map(|u| Json(user_json(u)).into_response())
        .ok_or_else(|| HsError::not_found(format!("user {id} not found")))
}

async fn delete_user(State(s): State<SandboxState>, Path(id): Path<String>) -> Answer {
    let n = user_id(&id)?;
    let mut db = s.inner.db.write().await;
    if db.visible_user(n).is_none() {
        return Err(HsError::not_found(format!("user {id} not found")));
    }
    db.delete_user_unless_owning(n, &now(), &[Resource::Contacts, Resource::Deals])
        .map_err(|e| HsError::bad_request(e.to_string()))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// HubSpot's object types over the shared model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Object {
    Contacts,
    Companies,
    Deals,
    Tasks,
    Tickets,
}

impl Object {
    fn parse(kind: &str) -> Result<Self, HsError> {
        Ok(match kind {
            "contacts" => Self::Contacts,
            "companies" => Self::Companies,
            "deals" => Self::Deals,
            "tasks" => Self::Tasks,
            "tickets" => Self::Tickets,
            other => return Err(HsError::not_found(format!("unknown object type {other}"))),
        })
    }

    fn resource(self) -> Resource {
        match self {
            Self::Contacts => Resource::Contacts,
            Self::Companies => Resource::Organizations,
            Self::Deals => Resource::Deals,
            Self::Tasks => Resource::Tasks,
            Self::Tickets => Resource::Tickets,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Contacts => "CONTACT",
            Self::Companies => "COMPANY",
            Self::Deals => "DEAL",
            Self::Tasks => "TASK",
            Self::Tickets => "TICKET",
        }
    }

    /// Every record of this type as `(id, owner user id, properties)`.
    fn rows(self, db: &Db) -> Vec<(i64, i64, BTreeMap<&'static str, Value>)> {
        let owner = |o: i64| Value::String((OWNER_BASE + o).to_string());
        match self {
            Self::Contacts | Self::Companies => db
                .contacts
                .values()
                .filter(|r| r.data.is_organization == (self == Self::Companies))
                .map(|r| {
                    let c = &r.data;
                    (
                        c.id,
                        c.owner_id,
                        BTreeMap::from([("hubspot_owner_id", owner(c.owner_id))]),
                    )
                })
                .collect(),
            Self::Deals => db
                .deals
                .values()
                .map(|r| {
                    let d = &r.data;
                    let closed = db.stages.get(&d.stage_id).is_some_and(|s| s.is_closing());
                    let props = BTreeMap::from([
                        ("hubspot_owner_id", owner(d.owner_id)),
                        ("dealstage", Value::String(d.stage_id.to_string())),
                        ("hs_is_closed", Value::String(closed.to_string())),
                    ]);
                    (d.id, d.owner_id, props)
                })
                .collect(),
            Self::Tasks => db
                .tasks
                .values()
                .map(|r| (r.data.id, r.data.owner_id, task_props(db, &r.data)))
                .collect(),
            Self::Tickets => db
                .tickets
                .values()
                .map(|r| {
                    let t = &r.data;
                    let stage = if t.closed {
                        TICKET_STAGE_CLOSED
                    } else {
                        TICKET_STAGE_NEW
                    };
                    let props = BTreeMap::from([
                        ("hubspot_owner_id", owner(t.owner_id)),
                        ("hs_pipeline", Value::String("0".to_owned())),
                        ("hs_pipeline_stage", Value::String(stage.to_owned())),
                        ("subject", Value::String(t.subject.clone())),
                    ]);
                    (t.id, t.owner_id, props)
                })
                .collect(),
        }
    }

    fn exists(self, db: &Db, id: i64) -> bool {
        match self {
            Self::Contacts | Self::Companies => db
                .contacts
                .get(&id)
                .is_some_and(|r| r.data.is_organization == (self == Self::Companies)),
            Self::Deals => db.deals.contains_key(&id),
            Self::Tasks => db.tasks.contains_key(&id),
            Self::Tickets => db.tickets.contains_key(&id),
        }
    }
}

/// `GET /crm/v3/pipelines/tickets`: the default support pipeline, whose stages
/// say which ticket statuses are closed (`metadata.ticketState`).
async fn ticket_pipelines() -> Answer {
    let stage = |id: &str, label: &str, order: u32, state: &str| {
        json!({
            "id": id, "label": label, "displayOrder": order, "archived": false,
            "metadata": { "ticketState": state },
            "createdAt": "2019-10-30T03:30:17.883Z", "updatedAt": "2019-10-30T03:30:17.883Z",
        })
    };
    Ok(Json(json!({ "results": [{
        "id": "0", "label": "Support Pipeline", "displayOrder": 0, "archived": false,
        "createdAt": "2019-10-30T03:30:17.883Z", "updatedAt": "2019-10-30T03:30:17.883Z",
        "stages": [
            stage(TICKET_STAGE_NEW, "New", 0, "OPEN"),
            stage("2", "Waiting on contact", 1, "OPEN"),
            stage("3", "Waiting on us", 2, "OPEN"),
            stage(TICKET_STAGE_CLOSED, "Closed", 3, "CLOSED"),
        ],
    }]}))
    .into_response())
}

fn task_props(db: &Db, t: &Task) -> BTreeMap<&'static str, Value> {
    let status = if t.completed {
        "COMPLETED"
    } else {
        "NOT_STARTED"
    };
    let subject = t.content.lines().next().unwrap_or_default().to_owned();
    let body = db
        .task_notes
        .get(&t.id)
        .cloned()
        .unwrap_or_else(|| t.content.clone());
    BTreeMap::from([
        (
            "hubspot_owner_id",
            Value::String((OWNER_BASE + t.owner_id).to_string()),
        ),
        ("hs_task_status", Value::String(status.to_owned())),
        ("hs_task_subject", Value::String(subject)),
        ("hs_task_body", Value::String(body)),
        (
            "hs_timestamp",
            t.due_date.clone().map_or(Value::Null, Value::String),
        ),
    ])
}

fn object_json(id: i64, mut props: BTreeMap<&'static str, Value>, wanted: &[String]) -> Value {
    props.insert("hs_object_id", Value::String(id.to_string()));
    let properties: Map<String, Value> = props
        .into_iter()
        .filter(|(k, _)| *k == "hs_object_id" || wanted.iter().any(|w| w == k))
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    json!({ "id": id.to_string(), "properties": properties, "archived": false,
            "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-01T00:00:00Z" })
}

fn body_object(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, HsError> {
    let body = body.map_err(|e| HsError::bad_request(e.body_text()))?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(HsError::bad_request("Invalid input JSON")),
    }
}

/// Whether a record's property matches one filter; unsupported filters are a
/// 400 rather than ignored, so a client never gets records it didn't ask for.
fn matches(id: i64, props: &BTreeMap<&'static str, Value>, f: &Value) -> Result<bool, HsError> {
    let name = f["propertyName"].as_str().unwrap_or_default();
    let op = f["operator"].as_str().unwrap_or_default();
    let value = match &f["value"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(HsError::bad_request("a filter needs a value")),
    };
    let have = if name == "hs_object_id" {
        Some(id.to_string())
    } else {
        props.get(name).and_then(Value::as_str).map(str::to_owned)
    };
    Ok(match (name, op) {
        ("hs_object_id", "GT") => value.parse::<i64>().is_ok_and(|v| id > v),
        (_, "EQ") => have.as_deref() == Some(value.as_str()),
        (_, "NEQ") => have.as_deref() != Some(value.as_str()),
        _ => {
            return Err(HsError::bad_request(format!(
                "the sandbox can't filter {name} with {op}"
            )));
        }
    })
}

async fn search(
    State(s): State<SandboxState>,
    Path(kind): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let kind = Object::parse(&kind)?;
    let body = body_object(body)?;
    let filters: Vec<Value> = body
        .get("filterGroups")
        .and_then(|g| g.get(0))
        .and_then(|g| g.get("filters"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let wanted: Vec<String> = body
        .get("properties")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(10) as usize;
    if limit == 0 || limit > SEARCH_LIMIT {
        return Err(HsError::bad_request(format!(
            "limit must be 1–{SEARCH_LIMIT}"
        )));
    }
    let after = match body.get("after") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_str()
            .and_then(|a| a.parse::<usize>().ok())
            .or_else(|| v.as_u64().map(|n| n as usize))
            .ok_or_else(|| HsError::bad_request("after is not a valid cursor"))?,
    };
    if after + limit > SEARCH_CAP {
        return Err(HsError::bad_request(
            "There was a problem with the request. Paging beyond 10,000 results is not supported.",
        ));
    }
    let db = s.inner.db.read().await;
    let mut items = Vec::new();
    for (id, _, props) in kind.rows(&db) {
        let mut keep = true;
        for f in &filters {
            keep &= matches(id, &props, f)?;
        }
        if keep {
            items.push(object_json(id, props, &wanted));
        }
    }
    drop(db);
    let total = items.len();
    let mut answer = page_of(items, after, limit);
    answer["total"] = json!(total);
    Ok(Json(answer).into_response())
}

async fn batch_update(
    State(s): State<SandboxState>,
    Path(kind): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let kind = Object::parse(&kind)?;
    let body = body_object(body)?;
    let inputs = body
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| HsError::bad_request("inputs is required"))?;
    if inputs.len() > BATCH_MAX {
        return Err(HsError::bad_request(format!(
            "Batch input limit exceeded: at most {BATCH_MAX} inputs, got {}",
            inputs.len()
        )));
    }
    let started = now();
    let mut db = s.inner.db.write().await;
    let mut results = Vec::new();
    let mut not_found: Vec<String> = Vec::new();
    let mut invalid: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut written = Vec::new();
    for input in inputs {
        let raw_id = match &input["id"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(HsError::bad_request("every input needs an id")),
        };
        let Some(id) = raw_id
            .parse::<i64>()
            .ok()
            .filter(|id| kind.exists(&db, *id))
        else {
            not_found.push(raw_id);
            continue;
        };
        let props = input["properties"].as_object().cloned().unwrap_or_default();
        let mut patch = Map::new();
        let mut problem = None;
        for (k, v) in &props {
            match (k.as_str(), v.as_str().and_then(|o| o.parse::<i64>().ok())) {
                ("hubspot_owner_id", Some(owner)) => {
                    patch.insert("owner_id".into(), json!(owner - OWNER_BASE));
                }
                ("hubspot_owner_id", None) => {
                    problem = Some(format!("{v} is not a valid owner id"))
                }
                (other, _) => {
                    problem = Some(format!("{other} is not a property the sandbox can update"))
                }
            }
        }
        let outcome = match problem {
            Some(p) => Err(p),
            None => {
                let r = match kind {
                    Object::Contacts | Object::Companies => update::<Contact>(&mut db, id, &patch),
                    Object::Deals => update::<Deal>(&mut db, id, &patch),
                    Object::Tasks => update::<Task>(&mut db, id, &patch),
                    Object::Tickets => update::<Ticket>(&mut db, id, &patch),
                };
                r.map_err(|e| match e {
                    WriteError::Invalid { message, .. } => message,
                    WriteError::NotFound => "not found".to_owned(),
                })
            }
        };
        match outcome {
            Ok(()) => {
                let props = kind
                    .rows(&db)
                    .into_iter()
                    .find(|(i, _, _)| *i == id)
                    .map(|(_, _, p)| p)
                    .unwrap_or_default();
                results.push(object_json(id, props, &["hubspot_owner_id".to_owned()]));
                written.push(id);
            }
            Err(message) => invalid
                .entry(format!("Property values were not valid: {message}"))
                .or_default()
                .push(raw_id),
        }
    }
    drop(db);
    let mut log = s.log();
    for id in written {
        log.record_write(kind.resource(), id);
    }
    drop(log);
    let mut errors = Vec::new();
    if !not_found.is_empty() {
        errors.push(json!({
            "status": "error", "category": "OBJECT_NOT_FOUND",
            "message": format!("Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.", kind.label()),
            "context": { "ids": not_found }, "errors": [], "links": {}
        }));
    }
    for (message, ids) in invalid {
        errors.push(json!({
            "status": "error", "category": "VALIDATION_ERROR", "message": message,
            "context": { "ids": ids }, "errors": [], "links": {}
        }));
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    let mut answer = json!({
        "status": "COMPLETE", "results": results,
        "startedAt": started, "completedAt": now(),
    });
    if !errors.is_empty() {
        answer["numErrors"] = json!(errors.len());
        answer["errors"] = json!(errors);
    }
    Ok((status, Json(answer)).into_response())
}

fn update<K: Kind>(db: &mut Db, id: i64, patch: &Map<String, Value>) -> Result<(), WriteError> {
    db.update::<K>(id, patch, &now()).map(|_| ())
}

async fn create_task(State(s): State<SandboxState>, body: Result<Bytes, BytesRejection>) -> Answer {
    let body = body_object(body)?;
    let props = body
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let text = |k: &str| props.get(k).and_then(Value::as_str).map(str::to_owned);
    let due =
        text("hs_timestamp").ok_or_else(|| HsError::bad_request("hs_timestamp is required"))?;
    let mut db = s.inner.db.write().await;
    let creator = s.token_user(&db).map(|u| u.id);
    let owner_id = match text("hubspot_owner_id") {
        Some(o) => o
            .parse::<i64>()
            .map(|o| o - OWNER_BASE)
            .map_err(|_| HsError::bad_request(format!("{o} is not a valid owner id")))?,
        None => creator.ok_or_else(|| HsError::bad_request("hubspot_owner_id is required"))?,
    };
    if let Some(problem) = db.owner_problem(owner_id) {
        return Err(HsError::bad_request(format!(
            "Property values were not valid: {problem}"
        )));
    }
    let at = now();
    let id = db.tasks.keys().next_back().map_or(1, |max| max + 1);
    let completed = text("hs_task_status").as_deref() == Some("COMPLETED");
    let task = Task {
        id,
        owner_id,
        creator_id: creator,
        resource_type: None,
        resource_id: None,
        completed,
        completed_at: completed.then(|| at.clone()),
        due_date: Some(due),
        remind_at: None,
        content: text("hs_task_subject").unwrap_or_default(),
        created_at: at.clone(),
        updated_at: at,
    };
    let body_text = text("hs_task_body");
    db.tasks.insert(
        id,
        crate::db::Row {
            data: task,
            version: 1,
        },
    );
    if let Some(b) = body_text {
        db.task_notes.insert(id, b);
    }
    let props = task_props(&db, &db.tasks[&id].data);
    drop(db);
    s.log().record_write(Resource::Tasks, id);
    let wanted: Vec<String> = props.keys().map(|k| (*k).to_owned()).collect();
    Ok((StatusCode::CREATED, Json(object_json(id, props, &wanted))).into_response())
}
