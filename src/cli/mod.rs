//! The `offboard` command line (DESIGN.md §3). This module parses arguments and
//! maps failures to exit codes (0 ok, 2 usage/config, 1 anything else); each
//! command lives in its own file and works through the library like any caller.

mod bench;
mod demo;
mod healthcheck;
mod jobs;
mod policy;
mod sandbox;
mod serve;
mod sources;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use offboard_core::{
    app::{Role, StartError},
    config::Config,
    telemetry::LogFormat,
};

/// offboard: HR "employee is leaving" webhooks → audited CRM offboarding.
#[derive(Debug, Parser)]
#[command(name = "offboard", version, about)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = "config/offboard.toml")]
    config: PathBuf,
    /// Log format (default: json when stdout is not a TTY, pretty otherwise).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// Which parts to run.
        #[arg(long, value_enum, default_value = "all")]
        role: RoleArg,
    },
    /// The whole flow on an embedded default: sandbox, temp store, three leavers.
    Demo {
        /// Leave the sandbox and the service running afterwards.
        #[arg(long)]
        keep: bool,
        /// Which CRM's sandbox to run against: zendesk_sell, pipedrive, hubspot or salesforce.
        #[arg(long, default_value = "zendesk_sell")]
        crm: offboard_sandbox::SandboxCrm,
    },
    /// A CRM sandbox API (Sell or Pipedrive) on loopback.
    Sandbox(sandbox::SandboxArgs),
    /// Validate and explain the policy.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Benchmarks (ratios against a baseline measured in the same run).
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Apply store migrations.
    Migrate,
    /// Operate the job queue (works on the store directly, also when the service is down).
    Jobs {
        #[command(subcommand)]
        command: jobs::JobsCommand,
    },
    /// List configured HR sources; `test` shows the canonical event a payload maps to.
    Sources {
        #[command(subcommand)]
        command: Option<sources::SourcesCommand>,
    },
    /// GET the running service's /healthz: exit 0 when healthy, 1 when not (the
    /// image's HEALTHCHECK, which has no curl).
    Healthcheck(healthcheck::HealthcheckArgs),
}

/// `--role`: the command line's spelling of [`Role`] (the service crate has no
/// command-line parser; its callers pick the role in code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RoleArg {
    /// Receiver and worker.
    All,
    /// Webhooks and the admin API.
    Receiver,
    /// Jobs only (plus health and metrics).
    Worker,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::All => Self::All,
            RoleArg::Receiver => Self::Receiver,
            RoleArg::Worker => Self::Worker,
        }
    }
}

/// `--log-format`: the command line's spelling of [`LogFormat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormatArg {
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

impl From<LogFormatArg> for LogFormat {
    fn from(f: LogFormatArg) -> Self {
        match f {
            LogFormatArg::Json => Self::Json,
            LogFormatArg::Pretty => Self::Pretty,
        }
    }
}

/// Why a command failed, which decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad usage or configuration: exit 2.
    #[error("{0}")]
    Config(String),
    /// Anything else: exit 1.
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

impl From<StartError> for CliError {
    fn from(e: StartError) -> Self {
        // The message alone: the variants already embed their cause in it.
        if e.is_config() {
            Self::Config(e.to_string())
        } else {
            Self::Failed(anyhow::anyhow!("{e}"))
        }
    }
}

impl From<offboard_core::config::ConfigError> for CliError {
    fn from(e: offboard_core::config::ConfigError) -> Self {
        Self::Config(e.to_string())
    }
}

/// Parses arguments, runs the command, returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo and the sandbox talk to a person: keep the log to warnings unless asked.
    let default_filter = match cli.command {
        Command::Demo { .. } | Command::Sandbox(_) | Command::Bench { .. } => "warn",
        // Runs every 30 s inside the container: its log would only be noise.
        Command::Healthcheck(_) => "warn",
        _ => "info",
    };
    let _log = offboard_core::telemetry::init(cli.log_format.map(LogFormat::from), default_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("offboard: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Config(msg)) => {
            eprintln!("offboard: {msg}");
            ExitCode::from(2)
        }
        Err(CliError::Failed(e)) => {
            eprintln!("offboard: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve { role } => serve::run(&cli.config, role.into()).await,
        Command::Demo { keep, crm } => demo::run(keep, crm).await,
        Command::Bench { command } => bench::run(command).await,
        Command::Sandbox(args) => sandbox::run(args).await,
        Command::Migrate => {
            let config = Config::load(&cli.config, true)?;
            let store = open_store(&config).await?;
            store
                .migrate()
                .await
                .map_err(|e| anyhow::anyhow!("migrations: {e}"))?;
            println!("migrations applied to {}", config.store.url);
            Ok(())
        }
        Command::Jobs { command } => jobs::run(&cli.config, command).await,
        Command::Policy { command } => policy::run(&cli.config, command),
        Command::Sources { command } => sources::run(&cli.config, command),
        Command::Healthcheck(args) => healthcheck::run(&cli.config, args).await,
    }
}

/// Opens the configured store (for commands that work on it directly).
pub(crate) async fn open_store(
    config: &Config,
) -> Result<offboard_core::store::SharedStore, CliError> {
    offboard_core::store::open_configured(&config.store)
        .await
        .map_err(|e| CliError::Failed(anyhow::anyhow!("store {}: {e}", config.store.url)))
}
