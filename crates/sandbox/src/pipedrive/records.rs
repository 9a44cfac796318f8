//! Records: the v2 deals, persons, organizations and activities (cursor-paged
//! lists, one by id, `PATCH`, and `POST` of an activity) and the v1 leads
//! (offset-paged lists, one by UUID, `PATCH`).
//!
//! A write goes through [`Db::update`], so the shared model's rules hold for
//! Pipedrive too: a new owner must be an active user, and a refused write
//! changes nothing. Body fields are translated to the shared model's names;
//! a field the sandbox doesn't model is refused with a 400 rather than
//! silently dropped, so a client never believes a change was made.

use axum::{
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection, rejection::PathRejection},
};
use chrono::{NaiveDate, NaiveTime};
use serde_json::{Map, Value, json};

use super::{
    Answer,
    envelope::{PdError, list, ok},
    wire,
};
use crate::{
    SandboxState,
    db::{Db, Kind, Row, WriteError},
    query::Params,
    seed::{Contact, Deal, Lead, Task},
    state::now,
};
use offboard_domain::Resource;

/// Pipedrive's default page size.
const DEFAULT_LIMIT: i64 = 100;
/// Pipedrive's largest page.
const MAX_LIMIT: i64 = 500;

/// A v2 record type and where it lives in the shared model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum V2 {
    Deals,
    Persons,
    Organizations,
    Activities,
}

impl V2 {
    /// offboard's name, under which writes are counted.
    fn resource(self) -> Resource {
        match self {
            V2::Deals => Resource::Deals,
            V2::Persons => Resource::Contacts,
            V2::Organizations => Resource::Organizations,
            V2::Activities => Resource::Tasks,
        }
    }

    fn what(self) -> &'static str {
        match self {
            V2::Deals => "Deal",
            V2::Persons => "Person",
            V2::Organizations => "Organization",
            V2::Activities => "Activity",
        }
    }

    /// The record as Pipedrive shows it; `None` if there's no such record of
    /// this type (a person id names no organization and vice versa).
    fn json(self, db: &Db, id: i64) -> Option<Value> {
        match self {
            V2::Deals => db.deals.get(&id).map(|r| wire::deal(&r.data, db)),
            V2::Persons => db
                .contacts
                .get(&id)
                .filter(|r| !r.data.is_organization)
                .map(|r| wire::person(&r.data)),
            V2::Organizations => db
                .contacts
                .get(&id)
                .filter(|r| r.data.is_organization)
                .map(|r| wire::organization(&r.data)),
            V2::Activities => db.tasks.get(&id).map(|r| wire::activity(&r.data, db)),
        }
    }
}

fn record_id(path: Result<Path<String>, PathRejection>, what: &str) -> Result<i64, PdError> {
    path.ok()
        .and_then(|Path(id)| id.parse().ok())
        .ok_or_else(|| PdError::not_found(what))
}

/// `true`/`false` (or `1`/`0`) of a query parameter.
fn flag(params: &Params, name: &str) -> Result<Option<bool>, PdError> {
    match params.get(name) {
        None => Ok(None),
        Some("true" | "1") => Ok(Some(true)),
        Some("false" | "0") => Ok(Some(false)),
        Some(v) => Err(PdError::bad_request(format!(
            "{name} must be true or false, got {v:?}"
        ))),
    }
}

fn limit(params: &Params) -> Result<usize, PdError> {
    match params.int("limit")?.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(n as usize),
        n => Err(PdError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}, got {n}"
        ))),
    }
}

/// `GET /api/v2/{type}`: in id order from `cursor`, filtered by `owner_id`,
/// `ids` and per type `status` (deals; comma list of open/won/lost/deleted),
/// `stage_id`, `pipeline_id` (deals), `org_id` (persons) and `done`
/// (activities). Other filters are ignored.
pub(super) async fn list_v2(kind: V2, state: SandboxState, query: Option<String>) -> Answer {
    let params = Params::parse(query.as_deref())?;
    let limit = limit(&params)?;
    let from = match params.get("cursor") {
        None => i64::MIN,
        Some(c) => wire::cursor_start(c).ok_or_else(|| {
            PdError::bad_request("Invalid cursor: pass next_cursor as the previous page gave it")
        })?,
    };
    match (params.get("sort_by"), params.get("sort_direction")) {
        (None | Some("id"), None | Some("asc")) => {}
        _ => {
            return Err(PdError::bad_request(
                "the sandbox lists in id order only (sort_by=id, sort_direction=asc)",
            ));
        }
    }
    let owner = params.int("owner_id")?;
    let ids = params.ids("ids")?;
    let keep = |id: i64, owner_id: i64| {
        owner.is_none_or(|o| o == owner_id) && ids.as_ref().is_none_or(|ids| ids.contains(&id))
    };
    let db = state.inner.db.read().await;
    let mut page: Vec<i64> = match kind {
        V2::Deals => {
            let statuses = match params.get("status") {
                None => None,
                Some(s) => Some(
                    s.split(',')
                        .map(|s| match s.trim() {
                            v @ ("open" | "won" | "lost" | "deleted") => Ok(v),
                            v => Err(PdError::bad_request(format!(
                                "status must be open, won, lost or deleted, got {v:?}"
                            ))),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            let stage = params.int("stage_id")?;
            let pipeline = params.int("pipeline_id")?;
            db.deals
                .range(from..)
                .map(|(_, r)| &r.data)
                .filter(|d| keep(d.id, d.owner_id))
                .filter(|d| {
                    statuses
                        .as_ref()
                        .is_none_or(|s| s.contains(&wire::deal_status(&db, d)))
                })
                .filter(|d| stage.is_none_or(|s| d.stage_id == s))
                .filter(|d| {
                    pipeline.is_none_or(|p| {
                        db.stages
                            .get(&d.stage_id)
                            .is_some_and(|s| s.pipeline_id == p)
                    })
                })
                .map(|d| d.id)
                .take(limit + 1)
                .collect()
        }
        V2::Persons | V2::Organizations => {
            let orgs = kind == V2::Organizations;
            let org = if orgs { None } else { params.int("org_id")? };
            db.contacts
                .range(from..)
                .map(|(_, r)| &r.data)
                .filter(|c| c.is_organization == orgs && keep(c.id, c.owner_id))
                .filter(|c| org.is_none_or(|o| c.contact_id == Some(o)))
                .map(|c| c.id)
                .take(limit + 1)
                .collect()
        }
        V2::Activities => {
            let done = flag(&params, "done")?;
            db.tasks
                .range(from..)
                .map(|(_, r)| &r.data)
                .filter(|t| keep(t.id, t.owner_id))
                .filter(|t| done.is_none_or(|d| t.completed == d))
                .map(|t| t.id)
                .take(limit + 1)
                .collect()
        }
    };
    let next = (page.len() > limit).then(|| page.pop()).flatten();
    let data = page.iter().filter_map(|id| kind.json(&db, *id)).collect();
    Ok(list(data, json!({ "next_cursor": next.map(wire::cursor) })))
}

pub(super) async fn get_v2(
    kind: V2,
    state: SandboxState,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = record_id(path, kind.what())?;
    let db = state.inner.db.read().await;
    let data = kind
        .json(&db, id)
        .ok_or_else(|| PdError::not_found(kind.what()))?;
    Ok(ok(data))
}

/// A change in the shared model's field names, plus what lives beside the records.
#[derive(Debug, Default)]
struct Change {
    fields: Map<String, Value>,
    note: Option<String>,
    archived: Option<bool>,
}

fn string(v: &Value, field: &str) -> Result<String, PdError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| PdError::bad_request(format!("{field} must be a string")))
}

fn date(v: &Value, field: &str) -> Result<String, PdError> {
    let s = string(v, field)?;
    NaiveDate::parse_from_str(&s, "%Y-%m-%d")
        .map(|_| s)
        .map_err(|_| PdError::bad_request(format!("{field} must be a date (YYYY-MM-DD)")))
}

/// The fields each type accepts, renamed to the shared model's.
fn translate(kind: Option<V2>, body: &Map<String, Value>) -> Result<Change, PdError> {
    let mut change = Change::default();
    for (key, value) in body {
        let mut set = |name: &str, v: Value| {
            change.fields.insert(name.to_owned(), v);
        };
        match (kind, key.as_str()) {
            (_, "owner_id") => set("owner_id", value.clone()),
            (Some(V2::Deals), "title") => set("name", string(value, key)?.into()),
            (Some(V2::Deals), "stage_id") => set("stage_id", value.clone()),
            (Some(V2::Persons | V2::Organizations), "name") => {
                set("name", string(value, key)?.into());
            }
            (Some(V2::Activities), "subject") => set("content", string(value, key)?.into()),
            (Some(V2::Activities), "done") => set("completed", value.clone()),
            (Some(V2::Activities), "due_date") => set("due_date", date(value, key)?.into()),
            (Some(V2::Activities), "note") => change.note = Some(string(value, key)?),
            (None, "is_archived") => {
                change.archived = Some(
                    value
                        .as_bool()
                        .ok_or_else(|| PdError::bad_request("is_archived must be a boolean"))?,
                );
            }
            _ => {
                return Err(PdError::bad_request(format!(
                    "{key} is not a field the sandbox can update"
                )));
            }
        }
    }
    Ok(change)
}

fn write_error(what: &str) -> impl Fn(WriteError) -> PdError + '_ {
    move |e| match e {
        WriteError::NotFound => PdError::not_found(what),
        WriteError::Invalid { message, .. } => PdError::bad_request(message),
    }
}

fn update<K: Kind>(db: &mut Db, id: i64, change: &Change, what: &str) -> Result<(), PdError> {
    db.update::<K>(id, &change.fields, &now())
        .map(|_| ())
        .map_err(write_error(what))
}

/// `PATCH /api/v2/{type}/{id}`.
pub(super) async fn patch_v2(
    kind: V2,
    state: SandboxState,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let id = record_id(path, kind.what())?;
    let change = translate(Some(kind), &super::body_object(body)?)?;
    let mut db = state.inner.db.write().await;
    if kind.json(&db, id).is_none() {
        return Err(PdError::not_found(kind.what()));
    }
    match kind {
        V2::Deals => update::<Deal>(&mut db, id, &change, kind.what())?,
        V2::Persons | V2::Organizations => update::<Contact>(&mut db, id, &change, kind.what())?,
        V2::Activities => update::<Task>(&mut db, id, &change, kind.what())?,
    }
    if let Some(note) = change.note {
        db.task_notes.insert(id, note);
    }
    let data = kind.json(&db, id).ok_or_else(PdError::internal)?;
    drop(db);
    state.log().record_write(kind.resource(), id);
    Ok(ok(data))
}

fn optional<'a>(body: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    body.get(field).filter(|v| !v.is_null())
}

fn int(v: &Value, field: &str) -> Result<i64, PdError> {
    v.as_i64()
        .ok_or_else(|| PdError::bad_request(format!("{field} must be an integer")))
}

/// Which record a new activity is linked to. The shared model keeps one link
/// per task, so of several the first of deal, lead, person, organization wins;
/// the others must still exist.
fn link(db: &Db, body: &Map<String, Value>) -> Result<Option<(String, i64)>, PdError> {
    let mut found = Vec::new();
    if let Some(v) = optional(body, "deal_id") {
        let id = int(v, "deal_id")?;
        db.deals
            .contains_key(&id)
            .then_some(())
            .ok_or_else(|| PdError::bad_request(format!("deal {id} does not exist")))?;
        found.push(("deal", id));
    }
    if let Some(v) = optional(body, "lead_id") {
        let uuid = string(v, "lead_id")?;
        let id = wire::lead_id_from_uuid(&uuid)
            .filter(|id| db.leads.contains_key(id))
            .ok_or_else(|| PdError::bad_request(format!("lead {uuid} does not exist")))?;
        found.push(("lead", id));
    }
    for (field, orgs) in [("person_id", false), ("org_id", true)] {
        if let Some(v) = optional(body, field) {
            let id = int(v, field)?;
            db.contacts
                .get(&id)
                .filter(|r| r.data.is_organization == orgs)
                .ok_or_else(|| PdError::bad_request(format!("{field} {id} does not exist")))?;
            found.push(("contact", id));
        }
    }
    Ok(found.first().map(|(t, id)| ((*t).to_owned(), *id)))
}

/// The activity fields `POST` accepts; `type` is accepted but every activity is
/// a `task` in the shared model.
const ACTIVITY_FIELDS: &[&str] = &[
    "subject",
    "type",
    "owner_id",
    "deal_id",
    "lead_id",
    "person_id",
    "org_id",
    "due_date",
    "due_time",
    "done",
    "note",
];

/// `POST /api/v2/activities`: `subject` is required (the sandbox's rule);
/// `owner_id` defaults to the token owner and must be an active user.
pub(super) async fn create_activity(
    State(state): State<SandboxState>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let body = super::body_object(body)?;
    if let Some(field) = body.keys().find(|k| !ACTIVITY_FIELDS.contains(&k.as_str())) {
        return Err(PdError::bad_request(format!(
            "{field} is not a field the sandbox can set"
        )));
    }
    let subject = match optional(&body, "subject").map(|v| string(v, "subject")) {
        Some(Ok(s)) if !s.trim().is_empty() => s,
        Some(Err(e)) => return Err(e),
        _ => return Err(PdError::bad_request("subject is required")),
    };
    if let Some(v) = optional(&body, "type") {
        string(v, "type")?;
    }
    let due_date = optional(&body, "due_date")
        .map(|v| date(v, "due_date"))
        .transpose()?;
    let due_time = match optional(&body, "due_time").map(|v| string(v, "due_time")) {
        None => None,
        Some(t) => {
            let t = t?;
            NaiveTime::parse_from_str(&t, "%H:%M")
                .map_err(|_| PdError::bad_request("due_time must be a time (HH:MM)"))?;
            Some(t)
        }
    };
    let due = match (due_date, due_time) {
        (Some(d), Some(t)) => Some(format!("{d}T{t}:00Z")),
        (Some(d), None) => Some(d),
        (None, Some(_)) => return Err(PdError::bad_request("due_time needs a due_date")),
        (None, None) => None,
    };
    let done = match optional(&body, "done") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| PdError::bad_request("done must be a boolean"))?,
    };
    let note = optional(&body, "note")
        .map(|v| string(v, "note"))
        .transpose()?;
    let mut db = state.inner.db.write().await;
    let creator = state.token_user(&db).map(|u| u.id);
    let owner_id = match optional(&body, "owner_id") {
        Some(v) => int(v, "owner_id")?,
        None => creator.ok_or_else(|| PdError::bad_request("owner_id is required"))?,
    };
    if let Some(problem) = db.owner_problem(owner_id) {
        return Err(PdError::bad_request(problem));
    }
    let (resource_type, resource_id) = link(&db, &body)?.unzip();
    let at = now();
    let id = db.tasks.keys().next_back().map_or(1, |max| max + 1);
    let task = Task {
        id,
        owner_id,
        creator_id: creator,
        resource_type,
        resource_id,
        completed: done,
        completed_at: done.then(|| at.clone()),
        due_date: due,
        remind_at: None,
        content: subject,
        created_at: at.clone(),
        updated_at: at,
    };
    db.tasks.insert(
        id,
        Row {
            data: task,
            version: 1,
        },
    );
    if let Some(note) = note {
        db.task_notes.insert(id, note);
    }
    let data = V2::Activities.json(&db, id).ok_or_else(PdError::internal)?;
    drop(db);
    state.log().record_write(Resource::Tasks, id);
    Ok(ok(data))
}

fn lead_id(path: Result<Path<String>, PathRejection>) -> Result<i64, PdError> {
    path.ok()
        .and_then(|Path(id)| wire::lead_id_from_uuid(&id))
        .ok_or_else(|| PdError::not_found("Lead"))
}

/// `GET /api/v1/leads` (not archived) and `/api/v1/leads/archived`, oldest
/// first, paged by `start` and `limit` (default 100; above 500 clamped),
/// filtered by `owner_id`. The removed `archived_status` parameter is ignored,
/// as Pipedrive now does: the path says which leads.
pub(super) async fn list_leads(
    archived: bool,
    state: SandboxState,
    query: Option<String>,
) -> Answer {
    let params = Params::parse(query.as_deref())?;
    let start = match params.int("start")?.unwrap_or(0) {
        n if n >= 0 => n as usize,
        n => {
            return Err(PdError::bad_request(format!(
                "start must be 0 or more, got {n}"
            )));
        }
    };
    let limit = match params.int("limit")?.unwrap_or(DEFAULT_LIMIT) {
        n if n >= 1 => n.min(MAX_LIMIT) as usize,
        n => {
            return Err(PdError::bad_request(format!(
                "limit must be 1 or more, got {n}"
            )));
        }
    };
    let owner = params.int("owner_id")?;
    let db = state.inner.db.read().await;
    let mut leads: Vec<&Lead> = db
        .leads
        .values()
        .map(|r| &r.data)
        .filter(|l| db.archived_leads.contains(&l.id) == archived)
        .filter(|l| owner.is_none_or(|o| l.owner_id == o))
        .collect();
    leads.sort_by(|a, b| (&a.created_at, a.id).cmp(&(&b.created_at, b.id)));
    let more = leads.len() > start.saturating_add(limit);
    let data = leads
        .into_iter()
        .skip(start)
        .take(limit)
        .map(|l| wire::lead(l, &db))
        .collect();
    let mut pagination =
        json!({ "start": start, "limit": limit, "more_items_in_collection": more });
    if more && let Some(p) = pagination.as_object_mut() {
        p.insert("next_start".into(), (start + limit).into());
    }
    Ok(list(data, json!({ "pagination": pagination })))
}

pub(super) async fn get_lead(
    State(state): State<SandboxState>,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = lead_id(path)?;
    let db = state.inner.db.read().await;
    let lead = db
        .leads
        .get(&id)
        .ok_or_else(|| PdError::not_found("Lead"))?;
    Ok(ok(wire::lead(&lead.data, &db)))
}

/// `PATCH /api/v1/leads/{uuid}`: `owner_id` and `is_archived`.
pub(super) async fn patch_lead(
    State(state): State<SandboxState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let id = lead_id(path)?;
    let change = translate(None, &super::body_object(body)?)?;
    let mut db = state.inner.db.write().await;
    update::<Lead>(&mut db, id, &change, "Lead")?;
    match change.archived {
        Some(true) => {
            db.archived_leads.insert(id);
        }
        Some(false) => {
            db.archived_leads.remove(&id);
        }
        None => {}
    }
    let lead = db.leads.get(&id).ok_or_else(PdError::internal)?;
    let data = wire::lead(&lead.data, &db);
    drop(db);
    state.log().record_write(Resource::Leads, id);
    Ok(ok(data))
}
