//! Salesforce's JSON shapes, SOQL literals, error array and `Sforce-Limit-Info`
//! header, kept in one place so the rest of the client deals in [`CrmUser`],
//! [`CrmId`] and [`CrmError`] only. Pure functions and serde types: no IO, so
//! every rule here is unit-tested without a server. The facts and their sources
//! are listed in the parent module.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    crm::{
        contract::{CrmError, WriteOutcome},
        transport::{header_text, retry_after_header, status_reason},
    },
    domain::{CrmId, CrmUser, UserRole, UserStatus},
};

// ---------------------------------------------------------------------------
// SOQL
// ---------------------------------------------------------------------------

/// `text` as the inside of a single-quoted SOQL string literal: `\` and `'` are
/// reserved and take a backslash, and so do the control characters SOQL has an
/// escape for (an e-mail never holds one, but a literal must never end early).
pub(super) fn soql_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            other => out.push(other),
        }
    }
    out
}

/// `text` for the inside of a `LIKE '%…%'` literal: escaped as any literal, and
/// `%` and `_` taken literally rather than as wildcards.
pub(super) fn soql_like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in soql_escape(text).chars() {
        match c {
            '%' => out.push_str("\\%"),
            '_' => out.push_str("\\_"),
            other => out.push(other),
        }
    }
    out
}

/// Whether `id` can be a Salesforce id: letters and digits only (15 or 18 of
/// them in a real org). Anything else names nothing and must reach neither a
/// path nor a query; the length is left for Salesforce to judge.
pub(super) fn plausible_id(id: &CrmId) -> bool {
    let s = id.as_str();
    !s.is_empty() && s.len() <= 18 && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The User fields every user query selects: what [`SfUser::into_user`] reads.
const USER_FIELDS: &str = "Id, Name, Email, IsActive, ManagerId, UserType, Profile.Name, Profile.PermissionsModifyAllData";

/// The users whose e-mail is `email` (Salesforce compares case-insensitively).
pub(super) fn user_by_email(email: &str) -> String {
    format!(
        "SELECT {USER_FIELDS} FROM User WHERE Email = '{}' ORDER BY Id",
        soql_escape(email)
    )
}

/// The user with id `id`.
pub(super) fn user_by_id(id: &CrmId) -> String {
    format!(
        "SELECT {USER_FIELDS} FROM User WHERE Id = '{}' ORDER BY Id",
        soql_escape(id.as_str())
    )
}

/// Every licensed internal user (see the parent module for why only `Standard`).
pub(super) fn standard_users() -> String {
    format!("SELECT {USER_FIELDS} FROM User WHERE UserType = 'Standard' ORDER BY Id")
}

/// Every record of `object` owned by `owner`, open or not.
pub(super) fn owned_by(object: SObject, owner: &CrmId) -> String {
    let open = object
        .open_field()
        .map(|f| format!(", {f}"))
        .unwrap_or_default();
    format!(
        "SELECT Id, OwnerId{open} FROM {} WHERE OwnerId = '{}' ORDER BY Id",
        object.name(),
        soql_escape(owner.as_str())
    )
}

/// The tasks of `owner` whose Subject contains `marker`.
pub(super) fn tasks_with_marker(owner: &CrmId, marker: &str) -> String {
    format!(
        "SELECT Id, IsClosed, Subject FROM Task WHERE OwnerId = '{}' AND Subject LIKE '%{}%' ORDER BY Id",
        soql_escape(owner.as_str()),
        soql_like_escape(marker)
    )
}

// ---------------------------------------------------------------------------
// Query answers
// ---------------------------------------------------------------------------

/// One batch of a query: `{"totalSize","done","records":[…],"nextRecordsUrl"?}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct QueryPage<T> {
    #[serde(default)]
    pub done: Option<bool>,
    #[serde(default = "Vec::new")]
    pub records: Vec<T>,
    #[serde(default)]
    pub next_records_url: Option<String>,
}

impl<T> QueryPage<T> {
    /// Where the next batch is, `None` after the last one. `previous` is the
    /// locator this page was fetched with: one that comes back again, a batch
    /// that says "not done" without saying where the rest is, or a locator that
    /// leaves the instance's data API would lose records or loop, so each is an
    /// error rather than a silent end.
    pub fn next(&self, previous: Option<&str>) -> Result<Option<String>, CrmError> {
        let next = self
            .next_records_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty());
        // `done` is always sent; should it be missing, the locator decides.
        let done = self.done.unwrap_or(next.is_none());
        if done {
            return Ok(None);
        }
        let Some(next) = next else {
            return Err(unusable(
                "the query is not done but names no nextRecordsUrl",
            ));
        };
        if !next.starts_with("/services/data/") || next.contains("..") {
            return Err(unusable(&format!(
                "nextRecordsUrl {next:?} is not a path of this instance's data API"
            )));
        }
        if previous == Some(next) {
            return Err(unusable(&format!(
                "nextRecordsUrl {next:?} came back again"
            )));
        }
        Ok(Some(next.to_owned()))
    }
}

fn unusable(message: &str) -> CrmError {
    CrmError::Permanent {
        status: 200,
        code: "unreadable_response".to_owned(),
        message: message.to_owned(),
    }
}

/// A User row, with its Profile relationship (`null` when not visible).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SfUser {
    pub id: CrmId,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub manager_id: Option<String>,
    #[serde(default)]
    pub profile: Option<Profile>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Profile {
    #[serde(default)]
    pub permissions_modify_all_data: Option<bool>,
}

impl SfUser {
    /// The e-mail, trimmed; empty when Salesforce has none.
    pub fn email(&self) -> &str {
        self.email.as_deref().map(str::trim).unwrap_or_default()
    }

    /// The seat as offboard sees it. "Modify All Data" on the profile is what
    /// makes an org administrator (the System Administrator profile has it), so
    /// it is what the admin guard reads. Users are never deleted in Salesforce.
    pub fn into_user(self) -> CrmUser {
        let admin = self
            .profile
            .as_ref()
            .and_then(|p| p.permissions_modify_all_data)
            == Some(true);
        CrmUser {
            email: self.email().to_owned(),
            id: self.id,
            name: self.name.map(|n| n.trim().to_owned()).unwrap_or_default(),
            status: if self.is_active == Some(true) {
                UserStatus::Active
            } else {
                UserStatus::Inactive
            },
            role: if admin {
                UserRole::Admin
            } else {
                UserRole::User
            },
            reports_to: self
                .manager_id
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty())
                .map(CrmId::from),
            team_name: None,
            deleted_at: None,
        }
    }
}

/// Of the users a by-e-mail query returned, the one whose address is `wanted`
/// ignoring case: an active one first, then the lowest id.
pub(super) fn pick_by_email(users: Vec<SfUser>, wanted: &str) -> Option<SfUser> {
    users
        .into_iter()
        .filter(|u| u.email().eq_ignore_ascii_case(wanted))
        .min_by(|a, b| {
            (a.is_active != Some(true), a.id.as_str())
                .cmp(&(b.is_active != Some(true), b.id.as_str()))
        })
}

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

/// The Salesforce objects behind offboard's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SObject {
    Lead,
    Contact,
    Account,
    Opportunity,
    Task,
    Case,
}

impl SObject {
    /// The API name (`attributes.type`, the SOQL `FROM`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Lead => "Lead",
            Self::Contact => "Contact",
            Self::Account => "Account",
            Self::Opportunity => "Opportunity",
            Self::Task => "Task",
            Self::Case => "Case",
        }
    }

    /// The boolean that says a record is no longer open; contacts and accounts
    /// have none (always open).
    pub fn open_field(self) -> Option<&'static str> {
        match self {
            Self::Lead => Some("IsConverted"),
            Self::Opportunity | Self::Task | Self::Case => Some("IsClosed"),
            Self::Contact | Self::Account => None,
        }
    }
}

/// A row of an owned-records query (or of a task search).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SfRecord {
    pub id: CrmId,
    #[serde(default)]
    pub owner_id: Option<String>,
    #[serde(default)]
    pub is_converted: Option<bool>,
    #[serde(default)]
    pub is_closed: Option<bool>,
    #[serde(default)]
    pub subject: Option<String>,
}

impl SfRecord {
    /// The owner, when set.
    pub fn owner(&self) -> Option<CrmId> {
        self.owner_id
            .as_deref()
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(CrmId::from)
    }

    /// A lead until converted; an opportunity, task or case until closed (a
    /// row without the flag is taken as open: moving a closed record is
    /// harmless, leaving an open one with a departed owner is not); contacts and
    /// accounts always.
    pub fn is_open(&self, object: SObject) -> bool {
        match object {
            SObject::Lead => self.is_converted != Some(true),
            SObject::Opportunity | SObject::Task | SObject::Case => self.is_closed != Some(true),
            SObject::Contact | SObject::Account => true,
        }
    }

    /// Whether the Subject contains `marker` (the LIKE filter is re-checked
    /// here: its wildcards and case rules are Salesforce's).
    pub fn mentions(&self, marker: &str) -> bool {
        self.subject.as_deref().is_some_and(|s| s.contains(marker))
    }
}

// ---------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------

/// `PATCH …/composite/sobjects`: the new owner for each id, each record its own
/// save (`allOrNone: false`), so one refused record does not roll back others.
pub(super) fn owner_collection(records: &[(SObject, CrmId)], owner: &CrmId) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(object, id)| {
            json!({
                "attributes": { "type": object.name() },
                "id": id.as_str(),
                "OwnerId": owner.as_str(),
            })
        })
        .collect();
    json!({ "allOrNone": false, "records": records })
}

/// One `SaveResult` of a collection write, or the answer of a single create.
#[derive(Debug, Deserialize)]
pub(super) struct SaveResult {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub success: bool,
    #[serde(default)]
    pub errors: Vec<SaveError>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SaveError {
    #[serde(default)]
    pub status_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// Codes that say the record is not there (any more) to be written.
const GONE: &[&str] = &[
    "ENTITY_IS_DELETED",
    "INVALID_CROSS_REFERENCE_KEY",
    "NOT_FOUND",
    "INVALID_ID_FIELD",
    "MALFORMED_ID",
];

/// Codes where the same write may well succeed a moment later.
const PASSING: &[&str] = &["UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"];

impl SaveError {
    /// What this error means for the record it is about: gone, a passing
    /// failure, or refused (everything else: an inactive new owner, a
    /// validation rule, missing access to the new owner…). A "gone" code about
    /// the `OwnerId` field is about the new owner, not the record: refused.
    pub fn verdict(&self) -> CrmError {
        let code = self
            .status_code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .unwrap_or("UNKNOWN_ERROR")
            .to_owned();
        let message = bounded(
            self.message
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .unwrap_or("Salesforce refused the record"),
        );
        let about_owner = self
            .fields
            .iter()
            .any(|f| f.eq_ignore_ascii_case("OwnerId"));
        if GONE.contains(&code.as_str()) && !about_owner {
            CrmError::NotFound(format!("{code}: {message}"))
        } else if PASSING.contains(&code.as_str()) {
            CrmError::Transient(format!("{code}: {message}"))
        } else {
            CrmError::Rejected { code, message }
        }
    }
}

/// One outcome per id sent, in the order sent: Salesforce answers the
/// `SaveResult`s in request order. A record without a result (a short answer)
/// has not certainly moved: a transient failure, so the worker re-lists.
pub(super) fn collection_outcomes(ids: &[CrmId], answer: &[SaveResult]) -> Vec<WriteOutcome> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let result = match answer.get(i) {
                Some(r) if r.success => Ok(()),
                Some(r) => Err(r.errors.first().map_or_else(
                    || CrmError::Rejected {
                        code: "UNKNOWN_ERROR".to_owned(),
                        message: "Salesforce did not save the record and gave no reason".to_owned(),
                    },
                    SaveError::verdict,
                )),
                None => Err(CrmError::Transient(format!(
                    "Salesforce's answer has no result for record {id}"
                ))),
            };
            WriteOutcome {
                id: id.clone(),
                result,
            }
        })
        .collect()
}

/// `PATCH …/sobjects/User/{id}`.
pub(super) fn user_active(active: bool) -> Value {
    json!({ "IsActive": active })
}

/// `POST …/sobjects/Task`: the admin's to-do.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct NewTaskBody<'a> {
    pub owner_id: &'a str,
    pub subject: String,
    pub description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_date: Option<String>,
    pub status: &'static str,
}

/// A Task's Subject holds at most this many characters.
pub(super) const SUBJECT_MAX_CHARS: usize = 255;

/// The marker inside a task's text (`[offboard job …]`): the last bracketed
/// part starting with `[offboard`.
pub(super) fn marker_in(content: &str) -> Option<&str> {
    let start = content.rfind("[offboard")?;
    let len = content[start..].find(']')?;
    Some(&content[start..=start + len])
}

/// The Subject for a task whose full text is `content`: its first non-empty
/// line, with the marker kept whole at its end. The Subject is the only text
/// field a query can filter (Description is a long text area), so `find_task`
/// finds the task by the marker here; the text before it is cut at a
/// character boundary when the whole would not fit.
pub(super) fn subject_of(content: &str) -> String {
    let line = content
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("offboard");
    let Some(marker) = marker_in(content).filter(|m| m.chars().count() < SUBJECT_MAX_CHARS) else {
        return line.chars().take(SUBJECT_MAX_CHARS).collect();
    };
    let text = line.replace(marker, "");
    let text = text.trim();
    let room = SUBJECT_MAX_CHARS.saturating_sub(marker.chars().count() + 1);
    if text.is_empty() || room < 2 {
        return marker.to_owned();
    }
    if text.chars().count() <= room {
        return format!("{text} {marker}");
    }
    let cut: String = text.chars().take(room - 1).collect();
    format!("{}… {marker}", cut.trim_end())
}

/// `ActivityDate` (a date, no time) for a due date: the calendar day it names,
/// as written; `None` when there is none or it can't be read (a task without
/// a date beats no task).
pub(super) fn activity_date(due: Option<&str>) -> Option<String> {
    let due = due?.trim();
    chrono::DateTime::parse_from_rfc3339(due)
        .map(|t| t.date_naive())
        .or_else(|_| chrono::NaiveDate::parse_from_str(due, "%Y-%m-%d"))
        .ok()
        .map(|d| d.format("%Y-%m-%d").to_string())
}

/// `GET /services/oauth2/userinfo`: who the token acts as.
#[derive(Debug, Deserialize)]
pub(super) struct UserInfo {
    #[serde(default)]
    pub user_id: Option<String>,
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// One entry of the error array: `[{"message","errorCode","fields"?}]`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorEntry {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error_code: Option<String>,
}

/// The CRM's own words about a failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ErrorReport {
    /// The first `errorCode` (e.g. `MALFORMED_QUERY`), else `http_<status>`.
    pub code: String,
    /// The first `message`, else the status and a bounded excerpt of the body.
    pub message: String,
}

/// Reads the error array (a lone object is read too); falls back to the status
/// and a bounded excerpt of the body when the answer is neither (a proxy's HTML
/// page, an empty body).
pub(super) fn parse_error(status: u16, body: &[u8]) -> ErrorReport {
    let entries: Option<Vec<ErrorEntry>> = serde_json::from_slice::<Vec<ErrorEntry>>(body)
        .ok()
        .or_else(|| {
            serde_json::from_slice::<ErrorEntry>(body)
                .ok()
                .map(|e| vec![e])
        });
    if let Some(first) = entries.as_ref().and_then(|e| e.first()) {
        let code = first
            .error_code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        let message = first
            .message
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty());
        if code.is_some() || message.is_some() {
            return ErrorReport {
                code: code.map_or_else(|| format!("http_{status}"), str::to_owned),
                message: message.map_or_else(|| status_reason(status), bounded),
            };
        }
    }
    let text = String::from_utf8_lossy(body);
    let excerpt = bounded(text.trim());
    ErrorReport {
        code: format!("http_{status}"),
        message: if excerpt.is_empty() {
            status_reason(status)
        } else {
            format!("{}: {excerpt}", status_reason(status))
        },
    }
}

/// How long a spent 24-hour allocation holds the token back: Salesforce counts
/// over a rolling 24 hours and says nothing about when calls free up, so the
/// call is handed back (far above any `max_retry_after`) and the job retried
/// later.
pub(super) const ALLOCATION_PAUSE: Duration = Duration::from_secs(3600);

/// How long a refused concurrent long-running request waits: those free up as
/// other requests finish.
pub(super) const CONCURRENCY_PAUSE: Duration = Duration::from_secs(30);

/// Classifies a non-2xx answer: 403 `REQUEST_LIMIT_EXCEEDED` is a spent
/// allocation (rate limited, a long wait); 429 slow down; 5xx try later; 404
/// not found; everything else (400 `MALFORMED_QUERY`/`INVALID_FIELD`, 401
/// `INVALID_SESSION_ID`, other 403s: a permission the user lacks) is permanent.
pub(super) fn error_for(status: u16, body: &[u8], retry_after: Option<Duration>) -> CrmError {
    let ErrorReport { code, message } = parse_error(status, body);
    match status {
        403 if code == "REQUEST_LIMIT_EXCEEDED" => {
            // The same code reports too many concurrent long-running requests,
            // which clear in seconds rather than hours.
            let wait = if message.to_ascii_lowercase().contains("concurrent") {
                CONCURRENCY_PAUSE
            } else {
                ALLOCATION_PAUSE
            };
            CrmError::RateLimited {
                retry_after: Some(retry_after.unwrap_or(wait)),
            }
        }
        429 => CrmError::RateLimited { retry_after },
        404 => CrmError::NotFound(format!("{code}: {message}")),
        500..=599 => CrmError::Transient(format!("HTTP {status} {code}: {message}")),
        _ => CrmError::Permanent {
            status,
            code,
            message,
        },
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

// ---------------------------------------------------------------------------
// Limit headers
// ---------------------------------------------------------------------------

/// `Sforce-Limit-Info: api-usage=<used>/<max>`: the org's calls in the last 24
/// hours and its allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ApiUsage {
    pub used: u64,
    pub max: u64,
}

impl ApiUsage {
    /// Reads `api-usage` from the header; other parts (`per-app-api-usage`,
    /// `api-bursts`) are skipped. `None` when absent or unreadable.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        Self::parse(header_text(headers, "sforce-limit-info")?)
    }

    /// The `api-usage=n/m` part of a header value.
    pub fn parse(value: &str) -> Option<Self> {
        value.split([';', ',']).find_map(|part| {
            let (key, usage) = part.split_once('=')?;
            if !key.trim().eq_ignore_ascii_case("api-usage") {
                return None;
            }
            let (used, max) = usage.split_once('/')?;
            let used = used.trim().parse().ok()?;
            let max = max.trim().parse().ok()?;
            (max > 0).then_some(Self { used, max })
        })
    }

    /// Calls are used up (Salesforce may still serve some beyond the
    /// allocation, but the 403 is near).
    pub fn spent(&self) -> bool {
        self.used >= self.max
    }
}

/// From an answer's headers: hold the token back once the org's allocation is
/// used up, rather than spend the last calls other integrations need.
pub(super) fn quota_pause(headers: &HeaderMap) -> Option<Duration> {
    ApiUsage::from_headers(headers)
        .filter(ApiUsage::spent)
        .map(|_| ALLOCATION_PAUSE)
}

/// Reads one answer the way the client does, for the fuzz targets
/// (`crates/fuzzing`, `fuzz/`), which must reach these private shapes: `body` as
/// every 2xx answer the client decodes (user and record query batches with their
/// locators, the SaveResults of a collection write for a few ids, one SaveResult,
/// the userinfo answer) with what it then asks of them, and `status`, `body` and
/// `headers` through the error and limit rules (`Retry-After` is the transport's
/// reader, as in the client's dialect). Returns how many answer shapes `body`
/// decoded as. Nothing here may panic, whatever Salesforce or a proxy in front of
/// it sends.
pub fn read_every_answer(status: u16, headers: &HeaderMap, body: &[u8], now: SystemTime) -> usize {
    fn located<T>(page: &QueryPage<T>) {
        if let Ok(Some(next)) = page.next(None) {
            let _ = page.next(Some(&next));
        }
    }
    let mut decoded = 0;
    if let Ok(page) = serde_json::from_slice::<QueryPage<SfUser>>(body) {
        decoded += 1;
        located(&page);
        let wanted = page.records.first().map(|u| u.email().to_owned());
        if let Some(wanted) = wanted {
            let _ = pick_by_email(page.records.clone(), &wanted);
        }
        for user in page.records {
            let _ = user.into_user();
        }
    }
    if let Ok(page) = serde_json::from_slice::<QueryPage<SfRecord>>(body) {
        decoded += 1;
        located(&page);
        for record in page.records {
            let _ = (record.owner(), plausible_id(&record.id));
            for object in [
                SObject::Lead,
                SObject::Contact,
                SObject::Account,
                SObject::Opportunity,
                SObject::Task,
                SObject::Case,
            ] {
                let _ = record.is_open(object);
            }
            let _ = record.mentions("[offboard job");
        }
    }
    if let Ok(answer) = serde_json::from_slice::<Vec<SaveResult>>(body) {
        decoded += 1;
        let ids: Vec<CrmId> = ["001000000000001AAA", "001000000000002AAA"]
            .into_iter()
            .map(CrmId::from)
            .collect();
        let _ = collection_outcomes(&ids, &answer);
    }
    decoded += usize::from(serde_json::from_slice::<SaveResult>(body).is_ok());
    decoded += usize::from(serde_json::from_slice::<UserInfo>(body).is_ok());
    let _ = quota_pause(headers);
    let retry_after = retry_after_header(headers, now);
    let error = error_for(status, body, retry_after);
    let _ = error.to_string();
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::crm::transport::{retry_after_header, test_headers as headers};

    // --- SOQL ---

    #[test]
    fn literals_escape_quotes_backslashes_and_controls() {
        assert_eq!(soql_escape("o'brien@example.com"), "o\\'brien@example.com");
        assert_eq!(soql_escape(r"a\b"), r"a\\b");
        assert_eq!(soql_escape(r"\'"), r"\\\'");
        assert_eq!(soql_escape("a\nb\tc\"d"), "a\\nb\\tc\\\"d");
        assert_eq!(soql_escape("plain@x.com"), "plain@x.com");
        assert_eq!(soql_escape("é"), "é");
        assert_eq!(soql_like_escape("50%_off'"), "50\\%\\_off\\'");
        assert_eq!(
            soql_like_escape("[offboard job 0190-ab]"),
            "[offboard job 0190-ab]"
        );
    }

    #[test]
    fn the_queries_keep_to_the_shapes_offboard_sends() {
        assert_eq!(
            user_by_email("o'hara@example.com"),
            "SELECT Id, Name, Email, IsActive, ManagerId, UserType, Profile.Name, Profile.PermissionsModifyAllData FROM User WHERE Email = 'o\\'hara@example.com' ORDER BY Id"
        );
        assert!(
            user_by_id(&CrmId::from("005xx0000012345AAA"))
                .ends_with("FROM User WHERE Id = '005xx0000012345AAA' ORDER BY Id")
        );
        assert!(standard_users().ends_with("FROM User WHERE UserType = 'Standard' ORDER BY Id"));
        let owner = CrmId::from("005A");
        assert_eq!(
            owned_by(SObject::Lead, &owner),
            "SELECT Id, OwnerId, IsConverted FROM Lead WHERE OwnerId = '005A' ORDER BY Id"
        );
        assert_eq!(
            owned_by(SObject::Account, &owner),
            "SELECT Id, OwnerId FROM Account WHERE OwnerId = '005A' ORDER BY Id"
        );
        assert_eq!(
            owned_by(SObject::Case, &owner),
            "SELECT Id, OwnerId, IsClosed FROM Case WHERE OwnerId = '005A' ORDER BY Id"
        );
        assert_eq!(
            tasks_with_marker(&owner, "[offboard job j1]"),
            "SELECT Id, IsClosed, Subject FROM Task WHERE OwnerId = '005A' AND Subject LIKE '%[offboard job j1]%' ORDER BY Id"
        );
    }

    #[test]
    fn ids_that_could_break_out_are_not_plausible() {
        assert!(plausible_id(&CrmId::from("005xx0000012345AAA")));
        assert!(plausible_id(&CrmId::from("005xx0000012345")));
        for bad in ["", "005' OR Id != '", "a/b", "0".repeat(19).as_str()] {
            assert!(!plausible_id(&CrmId::from(bad)), "{bad:?}");
        }
    }

    // --- answers ---

    #[test]
    fn pages_follow_the_locator_until_done() {
        let page: QueryPage<SfRecord> = serde_json::from_str(
            r#"{"totalSize":3,"done":false,"nextRecordsUrl":"/services/data/v66.0/query/01gRO0000016PIAYA2-2000","records":[]}"#,
        )
        .unwrap();
        assert_eq!(
            page.next(None).unwrap().as_deref(),
            Some("/services/data/v66.0/query/01gRO0000016PIAYA2-2000")
        );
        assert!(
            page.next(Some("/services/data/v66.0/query/01gRO0000016PIAYA2-2000"))
                .is_err(),
            "the same locator again would loop"
        );
        let last: QueryPage<SfRecord> =
            serde_json::from_str(r#"{"totalSize":3,"done":true,"records":[]}"#).unwrap();
        assert_eq!(last.next(None).unwrap(), None);
        let lost: QueryPage<SfRecord> =
            serde_json::from_str(r#"{"done":false,"records":[]}"#).unwrap();
        assert!(lost.next(None).is_err());
        let away: QueryPage<SfRecord> = serde_json::from_str(
            r#"{"done":false,"nextRecordsUrl":"https://evil.example/x","records":[]}"#,
        )
        .unwrap();
        assert!(away.next(None).is_err());
    }

    #[test]
    fn a_user_reads_active_admin_and_manager() {
        let u: SfUser = serde_json::from_str(
            r#"{"attributes":{"type":"User","url":"/services/data/v66.0/sobjects/User/005A"},
                "Id":"005A","Name":" Jane Doe ","Email":"Jane@Example.com","IsActive":true,
                "ManagerId":"005M","UserType":"Standard",
                "Profile":{"attributes":{"type":"Profile"},"Name":"System Administrator","PermissionsModifyAllData":true}}"#,
        )
        .unwrap();
        let user = u.into_user();
        assert_eq!(user.id, CrmId::from("005A"));
        assert_eq!(user.name, "Jane Doe");
        assert_eq!(user.status, UserStatus::Active);
        assert_eq!(user.role, UserRole::Admin);
        assert_eq!(user.reports_to, Some(CrmId::from("005M")));
        assert!(!user.is_deleted());
        let plain: SfUser = serde_json::from_str(
            r#"{"Id":"005B","Email":"b@x","IsActive":false,"ManagerId":null,"Profile":null}"#,
        )
        .unwrap();
        let user = plain.into_user();
        assert_eq!(user.status, UserStatus::Inactive);
        assert_eq!(user.role, UserRole::User);
        assert_eq!(user.reports_to, None);
    }

    #[test]
    fn the_email_match_ignores_case_and_prefers_an_active_user() {
        let users: Vec<SfUser> = serde_json::from_str(
            r#"[{"Id":"005A","Email":"jane@x.com","IsActive":false},
                {"Id":"005C","Email":"JANE@X.COM","IsActive":true},
                {"Id":"005B","Email":"janet@x.com","IsActive":true}]"#,
        )
        .unwrap();
        assert_eq!(
            pick_by_email(users, "Jane@x.com").map(|u| u.id),
            Some(CrmId::from("005C"))
        );
        assert!(pick_by_email(vec![], "a@x").is_none());
    }

    #[test]
    fn what_open_means_per_object() {
        let r = |json: &str| serde_json::from_str::<SfRecord>(json).unwrap();
        assert!(r(r#"{"Id":"1","IsConverted":false}"#).is_open(SObject::Lead));
        assert!(!r(r#"{"Id":"1","IsConverted":true}"#).is_open(SObject::Lead));
        for o in [SObject::Opportunity, SObject::Task, SObject::Case] {
            assert!(r(r#"{"Id":"1","IsClosed":false}"#).is_open(o));
            assert!(!r(r#"{"Id":"1","IsClosed":true}"#).is_open(o));
            assert!(r(r#"{"Id":"1"}"#).is_open(o));
        }
        assert!(r(r#"{"Id":"1"}"#).is_open(SObject::Contact));
        assert!(r(r#"{"Id":"1"}"#).is_open(SObject::Account));
        assert_eq!(
            r(r#"{"Id":"1","OwnerId":"005A"}"#).owner(),
            Some(CrmId::from("005A"))
        );
    }

    // --- writes ---

    #[test]
    fn the_collection_names_type_id_and_owner_per_record() {
        let body = owner_collection(
            &[
                (SObject::Opportunity, CrmId::from("006A")),
                (SObject::Opportunity, CrmId::from("006B")),
                (SObject::Case, CrmId::from("500C")),
            ],
            &CrmId::from("005N"),
        );
        assert_eq!(
            body,
            json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Opportunity"}, "id": "006A", "OwnerId": "005N"},
                {"attributes": {"type": "Opportunity"}, "id": "006B", "OwnerId": "005N"},
                {"attributes": {"type": "Case"}, "id": "500C", "OwnerId": "005N"}
            ]})
        );
    }

    #[test]
    fn save_results_map_in_request_order() {
        let answer: Vec<SaveResult> = serde_json::from_str(
            r#"[{"id":"001A","success":true,"errors":[]},
                {"success":false,"errors":[{"statusCode":"ENTITY_IS_DELETED","message":"entity is deleted","fields":[]}]},
                {"id":"001C","success":false,"errors":[{"statusCode":"INACTIVE_OWNER_OR_USER","message":"operation performed with inactive user","fields":[]}]},
                {"id":"001D","success":false,"errors":[{"statusCode":"INVALID_CROSS_REFERENCE_KEY","message":"invalid cross reference id","fields":["OwnerId"]}]},
                {"id":"001E","success":false,"errors":[{"statusCode":"UNABLE_TO_LOCK_ROW","message":"unable to obtain exclusive access"}]},
                {"id":"001F","success":false,"errors":[]}]"#,
        )
        .unwrap();
        let ids: Vec<CrmId> = ["001A", "001B", "001C", "001D", "001E", "001F", "001G"]
            .into_iter()
            .map(CrmId::from)
            .collect();
        let out = collection_outcomes(&ids, &answer);
        assert_eq!(out.iter().map(|o| o.id.clone()).collect::<Vec<_>>(), ids);
        assert!(out[0].result.is_ok());
        assert!(matches!(out[1].result, Err(CrmError::NotFound(_))));
        assert!(
            matches!(&out[2].result, Err(CrmError::Rejected { code, .. }) if code == "INACTIVE_OWNER_OR_USER")
        );
        assert!(
            matches!(&out[3].result, Err(CrmError::Rejected { code, .. }) if code == "INVALID_CROSS_REFERENCE_KEY"),
            "about the new owner, not the record"
        );
        assert!(matches!(out[4].result, Err(CrmError::Transient(_))));
        assert!(matches!(out[5].result, Err(CrmError::Rejected { .. })));
        assert!(matches!(out[6].result, Err(CrmError::Transient(_))));
    }

    #[test]
    fn the_subject_keeps_the_marker_whole() {
        assert_eq!(
            subject_of("Remove jane@example.com\n[offboard job j-1]"),
            "Remove jane@example.com [offboard job j-1]"
        );
        assert_eq!(
            subject_of("Short one. [offboard job j-1]"),
            "Short one. [offboard job j-1]"
        );
        let long = format!("{} [offboard job 0190abcd]", "é".repeat(400));
        let s = subject_of(&long);
        assert_eq!(s.chars().count(), SUBJECT_MAX_CHARS);
        assert!(s.ends_with("… [offboard job 0190abcd]"), "{s}");
        assert_eq!(subject_of(""), "offboard");
        assert_eq!(subject_of("x".repeat(300).as_str()).chars().count(), 255);
        assert_eq!(subject_of("[offboard job a]"), "[offboard job a]");
        assert_eq!(marker_in("a [offboard job 1] b"), Some("[offboard job 1]"));
        assert_eq!(marker_in("no marker"), None);
    }

    #[test]
    fn the_due_date_is_a_calendar_day() {
        assert_eq!(
            activity_date(Some("2026-12-03T17:00:00-08:00")).as_deref(),
            Some("2026-12-03")
        );
        assert_eq!(
            activity_date(Some("2026-12-04T01:00:00Z")).as_deref(),
            Some("2026-12-04")
        );
        assert_eq!(
            activity_date(Some("2026-12-03")).as_deref(),
            Some("2026-12-03")
        );
        assert_eq!(activity_date(Some("next tuesday")), None);
        assert_eq!(activity_date(None), None);
        let body = serde_json::to_value(NewTaskBody {
            owner_id: "005A",
            subject: "s".into(),
            description: "d",
            activity_date: None,
            status: "Not Started",
        })
        .unwrap();
        assert_eq!(
            body,
            json!({"OwnerId":"005A","Subject":"s","Description":"d","Status":"Not Started"})
        );
    }

    // --- errors ---

    #[test]
    fn the_error_array_gives_code_and_message() {
        let r = parse_error(
            400,
            br#"[{"message":"unexpected token: FORM","errorCode":"MALFORMED_QUERY"}]"#,
        );
        assert_eq!(r.code, "MALFORMED_QUERY");
        assert_eq!(r.message, "unexpected token: FORM");
        let lone = parse_error(
            401,
            br#"{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}"#,
        );
        assert_eq!(lone.code, "INVALID_SESSION_ID");
        let html = parse_error(502, b"<html>Bad gateway</html>");
        assert_eq!(html.code, "http_502");
        assert_eq!(
            html.message,
            "HTTP 502 Bad Gateway: <html>Bad gateway</html>"
        );
        assert_eq!(
            parse_error(500, b"").message,
            "HTTP 500 Internal Server Error"
        );
        assert_eq!(parse_error(500, b"[]").code, "http_500");
        assert!(parse_error(500, "x".repeat(5000).as_bytes()).message.len() < 400);
    }

    #[test]
    fn statuses_map_to_what_the_caller_should_do() {
        let limit = br#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        assert!(matches!(
            error_for(403, limit, None),
            CrmError::RateLimited { retry_after: Some(d) } if d == ALLOCATION_PAUSE
        ));
        let concurrent = br#"[{"message":"ConcurrentPerOrgLongTxn Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        assert!(matches!(
            error_for(403, concurrent, None),
            CrmError::RateLimited { retry_after: Some(d) } if d == CONCURRENCY_PAUSE
        ));
        let denied = br#"[{"message":"insufficient access rights on object id","errorCode":"INSUFFICIENT_ACCESS"}]"#;
        assert!(matches!(
            error_for(403, denied, None),
            CrmError::Permanent { status: 403, code, .. } if code == "INSUFFICIENT_ACCESS"
        ));
        let session =
            br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#;
        assert!(matches!(
            error_for(401, session, None),
            CrmError::Permanent { status: 401, code, .. } if code == "INVALID_SESSION_ID"
        ));
        assert!(matches!(
            error_for(
                404,
                br#"[{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]"#,
                None
            ),
            CrmError::NotFound(_)
        ));
        assert!(matches!(
            error_for(400, br#"[{"errorCode":"INVALID_FIELD","message":"No such column"}]"#, None),
            CrmError::Permanent { status: 400, code, .. } if code == "INVALID_FIELD"
        ));
        let wait = Some(Duration::from_secs(2));
        assert!(
            matches!(error_for(429, b"", wait), CrmError::RateLimited { retry_after } if retry_after == wait)
        );
        for status in [500, 502, 503] {
            assert!(error_for(status, b"", None).is_transient());
        }
    }

    // --- limits ---

    #[test]
    fn limit_info_is_read_in_its_forms() {
        let p = ApiUsage::parse;
        assert_eq!(
            p("api-usage=18/5000"),
            Some(ApiUsage {
                used: 18,
                max: 5000
            })
        );
        assert_eq!(
            p("api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)"),
            Some(ApiUsage {
                used: 25,
                max: 5000
            })
        );
        assert_eq!(
            p("per-app-api-usage=17/250(appName=x); api-usage=110018/100000; api-bursts=1/750"),
            Some(ApiUsage {
                used: 110_018,
                max: 100_000
            })
        );
        assert_eq!(
            p(" API-Usage = 7 / 10 "),
            Some(ApiUsage { used: 7, max: 10 })
        );
        for junk in [
            "",
            "api-usage=",
            "api-usage=5",
            "api-usage=a/b",
            "api-usage=1/0",
            "api-usage=-1/5",
            "per-app-api-usage=1/2",
        ] {
            assert_eq!(p(junk), None, "{junk:?}");
        }
        let h = headers(&[("sforce-limit-info", "api-usage=99/100")]);
        assert_eq!(
            ApiUsage::from_headers(&h),
            Some(ApiUsage { used: 99, max: 100 })
        );
        assert_eq!(quota_pause(&h), None);
        let spent = headers(&[("Sforce-Limit-Info", "api-usage=100/100")]);
        assert_eq!(quota_pause(&spent), Some(ALLOCATION_PAUSE));
        assert_eq!(quota_pause(&headers(&[])), None);
    }

    #[test]
    fn retry_after_is_the_standard_header() {
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(retry_after_header(&headers(&[]), now), None);
        assert_eq!(
            retry_after_header(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
    }
}
