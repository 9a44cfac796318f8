//! Salesforce's objects over the shared model: which model rows each one is,
//! its fields (what SOQL may select and filter), and one record's field values.
//!
//! | object | model | notes |
//! |---|---|---|
//! | `User` (`005`) | users | deleted users stay, inactive: Salesforce never deletes users |
//! | `Lead` (`00Q`) | leads | `IsConverted` = archived (the model's closed lead) |
//! | `Contact` (`003`) | contacts, `is_organization = false` | `AccountId` = the person's organization |
//! | `Account` (`001`) | contacts, `is_organization = true` | |
//! | `Opportunity` (`006`) | deals | `IsClosed`/`IsWon` from the stage's category |
//! | `Task` (`00T`) | tasks | `IsClosed` = completed; see [`task_text`] for Subject/Description |
//! | `Case` (`500`) | tickets | `IsClosed` = closed |

use std::collections::BTreeMap;

use chrono::DateTime;
use serde_json::{Value, json};

use super::ids;
use crate::{
    db::Db,
    seed::{Task, User},
};
use offboard_domain::{Resource, UserRole};

/// A field's type, for what a condition may compare it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    /// A record id: compared in its 18-character form; a literal must be an id.
    Id,
    Str,
    Bool,
    /// Selectable, not filterable here (SOQL's date literals aren't in the subset).
    Time,
    Number,
}

/// One record's field values by canonical name (`Profile.Name` for a relationship field).
pub(crate) type Rec = BTreeMap<&'static str, Value>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Object {
    User,
    Lead,
    Contact,
    Account,
    Opportunity,
    Task,
    Case,
}

const COMMON: &[(&str, Ty)] = &[
    ("Id", Ty::Id),
    ("OwnerId", Ty::Id),
    ("CreatedDate", Ty::Time),
    ("LastModifiedDate", Ty::Time),
];

impl Object {
    pub const ALL: [Object; 7] = [
        Object::User,
        Object::Lead,
        Object::Contact,
        Object::Account,
        Object::Opportunity,
        Object::Task,
        Object::Case,
    ];

    /// Object names are case-insensitive in SOQL and in paths.
    pub fn parse(name: &str) -> Option<Object> {
        Self::ALL
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(name))
    }

    pub fn name(self) -> &'static str {
        match self {
            Object::User => "User",
            Object::Lead => "Lead",
            Object::Contact => "Contact",
            Object::Account => "Account",
            Object::Opportunity => "Opportunity",
            Object::Task => "Task",
            Object::Case => "Case",
        }
    }

    /// The key prefix of its ids.
    pub fn prefix(self) -> &'static str {
        match self {
            Object::User => "005",
            Object::Lead => "00Q",
            Object::Contact => "003",
            Object::Account => "001",
            Object::Opportunity => "006",
            Object::Task => "00T",
            Object::Case => "500",
        }
    }

    /// offboard's resource, for the request log's record keys (users are none).
    pub fn resource(self) -> Option<Resource> {
        match self {
            Object::User => None,
            Object::Lead => Some(Resource::Leads),
            Object::Contact => Some(Resource::Contacts),
            Object::Account => Some(Resource::Organizations),
            Object::Opportunity => Some(Resource::Deals),
            Object::Task => Some(Resource::Tasks),
            Object::Case => Some(Resource::Tickets),
        }
    }

    /// The fields it has beyond `COMMON` (users have no owner).
    fn own_fields(self) -> &'static [(&'static str, Ty)] {
        match self {
            Object::User => &[
                ("Name", Ty::Str),
                ("FirstName", Ty::Str),
                ("LastName", Ty::Str),
                ("Email", Ty::Str),
                ("Username", Ty::Str),
                ("IsActive", Ty::Bool),
                ("ManagerId", Ty::Id),
                ("UserType", Ty::Str),
                ("TimeZoneSidKey", Ty::Str),
                ("ProfileId", Ty::Id),
                ("Profile.Id", Ty::Id),
                ("Profile.Name", Ty::Str),
                ("Profile.PermissionsModifyAllData", Ty::Bool),
            ],
            Object::Lead => &[
                ("Name", Ty::Str),
                ("FirstName", Ty::Str),
                ("LastName", Ty::Str),
                ("Company", Ty::Str),
                ("Title", Ty::Str),
                ("Email", Ty::Str),
                ("Status", Ty::Str),
                ("IsConverted", Ty::Bool),
            ],
            Object::Contact => &[
                ("Name", Ty::Str),
                ("FirstName", Ty::Str),
                ("LastName", Ty::Str),
                ("Email", Ty::Str),
                ("AccountId", Ty::Id),
            ],
            Object::Account => &[("Name", Ty::Str)],
            Object::Opportunity => &[
                ("Name", Ty::Str),
                ("StageName", Ty::Str),
                ("IsClosed", Ty::Bool),
                ("IsWon", Ty::Bool),
                ("Amount", Ty::Number),
                ("AccountId", Ty::Id),
                ("ContactId", Ty::Id),
            ],
            Object::Task => &[
                ("Subject", Ty::Str),
                ("Description", Ty::Str),
                ("Status", Ty::Str),
                ("Priority", Ty::Str),
                ("ActivityDate", Ty::Time),
                ("IsClosed", Ty::Bool),
                ("WhoId", Ty::Id),
                ("WhatId", Ty::Id),
            ],
            Object::Case => &[
                ("Subject", Ty::Str),
                ("Status", Ty::Str),
                ("IsClosed", Ty::Bool),
            ],
        }
    }

    /// The field named `name` (case-insensitively): its canonical name and type.
    pub fn field(self, name: &str) -> Option<(&'static str, Ty)> {
        COMMON
            .iter()
            .filter(|(f, _)| self != Object::User || *f != "OwnerId")
            .chain(self.own_fields())
            .find(|(f, _)| f.eq_ignore_ascii_case(name))
            .copied()
    }

    /// Every field, in a stable order (what `GET …/sobjects/{type}/{id}` shows).
    pub fn all_fields(self) -> Vec<&'static str> {
        COMMON
            .iter()
            .filter(|(f, _)| self != Object::User || *f != "OwnerId")
            .chain(self.own_fields())
            .map(|(f, _)| *f)
            .collect()
    }

    /// Every record's model id, ascending.
    pub fn ids(self, db: &Db) -> Vec<i64> {
        match self {
            Object::User => db.users.keys().copied().collect(),
            Object::Lead => db.leads.keys().copied().collect(),
            Object::Contact | Object::Account => db
                .contacts
                .values()
                .filter(|r| r.data.is_organization == (self == Object::Account))
                .map(|r| r.data.id)
                .collect(),
            Object::Opportunity => db.deals.keys().copied().collect(),
            Object::Task => db.tasks.keys().copied().collect(),
            Object::Case => db.tickets.keys().copied().collect(),
        }
    }

    /// Whether model id `id` is a record of this object.
    pub fn exists(self, db: &Db, id: i64) -> bool {
        match self {
            Object::User => db.users.contains_key(&id),
            Object::Lead => db.leads.contains_key(&id),
            Object::Contact | Object::Account => db
                .contacts
                .get(&id)
                .is_some_and(|r| r.data.is_organization == (self == Object::Account)),
            Object::Opportunity => db.deals.contains_key(&id),
            Object::Task => db.tasks.contains_key(&id),
            Object::Case => db.tickets.contains_key(&id),
        }
    }

    /// The 18-character id of model record `n` of this object.
    pub fn sf_id(self, n: i64) -> String {
        ids::id(self.prefix(), n)
    }

    /// One record's fields, or `None` if there is no such record.
    pub fn record(self, db: &Db, id: i64) -> Option<Rec> {
        if !self.exists(db, id) {
            return None;
        }
        let user = |u: i64| Value::String(Object::User.sf_id(u));
        let text = |s: &str| Value::String(s.to_owned());
        let opt = |s: &Option<String>| s.clone().map_or(Value::Null, Value::String);
        let mut r = Rec::new();
        let (created, updated) = match self {
            Object::User => {
                let u = &db.users[&id];
                user_fields(&mut r, u);
                (&u.created_at, &u.updated_at)
            }
            Object::Lead => {
                let l = &db.leads[&id].data;
                r.insert("OwnerId", user(l.owner_id));
                r.insert("FirstName", opt(&l.first_name));
                r.insert("LastName", text(&l.last_name));
                r.insert(
                    "Name",
                    text(&full_name(l.first_name.as_deref(), &l.last_name)),
                );
                r.insert("Company", opt(&l.organization_name));
                r.insert("Title", opt(&l.title));
                r.insert("Email", opt(&l.email));
                r.insert("Status", text(&l.status));
                r.insert("IsConverted", json!(db.archived_leads.contains(&id)));
                (&l.created_at, &l.updated_at)
            }
            Object::Contact | Object::Account => {
                let c = &db.contacts[&id].data;
                r.insert("OwnerId", user(c.owner_id));
                r.insert("Name", text(&c.name));
                if self == Object::Contact {
                    r.insert("FirstName", opt(&c.first_name));
                    r.insert("LastName", opt(&c.last_name));
                    r.insert("Email", opt(&c.email));
                    r.insert("AccountId", account_of(db, c.contact_id));
                }
                (&c.created_at, &c.updated_at)
            }
            Object::Opportunity => {
                let d = &db.deals[&id].data;
                let stage = db.stages.get(&d.stage_id);
                r.insert("OwnerId", user(d.owner_id));
                r.insert("Name", text(&d.name));
                r.insert("StageName", stage.map_or(Value::Null, |s| text(&s.name)));
                r.insert("IsClosed", json!(stage.is_some_and(|s| s.is_closing())));
                r.insert("IsWon", json!(stage.is_some_and(|s| s.category == "won")));
                r.insert(
                    "Amount",
                    d.value.parse::<f64>().map_or(Value::Null, |v| json!(v)),
                );
                r.insert("AccountId", account_of(db, d.contact_id));
                r.insert("ContactId", person_of(db, d.contact_id));
                (&d.created_at, &d.updated_at)
            }
            Object::Task => {
                let t = &db.tasks[&id].data;
                let (subject, description) = task_text(db, t);
                r.insert("OwnerId", user(t.owner_id));
                r.insert("Subject", Value::String(subject));
                r.insert(
                    "Description",
                    Some(description)
                        .filter(|d| !d.is_empty())
                        .map_or(Value::Null, Value::String),
                );
                r.insert(
                    "Status",
                    text(if t.completed {
                        "Completed"
                    } else {
                        "Not Started"
                    }),
                );
                r.insert("Priority", text("Normal"));
                r.insert(
                    "ActivityDate",
                    t.due_date
                        .as_deref()
                        .map_or(Value::Null, |d| text(d.get(..10).unwrap_or(d))),
                );
                r.insert("IsClosed", json!(t.completed));
                let (who, what) = task_links(db, t);
                r.insert("WhoId", who);
                r.insert("WhatId", what);
                (&t.created_at, &t.updated_at)
            }
            Object::Case => {
                let c = &db.tickets[&id].data;
                r.insert("OwnerId", user(c.owner_id));
                r.insert("Subject", text(&c.subject));
                r.insert("Status", text(if c.closed { "Closed" } else { "New" }));
                r.insert("IsClosed", json!(c.closed));
                (&c.created_at, &c.updated_at)
            }
        };
        r.insert("Id", Value::String(self.sf_id(id)));
        r.insert("CreatedDate", sf_time(created));
        r.insert("LastModifiedDate", sf_time(updated));
        Some(r)
    }
}

/// The profile a user has: Salesforce's two standard ones, by the model's role.
pub(crate) fn profile(u: &User) -> (String, &'static str, bool) {
    if u.role == UserRole::Admin {
        (ids::id("00e", 1), "System Administrator", true)
    } else {
        (ids::id("00e", 2), "Standard User", false)
    }
}

fn user_fields(r: &mut Rec, u: &User) {
    let (first, last) = match u.name.rsplit_once(' ') {
        Some((f, l)) => (Value::String(f.to_owned()), l.to_owned()),
        None => (Value::Null, u.name.clone()),
    };
    let (profile_id, profile_name, modify_all) = profile(u);
    r.insert("Name", Value::String(u.name.clone()));
    r.insert("FirstName", first);
    r.insert("LastName", Value::String(last));
    r.insert("Email", Value::String(u.email.clone()));
    r.insert("Username", Value::String(u.email.clone()));
    // A deleted model user is still a Salesforce user, deactivated.
    r.insert("IsActive", json!(u.is_active()));
    r.insert(
        "ManagerId",
        u.reports_to
            .map_or(Value::Null, |m| Value::String(Object::User.sf_id(m))),
    );
    r.insert("UserType", json!("Standard"));
    r.insert("TimeZoneSidKey", Value::String(u.timezone.clone()));
    r.insert("ProfileId", Value::String(profile_id.clone()));
    r.insert("Profile.Id", Value::String(profile_id));
    r.insert("Profile.Name", json!(profile_name));
    r.insert("Profile.PermissionsModifyAllData", json!(modify_all));
}

fn full_name(first: Option<&str>, last: &str) -> String {
    match first.filter(|f| !f.is_empty()) {
        Some(f) => format!("{f} {last}").trim().to_owned(),
        None => last.to_owned(),
    }
}

/// The Account id of a model contact that is an organization.
fn account_of(db: &Db, contact: Option<i64>) -> Value {
    contact
        .and_then(|c| db.contacts.get(&c))
        .filter(|r| r.data.is_organization)
        .map_or(Value::Null, |r| {
            Value::String(Object::Account.sf_id(r.data.id))
        })
}

/// The Contact id of a model contact that is a person.
fn person_of(db: &Db, contact: Option<i64>) -> Value {
    contact
        .and_then(|c| db.contacts.get(&c))
        .filter(|r| !r.data.is_organization)
        .map_or(Value::Null, |r| {
            Value::String(Object::Contact.sf_id(r.data.id))
        })
}

/// A task's Subject and Description (empty: `null`): the first line of the
/// model's `content`, and the task's note (Pipedrive's `note`, HubSpot's body),
/// else all of `content`. A task created through this face stores its Subject
/// as `content` and its Description (empty if none) as the note, so it reads
/// back as written, and offboard's admin task, whose marker is in its Subject,
/// is found again with `Subject LIKE '%marker%'`; other faces see the Subject
/// as the task's text.
pub(crate) fn task_text(db: &Db, t: &Task) -> (String, String) {
    let subject = t.content.lines().next().unwrap_or_default().to_owned();
    let description = db
        .task_notes
        .get(&t.id)
        .cloned()
        .unwrap_or_else(|| t.content.clone());
    (subject, description)
}

/// `WhoId` (a lead or a person) and `WhatId` (an account or an opportunity)
/// from the model task's `resource_type`/`resource_id`.
fn task_links(db: &Db, t: &Task) -> (Value, Value) {
    let id = |o: Object, n: i64| Value::String(o.sf_id(n));
    match (t.resource_type.as_deref(), t.resource_id) {
        (Some("lead"), Some(n)) => (id(Object::Lead, n), Value::Null),
        (Some("contact"), Some(n)) => match db.contacts.get(&n) {
            Some(r) if r.data.is_organization => (Value::Null, id(Object::Account, n)),
            _ => (id(Object::Contact, n), Value::Null),
        },
        (Some("deal"), Some(n)) => (Value::Null, id(Object::Opportunity, n)),
        _ => (Value::Null, Value::Null),
    }
}

/// `2026-01-05T09:00:00Z` as Salesforce writes datetimes: `2026-01-05T09:00:00.000+0000`.
pub(crate) fn sf_time(t: &str) -> Value {
    DateTime::parse_from_rfc3339(t).map_or_else(
        |_| Value::String(t.to_owned()),
        |d| {
            Value::String(
                d.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
                    .to_string(),
            )
        },
    )
}
