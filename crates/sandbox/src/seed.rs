//! The sandbox's data: Sell-shaped users, records and stages, and [`Seed`], the
//! JSON document (`offboard sandbox --seed FILE`) that fills a sandbox and that
//! `GET /__sandbox/state` dumps back.
//!
//! Field names and order follow Sell's API, so a record serializes to exactly the
//! `data` object Sell sends. Every field but the identifying ones has a default,
//! so a hand-written seed can stay short. A seed is validated once
//! ([`Seed::validate`]) before a sandbox serves it; generated seeds live in
//! `generate.rs`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use offboard_domain::{UserRole, UserStatus};

/// The timestamp used when a seed leaves one out.
pub(super) const SEED_TIME: &str = "2026-01-05T09:00:00Z";

fn seed_time() -> String {
    SEED_TIME.to_owned()
}
fn active() -> UserStatus {
    UserStatus::Active
}
fn plain_user() -> UserRole {
    UserRole::User
}
fn yes() -> bool {
    true
}
fn utc() -> String {
    "UTC".to_owned()
}
fn new_status() -> String {
    "New".to_owned()
}
fn usd() -> String {
    "USD".to_owned()
}
fn zero_value() -> String {
    "0.00".to_owned()
}
fn no_customer() -> String {
    "none".to_owned()
}

/// A Sell user (a seat). Read-only through the Sell API; the control routes play
/// the admin who deactivates, reactivates or deletes it in Sell's UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Sell's numeric user id; what records' `owner_id` and `reports_to` point at.
    pub id: i64,
    /// The full name Sell shows for the seat.
    pub name: String,
    /// The login e-mail, unique in the account (compared case-insensitively); how offboard finds the leaver.
    pub email: String,
    /// `active` or `inactive`.
    #[serde(default = "active")]
    pub status: UserStatus,
    /// `user` or `admin` (a manager is a `user` others report to).
    #[serde(default = "plain_user")]
    pub role: UserRole,
    /// The user accepted the invitation and has logged in at least once.
    #[serde(default = "yes")]
    pub confirmed: bool,
    /// An invitation is out and not accepted yet.
    #[serde(default)]
    pub invited: bool,
    /// The manager's user id.
    #[serde(default)]
    pub reports_to: Option<i64>,
    /// The sales team shown in Sell's settings; informational only.
    #[serde(default)]
    pub team_name: Option<String>,
    /// The linked Zendesk Suite user, when the account is part of a Suite.
    #[serde(default)]
    pub zendesk_user_id: Option<String>,
    /// The user's phone, free text as entered in Sell.
    #[serde(default)]
    pub phone_number: Option<String>,
    /// An IANA zone name (`Europe/Berlin`); Sell shows the user's dates in it.
    #[serde(default = "utc")]
    pub timezone: String,
    /// When Sell created it, RFC 3339 UTC.
    #[serde(default = "seed_time")]
    pub created_at: String,
    /// When it last changed, RFC 3339 UTC; a write that changes anything moves it.
    #[serde(default = "seed_time")]
    pub updated_at: String,
    /// Set when an admin deleted the user; the API then answers 404 for it.
    #[serde(default)]
    pub deleted_at: Option<String>,
}

impl User {
    /// Active and not deleted: may own new records.
    pub fn is_active(&self) -> bool {
        self.status == UserStatus::Active && self.deleted_at.is_none()
    }
}

/// A Sell lead. Always "open" for offboarding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    /// Sell's lead id, unique among leads (not across kinds).
    pub id: i64,
    /// The user it belongs to: the field offboarding reassigns.
    pub owner_id: i64,
    /// The user who created it; never changes on reassignment.
    #[serde(default)]
    pub creator_id: Option<i64>,
    /// The person's given name, if known.
    #[serde(default)]
    pub first_name: Option<String>,
    /// The person's family name; Sell requires it (or an organization name) to save a lead.
    #[serde(default)]
    pub last_name: String,
    /// The company the lead works for.
    #[serde(default)]
    pub organization_name: Option<String>,
    /// The lead's job title.
    #[serde(default)]
    pub title: Option<String>,
    /// The lead's stage in Sell's lead funnel (`New`, `Working`, `Unqualified`, …); any status is "open" for offboarding.
    #[serde(default = "new_status")]
    pub status: String,
    /// The lead's e-mail, if known.
    #[serde(default)]
    pub email: Option<String>,
    /// Free-form labels; offboarding leaves them as they are.
    #[serde(default)]
    pub tags: Vec<String>,
    /// When Sell created it, RFC 3339 UTC.
    #[serde(default = "seed_time")]
    pub created_at: String,
    /// When it last changed, RFC 3339 UTC; a write that changes anything moves it.
    #[serde(default = "seed_time")]
    pub updated_at: String,
}

/// A Sell contact (a person or an organization). Always "open" for offboarding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// Sell's contact id, unique among contacts.
    pub id: i64,
    /// The user it belongs to: the field offboarding reassigns.
    pub owner_id: i64,
    /// The user who created it; never changes on reassignment.
    #[serde(default)]
    pub creator_id: Option<i64>,
    /// A company rather than a person.
    #[serde(default)]
    pub is_organization: bool,
    /// The organization a person belongs to.
    #[serde(default)]
    pub contact_id: Option<i64>,
    /// The display name: the company's name, or a person's full name.
    #[serde(default)]
    pub name: String,
    /// A person's given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// A person's family name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// The contact's e-mail, if known.
    #[serde(default)]
    pub email: Option<String>,
    /// `none`, `current` or `past`: whether this contact has bought.
    #[serde(default = "no_customer")]
    pub customer_status: String,
    /// Free-form labels; offboarding leaves them as they are.
    #[serde(default)]
    pub tags: Vec<String>,
    /// When Sell created it, RFC 3339 UTC.
    #[serde(default = "seed_time")]
    pub created_at: String,
    /// When it last changed, RFC 3339 UTC; a write that changes anything moves it.
    #[serde(default = "seed_time")]
    pub updated_at: String,
}

/// A Sell deal. Closed when its stage's category is `won` or `lost`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deal {
    /// Sell's deal id, unique among deals.
    pub id: i64,
    /// The deal's title as shown in the pipeline.
    #[serde(default)]
    pub name: String,
    /// The user it belongs to: the field offboarding reassigns.
    pub owner_id: i64,
    /// The user who created it; never changes on reassignment.
    #[serde(default)]
    pub creator_id: Option<i64>,
    /// The contact (person or organization) the deal is with.
    #[serde(default)]
    pub contact_id: Option<i64>,
    /// A stage of any pipeline (see [`Stage`]).
    pub stage_id: i64,
    /// A decimal string, as Sell sends it.
    #[serde(default = "zero_value")]
    pub value: String,
    /// An ISO 4217 code for `value`.
    #[serde(default = "usd")]
    pub currency: String,
    /// Flagged as hot (likely to close soon) in Sell's UI.
    #[serde(default)]
    pub hot: bool,
    /// When the deal last moved stage, RFC 3339 UTC; `None` if it never moved.
    #[serde(default)]
    pub last_stage_change_at: Option<String>,
    /// When Sell created it, RFC 3339 UTC.
    #[serde(default = "seed_time")]
    pub created_at: String,
    /// When it last changed, RFC 3339 UTC; a write that changes anything moves it.
    #[serde(default = "seed_time")]
    pub updated_at: String,
}

/// A Sell task. Closed once `completed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Sell's task id, unique among tasks; offboard's admin task gets a fresh one.
    pub id: i64,
    /// The user it belongs to: the field offboarding reassigns.
    pub owner_id: i64,
    /// The user who created it; never changes on reassignment.
    #[serde(default)]
    pub creator_id: Option<i64>,
    /// `lead`, `contact` or `deal` when the task is attached to one.
    #[serde(default)]
    pub resource_type: Option<String>,
    /// The id of the lead, contact or deal named by `resource_type`.
    #[serde(default)]
    pub resource_id: Option<i64>,
    /// Done: a completed task is closed and stays with its owner.
    #[serde(default)]
    pub completed: bool,
    /// When it was completed, RFC 3339 UTC.
    #[serde(default)]
    pub completed_at: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub due_date: Option<String>,
    /// When Sell reminds the owner, RFC 3339 UTC.
    #[serde(default)]
    pub remind_at: Option<String>,
    /// The task's text; offboard's admin task says which user to deactivate or delete.
    #[serde(default)]
    pub content: String,
    /// When Sell created it, RFC 3339 UTC.
    #[serde(default = "seed_time")]
    pub created_at: String,
    /// When it last changed, RFC 3339 UTC; a write that changes anything moves it.
    #[serde(default = "seed_time")]
    pub updated_at: String,
}

/// A support ticket: a HubSpot ticket, a Salesforce Case. Sell and Pipedrive have
/// none, so their faces never serve one. Open until `closed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// Unique among tickets.
    pub id: i64,
    /// The user it belongs to: the field offboarding reassigns.
    pub owner_id: i64,
    /// The ticket's subject line.
    #[serde(default)]
    pub subject: String,
    /// Resolved: a closed ticket stays with its owner.
    #[serde(default)]
    pub closed: bool,
    /// When it was opened, RFC 3339 UTC.
    #[serde(default = "seed_time")]
    pub created_at: String,
    /// When it last changed, RFC 3339 UTC; a write that changes anything moves it.
    #[serde(default = "seed_time")]
    pub updated_at: String,
}

/// A pipeline stage. `category` `won`/`lost` marks the closing stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Sell's stage id; deals point at it with `stage_id`.
    pub id: i64,
    /// The stage's name as shown in the pipeline.
    pub name: String,
    /// `incoming`, `qualified`, `custom`, `won`, `lost`, …
    pub category: String,
    /// Whether deals can move into it; Sell's won/lost stages are inactive.
    #[serde(default = "yes")]
    pub active: bool,
    /// Its place in the pipeline, 1 first.
    #[serde(default)]
    pub position: i64,
    /// The chance (0–100 %) that a deal in this stage is won, for Sell's forecast.
    #[serde(default)]
    pub likelihood: i64,
    /// The pipeline it belongs to; an account can have several.
    pub pipeline_id: i64,
}

impl Stage {
    /// `won` or `lost`: a deal in this stage is closed.
    pub fn is_closing(&self) -> bool {
        matches!(self.category.as_str(), "won" | "lost")
    }
}

/// Everything a sandbox holds: the `--seed FILE` format and the state dump.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Seed {
    /// Every seat, active, inactive or deleted; at least one.
    pub users: Vec<User>,
    /// Every lead, whoever owns it.
    pub leads: Vec<Lead>,
    /// Every contact, people and organizations.
    pub contacts: Vec<Contact>,
    /// Every deal, open and closed.
    pub deals: Vec<Deal>,
    /// Every task, open and completed.
    pub tasks: Vec<Task>,
    /// Every support ticket, open and closed (only HubSpot and Salesforce serve them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tickets: Vec<Ticket>,
    /// Empty means "the two default pipelines" ([`Seed::default_stages`]).
    pub stages: Vec<Stage>,
    /// Ids of leads that are archived. Only Pipedrive has the notion: it lists
    /// them apart (`/api/v1/leads/archived`), shows `is_archived: true`, and
    /// offboarding leaves them alone. Sell serves them like any lead.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub archived_leads: BTreeSet<i64>,
    /// Notes of tasks by task id: a Pipedrive activity's `note`, which Sell's
    /// tasks lack (Sell doesn't show them).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub task_notes: BTreeMap<i64, String>,
}

/// Why a seed can't be served.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// Not JSON, or not the seed's shape; `path` points at the offending value.
    #[error("seed is not valid JSON for a sandbox seed at {path}: {message}")]
    Json {
        /// Where in the document, as serde_path_to_error prints it (`users[3].email`).
        path: String,
        /// What was wrong there.
        message: String,
    },
    /// A sandbox needs at least one user (Sell's account owner).
    #[error("seed has no users; a Sell account has at least its owner")]
    NoUsers,
    /// Two items of one kind share an id.
    #[error("seed has two {kind} with id {id}")]
    DuplicateId {
        /// `users`, `leads`, `contacts`, `deals`, `tasks` or `stages`.
        kind: &'static str,
        /// The id that appears twice.
        id: i64,
    },
    /// Two users share an e-mail (compared case-insensitively).
    #[error("seed has two users with e-mail {0:?}")]
    DuplicateEmail(String),
    /// A record's `owner_id` is no seeded user.
    #[error("{kind} {id} is owned by user {owner_id}, which is not in the seed")]
    UnknownOwner {
        /// `leads`, `contacts`, `deals` or `tasks`.
        kind: &'static str,
        /// The record's id.
        id: i64,
        /// The owner it names.
        owner_id: i64,
    },
    /// A user's `reports_to` is no seeded user.
    #[error("user {user} reports to user {reports_to}, which is not in the seed")]
    UnknownManager {
        /// The user whose `reports_to` is wrong.
        user: i64,
        /// The manager it names.
        reports_to: i64,
    },
    /// `archived_leads` or `task_notes` names a lead or task that isn't in the seed.
    #[error("{field} names {id}, which is not in the seed")]
    UnknownRecord {
        /// `archived_leads` or `task_notes`.
        field: &'static str,
        /// The id it names.
        id: i64,
    },
    /// A deal's `stage_id` is no seeded stage.
    #[error("deal {deal} is in stage {stage_id}, which is not in the seed's stages")]
    UnknownStage {
        /// The deal's id.
        deal: i64,
        /// The stage it names.
        stage_id: i64,
    },
}

impl Seed {
    /// Parses and validates a seed file's content. Missing `stages` get the
    /// default pipelines.
    pub fn from_json(text: &str) -> Result<Seed, SeedError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let mut seed: Seed = serde_path_to_error::deserialize(de).map_err(|e| SeedError::Json {
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
        if seed.stages.is_empty() {
            seed.stages = Seed::default_stages();
        }
        seed.validate()?;
        Ok(seed)
    }

    /// Two pipelines, each with its own `won` and `lost` stages (ids differ per
    /// pipeline, so clients must read categories, not hard-code ids). Pipeline 1
    /// is the one in Sell's documentation samples.
    pub fn default_stages() -> Vec<Stage> {
        let stage = |id, name: &str, category: &str, position, likelihood, pipeline_id| Stage {
            id,
            name: name.to_owned(),
            category: category.to_owned(),
            active: !matches!(category, "won" | "lost"),
            position,
            likelihood,
            pipeline_id,
        };
        vec![
            stage(1, "Incoming", "incoming", 1, 10, 1),
            stage(2, "Qualified", "qualified", 2, 40, 1),
            stage(3, "Won", "won", 3, 100, 1),
            stage(4, "Lost", "lost", 4, 0, 1),
            stage(11, "Discovery", "incoming", 1, 10, 2),
            stage(12, "Proposal", "qualified", 2, 50, 2),
            stage(13, "Negotiation", "custom", 3, 75, 2),
            stage(14, "Closed won", "won", 4, 100, 2),
            stage(15, "Closed lost", "lost", 5, 0, 2),
        ]
    }

    /// Checks what the sandbox relies on: unique ids and e-mails, owners,
    /// managers and stages that exist.
    pub fn validate(&self) -> Result<(), SeedError> {
        if self.users.is_empty() {
            return Err(SeedError::NoUsers);
        }
        let user_ids = unique_ids("users", self.users.iter().map(|u| u.id))?;
        let mut emails = HashSet::new();
        for u in &self.users {
            if !emails.insert(u.email.to_lowercase()) {
                return Err(SeedError::DuplicateEmail(u.email.clone()));
            }
            if let Some(m) = u.reports_to.filter(|m| !user_ids.contains(m)) {
                return Err(SeedError::UnknownManager {
                    user: u.id,
                    reports_to: m,
                });
            }
        }
        let stage_ids = unique_ids("stages", self.stages.iter().map(|s| s.id))?;
        let owned = |kind: &'static str, items: Vec<(i64, i64)>| -> Result<(), SeedError> {
            unique_ids(kind, items.iter().map(|(id, _)| *id))?;
            match items.iter().find(|(_, owner)| !user_ids.contains(owner)) {
                Some(&(id, owner_id)) => Err(SeedError::UnknownOwner { kind, id, owner_id }),
                None => Ok(()),
            }
        };
        owned(
            "leads",
            self.leads.iter().map(|r| (r.id, r.owner_id)).collect(),
        )?;
        owned(
            "contacts",
            self.contacts.iter().map(|r| (r.id, r.owner_id)).collect(),
        )?;
        owned(
            "deals",
            self.deals.iter().map(|r| (r.id, r.owner_id)).collect(),
        )?;
        owned(
            "tasks",
            self.tasks.iter().map(|r| (r.id, r.owner_id)).collect(),
        )?;
        owned(
            "tickets",
            self.tickets.iter().map(|r| (r.id, r.owner_id)).collect(),
        )?;
        if let Some(d) = self.deals.iter().find(|d| !stage_ids.contains(&d.stage_id)) {
            return Err(SeedError::UnknownStage {
                deal: d.id,
                stage_id: d.stage_id,
            });
        }
        let leads: BTreeSet<i64> = self.leads.iter().map(|l| l.id).collect();
        if let Some(&id) = self.archived_leads.iter().find(|id| !leads.contains(id)) {
            return Err(SeedError::UnknownRecord {
                field: "archived_leads",
                id,
            });
        }
        let tasks: BTreeSet<i64> = self.tasks.iter().map(|t| t.id).collect();
        if let Some(&id) = self.task_notes.keys().find(|id| !tasks.contains(id)) {
            return Err(SeedError::UnknownRecord {
                field: "task_notes",
                id,
            });
        }
        Ok(())
    }
}

fn unique_ids(
    kind: &'static str,
    ids: impl Iterator<Item = i64>,
) -> Result<BTreeSet<i64>, SeedError> {
    let mut seen = BTreeSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(SeedError::DuplicateId { kind, id });
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_seed_gets_defaults_and_stages() {
        let seed = Seed::from_json(
            r#"{"users":[{"id":1,"name":"A","email":"a@example.com"}],
                "deals":[{"id":5,"owner_id":1,"stage_id":14}]}"#,
        )
        .unwrap();
        assert_eq!(seed.users[0].status, UserStatus::Active);
        assert_eq!(seed.stages, Seed::default_stages());
        assert_eq!(seed.deals[0].currency, "USD");
    }

    #[test]
    fn bad_seeds_say_what_is_wrong() {
        let err = Seed::from_json(r#"{"users":[{"id":"x"}]}"#).unwrap_err();
        assert!(
            matches!(err, SeedError::Json { ref path, .. } if path == "users[0].id"),
            "{err}"
        );
        let err = Seed::from_json(
            r#"{"users":[{"id":1,"name":"A","email":"a@example.com"}],
                "leads":[{"id":5,"owner_id":2}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            SeedError::UnknownOwner {
                kind: "leads",
                id: 5,
                owner_id: 2
            }
        );
        let err = Seed::from_json(
            r#"{"users":[{"id":1,"name":"A","email":"a@example.com"},
                         {"id":2,"name":"B","email":"A@example.com"}]}"#,
        )
        .unwrap_err();
        assert_eq!(err, SeedError::DuplicateEmail("A@example.com".into()));
        let err = Seed::from_json(
            r#"{"users":[{"id":1,"name":"A","email":"a@example.com"}],
                "deals":[{"id":5,"owner_id":1,"stage_id":99}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            SeedError::UnknownStage {
                deal: 5,
                stage_id: 99
            }
        );
    }

    #[test]
    fn archived_leads_and_task_notes_name_real_records_and_stay_out_of_sell_dumps() {
        let users = r#""users":[{"id":1,"name":"A","email":"a@example.com"}]"#;
        let seed = Seed::from_json(&format!(
            r#"{{{users},"leads":[{{"id":5,"owner_id":1}}],"tasks":[{{"id":7,"owner_id":1}}],
                "archived_leads":[5],"task_notes":{{"7":"call first"}}}}"#
        ))
        .unwrap();
        assert!(seed.archived_leads.contains(&5));
        assert_eq!(
            seed.task_notes.get(&7).map(String::as_str),
            Some("call first")
        );
        let err = Seed::from_json(&format!(r#"{{{users},"archived_leads":[5]}}"#)).unwrap_err();
        assert_eq!(
            err,
            SeedError::UnknownRecord {
                field: "archived_leads",
                id: 5
            }
        );
        let err = Seed::from_json(&format!(r#"{{{users},"task_notes":{{"7":"x"}}}}"#)).unwrap_err();
        assert!(matches!(
            err,
            SeedError::UnknownRecord {
                field: "task_notes",
                id: 7
            }
        ));
        let dump = serde_json::to_value(Seed::demo()).unwrap();
        assert!(dump.get("archived_leads").is_none() && dump.get("task_notes").is_none());
    }
}
