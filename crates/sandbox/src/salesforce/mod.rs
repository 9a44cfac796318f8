//! The Salesforce dialect: the part of Salesforce's REST API offboard uses
//! (DESIGN.md §9), served from the same organisation model as the other
//! faces, answering as Salesforce does well enough for Salesforce's own client
//! libraries (jsforce, simple-salesforce, restforce: JSON arrays of
//! `{message, errorCode}` for errors, `attributes` on every record).
//!
//! Everything lives under `/services/data/vNN.N/` for any version; a path not
//! served answers 404 `NOT_FOUND`.
//! - SOQL: `GET …/query?q=` and `…/queryAll?q=` (the subset of `soql.rs`),
//!   `{totalSize, done, records, nextRecordsUrl}` with batches of 2,000 by
//!   default, `Sforce-Query-Options: batchSize=N` (200–2,000, clamped) to
//!   shrink them, and `GET …/query/{locator}-{offset}` for the next batch.
//!   A locator holds the ids that matched when the query ran (the last
//!   [`MAX_CURSORS`] queries keep theirs; an older one is 400
//!   `INVALID_QUERY_LOCATOR`), so records written between batches neither
//!   vanish from nor appear in later batches, as with Salesforce's cursors; the
//!   fields are read when the batch is served. Records come in ascending id
//!   order whether or not the query says `ORDER BY Id`.
//! - writes: `PATCH …/composite/sobjects` (at most 200 records, else 400
//!   `EXCEEDED_ID_LIMIT`; `allOrNone`; only `OwnerId` is writable; answers 200
//!   with one SaveResult per record in request order), `PATCH
//!   …/sobjects/{type}/{id}` (User: `IsActive` only, the model's deactivate
//!   and reactivate; others: `OwnerId`) → 204, `POST …/sobjects/Task` → 201,
//!   `GET …/sobjects/{type}/{id}`;
//! - `GET /services/oauth2/userinfo` for the token's user, `GET /services/data`
//!   (the versions);
//! - the gate (`gate.rs`): Bearer token, the 24-hour allocation with
//!   `Sforce-Limit-Info`, the sandbox's rate as a queue, latency and faults.
//!
//! Ids are 18 characters with each object's key prefix (`ids.rs`); the objects
//! and their fields are in `objects.rs`. Users are never deleted in
//! Salesforce: a user the model deleted (`/__sandbox/users/{id}/delete`) is
//! served as an inactive user, and reactivating one is refused (400
//! `FIELD_INTEGRITY_EXCEPTION`), as the model's deletion is permanent.
//!
//! Sources (developer.salesforce.com, REST API Developer Guide):
//! `resources_query.htm` (2,000 per batch, `nextRecordsUrl`
//! `/services/data/v66.0/query/01gRO0000016PIAYA2-500`, `MALFORMED_QUERY`),
//! `dome_query.htm` (record `attributes`), `headers_queryoptions.htm`
//! (`batchSize`), `resources_composite_sobjects_collections_update.htm` (≤ 200
//! records, `attributes.type` and `id` required, results in request order,
//! `allOrNone` default false, types mixed in at most 10 chunks of one type),
//! `sforce_api_header_allornoneheader.htm` (rolled
//! back records say so in `errors`), `headers_api_usage.htm`
//! (`Sforce-Limit-Info: api-usage=10018/100000`, daily, not on `/`),
//! `errorcodes.htm` (401 for a bad session with `message` and `errorCode`; 403
//! `REQUEST_LIMIT_EXCEEDED`); help.salesforce.com
//! `remoteaccess_using_userinfo_endpoint.htm` (`/services/oauth2/userinfo`);
//! the 18-character suffix from published converters checked against ids in
//! Salesforce's own examples (`001D000000IRFmaIAH`, `005D0000001QX8WIAW`).
//! restforce's error classes name `EXCEEDED_ID_LIMIT` and
//! `REQUEST_LIMIT_EXCEEDED`.
//!
//! Not confirmed, so chosen and kept plain: the messages of most errors (the
//! ten-chunk refusal's text is Apex's, its code `INVALID_BATCH_REQUEST` a guess); that
//! an unknown record in a collection update fails with `ENTITY_IS_DELETED`; an
//! inactive new owner with `INACTIVE_OWNER_OR_USER`; a non-writable field with
//! `INVALID_FIELD_FOR_INSERT_UPDATE`; a type/prefix mismatch or a bad id with
//! `MALFORMED_ID`; a rolled-back record with `ALL_OR_NONE_OPERATION_ROLLED_BACK`;
//! a filter id that isn't one with `INVALID_QUERY_FILTER_OPERATOR`; a bad value
//! type in a filter with `MALFORMED_QUERY`; the exact userinfo fields beyond
//! `user_id`, `organization_id`, `email`, `name`, `active`.

mod gate;
pub(crate) mod ids;
mod objects;
mod soql;

use std::collections::VecDeque;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, patch},
};
use serde_json::{Map, Value, json};

use crate::{
    SandboxState,
    db::{Db, Kind, Row, WriteError},
    seed::{Contact, Deal, Lead, Task, Ticket},
    state::now,
};
use objects::{Object, Rec, Ty};
use offboard_domain::UserStatus;

pub use gate::DEFAULT_DAILY_LIMIT;
pub(crate) use gate::{ApiUsage, admit};

/// Records per query batch unless `Sforce-Query-Options` asks for fewer.
pub const QUERY_BATCH: usize = 2000;
/// The smallest batch `Sforce-Query-Options: batchSize` can ask for.
const MIN_BATCH: usize = 200;
/// Records per collection request.
const COLLECTION_MAX: usize = 200;
/// Runs of one type an sObject Collections request may hold
/// (`resources_composite_sobjects_collections_update.htm`: "up to 10 chunks").
const TYPE_CHUNKS_MAX: usize = 10;
/// Query locators kept; older ones are gone (Salesforce also keeps few open).
pub const MAX_CURSORS: usize = 100;

/// The Salesforce face's own state: the allocation and the open query cursors.
#[derive(Debug, Default)]
pub(crate) struct SfState {
    pub usage: ApiUsage,
    cursors: VecDeque<(String, Cursor)>,
    next_cursor: i64,
}

impl SfState {
    /// Back to a fresh day with no cursors; the allocation's size stays.
    pub fn reset(&mut self) {
        *self = SfState {
            usage: ApiUsage {
                used: 0,
                max: self.usage.max,
            },
            ..SfState::default()
        };
    }
}

/// What a query matched, kept for its next batches.
#[derive(Debug, Clone)]
struct Cursor {
    object: Object,
    fields: Vec<&'static str>,
    ids: Vec<i64>,
    batch: usize,
}

/// A Salesforce failure: the JSON array of `{message, errorCode[, fields]}`.
#[derive(Debug, Clone)]
pub(crate) struct SfError {
    status: StatusCode,
    code: &'static str,
    message: String,
    fields: Option<Vec<String>>,
}

impl SfError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: None,
        }
    }
    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    fn malformed(message: impl Into<String>) -> Self {
        Self::bad_request("MALFORMED_QUERY", message)
    }
    fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }
    fn with_fields(mut self, fields: Vec<String>) -> Self {
        self.fields = Some(fields);
        self
    }
    pub(crate) fn invalid_session() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
    }
    pub(crate) fn request_limit() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )
    }
    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: sandbox",
        )
    }
    pub(crate) fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_UNAVAILABLE",
            "Server temporarily unavailable",
        )
    }
}

impl IntoResponse for SfError {
    fn into_response(self) -> Response {
        let mut e = json!({ "message": self.message, "errorCode": self.code });
        if let Some(f) = self.fields {
            e["fields"] = json!(f);
        }
        (self.status, Json(json!([e]))).into_response()
    }
}

type Answer = Result<Response, SfError>;

/// The CRM's routes (the gate is layered on by the caller).
pub(crate) fn router() -> Router<SandboxState> {
    Router::new()
        .route("/services/data", get(versions))
        .route("/services/data/", get(versions))
        .route("/services/oauth2/userinfo", get(userinfo))
        .route("/services/data/{version}/query", get(query))
        .route("/services/data/{version}/query/", get(query))
        .route("/services/data/{version}/queryAll", get(query))
        .route("/services/data/{version}/queryAll/", get(query))
        .route("/services/data/{version}/query/{locator}", get(query_more))
        .route(
            "/services/data/{version}/queryAll/{locator}",
            get(query_more),
        )
        .route(
            "/services/data/{version}/composite/sobjects",
            patch(collection_update),
        )
        .route(
            "/services/data/{version}/sobjects/{object}",
            axum::routing::post(create),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/{id}",
            get(read).patch(update_one),
        )
        .fallback(|| async { SfError::not_found() })
        .method_not_allowed_fallback(|| async {
            SfError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "HTTP Method not allowed for this resource",
            )
        })
}

/// `v62.0`: any `vNN.N`; anything else is no path Salesforce serves.
fn version(v: &str) -> Result<(), SfError> {
    let ok = v
        .strip_prefix('v')
        .and_then(|n| n.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(SfError::not_found())
    }
}

async fn versions() -> Response {
    let v = |label: &str, version: &str| json!({ "label": label, "url": format!("/services/data/v{version}"), "version": version });
    Json(json!([
        v("Winter '25", "62.0"),
        v("Spring '25", "63.0"),
        v("Summer '25", "64.0"),
        v("Winter '26", "65.0"),
        v("Spring '26", "66.0"),
    ]))
    .into_response()
}

async fn userinfo(State(s): State<SandboxState>) -> Answer {
    let db = s.inner.db.read().await;
    let u = s.token_user(&db).ok_or_else(SfError::invalid_session)?;
    let org = ids::id("00D", 1);
    let user_id = Object::User.sf_id(u.id);
    let (first, last) = u.name.rsplit_once(' ').unwrap_or(("", u.name.as_str()));
    let base = s.base_url();
    let url = |p: &str| format!("{base}/services/data/v{{version}}/{p}");
    Ok(Json(json!({
        "sub": format!("{base}/id/{org}/{user_id}"),
        "user_id": user_id,
        "organization_id": org,
        "preferred_username": u.email,
        "nickname": u.email.split('@').next().unwrap_or_default(),
        "name": u.name,
        "email": u.email,
        "email_verified": true,
        "given_name": first,
        "family_name": last,
        "zoneinfo": u.timezone,
        "active": u.is_active(),
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": 0,
        "updated_at": objects::sf_time(&u.updated_at),
        "is_app_installed": true,
        "urls": {
            "rest": format!("{base}/services/data/v{{version}}/"),
            "sobjects": url("sobjects/"),
            "query": url("query/"),
        },
    }))
    .into_response())
}

/// A condition resolved against an object's fields.
struct Filter {
    field: &'static str,
    op: soql::Op,
    value: soql::Literal,
    /// For id fields: the literal in its 18-character form.
    id: Option<String>,
}

impl Filter {
    fn holds(&self, r: &Rec) -> bool {
        let have = r.get(self.field).unwrap_or(&Value::Null);
        let equal = || match (&self.value, have) {
            (soql::Literal::Null, v) => v.is_null(),
            (soql::Literal::Bool(b), v) => v.as_bool() == Some(*b),
            (soql::Literal::Str(_), Value::String(h)) => match &self.id {
                Some(id) => h.eq_ignore_ascii_case(id),
                // `=` on text is case-insensitive in SOQL.
                None => self
                    .value
                    .text()
                    .is_some_and(|t| t.to_lowercase() == h.to_lowercase()),
            },
            _ => false,
        };
        match (self.op, &self.value) {
            (soql::Op::Eq, _) => equal(),
            (soql::Op::Ne, _) => !equal(),
            (soql::Op::Like, soql::Literal::Str(p)) => {
                have.as_str().is_some_and(|h| soql::like(h, p))
            }
            (soql::Op::Like, _) => false,
        }
    }
}

fn no_such_column(field: &str, object: Object) -> SfError {
    SfError::bad_request(
        "INVALID_FIELD",
        format!(
            "No such column '{field}' on entity '{}'. If you are attempting to use a custom field, \
             be sure to append the '__c' after the custom field name. Please reference your WSDL \
             or the describe call for the appropriate names.",
            object.name()
        ),
    )
}

fn object_named(name: &str) -> Result<Object, SfError> {
    Object::parse(name).ok_or_else(|| {
        SfError::bad_request(
            "INVALID_TYPE",
            format!(
                "sObject type '{name}' is not supported. If you are attempting to use a custom \
                 object, be sure to append the '__c' after the entity name. Please reference your \
                 WSDL or the describe call for the appropriate names."
            ),
        )
    })
}

/// The query's object, selected fields and filters, or the error Salesforce sends.
fn resolve(q: &soql::Query) -> Result<(Object, Vec<&'static str>, Vec<Filter>), SfError> {
    let object = object_named(&q.object)?;
    let fields = q
        .fields
        .iter()
        .map(|f| {
            object
                .field(f)
                .map(|(name, _)| name)
                .ok_or_else(|| no_such_column(f, object))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut filters = Vec::new();
    for c in &q.conditions {
        let (field, ty) = object
            .field(&c.field)
            .ok_or_else(|| no_such_column(&c.field, object))?;
        use soql::Literal as L;
        let fits = match (ty, &c.value, c.op) {
            (_, L::Null, soql::Op::Like) => false,
            (Ty::Time | Ty::Number, _, _) => {
                return Err(SfError::malformed(format!(
                    "the sandbox can't filter on {field}"
                )));
            }
            (_, L::Null, _) => true,
            (Ty::Bool, L::Bool(_), soql::Op::Eq | soql::Op::Ne) => true,
            (Ty::Str, L::Str(_), _) => true,
            (Ty::Id, L::Str(_), soql::Op::Eq | soql::Op::Ne) => true,
            _ => false,
        };
        if !fits {
            return Err(SfError::malformed(format!(
                "invalid operator or value type for field {field}"
            )));
        }
        let id = match (ty, &c.value) {
            (Ty::Id, L::Str(_)) => {
                let text = c.value.text().unwrap_or_default();
                Some(ids::long_form(&text).ok_or_else(|| {
                    SfError::bad_request(
                        "INVALID_QUERY_FILTER_OPERATOR",
                        format!("invalid ID field: {text}"),
                    )
                })?)
            }
            _ => None,
        };
        filters.push(Filter {
            field,
            op: c.op,
            value: c.value.clone(),
            id,
        });
    }
    Ok((object, fields, filters))
}

/// `Sforce-Query-Options: batchSize=N`, clamped to 200–2,000.
fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split([',', ';'])
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("batchSize"))
                .and_then(|(_, n)| n.trim().parse::<usize>().ok())
        })
        .map_or(QUERY_BATCH, |n| n.clamp(MIN_BATCH, QUERY_BATCH))
}

/// One record as SOQL returns it: `attributes`, then the selected fields;
/// relationship fields nest under the relationship with its own `attributes`.
fn render(object: Object, r: &Rec, fields: &[&'static str], version: &str) -> Value {
    let id = r.get("Id").and_then(Value::as_str).unwrap_or_default();
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        json!({ "type": object.name(), "url": format!("/services/data/{version}/sobjects/{}/{id}", object.name()) }),
    );
    for f in fields {
        let value = r.get(f).cloned().unwrap_or(Value::Null);
        match f.split_once('.') {
            None => {
                out.insert((*f).to_owned(), value);
            }
            Some((rel, sub)) => {
                let rel_id = r
                    .get(format!("{rel}.Id").as_str())
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let nested = out.entry(rel.to_owned()).or_insert_with(|| {
                    json!({ "attributes": {
                        "type": rel,
                        "url": format!("/services/data/{version}/sobjects/{rel}/{rel_id}"),
                    } })
                });
                nested[sub] = value;
            }
        }
    }
    Value::Object(out)
}

fn page(db: &Db, c: &Cursor, offset: usize, version: &str) -> Vec<Value> {
    c.ids
        .iter()
        .skip(offset)
        .take(c.batch)
        .filter_map(|id| c.object.record(db, *id))
        .map(|r| render(c.object, &r, &c.fields, version))
        .collect()
}

fn query_answer(
    s: &SandboxState,
    db: &Db,
    cursor: Cursor,
    offset: usize,
    locator: Option<String>,
    version: &str,
) -> Value {
    let records = page(db, &cursor, offset, version);
    let next = offset + cursor.batch;
    let total = cursor.ids.len();
    let mut body = json!({ "totalSize": total, "done": next >= total, "records": records });
    if next < total {
        let locator = locator.unwrap_or_else(|| {
            let mut sf = s.sf();
            sf.next_cursor += 1;
            let locator = ids::id("01g", sf.next_cursor);
            sf.cursors.push_back((locator.clone(), cursor));
            while sf.cursors.len() > MAX_CURSORS {
                sf.cursors.pop_front();
            }
            locator
        });
        body["nextRecordsUrl"] = json!(format!("/services/data/{version}/query/{locator}-{next}"));
    }
    body
}

async fn query(
    State(s): State<SandboxState>,
    Path(v): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Answer {
    version(&v)?;
    let params: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or_default())
            .map_err(|e| SfError::malformed(e.to_string()))?;
    let text = params
        .iter()
        .find(|(k, _)| k == "q")
        .map(|(_, q)| q.as_str())
        .ok_or_else(|| SfError::malformed("A query string has to be specified"))?;
    let q = soql::parse(text).map_err(|e| SfError::malformed(e.0))?;
    let (object, fields, filters) = resolve(&q)?;
    let db = s.inner.db.read().await;
    let mut matched: Vec<i64> = object
        .ids(&db)
        .into_iter()
        .filter(|id| {
            object
                .record(&db, *id)
                .is_some_and(|r| filters.iter().all(|f| f.holds(&r)))
        })
        .collect();
    if let Some(limit) = q.limit {
        matched.truncate(limit);
    }
    let cursor = Cursor {
        object,
        fields,
        ids: matched,
        batch: batch_size(&headers),
    };
    Ok(Json(query_answer(&s, &db, cursor, 0, None, &v)).into_response())
}

async fn query_more(
    State(s): State<SandboxState>,
    Path((v, locator)): Path<(String, String)>,
) -> Answer {
    version(&v)?;
    let invalid = || SfError::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator");
    let (id, offset) = locator.rsplit_once('-').ok_or_else(invalid)?;
    let offset: usize = offset.parse().map_err(|_| invalid())?;
    let cursor = s
        .sf()
        .cursors
        .iter()
        .find(|(l, _)| l == id)
        .map(|(_, c)| c.clone())
        .ok_or_else(invalid)?;
    if offset > cursor.ids.len() {
        return Err(invalid());
    }
    let db = s.inner.db.read().await;
    Ok(Json(query_answer(
        &s,
        &db,
        cursor,
        offset,
        Some(id.to_owned()),
        &v,
    ))
    .into_response())
}

/// One record's error in a SaveResult.
#[derive(Debug, Clone)]
struct RecordError {
    code: &'static str,
    message: String,
    fields: Vec<String>,
}

impl RecordError {
    fn new(code: &'static str, message: impl Into<String>, fields: &[&str]) -> Self {
        Self {
            code,
            message: message.into(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        }
    }
    fn json(&self) -> Value {
        json!({ "statusCode": self.code, "message": self.message, "fields": self.fields })
    }
}

/// A checked record update: what to write, or why not.
struct Planned {
    /// The id as the answer names it (18 characters when it was one of ours).
    id: Option<String>,
    /// The object and model id, once known (for the request log).
    target: Option<(Object, i64)>,
    outcome: Result<Option<i64>, RecordError>,
}

/// Checks one record of an update (`attributes.type`, `id`, fields, owner)
/// against the model without writing.
fn plan(db: &Db, record: &Value) -> Planned {
    let raw_id = record
        .get("id")
        .or_else(|| record.get("Id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut planned = Planned {
        id: raw_id.clone(),
        target: None,
        outcome: Ok(None),
    };
    let fail = |mut p: Planned, e: RecordError| {
        p.outcome = Err(e);
        p
    };
    let Some(fields) = record.as_object() else {
        return fail(
            planned,
            RecordError::new("INVALID_TYPE", "a record must be a JSON object", &[]),
        );
    };
    let Some(type_name) = record["attributes"]["type"].as_str() else {
        return fail(
            planned,
            RecordError::new(
                "INVALID_TYPE",
                "No type was specified in the attributes of this record",
                &[],
            ),
        );
    };
    let Some(object) = Object::parse(type_name) else {
        return fail(
            planned,
            RecordError::new(
                "INVALID_TYPE",
                format!("sObject type '{type_name}' is not supported."),
                &[],
            ),
        );
    };
    let Some(raw_id) = raw_id else {
        return fail(
            planned,
            RecordError::new(
                "MISSING_ARGUMENT",
                "Id not specified in an update call",
                &[],
            ),
        );
    };
    let Some(n) = ids::decode_as(object.prefix(), &raw_id) else {
        return fail(
            planned,
            RecordError::new(
                "MALFORMED_ID",
                format!("{} ID: id value of incorrect type: {raw_id}", object.name()),
                &["Id"],
            ),
        );
    };
    planned.id = Some(object.sf_id(n));
    planned.target = Some((object, n));
    if !object.exists(db, n) {
        return fail(
            planned,
            RecordError::new("ENTITY_IS_DELETED", "entity is deleted", &[]),
        );
    }
    let mut unknown = Vec::new();
    let mut read_only = Vec::new();
    let mut owner = None;
    for (k, v) in fields {
        if matches!(k.as_str(), "attributes" | "id" | "Id") {
            continue;
        }
        match object.field(k) {
            Some(("OwnerId", _)) => owner = Some(v.clone()),
            Some(_) => read_only.push(k.clone()),
            None => unknown.push(k.clone()),
        }
    }
    if let Some(k) = unknown.first() {
        return fail(
            planned,
            RecordError::new(
                "INVALID_FIELD",
                format!("No such column '{k}' on sobject of type {}", object.name()),
                &[k],
            ),
        );
    }
    if !read_only.is_empty() {
        let names: Vec<&str> = read_only.iter().map(String::as_str).collect();
        return fail(
            planned,
            RecordError::new(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {}. Please check the security settings of this \
                     field and verify that it is read/write for your profile or permission set.",
                    names.join(", ")
                ),
                &names,
            ),
        );
    }
    if let Some(owner) = owner {
        match owner_check(db, &owner) {
            Ok(o) => planned.outcome = Ok(Some(o)),
            Err(e) => return fail(planned, e),
        }
    }
    planned
}

/// The model user a new `OwnerId` names, if it may own records.
fn owner_check(db: &Db, owner: &Value) -> Result<i64, RecordError> {
    let text = owner.as_str().unwrap_or_default();
    let Some(o) = ids::decode_as(Object::User.prefix(), text) else {
        return Err(RecordError::new(
            "MALFORMED_ID",
            format!("Owner ID: id value of incorrect type: {owner}"),
            &["OwnerId"],
        ));
    };
    match db.users.get(&o) {
        None => Err(RecordError::new(
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id",
            &["OwnerId"],
        )),
        Some(u) if !u.is_active() => Err(RecordError::new(
            "INACTIVE_OWNER_OR_USER",
            format!(
                "operation performed with inactive user [{}] as owner of this record",
                Object::User.sf_id(o)
            ),
            &["OwnerId"],
        )),
        Some(_) => Ok(o),
    }
}

fn write<K: Kind>(db: &mut Db, id: i64, owner: Option<i64>) -> Result<(), WriteError> {
    let mut patch = Map::new();
    if let Some(o) = owner {
        patch.insert("owner_id".into(), json!(o));
    }
    db.update::<K>(id, &patch, &now()).map(|_| ())
}

/// Applies a checked update through the model's `Db::update`, so versions and
/// `updated_at` move as for every face.
fn apply(db: &mut Db, object: Object, id: i64, owner: Option<i64>) -> Result<(), RecordError> {
    let r = match object {
        Object::Lead => write::<Lead>(db, id, owner),
        Object::Contact | Object::Account => write::<Contact>(db, id, owner),
        Object::Opportunity => write::<Deal>(db, id, owner),
        Object::Task => write::<Task>(db, id, owner),
        Object::Case => write::<Ticket>(db, id, owner),
        Object::User => return Ok(()),
    };
    r.map_err(|e| match e {
        WriteError::NotFound => RecordError::new("ENTITY_IS_DELETED", "entity is deleted", &[]),
        WriteError::Invalid { message, .. } => {
            RecordError::new("FIELD_INTEGRITY_EXCEPTION", message, &["OwnerId"])
        }
    })
}

fn body_json(body: Result<Bytes, BytesRejection>) -> Result<Value, SfError> {
    let body = body.map_err(|e| SfError::bad_request("JSON_PARSER_ERROR", e.body_text()))?;
    serde_json::from_slice(&body).map_err(|e| {
        SfError::bad_request("JSON_PARSER_ERROR", format!("Unexpected character: {e}"))
    })
}

async fn collection_update(
    State(s): State<SandboxState>,
    Path(v): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    version(&v)?;
    let body = body_json(body)?;
    let all_or_none = body
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let records = body
        .get("records")
        .and_then(Value::as_array)
        .ok_or_else(|| SfError::bad_request("JSON_PARSER_ERROR", "records is required"))?;
    if records.len() > COLLECTION_MAX {
        return Err(SfError::bad_request(
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        ));
    }
    // Consecutive records of one type are one chunk; Salesforce processes at
    // most ten per request.
    let chunks = records
        .chunk_by(|a, b| a["attributes"]["type"] == b["attributes"]["type"])
        .count();
    if chunks > TYPE_CHUNKS_MAX {
        return Err(SfError::bad_request(
            "INVALID_BATCH_REQUEST",
            "Cannot have more than 10 chunks in a single operation. Please rearrange the data to reduce chunking.",
        ));
    }
    let mut db = s.inner.db.write().await;
    let mut plans: Vec<Planned> = records.iter().map(|r| plan(&db, r)).collect();
    let any_failed = plans.iter().any(|p| p.outcome.is_err());
    let mut written = Vec::new();
    if !(all_or_none && any_failed) {
        for p in &mut plans {
            if let (Ok(owner), Some((object, id))) = (&p.outcome, p.target) {
                match apply(&mut db, object, id, *owner) {
                    Ok(()) => written.push((object, id)),
                    Err(e) => p.outcome = Err(e),
                }
            }
        }
    }
    drop(db);
    let mut log = s.log();
    for (object, id) in plans.iter().filter_map(|p| p.target) {
        if let Some(res) = object.resource() {
            log.record_put(res, id);
        }
    }
    for (object, id) in &written {
        if let Some(res) = object.resource() {
            log.record_write(res, *id);
        }
    }
    drop(log);
    let rolled_back = RecordError::new(
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "Record rolled back because not all records were valid and the request was using AllOrNone header",
        &[],
    );
    let results: Vec<Value> = plans
        .iter()
        .map(|p| {
            let error = match &p.outcome {
                Err(e) => Some(e.clone()),
                Ok(_) if all_or_none && any_failed => Some(rolled_back.clone()),
                Ok(_) => None,
            };
            match error {
                None => json!({ "id": p.id, "success": true, "errors": [] }),
                Some(e) => {
                    let mut r = json!({ "success": false, "errors": [e.json()] });
                    if let Some(id) = &p.id {
                        r["id"] = json!(id);
                    }
                    r
                }
            }
        })
        .collect();
    Ok(Json(results).into_response())
}

fn record_id(object: Object, id: &str) -> Result<i64, SfError> {
    ids::decode_as(object.prefix(), id).ok_or_else(SfError::not_found)
}

async fn read(
    State(s): State<SandboxState>,
    Path((v, object, id)): Path<(String, String, String)>,
) -> Answer {
    version(&v)?;
    let object = Object::parse(&object).ok_or_else(SfError::not_found)?;
    let n = record_id(object, &id)?;
    let db = s.inner.db.read().await;
    let r = object.record(&db, n).ok_or_else(SfError::not_found)?;
    let fields: Vec<&'static str> = object
        .all_fields()
        .into_iter()
        .filter(|f| !f.contains('.'))
        .collect();
    Ok(Json(render(object, &r, &fields, &v)).into_response())
}

async fn update_one(
    State(s): State<SandboxState>,
    Path((v, object, id)): Path<(String, String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    version(&v)?;
    let object = Object::parse(&object).ok_or_else(SfError::not_found)?;
    let n = record_id(object, &id)?;
    let body = body_json(body)?;
    let Value::Object(fields) = body else {
        return Err(SfError::bad_request(
            "JSON_PARSER_ERROR",
            "the body must be a JSON object",
        ));
    };
    if object == Object::User {
        return update_user(&s, n, &fields).await;
    }
    let mut record = fields.clone();
    record.insert("attributes".into(), json!({ "type": object.name() }));
    record.insert("id".into(), json!(object.sf_id(n)));
    let mut db = s.inner.db.write().await;
    if !object.exists(&db, n) {
        return Err(SfError::not_found());
    }
    let p = plan(&db, &Value::Object(record));
    let outcome = p.outcome.and_then(|owner| apply(&mut db, object, n, owner));
    drop(db);
    let mut log = s.log();
    if let Some(res) = object.resource() {
        log.record_put(res, n);
        if outcome.is_ok() {
            log.record_write(res, n);
        }
    }
    drop(log);
    match outcome {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => Err(SfError::bad_request(e.code, e.message).with_fields(e.fields)),
    }
}

/// `PATCH …/sobjects/User/{id}` `{"IsActive": bool}`: the model's deactivate
/// and reactivate (records stay with the user either way).
async fn update_user(s: &SandboxState, n: i64, fields: &Map<String, Value>) -> Answer {
    let mut active = None;
    for (k, v) in fields {
        match (Object::User.field(k), v) {
            (Some(("IsActive", _)), Value::Bool(b)) => active = Some(*b),
            (Some(("IsActive", _)), _) => {
                return Err(SfError::bad_request(
                    "JSON_PARSER_ERROR",
                    format!("Cannot deserialize instance of boolean from {v}"),
                ));
            }
            (Some(_), _) => {
                return Err(SfError::bad_request(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    format!("Unable to create/update fields: {k}. The sandbox only changes IsActive on a User."),
                )
                .with_fields(vec![k.clone()]));
            }
            (None, _) => {
                return Err(SfError::bad_request(
                    "INVALID_FIELD",
                    format!("No such column '{k}' on sobject of type User"),
                ));
            }
        }
    }
    let mut db = s.inner.db.write().await;
    let Some(user) = db.users.get(&n) else {
        return Err(SfError::not_found());
    };
    let deleted = user.deleted_at.is_some();
    match active {
        None => {}
        // A deleted model user is already inactive in Salesforce's eyes.
        Some(false) if deleted => {}
        Some(true) if deleted => {
            return Err(SfError::bad_request(
                "FIELD_INTEGRITY_EXCEPTION",
                "this user was removed from the organisation and can't be reactivated",
            )
            .with_fields(vec!["IsActive".into()]));
        }
        Some(b) => {
            let status = if b {
                UserStatus::Active
            } else {
                UserStatus::Inactive
            };
            db.set_status(n, status, &now())
                .map_err(|e| SfError::bad_request("FIELD_INTEGRITY_EXCEPTION", e.to_string()))?;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST …/sobjects/Task`: a model task. Subject becomes the task's `content`,
/// Description its note (see `objects::task_text`); `Status` `Completed`
/// makes it completed; `OwnerId` defaults to the token's user; `ActivityDate`
/// (`YYYY-MM-DD`) is the due date; `WhoId`/`WhatId` link it to a lead,
/// contact, account or opportunity. Other objects can't be created here.
async fn create(
    State(s): State<SandboxState>,
    Path((v, object)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    version(&v)?;
    if Object::parse(&object) != Some(Object::Task) {
        return Err(SfError::not_found());
    }
    let Value::Object(fields) = body_json(body)? else {
        return Err(SfError::bad_request(
            "JSON_PARSER_ERROR",
            "the body must be a JSON object",
        ));
    };
    let mut text = std::collections::BTreeMap::new();
    for (k, val) in &fields {
        if k == "attributes" {
            continue;
        }
        let Some((name, _)) = Object::Task.field(k) else {
            return Err(SfError::bad_request(
                "INVALID_FIELD",
                format!("No such column '{k}' on sobject of type Task"),
            ));
        };
        if !matches!(
            name,
            "Subject"
                | "Description"
                | "OwnerId"
                | "ActivityDate"
                | "Status"
                | "Priority"
                | "WhoId"
                | "WhatId"
        ) {
            return Err(SfError::bad_request(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!("Unable to create/update fields: {name}. Please check the security settings of this field and verify that it is read/write for your profile or permission set."),
            )
            .with_fields(vec![name.to_owned()]));
        }
        match val {
            Value::Null => {}
            Value::String(t) => {
                text.insert(name, t.clone());
            }
            other => {
                return Err(SfError::bad_request(
                    "JSON_PARSER_ERROR",
                    format!("Cannot deserialize instance of string from {other} for {name}"),
                ));
            }
        }
    }
    let due = match text.get("ActivityDate") {
        None => None,
        Some(d) if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok() => {
            Some(format!("{d}T00:00:00Z"))
        }
        Some(d) => {
            return Err(SfError::bad_request(
                "JSON_PARSER_ERROR",
                format!("Cannot deserialize value of type date from String \"{d}\""),
            ));
        }
    };
    let (mut resource_type, mut resource_id) = (None, None);
    for key in ["WhoId", "WhatId"] {
        let Some(raw) = text.get(key) else { continue };
        let link = ids::decode(raw).and_then(|(prefix, n)| {
            let kind = match prefix.as_str() {
                "00Q" => "lead",
                "003" | "001" => "contact",
                "006" => "deal",
                _ => return None,
            };
            Some((kind, n))
        });
        let Some((kind, n)) = link else {
            return Err(SfError::bad_request(
                "MALFORMED_ID",
                format!("{key}: id value of incorrect type: {raw}"),
            )
            .with_fields(vec![key.to_owned()]));
        };
        resource_type = Some(kind.to_owned());
        resource_id = Some(n);
    }
    let mut db = s.inner.db.write().await;
    let creator = s.token_user(&db).map(|u| u.id);
    let owner_id = match text.get("OwnerId") {
        Some(o) => owner_check(&db, &json!(o))
            .map_err(|e| SfError::bad_request(e.code, e.message).with_fields(e.fields))?,
        None => creator.ok_or_else(|| {
            SfError::bad_request(
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [OwnerId]",
            )
        })?,
    };
    let at = now();
    let id = db.tasks.keys().next_back().map_or(1, |max| max + 1);
    let completed = text.get("Status").map(String::as_str) == Some("Completed");
    let task = Task {
        id,
        owner_id,
        creator_id: creator,
        resource_type,
        resource_id,
        completed,
        completed_at: completed.then(|| at.clone()),
        due_date: due,
        remind_at: None,
        content: text.get("Subject").cloned().unwrap_or_default(),
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
    db.task_notes
        .insert(id, text.get("Description").cloned().unwrap_or_default());
    drop(db);
    s.log().record_write(offboard_domain::Resource::Tasks, id);
    let body = json!({ "id": Object::Task.sf_id(id), "success": true, "errors": [] });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Whether every id in the seed can be served as a Salesforce id.
pub(crate) fn ids_fit(seed: &crate::Seed) -> Option<String> {
    let negative = |kind: &str, ids: &mut dyn Iterator<Item = i64>| {
        for id in ids {
            if id < 0 {
                return Some(format!(
                    "{kind} {id} can't be served as a Salesforce id: ids must be ≥ 0"
                ));
            }
        }
        None
    };
    negative("user", &mut seed.users.iter().map(|u| u.id))
        .or_else(|| negative("lead", &mut seed.leads.iter().map(|r| r.id)))
        .or_else(|| negative("contact", &mut seed.contacts.iter().map(|r| r.id)))
        .or_else(|| negative("deal", &mut seed.deals.iter().map(|r| r.id)))
        .or_else(|| negative("task", &mut seed.tasks.iter().map(|r| r.id)))
        .or_else(|| negative("ticket", &mut seed.tickets.iter().map(|r| r.id)))
}
