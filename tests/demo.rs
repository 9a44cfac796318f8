//! `offboard demo` runs to exit 0 with non-TTY output, and its final table (which
//! the demo itself checks against the sandbox's state) shows each leaver's outcome.

use std::process::Command;

#[test]
fn demo_runs_to_a_correct_final_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("demo")
        .env_remove("OFFBOARD_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let row = |email: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(email))
            .unwrap_or_else(|| panic!("no table row for {email}:\n{stdout}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let jane = row("jane.doe@example.com");
    assert!(
        jane.contains(&"deactivate".to_owned())
            && jane.contains(&"inactive".to_owned())
            && jane.last().unwrap() == "succeeded",
        "{jane:?}"
    );
    let sam = row("sam.seller@example.com");
    assert!(
        sam.contains(&"delete".to_owned())
            && sam.contains(&"deleted".to_owned())
            && sam.last().unwrap() == "succeeded",
        "{sam:?}"
    );
    let lee = row("lee.hold@example.com");
    assert!(
        lee.contains(&"deactivate".to_owned()) && lee.contains(&"inactive".to_owned()),
        "{lee:?}"
    );
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
    let out = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["demo", "--crm", "pipedrive"])
        .env_remove("OFFBOARD_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for email in [
        "jane.doe@example.com",
        "sam.seller@example.com",
        "lee.hold@example.com",
    ] {
        let row: Vec<&str> = stdout
            .lines()
            .find(|l| l.starts_with(email))
            .unwrap_or_else(|| panic!("no table row for {email}:\n{stdout}"))
            .split_whitespace()
            .collect();
        assert!(
            row.contains(&"deactivate")
                && row.contains(&"inactive")
                && row.last() == Some(&"succeeded"),
            "{row:?}"
        );
    }
    // Sam's involuntary exit asked for a delete; Pipedrive can't, and says so.
    assert!(
        stdout.contains("guard crm_cannot_delete: Pipedrive cannot delete users"),
        "{stdout}"
    );
    assert!(!stdout.contains("Admin step"), "no admin needed:\n{stdout}");
    assert!(stdout.contains("through Pipedrive's API"), "{stdout}");
    assert!(stdout.contains("reassigned l/c/o/d/t"), "{stdout}");
}

#[test]
fn hubspot_demo_deletes_by_api_and_asks_an_admin_to_deactivate() {
    let out = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["demo", "--crm", "hubspot"])
        .env_remove("OFFBOARD_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |email: &str| -> Vec<String> {
        stdout
            .lines()
            .find(|l| l.starts_with(email))
            .unwrap_or_else(|| panic!("no table row for {email}:\n{stdout}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let sam = row("sam.seller@example.com");
    assert!(sam.contains(&"deleted".to_owned()), "{sam:?}");
    let jane = row("jane.doe@example.com");
    assert!(jane.contains(&"inactive".to_owned()), "{jane:?}");
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
    let out = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["demo", "--crm", "salesforce"])
        .env_remove("OFFBOARD_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for email in [
        "jane.doe@example.com",
        "sam.seller@example.com",
        "lee.hold@example.com",
    ] {
        let row: Vec<&str> = stdout
            .lines()
            .find(|l| l.starts_with(email))
            .unwrap_or_else(|| panic!("no table row for {email}:\n{stdout}"))
            .split_whitespace()
            .collect();
        assert!(
            row.contains(&"deactivate")
                && row.contains(&"inactive")
                && row.last() == Some(&"succeeded"),
            "{row:?}"
        );
    }
    // Sam's involuntary exit asked for a delete; Salesforce can't, and says so.
    assert!(
        stdout.contains("guard crm_cannot_delete: Salesforce cannot delete users"),
        "{stdout}"
    );
    assert!(!stdout.contains("Admin step"), "no admin needed:\n{stdout}");
    assert!(stdout.contains("through Salesforce's API"), "{stdout}");
    assert!(stdout.contains("reassigned l/c/o/d/t/tk"), "{stdout}");
}
