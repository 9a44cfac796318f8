//! HubSpot's JSON shapes, error envelope and rate-limit headers, kept in one place
//! so the rest of the client deals in [`CrmUser`], [`CrmId`] and [`CrmError`]
//! only. Pure functions and serde types: no IO, so every rule here is unit-tested
//! without a server. The facts and their sources are listed in the parent module.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, SystemTime},
};

use reqwest::header::HeaderMap;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use crate::{
    crm::{
        contract::{CrmError, WriteOutcome},
        transport::{header_text, retry_after_header},
    },
    domain::{CrmId, CrmUser, UserRole, UserStatus},
};

// ---------------------------------------------------------------------------
// Paging
// ---------------------------------------------------------------------------

/// `{"results":[…],"paging":{"next":{"after":"…"}}}`: one page of a v3 list or
/// search (a search adds `total`, which paging does not need: the cursor says
/// whether there is more).
#[derive(Debug, Deserialize)]
pub(super) struct Page<T> {
    #[serde(default = "Vec::new")]
    pub results: Vec<T>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Paging {
    #[serde(default)]
    pub next: Option<NextPage>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct NextPage {
    #[serde(default, deserialize_with = "lenient_text")]
    pub after: Option<String>,
}

impl<T> Page<T> {
    /// The cursor of the next page; `None` on the last one. An empty cursor is
    /// read as the end too: sending it back would fetch the first page again.
    pub fn next_after(&self) -> Option<String> {
        self.paging
            .as_ref()
            .and_then(|p| p.next.as_ref())
            .and_then(|n| n.after.as_deref())
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
    }
}

// ---------------------------------------------------------------------------
// Owners and users
// ---------------------------------------------------------------------------

/// A CRM owner (`/crm/v3/owners`): what records' `hubspot_owner_id` points at.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Owner {
    /// The owner id (a numeric string): the id offboard calls the user by.
    pub id: CrmId,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    /// The settings-API user id while the user is active.
    #[serde(default, deserialize_with = "lenient_id")]
    pub user_id: Option<CrmId>,
    /// The settings-API user id, also once the user is deactivated.
    #[serde(default, deserialize_with = "lenient_id")]
    pub user_id_including_inactive: Option<CrmId>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl Owner {
    /// The settings-API user behind this owner, active or not.
    pub fn user(&self) -> Option<&CrmId> {
        self.user_id
            .as_ref()
            .or(self.user_id_including_inactive.as_ref())
    }

    /// The seat as offboard sees it. `settings` is what the settings API said
    /// about the user behind the owner: `Some(user)` when it still has the user,
    /// `None` when it answered 404 (the user was removed), and the lookup is
    /// skipped (`Lookup::Unknown`) when there is no user id to ask about.
    ///
    /// An archived owner, or one whose `userId` is gone while
    /// `userIdIncludingInactive` remains, belongs to a user who can no longer
    /// sign in: inactive. An archived owner whose user the settings API no
    /// longer has was removed: deleted.
    pub fn into_user(self, settings: Lookup<&SettingsUser>) -> CrmUser {
        let active = !self.archived && self.user_id.is_some();
        let removed = self.archived && matches!(settings, Lookup::Gone);
        let admin = matches!(settings, Lookup::Found(u) if u.super_admin == Some(true));
        let name = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        CrmUser {
            deleted_at: removed.then(|| {
                self.updated_at
                    .clone()
                    .filter(|t| !t.trim().is_empty())
                    .unwrap_or_else(|| "archived".to_owned())
            }),
            id: self.id,
            name,
            email: self.email.unwrap_or_default(),
            status: if active {
                UserStatus::Active
            } else {
                UserStatus::Inactive
            },
            role: if admin {
                UserRole::Admin
            } else {
                UserRole::User
            },
            reports_to: None,
            team_name: None,
        }
    }
}

/// What the settings API said about one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lookup<T> {
    /// It has the user.
    Found(T),
    /// It answered 404: no such user (any more).
    Gone,
    /// Not asked (the owner names no user).
    Unknown,
}

/// A user of the settings API (`/settings/v3/users`), reduced to what the
/// admin guard needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SettingsUser {
    pub id: CrmId,
    #[serde(default)]
    pub super_admin: Option<bool>,
}

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

/// HubSpot's object types behind offboard's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ObjectType {
    Contacts,
    Companies,
    Deals,
    Tasks,
    Tickets,
}

impl ObjectType {
    /// The `{objectType}` path segment.
    pub fn path(self) -> &'static str {
        match self {
            Self::Contacts => "contacts",
            Self::Companies => "companies",
            Self::Deals => "deals",
            Self::Tasks => "tasks",
            Self::Tickets => "tickets",
        }
    }

    /// The properties a search asks for: the owner, and what "open" reads.
    pub fn properties(self) -> &'static [&'static str] {
        match self {
            Self::Contacts | Self::Companies => &[OWNER_PROPERTY],
            Self::Deals => &[OWNER_PROPERTY, "hs_is_closed", "dealstage"],
            Self::Tasks => &[
                OWNER_PROPERTY,
                TASK_STATUS,
                "hs_task_subject",
                "hs_task_body",
            ],
            Self::Tickets => &[OWNER_PROPERTY, TICKET_STAGE],
        }
    }
}

/// The owner property of every CRM object HubSpot ships.
pub(super) const OWNER_PROPERTY: &str = "hubspot_owner_id";
/// A record's id as a searchable property: what the 10,000-result partitions
/// are cut on.
pub(super) const ID_PROPERTY: &str = "hs_object_id";
/// A task's status (`NOT_STARTED`, …, `COMPLETED`).
pub(super) const TASK_STATUS: &str = "hs_task_status";
/// The one task status that is done.
pub(super) const COMPLETED: &str = "COMPLETED";
/// A ticket's stage id (its status); whether the stage is closed is the
/// pipeline's to say ([`closed_ticket_stages`]).
pub(super) const TICKET_STAGE: &str = "hs_pipeline_stage";

/// A CRM object (`SimplePublicObject`): its id and the properties asked for, all
/// of which HubSpot sends as strings (or `null`).
#[derive(Debug, Deserialize)]
pub(super) struct RawObject {
    pub id: CrmId,
    #[serde(default)]
    pub properties: HashMap<String, Option<String>>,
    #[serde(default)]
    pub archived: Option<bool>,
}

impl RawObject {
    fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .get(name)
            .and_then(Option::as_deref)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    /// The owner, when set.
    pub fn owner(&self) -> Option<CrmId> {
        self.property(OWNER_PROPERTY).map(CrmId::from)
    }

    /// Contacts and companies are always open; a deal until `hs_is_closed` says
    /// it was won or lost (a deal without the property is taken as open: moving a
    /// closed deal is harmless, leaving an open one with a departed owner is
    /// not); a task until its status is `COMPLETED`; a ticket until its stage is
    /// one of `closed_ticket_stages` (a stage no pipeline names is taken as open,
    /// for the same reason). Archived records are never open.
    pub fn is_open(&self, kind: ObjectType, closed_ticket_stages: &HashSet<String>) -> bool {
        if self.archived == Some(true) {
            return false;
        }
        match kind {
            ObjectType::Contacts | ObjectType::Companies => true,
            ObjectType::Deals => self
                .property("hs_is_closed")
                .is_none_or(|v| !v.eq_ignore_ascii_case("true")),
            ObjectType::Tasks => self
                .property(TASK_STATUS)
                .is_none_or(|s| !s.eq_ignore_ascii_case(COMPLETED)),
            ObjectType::Tickets => self
                .property(TICKET_STAGE)
                .is_none_or(|s| !closed_ticket_stages.contains(s)),
        }
    }

    /// Whether subject or body contains `marker` (a task created for the admin).
    pub fn mentions(&self, marker: &str) -> bool {
        ["hs_task_subject", "hs_task_body"]
            .into_iter()
            .any(|p| self.property(p).is_some_and(|t| t.contains(marker)))
    }
}

/// `GET /crm/v3/pipelines/tickets`: every ticket pipeline with its stages.
#[derive(Debug, Deserialize)]
pub(super) struct Pipelines {
    #[serde(default)]
    pub results: Vec<Pipeline>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Pipeline {
    #[serde(default)]
    pub stages: Vec<PipelineStage>,
}

/// A stage; a ticket stage's `metadata.ticketState` is `OPEN` or `CLOSED`.
#[derive(Debug, Deserialize)]
pub(super) struct PipelineStage {
    pub id: String,
    #[serde(default)]
    pub metadata: HashMap<String, Value>,
}

/// The ids of the ticket stages whose `ticketState` is `CLOSED`, in any pipeline.
pub(super) fn closed_ticket_stages(pipelines: &Pipelines) -> HashSet<String> {
    pipelines
        .results
        .iter()
        .flat_map(|p| &p.stages)
        .filter(|s| {
            s.metadata
                .get("ticketState")
                .and_then(Value::as_str)
                .is_some_and(|state| state.eq_ignore_ascii_case("CLOSED"))
        })
        .map(|s| s.id.clone())
        .collect()
}

/// One filter of a search (`{"propertyName","operator","value"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Filter {
    pub property: &'static str,
    pub operator: &'static str,
    pub value: String,
}

/// `POST /crm/v3/objects/{type}/search`: the records matching every filter (one
/// filter group: AND), ascending by id so that a partition can start where the
/// previous one stopped.
pub(super) fn search_body(
    filters: &[Filter],
    properties: &[&str],
    limit: u32,
    after: Option<&str>,
) -> Value {
    let filters: Vec<Value> = filters
        .iter()
        .map(|f| json!({ "propertyName": f.property, "operator": f.operator, "value": f.value }))
        .collect();
    let mut body = json!({
        "filterGroups": [{ "filters": filters }],
        "sorts": [{ "propertyName": ID_PROPERTY, "direction": "ASCENDING" }],
        "properties": properties,
        "limit": limit,
    });
    if let Some(after) = after {
        body["after"] = json!(after);
    }
    body
}

/// `POST /crm/v3/objects/{type}/batch/update`: the new owner for each id.
pub(super) fn owner_batch(ids: &[CrmId], owner: &CrmId) -> Value {
    let inputs: Vec<Value> = ids
        .iter()
        .map(|id| json!({ "id": id.as_str(), "properties": { OWNER_PROPERTY: owner.as_str() } }))
        .collect();
    json!({ "inputs": inputs })
}

/// `POST /crm/v3/objects/tasks`: the admin's to-do.
#[derive(Debug, Serialize)]
pub(super) struct NewTaskBody<'a> {
    pub properties: TaskProperties<'a>,
}

#[derive(Debug, Serialize)]
pub(super) struct TaskProperties<'a> {
    pub hs_task_subject: String,
    pub hs_task_body: &'a str,
    /// Required by HubSpot: the due date, as UTC RFC 3339.
    pub hs_timestamp: String,
    pub hubspot_owner_id: &'a str,
    pub hs_task_status: &'static str,
    pub hs_task_type: &'static str,
}

/// HubSpot keeps a task's subject to a line; the full text goes in the body.
pub(super) const SUBJECT_MAX_CHARS: usize = 255;

/// The subject for a task whose full text is `content`: its first non-empty
/// line, cut at a character boundary.
pub(super) fn subject_of(content: &str) -> String {
    let line = content
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("offboard");
    line.chars().take(SUBJECT_MAX_CHARS).collect()
}

/// `hs_timestamp` (required) for a due date: the instant in UTC, or `now` when
/// there is none or it can't be read (a task without the right date beats no
/// task). A bare day is taken as its start in UTC.
pub(super) fn task_timestamp(due: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> String {
    let parsed = due.map(str::trim).and_then(|d| {
        chrono::DateTime::parse_from_rfc3339(d)
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok()
            .or_else(|| {
                chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .ok()
                    .and_then(|day| day.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc())
            })
    });
    parsed
        .unwrap_or(now)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

// ---------------------------------------------------------------------------
// Batch answers
// ---------------------------------------------------------------------------

/// What `batch/update` answers: 200 when every input was written, 207 with
/// `errors` when some were not.
#[derive(Debug, Deserialize)]
pub(super) struct BatchResponse {
    #[serde(default)]
    pub results: Vec<Written>,
    #[serde(default)]
    pub errors: Vec<BatchError>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Written {
    pub id: CrmId,
}

/// One entry of `errors[]` (`StandardError`): which inputs it is about sits in
/// `context.ids` (or `id`).
#[derive(Debug, Deserialize)]
pub(super) struct BatchError {
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub context: HashMap<String, Value>,
}

impl BatchError {
    /// The ids this error names.
    fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.id.iter().cloned().collect();
        if let Some(v) = self.context.get("ids") {
            match v {
                Value::Array(items) => ids.extend(items.iter().filter_map(scalar_text)),
                other => ids.extend(scalar_text(other)),
            }
        }
        ids.into_iter()
            .map(|i| i.trim().to_owned())
            .filter(|i| !i.is_empty())
            .collect()
    }

    /// What this error means for a record it names: not found, or refused.
    fn verdict(&self) -> CrmError {
        let category = self.category.clone().unwrap_or_default();
        let message = bounded(
            self.message
                .as_deref()
                .unwrap_or("HubSpot refused the record"),
        );
        if category.eq_ignore_ascii_case("OBJECT_NOT_FOUND") {
            CrmError::NotFound(message)
        } else {
            CrmError::Rejected {
                code: if category.is_empty() {
                    "batch_error".to_owned()
                } else {
                    category
                },
                message,
            }
        }
    }
}

/// One outcome per id sent, in the order sent: written when listed in
/// `results`, the named error when an entry of `errors` names it. An id the
/// answer does not mention at all is a transient failure, so the worker re-lists
/// and tries again rather than counting it as moved. An error naming no id at
/// all applies to every id the results don't list.
pub(super) fn batch_outcomes(ids: &[CrmId], answer: &BatchResponse) -> Vec<WriteOutcome> {
    let written: std::collections::HashSet<&str> =
        answer.results.iter().map(|r| r.id.as_str()).collect();
    let mut named: HashMap<String, CrmError> = HashMap::new();
    let mut unnamed: Option<CrmError> = None;
    for error in &answer.errors {
        let ids = error.ids();
        if ids.is_empty() {
            unnamed.get_or_insert_with(|| error.verdict());
        }
        for id in ids {
            named.entry(id).or_insert_with(|| error.verdict());
        }
    }
    ids.iter()
        .map(|id| {
            let result = if let Some(e) = named.get(id.as_str()) {
                Err(e.clone())
            } else if written.contains(id.as_str()) {
                Ok(())
            } else if let Some(e) = &unnamed {
                Err(e.clone())
            } else {
                Err(CrmError::Transient(format!(
                    "HubSpot's batch answer does not mention record {id}"
                )))
            };
            WriteOutcome {
                id: id.clone(),
                result,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// `{"status":"error","message":"…","correlationId":"…","category":"…",
/// "errors":[{"message":"…","in":"…"}]}`; HubSpot says to treat every field as
/// optional. A 429 adds `errorType` and `policyName` (`DAILY`, `SECONDLY`, …).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorEnvelope {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    sub_category: Option<Value>,
    #[serde(default)]
    policy_name: Option<String>,
    #[serde(default)]
    errors: Vec<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
}

/// The CRM's own words about a failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ErrorReport {
    /// `category` (e.g. `VALIDATION_ERROR`), else `http_<status>`.
    pub code: String,
    /// `message`, the first detail when it adds something, and the correlation
    /// id (what HubSpot support asks for).
    pub message: String,
    /// The 429's `policyName`, when sent.
    pub policy: Option<String>,
}

/// Reads the error envelope; falls back to the status and a bounded excerpt of the
/// body when the answer is not one (a proxy's HTML page, an empty body).
pub(super) fn parse_error(status: u16, body: &[u8]) -> ErrorReport {
    if let Ok(env) = serde_json::from_slice::<ErrorEnvelope>(body) {
        let message = env
            .message
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty());
        let detail = env
            .errors
            .iter()
            .filter_map(|e| e.message.as_deref())
            .map(str::trim)
            .find(|d| !d.is_empty() && Some(*d) != message);
        let code = env
            .category
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .or_else(|| {
                env.sub_category
                    .as_ref()
                    .and_then(scalar_text)
                    .filter(|c| !c.is_empty())
            })
            .unwrap_or_else(|| format!("http_{status}"));
        if message.is_some() || detail.is_some() {
            let mut text = match (message, detail) {
                (Some(m), Some(d)) => format!("{m} ({d})"),
                (Some(m), None) => m.to_owned(),
                (None, Some(d)) => d.to_owned(),
                (None, None) => String::new(),
            };
            text = bounded(&text);
            if let Some(id) = env.correlation_id.as_deref().filter(|c| !c.is_empty()) {
                text.push_str(&format!(" [correlationId {id}]"));
            }
            return ErrorReport {
                code,
                message: text,
                policy: env.policy_name,
            };
        }
    }
    let text = String::from_utf8_lossy(body);
    let excerpt = bounded(text.trim());
    let message = if excerpt.is_empty() {
        reason(status)
    } else {
        format!("{}: {excerpt}", reason(status))
    };
    ErrorReport {
        code: format!("http_{status}"),
        message,
        policy: None,
    }
}

/// Classifies a non-2xx answer: 429 slow down; 5xx try later; 404 not found;
/// everything else (400 validation, 401 bad token, 403 missing scope, 409
/// conflict, 414, …) is permanent. A 400 on an owner write is HubSpot refusing
/// the records' new data, which [`refusal`] makes of it; here it can't be told
/// from a malformed request.
pub(super) fn error_for(status: u16, body: &[u8], retry_after: Option<Duration>) -> CrmError {
    let ErrorReport { code, message, .. } = parse_error(status, body);
    match status {
        429 => CrmError::RateLimited { retry_after },
        404 => CrmError::NotFound(message),
        500..=599 => CrmError::Transient(format!("HTTP {status} {code}: {message}")),
        _ => CrmError::Permanent {
            status,
            code,
            message,
        },
    }
}

/// For an owner write: a 400 `VALIDATION_ERROR` (an owner id HubSpot does not
/// accept, a property it refuses) is HubSpot refusing the records, which the
/// worker answers by trying the fallback owner. Everything else is unchanged: a
/// 401 or 403 would fail every record alike.
pub(super) fn refusal(error: CrmError) -> CrmError {
    match error {
        CrmError::Permanent {
            status: 400,
            code,
            message,
        } if code.eq_ignore_ascii_case("VALIDATION_ERROR") || code == "http_400" => {
            CrmError::Rejected { code, message }
        }
        other => other,
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The audit trail keeps the CRM's words, not a whole page of them.
fn bounded(text: &str) -> String {
    const MAX: usize = 300;
    if text.chars().count() <= MAX {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(MAX).collect();
    cut.push('…');
    cut
}

fn reason(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map_or_else(
            || format!("HTTP {status}"),
            |r| format!("HTTP {status} {r}"),
        )
}

// ---------------------------------------------------------------------------
// Lenient scalars
// ---------------------------------------------------------------------------

/// An id HubSpot sends as a number (`userId: 9586504`) or a string.
fn lenient_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<CrmId>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_i64().map(CrmId::from),
        Some(Value::String(s)) if !s.trim().is_empty() => Some(CrmId::from(s.trim())),
        _ => None,
    })
}

/// A cursor HubSpot sends as a string (numbers are read too, in case).
fn lenient_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(scalar_text))
}

// ---------------------------------------------------------------------------
// Rate-limit headers
// ---------------------------------------------------------------------------

/// What HubSpot's rate-limit headers say. `X-HubSpot-RateLimit-Max` and
/// `-Daily` (the sizes) are not read: pacing needs to know when a window is
/// spent, not how big it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct RateLimit {
    /// `X-HubSpot-RateLimit-Remaining`: left in the rolling window.
    pub remaining: Option<u64>,
    /// `X-HubSpot-RateLimit-Interval-Milliseconds`: the window's length.
    pub interval: Option<Duration>,
    /// `X-HubSpot-RateLimit-Secondly-Remaining` (where sent).
    pub secondly_remaining: Option<u64>,
    /// `X-HubSpot-RateLimit-Daily-Remaining` (private apps only).
    pub daily_remaining: Option<u64>,
}

/// How long a spent daily allowance is waited out: HubSpot resets it at
/// midnight in the account's time zone, which offboard does not know, so the
/// call is handed back (far above any `max_retry_after`) and the job retried
/// later.
pub(super) const DAILY_PAUSE: Duration = Duration::from_secs(3600);

/// The longest window pause taken from the headers: HubSpot's windows are 10
/// seconds (and 1 for the secondly limit); a larger value is not trusted.
const MAX_WINDOW: Duration = Duration::from_secs(10);

impl RateLimit {
    /// Reads the headers; absent or unreadable ones stay `None`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let number = |name: &str| header_text(headers, name).and_then(|v| v.parse::<u64>().ok());
        Self {
            remaining: number("x-hubspot-ratelimit-remaining"),
            interval: number("x-hubspot-ratelimit-interval-milliseconds")
                .map(Duration::from_millis),
            secondly_remaining: number("x-hubspot-ratelimit-secondly-remaining"),
            daily_remaining: number("x-hubspot-ratelimit-daily-remaining"),
        }
    }

    /// How long to hold every caller back before the next request when a window
    /// is spent: sending into it only earns a 429. A rolling window frees up
    /// gradually, so waiting its whole length is the safe upper bound.
    pub fn pause(&self) -> Option<Duration> {
        if self.remaining == Some(0) {
            return Some(
                self.interval
                    .unwrap_or(MAX_WINDOW)
                    .min(MAX_WINDOW)
                    .max(Duration::from_millis(100)),
            );
        }
        if self.secondly_remaining == Some(0) {
            return Some(Duration::from_secs(1));
        }
        None
    }
}

/// From a successful answer's headers: how long to hold the token's requests
/// back because a window is spent (the transport's `quota_pause` hook). A spent
/// daily allowance is left to the 429 that follows, which hands the call back.
pub(super) fn quota_pause(headers: &HeaderMap) -> Option<Duration> {
    RateLimit::from_headers(headers).pause()
}

/// How long HubSpot asks us to wait after a 429: `Retry-After` (seconds or an
/// HTTP date) when sent; else a spent daily allowance ([`DAILY_PAUSE`]); else
/// the spent window's length.
pub(super) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(wait) = retry_after_header(headers, now) {
        return Some(wait);
    }
    let limits = RateLimit::from_headers(headers);
    if limits.daily_remaining == Some(0) {
        return Some(DAILY_PAUSE);
    }
    limits.pause()
}

/// Reads one answer the way the client does, for the fuzz targets
/// (`crates/fuzzing`, `fuzz/`), which must reach these private shapes: `body` as
/// every 2xx answer the client decodes (owner, settings-user and object pages with
/// their cursors, one owner, one settings user, the ticket pipelines, a batch
/// update's answer for a few ids, a created task) with what it then asks of them,
/// and `status`, `body` and `headers` through the error and rate-limit rules.
/// Returns how many answer shapes `body` decoded as. Nothing here may panic,
/// whatever HubSpot or a proxy in front of it sends.
pub fn read_every_answer(status: u16, headers: &HeaderMap, body: &[u8], now: SystemTime) -> usize {
    let mut decoded = 0;
    let mut closed = HashSet::new();
    if let Ok(pipelines) = serde_json::from_slice::<Pipelines>(body) {
        decoded += 1;
        closed = closed_ticket_stages(&pipelines);
    }
    let settings = serde_json::from_slice::<SettingsUser>(body).ok();
    decoded += usize::from(settings.is_some());
    if let Ok(page) = serde_json::from_slice::<Page<Owner>>(body) {
        decoded += 1;
        let _ = page.next_after();
        for owner in page.results {
            let _ = owner.user();
            for lookup in [Lookup::Unknown, Lookup::Gone] {
                let _ = owner.clone().into_user(lookup);
            }
            if let Some(user) = &settings {
                let _ = owner.into_user(Lookup::Found(user));
            }
        }
    }
    if let Ok(owner) = serde_json::from_slice::<Owner>(body) {
        decoded += 1;
        let _ = owner.into_user(Lookup::Unknown);
    }
    if let Ok(page) = serde_json::from_slice::<Page<SettingsUser>>(body) {
        decoded += 1;
        let _ = page.next_after();
    }
    if let Ok(page) = serde_json::from_slice::<Page<RawObject>>(body) {
        decoded += 1;
        let _ = page.next_after();
        for object in page.results {
            let _ = (object.owner(), object.id.as_i64());
            for kind in [
                ObjectType::Contacts,
                ObjectType::Companies,
                ObjectType::Deals,
                ObjectType::Tasks,
                ObjectType::Tickets,
            ] {
                let _ = object.is_open(kind, &closed);
            }
            let _ = object.mentions("[offboard job");
        }
    }
    if let Ok(answer) = serde_json::from_slice::<BatchResponse>(body) {
        decoded += 1;
        let ids: Vec<CrmId> = ["1", "2", "101"].into_iter().map(CrmId::from).collect();
        let _ = batch_outcomes(&ids, &answer);
    }
    decoded += usize::from(serde_json::from_slice::<RawObject>(body).is_ok());
    let _ = quota_pause(headers);
    let error = refusal(error_for(status, body, retry_after(headers, now)));
    let _ = error.to_string();
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::crm::transport::test_headers as headers;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    // --- owners ---

    const OWNER: &str = r#"{"id":"41629779","email":"email@hubspot.com","type":"PERSON",
        "firstName":"HubSpot","lastName":"Test Owner","userId":9586504,
        "userIdIncludingInactive":9586504,"createdAt":"2019-12-25T13:01:35.228Z",
        "updatedAt":"2023-08-22T13:40:26.790Z","archived":false}"#;

    #[test]
    fn an_owner_is_the_user_with_its_owner_id() {
        let owner: Owner = serde_json::from_str(OWNER).unwrap();
        assert_eq!(owner.user(), Some(&CrmId::from(9586504)));
        let admin = SettingsUser {
            id: CrmId::from(9586504),
            super_admin: Some(true),
        };
        let u = owner.clone().into_user(Lookup::Found(&admin));
        assert_eq!(u.id, CrmId::from(41629779), "the owner id, not the user id");
        assert_eq!(u.name, "HubSpot Test Owner");
        assert_eq!(u.status, UserStatus::Active);
        assert_eq!(u.role, UserRole::Admin);
        assert_eq!(u.deleted_at, None);
        assert_eq!(owner.into_user(Lookup::Unknown).role, UserRole::User);
    }

    #[test]
    fn archived_or_userless_owners_are_inactive_and_gone_users_deleted() {
        let deactivated: Owner = serde_json::from_str(
            r#"{"id":"7","email":"d@x","userIdIncludingInactive":70,"archived":false}"#,
        )
        .unwrap();
        assert_eq!(deactivated.user(), Some(&CrmId::from(70)));
        let u = deactivated.into_user(Lookup::Unknown);
        assert_eq!(u.status, UserStatus::Inactive);
        assert!(!u.is_deleted());

        let archived: Owner = serde_json::from_str(
            r#"{"id":"8","email":"r@x","userIdIncludingInactive":80,"archived":true,"updatedAt":"2026-01-02T00:00:00Z"}"#,
        )
        .unwrap();
        let kept = SettingsUser {
            id: CrmId::from(80),
            super_admin: None,
        };
        let u = archived.clone().into_user(Lookup::Found(&kept));
        assert_eq!(u.status, UserStatus::Inactive);
        assert!(!u.is_deleted(), "the settings API still has the user");
        let u = archived.into_user(Lookup::Gone);
        assert_eq!(u.deleted_at.as_deref(), Some("2026-01-02T00:00:00Z"));
    }

    #[test]
    fn pages_end_without_a_next_cursor() {
        let page: Page<Owner> = serde_json::from_str(&format!(
            r#"{{"results":[{OWNER}],"paging":{{"next":{{"after":"NTI1Cg%3D%3D","link":"?after=NTI1Cg%3D%3D"}}}}}}"#
        ))
        .unwrap();
        assert_eq!(page.next_after().as_deref(), Some("NTI1Cg%3D%3D"));
        let last: Page<Owner> = serde_json::from_str(r#"{"results":[]}"#).unwrap();
        assert_eq!(last.next_after(), None);
        let blank: Page<Owner> =
            serde_json::from_str(r#"{"results":[],"paging":{"next":{"after":" "}}}"#).unwrap();
        assert_eq!(blank.next_after(), None);
        let numeric: Page<RawObject> =
            serde_json::from_str(r#"{"total":3,"results":[],"paging":{"next":{"after":200}}}"#)
                .unwrap();
        assert_eq!(numeric.next_after().as_deref(), Some("200"));
    }

    // --- records ---

    fn object(json: &str) -> RawObject {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn what_open_means_per_object_type() {
        let none = HashSet::new();
        let deal = |closed: &str| {
            object(&format!(
                r#"{{"id":"1","properties":{{"hubspot_owner_id":"9","hs_is_closed":{closed}}}}}"#
            ))
        };
        assert!(deal(r#""false""#).is_open(ObjectType::Deals, &none));
        assert!(!deal(r#""true""#).is_open(ObjectType::Deals, &none));
        assert!(deal("null").is_open(ObjectType::Deals, &none));
        let task = |status: &str| {
            object(&format!(
                r#"{{"id":"2","properties":{{"hs_task_status":"{status}"}}}}"#
            ))
        };
        assert!(task("NOT_STARTED").is_open(ObjectType::Tasks, &none));
        assert!(task("WAITING").is_open(ObjectType::Tasks, &none));
        assert!(!task("COMPLETED").is_open(ObjectType::Tasks, &none));
        assert!(object(r#"{"id":"3"}"#).is_open(ObjectType::Contacts, &none));
        assert!(object(r#"{"id":"3"}"#).is_open(ObjectType::Companies, &none));
        assert!(!object(r#"{"id":"3","archived":true}"#).is_open(ObjectType::Contacts, &none));
        let ticket = |stage: &str| {
            object(&format!(
                r#"{{"id":"4","properties":{{"hs_pipeline_stage":{stage}}}}}"#
            ))
        };
        let pipelines: Pipelines = serde_json::from_str(
            r#"{"results":[{"id":"0","stages":[
                {"id":"1","metadata":{"ticketState":"OPEN"}},
                {"id":"4","metadata":{"ticketState":"CLOSED"}}]},
              {"id":"9","stages":[{"id":"77","metadata":{"ticketState":"closed"}},{"id":"78"}]}]}"#,
        )
        .unwrap();
        let closed = closed_ticket_stages(&pipelines);
        assert_eq!(closed, HashSet::from(["4".to_owned(), "77".to_owned()]));
        assert!(ticket(r#""1""#).is_open(ObjectType::Tickets, &closed));
        assert!(!ticket(r#""4""#).is_open(ObjectType::Tickets, &closed));
        assert!(!ticket(r#""77""#).is_open(ObjectType::Tickets, &closed));
        assert!(ticket(r#""78""#).is_open(ObjectType::Tickets, &closed));
        assert!(ticket("null").is_open(ObjectType::Tickets, &closed));
        assert_eq!(deal("null").owner(), Some(CrmId::from(9)));
        assert_eq!(task("COMPLETED").owner(), None);
    }

    #[test]
    fn search_body_filters_sorts_and_pages() {
        let body = search_body(
            &[
                Filter {
                    property: OWNER_PROPERTY,
                    operator: "EQ",
                    value: "41629779".into(),
                },
                Filter {
                    property: ID_PROPERTY,
                    operator: "GT",
                    value: "900".into(),
                },
            ],
            ObjectType::Deals.properties(),
            200,
            Some("400"),
        );
        assert_eq!(
            body["filterGroups"][0]["filters"][0],
            json!({"propertyName":"hubspot_owner_id","operator":"EQ","value":"41629779"})
        );
        assert_eq!(body["filterGroups"][0]["filters"][1]["operator"], "GT");
        assert_eq!(
            body["sorts"][0],
            json!({"propertyName":"hs_object_id","direction":"ASCENDING"})
        );
        assert_eq!(body["limit"], 200);
        assert_eq!(body["after"], "400");
        assert!(
            body["properties"]
                .as_array()
                .unwrap()
                .contains(&json!("hs_is_closed"))
        );
        assert!(search_body(&[], &[], 200, None).get("after").is_none());
    }

    #[test]
    fn owner_batch_sends_ids_and_owner_as_strings() {
        let body = owner_batch(&[CrmId::from(1), CrmId::from(2)], &CrmId::from(77));
        assert_eq!(
            body,
            json!({"inputs":[
                {"id":"1","properties":{"hubspot_owner_id":"77"}},
                {"id":"2","properties":{"hubspot_owner_id":"77"}}
            ]})
        );
    }

    #[test]
    fn task_body_and_timestamp() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-05-01T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            task_timestamp(Some("2026-12-03T17:00:00-08:00"), now),
            "2026-12-04T01:00:00.000Z"
        );
        assert_eq!(
            task_timestamp(Some("2026-12-03"), now),
            "2026-12-03T00:00:00.000Z"
        );
        assert_eq!(
            task_timestamp(Some("next tuesday"), now),
            "2026-05-01T10:00:00.000Z"
        );
        assert_eq!(task_timestamp(None, now), "2026-05-01T10:00:00.000Z");
        let body = NewTaskBody {
            properties: TaskProperties {
                hs_task_subject: subject_of("\n Delete bo@x in HubSpot \n[offboard:abc]"),
                hs_task_body: "Delete bo@x in HubSpot\n[offboard:abc]",
                hs_timestamp: task_timestamp(None, now),
                hubspot_owner_id: "77",
                hs_task_status: "NOT_STARTED",
                hs_task_type: "TODO",
            },
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json["properties"]["hs_task_subject"],
            "Delete bo@x in HubSpot"
        );
        assert_eq!(json["properties"]["hubspot_owner_id"], "77");
        assert_eq!(subject_of(""), "offboard");
        assert_eq!(
            subject_of(&"é".repeat(400)).chars().count(),
            SUBJECT_MAX_CHARS
        );
        let found = object(
            r#"{"id":"5","properties":{"hs_task_subject":"Delete bo@x","hs_task_body":"<p>[offboard:abc]</p>"}}"#,
        );
        assert!(found.mentions("[offboard:abc]"));
        assert!(!found.mentions("[offboard:zzz]"));
    }

    // --- batch answers ---

    fn ids(list: &[i64]) -> Vec<CrmId> {
        list.iter().copied().map(CrmId::from).collect()
    }

    #[test]
    fn a_multi_status_answer_names_each_failed_record() {
        let answer: BatchResponse = serde_json::from_str(
            r#"{"status":"COMPLETE","results":[{"id":"1","properties":{}},{"id":"3","properties":{}}],
                "numErrors":2,"errors":[
                  {"status":"error","category":"OBJECT_NOT_FOUND","message":"Could not get some DEAL objects, they may be deleted or not exist.","context":{"ids":["2"]},"errors":[],"links":{}},
                  {"status":"error","category":"VALIDATION_ERROR","message":"owner is not active","id":"4","context":{},"errors":[],"links":{}}
                ],"startedAt":"2026-01-01T00:00:00Z","completedAt":"2026-01-01T00:00:01Z"}"#,
        )
        .unwrap();
        let out = batch_outcomes(&ids(&[1, 2, 3, 4, 5]), &answer);
        assert_eq!(out.len(), 5);
        assert!(out[0].result.is_ok());
        assert!(matches!(out[1].result, Err(CrmError::NotFound(_))));
        assert!(out[2].result.is_ok());
        assert!(
            matches!(&out[3].result, Err(CrmError::Rejected { code, message }) if code == "VALIDATION_ERROR" && message == "owner is not active")
        );
        assert!(
            matches!(&out[4].result, Err(CrmError::Transient(m)) if m.contains('5')),
            "an id the answer does not mention has not certainly moved"
        );
    }

    #[test]
    fn an_error_naming_no_id_applies_to_the_unwritten_ones() {
        let answer: BatchResponse = serde_json::from_str(
            r#"{"results":[{"id":"1"}],"errors":[{"category":"VALIDATION_ERROR","message":"bad owner"}]}"#,
        )
        .unwrap();
        let out = batch_outcomes(&ids(&[1, 2]), &answer);
        assert!(out[0].result.is_ok());
        assert!(matches!(out[1].result, Err(CrmError::Rejected { .. })));
        let numbers: BatchResponse = serde_json::from_str(
            r#"{"results":[],"errors":[{"category":"OBJECT_NOT_FOUND","context":{"ids":[2]}}]}"#,
        )
        .unwrap();
        assert!(matches!(
            batch_outcomes(&ids(&[2]), &numbers)[0].result,
            Err(CrmError::NotFound(_))
        ));
    }

    // --- errors ---

    #[test]
    fn the_envelope_gives_category_message_and_correlation_id() {
        let body = br#"{"status":"error","message":"Property values were not valid","correlationId":"a43683b0-5717-4ceb-80b4-104d02915d8c","category":"VALIDATION_ERROR","errors":[{"message":"hubspot_owner_id: 5 is not a valid owner","in":"hubspot_owner_id"}]}"#;
        let r = parse_error(400, body);
        assert_eq!(r.code, "VALIDATION_ERROR");
        assert_eq!(
            r.message,
            "Property values were not valid (hubspot_owner_id: 5 is not a valid owner) [correlationId a43683b0-5717-4ceb-80b4-104d02915d8c]"
        );
        let limited = br#"{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","correlationId":"c0","policyName":"DAILY"}"#;
        let r = parse_error(429, limited);
        assert_eq!(r.policy.as_deref(), Some("DAILY"));
        assert_eq!(r.code, "http_429");
    }

    #[test]
    fn non_envelope_bodies_fall_back_to_the_status() {
        let r = parse_error(502, b"<html>Bad gateway</html>");
        assert_eq!(r.code, "http_502");
        assert_eq!(r.message, "HTTP 502 Bad Gateway: <html>Bad gateway</html>");
        assert_eq!(parse_error(401, b"").message, "HTTP 401 Unauthorized");
        assert_eq!(parse_error(404, b"{}").message, "HTTP 404 Not Found: {}");
        assert!(parse_error(500, "x".repeat(5000).as_bytes()).message.len() < 400);
    }

    #[test]
    fn statuses_map_to_what_the_caller_should_do() {
        let wait = Some(Duration::from_secs(2));
        assert!(
            matches!(error_for(429, b"", wait), CrmError::RateLimited { retry_after } if retry_after == wait)
        );
        for status in [500, 502, 503, 504] {
            assert!(matches!(
                error_for(status, b"", None),
                CrmError::Transient(_)
            ));
        }
        assert!(matches!(error_for(404, b"", None), CrmError::NotFound(_)));
        for status in [400, 401, 403, 409, 414] {
            assert!(
                matches!(error_for(status, b"", None), CrmError::Permanent { status: s, .. } if s == status),
                "{status}"
            );
        }
        let scope = br#"{"status":"error","message":"This app hasn't been granted all required scopes","category":"MISSING_SCOPES","context":{"requiredGranularScopes":["crm.objects.deals.write"]}}"#;
        assert!(
            matches!(error_for(403, scope, None), CrmError::Permanent { code, .. } if code == "MISSING_SCOPES")
        );
    }

    #[test]
    fn a_refused_owner_write_is_rejected_but_auth_is_not() {
        let body = br#"{"status":"error","message":"Property values were not valid","category":"VALIDATION_ERROR"}"#;
        assert!(matches!(
            refusal(error_for(400, body, None)),
            CrmError::Rejected { code, .. } if code == "VALIDATION_ERROR"
        ));
        assert!(matches!(
            refusal(error_for(403, b"", None)),
            CrmError::Permanent { status: 403, .. }
        ));
        let conflict = br#"{"status":"error","message":"x","category":"CONFLICT"}"#;
        assert!(matches!(
            refusal(error_for(400, conflict, None)),
            CrmError::Permanent { .. }
        ));
    }

    // --- rate limits ---

    #[test]
    fn rate_limit_headers_are_read() {
        let h = headers(&[
            ("x-hubspot-ratelimit-interval-milliseconds", "10000"),
            ("x-hubspot-ratelimit-max", "190"),
            ("x-hubspot-ratelimit-remaining", "189"),
            ("x-hubspot-ratelimit-daily", "1000000"),
            ("x-hubspot-ratelimit-daily-remaining", "999999"),
        ]);
        let r = RateLimit::from_headers(&h);
        assert_eq!(r.remaining, Some(189));
        assert_eq!(r.interval, Some(Duration::from_secs(10)));
        assert_eq!(r.daily_remaining, Some(999_999));
        assert_eq!(quota_pause(&h), None, "budget left: no pause");
        let spent = headers(&[
            ("x-hubspot-ratelimit-interval-milliseconds", "10000"),
            ("x-hubspot-ratelimit-remaining", "0"),
        ]);
        assert_eq!(quota_pause(&spent), Some(Duration::from_secs(10)));
        let secondly = headers(&[("x-hubspot-ratelimit-secondly-remaining", "0")]);
        assert_eq!(quota_pause(&secondly), Some(Duration::from_secs(1)));
        let huge = headers(&[
            ("x-hubspot-ratelimit-interval-milliseconds", "86400000"),
            ("x-hubspot-ratelimit-remaining", "0"),
        ]);
        assert_eq!(quota_pause(&huge), Some(MAX_WINDOW));
        let junk = headers(&[("x-hubspot-ratelimit-remaining", "-1")]);
        assert_eq!(RateLimit::from_headers(&junk), RateLimit::default());
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(retry_after(&headers(&[]), now()), None);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")]), now()),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Fri, 15 Jan 2027 08:00:10 GMT")]),
                now()
            ),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after(
                &headers(&[
                    ("x-hubspot-ratelimit-interval-milliseconds", "10000"),
                    ("x-hubspot-ratelimit-remaining", "0")
                ]),
                now()
            ),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after(
                &headers(&[("x-hubspot-ratelimit-daily-remaining", "0")]),
                now()
            ),
            Some(DAILY_PAUSE)
        );
        assert_eq!(
            retry_after(
                &headers(&[
                    ("retry-after", "3"),
                    ("x-hubspot-ratelimit-daily-remaining", "0")
                ]),
                now()
            ),
            Some(Duration::from_secs(3)),
            "Retry-After wins"
        );
    }
}
