//! What the soak checks at the end, each a named pass/fail with its figures:
//! the answers, the store against the answers (nothing accepted lost, nothing
//! hostile stored), every job where its leaver's kind says it should be, the CRM
//! agreeing, decisions following the policy reloads, RSS drift, panics, and the
//! processes themselves.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::PathBuf,
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    control::{ControlReport, Reload, Role, RssSample},
    traffic::{Hostile, Kind, LeaverKind, Sent},
};
use crate::fleet;
use offboard_core::{
    crm::UserStatus,
    domain::JobState,
    store::{Job, JobDetail, JobFilter, SharedStore},
};
use offboard_sandbox::SandboxState;

/// One line of the verdict.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Whether it held.
    pub ok: bool,
    /// The figures behind it.
    pub detail: String,
}

fn check(name: &'static str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok,
        detail: detail.into(),
    }
}

/// Up to three examples, for a failing check's detail.
fn examples<T: std::fmt::Debug>(items: &[T]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = items.iter().take(3).map(|i| format!("{i:?}")).collect();
    format!(" (e.g. {})", shown.join(", "))
}

/// Every job the store holds, with its event, checkpoints and audit trail.
pub async fn load_jobs(store: &SharedStore) -> anyhow::Result<Vec<JobDetail>> {
    let mut jobs: Vec<Job> = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_jobs(&JobFilter {
                limit: Some(500),
                before: before.clone(),
                ..Default::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        before = Some(last.id.clone());
        jobs.extend(page);
    }
    let mut details = Vec::with_capacity(jobs.len());
    for job in jobs {
        match store.get_job(&job.id).await? {
            Some(d) => details.push(d),
            None => anyhow::bail!("job {} listed but not found", job.id),
        }
    }
    details.sort_by(|a, b| a.job.id.cmp(&b.job.id));
    Ok(details)
}

/// The leaver index in `soak-{run}-{i}`.
fn leaver_of(run: &str, event_id: &str) -> Option<usize> {
    event_id.strip_prefix(&format!("soak-{run}-"))?.parse().ok()
}

/// Webhook figures for the summary.
#[derive(Debug, Default)]
pub struct Answers {
    /// Posts sent.
    pub sent: usize,
    /// Genuine posts (new and retries) answered 2xx.
    pub accepted: usize,
    /// …of which 202 new.
    pub new: usize,
    /// …of which 200 duplicate.
    pub duplicates: usize,
    /// Hostile posts, per kind: (sent, answered as expected).
    pub hostile: BTreeMap<Hostile, (usize, usize)>,
    /// Posts that got no answer.
    pub unanswered: usize,
}

/// Did every post get the answer it should?
pub fn answers(sent: &[Sent]) -> (Answers, Vec<Check>) {
    let mut a = Answers {
        sent: sent.len(),
        ..Answers::default()
    };
    let mut wrong_genuine = Vec::new();
    let mut wrong_hostile = Vec::new();
    let mut new_per_id: HashMap<&str, usize> = HashMap::new();
    for s in sent {
        if s.status.is_none() {
            a.unanswered += 1;
        }
        match &s.kind {
            Kind::New { .. } | Kind::Retry { .. } => {
                if s.accepted() {
                    a.accepted += 1;
                    if s.code.as_deref() == Some("duplicate") {
                        a.duplicates += 1;
                    } else {
                        a.new += 1;
                        *new_per_id.entry(&s.event_id).or_default() += 1;
                    }
                } else {
                    wrong_genuine.push(format!(
                        "#{} {}: {:?} {:?}{}",
                        s.n,
                        s.event_id,
                        s.status,
                        s.code,
                        s.error.as_deref().unwrap_or("")
                    ));
                }
            }
            Kind::Hostile(h) => {
                let e = a.hostile.entry(*h).or_default();
                e.0 += 1;
                if s.status == Some(h.expected_status()) {
                    e.1 += 1;
                } else {
                    wrong_hostile.push(format!(
                        "#{} {}: {:?} {:?} (want {})",
                        s.n,
                        h.label(),
                        s.status,
                        s.code,
                        h.expected_status()
                    ));
                }
            }
        }
    }
    let twice: Vec<&&str> = new_per_id
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    let hostile_sent: usize = a.hostile.values().map(|v| v.0).sum();
    let checks = vec![
        check(
            "every genuine webhook answered 2xx",
            wrong_genuine.is_empty() && twice.is_empty(),
            format!(
                "{} of {} (202 new {}, 200 duplicate {}){}{}",
                a.accepted,
                a.accepted + wrong_genuine.len(),
                a.new,
                a.duplicates,
                examples(&wrong_genuine),
                if twice.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} ids answered 202 twice{}",
                        twice.len(),
                        examples(&twice)
                    )
                }
            ),
        ),
        check(
            "every hostile webhook got its 4xx",
            wrong_hostile.is_empty(),
            format!(
                "{} of {hostile_sent}: {}{}",
                hostile_sent - wrong_hostile.len(),
                a.hostile
                    .iter()
                    .map(|(h, (n, ok))| format!("{} {ok}/{n} → {}", h.label(), h.expected_status()))
                    .collect::<Vec<_>>()
                    .join(", "),
                examples(&wrong_hostile)
            ),
        ),
    ];
    (a, checks)
}

/// Store figures for the summary.
#[derive(Debug, Default)]
pub struct Stored {
    /// Distinct event ids answered 2xx.
    pub accepted_ids: usize,
    /// Jobs stored (offboardings; follow-ups would have a parent).
    pub jobs: usize,
    /// Accepted ids without a job.
    pub lost: usize,
}

/// Is every accepted event stored once, and nothing else?
pub fn store_matches(sent: &[Sent], jobs: &[JobDetail]) -> (Stored, Vec<Check>) {
    let accepted: HashSet<&str> = sent
        .iter()
        .filter(|s| s.accepted())
        .map(|s| s.event_id.as_str())
        .collect();
    let unanswered: HashSet<&str> = sent
        .iter()
        .filter(|s| s.status.is_none() && !matches!(s.kind, Kind::Hostile(_)))
        .map(|s| s.event_id.as_str())
        .collect();
    let mut per_id: HashMap<&str, Vec<&JobDetail>> = HashMap::new();
    for j in jobs.iter().filter(|j| j.job.parent_id.is_none()) {
        per_id.entry(j.job.event_id.as_str()).or_default().push(j);
    }
    let lost: Vec<&&str> = accepted
        .iter()
        .filter(|id| !per_id.contains_key(**id))
        .collect();
    let repeated: Vec<&&str> = per_id
        .iter()
        .filter(|(_, js)| js.len() > 1)
        .map(|(id, _)| id)
        .collect();
    let unexplained: Vec<&&str> = per_id
        .keys()
        .filter(|id| !accepted.contains(**id) && !unanswered.contains(**id))
        .collect();
    // Hostile posts: nothing under their own ids or e-mails; a conflicting
    // body did not replace the stored one.
    let mut hostile_stored = Vec::new();
    for s in sent {
        let Kind::Hostile(h) = s.kind else { continue };
        let by_email = jobs
            .iter()
            .any(|j| j.job.event.employee.email.as_str() == s.email);
        let stored_under_id = per_id.get(s.event_id.as_str());
        let wrong = match h {
            Hostile::IdConflict => {
                by_email
                    || stored_under_id.is_some_and(|js| {
                        js.iter()
                            .any(|j| j.job.event.employee.email.as_str() == s.email)
                    })
            }
            _ => by_email || stored_under_id.is_some(),
        };
        if wrong {
            hostile_stored.push(format!("#{} {}", s.n, h.label()));
        }
    }
    let figures = Stored {
        accepted_ids: accepted.len(),
        jobs: per_id.values().map(Vec::len).sum(),
        lost: lost.len(),
    };
    let checks = vec![
        check(
            "no accepted event lost, each stored once",
            lost.is_empty() && repeated.is_empty(),
            format!(
                "{} accepted ids, {} jobs; lost {}{}, stored twice {}{}",
                figures.accepted_ids,
                figures.jobs,
                lost.len(),
                examples(&lost),
                repeated.len(),
                examples(&repeated)
            ),
        ),
        check(
            "hostile webhooks stored nothing",
            hostile_stored.is_empty() && unexplained.is_empty(),
            format!(
                "{} hostile stored{}; {} jobs without a 2xx{}",
                hostile_stored.len(),
                examples(&hostile_stored),
                unexplained.len(),
                examples(&unexplained)
            ),
        ),
    ];
    (figures, checks)
}

/// Where the jobs ended.
#[derive(Debug, Default)]
pub struct States {
    /// Jobs per final state.
    pub by_state: BTreeMap<&'static str, usize>,
    /// Jobs per leaver kind and final state.
    pub by_kind: BTreeMap<(&'static str, &'static str), usize>,
    /// Jobs still waiting out a retry's backoff after a CRM fault when the drain ended.
    pub retrying: usize,
    /// Why the first few of them wait (`last_error`, consecutive failures).
    pub retrying_why: Vec<String>,
    /// Stored → `succeeded` (the job's `created_at` to its last `updated_at`) of
    /// every job that succeeded, sorted.
    pub to_success: Vec<Duration>,
    /// Runs that never ended: claims without a `run.ended` audit entry (the
    /// worker was SIGKILLed during them).
    pub cut_runs: u64,
    /// Jobs with at least one such run.
    pub cut_jobs: usize,
}

fn outcome_result(d: &JobDetail) -> Option<&str> {
    d.audit
        .iter()
        .rev()
        .find(|e| e.kind == "outcome")
        .and_then(|e| e.detail.get("result"))
        .and_then(Value::as_str)
}

/// Is every job where its leaver's kind says? `drained_at`: when the drain ended.
pub fn states(run: &str, jobs: &[JobDetail], drained_at: DateTime<Utc>) -> (States, Vec<Check>) {
    let mut s = States::default();
    let mut wrong = Vec::new();
    let mut stuck = Vec::new();
    for d in jobs {
        let job = &d.job;
        *s.by_state.entry(job.state.as_str()).or_default() += 1;
        if job.state == JobState::Succeeded {
            s.to_success.push(
                (job.updated_at - job.created_at)
                    .to_std()
                    .unwrap_or_default(),
            );
        }
        let ended = d.audit.iter().filter(|e| e.kind == "run.ended").count() as u64;
        let cut = u64::from(job.attempt).saturating_sub(ended);
        if cut > 0 {
            s.cut_runs += cut;
            s.cut_jobs += 1;
        }
        let Some(i) = leaver_of(run, &job.event_id) else {
            wrong.push(format!("{}: not a soak event", job.event_id));
            continue;
        };
        let kind = LeaverKind::of(i);
        *s.by_kind
            .entry((kind.label(), job.state.as_str()))
            .or_default() += 1;
        // Waiting out a retry's backoff (failures > 0) past the drain: where a job
        // with a CRM fault should be, and not a thing waiting longer would change.
        let retrying =
            job.state == JobState::Scheduled && job.failures > 0 && job.run_at > drained_at;
        let ok = match kind {
            LeaverKind::Normal => {
                (job.state == JobState::Succeeded && outcome_result(d) == Some("done")) || retrying
            }
            LeaverKind::NotInCrm => {
                (job.state == JobState::Succeeded && outcome_result(d) == Some("no CRM user"))
                    || retrying
            }
            LeaverKind::LegalHold => {
                job.state == JobState::NeedsReview && job.action.as_deref() == Some("review")
            }
        };
        if retrying && ok {
            s.retrying += 1;
            if s.retrying_why.len() < 3 {
                s.retrying_why.push(format!(
                    "{} failures, next run {}: {}",
                    job.failures,
                    job.run_at.format("%H:%M:%S"),
                    job.last_error.as_deref().unwrap_or("?")
                ));
            }
        }
        if job.state == JobState::Running {
            stuck.push(format!(
                "{} lease until {:?}",
                job.event_id, job.lease_expires_at
            ));
        }
        if !ok {
            wrong.push(format!(
                "{} ({}): {} {:?} {:?}",
                job.event_id,
                kind.label(),
                job.state.as_str(),
                outcome_result(d),
                job.last_error
            ));
        }
    }
    s.to_success.sort();
    let checks = vec![
        check(
            "every job where its leaver's kind says",
            wrong.is_empty(),
            format!(
                "{} of {} (normal → succeeded, legal hold → needs_review, not in the CRM → succeeded \"no CRM user\"; {} still in a retry's backoff after a CRM fault){}",
                jobs.len() - wrong.len(),
                jobs.len(),
                s.retrying,
                examples(&wrong)
            ),
        ),
        check(
            "no job left running (expired lease or not)",
            stuck.is_empty(),
            format!("{} running{}", stuck.len(), examples(&stuck)),
        ),
    ];
    (s, checks)
}

/// Does the CRM show what the jobs say? Normal leavers that succeeded are
/// inactive, own no open record and kept their closed ones, with exactly one admin
/// task; legal-hold leavers are untouched; nobody got two tasks.
pub async fn crm(run: &str, jobs: &[JobDetail], sandbox: &SandboxState, per_kind: usize) -> Check {
    let snapshot = sandbox.snapshot().await;
    let mut tasks: HashMap<i64, usize> = HashMap::new();
    for t in snapshot
        .tasks
        .iter()
        .filter(|t| t.owner_id == fleet::ADMIN_ID)
    {
        if let Some(user) = fleet::user_named_in(&t.content) {
            *tasks.entry(user).or_default() += 1;
        }
    }
    let mut wrong = Vec::new();
    let mut checked = 0;
    for d in jobs {
        let Some(i) = leaver_of(run, &d.job.event_id) else {
            continue;
        };
        let id = fleet::leaver_id(i);
        let Some(user) = sandbox.user(id).await else {
            wrong.push(format!("leaver {i}: not in the sandbox"));
            continue;
        };
        let counts = sandbox.open_counts(id).await;
        let open = counts.leads.open + counts.contacts.open + counts.deals.open + counts.tasks.open;
        let closed = counts.deals.closed + counts.tasks.closed;
        let n_tasks = tasks.get(&id).copied().unwrap_or(0);
        let problem = match (LeaverKind::of(i), d.job.state) {
            (LeaverKind::Normal, JobState::Succeeded) => {
                checked += 1;
                (user.status != UserStatus::Inactive || open != 0 || closed != 2 || n_tasks != 1)
                    .then(|| {
                        format!(
                            "{:?}, {open} open, {closed} closed, {n_tasks} admin tasks",
                            user.status
                        )
                    })
            }
            (LeaverKind::LegalHold, _) => {
                checked += 1;
                (user.status != UserStatus::Active || open != 4 * per_kind || n_tasks != 0)
                    .then(|| format!("{:?}, {open} open, {n_tasks} admin tasks", user.status))
            }
            _ => (n_tasks > 1).then(|| format!("{n_tasks} admin tasks")),
        };
        if let Some(p) = problem {
            wrong.push(format!("leaver {i} ({}): {p}", LeaverKind::of(i).label()));
        }
    }
    let twice = tasks.values().filter(|n| **n > 1).count();
    check(
        "the CRM agrees with every job",
        wrong.is_empty() && twice == 0,
        format!(
            "{checked} leavers checked: succeeded ones inactive with 0 open records, 2 closed kept and 1 admin task; legal holds untouched; {} wrong{}; {twice} users with more than one task",
            wrong.len(),
            examples(&wrong)
        ),
    )
}

/// Which policy decided, per version.
#[derive(Debug, Default)]
pub struct Decisions {
    /// Decisions per policy version.
    pub by_version: BTreeMap<String, usize>,
    /// Decisions made within a reload's moment (from two seconds before its
    /// signal to two seconds after its log line), not attributed to either side.
    pub at_a_reload: usize,
    /// Decisions made while the invalid file was in place.
    pub during_invalid: usize,
}

/// Does every decision carry the policy in force when it was made?
pub fn decisions(
    jobs: &[JobDetail],
    reloads: &[Reload],
    versions: &(String, String),
) -> (Decisions, Vec<Check>) {
    const MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(2);
    let mut out = Decisions::default();
    let mut wrong = Vec::new();
    // (from, version in force from then on)
    let mut in_force: Vec<(DateTime<Utc>, &str)> = vec![(DateTime::<Utc>::MIN_UTC, &versions.0)];
    for r in reloads {
        if let Some(v) = &r.version {
            in_force.push((r.sent_at, v));
        }
    }
    for d in jobs {
        for e in d.audit.iter().filter(|e| e.kind == "decision") {
            let Some(version) = e.detail.get("policy_version").and_then(Value::as_str) else {
                wrong.push(format!("{}: decision without a version", d.job.event_id));
                continue;
            };
            *out.by_version.entry(version.to_owned()).or_default() += 1;
            // The invalid file's round is no boundary: the version may not change.
            let near_reload = reloads.iter().filter(|r| r.version.is_some()).any(|r| {
                let end = r
                    .logged_at
                    .unwrap_or(r.sent_at + chrono::TimeDelta::seconds(5));
                e.at >= r.sent_at - MARGIN && e.at <= end + MARGIN
            });
            if reloads.iter().any(|r| {
                r.version.is_none()
                    && r.restored_at
                        .is_some_and(|end| e.at >= r.sent_at && e.at <= end)
            }) {
                out.during_invalid += 1;
            }
            if near_reload {
                out.at_a_reload += 1;
                if version != versions.0 && version != versions.1 {
                    wrong.push(format!("{}: version {version}", d.job.event_id));
                }
                continue;
            }
            let expected = in_force
                .iter()
                .rev()
                .find(|(from, _)| *from <= e.at)
                .map_or(versions.0.as_str(), |(_, v)| *v);
            if version != expected {
                wrong.push(format!(
                    "{} decided at {} with {version}, {expected} in force",
                    d.job.event_id, e.at
                ));
            }
        }
    }
    let valid = reloads.iter().filter(|r| r.version.is_some()).count();
    let invalid = reloads.len() - valid;
    let both_used =
        out.by_version.contains_key(&versions.0) && out.by_version.contains_key(&versions.1);
    let checks = vec![
        check(
            "policy reloads answered in every process's log",
            reloads.iter().all(|r| r.receiver_logged && r.worker_logged),
            format!(
                "{valid} valid SIGHUPs (\"policy reloaded\"), {invalid} with an invalid file (\"policy reload refused\"); {} not logged by both",
                reloads
                    .iter()
                    .filter(|r| !(r.receiver_logged && r.worker_logged))
                    .count()
            ),
        ),
        check(
            "every decision made with the policy in force",
            wrong.is_empty() && (valid == 0 || both_used),
            format!(
                "{} decisions: {}; {} within 2 s of a reload (either version allowed); {} while the invalid file was in place{}{}",
                out.by_version.values().sum::<usize>(),
                out.by_version
                    .iter()
                    .map(|(v, n)| format!(
                        "{n} by {} ({v})",
                        if *v == versions.0 {
                            "A"
                        } else if *v == versions.1 {
                            "B"
                        } else {
                            "?"
                        }
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                out.at_a_reload,
                out.during_invalid,
                if valid > 0 && !both_used {
                    "; the reloaded policy decided nothing"
                } else {
                    ""
                },
                examples(&wrong)
            ),
        ),
    ];
    (out, checks)
}

/// RSS figures of one role.
#[derive(Debug, Clone, Default)]
pub struct Rss {
    /// The first sample, KiB.
    pub first_kib: u64,
    /// The largest sample, KiB.
    pub max_kib: u64,
    /// Mean of the window after warm-up, KiB.
    pub early_kib: f64,
    /// Mean of the last window, KiB.
    pub late_kib: f64,
    /// Samples in each window.
    pub samples: (usize, usize),
}

impl Rss {
    /// (late − early) / early.
    pub fn drift(&self) -> f64 {
        (self.late_kib - self.early_kib) / self.early_kib.max(1.0)
    }
}

/// The RSS windows: `[warmup, warmup + window]` against `[end − window, end]`
/// (seconds since the load started); the worker's samples only once it has been up
/// `settle` (a restarted process is still growing into its steady state).
#[derive(Debug, Clone, Copy)]
pub struct RssWindows {
    /// End of the warm-up.
    pub warmup: f64,
    /// Length of each window.
    pub window: f64,
    /// End of the load.
    pub end: f64,
    /// A worker's samples count from this long after its start.
    pub settle: f64,
}

fn rss_of(samples: &[RssSample], role: Role, w: RssWindows) -> Option<Rss> {
    let mine: Vec<&RssSample> = samples
        .iter()
        .filter(|s| s.role == role && (role == Role::Receiver || s.up_secs >= w.settle))
        .collect();
    let mean = |lo: f64, hi: f64| {
        let v: Vec<u64> = mine
            .iter()
            .filter(|s| s.at_secs >= lo && s.at_secs <= hi)
            .map(|s| s.kib)
            .collect();
        (!v.is_empty()).then(|| (v.iter().sum::<u64>() as f64 / v.len() as f64, v.len()))
    };
    let (early, n_early) = mean(w.warmup, w.warmup + w.window)?;
    let (late, n_late) = mean(w.end - w.window, w.end)?;
    let all: Vec<u64> = samples
        .iter()
        .filter(|s| s.role == role)
        .map(|s| s.kib)
        .collect();
    Some(Rss {
        first_kib: all.first().copied().unwrap_or(0),
        max_kib: all.iter().copied().max().unwrap_or(0),
        early_kib: early,
        late_kib: late,
        samples: (n_early, n_late),
    })
}

/// Steady-state RSS drift of the receiver and of the worker (across restarts).
pub fn rss(
    samples: &[RssSample],
    w: RssWindows,
    tolerance: f64,
) -> (Option<Rss>, Option<Rss>, Vec<Check>) {
    let mut checks = Vec::new();
    let receiver = rss_of(samples, Role::Receiver, w);
    let worker = rss_of(samples, Role::Worker, w);
    for (name, r) in [
        (
            "receiver RSS steady (drift within the tolerance)",
            &receiver,
        ),
        ("worker RSS steady across restarts", &worker),
    ] {
        checks.push(match r {
            Some(r) => check(
                name,
                r.drift().abs() <= tolerance,
                format!(
                    "{:.1} MB after warm-up → {:.1} MB at the end ({:+.1} %, allowed ±{:.0} %; {}+{} samples; first {:.1} MB, max {:.1} MB)",
                    r.early_kib / 1024.0,
                    r.late_kib / 1024.0,
                    r.drift() * 100.0,
                    tolerance * 100.0,
                    r.samples.0,
                    r.samples.1,
                    r.first_kib as f64 / 1024.0,
                    r.max_kib as f64 / 1024.0
                ),
            ),
            None => check(name, false, "no samples in a window (is /proc readable?)"),
        });
    }
    (receiver, worker, checks)
}

/// Lines saying "panicked" in every child's stdout and stderr.
pub fn panics(logs: &[(Role, PathBuf)]) -> Check {
    let mut found = Vec::new();
    let mut read = 0;
    for (_, path) in logs {
        for p in [path.clone(), path.with_extension("stderr")] {
            match std::fs::read_to_string(&p) {
                Ok(text) => {
                    read += 1;
                    for line in text.lines().filter(|l| l.contains("panicked")) {
                        found.push(format!(
                            "{}: {}",
                            p.file_name().and_then(|f| f.to_str()).unwrap_or("?"),
                            line.chars().take(200).collect::<String>()
                        ));
                    }
                }
                Err(e) => found.push(format!("{}: unreadable: {e}", p.display())),
            }
        }
    }
    check(
        "nothing panicked",
        found.is_empty(),
        format!("{} in {read} log files{}", found.len(), examples(&found)),
    )
}

/// Kills, restarts, incidents and the final shutdown.
pub fn processes(
    control: &ControlReport,
    stopped: &[(Role, Option<std::process::ExitStatus>)],
) -> Check {
    let failed_restarts = control
        .kills
        .iter()
        .filter(|k| k.restarted_in.is_none())
        .count();
    let slowest = control
        .kills
        .iter()
        .filter_map(|k| k.restarted_in)
        .max()
        .unwrap_or(Duration::ZERO);
    let unclean: Vec<String> = stopped
        .iter()
        .filter(|(_, s)| !s.is_some_and(|s| s.success()))
        .map(|(r, s)| format!("{r:?}: {s:?}"))
        .collect();
    let incidents: Vec<&str> = control.incidents.iter().map(|i| i.0.as_str()).collect();
    check(
        "processes: every restart ready, nothing exited by itself, clean SIGTERM at the end",
        failed_restarts == 0 && incidents.is_empty() && unclean.is_empty(),
        format!(
            "{} SIGKILLs ({} jobs running at the kills in all), slowest restart to ready {:.0} ms; {} incidents{}; {} unclean exits{}",
            control.kills.len(),
            control.kills.iter().map(|k| k.running).sum::<u64>(),
            slowest.as_secs_f64() * 1000.0,
            incidents.len(),
            examples(&incidents),
            unclean.len(),
            examples(&unclean)
        ),
    )
}
