//! A CRM-compatible API server inside the product, for `offboard demo`, for
//! operators rehearsing a policy (`offboard sandbox`), for benchmarks that need a
//! CRM whose speed and faults they control, and for tests of the real CRM clients.
//!
//! [`Sandbox::start`] binds a port and serves, from memory, the part of a CRM's
//! API offboard uses. [`SandboxOptions::crm`] picks the dialect: Zendesk Sell's
//! API v2 with Sell's envelopes and errors (`routes.rs`, `envelope.rs`),
//! Pipedrive's API v1/v2 (`pipedrive/`), HubSpot's CRM v3 (`hubspot/`) or
//! Salesforce's REST API with SOQL (`salesforce/`). Either way a gate in front checks the
//! caller's token, rate-limits per token and injects latency and faults
//! (`limits.rs`). The data comes from a [`Seed`] — a JSON file,
//! [`Seed::generate`] or [`Seed::demo`] — and lives in a `Db` (`db.rs`) that
//! enforces the rules on writes (owners must be active users) for both.
//! [`SandboxState`] is the handle tests and the demo use to look inside and to
//! play the CRM admin; the same actions are HTTP routes under `/__sandbox/`
//! (`control.rs`), clearly apart from the CRM's routes. Both dialects share the
//! one organisation model, so a scenario seeded once can be replayed against
//! either client.
//!
//! The sandbox never talks to a real CRM and never panics on a request: every
//! bad request gets the error body the served CRM would send.
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! use offboard_sandbox::{Sandbox, SandboxOptions, Seed};
//! let sandbox = Sandbox::start(SandboxOptions { seed: Seed::demo(), ..SandboxOptions::default() }).await?;
//! let users = format!("{}/v2/users?email=jane.doe@example.com", sandbox.base_url());
//! // … point a Sell client at sandbox.base_url() …
//! sandbox.state().deactivate(101).await.ok();
//! sandbox.shutdown().await;
//!
//! // The same org, spoken as Pipedrive: `/api/v1/users/me` is user 1, the admin.
//! use offboard_sandbox::SandboxCrm;
//! let pipedrive = Sandbox::start(SandboxOptions {
//!     crm: SandboxCrm::Pipedrive,
//!     token: Some("pd-token".into()),
//!     ..SandboxOptions::default()
//! })
//! .await?;
//! let me = format!("{}/api/v1/users/me", pipedrive.base_url()); // send `x-api-token: pd-token`
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod catcher;
mod conn;
mod control;
mod db;
mod envelope;
mod generate;
mod hubspot;
mod limits;
mod log;
mod pipedrive;
mod query;
mod routes;
mod salesforce;
mod seed;
mod state;

use std::{
    fmt,
    future::IntoFuture,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    str::FromStr,
    time::Duration,
};

use axum::{Router, middleware};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use db::{ControlError, Counts, OwnedCounts};
pub use log::{Fault, LOG_CAPACITY, RequestLogEntry, Stats};
pub use seed::{Contact, Deal, Lead, Seed, SeedError, Stage, Task, Ticket, User};
pub use state::SandboxState;

pub use hubspot::OWNER_BASE as HUBSPOT_OWNER_BASE;
pub use pipedrive::{lead_id_from_uuid, lead_uuid};
pub use salesforce::{
    DEFAULT_DAILY_LIMIT as SALESFORCE_DAILY_LIMIT, MAX_CURSORS as SALESFORCE_MAX_CURSORS,
    QUERY_BATCH as SALESFORCE_QUERY_BATCH,
};

use conn::{ConnHandle, CuttableListener};
use state::Settings;

/// Which CRM's API a sandbox speaks. The data behind it is the same either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SandboxCrm {
    /// Zendesk Sell, API v2 under `/v2` (DESIGN.md §2).
    #[default]
    Sell,
    /// Pipedrive, API v1 and v2 under `/api/v1` and `/api/v2` (DESIGN.md §9).
    Pipedrive,
    /// HubSpot, CRM v3 and settings v3 (`hubspot/`, DESIGN.md §9).
    Hubspot,
    /// Salesforce, REST API under `/services/data/vNN.N` (`salesforce/`, DESIGN.md §9).
    Salesforce,
}

impl SandboxCrm {
    /// `zendesk_sell`, `pipedrive`, `hubspot` or `salesforce`, as `[crm] kind` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxCrm::Sell => "zendesk_sell",
            SandboxCrm::Pipedrive => "pipedrive",
            SandboxCrm::Hubspot => "hubspot",
            SandboxCrm::Salesforce => "salesforce",
        }
    }
}

impl fmt::Display for SandboxCrm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SandboxCrm {
    type Err = String;

    /// `zendesk_sell` (or `sell`), `pipedrive`, `hubspot` and `salesforce`,
    /// case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "zendesk_sell" | "sell" => Ok(SandboxCrm::Sell),
            "pipedrive" => Ok(SandboxCrm::Pipedrive),
            "hubspot" => Ok(SandboxCrm::Hubspot),
            "salesforce" => Ok(SandboxCrm::Salesforce),
            other => Err(format!(
                "unknown CRM {other:?}; the sandbox speaks zendesk_sell, pipedrive, hubspot or salesforce"
            )),
        }
    }
}

/// How a sandbox listens and behaves.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Which CRM's API to serve.
    pub crm: SandboxCrm,
    /// The only token accepted (Sell: bearer; Pipedrive: `x-api-token`,
    /// `api_token` or bearer); `None` accepts any non-empty token.
    pub token: Option<String>,
    /// The user the token belongs to: Sell's `/v2/users/self`, Pipedrive's
    /// `/api/v1/users/me`, the default owner and creator of tasks and
    /// activities created through the API, and (Pipedrive) whose admin rights
    /// `PUT /api/v1/users/{id}` needs. `None`: the first active admin, else the
    /// first active user. Must name a seeded user.
    pub token_owner: Option<i64>,
    /// The rate limit, per token. Sell: at most this many requests in any
    /// one-second window; beyond, 429 with Sell's envelope and no `Retry-After`.
    /// Pipedrive: at most twice this many in any two-second window (Pipedrive
    /// limits per 2-second window, so the average stays at this many per
    /// second), with `x-ratelimit-limit`/`-remaining`/`-reset` on every
    /// answer past authentication and Pipedrive's 429 beyond. Salesforce, which
    /// has no per-second limit and never answers 429: a request beyond waits
    /// for a free slot (its daily allocation is apart, see
    /// [`SandboxState::set_salesforce_api_limit`]). `None`: no limit and no
    /// rate-limit headers.
    pub rps: Option<u32>,
    /// Added to every admitted CRM request.
    pub latency: Duration,
    /// Share of admitted requests (0.0–1.0) answered with a 500, a 503 or a
    /// dropped connection instead of being handled; a faulted write is never applied.
    pub fault_rate: f64,
    /// The data to serve.
    pub seed: Seed,
}

impl Default for SandboxOptions {
    /// Sell, loopback, a free port, any token owned by the first active admin,
    /// no limit, no latency, no faults, [`Seed::demo`].
    fn default() -> Self {
        SandboxOptions {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            crm: SandboxCrm::Sell,
            token: None,
            token_owner: None,
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
    /// Fails with `InvalidInput` for a bad seed, fault rate or token owner (or,
    /// for Pipedrive, a lead id outside `0..2^62`, which its UUID can't carry),
    /// or with the bind error.
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
        if let Some(owner) = opts.token_owner
            && !seed.users.iter().any(|u| u.id == owner)
        {
            return Err(invalid(format!(
                "token owner {owner} is not a user in the seed"
            )));
        }
        if opts.crm == SandboxCrm::Pipedrive
            && let Some(lead) = seed.leads.iter().find(|l| !pipedrive::lead_id_fits(l.id))
        {
            return Err(invalid(format!(
                "lead {} can't be served as a Pipedrive lead: ids must be in 0..2^62",
                lead.id
            )));
        }
        if opts.crm == SandboxCrm::Salesforce
            && let Some(problem) = salesforce::ids_fit(&seed)
        {
            return Err(invalid(problem));
        }
        let listener = TcpListener::bind(opts.listen).await?;
        let addr = listener.local_addr()?;
        let settings = Settings {
            crm: opts.crm,
            token: opts.token.filter(|t| !t.is_empty()),
            token_owner: opts.token_owner,
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
        match opts.crm {
            SandboxCrm::Sell => tracing::info!(%addr, "Sell sandbox listening"),
            SandboxCrm::Pipedrive => tracing::info!(%addr, "Pipedrive sandbox listening"),
            SandboxCrm::Hubspot => tracing::info!(%addr, "HubSpot sandbox listening"),
            SandboxCrm::Salesforce => tracing::info!(%addr, "Salesforce sandbox listening"),
        }
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

/// The whole app: the served CRM's gated routes and the ungated control routes.
fn app(state: SandboxState) -> Router {
    let crm = match state.inner.settings.crm {
        SandboxCrm::Sell => routes::router(),
        SandboxCrm::Pipedrive => pipedrive::router(),
        SandboxCrm::Hubspot => hubspot::router(),
        SandboxCrm::Salesforce => salesforce::router(),
    }
    .layer(middleware::from_fn_with_state(state.clone(), limits::gate));
    Router::new()
        .merge(crm)
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
