//! The container's contract, without a container engine: the Dockerfile is read,
//! its final stage's `ENV`, `WORKDIR`, `ENTRYPOINT` and `CMD` are applied to the
//! offboard binary built for this test (only `/data` and `/etc/offboard` are mapped
//! to temp directories, and the port to a free one), and the service must answer
//! `/healthz` and `/readyz`, pass the `HEALTHCHECK` command (run with the same
//! binary), keep its database in the volume, log JSON, and stop cleanly on SIGTERM
//! within Docker's grace period. The `deploy/` examples are checked against the
//! same contract: their config and policy parse, probes hit the right paths, every
//! secret the config names is provided. `tests/container_image.rs` builds the image
//! and runs it as a container; this file is what still runs without podman.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use offboard_testkit::{free_port, process::Process};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn repo(path: &str) -> PathBuf {
    Path::new(REPO).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One Dockerfile instruction: keyword (upper case) and the rest of its logical line.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

/// Instructions per stage, in order (continuation lines joined, comments dropped).
fn dockerfile_stages() -> Vec<Vec<Instruction>> {
    let text = read("Dockerfile");
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            logical.push(std::mem::take(&mut current));
        }
    }
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    for line in logical {
        let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let ins = Instruction {
            keyword: keyword.to_uppercase(),
            args: args.trim().to_owned(),
        };
        if ins.keyword == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("the Dockerfile starts with FROM")
            .push(ins);
    }
    stages
}

fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("not a JSON exec form ({e}): {args}"))
}

/// The image's runtime contract, read from the final stage.
struct Image {
    env: Vec<(String, String)>,
    workdir: String,
    user: String,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    healthcheck: Vec<String>,
    volumes: Vec<String>,
    expose: Vec<u16>,
    /// (sources in the repository, destination) of COPYs from the build context.
    copies: Vec<(Vec<String>, String)>,
    /// Where the binary copied from the build stage ends up in the image.
    binary: String,
}

fn image() -> Image {
    let stages = dockerfile_stages();
    assert!(stages.len() >= 2, "multi-stage build");
    let last = stages.last().unwrap();
    // The binary is copied out of the `build` stage, possibly into a staging root
    // (`/rootfs/...`) that the final stage copies to `/`.
    let from_build = stages
        .iter()
        .flatten()
        .filter(|i| i.keyword == "COPY" && i.args.contains("--from=build "))
        .find_map(|i| i.args.split_whitespace().last())
        .expect("a COPY --from=build of the binary")
        .to_owned();
    let mut img = Image {
        env: Vec::new(),
        workdir: "/".into(),
        user: "root".into(),
        entrypoint: Vec::new(),
        cmd: Vec::new(),
        healthcheck: Vec::new(),
        volumes: Vec::new(),
        expose: Vec::new(),
        copies: Vec::new(),
        binary: String::new(),
    };
    for ins in last {
        let a = ins.args.as_str();
        match ins.keyword.as_str() {
            "ENV" => {
                for word in a.split_whitespace() {
                    let (k, v) = word
                        .split_once('=')
                        .unwrap_or_else(|| panic!("ENV needs KEY=value words: {a}"));
                    img.env.push((k.to_owned(), v.trim_matches('"').to_owned()));
                }
            }
            "WORKDIR" => img.workdir = a.to_owned(),
            "USER" => img.user = a.to_owned(),
            "ENTRYPOINT" => img.entrypoint = exec_form(a),
            "CMD" => img.cmd = exec_form(a),
            "HEALTHCHECK" => {
                let (_, cmd) = a.split_once("CMD ").expect("HEALTHCHECK … CMD [...]");
                img.healthcheck = exec_form(cmd);
            }
            "VOLUME" => img.volumes = exec_form(a),
            "EXPOSE" => img.expose = a.split_whitespace().map(|p| p.parse().unwrap()).collect(),
            "COPY" => {
                let words: Vec<&str> = a.split_whitespace().collect();
                let (dest, sources) = words.split_last().unwrap();
                if sources.iter().any(|w| w.starts_with("--from=")) {
                    let src = sources.last().unwrap();
                    if *dest == "/"
                        && let Some(rest) = from_build.strip_prefix(src.trim_end_matches('/'))
                    {
                        img.binary = rest.to_owned();
                    } else if from_build == *dest {
                        img.binary = dest.to_string();
                    }
                } else {
                    img.copies.push((
                        sources.iter().map(|s| s.to_string()).collect(),
                        dest.to_string(),
                    ));
                }
            }
            _ => {}
        }
    }
    img
}

#[test]
fn the_dockerfile_builds_from_files_that_exist() {
    let stages = dockerfile_stages();
    let build = &stages[0];
    let ignored: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/').to_owned())
        .collect();
    let check_sources = |sources: &[&str]| {
        for s in sources {
            assert!(repo(s).exists(), "COPY {s}: no such file in the repository");
            let top = s.split('/').next().unwrap();
            assert!(
                !ignored.iter().any(|i| i == s || i == top),
                "COPY {s}, but .dockerignore excludes it"
            );
        }
    };
    for ins in build.iter().filter(|i| i.keyword == "COPY") {
        let words: Vec<&str> = ins.args.split_whitespace().collect();
        check_sources(&words[..words.len() - 1]);
    }
    assert!(
        ignored.iter().any(|i| i == "target"),
        "target/ must stay out of the build context"
    );
    // The lock file is what --locked builds from.
    let run = build
        .iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .expect("a cargo build");
    assert!(run.args.contains("--release") && run.args.contains("--locked"));
    assert!(run.args.contains("--bin offboard"));
    assert!(read("Cargo.toml").contains("name = \"offboard\""));
    assert!(read("Cargo.lock").contains("name = \"offboard\""));
    let from = &build[0].args;
    let toolchain = from
        .split(':')
        .nth(1)
        .and_then(|t| t.split('-').next())
        .expect("rust:<version>-…");
    let msrv = read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("rust-version");
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().unwrap()).collect() };
    assert!(
        version(toolchain) >= version(&msrv),
        "the build image's Rust {toolchain} is older than rust-version {msrv}"
    );

    let img = image();
    for (sources, _) in &img.copies {
        let s: Vec<&str> = sources.iter().map(String::as_str).collect();
        check_sources(&s);
    }
    assert!(
        img.user != "root" && img.user != "0" && !img.user.starts_with("0:"),
        "runs as root"
    );
    assert!(img.volumes.contains(&"/data".to_owned()));
    assert_eq!(img.workdir, "/data");
    assert!(!img.healthcheck.is_empty(), "HEALTHCHECK");
    assert_eq!(
        Path::new(&img.binary).file_name().unwrap(),
        img.entrypoint[0].as_str(),
        "ENTRYPOINT runs the binary copied from the build stage"
    );
    // ENTRYPOINT and HEALTHCHECK name the binary without a directory: the image's
    // PATH must lead to it (scratch has no default PATH of its own).
    let path = img
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .expect("ENV PATH");
    let dir = Path::new(&img.binary).parent().unwrap();
    assert!(
        path.split(':').any(|p| Path::new(p) == dir),
        "PATH={path} does not contain {}",
        dir.display()
    );
    assert_eq!(
        img.healthcheck.first().map(String::as_str),
        Some(img.entrypoint[0].as_str()),
        "the HEALTHCHECK runs the binary (the image has no shell or curl)"
    );
    assert!(
        img.env
            .iter()
            .all(|(k, _)| !k.contains("TOKEN") && !k.contains("SECRET")),
        "a secret baked into the image"
    );
}

/// The environment variables config/offboard.toml reads secrets from.
fn secret_env_names(config_toml: &str) -> Vec<String> {
    let v: toml::Value = toml::from_str(config_toml).unwrap();
    let mut names = vec![
        v["crm"]["token_env"].as_str().unwrap().to_owned(),
        v["admin"]["token_env"].as_str().unwrap().to_owned(),
    ];
    for s in v["sources"].as_array().unwrap() {
        names.push(s["secrets_env"].as_str().unwrap().to_owned());
    }
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_command_line_and_env_start_a_healthy_service() {
    let img = image();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let etc = root.path().join("etc/offboard");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&etc).unwrap();
    let map = |s: &str| -> String {
        s.replace("/etc/offboard", etc.to_str().unwrap())
            .replace("/data", data.to_str().unwrap())
    };
    // The files the image COPYs, where the image has them.
    for (sources, dest) in &img.copies {
        let dest = PathBuf::from(map(dest));
        std::fs::create_dir_all(&dest).unwrap();
        for s in sources {
            let name = Path::new(s).file_name().unwrap();
            std::fs::copy(repo(s), dest.join(name)).unwrap();
        }
    }

    let port = free_port();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &img.env {
        let v = map(v);
        let v = if k == "OFFBOARD__SERVER__LISTEN" {
            let (host, image_port) = v.rsplit_once(':').unwrap();
            assert!(
                img.expose.contains(&image_port.parse().unwrap()),
                "EXPOSE {image_port}"
            );
            format!("{host}:{port}")
        } else {
            v
        };
        env.insert(k.clone(), v);
    }
    // What `docker run -e …` adds: the secrets the shipped config names.
    let config_text = std::fs::read_to_string(etc.join("offboard.toml")).unwrap();
    for name in secret_env_names(&config_text) {
        let value = if name.contains("WEBHOOK") {
            "whsec_Y29udGFpbmVyLXRlc3Q=".to_owned()
        } else {
            format!("container-test-{}", name.to_lowercase())
        };
        env.insert(name, value);
    }
    let args: Vec<String> = img.entrypoint[1..]
        .iter()
        .chain(&img.cmd)
        .map(|a| map(a))
        .collect();
    assert_eq!(img.entrypoint[0], "offboard");
    let mut child = Process::spawn_capturing(
        Command::new(env!("CARGO_BIN_EXE_offboard"))
            .args(&args)
            .env_clear()
            .envs(&env)
            .current_dir(map(&img.workdir))
            .stdin(Stdio::null()),
    );
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    child.wait_ready(&base, Duration::from_secs(30)).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    // The HEALTHCHECK's command, run as the engine runs it: same env and workdir.
    let healthcheck = |expect: i32| {
        let hc: Vec<String> = img.healthcheck[1..].iter().map(|a| map(a)).collect();
        let out = Command::new(env!("CARGO_BIN_EXE_offboard"))
            .args(&hc)
            .env_clear()
            .envs(&env)
            .current_dir(map(&img.workdir))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(expect),
            "HEALTHCHECK {hc:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    healthcheck(0);

    // The store lives in the volume.
    assert!(
        data.join("offboard.db").exists(),
        "the database is not in /data"
    );

    // `docker stop`: SIGTERM, then SIGKILL after 10 s.
    let status = child.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
    // Nothing listening: unhealthy, exit 1.
    healthcheck(1);
    let first = child.stdout().into_iter().next().expect("a log line");
    let line: serde_json::Value =
        serde_json::from_str(&first).unwrap_or_else(|e| panic!("not JSON ({e}): {first}"));
    assert_eq!(line["level"], "INFO");
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

#[test]
fn deploy_examples_match_the_service_contract() {
    let secrets = secret_env_names(&read("config/offboard.toml"));

    // Kubernetes: the ConfigMap's files are valid as offboard reads them.
    let configmap = read("deploy/kubernetes/configmap.yaml");
    let config_text = block_scalar(&configmap, "offboard.toml");
    let config = offboard_core::config::Config::from_toml(&config_text)
        .unwrap_or_else(|e| panic!("ConfigMap offboard.toml: {e}"));
    assert_eq!(
        secret_env_names(&config_text),
        secrets,
        "the ConfigMap names other secrets than config/offboard.toml"
    );
    let policy = block_scalar(&configmap, "policy.toml");
    offboard_core::policy::Policy::parse(&policy, "ConfigMap policy.toml")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.policy.file,
        Path::new("/etc/offboard/policy.toml"),
        "the policy path is where the ConfigMap is mounted"
    );

    let deployment = read("deploy/kubernetes/deployment.yaml");
    let probe_path = |probe: &str| -> String {
        deployment
            .lines()
            .skip_while(|l| !l.trim_start().starts_with(&format!("{probe}:")))
            .find_map(|l| l.trim().strip_prefix("path: "))
            .unwrap_or_else(|| panic!("no {probe} path"))
            .to_owned()
    };
    assert_eq!(probe_path("livenessProbe"), "/healthz");
    assert_eq!(probe_path("readinessProbe"), "/readyz");
    assert!(deployment.contains(&format!("containerPort: {}", config.server.listen.port())));
    assert!(deployment.contains("mountPath: /etc/offboard"));
    assert!(deployment.contains("runAsNonRoot: true"));
    let secret = read("deploy/kubernetes/secret.yaml");
    for name in secrets.iter().chain([&"OFFBOARD__STORE__URL".to_owned()]) {
        assert!(
            secret.contains(&format!("  {name}: ")),
            "Secret lacks {name}"
        );
    }
    let kustomization = read("deploy/kubernetes/kustomization.yaml");
    for file in [
        "configmap.yaml",
        "secret.yaml",
        "deployment.yaml",
        "service.yaml",
    ] {
        assert!(kustomization.contains(&format!("- {file}")), "{file}");
        assert!(repo(&format!("deploy/kubernetes/{file}")).exists());
    }

    // Compose: every secret is passed, the store is where it should be.
    let sqlite = read("deploy/docker-compose.sqlite.yml");
    let postgres = read("deploy/docker-compose.postgres.yml");
    for (file, text) in [("sqlite", &sqlite), ("postgres", &postgres)] {
        for name in &secrets {
            assert!(
                text.contains(&format!("{name}: ${{{name}")),
                "{file} lacks {name}"
            );
        }
        assert!(text.contains("context: .."), "{file} builds the repository");
    }
    assert!(sqlite.contains("offboard-data:/data"));
    assert!(postgres.contains("OFFBOARD__STORE__URL: postgres://"));
    assert!(postgres.contains("replicas: 2"));
    assert!(postgres.contains("condition: service_healthy"));
}
