//! The two servers the ingest benchmark compares, each a child process of the same
//! `offboard` binary (same runtime set-up, same loopback), so the measured process
//! holds only the server: its RSS in `/proc/<pid>/status` is honest, and its
//! start-up time is a real process start.
//!
//! - offboard: `offboard serve --role receiver` on a fresh SQLite file in a temp dir
//!   (`synchronous=FULL`), one Standard Webhooks source;
//! - the baseline: `offboard bench ingest --serve-baseline ADDR`, a bare axum route
//!   that answers 202 without verifying or storing ([`serve_baseline`]).

use std::{
    net::SocketAddr,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::{
    Router,
    body::Bytes,
    http::{StatusCode, header},
    routing::{get, post},
};
use tokio::process::{Child, Command};

use super::{events, load::get_status};

/// The baseline's answer: the shape and size of offboard's 202.
const BASELINE_BODY: &str = r#"{"event_id":"bench-baseline-0000000","job_id":"01970000-0000-7000-8000-000000000000","duplicate":false}"#;

/// Serves the baseline until the process is killed: `POST /webhooks/{source}` reads
/// the body and answers 202; `GET /readyz` answers 200.
pub async fn serve_baseline(listen: SocketAddr) -> anyhow::Result<()> {
    let app = Router::new()
        .route(
            "/webhooks/{source}",
            post(|_body: Bytes| async {
                (
                    StatusCode::ACCEPTED,
                    [(header::CONTENT_TYPE, "application/json")],
                    BASELINE_BODY,
                )
            }),
        )
        .route("/readyz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// Which offboard to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// One transaction (and fsync) per request: before group commit.
    PerRequest,
    /// Group commit (the default).
    Group,
}

/// A running child server.
pub struct Server {
    child: Child,
    pid: u32,
    /// Where it listens.
    pub addr: SocketAddr,
    /// From spawn to the first 200 on `/readyz`.
    pub ready_after: Duration,
    /// The SQLite URL (offboard only).
    pub store_url: Option<String>,
    /// Keeps the receiver's files until the server is gone and checked.
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts the baseline.
    pub async fn baseline(exe: &Path) -> anyhow::Result<Server> {
        let addr = free_addr()?;
        let log = tempfile::NamedTempFile::new()?;
        let mut cmd = Command::new(exe);
        cmd.args(["bench", "ingest", "--serve-baseline"])
            .arg(addr.to_string());
        Self::start(cmd, addr, None, log.path(), None).await
    }

    /// Starts offboard as a receiver on a fresh store in a temp dir.
    pub async fn offboard(exe: &Path, commit: Commit) -> anyhow::Result<Server> {
        let addr = free_addr()?;
        let dir = tempfile::tempdir()?;
        let p = dir.path();
        std::fs::write(p.join("secrets"), events::SECRET)?;
        std::fs::write(p.join("admin"), "bench-admin-token")?;
        std::fs::write(p.join("crm"), "bench-crm-token")?;
        std::fs::write(
            p.join("policy.toml"),
            "version = 1\n[defaults]\nfallback_owner = \"ops@example.com\"\n\
             [[rules]]\nname = \"all\"\naction = \"deactivate\"\n",
        )?;
        let store_url = format!("sqlite://{}", p.join("offboard.db").display());
        // A receiver never calls the CRM: its URL points at a closed port.
        let config = format!(
            r#"[server]
listen = "{addr}"
[store]
url = "{store_url}"
sqlite_synchronous = "full"
sqlite_group_commit = {group}
[crm]
base_url = "http://127.0.0.1:9"
token_env = ""
token_file = "{dir}/crm"
[[sources]]
name = "bench"
scheme = "standard_webhooks"
secrets_env = ""
secrets_file = "{dir}/secrets"
tolerance_secs = {tolerance}
[policy]
file = "{dir}/policy.toml"
[admin]
token_env = ""
token_file = "{dir}/admin"
"#,
            group = commit == Commit::Group,
            dir = p.display(),
            tolerance = events::TOLERANCE_SECS,
        );
        let config_path = p.join("offboard.toml");
        std::fs::write(&config_path, config)?;
        let mut cmd = Command::new(exe);
        cmd.args([
            "serve",
            "--role",
            "receiver",
            "--log-format",
            "json",
            "--config",
        ])
        .arg(&config_path);
        let log = p.join("offboard.log");
        Self::start(cmd, addr, Some(store_url), &log, Some(dir)).await
    }

    async fn start(
        mut cmd: Command,
        addr: SocketAddr,
        store_url: Option<String>,
        log: &Path,
        dir: Option<tempfile::TempDir>,
    ) -> anyhow::Result<Server> {
        let log_file = std::fs::File::create(log)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            // The service's default level: no line per request.
            .env("OFFBOARD_LOG", "info")
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = cmd.spawn().context("cannot start the server process")?;
        let pid = child
            .id()
            .context("the server process exited immediately")?;
        let deadline = started + Duration::from_secs(30);
        loop {
            if get_status(addr, "/readyz")
                .await
                .is_ok_and(|s| s == StatusCode::OK)
            {
                break;
            }
            if let Some(status) = child.try_wait()? {
                let stderr = std::fs::read_to_string(log).unwrap_or_default();
                anyhow::bail!("the server exited with {status} before it was ready:\n{stderr}");
            }
            if Instant::now() > deadline {
                anyhow::bail!("the server at {addr} was not ready after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(Server {
            child,
            pid,
            addr,
            ready_after: started.elapsed(),
            store_url,
            _dir: dir,
        })
    }

    /// The process's resident set size now, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid, "VmRSS")
    }

    /// The process's peak resident set size, in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid, "VmHWM")
    }

    /// The pid (for sampling RSS from another task).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// SIGKILLs the server: whatever it acknowledged must already be on disk.
    pub async fn kill(mut self) -> anyhow::Result<Killed> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(Killed {
            store_url: self.store_url.take(),
            _dir: self._dir.take(),
        })
    }
}

/// A killed server's store, kept until checked.
pub struct Killed {
    /// The SQLite URL (offboard only).
    pub store_url: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`); `None` off Linux.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// A loopback address with a currently free port.
fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}
