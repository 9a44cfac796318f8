//! `spawn_app()` and friends: a real offboard on 127.0.0.1:0, a temp SQLite file,
//! the real Sell sandbox holding the standard org
//! ([`offboard_testkit::sell::standard_org`]) unless a test seeds another, and
//! signed-request helpers. What a test asserts about Sell (records moved, PUTs,
//! admin tasks) comes from the sandbox through [`offboard_testkit::sell`].

#![allow(dead_code)]

use std::path::PathBuf;

use offboard_core::{
    app::{Application, Role},
    config::Config,
    domain::{Clock, ManualClock, Resource},
    store::SharedStore,
    worker::Worker,
};
use offboard_sandbox::{Sandbox, SandboxCrm, SandboxOptions, SandboxState, Seed};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const SELL_TOKEN: &str = "test-sell-token";

/// The default policy used by tests (DESIGN.md §7's example).
pub const POLICY: &str = r#"
version = 1
[defaults]
reassign_to = "manager"
fallback_owner = "sales-ops@example.com"
reassign = ["leads", "contacts", "deals", "tasks"]
open_only = true
at = "now"

[[rules]]
name = "legal hold keeps everything"
when = { legal_hold = true }
action = "delete"

[[rules]]
name = "leavers who may come back"
when = { kind = ["voluntary", "retirement"], rehire_eligible = true }
action = "deactivate"

[[rules]]
name = "involuntary"
when = { kind = ["involuntary", "layoff"] }
action = "delete"

[[rules]]
name = "everyone else"
action = "deactivate"
"#;

pub struct TestApp {
    pub addr: String,
    pub store: SharedStore,
    pub worker: Worker,
    /// Sell: what the app's CRM calls reach, and where tests look at the result.
    pub sandbox: Sandbox,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    pub dir: tempfile::TempDir,
    pub db_url: String,
    /// The receiver's, the store's and the worker's "now": tests advance it
    /// instead of sleeping.
    pub clock: ManualClock,
    settings: Settings,
    server: Option<tokio::task::JoinHandle<Result<(), offboard_core::app::ServeError>>>,
}

pub struct Options {
    pub policy: String,
    pub extra_config: String,
    /// What the Sell sandbox holds at the start.
    pub seed: Seed,
    /// The token the app sends to Sell. The sandbox accepts only [`SELL_TOKEN`],
    /// so any other makes every CRM call a 401, as a revoked token would.
    pub sell_token: String,
    /// Which CRM the sandbox speaks and `[crm] kind` names.
    pub crm: SandboxCrm,
    /// The sandbox's per-token rate (Pipedrive: twice this per 2-second window).
    pub sandbox_rps: Option<u32>,
    /// Share of the sandbox's answers that are faults.
    pub fault_rate: f64,
    /// `[crm] requests_per_second` and `max_in_flight`, `[worker] concurrency`.
    pub pacing: Pacing,
}

/// How fast and how many at once the app talks to the CRM, and how many jobs
/// its worker runs at once.
#[derive(Clone, Copy)]
pub struct Pacing {
    pub requests_per_second: u32,
    pub max_in_flight: usize,
    pub concurrency: usize,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            requests_per_second: 1000,
            max_in_flight: 16,
            concurrency: 4,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy: POLICY.into(),
            extra_config: String::new(),
            seed: offboard_testkit::sell::standard_org(),
            sell_token: SELL_TOKEN.into(),
            crm: SandboxCrm::Sell,
            sandbox_rps: None,
            fault_rate: 0.0,
            pacing: Pacing::default(),
        }
    }
}

/// What the app is started with, kept so a restart starts the same app.
#[derive(Clone)]
struct Settings {
    policy: String,
    extra_config: String,
    sell_token: String,
    crm: SandboxCrm,
    pacing: Pacing,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(opts: Options) -> TestApp {
    let Options {
        policy,
        extra_config,
        seed,
        sell_token,
        crm,
        sandbox_rps,
        fault_rate,
        pacing,
    } = opts;
    let sandbox = offboard_testkit::sell::start(SandboxOptions {
        token: Some(SELL_TOKEN.into()),
        seed,
        crm,
        rps: sandbox_rps,
        fault_rate,
        ..SandboxOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("offboard.db").display());
    let settings = Settings {
        policy,
        extra_config,
        sell_token,
        crm,
        pacing,
    };
    start(settings, dir, sandbox, db_url, ManualClock::starting_now()).await
}

async fn start(
    settings: Settings,
    dir: tempfile::TempDir,
    sandbox: Sandbox,
    db_url: String,
    clock: ManualClock,
) -> TestApp {
    let policy_path: PathBuf = dir.path().join("policy.toml");
    std::fs::write(&policy_path, &settings.policy).unwrap();
    // SAFETY of env: each test process sets the same values.
    unsafe {
        std::env::set_var("OFFBOARD_TEST_SECRETS", SECRET);
        std::env::set_var("OFFBOARD_TEST_ADMIN", ADMIN_TOKEN);
    }
    let config = Config::from_toml(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
max_body_bytes = 4096
[store]
url = "{db_url}"
[crm]
kind = "{kind}"
base_url = "{sell}"
admin_email = "admin@example.com"
requests_per_second = {rps}
max_in_flight = {max_in_flight}
[policy]
file = "{policy}"
[admin]
token_env = "OFFBOARD_TEST_ADMIN"
[worker]
concurrency = {concurrency}
verify_interval_secs = 1
poll_interval_ms = 50
lease_secs = 5
[[sources]]
name = "hr"
scheme = "standard_webhooks"
secrets_env = "OFFBOARD_TEST_SECRETS"
{extra}
"#,
        sell = sandbox.base_url(),
        kind = settings.crm.as_str(),
        policy = policy_path.display(),
        extra = settings.extra_config,
        rps = settings.pacing.requests_per_second,
        max_in_flight = settings.pacing.max_in_flight,
        concurrency = settings.pacing.concurrency,
    ))
    .unwrap();
    let crm = offboard_core::crm::client_from_config(
        &config,
        offboard_core::config::Secret::new(settings.sell_token.clone()),
    )
    .unwrap();
    let mut app = Application::builder(config, Role::All)
        .crm(crm)
        .clock(clock.shared())
        .build()
        .await
        .unwrap();
    let worker = app.detach_worker().unwrap();
    let addr = format!("http://{}", app.local_addr());
    let store = app.store();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        addr,
        store,
        worker,
        sandbox,
        http: reqwest::Client::new(),
        shutdown,
        dir,
        db_url,
        clock,
        settings,
        server: Some(server),
    }
}

impl TestApp {
    /// Stops this instance and starts the same app again on the same database,
    /// Sell sandbox and clock (time does not jump back across a restart).
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let TestApp {
            dir,
            sandbox,
            db_url,
            clock,
            settings,
            ..
        } = self;
        start(settings, dir, sandbox, db_url, clock).await
    }

    /// A handle on Sell's data, request log and admin actions.
    pub fn sell(&self) -> SandboxState {
        self.sandbox.state()
    }

    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
    }

    /// POSTs a signed webhook that must be accepted (202); returns the job id.
    pub async fn accept(&self, msg: &str, body: &str) -> String {
        let resp = self.post_signed("hr", msg, body).await;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(status, 202, "{v}");
        v["job_id"].as_str().unwrap().to_owned()
    }

    /// POSTs a webhook correctly signed at the clock's "now".
    pub async fn post_signed(&self, source: &str, id: &str, body: &str) -> reqwest::Response {
        let url = format!("{}/webhooks/{source}", self.addr);
        let ts = self.clock.now().timestamp();
        offboard_testkit::sign::post_at(&self.http, &url, SECRET, id, body, ts)
            .send()
            .await
            .unwrap()
    }

    /// [`accept`](Self::accept)s a webhook and runs the worker until idle: the
    /// job's id and the job as it stands then.
    pub async fn accept_and_run(&self, msg: &str, body: &str) -> (String, Value) {
        let id = self.accept(msg, body).await;
        self.run_jobs().await;
        let job = self.job(&id).await;
        (id, job)
    }

    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.admin(reqwest::Method::GET, path).await
    }

    pub async fn admin_post(&self, path: &str) -> reqwest::Response {
        self.admin(reqwest::Method::POST, path).await
    }

    async fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::Response {
        self.http
            .request(method, format!("{}{path}", self.addr))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
    }

    pub async fn job(&self, id: &str) -> Value {
        self.admin_get(&format!("/api/v1/jobs/{id}"))
            .await
            .json()
            .await
            .unwrap()
    }

    /// Runs the worker until no job is runnable right now.
    pub async fn run_jobs(&self) -> usize {
        self.worker.run_until_idle().await
    }

    /// The app's "now".
    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }

    /// Moves the clock to the job's `run_at` (if that is later): its next
    /// scheduled run comes due, and nothing else needs to wait.
    pub async fn advance_to_run_at(&self, id: &str) {
        let job = self.job(id).await;
        let run_at = job["run_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        if let Some(run_at) = run_at
            && run_at > self.clock.now()
        {
            self.clock.set(run_at);
        }
    }

    /// Runs jobs, letting `scheduled` polls come due, until the job reaches a
    /// resting state other than `scheduled` or `tries` rounds pass.
    pub async fn run_job_until_settled(&self, id: &str, tries: usize) -> Value {
        for _ in 0..tries {
            self.run_jobs().await;
            let job = self.job(id).await;
            if job["state"] != "scheduled" && job["state"] != "queued" {
                return job;
            }
            self.advance_to_run_at(id).await;
        }
        self.job(id).await
    }
}

/// The entries of `job`'s audit trail of this `kind`, oldest first.
pub fn audit<'a>(job: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> {
    job["audit"]
        .as_array()
        .expect("a job's audit is a list")
        .iter()
        .filter(move |a| a["kind"] == kind)
}

pub fn has_audit(job: &Value, kind: &str) -> bool {
    audit(job, kind).next().is_some()
}

/// A terminated event in the canonical shape.
pub fn termination(id: &str, email: &str, kind: &str, rehire: bool, legal_hold: bool) -> String {
    json!({
        "id": id,
        "type": "employee.terminated",
        "occurred_at": "2026-12-01T10:00:00Z",
        "employee": { "id": "E1", "email": email, "name": "Leaver", "department": "Sales", "country": "US", "manager_email": "max.manager@example.com" },
        "termination": { "effective_at": "2026-12-01T12:00:00Z", "kind": kind, "rehire_eligible": rehire },
        "legal_hold": legal_hold
    })
    .to_string()
}

/// Offboards Sam (`sam_id` in the sandbox) voluntarily on a CRM whose API
/// deactivates, then rehires him: the seat ends active again, reactivated by
/// offboard through the API and verified. Returns `(app, rehire job)` for the
/// CRM's own checks.
pub async fn rehire_reactivates_by_api(opts: Options, sam_id: i64) -> (TestApp, Value) {
    let app = spawn_app_with(opts).await;
    let sam = "sam.seller@example.com";
    let id = app
        .accept(
            "msg_rehire_off",
            &termination("evt_rehire_off", sam, "voluntary", true, false),
        )
        .await;
    let job = app.run_job_until_settled(&id, 10).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert!(!app.sell().user(sam_id).await.unwrap().is_active());

    let rehire = json!({
        "id": "evt_rehire_on", "type": "employee.rehired",
        "employee": { "email": sam }
    });
    let id = app.accept("msg_rehire_on", &rehire.to_string()).await;
    let job = app.run_job_until_settled(&id, 10).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert!(
        app.sell().user(sam_id).await.unwrap().is_active(),
        "{job:#}"
    );
    let changed = audit(&job, "seat.changed")
        .next()
        .expect("reactivated by api");
    assert_eq!(changed["detail"]["change"], "reactivate");
    assert_eq!(changed["detail"]["via"], "api");
    assert!(has_audit(&job, "seat.verified"));
    (app, job)
}

/// The records of the seed `owner` owns, as the CRMs that keep organizations
/// apart from people serve them (Pipedrive, HubSpot, Salesforce):
/// `(resource, id, open)`. Leads are open until archived (converted), deals
/// until won or lost, tasks until done, tickets until closed; people and
/// organizations are always open.
pub fn records_of(seed: &Seed, owner: i64) -> Vec<(Resource, i64, bool)> {
    let closed_stages: std::collections::BTreeSet<i64> = seed
        .stages
        .iter()
        .filter(|s| s.is_closing())
        .map(|s| s.id)
        .collect();
    let leads = seed
        .leads
        .iter()
        .filter(|r| r.owner_id == owner)
        .map(|r| (Resource::Leads, r.id, !seed.archived_leads.contains(&r.id)));
    let contacts = seed
        .contacts
        .iter()
        .filter(|r| r.owner_id == owner)
        .map(|r| {
            let kind = if r.is_organization {
                Resource::Organizations
            } else {
                Resource::Contacts
            };
            (kind, r.id, true)
        });
    let deals = seed
        .deals
        .iter()
        .filter(|r| r.owner_id == owner)
        .map(|r| (Resource::Deals, r.id, !closed_stages.contains(&r.stage_id)));
    let tasks = seed
        .tasks
        .iter()
        .filter(|r| r.owner_id == owner)
        .map(|r| (Resource::Tasks, r.id, !r.completed));
    let tickets = seed
        .tickets
        .iter()
        .filter(|r| r.owner_id == owner)
        .map(|r| (Resource::Tickets, r.id, !r.closed));
    leads
        .chain(contacts)
        .chain(deals)
        .chain(tasks)
        .chain(tickets)
        .collect()
}
