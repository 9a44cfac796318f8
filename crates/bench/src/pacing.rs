//! `offboard bench pacing`: does offboard use the CRM's whole request budget?
//!
//! A Sell sandbox with real latency and a per-second limit plays Sell; offboard
//! (in-process, receiver + worker, temp SQLite) offboards one rep with about a
//! thousand open records at the same configured rate. Then, on the same sandbox
//! reset to the same state, a sequential one-call-at-a-time client does the same
//! reassignment. The report: achieved call rate / configured limit, the share of
//! 429s, total calls against the minimum, and the speed-up over the baseline.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use offboard_core::{
    app::{Application, Role},
    config::Config,
    crm::Resource,
    ingest::schemes::StandardWebhooks,
};
use offboard_sandbox::{Sandbox, SandboxOptions, Seed};

const SECRET: &str = "whsec_YmVuY2gtcGFjaW5nLXNlY3JldA==";
const TOKEN: &str = "bench-sell-token";

/// Arguments of `offboard bench pacing`.
#[derive(Debug, Clone, clap::Args)]
pub struct PacingArgs {
    /// The sandbox's per-token limit and offboard's `requests_per_second`.
    #[arg(long, default_value_t = 50)]
    pub rps: u32,
    /// Latency the sandbox adds to every call.
    #[arg(long, default_value_t = 100)]
    pub latency_ms: u64,
    /// Records of each kind the leaver owns (about 85 % of them open).
    #[arg(long, default_value_t = 300)]
    pub records: usize,
    /// offboard's `max_in_flight`.
    #[arg(long, default_value_t = 8)]
    pub max_in_flight: usize,
    /// Skip the sequential baseline (it takes records × latency).
    #[arg(long)]
    pub no_baseline: bool,
}

/// Runs the benchmark and prints the report.
pub async fn run(args: PacingArgs) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(SandboxOptions {
        listen: "127.0.0.1:0".parse()?,
        token: Some(TOKEN.into()),
        rps: Some(args.rps),
        latency: Duration::from_millis(args.latency_ms),
        fault_rate: 0.0,
        seed: Seed::generate(args.records, 11),
        ..SandboxOptions::default()
    })
    .await?;
    let state = sandbox.state();
    let snapshot = state.snapshot().await;
    let mut leaver = None;
    for u in &snapshot.users {
        let open = state.open_counts(u.id).await.open_total();
        if leaver.as_ref().is_none_or(|(_, _, best)| open > *best) {
            leaver = Some((u.id, u.email.clone(), open));
        }
    }
    let (user_id, email, open) =
        leaver.ok_or_else(|| anyhow::anyhow!("the generated org has no users"))?;
    println!(
        "pacing benchmark: sandbox limit {} req/s, latency {} ms; leaver {email} owns {open} open records",
        args.rps, args.latency_ms
    );

    let run = offboard_run(&sandbox, &args, user_id, &email).await?;
    let stats = state.stats();
    let calls = stats.requests;
    let log = state.request_log();
    // The rate-bound part of the job: from the first CRM call until the admin task
    // is created. After that offboard only waits for a person (one poll a second).
    let first_ms = log.first().map_or(0, |e| e.at_ms);
    let task_end_ms = log
        .iter()
        .find(|e| e.method == "POST" && e.path.starts_with("/v2/tasks"))
        .map_or_else(
            || log.last().map_or(1, |e| e.at_ms + e.duration_ms),
            |e| e.at_ms + e.duration_ms,
        );
    let window = Duration::from_millis(task_end_ms.saturating_sub(first_ms).max(1));
    let window_calls = log
        .iter()
        .filter(|e| e.at_ms + e.duration_ms <= task_end_ms)
        .count() as u64;
    let rate = window_calls as f64 / window.as_secs_f64();
    let throttled = stats.rate_limited;
    let lists: u64 = state
        .request_log()
        .iter()
        .filter(|e| {
            e.method == "GET"
                && SELL_RESOURCES
                    .iter()
                    .any(|r| e.path.starts_with(&format!("/v2/{r}?")))
        })
        .count() as u64;
    let puts: u64 = stats.puts.values().sum();
    // The minimum: one listing of every page per resource, one PUT per open record,
    // the admin task, one verification poll.
    let min_lists: u64 = SELL_RESOURCES
        .iter()
        .map(|r| {
            let owned = snapshot_owned(&snapshot, *r, user_id);
            owned.div_ceil(100).max(1) as u64
        })
        .sum();
    let minimum = min_lists + open as u64 + 2;
    println!(
        "\noffboard:  {window_calls} calls from the first call to the admin task in {:.1}s = {rate:.1} req/s → {:.2} of the configured limit (goal ≥ 0.95)",
        window.as_secs_f64(),
        rate / args.rps as f64
    );
    println!(
        "           whole job, webhook → succeeded (admin step and verification included): {:.1}s",
        run.as_secs_f64()
    );
    println!(
        "           429 answers: {throttled} = {:.2} % of calls (goal ≤ 1 %)",
        100.0 * throttled as f64 / calls.max(1) as f64
    );
    println!(
        "           calls: {calls} total vs {minimum} minimum ({min_lists} list pages + {open} PUTs + task + poll); made {lists} list calls and {puts} PUTs"
    );

    if args.no_baseline {
        return Ok(());
    }
    state.reset().await;
    let base = baseline(&sandbox.base_url(), user_id).await?;
    println!(
        "\nbaseline:  sequential client, one call at a time: {:.1}s for the same {open} records",
        base.as_secs_f64()
    );
    println!(
        "speed-up:  offboard is {:.1}× faster for the same work, first call to admin task (goal ≥ 5×; the ceiling is limit × latency = {:.1}×)",
        base.as_secs_f64() / window.as_secs_f64(),
        args.rps as f64 * args.latency_ms as f64 / 1000.0
    );
    println!(
        "           {:.1}× counting offboard's whole job (webhook, claim, admin step, verification)",
        base.as_secs_f64() / run.as_secs_f64()
    );
    sandbox.shutdown().await;
    Ok(())
}

/// The resources a Sell leaver's records come in.
const SELL_RESOURCES: &[Resource] = offboard_core::crm::sell::CAPABILITIES.resources;

fn snapshot_owned(seed: &Seed, resource: Resource, owner: i64) -> usize {
    match resource {
        Resource::Leads => seed.leads.iter().filter(|r| r.owner_id == owner).count(),
        Resource::Contacts => seed.contacts.iter().filter(|r| r.owner_id == owner).count(),
        // Sell keeps companies among contacts.
        Resource::Organizations => 0,
        Resource::Deals => seed.deals.iter().filter(|r| r.owner_id == owner).count(),
        Resource::Tasks => seed.tasks.iter().filter(|r| r.owner_id == owner).count(),
        Resource::Tickets => seed.tickets.iter().filter(|r| r.owner_id == owner).count(),
    }
}

/// offboard's run: from the webhook until the job has succeeded (the admin step is
/// played as soon as it is requested). Returns the wall time.
async fn offboard_run(
    sandbox: &Sandbox,
    args: &PacingArgs,
    user_id: i64,
    email: &str,
) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let p = dir.path();
    std::fs::write(p.join("secrets"), SECRET)?;
    std::fs::write(p.join("sell"), TOKEN)?;
    std::fs::write(p.join("admin"), "bench-admin")?;
    std::fs::write(
        p.join("policy.toml"),
        "version = 1\n[defaults]\nfallback_owner = \"sales-ops@example.com\"\nat = \"now\"\n[[rules]]\nname = \"all\"\naction = \"deactivate\"\n",
    )?;
    let config = Config::from_toml(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[store]
url = "sqlite://{dir}/offboard.db"
[crm]
base_url = "{sell}"
token_env = ""
token_file = "{dir}/sell"
admin_email = "admin@example.com"
requests_per_second = {rps}
max_in_flight = {in_flight}
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
verify_interval_secs = 1
poll_interval_ms = 50
"#,
        dir = p.display(),
        sell = sandbox.base_url(),
        rps = args.rps,
        in_flight = args.max_in_flight,
    ))?;
    let app = Application::build(config, Role::All).await?;
    let base = format!("http://{}", app.local_addr());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let http = reqwest::Client::new();
    let body =
        json!({ "id": "bench", "type": "employee.terminated", "employee": { "email": email },
                       "termination": { "kind": "voluntary", "rehire_eligible": true } })
        .to_string();
    let ts = chrono::Utc::now().timestamp();
    let sig = StandardWebhooks::sign(SECRET, "msg_bench", ts, body.as_bytes())
        .map_err(|e| anyhow::anyhow!(e))?;
    let started = Instant::now();
    let resp: Value = http
        .post(format!("{base}/webhooks/hr"))
        .header("webhook-id", "msg_bench")
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(body)
        .send()
        .await?
        .json()
        .await?;
    let job_id = resp["job_id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("webhook refused: {resp}"))?
        .to_owned();
    let mut deactivated = false;
    let elapsed = loop {
        let job: Value = http
            .get(format!("{base}/api/v1/jobs/{job_id}"))
            .bearer_auth("bench-admin")
            .send()
            .await?
            .json()
            .await?;
        if !deactivated && job["checkpoints"].get("seat_requested_at").is_some() {
            sandbox
                .state()
                .deactivate(user_id)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            deactivated = true;
        }
        match job["state"].as_str() {
            Some("succeeded") => break started.elapsed(),
            Some("failed" | "needs_review" | "cancelled") => {
                anyhow::bail!("the job ended {}: {}", job["state"], job["last_error"])
            }
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(900) {
            anyhow::bail!("the offboarding did not finish within 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    shutdown.cancel();
    let _ = server.await;
    Ok(elapsed)
}

/// The naive client: list, then PUT every open record one after another, then the task.
async fn baseline(base_url: &str, user_id: i64) -> anyhow::Result<Duration> {
    let http = reqwest::Client::builder()
        .user_agent("baseline/1")
        .build()?;
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{base_url}{path}");
        async move {
            loop {
                let resp = http.get(&url).bearer_auth(TOKEN).send().await?;
                if resp.status().as_u16() == 429 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                return anyhow::Ok(resp.json::<Value>().await?);
            }
        }
    };
    let started = Instant::now();
    let stages = get("/v2/stages?per_page=100".into()).await?;
    let closed_stages: Vec<i64> = stages["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| matches!(s["data"]["category"].as_str(), Some("won" | "lost")))
        .filter_map(|s| s["data"]["id"].as_i64())
        .collect();
    for &resource in SELL_RESOURCES {
        let mut ids = Vec::new();
        let mut page = 1;
        loop {
            let list = get(format!(
                "/v2/{resource}?owner_id={user_id}&page={page}&per_page=100"
            ))
            .await?;
            for item in list["items"].as_array().into_iter().flatten() {
                let d = &item["data"];
                let open = match resource {
                    Resource::Deals => !d["stage_id"]
                        .as_i64()
                        .is_some_and(|s| closed_stages.contains(&s)),
                    Resource::Tasks => d["completed"] != true,
                    _ => true,
                };
                if open && let Some(id) = d["id"].as_i64() {
                    ids.push(id);
                }
            }
            if list["meta"]["links"]["next_page"].is_null() {
                break;
            }
            page += 1;
        }
        for id in ids {
            loop {
                let resp = http
                    .put(format!("{base_url}/v2/{resource}/{id}"))
                    .bearer_auth(TOKEN)
                    .json(&json!({ "data": { "owner_id": 2 } }))
                    .send()
                    .await?;
                if resp.status().as_u16() != 429 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    http.post(format!("{base_url}/v2/tasks"))
        .bearer_auth(TOKEN)
        .json(&json!({ "data": { "content": "deactivate", "owner_id": 1 } }))
        .send()
        .await?;
    Ok(started.elapsed())
}
