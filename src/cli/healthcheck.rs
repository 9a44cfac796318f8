//! `offboard healthcheck`: one GET of the running service's `/healthz`, exit 0 when
//! it answers 200, 1 otherwise. It is the image's `HEALTHCHECK`, so the runtime
//! image needs no curl or shell; the URL comes from the same config (file + env
//! overrides) that `serve` reads, so a changed listen port is followed.

use std::{net::SocketAddr, path::Path, time::Duration};

use clap::Args;

use super::CliError;
use offboard_core::config::Config;

#[derive(Debug, Args)]
pub(super) struct HealthcheckArgs {
    /// URL to check (default: `/healthz` on loopback at `[server] listen`'s port).
    #[arg(long)]
    url: Option<String>,
    /// Seconds to wait for the answer. Below the image's `HEALTHCHECK --timeout`
    /// (3 s), so the check reports its own error instead of being killed.
    #[arg(long, default_value_t = 2.0)]
    timeout: f64,
}

pub(super) async fn run(config_path: &Path, args: HealthcheckArgs) -> Result<(), CliError> {
    let url = match args.url {
        Some(url) => url,
        None => healthz_url(Config::load(config_path, false)?.server.listen),
    };
    // Parsed up front so a typo is a usage error (2), not "unhealthy" (1).
    let parsed = reqwest::Url::parse(&url)
        .map_err(|e| CliError::Config(format!("healthcheck --url {url}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(CliError::Config(format!(
            "healthcheck --url {url}: expected http:// or https://"
        )));
    }
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| {
            CliError::Config(format!(
                "healthcheck --timeout {}: expected a positive number of seconds",
                args.timeout
            ))
        })?;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        // A proxy from the environment must not stand between the check and loopback.
        .no_proxy()
        .build()
        .map_err(|e| CliError::Failed(anyhow::anyhow!("healthcheck: HTTP client: {e}")))?;
    let response = client
        .get(parsed)
        .send()
        .await
        // The cause chain (refused, timed out, …) is what tells why; main prints it.
        .map_err(|e| {
            CliError::Failed(anyhow::Error::new(e).context(format!("unhealthy: GET {url}")))
        })?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(CliError::Failed(anyhow::anyhow!(
            "unhealthy: GET {url}: {status}"
        )));
    }
    // Docker keeps the check's output in `inspect`; one short line is enough.
    println!("healthy: GET {url}: {status}");
    Ok(())
}

/// `/healthz` where a client on the same host reaches `listen`: a wildcard bind
/// (0.0.0.0, ::) is reached on loopback, a specific address on itself.
fn healthz_url(listen: SocketAddr) -> String {
    let host = match listen {
        SocketAddr::V4(a) if a.ip().is_unspecified() => "127.0.0.1".to_owned(),
        SocketAddr::V6(a) if a.ip().is_unspecified() => "[::1]".to_owned(),
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    format!("http://{host}:{}/healthz", listen.port())
}

#[cfg(test)]
mod tests {
    use super::healthz_url;

    #[test]
    fn wildcard_binds_are_checked_on_loopback() {
        let url = |s: &str| healthz_url(s.parse().unwrap());
        assert_eq!(url("0.0.0.0:8080"), "http://127.0.0.1:8080/healthz");
        assert_eq!(url("[::]:9000"), "http://[::1]:9000/healthz");
        assert_eq!(url("10.1.2.3:8080"), "http://10.1.2.3:8080/healthz");
        assert_eq!(url("[fe80::1]:80"), "http://[fe80::1]:80/healthz");
    }
}
