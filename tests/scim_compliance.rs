//! A third-party SCIM 2.0 compliance checker against the real `offboard serve`:
//! scim2-tester (python-scim project, pinned in `.ci/scim-tester-requirements.txt`)
//! run by `.ci/scim-compliance.py` against `/scim/v2` of a `--role receiver`
//! process on a temp SQLite store. The test passes when the driver does: no check
//! failed except those its allow-list expects because they exercise what offboard
//! declares unsupported (DESIGN.md §10).
//!
//! The driver's whole report (one line per check, then the totals) is printed —
//! `cargo test --test scim_compliance -- --nocapture` shows it — and written to
//! `$CARGO_TARGET_TMPDIR/scim-compliance.txt`.
//!
//! The checker runs on the Python named by `OFFBOARD_SCIM_TESTER_PYTHON`, else on
//! the venv `.ci/python-tool-setup scim-tester` makes in the target directory. Without either,
//! a developer's run prints that it skipped and passes; under CI (`CI` set to
//! anything but `false` or `0`) it fails instead, so a green CI ran the checker.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use offboard_testkit::process::{self, Process, free_port};
use offboard_testkit::python_tool::PythonTool;

const SCIM_TOKEN: &str = "scim-compliance-token-5b1e07";
const ADMIN_TOKEN: &str = "scim-compliance-admin-9d2c44";
const CRM_TOKEN: &str = "scim-compliance-crm-unused";
const CHECKER: PythonTool = PythonTool {
    name: "scim-tester",
    python_env: "OFFBOARD_SCIM_TESTER_PYTHON",
    import_check: "import scim2_tester, scim2_client.engines.httpx2",
};

fn write_config(dir: &Path, port: u16) -> PathBuf {
    std::fs::write(
        dir.join("policy.toml"),
        "version = 1\n[defaults]\nfallback_owner = \"sales-ops@example.com\"\nat = \"now\"\n\
         [[rules]]\nname = \"everyone\"\naction = \"deactivate\"\n",
    )
    .unwrap();
    // A receiver runs no worker, so the CRM is never called: any URL will do.
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
[store]
url = "sqlite://{db}"
[crm]
base_url = "http://127.0.0.1:9"
token_env = "SCIM_COMPLIANCE_CRM_TOKEN"
admin_email = "admin@example.com"
[policy]
file = "{dir}/policy.toml"
[admin]
token_env = "SCIM_COMPLIANCE_ADMIN_TOKEN"
[scim]
token_env = "SCIM_COMPLIANCE_SCIM_TOKEN"
"#,
        db = dir.join("offboard.db").display(),
        dir = dir.display(),
    );
    let path = dir.join("offboard.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn scim2_tester_finds_no_unexpected_failure() {
    let Some(python) = CHECKER.python_or_skip(env!("CARGO_TARGET_TMPDIR")) else {
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port);
    let mut child = Process::spawn_capturing(
        process::serve(env!("CARGO_BIN_EXE_offboard"), &config)
            .args(["--role", "receiver"])
            .env("SCIM_COMPLIANCE_CRM_TOKEN", CRM_TOKEN)
            .env("SCIM_COMPLIANCE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("SCIM_COMPLIANCE_SCIM_TOKEN", SCIM_TOKEN),
    );
    let base = format!("http://127.0.0.1:{port}");
    child.wait_ready(&base, Duration::from_secs(30)).await;

    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/scim-compliance.py");
    let scim_base = format!("{base}/scim/v2");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(&driver)
            .arg(&scim_base)
            .args(["--token-env", "OFFBOARD_SCIM_COMPLIANCE_TOKEN"])
            .env("OFFBOARD_SCIM_COMPLIANCE_TOKEN", SCIM_TOKEN)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap_or_else(|e| panic!("run {} {}: {e}", python.display(), driver.display()))
    })
    .await
    .unwrap();

    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = format!("{stdout}{stderr}");
    println!("{report}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scim-compliance.txt");
    std::fs::write(&path, report.as_bytes())
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));

    child.kill();
    let server_log = |lines: Vec<String>| {
        let skip = lines.len().saturating_sub(40);
        lines[skip..].join("\n")
    };
    assert!(
        out.status.success(),
        "the SCIM compliance checker reported failures or could not run ({}); its report is above \
         and in {}.\noffboard's last log lines:\n{}\n{}",
        out.status,
        path.display(),
        server_log(child.stdout()),
        server_log(child.stderr()),
    );
    assert!(
        stdout.contains("scim-compliance totals:"),
        "the driver printed no totals:\n{report}"
    );
}
