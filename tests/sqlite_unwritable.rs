//! The SQLite store when it cannot write (ARCHITECTURE.md, "a 2xx means the event
//! is committed"): a real `offboard serve` on a store in a small tmpfs the test
//! mounts, filled up (disk full), locked by another connection's exclusive
//! transaction past the bound, and made read-only. Each webhook is then
//! answered 503 `store_unavailable` with `Retry-After` within the bound, or 202
//! and stored; once space (or writability) returns, webhooks are stored again.
//!
//! Needs root to mount; under `CI=true` its absence fails the test. The read-only
//! file is made so before the service opens it: under a running service root
//! writes through the open descriptors, and a remount is refused while they are open.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use offboard_core::store::JobFilter;
use offboard_testkit::{
    Timed,
    config::ServeConfig,
    free_port,
    process::{self, Process},
    sign, timed,
};
use serde_json::json;

const SECRET: &str = "whsec_c3FsaXRlLXVud3JpdGFibGUtdGVzdA==";
const BOUND: Duration = Duration::from_millis(1000);
const SLACK: Duration = Duration::from_millis(700);

/// A small tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        if !mounted {
            if std::env::var_os("CI").is_some() {
                panic!("CI: the SQLite disk-full test needs to mount a tmpfs (run as root)");
            }
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        Some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("create the filler");
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .output();
    }
}

async fn post(http: &reqwest::Client, base: &str, id: &str) -> Timed {
    let body = json!({
        "id": id,
        "type": "employee.terminated",
        "employee": { "email": "leaver@example.com", "name": "x".repeat(2000) },
        "termination": { "kind": "voluntary" },
    })
    .to_string();
    timed(sign::post(
        http,
        &format!("{base}/webhooks/hr"),
        SECRET,
        id,
        &body,
    ))
    .await
}

/// Posts `n` webhooks named `prefix-k`; every answer must be a stored 202 or a
/// prompt 503 store_unavailable. Returns the accepted ids and how many were refused.
async fn burst(
    server: &Process,
    http: &reqwest::Client,
    base: &str,
    prefix: &str,
    n: usize,
) -> (Vec<String>, usize) {
    let (mut accepted, mut refused) = (Vec::new(), 0);
    for k in 0..n {
        let id = format!("{prefix}-{k}");
        let a = post(http, base, &id).await;
        match a.status {
            202 => accepted.push(id),
            503 => {
                assert_eq!(
                    a.body["error"]["code"], "store_unavailable",
                    "{id}: {}",
                    a.body
                );
                assert_eq!(a.retry_after.as_deref(), Some("1"), "{id}");
                assert!(a.took <= BOUND + SLACK, "{id} took {:?}", a.took);
                refused += 1;
            }
            other => panic!(
                "{id}: {other} {}\nserver log:\n{}",
                a.body,
                server.stdout().join("\n")
            ),
        }
    }
    (accepted, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_locked_or_read_only_store_is_answered_503_and_nothing_acknowledged_is_lost() {
    let Some(disk) = SmallDisk::mount("4m") else {
        return;
    };
    let port = free_port();
    let dir = ServeConfig {
        port,
        store_url: Some(format!("sqlite://{}/offboard.db", disk.path().display())),
        crm_base_url: "http://127.0.0.1:9".into(),
        webhook_secret: SECRET.into(),
        admin_token: "unwritable-admin".into(),
        sell_token: "unwritable-crm".into(),
        policy: "version = 1\n[defaults]\nfallback_owner = \"ops@example.com\"\n[[rules]]\nname = \"all\"\naction = \"deactivate\"\n".into(),
        store_extra: format!("unavailable_after_ms = {}", BOUND.as_millis()),
        crm_extra: String::new(),
        tail: String::new(),
    }
    .write();
    let start = || async {
        let mut server = Process::spawn_capturing(
            process::serve(env!("CARGO_BIN_EXE_offboard"), &dir.config)
                .args(["--role", "receiver"]),
        );
        server
            .wait_ready(&format!("http://127.0.0.1:{port}"), Duration::from_secs(30))
            .await;
        server
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start().await;
    let http = reqwest::Client::new();
    let mut accepted = burst(&server, &http, &base, "before", 3).await.0;
    assert_eq!(accepted.len(), 3);

    // Disk full.
    let filler = disk.fill();
    let (full_ok, full_refused) = burst(&server, &http, &base, "full", 40).await;
    assert!(full_refused > 0, "a full disk refused nothing");
    accepted.extend(full_ok);
    std::fs::remove_file(&filler).expect("free the disk");
    let (freed_ok, freed_refused) = burst(&server, &http, &base, "freed", 3).await;
    assert_eq!(
        (freed_ok.len(), freed_refused),
        (3, 0),
        "writes did not resume"
    );
    accepted.extend(freed_ok);

    // Locked by another process's writer for longer than the bound (an operator's
    // sqlite3 shell holding a transaction, a backup tool): refused promptly, and
    // what was refused may still be stored once the lock goes (a retry is then a
    // duplicate); what was acknowledged is stored.
    let mut holder = {
        use sqlx::Connection;
        sqlx::SqliteConnection::connect(&dir_url(&disk))
            .await
            .expect("connect")
    };
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut holder)
        .await
        .expect("lock the store");
    let (locked_ok, locked_refused) = burst(&server, &http, &base, "locked", 3).await;
    let ready = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz");
    let ready_status = ready.status().as_u16();
    sqlx::query("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("unlock the store");
    drop(holder);
    assert_eq!(
        (locked_ok.len(), locked_refused),
        (0, 3),
        "a locked store acknowledged a webhook"
    );
    let (unlocked_ok, unlocked_refused) = burst(&server, &http, &base, "unlocked", 3).await;
    assert_eq!(
        (unlocked_ok.len(), unlocked_refused),
        (3, 0),
        "writes did not resume"
    );
    accepted.extend(unlocked_ok);
    server.kill();

    // The file made read-only (immutable: root cannot write it either) before the
    // service opens it: it starts, reads, and refuses every webhook promptly; made
    // writable again, the restarted service stores them.
    let db = disk.path().join("offboard.db");
    chattr("+i", &db);
    let mut server = start().await;
    let (ro_ok, ro_refused) = burst(&server, &http, &base, "read-only", 3).await;
    server.kill();
    chattr("-i", &db);
    assert_eq!(
        (ro_ok.len(), ro_refused),
        (0, 3),
        "a read-only store acknowledged a webhook"
    );
    let mut server = start().await;
    let (rw_ok, rw_refused) = burst(&server, &http, &base, "writable", 3).await;
    assert_eq!((rw_ok.len(), rw_refused), (3, 0), "writes did not resume");
    accepted.extend(rw_ok);
    server.kill();

    let store = offboard_core::store::open(&dir_url(&disk), "full")
        .await
        .expect("open the store");
    let stored: Vec<String> = store
        .list_jobs(&JobFilter {
            limit: Some(1000),
            ..JobFilter::default()
        })
        .await
        .expect("list")
        .into_iter()
        .map(|j| j.event_id)
        .collect();
    for id in &accepted {
        assert!(
            stored.contains(id),
            "{id} was acknowledged and is not stored"
        );
    }
    eprintln!(
        "disk full: {full_refused} of 40 refused; locked: 3 of 3 refused, /readyz {ready_status}; read-only file: 3 of 3 refused; {} acknowledged, all stored",
        accepted.len()
    );
}

/// Sets or clears the immutable flag (`chattr +i` / `-i`).
fn chattr(flag: &str, path: &Path) {
    let out = Command::new("chattr")
        .arg(flag)
        .arg(path)
        .output()
        .expect("run chattr");
    assert!(
        out.status.success(),
        "chattr {flag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn dir_url(disk: &SmallDisk) -> String {
    format!("sqlite://{}/offboard.db", disk.path().display())
}
