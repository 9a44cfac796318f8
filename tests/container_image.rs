//! The image, built and run (DESIGN.md §12): the `Dockerfile` is built with buildah
//! (daemonless, `--isolation chroot`) from the binary cargo built for this test,
//! handed in as the `build` stage, and the image is run with podman the way the
//! deploy examples run it. Checked as a container, not as a process on the host:
//! what the image holds (no shell, nothing but the binary, its libraries and
//! config), user 10001, root filesystem read-only with `/data` the one writable
//! place, the `HEALTHCHECK` passes, a signed webhook is accepted, the event and its
//! job survive removing the container and starting a new one on the same volume,
//! `podman stop` (SIGTERM) ends it with exit 0 within the grace period, and the log
//! on stdout is JSON. The second container is started as `deploy/kubernetes` runs
//! it (its args, env, securityContext, the ConfigMap's files mounted read-only), and
//! the compose and Kubernetes examples are compared with the built image's user,
//! port, volume, config path and health endpoints.
//!
//! Needs root, podman, buildah, runc and a `debian:bookworm-slim` image in local
//! storage; `.ci/container-setup` provides them (apt packages, a debootstrapped
//! base cached under /var/cache/offboard-ci). Under `CI=true` anything missing is a
//! failure; elsewhere the test says what is missing and passes without running.
//! Every container, volume, mount and image it makes is removed when it ends, also
//! when it fails (`Cleanup`'s `Drop`). The image's size is printed and written to
//! `$CARGO_TARGET_TMPDIR/container-image.txt` (`.ci/run` shows it).

use std::{
    collections::BTreeSet,
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use offboard_testkit::{free_port, sign};
use serde_json::{Value, json};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const SECRET: &str = "whsec_Y29udGFpbmVyLWltYWdlLXRlc3Q=";
const ADMIN: &str = "container-image-admin-token";
/// `stop_grace_period` / `terminationGracePeriodSeconds` of the deploy examples.
const GRACE: Duration = Duration::from_secs(45);

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(REPO).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs `program args` to completion within `timeout`, killing it past that: a
/// hung podman must fail the test, not hang CI.
fn run(program: &str, args: &[&str], timeout: Duration) -> Output {
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    // Drained on threads: a child blocked on a full pipe would never exit.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?}: still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// [`run`], which must succeed; its stdout.
fn ok(program: &str, args: &[&str], timeout: Duration) -> String {
    let out = run(program, args, timeout);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn podman(args: &[&str]) -> String {
    ok("podman", args, Duration::from_secs(60))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether the test can run here; under CI a missing prerequisite is a failure.
fn prerequisites() -> bool {
    let mut missing: Vec<String> = ["podman", "buildah", "runc"]
        .into_iter()
        .filter(|p| !on_path(p))
        .map(String::from)
        .collect();
    if !is_root() {
        missing.push("root (rootful podman)".into());
    } else if missing.is_empty()
        && !run(
            "podman",
            &["image", "exists", "debian:bookworm-slim"],
            Duration::from_secs(30),
        )
        .status
        .success()
    {
        missing.push("the debian:bookworm-slim base image".into());
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "the container image test needs {}; `.ci/container-setup` (as root) installs \
         and bootstraps them",
        missing.join(", ")
    );
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!ci, "CI: {msg}");
    eprintln!("SKIPPED (not under CI): {msg}");
    false
}

/// What the test created, removed in `Drop` whether it passed or panicked.
#[derive(Default)]
struct Cleanup {
    containers: Vec<String>,
    volumes: Vec<String>,
    mounted: Vec<String>,
    images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            // Best effort, bounded: a cleanup failure must not hide the test's own.
            let _ = Command::new("podman")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        for c in &self.containers {
            quiet(&["rm", "--force", "--time", "0", c]);
        }
        for v in &self.volumes {
            quiet(&["volume", "rm", "--force", v]);
        }
        for i in &self.mounted {
            quiet(&["image", "unmount", i]);
        }
        for i in &self.images {
            quiet(&["rmi", "--force", i]);
        }
    }
}

/// A running container and what the test talks to it with.
struct Container {
    name: String,
    base: String,
}

/// The flags every run uses, and why:
/// - `--runtime runc`: crun refuses to start containers on this kind of machine;
/// - the `--ulimit`s: podman otherwise raises nofile/nproc, which is not permitted
///   here (and 1024 descriptors are plenty for one service);
/// - `--read-only --read-only-tmpfs=false`: the root filesystem read-only and no
///   tmpfs on /tmp, /run, /var/tmp, like Kubernetes' `readOnlyRootFilesystem`;
/// - `--health-interval disable`: no systemd timer (there is no systemd); the test
///   runs the image's HEALTHCHECK itself with `podman healthcheck run`.
fn run_flags(name: &str, volume: &str, port: u16) -> Vec<String> {
    [
        "run",
        "--detach",
        "--name",
        name,
        "--runtime",
        "runc",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=4096:4096",
        "--read-only",
        "--read-only-tmpfs=false",
        "--health-interval",
        "disable",
        "--stop-timeout",
        "45",
        "--volume",
        &format!("{volume}:/data"),
        "--publish",
        &format!("127.0.0.1:{port}:8080"),
        // The CRM on the container's own loopback, where nothing listens: jobs may
        // try it and fail, but nothing leaves this machine.
        "--env",
        "OFFBOARD__CRM__BASE_URL=http://127.0.0.1:9",
        "--env",
        "SELL_ACCESS_TOKEN=container-image-sell-token",
        "--env",
        &format!("HR_WEBHOOK_SECRETS={SECRET}"),
        "--env",
        &format!("OFFBOARD_ADMIN_TOKEN={ADMIN}"),
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

async fn start(cleanup: &mut Cleanup, args: Vec<String>, name: &str, port: u16) -> Container {
    cleanup.containers.push(name.to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    podman(&args);
    let c = Container {
        name: name.to_owned(),
        base: format!("http://127.0.0.1:{port}"),
    };
    // Ready: /readyz answers 200 (the store is open and migrated).
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{}/readyz", c.base)).send().await
            && r.status() == 200
        {
            return c;
        }
        let state = podman(&["inspect", "--format", "{{.State.Status}}", name]);
        assert!(
            state.trim() == "running" && Instant::now() < deadline,
            "{name} did not become ready (state {}); logs:\n{}",
            state.trim(),
            logs(name).0.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The container's stdout and stderr lines, as `podman logs` keeps them apart.
fn logs(name: &str) -> (Vec<String>, Vec<String>) {
    let out = run("podman", &["logs", name], Duration::from_secs(30));
    let lines = |b: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(b)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect()
    };
    (lines(&out.stdout), lines(&out.stderr))
}

fn inspect(what: &str, name: &str) -> Value {
    let text = podman(&[what, "inspect", name]);
    let v: Value = serde_json::from_str(&text).unwrap();
    v[0].clone()
}

/// The host PID of the container's main process.
fn host_pid(name: &str) -> u32 {
    inspect("container", name)["State"]["Pid"]
        .as_u64()
        .expect("a running container has a PID") as u32
}

/// `podman stop` (SIGTERM, SIGKILL after the grace period): must end with exit 0
/// well within the grace period, i.e. the service stopped itself.
fn stop(c: &Container) {
    let started = Instant::now();
    podman(&["stop", "--time", &GRACE.as_secs().to_string(), &c.name]);
    let took = started.elapsed();
    let state = &inspect("container", &c.name)["State"];
    assert_eq!(state["ExitCode"], 0, "{}: exit code after SIGTERM", c.name);
    assert!(took < GRACE, "{}: stopping took {took:?}", c.name);
    eprintln!("{}: SIGTERM → exit 0 in {took:.1?}", c.name);
}

/// Every line on stdout is a JSON log record; nothing on stderr.
fn assert_json_logs(name: &str, expect: &[&str]) {
    let (stdout, stderr) = logs(name);
    assert!(!stdout.is_empty(), "{name}: no log on stdout");
    let mut messages = Vec::new();
    for line in &stdout {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{name}: a stdout line is not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        messages.push(v["message"].as_str().unwrap_or("").to_owned());
    }
    for m in expect {
        assert!(
            messages.iter().any(|x| x == m),
            "{name}: no {m:?} in {messages:?}"
        );
    }
    assert!(stderr.is_empty(), "{name}: stderr: {stderr:?}");
}

/// Mount points of the container's process (from the host's /proc), with whether
/// each is read-only.
fn mounts(pid: u32) -> Vec<(String, bool)> {
    std::fs::read_to_string(format!("/proc/{pid}/mounts"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let ro = f.get(3)?.split(',').any(|o| o == "ro");
            Some((f.get(1)?.to_string(), ro))
        })
        .collect()
}

/// Regular files and symlinks in the image, relative to its root.
fn image_files(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = format!("/{}", path.strip_prefix(root).unwrap().display());
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                out.insert(rel);
            }
        }
    }
    out
}

/// The `- name: X` / `value: Y` pairs under `env:` in the Deployment.
fn deployment_env(deployment: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut name = None;
    for l in deployment
        .lines()
        .skip_while(|l| l.trim() != "env:")
        .skip(1)
    {
        let t = l.trim();
        if let Some(n) = t.strip_prefix("- name: ") {
            name = Some(n.to_owned());
        } else if let (Some(v), Some(n)) = (t.strip_prefix("value: "), name.take()) {
            out.push((n, v.trim_matches('"').to_owned()));
        } else {
            break;
        }
    }
    out
}

/// The first `key: value` in the Deployment.
fn deployment_value(deployment: &str, key: &str) -> String {
    deployment
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("deployment.yaml: no {key}"))
        .trim_matches('"')
        .to_owned()
}

/// The text of a `key: |` block scalar at two-space indentation in a YAML file.
fn block_scalar(yaml: &str, key: &str) -> String {
    let mut lines = yaml
        .lines()
        .skip_while(|l| l.trim_end() != format!("  {key}: |"));
    assert!(lines.next().is_some(), "no {key} block");
    let mut out = String::new();
    for l in lines {
        if !l.trim().is_empty() && !l.starts_with("    ") {
            break;
        }
        out.push_str(l.strip_prefix("    ").unwrap_or(""));
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_built_and_run_as_a_container() {
    if !prerequisites() {
        return;
    }
    let started = Instant::now();
    let mut cleanup = Cleanup::default();
    let id = format!("{}-{}", std::process::id(), chrono::Utc::now().timestamp());
    let image = format!("localhost/offboard-test:{id}");

    // --- Build: the Dockerfile as it is, with this test's binary as the `build` stage.
    let context = tempfile::Builder::new()
        .prefix("offboard-image-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let bin_dir = context.path().join("usr/local/bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_offboard"));
    // A hard link where the target dir allows it: the debug binary is ~300 MB.
    if std::fs::hard_link(&exe, bin_dir.join("offboard")).is_err() {
        std::fs::copy(&exe, bin_dir.join("offboard")).unwrap();
    }
    cleanup.images.push(image.clone());
    let build_started = Instant::now();
    ok(
        "buildah",
        &[
            "bud",
            // The default OCI isolation fails on this kind of machine ("cgroups in
            // hybrid mode not supported"); chroot isolation works.
            "--isolation",
            "chroot",
            // Docker format: the OCI image config has no HEALTHCHECK.
            "--format",
            "docker",
            // Never a registry: the base comes from local storage, the builder
            // stage from the build context.
            "--pull=never",
            "--build-context",
            &format!("build={}", context.path().display()),
            "--tag",
            &image,
            "--file",
            &format!("{REPO}/Dockerfile"),
            REPO,
        ],
        Duration::from_secs(300),
    );
    let build_took = build_started.elapsed();

    // --- What the image is.
    let img = inspect("image", &image);
    let config = &img["Config"];
    let size = img["Size"].as_u64().unwrap();
    let binary_size = std::fs::metadata(&exe).unwrap().len();
    assert_eq!(config["User"], "10001:10001");
    assert_eq!(config["WorkingDir"], "/data");
    assert!(config["Volumes"]["/data"].is_object(), "VOLUME /data");
    assert!(
        config["ExposedPorts"]["8080/tcp"].is_object(),
        "EXPOSE 8080"
    );
    assert_eq!(config["StopSignal"], "SIGTERM");
    let healthcheck: Vec<String> =
        serde_json::from_value(img["Healthcheck"]["Test"].clone()).expect("a HEALTHCHECK");
    assert_eq!(
        healthcheck[..2],
        ["CMD".to_owned(), "offboard".to_owned()],
        "the HEALTHCHECK is the binary itself, no shell"
    );
    let cmd: Vec<String> = serde_json::from_value(config["Cmd"].clone()).unwrap();
    let config_path = cmd[cmd.iter().position(|a| a == "--config").unwrap() + 1].clone();

    // Only what it needs: the binary, the libraries it links, passwd/group and the
    // config. No shell, no package manager, no curl.
    let root = podman(&["image", "mount", &image]).trim().to_owned();
    cleanup.mounted.push(image.clone());
    let files = image_files(Path::new(&root));
    let unexpected: Vec<&String> = files
        .iter()
        .filter(|f| {
            !(f.as_str() == "/usr/local/bin/offboard"
                || f.as_str() == "/etc/passwd"
                || f.as_str() == "/etc/group"
                || (f.starts_with("/etc/offboard/") && f.ends_with(".toml"))
                || ((f.starts_with("/lib") || f.starts_with("/usr/lib")) && f.contains(".so")))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "not needed in the image: {unexpected:?}"
    );
    assert!(files.contains(&config_path), "{config_path} in the image");
    assert!(!files.contains("/bin/sh"));
    let passwd = std::fs::read_to_string(Path::new(&root).join("etc/passwd")).unwrap();
    assert!(passwd.contains("offboard:x:10001:10001:"), "{passwd}");
    podman(&["image", "unmount", &image]);
    cleanup.mounted.clear();
    let lib_bytes = size.saturating_sub(binary_size);

    // --- First container: the image as is, on a fresh named volume (compose's way).
    let volume = format!("offboard-test-data-{id}");
    cleanup.volumes.push(volume.clone());
    podman(&["volume", "create", &volume]);
    let port = free_port();
    let first = format!("offboard-test-{id}-1");
    let mut args = run_flags(&first, &volume, port);
    args.push(image.clone());
    let c = start(&mut cleanup, args, &first, port).await;
    let http = reqwest::Client::new();

    // Runs as 10001 (the kernel's view of the process, not the image's metadata).
    let pid = host_pid(&c.name);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().collect::<Vec<_>>(),
        ["Uid:", "10001", "10001", "10001", "10001"]
    );
    // Read-only root; /data the one writable place of the image's own files (the
    // rest that is writable is the kernel's or the runtime's: /proc, /sys, /dev,
    // and the /etc/hosts-style files podman binds in).
    let m = mounts(pid);
    assert!(
        m.iter().any(|(p, ro)| p == "/" && *ro),
        "/ read-only: {m:?}"
    );
    assert!(
        m.iter().any(|(p, ro)| p == "/data" && !*ro),
        "/data writable: {m:?}"
    );
    let runtime_owned = |p: &str| {
        ["/proc", "/sys", "/dev", "/run/.containerenv"]
            .iter()
            .any(|k| p == *k || p.starts_with(&format!("{k}/")))
            || ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"].contains(&p)
    };
    let writable: Vec<&String> = m
        .iter()
        .filter(|(p, ro)| !ro && p != "/data" && !runtime_owned(p))
        .map(|(p, _)| p)
        .collect();
    assert!(writable.is_empty(), "writable besides /data: {writable:?}");

    // The HEALTHCHECK, as the engine runs it.
    let hc = run(
        "podman",
        &["healthcheck", "run", &c.name],
        Duration::from_secs(30),
    );
    assert!(
        hc.status.success(),
        "HEALTHCHECK: {}",
        String::from_utf8_lossy(&hc.stderr)
    );
    assert_eq!(
        inspect("container", &c.name)["State"]["Health"]["Status"],
        "healthy"
    );
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = http.get(format!("{}{path}", c.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }

    // A signed webhook is accepted: the event is stored and a job made for it.
    let body = json!({
        "id": "evt_container", "type": "employee.terminated",
        "employee": { "email": "leaver@example.com", "name": "Container Leaver" },
        "termination": { "kind": "voluntary", "rehire_eligible": true }
    })
    .to_string();
    let url = format!("{}/webhooks/hr", c.base);
    let r = sign::post(&http, &url, SECRET, "msg_container", &body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let accepted: Value = r.json().await.unwrap();
    let job_id = accepted["job_id"].as_str().expect("job_id").to_owned();

    // The store is in the volume, not in the container.
    let volume_dir = inspect("volume", &volume)["Mountpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        Path::new(&volume_dir).join("offboard.db").exists(),
        "offboard.db in the volume"
    );

    stop(&c);
    assert_json_logs(&c.name, &["offboard listening", "offboard stopped"]);
    podman(&["rm", &c.name]);

    // --- Second container, same volume, started as deploy/kubernetes starts it:
    // the Deployment's args, env and securityContext, the ConfigMap's files mounted
    // read-only at its mountPath. No PostgreSQL here, so without the Secret's
    // OFFBOARD__STORE__URL: the image's own SQLite URL in /data (the single-replica
    // variant the Deployment describes).
    let deployment = read("deploy/kubernetes/deployment.yaml");
    let configmap = read("deploy/kubernetes/configmap.yaml");
    let etc = tempfile::tempdir().unwrap();
    for file in ["offboard.toml", "policy.toml"] {
        std::fs::write(etc.path().join(file), block_scalar(&configmap, file)).unwrap();
    }
    let user = format!(
        "{}:{}",
        deployment_value(&deployment, "runAsUser"),
        deployment_value(&deployment, "runAsGroup")
    );
    let mount_path = deployment
        .lines()
        .zip(deployment.lines().skip(1))
        .find_map(|(a, b)| {
            (a.trim() == "- name: config")
                .then(|| b.trim().strip_prefix("mountPath: "))
                .flatten()
        })
        .expect("the config volume's mountPath")
        .to_owned();
    let k8s_args: Vec<String> =
        serde_json::from_str(&deployment_value(&deployment, "args")).unwrap();
    assert_eq!(k8s_args, cmd, "the Deployment's args are the image's CMD");
    assert_eq!(
        Path::new(&config_path).parent().unwrap(),
        Path::new(&mount_path),
        "the ConfigMap is mounted where the image's CMD reads its config"
    );
    assert_eq!(
        deployment_value(&deployment, "readOnlyRootFilesystem"),
        "true"
    );
    let port = free_port();
    let second = format!("offboard-test-{id}-2");
    let mut args = run_flags(&second, &volume, port);
    args.extend(
        [
            "--user",
            &user,
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--volume",
            &format!("{}:{mount_path}:ro", etc.path().display()),
        ]
        .map(String::from),
    );
    for (k, v) in deployment_env(&deployment) {
        args.extend(["--env".to_owned(), format!("{k}={v}")]);
    }
    args.push(image.clone());
    args.extend(k8s_args);
    let c = start(&mut cleanup, args, &second, port).await;
    // The Deployment's probes and scrape annotation, against this container.
    let probe = |name: &str| -> String {
        deployment
            .lines()
            .skip_while(|l| l.trim() != format!("{name}:"))
            .find_map(|l| l.trim().strip_prefix("path: "))
            .unwrap_or_else(|| panic!("no {name} path"))
            .to_owned()
    };
    for path in [
        probe("startupProbe"),
        probe("livenessProbe"),
        probe("readinessProbe"),
        deployment_value(&deployment, "prometheus.io/path"),
    ] {
        let r = http.get(format!("{}{path}", c.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "Deployment probe {path}");
    }
    // The event and its job, from the first container's volume.
    let r = http
        .get(format!("{}/api/v1/jobs/{job_id}", c.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "job {job_id} after the restart");
    let job: Value = r.json().await.unwrap();
    assert_eq!(job["id"], job_id);
    assert_eq!(
        job["event"]["employee"]["email"], "leaver@example.com",
        "{job}"
    );
    // The same message again is a duplicate of the stored one, not a new job.
    let r = sign::post(
        &http,
        &format!("{}/webhooks/hr", c.base),
        SECRET,
        "msg_container",
        &body,
    )
    .send()
    .await
    .unwrap();
    let again: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(again["job_id"], job_id, "redelivery after restart: {again}");
    stop(&c);
    assert_json_logs(&c.name, &["offboard listening", "offboard stopped"]);

    // --- The examples against the image that was built.
    let uid = config["User"].as_str().unwrap().split(':').next().unwrap();
    assert_eq!(deployment_value(&deployment, "runAsUser"), uid);
    assert_eq!(deployment_value(&deployment, "containerPort"), "8080");
    assert_eq!(deployment_value(&deployment, "prometheus.io/port"), "8080");
    assert!(
        deployment.contains("mountPath: /data"),
        "the image's VOLUME"
    );
    let sqlite = read("deploy/docker-compose.sqlite.yml");
    assert!(
        sqlite.contains("- offboard-data:/data"),
        "the image's VOLUME"
    );
    assert!(sqlite.contains("\"8080:8080\""), "the image's port");
    let postgres = read("deploy/docker-compose.postgres.yml");
    assert!(postgres.contains("\"8080-8081:8080\""), "the image's port");
    for text in [&sqlite, &postgres] {
        assert!(text.contains("stop_grace_period: 45s"));
        // What the containers above ran with: --read-only.
        assert!(text.contains("read_only: true"), "compose: read_only");
    }
    assert_eq!(
        deployment_value(&deployment, "terminationGracePeriodSeconds"),
        GRACE.as_secs().to_string()
    );

    let report = format!(
        "container image: {:.1} MB ({size} bytes; the test's debug binary {:.1} MB, \
         everything else {:.1} MB); built in {build_took:.1?}, whole test {:.1?}\n",
        size as f64 / 1e6,
        binary_size as f64 / 1e6,
        lib_bytes as f64 / 1e6,
        started.elapsed()
    );
    eprint!("{report}");
    std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("container-image.txt"),
        &report,
    )
    .unwrap();
}
