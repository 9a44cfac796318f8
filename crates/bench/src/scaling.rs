//! `offboard bench scaling`: how job throughput grows with worker processes on one
//! PostgreSQL store, next to one worker on SQLite, and what the shared CRM budget
//! costs per permit.
//!
//! Each run starts a fresh sandbox (no rate limit, and by default no latency: the
//! CRM is not the bottleneck; `--latency-ms` makes it answer like a real one), a fresh store (a new PostgreSQL schema, or a temp SQLite file), K
//! `offboard serve --role worker` processes of this very binary, and a Sell admin
//! who deactivates each leaver as soon as offboard's task asks. Once every worker is
//! ready, the benchmark ingests all jobs at once (straight into the store: the
//! receiver is not what is measured) and clocks until every job has succeeded.
//! Throughput = jobs / that time. A job is two runs (reassign + ask the admin, then
//! the verification one second later), so a run's time includes that second once.
//!
//! The permit cost is measured apart: sequential `acquire()` on a budget whose rate
//! never makes anyone wait, so what is left is the database round-trip (per batch).
//!
//! Ratios are against the 1-worker PostgreSQL run of the same invocation; with
//! `--repeat N` each configuration runs N times and the fastest run counts.

use std::{
    path::PathBuf,
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chrono::Utc;
use sha2::{Digest, Sha256};
use sqlx::{Connection, postgres::PgPoolOptions};
use tokio_util::sync::CancellationToken;

use super::fleet::{self, FleetConfig, Replica};
use offboard_core::{
    crm::pacing::{BudgetSettings, LocalBudget, RateBudget},
    domain::{JobState, OffboardingEvent},
    store::{
        self, NewEvent,
        postgres_budget::{PgBudget, SharedBudgetOptions},
    },
};
use offboard_sandbox::{Sandbox, SandboxOptions};

/// Arguments of `offboard bench scaling`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScalingArgs {
    /// Offboardings per run (one leaver each).
    #[arg(long, default_value_t = 300)]
    pub jobs: usize,
    /// Open records of each kind (leads, contacts, deals, tasks) per leaver.
    #[arg(long, default_value_t = 2)]
    pub per_kind: usize,
    /// Worker-process counts to run on PostgreSQL.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub workers: Vec<usize>,
    /// The PostgreSQL server (a schema is created and dropped per run); default
    /// `OFFBOARD_BENCH_POSTGRES_URL`, then `OFFBOARD_TEST_POSTGRES_URL`.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Latency the sandbox adds to every call, in ms (0: the CPU-bound case the
    /// issue asks for; Sell itself answers in 100–300 ms, where a worker mostly waits).
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// `[crm] requests_per_second` of the workers (the sandbox has no limit).
    #[arg(long, default_value_t = 10_000)]
    pub rps: u32,
    /// `[worker] concurrency`: jobs per process.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Skip the SQLite run.
    #[arg(long)]
    pub no_sqlite: bool,
    /// Permits per budget-cost measurement.
    #[arg(long, default_value_t = 2000)]
    pub permits: usize,
    /// Runs per configuration; the fastest counts (other load on the machine only
    /// ever slows a run down).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
}

/// Which store a run used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The PostgreSQL store, shared by every worker process of the run.
    Postgres,
    /// A SQLite file: one process only.
    Sqlite,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The store the workers shared.
    pub store: StoreKind,
    /// `offboard serve --role worker` processes in the run.
    pub workers: usize,
    /// Offboarding jobs ingested, all of which succeeded.
    pub jobs: usize,
    /// From ingesting the jobs to the last one succeeding (wall clock).
    pub elapsed: Duration,
    /// Sell API requests the sandbox answered.
    pub crm_calls: u64,
}

impl RunResult {
    /// Jobs completed per second.
    pub fn jobs_per_sec(&self) -> f64 {
        self.jobs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Per-permit cost of one budget setup.
#[derive(Debug, Clone)]
pub struct PermitCost {
    /// The budget setup measured (store and batch size), as the table prints it.
    pub label: String,
    /// Mean time of one `acquire()`.
    pub mean: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

/// Runs the benchmark and prints the tables.
pub async fn run(args: ScalingArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the offboard binary")?;
    let pg = args
        .postgres
        .clone()
        .or_else(|| std::env::var("OFFBOARD_BENCH_POSTGRES_URL").ok())
        .or_else(|| std::env::var("OFFBOARD_TEST_POSTGRES_URL").ok());
    println!(
        "scaling: {} jobs × {} open records each, sandbox with {} ms latency and no limit, budget {} rps, {} jobs per process, {} CPUs",
        args.jobs,
        args.per_kind * 4,
        args.latency_ms,
        args.rps,
        args.concurrency,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let mut results = Vec::new();
    match &pg {
        Some(url) => {
            for &k in &args.workers {
                results.push(best_of(&exe, &args, Some(url), k.max(1)).await?);
            }
        }
        None => println!(
            "no PostgreSQL (--postgres or OFFBOARD_BENCH_POSTGRES_URL): PostgreSQL runs skipped"
        ),
    }
    if !args.no_sqlite {
        results.push(best_of(&exe, &args, None, 1).await?);
    }
    println!();
    print_table(&results);
    if let Some(url) = &pg {
        println!();
        let costs = permit_costs(url, args.permits).await?;
        print_costs(&costs);
    }
    Ok(())
}

async fn best_of(
    exe: &std::path::Path,
    args: &ScalingArgs,
    pg: Option<&str>,
    workers: usize,
) -> anyhow::Result<RunResult> {
    let mut best: Option<RunResult> = None;
    for _ in 0..args.repeat.max(1) {
        let r = run_once(exe, args, pg, workers).await?;
        print_row(&r);
        if best.as_ref().is_none_or(|b| r.elapsed < b.elapsed) {
            best = Some(r);
        }
    }
    best.ok_or_else(|| anyhow::anyhow!("no run"))
}

fn print_row(r: &RunResult) {
    eprintln!(
        "  {:?} × {}: {} jobs in {:.2} s",
        r.store,
        r.workers,
        r.jobs,
        r.elapsed.as_secs_f64()
    );
}

fn print_table(results: &[RunResult]) {
    let base = results
        .iter()
        .find(|r| r.store == StoreKind::Postgres && r.workers == 1)
        .map(RunResult::jobs_per_sec);
    println!(
        "| store | worker processes | jobs | time (s) | jobs/s | CRM calls/s | vs 1 PostgreSQL worker |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in results {
        let ratio = base.map_or_else(
            || "–".to_owned(),
            |b| format!("{:.2}×", r.jobs_per_sec() / b),
        );
        println!(
            "| {} | {} | {} | {:.2} | {:.1} | {:.0} | {} |",
            match r.store {
                StoreKind::Postgres => "PostgreSQL",
                StoreKind::Sqlite => "SQLite",
            },
            r.workers,
            r.jobs,
            r.elapsed.as_secs_f64(),
            r.jobs_per_sec(),
            r.crm_calls as f64 / r.elapsed.as_secs_f64().max(1e-9),
            ratio
        );
    }
}

fn print_costs(costs: &[PermitCost]) {
    println!("| budget (rate never binding) | mean per permit | p99 per permit |");
    println!("|---|---|---|");
    for c in costs {
        let p99 = if c.p99.is_zero() {
            "–".to_owned()
        } else {
            format!("{:.0} µs", c.p99.as_secs_f64() * 1e6)
        };
        println!(
            "| {} | {:.0} µs | {p99} |",
            c.label,
            c.mean.as_secs_f64() * 1e6,
        );
    }
}

/// A schema of its own on the server `base` (dropped by [`drop_schema`]).
pub async fn create_schema(base: &str, prefix: &str) -> anyhow::Result<(String, String)> {
    let schema = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(base)
        .await
        .with_context(|| "cannot connect to PostgreSQL")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await?;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    Ok((schema, url))
}

/// Drops a schema made by [`create_schema`].
pub async fn drop_schema(base: &str, schema: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(base).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// The stored form of leaver `i`'s termination, as the receiver would store it.
pub fn leaver_new_event(i: usize) -> anyhow::Result<NewEvent> {
    let value = fleet::leaver_event(i);
    let event = OffboardingEvent::from_json(&value, None)
        .map_err(|e| anyhow::anyhow!("leaver event {i}: {e}"))?;
    Ok(NewEvent {
        source: "hr".into(),
        event,
        body_sha256: hex::encode(Sha256::digest(value.to_string().as_bytes())),
        run_at: Utc::now(),
        max_attempts: 8,
    })
}

async fn run_once(
    exe: &std::path::Path,
    args: &ScalingArgs,
    pg: Option<&str>,
    workers: usize,
) -> anyhow::Result<RunResult> {
    let sandbox = Sandbox::start(SandboxOptions {
        token: Some(fleet::SELL_TOKEN.into()),
        latency: Duration::from_millis(args.latency_ms),
        seed: fleet::leavers_seed(args.jobs, args.per_kind),
        ..SandboxOptions::default()
    })
    .await
    .context("sandbox")?;
    let dir = tempfile::tempdir()?;
    let (store_url, schema) = match pg {
        Some(base) => {
            let (schema, url) = create_schema(base, "offboard_bench").await?;
            (url, Some((base.to_owned(), schema)))
        }
        None => (
            format!("sqlite://{}", dir.path().join("offboard.db").display()),
            None,
        ),
    };
    let result = measure(
        exe,
        args,
        &sandbox,
        dir.path().to_owned(),
        &store_url,
        workers,
    )
    .await;
    if let Some((base, schema)) = schema
        && let Err(e) = drop_schema(&base, &schema).await
    {
        eprintln!("could not drop schema {schema}: {e:#}");
    }
    sandbox.shutdown().await;
    let (elapsed, crm_calls) = result?;
    Ok(RunResult {
        store: if pg.is_some() {
            StoreKind::Postgres
        } else {
            StoreKind::Sqlite
        },
        workers,
        jobs: args.jobs,
        elapsed,
        crm_calls,
    })
}

async fn measure(
    exe: &std::path::Path,
    args: &ScalingArgs,
    sandbox: &Sandbox,
    dir: PathBuf,
    store_url: &str,
    workers: usize,
) -> anyhow::Result<(Duration, u64)> {
    let config = FleetConfig {
        store_url: store_url.to_owned(),
        sell_base_url: sandbox.base_url(),
        requests_per_second: args.rps,
        max_in_flight: 8,
        concurrency: args.concurrency,
        lease_secs: 30,
        poll_interval_ms: 50,
    }
    .write(&dir)?;
    // Migrated before the workers start, so they don't race to do it.
    let store = store::open(store_url, "full").await?;
    store.migrate().await?;

    let http = reqwest::Client::new();
    let mut fleet = Vec::new();
    for _ in 0..workers {
        let mut replica = Replica::spawn(exe, &config, "worker")?;
        if !replica.wait_ready(&http, Duration::from_secs(30)).await {
            bail!("a worker process did not become ready");
        }
        fleet.push(replica);
    }
    let stop = CancellationToken::new();
    // Stops the admin on every way out, errors included.
    let _stop_admin = stop.clone().drop_guard();
    let admin = tokio::spawn(fleet::play_admin(
        sandbox.state(),
        Duration::from_millis(20),
        stop.clone(),
    ));

    let events = (0..args.jobs)
        .map(leaver_new_event)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    for chunk in events.chunks(100) {
        store.ingest(chunk.to_vec()).await?;
    }
    let deadline = started + Duration::from_secs(600);
    loop {
        let counts = store.count_by_state().await?;
        let done = counts.get(&JobState::Succeeded).copied().unwrap_or(0) as usize;
        if done >= args.jobs {
            break;
        }
        let stuck: u64 = [JobState::Failed, JobState::NeedsReview]
            .iter()
            .filter_map(|s| counts.get(s))
            .sum();
        if stuck > 0 {
            bail!("{stuck} jobs failed or need review: {counts:?}");
        }
        if Instant::now() > deadline {
            bail!("timed out: {counts:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    stop.cancel();
    let _ = admin.await;
    drop(fleet);
    Ok((elapsed, sandbox.state().stats().requests))
}

/// Mean and p99 of `acquire()` on budgets that never make anyone wait.
pub async fn permit_costs(base: &str, permits: usize) -> anyhow::Result<Vec<PermitCost>> {
    let settings = BudgetSettings {
        requests_per_second: 1_000_000,
        max_in_flight: 64,
        ..BudgetSettings::default()
    };
    let mut out = Vec::new();
    let local: Arc<dyn RateBudget> = Arc::new(LocalBudget::new(settings.clone()));
    out.push(time_permits("in-process (LocalBudget)", &local, permits).await);
    let (schema, url) = create_schema(base, "offboard_bench").await?;
    let result = async {
        let store = store::open(&url, "full").await?;
        store.migrate().await?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(sqlx::postgres::PgConnectOptions::from_str(&url)?)
            .await?;
        for batch in [1, 5] {
            let budget: Arc<dyn RateBudget> = Arc::new(PgBudget::new(
                pool.clone(),
                format!("bench-{batch}"),
                settings.clone(),
                SharedBudgetOptions {
                    batch,
                    headroom: 0.0,
                },
            ));
            let label = if batch == 1 {
                "PostgreSQL row, 1 permit per statement".to_owned()
            } else {
                format!("PostgreSQL row, {batch} permits per statement")
            };
            out.push(time_permits(&label, &budget, permits).await);
        }
        // Contention: three replicas (own pools) with four callers each on one row.
        let mut replicas = Vec::new();
        for _ in 0..3 {
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .connect_with(sqlx::postgres::PgConnectOptions::from_str(&url)?)
                .await?;
            replicas.push(Arc::new(PgBudget::new(
                pool,
                "bench-contended".into(),
                settings.clone(),
                SharedBudgetOptions {
                    batch: 1,
                    headroom: 0.0,
                },
            )));
        }
        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for r in &replicas {
            for _ in 0..4 {
                let r = r.clone();
                let each = permits.max(12) / 12;
                set.spawn(async move {
                    for _ in 0..each {
                        drop(r.acquire().await);
                    }
                    each
                });
            }
        }
        let granted: usize = set.join_all().await.into_iter().sum();
        let wall = started.elapsed();
        out.push(PermitCost {
            label: format!(
                "PostgreSQL row, 3 replicas × 4 callers at once: {:.0} permits/s in all",
                granted as f64 / wall.as_secs_f64().max(1e-9)
            ),
            mean: wall * 12 / granted.max(1) as u32,
            p99: Duration::ZERO,
        });
        anyhow::Ok(())
    }
    .await;
    drop_schema(base, &schema).await?;
    result?;
    Ok(out)
}

async fn time_permits(label: &str, budget: &Arc<dyn RateBudget>, permits: usize) -> PermitCost {
    let mut times = Vec::with_capacity(permits);
    // Warm-up: the row is created, connections are opened.
    for _ in 0..20 {
        drop(budget.acquire().await);
    }
    for _ in 0..permits.max(1) {
        let t = Instant::now();
        drop(budget.acquire().await);
        times.push(t.elapsed());
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
    PermitCost {
        label: label.to_owned(),
        mean,
        p99,
    }
}
