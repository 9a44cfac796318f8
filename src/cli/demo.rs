//! `offboard demo`: the whole job in one process with nothing to configure.
//!
//! It starts the CRM sandbox (Sell, or another CRM with `--crm pipedrive|hubspot|salesforce`) on a free
//! loopback port, offboard itself (receiver and worker) on a temp SQLite store
//! with `config/policy-demo.toml`, posts three correctly signed webhooks, shows
//! progress while records move, plays the CRM admin's part where the CRM's API
//! cannot change seats (Sell: deactivate/delete in the UI; Pipedrive needs no
//! one: offboard sets `active_flag` itself), and ends with a table per leaver
//! that it checks against the sandbox's own state. The notifications offboard
//! sends (DESIGN.md §13) go to a local SMTP catcher and webhook catcher the demo
//! starts on loopback, and are printed as they were received.

use std::{
    collections::BTreeMap,
    io::IsTerminal,
    time::{Duration, Instant},
};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::CliError;
use offboard_core::{
    app::{Application, Role},
    config::{Config, CrmKind},
    crm::{Capabilities, Resource, SeatAbility, capabilities_of},
    ingest::schemes::StandardWebhooks,
};
use offboard_sandbox::{
    Sandbox, SandboxCrm, SandboxOptions, Seed,
    catcher::{HookCatcher, MailCatcher},
};

const DEMO_POLICY: &str = include_str!("../../config/policy-demo.toml");
const WEBHOOK_SECRET: &str = "whsec_ZGVtby1zZWNyZXQtZm9yLW9mZmJvYXJkLWRlbW8=";
const OUTBOUND_SECRET: &str = "whsec_ZGVtby1vdXRib3VuZC13ZWJob29rLXNlY3JldA==";
const DEADLINE: Duration = Duration::from_secs(90);

/// One leaver of the demo.
struct Leaver {
    email: &'static str,
    event: Value,
    expect_action: &'static str,
    expect_seat: &'static str,
}

/// The three leavers; `crm` decides what Sam's involuntary exit ends as (a CRM
/// that cannot delete users deactivates instead).
fn leavers(crm: &Capabilities) -> Vec<Leaver> {
    let (sam_action, sam_seat) = match crm.delete {
        SeatAbility::Impossible => ("deactivate", "inactive"),
        _ => ("delete", "deleted"),
    };
    let event = |id: &str, email: &str, name: &str, kind: &str, rehire: bool, hold: bool| {
        json!({
            "id": id, "type": "employee.terminated", "occurred_at": chrono::Utc::now(),
            "employee": { "id": id, "email": email, "name": name, "department": "Sales", "country": "US",
                          "manager_email": "max.manager@example.com" },
            "termination": { "effective_at": chrono::Utc::now(), "kind": kind, "rehire_eligible": rehire },
            "legal_hold": hold
        })
    };
    vec![
        Leaver {
            email: "jane.doe@example.com",
            event: event(
                "demo_evt_1",
                "jane.doe@example.com",
                "Jane Doe",
                "voluntary",
                true,
                false,
            ),
            expect_action: "deactivate",
            expect_seat: "inactive",
        },
        Leaver {
            email: "sam.seller@example.com",
            event: event(
                "demo_evt_2",
                "sam.seller@example.com",
                "Sam Seller",
                "involuntary",
                false,
                false,
            ),
            expect_action: sam_action,
            expect_seat: sam_seat,
        },
        Leaver {
            email: "lee.hold@example.com",
            event: event(
                "demo_evt_3",
                "lee.hold@example.com",
                "Lee Hold",
                "involuntary",
                false,
                true,
            ),
            expect_action: "deactivate",
            expect_seat: "inactive",
        },
    ]
}

/// Runs the demo against a sandbox of `crm`; `keep` leaves everything running afterwards.
pub(super) async fn run(keep: bool, crm: SandboxCrm) -> Result<(), CliError> {
    let started = Instant::now();
    let kind = match crm {
        SandboxCrm::Sell => CrmKind::ZendeskSell,
        SandboxCrm::Pipedrive => CrmKind::Pipedrive,
        SandboxCrm::Hubspot => CrmKind::Hubspot,
        SandboxCrm::Salesforce => CrmKind::Salesforce,
    };
    let dir = tempfile::tempdir().map_err(|e| anyhow::anyhow!("temp dir: {e}"))?;
    let sandbox_token = format!("sandbox-{}", uuid::Uuid::now_v7().simple());
    let admin_token = format!("admin-{}", uuid::Uuid::now_v7().simple());
    let sandbox = Sandbox::start(SandboxOptions {
        listen: "127.0.0.1:0".parse().map_err(|e| anyhow::anyhow!("{e}"))?,
        token: Some(sandbox_token.clone()),
        rps: None,
        latency: Duration::ZERO,
        fault_rate: 0.0,
        seed: Seed::demo(),
        crm,
        ..SandboxOptions::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot start the CRM sandbox: {e}"))?;

    let write = |name: &str, text: &str| -> Result<std::path::PathBuf, CliError> {
        let path = dir.path().join(name);
        std::fs::write(&path, text)
            .map_err(|e| anyhow::anyhow!("write {}: {e}", path.display()))?;
        Ok(path)
    };
    // Where notifications go: stand-ins for a mail server and a chat webhook.
    let mail = MailCatcher::start()
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the demo's SMTP catcher: {e}"))?;
    let hook = HookCatcher::start()
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the demo's webhook catcher: {e}"))?;
    let policy = write("policy.toml", DEMO_POLICY)?;
    let outbound = write("outbound-secret", OUTBOUND_SECRET)?;
    let secrets = write("webhook-secrets", WEBHOOK_SECRET)?;
    let sell_token = write("sell-token", &sandbox_token)?;
    let admin_token_file = write("admin-token", &admin_token)?;
    let config = Config::from_toml(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[store]
url = "sqlite://{db}"
[crm]
kind = "{kind}"
base_url = "{sell}"
token_env = ""
token_file = "{sell_token}"
admin_email = "admin@example.com"
requests_per_second = 50
[[sources]]
name = "hr"
scheme = "standard_webhooks"
secrets_file = "{secrets}"
[policy]
file = "{policy}"
[admin]
token_env = ""
token_file = "{admin_token_file}"
[worker]
verify_interval_secs = 1
poll_interval_ms = 100
[notify]
retry_base_secs = 1
[notify.email]
smtp_url = "{smtp}"
from = "offboard@example.com"
[[notify.webhooks]]
name = "demo-chat"
url = "{hook}"
secret_env = ""
secret_file = "{outbound}"
format = "slack"
"#,
        smtp = mail.url(),
        hook = hook.url(),
        outbound = outbound.display(),
        db = dir.path().join("offboard.db").display(),
        kind = crm.as_str(),
        sell = sandbox.base_url(),
        sell_token = sell_token.display(),
        secrets = secrets.display(),
        policy = policy.display(),
        admin_token_file = admin_token_file.display(),
    ))?;
    let app = Application::build(config, Role::All).await?;
    let base = format!("http://{}", app.local_addr());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let mut result = drive(
        &base,
        &admin_token,
        &sandbox,
        capabilities_of(kind),
        started,
    )
    .await;
    if result.is_ok() {
        result = show_notifications(&base, &admin_token, &mail, &hook).await;
    }
    if keep && result.is_ok() {
        println!("\nStill running (Ctrl-C to stop):");
        println!("  offboard:      {base}   (admin token: {admin_token})");
        println!(
            "  {} sandbox:  {}   (API token: {sandbox_token}; state at /__sandbox/state)",
            capabilities_of(kind).name,
            sandbox.base_url()
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    shutdown.cancel();
    let _ = server.await;
    sandbox.shutdown().await;
    result
}

async fn drive(
    base: &str,
    admin_token: &str,
    sandbox: &Sandbox,
    crm: &Capabilities,
    started: Instant,
) -> Result<(), CliError> {
    let http = reqwest::Client::new();
    let state = sandbox.state();
    let leavers = leavers(crm);
    println!(
        "offboard demo: {} sandbox at {}, offboard at {base}",
        crm.name,
        sandbox.base_url()
    );
    println!("Posting three signed webhooks from the HR system:\n");

    // Open records per leaver before anything moves (the bars' totals).
    let mut jobs = Vec::new();
    for l in &leavers {
        let user = state
            .user_by_email(l.email)
            .await
            .ok_or_else(|| anyhow::anyhow!("sandbox has no user {}", l.email))?;
        let total = state.open_counts(user.id).await.open_total() as u64;
        let body = l.event.to_string();
        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        let ts = chrono::Utc::now().timestamp();
        let sig = StandardWebhooks::sign(WEBHOOK_SECRET, &id, ts, body.as_bytes())
            .map_err(|e| anyhow::anyhow!(e))?;
        let resp = http
            .post(format!("{base}/webhooks/hr"))
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("post webhook: {e}"))?;
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .map_err(|e| anyhow::anyhow!("webhook answer: {e}"))?;
        if status.as_u16() != 202 {
            return Err(anyhow::anyhow!("webhook for {} answered {status}: {v}", l.email).into());
        }
        println!(
            "  {:<24} kind={:<12} legal_hold={:<5} → {} job {}",
            l.email,
            l.event["termination"]["kind"].as_str().unwrap_or("-"),
            l.event["legal_hold"],
            status.as_u16(),
            v["job_id"].as_str().unwrap_or("?")
        );
        jobs.push((
            v["job_id"].as_str().unwrap_or_default().to_owned(),
            user.id,
            total,
        ));
    }
    println!();

    let tty = std::io::stdout().is_terminal();
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:<24} [{bar:30}] {pos:>4}/{len:4} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bars: Vec<ProgressBar> = leavers
        .iter()
        .zip(&jobs)
        .map(|(l, (_, _, total))| {
            let bar = if tty {
                multi.add(ProgressBar::new(*total))
            } else {
                ProgressBar::hidden()
            };
            bar.set_style(style.clone());
            bar.set_prefix(l.email);
            bar
        })
        .collect();

    let mut admin_done = vec![false; jobs.len()];
    let mut last_line: Vec<String> = vec![String::new(); jobs.len()];
    let mut finals: Vec<Value> = vec![Value::Null; jobs.len()];
    loop {
        if started.elapsed() > DEADLINE {
            return Err(
                anyhow::anyhow!("the demo did not finish within {}s", DEADLINE.as_secs()).into(),
            );
        }
        let mut settled = 0;
        for (i, (job_id, user_id, total)) in jobs.iter().enumerate() {
            let job: Value = http
                .get(format!("{base}/api/v1/jobs/{job_id}"))
                .bearer_auth(admin_token)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("read job: {e}"))?
                .json()
                .await
                .map_err(|e| anyhow::anyhow!("read job: {e}"))?;
            let moved = moved_per_kind(&job).values().sum::<u64>();
            let jstate = job["state"].as_str().unwrap_or("?").to_owned();
            let msg = match jstate.as_str() {
                "scheduled" if job["checkpoints"].get("seat_requested_at").is_some() => {
                    format!("waiting for the {} admin", crm.name)
                }
                s => s.to_owned(),
            };
            bars[i].set_position(moved.min(*total));
            bars[i].set_message(msg.clone());
            let line = format!(
                "{} {moved}/{total} records reassigned, {msg}",
                leavers[i].email
            );
            if !tty && line != last_line[i] {
                println!("  {line}");
                last_line[i] = line;
            }
            if !admin_done[i] && job["checkpoints"].get("seat_requested_at").is_some() {
                admin_done[i] = true;
                let action = job["action"].as_str().unwrap_or("deactivate");
                let ability = match action {
                    "delete" => crm.delete,
                    _ => crm.deactivate,
                };
                let said = match ability {
                    SeatAbility::Manual => format!(
                        "Admin step — this is what a {} admin does by hand in {}: {} {} (offboard created a task asking for it)",
                        crm.name,
                        crm.seat_admin_path,
                        action.to_uppercase(),
                        leavers[i].email
                    ),
                    _ => format!(
                        "Seat step — offboard itself {action}d {} through {}'s API and reads the user back; no admin needed",
                        leavers[i].email, crm.name
                    ),
                };
                if tty {
                    multi.println(&said).ok();
                } else {
                    println!("  {said}");
                }
                if ability == SeatAbility::Manual {
                    let changed = if action == "delete" {
                        state.delete(*user_id).await
                    } else {
                        state.deactivate(*user_id).await
                    };
                    changed.map_err(|e| {
                        anyhow::anyhow!(
                            "the sandbox refused the admin step for user {user_id}: {e}"
                        )
                    })?;
                }
            }
            if matches!(
                jstate.as_str(),
                "succeeded" | "failed" | "needs_review" | "cancelled"
            ) {
                settled += 1;
                bars[i].finish_with_message(jstate.clone());
                finals[i] = job;
            }
        }
        if settled == jobs.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    drop(bars);

    // The table, checked against the sandbox's own state.
    println!(
        "\n{:<24} {:<40} {:<10} {:<28} {:<26} {:<9} job",
        "leaver",
        "rule matched",
        "action",
        reassigned_header(crm),
        "left: closed deals / done tasks",
        "seat"
    );
    let mut problems = Vec::new();
    for (i, l) in leavers.iter().enumerate() {
        let job = &finals[i];
        let (_, user_id, _) = jobs[i];
        let moved = moved_per_kind(job);
        let kinds: Vec<String> = crm
            .resources
            .iter()
            .map(|r| moved.get(r.as_str()).copied().unwrap_or(0).to_string())
            .collect();
        let counts = state.open_counts(user_id).await;
        let still_open = counts.open_total();
        let closed_deals = counts.get(Resource::Deals).closed;
        let done_tasks = counts.get(Resource::Tasks).closed;
        let seat = match state.user(user_id).await {
            Some(u) if u.deleted_at.is_some() => "deleted",
            Some(u) if u.is_active() => "active",
            Some(_) => "inactive",
            None => "missing",
        };
        let action = job["action"].as_str().unwrap_or("-");
        let jstate = job["state"].as_str().unwrap_or("-");
        println!(
            "{:<24} {:<40} {:<10} {:<28} {:<26} {:<9} {}",
            l.email,
            job["plan"]["rule"].as_str().unwrap_or("-"),
            action,
            kinds.join("/"),
            format!("{closed_deals} / {done_tasks}"),
            seat,
            jstate
        );
        if jstate != "succeeded" {
            problems.push(format!("{}: job ended {jstate}", l.email));
        }
        if action != l.expect_action {
            problems.push(format!(
                "{}: action {action}, expected {}",
                l.email, l.expect_action
            ));
        }
        if seat != l.expect_seat {
            problems.push(format!(
                "{}: seat is {seat}, expected {}",
                l.email, l.expect_seat
            ));
        }
        if still_open != 0 {
            problems.push(format!(
                "{}: {still_open} open records still owned",
                l.email
            ));
        }
        if let Some(g) = job["plan"]["guards"]
            .as_array()
            .and_then(|g| g.iter().find(|g| g["changed"] == true))
        {
            println!(
                "{:<24} guard {}: {}",
                "",
                g["guard"].as_str().unwrap_or("?"),
                g["detail"].as_str().unwrap_or("")
            );
        }
    }
    println!(
        "\nFinished in {:.1}s. Audit trails: GET {base}/api/v1/jobs/<id> (or `offboard jobs show <id>`).",
        started.elapsed().as_secs_f64()
    );
    if problems.is_empty() {
        println!(
            "Every open record moved to an active owner; closed deals and completed tasks stayed; every seat shows the decided state."
        );
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "the demo's final state is wrong:\n  {}",
            problems.join("\n  ")
        )
        .into())
    }
}

/// Waits until every job's notifications are delivered (or given up on), then
/// prints what the demo's SMTP catcher and webhook catcher received.
async fn show_notifications(
    base: &str,
    admin_token: &str,
    mail: &MailCatcher,
    hook: &HookCatcher,
) -> Result<(), CliError> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut listed: Vec<Value> = Vec::new();
    loop {
        let jobs: Value = http
            .get(format!("{base}/api/v1/jobs"))
            .bearer_auth(admin_token)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("list jobs: {e}"))?
            .json()
            .await
            .map_err(|e| anyhow::anyhow!("list jobs: {e}"))?;
        listed.clear();
        for j in jobs["jobs"].as_array().into_iter().flatten() {
            let id = j["id"].as_str().unwrap_or_default();
            let job: Value = http
                .get(format!("{base}/api/v1/jobs/{id}"))
                .bearer_auth(admin_token)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("read job: {e}"))?
                .json()
                .await
                .map_err(|e| anyhow::anyhow!("read job: {e}"))?;
            listed.extend(job["notifications"].as_array().cloned().unwrap_or_default());
        }
        let open = listed
            .iter()
            .filter(|n| !matches!(n["state"].as_str(), Some("delivered" | "dead")))
            .count();
        if open == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let delivered = listed.iter().filter(|n| n["state"] == "delivered").count();
    println!(
        "\nNotifications: {delivered} of {} delivered, each written with the step that caused it and sent from the outbox.",
        listed.len()
    );
    println!(
        "  E-mail, as the demo's SMTP server on {} received it:",
        mail.addr()
    );
    for m in mail.messages() {
        println!(
            "    to {:<26} {}",
            m.to.join(", "),
            m.header("subject").unwrap_or_default()
        );
    }
    println!(
        "  Webhook (format = \"slack\"), as the demo's receiver at {} got it:",
        hook.url()
    );
    for r in hook.accepted() {
        println!("    {}", r.json()["text"].as_str().unwrap_or_default());
    }
    if delivered == listed.len() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "{} notifications were not delivered",
            listed.len() - delivered
        )
        .into())
    }
}

/// `reassigned l/c/d/t` for Sell: a letter per resource the CRM has (`tk` for
/// tickets, which share the `t` of tasks).
fn reassigned_header(crm: &Capabilities) -> String {
    let letters: Vec<&str> = crm
        .resources
        .iter()
        .map(|r| match r {
            Resource::Tickets => "tk",
            other => &other.as_str()[..1],
        })
        .collect();
    format!("reassigned {}", letters.join("/"))
}

/// Records moved per kind, from the job's reassignment checkpoints.
fn moved_per_kind(job: &Value) -> BTreeMap<String, u64> {
    Resource::ALL
        .iter()
        .map(|r| {
            let moved = job["checkpoints"][format!("reassign.{r}")]["moved"]
                .as_u64()
                .unwrap_or(0);
            (r.as_str().to_owned(), moved)
        })
        .collect()
}
