//! Parsing and validating the policy file into a [`Policy`].
//!
//! The policy decides irreversible things, so a file that is not exactly what its
//! author meant is rejected when it is loaded, with `file:line:col` and what was
//! expected, instead of surfacing as a surprising decision weeks later. The file is
//! read into toml's spanned document tree and walked by hand rather than derived with
//! serde: the checks that matter most (unreachable rules, a missing fallback owner,
//! a delete that would not reassign deals) span several keys, and every one of them
//! must still point at a position in the file.
//!
//! All defaults are resolved here, so a parsed [`Rule`] is complete and deciding
//! needs no fallbacks of its own.

use std::ops::Range as Span;
use std::path::Path;

use chrono::TimeDelta;
use sha2::{Digest, Sha256};
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use crate::matcher::{Alternative, CONDITION_KEYS, Condition, EVENT_TYPES, Range};
use offboard_domain::{Capabilities, Resource, UnknownResource, UserRole};
use offboard_domain::{Email, EventType, TerminationKind};

use crate::types::{Action, ReassignTo, Timing};

/// The only policy file format this build understands.
const SUPPORTED_VERSION: i64 = 1;

/// Longest accepted `delete_after`: keeps date arithmetic far from overflow and
/// catches unit slips such as `"90w"` meant as days.
const MAX_RETENTION_DAYS: i64 = 3650;

const TOP_KEYS: [&str; 3] = ["version", "defaults", "rules"];
const DEFAULT_KEYS: [&str; 7] = [
    "reassign_to",
    "fallback_owner",
    "reassign",
    "open_only",
    "at",
    "notify",
    "notify_new_owners",
];
const RULE_KEYS: [&str; 11] = [
    "name",
    "when",
    "action",
    "at",
    "delete_after",
    "reassign_to",
    "reassign",
    "open_only",
    "notify",
    "notify_new_owners",
    "seat_first",
];
const RANGE_KEYS: [&str; 5] = ["gt", "gte", "lt", "lte", "eq"];

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(super) version: String,
    pub(super) defaults: Defaults,
    pub(super) rules: Vec<Rule>,
}

/// `[defaults]`, with the built-in defaults filled in.
#[derive(Debug, Clone)]
pub(super) struct Defaults {
    pub reassign_to: ReassignTo,
    pub fallback_owner: Option<Email>,
    /// `None`: not written, so every resource the configured CRM has.
    pub reassign: Option<Vec<Resource>>,
    pub open_only: bool,
    pub at: Timing,
    pub notify: Vec<Email>,
    /// Tell each new owner what they received (default true).
    pub notify_new_owners: bool,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            reassign_to: ReassignTo::Manager,
            fallback_owner: None,
            reassign: None,
            open_only: true,
            at: Timing::Effective,
            notify: Vec::new(),
            notify_new_owners: true,
        }
    }
}

/// One `[[rules]]` entry with `[defaults]` applied.
#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub name: String,
    /// Alternatives; a rule without `when` has one empty alternative.
    pub when: Vec<Alternative>,
    pub action: Action,
    pub at: Timing,
    pub delete_after: Option<TimeDelta>,
    pub reassign_to: ReassignTo,
    /// `None`: written neither in the rule nor in `[defaults]`, so every resource
    /// the configured CRM has.
    pub reassign: Option<Vec<Resource>>,
    pub open_only: bool,
    pub notify: Vec<Email>,
    pub notify_new_owners: bool,
    /// Change the seat before moving records (cut access first); never for delete.
    pub seat_first: bool,
}

/// A policy file that cannot be used; `Display` is `file:line:col: message`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{origin}:{line}:{col}: {message}")]
pub struct PolicyError {
    /// File name (or `<inline>`).
    pub origin: String,
    /// 1-based line (0 when the file could not be read at all).
    pub line: usize,
    /// 1-based column, counted in characters (0 when the file could not be read).
    pub col: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl Policy {
    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            origin: path.display().to_string(),
            line: 0,
            col: 0,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Validates policy text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, PolicyError> {
        Parser { text, origin }.policy()
    }

    /// Short SHA-256 of the policy text: jobs record it so a decision can be traced
    /// to the exact file it was made with.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Who receives records when no one better is active.
    pub fn fallback_owner(&self) -> Option<&Email> {
        self.defaults.fallback_owner.as_ref()
    }

    /// Rule names in the order they are tried (for `policy check` summaries).
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    /// Each rule's `reassign` entries that `crm` has no object for (the worker
    /// skips them with an audit line): `(rule name, resource)`, for `policy check`.
    pub fn resources_missing_in(&self, crm: &Capabilities) -> Vec<(&str, Resource)> {
        self.rules
            .iter()
            .flat_map(|rule| {
                let listed = rule.reassign.as_deref().unwrap_or_default();
                listed
                    .iter()
                    .filter(|r| !crm.has(**r))
                    .map(|r| (rule.name.as_str(), *r))
            })
            .collect()
    }
}

/// 1-based line and character column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn did_you_mean(got: &str, allowed: &[&str]) -> String {
    allowed
        .iter()
        .map(|a| (edit_distance(got, a), a))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| format!(" (did you mean `{a}`?)"))
        .unwrap_or_default()
}

fn quoted_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => format!("\"{one}\""),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(|i| format!("\"{i}\"")).collect();
            format!("{} or \"{last}\"", init.join(", "))
        }
    }
}

type Value<'i> = Spanned<DeValue<'i>>;
type Key<'i> = Spanned<DeString<'i>>;

/// Table entries in file order, so the first problem reported is the first one a
/// reader meets (the map itself is sorted by key).
fn entries<'t, 'i>(t: &'t DeTable<'i>) -> Vec<(&'t Key<'i>, &'t Value<'i>)> {
    let mut v: Vec<_> = t.iter().collect();
    v.sort_by_key(|(k, _)| k.span().start);
    v
}

struct Parser<'a> {
    text: &'a str,
    origin: &'a str,
}

/// A parsed string with where it was written.
struct Str<'v> {
    s: &'v str,
    span: Span<usize>,
}

impl<'a> Parser<'a> {
    fn err(&self, span: Span<usize>, message: impl Into<String>) -> PolicyError {
        let (line, col) = line_col(self.text, span.start);
        PolicyError {
            origin: self.origin.to_owned(),
            line,
            col,
            message: message.into(),
        }
    }

    fn line_of(&self, span: &Span<usize>) -> usize {
        line_col(self.text, span.start).0
    }

    fn unknown_key(&self, key: &Key<'_>, place: &str, allowed: &[&str]) -> PolicyError {
        let got: &str = key.get_ref();
        self.err(
            key.span(),
            format!(
                "unknown key `{got}` in {place}; expected one of: {}{}",
                allowed.join(", "),
                did_you_mean(got, allowed)
            ),
        )
    }

    fn wrong_type(&self, v: &Value<'_>, what: &str, expected: &str) -> PolicyError {
        self.err(
            v.span(),
            format!(
                "`{what}` expects {expected}, found {}",
                v.get_ref().type_str()
            ),
        )
    }

    fn string<'v>(&self, v: &'v Value<'_>, what: &str) -> Result<Str<'v>, PolicyError> {
        match v.get_ref() {
            DeValue::String(s) => Ok(Str {
                s: s.as_ref(),
                span: v.span(),
            }),
            _ => Err(self.wrong_type(v, what, "a string")),
        }
    }

    fn boolean(&self, v: &Value<'_>, what: &str) -> Result<bool, PolicyError> {
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.wrong_type(v, what, "true or false")),
        }
    }

    fn count(&self, v: &Value<'_>, what: &str) -> Result<u64, PolicyError> {
        match v.get_ref() {
            DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix()).map_err(|_| {
                self.err(
                    v.span(),
                    format!(
                        "`{what}` expects a whole number of at least 0, found {}",
                        i.as_str()
                    ),
                )
            }),
            _ => Err(self.wrong_type(v, what, "a whole number")),
        }
    }

    fn table<'t, 'i>(&self, v: &'t Value<'i>, what: &str) -> Result<&'t DeTable<'i>, PolicyError> {
        match v.get_ref() {
            DeValue::Table(t) => Ok(t),
            _ => Err(self.wrong_type(v, what, "a table")),
        }
    }

    /// A string or a non-empty list of strings.
    fn strings<'v>(&self, v: &'v Value<'_>, what: &str) -> Result<Vec<Str<'v>>, PolicyError> {
        match v.get_ref() {
            DeValue::String(_) => Ok(vec![self.string(v, what)?]),
            DeValue::Array(items) => {
                if items.is_empty() {
                    return Err(self.err(
                        v.span(),
                        format!("`{what}` is an empty list, which matches nothing; list at least one value"),
                    ));
                }
                items.iter().map(|i| self.string(i, what)).collect()
            }
            _ => Err(self.wrong_type(v, what, "a string or a list of strings")),
        }
    }

    /// A list of strings that may be empty (`notify = []`, `reassign = []`).
    fn string_list<'v>(&self, v: &'v Value<'_>, what: &str) -> Result<Vec<Str<'v>>, PolicyError> {
        match v.get_ref() {
            DeValue::Array(items) => items.iter().map(|i| self.string(i, what)).collect(),
            _ => Err(self.wrong_type(v, what, "a list of strings")),
        }
    }

    fn policy(&self) -> Result<Policy, PolicyError> {
        let root = DeTable::parse(self.text).map_err(|e| {
            self.err(
                e.span().unwrap_or(0..0),
                format!("invalid TOML: {}", e.message().trim()),
            )
        })?;
        let root = root.get_ref();

        // The version decides how everything else is read, so it is checked first.
        match root.get("version") {
            None => return Err(self.err(0..0, "missing `version = 1` at the top of the policy")),
            Some(v) => match v.get_ref() {
                DeValue::Integer(i) if i.as_str() == "1" && i.radix() == 10 => {}
                DeValue::Integer(i) => {
                    return Err(self.err(
                        v.span(),
                        format!(
                            "unsupported policy version {}: this offboard understands version = {SUPPORTED_VERSION}",
                            i.as_str()
                        ),
                    ));
                }
                _ => return Err(self.wrong_type(v, "version", "the number 1")),
            },
        }
        for (k, _) in entries(root) {
            if !TOP_KEYS.contains(&k.get_ref().as_ref()) {
                return Err(self.unknown_key(k, "the policy", &TOP_KEYS));
            }
        }

        let (defaults, default_spans) = match root.get("defaults") {
            Some(v) => self.defaults(v)?,
            None => (Defaults::default(), DefaultSpans::default()),
        };

        let items: &[Value<'_>] = match root.get("rules") {
            None => {
                return Err(self.err(
                    self.text.len()..self.text.len(),
                    "no rules: add at least one [[rules]] table",
                ));
            }
            Some(v) => match v.get_ref() {
                DeValue::Array(a) if a.is_empty() => {
                    return Err(self.err(v.span(), "no rules: add at least one [[rules]] table"));
                }
                DeValue::Array(a) => a,
                DeValue::Table(_) => {
                    return Err(self.err(
                        v.span(),
                        "`rules` must be a list of tables: write [[rules]], not [rules]",
                    ));
                }
                _ => return Err(self.wrong_type(v, "rules", "a list of [[rules]] tables")),
            },
        };

        let mut rules: Vec<Rule> = Vec::with_capacity(items.len());
        let mut spans: Vec<RuleSpans> = Vec::with_capacity(items.len());
        for item in items {
            let (rule, rs) = self.rule(item, &defaults)?;
            if let Some(i) = rules.iter().position(|r| r.name == rule.name) {
                return Err(self.err(
                    rs.name.clone(),
                    format!(
                        "duplicate rule name \"{}\": already used on line {}; rule names must be unique",
                        rule.name,
                        self.line_of(&spans[i].name)
                    ),
                ));
            }
            rules.push(rule);
            spans.push(rs);
        }

        self.check_reachable(&rules, &spans)?;
        self.check_fallback(&rules, &spans, &defaults, &default_spans)?;

        let digest = Sha256::digest(self.text.as_bytes());
        let mut version = hex::encode(digest);
        version.truncate(12);
        Ok(Policy {
            version,
            defaults,
            rules,
        })
    }

    fn defaults(&self, v: &Value<'_>) -> Result<(Defaults, DefaultSpans), PolicyError> {
        let t = self.table(v, "defaults")?;
        let mut d = Defaults::default();
        let mut spans = DefaultSpans {
            table: Some(v.span()),
            ..DefaultSpans::default()
        };
        for (k, v) in entries(t) {
            match k.get_ref().as_ref() {
                "reassign_to" => {
                    d.reassign_to = self.reassign_to(v)?;
                    spans.reassign_to = Some(v.span());
                }
                "fallback_owner" => {
                    let s = self.string(v, "fallback_owner")?;
                    d.fallback_owner = Some(self.email(&s, "fallback_owner")?);
                }
                "reassign" => d.reassign = Some(self.resources(v)?),
                "open_only" => d.open_only = self.boolean(v, "open_only")?,
                "at" => d.at = self.timing(v)?,
                "notify" => d.notify = self.notify(v)?,
                "notify_new_owners" => {
                    d.notify_new_owners = self.boolean(v, "notify_new_owners")?;
                }
                _ => return Err(self.unknown_key(k, "[defaults]", &DEFAULT_KEYS)),
            }
        }
        Ok((d, spans))
    }

    fn email(&self, s: &Str<'_>, what: &str) -> Result<Email, PolicyError> {
        Email::parse(s.s).map_err(|e| self.err(s.span.clone(), format!("bad {what}: {e}")))
    }

    fn notify(&self, v: &Value<'_>) -> Result<Vec<Email>, PolicyError> {
        let mut out: Vec<Email> = Vec::new();
        for s in self.string_list(v, "notify")? {
            let e = self.email(&s, "notify address")?;
            if !out.contains(&e) {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn timing(&self, v: &Value<'_>) -> Result<Timing, PolicyError> {
        let s = self.string(v, "at")?;
        match s.s {
            "effective" => Ok(Timing::Effective),
            "now" => Ok(Timing::Now),
            other => Err(self.err(
                s.span,
                format!("bad at \"{other}\": expected \"effective\" (wait for termination.effective_at) or \"now\""),
            )),
        }
    }

    fn action(&self, v: &Value<'_>) -> Result<Action, PolicyError> {
        let s = self.string(v, "action")?;
        match s.s {
            "deactivate" => Ok(Action::Deactivate),
            "delete" => Ok(Action::Delete),
            "review" => Ok(Action::Review),
            other => Err(self.err(
                s.span,
                format!(
                    "bad action \"{other}\": expected \"deactivate\", \"delete\" or \"review\"{}",
                    did_you_mean(other, &["deactivate", "delete", "review"])
                ),
            )),
        }
    }

    fn reassign_to(&self, v: &Value<'_>) -> Result<ReassignTo, PolicyError> {
        let s = self.string(v, "reassign_to")?;
        match s.s {
            "manager" => Ok(ReassignTo::Manager),
            "fallback" => Ok(ReassignTo::Fallback),
            other => match other.strip_prefix("user:") {
                Some(addr) => Email::parse(addr).map(ReassignTo::User).map_err(|e| {
                    self.err(s.span.clone(), format!("bad reassign_to \"{other}\": {e}"))
                }),
                None => Err(self.err(
                    s.span.clone(),
                    format!(
                        "bad reassign_to \"{other}\": expected \"manager\", \"fallback\" or \"user:<email>\""
                    ),
                )),
            },
        }
    }

    fn resources(&self, v: &Value<'_>) -> Result<Vec<Resource>, PolicyError> {
        let mut wanted = Vec::new();
        for s in self.string_list(v, "reassign")? {
            let r: Resource =
                s.s.parse()
                    .map_err(|e: UnknownResource| self.err(s.span.clone(), e.to_string()))?;
            wanted.push(r);
        }
        // The worker reassigns in a fixed order whatever order the file lists.
        Ok(Resource::ALL
            .into_iter()
            .filter(|r| wanted.contains(r))
            .collect())
    }

    fn duration(&self, v: &Value<'_>) -> Result<TimeDelta, PolicyError> {
        let s = self.string(v, "delete_after")?;
        parse_duration(s.s)
            .map_err(|why| self.err(s.span, format!("bad duration \"{}\": {why}", s.s)))
    }

    fn rule(
        &self,
        item: &Value<'_>,
        defaults: &Defaults,
    ) -> Result<(Rule, RuleSpans), PolicyError> {
        let t = match item.get_ref() {
            DeValue::Table(t) => t,
            _ => return Err(self.wrong_type(item, "rules", "a list of tables")),
        };
        let mut name: Option<Str<'_>> = None;
        let mut when: Option<Vec<Alternative>> = None;
        let mut action: Option<(Action, Span<usize>)> = None;
        let mut at = None;
        let mut delete_after: Option<(TimeDelta, Span<usize>)> = None;
        let mut reassign_to: Option<(ReassignTo, Span<usize>)> = None;
        let mut reassign: Option<(Vec<Resource>, Span<usize>)> = None;
        let mut open_only = None;
        let mut notify = None;
        let mut notify_new_owners = None;
        let mut seat_first: Option<(bool, Span<usize>)> = None;
        let mut when_span = None;
        for (k, v) in entries(t) {
            match k.get_ref().as_ref() {
                "name" => {
                    let s = self.string(v, "name")?;
                    if s.s.trim().is_empty() {
                        return Err(
                            self.err(s.span, "rule `name` is empty; give every rule a name")
                        );
                    }
                    name = Some(s);
                }
                "when" => {
                    when = Some(self.when(v)?);
                    when_span = Some(v.span());
                }
                "action" => action = Some((self.action(v)?, v.span())),
                "at" => at = Some(self.timing(v)?),
                "delete_after" => delete_after = Some((self.duration(v)?, v.span())),
                "reassign_to" => reassign_to = Some((self.reassign_to(v)?, v.span())),
                "reassign" => reassign = Some((self.resources(v)?, v.span())),
                "open_only" => open_only = Some(self.boolean(v, "open_only")?),
                "notify" => notify = Some(self.notify(v)?),
                "notify_new_owners" => {
                    notify_new_owners = Some(self.boolean(v, "notify_new_owners")?);
                }
                "seat_first" => seat_first = Some((self.boolean(v, "seat_first")?, v.span())),
                _ => return Err(self.unknown_key(k, "[[rules]]", &RULE_KEYS)),
            }
        }
        let Some(name) = name else {
            return Err(self.err(
                item.span(),
                "rule is missing `name`; every rule needs a unique name",
            ));
        };
        let rule_name = name.s.trim().to_owned();
        let Some((action, action_span)) = action else {
            return Err(self.err(
                item.span(),
                format!(
                    "rule \"{rule_name}\" is missing `action`; expected action = \"deactivate\", \"delete\" or \"review\""
                ),
            ));
        };
        if let Some((_, span)) = &delete_after
            && action != Action::Deactivate
        {
            return Err(self.err(
                span.clone(),
                format!(
                    "delete_after only applies to action = \"deactivate\" (deactivate now, delete after the retention period); rule \"{rule_name}\" has action = \"{}\"",
                    action.as_str()
                ),
            ));
        }
        if let Some((true, span)) = &seat_first
            && action == Action::Delete
        {
            return Err(self.err(
                span.clone(),
                format!(
                    "rule \"{rule_name}\" deletes the seat, so it cannot go first: the CRMs refuse to delete a user who still owns open records; seat_first applies to action = \"deactivate\" (and to \"review\" once approved)"
                ),
            ));
        }
        let when = when.unwrap_or_else(|| vec![Alternative::default()]);
        if action != Action::Review {
            let reversal = when
                .iter()
                .flat_map(Alternative::event_types)
                .find(|t| t.is_reversal());
            if let Some(t) = reversal {
                return Err(self.err(
                    action_span,
                    format!(
                        "rule \"{rule_name}\" matches {} but has action = \"{}\"; rules for rehires and cancelled terminations may only use action = \"review\" (offboard cancels pending jobs for them by itself)",
                        t.as_str(),
                        action.as_str()
                    ),
                ));
            }
        }
        let resources = reassign
            .as_ref()
            .map(|(r, _)| r.clone())
            .or_else(|| defaults.reassign.clone());
        let deletes = action == Action::Delete || delete_after.is_some();
        let required = [Resource::Leads, Resource::Contacts, Resource::Deals];
        if deletes
            && let Some(listed) = &resources
            && let Some(missing) = required.iter().find(|r| !listed.contains(r))
        {
            let span = reassign
                .as_ref()
                .map_or(action_span.clone(), |(_, s)| s.clone());
            return Err(self.err(
                span,
                format!(
                    "rule \"{rule_name}\" deletes the seat but does not reassign {missing}; Sell refuses to delete a user who still owns open leads, contacts or deals, so `reassign` must include leads, contacts and deals"
                ),
            ));
        }
        let spans = RuleSpans {
            rule: item.span(),
            name: name.span.clone(),
            reassign_to: reassign_to.as_ref().map(|(_, s)| s.clone()),
            when: when_span,
        };
        let rule = Rule {
            name: rule_name,
            when,
            action,
            at: at.unwrap_or(defaults.at),
            delete_after: delete_after.map(|(d, _)| d),
            reassign_to: reassign_to.map_or_else(|| defaults.reassign_to.clone(), |(r, _)| r),
            reassign: resources,
            open_only: open_only.unwrap_or(defaults.open_only),
            notify: notify.unwrap_or_else(|| defaults.notify.clone()),
            notify_new_owners: notify_new_owners.unwrap_or(defaults.notify_new_owners),
            seat_first: seat_first.is_some_and(|(on, _)| on),
        };
        Ok((rule, spans))
    }

    fn when(&self, v: &Value<'_>) -> Result<Vec<Alternative>, PolicyError> {
        match v.get_ref() {
            DeValue::Table(t) => Ok(vec![self.alternative(t)?]),
            DeValue::Array(items) if items.is_empty() => Err(self.err(
                v.span(),
                "`when` is an empty list of alternatives, which matches nothing; leave `when` out to match every termination",
            )),
            DeValue::Array(items) => items
                .iter()
                .map(|i| match i.get_ref() {
                    DeValue::Table(t) => self.alternative(t),
                    _ => Err(self.wrong_type(i, "when", "a table of conditions in each alternative")),
                })
                .collect(),
            _ => Err(self.wrong_type(v, "when", "a table of conditions or a list of such tables")),
        }
    }

    fn alternative(&self, t: &DeTable<'_>) -> Result<Alternative, PolicyError> {
        let mut conditions = Vec::new();
        for (k, v) in entries(t) {
            let key: &str = k.get_ref();
            let c = match key {
                "type" => Condition::Type(self.each(v, key, |s| {
                    EVENT_TYPES
                        .into_iter()
                        .find(|t| t.as_str() == s)
                        .ok_or_else(|| {
                            let names: Vec<&str> = EVENT_TYPES.iter().map(|t| t.as_str()).collect();
                            format!("expected {}", quoted_list(&names))
                        })
                })?),
                "kind" => Condition::Kind(self.each(v, key, |s| {
                    TerminationKind::parse(s).ok_or_else(|| {
                        let names: Vec<&str> =
                            TerminationKind::ALL.iter().map(|k| k.as_str()).collect();
                        format!("expected {}", quoted_list(&names))
                    })
                })?),
                "rehire_eligible" => Condition::RehireEligible(self.boolean(v, key)?),
                "legal_hold" => Condition::LegalHold(self.boolean(v, key)?),
                "department" => Condition::Department(self.each(v, key, non_empty_lower)?),
                "country" => Condition::Country(self.each(v, key, non_empty_lower)?),
                "crm_team" => Condition::CrmTeam(self.each(v, key, non_empty_lower)?),
                "email_domain" => Condition::EmailDomain(self.each(v, key, domain)?),
                "crm_role" => {
                    let s = self.string(v, key)?;
                    Condition::CrmRole(match s.s {
                        "user" => UserRole::User,
                        "admin" => UserRole::Admin,
                        other => {
                            return Err(self.err(
                                s.span,
                                format!("bad crm_role \"{other}\": expected \"user\" or \"admin\""),
                            ));
                        }
                    })
                }
                "owned_open_records" => Condition::OwnedOpenRecords(self.range(v, key)?),
                _ => return Err(self.unknown_key(k, "`when`", &CONDITION_KEYS)),
            };
            conditions.push(c);
        }
        Ok(Alternative { conditions })
    }

    /// Parses each value of a string-or-list matcher with `f`, which explains what
    /// it expected when a value is wrong.
    fn each<T: PartialEq>(
        &self,
        v: &Value<'_>,
        what: &str,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, PolicyError> {
        let mut out = Vec::new();
        for s in self.strings(v, what)? {
            let parsed = f(s.s).map_err(|why| {
                self.err(s.span.clone(), format!("bad {what} \"{}\": {why}", s.s))
            })?;
            if !out.contains(&parsed) {
                out.push(parsed);
            }
        }
        Ok(out)
    }

    fn range(&self, v: &Value<'_>, what: &str) -> Result<Range, PolicyError> {
        let mut r = Range::default();
        match v.get_ref() {
            // A bare number is the common "exactly N" case.
            DeValue::Integer(_) => r.eq = Some(self.count(v, what)?),
            DeValue::Table(t) => {
                if t.is_empty() {
                    return Err(self.err(
                        v.span(),
                        format!("`{what}` range is empty; expected at least one of gt, gte, lt, lte, eq, e.g. {{ gt = 500 }}"),
                    ));
                }
                for (k, bound) in entries(t) {
                    let n = || self.count(bound, &format!("{what}.{}", k.get_ref()));
                    match k.get_ref().as_ref() {
                        "gt" => r.gt = Some(n()?),
                        "gte" => r.gte = Some(n()?),
                        "lt" => r.lt = Some(n()?),
                        "lte" => r.lte = Some(n()?),
                        "eq" => r.eq = Some(n()?),
                        _ => {
                            return Err(self.unknown_key(
                                k,
                                &format!("the `{what}` range"),
                                &RANGE_KEYS,
                            ));
                        }
                    }
                }
                if !r.is_satisfiable() {
                    return Err(self.err(
                        v.span(),
                        format!("`{what}` range {r} matches no number; check the bounds"),
                    ));
                }
            }
            _ => {
                return Err(self.wrong_type(
                    v,
                    what,
                    "a whole number or a range table such as { gt = 500 } (keys gt, gte, lt, lte, eq)",
                ));
            }
        }
        Ok(r)
    }

    /// Rules after a catch-all for the same event types can never run: almost
    /// always a rule put in the wrong place, which would silently change behaviour.
    fn check_reachable(&self, rules: &[Rule], spans: &[RuleSpans]) -> Result<(), PolicyError> {
        // Event types already fully taken, with the index of the rule taking each.
        let mut taken: Vec<(EventType, usize)> = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let covering = rule
                .when
                .iter()
                .map(|alt| {
                    alt.event_types()
                        .iter()
                        .map(|t| taken.iter().find(|(tt, _)| tt == t).map(|(_, j)| *j))
                        .collect::<Option<Vec<usize>>>()
                })
                .collect::<Option<Vec<Vec<usize>>>>();
            if let Some(by) = covering {
                let j = by.first().and_then(|v| v.first()).copied().unwrap_or(0);
                let what = if spans[j].when.is_none() {
                    "has no `when`, so it matches every termination"
                } else {
                    "has a `when` with no conditions (besides `type`), so it matches every such event"
                };
                return Err(self.err(
                    spans[i].rule.clone(),
                    format!(
                        "rule \"{}\" is unreachable: rule \"{}\" above it (line {}) {what}; move the catch-all last",
                        rule.name,
                        rules[j].name,
                        self.line_of(&spans[j].rule)
                    ),
                ));
            }
            for alt in rule.when.iter().filter(|a| a.is_catch_all()) {
                for t in alt.event_types() {
                    if !taken.iter().any(|(tt, _)| *tt == t) {
                        taken.push((t, i));
                    }
                }
            }
        }
        Ok(())
    }

    /// `manager` falls back to `fallback_owner` when no manager is active, so a
    /// policy that can reassign to either must name one; finding out at run time
    /// would park every such job in review.
    fn check_fallback(
        &self,
        rules: &[Rule],
        spans: &[RuleSpans],
        defaults: &Defaults,
        default_spans: &DefaultSpans,
    ) -> Result<(), PolicyError> {
        if defaults.fallback_owner.is_some() {
            return Ok(());
        }
        let needs = rules
            .iter()
            .zip(spans)
            .find(|(r, _)| matches!(r.reassign_to, ReassignTo::Manager | ReassignTo::Fallback));
        let Some((rule, rs)) = needs else {
            return Ok(());
        };
        let (why, span) = match (
            &rule.reassign_to,
            &rs.reassign_to,
            &default_spans.reassign_to,
        ) {
            (ReassignTo::Fallback, Some(s), _) => ("reassigns to the fallback owner", s.clone()),
            (_, Some(s), _) => (
                "reassigns to the manager, which falls back to it",
                s.clone(),
            ),
            (ReassignTo::Fallback, None, Some(s)) => (
                "reassigns to the fallback owner (from [defaults])",
                s.clone(),
            ),
            (_, None, Some(s)) => (
                "reassigns to the manager (from [defaults]), which falls back to it",
                s.clone(),
            ),
            (_, None, None) => (
                "reassigns to the manager (the default), which falls back to it",
                default_spans
                    .table
                    .clone()
                    .unwrap_or_else(|| rs.name.clone()),
            ),
        };
        Err(self.err(
            span,
            format!(
                "missing defaults.fallback_owner: rule \"{}\" {why}; set fallback_owner = \"<email>\" in [defaults]",
                rule.name
            ),
        ))
    }
}

#[derive(Debug, Default)]
struct DefaultSpans {
    table: Option<Span<usize>>,
    reassign_to: Option<Span<usize>>,
}

#[derive(Debug)]
struct RuleSpans {
    rule: Span<usize>,
    name: Span<usize>,
    reassign_to: Option<Span<usize>>,
    when: Option<Span<usize>>,
}

fn non_empty_lower(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        Err("expected a non-empty string".to_owned())
    } else {
        Ok(t.to_lowercase())
    }
}

/// Accepts `example.com` and `@example.com`; compares lower-cased.
fn domain(s: &str) -> Result<String, String> {
    let d = s.trim().trim_start_matches('@').to_lowercase();
    let ok = d.len() >= 3
        && d.contains('.')
        && !d.starts_with('.')
        && !d.ends_with('.')
        && !d.contains("..")
        && !d.contains('@')
        && !d.chars().any(char::is_whitespace);
    if ok {
        Ok(d)
    } else {
        Err("expected a domain such as \"example.com\"".to_owned())
    }
}

/// `"90d"`, `"2w"`, `"36h"`, `"1w 3d"`; units w, d, h, m (minutes: months have no
/// fixed length, and a retention period must be exact).
fn parse_duration(s: &str) -> Result<TimeDelta, String> {
    const EXPECTED: &str = "expected a whole number and a unit (w, d, h, m), e.g. \"90d\"";
    let mut total: i64 = 0;
    let mut digits = String::new();
    let mut groups = 0;
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if c == ' ' && digits.is_empty() {
            continue;
        }
        let unit: i64 = match c {
            'w' => 7 * 86_400,
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            _ => return Err(EXPECTED.to_owned()),
        };
        if digits.is_empty() {
            return Err(EXPECTED.to_owned());
        }
        let n: i64 = digits.parse().map_err(|_| EXPECTED.to_owned())?;
        total = n
            .checked_mul(unit)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(|| format!("longer than the maximum of {MAX_RETENTION_DAYS}d"))?;
        digits.clear();
        groups += 1;
    }
    if groups == 0 || !digits.is_empty() {
        return Err(EXPECTED.to_owned());
    }
    if total == 0 {
        return Err("must be longer than zero".to_owned());
    }
    if total > MAX_RETENTION_DAYS * 86_400 {
        return Err(format!("longer than the maximum of {MAX_RETENTION_DAYS}d"));
    }
    TimeDelta::try_seconds(total).ok_or_else(|| EXPECTED.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version = 1

[defaults]
fallback_owner = "sales-ops@example.com"

[[rules]]
name = "legal hold keeps everything"
when = { legal_hold = true }
action = "deactivate"

[[rules]]
name = "everyone else"
action = "deactivate"
delete_after = "90d"
"#;

    fn err(text: &str) -> PolicyError {
        match Policy::parse(text, "p.toml") {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_and_hashes() {
        let p = Policy::parse(GOOD, "p.toml").unwrap();
        assert_eq!(p.version().len(), 12);
        assert_eq!(
            p.rule_names().collect::<Vec<_>>(),
            ["legal hold keeps everything", "everyone else"]
        );
        assert_eq!(
            p.fallback_owner().unwrap().as_str(),
            "sales-ops@example.com"
        );
        assert_eq!(p.rules[1].delete_after, TimeDelta::try_days(90));
        assert_eq!(p.rules[1].reassign, None);
        assert!(p.rules[1].open_only);
        let other = Policy::parse(&GOOD.replace("90d", "91d"), "p.toml").unwrap();
        assert_ne!(p.version(), other.version());
    }

    #[test]
    fn line_col_counts_characters() {
        let t = "ab\nçd = 1\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 5), (2, 2));
        assert_eq!(line_col(t, 4), (2, 1), "inside a character rounds down");
        assert_eq!(line_col(t, 999), (3, 1));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d"), Ok(TimeDelta::days(90)));
        assert_eq!(parse_duration("2w"), Ok(TimeDelta::days(14)));
        assert_eq!(parse_duration("1w 2d"), Ok(TimeDelta::days(9)));
        assert_eq!(parse_duration("36h"), Ok(TimeDelta::hours(36)));
        assert_eq!(parse_duration("90m"), Ok(TimeDelta::minutes(90)));
        for bad in [
            "",
            "90",
            "d",
            "90 d",
            "90y",
            "-1d",
            "1.5d",
            "0d",
            "3651d",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn errors_point_at_the_value() {
        let e = err(&GOOD.replace(
            "action = \"deactivate\"\ndelete_after",
            "action = \"deactivat\"\ndelete_after",
        ));
        assert_eq!((e.line, e.col), (14, 10), "{e}");
        assert!(e.message.contains("did you mean `deactivate`"), "{e}");
        assert_eq!(e.to_string().split(": ").next(), Some("p.toml:14:10"));
    }

    #[test]
    fn toml_syntax_errors_have_positions() {
        let e = err("version = 1\n[[rules]\nname = 1\n");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.starts_with("invalid TOML"), "{e}");
    }

    #[test]
    fn catch_all_for_terminations_does_not_hide_reversal_rules() {
        let text = format!(
            "{GOOD}\n[[rules]]\nname = \"reversals\"\nwhen = {{ type = [\"employee.rehired\", \"employee.termination_cancelled\"] }}\naction = \"review\"\n"
        );
        Policy::parse(&text, "p.toml").unwrap();
        let text = format!(
            "{text}\n[[rules]]\nname = \"again\"\nwhen = {{ type = \"employee.rehired\" }}\naction = \"review\"\n"
        );
        let e = err(&text);
        assert!(e.message.contains("\"again\" is unreachable"), "{e}");
    }
}
