//! `offboard jobs list|show|retry|cancel|approve`: operate the queue straight on
//! the store, so it works while the service is down. Human tables by default,
//! `--json` for scripts.

use std::path::Path;

use clap::Subcommand;

use super::{CliError, open_store};
use offboard_core::{
    config::Config,
    domain::JobState,
    http::admin::{detail_json, summary},
    store::{Job, JobFilter, Via},
};

#[derive(Debug, Subcommand)]
pub(super) enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only this state.
        #[arg(long)]
        state: Option<JobState>,
        /// Only this employee e-mail.
        #[arg(long)]
        employee: Option<String>,
        /// Only jobs created at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one job with its plan, checkpoints and audit trail.
    Show {
        /// Job id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put a failed, cancelled or needs_review job back in the queue.
    Retry {
        /// Job id.
        id: String,
        /// Print the job after the change as JSON (the admin API's list-entry shape).
        #[arg(long)]
        json: bool,
    },
    /// Cancel a job that has not finished.
    Cancel {
        /// Job id.
        id: String,
        /// Print the job after the change as JSON (the admin API's list-entry shape).
        #[arg(long)]
        json: bool,
    },
    /// Let a job waiting in needs_review proceed.
    Approve {
        /// Job id.
        id: String,
        /// Print the job after the change as JSON (the admin API's list-entry shape).
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(config_path: &Path, command: JobsCommand) -> Result<(), CliError> {
    let config = Config::load(config_path, true)?;
    let redact = config.privacy.redact_emails;
    let store = open_store(&config).await?;
    store
        .ready()
        .await
        .map_err(|e| anyhow::anyhow!("store not ready (run `offboard migrate`?): {e}"))?;
    let op_failed = |e: offboard_core::store::StoreError| CliError::Failed(anyhow::anyhow!("{e}"));
    match command {
        JobsCommand::List {
            state,
            employee,
            since,
            limit,
            json,
        } => {
            let filter = JobFilter {
                state,
                employee: employee.map(|e| e.trim().to_lowercase()),
                since,
                limit: Some(limit),
                before: None,
            };
            let jobs = store.list_jobs(&filter).await.map_err(op_failed)?;
            if json {
                let list: Vec<_> = jobs.iter().map(|j| summary(j, redact)).collect();
                println!("{}", serde_json::json!({ "jobs": list }));
            } else {
                print_table(&jobs, redact);
            }
        }
        JobsCommand::Show { id, json } => {
            let detail = store
                .get_job(&id)
                .await
                .map_err(op_failed)?
                .ok_or_else(|| CliError::Failed(anyhow::anyhow!("no job {id}")))?;
            let v = detail_json(&detail, redact);
            if json {
                println!("{v}");
            } else {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                print_notifications(&v);
            }
        }
        JobsCommand::Retry { id, json } => report(
            &store.retry(&id, Via::Cli).await.map_err(op_failed)?,
            json,
            redact,
        ),
        JobsCommand::Cancel { id, json } => report(
            &store
                .cancel(&id, "cancelled by operator (CLI)", Via::Cli)
                .await
                .map_err(op_failed)?,
            json,
            redact,
        ),
        JobsCommand::Approve { id, json } => report(
            &store.approve(&id, Via::Cli).await.map_err(op_failed)?,
            json,
            redact,
        ),
    }
    Ok(())
}

fn report(job: &Job, json: bool, redact: bool) {
    if json {
        println!("{}", summary(job, redact));
    } else {
        println!("job {} is now {}", job.id, job.state);
    }
}

/// The job's notifications as a table under the JSON (from the same, already
/// redacted, value).
fn print_notifications(detail: &serde_json::Value) {
    let Some(list) = detail["notifications"].as_array().filter(|l| !l.is_empty()) else {
        return;
    };
    println!("\nnotifications:");
    println!(
        "  {:<18}  {:<8}  {:<32}  {:<9}  {:>8}  last error",
        "event", "channel", "to", "state", "attempts"
    );
    for n in list {
        let text = |k: &str| n[k].as_str().unwrap_or("-").to_owned();
        println!(
            "  {:<18}  {:<8}  {:<32}  {:<9}  {:>8}  {}",
            text("event"),
            text("channel"),
            text("target"),
            text("state"),
            n["attempts"].as_u64().unwrap_or(0),
            n["last_error"].as_str().unwrap_or(""),
        );
    }
}

fn print_table(jobs: &[Job], redact: bool) {
    println!(
        "{:<36}  {:<12}  {:<22}  {:<10}  {:<32}  created",
        "id", "state", "kind", "action", "employee"
    );
    for j in jobs {
        println!(
            "{:<36}  {:<12}  {:<22}  {:<10}  {:<32}  {}",
            j.id,
            j.state.as_str(),
            j.kind.as_str(),
            j.action.as_deref().unwrap_or("-"),
            offboard_core::telemetry::show_email(&j.employee_email, redact),
            j.created_at.format("%Y-%m-%d %H:%M:%S"),
        );
    }
    if jobs.is_empty() {
        println!("(no jobs)");
    }
}
