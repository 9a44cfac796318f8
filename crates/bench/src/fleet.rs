//! A fleet of `offboard` processes against an in-process Sell sandbox: what the
//! scaling benchmark (`offboard bench scaling`) and the multi-replica tests
//! (`tests/replicas.rs`) both need, kept in one place so the test checks the setup
//! the benchmark measures.
//!
//! - [`leavers_seed`]: an organisation of `n` leavers with a few records each, under
//!   a handful of active managers; [`leaver_event`] is the canonical event for one.
//! - [`FleetConfig`]: the config file every replica of one fleet shares (secrets in
//!   files next to it); each process binds a port of its own choosing
//!   (`OFFBOARD__SERVER__LISTEN=127.0.0.1:0`).
//! - [`Replica`]: one `offboard serve --role …` child process; it learns its
//!   port and the worker's lease-owner id from the log, and is SIGKILLed when
//!   dropped. [`Replica::spawn_logged`] also keeps everything the child writes in
//!   files and counts its policy reloads and panics as they are logged (the soak).
//! - [`play_admin`]: the Sell admin, who deactivates each user an offboard task
//!   asks about, as soon as the task appears.

use std::{
    collections::HashSet,
    fs::File,
    io::{BufRead, BufReader, LineWriter, Write},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use offboard_core::crm::{UserRole, UserStatus};
use offboard_sandbox::{Contact, Deal, Lead, SandboxState, Seed, Task, User};

/// The Sell admin of a [`leavers_seed`] org (receives the offboard tasks).
pub const ADMIN_ID: i64 = 1;
/// The admin's e-mail (`[crm] admin_email`).
pub const ADMIN_EMAIL: &str = "admin@example.com";
/// The fallback owner's e-mail.
pub const FALLBACK_EMAIL: &str = "sales-ops@example.com";
/// Managers in a [`leavers_seed`] org; leaver `i` reports to manager `i % MANAGERS`.
pub const MANAGERS: usize = 8;
const FIRST_MANAGER: i64 = 10;
const FIRST_LEAVER: i64 = 1000;
/// An open stage and a won stage of [`Seed::default_stages`].
const OPEN_STAGE: i64 = 2;
const WON_STAGE: i64 = 3;

/// The CRM id of leaver `i`.
pub fn leaver_id(i: usize) -> i64 {
    FIRST_LEAVER + i as i64
}

/// The e-mail of leaver `i`.
pub fn leaver_email(i: usize) -> String {
    format!("leaver{i:04}@example.com")
}

/// The CRM id of leaver `i`'s manager.
pub fn manager_of(i: usize) -> i64 {
    FIRST_MANAGER + (i % MANAGERS) as i64
}

fn manager_email(m: i64) -> String {
    format!("manager{m}@example.com")
}

/// An organisation with an admin, a fallback owner, [`MANAGERS`] managers and `n`
/// leavers. Each leaver owns `per_kind` OPEN leads, contacts, deals and tasks, plus
/// one won deal and one completed task that must stay with them.
pub fn leavers_seed(n: usize, per_kind: usize) -> Seed {
    let user = |id: i64, name: String, email: String, role, reports_to| User {
        id,
        name,
        email,
        status: UserStatus::Active,
        role,
        confirmed: true,
        invited: false,
        reports_to,
        team_name: Some("Sales".into()),
        zendesk_user_id: None,
        phone_number: None,
        timezone: "UTC".into(),
        created_at: SEED_TIME.into(),
        updated_at: SEED_TIME.into(),
        deleted_at: None,
    };
    let mut seed = Seed {
        stages: Seed::default_stages(),
        ..Seed::default()
    };
    seed.users.push(user(
        ADMIN_ID,
        "Avery Admin".into(),
        ADMIN_EMAIL.into(),
        UserRole::Admin,
        None,
    ));
    seed.users.push(user(
        2,
        "Sales Ops".into(),
        FALLBACK_EMAIL.into(),
        UserRole::User,
        Some(ADMIN_ID),
    ));
    for m in 0..MANAGERS as i64 {
        let id = FIRST_MANAGER + m;
        seed.users.push(user(
            id,
            format!("Manager {id}"),
            manager_email(id),
            UserRole::User,
            Some(ADMIN_ID),
        ));
    }
    let mut next_record = 100_000;
    let mut next = || {
        next_record += 1;
        next_record
    };
    for i in 0..n {
        let id = leaver_id(i);
        seed.users.push(user(
            id,
            format!("Leaver {i:04}"),
            leaver_email(i),
            UserRole::User,
            Some(manager_of(i)),
        ));
        for _ in 0..per_kind {
            seed.leads.push(lead(next(), id));
            seed.contacts.push(contact(next(), id));
            seed.deals.push(deal(next(), id, OPEN_STAGE));
            seed.tasks.push(task(next(), id, false));
        }
        seed.deals.push(deal(next(), id, WON_STAGE));
        seed.tasks.push(task(next(), id, true));
    }
    seed
}

const SEED_TIME: &str = "2026-01-05T09:00:00Z";

fn lead(id: i64, owner_id: i64) -> Lead {
    Lead {
        id,
        owner_id,
        creator_id: None,
        first_name: None,
        last_name: format!("Lead {id}"),
        organization_name: None,
        title: None,
        status: "New".into(),
        email: None,
        tags: vec![],
        created_at: SEED_TIME.into(),
        updated_at: SEED_TIME.into(),
    }
}

fn contact(id: i64, owner_id: i64) -> Contact {
    Contact {
        id,
        owner_id,
        creator_id: None,
        is_organization: false,
        contact_id: None,
        name: format!("Contact {id}"),
        first_name: None,
        last_name: None,
        email: None,
        customer_status: "none".into(),
        tags: vec![],
        created_at: SEED_TIME.into(),
        updated_at: SEED_TIME.into(),
    }
}

fn deal(id: i64, owner_id: i64, stage_id: i64) -> Deal {
    Deal {
        id,
        name: format!("Deal {id}"),
        owner_id,
        creator_id: None,
        contact_id: None,
        stage_id,
        value: "0.00".into(),
        currency: "USD".into(),
        hot: false,
        last_stage_change_at: None,
        created_at: SEED_TIME.into(),
        updated_at: SEED_TIME.into(),
    }
}

fn task(id: i64, owner_id: i64, completed: bool) -> Task {
    Task {
        id,
        owner_id,
        creator_id: None,
        resource_type: None,
        resource_id: None,
        completed,
        completed_at: completed.then(|| SEED_TIME.to_owned()),
        due_date: None,
        remind_at: None,
        content: format!("Call back {id}"),
        created_at: SEED_TIME.into(),
        updated_at: SEED_TIME.into(),
    }
}

/// The canonical termination event of leaver `i` (id `evt_leaver_<i>`): voluntary,
/// effective now, manager named so records go to them.
pub fn leaver_event(i: usize) -> Value {
    json!({
        "id": format!("evt_leaver_{i:04}"),
        "type": "employee.terminated",
        "employee": {
            "id": format!("E{i:04}"),
            "email": leaver_email(i),
            "name": format!("Leaver {i:04}"),
            "manager_email": manager_email(manager_of(i)),
        },
        "termination": { "kind": "voluntary", "rehire_eligible": true },
        "legal_hold": false
    })
}

/// The policy a fleet runs: deactivate everyone now, records to the manager.
pub const POLICY: &str = r#"version = 1
[defaults]
reassign_to = "manager"
fallback_owner = "sales-ops@example.com"
at = "now"
[[rules]]
name = "everyone: deactivate"
action = "deactivate"
"#;

/// The webhook secret of the fleet's `hr` source (standard_webhooks).
pub const WEBHOOK_SECRET: &str = "whsec_cmVwbGljYXMtZmxlZXQtc2VjcmV0";
/// The admin API token of the fleet.
pub const ADMIN_TOKEN: &str = "fleet-admin-token";
/// The Sell token of the fleet (the sandbox accepts only this one).
pub const SELL_TOKEN: &str = "fleet-sell-token";

/// What the shared config file of a fleet says.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// `postgres://…` (with its search_path) or `sqlite://…`.
    pub store_url: String,
    /// The sandbox's base URL.
    pub sell_base_url: String,
    /// `[crm] requests_per_second` (the shared budget).
    pub requests_per_second: u32,
    /// `[crm] max_in_flight` (per process).
    pub max_in_flight: usize,
    /// `[worker] concurrency` (jobs per process).
    pub concurrency: usize,
    /// `[worker] lease_secs`.
    pub lease_secs: u64,
    /// `[worker] poll_interval_ms` (the fallback; PostgreSQL wakes on NOTIFY).
    pub poll_interval_ms: u64,
}

impl FleetConfig {
    /// Writes the config, the policy and the secrets into `dir`; returns the
    /// config's path. `server.listen` is a placeholder: every [`Replica`] sets its
    /// own port through `OFFBOARD__SERVER__LISTEN`.
    pub fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::write(dir.join("webhook-secret"), WEBHOOK_SECRET)?;
        std::fs::write(dir.join("admin-token"), ADMIN_TOKEN)?;
        std::fs::write(dir.join("sell-token"), SELL_TOKEN)?;
        std::fs::write(dir.join("policy.toml"), POLICY)?;
        let d = dir.display();
        let config = format!(
            r#"[server]
listen = "127.0.0.1:0"
[store]
url = "{store}"
[crm]
base_url = "{sell}"
token_env = ""
token_file = "{d}/sell-token"
admin_email = "{ADMIN_EMAIL}"
requests_per_second = {rps}
max_in_flight = {in_flight}
timeout_secs = 10
[[sources]]
name = "hr"
scheme = "standard_webhooks"
secrets_file = "{d}/webhook-secret"
[policy]
file = "{d}/policy.toml"
[admin]
token_env = ""
token_file = "{d}/admin-token"
[safety]
max_deletions_per_hour = 100000
max_offboardings_per_hour = 100000
[worker]
lease_secs = {lease}
verify_interval_secs = 1
poll_interval_ms = {poll}
concurrency = {concurrency}
"#,
            store = self.store_url,
            sell = self.sell_base_url,
            rps = self.requests_per_second,
            in_flight = self.max_in_flight,
            lease = self.lease_secs,
            poll = self.poll_interval_ms,
            concurrency = self.concurrency,
        );
        let path = dir.join("offboard.toml");
        std::fs::write(&path, config)?;
        Ok(path)
    }
}

/// One `offboard serve` child process. Dropping it SIGKILLs it.
#[derive(Debug)]
pub struct Replica {
    child: Child,
    /// The port it serves `/healthz`, `/readyz`, `/metrics` (and, as a receiver,
    /// webhooks and the admin API) on; 0 until [`wait_ready`](Self::wait_ready)
    /// has read it from the child's log.
    pub port: u16,
    announced: Arc<Mutex<Announced>>,
    /// The thread copying the child's stdout (joined once it has exited).
    drained: Option<std::thread::JoinHandle<()>>,
}

/// What the child's log said about itself.
#[derive(Debug, Default)]
struct Announced {
    port: Option<u16>,
    worker_id: Option<String>,
    /// "policy reloaded" lines (a SIGHUP with a valid file).
    reloaded: usize,
    /// "policy reload refused" lines (a SIGHUP with an invalid file).
    refused: usize,
    /// Lines that say "panicked" (offboard logs every panic as one).
    panics: usize,
}

/// What a [`Replica`]'s log has said so far (see [`Replica::log_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogCounts {
    /// "policy reloaded" lines.
    pub reloaded: usize,
    /// "policy reload refused" lines.
    pub refused: usize,
    /// Lines that say "panicked".
    pub panics: usize,
}

/// The log filter [`Replica::spawn`] gives its children: the port and the
/// worker's id (info), everything else at warnings.
pub const FLEET_LOG: &str = "warn,offboard::cli::serve=info,offboard_core::worker=info";

impl Replica {
    /// Starts `exe serve --config CONFIG --role ROLE` on a port the child picks
    /// itself (it logs the address it bound), so two children never race for
    /// a port probed in advance.
    pub fn spawn(exe: &Path, config: &Path, role: &str) -> std::io::Result<Replica> {
        Self::start(exe, config, role, FLEET_LOG, None)
    }

    /// [`spawn`](Self::spawn) with the log filter `log_filter` (`OFFBOARD_LOG`),
    /// keeping every line the child writes: stdout in `log`, stderr next to it
    /// (`log` with the extension `stderr`). Both are complete once the child has
    /// exited and [`kill`](Self::kill) or [`wait_exit`](Self::wait_exit) returned.
    pub fn spawn_logged(
        exe: &Path,
        config: &Path,
        role: &str,
        log_filter: &str,
        log: &Path,
    ) -> std::io::Result<Replica> {
        Self::start(exe, config, role, log_filter, Some(log))
    }

    fn start(
        exe: &Path,
        config: &Path,
        role: &str,
        log_filter: &str,
        log: Option<&Path>,
    ) -> std::io::Result<Replica> {
        let stderr = match log {
            Some(path) => Stdio::from(File::create(path.with_extension("stderr"))?),
            None => Stdio::inherit(),
        };
        let mut sink = match log {
            Some(path) => Some(LineWriter::new(File::create(path)?)),
            None => None,
        };
        let mut child = Command::new(exe)
            .args(["serve", "--log-format", "json", "--role", role, "--config"])
            .arg(config)
            .env("OFFBOARD__SERVER__LISTEN", "127.0.0.1:0")
            // "offboard listening" (info) gives the port, "worker started" (info)
            // the lease owner; the rest is what the caller asked for.
            .env("OFFBOARD_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let announced = Arc::new(Mutex::new(Announced::default()));
        let mut drained = None;
        if let Some(out) = child.stdout.take() {
            let slot = announced.clone();
            // Drains the pipe for the child's whole life (a full pipe would block it).
            drained = Some(std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if let Some(sink) = sink.as_mut() {
                        let _ = writeln!(sink, "{line}");
                    }
                    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
                    if line.contains("panicked") {
                        slot.panics += 1;
                    }
                    if line.contains("policy reload refused") {
                        slot.refused += 1;
                    } else if line.contains("policy reloaded") {
                        slot.reloaded += 1;
                    }
                    let Ok(v) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    let field = |name: &str| {
                        v.pointer(&format!("/fields/{name}"))
                            .or_else(|| v.get(name))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    };
                    if line.contains("offboard listening") {
                        slot.port = field("addr")
                            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                            .map(|a| a.port());
                    } else if line.contains("worker started") {
                        slot.worker_id = field("worker");
                    }
                }
                if let Some(mut sink) = sink {
                    let _ = sink.flush();
                }
            }));
        }
        Ok(Replica {
            child,
            port: 0,
            announced,
            drained,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What its log has said so far.
    pub fn log_counts(&self) -> LogCounts {
        let a = self.announced.lock().unwrap_or_else(|p| p.into_inner());
        LogCounts {
            reloaded: a.reloaded,
            refused: a.refused,
            panics: a.panics,
        }
    }

    /// Its exit status, if it has exited (without waiting).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `signal` (`HUP`, `TERM`, …) with kill(1), which keeps the crate free
    /// of a libc binding for the few signals the benchmarks send.
    pub fn signal(&self, signal: &str) -> std::io::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "kill -{signal} {} failed: {status}",
                self.pid()
            )))
        }
    }

    /// Waits up to `within` for the child to exit (after a signal); its status,
    /// or `None` if it is still running. Once it returns a status, the log files
    /// are complete.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                self.finish_log();
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Joins the thread that copies stdout (the child has exited: its pipe closes).
    fn finish_log(&mut self) {
        if let Some(t) = self.drained.take() {
            let _ = t.join();
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until the child has said which port it serves on and `/readyz`
    /// answers 200 there; false when it exits first or time runs out.
    pub async fn wait_ready(&mut self, http: &reqwest::Client, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if self.port == 0 {
                let announced = self.announced.lock().unwrap_or_else(|p| p.into_inner());
                self.port = announced.port.unwrap_or(0);
            }
            if self.port != 0 {
                let ready = http.get(format!("{}/readyz", self.url())).send().await;
                if ready.is_ok_and(|r| r.status() == 200) {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// The worker's lease-owner id, once its log said it (workers only).
    pub async fn worker_id(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(id) = self
                .announced
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .worker_id
                .clone()
            {
                return Some(id);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, and reap; the log files are complete when it returns.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.finish_log();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Plays the Sell admin until `stop`: every `every`, looks for offboard tasks
/// (owned by [`ADMIN_ID`], content `offboard: please …(id N)…`) and deactivates
/// user N, once. Returns the ids it deactivated.
pub async fn play_admin(
    state: SandboxState,
    every: Duration,
    stop: CancellationToken,
) -> HashSet<i64> {
    let mut done = HashSet::new();
    loop {
        let snapshot = state.snapshot().await;
        for task in snapshot.tasks.iter().filter(|t| t.owner_id == ADMIN_ID) {
            let Some(user) = user_named_in(&task.content) else {
                continue;
            };
            if done.insert(user) {
                let _ = state.deactivate(user).await;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return done,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// The N of `… (id N) …` in an offboard admin task.
pub fn user_named_in(content: &str) -> Option<i64> {
    if !content.starts_with("offboard: please") {
        return None;
    }
    let rest = &content[content.find("(id ")? + 4..];
    rest[..rest.find(')')?].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_is_valid_and_sized() {
        let seed = leavers_seed(30, 2);
        assert!(seed.validate().is_ok());
        assert_eq!(seed.users.len(), 2 + MANAGERS + 30);
        assert_eq!(seed.leads.len(), 60);
        assert_eq!(seed.deals.len(), 30 * 3);
        assert_eq!(seed.tasks.len(), 30 * 3);
    }

    #[test]
    fn events_parse() {
        let e = offboard_core::domain::OffboardingEvent::from_json(&leaver_event(7), None);
        assert!(e.is_ok(), "{e:?}");
    }

    #[test]
    fn admin_tasks_name_their_user() {
        let c = "offboard: please DEACTIVATE the Sell user Leaver 0001 <leaver0001@example.com> (id 1001) in Settings";
        assert_eq!(user_named_in(c), Some(1001));
        assert_eq!(user_named_in("Call back (id 3)"), None);
    }
}
