//! What offboard's integration tests share, so each harness exists once: the
//! root package's tests (`tests/*.rs`) depend on it, nothing else does, and the
//! service crates never see it.
//!
//! - [`free_port`]: a loopback port for a child process to listen on.
//! - [`process`]: `offboard serve` as a child process — spawn it, wait for
//!   `/readyz`, SIGKILL, SIGTERM or SIGSTOP it, read what it logged. The binary's
//!   path is a parameter because only the root package's tests know it
//!   (`env!("CARGO_BIN_EXE_offboard")`).
//! - [`config`]: the config file, secrets and policy of such a process, in a
//!   temp dir.
//! - [`ingest`]: the receiver's routes in-process over a fresh SQLite store.
//! - [`sign`]: Standard Webhooks signing the way an HR system sends it.
//! - [`scrape_metrics`]: the Prometheus text a service exposes; [`timed`]: one
//!   request with how long its answer took (the outage tests bound it).
//! - [`sell`]: fixtures backed by the real `offboard-sandbox`, with the
//!   organisation the API tests are written against; [`pipedrive`]: the same
//!   organisation as Pipedrive keeps it; [`salesforce`]: the same again with
//!   Cases, as Salesforce keeps it.

#![deny(missing_docs)]

pub mod config;
pub mod ingest;
pub mod pipedrive;
pub mod process;
pub mod python_tool;
pub mod salesforce;
pub mod sell;
pub mod sign;

pub use process::free_port;

/// One answered request, timed: what the outage tests check of each answer.
#[derive(Debug)]
pub struct Timed {
    /// HTTP status.
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The JSON body (null when it is not JSON).
    pub body: serde_json::Value,
    /// From sending until the whole body arrived.
    pub took: std::time::Duration,
}

/// Sends `req` and times it; panics if nothing answers (the tests that use it
/// expect an answer, a refusal included).
pub async fn timed(req: reqwest::RequestBuilder) -> Timed {
    let started = std::time::Instant::now();
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("no answer: {e}"));
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    Timed {
        status,
        retry_after,
        body,
        took: started.elapsed(),
    }
}

/// The Prometheus text at `BASE/metrics`; panics if the service does not answer,
/// since every test that scrapes has just used the service.
pub async fn scrape_metrics(http: &reqwest::Client, base: &str) -> String {
    let resp = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {base}/metrics: {e}"));
    resp.text()
        .await
        .unwrap_or_else(|e| panic!("read {base}/metrics: {e}"))
}

/// The environment variable naming the PostgreSQL database tests may use.
pub const POSTGRES_URL_ENV: &str = "OFFBOARD_TEST_POSTGRES_URL";

/// The PostgreSQL URL for tests, from [`POSTGRES_URL_ENV`]. Without it a developer's
/// run skips the PostgreSQL half (and says so); under CI (`CI` set to anything but
/// `false` or `0`) a missing URL fails the test instead, so a green CI run means the
/// PostgreSQL tests ran.
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let ci = std::env::var("CI").unwrap_or_default();
            assert!(
                ci.is_empty() || ci == "false" || ci == "0",
                "{POSTGRES_URL_ENV} is not set, and under CI the PostgreSQL tests must run, not skip"
            );
            eprintln!("skipped: {POSTGRES_URL_ENV} not set");
            None
        }
    }
}
