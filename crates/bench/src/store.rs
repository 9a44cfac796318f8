//! `offboard bench store`: does what an operator and `/metrics` ask of the store
//! cost the same when it holds a million finished jobs as when it is empty?
//!
//! Two fresh stores in one run (SQLite files in a temp dir, or two schemas of the
//! PostgreSQL server `--store-url` names): the baseline holds [`BASELINE_JOBS`]
//! finished jobs, the grown one `--jobs`, both seeded by
//! `store::bulk::seed_finished` (setup, not measured), and both get the same few
//! runnable jobs through the normal ingest. Then each operation runs `--repeat`
//! times on each store through the `JobStore` trait, as the worker, the admin API
//! and `/metrics` call it:
//!
//! - **claim**: `claim(1)` of a runnable job, which is then put back (`Scheduled`,
//!   due at once; the put-back is not timed);
//! - **list, first page** and **list, last page**: `list_jobs` without a cursor, and
//!   with the cursor that returns the 100 oldest jobs; **by state** (`needs_review`,
//!   which no seeded job is in: a filter's worst case) and **one employee**;
//! - **job detail**: `get_job` of an old job (five audit rows, two checkpoints, a
//!   notification);
//! - **/metrics**: the four store reads of one scrape (`count_by_state`,
//!   `oldest_runnable_age`, `seats_pending`, `notifications_pending`).
//!
//! Reported: median and p99 per store, and grown ÷ baseline of the medians (the
//! goal is ≤ 1.5× at a million jobs). Then the plan of every timed statement on the
//! grown store, with each full scan of a growing table flagged.
//!
//! `--retention` (SQLite) then prunes every seeded job as the pruner would
//! (batches of `store::retention::BATCH`, each timed: how long the writer is held)
//! and seeds as many again, printing the file size at each point: after pruning,
//! SQLite reuses the freed pages, so the file does not grow.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use serde_json::json;

use super::scaling;
use offboard_core::{
    domain::OffboardingEvent,
    store::{
        self, JobFilter, NewEvent, Outcome, SharedStore,
        bulk::{self, QueryPlan, Seed, SqliteSize},
    },
};

/// Finished jobs in the baseline store: as good as empty, but the job detail and
/// the last page have old jobs to read, as in the grown one.
pub const BASELINE_JOBS: u64 = 200;

/// Arguments of `offboard bench store`.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Finished jobs in the grown store.
    #[arg(long, default_value_t = 1_000_000)]
    pub jobs: u64,
    /// The store: unset, SQLite files in a temp dir; `postgres://…`, two fresh
    /// schemas on that server (dropped afterwards).
    #[arg(long)]
    pub store_url: Option<String>,
    /// Timed repetitions of each operation on each store.
    #[arg(long, default_value_t = 200)]
    pub repeat: usize,
    /// Runnable jobs (distinct employees) in each store, for the claims.
    #[arg(long, default_value_t = 8)]
    pub runnable: usize,
    /// SQLite: afterwards prune every seeded job in timed batches and seed as many
    /// again, printing the file size before, after pruning and after refilling.
    #[arg(long)]
    pub retention: bool,
}

/// Median and p99 of one operation on one store.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// The median.
    pub p50: Duration,
    /// The 99th percentile.
    pub p99: Duration,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Stats {
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples.get(i).copied().unwrap_or_default()
        };
        Stats {
            p50: at(0.5),
            p99: at(0.99),
        }
    }
}

/// One operation, on both stores.
#[derive(Debug, Clone)]
pub struct Row {
    /// The operation.
    pub name: &'static str,
    /// On the baseline store.
    pub baseline: Stats,
    /// On the grown store.
    pub grown: Stats,
}

impl Row {
    /// Grown ÷ baseline, of the medians.
    pub fn ratio(&self) -> f64 {
        self.grown.p50.as_secs_f64() / self.baseline.p50.as_secs_f64().max(1e-9)
    }
}

/// What retention did to the SQLite file (`--retention`).
#[derive(Debug, Clone)]
pub struct RetentionReport {
    /// Jobs pruned.
    pub pruned: u64,
    /// Wall time of the whole prune.
    pub elapsed: Duration,
    /// Per batch (one transaction, the writer held).
    pub batch: Stats,
    /// The database (WAL checkpointed) before pruning, after it, and after seeding
    /// as many jobs again.
    pub sizes: [SqliteSize; 3],
}

/// The whole result.
#[derive(Debug, Clone)]
pub struct Report {
    /// Finished jobs in the grown store.
    pub jobs: u64,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// How long seeding the grown store took.
    pub seed_time: Duration,
    /// One row per operation.
    pub rows: Vec<Row>,
    /// The timed statements' plans on the grown store.
    pub plans: Vec<QueryPlan>,
    /// `--retention`.
    pub retention: Option<RetentionReport>,
}

/// A store under measurement and what it needs to be found and cleaned up.
struct Bench {
    store: SharedStore,
    url: String,
    seed: Seed,
    /// (server, schema) to drop.
    schema: Option<(String, String)>,
}

/// Runs the benchmark and prints the report.
pub async fn run(args: StoreArgs) -> anyhow::Result<()> {
    let report = measure(&args).await?;
    print(&report);
    Ok(())
}

/// Runs the benchmark.
pub async fn measure(args: &StoreArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.repeat > 0, "--repeat must be at least 1");
    anyhow::ensure!(args.runnable > 0, "--runnable must be at least 1");
    let dir = tempfile::tempdir().context("temp dir")?;
    let backend = if args.store_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let baseline = open(args, &dir, "baseline").await?;
    fill(&baseline, BASELINE_JOBS, args.runnable).await?;
    let grown = open(args, &dir, "grown").await?;
    let started = Instant::now();
    fill(&grown, args.jobs, args.runnable).await?;
    let seed_time = started.elapsed();
    eprintln!(
        "seeded {} finished jobs in {:.1} s",
        args.jobs,
        seed_time.as_secs_f64()
    );

    let mut rows = Vec::new();
    for op in Op::ALL {
        // Alternate the two stores' runs, so a burst of other load on the machine
        // lands on both rather than on one.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            op.once(&baseline).await?;
            op.once(&grown).await?;
        }
        for _ in 0..args.repeat {
            a.push(op.once(&baseline).await?);
            b.push(op.once(&grown).await?);
        }
        rows.push(Row {
            name: op.name(),
            baseline: Stats::of(a),
            grown: Stats::of(b),
        });
    }
    let plans = bulk::query_plans(&grown.url).await.context("query plans")?;
    let retention = if args.retention && grown.schema.is_none() {
        Some(retention(&grown, args.jobs).await?)
    } else {
        None
    };
    for bench in [baseline, grown] {
        if let Some((server, schema)) = bench.schema {
            scaling::drop_schema(&server, &schema).await?;
        }
    }
    Ok(Report {
        jobs: args.jobs,
        backend,
        seed_time,
        rows,
        plans,
        retention,
    })
}

async fn open(args: &StoreArgs, dir: &tempfile::TempDir, name: &str) -> anyhow::Result<Bench> {
    let (url, schema) = match &args.store_url {
        Some(server) => {
            let (schema, url) =
                scaling::create_schema(server, &format!("bench_store_{name}")).await?;
            (url, Some((server.clone(), schema)))
        }
        None => {
            let file = dir.path().join(format!("{name}.db"));
            (format!("sqlite://{}", file.display()), None)
        }
    };
    let store = store::open(&url, "full")
        .await
        .with_context(|| format!("open the {name} store"))?;
    store.migrate().await.context("migrate")?;
    let seed = Seed {
        jobs: 0,
        first: 1,
        payload_template: payload_template()?,
        // A year ago, a job every 10 s: a million jobs span four months, all older
        // than any retention cutoff the bench uses.
        created_from: Utc::now() - chrono::Duration::days(365),
        spacing_ms: 10_000,
    };
    Ok(Bench {
        store,
        url,
        seed,
        schema,
    })
}

/// The canonical event of seeded job `__N__`.
fn payload_template() -> anyhow::Result<String> {
    let event = OffboardingEvent::from_json(
        &json!({
            "id": format!("evt-{}", Seed::PLACEHOLDER),
            "type": "employee.terminated",
            "employee": { "email": format!("leaver-{}@example.com", Seed::PLACEHOLDER), "name": "Leaver" },
            "termination": { "kind": "voluntary", "rehire_eligible": true },
        }),
        None,
    )
    .map_err(|e| anyhow::anyhow!("the seed event: {e}"))?;
    Ok(serde_json::to_string(&event)?)
}

/// Seeds `jobs` finished jobs, then ingests `runnable` due ones.
async fn fill(bench: &Bench, jobs: u64, runnable: usize) -> anyhow::Result<()> {
    let seed = Seed {
        jobs,
        ..bench.seed.clone()
    };
    let mut last_report = Instant::now();
    bulk::seed_finished(&bench.url, &seed, |done| {
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!("  {done} of {jobs} seeded");
            last_report = Instant::now();
        }
    })
    .await
    .context("seed")?;
    let events = (0..runnable)
        .map(|i| -> anyhow::Result<NewEvent> {
            let body = json!({
                "id": format!("due-{i}"),
                "type": "employee.terminated",
                "employee": { "email": format!("due-{i}@example.com"), "name": "Due" },
            });
            Ok(NewEvent {
                source: "hr".into(),
                event: OffboardingEvent::from_json(&body, None)
                    .map_err(|e| anyhow::anyhow!("runnable event {i}: {e}"))?,
                body_sha256: format!("due-{i}"),
                run_at: Utc::now() - chrono::Duration::seconds(1),
                max_attempts: 5,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    bench.store.ingest(events).await.context("ingest")?;
    // What the pruner's first round does in a running service (PostgreSQL: fold
    // the seeding's million job-count deltas).
    bench.store.compact_job_counts().await.context("compact")?;
    Ok(())
}

/// The timed operations.
#[derive(Debug, Clone, Copy)]
enum Op {
    Claim,
    FirstPage,
    LastPage,
    ByState,
    ByEmployee,
    Detail,
    Metrics,
}

impl Op {
    const ALL: [Op; 7] = [
        Op::Claim,
        Op::FirstPage,
        Op::LastPage,
        Op::ByState,
        Op::ByEmployee,
        Op::Detail,
        Op::Metrics,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::Claim => "claim (1 job)",
            Op::FirstPage => "list_jobs, first page",
            Op::LastPage => "list_jobs, last page",
            Op::ByState => "list_jobs, state=needs_review",
            Op::ByEmployee => "list_jobs, one employee",
            Op::Detail => "get_job (an old job)",
            Op::Metrics => "/metrics store reads",
        }
    }

    /// Runs once on `bench`; how long the timed part took.
    async fn once(self, bench: &Bench) -> anyhow::Result<Duration> {
        let store = &bench.store;
        let seed = &bench.seed;
        let started = Instant::now();
        match self {
            Op::Claim => {
                let claimed = store.claim("bench", 1, Duration::from_secs(60)).await?;
                let elapsed = started.elapsed();
                let c = claimed.first().context("no runnable job to claim")?;
                // Back in the queue, due at once, for the next claim.
                let back = Outcome::Scheduled {
                    run_at: Utc::now() - chrono::Duration::seconds(1),
                    reason: "bench".into(),
                };
                store.finish(&c.lease, back).await?;
                return Ok(elapsed);
            }
            Op::FirstPage => {
                let page = store.list_jobs(&JobFilter::default()).await?;
                anyhow::ensure!(!page.is_empty(), "an empty first page");
            }
            Op::LastPage => {
                // The page before the 101st oldest job: the 100 oldest.
                let filter = JobFilter {
                    before: Some(seed.job_id(seed.first + 100)),
                    ..JobFilter::default()
                };
                let page = store.list_jobs(&filter).await?;
                anyhow::ensure!(page.len() == 100, "last page: {} jobs", page.len());
            }
            Op::ByState => {
                // A state no seeded job is in: the worst case for a filter.
                let filter = JobFilter {
                    state: Some(offboard_core::domain::JobState::NeedsReview),
                    ..JobFilter::default()
                };
                store.list_jobs(&filter).await?;
            }
            Op::ByEmployee => {
                let filter = JobFilter {
                    employee: Some(format!("leaver-{}@example.com", seed.first + 50)),
                    ..JobFilter::default()
                };
                let page = store.list_jobs(&filter).await?;
                anyhow::ensure!(page.len() == 1, "one employee: {} jobs", page.len());
            }
            Op::Detail => {
                let id = seed.job_id(seed.first + 50);
                let detail = store.get_job(&id).await?.context("the old job")?;
                anyhow::ensure!(detail.audit.len() == 5, "the old job's trail");
            }
            Op::Metrics => {
                store.count_by_state().await?;
                store.oldest_runnable_age().await?;
                store.seats_pending().await?;
                store.notifications_pending().await?;
            }
        }
        Ok(started.elapsed())
    }
}

/// `--retention`: prune every seeded job in timed batches, then refill.
async fn retention(bench: &Bench, jobs: u64) -> anyhow::Result<RetentionReport> {
    let before = bulk::sqlite_size(&bench.url).await?;
    let keep = Duration::from_secs(30 * 86_400);
    let started = Instant::now();
    let mut batches = Vec::new();
    let mut pruned = 0;
    loop {
        let t = Instant::now();
        let gone = bench
            .store
            .prune_finished(keep, store::retention::BATCH)
            .await?;
        if gone == 0 {
            break;
        }
        batches.push(t.elapsed());
        pruned += gone;
    }
    let elapsed = started.elapsed();
    let after = bulk::sqlite_size(&bench.url).await?;
    let refill = Seed {
        jobs,
        first: bench.seed.first + jobs + 1,
        ..bench.seed.clone()
    };
    bulk::seed_finished(&bench.url, &refill, |_| {}).await?;
    let refilled = bulk::sqlite_size(&bench.url).await?;
    Ok(RetentionReport {
        pruned,
        elapsed,
        batch: Stats::of(batches),
        sizes: [before, after, refilled],
    })
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// Prints the report as BENCHMARKS.md shows it.
pub fn print(report: &Report) {
    println!(
        "store growth ({}): {} finished jobs against {} (seeded in {:.0} s)\n",
        report.backend,
        report.jobs,
        BASELINE_JOBS,
        report.seed_time.as_secs_f64()
    );
    println!(
        "| operation | baseline p50 ms | p99 ms | {} jobs p50 ms | p99 ms | ratio (p50) |",
        report.jobs
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for row in &report.rows {
        println!(
            "| {} | {} | {} | {} | {} | {:.2}× |",
            row.name,
            ms(row.baseline.p50),
            ms(row.baseline.p99),
            ms(row.grown.p50),
            ms(row.grown.p99),
            row.ratio()
        );
    }
    let worst = report.rows.iter().map(Row::ratio).fold(0.0_f64, f64::max);
    println!(
        "\nworst ratio {worst:.2}× ({})",
        if worst <= 1.5 {
            "within the 1.5× goal"
        } else {
            "OVER the 1.5× goal"
        }
    );
    println!("\nplans on the grown store:");
    let mut scans = 0;
    for plan in &report.plans {
        println!("  {}:", plan.name);
        for line in &plan.lines {
            let flag = if plan.full_scans.contains(line) {
                "  <-- FULL SCAN"
            } else {
                ""
            };
            println!("      {line}{flag}");
        }
        scans += plan.full_scans.len();
    }
    println!("{scans} full scans of a growing table");
    if let Some(r) = &report.retention {
        let mb = |b: u64| b as f64 / 1e6;
        println!(
            "\nretention: pruned {} jobs in {:.1} s; per batch of {}: p50 {} ms, p99 {} ms (the writer held)",
            r.pruned,
            r.elapsed.as_secs_f64(),
            store::retention::BATCH,
            ms(r.batch.p50),
            ms(r.batch.p99)
        );
        let [before, after, refilled] = r.sizes;
        println!(
            "file: {:.0} MB before; after pruning {:.0} MB of which {:.0} MB free pages; \
             after seeding as many again {:.0} MB ({:.0} MB free)",
            mb(before.bytes),
            mb(after.bytes),
            mb(after.free_bytes),
            mb(refilled.bytes),
            mb(refilled.free_bytes)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small run end to end: seeding, every operation, the plans. The full-scan
    /// flag must catch nothing on the store's own statements (0005 added what the
    /// pruner and the metrics needed; `bulk`'s tests show the flag catches a scan).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_store_bench_runs_and_its_plans_scan_nothing() {
        let args = StoreArgs {
            jobs: 2_000,
            store_url: None,
            repeat: 5,
            runnable: 3,
            retention: true,
        };
        let report = measure(&args).await.expect("bench");
        print(&report);
        assert_eq!(report.rows.len(), Op::ALL.len());
        assert!(report.plans.len() >= 8, "a plan per timed statement");
        let scans: Vec<_> = report
            .plans
            .iter()
            .flat_map(|p| p.full_scans.iter().map(move |l| format!("{}: {l}", p.name)))
            .collect();
        assert!(scans.is_empty(), "full scans: {scans:?}");
        let r = report.retention.expect("retention ran");
        assert_eq!(
            r.pruned, 2_000,
            "every seeded job, none of the runnable ones"
        );
        let [before, after, refilled] = r.sizes;
        assert!(
            after.bytes <= before.bytes + before.bytes / 20,
            "pruning frees pages inside the file: {before:?} → {after:?}"
        );
        assert!(
            after.free_bytes > before.bytes / 2,
            "most of it is free: {after:?}"
        );
        // Without reuse the file would double; what it grows by is the pruned jobs'
        // event tombstones (kept for dedupe) and the new events' own index pages.
        assert!(
            refilled.bytes <= before.bytes + before.bytes / 4,
            "the refill reused the freed pages: {before:?} → {refilled:?}"
        );
    }
}
