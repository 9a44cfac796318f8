//! The canonical `OffboardingEvent` (DESIGN.md §5) that every HR source maps to.
//!
//! `OffboardingEvent::from_json` is the only way in: it checks required fields and
//! enumerations and says exactly which field is wrong, so a 400 can name it.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Email;

/// What happened to the employee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// The employee leaves (now or at `termination.effective_at`).
    #[serde(rename = "employee.terminated")]
    Terminated,
    /// A termination was called off before it took effect.
    #[serde(rename = "employee.termination_cancelled")]
    TerminationCancelled,
    /// A former employee came back.
    #[serde(rename = "employee.rehired")]
    Rehired,
}

impl EventType {
    /// The stable string form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Terminated => "employee.terminated",
            Self::TerminationCancelled => "employee.termination_cancelled",
            Self::Rehired => "employee.rehired",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Terminated, Self::TerminationCancelled, Self::Rehired]
            .into_iter()
            .find(|t| t.as_str() == s)
    }

    /// Whether this event undoes earlier terminations.
    pub fn is_reversal(self) -> bool {
        matches!(self, Self::TerminationCancelled | Self::Rehired)
    }
}

/// Why the employee leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TerminationKind {
    /// The employee resigned.
    Voluntary,
    /// The company ended the employment (termination for cause or performance).
    Involuntary,
    /// Position eliminated, often many leavers at once.
    Layoff,
    /// The employee retired.
    Retirement,
    /// A fixed-term contract ran out (`contract_end`).
    ContractEnd,
    /// The employee died; policies usually keep the seat for the family and legal.
    Deceased,
    /// Anything the HR system calls otherwise (mapped values that match no other kind).
    Other,
}

impl TerminationKind {
    /// Every kind, in the order DESIGN.md lists them.
    pub const ALL: [TerminationKind; 7] = [
        Self::Voluntary,
        Self::Involuntary,
        Self::Layoff,
        Self::Retirement,
        Self::ContractEnd,
        Self::Deceased,
        Self::Other,
    ];

    /// The stable string form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Voluntary => "voluntary",
            Self::Involuntary => "involuntary",
            Self::Layoff => "layoff",
            Self::Retirement => "retirement",
            Self::ContractEnd => "contract_end",
            Self::Deceased => "deceased",
            Self::Other => "other",
        }
    }

    /// Parses the stable string form.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The person leaving, as the HR system knows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Employee {
    /// HR system's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Work e-mail: the key to find the CRM user.
    pub email: Email,
    /// Display name, as the HR system sent it (for audit and notices only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Department name; policy rules can match on it (`department = [...]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// ISO country code as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Preferred owner of reassigned records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_email: Option<Email>,
}

/// When and how the employment ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Termination {
    /// When the action should happen (`at = "effective"`); absent means now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<DateTime<Utc>>,
    /// Why the employment ends; rules match on it (`kind = "involuntary"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TerminationKind>,
    /// Whether HR marked the leaver eligible for rehire; rules can match on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rehire_eligible: Option<bool>,
    /// Free-text reason from the HR system; stored and shown, never matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The canonical event. See DESIGN.md §5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffboardingEvent {
    /// The dedupe key within a source.
    pub id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the HR system recorded the change (not when it takes effect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
    /// Who is leaving (or rejoining).
    pub employee: Employee,
    /// How and when the employment ends; absent for rehires and cancellations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination: Option<Termination>,
    /// Records must be preserved; never delete.
    #[serde(default)]
    pub legal_hold: bool,
}

/// A payload that is not a valid canonical event; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct EventError {
    /// Dotted path of the offending field, e.g. `employee.email`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

fn err(field: &str, problem: impl Into<String>) -> EventError {
    EventError {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

impl OffboardingEvent {
    /// Validates a JSON value as a canonical event. `fallback_id` is used when the
    /// payload has no `id` (the signature scheme's message id or a body hash).
    pub fn from_json(value: &Value, fallback_id: Option<&str>) -> Result<Self, EventError> {
        let obj = value.as_object().ok_or_else(|| {
            err(
                "$",
                format!("expected a JSON object, got {}", json_kind(value)),
            )
        })?;
        let id = match obj.get("id") {
            None | Some(Value::Null) => fallback_id
                .map(str::to_owned)
                .ok_or_else(|| err("id", "missing"))?,
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Err(err(
                    "id",
                    format!(
                        "expected a non-empty string of at most 256 characters, got {}",
                        json_kind(other)
                    ),
                ));
            }
        };
        let type_str = req_str(obj.get("type"), "type")?;
        let event_type = EventType::parse(type_str).ok_or_else(|| {
            err(
                "type",
                format!("unknown type {type_str:?} (expected employee.terminated, employee.termination_cancelled or employee.rehired)"),
            )
        })?;
        let occurred_at = opt_time(obj.get("occurred_at"), "occurred_at")?;

        let emp = obj
            .get("employee")
            .ok_or_else(|| err("employee", "missing"))?
            .as_object()
            .ok_or_else(|| err("employee", "expected an object"))?;
        let email_raw = req_str(emp.get("email"), "employee.email")?;
        let email = Email::parse(email_raw).map_err(|e| err("employee.email", e.to_string()))?;
        let manager_email = match opt_str(emp.get("manager_email"), "employee.manager_email")? {
            Some(m) if !m.trim().is_empty() => {
                Some(Email::parse(m).map_err(|e| err("employee.manager_email", e.to_string()))?)
            }
            _ => None,
        };
        let employee = Employee {
            id: opt_scalar(emp.get("id"), "employee.id")?,
            email,
            name: opt_str(emp.get("name"), "employee.name")?.map(str::to_owned),
            department: opt_str(emp.get("department"), "employee.department")?.map(str::to_owned),
            country: opt_str(emp.get("country"), "employee.country")?.map(str::to_owned),
            manager_email,
        };

        let termination = match obj.get("termination") {
            None | Some(Value::Null) => None,
            Some(Value::Object(t)) => {
                let kind = match opt_str(t.get("kind"), "termination.kind")? {
                    None => None,
                    Some(k) => Some(TerminationKind::parse(k).ok_or_else(|| {
                        err(
                            "termination.kind",
                            format!("unknown kind {k:?} (expected one of voluntary, involuntary, layoff, retirement, contract_end, deceased, other)"),
                        )
                    })?),
                };
                Some(Termination {
                    effective_at: opt_time(t.get("effective_at"), "termination.effective_at")?,
                    kind,
                    rehire_eligible: opt_bool(
                        t.get("rehire_eligible"),
                        "termination.rehire_eligible",
                    )?,
                    reason: opt_str(t.get("reason"), "termination.reason")?.map(str::to_owned),
                })
            }
            Some(other) => {
                return Err(err(
                    "termination",
                    format!("expected an object, got {}", json_kind(other)),
                ));
            }
        };
        let legal_hold = opt_bool(obj.get("legal_hold"), "legal_hold")?.unwrap_or(false);
        Ok(Self {
            id,
            event_type,
            occurred_at,
            employee,
            termination,
            legal_hold,
        })
    }

    /// The termination kind, if any.
    pub fn kind(&self) -> Option<TerminationKind> {
        self.termination.as_ref().and_then(|t| t.kind)
    }

    /// When the action is due; `None` means now.
    pub fn effective_at(&self) -> Option<DateTime<Utc>> {
        self.termination.as_ref().and_then(|t| t.effective_at)
    }
}

/// How a JSON value is described in error messages ("a string", "an array", …).
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn req_str<'a>(v: Option<&'a Value>, field: &str) -> Result<&'a str, EventError> {
    match opt_str(v, field)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        Some(_) => Err(err(field, "is empty")),
        None => Err(err(field, "missing")),
    }
}

fn opt_str<'a>(v: Option<&'a Value>, field: &str) -> Result<Option<&'a str>, EventError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(err(
            field,
            format!("expected a string, got {}", json_kind(other)),
        )),
    }
}

fn opt_scalar(v: Option<&Value>, field: &str) -> Result<Option<String>, EventError> {
    match v {
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        other => Ok(opt_str(other, field)?.map(str::to_owned)),
    }
}

fn opt_bool(v: Option<&Value>, field: &str) -> Result<Option<bool>, EventError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(err(
            field,
            format!("expected true or false, got {}", json_kind(other)),
        )),
    }
}

/// Accepts RFC 3339 timestamps and plain dates (taken as midnight UTC), since HR
/// systems often send only a termination date.
fn opt_time(v: Option<&Value>, field: &str) -> Result<Option<DateTime<Utc>>, EventError> {
    let Some(s) = opt_str(v, field)? else {
        return Ok(None);
    };
    if s.trim().is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()));
    }
    Err(err(
        field,
        format!("{s:?} is not an RFC 3339 timestamp or YYYY-MM-DD date"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_design_example() {
        let v = json!({
            "id": "evt_9f2c", "type": "employee.terminated", "occurred_at": "2026-12-01T10:00:00Z",
            "employee": {"id": "E1001", "email": "Jane.Doe@example.com", "manager_email": "boss@example.com"},
            "termination": {"effective_at": "2026-12-15T17:00:00Z", "kind": "voluntary", "rehire_eligible": true},
            "legal_hold": false
        });
        let e = OffboardingEvent::from_json(&v, None).unwrap();
        assert_eq!(e.employee.email.as_str(), "jane.doe@example.com");
        assert_eq!(e.kind(), Some(TerminationKind::Voluntary));
        let round = serde_json::to_value(&e).unwrap();
        assert_eq!(OffboardingEvent::from_json(&round, None).unwrap(), e);
    }

    #[test]
    fn names_the_bad_field() {
        let cases = [
            (json!([]), "$"),
            (
                json!({"type": "employee.terminated", "employee": {"email": "a@b.co"}}),
                "id",
            ),
            (
                json!({"id": "1", "type": "x", "employee": {"email": "a@b.co"}}),
                "type",
            ),
            (
                json!({"id": "1", "type": "employee.terminated", "employee": {}}),
                "employee.email",
            ),
            (
                json!({"id": "1", "type": "employee.terminated", "employee": {"email": "nope"}}),
                "employee.email",
            ),
            (
                json!({"id": "1", "type": "employee.terminated", "employee": {"email": "a@b.co"}, "termination": {"kind": "fired"}}),
                "termination.kind",
            ),
            (
                json!({"id": "1", "type": "employee.terminated", "employee": {"email": "a@b.co"}, "legal_hold": "yes"}),
                "legal_hold",
            ),
        ];
        for (v, field) in cases {
            let e = OffboardingEvent::from_json(&v, None).unwrap_err();
            assert_eq!(e.field, field, "{v}");
        }
    }

    #[test]
    fn fallback_id_and_plain_dates() {
        let v = json!({"type": "employee.terminated", "employee": {"email": "a@b.co"}, "termination": {"effective_at": "2026-12-15"}});
        let e = OffboardingEvent::from_json(&v, Some("msg_1")).unwrap();
        assert_eq!(e.id, "msg_1");
        assert_eq!(
            e.effective_at().unwrap().to_rfc3339(),
            "2026-12-15T00:00:00+00:00"
        );
    }
}
