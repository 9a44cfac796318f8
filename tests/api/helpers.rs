//! `spawn_app()` and friends: a real offboard on 127.0.0.1:0, a temp SQLite file,
//! Sell, and signed-request helpers.
//!
//! Sell is the real `offboard-sandbox` seeded with the standard org
//! ([`offboard_testkit::sell::standard_org`]) for the tests that need no more
//! than Sell's behaviour ([`spawn_sandbox_app`]). The stateful wiremock fake
//! below stays only for the offboarding and policy tests, which still read its
//! state synchronously (`fake.owned`, `fake.state().puts`, `fail_with`); the
//! sandbox offers the same facts (`open_counts`, `stats().puts`, its request
//! log) once those tests move to it.

#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use offboard_core::{
    app::{Application, Role},
    config::Config,
    domain::{Clock, ManualClock},
    store::SharedStore,
    worker::Worker,
};
use offboard_sandbox::{Sandbox, SandboxOptions};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

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

/// Where the app's Sell calls go.
pub enum SellServer {
    /// The wiremock fake, answering from [`FakeSell`].
    Fake(MockServer),
    /// The real sandbox.
    Sandbox(Sandbox),
}

impl SellServer {
    fn uri(&self) -> String {
        match self {
            SellServer::Fake(m) => m.uri(),
            SellServer::Sandbox(s) => s.base_url(),
        }
    }

    /// The sandbox, for tests started with [`spawn_sandbox_app`].
    pub fn sandbox(&self) -> &Sandbox {
        match self {
            SellServer::Sandbox(s) => s,
            SellServer::Fake(_) => panic!("this app runs against the wiremock fake"),
        }
    }
}

pub struct TestApp {
    pub addr: String,
    pub store: SharedStore,
    pub worker: Worker,
    pub sell: SellServer,
    pub fake: FakeSell,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    pub dir: tempfile::TempDir,
    pub db_url: String,
    /// The store's and the worker's "now": tests advance it instead of sleeping.
    pub clock: ManualClock,
    server: Option<tokio::task::JoinHandle<Result<(), offboard_core::app::ServeError>>>,
}

pub struct Options {
    pub policy: String,
    pub extra_config: String,
    pub fake: FakeSell,
    pub clock: ManualClock,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy: POLICY.into(),
            extra_config: String::new(),
            fake: FakeSell::standard_org(),
            clock: test_clock(),
        }
    }
}

/// The store's and the worker's clock for one test. The receiver still stamps an
/// accepted job's `run_at` (and checks signature timestamps) with the system clock,
/// so this clock starts an hour ahead of it: a job accepted during the test is due
/// at once, as it would be in production, while everything the worker schedules is
/// due only when the test advances this clock.
pub fn test_clock() -> ManualClock {
    ManualClock::new(chrono::Utc::now() + chrono::Duration::hours(1))
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(opts: Options) -> TestApp {
    let sell = MockServer::start().await;
    Mock::given(any())
        .respond_with(opts.fake.clone())
        .mount(&sell)
        .await;
    start_fresh(opts, SellServer::Fake(sell)).await
}

/// The app against the real Sell sandbox holding the standard org, which accepts
/// only [`SELL_TOKEN`].
pub async fn spawn_sandbox_app() -> TestApp {
    let sandbox = offboard_testkit::sell::start(SandboxOptions {
        token: Some(SELL_TOKEN.into()),
        seed: offboard_testkit::sell::standard_org(),
        ..SandboxOptions::default()
    })
    .await;
    start_fresh(Options::default(), SellServer::Sandbox(sandbox)).await
}

async fn start_fresh(opts: Options, sell: SellServer) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("offboard.db").display());
    start(opts, dir, sell, db_url).await
}

async fn start(opts: Options, dir: tempfile::TempDir, sell: SellServer, db_url: String) -> TestApp {
    let policy_path: PathBuf = dir.path().join("policy.toml");
    std::fs::write(&policy_path, &opts.policy).unwrap();
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
base_url = "{sell}"
admin_email = "admin@example.com"
requests_per_second = 1000
max_in_flight = 16
[policy]
file = "{policy}"
[admin]
token_env = "OFFBOARD_TEST_ADMIN"
[worker]
verify_interval_secs = 1
poll_interval_ms = 50
lease_secs = 5
[[sources]]
name = "hr"
scheme = "standard_webhooks"
secrets_env = "OFFBOARD_TEST_SECRETS"
{extra}
"#,
        sell = sell.uri(),
        policy = policy_path.display(),
        extra = opts.extra_config,
    ))
    .unwrap();
    let crm = offboard_core::crm::sell::client_from_config(
        &config,
        offboard_core::config::Secret::new(SELL_TOKEN.into()),
    )
    .unwrap();
    let mut app = Application::builder(config, Role::All)
        .crm(crm)
        .clock(opts.clock.shared())
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
        sell,
        fake: opts.fake,
        http: reqwest::Client::new(),
        shutdown,
        dir,
        db_url,
        clock: opts.clock,
        server: Some(server),
    }
}

impl TestApp {
    /// Stops this instance and starts a new one on the same database, fake CRM and
    /// clock (time does not jump back across a restart).
    pub async fn restart(mut self, opts: Options) -> TestApp {
        self.stop().await;
        let TestApp {
            dir,
            sell,
            db_url,
            clock,
            ..
        } = self;
        start(
            Options {
                fake: opts.fake,
                clock,
                ..opts
            },
            dir,
            sell,
            db_url,
        )
        .await
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

    /// POSTs a correctly signed webhook.
    pub async fn post_signed(&self, source: &str, id: &str, body: &str) -> reqwest::Response {
        let url = format!("{}/webhooks/{source}", self.addr);
        offboard_testkit::sign::post(&self.http, &url, SECRET, id, body)
            .send()
            .await
            .unwrap()
    }

    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.addr))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
    }

    pub async fn admin_post(&self, path: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.addr))
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

// ---------------------------------------------------------------------------
// A stateful fake of the Sell API, mounted as a wiremock responder, so PUTs
// really change what later listings return.

#[derive(Debug, Clone)]
pub struct FakeRecord {
    pub id: i64,
    pub owner_id: i64,
    pub stage_id: Option<i64>,
    pub completed: Option<bool>,
    pub content: Option<String>,
}

#[derive(Debug, Default)]
pub struct FakeState {
    pub users: Vec<Value>,
    pub records: BTreeMap<String, Vec<FakeRecord>>,
    /// (method, path) of every request.
    pub log: Vec<(String, String)>,
    /// PUT bodies: (resource, id, owner_id).
    pub puts: Vec<(String, i64, i64)>,
    /// Created tasks' contents.
    pub created_tasks: Vec<String>,
    /// Status to answer every request with instead (e.g. 401).
    pub fail_with: Option<u16>,
    next_id: i64,
}

#[derive(Debug, Clone, Default)]
pub struct FakeSell(pub Arc<Mutex<FakeState>>);

pub fn user(id: i64, email: &str, role: &str, status: &str, reports_to: Option<i64>) -> Value {
    json!({ "id": id, "name": email.split('@').next().unwrap(), "email": email, "status": status, "role": role,
            "reports_to": reports_to, "team_name": "EMEA", "deleted_at": null })
}

impl FakeSell {
    /// admin 1, manager 2, sales-ops 3, jane 10 (reports to 2) with 3+ pages of records,
    /// sam 11 (reports to 2), lee 12, boss 20 with an active reportee 21.
    pub fn standard_org() -> Self {
        let mut s = FakeState {
            users: vec![
                user(1, "admin@example.com", "admin", "active", None),
                user(2, "max.manager@example.com", "user", "active", None),
                user(3, "sales-ops@example.com", "user", "active", None),
                user(10, "jane.doe@example.com", "user", "active", Some(2)),
                user(11, "sam.seller@example.com", "user", "active", Some(2)),
                user(12, "lee.hold@example.com", "user", "active", Some(2)),
                user(13, "ada.admin@example.com", "admin", "active", None),
                user(20, "boss@example.com", "user", "active", None),
                user(21, "report@example.com", "user", "active", Some(20)),
            ],
            next_id: 100_000,
            ..Default::default()
        };
        // Jane owns 250 of each kind: three pages per resource at per_page=100.
        s.add_records(10, 250, 30);
        for owner in [11, 12, 13, 20] {
            s.add_records(owner, 40, 30);
        }
        Self(Arc::new(Mutex::new(s)))
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().unwrap()
    }

    pub fn set_user_status(&self, id: i64, status: &str) {
        let mut s = self.state();
        if let Some(u) = s.users.iter_mut().find(|u| u["id"] == id) {
            u["status"] = json!(status);
        }
    }

    /// Adds an active rep reporting to the manager (2) with `n` records of each kind.
    pub fn add_rep(&self, id: i64, email: &str, n: usize) {
        let mut s = self.state();
        s.users.push(user(id, email, "user", "active", Some(2)));
        s.add_records(id, n, 30);
    }

    pub fn delete_user(&self, id: i64) {
        let mut s = self.state();
        if let Some(u) = s.users.iter_mut().find(|u| u["id"] == id) {
            u["deleted_at"] = json!("2026-12-01T13:00:00Z");
            u["status"] = json!("inactive");
        }
    }

    /// (open, closed) records of `resource` owned by `owner`.
    pub fn owned(&self, resource: &str, owner: i64) -> (usize, usize) {
        let s = self.state();
        let recs = s.records.get(resource).map(Vec::as_slice).unwrap_or(&[]);
        let mine: Vec<_> = recs.iter().filter(|r| r.owner_id == owner).collect();
        let open = mine.iter().filter(|r| is_open(r)).count();
        (open, mine.len() - open)
    }
}

fn is_open(r: &FakeRecord) -> bool {
    !(r.completed == Some(true) || matches!(r.stage_id, Some(3) | Some(4) | Some(13)))
}

impl FakeState {
    /// `n` records per resource for `owner`; every `closed_every`-th deal is won/lost
    /// and every `closed_every`-th task is completed... plus a few more closed ones.
    fn add_records(&mut self, owner: i64, n: usize, closed_pct: usize) {
        for resource in ["leads", "contacts", "deals", "tasks"] {
            for i in 0..n {
                self.next_id += 1;
                let closed = (i * 100 / n) < closed_pct;
                let rec = FakeRecord {
                    id: self.next_id,
                    owner_id: owner,
                    // Two pipelines: stages 1-4 and 11-14 (13 = won in pipeline 2).
                    stage_id: (resource == "deals").then(|| {
                        if closed {
                            [3, 4, 13][i % 3]
                        } else {
                            [1, 2, 11][i % 3]
                        }
                    }),
                    completed: (resource == "tasks").then_some(closed),
                    content: (resource == "tasks").then(|| format!("task {i}")),
                };
                self.records.entry(resource.into()).or_default().push(rec);
            }
        }
    }
}

fn envelope_list(
    items: Vec<Value>,
    kind: &str,
    page: usize,
    per_page: usize,
    total: usize,
) -> Value {
    let mut links = json!({ "self": format!("page={page}") });
    if page * per_page < total {
        links["next_page"] = json!(format!("page={}", page + 1));
    }
    json!({
        "items": items.into_iter().map(|d| json!({ "data": d, "meta": { "type": kind } })).collect::<Vec<_>>(),
        "meta": { "type": "collection", "count": total.min(per_page), "links": links }
    })
}

fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "errors": [{ "error": { "code": code, "message": message, "details": message }, "meta": { "type": "error" } }],
        "meta": { "type": "errors", "http_status": format!("{status}"), "logref": "test" }
    }))
}

impl Respond for FakeSell {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut s = self.0.lock().unwrap();
        let path = req.url.path().to_owned();
        s.log.push((
            req.method.to_string(),
            format!(
                "{}{}",
                path,
                req.url.query().map(|q| format!("?{q}")).unwrap_or_default()
            ),
        ));
        if let Some(status) = s.fail_with {
            return error(status, "unauthorized", "invalid access token");
        }
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if auth != format!("Bearer {SELL_TOKEN}") {
            return error(401, "unauthorized", "missing token");
        }
        if req.headers.get("user-agent").is_none() {
            return error(400, "invalid_user_agent", "User-Agent required");
        }
        let q: BTreeMap<String, String> = req
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let page: usize = q
            .get("page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1)
            .max(1);
        let per_page: usize = q
            .get("per_page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(25)
            .clamp(1, 100);
        let segs: Vec<&str> = path.trim_start_matches("/v2/").split('/').collect();
        let method = req.method.as_str();
        match (method, segs.as_slice()) {
            ("GET", ["users"]) => {
                let mut users: Vec<Value> = s
                    .users
                    .iter()
                    .filter(|u| u["deleted_at"].is_null())
                    .cloned()
                    .collect();
                if let Some(email) = q.get("email") {
                    users.retain(|u| u["email"].as_str().unwrap().eq_ignore_ascii_case(email));
                }
                let total = users.len();
                let items = users
                    .into_iter()
                    .skip((page - 1) * per_page)
                    .take(per_page)
                    .collect();
                ResponseTemplate::new(200)
                    .set_body_json(envelope_list(items, "user", page, per_page, total))
            }
            ("GET", ["users", id]) => {
                let id: i64 = id.parse().unwrap_or(-1);
                match s
                    .users
                    .iter()
                    .find(|u| u["id"] == id && u["deleted_at"].is_null())
                {
                    Some(u) => ResponseTemplate::new(200)
                        .set_body_json(json!({ "data": u, "meta": { "type": "user" } })),
                    None => error(404, "not_found", "user not found"),
                }
            }
            ("GET", ["stages"]) => {
                let stages = [
                    (1, "incoming", 1),
                    (2, "qualified", 1),
                    (3, "won", 1),
                    (4, "lost", 1),
                    (11, "incoming", 2),
                    (13, "won", 2),
                    (14, "lost", 2),
                ];
                let items: Vec<Value> = stages.iter().map(|(id, cat, p)| json!({ "id": id, "name": cat, "category": cat, "pipeline_id": p })).collect();
                let total = items.len();
                ResponseTemplate::new(200)
                    .set_body_json(envelope_list(items, "stage", 1, 100, total))
            }
            ("GET", [resource]) if ["leads", "contacts", "deals", "tasks"].contains(resource) => {
                let owner: Option<i64> = q.get("owner_id").and_then(|o| o.parse().ok());
                let recs: Vec<Value> = s
                    .records
                    .get(*resource)
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                    .iter()
                    .filter(|r| owner.is_none_or(|o| r.owner_id == o))
                    .map(|r| {
                        let mut v = json!({ "id": r.id, "owner_id": r.owner_id });
                        if let Some(st) = r.stage_id {
                            v["stage_id"] = json!(st);
                        }
                        if let Some(c) = r.completed {
                            v["completed"] = json!(c);
                        }
                        if let Some(c) = &r.content {
                            v["content"] = json!(c);
                        }
                        v
                    })
                    .collect();
                let total = recs.len();
                let items = recs
                    .into_iter()
                    .skip((page - 1) * per_page)
                    .take(per_page)
                    .collect();
                ResponseTemplate::new(200).set_body_json(envelope_list(
                    items,
                    resource.trim_end_matches('s'),
                    page,
                    per_page,
                    total,
                ))
            }
            ("PUT", [resource, id]) => {
                let id: i64 = id.parse().unwrap_or(-1);
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                let Some(owner) = body["data"]["owner_id"].as_i64() else {
                    return error(422, "invalid", "data.owner_id required");
                };
                let owner_ok = s.users.iter().any(|u| {
                    u["id"] == owner && u["status"] == "active" && u["deleted_at"].is_null()
                });
                if !owner_ok {
                    return error(422, "invalid_owner", "owner must be an active user");
                }
                let resource = resource.to_string();
                s.puts.push((resource.clone(), id, owner));
                let Some(rec) = s
                    .records
                    .get_mut(&resource)
                    .and_then(|v| v.iter_mut().find(|r| r.id == id))
                else {
                    return error(404, "not_found", "record not found");
                };
                rec.owner_id = owner;
                let v = json!({ "id": id, "owner_id": owner });
                ResponseTemplate::new(200).set_body_json(
                    json!({ "data": v, "meta": { "type": resource.trim_end_matches('s') } }),
                )
            }
            ("POST", ["tasks"]) => {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                let content = body["data"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let owner = body["data"]["owner_id"].as_i64().unwrap_or(0);
                s.next_id += 1;
                let id = s.next_id;
                s.created_tasks.push(content.clone());
                s.records
                    .entry("tasks".into())
                    .or_default()
                    .push(FakeRecord {
                        id,
                        owner_id: owner,
                        stage_id: None,
                        completed: Some(false),
                        content: Some(content.clone()),
                    });
                ResponseTemplate::new(200).set_body_json(json!({ "data": { "id": id, "owner_id": owner, "content": content, "completed": false }, "meta": { "type": "task" } }))
            }
            _ => error(404, "not_found", "no such route"),
        }
    }
}
