//! The soak's chaos, from one task so no two disturbances overlap: the worker
//! process is SIGKILLed every `kill_every` and started again at once, the policy
//! file is rewritten and both processes get SIGHUP every `reload_every` (policy A,
//! B, A, … and once, halfway, a file that does not parse), and the RSS of the
//! receiver and of the worker in service is read from `/proc/<pid>/status` every
//! `rss_every`.
//!
//! Every policy change is written to a temporary file and renamed over the policy
//! file, so a worker that starts meanwhile reads a whole file. The invalid file
//! stays in place for a hold time after both processes have refused it (decisions
//! made then must still carry the policy in force), and no worker is started in
//! that time: a worker starting on it would exit 2, as it should.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::{
    fleet::{LogCounts, Replica},
    ingest::proc_status_kib,
};
use offboard_core::{domain::JobState, store::SharedStore};

/// What the children log: the port and worker id, reloads, the job lines, warnings.
pub const LOG_FILTER: &str =
    "warn,offboard::cli::serve=info,offboard_core::worker=info,offboard_core::app=info";

/// A SIGHUP is sent to a worker no sooner than this after it became ready (its
/// handler is installed by a task spawned at start-up).
const SIGHUP_AFTER_READY: Duration = Duration::from_millis(500);

/// How long a process has to log its reload after a SIGHUP.
const RELOAD_LOGGED_WITHIN: Duration = Duration::from_secs(5);

/// How long a restarted worker has to answer `/readyz`.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// The soak's two valid policies, A and B: the same decisions (legal hold →
/// review; everyone else → deactivate now, records to the manager) under rule
/// names of their own, so every decision says which file made it.
pub fn policy(name: char) -> String {
    format!(
        r#"version = 1
# soak policy {name}
[defaults]
reassign_to = "manager"
fallback_owner = "{fallback}"
at = "now"

[[rules]]
name = "legal hold: a person decides ({name})"
when = {{ legal_hold = true }}
action = "review"

[[rules]]
name = "everyone else: deactivate now ({name})"
action = "deactivate"
"#,
        fallback = crate::fleet::FALLBACK_EMAIL,
    )
}

/// A policy file that must be refused (an unknown action on line 4).
pub const INVALID_POLICY: &str =
    "version = 1\n[[rules]]\nname = \"soak: not a policy\"\naction = \"explode\"\n";

/// Which process a sample or a log is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `serve --role receiver`, up for the whole soak.
    Receiver,
    /// `serve --role worker`, one incarnation per restart.
    Worker,
}

/// One RSS reading.
#[derive(Debug, Clone, Copy)]
pub struct RssSample {
    /// Seconds since the load started.
    pub at_secs: f64,
    /// Whose.
    pub role: Role,
    /// Seconds since that process became ready.
    pub up_secs: f64,
    /// `VmRSS`, KiB.
    pub kib: u64,
}

/// One SIGKILL of the worker.
#[derive(Debug, Clone)]
pub struct Kill {
    /// Jobs `running` in the store just before.
    pub running: u64,
    /// Spawn to `/readyz` 200 of the new worker, or `None` if it never was ready.
    pub restarted_in: Option<Duration>,
}

/// One SIGHUP round.
#[derive(Debug, Clone)]
pub struct Reload {
    /// When the signals were sent.
    pub sent_at: DateTime<Utc>,
    /// When both processes had logged their answer.
    pub logged_at: Option<DateTime<Utc>>,
    /// The version written (`None`: the invalid file).
    pub version: Option<String>,
    /// The receiver logged the expected line.
    pub receiver_logged: bool,
    /// The worker logged the expected line.
    pub worker_logged: bool,
    /// For the invalid file: when the valid file was put back.
    pub restored_at: Option<DateTime<Utc>>,
}

/// Something that went wrong with a process while the soak ran.
#[derive(Debug, Clone)]
pub struct Incident(pub String);

/// Everything the control task did and saw.
#[derive(Debug, Default)]
pub struct ControlReport {
    /// The SIGKILLs.
    pub kills: Vec<Kill>,
    /// The SIGHUP rounds, in order.
    pub reloads: Vec<Reload>,
    /// RSS readings.
    pub rss: Vec<RssSample>,
    /// Unexpected exits, restarts that failed, signals that could not be sent.
    pub incidents: Vec<Incident>,
    /// Log files of every process (stdout; stderr beside each).
    pub logs: Vec<(Role, PathBuf)>,
    /// The version of policy A (in force at the start) and B.
    pub versions: (String, String),
}

/// The timings of the chaos.
#[derive(Debug, Clone)]
pub struct Chaos {
    /// SIGKILL the worker this often (`None`: never).
    pub kill_every: Option<Duration>,
    /// SIGHUP this often (`None`: never).
    pub reload_every: Option<Duration>,
    /// Read RSS this often.
    pub rss_every: Duration,
    /// How long the invalid policy file stays in place once refused.
    pub invalid_hold: Duration,
}

/// The two service processes and what is needed to restart the worker.
pub struct Processes {
    /// The `offboard` binary.
    pub exe: PathBuf,
    /// The shared config file.
    pub config: PathBuf,
    /// `[policy] file`.
    pub policy_file: PathBuf,
    /// Where the logs go.
    pub log_dir: PathBuf,
    /// The receiver.
    pub receiver: Replica,
    /// The worker in service.
    pub worker: Replica,
    /// When the worker in service became ready.
    pub worker_ready: Instant,
    /// When the receiver became ready.
    pub receiver_ready: Instant,
    /// Worker incarnations so far (the first is 1).
    pub incarnations: usize,
    http: reqwest::Client,
}

impl Processes {
    /// Starts the receiver and the first worker, both ready; the policy file must
    /// already hold policy A.
    pub async fn start(
        exe: &Path,
        config: &Path,
        policy_file: &Path,
        log_dir: &Path,
    ) -> anyhow::Result<(Processes, Vec<(Role, PathBuf)>)> {
        let http = reqwest::Client::new();
        let receiver_log = log_dir.join("receiver.log");
        let mut receiver =
            Replica::spawn_logged(exe, config, "receiver", LOG_FILTER, &receiver_log)?;
        anyhow::ensure!(
            receiver.wait_ready(&http, READY_WITHIN).await,
            "the receiver did not become ready (see {})",
            receiver_log.display()
        );
        let receiver_ready = Instant::now();
        let worker_log = log_dir.join("worker-1.log");
        let mut worker = Replica::spawn_logged(exe, config, "worker", LOG_FILTER, &worker_log)?;
        anyhow::ensure!(
            worker.wait_ready(&http, READY_WITHIN).await,
            "the worker did not become ready (see {})",
            worker_log.display()
        );
        Ok((
            Processes {
                exe: exe.to_owned(),
                config: config.to_owned(),
                policy_file: policy_file.to_owned(),
                log_dir: log_dir.to_owned(),
                receiver,
                worker,
                worker_ready: Instant::now(),
                receiver_ready,
                incarnations: 1,
                http,
            },
            vec![(Role::Receiver, receiver_log), (Role::Worker, worker_log)],
        ))
    }

    /// SIGKILLs the worker and starts the next one; the new one's log path and
    /// how long it took to be ready (`None`: it never was).
    async fn restart_worker(&mut self) -> anyhow::Result<(PathBuf, Option<Duration>)> {
        self.worker.kill();
        self.incarnations += 1;
        let log = self
            .log_dir
            .join(format!("worker-{}.log", self.incarnations));
        let spawned = Instant::now();
        self.worker = Replica::spawn_logged(&self.exe, &self.config, "worker", LOG_FILTER, &log)?;
        let ready = self.worker.wait_ready(&self.http, READY_WITHIN).await;
        self.worker_ready = Instant::now();
        Ok((log, ready.then(|| spawned.elapsed())))
    }

    /// SIGTERMs both (worker first) and waits for each to exit; their statuses.
    pub async fn stop(
        &mut self,
        within: Duration,
    ) -> Vec<(Role, Option<std::process::ExitStatus>)> {
        let mut out = Vec::new();
        for (role, replica) in [
            (Role::Worker, &mut self.worker),
            (Role::Receiver, &mut self.receiver),
        ] {
            let _ = replica.signal("TERM");
            let status = replica.wait_exit(within).await;
            if status.is_none() {
                replica.kill();
            }
            out.push((role, status));
        }
        out
    }
}

/// Writes `text` to `path` through a temporary file and a rename.
fn replace_file(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("toml.new");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Waits until `replica`'s log counts satisfy `done` (bounded); whether they did.
async fn logged(replica: &Replica, done: impl Fn(LogCounts) -> bool) -> bool {
    let deadline = Instant::now() + RELOAD_LOGGED_WITHIN;
    while Instant::now() < deadline {
        if done(replica.log_counts()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done(replica.log_counts())
}

/// Runs the chaos until `stop`, then returns the processes (still running) and
/// what it did.
pub async fn run(
    mut procs: Processes,
    mut report: ControlReport,
    chaos: Chaos,
    store: SharedStore,
    started: Instant,
    stop: CancellationToken,
) -> (Processes, ControlReport) {
    let (a, b) = (policy('A'), policy('B'));
    let mut next_kill = chaos.kill_every.map(|d| started + d);
    let mut next_reload = chaos.reload_every.map(|d| started + d);
    let mut next_rss = started;
    let mut valid_reloads = 0usize;
    let mut invalid_done = false;
    let mut in_force_is_a = true;
    loop {
        if stop.is_cancelled() {
            break;
        }
        let now = Instant::now();
        if now >= next_rss {
            sample_rss(&procs, started, &mut report.rss);
            next_rss = now + chaos.rss_every;
        }
        if let Some(status) = procs.receiver.exited() {
            report
                .incidents
                .push(Incident(format!("the receiver exited by itself: {status}")));
            break;
        }
        if let Some(status) = procs.worker.exited() {
            report.incidents.push(Incident(format!(
                "worker {} exited by itself: {status}; starting another",
                procs.incarnations
            )));
            match procs.restart_worker().await {
                Ok((log, _)) => report.logs.push((Role::Worker, log)),
                Err(e) => {
                    report
                        .incidents
                        .push(Incident(format!("cannot start a worker: {e:#}")));
                    break;
                }
            }
        }
        if next_kill.is_some_and(|t| now >= t) {
            let running = store
                .count_by_state()
                .await
                .ok()
                .and_then(|c| c.get(&JobState::Running).copied())
                .unwrap_or(0);
            match procs.restart_worker().await {
                Ok((log, restarted_in)) => {
                    if restarted_in.is_none() {
                        report.incidents.push(Incident(format!(
                            "worker {} was not ready within {READY_WITHIN:?} of its start",
                            procs.incarnations
                        )));
                    }
                    report.logs.push((Role::Worker, log));
                    report.kills.push(Kill {
                        running,
                        restarted_in,
                    });
                }
                Err(e) => {
                    report
                        .incidents
                        .push(Incident(format!("cannot restart the worker: {e:#}")));
                    break;
                }
            }
            next_kill = chaos.kill_every.map(|d| Instant::now().max(now) + d);
            continue;
        }
        if next_reload.is_some_and(|t| now >= t) {
            let settle = procs.worker_ready + SIGHUP_AFTER_READY;
            if Instant::now() < settle {
                tokio::time::sleep_until(settle.into()).await;
            }
            // The second round is the invalid file (the first shows a real change).
            let invalid = !invalid_done && valid_reloads >= 1;
            let reload = if invalid {
                invalid_done = true;
                let keep = if in_force_is_a { &a } else { &b };
                invalid_round(&procs, keep, chaos.invalid_hold).await
            } else {
                let (text, name) = if in_force_is_a { (&b, 'B') } else { (&a, 'A') };
                let r = valid_round(&procs, text, name, &report.versions).await;
                in_force_is_a = !in_force_is_a;
                valid_reloads += 1;
                r
            };
            match reload {
                Ok(r) => report.reloads.push(r),
                Err(e) => report
                    .incidents
                    .push(Incident(format!("policy reload round: {e:#}"))),
            }
            next_reload = chaos.reload_every.map(|d| now + d);
            continue;
        }
        let mut wake = next_rss;
        for t in [next_kill, next_reload].into_iter().flatten() {
            wake = wake.min(t);
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    (procs, report)
}

fn sample_rss(procs: &Processes, started: Instant, into: &mut Vec<RssSample>) {
    let at_secs = started.elapsed().as_secs_f64();
    for (role, replica, ready) in [
        (Role::Receiver, &procs.receiver, procs.receiver_ready),
        (Role::Worker, &procs.worker, procs.worker_ready),
    ] {
        if let Some(kib) = proc_status_kib(replica.pid(), "VmRSS") {
            into.push(RssSample {
                at_secs,
                role,
                up_secs: ready.elapsed().as_secs_f64(),
                kib,
            });
        }
    }
}

/// Rewrites the policy file with `text` and SIGHUPs both processes; each must log
/// "policy reloaded".
async fn valid_round(
    procs: &Processes,
    text: &str,
    name: char,
    versions: &(String, String),
) -> anyhow::Result<Reload> {
    let before = (procs.receiver.log_counts(), procs.worker.log_counts());
    replace_file(&procs.policy_file, text)?;
    let sent_at = Utc::now();
    procs.receiver.signal("HUP")?;
    procs.worker.signal("HUP")?;
    let receiver_logged = logged(&procs.receiver, |c| c.reloaded > before.0.reloaded).await;
    let worker_logged = logged(&procs.worker, |c| c.reloaded > before.1.reloaded).await;
    Ok(Reload {
        sent_at,
        logged_at: (receiver_logged && worker_logged).then(Utc::now),
        version: Some(if name == 'A' {
            versions.0.clone()
        } else {
            versions.1.clone()
        }),
        receiver_logged,
        worker_logged,
        restored_at: None,
    })
}

/// Writes the invalid file, SIGHUPs both (each must log "policy reload refused"),
/// keeps it `hold`, then puts `keep` (the policy in force) back without a signal.
async fn invalid_round(procs: &Processes, keep: &str, hold: Duration) -> anyhow::Result<Reload> {
    let before = (procs.receiver.log_counts(), procs.worker.log_counts());
    replace_file(&procs.policy_file, INVALID_POLICY)?;
    let sent_at = Utc::now();
    let signalled = procs
        .receiver
        .signal("HUP")
        .and_then(|()| procs.worker.signal("HUP"));
    let (receiver_logged, worker_logged) = match signalled {
        Ok(()) => (
            logged(&procs.receiver, |c| c.refused > before.0.refused).await,
            logged(&procs.worker, |c| c.refused > before.1.refused).await,
        ),
        Err(_) => (false, false),
    };
    let logged_at = (receiver_logged && worker_logged).then(Utc::now);
    tokio::time::sleep(hold).await;
    // Put the policy in force back whatever happened: a worker restart needs it.
    replace_file(&procs.policy_file, keep)?;
    signalled?;
    Ok(Reload {
        sent_at,
        logged_at,
        version: None,
        receiver_logged,
        worker_logged,
        restored_at: Some(Utc::now()),
    })
}
