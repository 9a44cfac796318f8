//! `offboard demo` runs to exit 0 with non-TTY output, and its final table (which
//! the demo itself checks against the sandbox's state) shows each leaver's outcome.

use std::process::Command;

const LEAVERS: [&str; 3] = [
    "jane.doe@example.com",
    "sam.seller@example.com",
    "lee.hold@example.com",
];

/// Runs `offboard demo` with `args`; its stdout once it exited 0.
fn demo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("demo")
        .args(args)
        .env_remove("OFFBOARD_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The words of `email`'s row in the final table.
fn row(stdout: &str, email: &str) -> Vec<String> {
    stdout
        .lines()
        .find(|l| l.starts_with(email))
        .unwrap_or_else(|| panic!("no table row for {email}:\n{stdout}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn has(row: &[String], word: &str) -> bool {
    row.iter().any(|w| w == word)
}

/// A CRM whose API deactivates users and cannot delete them: every leaver ends
/// deactivated by offboard itself, Sam's delete is turned into a deactivation
/// with the guard's reason, and no admin is needed.
fn assert_deactivated_by_api_never_deleted(stdout: &str, vendor: &str) {
    for email in LEAVERS {
        let r = row(stdout, email);
        assert!(
            has(&r, "deactivate") && has(&r, "inactive") && r.last().unwrap() == "succeeded",
            "{r:?}"
        );
    }
    assert!(
        stdout.contains(&format!(
            "guard crm_cannot_delete: {vendor} cannot delete users"
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("Admin step"), "no admin needed:\n{stdout}");
    assert!(
        stdout.contains(&format!("through {vendor}'s API")),
        "{stdout}"
    );
}

#[test]
fn demo_runs_to_a_correct_final_table() {
    let stdout = demo(&[]);
    // The notifications it sent, as its local SMTP and webhook catchers got them.
    let delivered = stdout
        .lines()
        .find(|l| l.starts_with("Notifications: "))
        .unwrap_or_else(|| panic!("no notifications line:\n{stdout}"));
    let words: Vec<&str> = delivered.split_whitespace().collect();
    assert_eq!(words[1], words[3], "all delivered: {delivered}");
    assert!(
        stdout.contains("to max.manager@example.com") && stdout.contains("are now yours"),
        "{stdout}"
    );
    assert!(
        stdout.contains("to admin@example.com") && stdout.contains("please DELETE"),
        "{stdout}"
    );
    assert!(stdout.contains("to legal@example.com"), "{stdout}");
    assert!(
        stdout.contains("offboard decided to deactivate"),
        "{stdout}"
    );
    let jane = row(&stdout, "jane.doe@example.com");
    assert!(
        has(&jane, "deactivate") && has(&jane, "inactive") && jane.last().unwrap() == "succeeded",
        "{jane:?}"
    );
    let sam = row(&stdout, "sam.seller@example.com");
    assert!(
        has(&sam, "delete") && has(&sam, "deleted") && sam.last().unwrap() == "succeeded",
        "{sam:?}"
    );
    let lee = row(&stdout, "lee.hold@example.com");
    assert!(has(&lee, "deactivate") && has(&lee, "inactive"), "{lee:?}");
    assert!(
        stdout.contains("guard never_delete_under_legal_hold"),
        "{stdout}"
    );
    assert!(stdout.contains("Admin step"), "the admin's part is shown");
    assert!(stdout.contains("Every open record moved"), "{stdout}");
    // Non-TTY progress degrades to plain lines.
    assert!(stdout.contains("records reassigned"), "{stdout}");
}

#[test]
fn pipedrive_demo_deactivates_every_seat_through_the_api() {
    let stdout = demo(&["--crm", "pipedrive"]);
    assert_deactivated_by_api_never_deleted(&stdout, "Pipedrive");
    assert!(stdout.contains("reassigned l/c/o/d/t"), "{stdout}");
}

#[test]
fn hubspot_demo_deletes_by_api_and_asks_an_admin_to_deactivate() {
    let stdout = demo(&["--crm", "hubspot"]);
    let sam = row(&stdout, "sam.seller@example.com");
    assert!(has(&sam, "deleted"), "{sam:?}");
    let jane = row(&stdout, "jane.doe@example.com");
    assert!(has(&jane, "inactive"), "{jane:?}");
    assert!(
        stdout.contains(
            "Seat step — offboard itself deleted sam.seller@example.com through HubSpot's API"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("Admin step — this is what a HubSpot admin does"),
        "{stdout}"
    );
    assert!(stdout.contains("reassigned c/o/d/t/tk"), "{stdout}");
}

#[test]
fn salesforce_demo_deactivates_by_api_and_never_deletes() {
    let stdout = demo(&["--crm", "salesforce"]);
    assert_deactivated_by_api_never_deleted(&stdout, "Salesforce");
    assert!(stdout.contains("reassigned l/c/o/d/t/tk"), "{stdout}");
}
