//! `offboard policy check|explain`: validate a policy file (errors name
//! file:line:col), and show what it would decide for an event without touching
//! anything.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::Value;

use super::CliError;
use offboard_core::{
    config::Config,
    crm::{Capabilities, CrmUser, capabilities_of},
    domain::OffboardingEvent,
    policy::{Facts, Policy, explain_json, explain_text},
};

#[derive(Debug, Subcommand)]
pub(super) enum PolicyCommand {
    /// Parse and validate the policy; exit 0 when valid, 2 otherwise.
    Check {
        /// Policy file (default: `[policy] file` of the config).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// The decision for one event, and why.
    Explain {
        /// Policy file (default: `[policy] file` of the config).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// A canonical event (JSON, DESIGN.md §5).
        #[arg(long)]
        event: PathBuf,
        /// The CRM user, as Sell's API returns it (`{"data":{…}}` or the bare object).
        #[arg(long)]
        user: Option<PathBuf>,
        /// How many active CRM users report to that user (the worker counts them;
        /// without this, explain decides as the worker does when it counts none).
        #[arg(long, requires = "user")]
        reportees: Option<u64>,
        /// How many open records the user owns (for rules that match on
        /// `owned_open_records`).
        #[arg(long, requires = "user")]
        open_records: Option<u64>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(config_path: &Path, command: PolicyCommand) -> Result<(), CliError> {
    // The CRM `[crm] kind` names; with no (readable) config, the embedded
    // defaults' CRM.
    let crm: Option<&'static Capabilities> = Config::load(config_path, true)
        .ok()
        .map(|c| capabilities_of(c.crm.kind));
    let path_or_config = |policy: Option<PathBuf>| -> Result<PathBuf, CliError> {
        match policy {
            Some(p) => Ok(p),
            None => Ok(Config::load(config_path, true)?.policy.file),
        }
    };
    match command {
        PolicyCommand::Check { policy } => {
            let path = path_or_config(policy)?;
            let loaded = Policy::load(&path).map_err(|e| CliError::Config(e.to_string()))?;
            let rules: Vec<&str> = loaded.rule_names().collect();
            println!(
                "{}: ok (version {}, {} rules: {})",
                path.display(),
                loaded.version(),
                rules.len(),
                rules.join(", ")
            );
            if let Some(crm) = crm {
                for (rule, resource) in loaded.resources_missing_in(crm) {
                    eprintln!(
                        "warning: rule {rule:?} reassigns {resource}, which {} does not have; the worker skips it (audited)",
                        crm.name
                    );
                }
            }
            Ok(())
        }
        PolicyCommand::Explain {
            policy,
            event,
            user,
            reportees,
            open_records,
            json,
        } => {
            let path = path_or_config(policy)?;
            let loaded = Policy::load(&path).map_err(|e| CliError::Config(e.to_string()))?;
            let event_json = read_json(&event)?;
            let event = OffboardingEvent::from_json(&event_json, None)
                .map_err(|e| CliError::Config(format!("{}: {e}", event.display())))?;
            let user = match user {
                Some(p) => Some(read_user(&p)?),
                None => None,
            };
            let facts = Facts {
                event: &event,
                user: user.as_ref(),
                owned_open_records: open_records,
                active_reportees: reportees,
                crm,
                now: chrono::Utc::now(),
            };
            // The worker's decision for these facts, with the counts it reads at
            // run time taken as it finds them when it goes ahead.
            let decision = loaded.decide_ahead(&facts);
            if json {
                println!("{}", explain_json(&decision));
            } else {
                print!("{}", explain_text(&decision));
                if user.is_none() {
                    println!(
                        "(no --user given: CRM facts were assumed unknown; see the assumptions above)"
                    );
                }
            }
            Ok(())
        }
    }
}

fn read_json(path: &Path) -> Result<Value, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Config(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        CliError::Config(format!(
            "{}:{}:{}: {e}",
            path.display(),
            e.line(),
            e.column()
        ))
    })
}

/// Accepts Sell's single-object envelope or the bare user object.
fn read_user(path: &Path) -> Result<CrmUser, CliError> {
    let v = read_json(path)?;
    let data = v.get("data").cloned().unwrap_or(v);
    serde_json::from_value(data)
        .map_err(|e| CliError::Config(format!("{}: not a Sell user: {e}", path.display())))
}
