//! A Sell-compatible API server inside the product, for `offboard demo`, for
//! operators rehearsing a policy (`offboard sandbox`), for benchmarks that need a
//! CRM whose speed and faults they control, and for tests of the real Sell client.
//!
//! [`Sandbox::start`] binds a port and serves, from memory, the part of Sell's
//! API v2 offboard uses, with Sell's envelopes and errors (`routes.rs`,
//! `envelope.rs`), behind a gate that checks `User-Agent` and the bearer token,
//! rate-limits per token and injects latency and faults (`limits.rs`). The data
//! comes from a [`Seed`] — a JSON file, [`Seed::generate`] or [`Seed::demo`] —
//! and lives in a `Db` (`db.rs`) that enforces Sell's rules on writes.
//! [`SandboxState`] is the handle tests and the demo use to look inside and to
//! play the Sell admin; the same actions are HTTP routes under `/__sandbox/`
//! (`control.rs`), clearly apart from `/v2`.
//!
//! The sandbox never talks to a real CRM and never panics on a request: every
//! bad request gets the error envelope Sell would send.
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! use offboard_sandbox::{Sandbox, SandboxOptions, Seed};
//! let sandbox = Sandbox::start(SandboxOptions { seed: Seed::demo(), ..SandboxOptions::default() }).await?;
//! let users = format!("{}/v2/users?email=jane.doe@example.com", sandbox.base_url());
//! // … point a Sell client at sandbox.base_url() …
//! sandbox.state().deactivate(101).await.ok();
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod conn;
mod control;
mod db;
mod envelope;
mod generate;
mod limits;
mod log;
mod query;
mod routes;
mod seed;
mod state;

use std::{
    future::IntoFuture,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use axum::{Router, middleware};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use db::{ControlError, Counts, OwnedCounts};
pub use log::{Fault, LOG_CAPACITY, RequestLogEntry, Stats};
pub use seed::{Contact, Deal, Lead, Seed, SeedError, Stage, Task, User};
pub use state::SandboxState;

use conn::{ConnHandle, CuttableListener};
use state::Settings;

/// How a sandbox listens and behaves.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The only bearer token accepted; `None` accepts any non-empty token.
    pub token: Option<String>,
    /// At most this many requests per token in any one-second window; beyond,
    /// 429 with Sell's envelope and no `Retry-After`. `None`: no limit.
    pub rps: Option<u32>,
    /// Added to every admitted Sell request.
    pub latency: Duration,
    /// Share of admitted requests (0.0–1.0) answered with a 500, a 503 or a
    /// dropped connection instead of being handled; a faulted write is never applied.
    pub fault_rate: f64,
    /// The data to serve.
    pub seed: Seed,
}

impl Default for SandboxOptions {
    /// Loopback, a free port, any token, no limit, no latency, no faults, [`Seed::demo`].
    fn default() -> Self {
        SandboxOptions {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            token: None,
            rps: None,
            latency: Duration::ZERO,
            fault_rate: 0.0,
            seed: Seed::demo(),
        }
    }
}

/// A running sandbox server. Dropping it stops the server too; [`shutdown`](Self::shutdown)
/// waits until it has stopped.
#[derive(Debug)]
pub struct Sandbox {
    state: SandboxState,
    addr: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl Sandbox {
    /// Validates the seed, binds `opts.listen` and serves in a spawned task.
    /// Fails with `InvalidInput` for a bad seed or fault rate, or with the bind error.
    pub async fn start(opts: SandboxOptions) -> io::Result<Sandbox> {
        let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
        let mut seed = opts.seed;
        if seed.stages.is_empty() {
            seed.stages = Seed::default_stages();
        }
        seed.validate().map_err(|e| invalid(e.to_string()))?;
        if !(0.0..=1.0).contains(&opts.fault_rate) {
            return Err(invalid(format!(
                "fault rate must be between 0 and 1, got {}",
                opts.fault_rate
            )));
        }
        let listener = TcpListener::bind(opts.listen).await?;
        let addr = listener.local_addr()?;
        let settings = Settings {
            token: opts.token.filter(|t| !t.is_empty()),
            rps: opts.rps,
            latency: opts.latency,
            fault_rate: opts.fault_rate,
        };
        let state = SandboxState::new(seed, settings, format!("http://{}", reachable(addr)));
        let app = app(state.clone()).into_make_service_with_connect_info::<ConnHandle>();
        let stop = CancellationToken::new();
        let server = axum::serve(CuttableListener(listener), app)
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .into_future();
        let task = tokio::spawn(server);
        tracing::info!(%addr, "Sell sandbox listening");
        Ok(Sandbox {
            state,
            addr,
            stop,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT` (loopback when bound to an unspecified address).
    pub fn base_url(&self) -> String {
        self.state.base_url().to_owned()
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle on the data, the request log and the admin actions.
    pub fn state(&self) -> SandboxState {
        self.state.clone()
    }

    /// Stops accepting, lets in-flight requests finish (at most 5 s), and returns.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The whole app: the gated `/v2` routes and the ungated control routes.
fn app(state: SandboxState) -> Router {
    let sell = routes::router().layer(middleware::from_fn_with_state(state.clone(), limits::gate));
    Router::new()
        .merge(sell)
        .nest("/__sandbox", control::router())
        .with_state(state)
}

/// An address a client can connect to: `0.0.0.0`/`::` become loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}
