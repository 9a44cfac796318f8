//! The conditions a rule's `when` can test, and how they are evaluated.
//!
//! Matching is three-valued because CRM facts (role, team, open records) may not have
//! been fetched: a condition on a fact the worker could not get is *unknown*, never
//! silently true or false. An alternative that is unknown does not match, and the
//! caller records which facts it had to assume so the explanation can say why a rule
//! was skipped. Facts from the event itself are always known; an absent optional
//! field (no `department`, no `kind`) simply fails the condition.

use std::fmt;

use offboard_domain::UserRole;
use offboard_domain::{EventType, TerminationKind};

use crate::types::Facts;

/// Every event type, for validating `type` and for the reachability check.
pub(super) const EVENT_TYPES: [EventType; 3] = [
    EventType::Terminated,
    EventType::TerminationCancelled,
    EventType::Rehired,
];

/// The names `when` accepts, in the order the docs list them.
pub(super) const CONDITION_KEYS: [&str; 10] = [
    "type",
    "kind",
    "rehire_eligible",
    "legal_hold",
    "department",
    "country",
    "email_domain",
    "crm_role",
    "crm_team",
    "owned_open_records",
];

/// One test on the facts.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Condition {
    Type(Vec<EventType>),
    Kind(Vec<TerminationKind>),
    RehireEligible(bool),
    LegalHold(bool),
    /// Lower-cased, compared case-insensitively.
    Department(Vec<String>),
    /// Lower-cased, compared case-insensitively.
    Country(Vec<String>),
    /// Lower-cased domains, compared with the part after `@`.
    EmailDomain(Vec<String>),
    CrmRole(UserRole),
    /// Lower-cased, compared case-insensitively.
    CrmTeam(Vec<String>),
    OwnedOpenRecords(Range),
}

/// A numeric range written as `{ gt = 10, lte = 500 }` (all bounds optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Range {
    pub gt: Option<u64>,
    pub gte: Option<u64>,
    pub lt: Option<u64>,
    pub lte: Option<u64>,
    pub eq: Option<u64>,
}

impl Range {
    pub fn contains(&self, n: u64) -> bool {
        self.gt.is_none_or(|b| n > b)
            && self.gte.is_none_or(|b| n >= b)
            && self.lt.is_none_or(|b| n < b)
            && self.lte.is_none_or(|b| n <= b)
            && self.eq.is_none_or(|b| n == b)
    }

    /// Whether some number satisfies every bound; a range that matches nothing is
    /// almost certainly a typo (`gt = 500, lt = 50`), so parsing rejects it.
    pub fn is_satisfiable(&self) -> bool {
        let mut lo: u64 = 0;
        let mut hi: Option<u64> = None;
        let mut raise = |b: u64| lo = lo.max(b);
        if let Some(b) = self.gte {
            raise(b);
        }
        if let Some(b) = self.gt {
            match b.checked_add(1) {
                Some(b) => raise(b),
                None => return false,
            }
        }
        let mut lower = |b: u64| hi = Some(hi.map_or(b, |h| h.min(b)));
        if let Some(b) = self.lte {
            lower(b);
        }
        if let Some(b) = self.lt {
            match b.checked_sub(1) {
                Some(b) => lower(b),
                None => return false,
            }
        }
        if let Some(b) = self.eq {
            raise(b);
            lower(b);
        }
        hi.is_none_or(|h| lo <= h)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            ("=", self.eq),
            (">", self.gt),
            (">=", self.gte),
            ("<", self.lt),
            ("<=", self.lte),
        ]
        .into_iter()
        .filter_map(|(op, b)| b.map(|b| format!("{op} {b}")))
        .collect();
        f.write_str(&parts.join(" and "))
    }
}

/// The result of testing a condition or an alternative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Truth {
    Yes,
    No,
    /// A CRM fact the condition needs is missing; names it.
    Unknown(Vec<&'static str>),
}

/// All conditions of one `when` table; every one must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Alternative {
    pub conditions: Vec<Condition>,
}

impl Alternative {
    /// The event types this alternative can match. Without an explicit `type`, a
    /// rule is about terminations only, so a catch-all `deactivate` rule can never
    /// act on a rehire or a cancellation.
    pub fn event_types(&self) -> Vec<EventType> {
        self.conditions
            .iter()
            .find_map(|c| match c {
                Condition::Type(ts) => Some(ts.clone()),
                _ => None,
            })
            .unwrap_or_else(|| vec![EventType::Terminated])
    }

    /// Matches every event of its types: no conditions besides `type`.
    pub fn is_catch_all(&self) -> bool {
        self.conditions
            .iter()
            .all(|c| matches!(c, Condition::Type(_)))
    }

    pub fn eval(&self, facts: &Facts<'_>) -> Truth {
        if !self.event_types().contains(&facts.event.event_type) {
            return Truth::No;
        }
        let mut unknown = Vec::new();
        for c in &self.conditions {
            match c.eval(facts) {
                Truth::Yes => {}
                // A definite "no" decides regardless of what is unknown.
                Truth::No => return Truth::No,
                Truth::Unknown(mut names) => unknown.append(&mut names),
            }
        }
        if unknown.is_empty() {
            Truth::Yes
        } else {
            Truth::Unknown(unknown)
        }
    }
}

/// Any alternative matching suffices. A rule without `when` has one empty alternative.
pub(super) fn eval_any(alternatives: &[Alternative], facts: &Facts<'_>) -> Truth {
    let mut unknown: Vec<&'static str> = Vec::new();
    for alt in alternatives {
        match alt.eval(facts) {
            Truth::Yes => return Truth::Yes,
            Truth::No => {}
            Truth::Unknown(names) => {
                for n in names {
                    if !unknown.contains(&n) {
                        unknown.push(n);
                    }
                }
            }
        }
    }
    if unknown.is_empty() {
        Truth::No
    } else {
        Truth::Unknown(unknown)
    }
}

fn yes_if(b: bool) -> Truth {
    if b { Truth::Yes } else { Truth::No }
}

fn any_eq_ignore_case(wanted: &[String], actual: Option<&str>) -> Truth {
    match actual {
        Some(a) => yes_if(wanted.iter().any(|w| w.eq_ignore_ascii_case(a.trim()))),
        None => Truth::No,
    }
}

impl Condition {
    fn eval(&self, facts: &Facts<'_>) -> Truth {
        let event = facts.event;
        match self {
            Self::Type(ts) => yes_if(ts.contains(&event.event_type)),
            Self::Kind(ks) => yes_if(event.kind().is_some_and(|k| ks.contains(&k))),
            Self::RehireEligible(want) => yes_if(
                event
                    .termination
                    .as_ref()
                    .and_then(|t| t.rehire_eligible)
                    .is_some_and(|r| r == *want),
            ),
            Self::LegalHold(want) => yes_if(event.legal_hold == *want),
            Self::Department(ds) => any_eq_ignore_case(ds, event.employee.department.as_deref()),
            Self::Country(cs) => any_eq_ignore_case(cs, event.employee.country.as_deref()),
            Self::EmailDomain(ds) => any_eq_ignore_case(ds, Some(event.employee.email.domain())),
            Self::CrmRole(role) => match facts.user {
                Some(u) => yes_if(u.role == *role),
                None => Truth::Unknown(vec!["crm_role"]),
            },
            Self::CrmTeam(teams) => match facts.user {
                // A known user without a team is a fact ("no team"), not a gap.
                Some(u) => any_eq_ignore_case(teams, u.team_name.as_deref()),
                None => Truth::Unknown(vec!["crm_team"]),
            },
            Self::OwnedOpenRecords(range) => match facts.owned_open_records {
                Some(n) => yes_if(range.contains(n)),
                None => Truth::Unknown(vec!["owned_open_records"]),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(
        gt: Option<u64>,
        gte: Option<u64>,
        lt: Option<u64>,
        lte: Option<u64>,
        eq: Option<u64>,
    ) -> Range {
        Range {
            gt,
            gte,
            lt,
            lte,
            eq,
        }
    }

    #[test]
    fn ranges_contain_and_satisfiable() {
        let big = r(Some(500), None, None, None, None);
        assert!(!big.contains(500));
        assert!(big.contains(501));
        let band = r(None, Some(10), Some(20), None, None);
        assert!(band.contains(10) && band.contains(19) && !band.contains(20));
        assert!(band.is_satisfiable());
        assert!(!r(Some(500), None, Some(50), None, None).is_satisfiable());
        assert!(!r(None, None, Some(0), None, None).is_satisfiable());
        assert!(!r(Some(u64::MAX), None, None, None, None).is_satisfiable());
        assert!(!r(None, None, None, Some(3), Some(4)).is_satisfiable());
        assert!(r(None, None, None, Some(4), Some(4)).is_satisfiable());
        assert!(r(Some(4), None, Some(6), None, None).is_satisfiable());
        assert!(!r(Some(4), None, Some(5), None, None).is_satisfiable());
        assert_eq!(band.to_string(), ">= 10 and < 20");
    }
}
