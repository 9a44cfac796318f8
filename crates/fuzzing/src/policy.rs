//! The policy target: a policy file parsed, and when it loads, asked to decide for
//! every kind of leaver the fixtures below describe.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use offboard_core::{
    config::CrmKind,
    crm::capabilities_of,
    domain::{CrmUser, OffboardingEvent},
    policy::{Action, Decision, Facts, Policy, explain_json, explain_text},
};
use serde_json::{Value, json};

/// What the fixtures vary: the event (kind, legal hold, far-off and absent dates,
/// a rehire) and what the CRM says (no user, a user, an admin, reportees, records).
fn events() -> &'static [OffboardingEvent] {
    static EVENTS: OnceLock<Vec<OffboardingEvent>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let employee = json!({
            "id": "E1", "email": "sam.seller@example.com", "name": "Sam Seller",
            "department": "Sales", "country": "DE", "manager_email": "max.manager@example.com"
        });
        let event = |kind: &str, effective: Value, hold: bool, rehire: Value| {
            json!({
                "id": format!("evt_{kind}"), "type": "employee.terminated",
                "occurred_at": "2026-12-01T10:05:00Z", "employee": employee,
                "termination": { "effective_at": effective, "kind": kind, "rehire_eligible": rehire },
                "legal_hold": hold
            })
        };
        let mut all = vec![
            event("involuntary", json!("2026-12-01T12:00:00Z"), false, json!(false)),
            event("voluntary", json!("2027-01-31T17:00:00Z"), false, json!(true)),
            event("involuntary", json!("2026-12-01T12:00:00Z"), true, Value::Null),
            event("layoff", json!("9999-12-31T23:59:59Z"), false, Value::Null),
            event("deceased", Value::Null, false, Value::Null),
            json!({"id": "evt_min", "type": "employee.terminated", "employee": {"email": "a@b.co"}}),
        ];
        for kind in ["employee.rehired", "employee.termination_cancelled"] {
            all.push(json!({"id": kind, "type": kind, "employee": employee}));
        }
        all.iter()
            .filter_map(|v| OffboardingEvent::from_json(v, None).ok())
            .collect()
    })
}

fn users() -> &'static [Option<CrmUser>] {
    static USERS: OnceLock<Vec<Option<CrmUser>>> = OnceLock::new();
    USERS.get_or_init(|| {
        let user = |role: &str, status: &str, team: Value| {
            serde_json::from_value(json!({
                "id": 7, "name": "Sam Seller", "email": "sam.seller@example.com",
                "status": status, "role": role, "reports_to": 3, "team_name": team
            }))
            .ok()
        };
        vec![
            None,
            user("user", "active", json!("Sales EMEA")),
            user("admin", "active", Value::Null),
            user("user", "inactive", Value::Null),
        ]
    })
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
}

/// A policy file (UTF-8: [`Policy::load`] reads text). An error says where, inside
/// the text; a policy that loads decides for every fixture without failing, its
/// guards never turn a safer action into a delete, and each decision is stored
/// and read back unchanged (the job keeps it as its plan).
pub fn policy_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let policy = match Policy::parse(text, "fuzz.toml") {
        Ok(p) => p,
        Err(e) => {
            let lines = text.split('\n').count();
            assert!(
                e.line >= 1 && e.line <= lines && e.col >= 1,
                "error at {}:{} in a text of {lines} lines: {e}",
                e.line,
                e.col
            );
            let line = text.split('\n').nth(e.line - 1).unwrap_or_default();
            assert!(
                e.col <= line.chars().count() + 1,
                "column {} past the end of line {} ({line:?}): {e}",
                e.col,
                e.line
            );
            assert!(e.to_string().starts_with("fuzz.toml:"), "{e}");
            return;
        }
    };
    let _ = (policy.version(), policy.fallback_owner());
    let _ = policy.rule_names().count();
    let kinds = [
        CrmKind::ZendeskSell,
        CrmKind::Pipedrive,
        CrmKind::Hubspot,
        CrmKind::Salesforce,
    ];
    for kind in kinds {
        let _ = policy.resources_missing_in(capabilities_of(kind));
    }
    let crms: Vec<_> = std::iter::once(None)
        .chain(kinds.map(|k| Some(capabilities_of(k))))
        .collect();
    let counts = [(None, None), (Some(0), Some(0)), (Some(12), Some(2))];
    // Every event with every user; the CRM and the counts rotate through the grid.
    for (i, event) in events().iter().enumerate() {
        for (j, user) in users().iter().enumerate() {
            let (records, reportees) = counts[(i + j) % counts.len()];
            let facts = Facts {
                event,
                user: user.as_ref(),
                owned_open_records: records,
                active_reportees: reportees,
                crm: crms[(i + j) % crms.len()],
                now: now(),
            };
            check_decision(&policy.decide(&facts));
            check_decision(&policy.decide_follow_up_delete(&facts));
        }
    }
}

fn check_decision(d: &Decision) {
    if d.action == Action::Delete {
        assert_eq!(
            d.rule_action,
            Action::Delete,
            "a guard made a delete: {d:?}"
        );
    }
    let _ = explain_text(d);
    let _ = explain_json(d);
    let stored = serde_json::to_string(d).unwrap_or_else(|e| panic!("{d:?}: {e}"));
    match serde_json::from_str::<Decision>(&stored) {
        Ok(read) => assert_eq!(&read, d, "{stored} reads back different"),
        Err(e) => panic!("a decision does not read back from the store: {e}\n{stored}"),
    }
}
