//! `offboard bench soak`: a bounded soak anyone can run. The benchmarks measure
//! one thing at a time on a quiet system; this runs the whole service for a while
//! with everything going wrong at once, and then checks that it kept its promises.
//!
//! What runs, all from this very binary and against one store (a temp SQLite file,
//! or a fresh schema of `--store postgres://…`):
//!
//! - `offboard serve --role receiver` for the whole soak, and `--role worker`,
//!   SIGKILLed every `--kill-every-secs` and started again at once ([`control`]);
//! - an in-process Sell sandbox with `--fault-rate` of its answers a 500, a 503 or
//!   a dropped connection and `--latency-ms` per call, holding one leaver per
//!   webhook with a few open records, and the Sell admin who deactivates a user
//!   as soon as offboard's task asks ([`fleet::play_admin`]);
//! - signed webhooks at `--rate` per second ([`traffic`]): new terminations,
//!   honest retries (→ 200 duplicate) and `--hostile-share` hostile posts (bad
//!   signature, stale timestamp, malformed JSON, oversized body, unknown source, id
//!   conflict), each of which must get its 4xx and store nothing;
//! - SIGHUP to both processes every `--reload-every-secs`, alternating two valid
//!   policy files (the same decisions under rule names of their own, so each
//!   decision says which file made it), and once a file that must be refused while
//!   the old policy stays.
//!
//! Then the load stops, the worker drains (bounded by `--drain-secs`), both
//! processes get SIGTERM, and [`checks`] decides: every 2xx event stored exactly
//! once with a job, hostile posts stored nothing, every job where its leaver's
//! kind says (normal → `succeeded`, legal hold → `needs_review` by the policy, an
//! e-mail the CRM does not know → `succeeded` "no CRM user"; a job still waiting
//! out a retry's backoff after a CRM fault is reported, not failed), no job left
//! `running`, the CRM agreeing (deactivated, nothing open left, one admin task
//! each), every decision made with the policy in force, the receiver's and the
//! worker's RSS within `--rss-tolerance` between the window after warm-up and the
//! last one, and no "panicked" in any child's log. It prints the figures and the
//! checks as Markdown tables and exits 1 when a check fails (the temp directory
//! with the store and every log is then kept and named).

mod checks;
mod control;
mod traffic;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use self::{
    checks::{Check, RssWindows},
    control::{Chaos, ControlReport, Processes},
    traffic::Traffic,
};
use crate::{
    fleet::{self, FleetConfig},
    scaling,
};
use offboard_core::{
    domain::JobState,
    policy::Policy,
    store::{self, JobFilter, SharedStore},
};
use offboard_sandbox::{Sandbox, SandboxOptions};

/// Open records of each kind (leads, contacts, deals, tasks) per leaver.
const PER_KIND: usize = 1;

/// How long past `--drain-secs` a job still moving is waited for.
const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// Arguments of `offboard bench soak`.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// How long the load runs, in minutes (fractions allowed: 0.5 is 30 s).
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Webhooks per second, hostile ones included.
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// Share of the webhooks that are hostile (0.0–1.0).
    #[arg(long, default_value_t = 0.05)]
    pub hostile_share: f64,
    /// Share of the other webhooks that re-send an earlier event (an HR
    /// system's retry: 200 duplicate).
    #[arg(long, default_value_t = 0.02)]
    pub duplicate_share: f64,
    /// Share of the sandbox's answers that are a 500, a 503 or a dropped connection.
    #[arg(long, default_value_t = 0.10)]
    pub fault_rate: f64,
    /// Latency the sandbox adds to every call, in ms.
    #[arg(long, default_value_t = 50)]
    pub latency_ms: u64,
    /// SIGKILL the worker this often, in seconds (0: never).
    #[arg(long, default_value_t = 60.0)]
    pub kill_every_secs: f64,
    /// SIGHUP both processes (a policy reload) this often, in seconds; default a
    /// third of `--kill-every-secs` (20 s), 0: never.
    #[arg(long)]
    pub reload_every_secs: Option<f64>,
    /// `sqlite` (a temp file) or a `postgres://…` URL (a schema is created and,
    /// when the soak passes, dropped).
    #[arg(long, default_value = "sqlite")]
    pub store: String,
    /// `[worker] lease_secs`: how soon a killed worker's jobs are taken up again.
    #[arg(long, default_value_t = 10)]
    pub lease_secs: u64,
    /// After the load, wait for the retries due within this many seconds; a job
    /// still moving at the end of it (a retry that just fired, a verification)
    /// gets at most 30 s more.
    #[arg(long, default_value_t = 120.0)]
    pub drain_secs: f64,
    /// Read each process's RSS this often, in seconds.
    #[arg(long, default_value_t = 2.0)]
    pub rss_every_secs: f64,
    /// Allowed RSS drift between the window after warm-up and the last one.
    #[arg(long, default_value_t = 0.10)]
    pub rss_tolerance: f64,
    /// Keep the store and the logs in this directory (default: a temp directory,
    /// removed when every check passed).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

impl SoakArgs {
    fn validate(&self) -> anyhow::Result<()> {
        let share = |name: &str, v: f64| {
            anyhow::ensure!(
                (0.0..=1.0).contains(&v),
                "{name}: expected a share between 0.0 and 1.0, got {v}"
            );
            Ok(())
        };
        share("--hostile-share", self.hostile_share)?;
        share("--duplicate-share", self.duplicate_share)?;
        share("--fault-rate", self.fault_rate)?;
        anyhow::ensure!(
            self.minutes > 0.0 && self.minutes.is_finite(),
            "--minutes must be more than 0"
        );
        anyhow::ensure!(
            self.rate > 0.0 && self.rate <= 1000.0,
            "--rate must be more than 0 and at most 1000"
        );
        anyhow::ensure!(
            self.kill_every_secs >= 0.0 && self.kill_every_secs.is_finite(),
            "--kill-every-secs must be 0 (never) or more"
        );
        anyhow::ensure!(
            self.reload_every_secs
                .is_none_or(|r| r >= 0.0 && r.is_finite()),
            "--reload-every-secs must be 0 (never) or more"
        );
        anyhow::ensure!(
            self.lease_secs >= 3,
            "--lease-secs must be at least 3 (as worker.lease_secs)"
        );
        anyhow::ensure!(
            self.rss_every_secs >= 0.1 && self.rss_every_secs.is_finite(),
            "--rss-every-secs must be at least 0.1"
        );
        anyhow::ensure!(
            self.drain_secs >= 0.0 && self.drain_secs.is_finite(),
            "--drain-secs must be 0 or more"
        );
        anyhow::ensure!(
            self.rss_tolerance >= 0.0,
            "--rss-tolerance must be 0 or more"
        );
        Ok(())
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.minutes * 60.0)
    }

    fn chaos(&self) -> Chaos {
        let every = |s: f64| (s > 0.0).then(|| Duration::from_secs_f64(s));
        let kill_every = every(self.kill_every_secs);
        let reload_every = match self.reload_every_secs {
            Some(s) => every(s),
            None if self.kill_every_secs > 0.0 => every(self.kill_every_secs / 3.0),
            None => every(20.0),
        };
        Chaos {
            kill_every,
            reload_every,
            rss_every: Duration::from_secs_f64(self.rss_every_secs),
            invalid_hold: reload_every
                .map_or(Duration::ZERO, |r| (r / 2).min(Duration::from_secs(5))),
        }
    }

    fn rss_windows(&self) -> RssWindows {
        let d = self.duration().as_secs_f64();
        RssWindows {
            warmup: (d * 0.2).min(60.0),
            window: (d * 0.25).min(60.0),
            end: d,
            settle: if self.kill_every_secs > 0.0 {
                (self.kill_every_secs / 2.0).min(10.0)
            } else {
                10.0
            },
        }
    }
}

/// The machine and what else keeps it busy.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, load average {}", load_average())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// Runs the soak, prints the figures and the checks; an error when a check failed.
pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    args.validate()?;
    let exe = std::env::current_exe().context("cannot find the offboard binary")?;
    let (dir, temp) = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            (d.clone(), None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("offboard-soak-")
                .tempdir()?;
            (t.path().to_owned(), Some(t))
        }
    };
    let (store_url, schema) = if args.store == "sqlite" {
        (
            format!("sqlite://{}", dir.join("offboard.db").display()),
            None,
        )
    } else if args.store.starts_with("postgres://") || args.store.starts_with("postgresql://") {
        let (schema, url) = scaling::create_schema(&args.store, "offboard_soak").await?;
        (url, Some(schema))
    } else {
        bail!("--store: expected sqlite or a postgres:// URL");
    };
    let result = soak(&args, &exe, &dir, &store_url).await;
    let passed = matches!(&result, Ok(checks) if checks.iter().all(|c| c.ok));
    if let Some(schema) = &schema {
        if passed {
            if let Err(e) = scaling::drop_schema(&args.store, schema).await {
                eprintln!("could not drop schema {schema}: {e:#}");
            }
        } else {
            println!("kept the PostgreSQL schema {schema}");
        }
    }
    match temp {
        Some(t) if !passed => println!("kept the store and logs in {}", t.keep().display()),
        Some(_) => {}
        None => println!("the store and logs are in {}", dir.display()),
    }
    let checks = result?;
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    if !failed.is_empty() {
        bail!(
            "the soak failed {} checks: {}",
            failed.len(),
            failed.join("; ")
        );
    }
    Ok(())
}

async fn soak(
    args: &SoakArgs,
    exe: &Path,
    dir: &Path,
    store_url: &str,
) -> anyhow::Result<Vec<Check>> {
    let duration = args.duration();
    let chaos = args.chaos();
    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
    // One leaver per post at most (retries and hostile posts use none).
    let leavers = (duration.as_secs_f64() * args.rate).ceil() as usize + 8;
    println!(
        "soak: {:.1} min at {} webhooks/s ({:.0} % hostile, {:.0} % retries), sandbox {:.0} % faults and {} ms latency, worker SIGKILLed every {}, SIGHUP every {}, lease {} s, store {}",
        args.minutes,
        args.rate,
        args.hostile_share * 100.0,
        args.duplicate_share * 100.0,
        args.fault_rate * 100.0,
        args.latency_ms,
        chaos
            .kill_every
            .map_or("never".to_owned(), |d| format!("{:.0} s", d.as_secs_f64())),
        chaos
            .reload_every
            .map_or("never".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
        args.lease_secs,
        if args.store == "sqlite" {
            "SQLite"
        } else {
            "PostgreSQL"
        },
    );
    println!("machine: {}", machine());
    if cfg!(debug_assertions) {
        println!("note: a debug build; the soak of RELIABILITY.md runs the release build");
    }

    let sandbox = Sandbox::start(SandboxOptions {
        token: Some(fleet::SELL_TOKEN.into()),
        latency: Duration::from_millis(args.latency_ms),
        fault_rate: args.fault_rate,
        seed: fleet::leavers_seed(leavers, PER_KIND),
        ..SandboxOptions::default()
    })
    .await
    .context("sandbox")?;
    let config = FleetConfig {
        store_url: store_url.to_owned(),
        sell_base_url: sandbox.base_url(),
        // The sandbox has no limit; the budget should not bind either.
        requests_per_second: 200,
        max_in_flight: 8,
        concurrency: 4,
        lease_secs: args.lease_secs,
        // SQLite has no NOTIFY between processes: the worker polls.
        poll_interval_ms: 100,
    }
    .write(dir)?;
    let policy_file = dir.join("policy.toml");
    std::fs::write(&policy_file, control::policy('A'))?;
    let version = |name| {
        Policy::parse(&control::policy(name), "soak")
            .map(|p| p.version().to_owned())
            .map_err(|e| anyhow::anyhow!("soak policy {name}: {e}"))
    };
    let versions = (version('A')?, version('B')?);
    let log_dir = dir.join("logs");
    std::fs::create_dir_all(&log_dir)?;

    // Migrated before the processes start, so they don't race to do it.
    let store = store::open(store_url, "full").await?;
    store.migrate().await?;

    let (procs, logs) = Processes::start(exe, &config, &policy_file, &log_dir).await?;
    let stop_admin = CancellationToken::new();
    let _stop_admin_on_error = stop_admin.clone().drop_guard();
    let admin = tokio::spawn(fleet::play_admin(
        sandbox.state(),
        Duration::from_millis(250),
        stop_admin.clone(),
    ));

    let started = Instant::now();
    let stop = CancellationToken::new();
    let traffic = Traffic {
        base_url: procs.receiver.url(),
        run: run.clone(),
        rate: args.rate,
        hostile_share: args.hostile_share,
        duplicate_share: args.duplicate_share,
        leavers,
    };
    let load = {
        let stop = stop.clone();
        tokio::spawn(async move { traffic.run(stop).await })
    };
    let chaos_task = tokio::spawn(control::run(
        procs,
        ControlReport {
            logs,
            versions: versions.clone(),
            ..ControlReport::default()
        },
        chaos,
        store.clone(),
        started,
        stop.clone(),
    ));
    // Progress, about ten lines per run.
    let every = (duration / 10).max(Duration::from_secs(5));
    while started.elapsed() < duration {
        let left = duration.saturating_sub(started.elapsed());
        tokio::time::sleep(left.min(every)).await;
        eprintln!(
            "  {:>5.0} s: jobs {}; load average {}",
            started.elapsed().as_secs_f64(),
            states_line(&store).await,
            load_average()
        );
    }
    stop.cancel();
    let load_secs = started.elapsed().as_secs_f64();
    let sent = load.await.context("the load generator")?;
    let (mut procs, control) = chaos_task.await.context("the chaos task")?;

    // Drain: the worker finishes what it can; a job in a retry's backoff beyond
    // the bound is where it should be, and waiting would not change it. One that
    // is moving at the bound (its retry just fired) is waited for, a little.
    let drain_started = Instant::now();
    let hard_stop = drain_started + Duration::from_secs_f64(args.drain_secs) + DRAIN_GRACE;
    let deadline_utc =
        Utc::now() + chrono::Duration::milliseconds((args.drain_secs * 1000.0) as i64);
    loop {
        if drained(&store, deadline_utc).await? || Instant::now() >= hard_stop {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    let drained_at = Utc::now();
    stop_admin.cancel();
    let _ = admin.await;
    let stopped = procs.stop(Duration::from_secs(30)).await;
    let mut logs = control.logs.clone();
    logs.sort();
    logs.dedup();

    let jobs = checks::load_jobs(&store).await?;
    let (answers, mut all) = checks::answers(&sent);
    let (stored, c) = checks::store_matches(&sent, &jobs);
    all.extend(c);
    let (states, c) = checks::states(&run, &jobs, drained_at);
    all.extend(c);
    all.push(checks::crm(&run, &jobs, &sandbox.state(), PER_KIND).await);
    let (decisions, c) = checks::decisions(&jobs, &control.reloads, &control.versions);
    all.extend(c);
    let mut windows = args.rss_windows();
    windows.end = load_secs;
    let (rss_receiver, rss_worker, c) = checks::rss(&control.rss, windows, args.rss_tolerance);
    all.extend(c);
    all.push(checks::panics(&logs));
    all.push(checks::processes(&control, &stopped));
    let crm_stats = sandbox.state().stats();
    sandbox.shutdown().await;

    println!();
    println!("| figure | value |");
    println!("|---|---|");
    let row = |k: &str, v: String| println!("| {k} | {} |", v.replace('|', "\\|"));
    row(
        "load",
        format!(
            "{load_secs:.0} s, {} webhooks ({:.2}/s), then {drain_secs:.0} s of drain",
            answers.sent,
            answers.sent as f64 / load_secs.max(1e-9)
        ),
    );
    row(
        "genuine webhooks accepted",
        format!(
            "{} (202 new {}, 200 duplicate {}); unanswered {}",
            answers.accepted, answers.new, answers.duplicates, answers.unanswered
        ),
    );
    row(
        "hostile webhooks rejected as expected",
        answers
            .hostile
            .iter()
            .map(|(h, (n, ok))| format!("{} {ok}/{n}", h.label()))
            .collect::<Vec<_>>()
            .join(", "),
    );
    row(
        "accepted event ids / jobs stored / lost",
        format!(
            "{} / {} / {}",
            stored.accepted_ids, stored.jobs, stored.lost
        ),
    );
    row(
        "jobs by final state",
        states
            .by_state
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    row(
        "jobs by leaver kind",
        states
            .by_kind
            .iter()
            .map(|((k, s), n)| format!("{k} → {s} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    row(
        "runs cut short by a SIGKILL (claims without a run.ended) / jobs they hit",
        format!("{} / {}", states.cut_runs, states.cut_jobs),
    );
    if let Some(max) = states.to_success.last() {
        let q = |p: f64| {
            let i =
                ((states.to_success.len() as f64 * p) as usize).min(states.to_success.len() - 1);
            states.to_success[i].as_secs_f64()
        };
        row(
            "stored → succeeded (p50 / p90 / p99 / max)",
            format!(
                "{:.1} / {:.1} / {:.1} / {:.1} s",
                q(0.5),
                q(0.9),
                q(0.99),
                max.as_secs_f64()
            ),
        );
    }
    row(
        "jobs in a retry's backoff after a CRM fault at the end",
        if states.retrying_why.is_empty() {
            states.retrying.to_string()
        } else {
            format!("{} ({})", states.retrying, states.retrying_why.join("; "))
        },
    );
    row(
        "worker SIGKILLs / jobs running at the kills / worker processes",
        format!(
            "{} / {} / {}",
            control.kills.len(),
            control.kills.iter().map(|k| k.running).sum::<u64>(),
            procs.incarnations
        ),
    );
    let restarts: Vec<f64> = control
        .kills
        .iter()
        .filter_map(|k| k.restarted_in)
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    if !restarts.is_empty() {
        row(
            "worker restart, spawn → ready",
            format!(
                "mean {:.0} ms, max {:.0} ms",
                restarts.iter().sum::<f64>() / restarts.len() as f64,
                restarts.iter().copied().fold(0.0, f64::max)
            ),
        );
    }
    row(
        "SIGHUPs: valid / invalid (refused)",
        format!(
            "{} / {}",
            control
                .reloads
                .iter()
                .filter(|r| r.version.is_some())
                .count(),
            control
                .reloads
                .iter()
                .filter(|r| r.version.is_none())
                .count()
        ),
    );
    row(
        "decisions by policy",
        format!(
            "A {}, B {}; {} within 2 s of a reload, {} while the invalid file was in place",
            decisions.by_version.get(&versions.0).unwrap_or(&0),
            decisions.by_version.get(&versions.1).unwrap_or(&0),
            decisions.at_a_reload,
            decisions.during_invalid
        ),
    );
    row(
        "CRM calls / faults injected",
        format!("{} / {}", crm_stats.requests, crm_stats.faults),
    );
    for (name, r) in [("receiver", &rss_receiver), ("worker", &rss_worker)] {
        if let Some(r) = r {
            row(
                &format!("{name} RSS: first / after warm-up / last window / max"),
                format!(
                    "{:.1} / {:.1} / {:.1} / {:.1} MB → drift {:+.1} %",
                    r.first_kib as f64 / 1024.0,
                    r.early_kib / 1024.0,
                    r.late_kib / 1024.0,
                    r.max_kib as f64 / 1024.0,
                    r.drift() * 100.0
                ),
            );
        }
    }
    row(
        "RSS windows (s since the load started)",
        format!(
            "{:.0}–{:.0} against {:.0}–{:.0}; worker samples from {:.0} s after each start",
            windows.warmup,
            windows.warmup + windows.window,
            windows.end - windows.window,
            windows.end,
            windows.settle
        ),
    );
    row("machine at the end", machine());
    println!();
    println!("| check | result | figures |");
    println!("|---|---|---|");
    for c in &all {
        println!(
            "| {} | {} | {} |",
            c.name,
            if c.ok { "pass" } else { "**FAIL**" },
            c.detail.replace('|', "\\|")
        );
    }
    println!();
    let failed = all.iter().filter(|c| !c.ok).count();
    println!(
        "soak: {} of {} checks passed",
        all.len() - failed,
        all.len()
    );
    Ok(all)
}

/// `queued 3, running 1, …`.
async fn states_line(store: &SharedStore) -> String {
    match store.count_by_state().await {
        Ok(c) => c
            .iter()
            .map(|(s, n)| format!("{} {n}", s.as_str()))
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => format!("(store: {e})"),
    }
}

/// Nothing queued or running, and every scheduled job waits out a retry's
/// backoff past `deadline` (so waiting until then would not change it); a
/// verification poll or a retry due before `deadline` is still to be waited for.
async fn drained(store: &SharedStore, deadline: chrono::DateTime<Utc>) -> anyhow::Result<bool> {
    let counts = store.count_by_state().await?;
    let busy = [JobState::Queued, JobState::Running]
        .iter()
        .any(|s| counts.get(s).copied().unwrap_or(0) > 0);
    if busy {
        return Ok(false);
    }
    let scheduled = store
        .list_jobs(&JobFilter {
            state: Some(JobState::Scheduled),
            limit: Some(10_000),
            ..Default::default()
        })
        .await?;
    Ok(scheduled
        .iter()
        .all(|j| j.failures > 0 && j.run_at > deadline))
}
