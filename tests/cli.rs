//! The command line's contract: exit codes (0 ok, 2 usage/config, 1 other) and
//! one clear line naming the file, key or position that is wrong.

use std::process::{Command, Output};

fn offboard(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_offboard"));
    cmd.args(args).env_remove("OFFBOARD_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn policy_check_accepts_the_example_and_names_line_and_column() {
    let ok = offboard(&["policy", "check", "--policy", "config/policy.toml"], &[]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "version = 1\n[[rules]]\nname = \"x\"\naction = \"obliterate\"\n",
    )
    .unwrap();
    let out = offboard(&["policy", "check", "--policy", bad.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:4:10", bad.display())), "{err}");
}

#[test]
fn policy_check_warns_about_resources_the_configured_crm_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "version = 1\n[defaults]\nfallback_owner = \"ops@example.com\"\n[[rules]]\nname = \"all\"\naction = \"deactivate\"\nreassign = [\"contacts\", \"organizations\"]\n",
    )
    .unwrap();
    let policy = policy.to_str().unwrap();
    // Sell keeps companies among contacts: organizations is not its object.
    let sell = offboard(&["policy", "check", "--policy", policy], &[]);
    assert_eq!(sell.status.code(), Some(0), "{}", stderr(&sell));
    assert!(
        stderr(&sell)
            .contains("warning: rule \"all\" reassigns organizations, which Sell does not have"),
        "{}",
        stderr(&sell)
    );
    let pipedrive = offboard(
        &[
            "policy",
            "check",
            "--config",
            "config/offboard.pipedrive.toml",
            "--policy",
            policy,
        ],
        &[],
    );
    assert_eq!(pipedrive.status.code(), Some(0), "{}", stderr(&pipedrive));
    assert!(
        !stderr(&pipedrive).contains("warning"),
        "{}",
        stderr(&pipedrive)
    );
}

#[test]
fn policy_explain_prints_json_with_rule_action_guards_and_plan() {
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(&event, r#"{"id":"e","type":"employee.terminated","employee":{"email":"a@example.com"},"termination":{"kind":"involuntary"},"legal_hold":true}"#).unwrap();
    let user = dir.path().join("user.json");
    std::fs::write(&user, r#"{"data":{"id":7,"name":"A","email":"a@example.com","status":"active","role":"user","reports_to":null},"meta":{"type":"user"}}"#).unwrap();
    let out = offboard(
        &[
            "policy",
            "explain",
            "--policy",
            "config/policy-demo.toml",
            "--event",
            event.to_str().unwrap(),
            "--user",
            user.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rule"], "involuntary");
    assert_eq!(v["action"], "deactivate", "legal hold guard: {v:#}");
    let hold = v["guards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["guard"] == "never_delete_under_legal_hold")
        .unwrap();
    assert_eq!(hold["changed"], true);
    assert!(v["plan"].is_object());
}

/// The operator's question: what will the worker do with this leaver? For an
/// involuntary leaver who is an ordinary user, the worker counts the reportees
/// and deletes when there are none; explain says the same (and that the count is
/// still made), and `--reportees N` gives the answer for a manager.
#[test]
fn policy_explain_decides_as_the_worker_and_takes_the_reportee_count() {
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(&event, r#"{"id":"e","type":"employee.terminated","employee":{"email":"a@example.com"},"termination":{"kind":"involuntary"}}"#).unwrap();
    let user = dir.path().join("user.json");
    std::fs::write(&user, r#"{"data":{"id":7,"name":"A","email":"a@example.com","status":"active","role":"user","reports_to":3}}"#).unwrap();
    let explain = |extra: &[&str]| {
        let mut args = vec![
            "policy",
            "explain",
            "--policy",
            "config/policy-demo.toml",
            "--event",
            event.to_str().unwrap(),
            "--user",
            user.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = offboard(&args, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };

    let unknown = explain(&[]);
    assert_eq!(unknown["rule"], "involuntary");
    assert_eq!(unknown["action"], "delete", "{unknown:#}");
    let assumptions = unknown["assumptions"].to_string();
    assert!(assumptions.contains("--reportees"), "{assumptions}");
    let checks = unknown["checked_at_run_time"].to_string();
    assert!(checks.contains("read again"), "{checks}");

    let none = explain(&["--reportees", "0"]);
    assert_eq!(none["action"], "delete");
    assert_eq!(none["assumptions"], serde_json::json!([]), "{none:#}");

    let manager = explain(&["--reportees", "2"]);
    assert_eq!(manager["action"], "review", "{manager:#}");
    let guard = manager["guards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["guard"] == "never_delete_manager_with_reportees")
        .unwrap();
    assert_eq!(guard["changed"], true);

    // A count only means something for a known user.
    let out = offboard(
        &[
            "policy",
            "explain",
            "--policy",
            "config/policy-demo.toml",
            "--event",
            event.to_str().unwrap(),
            "--reportees",
            "1",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--user"), "{}", stderr(&out));
}

#[test]
fn serve_refuses_bad_configs_with_exit_2_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    // No such config file.
    let out = offboard(
        &[
            "serve",
            "--config",
            dir.path().join("nope.toml").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nope.toml"), "{}", stderr(&out));

    // A key of the wrong type.
    let cfg = dir.path().join("bad-type.toml");
    std::fs::write(&cfg, "[server]\nmax_body_bytes = \"lots\"\n").unwrap();
    let out = offboard(&["serve", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("server.max_body_bytes"),
        "{}",
        stderr(&out)
    );

    // A missing secret names the key and the variable.
    let policy = dir.path().join("policy.toml");
    std::fs::copy("config/policy.toml", &policy).unwrap();
    let cfg = dir.path().join("no-secret.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nurl = \"sqlite://{}/db\"\n[crm]\ntoken_env = \"OFFBOARD_CLI_TEST_UNSET\"\nadmin_email = \"a@example.com\"\n[policy]\nfile = \"{}\"\n",
            dir.path().display(),
            policy.display()
        ),
    )
    .unwrap();
    let out = offboard(&["serve", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("crm.token_env") && err.contains("OFFBOARD_CLI_TEST_UNSET"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");

    // An invalid policy stops start-up with the policy's file:line:col.
    std::fs::write(
        &policy,
        "version = 1\n[[rules]]\nname = \"x\"\naction = \"obliterate\"\n",
    )
    .unwrap();
    let out = offboard(
        &["serve", "--config", cfg.to_str().unwrap()],
        &[
            ("OFFBOARD_CLI_TEST_UNSET", "tok"),
            ("OFFBOARD_ADMIN_TOKEN", "adm"),
            ("HR_WEBHOOK_SECRETS", "s"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("{}:4:10", policy.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = offboard(&["no-such-command"], &[]);
    assert_eq!(out.status.code(), Some(2));
}
