//! Turning a [`Decision`] into words (`offboard policy explain`) and into JSON
//! (`--json`, and the plan stored with a job).
//!
//! People approve or question offboardings from this text, so it says everything a
//! decision rests on: the rule, every guard (also those that changed nothing, so a
//! reader sees they ran), the concrete plan, what the worker still checks when it
//! acts, and every fact that had to be assumed. Both renderings read only the
//! decision, so what `explain` shows is exactly what a job stores.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::types::{Action, Decision, RUNTIME_GUARDS, ReassignTo, Timing};
use offboard_domain::Resource;

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn fallback_name(d: &Decision) -> String {
    d.fallback_owner.as_ref().map_or_else(
        || "no fallback owner configured".to_owned(),
        ToString::to_string,
    )
}

/// Who gets the records and what happens when they can't, in words.
fn target_long(d: &Decision) -> String {
    match &d.reassign_to {
        ReassignTo::Manager if d.crm_manager_field => format!(
            "the manager: employee.manager_email if active, else the CRM reports_to if active, else the fallback owner {}",
            fallback_name(d)
        ),
        ReassignTo::Manager => format!(
            "the manager: employee.manager_email if active (the CRM's users have no manager field), else the fallback owner {}",
            fallback_name(d)
        ),
        ReassignTo::Fallback => format!("the fallback owner {}", fallback_name(d)),
        ReassignTo::User(e) => format!(
            "{e}, else the fallback owner {} if {e} is not active",
            fallback_name(d)
        ),
    }
}

/// The same, short enough for one line per resource.
fn target_short(d: &Decision) -> String {
    match &d.reassign_to {
        ReassignTo::Manager => "the manager".to_owned(),
        ReassignTo::Fallback => format!("{} (fallback owner)", fallback_name(d)),
        ReassignTo::User(e) => e.to_string(),
    }
}

fn when(d: &Decision) -> String {
    match (d.run_at, d.at) {
        (Some(t), _) => format!("at {} (termination.effective_at)", time(t)),
        (None, _) if d.follow_up_delete => "now (follow-up delete)".to_owned(),
        (None, Timing::Now) => "now (at = \"now\")".to_owned(),
        (None, Timing::Effective) => {
            "now (termination.effective_at is missing or already past)".to_owned()
        }
    }
}

/// Which goes first, the seat or the records, in words.
fn order_words(d: &Decision) -> &'static str {
    match (d.seat_first, d.action) {
        (true, Action::Delete) => {
            "records first, then the seat (seat_first does not apply to a delete: the CRM refuses while records remain)"
        }
        (true, _) => {
            "seat first (seat_first): access is cut, or the admin asked, before any record moves"
        }
        (false, _) => "records first, then the seat",
    }
}

/// The order as one word for the JSON plan.
fn order_key(d: &Decision) -> &'static str {
    if d.seat_goes_first(d.action) {
        "seat_first"
    } else {
        "records_first"
    }
}

fn action_words(a: Action) -> &'static str {
    match a {
        Action::Deactivate => "deactivate the seat (reversible)",
        Action::Delete => "delete the seat (permanent)",
        Action::Review => "review: park the job in needs_review for a person",
    }
}

/// The human explanation of a decision, several lines ending in a newline.
pub fn explain_text(d: &Decision) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored deliberately.
    let _ = writeln!(out, "policy version {}", d.policy_version);
    if d.follow_up_delete {
        let _ = writeln!(
            out,
            "follow-up delete (delete_after), rule matched again with today's facts"
        );
    }
    let _ = writeln!(
        out,
        "rule:   \"{}\" (its action: {})",
        d.rule,
        d.rule_action.as_str()
    );
    let changed_by: Vec<&str> = d
        .guards
        .iter()
        .filter(|g| g.changed)
        .map(|g| g.guard.as_str())
        .collect();
    if changed_by.is_empty() {
        let _ = writeln!(out, "action: {}", d.action.as_str());
    } else {
        let _ = writeln!(
            out,
            "action: {} (changed by {})",
            d.action.as_str(),
            changed_by.join(", ")
        );
    }

    let _ = writeln!(out, "\nguards:");
    let width = d.guards.iter().map(|g| g.guard.len()).max().unwrap_or(0);
    for g in &d.guards {
        let verdict = if g.changed { "CHANGED  " } else { "no change" };
        let _ = writeln!(out, "  {:width$}  {verdict}  {}", g.guard, g.detail);
    }
    let _ = writeln!(out, "checked at run time:");
    for g in RUNTIME_GUARDS {
        let _ = writeln!(out, "  - {g}");
    }

    let _ = writeln!(out, "\nplan:");
    let _ = writeln!(out, "  action:     {}", action_words(d.action));
    let _ = writeln!(out, "  when:       {}", when(d));
    if d.action == Action::Review {
        let reason = d
            .review_reason
            .as_deref()
            .unwrap_or("the rule asks for a review");
        let _ = writeln!(out, "  review:     {reason}");
        let _ = writeln!(out, "  if approved, the plan below is carried out");
    }
    let scope = if d.open_only {
        "open records only; closed deals and completed tasks stay with the leaver"
    } else {
        "all records, open and closed"
    };
    let _ = writeln!(out, "  order:      {}", order_words(d));
    let _ = writeln!(out, "  reassign:   to {}", target_long(d));
    let _ = writeln!(out, "              {scope}");
    let who = target_short(d);
    for r in shown_resources(d) {
        if d.reassign.contains(&r) {
            let _ = writeln!(out, "    {:<9} → {who}", r.as_str());
        } else {
            let _ = writeln!(
                out,
                "    {:<9} → not reassigned (stay with the leaver)",
                r.as_str()
            );
        }
    }
    match d.delete_at {
        Some(t) => {
            let _ = writeln!(
                out,
                "  follow-up:  delete at {} (delete_after; the guards are checked again then)",
                time(t)
            );
        }
        None => {
            let _ = writeln!(out, "  follow-up:  none");
        }
    }
    if d.notify.is_empty() {
        let _ = writeln!(out, "  notify:     nobody");
    } else {
        let _ = writeln!(out, "  notify:     {}", d.notify.join(", "));
    }
    if !d.notify_new_owners {
        let _ = writeln!(out, "  new owners: not told (notify_new_owners = false)");
    }

    let _ = writeln!(out, "\nassumptions:");
    if d.assumptions.is_empty() {
        let _ = writeln!(out, "  none: every fact the decision needed was known");
    }
    for a in &d.assumptions {
        let _ = writeln!(out, "  - {a}");
    }
    out
}

/// The resources an explanation lists: every one, except organizations unless the
/// plan moves them — only some CRMs keep them apart from contacts (in Sell they
/// are contacts), so "not reassigned" would mislead there.
fn shown_resources(d: &Decision) -> impl Iterator<Item = Resource> + '_ {
    Resource::ALL
        .into_iter()
        .filter(|r| *r != Resource::Organizations || d.reassign.contains(r))
}

/// The machine explanation: one object with `rule`, `action` (final), `guards`,
/// `plan`, `assumptions` and `policy_version`.
pub fn explain_json(d: &Decision) -> Value {
    let per_resource: serde_json::Map<String, Value> = shown_resources(d)
        .map(|r| {
            let v = if d.reassign.contains(&r) {
                Value::String(d.reassign_to.to_string())
            } else {
                Value::Null
            };
            (r.as_str().to_owned(), v)
        })
        .collect();
    json!({
        "policy_version": d.policy_version,
        "rule": d.rule,
        "rule_action": d.rule_action.as_str(),
        "action": d.action.as_str(),
        "follow_up_delete": d.follow_up_delete,
        "guards": d.guards.iter().map(|g| json!({
            "guard": g.guard,
            "changed": g.changed,
            "detail": g.detail,
        })).collect::<Vec<_>>(),
        "checked_at_run_time": RUNTIME_GUARDS,
        "plan": {
            "action": d.action.as_str(),
            "at": match d.at { Timing::Effective => "effective", Timing::Now => "now" },
            "run_at": d.run_at.map(time),
            "reassign_to": d.reassign_to.to_string(),
            "fallback_owner": d.fallback_owner.as_ref().map(ToString::to_string),
            "reassign": d.reassign.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            "per_resource": per_resource,
            "open_only": d.open_only,
            "order": order_key(d),
            "notify": d.notify,
            "notify_new_owners": d.notify_new_owners,
            "delete_at": d.delete_at.map(time),
            "review_reason": d.review_reason,
        },
        "assumptions": d.assumptions,
        "review_reason": d.review_reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GuardOutcome;

    fn decision() -> Decision {
        Decision {
            policy_version: "abc123".into(),
            rule: "r".into(),
            rule_action: Action::Delete,
            action: Action::Deactivate,
            at: Timing::Now,
            run_at: None,
            delete_at: None,
            reassign_to: ReassignTo::Fallback,
            fallback_owner: None,
            reassign: vec![Resource::Leads],
            open_only: false,
            notify: vec!["n@example.com".into()],
            notify_new_owners: true,
            guards: vec![GuardOutcome {
                guard: "never_delete_admin".into(),
                changed: true,
                detail: "the CRM user is an admin: delete → deactivate".into(),
            }],
            assumptions: vec![],
            review_reason: None,
            follow_up_delete: false,
            seat_first: false,
            crm_manager_field: true,
        }
    }

    #[test]
    fn the_manager_text_names_reports_to_only_where_the_crm_has_one() {
        let manager = |crm_manager_field| {
            target_long(&Decision {
                reassign_to: ReassignTo::Manager,
                crm_manager_field,
                ..decision()
            })
        };
        assert!(manager(true).contains("else the CRM reports_to if active"));
        let without = manager(false);
        assert!(!without.contains("reports_to"), "{without}");
        assert!(without.contains("no manager field"), "{without}");
    }

    #[test]
    fn text_shows_changes_targets_and_runtime_checks() {
        let t = explain_text(&decision());
        assert!(
            t.contains("action: deactivate (changed by never_delete_admin)"),
            "{t}"
        );
        assert!(t.contains("CHANGED"), "{t}");
        assert!(t.contains("all records, open and closed"), "{t}");
        assert!(t.contains("no fallback owner configured"), "{t}");
        assert!(t.contains("deals     → not reassigned"), "{t}");
        assert!(t.contains("notify:     n@example.com"), "{t}");
        for g in RUNTIME_GUARDS {
            assert!(t.contains(g), "{t}");
        }
    }

    #[test]
    fn json_has_the_documented_keys() {
        let j = explain_json(&decision());
        for key in [
            "rule",
            "action",
            "guards",
            "plan",
            "assumptions",
            "policy_version",
        ] {
            assert!(j.get(key).is_some(), "missing {key}: {j}");
        }
        for key in [
            "action",
            "run_at",
            "reassign_to",
            "reassign",
            "open_only",
            "notify",
            "delete_at",
        ] {
            assert!(j["plan"].get(key).is_some(), "missing plan.{key}: {j}");
        }
        assert_eq!(j["action"], "deactivate");
        assert_eq!(j["rule_action"], "delete");
        assert_eq!(j["guards"][0]["changed"], true);
        assert_eq!(j["plan"]["reassign_to"], "fallback");
        assert_eq!(j["plan"]["at"], "now");
    }
}
