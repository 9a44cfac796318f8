//! `offboard bench …`: the benchmarks, runnable from the product binary.

use clap::Subcommand;

use super::CliError;

#[derive(Debug, Subcommand)]
pub(super) enum BenchCommand {
    /// Pacing at the CRM's limit against a sequential baseline.
    Pacing(crate::bench::pacing::PacingArgs),
}

pub(super) async fn run(command: BenchCommand) -> Result<(), CliError> {
    match command {
        BenchCommand::Pacing(args) => crate::bench::pacing::run(args).await?,
    }
    Ok(())
}
