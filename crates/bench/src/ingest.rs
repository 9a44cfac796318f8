//! `offboard bench ingest`: how fast the receiver takes signed webhooks while keeping
//! its promise that a 2xx is on disk, measured against a bare axum route in the same
//! run on the same machine (the ratio is the result; absolute numbers only describe
//! the box).
//!
//! For each concurrency C it starts three fresh child processes ([`server`]): the
//! baseline, offboard with one commit per request (before group commit) and offboard
//! with group commit, and loads them in turn, in interleaved rounds, so a change in
//! the machine's background load hits all three alike. The generator ([`load`])
//! drives C keep-alive connections for a fixed time with pre-signed, distinct events
//! ([`events`]). After the rounds each offboard server is SIGKILLed and its SQLite
//! file opened: every request that got a 2xx must be there exactly once, and nothing
//! else may be — otherwise the command fails. It also reports RSS idle and under
//! load (`/proc/<pid>/status` of the server) and the time from spawn to `/readyz`.

mod events;
mod external;
mod load;
mod server;

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::Context;

pub use server::{Commit, proc_status_kib, serve_baseline};

use self::{
    events::Pool,
    load::{Load, LoadResult},
    server::Server,
};
use offboard_core::store::{self, JobFilter};

/// The goals from the issue, reported as met or not (never a failure of the command).
const GOAL_RATIO_AT_64: f64 = 0.4;
const GOAL_P99_MS: f64 = 10.0;
const GOAL_RSS_IDLE_MB: f64 = 30.0;
const GOAL_RSS_LOAD_MB: f64 = 100.0;
const GOAL_READY_MS: f64 = 300.0;

/// Arguments of `offboard bench ingest`.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// Concurrent keep-alive connections; one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: Vec<u64>,
    /// Seconds each server sends for at each concurrency.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration_secs: u64,
    /// Distinct pre-signed events per concurrency (each offboard store may use all).
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub events: u64,
    /// Interleaved rounds each server's time at a concurrency is split into.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Which commit modes to measure (the baseline always runs).
    #[arg(long, value_enum, default_value = "both")]
    pub commit: CommitArg,
    /// Load the servers with `wrk` (another process, on PATH) instead of the
    /// in-process client: C is the first `--concurrency` value (64 by default
    /// here), the events per run are `--events`, offboard runs with group commit.
    #[arg(long)]
    pub wrk: bool,
    /// Internal: serve the baseline on this address (the benchmark starts it).
    #[arg(long, hide = true)]
    pub serve_baseline: Option<std::net::SocketAddr>,
}

/// `--commit`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CommitArg {
    /// One transaction per request (before) and group commit (after).
    Both,
    /// Only one transaction per request.
    PerRequest,
    /// Only group commit.
    Group,
}

/// Runs `offboard bench ingest` (or, with `--serve-baseline`, the baseline server it
/// starts as a child process).
pub async fn run(args: IngestArgs) -> anyhow::Result<()> {
    if let Some(addr) = args.serve_baseline {
        return serve_baseline(addr).await;
    }
    let mut targets = vec![Target::Baseline];
    if matches!(args.commit, CommitArg::Both | CommitArg::PerRequest) {
        targets.push(Target::Offboard(Commit::PerRequest));
    }
    if matches!(args.commit, CommitArg::Both | CommitArg::Group) {
        targets.push(Target::Offboard(Commit::Group));
    }
    let exe = std::env::current_exe().context("cannot find the offboard binary")?;
    if args.wrk {
        // The in-process default list starts at C = 1; wrk's case is C = 64.
        let c = match args.concurrency.as_slice() {
            [1, 16, 64, 256] => 64,
            [first, ..] => *first as usize,
            [] => 64,
        };
        return external::run(
            &exe,
            c,
            Duration::from_secs(args.duration_secs),
            args.events as usize,
            args.rounds,
        )
        .await;
    }
    run_with(&IngestOptions {
        concurrency: args.concurrency.iter().map(|&c| c as usize).collect(),
        duration: Duration::from_secs(args.duration_secs),
        events: args.events as usize,
        targets,
        rounds: args.rounds,
        exe,
    })
    .await
}

/// What to run.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Concurrent connections, one run each.
    pub concurrency: Vec<usize>,
    /// How long each run sends.
    pub duration: Duration,
    /// Distinct pre-signed events per C; each offboard server (a fresh store) may use
    /// all of them, and stops early, saying so, when it has.
    pub events: usize,
    /// Which servers to measure at each C.
    pub targets: Vec<Target>,
    /// Each server's time at a C is split into this many slices, interleaved with
    /// the other servers' (fairer on a machine whose background load changes).
    pub rounds: u32,
    /// The `offboard` binary to start the servers from (normally this one).
    pub exe: PathBuf,
}

/// A server under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A bare axum route answering 202.
    Baseline,
    /// offboard as a receiver.
    Offboard(Commit),
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Target::Baseline => "baseline (bare axum 202)",
            Target::Offboard(Commit::PerRequest) => "offboard, commit per request",
            Target::Offboard(Commit::Group) => "offboard, group commit",
        }
    }
}

/// One run's numbers.
struct Row {
    concurrency: usize,
    target: Target,
    load: LoadResult,
    ready: Duration,
    rss_idle_kib: Option<u64>,
    rss_load_kib: Option<u64>,
    /// Mean requests per group commit (from the receiver's `/metrics`).
    group_size: Option<f64>,
    check: Option<Check>,
}

/// The zero-lost-events check of one offboard run.
#[derive(Debug)]
struct Check {
    accepted: usize,
    stored: usize,
    missing: Vec<String>,
    unexplained: Vec<String>,
    repeated: usize,
}

impl Check {
    fn ok(&self) -> bool {
        self.missing.is_empty() && self.unexplained.is_empty() && self.repeated == 0
    }
}

/// Runs the benchmark and prints the report; an error if an event was lost.
pub async fn run_with(opts: &IngestOptions) -> anyhow::Result<()> {
    anyhow::ensure!(opts.events > 0, "--events must be at least 1");
    anyhow::ensure!(opts.rounds > 0, "--rounds must be at least 1");
    println!("{}", machine());
    if cfg!(debug_assertions) {
        println!("warning: a debug build; measure with `cargo run --release -- bench ingest`");
    }
    println!(
        "{} s per server and C, in {} interleaved rounds; offboard: receiver child process, fresh SQLite file, synchronous=FULL\n",
        opts.duration.as_secs_f64(),
        opts.rounds
    );
    let mut rows = Vec::new();
    for &c in &opts.concurrency {
        let measured = measure(opts, c).await.with_context(|| format!("C={c}"))?;
        for row in measured {
            println!("{}", progress_line(&row));
            rows.push(row);
        }
    }
    println!();
    print!("{}", table(&rows));
    println!();
    print!("{}", summary(&rows));
    let failed: Vec<&Row> = rows
        .iter()
        .filter(|r| r.check.as_ref().is_some_and(|c| !c.ok()))
        .collect();
    if !failed.is_empty() {
        for r in &failed {
            if let Some(c) = &r.check {
                eprintln!(
                    "LOST EVENTS at C={} ({}): {} accepted, {} stored, {} missing (e.g. {:?}), {} stored without a 2xx or an error (e.g. {:?}), {} stored more than once",
                    r.concurrency,
                    r.target.label(),
                    c.accepted,
                    c.stored,
                    c.missing.len(),
                    c.missing.first(),
                    c.unexplained.len(),
                    c.unexplained.first(),
                    c.repeated
                );
            }
        }
        anyhow::bail!("the store does not hold exactly one event per accepted request");
    }
    Ok(())
}

/// One server being measured at one C.
struct Running {
    target: Target,
    server: Server,
    /// The next pool index this server gets (ids never repeat within its store).
    next: Arc<AtomicUsize>,
    result: LoadResult,
    rss_idle_kib: Option<u64>,
    rss_load_kib: u64,
}

/// Starts every target fresh, loads them in interleaved rounds (so a change in the
/// machine's background load hits all of them alike), kills them, checks the stores.
async fn measure(opts: &IngestOptions, concurrency: usize) -> anyhow::Result<Vec<Row>> {
    // One pool serves every server: dedupe is per store, and each store is fresh.
    let pool = Arc::new(Pool::new(
        &uuid::Uuid::now_v7().simple().to_string()[20..],
        opts.events,
    )?);
    let mut running = Vec::with_capacity(opts.targets.len());
    for &target in &opts.targets {
        let server = match target {
            Target::Baseline => Server::baseline(&opts.exe).await,
            Target::Offboard(commit) => Server::offboard(&opts.exe, commit).await,
        }
        .with_context(|| format!("starting {}", target.label()))?;
        running.push(Running {
            target,
            server,
            next: Arc::new(AtomicUsize::new(0)),
            result: LoadResult::default(),
            rss_idle_kib: None,
            rss_load_kib: 0,
        });
    }
    // Let start-up allocations settle before calling it idle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for r in &mut running {
        r.rss_idle_kib = r.server.rss_kib();
    }
    let slice = opts.duration / opts.rounds;
    let n = running.len();
    for round in 0..opts.rounds as usize {
        for j in 0..n {
            let r = &mut running[(round + j) % n];
            let load = Load {
                addr: r.server.addr,
                path: "/webhooks/bench".into(),
                concurrency,
                duration: slice,
                // The baseline stores nothing, so it may reuse events.
                cycle: r.target == Target::Baseline,
            };
            let (result, rss) =
                sampled(&r.server, load::drive(&load, pool.clone(), r.next.clone())).await;
            r.result
                .merge(result.with_context(|| format!("loading {}", r.target.label()))?);
            r.rss_load_kib = r.rss_load_kib.max(rss);
        }
    }
    let mut rows = Vec::with_capacity(n);
    for r in running {
        // The peak includes start-up; the samples only the run. Report the larger.
        let rss_load_kib = r.server.peak_rss_kib().unwrap_or(0).max(r.rss_load_kib);
        let ready = r.server.ready_after;
        let group_size = match r.target {
            Target::Offboard(Commit::Group) => mean_group_size(&r.server).await,
            _ => None,
        };
        let killed = r.server.kill().await?;
        let result = r.result.sorted();
        let check = match (r.target, &killed.store_url) {
            (Target::Offboard(_), Some(url)) => Some(check_store(url, &pool, &result).await?),
            _ => None,
        };
        rows.push(Row {
            concurrency,
            target: r.target,
            load: result,
            ready,
            rss_idle_kib: r.rss_idle_kib,
            rss_load_kib: (rss_load_kib > 0).then_some(rss_load_kib),
            group_size,
            check,
        });
    }
    Ok(rows)
}

/// Requests per group commit, from the receiver's metrics.
async fn mean_group_size(server: &Server) -> Option<f64> {
    let (_, text) = load::get(server.addr, "/metrics").await.ok()?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
    };
    let requests = value("offboard_store_group_commit_requests_total")?;
    let commits = value("offboard_store_group_commits_total")?;
    (commits > 0.0).then(|| requests / commits)
}

/// Runs `work` while sampling the server's RSS every 50 ms; the result and the
/// largest sample (KiB).
async fn sampled<T>(server: &Server, work: impl Future<Output = T>) -> (T, u64) {
    let sampling = Arc::new(AtomicBool::new(true));
    let max_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (sampling, max_rss, pid) = (sampling.clone(), max_rss.clone(), server.pid());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(kib) = server::proc_status_kib(pid, "VmRSS") {
                    max_rss.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let out = work.await;
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    (out, max_rss.load(Ordering::Relaxed))
}

/// Opens the killed receiver's store and compares it with what was acknowledged.
async fn check_store(url: &str, pool: &Pool, result: &LoadResult) -> anyhow::Result<Check> {
    let store = store::open_with(url, "full", false)
        .await
        .with_context(|| format!("opening {url}"))?;
    let mut stored = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_jobs(&JobFilter {
                limit: Some(1000),
                before: before.clone(),
                ..Default::default()
            })
            .await
            .context("listing stored jobs")?;
        let Some(last) = page.last() else { break };
        before = Some(last.id.clone());
        stored.extend(page.into_iter().map(|j| j.event_id));
    }
    let stored_set: HashSet<&str> = stored.iter().map(String::as_str).collect();
    let accepted: Vec<String> = result.accepted.iter().map(|&i| pool.id(i)).collect();
    let accepted_set: HashSet<&str> = accepted.iter().map(String::as_str).collect();
    let unanswered: HashSet<String> = result.unanswered.iter().map(|&i| pool.id(i)).collect();
    Ok(Check {
        accepted: accepted.len(),
        stored: stored.len(),
        missing: accepted
            .iter()
            .filter(|id| !stored_set.contains(id.as_str()))
            .cloned()
            .collect(),
        unexplained: stored_set
            .iter()
            .filter(|id| !accepted_set.contains(*id) && !unanswered.contains(**id))
            .map(|id| (*id).to_owned())
            .collect(),
        // One job per event id, one 2xx per event id.
        repeated: (stored.len() - stored_set.len()) + (accepted.len() - accepted_set.len()),
    })
}

fn mb(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1}", k as f64 / 1024.0))
        .unwrap_or_else(|| "n/a".into())
}

fn progress_line(r: &Row) -> String {
    format!(
        "C={:<4} {:<30} {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  [{}]{}",
        r.concurrency,
        r.target.label(),
        r.load.rate(),
        r.load.quantile_ms(0.5),
        r.load.quantile_ms(0.99),
        r.load.quantile_ms(1.0),
        r.load.status_summary(),
        if r.load.exhausted {
            "  (event pool used up: raise --events)"
        } else {
            ""
        }
    )
}

/// The baseline row measured at the same C.
fn baseline_for(rows: &[Row], c: usize) -> Option<&Row> {
    rows.iter()
        .find(|r| r.concurrency == c && r.target == Target::Baseline)
}

fn ratio(rows: &[Row], r: &Row) -> Option<f64> {
    baseline_for(rows, r.concurrency).map(|b| r.load.rate() / b.load.rate().max(1e-9))
}

/// A Markdown table (pasteable into BENCHMARKS.md).
fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| C | server | req/s | × baseline | p50 ms | p99 ms | max ms | statuses | requests per commit | RSS idle / load MB | ready ms | stored = accepted |\n\
         |---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|\n",
    );
    for r in rows {
        let ratio = match r.target {
            Target::Baseline => "1".to_owned(),
            _ => ratio(rows, r)
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "n/a".into()),
        };
        let check = match &r.check {
            None => "—".to_owned(),
            Some(c) if c.ok() => format!("yes ({})", c.stored),
            Some(c) => format!(
                "**NO**: {} accepted, {} stored, {} missing",
                c.accepted,
                c.stored,
                c.missing.len()
            ),
        };
        out.push_str(&format!(
            "| {} | {} | {:.0}{} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {} / {} | {:.0} | {} |\n",
            r.concurrency,
            r.target.label(),
            r.load.rate(),
            if r.load.exhausted {
                " (pool used up)"
            } else {
                ""
            },
            ratio,
            r.load.quantile_ms(0.5),
            r.load.quantile_ms(0.99),
            r.load.quantile_ms(1.0),
            r.load.status_summary(),
            match (r.target, r.group_size) {
                (Target::Offboard(Commit::PerRequest), _) => "1".to_owned(),
                (_, Some(g)) => format!("{g:.1}"),
                _ => "—".to_owned(),
            },
            mb(r.rss_idle_kib),
            mb(r.rss_load_kib),
            r.ready.as_secs_f64() * 1000.0,
            check,
        ));
    }
    out
}

/// RSS, ready time and the goals, each said to be met or not.
fn summary(rows: &[Row]) -> String {
    let offboard: Vec<&Row> = rows
        .iter()
        .filter(|r| matches!(r.target, Target::Offboard(_)))
        .collect();
    let mut out = String::new();
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    if let Some(r) = rows
        .iter()
        .find(|r| r.concurrency == 64 && r.target == Target::Offboard(Commit::Group))
        && let Some(x) = ratio(rows, r)
    {
        out.push_str(&format!(
            "goal: ≥ {GOAL_RATIO_AT_64}× baseline req/s at C=64 (group commit): {x:.2}× — {}\n",
            verdict(x >= GOAL_RATIO_AT_64)
        ));
        let p99 = r.load.quantile_ms(0.99);
        out.push_str(&format!(
            "goal: p99 ≤ {GOAL_P99_MS} ms at C=64 (group commit): {p99:.2} ms — {}\n",
            verdict(p99 <= GOAL_P99_MS)
        ));
    }
    let max_mb = |f: fn(&Row) -> Option<u64>| {
        offboard
            .iter()
            .filter_map(|r| f(r))
            .max()
            .map(|k| k as f64 / 1024.0)
    };
    if let Some(idle) = max_mb(|r| r.rss_idle_kib) {
        out.push_str(&format!(
            "goal: RSS idle ≤ {GOAL_RSS_IDLE_MB} MB: at most {idle:.1} MB — {}\n",
            verdict(idle <= GOAL_RSS_IDLE_MB)
        ));
    }
    if let Some(load) = max_mb(|r| r.rss_load_kib) {
        out.push_str(&format!(
            "goal: RSS under load ≤ {GOAL_RSS_LOAD_MB} MB: at most {load:.1} MB (peak of any run) — {}\n",
            verdict(load <= GOAL_RSS_LOAD_MB)
        ));
    }
    let mut ready: Vec<f64> = offboard
        .iter()
        .map(|r| r.ready.as_secs_f64() * 1000.0)
        .collect();
    ready.sort_by(f64::total_cmp);
    if let (Some(median), Some(worst)) = (ready.get(ready.len() / 2), ready.last()) {
        out.push_str(&format!(
            "goal: ready ≤ {GOAL_READY_MS} ms after start: median {median:.0} ms, worst {worst:.0} ms of {} starts (fresh store, migrations included) — {}\n",
            ready.len(),
            verdict(*worst <= GOAL_READY_MS)
        ));
    }
    let checked = offboard.iter().filter(|r| r.check.is_some()).count();
    let lost = offboard
        .iter()
        .filter(|r| r.check.as_ref().is_some_and(|c| !c.ok()))
        .count();
    out.push_str(&format!(
        "zero lost events: {} ({checked} offboard runs checked after SIGKILL)\n",
        if lost == 0 {
            "yes".to_owned()
        } else {
            format!("NO, in {lost} runs")
        }
    ));
    out
}

/// `2 cores (Intel(R) Xeon(R) Processor)`.
pub(crate) fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("machine: {cores} cores ({model}); load generator and servers share them on loopback")
}
