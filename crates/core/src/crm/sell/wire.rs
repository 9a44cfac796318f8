//! Sell's JSON envelopes and HTTP error conventions, kept in one place so the rest
//! of the client deals in [`CrmUser`](crate::crm::CrmUser), [`Record`](crate::crm::Record)
//! and [`CrmError`] only. Pure functions: no IO, so every rule here is unit-tested.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use crate::crm::{
    contract::CrmError,
    transport::{reset_wait, retry_after_header, status_reason},
};

/// `{"data":{...},"meta":{...}}`
#[derive(Debug, Deserialize)]
pub(super) struct Single<T> {
    pub data: T,
}

/// `{"items":[{"data":...}],"meta":{"links":{"next_page":...}}}`
#[derive(Debug, Deserialize)]
pub(super) struct Page<T> {
    pub items: Vec<Single<T>>,
    #[serde(default)]
    pub meta: PageMeta,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct PageMeta {
    #[serde(default)]
    pub links: PageLinks,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct PageLinks {
    /// Absent (or null) on the last page.
    #[serde(default)]
    pub next_page: Option<String>,
}

impl<T> Page<T> {
    pub fn has_next(&self) -> bool {
        self.meta.links.next_page.is_some()
    }
}

/// A lead, contact, deal or task, reduced to what offboarding needs.
#[derive(Debug, Deserialize)]
pub(super) struct RawRecord {
    pub id: i64,
    #[serde(default)]
    pub owner_id: Option<i64>,
    /// Deals only.
    #[serde(default)]
    pub stage_id: Option<i64>,
    /// Tasks only.
    #[serde(default)]
    pub completed: Option<bool>,
}

/// A deal stage of any pipeline.
#[derive(Debug, Deserialize)]
pub(super) struct RawStage {
    pub id: i64,
    #[serde(default)]
    pub category: Option<String>,
}

impl RawStage {
    /// A deal in a won or lost stage is closed; every other category is open.
    pub fn is_closed(&self) -> bool {
        self.category
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("won") || c.eq_ignore_ascii_case("lost"))
    }
}

/// What `POST /v2/tasks` answers (only the id matters).
#[derive(Debug, Deserialize)]
pub(super) struct Created {
    pub id: i64,
}

/// A task as `find_task` reads it.
#[derive(Debug, Deserialize)]
pub(super) struct RawTask {
    pub id: i64,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub completed: Option<bool>,
}

/// `{"errors":[{"error":{"code","message","details"}}],"meta":{"http_status","logref"}}`
#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    errors: Vec<ErrorItem>,
    #[serde(default)]
    meta: Option<ErrorMeta>,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    error: ErrorBody,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    /// A sentence in practice, but nothing promises it isn't an object.
    #[serde(default)]
    details: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ErrorMeta {
    #[serde(default)]
    logref: Option<String>,
}

/// The CRM's own words about a failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ErrorReport {
    pub code: String,
    pub message: String,
}

/// Reads the error envelope; falls back to the status and a bounded excerpt of the
/// body when the answer is not one (a proxy's HTML page, an empty body).
pub(super) fn parse_error(status: u16, body: &[u8]) -> ErrorReport {
    if let Ok(env) = serde_json::from_slice::<ErrorEnvelope>(body)
        && !env.errors.is_empty()
    {
        let code = env
            .errors
            .iter()
            .find_map(|e| e.error.code.clone())
            .unwrap_or_else(|| format!("http_{status}"));
        let mut message = env
            .errors
            .iter()
            .map(|e| describe(&e.error))
            .filter(|m| !m.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        if message.is_empty() {
            message = status_reason(status);
        }
        if let Some(logref) = env.meta.and_then(|m| m.logref) {
            message.push_str(&format!(" (logref {logref})"));
        }
        return ErrorReport { code, message };
    }
    let text = String::from_utf8_lossy(body);
    let excerpt: String = text.trim().chars().take(200).collect();
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

fn describe(e: &ErrorBody) -> String {
    let message = e.message.as_deref().unwrap_or_default().trim();
    let details = match &e.details {
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    match (message.is_empty(), details.is_empty()) {
        (false, false) if details != message => format!("{message} ({details})"),
        (false, _) => message.to_owned(),
        (true, false) => details,
        (true, true) => String::new(),
    }
}

/// Classifies a non-2xx answer. 429 and 5xx are classified here too; whether they
/// are retried is the transport's business.
pub(super) fn error_for(status: u16, body: &[u8], retry_after: Option<Duration>) -> CrmError {
    let ErrorReport { code, message } = parse_error(status, body);
    match status {
        429 => CrmError::RateLimited { retry_after },
        404 => CrmError::NotFound(message),
        422 => CrmError::Rejected { code, message },
        500..=599 => CrmError::Transient(format!("HTTP {status} {code}: {message}")),
        _ => CrmError::Permanent {
            status,
            code,
            message,
        },
    }
}

/// How long the CRM asked us to wait: `Retry-After` (seconds or an HTTP date), else
/// `X-RateLimit-Reset` (seconds from now, or a Unix time when it is that large).
/// Sell documents neither; other CRMs and proxies send them.
pub(super) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(wait) = retry_after_header(headers, now) {
        return Some(wait);
    }
    let value = headers
        .get("x-ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)?;
    Some(reset_wait(value, now))
}

/// Reads one answer the way the client does, for the fuzz targets
/// (`crates/fuzzing`, `fuzz/`), which must reach these private shapes: `body` as
/// every 2xx answer the client decodes (user, record, stage and task pages, one
/// user, a created task) with what it then asks of them, and `status`, `body` and
/// `headers` through the error and `Retry-After` rules. Returns how many answer
/// shapes `body` decoded as. Nothing here may panic, whatever Sell or a proxy in
/// front of it sends.
pub fn read_every_answer(status: u16, headers: &HeaderMap, body: &[u8], now: SystemTime) -> usize {
    use crate::domain::CrmUser;
    let mut decoded = 0;
    if let Ok(page) = serde_json::from_slice::<Page<CrmUser>>(body) {
        decoded += 1;
        let _ = page.has_next();
        for user in page.items {
            let _ = (user.data.is_active(), user.data.is_deleted());
        }
    }
    if let Ok(page) = serde_json::from_slice::<Page<RawRecord>>(body) {
        decoded += 1;
        let _ = page.has_next();
    }
    if let Ok(page) = serde_json::from_slice::<Page<RawStage>>(body) {
        decoded += 1;
        for stage in page.items {
            let _ = stage.data.is_closed();
        }
    }
    decoded += usize::from(serde_json::from_slice::<Page<RawTask>>(body).is_ok());
    decoded += usize::from(serde_json::from_slice::<Single<CrmUser>>(body).is_ok());
    decoded += usize::from(serde_json::from_slice::<Single<Created>>(body).is_ok());
    let error = error_for(status, body, retry_after(headers, now));
    let _ = error.to_string();
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENVELOPE_422: &str = r#"{
        "errors":[{"error":{"code":"invalid","message":"Owner is inactive","details":"owner_id must belong to an active user"},
                   "meta":{"type":"error"}}],
        "meta":{"type":"errors","http_status":"422 Unprocessable Entity","logref":"ab-12"}}"#;

    #[test]
    fn envelope_gives_code_message_details_and_logref() {
        let r = parse_error(422, ENVELOPE_422.as_bytes());
        assert_eq!(r.code, "invalid");
        assert_eq!(
            r.message,
            "Owner is inactive (owner_id must belong to an active user) (logref ab-12)"
        );
    }

    #[test]
    fn several_errors_are_joined() {
        let body = r#"{"errors":[{"error":{"code":"a","message":"first"}},{"error":{"code":"b","message":"second","details":{"field":"x"}}}]}"#;
        let r = parse_error(400, body.as_bytes());
        assert_eq!(r.code, "a");
        assert_eq!(r.message, r#"first; second ({"field":"x"})"#);
    }

    #[test]
    fn non_envelope_bodies_fall_back_to_the_status() {
        let r = parse_error(502, b"<html>Bad gateway</html>");
        assert_eq!(r.code, "http_502");
        assert_eq!(r.message, "HTTP 502 Bad Gateway: <html>Bad gateway</html>");
        let r = parse_error(401, b"");
        assert_eq!(r.message, "HTTP 401 Unauthorized");
        let long = "x".repeat(5000);
        assert!(parse_error(500, long.as_bytes()).message.len() < 300);
    }

    #[test]
    fn statuses_map_to_what_the_caller_should_do() {
        let body = ENVELOPE_422.as_bytes();
        assert!(
            matches!(error_for(422, body, None), CrmError::Rejected { code, .. } if code == "invalid")
        );
        assert!(matches!(error_for(404, b"", None), CrmError::NotFound(_)));
        assert!(matches!(error_for(503, b"", None), CrmError::Transient(_)));
        let wait = Some(Duration::from_secs(3));
        assert!(
            matches!(error_for(429, b"", wait), CrmError::RateLimited { retry_after } if retry_after == wait)
        );
        for status in [400, 401, 403, 409] {
            assert!(
                matches!(error_for(status, b"", None), CrmError::Permanent { status: s, .. } if s == status),
                "{status}"
            );
        }
    }

    #[test]
    fn sample_429_parses() {
        let body = r#"{"errors":[{"error":{"code":"rate_limit_exceeded","message":"Rate limit exceeded","details":"You have exceeded the number of requests allowed for this access token."},"meta":{"type":"error"}}],"meta":{"type":"errors","http_status":"429 Too Many Requests","logref":"4d8b-2e61-9f3a"}}"#;
        let r = parse_error(429, body.as_bytes());
        assert_eq!(r.code, "rate_limit_exceeded");
        assert!(
            r.message
                .starts_with("Rate limit exceeded (You have exceeded")
        );
        assert!(r.message.ends_with("(logref 4d8b-2e61-9f3a)"));
    }

    use crate::crm::transport::test_headers as headers;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(retry_after(&headers(&[]), now), None);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        // 2027-01-15T08:00:10Z is 1_800_000_010.
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Fri, 15 Jan 2027 08:00:10 GMT")]),
                now
            ),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after(&headers(&[("x-ratelimit-reset", "2")]), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&headers(&[("x-ratelimit-reset", "1800000005")]), now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            retry_after(&headers(&[("x-ratelimit-reset", "1700000000")]), now),
            Some(Duration::ZERO),
            "a reset in the past means go now"
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "3"), ("x-ratelimit-reset", "9")]),
                now
            ),
            Some(Duration::from_secs(3)),
            "Retry-After wins"
        );
    }

    #[test]
    fn stage_categories() {
        let stage = |c: Option<&str>| RawStage {
            id: 1,
            category: c.map(str::to_owned),
        };
        assert!(stage(Some("won")).is_closed());
        assert!(stage(Some("Lost")).is_closed());
        assert!(!stage(Some("incoming")).is_closed());
        assert!(!stage(None).is_closed());
    }

    #[test]
    fn last_page_has_no_next() {
        let page: Page<RawRecord> =
            serde_json::from_str(r#"{"items":[{"data":{"id":1,"owner_id":2},"meta":{}}],"meta":{"type":"collection","links":{"self":"x"}}}"#)
                .unwrap();
        assert!(!page.has_next());
        let page: Page<RawRecord> =
            serde_json::from_str(r#"{"items":[],"meta":{"links":{"next_page":"y"}}}"#).unwrap();
        assert!(page.has_next());
    }
}
