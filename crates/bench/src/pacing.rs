//! `offboard bench pacing`: does offboard use the CRM's whole request budget, and
//! how many calls does a moved record cost on each CRM?
//!
//! For each CRM of `--crm` (Sell unless told otherwise), a sandbox of that CRM
//! with real latency and a per-second limit serves one generated org, the same
//! for every CRM, and offboard (in-process, receiver + worker, temp SQLite)
//! offboards the same rep, the one with the seed's biggest open book, at the
//! same configured rate. Per CRM the report counts record write calls, all
//! calls and records moved, from the sandbox's side.
//!
//! For Sell it also reports the pacing itself: then, on the same sandbox reset
//! to the same state, a sequential one-call-at-a-time client does the same
//! reassignment, and the report gives achieved call rate / configured limit,
//! the share of 429s, total calls against the minimum, and the speed-up over
//! the baseline.

use std::{
    str::FromStr,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use offboard_core::{
    app::{Application, Role},
    config::{Config, CrmKind},
    crm::{Capabilities, Resource, SeatAbility, capabilities_of},
    ingest::schemes::StandardWebhooks,
};
use offboard_sandbox::{LOG_CAPACITY, Sandbox, SandboxCrm, SandboxOptions, Seed};

const SECRET: &str = "whsec_YmVuY2gtcGFjaW5nLXNlY3JldA==";
const TOKEN: &str = "bench-crm-token";
/// The generator's seed: one org for every CRM and every run.
const ORG_SEED: u64 = 11;

/// Arguments of `offboard bench pacing`.
#[derive(Debug, Clone, clap::Args)]
pub struct PacingArgs {
    /// The sandbox's per-token limit and offboard's `requests_per_second`.
    #[arg(long, default_value_t = 50)]
    pub rps: u32,
    /// Latency the sandbox adds to every call.
    #[arg(long, default_value_t = 100)]
    pub latency_ms: u64,
    /// Leads, people, deals and tasks the leaver owns (about 85 % of them open),
    /// plus a quarter as many organizations and tickets.
    #[arg(long, default_value_t = 300)]
    pub records: usize,
    /// offboard's `max_in_flight`.
    #[arg(long, default_value_t = 8)]
    pub max_in_flight: usize,
    /// Skip the sequential baseline (it takes records × latency).
    #[arg(long)]
    pub no_baseline: bool,
    /// The CRMs to offboard the leaver from, one after the other, comma-separated
    /// (`sell,pipedrive,hubspot,salesforce`). The pacing report and the baseline
    /// are Sell's; every CRM gets a line of calls per record moved.
    #[arg(long, value_delimiter = ',', default_value = "sell", value_parser = SandboxCrm::from_str)]
    pub crm: Vec<SandboxCrm>,
    /// Write Sell's request log (start, duration, method, path, status; one call
    /// per line, tab-separated) here, to see where the budget idles.
    #[arg(long)]
    pub timeline: Option<std::path::PathBuf>,
}

/// Runs the benchmark and prints the report.
pub async fn run(args: PacingArgs) -> anyhow::Result<()> {
    let mut crms: Vec<SandboxCrm> = Vec::new();
    for crm in &args.crm {
        if !crms.contains(crm) {
            crms.push(*crm);
        }
    }
    if crms.is_empty() {
        anyhow::bail!("--crm names no CRM");
    }
    let seed = Seed::generate(args.records, ORG_SEED);
    let (user_id, email) =
        biggest_book(&seed).ok_or_else(|| anyhow::anyhow!("the generated org has no users"))?;
    // Every sandbox up front, so the header can say what the leaver owns in each.
    let mut sandboxes = Vec::new();
    for &crm in &crms {
        let sandbox = Sandbox::start(SandboxOptions {
            listen: "127.0.0.1:0".parse()?,
            crm,
            token: Some(TOKEN.into()),
            rps: Some(args.rps),
            latency: Duration::from_millis(args.latency_ms),
            fault_rate: 0.0,
            seed: seed.clone(),
            ..SandboxOptions::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the {crm} sandbox: {e}"))?;
        let open = sandbox.state().open_counts(user_id).await.open_total();
        sandboxes.push((crm, sandbox, open));
    }
    let owns = match sandboxes.as_slice() {
        [(_, _, open)] => format!("{open}"),
        all => all
            .iter()
            .map(|(crm, _, open)| format!("{open} ({})", capabilities(*crm).name))
            .collect::<Vec<_>>()
            .join(", "),
    };
    println!(
        "pacing benchmark: sandbox limit {} req/s, latency {} ms; leaver {email} owns {owns} open records",
        args.rps, args.latency_ms
    );

    let mut rows = Vec::new();
    for (crm, sandbox, open) in sandboxes {
        let state = sandbox.state();
        let before = state.open_counts(user_id).await;
        let run = offboard_run(&sandbox, crm, &args, user_id, &email).await?;
        let after = state.open_counts(user_id).await;
        if after.open_total() != 0 {
            anyhow::bail!(
                "{}: the job succeeded but {email} still owns {} of {} open records: {after:?}",
                capabilities(crm).name,
                after.open_total(),
                before.open_total()
            );
        }
        let stats = state.stats();
        let log = state.request_log();
        if stats.requests > LOG_CAPACITY as u64 {
            anyhow::bail!(
                "{}: {} calls overflow the sandbox's request log ({LOG_CAPACITY}); the write count would be short",
                capabilities(crm).name,
                stats.requests
            );
        }
        rows.push(Row {
            crm,
            moved: before.open_total() - after.open_total(),
            writes: log
                .iter()
                .filter(|e| is_record_write(crm, &e.method, &e.path))
                .count() as u64,
            calls: stats.requests,
            wall: run,
        });
        if crm == SandboxCrm::Sell {
            sell_report(&sandbox, &seed, &args, user_id, open, run).await?;
        }
        sandbox.shutdown().await;
    }

    println!(
        "\ncalls per record moved (write calls: record owner changes only, no seat or task calls; every call counted, 429s included):"
    );
    println!(
        "  {:<14} {:>13} {:>11} {:>14} {:>9} {:>12} {:>10}",
        "CRM",
        "records moved",
        "write calls",
        "writes/record",
        "calls",
        "calls/record",
        "wall time"
    );
    for r in &rows {
        let per = |n: u64| n as f64 / r.moved.max(1) as f64;
        println!(
            "  {:<14} {:>13} {:>11} {:>14.4} {:>9} {:>12.4} {:>9.1}s",
            capabilities(r.crm).name,
            r.moved,
            r.writes,
            per(r.writes),
            r.calls,
            per(r.calls),
            r.wall.as_secs_f64()
        );
    }
    Ok(())
}

/// One CRM's line of the calls-per-record table.
struct Row {
    crm: SandboxCrm,
    moved: usize,
    writes: u64,
    calls: u64,
    /// Webhook → succeeded.
    wall: Duration,
}

/// The rep with the most open records in the seed (the first of equals), so every
/// CRM's run offboards the same person whatever each CRM counts as a record.
fn biggest_book(seed: &Seed) -> Option<(i64, String)> {
    let closing: Vec<i64> = seed
        .stages
        .iter()
        .filter(|s| s.is_closing())
        .map(|s| s.id)
        .collect();
    let open = |owner: i64| {
        seed.leads.iter().filter(|r| r.owner_id == owner).count()
            + seed.contacts.iter().filter(|r| r.owner_id == owner).count()
            + seed
                .deals
                .iter()
                .filter(|r| r.owner_id == owner && !closing.contains(&r.stage_id))
                .count()
            + seed
                .tasks
                .iter()
                .filter(|r| r.owner_id == owner && !r.completed)
                .count()
            + seed
                .tickets
                .iter()
                .filter(|r| r.owner_id == owner && !r.closed)
                .count()
    };
    let mut best: Option<(i64, String, usize)> = None;
    for u in &seed.users {
        let n = open(u.id);
        if best.as_ref().is_none_or(|(_, _, most)| n > *most) {
            best = Some((u.id, u.email.clone(), n));
        }
    }
    best.map(|(id, email, _)| (id, email))
}

/// Whether a logged request changed records' owners on `crm`: the calls that
/// carry the offboarding's payload. Seat changes, the admin task and reads are
/// not. `path` may carry a query string.
pub fn is_record_write(crm: SandboxCrm, method: &str, path: &str) -> bool {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (crm, method, segments.as_slice()) {
        (SandboxCrm::Sell, "PUT", ["v2", kind, _id]) => {
            matches!(*kind, "leads" | "contacts" | "deals" | "tasks")
        }
        (SandboxCrm::Pipedrive, "PATCH" | "PUT", ["api", "v1" | "v2", kind, _id]) => matches!(
            *kind,
            "leads" | "persons" | "organizations" | "deals" | "activities"
        ),
        (SandboxCrm::Hubspot, "POST", ["crm", "v3", "objects", _kind, "batch", "update"]) => true,
        (
            SandboxCrm::Salesforce,
            "PATCH",
            ["services", "data", version, "composite", "sobjects"],
        ) => version.starts_with('v'),
        _ => false,
    }
}

fn kind_of(crm: SandboxCrm) -> CrmKind {
    match crm {
        SandboxCrm::Sell => CrmKind::ZendeskSell,
        SandboxCrm::Pipedrive => CrmKind::Pipedrive,
        SandboxCrm::Hubspot => CrmKind::Hubspot,
        SandboxCrm::Salesforce => CrmKind::Salesforce,
    }
}

fn capabilities(crm: SandboxCrm) -> &'static Capabilities {
    capabilities_of(kind_of(crm))
}

/// Sell's pacing report: rate against the limit, 429s, calls against the
/// minimum, then (unless `--no-baseline`) the sequential client on the reset
/// sandbox. `seed` is what the sandbox started with, `open` what the leaver owned
/// open in it; `run` offboard's whole job.
async fn sell_report(
    sandbox: &Sandbox,
    seed: &Seed,
    args: &PacingArgs,
    user_id: i64,
    open: usize,
    run: Duration,
) -> anyhow::Result<()> {
    let state = sandbox.state();
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
    if let Some(path) = &args.timeline {
        let lines: String = log
            .iter()
            .map(|e| {
                format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    e.at_ms - first_ms,
                    e.duration_ms,
                    e.method,
                    e.path,
                    e.status.map_or_else(|| "-".to_owned(), |s| s.to_string())
                )
            })
            .collect();
        std::fs::write(path, lines)
            .map_err(|e| anyhow::anyhow!("cannot write the timeline to {}: {e}", path.display()))?;
    }
    let throttled = stats.rate_limited;
    let lists: u64 = log
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
            let owned = snapshot_owned(seed, *r, user_id);
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
    crm: SandboxCrm,
    args: &PacingArgs,
    user_id: i64,
    email: &str,
) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let p = dir.path();
    std::fs::write(p.join("secrets"), SECRET)?;
    std::fs::write(p.join("token"), TOKEN)?;
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
kind = "{kind}"
base_url = "{base_url}"
token_env = ""
token_file = "{dir}/token"
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
        kind = crm.as_str(),
        base_url = sandbox.base_url(),
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
    // Where the CRM's API can't deactivate a user, offboard asks a person, and the
    // bench answers at once so the wait for a person stays out of the numbers.
    let admin_plays_seat = capabilities(crm).deactivate == SeatAbility::Manual;
    let mut deactivated = !admin_plays_seat;
    let elapsed = loop {
        let job: Value = http
            .get(format!("{base}/api/v1/jobs/{job_id}"))
            .bearer_auth("bench-admin")
            .send()
            .await?
            .json()
            .await?;
        if !deactivated && job["checkpoints"].get("seat_requested_at").is_some() {
            sandbox.state().deactivate(user_id).await.map_err(|e| {
                anyhow::anyhow!("the sandbox refused the admin's deactivation: {e}")
            })?;
            deactivated = true;
        }
        match job["state"].as_str() {
            Some("succeeded") => break started.elapsed(),
            Some("failed" | "needs_review" | "cancelled") => {
                anyhow::bail!(
                    "{}: the job ended {}: {}",
                    capabilities(crm).name,
                    job["state"],
                    job["last_error"]
                )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_writes_are_owner_changes_only() {
        use SandboxCrm::*;
        let writes = [
            (Sell, "PUT", "/v2/deals/30001"),
            (Sell, "PUT", "/v2/contacts/20001"),
            (
                Pipedrive,
                "PATCH",
                "/api/v1/leads/adf21080-0e10-11eb-879b-05d71fb426ec",
            ),
            (
                Pipedrive,
                "PATCH",
                "/api/v2/organizations/20950?api_token=***",
            ),
            (Pipedrive, "PATCH", "/api/v2/activities/40001"),
            (Hubspot, "POST", "/crm/v3/objects/tickets/batch/update"),
            (
                Salesforce,
                "PATCH",
                "/services/data/v62.0/composite/sobjects",
            ),
        ];
        for (crm, method, path) in writes {
            assert!(is_record_write(crm, method, path), "{crm} {method} {path}");
        }
        let not = [
            (Sell, "POST", "/v2/tasks"),
            (Sell, "GET", "/v2/deals/30001"),
            (Sell, "PUT", "/v2/users/101"),
            (Pipedrive, "PUT", "/api/v1/users/101"),
            (Pipedrive, "POST", "/api/v2/activities"),
            (Hubspot, "POST", "/crm/v3/objects/tasks"),
            (Hubspot, "POST", "/crm/v3/objects/deals/search"),
            (
                Salesforce,
                "PATCH",
                "/services/data/v62.0/sobjects/User/005000000000065AAA",
            ),
            (Salesforce, "POST", "/services/data/v62.0/sobjects/Task"),
            // Another CRM's write is no write here.
            (Hubspot, "PUT", "/v2/deals/30001"),
        ];
        for (crm, method, path) in not {
            assert!(!is_record_write(crm, method, path), "{crm} {method} {path}");
        }
    }

    #[test]
    fn the_leaver_is_the_biggest_open_book_and_fixed_by_the_seed() {
        let seed = Seed::generate(40, ORG_SEED);
        let (id, email) = biggest_book(&seed).unwrap();
        assert_eq!(biggest_book(&seed), Some((id, email)));
        assert_eq!(seed.leads.iter().filter(|l| l.owner_id == id).count(), 40);
        assert!(seed.tickets.iter().any(|t| t.owner_id == id));
    }

    #[test]
    fn crm_lists_parse_and_default_to_sell() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: PacingArgs,
        }
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.args.crm, vec![SandboxCrm::Sell]);
        let cli = Cli::try_parse_from(["x", "--crm", "sell,pipedrive,HubSpot,salesforce"]).unwrap();
        assert_eq!(
            cli.args.crm,
            vec![
                SandboxCrm::Sell,
                SandboxCrm::Pipedrive,
                SandboxCrm::Hubspot,
                SandboxCrm::Salesforce
            ]
        );
        assert!(Cli::try_parse_from(["x", "--crm", "sell,dynamics"]).is_err());
    }
}
