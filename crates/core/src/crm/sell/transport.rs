//! One logical Sell request, carried to an answer: wait for the rate budget, send,
//! report the attempt to the audit sink and the metrics, and retry what is safe to
//! retry. Everything about *when to try again* lives here; the [`Crm`](crate::crm::Crm)
//! methods above only build requests and read answers.
//!
//! Retry rules: 429 waits for the CRM's hint (else backoff) and slows the shared
//! budget; 5xx, timeouts and broken connections back off with full jitter; other 4xx
//! are final. A request that is not idempotent (`POST /v2/tasks`) is retried only
//! when it certainly did not reach the CRM (429, or no connection was made): after a
//! timeout or a 5xx the task may exist, and the caller must look for it first.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use rand::Rng;
use reqwest::{Method, StatusCode, Url};

use super::{settings::SellSettings, wire};
use crate::{
    crm::{
        calls::{self, CallRecord},
        contract::CrmError,
        pacing::RateBudget,
    },
    telemetry,
};

/// A request to make: the path template names it in metrics, never its ids.
#[derive(Debug)]
pub(super) struct Call {
    pub method: Method,
    /// e.g. `/v2/deals/:id`.
    pub endpoint: &'static str,
    /// e.g. `/v2/deals/5001`.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<serde_json::Value>,
}

impl Call {
    pub fn get(endpoint: &'static str, path: String, query: Vec<(&'static str, String)>) -> Self {
        Self {
            method: Method::GET,
            endpoint,
            path,
            query,
            body: None,
        }
    }

    /// GET and PUT leave the CRM in the same state however often they are repeated.
    fn idempotent(&self) -> bool {
        self.method != Method::POST
    }
}

/// The HTTP side of [`SellClient`](super::SellClient), shared by all its clones.
#[derive(Debug)]
pub(super) struct Transport {
    pub http: reqwest::Client,
    /// The API origin (and any path prefix), without a trailing slash.
    pub base: String,
    pub budget: Arc<dyn RateBudget>,
    pub settings: SellSettings,
}

/// What one attempt produced.
enum Outcome {
    Answer {
        status: StatusCode,
        retry_after: Option<Duration>,
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
    /// Sends `call` until it succeeds, fails for good or runs out of retries;
    /// returns the body of the 2xx answer.
    pub async fn execute(&self, call: &Call) -> Result<Vec<u8>, CrmError> {
        let url = self.url(call)?;
        let shown = shown_path(&url, self.settings.redact_emails);
        let mut attempt: u32 = 0;
        loop {
            let outcome = self.attempt(call, &url, &shown).await;
            let last = attempt >= self.settings.max_retries;
            let (error, wait) = match outcome {
                Outcome::Answer { status, body, .. } if status.is_success() => {
                    self.budget.on_success();
                    return Ok(body);
                }
                Outcome::Answer {
                    status,
                    retry_after,
                    body,
                } if status == StatusCode::TOO_MANY_REQUESTS => {
                    self.budget.on_throttled(retry_after);
                    let error = wire::error_for(status.as_u16(), &body, retry_after);
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
                } if status.is_server_error() => {
                    let error = wire::error_for(status.as_u16(), &body, None);
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
                    return Err(wire::error_for(status.as_u16(), &body, None));
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
    async fn attempt(&self, call: &Call, url: &Url, shown: &str) -> Outcome {
        let permit = self.budget.acquire().await;
        let started = Instant::now();
        let mut request = self.http.request(call.method.clone(), url.clone());
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let retry_after = wire::retry_after(response.headers(), SystemTime::now());
                match response.bytes().await {
                    Ok(body) => Outcome::Answer {
                        status,
                        retry_after,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::pacing::{BudgetSettings, LocalBudget};

    fn transport(base: &str) -> Transport {
        Transport {
            http: reqwest::Client::new(),
            base: base.to_owned(),
            budget: Arc::new(LocalBudget::new(BudgetSettings::default())),
            settings: SellSettings::default(),
        }
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
}
