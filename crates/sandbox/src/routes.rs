//! The Sell-shaped routes under `/v2`: users (read-only), leads, contacts, deals
//! and tasks (list, get, reassign with `PUT`), task creation and stages.
//!
//! Handlers only read and write [`Db`](super::db::Db) under one lock and wrap the
//! result in Sell's envelopes; auth, limits and faults happen before them, in
//! `limits.rs`. Every failure is a [`SellError`], never a panic.

use axum::{
    Router,
    body::Bytes,
    extract::{Path, RawQuery, State, rejection::BytesRejection, rejection::PathRejection},
    response::Response,
    routing::get,
};
use chrono::{DateTime, NaiveDate};
use serde_json::{Map, Value};

use super::{
    SandboxState,
    db::{Kind, Row, WriteError},
    envelope::{SellError, collection, item_meta, single},
    query::{Params, paginate},
    seed::{Contact, Deal, Lead, Task, User},
    state::now,
};
use offboard_domain::{Resource, UserRole, UserStatus};

/// The `/v2` routes (the gate is layered on by the caller).
pub(super) fn router() -> Router<SandboxState> {
    Router::new()
        .route("/v2/users", get(list_users))
        .route("/v2/users/self", get(get_self))
        .route("/v2/users/{id}", get(get_user))
        .route("/v2/stages", get(list_stages))
        .route("/v2/leads", get(list::<Lead>))
        .route("/v2/leads/{id}", get(get_one::<Lead>).put(update::<Lead>))
        .route("/v2/contacts", get(list::<Contact>))
        .route(
            "/v2/contacts/{id}",
            get(get_one::<Contact>).put(update::<Contact>),
        )
        .route("/v2/deals", get(list::<Deal>))
        .route("/v2/deals/{id}", get(get_one::<Deal>).put(update::<Deal>))
        .route("/v2/tasks", get(list::<Task>).post(create_task))
        .route("/v2/tasks/{id}", get(get_one::<Task>).put(update::<Task>))
        .fallback(|| async { SellError::not_found() })
        .method_not_allowed_fallback(|| async { SellError::method_not_allowed() })
}

type Answer = Result<Response, SellError>;

fn to_value(v: impl serde::Serialize) -> Result<Value, SellError> {
    serde_json::to_value(v).map_err(|_| SellError::internal())
}

/// An id in the path; anything but an integer names nothing.
fn path_id(path: Result<Path<String>, PathRejection>) -> Result<i64, SellError> {
    path.ok()
        .and_then(|Path(id)| id.parse().ok())
        .ok_or_else(SellError::not_found)
}

/// The `data` object of a request body.
fn body_data(
    body: Result<Bytes, BytesRejection>,
    resource: &'static str,
) -> Result<Map<String, Value>, SellError> {
    let body = body.map_err(|e| SellError::bad_json(e.body_text()))?;
    let value: Value =
        serde_json::from_slice(&body).map_err(|e| SellError::bad_json(e.to_string()))?;
    match value.get("data") {
        Some(Value::Object(data)) => Ok(data.clone()),
        Some(_) => Err(SellError::invalid(
            resource,
            "data",
            "data must be an object.",
        )),
        None => Err(SellError::missing_data(resource)),
    }
}

fn user_item(u: &User) -> Result<(Value, Value), SellError> {
    Ok((to_value(u)?, item_meta("user", None)))
}

async fn list_users(State(state): State<SandboxState>, RawQuery(q): RawQuery) -> Answer {
    let params = Params::parse(q.as_deref())?;
    let paging = params.paging()?;
    let email = params.get("email").map(str::to_lowercase);
    let status = params
        .one_of("status", &["active", "inactive"])?
        .map(|s| match s {
            "active" => UserStatus::Active,
            _ => UserStatus::Inactive,
        });
    let role = params.one_of("role", &["user", "admin"])?.map(|r| match r {
        "admin" => UserRole::Admin,
        _ => UserRole::User,
    });
    let ids = params.ids("ids")?;
    let db = state.inner.db.read().await;
    let users: Vec<&User> = db
        .users
        .values()
        .filter(|u| u.deleted_at.is_none())
        .filter(|u| email.as_ref().is_none_or(|e| u.email.to_lowercase() == *e))
        .filter(|u| status.is_none_or(|s| u.status == s))
        .filter(|u| role.is_none_or(|r| u.role == r))
        .filter(|u| ids.as_ref().is_none_or(|ids| ids.contains(&u.id)))
        .collect();
    let (page, links) = paginate(users, paging, &params, state.base_url(), "/v2/users");
    let items = page.into_iter().map(user_item).collect::<Result<_, _>>()?;
    Ok(collection(items, links))
}

async fn get_self(State(state): State<SandboxState>) -> Answer {
    let db = state.inner.db.read().await;
    let user = state.token_user(&db).ok_or_else(SellError::not_found)?;
    Ok(single(user, item_meta("user", None)))
}

async fn get_user(
    State(state): State<SandboxState>,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = path_id(path)?;
    let db = state.inner.db.read().await;
    let user = db.visible_user(id).ok_or_else(SellError::not_found)?;
    Ok(single(user, item_meta("user", None)))
}

async fn list_stages(State(state): State<SandboxState>, RawQuery(q): RawQuery) -> Answer {
    let params = Params::parse(q.as_deref())?;
    let paging = params.paging()?;
    let ids = params.ids("ids")?;
    let pipeline = params.int("pipeline_id")?;
    let active = params.bool("active")?;
    let db = state.inner.db.read().await;
    let stages: Vec<_> = db
        .stages
        .values()
        .filter(|s| ids.as_ref().is_none_or(|ids| ids.contains(&s.id)))
        .filter(|s| pipeline.is_none_or(|p| s.pipeline_id == p))
        .filter(|s| active.is_none_or(|a| s.active == a))
        .collect();
    let (page, links) = paginate(stages, paging, &params, state.base_url(), "/v2/stages");
    let items = page
        .into_iter()
        .map(|s| Ok((to_value(s)?, item_meta("stage", None))))
        .collect::<Result<_, SellError>>()?;
    Ok(collection(items, links))
}

fn record_item<K: Kind>(row: &Row<K>) -> Result<(Value, Value), SellError> {
    Ok((to_value(&row.data)?, item_meta(K::TYPE, Some(row.version))))
}

async fn list<K: Kind>(State(state): State<SandboxState>, RawQuery(q): RawQuery) -> Answer {
    let params = Params::parse(q.as_deref())?;
    let paging = params.paging()?;
    let owner = params.int("owner_id")?;
    let ids = params.ids("ids")?;
    let completed = match K::RESOURCE {
        Resource::Tasks => params.bool("completed")?,
        _ => None,
    };
    let stage = match K::RESOURCE {
        Resource::Deals => params.int("stage_id")?,
        _ => None,
    };
    let db = state.inner.db.read().await;
    let rows: Vec<&Row<K>> = K::table(&db)
        .values()
        .filter(|r| owner.is_none_or(|o| r.data.owner_id() == o))
        .filter(|r| ids.as_ref().is_none_or(|ids| ids.contains(&r.data.id())))
        .filter(|r| completed.is_none_or(|c| r.data.completed() == Some(c)))
        .filter(|r| stage.is_none_or(|s| r.data.stage_id() == Some(s)))
        .collect();
    let path = format!("/v2/{}", K::RESOURCE);
    let (page, links) = paginate(rows, paging, &params, state.base_url(), &path);
    let items = page
        .into_iter()
        .map(record_item)
        .collect::<Result<_, _>>()?;
    Ok(collection(items, links))
}

async fn get_one<K: Kind>(
    State(state): State<SandboxState>,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = path_id(path)?;
    let db = state.inner.db.read().await;
    let row = K::table(&db).get(&id).ok_or_else(SellError::not_found)?;
    let (data, meta) = record_item(row)?;
    Ok(single(data, meta))
}

/// `PUT /v2/{resource}/:id` with `{"data":{…}}`: a partial update, usually of
/// `owner_id`, which must name an active user.
async fn update<K: Kind>(
    State(state): State<SandboxState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let id = path_id(path)?;
    let data = body_data(body, K::TYPE)?;
    let mut db = state.inner.db.write().await;
    let row = db.update::<K>(id, &data, &now()).map_err(|e| match e {
        WriteError::NotFound => SellError::not_found(),
        WriteError::Invalid { field, message } => SellError::invalid(K::TYPE, field, message),
    })?;
    let (data, meta) = record_item(row)?;
    state.log().record_write(K::RESOURCE, id);
    Ok(single(data, meta))
}

fn optional_time(data: &Map<String, Value>, field: &str) -> Result<Option<String>, SellError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if DateTime::parse_from_rfc3339(s).is_ok()
                || NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() =>
        {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(SellError::invalid(
            "task",
            field,
            format!("{field} must be an ISO 8601 date or date-time."),
        )),
    }
}

/// `POST /v2/tasks` with `{"data":{"content","owner_id","due_date",…}}`.
async fn create_task(
    State(state): State<SandboxState>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let data = body_data(body, "task")?;
    let content = match data.get("content") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => {
            return Err(SellError::invalid(
                "task",
                "content",
                "content is required and must be a non-empty string.",
            ));
        }
    };
    let due_date = optional_time(&data, "due_date")?;
    let remind_at = optional_time(&data, "remind_at")?;
    let completed = match data.get("completed") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(SellError::invalid(
                "task",
                "completed",
                "completed must be true or false.",
            ));
        }
    };
    let mut db = state.inner.db.write().await;
    let creator = state.token_user(&db).map(|u| u.id);
    let owner_id = match data.get("owner_id") {
        None | Some(Value::Null) => creator
            .ok_or_else(|| SellError::invalid("task", "owner_id", "owner_id is required."))?,
        Some(v) => v.as_i64().ok_or_else(|| {
            SellError::invalid("task", "owner_id", "owner_id must be an integer user id.")
        })?,
    };
    if let Some(problem) = db.owner_problem(owner_id) {
        return Err(SellError::invalid("task", "owner_id", problem));
    }
    let (resource_type, resource_id) = match (data.get("resource_type"), data.get("resource_id")) {
        (None | Some(Value::Null), None | Some(Value::Null)) => (None, None),
        (Some(Value::String(t)), Some(id)) => {
            let id = id.as_i64();
            let exists = match (t.as_str(), id) {
                ("lead", Some(id)) => db.leads.contains_key(&id),
                ("contact", Some(id)) => db.contacts.contains_key(&id),
                ("deal", Some(id)) => db.deals.contains_key(&id),
                _ => false,
            };
            if !exists {
                return Err(SellError::invalid(
                    "task",
                    "resource_id",
                    "resource_type and resource_id must name an existing lead, contact or deal.",
                ));
            }
            (Some(t.clone()), id)
        }
        _ => {
            return Err(SellError::invalid(
                "task",
                "resource_type",
                "resource_type and resource_id go together.",
            ));
        }
    };
    let at = now();
    let id = db.tasks.keys().next_back().map_or(1, |max| max + 1);
    let task = Task {
        id,
        owner_id,
        creator_id: creator,
        resource_type,
        resource_id,
        completed,
        completed_at: completed.then(|| at.clone()),
        due_date,
        remind_at,
        content,
        created_at: at.clone(),
        updated_at: at,
    };
    let row = Row {
        data: task,
        version: 1,
    };
    let answer = record_item(&row)?;
    db.tasks.insert(id, row);
    drop(db);
    state.log().record_write(Resource::Tasks, id);
    Ok(single(answer.0, answer.1))
}
