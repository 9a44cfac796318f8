//! The shared organisation model in Pipedrive's words: users as v1 users,
//! contacts as v2 persons or organizations (by `is_organization`), deals with a
//! `status` from their stage's category, tasks as v2 activities (`done` =
//! `completed`) and leads as v1 leads with UUID ids.
//!
//! Field names follow Pipedrive's OpenAPI models (see `mod.rs` for the sources).
//! Fields the shared model has no data for are sent with Pipedrive's neutral
//! value (`null`, `[]`, `{}`, `false`) so a strict client finds every key.

use chrono::{DateTime, NaiveDate};
use serde_json::{Value, json};

use crate::{
    db::Db,
    seed::{Contact, Deal, Lead, Task, User},
};
use offboard_domain::{UserRole, UserStatus};

/// v1 users write times as `YYYY-MM-DD HH:MM:SS` (UTC); v2 records and leads
/// use RFC 3339, as the shared model stores them.
fn v1_time(t: &str) -> String {
    DateTime::parse_from_rfc3339(t)
        .map(|t| t.to_utc().format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| t.to_owned())
}

/// A v1 user; `me` is the token owner's id (`is_you`).
pub(super) fn user(u: &User, me: Option<i64>) -> Value {
    let admin = u.role == UserRole::Admin;
    // `is_admin` is deprecated in favour of `access`, but still sent, so clients
    // of either era read the same answer.
    let mut access = vec![json!({ "app": "sales", "admin": admin })];
    if admin {
        access.insert(0, json!({ "app": "global", "admin": true }));
    }
    json!({
        "id": u.id,
        "name": u.name,
        "default_currency": "USD",
        "locale": "en_US",
        "lang": 1,
        "email": u.email,
        "phone": u.phone_number,
        "activated": u.confirmed,
        "last_login": v1_time(&u.updated_at),
        "created": v1_time(&u.created_at),
        "modified": v1_time(&u.updated_at),
        "has_created_company": false,
        "access": access,
        "active_flag": u.status == UserStatus::Active,
        "timezone_name": u.timezone,
        "timezone_offset": (u.timezone == "UTC").then_some("+00:00"),
        "role_id": 1,
        "icon_url": null,
        "is_you": me == Some(u.id),
        "is_deleted": false,
        "is_admin": i32::from(admin),
    })
}

/// `GET /api/v1/users/me` adds the company.
pub(super) fn me(u: &User) -> Value {
    let mut v = user(u, Some(u.id));
    if let Some(obj) = v.as_object_mut() {
        obj.insert("company_id".into(), 1.into());
        obj.insert("company_name".into(), "Sandbox".into());
        obj.insert("company_domain".into(), "sandbox".into());
        obj.insert("company_country".into(), "US".into());
        obj.insert("company_industry".into(), "Software".into());
        obj.insert(
            "language".into(),
            json!({ "language_code": "en", "country_code": "US" }),
        );
    }
    v
}

/// A v2 person (a contact with `is_organization = false`).
pub(super) fn person(c: &Contact) -> Value {
    let emails: Vec<Value> = c
        .email
        .iter()
        .map(|e| json!({ "value": e, "primary": true, "label": "work" }))
        .collect();
    json!({
        "id": c.id,
        "name": c.name,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "owner_id": c.owner_id,
        "org_id": c.contact_id,
        "add_time": c.created_at,
        "update_time": c.updated_at,
        "emails": emails,
        "phones": [],
        "is_deleted": false,
        "visible_to": 3,
        "label_ids": [],
        "picture_id": null,
        "custom_fields": {},
    })
}

/// A v2 organization (a contact with `is_organization = true`).
pub(super) fn organization(c: &Contact) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "owner_id": c.owner_id,
        "add_time": c.created_at,
        "update_time": c.updated_at,
        "is_deleted": false,
        "visible_to": 3,
        "address": null,
        "label_ids": [],
        "custom_fields": {},
    })
}

/// `open`, `won` or `lost`, from the category of the deal's stage.
pub(super) fn deal_status(db: &Db, d: &Deal) -> &'static str {
    match db.stages.get(&d.stage_id).map(|s| s.category.as_str()) {
        Some("won") => "won",
        Some("lost") => "lost",
        _ => "open",
    }
}

/// The person and organization a contact id stands for.
fn person_and_org(db: &Db, contact: Option<i64>) -> (Option<i64>, Option<i64>) {
    match contact.and_then(|id| db.contacts.get(&id)).map(|r| &r.data) {
        Some(c) if c.is_organization => (None, Some(c.id)),
        Some(c) => (Some(c.id), c.contact_id),
        None => (None, None),
    }
}

/// A v2 deal.
pub(super) fn deal(d: &Deal, db: &Db) -> Value {
    let status = deal_status(db, d);
    let (person_id, org_id) = person_and_org(db, d.contact_id);
    let closed_at = (status != "open").then(|| {
        d.last_stage_change_at
            .clone()
            .unwrap_or_else(|| d.updated_at.clone())
    });
    json!({
        "id": d.id,
        "title": d.name,
        "owner_id": d.owner_id,
        "person_id": person_id,
        "org_id": org_id,
        "pipeline_id": db.stages.get(&d.stage_id).map(|s| s.pipeline_id),
        "stage_id": d.stage_id,
        "value": d.value.parse::<f64>().unwrap_or(0.0),
        "currency": d.currency,
        "add_time": d.created_at,
        "update_time": d.updated_at,
        "stage_change_time": d.last_stage_change_at,
        "is_deleted": false,
        "is_archived": false,
        "status": status,
        "probability": null,
        "lost_reason": null,
        "visible_to": 3,
        "close_time": closed_at,
        "won_time": if status == "won" { closed_at.clone() } else { None },
        "lost_time": if status == "lost" { closed_at.clone() } else { None },
        "expected_close_date": null,
        "label_ids": [],
        "custom_fields": {},
    })
}

/// `due_date` (`YYYY-MM-DD`) and `due_time` (`HH:MM`, UTC) of a task's due date.
fn due(t: &Task) -> (Option<String>, Option<String>) {
    let Some(due) = t.due_date.as_deref() else {
        return (None, None);
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(due) {
        let at = at.to_utc();
        return (
            Some(at.format("%Y-%m-%d").to_string()),
            Some(at.format("%H:%M").to_string()),
        );
    }
    match NaiveDate::parse_from_str(due, "%Y-%m-%d") {
        Ok(_) => (Some(due.to_owned()), None),
        Err(_) => (None, None),
    }
}

/// A v2 activity (a task).
pub(super) fn activity(t: &Task, db: &Db) -> Value {
    let (mut deal_id, mut lead_id, mut contact) = (None, None, None);
    match (t.resource_type.as_deref(), t.resource_id) {
        (Some("deal"), Some(id)) => deal_id = Some(id),
        (Some("lead"), Some(id)) => lead_id = Some(lead_uuid(id)),
        (Some("contact"), Some(id)) => contact = Some(id),
        _ => {}
    }
    let (person_id, org_id) = person_and_org(db, contact);
    let (due_date, due_time) = due(t);
    json!({
        "id": t.id,
        "subject": t.content,
        "type": "task",
        "owner_id": t.owner_id,
        "creator_user_id": t.creator_id,
        "is_deleted": false,
        "add_time": t.created_at,
        "update_time": t.updated_at,
        "deal_id": deal_id,
        "lead_id": lead_id,
        "person_id": person_id,
        "org_id": org_id,
        "project_id": null,
        "due_date": due_date,
        "due_time": due_time,
        "duration": null,
        "busy": false,
        "done": t.completed,
        "marked_as_done_time": t.completed_at,
        "location": null,
        "participants": [],
        "attendees": [],
        "public_description": null,
        "priority": null,
        "note": db.task_notes.get(&t.id),
    })
}

/// A v1 lead. Sell-shaped leads have a person's name and a company, Pipedrive's
/// a title: the title is the name, then the company.
pub(super) fn lead(l: &Lead, db: &Db) -> Value {
    let name = [l.first_name.as_deref(), Some(l.last_name.as_str())]
        .into_iter()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let title = match (name.is_empty(), l.organization_name.as_deref()) {
        (false, Some(org)) => format!("{name}, {org}"),
        (true, Some(org)) => org.to_owned(),
        _ => name,
    };
    json!({
        "id": lead_uuid(l.id),
        "title": title,
        "owner_id": l.owner_id,
        "creator_id": l.creator_id.unwrap_or(l.owner_id),
        "label_ids": [],
        "person_id": null,
        "organization_id": null,
        "source_name": "Manually created",
        "origin": "ManuallyCreated",
        "origin_id": null,
        "channel": null,
        "channel_id": null,
        "source_deal_id": null,
        "is_archived": db.archived_leads.contains(&l.id),
        "was_seen": true,
        "value": null,
        "expected_close_date": null,
        "next_activity_id": null,
        "add_time": l.created_at,
        "update_time": l.updated_at,
        "visible_to": "3",
        "cc_email": "",
    })
}

// Lead UUIDs carry the internal id, so they are stable across runs and the
// request log can name the record without the database: an RFC 9562 version-8
// ("custom") UUID with a fixed head and the id in the last 62 bits.
const LEAD_HEAD: &str = "5eed1ead-0000-8000-";
const ID_BITS: u64 = (1 << 62) - 1;
const VARIANT: u64 = 0b10 << 62;

/// Whether a lead id fits its UUID (`0..2^62`).
pub(crate) fn lead_id_fits(id: i64) -> bool {
    u64::try_from(id).is_ok_and(|id| id <= ID_BITS)
}

/// The UUID Pipedrive-speaking sandboxes give the lead with internal id `id`
/// (e.g. `5eed1ead-0000-8000-8000-00000000271b` for 10011). Stable: the same
/// id always gets the same UUID.
pub fn lead_uuid(id: i64) -> String {
    let bits = (id as u64 & ID_BITS) | VARIANT;
    let hex = format!("{bits:016x}");
    format!("{LEAD_HEAD}{}-{}", &hex[..4], &hex[4..])
}

/// The internal id behind a lead UUID from [`lead_uuid`]; `None` for any other string.
pub fn lead_id_from_uuid(uuid: &str) -> Option<i64> {
    let uuid = uuid.to_ascii_lowercase();
    let (a, b) = uuid.strip_prefix(LEAD_HEAD)?.split_once('-')?;
    if a.len() != 4 || b.len() != 12 {
        return None;
    }
    let bits = u64::from_str_radix(&format!("{a}{b}"), 16).ok()?;
    (bits & !ID_BITS == VARIANT).then_some((bits & ID_BITS) as i64)
}

// A cursor names the first id of the next page (lists are in id order), so
// moving records out of a filtered list while walking it skips nothing. It is
// masked and checksummed so clients treat it as the opaque string Pipedrive
// documents, and a mangled one is refused.
const CURSOR_MASK: u64 = 0x5eed_c0de_0bad_f00d;

fn checksum(bits: u64) -> u8 {
    bits.to_be_bytes()
        .iter()
        .fold(0x5a, |acc, b| acc.rotate_left(3) ^ b)
}

/// The cursor of a page that starts at record `id`.
pub(super) fn cursor(id: i64) -> String {
    let bits = id as u64 ^ CURSOR_MASK;
    format!("{bits:016x}{:02x}", checksum(bits))
}

/// The first record id of the page `cursor` names, if it is one of ours.
pub(super) fn cursor_start(cursor: &str) -> Option<i64> {
    if cursor.len() != 18 || !cursor.is_ascii() {
        return None;
    }
    let bits = u64::from_str_radix(&cursor[..16], 16).ok()?;
    let sum = u8::from_str_radix(&cursor[16..], 16).ok()?;
    (sum == checksum(bits)).then_some((bits ^ CURSOR_MASK) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lead_uuids_round_trip_and_refuse_strangers() {
        for id in [0, 1, 10_011, (1 << 62) - 1] {
            let uuid = lead_uuid(id);
            assert_eq!(uuid.len(), 36, "{uuid}");
            assert!(uuid::Uuid::parse_str(&uuid).is_ok(), "{uuid}");
            assert_eq!(lead_id_from_uuid(&uuid), Some(id));
            assert_eq!(lead_id_from_uuid(&uuid.to_uppercase()), Some(id));
        }
        assert_eq!(lead_uuid(10_011), "5eed1ead-0000-8000-8000-00000000271b");
        assert!(lead_id_fits(0) && !lead_id_fits(-1) && !lead_id_fits(1 << 62));
        for other in [
            "",
            "not-a-uuid",
            "adf21080-0e10-11eb-879b-05d71fb426ec",
            "5eed1ead-0000-8000-0000-00000000271b",
            "5eed1ead-0000-8000-8000-00000000271",
        ] {
            assert_eq!(lead_id_from_uuid(other), None, "{other}");
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_mangled_ones() {
        for id in [0, 7, 30_001, i64::MAX] {
            assert_eq!(cursor_start(&cursor(id)), Some(id));
        }
        let c = cursor(30_001);
        let mut mangled = c.clone().into_bytes();
        mangled[3] = if mangled[3] == b'0' { b'1' } else { b'0' };
        let mangled = String::from_utf8(mangled).unwrap_or_default();
        assert_eq!(cursor_start(&mangled), None);
        assert_eq!(cursor_start("eyJhY3Rpdml0eSI6NDJ9"), None);
        assert_eq!(cursor_start(&c[..17]), None);
    }
}
