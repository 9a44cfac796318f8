//! A change of a SCIM user's `active` → the canonical event (DESIGN.md §5) that
//! offboard acts on, exactly as if an HR system had posted it: source `scim`,
//! deduped, decided by the policy, capped and audited like any webhook.
//!
//! - `active` true → false (PATCH with or without a path, PUT, or DELETE of an
//!   active user) is `employee.terminated`, effective now, of `[scim]
//!   termination_kind`: an identity provider says "gone", never why.
//! - `active` false → true is `employee.rehired`.
//! - Anything else (a rename, a repeat of the same deactivation) makes no event, so
//!   a provider retrying a request stores nothing new.
//!
//! The event id is `scim:<user id>:<version>`: one per stored change, so a change
//! and its event are one fact.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{error::ScimError, resource};
use crate::{
    config::SCIM_SOURCE,
    domain::{EventType, OffboardingEvent, TerminationKind},
    ingest::mapping::FieldMap,
    store::{NewEvent, ScimUser},
};

/// What a stored change means for the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Active → inactive or deleted while active: offboard them.
    Deprovisioned,
    /// Inactive → active: reverse the offboarding.
    Reactivated,
}

impl Lifecycle {
    /// The change from `before` (`None`: created) to `after` (`None`: deleted).
    pub fn of(before: Option<bool>, after: Option<bool>) -> Option<Self> {
        match (before, after) {
            (Some(true), Some(false) | None) => Some(Self::Deprovisioned),
            (Some(false), Some(true)) => Some(Self::Reactivated),
            _ => None,
        }
    }

    fn event_type(self) -> EventType {
        match self {
            Self::Deprovisioned => EventType::Terminated,
            Self::Reactivated => EventType::Rehired,
        }
    }

    /// The metrics outcome of a request that made this change.
    pub fn outcome(self) -> &'static str {
        match self {
            Self::Deprovisioned => "deprovisioned",
            Self::Reactivated => "reactivated",
        }
    }
}

/// How SCIM users become events (`[scim]`).
#[derive(Debug, Clone)]
pub struct EventSettings {
    /// `termination_kind`.
    pub termination_kind: TerminationKind,
    /// `[scim.map]`, laid over the defaults.
    pub map: FieldMap,
    /// `[worker] max_attempts` for the job.
    pub max_attempts: u32,
}

impl EventSettings {
    /// `[scim]`'s settings, checked; `None` without a `[scim]` section.
    pub fn from_config(
        config: &crate::config::Config,
    ) -> Result<Option<Self>, crate::config::ConfigError> {
        let Some(scim) = &config.scim else {
            return Ok(None);
        };
        let invalid = |e: String| crate::config::ConfigError::Invalid(e);
        let termination_kind = TerminationKind::parse(&scim.termination_kind).ok_or_else(|| {
            invalid(format!(
                "scim.termination_kind: {:?} is not a kind",
                scim.termination_kind
            ))
        })?;
        let map = FieldMap::compile("scim.map", &scim.map).map_err(|e| invalid(e.to_string()))?;
        Ok(Some(Self {
            termination_kind,
            map,
            max_attempts: config.worker.max_attempts,
        }))
    }
}

/// Who the person is, as the event names them.
pub struct Person<'a> {
    /// offboard's id of the SCIM user.
    pub id: &'a str,
    /// `userName`.
    pub user_name: &'a str,
    /// `externalId`.
    pub external_id: Option<&'a str>,
    /// The resource (after the change; before it for a delete).
    pub resource: &'a Value,
    /// The manager's e-mail, resolved by the caller from the enterprise extension.
    pub manager_email: Option<String>,
}

/// The event for `change` of `person`, stored at `version` of the user, at `now`.
/// A person offboard cannot identify (no e-mail anywhere) is `invalidValue`: the
/// change is refused rather than stored without its event.
pub fn new_event(
    settings: &EventSettings,
    change: Lifecycle,
    person: &Person<'_>,
    version: u64,
    now: DateTime<Utc>,
) -> Result<NewEvent, ScimError> {
    let at = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let department = resource::enterprise(person.resource, "department").cloned();
    let mut canonical = json!({
        "id": format!("scim:{}:{version}", person.id),
        "type": change.event_type().as_str(),
        "occurred_at": at,
        "employee": {
            "id": person.external_id.unwrap_or(person.id),
            "email": resource::email(person.resource, person.user_name),
            "name": resource::display_name(person.resource),
            "department": department.filter(Value::is_string),
            "manager_email": person.manager_email,
        },
    });
    if change == Lifecycle::Deprovisioned {
        canonical["termination"] = json!({
            "effective_at": at,
            "kind": settings.termination_kind.as_str(),
        });
    }
    settings.map.overlay(person.resource, &mut canonical);
    let event = OffboardingEvent::from_json(&canonical, None).map_err(|e| {
        ScimError::invalid_value(format!(
            "offboard cannot act on this user: {e} (it needs a work e-mail in emails or userName)"
        ))
    })?;
    let body_sha256 = hex::encode(Sha256::digest(canonical.to_string().as_bytes()));
    Ok(NewEvent {
        source: SCIM_SOURCE.to_owned(),
        event,
        body_sha256,
        run_at: now,
        max_attempts: settings.max_attempts,
    })
}

/// The enterprise extension's manager, as an e-mail: the `value` itself when it is
/// one, else the e-mail of the stored user it names (by offboard id, then
/// externalId, which is how Okta and Entra ID refer to a manager).
pub fn manager_reference(resource: &Value) -> Option<String> {
    resource::enterprise(resource, "manager")
        .and_then(|m| m.get("value"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .filter(|v| !v.trim().is_empty())
}

/// The e-mail of a stored manager.
pub fn manager_email(manager: &ScimUser) -> String {
    resource::email(&manager.resource, &manager.user_name)
}
