//! `offboard bench …`: the benchmarks behind BENCHMARKS.md. This file only parses
//! arguments; the benchmarks live in [`crate::bench`].

use std::{net::SocketAddr, time::Duration};

use super::CliError;
use crate::bench::ingest::{self, Commit, IngestOptions, Target};

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
pub(super) enum BenchCommand {
    /// Webhook ingest throughput and latency against a bare axum baseline, before and
    /// after group commit, with a zero-lost-events check, RSS and start-up time.
    Ingest(IngestArgs),
}

/// Arguments of `offboard bench ingest`.
#[derive(Debug, clap::Args)]
pub(super) struct IngestArgs {
    /// Concurrent keep-alive connections; one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    concurrency: Vec<usize>,
    /// Seconds each run sends for.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Distinct pre-signed events per C (each offboard store gets all of them).
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Interleaved rounds each server's time at a C is split into.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Which commit modes to measure (the baseline always runs).
    #[arg(long, value_enum, default_value = "both")]
    commit: CommitArg,
    /// Internal: serve the baseline on this address (the benchmark starts it).
    #[arg(long, hide = true)]
    serve_baseline: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CommitArg {
    /// Per request (before) and group commit (after).
    Both,
    /// Only one transaction per request.
    PerRequest,
    /// Only group commit.
    Group,
}

pub(super) async fn run(command: BenchCommand) -> Result<(), CliError> {
    match command {
        BenchCommand::Ingest(args) => {
            if let Some(addr) = args.serve_baseline {
                return Ok(ingest::serve_baseline(addr).await?);
            }
            if args.concurrency.contains(&0) || args.duration_secs == 0 {
                return Err(CliError::Config(
                    "--concurrency values and --duration-secs must be at least 1".into(),
                ));
            }
            let mut targets = vec![Target::Baseline];
            if matches!(args.commit, CommitArg::Both | CommitArg::PerRequest) {
                targets.push(Target::Offboard(Commit::PerRequest));
            }
            if matches!(args.commit, CommitArg::Both | CommitArg::Group) {
                targets.push(Target::Offboard(Commit::Group));
            }
            let exe = std::env::current_exe()
                .map_err(|e| anyhow::anyhow!("cannot find the offboard binary: {e}"))?;
            ingest::run(&IngestOptions {
                concurrency: args.concurrency,
                duration: Duration::from_secs(args.duration_secs),
                events: args.events,
                targets,
                rounds: args.rounds,
                exe,
            })
            .await?;
            Ok(())
        }
    }
}
