//! `Policy::decide`: rule matching, timing and the hard guards.
//!
//! Deciding is a pure function of the parsed policy and the facts the worker
//! gathered, so the same inputs always give the same decision and `policy explain`
//! shows exactly what a job will do. It cannot fail: a fact that could not be
//! fetched is `None`, and the decision records what it assumed instead. The hard
//! guards run after the rules and can only make an action safer (delete →
//! deactivate or review), so no rule can talk its way past them.

use chrono::{DateTime, Utc};

use crate::matcher::{Truth, eval_any};
use crate::rules::{Policy, Rule};
use crate::types::{
    Action, Decision, Facts, GUARD_ADMIN, GUARD_CRM_CANNOT_DELETE, GUARD_LEGAL_HOLD,
    GUARD_REPORTEES, GuardOutcome, NO_RULE_MATCHED, Timing,
};
use offboard_domain::{Capabilities, Resource, SeatAbility, SeatChange, UserRole};

impl Policy {
    /// Decides what to do for a termination; cannot fail.
    pub fn decide(&self, facts: &Facts<'_>) -> Decision {
        let mut assumptions = Vec::new();
        let Some(rule) = self.first_match(facts, &mut assumptions) else {
            return self.no_match(facts, assumptions, false);
        };
        let mut d = self.decision_for(rule, rule.action, rule.at, assumptions, facts.crm);
        d.run_at = due(rule.at, facts);
        if let (Action::Deactivate, Some(keep)) = (rule.action, rule.delete_after) {
            d.delete_at = d.run_at.unwrap_or(facts.now).checked_add_signed(keep);
        }
        if rule.action == Action::Review {
            d.review_reason = Some(format!(
                "rule \"{}\" asks a person to review this offboarding",
                rule.name
            ));
        }
        apply_guards(&mut d, facts);
        d
    }

    /// The decision the worker will take, for an operator (`policy explain`) who
    /// knows the CRM user but not how many people report to them: the worker
    /// counts active reportees before it decides, and goes ahead as decided when
    /// the count is zero, so an unknown count is taken as zero here and said so in
    /// the assumptions (any reportee at run time → `needs_review`; the worker
    /// counts again right before a delete). Everything else stays as given: an
    /// unknown user or open-record count is still an assumption that can only make
    /// the decision safer. The worker itself knows every count and calls
    /// [`Policy::decide`].
    pub fn decide_ahead(&self, facts: &Facts<'_>) -> Decision {
        if facts.user.is_none() || facts.active_reportees.is_some() {
            return self.decide(facts);
        }
        let known = Facts {
            active_reportees: Some(0),
            ..facts.clone()
        };
        let mut d = self.decide(&known);
        if d.action == Action::Delete || d.delete_at.is_some() {
            d.assumptions.push(format!(
                "{REPORTEES_NOT_GIVEN}: decided as the worker does when it counts none; if it counts any, the delete waits in needs_review"
            ));
            for g in d.guards.iter_mut().filter(|g| g.guard == GUARD_REPORTEES) {
                g.detail = format!("{REPORTEES_NOT_GIVEN}: taken as 0; counted at run time");
            }
        }
        d
    }

    /// Decides the follow-up job of a `delete_after` rule when its time has come.
    ///
    /// The rules are matched again with the facts as they are now, so a policy
    /// changed in the meantime is honoured: the delete goes ahead only if the rule
    /// that matches still deletes (now or after retention), and every hard guard is
    /// applied again (a legal hold or new reportees since then stop it).
    pub fn decide_follow_up_delete(&self, facts: &Facts<'_>) -> Decision {
        let mut assumptions = Vec::new();
        let Some(rule) = self.first_match(facts, &mut assumptions) else {
            return self.no_match(facts, assumptions, true);
        };
        let still_deletes = rule.action == Action::Delete || rule.delete_after.is_some();
        let mut d = if still_deletes {
            self.decision_for(rule, Action::Delete, Timing::Now, assumptions, facts.crm)
        } else {
            let mut d =
                self.decision_for(rule, Action::Review, Timing::Now, assumptions, facts.crm);
            d.review_reason = Some(format!(
                "follow-up delete: rule \"{}\" now matches and no longer deletes (action {}, no delete_after)",
                rule.name,
                rule.action.as_str()
            ));
            d
        };
        d.follow_up_delete = true;
        apply_guards(&mut d, facts);
        d
    }

    fn first_match(&self, facts: &Facts<'_>, assumptions: &mut Vec<String>) -> Option<&Rule> {
        for rule in &self.rules {
            match eval_any(&rule.when, facts) {
                Truth::Yes => return Some(rule),
                Truth::No => {}
                Truth::Unknown(missing) => assumptions.push(format!(
                    "{} unknown: rule \"{}\" skipped",
                    missing.join(" and "),
                    rule.name
                )),
            }
        }
        None
    }

    fn decision_for(
        &self,
        rule: &Rule,
        action: Action,
        at: Timing,
        assumptions: Vec<String>,
        crm: Option<&Capabilities>,
    ) -> Decision {
        Decision {
            policy_version: self.version.clone(),
            rule: rule.name.clone(),
            rule_action: action,
            action,
            at,
            run_at: None,
            delete_at: None,
            reassign_to: rule.reassign_to.clone(),
            fallback_owner: self.defaults.fallback_owner.clone(),
            reassign: rule.reassign.clone().unwrap_or_else(|| every_resource(crm)),
            open_only: rule.open_only,
            notify: rule.notify.iter().map(|e| e.as_str().to_owned()).collect(),
            notify_new_owners: rule.notify_new_owners,
            guards: Vec::new(),
            assumptions,
            review_reason: None,
            follow_up_delete: false,
            seat_first: rule.seat_first,
            crm_manager_field: crm.is_none_or(|c| c.manager_field),
        }
    }

    /// Nothing matched: a person decides, with `[defaults]` as the proposed plan.
    fn no_match(&self, facts: &Facts<'_>, assumptions: Vec<String>, follow_up: bool) -> Decision {
        let defaults = &self.defaults;
        let mut reason = String::from("no rule in the policy matches this event");
        if !assumptions.is_empty() {
            reason.push_str(" (some rules were skipped because CRM facts were unknown)");
        }
        let mut d = Decision {
            policy_version: self.version.clone(),
            rule: NO_RULE_MATCHED.to_owned(),
            rule_action: Action::Review,
            action: Action::Review,
            at: defaults.at,
            run_at: if follow_up {
                None
            } else {
                due(defaults.at, facts)
            },
            delete_at: None,
            reassign_to: defaults.reassign_to.clone(),
            fallback_owner: defaults.fallback_owner.clone(),
            reassign: defaults
                .reassign
                .clone()
                .unwrap_or_else(|| every_resource(facts.crm)),
            open_only: defaults.open_only,
            notify: defaults
                .notify
                .iter()
                .map(|e| e.as_str().to_owned())
                .collect(),
            notify_new_owners: defaults.notify_new_owners,
            guards: Vec::new(),
            assumptions,
            review_reason: Some(reason),
            follow_up_delete: follow_up,
            seat_first: false,
            crm_manager_field: facts.crm.is_none_or(|c| c.manager_field),
        };
        apply_guards(&mut d, facts);
        d
    }
}

/// How [`Policy::decide_ahead`] words a reportee count the operator did not give.
const REPORTEES_NOT_GIVEN: &str = "active_reportees not given (--reportees)";

/// What a policy that lists no `reassign` moves: everything the CRM has, or,
/// where the CRM is not known (an explain without a config), the four resources
/// of Zendesk Sell, offboard's first CRM.
fn every_resource(crm: Option<&Capabilities>) -> Vec<Resource> {
    match crm {
        Some(crm) => crm.resources.to_vec(),
        None => vec![
            Resource::Leads,
            Resource::Contacts,
            Resource::Deals,
            Resource::Tasks,
        ],
    }
}

/// `at = "effective"` waits for a future `effective_at`; a past or missing one, or
/// `at = "now"`, means as soon as the job runs.
fn due(at: Timing, facts: &Facts<'_>) -> Option<DateTime<Utc>> {
    match at {
        Timing::Now => None,
        Timing::Effective => facts.event.effective_at().filter(|t| *t > facts.now),
    }
}

fn outcome(guard: &str, changed: bool, detail: impl Into<String>) -> GuardOutcome {
    GuardOutcome {
        guard: guard.to_owned(),
        changed,
        detail: detail.into(),
    }
}

/// Runs every hard guard in order. Each may only move the action towards safety,
/// so their order matters only for which one is credited with a change.
fn apply_guards(d: &mut Decision, facts: &Facts<'_>) {
    let crm = guard_crm_cannot_delete(d, facts);
    let admin = guard_admin(d, facts);
    let hold = guard_legal_hold(d, facts);
    let reportees = guard_reportees(d, facts);
    d.guards = crm.into_iter().chain([admin, hold, reportees]).collect();
}

/// Listed only for a CRM without any way to delete users.
fn guard_crm_cannot_delete(d: &mut Decision, facts: &Facts<'_>) -> Option<GuardOutcome> {
    let crm = facts.crm?;
    if crm.ability(SeatChange::Delete) != SeatAbility::Impossible {
        return None;
    }
    let changes = keep_the_seat(d);
    Some(if changes.is_empty() {
        outcome(
            GUARD_CRM_CANNOT_DELETE,
            false,
            format!("{} cannot delete users; nothing is deleted", crm.name),
        )
    } else {
        outcome(
            GUARD_CRM_CANNOT_DELETE,
            true,
            format!("{} cannot delete users: {}", crm.name, changes.join("; ")),
        )
    })
}

/// Turns a delete into a deactivate and drops a pending follow-up delete; returns
/// what it changed, in words.
fn keep_the_seat(d: &mut Decision) -> Vec<&'static str> {
    let mut changes = Vec::new();
    if d.action == Action::Delete {
        d.action = Action::Deactivate;
        changes.push("delete → deactivate");
    }
    if d.delete_at.take().is_some() {
        changes.push("the follow-up delete (delete_after) is dropped");
    }
    changes
}

fn guard_admin(d: &mut Decision, facts: &Facts<'_>) -> GuardOutcome {
    match facts.user.map(|u| u.role) {
        Some(UserRole::Admin) => {
            let changes = keep_the_seat(d);
            if changes.is_empty() {
                outcome(
                    GUARD_ADMIN,
                    false,
                    "the CRM user is an admin; nothing is deleted",
                )
            } else {
                outcome(
                    GUARD_ADMIN,
                    true,
                    format!("the CRM user is an admin: {}", changes.join("; ")),
                )
            }
        }
        Some(UserRole::User) => outcome(GUARD_ADMIN, false, "the CRM user is not an admin"),
        // Without the user we cannot rule out an admin, and a delete is permanent.
        None if d.action == Action::Delete => {
            d.action = Action::Review;
            d.review_reason = Some(
                "the CRM user's role is unknown and offboard never deletes an admin".to_owned(),
            );
            d.assumptions.push(
                "crm_role unknown: assumed the user may be an admin, so delete → review".to_owned(),
            );
            outcome(GUARD_ADMIN, true, "CRM role unknown: delete → review")
        }
        None if d.delete_at.is_some() => {
            d.assumptions.push(
                "crm_role unknown: the follow-up delete checks it again before deleting".to_owned(),
            );
            outcome(
                GUARD_ADMIN,
                false,
                "CRM role unknown; nothing is deleted now, the follow-up delete checks again",
            )
        }
        None => outcome(GUARD_ADMIN, false, "CRM role unknown; nothing is deleted"),
    }
}

fn guard_legal_hold(d: &mut Decision, facts: &Facts<'_>) -> GuardOutcome {
    if !facts.event.legal_hold {
        return outcome(GUARD_LEGAL_HOLD, false, "no legal hold");
    }
    let changes = keep_the_seat(d);
    if changes.is_empty() {
        outcome(
            GUARD_LEGAL_HOLD,
            false,
            "under legal hold; nothing is deleted",
        )
    } else {
        outcome(
            GUARD_LEGAL_HOLD,
            true,
            format!("under legal hold: {}", changes.join("; ")),
        )
    }
}

fn guard_reportees(d: &mut Decision, facts: &Facts<'_>) -> GuardOutcome {
    if d.action != Action::Delete {
        let detail = if d.delete_at.is_some() {
            "nothing is deleted now; the follow-up delete checks reportees again"
        } else {
            "nothing is deleted"
        };
        return outcome(GUARD_REPORTEES, false, detail);
    }
    match facts.active_reportees {
        Some(0) => outcome(GUARD_REPORTEES, false, "no active reportees"),
        Some(n) => {
            d.action = Action::Review;
            d.review_reason = Some(format!(
                "the user manages {n} active reportee{}; Sell can't delete a manager who still has reportees, so move them to another manager first",
                if n == 1 { "" } else { "s" }
            ));
            outcome(
                GUARD_REPORTEES,
                true,
                format!(
                    "{n} active reportee{}: delete → review",
                    if n == 1 { "" } else { "s" }
                ),
            )
        }
        // Deleting a manager fails in Sell and would strand their reportees.
        None => {
            d.action = Action::Review;
            d.review_reason = Some(
                "whether the user still manages anyone is unknown, and Sell can't delete a manager with reportees".to_owned(),
            );
            d.assumptions.push(
                "active_reportees unknown: assumed the user may manage someone, so delete → review"
                    .to_owned(),
            );
            outcome(
                GUARD_REPORTEES,
                true,
                "active reportees unknown: delete → review",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::types::ReassignTo;
    use offboard_domain::{CrmUser, Email, OffboardingEvent};

    const POLICY: &str = r#"
version = 1
[defaults]
fallback_owner = "ops@example.com"
[[rules]]
name = "layoffs"
when = { kind = "layoff" }
action = "delete"
[[rules]]
name = "rest"
action = "deactivate"
at = "now"
delete_after = "1w"
"#;

    fn event(kind: &str, legal_hold: bool) -> OffboardingEvent {
        let v = json!({
            "id": "e1", "type": "employee.terminated",
            "employee": {"email": "a@example.com"},
            "termination": {"kind": kind, "effective_at": "2026-12-15T17:00:00Z"},
            "legal_hold": legal_hold,
        });
        OffboardingEvent::from_json(&v, None).unwrap()
    }

    fn user(role: UserRole) -> CrmUser {
        CrmUser {
            id: 1.into(),
            name: "A".into(),
            email: "a@example.com".into(),
            status: offboard_domain::UserStatus::Active,
            role,
            reports_to: None,
            team_name: None,
            deleted_at: None,
        }
    }

    fn facts<'a>(ev: &'a OffboardingEvent, user: Option<&'a CrmUser>) -> Facts<'a> {
        Facts {
            event: ev,
            user,
            owned_open_records: Some(0),
            active_reportees: Some(0),
            crm: None,
            now: "2026-12-01T00:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn guards_are_always_listed_in_order() {
        let p = Policy::parse(POLICY, "t").unwrap();
        let ev = event("voluntary", false);
        let u = user(UserRole::User);
        let d = p.decide(&facts(&ev, Some(&u)));
        let names: Vec<&str> = d.guards.iter().map(|g| g.guard.as_str()).collect();
        assert_eq!(names, [GUARD_ADMIN, GUARD_LEGAL_HOLD, GUARD_REPORTEES]);
        assert!(d.guards.iter().all(|g| !g.changed));
        // `at = "now"`: retention counts from the decision time.
        assert_eq!(d.run_at, None);
        assert_eq!(d.delete_at, Some("2026-12-08T00:00:00Z".parse().unwrap()));
    }

    #[test]
    fn the_first_guard_that_applies_is_credited() {
        let p = Policy::parse(POLICY, "t").unwrap();
        let ev = event("layoff", true);
        let admin = user(UserRole::Admin);
        let d = p.decide(&facts(&ev, Some(&admin)));
        assert_eq!(
            (d.rule_action, d.action),
            (Action::Delete, Action::Deactivate)
        );
        let changed: Vec<bool> = d.guards.iter().map(|g| g.changed).collect();
        assert_eq!(changed, [true, false, false]);
        assert_eq!(d.run_at, Some("2026-12-15T17:00:00Z".parse().unwrap()));
    }

    #[test]
    fn unknown_reportees_make_a_delete_a_review() {
        let p = Policy::parse(POLICY, "t").unwrap();
        let ev = event("layoff", false);
        let u = user(UserRole::User);
        let mut f = facts(&ev, Some(&u));
        f.active_reportees = None;
        let d = p.decide(&f);
        assert_eq!(d.action, Action::Review);
        assert!(d.review_reason.is_some());
        assert!(
            d.assumptions
                .iter()
                .any(|a| a.starts_with("active_reportees unknown"))
        );
    }

    #[test]
    fn reassign_to_displays_as_written_in_the_policy() {
        assert_eq!(ReassignTo::Manager.to_string(), "manager");
        assert_eq!(ReassignTo::Fallback.to_string(), "fallback");
        let e = Email::parse("X@Example.com").unwrap();
        assert_eq!(ReassignTo::User(e).to_string(), "user:x@example.com");
    }
}
