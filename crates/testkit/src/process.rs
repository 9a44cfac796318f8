//! A child process of the real binary, for the tests that need what only a
//! process has: signals, a crash in the middle of a write, a restart on the same
//! files, the log lines an operator's pipeline receives.
//!
//! [`Process`] owns the child and SIGKILLs it when dropped, so a failing test
//! never leaves a server holding a port or a database behind. With
//! [`Process::spawn_capturing`] its stdout and stderr are drained into memory
//! on threads — a child writing to a full pipe would block — and read back with
//! [`Process::stdout`] and [`Process::stderr`].

use std::{
    ffi::OsStr,
    io::{BufRead, BufReader, Read},
    net::TcpListener,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// A free loopback port: bound, then released for a child to take. Another
/// process could take it in between; on a test machine that is rare enough.
/// Within one test binary a port is handed out once, so two tests running at
/// the same time never get the same number back from the kernel.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral loopback port")
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// `EXE serve --config CONFIG` logging warnings only, with no stdin: what most
/// tests start. Add arguments (`--role receiver`, `--log-format json`) and
/// environment before spawning it.
pub fn serve(exe: impl AsRef<OsStr>, config: &Path) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(["serve", "--config"])
        .arg(config)
        .env("OFFBOARD_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

/// Lines a child wrote to one pipe, collected by a thread.
struct Captured {
    lines: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Captured {
    fn start(pipe: impl Read + Send + 'static) -> Captured {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let thread = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        Captured {
            lines,
            thread: Some(thread),
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits for the pipe to close (the child exited), so no line is missed.
    fn finish(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running child process, SIGKILLed and reaped when dropped.
pub struct Process {
    child: Child,
    stdout: Option<Captured>,
    stderr: Option<Captured>,
}

impl Process {
    /// Spawns `cmd` with its stdout and stderr thrown away: for tests that check
    /// state, not logs.
    pub fn spawn(cmd: &mut Command) -> Process {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Process {
            child,
            stdout: None,
            stderr: None,
        }
    }

    /// Spawns `cmd` and keeps every line it writes to stdout and stderr.
    pub fn spawn_capturing(cmd: &mut Command) -> Process {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdout = child.stdout.take().map(Captured::start);
        let stderr = child.stderr.take().map(Captured::start);
        Process {
            child,
            stdout,
            stderr,
        }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Polls `BASE/readyz` until it answers 200. Panics after `timeout`, or as
    /// soon as the child exits, with what it wrote to stderr when captured.
    pub async fn wait_ready(&mut self, base: &str, timeout: Duration) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        loop {
            let ready = http.get(format!("{base}/readyz")).send().await;
            if ready.as_ref().is_ok_and(|r| r.status() == 200) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                self.finish_output();
                panic!(
                    "exited with {status} before ready; stderr: {:?}",
                    self.stderr()
                );
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "not ready at {base} after {timeout:?}: {ready:?}; stderr: {:?}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL — no chance to flush or clean up — and reap. A child that already
    /// exited is only reaped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`TERM`, `STOP`, `CONT`, …) with kill(1), which keeps the
    /// crate free of a libc binding for the few signals the tests send.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.id().to_string())
            .status()
            .expect("run kill(1)");
        assert!(ok.success(), "kill -{signal} {}", self.id());
    }

    /// SIGTERM, then waits for the exit, which must come within `within` (the
    /// grace period an orchestrator gives before SIGKILL); panics otherwise.
    /// Every line the child wrote is captured by the time this returns.
    pub async fn terminate(&mut self, within: Duration) -> ExitStatus {
        let asked = Instant::now();
        self.signal("TERM");
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("poll the child") {
                break s;
            }
            if asked.elapsed() > within {
                self.kill();
                panic!("still running {within:?} after SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.finish_output();
        status
    }

    /// Waits for the child to exit by itself (after a signal sent with
    /// [`signal`](Self::signal)), blocking the thread.
    pub fn wait(&mut self) -> ExitStatus {
        let status = self.child.wait().expect("wait for the child");
        self.finish_output();
        status
    }

    /// What the child wrote to stdout so far (empty unless captured).
    pub fn stdout(&self) -> Vec<String> {
        self.stdout
            .as_ref()
            .map(Captured::lines)
            .unwrap_or_default()
    }

    /// What the child wrote to stderr so far (empty unless captured).
    pub fn stderr(&self) -> Vec<String> {
        self.stderr
            .as_ref()
            .map(Captured::lines)
            .unwrap_or_default()
    }

    fn finish_output(&mut self) {
        for c in [&mut self.stdout, &mut self.stderr].into_iter().flatten() {
            c.finish();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
