//! One logical CRM request, carried to an answer, for every vendor: wait for the
//! rate budget, send, report the attempt to the audit sink and the metrics, and
//! retry what is safe to retry. Everything about *when to try again* lives here;
//! each client's [`Crm`](crate::crm::Crm) methods only build requests and read
//! answers, and its [`Dialect`] says how the vendor spells errors and rate limits.
//!
//! Retry rules: 429 waits for the CRM's hint (else backoff) and slows the shared
//! budget; 5xx, timeouts and broken connections back off with full jitter; other 4xx
//! are final. A request that is not idempotent (`POST`) is retried only when it
//! certainly did not reach the CRM (429, or no connection was made): after a
//! timeout or a 5xx the task may exist, and the caller must look for it first.
//! A vendor's "quota left" headers pause the shared budget before it runs dry.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use rand::Rng;
use reqwest::{
    Method, StatusCode, Url,
    header::{ACCEPT, HeaderMap, HeaderName, HeaderValue},
};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::{
    config::Secret,
    crm::{
        calls::{self, CallRecord},
        contract::CrmError,
        pacing::RateBudget,
        settings::ClientSettings,
    },
    domain::lanes,
    telemetry,
};

/// How one vendor spells failures and limits; plain functions so each rule stays
/// a pure, unit-tested function in the vendor's `wire` module.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    /// The vendor's name in error messages (`Sell`, `Pipedrive`).
    pub vendor: &'static str,
    /// Classifies a non-2xx answer (status, body, the wait the headers asked for).
    pub error_for: fn(u16, &[u8], Option<Duration>) -> CrmError,
    /// How long the answer's headers ask us to wait before the next request.
    pub retry_after: fn(&HeaderMap, SystemTime) -> Option<Duration>,
    /// From a successful answer's headers: pause the budget this long because the
    /// vendor says the token's quota is used up until then (`None`: go on).
    pub quota_pause: fn(&HeaderMap) -> Option<Duration>,
}

/// Why a CRM client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientBuildError {
    /// `base_url` is not an absolute http(s) URL.
    #[error("invalid {vendor} base URL {url:?}: {problem}")]
    BaseUrl {
        /// The CRM the URL was meant for.
        vendor: &'static str,
        /// `crm.base_url` as configured.
        url: String,
        /// Why it is refused (parse error, wrong scheme, has a query…).
        problem: String,
    },
    /// The token is empty or cannot be sent in a header.
    #[error("invalid {vendor} API token: {problem}")]
    Token {
        /// The CRM the token was meant for.
        vendor: &'static str,
        /// What is wrong with it (never the token itself).
        problem: String,
    },
    /// `crm.api_version` is not `digits.digits` (Salesforce's `66.0`).
    #[error("invalid {vendor} API version {version:?}: expected digits.digits, e.g. 66.0")]
    ApiVersion {
        /// The CRM the version was meant for.
        vendor: &'static str,
        /// The version as given.
        version: String,
    },
    /// The HTTP client could not be set up (TLS roots, …).
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// How a vendor wants the token sent.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Auth {
    /// `Authorization: Bearer <token>` (Sell, HubSpot, Salesforce).
    Bearer,
    /// The token as the value of this header (Pipedrive's `x-api-token`).
    Header(&'static str),
}

/// A request to make: the path template names it in metrics, never its ids.
#[derive(Debug)]
pub(crate) struct Call {
    pub method: Method,
    /// e.g. `/v2/deals/:id`.
    pub endpoint: &'static str,
    /// e.g. `/v2/deals/5001`.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<serde_json::Value>,
    /// A `POST` that leaves the same state however often it arrives (a search,
    /// HubSpot's batch owner update): retried like a `PUT`.
    pub repeatable: bool,
}

impl Call {
    pub fn get(endpoint: &'static str, path: String, query: Vec<(&'static str, String)>) -> Self {
        Self {
            method: Method::GET,
            endpoint,
            path,
            query,
            body: None,
            repeatable: false,
        }
    }

    /// Marks a `POST` as safe to repeat (see [`Call::repeatable`]).
    pub fn repeatable(mut self) -> Self {
        self.repeatable = true;
        self
    }

    /// GET, PUT, PATCH and DELETE leave the CRM in the same state however often
    /// they are repeated; a `POST` only when marked repeatable.
    fn idempotent(&self) -> bool {
        self.method != Method::POST || self.repeatable
    }

    /// A request with a JSON body.
    pub fn with_body(
        method: Method,
        endpoint: &'static str,
        path: String,
        body: serde_json::Value,
    ) -> Self {
        Self {
            method,
            endpoint,
            path,
            query: vec![],
            body: Some(body),
            repeatable: false,
        }
    }
}

/// The HTTP side of one CRM client, shared by all its clones.
#[derive(Debug)]
pub(crate) struct Transport {
    pub http: reqwest::Client,
    /// The API origin (and any path prefix), without a trailing slash.
    pub base: String,
    pub budget: Arc<dyn RateBudget>,
    pub settings: ClientSettings,
    pub dialect: Dialect,
}

/// What one attempt produced.
enum Outcome {
    Answer {
        status: StatusCode,
        retry_after: Option<Duration>,
        quota_pause: Option<Duration>,
        body: Vec<u8>,
    },
    /// No (complete) answer. `sent` is false only when no connection was made.
    Failed {
        sent: bool,
        timed_out: bool,
        message: String,
    },
}

impl Transport {
    /// A transport for `base` (already [`normalize_base`]d) sending `token` as
    /// `auth` says, pacing through `budget`.
    pub fn new(
        base: String,
        token: &Secret,
        auth: Auth,
        settings: ClientSettings,
        budget: Arc<dyn RateBudget>,
        dialect: Dialect,
    ) -> Result<Self, ClientBuildError> {
        let vendor = dialect.vendor;
        let token = token.expose().trim();
        if token.is_empty() {
            return Err(ClientBuildError::Token {
                vendor,
                problem: "it is empty".to_owned(),
            });
        }
        let (name, value) = match auth {
            Auth::Bearer => (reqwest::header::AUTHORIZATION, format!("Bearer {token}")),
            Auth::Header(name) => (HeaderName::from_static(name), token.to_owned()),
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| ClientBuildError::Token {
            vendor,
            problem: "it contains characters not allowed in an HTTP header".to_owned(),
        })?;
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(name, value);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .user_agent(concat!("offboard/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .pool_max_idle_per_host(settings.max_in_flight.max(1))
            .build()?;
        Ok(Self {
            http,
            base,
            budget,
            settings,
            dialect,
        })
    }

    /// Sends `call` and decodes the 2xx answer as `T`.
    pub async fn fetch<T: DeserializeOwned>(&self, call: &Call) -> Result<T, CrmError> {
        let body = self.execute(call).await?;
        decode(call, &body)
    }

    /// Sends `call` until it succeeds, fails for good or runs out of retries;
    /// returns the body of the 2xx answer.
    pub async fn execute(&self, call: &Call) -> Result<Vec<u8>, CrmError> {
        let url = self.url(call)?;
        let shown = shown_path(&url, self.settings.redact_emails);
        let mut attempt: u32 = 0;
        let writes = !matches!(call.method, Method::GET | Method::HEAD);
        loop {
            // Every attempt at a write is admitted first: its intent on record and
            // the lease long enough for the whole attempt (DESIGN: never act blind).
            let deadline = if writes {
                Some(
                    calls::admit_write(call.method.as_str(), &shown, self.settings.timeout)
                        .await
                        .map_err(CrmError::Interrupted)?,
                )
            } else {
                None
            };
            let outcome = self.attempt(call, &url, &shown, deadline).await;
            let last = attempt >= self.settings.max_retries;
            let (error, wait) = match outcome {
                Outcome::Answer {
                    status,
                    body,
                    quota_pause,
                    ..
                } if status.is_success() => {
                    self.budget.on_success();
                    if let Some(pause) = quota_pause {
                        self.budget.pause(pause);
                    }
                    return Ok(body);
                }
                Outcome::Answer {
                    status,
                    retry_after,
                    body,
                    ..
                } if status == StatusCode::TOO_MANY_REQUESTS => {
                    self.budget.on_throttled(retry_after);
                    let error = (self.dialect.error_for)(status.as_u16(), &body, retry_after);
                    // A wait longer than we are willing to block a worker for is
                    // handed back: the job can be rescheduled instead.
                    if last || retry_after.is_some_and(|d| d > self.settings.max_retry_after) {
                        return Err(error);
                    }
                    metrics::counter!(crate::metrics::CRM_RATE_LIMIT_WAITS_TOTAL).increment(1);
                    let wait = retry_after.unwrap_or_else(|| self.throttle_backoff(attempt));
                    (error, wait)
                }
                Outcome::Answer {
                    status,
                    retry_after,
                    body,
                    ..
                } if status.is_server_error() => {
                    let error = (self.dialect.error_for)(status.as_u16(), &body, None);
                    // A vendor may call a 5xx final (Pipedrive's 501: no such feature).
                    if !error.is_transient() {
                        return Err(error);
                    }
                    if !call.idempotent() {
                        return Err(not_retried(error));
                    }
                    if last {
                        return Err(gave_up(error, attempt));
                    }
                    let wait = retry_after
                        .filter(|d| *d <= self.settings.max_retry_after)
                        .unwrap_or_else(|| self.backoff(attempt));
                    (error, wait)
                }
                Outcome::Answer { status, body, .. } => {
                    self.budget.on_success();
                    return Err((self.dialect.error_for)(status.as_u16(), &body, None));
                }
                Outcome::Failed { sent, message, .. } => {
                    let error = CrmError::Transient(message);
                    if sent && !call.idempotent() {
                        return Err(not_retried(error));
                    }
                    if last {
                        return Err(gave_up(error, attempt));
                    }
                    (error, self.backoff(attempt))
                }
            };
            tracing::debug!(
                method = %call.method,
                endpoint = call.endpoint,
                attempt,
                wait_ms = wait.as_millis() as u64,
                %error,
                "retrying CRM call"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// One HTTP exchange inside one budget permit, reported and measured.
    /// A write comes with the `deadline` its admission gave it: the attempt is
    /// abandoned (as timed out) when it has no answer by then.
    async fn attempt(
        &self,
        call: &Call,
        url: &Url,
        shown: &str,
        deadline: Option<Duration>,
    ) -> Outcome {
        let ticket = lanes::current();
        let queued = Instant::now();
        let permit = self.budget.acquire().await;
        let waited = queued.elapsed();
        metrics::histogram!(crate::metrics::CRM_PACING_WAIT_SECONDS, "lane" => ticket.lane.as_str())
            .record(waited.as_secs_f64());
        // The budget may have held the call back for a while since it was admitted.
        if let Some(deadline) = deadline
            && !calls::write_covered(deadline)
        {
            drop(permit);
            return Outcome::Failed {
                sent: false,
                timed_out: false,
                message: "held back: the run's lease would not outlast the call".to_owned(),
            };
        }
        let started = Instant::now();
        let mut request = self.http.request(call.method.clone(), url.clone());
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        if let Some(deadline) = deadline {
            request = request.timeout(deadline);
        }
        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let retry_after = (self.dialect.retry_after)(response.headers(), SystemTime::now());
                let quota_pause = (self.dialect.quota_pause)(response.headers());
                match response.bytes().await {
                    Ok(body) => Outcome::Answer {
                        status,
                        retry_after,
                        quota_pause,
                        body: body.to_vec(),
                    },
                    Err(e) => Outcome::Failed {
                        sent: true,
                        timed_out: e.is_timeout(),
                        message: format!(
                            "HTTP {status}, then reading the body failed: {}",
                            describe(&e)
                        ),
                    },
                }
            }
            Err(e) => Outcome::Failed {
                // A connect error (including a connect timeout) means no byte of
                // the request left this process.
                sent: !e.is_connect(),
                timed_out: e.is_timeout(),
                message: describe(&e),
            },
        };
        drop(permit);
        let elapsed = started.elapsed();
        let (status, error) = match &outcome {
            Outcome::Answer { status, .. } => (Some(status.as_u16()), None),
            Outcome::Failed { message, .. } => (None, Some(message.clone())),
        };
        calls::report(CallRecord {
            method: call.method.to_string(),
            path: shown.to_owned(),
            status,
            duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            error,
            lane: Some(ticket.lane),
            waited_ms: Some(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX)),
        });
        let status_label = match &outcome {
            Outcome::Answer { status, .. } => status.as_u16().to_string(),
            Outcome::Failed {
                timed_out: true, ..
            } => "timeout".to_owned(),
            Outcome::Failed { .. } => "error".to_owned(),
        };
        metrics::histogram!(
            crate::metrics::CRM_REQUEST_DURATION_SECONDS,
            "method" => call.method.to_string(),
            "endpoint" => call.endpoint,
            "status" => status_label,
        )
        .record(elapsed.as_secs_f64());
        outcome
    }

    fn url(&self, call: &Call) -> Result<Url, CrmError> {
        let mut url = Url::parse(&format!("{}{}", self.base, call.path)).map_err(|e| {
            CrmError::Permanent {
                status: 0,
                code: "invalid_url".to_owned(),
                message: format!("cannot build a URL for {}: {e}", call.path),
            }
        })?;
        if !call.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(call.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }

    /// Exponential backoff with full jitter: uniform in `[0, min(cap, base·2^attempt)]`,
    /// so clients that failed together don't come back together.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        rand::rng().random_range(Duration::ZERO..=ceiling)
    }

    /// After a 429 without a hint, wait at least half the step: a near-zero wait
    /// would only meet the same limit again.
    fn throttle_backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        rand::rng().random_range(ceiling / 2..=ceiling)
    }

    fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        self.settings
            .backoff_base
            .saturating_mul(factor)
            .min(self.settings.backoff_cap)
    }
}

/// `HTTP 503 Service Unavailable`: the words for a status when the CRM gave none.
pub(crate) fn status_reason(status: u16) -> String {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map_or_else(
            || format!("HTTP {status}"),
            |r| format!("HTTP {status} {r}"),
        )
}

/// A header's value as trimmed text; `None` when absent, empty or not text.
pub(crate) fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// `Retry-After` as seconds or an HTTP date, as a wait from `now`.
pub(crate) fn retry_after_header(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = header_text(headers, reqwest::header::RETRY_AFTER.as_str())?;
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(seconds(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(SystemTime::from(at).duration_since(now).unwrap_or_default())
}

/// A rate-limit reset header's number (`x-ratelimit-reset`) as a wait: vendors
/// document seconds from now; a value this large can only be an absolute Unix
/// time (some proxies' convention), and is read as one.
pub(crate) fn reset_wait(value: f64, now: SystemTime) -> Duration {
    const UNIX_TIME_THRESHOLD: f64 = 1_000_000_000.0;
    if value >= UNIX_TIME_THRESHOLD {
        match SystemTime::UNIX_EPOCH.checked_add(seconds(value)) {
            Some(at) => at.duration_since(now).unwrap_or_default(),
            // Later than the clock can say: as long a wait as any.
            None => Duration::MAX,
        }
    } else {
        seconds(value)
    }
}

/// A header's number of seconds as a wait. A number no `Duration` holds (a
/// vendor's or a proxy's `1e300`) is the longest wait, which the callers cap
/// (`max_pause`) or hand back (`max_retry_after`); a negative or NaN one is none.
fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(if value > 0.0 {
        Duration::MAX
    } else {
        Duration::ZERO
    })
}

/// Reads a 2xx answer; an answer that isn't what the vendor documents is permanent.
pub(crate) fn decode<T: DeserializeOwned>(call: &Call, body: &[u8]) -> Result<T, CrmError> {
    serde_json::from_slice(body).map_err(|e| CrmError::Permanent {
        status: 200,
        code: "unreadable_response".to_owned(),
        message: format!("{} {}: unexpected answer: {e}", call.method, call.endpoint),
    })
}

/// An absolute http(s) URL without a trailing slash, so paths can be appended.
pub(crate) fn normalize_base(
    vendor: &'static str,
    base_url: &str,
) -> Result<String, ClientBuildError> {
    let bad = |problem: &str| ClientBuildError::BaseUrl {
        vendor,
        url: base_url.to_owned(),
        problem: problem.to_owned(),
    };
    let url = reqwest::Url::parse(base_url.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Identifies a token's budget without keeping the token in the registry.
pub(crate) fn budget_key(base: &str, token: &Secret) -> String {
    let mut hash = Sha256::new();
    hash.update(base.as_bytes());
    hash.update([0]);
    hash.update(token.expose().trim().as_bytes());
    hex::encode(hash.finalize())
}

/// The path and query as the audit trail shows them: no scheme, host or token, and
/// with `redact`, no e-mail address (percent-encoded, later redaction can't see it).
fn shown_path(url: &Url, redact: bool) -> String {
    let Some(query) = url.query() else {
        return url.path().to_owned();
    };
    if !redact {
        return format!("{}?{query}", url.path());
    }
    let pairs = url.query_pairs().map(|(k, v)| {
        let v = if v.contains('@') {
            telemetry::hash_email(&v)
        } else {
            v.into_owned()
        };
        (k.into_owned(), v)
    });
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{}?{query}", url.path())
}

fn not_retried(error: CrmError) -> CrmError {
    let text = match error {
        CrmError::Transient(text) => text,
        other => other.to_string(),
    };
    CrmError::Transient(format!(
        "{text}; not retried because the request may have reached the CRM (look the result up before trying again)"
    ))
}

fn gave_up(error: CrmError, retries: u32) -> CrmError {
    match error {
        CrmError::Transient(text) if retries > 0 => {
            CrmError::Transient(format!("{text} (gave up after {} attempts)", retries + 1))
        }
        other => other,
    }
}

/// The error and its causes on one line, without the URL (which may carry an
/// e-mail address in its query).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "request timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A header map from literal pairs, for the dialects' unit tests.
#[cfg(test)]
pub(super) fn test_headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, reqwest::header::HeaderValue::from_static(v));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::pacing::{BudgetSettings, LocalBudget};

    fn transport(base: &str) -> Transport {
        Transport {
            http: reqwest::Client::new(),
            base: base.to_owned(),
            budget: Arc::new(LocalBudget::new(BudgetSettings::default())),
            settings: ClientSettings::default(),
            dialect: Dialect {
                vendor: "test",
                error_for: |status, _, _| CrmError::Transient(format!("HTTP {status}")),
                retry_after: |_, _| None,
                quota_pause: |_| None,
            },
        }
    }

    #[test]
    fn base_urls_are_normalized_and_checked() {
        let n = |url| normalize_base("Sell", url);
        assert_eq!(
            n("https://api.getbase.com").unwrap(),
            "https://api.getbase.com"
        );
        assert_eq!(
            n("https://api.getbase.com/").unwrap(),
            "https://api.getbase.com"
        );
        assert_eq!(
            n("http://127.0.0.1:8/sell/").unwrap(),
            "http://127.0.0.1:8/sell"
        );
        assert!(n("api.getbase.com").is_err());
        assert!(n("ftp://x").is_err());
        assert!(n("https://x/?a=1").is_err());
    }

    #[test]
    fn budget_key_hides_the_token() {
        let key = budget_key("https://x", &Secret::new("super-secret".into()));
        assert!(!key.contains("super-secret"));
        assert_eq!(key.len(), 64);
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let t = transport("http://x");
        assert_eq!(t.ceiling(0), Duration::from_millis(200));
        assert_eq!(t.ceiling(3), Duration::from_millis(1600));
        assert_eq!(t.ceiling(10), Duration::from_secs(10));
        assert_eq!(t.ceiling(u32::MAX), Duration::from_secs(10));
        for attempt in 0..8 {
            assert!(t.backoff(attempt) <= t.ceiling(attempt));
            assert!(t.throttle_backoff(attempt) >= t.ceiling(attempt) / 2);
        }
    }

    #[test]
    fn urls_keep_the_base_prefix_and_encode_the_query() {
        let t = transport("http://127.0.0.1:9/sell");
        let call = Call::get(
            "/v2/users",
            "/v2/users".to_owned(),
            vec![("email", "a+b@example.com".to_owned())],
        );
        let url = t.url(&call).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/sell/v2/users?email=a%2Bb%40example.com"
        );
        assert_eq!(
            shown_path(&url, false),
            "/sell/v2/users?email=a%2Bb%40example.com"
        );
        let hidden = shown_path(&url, true);
        assert!(
            hidden.starts_with("/sell/v2/users?email=email%3A"),
            "{hidden}"
        );
        assert!(!hidden.contains("example.com"), "{hidden}");
        let call = Call::get("/v2/users/:id", "/v2/users/5".to_owned(), vec![]);
        assert_eq!(shown_path(&t.url(&call).unwrap(), true), "/sell/v2/users/5");
    }

    #[test]
    fn only_post_is_not_idempotent() {
        let mut call = Call::get("/v2/tasks", "/v2/tasks".to_owned(), vec![]);
        assert!(call.idempotent());
        call.method = Method::PUT;
        assert!(call.idempotent());
        call.method = Method::POST;
        assert!(!call.idempotent());
    }

    /// Found by review while writing the `crm_responses` fuzz target (inputs in
    /// `fuzz/regressions/crm_responses/`): a `Retry-After` or reset of `1e300`
    /// seconds, or a reset past what the clock can say, panicked in the client.
    #[test]
    fn waits_too_long_for_a_duration_are_the_longest_wait() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for value in ["1e300", "18446744073709551616"] {
            let h = test_headers(&[("retry-after", value)]);
            assert_eq!(retry_after_header(&h, now), Some(Duration::MAX), "{value}");
        }
        assert_eq!(reset_wait(1e300, now), Duration::MAX);
        assert_eq!(reset_wait(1e19, now), Duration::MAX);
        assert_eq!(reset_wait(1.8e9 + 5.0, now), Duration::from_secs(5));
        assert_eq!(reset_wait(2.5, now), Duration::from_millis(2500));
    }
}
