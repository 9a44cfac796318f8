//! `offboard bench layoff`: many leavers at once on one CRM token. How soon is
//! every leaver's CRM access cut, how soon is every open deal moved, and does the
//! whole layoff still use the budget fully?
//!
//! A sandbox CRM with real latency and a per-second limit serves a
//! [`fleet::leavers_seed`] org; offboard (in-process, receiver + worker, temp
//! SQLite, a worker running every leaver's job at once) gets one termination per
//! leaver in a single burst. The same layoff runs twice on a fresh sandbox: with
//! `seat_first = true` (access cut first, the lanes of `lanes::` putting every
//! seat step and open deal before anyone's leads and tasks) and records first.
//! Then a sequential client (offboard itself, one job and one request at a time)
//! offboards a sample of the same leavers; its times are scaled to the whole
//! layoff, which is what a one-at-a-time client would take.
//!
//! Times are read from the sandbox's request log, from the first CRM call of the
//! run: a seat is cut when the CRM answers the deactivation, a deal is moved when
//! the CRM answers its owner change. The minimum for a run is the calls it needed
//! (every answer that was not a 429) at the configured rate; the seat minimum is
//! the calls on the path to each seat (the job's calls in the `access` lane up to
//! and including its deactivation, from its audit trail) at that rate.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use offboard_core::{
    app::{Application, Role},
    config::Config,
    ingest::schemes::StandardWebhooks,
};
use offboard_sandbox::{RequestLogEntry, Sandbox, SandboxCrm, SandboxOptions};

use crate::{
    fleet::{self, leaver_event, leaver_id},
    pacing::is_record_write,
};

/// Pipedrive: Sell's migration partner, whose API deactivates a user, so the call
/// that cuts a seat is in the log (Sell's seat step is a task for a person).
const CRM: SandboxCrm = SandboxCrm::Pipedrive;

const SECRET: &str = "whsec_YmVuY2gtbGF5b2ZmLXNlY3JldA==";
const TOKEN: &str = "bench-layoff-token";
const ADMIN_TOKEN: &str = "bench-layoff-admin";

/// Arguments of `offboard bench layoff`.
#[derive(Debug, Clone, clap::Args)]
pub struct LayoffArgs {
    /// Leavers in the burst.
    #[arg(long, default_value_t = 200)]
    pub leavers: usize,
    /// Open leads, people, deals and tasks each leaver owns, per kind (10 → 40
    /// open records each).
    #[arg(long, default_value_t = 10)]
    pub per_kind: usize,
    /// The sandbox's per-token limit and offboard's `requests_per_second` (Sell's
    /// 10/s scaled up so a run takes minutes; the report is in ratios).
    #[arg(long, default_value_t = 50)]
    pub rps: u32,
    /// Latency the sandbox adds to every call.
    #[arg(long, default_value_t = 100)]
    pub latency_ms: u64,
    /// offboard's `max_in_flight`.
    #[arg(long, default_value_t = 8)]
    pub max_in_flight: usize,
    /// Leavers the sequential client offboards (its times are scaled to
    /// `--leavers`); 0 skips it.
    #[arg(long, default_value_t = 10)]
    pub baseline_leavers: usize,
}

/// Which order the policy asks for, and how offboard may run.
#[derive(Debug, Clone, Copy)]
struct Mode {
    seat_first: bool,
    /// Jobs at once (`[worker] concurrency`) and requests at once.
    concurrency: usize,
    max_in_flight: usize,
    leavers: usize,
}

/// What one run measured.
#[derive(Debug)]
struct RunReport {
    /// From the first call until each seat was cut, sorted.
    seats_cut: Vec<Duration>,
    /// From the first call until the last open deal was moved.
    deals_moved: Duration,
    /// From the first call until the last call of the run ended.
    total: Duration,
    calls: u64,
    throttled: u64,
    /// Σ over jobs of the access-lane calls up to the job's deactivation.
    seat_path_calls: u64,
}

impl RunReport {
    fn seat_percentile(&self, p: f64) -> Duration {
        let n = self.seats_cut.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let i = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
        self.seats_cut[i]
    }
}

/// Runs the benchmark and prints the report.
pub async fn run(args: LayoffArgs) -> anyhow::Result<()> {
    if args.leavers == 0 {
        anyhow::bail!("--leavers must be at least 1");
    }
    let rate = f64::from(args.rps.max(1));
    println!(
        "layoff benchmark: {} leavers × {} open records on {} (sandbox limit {} req/s, latency {} ms, max_in_flight {}), posted in one burst",
        args.leavers,
        4 * args.per_kind,
        CRM,
        args.rps,
        args.latency_ms,
        args.max_in_flight
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {} cores, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let parallel = |seat_first| Mode {
        seat_first,
        concurrency: args.leavers,
        max_in_flight: args.max_in_flight,
        leavers: args.leavers,
    };
    let seat_first = layoff_run(&args, parallel(true)).await?;
    let records_first = layoff_run(&args, parallel(false)).await?;
    let sequential = if args.baseline_leavers > 0 {
        let sample = args.baseline_leavers.min(args.leavers);
        let run = layoff_run(
            &args,
            Mode {
                seat_first: true,
                concurrency: 1,
                max_in_flight: 1,
                leavers: sample,
            },
        )
        .await?;
        Some((sample, run))
    } else {
        None
    };

    let n = args.leavers as f64;
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "\n  {:<28} {:>10} {:>10} {:>12} {:>9} {:>10} {:>8} {:>7}",
        "run", "seats p50", "seats p100", "deals moved", "total", "min total", "calls", "429 %"
    );
    let line = |name: &str, r: &RunReport, scale: f64| {
        let minimum = (r.calls - r.throttled) as f64 / rate * scale;
        println!(
            "  {:<28} {:>9.1}s {:>9.1}s {:>11.1}s {:>8.1}s {:>9.1}s {:>8} {:>6.2}%",
            name,
            secs(r.seat_percentile(0.5)) * scale,
            secs(r.seat_percentile(1.0)) * scale,
            secs(r.deals_moved) * scale,
            secs(r.total) * scale,
            minimum,
            (r.calls as f64 * scale).round(),
            100.0 * r.throttled as f64 / r.calls.max(1) as f64
        );
    };
    line("seat first (lanes)", &seat_first, 1.0);
    line("records first", &records_first, 1.0);
    if let Some((sample, run)) = &sequential {
        line(
            &format!("sequential (×{:.0} of {sample})", n / *sample as f64),
            run,
            n / *sample as f64,
        );
    }

    let seat_minimum = seat_first.seat_path_calls as f64 / rate;
    let literal = n / rate;
    let last_seat = secs(seat_first.seat_percentile(1.0));
    println!("\nseat first:");
    println!(
        "  every seat cut after {last_seat:.1}s; the calls on the path to the seats ({} = {:.1} per leaver: finding the user, deciding, the owner, the deactivation) take {seat_minimum:.1}s at {} req/s → {:.2}× that minimum (goal ≤ 1.1×)",
        seat_first.seat_path_calls,
        seat_first.seat_path_calls as f64 / n,
        args.rps,
        last_seat / seat_minimum.max(f64::EPSILON)
    );
    println!(
        "  against the issue's bound of N deactivation calls ÷ rate = {literal:.1}s: {:.2}× (the {:.1} calls a leaver needs before the deactivation can't be skipped without deciding blind)",
        last_seat / literal.max(f64::EPSILON),
        seat_first.seat_path_calls as f64 / n - 1.0
    );
    let min_total = (seat_first.calls - seat_first.throttled) as f64 / rate;
    println!(
        "  total {:.1}s vs minimum {min_total:.1}s → {:.3}× (goal ≤ 1.03×); 429s: {} of {} calls",
        secs(seat_first.total),
        secs(seat_first.total) / min_total.max(f64::EPSILON),
        seat_first.throttled,
        seat_first.calls
    );
    println!(
        "  every open deal moved after {:.1}s ({:.2} of the total)",
        secs(seat_first.deals_moved),
        secs(seat_first.deals_moved) / secs(seat_first.total).max(f64::EPSILON)
    );
    println!(
        "records first: the last seat is cut after {:.1}s = {:.1}× later than with seat first",
        secs(records_first.seat_percentile(1.0)),
        secs(records_first.seat_percentile(1.0)) / last_seat.max(f64::EPSILON)
    );
    if let Some((sample, run)) = &sequential {
        let scale = n / *sample as f64;
        println!(
            "sequential: {sample} leavers took {:.1}s; {} would take ≈ {:.0}s, {:.1}× the parallel seat-first run, and its last seat ≈ {:.0}s ({:.0}× later)",
            secs(run.total),
            args.leavers,
            secs(run.total) * scale,
            secs(run.total) * scale / secs(seat_first.total).max(f64::EPSILON),
            secs(run.seat_percentile(1.0)) * scale,
            secs(run.seat_percentile(1.0)) * scale / last_seat.max(f64::EPSILON)
        );
    }
    Ok(())
}

/// One layoff on a fresh sandbox: the burst, every job to `succeeded`, the report.
async fn layoff_run(args: &LayoffArgs, mode: Mode) -> anyhow::Result<RunReport> {
    let seed = fleet::leavers_seed(mode.leavers, args.per_kind);
    let sandbox = Sandbox::start(SandboxOptions {
        listen: "127.0.0.1:0".parse()?,
        crm: CRM,
        token: Some(TOKEN.into()),
        rps: Some(args.rps),
        latency: Duration::from_millis(args.latency_ms),
        fault_rate: 0.0,
        seed,
        ..SandboxOptions::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot start the {} sandbox: {e}", CRM))?;
    let dir = tempfile::tempdir()?;
    let config = config(dir.path(), &sandbox, args, mode)?;
    let app = Application::build(config, Role::All).await?;
    let base = format!("http://{}", app.local_addr());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let http = reqwest::Client::new();

    let posts = (0..mode.leavers).map(|i| post_termination(&http, &base, i));
    let answers = futures::future::join_all(posts).await;
    let mut jobs: Vec<String> = Vec::with_capacity(mode.leavers);
    for answer in answers {
        jobs.push(answer?);
    }
    let started = Instant::now();
    let limit = Duration::from_secs(3600);
    loop {
        let succeeded = count_succeeded(&http, &base).await?;
        if succeeded == mode.leavers {
            break;
        }
        if started.elapsed() > limit {
            anyhow::bail!(
                "only {succeeded} of {} jobs succeeded within an hour",
                mode.leavers
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut seat_path_calls = 0;
    for job in &jobs {
        seat_path_calls += seat_path(&http, &base, job).await?;
    }
    shutdown.cancel();
    let _ = server.await;

    let state = sandbox.state();
    for i in 0..mode.leavers {
        let open = state.open_counts(leaver_id(i)).await.open_total();
        if open != 0 {
            anyhow::bail!("leaver {i} still owns {open} open records after success");
        }
    }
    let stats = state.stats();
    let log = state.request_log();
    if stats.requests > offboard_sandbox::LOG_CAPACITY as u64 {
        anyhow::bail!(
            "{} calls overflow the sandbox's request log; use fewer leavers or records",
            stats.requests
        );
    }
    let report = measure(CRM, &log, mode.leavers, seat_path_calls)?;
    sandbox.shutdown().await;
    Ok(RunReport {
        calls: stats.requests,
        throttled: stats.rate_limited,
        ..report
    })
}

fn config(
    dir: &std::path::Path,
    sandbox: &Sandbox,
    args: &LayoffArgs,
    mode: Mode,
) -> anyhow::Result<Config> {
    std::fs::write(dir.join("secrets"), SECRET)?;
    std::fs::write(dir.join("token"), TOKEN)?;
    std::fs::write(dir.join("admin"), ADMIN_TOKEN)?;
    let policy = format!("{}seat_first = {}\n", fleet::POLICY, mode.seat_first);
    std::fs::write(dir.join("policy.toml"), policy)?;
    Ok(Config::from_toml(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[store]
url = "sqlite://{dir}/offboard.db"
[crm]
kind = "{kind}"
base_url = "{base_url}"
token_env = ""
token_file = "{dir}/token"
admin_email = "{admin}"
requests_per_second = {rps}
max_in_flight = {in_flight}
seat_executor = "api"
[[sources]]
name = "hr"
scheme = "standard_webhooks"
secrets_file = "{dir}/secrets"
[policy]
file = "{dir}/policy.toml"
[admin]
token_env = ""
token_file = "{dir}/admin"
[worker]
concurrency = {concurrency}
verify_interval_secs = 1
poll_interval_ms = 50
lease_secs = 120
[safety]
max_offboardings_per_hour = {cap}
"#,
        dir = dir.display(),
        kind = CRM.as_str(),
        base_url = sandbox.base_url(),
        admin = fleet::ADMIN_EMAIL,
        rps = args.rps,
        in_flight = mode.max_in_flight,
        concurrency = mode.concurrency,
        cap = mode.leavers.max(1) * 2,
    ))?)
}

/// Posts leaver `i`'s termination; the job id it was stored as.
async fn post_termination(http: &reqwest::Client, base: &str, i: usize) -> anyhow::Result<String> {
    let body = leaver_event(i).to_string();
    let id = format!("msg_layoff_{i}");
    let ts = chrono::Utc::now().timestamp();
    let sig =
        StandardWebhooks::sign(SECRET, &id, ts, body.as_bytes()).map_err(|e| anyhow::anyhow!(e))?;
    let resp: Value = http
        .post(format!("{base}/webhooks/hr"))
        .header("webhook-id", &id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(body)
        .send()
        .await?
        .json()
        .await?;
    resp["job_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("webhook {i} refused: {resp}"))
}

async fn count_succeeded(http: &reqwest::Client, base: &str) -> anyhow::Result<usize> {
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/jobs?state=succeeded&limit=1000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http
            .get(url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await?
            .json()
            .await?;
        count += page["jobs"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(count),
        }
    }
}

/// The job's calls in the access lane up to and including its deactivation
/// (from its audit trail, in the order they were recorded).
async fn seat_path(http: &reqwest::Client, base: &str, job: &str) -> anyhow::Result<u64> {
    let detail: Value = http
        .get(format!("{base}/api/v1/jobs/{job}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let mut calls = 0;
    for entry in detail["audit"].as_array().into_iter().flatten() {
        if entry["kind"] != "crm.call" || entry["detail"]["lane"] != "access" {
            continue;
        }
        calls += 1;
        let method = entry["detail"]["method"].as_str().unwrap_or_default();
        let path = entry["detail"]["path"].as_str().unwrap_or_default();
        if is_deactivation(method, path) {
            return Ok(calls);
        }
    }
    anyhow::bail!("job {job}: no deactivation call in its audit trail")
}

/// A seat change by Pipedrive's API: `PUT /api/v1/users/{id}`.
fn is_deactivation(method: &str, path: &str) -> bool {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    method == "PUT" && path.starts_with("/api/v1/users/") && !path.ends_with("/find")
}

/// Seat and deal times from the sandbox's log, from its first call.
fn measure(
    crm: SandboxCrm,
    log: &[RequestLogEntry],
    leavers: usize,
    seat_path_calls: u64,
) -> anyhow::Result<RunReport> {
    let first = log
        .first()
        .map(|e| e.at_ms)
        .ok_or_else(|| anyhow::anyhow!("the sandbox saw no call"))?;
    let end = |e: &RequestLogEntry| Duration::from_millis((e.at_ms + e.duration_ms) - first);
    let answered = |e: &&RequestLogEntry| e.status.is_some_and(|s| (200..300).contains(&s));
    let mut seats_cut: Vec<Duration> = log
        .iter()
        .filter(answered)
        .filter(|e| is_deactivation(&e.method, &e.path))
        .map(end)
        .collect();
    seats_cut.sort();
    if seats_cut.len() != leavers {
        anyhow::bail!(
            "{} deactivations answered for {leavers} leavers",
            seats_cut.len()
        );
    }
    let deals_moved = log
        .iter()
        .filter(answered)
        .filter(|e| is_record_write(crm, &e.method, &e.path) && is_deal(&e.path))
        .map(end)
        .max()
        .unwrap_or_default();
    let total = log.iter().map(end).max().unwrap_or_default();
    Ok(RunReport {
        seats_cut,
        deals_moved,
        total,
        calls: 0,
        throttled: 0,
        seat_path_calls,
    })
}

fn is_deal(path: &str) -> bool {
    path.contains("/deals/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deactivations_are_the_seat_calls_only() {
        assert!(is_deactivation("PUT", "/api/v1/users/1003"));
        assert!(!is_deactivation("GET", "/api/v1/users/1003"));
        assert!(!is_deactivation("PATCH", "/api/v2/deals/30001"));
        assert!(!is_deactivation("PUT", "/api/v1/users/find?term=x"));
    }

    #[test]
    fn percentiles_are_of_the_sorted_seat_times() {
        let report = RunReport {
            seats_cut: (1..=10).map(Duration::from_secs).collect(),
            deals_moved: Duration::ZERO,
            total: Duration::ZERO,
            calls: 0,
            throttled: 0,
            seat_path_calls: 0,
        };
        assert_eq!(report.seat_percentile(0.5), Duration::from_secs(5));
        assert_eq!(report.seat_percentile(1.0), Duration::from_secs(10));
    }
}
