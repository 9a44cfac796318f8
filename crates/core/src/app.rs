//! `Application`: builds offboard from a [`Config`] and runs it. `serve`, `demo` and
//! the integration tests all start the service through here, so what they test is
//! what runs in production.
//!
//! `--role` gates the parts: a receiver serves webhooks, the admin API and the ops
//! console; a worker runs jobs; both serve `/healthz`, `/readyz` and `/metrics`.
//!
//! It is also where `store/` and `crm/` meet: the CRM client's rate budget comes
//! from the store when the store is shared between processes (PostgreSQL), so N
//! replicas pace as one.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    config::{Config, ConfigError},
    console::{self, ConsoleSettings, ConsoleState},
    crm::{ClientBuildError, Crm},
    domain::{SharedClock, SystemClock},
    http::{self, HealthState, admin::AdminState},
    ingest::{
        Sources,
        routes::IngestState,
        scim::{ScimState, event::EventSettings},
    },
    policy::{Policy, PolicyError},
    store::{self, SharedStore, StoreError},
    worker::{CurrentPolicy, Worker, WorkerSettings},
};

/// Which parts of offboard this process runs (`serve --role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Receiver and worker.
    All,
    /// Webhooks and the admin API.
    Receiver,
    /// Jobs only (plus health and metrics).
    Worker,
}

/// Why start-up failed. [`StartError::is_config`] tells the CLI which exit code
/// (DESIGN.md §3: 2 for configuration, 1 for anything else). Each message already
/// ends with its cause, so the causes are not also chained as `source()` (an
/// `anyhow` `{:#}` would print them twice).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A config key, secret or source is missing or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The policy file does not load; the message is `file:line:col: …`.
    #[error("policy: {0}")]
    Policy(PolicyError),
    /// The `[crm]` section cannot make a client.
    #[error("crm: {0}")]
    Crm(ClientBuildError),
    /// `seat_executor = "manual"` needs someone to ask.
    #[error(
        "crm.admin_email: required by seat_executor = \"manual\" (who is asked to change the seat?)"
    )]
    MissingAdminEmail,
    /// The store cannot be opened (unreachable, bad URL, permissions).
    #[error("store {url}: {error}")]
    Store {
        /// `store.url` with any password replaced by `***`.
        url: String,
        /// What the store said.
        error: StoreError,
    },
    /// Applying migrations failed.
    #[error("migrations: {0}")]
    Migrations(StoreError),
    /// `server.listen` cannot be bound (port taken, no permission).
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        /// `server.listen`.
        addr: SocketAddr,
        /// The OS error.
        error: std::io::Error,
    },
}

impl StartError {
    /// Whether the operator must fix configuration (exit 2) rather than the
    /// environment (exit 1).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Self::Config(_) | Self::Policy(_) | Self::Crm(_) | Self::MissingAdminEmail
        )
    }
}

/// Why a running service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The HTTP server's accept loop failed.
    #[error("HTTP server: {0}")]
    Http(std::io::Error),
}

/// Where the CRM client comes from.
enum CrmChoice {
    /// The caller's (demo, tests).
    Given(Arc<dyn Crm>),
    /// Built from `[crm]` with this token, once the store is open (it may share the
    /// rate budget).
    FromConfig(crate::config::Secret),
}

/// A built, not yet running, offboard.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    worker: Option<Worker>,
    store: SharedStore,
    policy: Arc<CurrentPolicy>,
    policy_path: PathBuf,
    /// `[store] keep_finished_days` when this process runs the pruner's rounds (it
    /// runs a worker); `None`: it doesn't.
    prune_after_days: Option<u32>,
}

/// An [`Application`] being put together: the configuration and role, plus what a
/// caller may supply instead of the defaults (a CRM client, a clock). Made by
/// [`Application::builder`]; [`Application::build`] is the common case.
#[must_use = "nothing is built until `build().await`"]
pub struct Builder {
    config: Config,
    role: Role,
    crm: Option<Arc<dyn Crm>>,
    clock: SharedClock,
}

impl Builder {
    /// Uses this CRM client instead of one built from `[crm]` (the demo, tests).
    pub fn crm(mut self, crm: Arc<dyn Crm>) -> Self {
        self.crm = Some(crm);
        self
    }

    /// Reads "now" from `clock` instead of the system clock. The receiver, the
    /// store and the worker get the same clock, so they agree on when a job is due;
    /// tests pass a [`ManualClock`](crate::domain::ManualClock) and advance it
    /// instead of sleeping.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Builds: secrets, store (migrated), policy, CRM client, listener.
    ///
    /// Without a given CRM client, the `[crm]` section is checked before the store
    /// is opened (a bad one is a configuration error, exit 2, whether or not the
    /// store is reachable), and the client paces through the store's shared budget
    /// when the store has one (PostgreSQL: every replica draws from one row, see
    /// `store::postgres_budget`), else through this process's budget.
    pub async fn build(self) -> Result<Application, StartError> {
        let crm = match self.crm {
            Some(crm) => CrmChoice::Given(crm),
            None => {
                let token = self.config.crm_token()?;
                crate::crm::client_from_config(&self.config, token.clone())
                    .map_err(StartError::Crm)?;
                CrmChoice::FromConfig(token)
            }
        };
        Application::build_inner(self.config, self.role, crm, self.clock).await
    }
}

impl Application {
    /// Starts building from `config` for `role`, on the system clock and the CRM
    /// client `[crm]` describes (see [`Builder`] for the alternatives).
    pub fn builder(config: Config, role: Role) -> Builder {
        Builder {
            config,
            role,
            crm: None,
            clock: SystemClock::shared(),
        }
    }

    /// Builds from configuration alone (`serve`, `demo`): see [`Builder::build`].
    pub async fn build(config: Config, role: Role) -> Result<Self, StartError> {
        Self::builder(config, role).build().await
    }

    /// Builds with a given CRM client (the demo and tests use this).
    pub async fn build_with_crm(
        config: Config,
        role: Role,
        crm: Arc<dyn Crm>,
    ) -> Result<Self, StartError> {
        Self::builder(config, role).crm(crm).build().await
    }

    async fn build_inner(
        config: Config,
        role: Role,
        crm: CrmChoice,
        clock: SharedClock,
    ) -> Result<Self, StartError> {
        let policy = Policy::load(&config.policy.file).map_err(StartError::Policy)?;
        // The process's log lines follow the configuration it runs.
        crate::telemetry::set_redact_emails(config.privacy.redact_emails);
        let runs_receiver = role != Role::Worker;
        let admin_token = if runs_receiver {
            Some(config.admin_token()?)
        } else {
            None
        };
        let sources = if runs_receiver {
            Sources::from_config(&config)?
        } else {
            Sources::default()
        };
        let scim = if runs_receiver {
            match (EventSettings::from_config(&config)?, config.scim_token()?) {
                (Some(events), Some(token)) => Some((events, token)),
                _ => None,
            }
        } else {
            None
        };
        let settings = WorkerSettings::from_config(&config)?;
        // Only a worker sends notifications, so only a worker needs their secrets.
        let notifier = if role != Role::Receiver {
            crate::notify::Notifier::new(crate::notify::Settings::from_config(&config)?)
        } else {
            crate::notify::Notifier::disabled()
        };
        if role != Role::Receiver
            && settings.admin_email.is_none()
            && settings.seat_executor == crate::config::SeatExecutor::Manual
        {
            return Err(StartError::MissingAdminEmail);
        }

        let store = store::open_configured_with_clock(&config.store, clock.clone())
            .await
            .map_err(|error| StartError::Store {
                url: redact_url(&config.store.url),
                error,
            })?;
        store.migrate().await.map_err(StartError::Migrations)?;

        let crm = match crm {
            CrmChoice::Given(crm) => crm,
            CrmChoice::FromConfig(token) => {
                crate::crm::client_from_config_sharing(&config, token, |key, budget| {
                    store.shared_crm_budget(key, budget)
                })
                .map_err(StartError::Crm)?
            }
        };

        let policy = Arc::new(CurrentPolicy::new(policy));
        let worker = (role != Role::Receiver).then(|| {
            Worker::new(store.clone(), crm, policy.clone(), settings)
                .with_clock(clock.clone())
                .with_notifier(notifier)
        });

        let metrics = http::metrics_handle();
        let store_deadline = Duration::from_millis(config.store.unavailable_after_ms);
        let mut router = http::health_router(HealthState {
            store: store.clone(),
            metrics,
            store_deadline,
        });
        if let Some(token) = admin_token {
            if let Some((events, token)) = scim {
                router = router.merge(crate::ingest::scim::router(
                    ScimState {
                        store: store.clone(),
                        store_deadline,
                        token: Arc::new(token),
                        events: Arc::new(events),
                        wake: worker.as_ref().map(Worker::waker),
                        clock: clock.clone(),
                    },
                    config.server.max_body_bytes,
                ));
            }
            let token = Arc::new(token);
            if config.console.enabled {
                // Beside the admin API and signed in with its token: a console
                // session is the admin token's, in a form a browser can hold.
                router = router.merge(console::router(ConsoleState::new(
                    store.clone(),
                    token.clone(),
                    ConsoleSettings::from_config(&config.console, config.privacy.redact_emails),
                    clock.clone(),
                )));
            }
            let ingest = IngestState {
                store: store.clone(),
                store_deadline,
                sources: Arc::new(sources),
                max_attempts: config.worker.max_attempts,
                wake: worker.as_ref().map(Worker::waker),
                clock,
            };
            router = router
                .merge(http::ingest_router(ingest, config.server.max_body_bytes))
                .merge(http::admin::router(AdminState {
                    store: store.clone(),
                    token,
                    redact_emails: config.privacy.redact_emails,
                }));
        }
        let router = http::with_layers(
            router,
            Duration::from_secs(config.server.request_timeout_secs),
        );
        let listener = TcpListener::bind(config.server.listen)
            .await
            .map_err(|error| StartError::Listen {
                addr: config.server.listen,
                error,
            })?;
        // The pruner runs where jobs run: a receiver-only replica leaves it to the
        // workers (with PostgreSQL, several workers' pruners skip each other's rows).
        // It runs with retention off too (`0`): its round also folds the job counts.
        let prune_after_days = (role != Role::Receiver).then_some(config.store.keep_finished_days);
        Ok(Self {
            listener,
            router,
            worker,
            store,
            policy,
            policy_path: config.policy.file.clone(),
            prune_after_days,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The bound port (what a `server.listen` of port 0 picked).
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The store this instance uses.
    pub fn store(&self) -> SharedStore {
        self.store.clone()
    }

    /// The worker, when this role runs one.
    pub fn worker(&self) -> Option<Worker> {
        self.worker.clone()
    }

    /// Takes the worker out so the caller drives it (tests use
    /// `Worker::run_until_idle` to run jobs deterministically); `run_until_stopped`
    /// then serves HTTP only.
    pub fn detach_worker(&mut self) -> Option<Worker> {
        self.worker.take()
    }

    /// Re-reads the policy file; an invalid file keeps the old policy (and is
    /// logged), so a typo never leaves the worker without rules.
    pub fn reload_policy(&self) -> Result<(), PolicyError> {
        reload(&self.policy, &self.policy_path)
    }

    /// A handle that can reload the policy later: `serve` calls it on SIGHUP,
    /// after `self` has moved into [`Self::run_until_stopped`].
    pub fn policy_reloader(&self) -> impl Fn() -> Result<(), PolicyError> + Send + Sync + 'static {
        let policy = self.policy.clone();
        let path = self.policy_path.clone();
        move || reload(&policy, &path)
    }

    /// Serves HTTP and runs the worker until `shutdown` is cancelled; then stops
    /// accepting, drains in-flight requests and jobs, and returns.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), ServeError> {
        let worker_task = self.worker.map(|w| tokio::spawn(w.run(shutdown.clone())));
        let pruner_task = self
            .prune_after_days
            .map(|days| tokio::spawn(run_pruner(self.store.clone(), days, shutdown.clone())));
        let token = shutdown.clone();
        let server = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move { token.cancelled().await });
        let served = server.await;
        shutdown.cancel();
        if let Some(t) = worker_task
            && let Err(e) = t.await
        {
            // The worker's own errors are logged where they happen; this is a panic
            // or an abort, which would otherwise vanish with the task.
            tracing::error!(error = %e, "the worker task ended abnormally");
        }
        if let Some(t) = pruner_task
            && let Err(e) = t.await
        {
            tracing::error!(error = %e, "the retention pruner task ended abnormally");
        }
        served.map_err(ServeError::Http)
    }
}

/// Retention: prunes finished jobs older than `days` (none when `0`) and folds the
/// job counts, at start-up and every [`store::retention::PRUNE_EVERY`] until
/// `shutdown`. A failed round is logged and
/// tried again next round: retention is housekeeping, never a reason to stop.
async fn run_pruner(store: SharedStore, days: u32, shutdown: CancellationToken) {
    loop {
        let round = tokio::select! {
            round = store::retention::round(store.as_ref(), days) => round,
            () = shutdown.cancelled() => return,
        };
        match round {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(
                pruned,
                keep_finished_days = days,
                "retention pruned finished jobs"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "retention pruning failed; trying again next round")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(store::retention::PRUNE_EVERY) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

fn reload(policy: &CurrentPolicy, path: &std::path::Path) -> Result<(), PolicyError> {
    match Policy::load(path) {
        Ok(p) => {
            let version = p.version().to_owned();
            policy.replace(p);
            tracing::info!(policy_version = %version, "policy reloaded");
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "policy reload refused; keeping the previous policy");
            Err(e)
        }
    }
}

/// Drops credentials from a store URL for messages.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_keeps_the_old_policy_when_the_new_file_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        let good = "version = 1\n[defaults]\nfallback_owner = \"ops@example.com\"\n[[rules]]\nname = \"all\"\naction = \"deactivate\"\n";
        std::fs::write(&path, good).unwrap();
        let current = CurrentPolicy::new(Policy::load(&path).unwrap());
        let before = current.get().version().to_owned();

        std::fs::write(
            &path,
            "version = 1\n[[rules]]\nname = \"x\"\naction = \"explode\"\n",
        )
        .unwrap();
        let err = reload(&current, &path).unwrap_err().to_string();
        assert!(err.contains(":4:"), "error names the line: {err}");
        assert_eq!(current.get().version(), before, "old policy kept");

        std::fs::write(&path, good.replace("deactivate", "review")).unwrap();
        reload(&current, &path).unwrap();
        assert_ne!(current.get().version(), before, "new policy in force");
    }
}
