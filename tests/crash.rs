//! Crash safety with a real process and real signals: the `offboard` binary runs
//! against an in-process Sell sandbox, gets SIGKILLed (or SIGSTOPped) at chosen
//! points, and a fresh process must finish the job with the exact final state:
//! every open record moved, closed ones untouched, one admin task, no record PUT
//! more than twice.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use offboard_core::crm::Resource;
use offboard_sandbox::{Sandbox, SandboxCrm, SandboxOptions, Seed};
use offboard_testkit::{
    config::{ServeConfig, ServiceDir},
    free_port,
    process::{self, Process},
    sell, sign,
};
use serde_json::{Value, json};

const SECRET: &str = "whsec_Y3Jhc2gtdGVzdC1zZWNyZXQ=";
const ADMIN: &str = "crash-admin-token";

struct Harness {
    dir: ServiceDir,
    sandbox: Sandbox,
    http: reqwest::Client,
    port: u16,
}

impl Harness {
    async fn new(fault_rate: f64, sandbox_rps: Option<u32>, client_rps: u32) -> Harness {
        Self::for_crm(SandboxCrm::Sell, fault_rate, sandbox_rps, client_rps).await
    }

    async fn for_crm(
        crm: SandboxCrm,
        fault_rate: f64,
        sandbox_rps: Option<u32>,
        client_rps: u32,
    ) -> Harness {
        Self::for_crm_with_seed(
            crm,
            Seed::generate(100, 7),
            fault_rate,
            sandbox_rps,
            client_rps,
        )
        .await
    }

    async fn for_crm_with_seed(
        crm: SandboxCrm,
        seed: Seed,
        fault_rate: f64,
        sandbox_rps: Option<u32>,
        client_rps: u32,
    ) -> Harness {
        let sandbox = sell::start(SandboxOptions {
            crm,
            listen: "127.0.0.1:0".parse().unwrap(),
            token: Some("crash-sell-token".into()),
            rps: sandbox_rps,
            latency: Duration::from_millis(3),
            fault_rate,
            seed,
            ..SandboxOptions::default()
        })
        .await;
        let port = free_port();
        let dir = ServeConfig {
            port,
            store_url: None,
            crm_base_url: sandbox.base_url(),
            webhook_secret: SECRET.into(),
            admin_token: ADMIN.into(),
            sell_token: "crash-sell-token".into(),
            policy: "version = 1\n[defaults]\nfallback_owner = \"sales-ops@example.com\"\nat = \"now\"\n[[rules]]\nname = \"all\"\naction = \"deactivate\"\n".into(),
            store_extra: String::new(),
            crm_extra: format!(
                "kind = \"{}\"\nadmin_email = \"admin@example.com\"\nrequests_per_second = {client_rps}\nmax_in_flight = 8\ntimeout_secs = 5",
                crm.as_str()
            ),
            tail: "[worker]\nlease_secs = 3\nverify_interval_secs = 1\npoll_interval_ms = 100".into(),
        }
        .write();
        Harness {
            dir,
            sandbox,
            http: reqwest::Client::new(),
            port,
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.config.clone()
    }

    async fn start(&self) -> Process {
        let mut child = start_with(&self.config_path());
        child
            .wait_ready(
                &format!("http://127.0.0.1:{}", self.port),
                Duration::from_secs(30),
            )
            .await;
        child
    }

    async fn post(&self, email: &str) -> String {
        let body = json!({
            "id": "evt_crash", "type": "employee.terminated",
            "employee": { "email": email, "manager_email": "nobody@example.com" },
            "termination": { "kind": "voluntary", "rehire_eligible": true }
        })
        .to_string();
        let url = format!("http://127.0.0.1:{}/webhooks/hr", self.port);
        let resp = sign::post(&self.http, &url, SECRET, "msg_crash", &body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        resp.json::<Value>().await.unwrap()["job_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn job(&self, id: &str) -> Option<Value> {
        let r = self
            .http
            .get(format!("http://127.0.0.1:{}/api/v1/jobs/{id}", self.port))
            .bearer_auth(ADMIN)
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl AsyncFnMut(&Harness) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if check(self).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}");
    }

    /// Waits until the job asks for the seat change, plays the admin (deactivates
    /// the user in the sandbox), then waits for the job to succeed.
    async fn admin_deactivates_then_job_succeeds(&self, job_id: &str, rep: i64, timeout: Duration) {
        self.wait_for("seat requested", timeout, async |h| {
            h.job(job_id)
                .await
                .is_some_and(|j| j["checkpoints"].get("seat_requested_at").is_some())
        })
        .await;
        self.sandbox.state().deactivate(rep).await.unwrap();
        self.wait_for("succeeded", Duration::from_secs(30), async |h| {
            h.job(job_id)
                .await
                .is_some_and(|j| j["state"] == "succeeded")
        })
        .await;
    }

    fn admin_tasks(&self) -> usize {
        sell::admin_tasks(&self.sandbox.state())
    }
}

/// The rep with the most records in the generated org.
async fn leaver(h: &Harness) -> (i64, String) {
    let snap = h.sandbox.state().snapshot().await;
    let rep = snap.users.iter().find(|u| u.id == 101).expect("rep 101");
    (rep.id, rep.email.clone())
}

#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// SIGKILL once this many records were written.
    AfterWrites(usize),
    /// SIGKILL as soon as the sandbox answered the admin-task POST.
    AfterAdminTask,
    /// SIGKILL while the job waits for the admin (verification polls).
    WhileVerifying,
}

async fn crash_and_resume(point: KillPoint) {
    let h = Harness::new(0.0, None, 100).await;
    let (rep, email) = leaver(&h).await;
    let before = h.sandbox.state().open_counts(rep).await;
    let open_before = before.open_total();
    assert!(
        open_before >= 300,
        "want 300+ open records, have {open_before}"
    );

    let mut first = h.start().await;
    let job_id = h.post(&email).await;
    match point {
        KillPoint::AfterWrites(n) => {
            h.wait_for("writes", Duration::from_secs(60), async |h| {
                h.sandbox.state().stats().writes.len() >= n
            })
            .await
        }
        KillPoint::AfterAdminTask => {
            h.wait_for("admin task", Duration::from_secs(60), async |h| {
                h.admin_tasks() >= 1
            })
            .await
        }
        KillPoint::WhileVerifying => {
            h.wait_for("verification", Duration::from_secs(60), async |h| {
                h.job(&job_id)
                    .await
                    .is_some_and(|j| j["checkpoints"].get("seat_requested_at").is_some())
            })
            .await
        }
    }
    first.kill();
    let writes_at_kill = h.sandbox.state().stats().writes.len();

    let mut second = h.start().await;
    h.admin_deactivates_then_job_succeeds(&job_id, rep, Duration::from_secs(60))
        .await;
    second.kill();

    let after = h.sandbox.state().open_counts(rep).await;
    assert_eq!(after.open_total(), 0, "{point:?}: open records left behind");
    for r in Resource::ALL {
        assert_eq!(
            after.get(r).closed,
            before.get(r).closed,
            "{point:?}: closed {r} changed"
        );
    }
    assert_eq!(h.admin_tasks(), 1, "{point:?}: admin tasks");
    let stats = h.sandbox.state().stats();
    let max_puts = stats.puts.values().copied().max().unwrap_or(0);
    assert!(
        max_puts <= 2,
        "{point:?}: a record was PUT {max_puts} times"
    );
    assert_eq!(
        stats.writes.len(),
        open_before + 1, // every open record, plus the admin task (a POST is a write too)
        "{point:?}: every open record written"
    );
    eprintln!(
        "{point:?}: killed after {writes_at_kill} writes; {} PUTs for {open_before} records",
        stats.puts.values().sum::<u64>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_a_quarter_through() {
    crash_and_resume(KillPoint::AfterWrites(90)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_half_way() {
    crash_and_resume(KillPoint::AfterWrites(180)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_right_after_the_admin_task() {
    crash_and_resume(KillPoint::AfterAdminTask).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_while_verifying() {
    crash_and_resume(KillPoint::WhileVerifying).await;
}

/// Pipedrive: SIGKILL half-way through the reassignment, restart on the same
/// store: every open record moved (none written more than twice), closed ones
/// untouched, and the seat deactivated by offboard itself, with no admin task.
#[tokio::test(flavor = "multi_thread")]
async fn pipedrive_sigkill_mid_reassignment_then_restart() {
    let h = Harness::for_crm(SandboxCrm::Pipedrive, 0.0, None, 100).await;
    let (rep, email) = leaver(&h).await;
    let before = h.sandbox.state().open_counts(rep).await;
    let open_before = before.open_total();
    assert!(open_before >= 300, "have {open_before}");

    let mut first = h.start().await;
    let job_id = h.post(&email).await;
    h.wait_for("writes", Duration::from_secs(60), async |h| {
        h.sandbox.state().stats().writes.len() >= 150
    })
    .await;
    first.kill();
    let writes_at_kill = h.sandbox.state().stats().writes.len();
    assert!(writes_at_kill < open_before, "killed mid-reassignment");

    let mut second = h.start().await;
    h.wait_for("succeeded", Duration::from_secs(60), async |h| {
        h.job(&job_id)
            .await
            .is_some_and(|j| j["state"] == "succeeded")
    })
    .await;
    second.kill();

    let state = h.sandbox.state();
    assert!(
        !state.user(rep).await.unwrap().is_active(),
        "seat deactivated"
    );
    let stats = assert_exact_end_state(&h, rep, &before).await;
    assert_eq!(stats.writes.len(), open_before, "every open record written");
    assert!(
        !state.request_log().iter().any(|e| e.method == "POST"),
        "no admin activity"
    );
}

/// HubSpot: SIGKILL between batches of 100, restart on the same store. A batch
/// that landed but was not checkpointed is found moved by the fresh listing and
/// not sent again; the end state is exact and one admin task asks for the
/// deactivation HubSpot's API can't make.
#[tokio::test(flavor = "multi_thread")]
async fn hubspot_sigkill_mid_batch_then_restart() {
    let h = Harness::for_crm(SandboxCrm::Hubspot, 0.0, None, 20).await;
    let (rep, email) = leaver(&h).await;
    let before = h.sandbox.state().open_counts(rep).await;
    let open_before = before.open_total();
    assert!(open_before >= 200, "have {open_before}");

    let mut first = h.start().await;
    let job_id = h.post(&email).await;
    h.wait_for("a first batch", Duration::from_secs(60), async |h| {
        h.sandbox.state().stats().writes.len() >= 100
    })
    .await;
    first.kill();
    let writes_at_kill = h.sandbox.state().stats().writes.len();
    assert!(writes_at_kill < open_before, "killed mid-reassignment");

    let mut second = h.start().await;
    h.admin_deactivates_then_job_succeeds(&job_id, rep, Duration::from_secs(60))
        .await;
    second.kill();

    let state = h.sandbox.state();
    let stats = assert_exact_end_state(&h, rep, &before).await;
    // Every open record and the admin's task.
    assert_eq!(stats.writes.len(), open_before + 1);
    let batches = state
        .request_log()
        .iter()
        .filter(|e| e.path.ends_with("/batch/update"))
        .count();
    // The audit accounts for every record once: moved as recorded, or found moved
    // after the restart (a batch that landed unrecorded), and says what was
    // re-sent; a re-sent record is one the first run's call did not move.
    let resumed = assert_audit_accounts_for_every_record(&h, &job_id, open_before).await;
    // `resumed` is empty only when the kill fell between two write passes, with
    // no call in flight.
    eprintln!(
        "HubSpot: killed after {writes_at_kill} writes; {batches} batch calls for {open_before} records; resumed {resumed:?}"
    );
}

/// Salesforce: SIGKILL while sObject Collections calls are in flight (one of
/// 200 records landed, more launched and checkpointed as sending), restart on
/// the same store. The calls that landed unrecorded are found moved by the
/// fresh listing and not sent again, the rest are re-sent; the end state is
/// exact, and the seat is deactivated by offboard itself (`IsActive = false`),
/// so there is no admin to play and no task.
#[tokio::test(flavor = "multi_thread")]
async fn salesforce_sigkill_mid_batch_then_restart() {
    // 500 records of each kind for the leaver: each resource takes several
    // calls of 200, launched together.
    let h = Harness::for_crm_with_seed(
        SandboxCrm::Salesforce,
        Seed::generate(500, 7),
        0.0,
        None,
        10,
    )
    .await;
    let (rep, email) = leaver(&h).await;
    let before = h.sandbox.state().open_counts(rep).await;
    let open_before = before.open_total();
    assert!(open_before >= 1000, "have {open_before}");

    let mut first = h.start().await;
    let job_id = h.post(&email).await;
    h.wait_for(
        "a call landed with more in flight",
        Duration::from_secs(60),
        async |h| {
            h.sandbox.state().stats().writes.len() >= 200
                && h.job(&job_id)
                    .await
                    .is_some_and(|j| in_flight(&j["checkpoints"]) > 0)
        },
    )
    .await;
    first.kill();
    let writes_at_kill = h.sandbox.state().stats().writes.len();
    assert!(writes_at_kill < open_before, "killed mid-reassignment");

    let mut second = h.start().await;
    h.wait_for("succeeded", Duration::from_secs(60), async |h| {
        h.job(&job_id)
            .await
            .is_some_and(|j| j["state"] == "succeeded")
    })
    .await;
    second.kill();

    let state = h.sandbox.state();
    assert!(
        !state.user(rep).await.unwrap().is_active(),
        "seat deactivated"
    );
    let stats = assert_exact_end_state(&h, rep, &before).await;
    // Every open record, and nothing else: no admin task.
    assert_eq!(stats.writes.len(), open_before);
    let log = state.request_log();
    assert!(!log.iter().any(|e| e.method == "POST"), "no admin task");
    let seat_calls = log
        .iter()
        .filter(|e| e.method == "PATCH" && e.path.contains("/sobjects/User/"))
        .count();
    assert_eq!(seat_calls, 1, "the seat was changed once, by the API");
    let calls = log
        .iter()
        .filter(|e| e.method == "PATCH" && e.path.ends_with("/composite/sobjects"))
        .count();
    // The audit accounts for every record once: moved as recorded, or found moved
    // after the restart (a call that landed unrecorded), and says what was
    // re-sent; a re-sent record is one the first run's call did not move.
    let resumed = assert_audit_accounts_for_every_record(&h, &job_id, open_before).await;
    // The kill came with records checkpointed as sending, so the restart found
    // interrupted calls to account for.
    let interrupted: u64 = resumed
        .iter()
        .filter_map(|r| r["interrupted"].as_u64())
        .sum();
    assert!(
        interrupted > 0,
        "calls were in flight at the kill: {resumed:?}"
    );
    let resumed: Vec<String> = resumed
        .iter()
        .map(|r| {
            format!(
                "{}: {} interrupted, {} landed unrecorded, {} re-sent",
                r["resource"], r["interrupted"], r["landed_unrecorded"], r["resending"]
            )
        })
        .collect();
    eprintln!(
        "Salesforce: killed after {writes_at_kill} writes; {calls} collection calls for {open_before} records; resumed {resumed:?}"
    );
}

/// What every crash test ends with: nothing open left with the leaver, closed
/// records where they were, no record written more than twice. Returns the
/// sandbox's counts for the test's own checks.
async fn assert_exact_end_state(
    h: &Harness,
    rep: i64,
    before: &offboard_sandbox::OwnedCounts,
) -> offboard_sandbox::Stats {
    let state = h.sandbox.state();
    let after = state.open_counts(rep).await;
    assert_eq!(after.open_total(), 0, "open records left behind");
    for r in Resource::ALL {
        assert_eq!(
            after.get(r).closed,
            before.get(r).closed,
            "closed {r} changed"
        );
    }
    let stats = state.stats();
    let most = stats.writes.values().copied().max().unwrap_or(0);
    assert!(most <= 2, "a record was written {most} times");
    stats
}

/// The audit accounts for every record once: moved as recorded, or found moved
/// after the restart (a call that landed unrecorded); each `reassign.resumed`
/// line adds up (interrupted = landed unrecorded + re-sent, with the re-sent
/// ids listed), and nothing is left in flight at the end. Returns those lines.
async fn assert_audit_accounts_for_every_record(
    h: &Harness,
    job_id: &str,
    open_before: usize,
) -> Vec<Value> {
    use offboard_core::store::JobStore;
    let store = offboard_core::store::sqlite::SqliteStore::open(&h.dir.sqlite_url(), "full")
        .await
        .unwrap();
    let detail = store.get_job(job_id).await.unwrap().unwrap();
    let of_kind = |kind: &str| -> Vec<Value> {
        detail
            .audit
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.detail.clone())
            .collect()
    };
    let moved: u64 = of_kind("reassign.done")
        .iter()
        .filter_map(|d| d["moved"].as_u64())
        .sum();
    assert_eq!(
        moved, open_before as u64,
        "every open record counted as moved once"
    );
    let resumed = of_kind("reassign.resumed");
    for r in &resumed {
        let resent = r["resent_ids"].as_array().unwrap();
        assert_eq!(r["resending"].as_u64(), Some(resent.len() as u64));
        assert_eq!(
            r["interrupted"].as_u64(),
            Some(resent.len() as u64 + r["landed_unrecorded"].as_u64().unwrap())
        );
    }
    let checkpoints = serde_json::to_value(&detail.checkpoints).unwrap();
    assert_eq!(
        in_flight(&checkpoints),
        0,
        "nothing left in flight at the end: {checkpoints}"
    );
    resumed
}

/// Records a job's checkpoints hold as sent but not yet answered (the
/// `sending` lists of its reassignment progress), wherever they sit.
fn in_flight(checkpoints: &Value) -> usize {
    match checkpoints {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("sending", Value::Array(ids)) => ids.len(),
                _ => in_flight(v),
            })
            .sum(),
        Value::Array(a) => a.iter().map(in_flight).sum(),
        _ => 0,
    }
}

/// 20 % of calls fail (500, 503, dropped connection) and the CRM throttles below
/// the client's budget (429s): the job still ends with the exact final state.
#[tokio::test(flavor = "multi_thread")]
async fn faults_and_throttling_do_not_change_the_result() {
    let h = Harness::new(0.2, Some(40), 60).await;
    let (rep, email) = leaver(&h).await;
    let before = h.sandbox.state().open_counts(rep).await;
    let mut child = h.start().await;
    let job_id = h.post(&email).await;
    h.admin_deactivates_then_job_succeeds(&job_id, rep, Duration::from_secs(120))
        .await;
    child.kill();
    let after = h.sandbox.state().open_counts(rep).await;
    assert_eq!(after.open_total(), 0);
    for r in Resource::ALL {
        assert_eq!(after.get(r).closed, before.get(r).closed);
    }
    assert_eq!(h.admin_tasks(), 1);
    let stats = h.sandbox.state().stats();
    assert!(stats.faults > 0, "no faults were injected");
    assert_eq!(
        stats.writes.len(),
        before.open_total() + 1,
        "every open record and the admin task written"
    );
    assert!(
        stats.writes.values().all(|&w| w == 1),
        "a record was written twice"
    );
}

/// A worker that stops heartbeating (SIGSTOP) loses its job to another process
/// within lease_secs + a poll; when it wakes, its late writes are refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_worker_loses_its_lease() {
    let h = Harness::new(0.0, None, 60).await;
    let (rep, email) = leaver(&h).await;
    let mut first = h.start().await;
    let job_id = h.post(&email).await;
    h.wait_for("some writes", Duration::from_secs(60), async |h| {
        h.sandbox.state().stats().writes.len() >= 40
    })
    .await;
    freeze_outside_a_write(&h, &first).await;
    let frozen_at = Instant::now();
    // A second process on the same store (another port) takes over.
    let second_port = free_port();
    let cfg = std::fs::read_to_string(h.config_path()).unwrap().replace(
        &format!("127.0.0.1:{}", h.port),
        &format!("127.0.0.1:{second_port}"),
    );
    let second_cfg = h.dir.path().join("second.toml");
    std::fs::write(&second_cfg, cfg).unwrap();
    let mut second = start_with(&second_cfg);
    let writes_frozen = h.sandbox.state().stats().writes.len();
    h.wait_for("takeover", Duration::from_secs(30), async |h| {
        h.sandbox.state().stats().writes.len() > writes_frozen + 5
    })
    .await;
    let took = frozen_at.elapsed();
    assert!(
        took < Duration::from_secs(3 + 5),
        "took over after {took:?}"
    );
    first.signal("CONT");
    h.admin_deactivates_then_job_succeeds(&job_id, rep, Duration::from_secs(60))
        .await;
    first.kill();
    second.kill();
    assert_eq!(h.sandbox.state().open_counts(rep).await.open_total(), 0);
    assert_eq!(h.admin_tasks(), 1);
    let max_puts = h
        .sandbox
        .state()
        .stats()
        .puts
        .values()
        .copied()
        .max()
        .unwrap_or(0);
    assert!(max_puts <= 2, "a record was PUT {max_puts} times");
}

/// SIGSTOPs the worker at a moment it holds no SQLite write transaction. A process
/// frozen inside one holds the file's write lock and blocks every other process:
/// that is SQLite's nature (multi-process deployments use PostgreSQL), and not what
/// the lease protects against, which is a worker that stops heartbeating.
async fn freeze_outside_a_write(h: &Harness, child: &Process) {
    use sqlx::{ConnectOptions, Connection, sqlite::SqliteConnectOptions};
    let db = h.dir.sqlite_url();
    for _ in 0..100 {
        child.signal("STOP");
        tokio::time::sleep(Duration::from_millis(30)).await;
        let opts: SqliteConnectOptions = db
            .parse::<SqliteConnectOptions>()
            .unwrap()
            .busy_timeout(Duration::ZERO);
        let mut conn = opts.connect().await.unwrap();
        let free = sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .is_ok();
        if free {
            sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();
        if free {
            return;
        }
        child.signal("CONT");
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    panic!("the worker was always inside a write transaction");
}

fn start_with(config: &Path) -> Process {
    Process::spawn(&mut process::serve(env!("CARGO_BIN_EXE_offboard"), config))
}

/// SIGTERM: stop claiming, let in-flight calls finish, checkpoint, and give the job
/// back at once (queued, no lease) so another worker need not wait for expiry.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_releases_the_lease_for_the_next_worker() {
    let h = Harness::new(0.0, None, 60).await;
    let (rep, email) = leaver(&h).await;
    let mut first = h.start().await;
    let job_id = h.post(&email).await;
    h.wait_for("some writes", Duration::from_secs(60), async |h| {
        h.sandbox.state().stats().writes.len() >= 60
    })
    .await;
    first.signal("TERM");
    let stopping = Instant::now();
    let status = first.wait();
    assert!(status.success(), "graceful exit: {status:?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        stopping.elapsed()
    );

    let store = offboard_core::store::sqlite::SqliteStore::open(&h.dir.sqlite_url(), "full")
        .await
        .unwrap();
    use offboard_core::store::JobStore;
    let detail = store.get_job(&job_id).await.unwrap().unwrap();
    assert_eq!(
        detail.job.state,
        offboard_core::domain::JobState::Queued,
        "released, not left running"
    );
    assert!(detail.job.lease_owner.is_none());
    let moved: u64 = Resource::ALL
        .iter()
        .filter_map(|r| detail.checkpoints.get(&format!("reassign.{r}")))
        .filter_map(|c| c["moved"].as_u64())
        .sum();
    assert!(moved > 0, "progress was checkpointed before exit");

    let mut second = h.start().await;
    h.admin_deactivates_then_job_succeeds(&job_id, rep, Duration::from_secs(60))
        .await;
    second.kill();
    assert_eq!(h.sandbox.state().open_counts(rep).await.open_total(), 0);
    assert_eq!(h.admin_tasks(), 1);
}
