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
//! - [`scrape_metrics`]: the Prometheus text a service exposes.
//! - [`sell`]: fixtures backed by the real `offboard-sandbox`, with the
//!   organisation the API tests are written against; [`pipedrive`]: the same
//!   organisation as Pipedrive keeps it; [`salesforce`]: the same again with
//!   Cases, as Salesforce keeps it.

#![deny(missing_docs)]

pub mod config;
pub mod ingest;
pub mod pipedrive;
pub mod process;
pub mod salesforce;
pub mod sell;
pub mod sign;

pub use process::free_port;

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
