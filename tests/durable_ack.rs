//! "A 2xx means the event is on disk", shown in the system calls of the real
//! `offboard serve`: the receiver runs under `strace -f -yy`, signed webhooks are
//! posted one after another, and in the trace every `HTTP/1.1 202` written to a
//! client must come after the store made what it acknowledges durable:
//!
//! - SQLite: after the last write to the `-wal` file, an `fsync`/`fdatasync` of
//!   that file completes before the response is written. With
//!   `[store] sqlite_synchronous = "normal"` SQLite skips that sync, and the
//!   same check must find the violation: the test shows it can fail.
//! - PostgreSQL: the session asks for `synchronous_commit=on` at start-up (so a
//!   server or database default of `off` cannot weaken the ack), and the reply to
//!   `COMMIT` is read from the database's socket before the response is written.
//!   With `synchronous_commit=on` PostgreSQL answers a commit only after its WAL
//!   is flushed; the flush itself happens in the server's processes.
//!
//! `tests/durability.rs` proves ack-after-commit by SIGKILL, which keeps the page
//! cache; this test proves the order of sync and answer, which a power cut needs.
//! It needs `strace` (`.ci/run` installs it); without it a developer's run
//! skips and says so, and a CI run fails.

use std::{path::Path, process::Command, time::Duration};

use offboard_testkit::{
    config::{ServeConfig, ServiceDir},
    free_port,
    process::{self, Process},
    python_tool::under_ci,
    sign,
};

const SECRET: &str = "whsec_ZHVyYWJsZS1hY2stdGVzdC1zZWNyZXQ=";
const POSTS: usize = 5;

/// One system call of the trace: who made it, which, on what, and the text.
#[derive(Debug, Clone)]
struct Call {
    pid: String,
    name: String,
    /// The first argument as `strace -yy` prints it: `10</path/file>`,
    /// `12<TCP:[a->b]>`.
    target: String,
    line: String,
}

/// A trace as a list of events in the order they happened: a call that was
/// interrupted by another thread's is placed where it completed for syncs and
/// reads (what matters is that they were done), and where it started for
/// response writes (what matters is that it had not begun).
#[derive(Debug, Clone)]
enum Event {
    Started(Call),
    Completed(Call),
}

fn parse_call(pid: &str, rest: &str) -> Option<Call> {
    let open = rest.find('(')?;
    let name = rest[..open].trim().to_owned();
    let args = &rest[open + 1..];
    // The first argument runs to its closing `>` (paths and sockets are in <…>;
    // a socket's `[a->b]` has a `>` of its own, so it ends at `]>`).
    let end = match args.find("]>") {
        Some(i) if !args[..i].contains(',') => Some(i + 1),
        _ => args.find('>'),
    };
    let target = match end {
        Some(end) if args[..end].contains('<') => args[..=end].to_owned(),
        _ => args.split([',', ')']).next().unwrap_or_default().to_owned(),
    };
    Some(Call {
        pid: pid.to_owned(),
        name,
        target,
        line: rest.to_owned(),
    })
}

/// Reads `strace -f -yy -o FILE` output (each line starts with the thread id).
fn events(trace: &str) -> Vec<Event> {
    let mut pending: std::collections::HashMap<String, Call> = Default::default();
    let mut out = Vec::new();
    for line in trace.lines() {
        let Some((pid, rest)) = line.trim_start().split_once(char::is_whitespace) else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            if let Some(call) = pending.remove(pid) {
                let mut done = call;
                done.line.push_str(resumed);
                out.push(Event::Completed(done));
            }
        } else if let Some(call) = parse_call(pid, rest) {
            if rest.contains("<unfinished ...>") {
                out.push(Event::Started(call.clone()));
                pending.insert(pid.to_owned(), call);
            } else {
                out.push(Event::Started(call.clone()));
                out.push(Event::Completed(call));
            }
        }
    }
    out
}

fn is_response_202(call: &Call) -> bool {
    matches!(
        call.name.as_str(),
        "write" | "writev" | "sendto" | "sendmsg"
    ) && call.target.contains("TCP:")
        && call.line.contains("HTTP/1.1 202")
}

fn is_wal(call: &Call) -> bool {
    call.target.contains("-wal>")
}

/// SQLite: every 202 begins after a sync of the WAL that completed after the
/// last WAL write before it. Returns the violations, in words.
fn sqlite_violations(trace: &str) -> (usize, Vec<String>) {
    let mut last_wal_write: Option<usize> = None;
    let mut synced_since_write = false;
    let mut responses = 0;
    let mut violations = Vec::new();
    for (i, event) in events(trace).iter().enumerate() {
        match event {
            Event::Completed(c) if is_wal(c) && c.name.starts_with("pwrite") => {
                last_wal_write = Some(i);
                synced_since_write = false;
            }
            Event::Completed(c)
                if is_wal(c) && matches!(c.name.as_str(), "fsync" | "fdatasync") =>
            {
                synced_since_write = true;
            }
            Event::Started(c) if is_response_202(c) => {
                responses += 1;
                if last_wal_write.is_none() {
                    violations.push(format!(
                        "a 202 before anything was written to the WAL: {}",
                        c.line
                    ));
                } else if !synced_since_write {
                    violations.push(format!(
                        "a 202 written after a WAL write that no fsync/fdatasync followed (thread {}): {}",
                        c.pid, c.line
                    ));
                }
            }
            _ => {}
        }
    }
    (responses, violations)
}

fn is_pg(call: &Call) -> bool {
    call.target.contains(":5432]>")
}

/// PostgreSQL: every 202 begins after the reply to a COMMIT was read, and that
/// COMMIT was sent after the previous 202.
fn postgres_violations(trace: &str) -> (usize, Vec<String>) {
    let mut commit_sent = false;
    let mut commit_answered = false;
    let mut responses = 0;
    let mut violations = Vec::new();
    for event in events(trace) {
        match &event {
            Event::Started(c)
                if is_pg(c)
                    && matches!(c.name.as_str(), "write" | "writev" | "sendto" | "sendmsg")
                    && c.line.contains("COMMIT") =>
            {
                commit_sent = true;
                commit_answered = false;
            }
            Event::Completed(c)
                if is_pg(c)
                    && commit_sent
                    && matches!(c.name.as_str(), "read" | "recvfrom" | "recvmsg")
                    && c.line.contains("COMMIT") =>
            {
                commit_answered = true;
            }
            Event::Started(c) if is_response_202(c) => {
                responses += 1;
                if !commit_answered {
                    violations.push(format!("a 202 before a COMMIT was answered: {}", c.line));
                }
                commit_sent = false;
                commit_answered = false;
            }
            _ => {}
        }
    }
    (responses, violations)
}

fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a receiver on `dir`'s config under strace, posts [`POSTS`] signed
/// webhooks one at a time (each answered 202), stops it, and returns the trace.
async fn traced_receiver(dir: &ServiceDir, port: u16) -> String {
    let trace_path = dir.path().join("strace.txt");
    let serve = process::serve(env!("CARGO_BIN_EXE_offboard"), &dir.config);
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-yy", "-s", "512", "-e"])
        .arg("trace=pwrite64,pwritev,write,writev,sendto,sendmsg,read,recvfrom,recvmsg,fsync,fdatasync")
        .arg("-o")
        .arg(&trace_path)
        .arg(serve.get_program())
        .args(serve.get_args())
        .args(["--role", "receiver"])
        .envs(serve.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .stdin(std::process::Stdio::null());
    let mut server = Process::spawn_capturing(&mut cmd);
    let base = format!("http://127.0.0.1:{port}");
    server.wait_ready(&base, Duration::from_secs(60)).await;

    let http = reqwest::Client::new();
    for i in 0..POSTS {
        let body = format!(
            r#"{{"id":"evt_ack_{i}","type":"employee.terminated","occurred_at":"2026-12-01T10:00:00Z","employee":{{"id":"E{i}","email":"rep{i}@example.com"}},"termination":{{"kind":"voluntary","effective_at":"2026-12-15T17:00:00Z"}}}}"#
        );
        let resp = sign::post(
            &http,
            &format!("{base}/webhooks/hr"),
            SECRET,
            &format!("msg_ack_{i}"),
            &body,
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("post {i}: {e}"));
        assert_eq!(
            resp.status(),
            202,
            "post {i}: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    // SIGTERM to offboard itself (strace's child): it stops cleanly, and strace
    // exits after it with the whole trace written.
    let traced = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", server.id()))
        .unwrap_or_default();
    let pid = traced
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("strace has no child"));
    let sent = Command::new("kill").args(["-TERM", pid]).status();
    assert!(sent.is_ok_and(|s| s.success()), "SIGTERM to {pid}");
    let status = server.wait();
    assert!(
        status.success(),
        "strace/offboard ended with {status}: {:?}",
        server.stderr()
    );
    std::fs::read_to_string(&trace_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", trace_path.display()))
}

fn service(port: u16, store_url: Option<String>, store_extra: &str) -> ServiceDir {
    ServeConfig {
        store_url,
        store_extra: store_extra.into(),
        ..ServeConfig::receiver(port, SECRET, "durable-ack-admin")
    }
    .write()
}

fn keep(trace: &str, name: &str) -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::write(&path, trace);
    path
}

fn strace_or_skip() -> bool {
    if strace_available() {
        return true;
    }
    assert!(
        !under_ci(),
        "strace is not installed and under CI this test must run (.ci/run installs it)"
    );
    eprintln!("skipped: strace is not installed (apt-get install strace)");
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_syncs_the_wal_before_each_202_and_the_check_sees_a_lowered_synchronous() {
    if !strace_or_skip() {
        return;
    }
    let port = free_port();
    let dir = service(port, None, "");
    let trace = traced_receiver(&dir, port).await;
    let path = keep(&trace, "durable-ack-sqlite-full.strace");
    let (responses, violations) = sqlite_violations(&trace);
    assert_eq!(responses, POSTS, "202s seen in {}", path.display());
    assert!(
        violations.is_empty(),
        "{violations:#?}\n(trace: {})",
        path.display()
    );

    // The same check on a receiver told to sync less: it must see the gap.
    let port = free_port();
    let lowered = service(port, None, "sqlite_synchronous = \"normal\"");
    let trace = traced_receiver(&lowered, port).await;
    let path = keep(&trace, "durable-ack-sqlite-normal.strace");
    let (responses, violations) = sqlite_violations(&trace);
    assert_eq!(responses, POSTS, "202s seen in {}", path.display());
    assert!(
        !violations.is_empty(),
        "with synchronous = normal every 202 still followed a WAL sync: the check cannot tell ({})",
        path.display()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_answers_each_202_after_a_synchronous_commit() {
    let Some(base) = offboard_testkit::postgres_url() else {
        return;
    };
    if !strace_or_skip() {
        return;
    }
    let (schema, url) = offboard_bench::scaling::create_schema(&base, "offboard_test_ack")
        .await
        .expect("create schema");
    // In the clear, so the trace shows the protocol (a TLS session would hide it).
    let url = format!("{url}&sslmode=disable");
    let port = free_port();
    let dir = service(port, Some(url), "");
    let trace = traced_receiver(&dir, port).await;
    let path = keep(&trace, "durable-ack-postgres.strace");
    assert!(
        trace.contains("synchronous_commit=on"),
        "offboard's start-up message does not ask for synchronous_commit=on ({})",
        path.display()
    );
    let (responses, violations) = postgres_violations(&trace);
    assert_eq!(responses, POSTS, "202s seen in {}", path.display());
    assert!(
        violations.is_empty(),
        "{violations:#?}\n(trace: {})",
        path.display()
    );
    offboard_bench::scaling::drop_schema(&base, &schema)
        .await
        .expect("drop schema");
}

/// The checks themselves, on hand-written traces: the right order passes, a
/// response before the sync (or the commit reply) is caught.
#[test]
fn the_trace_checks_catch_an_answer_before_the_sync() {
    let good = r#"100 pwrite64(9</d/offboard.db-wal>, "x", 4096, 0) = 4096
100 fdatasync(9</d/offboard.db-wal>) = 0
101 writev(12<TCP:[127.0.0.1:8080->127.0.0.1:5000]>, [{iov_base="HTTP/1.1 202 Accepted\r\n", iov_len=23}], 1) = 23
"#;
    assert_eq!(sqlite_violations(good), (1, vec![]));
    let interleaved = r#"100 pwrite64(9</d/offboard.db-wal>, "x", 4096, 0) = 4096
100 fdatasync(9</d/offboard.db-wal> <unfinished ...>
101 writev(12<TCP:[127.0.0.1:8080->127.0.0.1:5000]>, [{iov_base="HTTP/1.1 202 Accepted\r\n", iov_len=23}], 1) = 23
100 <... fdatasync resumed>) = 0
"#;
    assert_eq!(
        sqlite_violations(interleaved).1.len(),
        1,
        "a sync still running is not done"
    );
    let unsynced = r#"100 pwrite64(9</d/offboard.db-wal>, "x", 4096, 0) = 4096
101 write(12<TCP:[127.0.0.1:8080->127.0.0.1:5000]>, "HTTP/1.1 202 Accepted\r\n", 23) = 23
"#;
    assert_eq!(sqlite_violations(unsynced).1.len(), 1);

    let pg_good = r#"100 sendto(7<TCP:[127.0.0.1:40000->127.0.0.1:5432]>, "Q\0\0\0\vCOMMIT\0", 12, MSG_NOSIGNAL, NULL, 0) = 12
100 recvfrom(7<TCP:[127.0.0.1:40000->127.0.0.1:5432]>, "C\0\0\0\vCOMMIT\0Z\0\0\0\5I", 8192, 0, NULL, NULL) = 18
101 writev(12<TCP:[127.0.0.1:8080->127.0.0.1:5000]>, [{iov_base="HTTP/1.1 202 Accepted\r\n", iov_len=23}], 1) = 23
"#;
    assert_eq!(postgres_violations(pg_good), (1, vec![]));
    let pg_early = r#"100 sendto(7<TCP:[127.0.0.1:40000->127.0.0.1:5432]>, "Q\0\0\0\vCOMMIT\0", 12, MSG_NOSIGNAL, NULL, 0) = 12
101 writev(12<TCP:[127.0.0.1:8080->127.0.0.1:5000]>, [{iov_base="HTTP/1.1 202 Accepted\r\n", iov_len=23}], 1) = 23
100 recvfrom(7<TCP:[127.0.0.1:40000->127.0.0.1:5432]>, "C\0\0\0\vCOMMIT\0Z\0\0\0\5I", 8192, 0, NULL, NULL) = 18
"#;
    assert_eq!(postgres_violations(pg_early).1.len(), 1);
}
