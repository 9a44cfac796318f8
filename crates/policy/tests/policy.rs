//! The policy engine at its API boundary: broken files must be rejected with the
//! exact position and a useful message, and (event, CRM user) pairs must give the
//! decision the policy author meant. Both are tables, so adding a case is one line
//! and the tests stay off the engine's internals.

use chrono::{DateTime, Duration, Utc};
use offboard_domain::OffboardingEvent;
use offboard_domain::{CrmUser, UserRole, UserStatus};
use offboard_policy::{
    Action, Decision, Facts, GUARD_ADMIN, GUARD_LEGAL_HOLD, GUARD_REPORTEES, NO_RULE_MATCHED,
    Policy, ReassignTo, Timing, explain_json, explain_text,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------
// policy check: broken files
// ---------------------------------------------------------------------------------

/// Three lines every broken file below starts with, so rules begin on line 4.
const PRELUDE: &str = "version = 1\n[defaults]\nfallback_owner = \"ops@example.com\"\n";

/// Checks that `text` is rejected at `line:col` with a message containing `fragment`;
/// says what differs otherwise.
fn check_error(text: &str, line: usize, col: usize, fragment: &str) -> Result<(), String> {
    let err = match Policy::parse(text, "broken.toml") {
        Ok(_) => return Err(format!("accepted a broken policy:\n{text}")),
        Err(e) => e,
    };
    let shown = err.to_string();
    if (err.line, err.col) != (line, col) {
        return Err(format!(
            "expected {line}:{col} for {fragment:?}, got {shown}\n{text}"
        ));
    }
    if !shown.starts_with(&format!("broken.toml:{line}:{col}: ")) {
        return Err(format!("Display is not file:line:col: message: {shown}"));
    }
    if !err.message.contains(fragment) {
        return Err(format!("message lacks {fragment:?}: {shown}"));
    }
    Ok(())
}

fn with_prelude(rules: &str) -> String {
    format!("{PRELUDE}{rules}")
}

#[test]
fn policy_check_rejects_broken_files_with_positions() {
    let p = with_prelude;
    #[rustfmt::skip]
    let cases: Vec<(String, usize, usize, &str)> = vec![
        // the file itself
        ("[[rules]]\nname = \"a\"\naction = \"deactivate\"\n".into(), 1, 1, "missing `version = 1`"),
        ("version = 2\n".into(), 1, 11, "unsupported policy version 2"),
        ("version = \"1\"\n".into(), 1, 11, "`version` expects the number 1, found string"),
        (p("[[rule]]\nname = \"a\"\naction = \"deactivate\"\n"), 4, 3, "unknown key `rule` in the policy; expected one of: version, defaults, rules (did you mean `rules`?)"),
        (p("[rules]\nname = \"a\"\naction = \"deactivate\"\n"), 4, 1, "write [[rules]], not [rules]"),
        (PRELUDE.into(), 4, 1, "no rules: add at least one [[rules]] table"),
        (p("[[rules]\nname = \"a\"\n"), 4, 9, "invalid TOML: unclosed array table, expected `]`"),
        ("version = 1\n[defaults]\nfallback_owner = \"ops@example.com\"\nfallback = true\n[[rules]]\nname = \"a\"\naction = \"deactivate\"\n".into(), 4, 1, "unknown key `fallback` in [defaults]"),
        ("version = 1\n[defaults]\nfallback_owner = \"ops\"\n[[rules]]\nname = \"a\"\naction = \"deactivate\"\n".into(), 3, 18, "bad fallback_owner: \"ops\" is not an e-mail address"),
        // rule keys
        (p("[[rules]]\nname = \"a\"\nacton = \"delete\"\n"), 6, 1, "unknown key `acton` in [[rules]]; expected one of: name, when, action, at, delete_after, reassign_to, reassign, open_only, notify, notify_new_owners, seat_first (did you mean `action`?)"),
        (p("[[rules]]\nname = \"a\"\n"), 4, 1, "rule \"a\" is missing `action`"),
        (p("[[rules]]\naction = \"review\"\n"), 4, 1, "rule is missing `name`"),
        (p("[[rules]]\nname = \"  \"\naction = \"review\"\n"), 5, 8, "rule `name` is empty"),
        (p("[[rules]]\nname = \"a\"\nwhen = { kind = \"voluntary\" }\naction = \"review\"\n[[rules]]\nname = \"a\"\naction = \"review\"\n"), 9, 8, "duplicate rule name \"a\": already used on line 5"),
        (p("[[rules]]\nname = \"a\"\naction = \"remove\"\n"), 6, 10, "bad action \"remove\": expected \"deactivate\", \"delete\" or \"review\""),
        (p("[[rules]]\nname = \"a\"\naction = \"deactivate\"\nat = \"later\"\n"), 7, 6, "bad at \"later\": expected \"effective\""),
        (p("[[rules]]\nname = \"a\"\naction = \"deactivate\"\ndelete_after = \"90\"\n"), 7, 16, "bad duration \"90\": expected a whole number and a unit (w, d, h, m), e.g. \"90d\""),
        (p("[[rules]]\nname = \"a\"\naction = \"deactivate\"\ndelete_after = \"3mo\"\n"), 7, 16, "bad duration \"3mo\""),
        (p("[[rules]]\nname = \"a\"\naction = \"deactivate\"\ndelete_after = \"0d\"\n"), 7, 16, "must be longer than zero"),
        (p("[[rules]]\nname = \"a\"\naction = \"delete\"\ndelete_after = \"90d\"\n"), 7, 16, "delete_after only applies to action = \"deactivate\""),
        (p("[[rules]]\nname = \"a\"\naction = \"delete\"\nseat_first = true\n"), 7, 14, "deletes the seat, so it cannot go first"),
        (p("[[rules]]\nname = \"a\"\naction = \"deactivate\"\nseat_first = \"yes\"\n"), 7, 14, "seat_first"),
        (p("[[rules]]\nname = \"a\"\naction = \"deactivate\"\nreassign_to = \"boss\"\n"), 7, 15, "bad reassign_to \"boss\": expected \"manager\", \"fallback\" or \"user:<email>\""),
        (p("[[rules]]\nname = \"a\"\naction = \"deactivate\"\nreassign_to = \"user:boss\"\n"), 7, 15, "bad reassign_to \"user:boss\": \"boss\" is not an e-mail address"),
        (p("[[rules]]\nname = \"a\"\naction = \"deactivate\"\nreassign = [\"leads\", \"lead\"]\n"), 7, 22, "unknown resource \"lead\" (expected leads, contacts, deals or tasks; organizations and tickets too, where the CRM has them)"),
        (p("[[rules]]\nname = \"a\"\naction = \"delete\"\nreassign = [\"leads\", \"contacts\"]\n"), 7, 12, "deletes the seat but does not reassign deals"),
        (p("[[rules]]\nname = \"a\"\naction = \"deactivate\"\nopen_only = \"yes\"\n"), 7, 13, "`open_only` expects true or false, found string"),
        (p("[[rules]]\nname = \"a\"\naction = \"deactivate\"\nnotify = [\"legal\"]\n"), 7, 11, "bad notify address: \"legal\" is not an e-mail address"),
        // matchers
        (p("[[rules]]\nname = \"a\"\nwhen = { kind = [\"voluntary\", \"fired\"] }\naction = \"review\"\n"), 6, 31, "bad kind \"fired\": expected \"voluntary\", \"involuntary\""),
        (p("[[rules]]\nname = \"a\"\nwhen = { type = \"employee.left\" }\naction = \"review\"\n"), 6, 17, "bad type \"employee.left\": expected \"employee.terminated\""),
        (p("[[rules]]\nname = \"a\"\nwhen = { dept = \"Sales\" }\naction = \"review\"\n"), 6, 10, "unknown key `dept` in `when`; expected one of: type, kind, rehire_eligible, legal_hold, department, country, email_domain, crm_role, crm_team, owned_open_records"),
        (p("[[rules]]\nname = \"a\"\nwhen = { legal_hold = \"yes\" }\naction = \"review\"\n"), 6, 23, "`legal_hold` expects true or false, found string"),
        (p("[[rules]]\nname = \"a\"\nwhen = { country = [] }\naction = \"review\"\n"), 6, 20, "`country` is an empty list, which matches nothing"),
        (p("[[rules]]\nname = \"a\"\nwhen = { email_domain = \"example\" }\naction = \"review\"\n"), 6, 25, "bad email_domain \"example\": expected a domain"),
        (p("[[rules]]\nname = \"a\"\nwhen = { crm_role = \"owner\" }\naction = \"review\"\n"), 6, 21, "bad crm_role \"owner\": expected \"user\" or \"admin\""),
        (p("[[rules]]\nname = \"a\"\nwhen = { owned_open_records = { gt = 500, lt = 50 } }\naction = \"review\"\n"), 6, 31, "range > 500 and < 50 matches no number"),
        (p("[[rules]]\nname = \"a\"\nwhen = { owned_open_records = { above = 5 } }\naction = \"review\"\n"), 6, 33, "unknown key `above` in the `owned_open_records` range; expected one of: gt, gte, lt, lte, eq"),
        (p("[[rules]]\nname = \"a\"\nwhen = { owned_open_records = { gte = -1 } }\naction = \"review\"\n"), 6, 39, "expects a whole number of at least 0, found -1"),
        (p("[[rules]]\nname = \"a\"\nwhen = { owned_open_records = \"many\" }\naction = \"review\"\n"), 6, 31, "a whole number or a range table"),
        (p("[[rules]]\nname = \"a\"\nwhen = []\naction = \"review\"\n"), 6, 8, "`when` is an empty list of alternatives"),
        (p("[[rules]]\nname = \"a\"\nwhen = { type = \"employee.rehired\" }\naction = \"deactivate\"\n"), 7, 10, "rules for rehires and cancelled terminations may only use action = \"review\""),
        // the policy as a whole
        (p("[[rules]]\nname = \"catch-all\"\naction = \"deactivate\"\n[[rules]]\nname = \"late\"\nwhen = { kind = \"layoff\" }\naction = \"delete\"\n"), 7, 1, "rule \"late\" is unreachable: rule \"catch-all\" above it (line 4) has no `when`"),
        (p("[[rules]]\nname = \"empty when\"\nwhen = {}\naction = \"deactivate\"\n[[rules]]\nname = \"late\"\naction = \"review\"\n"), 8, 1, "rule \"late\" is unreachable: rule \"empty when\" above it (line 4)"),
        (p("[[rules]]\nname = \"alt\"\nwhen = [{ kind = \"layoff\" }, {}]\naction = \"deactivate\"\n[[rules]]\nname = \"late\"\nwhen = { legal_hold = true }\naction = \"review\"\n"), 8, 1, "rule \"late\" is unreachable"),
        ("version = 1\n[[rules]]\nname = \"a\"\naction = \"deactivate\"\n".into(), 3, 8, "missing defaults.fallback_owner: rule \"a\" reassigns to the manager (the default)"),
        ("version = 1\n[[rules]]\nname = \"a\"\nwhen = { kind = \"layoff\" }\naction = \"deactivate\"\nreassign_to = \"user:x@example.com\"\n[[rules]]\nname = \"b\"\naction = \"review\"\nreassign_to = \"fallback\"\n".into(), 10, 15, "missing defaults.fallback_owner: rule \"b\" reassigns to the fallback owner"),
        ("version = 1\n[defaults]\nreassign_to = \"manager\"\n[[rules]]\nname = \"a\"\naction = \"deactivate\"\n".into(), 3, 15, "rule \"a\" reassigns to the manager (from [defaults])"),
    ];
    assert!(cases.len() >= 12);
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(text, line, col, fragment)| check_error(text, *line, *col, fragment).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn cannot_read_names_the_file() {
    let err = Policy::load(std::path::Path::new("/nonexistent/policy.toml")).unwrap_err();
    assert!(
        err.to_string().starts_with("/nonexistent/policy.toml:"),
        "{err}"
    );
    assert!(err.message.contains("cannot read"), "{err}");
}

#[test]
fn shipped_example_policy_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/policy.toml");
    let policy = Policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        policy.fallback_owner().map(|e| e.as_str()),
        Some("sales-ops@example.com")
    );
    assert_eq!(
        policy.rule_names().last(),
        Some("everyone else: deactivate, delete after retention")
    );
}

// ---------------------------------------------------------------------------------
// decisions
// ---------------------------------------------------------------------------------

/// A policy that uses every matcher and rule option. Two rules delete on purpose
/// so the guards have something to stop.
const POLICY: &str = r#"
version = 1

[defaults]
fallback_owner = "sales-ops@example.com"

[[rules]]
name = "reversals"
when = { type = ["employee.rehired", "employee.termination_cancelled"] }
action = "review"

[[rules]]
name = "big books"
when = { owned_open_records = { gt = 500 } }
action = "deactivate"
reassign_to = "fallback"

[[rules]]
name = "come back"
when = [
  { kind = ["voluntary", "retirement"], rehire_eligible = true },
  { kind = "contract_end" },
]
action = "deactivate"

[[rules]]
name = "emea team"
when = { crm_team = "emea", kind = "voluntary" }
action = "deactivate"
delete_after = "30d"
reassign_to = "user:emea-desk@example.com"
reassign = ["leads", "contacts", "deals"]

[[rules]]
name = "contractors"
when = { email_domain = "contractors.example.com" }
action = "delete"
at = "now"
reassign = ["leads", "contacts", "deals"]

[[rules]]
name = "works council"
when = { country = ["de", "at"], kind = "involuntary" }
action = "review"

[[rules]]
name = "involuntary sales"
when = { kind = ["involuntary", "layoff"], department = "sales" }
action = "delete"

[[rules]]
name = "other, crm users"
when = { kind = "other", crm_role = "user" }
action = "deactivate"
at = "now"
notify = ["hr@example.com"]

[[rules]]
name = "catch-all"
action = "deactivate"
delete_after = "90d"
"#;

fn policy() -> Policy {
    Policy::parse(POLICY, "test-policy.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Decision time: after the events arrived, before the sample effective dates.
fn now() -> DateTime<Utc> {
    ts("2026-12-01T10:30:00Z")
}

/// `samples/events/terminated-voluntary.json`; cases patch it.
fn base_event() -> Value {
    json!({
        "id": "evt_0001",
        "type": "employee.terminated",
        "occurred_at": "2026-12-01T10:00:00Z",
        "employee": {
            "id": "E1001",
            "email": "jane.doe@example.com",
            "name": "Jane Doe",
            "department": "Sales",
            "country": "US",
            "manager_email": "max.manager@example.com"
        },
        "termination": {
            "effective_at": "2026-12-15T17:00:00Z",
            "kind": "voluntary",
            "rehire_eligible": true,
            "reason": "Relocation"
        },
        "legal_hold": false
    })
}

/// Deep-merges `patch` into `base`; `null` removes a key.
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(k);
                } else {
                    merge(b.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

fn event(patch: Value) -> OffboardingEvent {
    let mut v = base_event();
    merge(&mut v, &patch);
    OffboardingEvent::from_json(&v, None).unwrap_or_else(|e| panic!("{e}: {v}"))
}

/// The Sell user from `samples/sell/users-list.json` (Jane Doe, team EMEA).
fn jane() -> CrmUser {
    CrmUser {
        id: 101.into(),
        name: "Jane Doe".into(),
        email: "jane.doe@example.com".into(),
        status: UserStatus::Active,
        role: UserRole::User,
        reports_to: Some(100.into()),
        team_name: Some("EMEA".into()),
        deleted_at: None,
    }
}

/// What the worker fetched from the CRM.
#[derive(Clone)]
struct Crm {
    user: Option<CrmUser>,
    owned_open_records: Option<u64>,
    active_reportees: Option<u64>,
}

/// Jane as a plain rep with 12 open records and nobody reporting to her.
fn crm() -> Crm {
    Crm {
        user: Some(jane()),
        owned_open_records: Some(12),
        active_reportees: Some(0),
    }
}

impl Crm {
    fn admin(mut self) -> Self {
        if let Some(u) = &mut self.user {
            u.role = UserRole::Admin;
        }
        self
    }
    fn team(mut self, team: Option<&str>) -> Self {
        if let Some(u) = &mut self.user {
            u.team_name = team.map(str::to_owned);
        }
        self
    }
    fn owned(mut self, n: Option<u64>) -> Self {
        self.owned_open_records = n;
        self
    }
    fn reportees(mut self, n: Option<u64>) -> Self {
        self.active_reportees = n;
        self
    }
    /// Nothing could be fetched (e.g. `policy explain` without `--user`).
    fn unknown() -> Self {
        Crm {
            user: None,
            owned_open_records: None,
            active_reportees: None,
        }
    }
}

fn decide(p: &Policy, ev: &OffboardingEvent, crm: &Crm) -> Decision {
    p.decide(&Facts {
        event: ev,
        user: crm.user.as_ref(),
        owned_open_records: crm.owned_open_records,
        active_reportees: crm.active_reportees,
        crm: None,
        now: now(),
    })
}

/// One line per decision: `rule | action | run_at | delete_at | reassign_to | changed`.
/// `run_at`/`delete_at` show `-` when absent, else the time; `changed` lists the
/// guards that changed something, `-` for none.
fn summary(d: &Decision) -> String {
    let t = |t: Option<DateTime<Utc>>| {
        t.map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%dT%H:%M").to_string(),
        )
    };
    let changed: Vec<&str> = d
        .guards
        .iter()
        .filter(|g| g.changed)
        .map(|g| g.guard.as_str())
        .collect();
    format!(
        "{} | {} | run_at {} | delete_at {} | {} | changed {}",
        d.rule,
        d.action.as_str(),
        t(d.run_at),
        t(d.delete_at),
        d.reassign_to,
        if changed.is_empty() {
            "-".to_owned()
        } else {
            changed.join(",")
        }
    )
}

/// Decides `event` with `crm` facts and compares the one-line summary, and checks
/// that each of `assumes` appears in an assumption (none when empty).
fn check(event: &OffboardingEvent, crm: &Crm, expect: &str, assumes: &[&str]) -> Decision {
    let d = decide(&policy(), event, crm);
    assert_eq!(
        summary(&d),
        expect,
        "event {}",
        serde_json::to_string(event).unwrap()
    );
    // Every decision lists every guard, in order, whether it changed anything or not.
    let names: Vec<&str> = d.guards.iter().map(|g| g.guard.as_str()).collect();
    assert_eq!(names, [GUARD_ADMIN, GUARD_LEGAL_HOLD, GUARD_REPORTEES]);
    if assumes.is_empty() {
        assert!(
            d.assumptions.is_empty(),
            "unexpected assumptions {:?} for {expect}",
            d.assumptions
        );
    }
    for a in assumes {
        assert!(
            d.assumptions.iter().any(|x| x.contains(a)),
            "no assumption containing {a:?} in {:?} ({expect})",
            d.assumptions
        );
    }
    // Guards only ever make the action safer.
    let rank = |a: Action| match a {
        Action::Delete => 0,
        Action::Deactivate => 1,
        Action::Review => 2,
    };
    assert!(rank(d.action) >= rank(d.rule_action), "{expect}");
    if d.action != Action::Deactivate {
        assert_eq!(
            d.delete_at, None,
            "delete_at only comes with deactivate: {expect}"
        );
    }
    d
}

#[test]
fn decision_table() {
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, Crm, &str, &[&str])> = vec![
        // `when` alternatives and the event matchers
        ("voluntary, may come back: first alternative",
            json!({}), crm(),
            "come back | deactivate | run_at 2026-12-15T17:00 | delete_at - | manager | changed -", &[]),
        ("retirement, may come back",
            json!({"termination": {"kind": "retirement"}}), crm(),
            "come back | deactivate | run_at 2026-12-15T17:00 | delete_at - | manager | changed -", &[]),
        ("contract end: second alternative, rehire_eligible irrelevant",
            json!({"termination": {"kind": "contract_end", "rehire_eligible": false}}), crm(),
            "come back | deactivate | run_at 2026-12-15T17:00 | delete_at - | manager | changed -", &[]),
        ("rehire_eligible missing fails `rehire_eligible = true`; team EMEA matches case-insensitively",
            json!({"termination": {"rehire_eligible": null}}), crm(),
            "emea team | deactivate | run_at 2026-12-15T17:00 | delete_at 2027-01-14T17:00 | user:emea-desk@example.com | changed -", &[]),
        ("voluntary, not eligible, another team: catch-all with retention",
            json!({"termination": {"rehire_eligible": false}}), crm().team(Some("Americas")),
            "catch-all | deactivate | run_at 2026-12-15T17:00 | delete_at 2027-03-15T17:00 | manager | changed -", &[]),
        ("a known user without a team is a fact, not an assumption",
            json!({"termination": {"rehire_eligible": false}}), crm().team(None),
            "catch-all | deactivate | run_at 2026-12-15T17:00 | delete_at 2027-03-15T17:00 | manager | changed -", &[]),
        ("owned_open_records just above the range",
            json!({}), crm().owned(Some(501)),
            "big books | deactivate | run_at 2026-12-15T17:00 | delete_at - | fallback | changed -", &[]),
        ("owned_open_records on the boundary (gt is strict)",
            json!({}), crm().owned(Some(500)),
            "come back | deactivate | run_at 2026-12-15T17:00 | delete_at - | manager | changed -", &[]),
        ("email_domain; at = now ignores the future effective date",
            json!({"employee": {"email": "Pat@Contractors.Example.com"}, "termination": {"kind": "other"}}), crm(),
            "contractors | delete | run_at - | delete_at - | manager | changed -", &[]),
        ("country list is case-insensitive (event says DE)",
            json!({"employee": {"country": "DE"}, "termination": {"kind": "involuntary", "rehire_eligible": false}}), crm(),
            "works council | review | run_at 2026-12-15T17:00 | delete_at - | manager | changed -", &[]),
        ("involuntary in sales, effective date in the future",
            json!({"termination": {"kind": "involuntary", "rehire_eligible": false}}), crm(),
            "involuntary sales | delete | run_at 2026-12-15T17:00 | delete_at - | manager | changed -", &[]),
        ("layoff, department in another case",
            json!({"employee": {"department": "SALES"}, "termination": {"kind": "layoff", "rehire_eligible": false}}), crm(),
            "involuntary sales | delete | run_at 2026-12-15T17:00 | delete_at - | manager | changed -", &[]),
        ("involuntary outside sales falls through to the catch-all",
            json!({"employee": {"department": "Finance"}, "termination": {"kind": "involuntary", "rehire_eligible": false}}), crm().team(None),
            "catch-all | deactivate | run_at 2026-12-15T17:00 | delete_at 2027-03-15T17:00 | manager | changed -", &[]),
        ("effective date already past: act now, retention counts from now",
            json!({"employee": {"department": "Finance"}, "termination": {"kind": "involuntary", "effective_at": "2026-11-30T09:00:00Z"}}), crm().team(None),
            "catch-all | deactivate | run_at - | delete_at 2027-03-01T10:30 | manager | changed -", &[]),
        ("no termination object: no kind, no date",
            json!({"termination": null}), crm(),
            "catch-all | deactivate | run_at - | delete_at 2027-03-01T10:30 | manager | changed -", &[]),
        ("crm_role = user matches a plain rep",
            json!({"termination": {"kind": "other"}}), crm(),
            "other, crm users | deactivate | run_at - | delete_at - | manager | changed -", &[]),
        // reversals only match rules that name their type
        ("rehired",
            json!({"type": "employee.rehired", "termination": null}), crm(),
            "reversals | review | run_at - | delete_at - | manager | changed -", &[]),
        ("termination cancelled",
            json!({"type": "employee.termination_cancelled"}), crm(),
            "reversals | review | run_at 2026-12-15T17:00 | delete_at - | manager | changed -", &[]),
        // guards
        ("admin: delete → deactivate",
            json!({"termination": {"kind": "involuntary", "rehire_eligible": false}}), crm().admin(),
            "involuntary sales | deactivate | run_at 2026-12-15T17:00 | delete_at - | manager | changed never_delete_admin", &[]),
        ("admin: the retention delete is dropped",
            json!({"termination": {"rehire_eligible": false}}), crm().admin().team(None),
            "catch-all | deactivate | run_at 2026-12-15T17:00 | delete_at - | manager | changed never_delete_admin", &[]),
        ("admin matches no crm_role = user rule",
            json!({"termination": {"kind": "other"}}), crm().admin(),
            "catch-all | deactivate | run_at 2026-12-15T17:00 | delete_at - | manager | changed never_delete_admin", &[]),
        ("legal hold: delete → deactivate",
            json!({"termination": {"kind": "involuntary", "rehire_eligible": false}, "legal_hold": true}), crm(),
            "involuntary sales | deactivate | run_at 2026-12-15T17:00 | delete_at - | manager | changed never_delete_under_legal_hold", &[]),
        ("legal hold: the retention delete is dropped",
            json!({"termination": {"rehire_eligible": false}, "legal_hold": true}), crm().team(None),
            "catch-all | deactivate | run_at 2026-12-15T17:00 | delete_at - | manager | changed never_delete_under_legal_hold", &[]),
        ("admin under legal hold: the admin guard acts first, legal hold finds nothing left",
            json!({"termination": {"kind": "involuntary", "rehire_eligible": false}, "legal_hold": true}), crm().admin(),
            "involuntary sales | deactivate | run_at 2026-12-15T17:00 | delete_at - | manager | changed never_delete_admin", &[]),
        ("manager with reportees: delete → review",
            json!({"termination": {"kind": "involuntary", "rehire_eligible": false}}), crm().reportees(Some(3)),
            "involuntary sales | review | run_at 2026-12-15T17:00 | delete_at - | manager | changed never_delete_manager_with_reportees", &[]),
        ("reportees unknown for a delete: review, and say so",
            json!({"employee": {"email": "pat@contractors.example.com"}, "termination": {"kind": "other"}}), crm().reportees(None),
            "contractors | review | run_at - | delete_at - | manager | changed never_delete_manager_with_reportees", &["active_reportees unknown"]),
        ("reportees do not matter when nothing is deleted now",
            json!({"termination": {"rehire_eligible": false}}), crm().team(None).reportees(Some(4)),
            "catch-all | deactivate | run_at 2026-12-15T17:00 | delete_at 2027-03-15T17:00 | manager | changed -", &[]),
        // unknown CRM facts
        ("owned_open_records unknown: big books skipped, next rule decides",
            json!({}), crm().owned(None),
            "come back | deactivate | run_at 2026-12-15T17:00 | delete_at - | manager | changed -", &["owned_open_records unknown: rule \"big books\" skipped"]),
        ("nothing known from the CRM: team and role rules skipped",
            json!({"termination": {"rehire_eligible": false}}), Crm::unknown(),
            "catch-all | deactivate | run_at 2026-12-15T17:00 | delete_at 2027-03-15T17:00 | manager | changed -",
            &["owned_open_records unknown: rule \"big books\" skipped", "crm_team unknown: rule \"emea team\" skipped", "crm_role unknown: the follow-up delete checks it again"]),
        ("nothing known and the rule deletes: the role could be admin → review",
            json!({"termination": {"kind": "layoff", "rehire_eligible": false}}), Crm::unknown(),
            "involuntary sales | review | run_at 2026-12-15T17:00 | delete_at - | manager | changed never_delete_admin",
            &["crm_role unknown: assumed the user may be an admin", "owned_open_records unknown: rule \"big books\" skipped"]),
        ("crm_role unknown: the crm_role = user rule is skipped",
            json!({"termination": {"kind": "other"}}), Crm::unknown().owned(Some(3)),
            "catch-all | deactivate | run_at 2026-12-15T17:00 | delete_at 2027-03-15T17:00 | manager | changed -",
            &["crm_role unknown: rule \"other, crm users\" skipped"]),
        ("reportees unknown, but nothing is deleted now: nothing to assume",
            json!({"termination": {"kind": "layoff", "rehire_eligible": false}, "employee": {"department": "Finance"}}), crm().reportees(None).owned(Some(2)),
            "catch-all | deactivate | run_at 2026-12-15T17:00 | delete_at 2027-03-15T17:00 | manager | changed -", &[]),
    ];
    assert!(
        cases.len() >= 25,
        "the decision table has {} cases",
        cases.len()
    );
    for (what, patch, crm, expect, assumes) in &cases {
        let ev = event(patch.clone());
        let d = std::panic::catch_unwind(|| check(&ev, crm, expect, assumes));
        if d.is_err() {
            panic!("case failed: {what}");
        }
    }
}

#[test]
fn decision_carries_the_rules_settings() {
    let p = policy();
    let ev = event(json!({"termination": {"rehire_eligible": null}}));
    let d = decide(&p, &ev, &crm());
    assert_eq!(d.rule, "emea team");
    assert_eq!(d.policy_version, p.version());
    assert_eq!(d.at, Timing::Effective);
    assert_eq!(
        d.reassign_to,
        ReassignTo::User(offboard_domain::Email::parse("emea-desk@example.com").unwrap())
    );
    assert_eq!(d.reassign.len(), 3);
    assert!(d.open_only);
    assert_eq!(
        d.fallback_owner.as_ref().map(|e| e.as_str()),
        Some("sales-ops@example.com")
    );
    assert_eq!(
        d.delete_at,
        Some(ts("2026-12-15T17:00:00Z") + Duration::days(30))
    );

    let ev = event(json!({"termination": {"kind": "other"}}));
    let d = decide(&p, &ev, &crm());
    assert_eq!(d.notify, ["hr@example.com"]);
    assert_eq!(d.at, Timing::Now);
}

#[test]
fn new_owners_are_told_unless_the_policy_says_not() {
    let ev = event(json!({"termination": {"kind": "other"}}));
    let d = decide(&policy(), &ev, &crm());
    assert!(d.notify_new_owners, "the default");
    let quiet = Policy::parse(
        "version = 1\n[defaults]\nfallback_owner = \"ops@example.com\"\nnotify_new_owners = false\n[[rules]]\nname = \"loud\"\nwhen = { kind = \"other\" }\naction = \"deactivate\"\nnotify_new_owners = true\n[[rules]]\nname = \"rest\"\naction = \"deactivate\"\n",
        "quiet.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        decide(&quiet, &ev, &crm()).notify_new_owners,
        "a rule overrides [defaults]"
    );
    let ev = event(json!({"termination": {"kind": "voluntary"}}));
    assert!(!decide(&quiet, &ev, &crm()).notify_new_owners);
    // Plans stored before the field existed read as the default.
    let mut stored = serde_json::to_value(decide(&policy(), &ev, &crm())).unwrap();
    stored.as_object_mut().unwrap().remove("notify_new_owners");
    let back: Decision = serde_json::from_value(stored).unwrap();
    assert!(back.notify_new_owners);
}

#[test]
fn no_rule_matched_goes_to_review() {
    let p = Policy::parse(
        "version = 1\n[defaults]\nfallback_owner = \"ops@example.com\"\nat = \"now\"\n[[rules]]\nname = \"layoffs\"\nwhen = { kind = \"layoff\" }\naction = \"delete\"\n",
        "inline",
    )
    .unwrap();
    let d = decide(&p, &event(json!({})), &crm());
    assert_eq!(d.rule, NO_RULE_MATCHED);
    assert_eq!((d.rule_action, d.action), (Action::Review, Action::Review));
    assert_eq!(d.run_at, None, "[defaults] at = now");
    assert!(
        d.review_reason.as_deref().unwrap().contains("no rule"),
        "{d:?}"
    );
    assert!(d.guards.iter().all(|g| !g.changed));
    // A reversal with no rule for it also waits for a person, never acts.
    let d = decide(&p, &event(json!({"type": "employee.rehired"})), &crm());
    assert_eq!(
        (d.rule.as_str(), d.action),
        (NO_RULE_MATCHED, Action::Review)
    );
}

fn follow_up(p: &Policy, ev: &OffboardingEvent, crm: &Crm) -> Decision {
    p.decide_follow_up_delete(&Facts {
        event: ev,
        user: crm.user.as_ref(),
        owned_open_records: crm.owned_open_records,
        active_reportees: crm.active_reportees,
        crm: None,
        now: ts("2027-03-15T17:00:00Z"),
    })
}

#[test]
fn follow_up_delete_passes_the_guards_again() {
    let p = policy();
    let leaver = event(json!({"termination": {"rehire_eligible": false}}));
    let rep = crm().team(Some("Americas")).owned(Some(0));

    let first = decide(&p, &leaver, &rep);
    assert!(first.delete_at.is_some());
    let d = follow_up(&p, &leaver, &rep);
    assert_eq!(
        summary(&d),
        "catch-all | delete | run_at - | delete_at - | manager | changed -"
    );
    assert!(d.follow_up_delete);
    assert_eq!((d.rule_action, d.at), (Action::Delete, Timing::Now));
    assert_eq!(
        (d.reassign.clone(), d.open_only),
        (first.reassign.clone(), first.open_only)
    );

    // The emea rule's own reassignment settings come back with it.
    let emea = event(json!({"termination": {"rehire_eligible": null}}));
    let d = follow_up(&p, &emea, &crm().owned(Some(0)));
    assert_eq!(
        summary(&d),
        "emea team | delete | run_at - | delete_at - | user:emea-desk@example.com | changed -"
    );

    // Facts that changed since: legal hold, a promotion to admin, new reportees.
    let held = event(json!({"termination": {"rehire_eligible": false}, "legal_hold": true}));
    assert_eq!(
        summary(&follow_up(&p, &held, &rep)),
        "catch-all | deactivate | run_at - | delete_at - | manager | changed never_delete_under_legal_hold"
    );
    assert_eq!(
        summary(&follow_up(&p, &leaver, &rep.clone().admin())),
        "catch-all | deactivate | run_at - | delete_at - | manager | changed never_delete_admin"
    );
    assert_eq!(
        summary(&follow_up(&p, &leaver, &rep.clone().reportees(Some(2)))),
        "catch-all | review | run_at - | delete_at - | manager | changed never_delete_manager_with_reportees"
    );
    let d = follow_up(&p, &leaver, &rep.clone().reportees(None));
    assert_eq!(d.action, Action::Review);
    assert!(
        d.assumptions
            .iter()
            .any(|a| a.contains("active_reportees unknown"))
    );

    // The policy was changed since: the rule that matches now keeps the seat.
    let d = follow_up(&p, &event(json!({})), &rep);
    assert_eq!(d.rule, "come back");
    assert_eq!(d.action, Action::Review);
    assert!(
        d.review_reason
            .as_deref()
            .unwrap()
            .contains("no longer deletes"),
        "{d:?}"
    );
}

#[test]
fn explain_names_rule_guards_plan_and_assumptions() {
    let p = policy();
    let ev = event(json!({"termination": {"kind": "involuntary", "rehire_eligible": false}}));
    let d = decide(&p, &ev, &crm().reportees(Some(2)).owned(None));
    let text = explain_text(&d);
    for want in [
        "rule:   \"involuntary sales\" (its action: delete)",
        "action: review (changed by never_delete_manager_with_reportees)",
        "never_delete_admin",
        "no change",
        "CHANGED",
        "2 active reportees: delete → review",
        "checked at run time:",
        "no open records still owned",
        "at 2026-12-15T17:00:00Z (termination.effective_at)",
        "leads     → the manager",
        "reassign:   to the manager: employee.manager_email if active",
        "sales-ops@example.com",
        "follow-up:  none",
        "owned_open_records unknown: rule \"big books\" skipped",
    ] {
        assert!(text.contains(want), "explain text lacks {want:?}:\n{text}");
    }

    let j = explain_json(&d);
    assert_eq!(j["rule"], "involuntary sales");
    assert_eq!(j["action"], "review");
    assert_eq!(j["policy_version"], p.version());
    assert_eq!(j["guards"].as_array().unwrap().len(), 3);
    assert_eq!(j["guards"][2]["guard"], GUARD_REPORTEES);
    assert_eq!(j["guards"][2]["changed"], true);
    assert_eq!(j["guards"][0]["changed"], false);
    assert_eq!(j["plan"]["action"], "review");
    assert_eq!(j["plan"]["run_at"], "2026-12-15T17:00:00Z");
    assert_eq!(j["plan"]["reassign_to"], "manager");
    assert_eq!(
        j["plan"]["reassign"],
        json!(["leads", "contacts", "deals", "tasks"])
    );
    assert_eq!(j["plan"]["open_only"], true);
    assert_eq!(j["plan"]["notify"], json!([]));
    assert_eq!(j["plan"]["delete_at"], Value::Null);
    assert_eq!(j["assumptions"].as_array().unwrap().len(), 1);

    // Retention shows up as a follow-up; unreassigned resources say so.
    let ev = event(json!({"termination": {"rehire_eligible": null}}));
    let d = decide(&p, &ev, &crm());
    let text = explain_text(&d);
    assert!(
        text.contains("follow-up:  delete at 2027-01-14T17:00:00Z"),
        "{text}"
    );
    assert!(text.contains("tasks     → not reassigned"), "{text}");
    let j = explain_json(&d);
    assert_eq!(j["plan"]["delete_at"], "2027-01-14T17:00:00Z");
    assert_eq!(j["plan"]["per_resource"]["tasks"], Value::Null);
    assert_eq!(
        j["plan"]["per_resource"]["deals"],
        "user:emea-desk@example.com"
    );
}

#[test]
fn decisions_round_trip_through_json_storage() {
    let p = policy();
    let d = decide(
        &p,
        &event(json!({"termination": {"rehire_eligible": null}})),
        &crm(),
    );
    let stored = serde_json::to_value(&d).unwrap();
    let back: Decision = serde_json::from_value(stored).unwrap();
    assert_eq!(back, d);
}

/// `seat_first` is carried into the decision, and explain shows the order taken:
/// seat first for the deactivate, records first for the follow-up delete of the
/// same rule.
#[test]
fn seat_first_is_in_the_decision_and_in_the_explanation() {
    let text = with_prelude(
        "[[rules]]\nname = \"cut access first\"\naction = \"deactivate\"\nseat_first = true\ndelete_after = \"30d\"\n",
    );
    let p = Policy::parse(&text, "seat-first.toml").unwrap();
    let ev = event(json!({}));
    let d = decide(&p, &ev, &crm());
    assert!(d.seat_first);
    assert!(d.seat_goes_first(d.action));
    assert_eq!(explain_json(&d)["plan"]["order"], "seat_first");
    assert!(
        explain_text(&d).contains("order:      seat first"),
        "{}",
        explain_text(&d)
    );

    // The follow-up delete of the same rule reassigns first: the CRMs demand it.
    let f = follow_up(&p, &ev, &crm());
    assert_eq!(f.action, Action::Delete);
    assert!(!f.seat_goes_first(f.action));
    assert_eq!(explain_json(&f)["plan"]["order"], "records_first");
}
