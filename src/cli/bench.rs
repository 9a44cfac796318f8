//! `offboard bench …`: the benchmarks of BENCHMARKS.md, run from the product binary.
//! Each subcommand parses its arguments here and hands off to `offboard_bench`.

use super::CliError;
use offboard_bench::{
    ingest::{self, IngestArgs},
    layoff::{self, LayoffArgs},
    pacing::{self, PacingArgs},
    scaling::{self, ScalingArgs},
    soak::{self, SoakArgs},
    store::{self, StoreArgs},
};

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
pub(super) enum BenchCommand {
    /// Webhook ingest throughput and latency against a bare axum route, before and
    /// after group commit, with a zero-lost-events check, RSS and start-up time.
    Ingest(IngestArgs),
    /// Pacing at Sell's limit against a sequential baseline, and calls per record
    /// moved on each CRM of `--crm`.
    Pacing(PacingArgs),
    /// A mass layoff in one burst on one CRM token: time until every seat is cut
    /// and every open deal moved (seat first, records first, a sequential
    /// client), total time against the calls needed at the rate, 429 share.
    Layoff(LayoffArgs),
    /// Jobs per second with 1, 2, 3 worker processes on PostgreSQL (and 1 on
    /// SQLite), and what a permit of the shared CRM budget costs.
    Scaling(ScalingArgs),
    /// A bounded soak: steady webhooks with hostile ones, a faulty CRM, the worker
    /// SIGKILLed and restarted, policy reloads by SIGHUP; then checks that nothing
    /// accepted was lost, every job is where it should be, RSS stayed steady and
    /// nothing panicked (RELIABILITY.md). Exits 1 when a check fails.
    Soak(SoakArgs),
    /// Flat cost as the store grows: claim, list (first and last page), job detail
    /// and the `/metrics` reads on a store of `--jobs` finished jobs against an
    /// empty one (ratios), the plan of each statement, and with `--retention` what
    /// pruning does to the SQLite file.
    Store(StoreArgs),
}

pub(super) async fn run(command: BenchCommand) -> Result<(), CliError> {
    match command {
        BenchCommand::Ingest(args) => ingest::run(args).await.map_err(CliError::Failed),
        BenchCommand::Layoff(args) => layoff::run(args).await.map_err(CliError::Failed),
        BenchCommand::Pacing(args) => pacing::run(args).await.map_err(CliError::Failed),
        BenchCommand::Scaling(args) => scaling::run(args).await.map_err(CliError::Failed),
        BenchCommand::Soak(args) => soak::run(args).await.map_err(CliError::Failed),
        BenchCommand::Store(args) => store::run(args).await.map_err(CliError::Failed),
    }
}
