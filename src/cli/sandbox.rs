//! `offboard sandbox`: the CRM sandbox (Sell or Pipedrive shapes, one org model)
//! as a standalone server, for rehearsing a policy against an organisation that
//! looks like yours, and for benchmarks. Stops on Ctrl-C / SIGTERM.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use super::CliError;
use offboard_sandbox::{Sandbox, SandboxCrm, SandboxOptions, Seed};

/// Arguments of `offboard sandbox`.
#[derive(Debug, clap::Args)]
pub(super) struct SandboxArgs {
    /// Which CRM's API to speak: zendesk_sell, pipedrive, hubspot or salesforce.
    #[arg(long, default_value = "zendesk_sell")]
    crm: SandboxCrm,
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Accept only this API token (Sell: bearer; Pipedrive: `x-api-token`;
    /// default: any non-empty token).
    #[arg(long)]
    token: Option<String>,
    /// A JSON seed file (the format of `GET /__sandbox/state`).
    #[arg(long, conflicts_with = "generate")]
    seed: Option<PathBuf>,
    /// Generate an organisation with N records of each kind for a few reps.
    #[arg(long)]
    generate: Option<usize>,
    /// Requests per second per token before 429.
    #[arg(long)]
    rps: Option<u32>,
    /// Added latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of requests that fail (500, 503 or a dropped connection), 0.0–1.0.
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
}

pub(super) async fn run(args: SandboxArgs) -> Result<(), CliError> {
    let seed = match (&args.seed, args.generate) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::Config(format!("--seed {}: {e}", path.display())))?;
            Seed::from_json(&text)
                .map_err(|e| CliError::Config(format!("--seed {}: {e}", path.display())))?
        }
        (None, Some(n)) => Seed::generate(n, 42),
        (None, None) => Seed::demo(),
    };
    if !(0.0..=1.0).contains(&args.fault_rate) {
        return Err(CliError::Config(
            "--fault-rate: expected a number between 0.0 and 1.0".into(),
        ));
    }
    let sandbox = Sandbox::start(SandboxOptions {
        listen: args.listen,
        token: args.token,
        rps: args.rps,
        latency: Duration::from_millis(args.latency_ms),
        fault_rate: args.fault_rate,
        seed,
        crm: args.crm,
        ..SandboxOptions::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot start the sandbox on {}: {e}", args.listen))?;
    let base = sandbox.base_url();
    match args.crm {
        SandboxCrm::Pipedrive => {
            println!("Pipedrive sandbox listening on {base}");
            println!(
                "  Pipedrive API:  {base}/api/v1/…, {base}/api/v2/…   control: {base}/__sandbox/state"
            );
        }
        SandboxCrm::Hubspot => {
            println!("HubSpot sandbox listening on {base}");
            println!(
                "  HubSpot API:  {base}/crm/v3/…, {base}/settings/v3/…   control: {base}/__sandbox/state"
            );
        }
        SandboxCrm::Salesforce => {
            println!("Salesforce sandbox listening on {base}");
            println!(
                "  Salesforce API:  {base}/services/data/vXX.X/…, {base}/services/oauth2/userinfo   control: {base}/__sandbox/state"
            );
            println!(
                "  point offboard at it: [crm] kind = \"salesforce\", base_url = \"{base}\" (the instance URL)"
            );
        }
        SandboxCrm::Sell => {
            println!("Sell sandbox listening on {base}");
            println!("  Sell API:  {base}/v2/…   control: {base}/__sandbox/state");
        }
    }
    wait_for_stop().await;
    sandbox.shutdown().await;
    Ok(())
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
