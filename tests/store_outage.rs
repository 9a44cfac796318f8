//! When the store goes away (ARCHITECTURE.md, "never act blind"): real `offboard
//! serve` processes on a PostgreSQL server of the test's own — initdb'd into a
//! temp dir on a free port, so stopping it disturbs no other test — that the test
//! stops and starts. Whatever happens, the server is stopped when the test ends.
//!
//! - a receiver answers every webhook during the outage with 503
//!   `store_unavailable` and `Retry-After` within the bound, acknowledges nothing
//!   it did not store, and `/readyz` flips to 503 and back to 200 within it;
//! - a worker mid-offboarding stops writing to the CRM at once, resumes when the
//!   database is back, ends with the exact end state, and every CRM write the
//!   sandbox saw is in the job's audit trail (intent and result), written by
//!   runs that never overlapped.
//!
//! Needs root (PostgreSQL runs as the `postgres` user) and the server binaries
//! (`/usr/lib/postgresql/*/bin`); under `CI=true` their absence fails the test.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use offboard_core::store::{JobFilter, SharedStore};
use offboard_sandbox::SandboxOptions;
use offboard_testkit::{
    Timed,
    config::ServeConfig,
    free_port,
    process::{self, Process},
    sign, timed,
};
use serde_json::json;

const SECRET: &str = "whsec_b3V0YWdlLXRlc3Qtc2VjcmV0LTEyMzQ=";
const ADMIN: &str = "outage-admin";
const SELL_TOKEN: &str = "outage-sell";
/// `[store] unavailable_after_ms` in these tests' configs.
const BOUND: Duration = Duration::from_millis(1000);
/// What the machine may add to the bound (two cores, other tests running).
const SLACK: Duration = Duration::from_millis(700);

/// A PostgreSQL server of this test's own.
struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    /// Initialises and starts one; `None` (said why) where that is impossible
    /// outside CI.
    fn start() -> Option<PrivatePostgres> {
        let why_not = Self::missing();
        if let Some(why) = why_not {
            if std::env::var_os("CI").is_some() {
                panic!("CI: the store outage test needs {why}");
            }
            eprintln!("skipped: the store outage test needs {why}");
            return None;
        }
        let bin = Self::bin_dir().expect("checked above");
        let dir = tempfile::tempdir().expect("temp dir");
        let (uid, gid) = (id("-u"), id("-g"));
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the data dir");
        let pg = PrivatePostgres {
            bin,
            dir,
            port: free_port(),
        };
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        pg.up();
        Some(pg)
    }

    fn missing() -> Option<String> {
        if Self::bin_dir().is_none() {
            return Some("PostgreSQL's server binaries (/usr/lib/postgresql/*/bin/pg_ctl)".into());
        }
        let root = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&root.stdout).trim() != "0" {
            return Some("root (the server runs as the postgres user, via runuser)".into());
        }
        None
    }

    fn bin_dir() -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("pg_ctl").exists())
            .collect();
        found.sort();
        found.pop()
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .output()
            .expect("run a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server and waits until it accepts connections.
    fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Stops it the way an outage looks from outside: connections cut, nothing answers.
    fn down(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

fn id(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .expect("id postgres");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a numeric id")
}

fn config(pg: &PrivatePostgres, crm: &str, tail: &str) -> offboard_testkit::config::ServiceDir {
    ServeConfig {
        port: free_port(),
        store_url: Some(pg.url()),
        crm_base_url: crm.to_owned(),
        webhook_secret: SECRET.into(),
        admin_token: ADMIN.into(),
        sell_token: SELL_TOKEN.into(),
        policy: "version = 1\n[defaults]\nreassign_to = \"manager\"\nfallback_owner = \"sales-ops@example.com\"\nreassign = [\"leads\", \"contacts\", \"deals\", \"tasks\"]\nat = \"now\"\n[[rules]]\nname = \"all\"\naction = \"deactivate\"\n".into(),
        store_extra: format!("unavailable_after_ms = {}", BOUND.as_millis()),
        crm_extra: String::new(),
        tail: tail.to_owned(),
    }
    .write()
}

fn port_of(dir: &offboard_testkit::config::ServiceDir) -> u16 {
    let text = std::fs::read_to_string(&dir.config).expect("read config");
    text.lines()
        .find_map(|l| l.strip_prefix("listen = \"127.0.0.1:"))
        .and_then(|rest| rest.trim_end_matches('"').parse().ok())
        .expect("a listen port")
}

async fn serve(config: &Path, port: u16, role: &str) -> Process {
    let mut server = Process::spawn_capturing(
        process::serve(env!("CARGO_BIN_EXE_offboard"), config).args(["--role", role]),
    );
    server
        .wait_ready(&format!("http://127.0.0.1:{port}"), Duration::from_secs(30))
        .await;
    server
}

fn termination(id: &str, email: &str) -> String {
    json!({
        "id": id,
        "type": "employee.terminated",
        "employee": { "email": email, "manager_email": "max.manager@example.com" },
        "termination": { "kind": "voluntary" },
    })
    .to_string()
}

async fn open_store(pg: &PrivatePostgres) -> SharedStore {
    offboard_core::store::open(&pg.url(), "full")
        .await
        .expect("open the store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_and_readiness_answer_within_the_bound_while_the_database_is_down() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let dir = config(&pg, "http://127.0.0.1:9", "");
    let port = port_of(&dir);
    let _server = serve(&dir.config, port, "receiver").await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let post = |id: String| {
        let body = termination(&id, "leaver@example.com");
        sign::post(&http, &format!("{base}/webhooks/hr"), SECRET, &id, &body)
    };
    let before = timed(post("before-outage".into())).await;
    assert_eq!(before.status, 202, "{}", before.body);

    pg.down();
    let stopped = Instant::now();
    let answers: Arc<Mutex<Vec<(String, Timed)>>> = Arc::default();
    let mut clients = Vec::new();
    for c in 0..4 {
        let (answers, base) = (answers.clone(), base.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for k in 0..6 {
                let id = format!("during-{c}-{k}");
                let body = termination(&id, "leaver@example.com");
                let answer = timed(sign::post(
                    &http,
                    &format!("{base}/webhooks/hr"),
                    SECRET,
                    &id,
                    &body,
                ))
                .await;
                answers.lock().expect("lock").push((id, answer));
            }
        }));
    }
    let mut probes = Vec::new();
    while stopped.elapsed() < Duration::from_secs(3) {
        probes.push((
            stopped.elapsed(),
            timed(http.get(format!("{base}/readyz"))).await,
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for client in clients {
        client.await.expect("a client task panicked");
    }
    // The admin API says the same.
    let admin = timed(http.get(format!("{base}/api/v1/jobs")).bearer_auth(ADMIN)).await;
    assert_eq!(admin.status, 503, "{}", admin.body);
    assert_eq!(admin.body["error"]["code"], "store_unavailable");
    assert_eq!(admin.retry_after.as_deref(), Some("1"));
    assert!(
        admin.took <= BOUND + SLACK,
        "the admin API took {:?}",
        admin.took
    );
    let answers = std::mem::take(&mut *answers.lock().expect("lock"));
    let slowest = answers
        .iter()
        .map(|(_, a)| a.took)
        .max()
        .unwrap_or_default();
    for (id, a) in &answers {
        assert_eq!(a.status, 503, "{id}: {}", a.body);
        assert_eq!(a.body["error"]["code"], "store_unavailable", "{id}");
        assert_eq!(a.retry_after.as_deref(), Some("1"), "{id}");
        assert!(a.took <= BOUND + SLACK, "{id} took {:?}", a.took);
    }
    let first_503 = probes
        .iter()
        .find(|(_, a)| a.status == 503)
        .map(|(at, a)| *at + a.took)
        .expect("readiness never said 503 during the outage");
    assert!(
        first_503 <= BOUND + SLACK,
        "readiness said 503 only after {first_503:?}"
    );
    assert!(
        probes.iter().all(|(_, a)| a.took <= BOUND + SLACK),
        "a readiness probe was held longer than the bound"
    );
    assert!(
        probes
            .iter()
            .skip_while(|(_, a)| a.status != 503)
            .all(|(_, a)| a.status == 503),
        "readiness said 200 while the database was down"
    );

    pg.up();
    let back = Instant::now();
    let ready_again = loop {
        let a = timed(http.get(format!("{base}/readyz"))).await;
        if a.status == 200 {
            break back.elapsed();
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "never ready again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        ready_again <= Duration::from_secs(1) + SLACK,
        "ready again only after {ready_again:?}"
    );
    let after = timed(post("after-outage".into())).await;
    assert_eq!(after.status, 202, "{}", after.body);

    // Nothing acknowledged is missing; nothing refused was stored.
    let store = open_store(&pg).await;
    let stored: Vec<String> = store
        .list_jobs(&JobFilter::default())
        .await
        .expect("list jobs")
        .into_iter()
        .map(|j| j.event_id)
        .collect();
    assert!(stored.contains(&"before-outage".to_owned()));
    assert!(stored.contains(&"after-outage".to_owned()));
    assert!(
        answers.iter().all(|(id, _)| !stored.contains(id)),
        "a 503'd event was stored"
    );
    eprintln!(
        "outage: {} webhooks, all 503 store_unavailable, slowest {slowest:?}; readiness 503 after {first_503:?}; ready again {ready_again:?} after the database was",
        answers.len()
    );
}

/// CRM writes (not reads) in the sandbox's log: (method, path).
fn writes(log: &[offboard_sandbox::RequestLogEntry]) -> Vec<(String, String)> {
    log.iter()
        .filter(|e| e.method != "GET")
        .map(|e| (e.method.clone(), e.path.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stops_writing_during_an_outage_and_its_audit_is_complete_after_it() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    // Jane owns 250 records of each kind; at 50 writes a second they take ~17 s.
    let sandbox = offboard_testkit::sell::start(SandboxOptions {
        token: Some(SELL_TOKEN.into()),
        seed: offboard_testkit::sell::standard_org(),
        rps: Some(50),
        ..SandboxOptions::default()
    })
    .await;
    let worker_config = || {
        let dir = config(
            &pg,
            &sandbox.base_url(),
            "[worker]\nlease_secs = 6\npoll_interval_ms = 100\nverify_interval_secs = 1\n",
        );
        let text = std::fs::read_to_string(&dir.config).expect("read config");
        std::fs::write(
            &dir.config,
            text.replace(
                "[crm]\n",
                "[crm]\nrequests_per_second = 50\nmax_in_flight = 8\nadmin_email = \"admin@example.com\"\n",
            ),
        )
        .expect("write config");
        dir
    };
    // Two workers on one database: after the outage either may take the job over.
    let dir = worker_config();
    let port = port_of(&dir);
    let mut server = serve(&dir.config, port, "all").await;
    let other_dir = worker_config();
    let mut other = serve(&other_dir.config, port_of(&other_dir), "worker").await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let body = termination("outage-jane", "jane.doe@example.com");
    let accepted = timed(sign::post(
        &http,
        &format!("{base}/webhooks/hr"),
        SECRET,
        "outage-jane",
        &body,
    ))
    .await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let job_id = accepted.body["job_id"].as_str().expect("job id").to_owned();
    let state = sandbox.state();

    let deadline = Instant::now() + Duration::from_secs(60);
    while writes(&state.request_log()).len() < 150 {
        assert!(
            Instant::now() < deadline,
            "the offboarding did not get going"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pg.down();
    let at_stop = writes(&state.request_log()).len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after_4s = writes(&state.request_log()).len();
    // What was in flight when the database went may finish; nothing new starts.
    assert!(
        after_4s - at_stop <= 8,
        "{} CRM writes after the database stopped ({at_stop} before)",
        after_4s - at_stop
    );
    pg.up();

    // The worker resumes; the test plays Sell's admin once the task is there.
    let store = open_store(&pg).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut deactivated = false;
    let job = loop {
        let job = store
            .get_job(&job_id)
            .await
            .expect("get job")
            .expect("the job");
        if job.job.state.as_str() == "succeeded" {
            break job;
        }
        if !deactivated && offboard_testkit::sell::created_tasks(&state).await.len() == 1 {
            state.deactivate(10).await.expect("deactivate jane");
            deactivated = true;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not finish: {:?}",
            job.job
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    server.kill();
    other.kill();

    // The exact end state.
    for resource in offboard_core::domain::Resource::ALL {
        let (open, _) = offboard_testkit::sell::owned(&state, resource, 10).await;
        assert_eq!(open, 0, "{resource} still open with the leaver");
    }
    assert_eq!(
        offboard_testkit::sell::created_tasks(&state).await.len(),
        1,
        "one admin task"
    );

    // Every write the CRM saw is in the trail: its intent before, its result after.
    let mut intents: HashMap<(String, String), usize> = HashMap::new();
    let mut results: HashMap<(String, String), usize> = HashMap::new();
    let mut attempts = Vec::new();
    let mut workers = std::collections::BTreeSet::new();
    for entry in &job.audit {
        let key = || {
            (
                entry.detail["method"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                entry.detail["path"].as_str().unwrap_or_default().to_owned(),
            )
        };
        match entry.kind.as_str() {
            "crm.intent" => {
                *intents.entry(key()).or_default() += 1;
                attempts.push(entry.detail["attempt"].as_u64().unwrap_or(0));
                workers.insert(
                    entry.detail["worker"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
            "crm.call" if entry.detail["method"] != "GET" => {
                *results.entry(key()).or_default() += 1;
            }
            _ => {}
        }
    }
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for write in writes(&state.request_log()) {
        *seen.entry(write).or_default() += 1;
    }
    for (write, n) in &seen {
        assert!(
            intents.get(write).copied().unwrap_or(0) >= *n,
            "{write:?} reached the CRM {n}× without as many intents in the audit"
        );
        assert!(
            results.get(write).copied().unwrap_or(0) >= *n,
            "{write:?} reached the CRM {n}× without as many results in the audit"
        );
    }
    // Runs never overlapped: no intent of an earlier attempt after a later one's.
    assert!(
        attempts.windows(2).all(|w| w[0] <= w[1]),
        "intents of two attempts interleave: {attempts:?}"
    );
    eprintln!(
        "outage mid-offboarding: {at_stop} CRM writes before the stop, {} in the 4 s after; {} writes in all, {} attempts by {} worker(s), every one in the audit",
        after_4s - at_stop,
        seen.values().sum::<usize>(),
        attempts.last().copied().unwrap_or(0),
        workers.len()
    );
}
