//! `offboard bench soak`, shortened so it cannot rot: 24 s of webhooks (hostile
//! ones among them) against a receiver and a worker process, a Sell sandbox with
//! 10 % faults, the worker SIGKILLed every 10 s, a SIGHUP every 3 s (one with an
//! invalid policy file), then every end check. The real run is ten minutes
//! (RELIABILITY.md); this one only proves the machinery and its checks work.

use std::process::Command;

#[test]
fn a_short_soak_passes_every_check() {
    let out = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args([
            "bench",
            "soak",
            "--minutes",
            "0.4",
            "--rate",
            "4",
            "--kill-every-secs",
            "10",
            "--reload-every-secs",
            "3",
            "--lease-secs",
            "3",
            "--latency-ms",
            "10",
            "--drain-secs",
            "15",
            "--rss-every-secs",
            "1",
            // Windows of six seconds, a worker sampled from 5 s after its start:
            // noisier than the ten-minute run's minutes, whose goal is ±10 %.
            "--rss-tolerance",
            "0.25",
        ])
        .env_remove("OFFBOARD_LOG")
        .output()
        .expect("run offboard bench soak");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for check in [
        "every genuine webhook answered 2xx",
        "every hostile webhook got its 4xx",
        "no accepted event lost, each stored once",
        "hostile webhooks stored nothing",
        "every job where its leaver's kind says",
        "no job left running",
        "the CRM agrees with every job",
        "policy reloads answered in every process's log",
        "every decision made with the policy in force",
        "receiver RSS steady",
        "worker RSS steady across restarts",
        "nothing panicked",
        "processes: every restart ready",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("| {check}")) && l.contains("| pass |")),
            "check {check:?} not passed:\n{stdout}"
        );
    }
    assert!(stdout.contains("checks passed"), "{stdout}");
    // The chaos happened: at least two kills and a refused reload.
    let kills = stdout
        .lines()
        .find(|l| l.starts_with("| worker SIGKILLs"))
        .and_then(|l| l.split('|').nth(2))
        .and_then(|v| v.split('/').next())
        .and_then(|n| n.trim().parse::<u32>().ok());
    assert!(kills.is_some_and(|k| k >= 2), "kills: {kills:?}\n{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("| SIGHUPs") && l.contains("/ 1 |")),
        "{stdout}"
    );
}
