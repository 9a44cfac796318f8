//! Pipedrive's JSON envelopes, error conventions and rate-limit headers, kept in one
//! place so the rest of the client deals in [`CrmUser`], [`CrmId`] and [`CrmError`]
//! only. Pure functions and serde types: no IO, so every rule here is unit-tested
//! without a server. The facts and their sources are listed in the parent module.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::{
    crm::{
        contract::CrmError,
        transport::{header_text, reset_wait, retry_after_header, status_reason},
    },
    domain::{CrmId, CrmUser, UserRole, UserStatus},
};

// ---------------------------------------------------------------------------
// Envelopes
// ---------------------------------------------------------------------------

/// `{"success":true,"data":{...}}`: one object (a user, a created activity).
#[derive(Debug, Deserialize)]
pub(super) struct Single<T> {
    /// Pipedrive answers `data: null` rather than 404 in a few places (a search
    /// with no hit), so absence is data, not a decoding error.
    #[serde(default = "none")]
    pub data: Option<T>,
}

/// `{"success":true,"data":[...],"additional_data":{...}}`: one page of a list, in
/// either of Pipedrive's paging styles (v2 cursor, v1 offset).
#[derive(Debug, Deserialize)]
pub(super) struct Page<T> {
    /// `null` when nothing matched (`/v1/users/find` answers so).
    #[serde(default = "none")]
    pub data: Option<Vec<T>>,
    #[serde(default)]
    pub additional_data: Option<AdditionalData>,
}

fn none<T>() -> Option<T> {
    None
}

/// What follows `data` in a list answer. v2 lists carry `next_cursor`; v1 lists
/// carry the offset fields, nested in `pagination` (as the "Responses" page shows)
/// or flat (as the leads schema of the OpenAPI file shows): both are read.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AdditionalData {
    /// v2: the first item of the next page; `null` or absent on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
    #[serde(default)]
    pub pagination: Option<Offset>,
    #[serde(flatten)]
    pub flat: Offset,
}

/// v1 offset paging: `start`, `limit`, `more_items_in_collection`, `next_start`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Offset {
    #[serde(default)]
    pub more_items_in_collection: Option<bool>,
    #[serde(default)]
    pub next_start: Option<u64>,
}

impl<T> Page<T> {
    /// The items, `data: null` read as none.
    pub fn into_items(self) -> Vec<T> {
        self.data.unwrap_or_default()
    }

    /// v2: the cursor of the next page; `None` on the last page. An empty string
    /// is read as "no more" too: sending it back would fetch the first page again.
    pub fn next_cursor(&self) -> Option<String> {
        self.additional_data
            .as_ref()
            .and_then(|a| a.next_cursor.as_deref())
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
    }

    /// v1: the `start` of the next page, given the `start` of this one; `None` on
    /// the last page. Without `next_start` the next page begins after the items
    /// this one returned (not after `limit`: a server that caps the page size
    /// silently would otherwise make us skip records).
    pub fn next_start(&self, start: u64) -> Option<u64> {
        let got = self.data.as_ref().map_or(0, Vec::len) as u64;
        let offset = self
            .additional_data
            .as_ref()
            .and_then(|a| a.pagination.as_ref().or(Some(&a.flat)));
        let more = offset.and_then(|o| o.more_items_in_collection);
        if more != Some(true) || got == 0 {
            return None;
        }
        // No page starts after the last offset there is: a `start` Pipedrive (or a
        // proxy) pushed to u64::MAX ends the listing rather than overflowing.
        let floor = start.checked_add(1)?;
        let next = match offset.and_then(|o| o.next_start) {
            Some(next) => next,
            None => start.checked_add(got)?,
        };
        // A next_start that does not move forward would loop forever.
        Some(next.max(floor))
    }
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

/// A Pipedrive user (`/v1/users…`), reduced to what offboarding reads.
#[derive(Debug, Deserialize)]
pub(super) struct RawUser {
    pub id: CrmId,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    pub active_flag: Option<bool>,
    /// Deprecated by Pipedrive in favour of `access` (client-nodejs CHANGELOG),
    /// still sent by accounts in the wild as `1`/`0`; either one makes an admin.
    #[serde(default, deserialize_with = "flag")]
    pub is_admin: Option<bool>,
    #[serde(default)]
    pub access: Vec<Access>,
    #[serde(default, deserialize_with = "flag")]
    pub is_deleted: Option<bool>,
}

/// One app the user may use, and whether as its admin.
#[derive(Debug, Deserialize)]
pub(super) struct Access {
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    pub admin: Option<bool>,
}

impl RawUser {
    /// A global admin administers the whole account (what [`UserRole::Admin`]
    /// means); an admin of one app (`sales`, `campaigns`…) does not.
    pub fn is_admin(&self) -> bool {
        self.is_admin == Some(true)
            || self.access.iter().any(|a| {
                a.admin == Some(true) && a.app.as_deref().is_some_and(|app| app == "global")
            })
    }

    /// The seat as offboard sees it. Pipedrive has no manager field and cannot
    /// delete through the API, so `reports_to` and `deleted_at` stay empty; a user
    /// removed in the UI (`is_deleted`) can't sign in, so it reads as inactive.
    pub fn into_user(self) -> CrmUser {
        let active = self.active_flag == Some(true) && self.is_deleted != Some(true);
        let role = if self.is_admin() {
            UserRole::Admin
        } else {
            UserRole::User
        };
        CrmUser {
            id: self.id,
            name: self.name.unwrap_or_default(),
            email: self.email.unwrap_or_default(),
            status: if active {
                UserStatus::Active
            } else {
                UserStatus::Inactive
            },
            role,
            reports_to: None,
            team_name: None,
            deleted_at: None,
        }
    }
}

/// `GET /v1/users/me`: the token's own user (only the id matters).
#[derive(Debug, Deserialize)]
pub(super) struct Me {
    pub id: CrmId,
}

/// `PUT /v1/users/{id}`: the only field Pipedrive lets an API client change.
#[derive(Debug, Serialize)]
pub(super) struct SeatFlag {
    pub active_flag: bool,
}

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

/// A lead, person, organization, deal or activity, reduced to what offboarding
/// needs. One type for all five: each reads only the fields it has.
#[derive(Debug, Deserialize)]
pub(super) struct RawRecord {
    /// A number for v2 objects, a UUID for leads.
    pub id: CrmId,
    #[serde(default, deserialize_with = "owner")]
    pub owner_id: Option<CrmId>,
    /// Deals: `open`, `won`, `lost` or `deleted`.
    #[serde(default)]
    pub status: Option<String>,
    /// Activities.
    #[serde(default, deserialize_with = "flag")]
    pub done: Option<bool>,
    /// Leads (and deals, which v2 lists only when not archived).
    #[serde(default, deserialize_with = "flag")]
    pub is_archived: Option<bool>,
    #[serde(default, deserialize_with = "flag")]
    pub is_deleted: Option<bool>,
    /// Activities: what `find_task` matches its marker against.
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

impl RawRecord {
    /// A deal is open while its status is `open`; an activity until it is done; a
    /// lead until archived. A deal without a status is taken as open: moving a
    /// closed deal is harmless, leaving an open one with a departed owner is not.
    /// Deleted records are never open.
    pub fn is_open(&self, kind: RecordKind) -> bool {
        if self.is_deleted == Some(true) {
            return false;
        }
        match kind {
            RecordKind::Deal => self
                .status
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case("open")),
            RecordKind::Activity => self.done != Some(true),
            RecordKind::Lead => self.is_archived != Some(true),
            RecordKind::Person | RecordKind::Organization => true,
        }
    }

    /// Whether subject or note contains `marker` (an activity created for a task).
    pub fn mentions(&self, marker: &str) -> bool {
        [&self.subject, &self.note]
            .into_iter()
            .any(|t| t.as_deref().is_some_and(|t| t.contains(marker)))
    }
}

/// Pipedrive's object kinds, for what "open" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecordKind {
    Lead,
    Person,
    Organization,
    Deal,
    Activity,
}

/// `PATCH /api/v2/{…}/{id}` and `PATCH /api/v1/leads/{id}`: the new owner.
#[derive(Debug, Serialize)]
pub(super) struct OwnerChange {
    /// Pipedrive wants the number; a non-numeric user id is refused before sending.
    pub owner_id: i64,
}

/// `POST /api/v2/activities`: the admin's to-do.
#[derive(Debug, Serialize)]
pub(super) struct NewActivity<'a> {
    pub subject: String,
    pub owner_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_date: Option<String>,
    pub note: &'a str,
}

/// Pipedrive's subject is one line of bounded length; the full text goes in the
/// note, so the subject is the first line, cut at a character boundary.
pub(super) const SUBJECT_MAX_CHARS: usize = 255;

/// The subject for an activity whose full text is `content`.
pub(super) fn subject_of(content: &str) -> String {
    let line = content
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("offboard");
    line.chars().take(SUBJECT_MAX_CHARS).collect()
}

/// An activity's `due_date` is a calendar day (`YYYY-MM-DD`). offboard's due dates
/// are RFC 3339 instants; the day is taken as written (its own offset), because
/// converting to UTC could move an end-of-day deadline to the next day. `None`
/// when the text is neither form: a task without a date beats no task.
pub(super) fn due_day(due: &str) -> Option<String> {
    let due = due.trim();
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(due) {
        return Some(at.date_naive().format("%Y-%m-%d").to_string());
    }
    chrono::NaiveDate::parse_from_str(due, "%Y-%m-%d")
        .ok()
        .map(|d| d.format("%Y-%m-%d").to_string())
}

/// What `POST /api/v2/activities` answers (only the id matters).
#[derive(Debug, Deserialize)]
pub(super) struct Created {
    pub id: CrmId,
}

// ---------------------------------------------------------------------------
// Lenient scalars
// ---------------------------------------------------------------------------

/// A flag Pipedrive spells as `true`/`false`, `1`/`0` or `"1"`/`"0"` depending on
/// endpoint and age of the field; `null` is absent.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Bool(b)) => Some(b),
        Some(Value::Number(n)) => n.as_f64().map(|n| n != 0.0),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" => Some(true),
            "0" | "false" | "" => Some(false),
            _ => None,
        },
        _ => None,
    })
}

/// An owner as v2 and leads send it (a number), or as older v1 objects do (an
/// object with `id`, or `value`).
fn owner<'de, D: Deserializer<'de>>(d: D) -> Result<Option<CrmId>, D::Error> {
    let id = |v: &Value| match v {
        Value::Number(n) => n.as_i64().map(CrmId::from),
        Value::String(s) if !s.trim().is_empty() => Some(CrmId::from(s.trim())),
        _ => None,
    };
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Object(o)) => o
            .get("id")
            .and_then(id)
            .or_else(|| o.get("value").and_then(id)),
        Some(v) => id(&v),
        None => None,
    })
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// `{"success":false,"error":"…","error_info":"…","data":null,"additional_data":null}`,
/// sometimes with `code` (v2: `"ERR_SCHEMA_VALIDATION_FAILED"`; limits:
/// `"feature_capping_deals_limit"`) or `errorCode` (401: a number).
#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    error_info: Option<String>,
    #[serde(default)]
    code: Option<Value>,
    #[serde(default, rename = "errorCode")]
    error_code: Option<Value>,
}

/// The CRM's own words about a failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ErrorReport {
    pub code: String,
    pub message: String,
}

/// Pipedrive's `error_info` is usually this pointer at the docs, which tells the
/// audit trail nothing; anything else it says is kept.
const BOILERPLATE_INFO: &str = "developers.pipedrive.com";

/// Reads the error envelope; falls back to the status and a bounded excerpt of the
/// body when the answer is not one (a proxy's HTML page, an empty body).
pub(super) fn parse_error(status: u16, body: &[u8]) -> ErrorReport {
    if let Ok(env) = serde_json::from_slice::<ErrorEnvelope>(body) {
        let error = env.error.as_ref().map(text).unwrap_or_default();
        let info = env
            .error_info
            .as_deref()
            .map(str::trim)
            .filter(|i| !i.is_empty() && !i.contains(BOILERPLATE_INFO))
            .unwrap_or_default()
            .to_owned();
        let code = env
            .code
            .as_ref()
            .map(text)
            .filter(|c| !c.is_empty())
            .or_else(|| {
                env.error_code
                    .as_ref()
                    .map(text)
                    .filter(|c| !c.is_empty())
                    .map(|c| format!("http_{c}"))
            })
            .unwrap_or_else(|| format!("http_{status}"));
        let message = match (error.is_empty(), info.is_empty()) {
            (false, false) => format!("{error} ({info})"),
            (false, true) => error,
            (true, false) => info,
            (true, true) => status_reason(status),
        };
        if !message.is_empty() {
            return ErrorReport {
                code,
                message: bounded(&message),
            };
        }
    }
    let text = String::from_utf8_lossy(body);
    let excerpt = bounded(text.trim());
    let message = if excerpt.is_empty() {
        status_reason(status)
    } else {
        format!("{}: {excerpt}", status_reason(status))
    };
    ErrorReport {
        code: format!("http_{status}"),
        message,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Null => String::new(),
        other => other.to_string(),
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

/// Classifies a non-2xx answer (Pipedrive's "HTTP status codes" page): 429 slow
/// down; 5xx try later, except 501 (the endpoint does not exist, retrying can't
/// help); 404 and 410 (gone for good) are not found; everything else (400 bad
/// request, 401 bad token, 402 account not paid, 403 not allowed or a plan limit,
/// 405, 415 feature off, 422) is permanent. A 400 or 422 on an owner change is the
/// CRM refusing that one record, which [`refusal`] makes of it; here it can't be
/// told from a malformed request.
pub(super) fn error_for(status: u16, body: &[u8], retry_after: Option<Duration>) -> CrmError {
    let ErrorReport { code, message } = parse_error(status, body);
    match status {
        429 => CrmError::RateLimited { retry_after },
        404 | 410 => CrmError::NotFound(message),
        501 => CrmError::Permanent {
            status,
            code,
            message,
        },
        500..=599 => CrmError::Transient(format!("HTTP {status} {code}: {message}")),
        _ => CrmError::Permanent {
            status,
            code,
            message,
        },
    }
}

/// For a write to one record (an owner change): a 400 or 422 is Pipedrive refusing
/// this record's new data (an inactive or unknown owner, a validation failure), so
/// it becomes [`CrmError::Rejected`] with Pipedrive's words and the next record is
/// tried. Everything else is unchanged: a 403 (no permission to change owners) or
/// a 401 would fail every record alike.
pub(super) fn refusal(error: CrmError) -> CrmError {
    match error {
        CrmError::Permanent {
            status: 400 | 422,
            code,
            message,
        } => CrmError::Rejected { code, message },
        other => other,
    }
}

/// Whether a 2xx answer's envelope nevertheless says `success: false`.
pub(super) fn says_unsuccessful(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Verdict {
        #[serde(default)]
        success: Option<bool>,
    }
    serde_json::from_slice::<Verdict>(body).is_ok_and(|v| v.success == Some(false))
}

/// A 2xx whose envelope says `success: false` (Pipedrive's envelope carries its own
/// verdict): the answer is unusable, and retrying the same request won't change it.
pub(super) fn unsuccessful(status: u16, body: &[u8]) -> CrmError {
    let ErrorReport { code, message } = parse_error(status, body);
    CrmError::Permanent {
        status,
        code,
        message,
    }
}

// ---------------------------------------------------------------------------
// Rate-limit headers
// ---------------------------------------------------------------------------

/// What Pipedrive's rate-limit headers say about the token's current window
/// (documented: a 2-second window per token; `x-ratelimit-reset` counts seconds).
/// `x-ratelimit-limit` and `x-daily-requests-left` are not read: pacing needs to
/// know when the window is spent and when it starts over, not its size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct RateLimit {
    /// `x-ratelimit-remaining`: what is left of this window.
    pub remaining: Option<u64>,
    /// `x-ratelimit-reset`: until the window starts over.
    pub reset: Option<Duration>,
}

impl RateLimit {
    /// Reads the headers; absent or unreadable ones stay `None`.
    pub fn from_headers(headers: &HeaderMap, now: SystemTime) -> Self {
        let number = |name: &str| {
            header_text(headers, name)
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        Self {
            remaining: number("x-ratelimit-remaining").map(|v| v as u64),
            reset: number("x-ratelimit-reset").map(|v| reset_wait(v, now)),
        }
    }

    /// How long to hold every caller back before the next request, when the window
    /// is spent: sending into an exhausted window only earns a 429.
    pub fn pause(&self) -> Option<Duration> {
        match (self.remaining, self.reset) {
            (Some(0), Some(reset)) => Some(reset),
            _ => None,
        }
    }
}

/// From a successful answer's headers: how long to hold the token's requests
/// back because its window is spent (the transport's `quota_pause` hook).
pub(super) fn quota_pause(headers: &HeaderMap) -> Option<Duration> {
    RateLimit::from_headers(headers, SystemTime::now()).pause()
}

/// How long the CRM asked us to wait after a 429: `Retry-After` (seconds or an
/// HTTP date), else `x-ratelimit-reset`.
pub(super) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    retry_after_header(headers, now).or_else(|| RateLimit::from_headers(headers, now).reset)
}

/// Reads one answer the way the client does, for the fuzz targets
/// (`crates/fuzzing`, `fuzz/`), which must reach these private shapes: `body` as
/// every 2xx answer the client decodes (the `success: false` verdict first; user
/// and record pages in both paging styles, each page's next cursor or start fed
/// back as the client feeds it; one user, `me`, a created activity) with what it
/// then asks of them, and `status`, `body` and `headers` through the error and
/// rate-limit rules. Returns how many answer shapes `body` decoded as. Nothing here
/// may panic, whatever Pipedrive or a proxy in front of it sends.
pub fn read_every_answer(status: u16, headers: &HeaderMap, body: &[u8], now: SystemTime) -> usize {
    fn paged<T>(page: &Page<T>) {
        let _ = page.next_cursor();
        if let Some(start) = page.next_start(0) {
            let _ = page.next_start(start);
        }
    }
    let mut decoded = 0;
    if says_unsuccessful(body) {
        let _ = unsuccessful(200, body);
    }
    if let Ok(page) = serde_json::from_slice::<Page<RawUser>>(body) {
        decoded += 1;
        paged(&page);
        for user in page.into_items() {
            let _ = user.into_user();
        }
    }
    if let Ok(page) = serde_json::from_slice::<Page<RawRecord>>(body) {
        decoded += 1;
        paged(&page);
        for record in page.into_items() {
            for kind in [
                RecordKind::Lead,
                RecordKind::Person,
                RecordKind::Organization,
                RecordKind::Deal,
                RecordKind::Activity,
            ] {
                let _ = record.is_open(kind);
            }
            let _ = record.mentions("[offboard job");
        }
    }
    if let Ok(single) = serde_json::from_slice::<Single<RawUser>>(body) {
        decoded += 1;
        let _ = single.data.map(RawUser::into_user);
    }
    decoded += usize::from(serde_json::from_slice::<Single<Me>>(body).is_ok());
    decoded += usize::from(serde_json::from_slice::<Single<Created>>(body).is_ok());
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

    // --- users ---

    #[test]
    fn users_read_active_flag_and_either_admin_marker() {
        let legacy: RawUser = serde_json::from_str(
            r#"{"id":17,"name":"Ann Admin","email":"Ann@Example.com","active_flag":true,"is_admin":1}"#,
        )
        .unwrap();
        let u = legacy.into_user();
        assert_eq!(u.id, CrmId::from(17));
        assert_eq!(u.email, "Ann@Example.com");
        assert_eq!(u.status, UserStatus::Active);
        assert_eq!(u.role, UserRole::Admin);
        assert_eq!(u.reports_to, None);
        assert_eq!(u.deleted_at, None);

        let global: RawUser = serde_json::from_str(
            r#"{"id":18,"name":"G","email":"g@x","active_flag":true,
                "access":[{"app":"sales","admin":false},{"app":"global","admin":true}]}"#,
        )
        .unwrap();
        assert_eq!(global.into_user().role, UserRole::Admin);

        let sales_admin: RawUser = serde_json::from_str(
            r#"{"id":19,"email":"s@x","active_flag":false,"is_admin":0,
                "access":[{"app":"sales","admin":true,"permission_set_id":"p"}]}"#,
        )
        .unwrap();
        let u = sales_admin.into_user();
        assert_eq!(
            u.role,
            UserRole::User,
            "an app admin is not an account admin"
        );
        assert_eq!(u.status, UserStatus::Inactive);
        assert_eq!(u.name, "");
    }

    #[test]
    fn a_deleted_or_flagless_user_is_inactive() {
        let deleted: RawUser =
            serde_json::from_str(r#"{"id":5,"email":"d@x","active_flag":true,"is_deleted":true}"#)
                .unwrap();
        assert_eq!(deleted.into_user().status, UserStatus::Inactive);
        let bare: RawUser = serde_json::from_str(r#"{"id":6}"#).unwrap();
        assert_eq!(bare.into_user().status, UserStatus::Inactive);
    }

    #[test]
    fn find_with_no_hit_is_an_empty_list() {
        let page: Page<RawUser> =
            serde_json::from_str(r#"{"success":true,"data":null,"additional_data":null}"#).unwrap();
        assert!(page.next_cursor().is_none());
        assert_eq!(page.next_start(0), None);
        assert!(page.into_items().is_empty());
    }

    #[test]
    fn seat_change_and_me() {
        assert_eq!(
            serde_json::to_string(&SeatFlag { active_flag: false }).unwrap(),
            r#"{"active_flag":false}"#
        );
        let me: Single<Me> =
            serde_json::from_str(r#"{"success":true,"data":{"id":42,"company_id":7}}"#).unwrap();
        assert_eq!(me.data.unwrap().id, CrmId::from(42));
    }

    // --- records and paging ---

    #[test]
    fn v2_cursor_pages_until_next_cursor_is_null() {
        let first: Page<RawRecord> = serde_json::from_str(
            r#"{"success":true,"data":[{"id":1,"owner_id":9,"status":"open"}],
                "additional_data":{"next_cursor":"eyJpZCI6MX0"}}"#,
        )
        .unwrap();
        assert_eq!(first.next_cursor().as_deref(), Some("eyJpZCI6MX0"));
        let last: Page<RawRecord> = serde_json::from_str(
            r#"{"success":true,"data":[{"id":2,"owner_id":9}],"additional_data":{"next_cursor":null}}"#,
        )
        .unwrap();
        assert_eq!(last.next_cursor(), None);
        let blank: Page<RawRecord> =
            serde_json::from_str(r#"{"data":[],"additional_data":{"next_cursor":" "}}"#).unwrap();
        assert_eq!(blank.next_cursor(), None);
    }

    #[test]
    fn v1_offset_pages_nested_or_flat() {
        let nested: Page<RawRecord> = serde_json::from_str(
            r#"{"success":true,"data":[{"id":"adf21080-0e10-11eb-879b-05d71fb426ec","owner_id":9}],
                "additional_data":{"pagination":{"start":0,"limit":1,"more_items_in_collection":true,"next_start":1}}}"#,
        )
        .unwrap();
        assert_eq!(nested.next_start(0), Some(1));
        let flat: Page<RawRecord> = serde_json::from_str(
            r#"{"data":[{"id":"a"},{"id":"b"}],"additional_data":{"start":10,"limit":2,"more_items_in_collection":true}}"#,
        )
        .unwrap();
        assert_eq!(
            flat.next_start(10),
            Some(12),
            "no next_start: after what came"
        );
        let last: Page<RawRecord> = serde_json::from_str(
            r#"{"data":[{"id":"c"}],"additional_data":{"pagination":{"more_items_in_collection":false}}}"#,
        )
        .unwrap();
        assert_eq!(last.next_start(12), None);
        let stuck: Page<RawRecord> = serde_json::from_str(
            r#"{"data":[{"id":"d"}],"additional_data":{"more_items_in_collection":true,"next_start":3}}"#,
        )
        .unwrap();
        assert_eq!(stuck.next_start(5), Some(6), "paging never goes backwards");
        let empty_but_more: Page<RawRecord> = serde_json::from_str(
            r#"{"data":[],"additional_data":{"more_items_in_collection":true}}"#,
        )
        .unwrap();
        assert_eq!(empty_but_more.next_start(0), None);
    }

    /// Found by review while writing the `crm_responses` fuzz target (input in
    /// `fuzz/regressions/crm_responses/`): the client feeds `next_start` back as
    /// the next page's `start`, and a `next_start` of u64::MAX overflowed there.
    #[test]
    fn an_offset_at_the_end_of_u64_ends_the_listing() {
        let page: Page<RawRecord> = serde_json::from_str(
            r#"{"data":[{"id":1}],"additional_data":{"more_items_in_collection":true,"next_start":18446744073709551615}}"#,
        )
        .unwrap();
        let start = page.next_start(0).unwrap();
        assert_eq!(start, u64::MAX);
        assert_eq!(page.next_start(start), None);
        let flat: Page<RawRecord> = serde_json::from_str(
            r#"{"data":[{"id":1}],"additional_data":{"more_items_in_collection":true}}"#,
        )
        .unwrap();
        assert_eq!(flat.next_start(u64::MAX - 1), Some(u64::MAX));
    }

    #[test]
    fn what_open_means_per_kind() {
        let rec = |json: &str| serde_json::from_str::<RawRecord>(json).unwrap();
        assert!(rec(r#"{"id":1,"status":"open"}"#).is_open(RecordKind::Deal));
        assert!(!rec(r#"{"id":1,"status":"won"}"#).is_open(RecordKind::Deal));
        assert!(!rec(r#"{"id":1,"status":"lost"}"#).is_open(RecordKind::Deal));
        assert!(!rec(r#"{"id":1,"status":"deleted"}"#).is_open(RecordKind::Deal));
        assert!(rec(r#"{"id":1}"#).is_open(RecordKind::Deal));
        assert!(rec(r#"{"id":1,"done":false}"#).is_open(RecordKind::Activity));
        assert!(!rec(r#"{"id":1,"done":true}"#).is_open(RecordKind::Activity));
        assert!(!rec(r#"{"id":1,"done":1}"#).is_open(RecordKind::Activity));
        assert!(rec(r#"{"id":"u","is_archived":false}"#).is_open(RecordKind::Lead));
        assert!(!rec(r#"{"id":"u","is_archived":true}"#).is_open(RecordKind::Lead));
        assert!(rec(r#"{"id":1}"#).is_open(RecordKind::Person));
        assert!(rec(r#"{"id":1}"#).is_open(RecordKind::Organization));
        assert!(!rec(r#"{"id":1,"is_deleted":true}"#).is_open(RecordKind::Person));
    }

    #[test]
    fn ids_and_owners_in_every_spelling() {
        let lead: RawRecord = serde_json::from_str(
            r#"{"id":"adf21080-0e10-11eb-879b-05d71fb426ec","owner_id":101,"is_archived":false}"#,
        )
        .unwrap();
        assert_eq!(lead.id.as_str(), "adf21080-0e10-11eb-879b-05d71fb426ec");
        assert_eq!(lead.owner_id, Some(CrmId::from(101)));
        let v1: RawRecord =
            serde_json::from_str(r#"{"id":7,"owner_id":{"id":102,"name":"Bo"}}"#).unwrap();
        assert_eq!(v1.owner_id, Some(CrmId::from(102)));
        let value: RawRecord =
            serde_json::from_str(r#"{"id":7,"owner_id":{"value":103}}"#).unwrap();
        assert_eq!(value.owner_id, Some(CrmId::from(103)));
        let none: RawRecord = serde_json::from_str(r#"{"id":7,"owner_id":null}"#).unwrap();
        assert_eq!(none.owner_id, None);
    }

    #[test]
    fn activities_are_found_by_subject_or_note() {
        let a: RawRecord = serde_json::from_str(
            r#"{"id":3,"subject":"Deactivate bo@x","note":"<p>job [offboard:abc]</p>","done":false}"#,
        )
        .unwrap();
        assert!(a.mentions("[offboard:abc]"));
        assert!(a.mentions("Deactivate"));
        assert!(!a.mentions("[offboard:xyz]"));
    }

    #[test]
    fn new_activity_body() {
        let body = NewActivity {
            subject: subject_of("\n  Deactivate bo@x in Pipedrive  \nmore text [offboard:abc]"),
            owner_id: 17,
            due_date: due_day("2026-12-03T17:00:00-08:00"),
            note: "Deactivate bo@x in Pipedrive\nmore text [offboard:abc]",
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["subject"], "Deactivate bo@x in Pipedrive");
        assert_eq!(json["owner_id"], 17);
        assert_eq!(
            json["due_date"], "2026-12-03",
            "the day as written, not UTC's"
        );
        assert!(json.get("type").is_none(), "the account's default type");
        let without = NewActivity {
            subject: subject_of(""),
            owner_id: 1,
            due_date: None,
            note: "",
        };
        let json = serde_json::to_value(&without).unwrap();
        assert!(json.get("due_date").is_none());
        assert_eq!(json["subject"], "offboard");
        assert_eq!(
            subject_of(&"é".repeat(400)).chars().count(),
            SUBJECT_MAX_CHARS
        );
    }

    #[test]
    fn due_days() {
        assert_eq!(
            due_day("2026-12-03T00:30:00Z").as_deref(),
            Some("2026-12-03")
        );
        assert_eq!(due_day("2026-12-03").as_deref(), Some("2026-12-03"));
        assert_eq!(due_day("next tuesday"), None);
    }

    #[test]
    fn owner_change_body() {
        let body = OwnerChange { owner_id: 102 };
        assert_eq!(serde_json::to_string(&body).unwrap(), r#"{"owner_id":102}"#);
    }

    // --- errors ---

    const FORBIDDEN_OWNER: &str = r#"{"success":false,"error":"You do not have permission to change the owner.",
        "error_info":"Please check developers.pipedrive.com for more information about Pipedrive API.",
        "data":null,"additional_data":null}"#;

    #[test]
    fn envelope_gives_error_and_drops_the_boilerplate() {
        let r = parse_error(403, FORBIDDEN_OWNER.as_bytes());
        assert_eq!(r.code, "http_403");
        assert_eq!(r.message, "You do not have permission to change the owner.");
    }

    #[test]
    fn codes_come_from_code_then_error_code() {
        let v2 = r#"{"success":false,"error":"Validation failed: owner_id: user is not active","code":"ERR_SCHEMA_VALIDATION_FAILED"}"#;
        let r = parse_error(400, v2.as_bytes());
        assert_eq!(r.code, "ERR_SCHEMA_VALIDATION_FAILED");
        assert_eq!(r.message, "Validation failed: owner_id: user is not active");
        let unauthorized = r#"{"success":false,"error":"unauthorized access","errorCode":401}"#;
        let r = parse_error(401, unauthorized.as_bytes());
        assert_eq!(r.code, "http_401");
        assert_eq!(r.message, "unauthorized access");
        let info = r#"{"success":false,"error":"Bad request","error_info":"owner_id must be an active user"}"#;
        assert_eq!(
            parse_error(400, info.as_bytes()).message,
            "Bad request (owner_id must be an active user)"
        );
    }

    #[test]
    fn non_envelope_bodies_fall_back_to_the_status() {
        let r = parse_error(502, b"<html>Bad gateway</html>");
        assert_eq!(r.code, "http_502");
        assert_eq!(r.message, "HTTP 502 Bad Gateway: <html>Bad gateway</html>");
        assert_eq!(parse_error(401, b"").message, "HTTP 401 Unauthorized");
        assert_eq!(parse_error(404, b"{}").message, "HTTP 404 Not Found");
        let long = "x".repeat(5000);
        assert!(parse_error(500, long.as_bytes()).message.len() < 400);
    }

    #[test]
    fn statuses_map_to_what_the_caller_should_do() {
        let wait = Some(Duration::from_secs(2));
        assert!(
            matches!(error_for(429, b"", wait), CrmError::RateLimited { retry_after } if retry_after == wait)
        );
        for status in [500, 502, 503, 504] {
            assert!(
                matches!(error_for(status, b"", None), CrmError::Transient(_)),
                "{status}"
            );
        }
        for status in [404, 410] {
            assert!(
                matches!(error_for(status, b"", None), CrmError::NotFound(_)),
                "{status}"
            );
        }
        for status in [400, 401, 402, 403, 405, 415, 422, 501] {
            assert!(
                matches!(error_for(status, b"", None), CrmError::Permanent { status: s, .. } if s == status),
                "{status}"
            );
        }
        match error_for(403, FORBIDDEN_OWNER.as_bytes(), None) {
            CrmError::Permanent { message, .. } => assert!(message.contains("permission")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refused_owner_change_is_rejected_with_pipedrives_words() {
        let body = r#"{"success":false,"error":"Owner is not active","code":"ERR_INVALID_OWNER"}"#;
        match refusal(error_for(400, body.as_bytes(), None)) {
            CrmError::Rejected { code, message } => {
                assert_eq!(code, "ERR_INVALID_OWNER");
                assert_eq!(message, "Owner is not active");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            refusal(error_for(422, b"", None)),
            CrmError::Rejected { .. }
        ));
        assert!(matches!(
            refusal(error_for(403, FORBIDDEN_OWNER.as_bytes(), None)),
            CrmError::Permanent { status: 403, .. }
        ));
        assert!(matches!(
            refusal(error_for(404, b"", None)),
            CrmError::NotFound(_)
        ));
    }

    #[test]
    fn success_false_in_a_2xx_is_permanent() {
        let body = r#"{"success":false,"error":"Something odd"}"#;
        assert!(
            matches!(unsuccessful(200, body.as_bytes()), CrmError::Permanent { status: 200, message, .. } if message == "Something odd")
        );
        assert!(says_unsuccessful(body.as_bytes()));
        assert!(!says_unsuccessful(br#"{"success":true,"data":null}"#));
        assert!(!says_unsuccessful(b""), "an empty 2xx is no verdict");
        assert!(!says_unsuccessful(b"[1,2]"));
    }

    // --- rate limits ---

    #[test]
    fn rate_limit_headers_are_read() {
        let h = headers(&[
            ("x-ratelimit-limit", "40"),
            ("x-ratelimit-remaining", "39"),
            ("x-ratelimit-reset", "2"),
            ("x-daily-requests-left", "9999"),
        ]);
        let r = RateLimit::from_headers(&h, now());
        assert_eq!(
            r,
            RateLimit {
                remaining: Some(39),
                reset: Some(Duration::from_secs(2)),
            }
        );
        assert_eq!(r.pause(), None, "budget left: no pause");
        assert_eq!(quota_pause(&h), None);
        let spent = RateLimit::from_headers(
            &headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1.5")]),
            now(),
        );
        assert_eq!(spent.pause(), Some(Duration::from_millis(1500)));
        assert_eq!(
            quota_pause(&headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "2")
            ])),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            RateLimit::from_headers(&headers(&[]), now()),
            RateLimit::default()
        );
        let junk = RateLimit::from_headers(
            &headers(&[
                ("x-ratelimit-remaining", "-1"),
                ("x-ratelimit-reset", "soon"),
            ]),
            now(),
        );
        assert_eq!(junk, RateLimit::default());
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(retry_after(&headers(&[]), now()), None);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")]), now()),
            Some(Duration::from_secs(7))
        );
        // 2027-01-15T08:00:10Z is 1_800_000_010.
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Fri, 15 Jan 2027 08:00:10 GMT")]),
                now()
            ),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after(&headers(&[("x-ratelimit-reset", "2")]), now()),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&headers(&[("x-ratelimit-reset", "1800000005")]), now()),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "3"), ("x-ratelimit-reset", "9")]),
                now()
            ),
            Some(Duration::from_secs(3)),
            "Retry-After wins"
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "soon")]), now()),
            None
        );
    }
}
