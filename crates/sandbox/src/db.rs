//! The in-memory database behind the sandbox: users, the four record kinds and
//! stages, plus the rules Sell enforces when data changes (owners must be active
//! users; an admin can only delete a user whose open records are gone).
//!
//! [`Db`] knows nothing of HTTP: routes translate its errors into Sell envelopes,
//! control routes into offboard's own. [`Kind`] lets one generic handler serve
//! leads, contacts, deals and tasks.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use super::seed::{Contact, Deal, Lead, Seed, Stage, Task, Ticket, User};
use offboard_domain::{Resource, UserRole, UserStatus};

/// A stored record and its version (Sell's `meta.version`, bumped per write).
#[derive(Debug, Clone)]
pub(super) struct Row<T> {
    pub data: T,
    pub version: u32,
}

pub(super) type Table<T> = BTreeMap<i64, Row<T>>;

/// Everything a sandbox holds.
#[derive(Debug, Clone, Default)]
pub(super) struct Db {
    pub users: BTreeMap<i64, User>,
    pub leads: Table<Lead>,
    pub contacts: Table<Contact>,
    pub deals: Table<Deal>,
    pub tasks: Table<Task>,
    pub tickets: Table<Ticket>,
    pub stages: BTreeMap<i64, Stage>,
    /// Leads Pipedrive shows as archived (see [`Seed::archived_leads`]).
    pub archived_leads: BTreeSet<i64>,
    /// Task notes (a Pipedrive activity's `note`), by task id.
    pub task_notes: BTreeMap<i64, String>,
}

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum WriteError {
    /// No record with that id.
    NotFound,
    /// A field's value is unacceptable; `field` is its name.
    Invalid { field: String, message: String },
}

/// Why a control action (an admin in Sell's UI) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// No user with that id.
    #[error("no user with id {0}")]
    UnknownUser(i64),
    /// The user was deleted; deletion is permanent.
    #[error("user {0} is deleted; deletion is permanent")]
    Deleted(i64),
    /// Sell refuses to delete a user who still owns open leads, contacts or deals.
    #[error(
        "user {id} still owns {leads} leads, {contacts} contacts and {deals} open deals; \
         reassign them to an active user first"
    )]
    OpenRecords {
        /// The user who was to be deleted.
        id: i64,
        /// Leads they still own.
        leads: usize,
        /// Contacts they still own.
        contacts: usize,
        /// Open deals they still own (won and lost ones may stay).
        deals: usize,
    },
    /// Sell refuses to delete a manager who still has active reportees.
    #[error("user {id} still manages active users {reportees:?}")]
    HasReportees {
        /// The manager who was to be deleted.
        id: i64,
        /// The ids of the active users who report to them.
        reportees: Vec<i64>,
    },
}

/// Open and closed records of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Leads (Pipedrive: not archived) and contacts; deals not won or lost;
    /// tasks not completed.
    pub open: usize,
    /// Won or lost deals; completed tasks; Pipedrive's archived leads.
    pub closed: usize,
}

/// What one user owns, per kind ([`SandboxState::open_counts`](super::SandboxState::open_counts)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OwnedCounts {
    /// Leads (Sell: always open; Pipedrive: archived ones are closed).
    pub leads: Counts,
    /// Contacts (always open; in Sell's view companies are contacts too,
    /// Pipedrive's are persons only).
    pub contacts: Counts,
    /// Organizations, where the CRM keeps them apart from contacts (Pipedrive;
    /// not Sell: 0 there).
    pub organizations: Counts,
    /// Deals: open, or won/lost.
    pub deals: Counts,
    /// Tasks: open, or completed.
    pub tasks: Counts,
    /// Tickets: open, or closed (0 where the CRM has none: Sell, Pipedrive).
    pub tickets: Counts,
}

impl OwnedCounts {
    /// The counts of one kind.
    pub fn get(&self, resource: Resource) -> Counts {
        match resource {
            Resource::Leads => self.leads,
            Resource::Contacts => self.contacts,
            Resource::Organizations => self.organizations,
            Resource::Deals => self.deals,
            Resource::Tasks => self.tasks,
            Resource::Tickets => self.tickets,
        }
    }

    /// Open records of every kind together.
    pub fn open_total(&self) -> usize {
        Resource::ALL.iter().map(|r| self.get(*r).open).sum()
    }
}

/// A record kind the generic routes serve.
pub(super) trait Kind: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    const RESOURCE: Resource;
    /// `meta.type` in envelopes.
    const TYPE: &'static str;
    fn id(&self) -> i64;
    fn owner_id(&self) -> i64;
    fn table(db: &Db) -> &Table<Self>;
    fn table_mut(db: &mut Db) -> &mut Table<Self>;
    fn set_updated_at(&mut self, at: &str);
    /// `completed`, for the kinds that have it.
    fn completed(&self) -> Option<bool> {
        None
    }
    /// `stage_id`, for deals.
    fn stage_id(&self) -> Option<i64> {
        None
    }
    /// Whether offboarding counts it as open (see DESIGN.md §2).
    fn is_open(&self, _db: &Db) -> bool {
        true
    }
    /// Fixes derived fields after a write changed `before` into `self`.
    fn after_write(&mut self, _before: &Self, _at: &str) {}
}

macro_rules! kind {
    ($res:ident, $type:literal, $field:ident) => {
        fn table(db: &Db) -> &Table<Self> {
            &db.$field
        }
        fn table_mut(db: &mut Db) -> &mut Table<Self> {
            &mut db.$field
        }
        const RESOURCE: Resource = Resource::$res;
        const TYPE: &'static str = $type;
        fn id(&self) -> i64 {
            self.id
        }
        fn owner_id(&self) -> i64 {
            self.owner_id
        }
        fn set_updated_at(&mut self, at: &str) {
            self.updated_at = at.to_owned();
        }
    };
}

impl Kind for Lead {
    kind!(Leads, "lead", leads);
}

impl Kind for Contact {
    kind!(Contacts, "contact", contacts);
}

impl Kind for Deal {
    kind!(Deals, "deal", deals);
    fn stage_id(&self) -> Option<i64> {
        Some(self.stage_id)
    }
    fn is_open(&self, db: &Db) -> bool {
        db.stages
            .get(&self.stage_id)
            .is_none_or(|s| !s.is_closing())
    }
    fn after_write(&mut self, before: &Self, at: &str) {
        if self.stage_id != before.stage_id {
            self.last_stage_change_at = Some(at.to_owned());
        }
    }
}

impl Kind for Ticket {
    kind!(Tickets, "ticket", tickets);
    fn is_open(&self, _db: &Db) -> bool {
        !self.closed
    }
}

impl Kind for Task {
    kind!(Tasks, "task", tasks);
    fn completed(&self) -> Option<bool> {
        Some(self.completed)
    }
    fn is_open(&self, _db: &Db) -> bool {
        !self.completed
    }
    fn after_write(&mut self, before: &Self, at: &str) {
        if self.completed != before.completed {
            self.completed_at = self.completed.then(|| at.to_owned());
        }
    }
}

/// Fields a client can't change (Sell ignores them in an update).
const READ_ONLY: &[&str] = &["id", "creator_id", "created_at", "updated_at"];

fn table_of<T: Kind>(items: &[T]) -> Table<T> {
    items
        .iter()
        .map(|r| {
            (
                r.id(),
                Row {
                    data: r.clone(),
                    version: 1,
                },
            )
        })
        .collect()
}

fn rows<T: Clone>(table: &Table<T>) -> Vec<T> {
    table.values().map(|r| r.data.clone()).collect()
}

impl Db {
    pub fn from_seed(seed: &Seed) -> Db {
        let stages = if seed.stages.is_empty() {
            Seed::default_stages()
        } else {
            seed.stages.clone()
        };
        Db {
            users: seed.users.iter().map(|u| (u.id, u.clone())).collect(),
            leads: table_of(&seed.leads),
            contacts: table_of(&seed.contacts),
            deals: table_of(&seed.deals),
            tasks: table_of(&seed.tasks),
            tickets: table_of(&seed.tickets),
            stages: stages.into_iter().map(|s| (s.id, s)).collect(),
            archived_leads: seed.archived_leads.clone(),
            task_notes: seed.task_notes.clone(),
        }
    }

    pub fn to_seed(&self) -> Seed {
        Seed {
            users: self.users.values().cloned().collect(),
            leads: rows(&self.leads),
            contacts: rows(&self.contacts),
            deals: rows(&self.deals),
            tasks: rows(&self.tasks),
            tickets: rows(&self.tickets),
            stages: self.stages.values().cloned().collect(),
            archived_leads: self.archived_leads.clone(),
            task_notes: self.task_notes.clone(),
        }
    }

    /// A user the API can see (deleted users are gone from it).
    pub fn visible_user(&self, id: i64) -> Option<&User> {
        self.users.get(&id).filter(|u| u.deleted_at.is_none())
    }

    /// The user behind every token: the first active admin (the account owner).
    pub fn self_user(&self) -> Option<&User> {
        let admins = self
            .users
            .values()
            .filter(|u| u.role == offboard_domain::UserRole::Admin);
        admins
            .clone()
            .find(|u| u.is_active())
            .or_else(|| self.users.values().find(|u| u.is_active()))
    }

    /// Why `owner_id` can't own records, if it can't.
    pub fn owner_problem(&self, owner_id: i64) -> Option<String> {
        match self.users.get(&owner_id) {
            None => Some(format!("user {owner_id} does not exist")),
            Some(u) if u.deleted_at.is_some() => Some(format!("user {owner_id} is deleted")),
            Some(u) if u.status != UserStatus::Active => Some(format!(
                "user {owner_id} is inactive; records can't be assigned to an inactive user"
            )),
            Some(_) => None,
        }
    }

    /// Applies a partial update (`data` of a `PUT`) to one record.
    pub fn update<K: Kind>(
        &mut self,
        id: i64,
        patch: &Map<String, Value>,
        at: &str,
    ) -> Result<&Row<K>, WriteError> {
        let before = K::table(self)
            .get(&id)
            .ok_or(WriteError::NotFound)?
            .data
            .clone();
        if let Some(owner) = patch.get("owner_id") {
            let owner = owner.as_i64().ok_or_else(|| WriteError::Invalid {
                field: "owner_id".into(),
                message: "owner_id must be an integer user id".into(),
            })?;
            if let Some(message) = self.owner_problem(owner) {
                return Err(WriteError::Invalid {
                    field: "owner_id".into(),
                    message,
                });
            }
        }
        if let (Some(stage), Resource::Deals) = (patch.get("stage_id"), K::RESOURCE)
            && !stage.as_i64().is_some_and(|s| self.stages.contains_key(&s))
        {
            return Err(WriteError::Invalid {
                field: "stage_id".into(),
                message: "stage_id is not a known stage".into(),
            });
        }
        let mut value = serde_json::to_value(&before).map_err(|e| invalid("data", e))?;
        if let Value::Object(fields) = &mut value {
            for (k, v) in patch
                .iter()
                .filter(|(k, _)| !READ_ONLY.contains(&k.as_str()))
            {
                fields.insert(k.clone(), v.clone());
            }
        }
        let mut after: K =
            serde_path_to_error::deserialize(value).map_err(|e| WriteError::Invalid {
                field: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        after.set_updated_at(at);
        after.after_write(&before, at);
        let row = K::table_mut(self)
            .get_mut(&id)
            .ok_or(WriteError::NotFound)?;
        row.data = after;
        row.version += 1;
        Ok(row)
    }

    /// What `owner_id` owns, open and closed, per kind.
    pub fn counts(&self, owner_id: i64) -> OwnedCounts {
        fn of<K: Kind>(db: &Db, owner_id: i64) -> Counts {
            let mut c = Counts::default();
            for row in K::table(db)
                .values()
                .filter(|r| r.data.owner_id() == owner_id)
            {
                if row.data.is_open(db) {
                    c.open += 1;
                } else {
                    c.closed += 1;
                }
            }
            c
        }
        OwnedCounts {
            leads: of::<Lead>(self, owner_id),
            contacts: of::<Contact>(self, owner_id),
            organizations: Counts::default(),
            deals: of::<Deal>(self, owner_id),
            tasks: of::<Task>(self, owner_id),
            tickets: of::<Ticket>(self, owner_id),
        }
    }

    /// [`counts`](Self::counts) as Pipedrive sees them: persons and
    /// organizations apart, archived leads closed.
    pub fn pipedrive_counts(&self, owner_id: i64) -> OwnedCounts {
        let mut c = self.counts(owner_id);
        c.leads = Counts::default();
        c.tickets = Counts::default();
        for lead in self.leads.values().filter(|r| r.data.owner_id == owner_id) {
            if self.archived_leads.contains(&lead.data.id) {
                c.leads.closed += 1;
            } else {
                c.leads.open += 1;
            }
        }
        let owned = self
            .contacts
            .values()
            .filter(|r| r.data.owner_id == owner_id);
        let orgs = owned.clone().filter(|r| r.data.is_organization).count();
        c.contacts = Counts {
            open: owned.count() - orgs,
            closed: 0,
        };
        c.organizations = Counts {
            open: orgs,
            closed: 0,
        };
        c
    }

    fn user_mut(&mut self, id: i64) -> Result<&mut User, ControlError> {
        let user = self
            .users
            .get_mut(&id)
            .ok_or(ControlError::UnknownUser(id))?;
        if user.deleted_at.is_some() {
            return Err(ControlError::Deleted(id));
        }
        Ok(user)
    }

    /// What an admin's "Deactivate" does: the seat is freed, ownership stays.
    pub fn set_status(
        &mut self,
        id: i64,
        status: UserStatus,
        at: &str,
    ) -> Result<User, ControlError> {
        let user = self.user_mut(id)?;
        if user.status != status {
            user.status = status;
            user.updated_at = at.to_owned();
        }
        Ok(user.clone())
    }

    /// What an admin's change of a user's role in the CRM's settings does.
    pub fn set_role(&mut self, id: i64, role: UserRole, at: &str) -> Result<User, ControlError> {
        let user = self.user_mut(id)?;
        if user.role != role {
            user.role = role;
            user.updated_at = at.to_owned();
        }
        Ok(user.clone())
    }

    /// What an admin's "Delete" does, with Sell's preconditions: no open leads,
    /// contacts or deals left, no active reportees. Deleting twice is a no-op.
    pub fn delete_user(&mut self, id: i64, at: &str) -> Result<User, ControlError> {
        self.delete_user_unless_owning(
            id,
            at,
            &[Resource::Leads, Resource::Contacts, Resource::Deals],
        )
    }

    /// [`Self::delete_user`] for a CRM that refuses the delete only while the user
    /// still owns open records of `blocking` (the kinds it has: HubSpot has no leads).
    pub fn delete_user_unless_owning(
        &mut self,
        id: i64,
        at: &str,
        blocking: &[Resource],
    ) -> Result<User, ControlError> {
        match self.users.get(&id) {
            None => return Err(ControlError::UnknownUser(id)),
            Some(u) if u.deleted_at.is_some() => return Ok(u.clone()),
            Some(_) => {}
        }
        let c = self.counts(id);
        if blocking.iter().map(|r| c.get(*r).open).sum::<usize>() > 0 {
            return Err(ControlError::OpenRecords {
                id,
                leads: c.leads.open,
                contacts: c.contacts.open,
                deals: c.deals.open,
            });
        }
        let reportees: Vec<i64> = self
            .users
            .values()
            .filter(|u| u.reports_to == Some(id) && u.is_active())
            .map(|u| u.id)
            .collect();
        if !reportees.is_empty() {
            return Err(ControlError::HasReportees { id, reportees });
        }
        let user = self.user_mut(id)?;
        user.status = UserStatus::Inactive;
        user.deleted_at = Some(at.to_owned());
        user.updated_at = at.to_owned();
        Ok(user.clone())
    }
}

fn invalid(field: &str, e: impl std::fmt::Display) -> WriteError {
    WriteError::Invalid {
        field: field.to_owned(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn update_checks_the_owner_and_bumps_the_version() {
        let mut db = Db::from_seed(&Seed::demo());
        let deal = db
            .deals
            .values()
            .find(|r| r.data.owner_id == 101)
            .unwrap()
            .data
            .id;
        let err = db
            .update::<Deal>(deal, &patch(json!({"owner_id": 104})), "t")
            .unwrap_err();
        assert!(matches!(err, WriteError::Invalid { ref field, .. } if field == "owner_id"));
        let err = db
            .update::<Deal>(deal, &patch(json!({"owner_id": 999})), "t")
            .unwrap_err();
        assert!(matches!(err, WriteError::Invalid { .. }));
        let row = db
            .update::<Deal>(deal, &patch(json!({"owner_id": 100, "id": 1})), "t")
            .unwrap();
        assert_eq!(
            (row.data.owner_id, row.data.id, row.version),
            (100, deal, 2)
        );
        assert_eq!(
            db.update::<Deal>(1, &patch(json!({})), "t").unwrap_err(),
            WriteError::NotFound
        );
        let err = db
            .update::<Deal>(deal, &patch(json!({"hot": "very"})), "t")
            .unwrap_err();
        assert!(
            matches!(err, WriteError::Invalid { ref field, .. } if field == "hot"),
            "{err:?}"
        );
    }

    #[test]
    fn completing_a_task_stamps_it() {
        let mut db = Db::from_seed(&Seed::demo());
        let task = db
            .tasks
            .values()
            .find(|r| !r.data.completed)
            .unwrap()
            .data
            .id;
        let row = db
            .update::<Task>(
                task,
                &patch(json!({"completed": true})),
                "2026-12-01T00:00:00Z",
            )
            .unwrap();
        assert_eq!(
            row.data.completed_at.as_deref(),
            Some("2026-12-01T00:00:00Z")
        );
    }

    #[test]
    fn delete_needs_open_records_gone_and_no_reportees() {
        let mut db = Db::from_seed(&Seed::demo());
        assert!(matches!(
            db.delete_user(102, "t"),
            Err(ControlError::OpenRecords { id: 102, .. })
        ));
        assert!(matches!(
            db.delete_user(200, "t"),
            Err(ControlError::OpenRecords { .. }) | Err(ControlError::HasReportees { .. })
        ));
        for id in db.leads.keys().copied().collect::<Vec<_>>() {
            if db.leads[&id].data.owner_id == 102 {
                db.update::<Lead>(id, &patch(json!({"owner_id": 100})), "t")
                    .unwrap();
            }
        }
        for id in db.contacts.keys().copied().collect::<Vec<_>>() {
            if db.contacts[&id].data.owner_id == 102 {
                db.update::<Contact>(id, &patch(json!({"owner_id": 100})), "t")
                    .unwrap();
            }
        }
        let open: Vec<i64> = db
            .deals
            .values()
            .filter(|r| r.data.owner_id == 102 && r.data.is_open(&db))
            .map(|r| r.data.id)
            .collect();
        for id in open {
            db.update::<Deal>(id, &patch(json!({"owner_id": 100})), "t")
                .unwrap();
        }
        let before = db.counts(102);
        assert_eq!((before.leads.open, before.deals.open), (0, 0));
        assert!(before.deals.closed > 0);
        let user = db.delete_user(102, "t").unwrap();
        assert_eq!(user.deleted_at.as_deref(), Some("t"));
        assert!(db.visible_user(102).is_none());
        assert_eq!(
            db.counts(102).deals.closed,
            before.deals.closed,
            "closed deals stay"
        );
        assert_eq!(
            db.set_status(102, UserStatus::Active, "t"),
            Err(ControlError::Deleted(102))
        );
        assert!(db.delete_user(102, "t").is_ok(), "idempotent");
    }
}
