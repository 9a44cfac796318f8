//! Made-up organisations: [`Seed::generate`] (`offboard sandbox --generate N`) for
//! rehearsals and benchmarks, and [`Seed::demo`], the fixed org `offboard demo`
//! offboards.
//!
//! Both are deterministic: the same arguments give the same seed, byte for byte,
//! so a benchmark or a bug report can be replayed. No clock is read; timestamps
//! are offsets from a fixed date.

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, TimeDelta};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};

use super::seed::{Contact, Deal, Lead, SEED_TIME, Seed, Task, Ticket, User};
use offboard_domain::{UserRole, UserStatus};

const FIRST: &[&str] = &[
    "Alex", "Bea", "Carlos", "Dana", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira",
    "Luca", "Maya", "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera",
    "Wen", "Yara", "Zoe",
];
const LAST: &[&str] = &[
    "Adler", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen", "Ito", "Jansen",
    "Kowalski", "Lopez", "Moreau", "Novak", "Okafor", "Petrov", "Rossi", "Schmidt", "Tanaka",
    "Urban", "Varga", "Weber", "Yilmaz", "Zimmer",
];
const COMPANIES: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Wonka",
    "Gringotts",
    "Oscorp",
    "Aperture",
    "Massive Dynamic",
];
const DEAL_KINDS: &[&str] = &[
    "renewal",
    "expansion",
    "pilot",
    "new logo",
    "upsell",
    "migration",
];
const TASK_KINDS: &[&str] = &[
    "Call {} about next steps",
    "Send {} the revised quote",
    "Follow up with {} after the demo",
    "Prepare the QBR deck for {}",
    "Check contract terms with {}",
];
const TEAMS: &[&str] = &["EMEA", "North America", "APAC"];
const BRANCHES: &[&str] = &[
    "Berlin", "Lisbon", "Toronto", "Austin", "Osaka", "Sydney", "Nairobi", "Oslo",
];
const TICKET_KINDS: &[&str] = &[
    "{}: invoice shows the wrong plan",
    "{}: cannot log in after SSO change",
    "{}: export stuck at 90 %",
    "{}: asks for a data processing agreement",
    "{}: API key rotation",
];

/// Pipeline stages by use: (pipeline 1, pipeline 2) for open, won, lost deals.
const OPEN_STAGES: &[i64] = &[1, 2, 11, 12, 13];
const WON_STAGES: &[i64] = &[3, 14];
const LOST_STAGES: &[i64] = &[4, 15];

/// How many records of each kind to give one owner.
#[derive(Debug, Clone, Copy, Default)]
struct Book {
    leads: usize,
    contacts: usize,
    open_deals: usize,
    closed_deals: usize,
    open_tasks: usize,
    done_tasks: usize,
}

impl Book {
    fn even(n: usize, rng: &mut StdRng) -> Book {
        // ~20% of deals closed, ~30% of tasks completed, drawn per record.
        let closed_deals = (0..n).filter(|_| rng.random_bool(0.2)).count();
        let done_tasks = (0..n).filter(|_| rng.random_bool(0.3)).count();
        Book {
            leads: n,
            contacts: n,
            open_deals: n - closed_deals,
            closed_deals,
            open_tasks: n - done_tasks,
            done_tasks,
        }
    }
}

/// Builds a seed one user and one book of records at a time.
struct Builder {
    rng: StdRng,
    seed: Seed,
    emails: HashSet<String>,
    tick: i64,
    /// The next id for leads, contacts, deals, tasks and tickets.
    next: [i64; 5],
}

impl Builder {
    fn new(rng_seed: u64) -> Builder {
        Builder {
            rng: StdRng::seed_from_u64(rng_seed),
            seed: Seed {
                stages: Seed::default_stages(),
                ..Seed::default()
            },
            emails: HashSet::new(),
            tick: 0,
            next: [10_001, 20_001, 30_001, 40_001, 50_001],
        }
    }

    /// A distinct, increasing timestamp (one minute apart).
    fn time(&mut self) -> String {
        self.tick += 1;
        let base = DateTime::parse_from_rfc3339(SEED_TIME)
            .map(|t| t.to_utc())
            .unwrap_or_default();
        (base + TimeDelta::minutes(self.tick)).to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from.choose(&mut self.rng).copied().unwrap_or_default()
    }

    fn person(&mut self) -> (String, String) {
        (self.pick(FIRST).to_owned(), self.pick(LAST).to_owned())
    }

    #[allow(clippy::too_many_arguments)]
    fn user(
        &mut self,
        id: i64,
        name: &str,
        email: &str,
        role: UserRole,
        status: UserStatus,
        reports_to: Option<i64>,
        team: &str,
    ) -> i64 {
        let mut email = email.to_owned();
        let (local, domain) = email
            .split_once('@')
            .map(|(l, d)| (l.to_owned(), d.to_owned()))
            .unwrap_or_default();
        let mut n = 2;
        while !self.emails.insert(email.to_lowercase()) {
            email = format!("{local}{n}@{domain}");
            n += 1;
        }
        let created_at = self.time();
        self.seed.users.push(User {
            id,
            name: name.to_owned(),
            email,
            status,
            role,
            confirmed: true,
            invited: false,
            reports_to,
            team_name: Some(team.to_owned()),
            zendesk_user_id: Some((381_233_800 + id).to_string()),
            phone_number: None,
            timezone: "Europe/Berlin".to_owned(),
            updated_at: created_at.clone(),
            created_at,
            deleted_at: None,
        });
        id
    }

    /// A rep named at random, reporting to `manager`.
    fn random_user(&mut self, id: i64, manager: i64, team: &str, status: UserStatus) -> i64 {
        let (first, last) = self.person();
        let email = format!(
            "{}.{}@example.com",
            first.to_lowercase(),
            last.to_lowercase()
        );
        self.user(
            id,
            &format!("{first} {last}"),
            &email,
            UserRole::User,
            status,
            Some(manager),
            team,
        )
    }

    fn next_id(&mut self, kind: usize) -> i64 {
        self.next[kind] += 1;
        self.next[kind] - 1
    }

    /// Gives `owner` a book of records; tasks point at the owner's new deals.
    fn book(&mut self, owner: i64, book: Book) {
        for _ in 0..book.leads {
            let id = self.next_id(0);
            let (first, last) = self.person();
            let company = self.pick(COMPANIES);
            let status = self.pick(&["New", "Working", "Unqualified"]).to_owned();
            let t = self.time();
            self.seed.leads.push(Lead {
                id,
                owner_id: owner,
                creator_id: Some(owner),
                email: Some(format!(
                    "{}.{}@{}.test",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    slug(company)
                )),
                first_name: Some(first),
                last_name: last,
                organization_name: Some(company.to_owned()),
                title: Some("Head of Operations".to_owned()),
                status,
                tags: vec![],
                created_at: t.clone(),
                updated_at: t,
            });
        }
        for _ in 0..book.contacts {
            let id = self.next_id(1);
            let (first, last) = self.person();
            let company = self.pick(COMPANIES);
            let t = self.time();
            self.seed.contacts.push(Contact {
                id,
                owner_id: owner,
                creator_id: Some(owner),
                is_organization: false,
                contact_id: None,
                name: format!("{first} {last}"),
                email: Some(format!("{}@{}.test", first.to_lowercase(), slug(company))),
                first_name: Some(first),
                last_name: Some(last),
                customer_status: "current".to_owned(),
                tags: vec![],
                created_at: t.clone(),
                updated_at: t,
            });
        }
        let mut new_deals = Vec::new();
        for i in 0..book.open_deals + book.closed_deals {
            let id = self.next_id(2);
            let stages = match i.checked_sub(book.open_deals) {
                None => OPEN_STAGES,
                Some(k) if k % 3 == 2 => LOST_STAGES,
                Some(_) => WON_STAGES,
            };
            let stage_id = stages.choose(&mut self.rng).copied().unwrap_or(1);
            let company = self.pick(COMPANIES);
            let kind = self.pick(DEAL_KINDS);
            let value = self.rng.random_range(2..=100) * 500;
            let contact_id = self
                .seed
                .contacts
                .iter()
                .rev()
                .find(|c| c.owner_id == owner)
                .map(|c| c.id);
            let t = self.time();
            self.seed.deals.push(Deal {
                id,
                name: format!("{company} {kind}"),
                owner_id: owner,
                creator_id: Some(owner),
                contact_id,
                stage_id,
                value: format!("{value}.00"),
                currency: "USD".to_owned(),
                hot: self.rng.random_bool(0.1),
                last_stage_change_at: Some(t.clone()),
                created_at: t.clone(),
                updated_at: t,
            });
            new_deals.push((id, company));
        }
        for i in 0..book.open_tasks + book.done_tasks {
            let id = self.next_id(3);
            let done = i >= book.open_tasks;
            let (resource_type, resource_id, about) = match new_deals.choose(&mut self.rng) {
                Some(&(deal, company)) => (Some("deal".to_owned()), Some(deal), company.to_owned()),
                None => (None, None, self.pick(COMPANIES).to_owned()),
            };
            let content = self.pick(TASK_KINDS).replace("{}", &about);
            let t = self.time();
            let due = self.time();
            self.seed.tasks.push(Task {
                id,
                owner_id: owner,
                creator_id: Some(owner),
                resource_type,
                resource_id,
                completed: done,
                completed_at: done.then(|| t.clone()),
                due_date: Some(due),
                remind_at: None,
                content,
                created_at: t.clone(),
                updated_at: t,
            });
        }
    }

    /// Gives `owner` `n` organizations (Sell contacts with `is_organization`) and
    /// `n` tickets, about 30 % of them closed.
    fn accounts(&mut self, owner: i64, n: usize) {
        for _ in 0..n {
            let id = self.next_id(1);
            let company = self.pick(COMPANIES);
            let branch = self.pick(BRANCHES);
            let customer_status = self.pick(&["current", "past", "none"]).to_owned();
            let t = self.time();
            self.seed.contacts.push(Contact {
                id,
                owner_id: owner,
                creator_id: Some(owner),
                is_organization: true,
                contact_id: None,
                name: format!("{company} {branch}"),
                email: Some(format!("info@{}.test", slug(company))),
                first_name: None,
                last_name: None,
                customer_status,
                tags: vec![],
                created_at: t.clone(),
                updated_at: t,
            });
        }
        for _ in 0..n {
            let id = self.next_id(4);
            let company = self.pick(COMPANIES);
            let subject = self.pick(TICKET_KINDS).replace("{}", company);
            let closed = self.rng.random_bool(0.3);
            let created_at = self.time();
            let updated_at = if closed {
                self.time()
            } else {
                created_at.clone()
            };
            self.seed.tickets.push(Ticket {
                id,
                owner_id: owner,
                subject,
                closed,
                created_at,
                updated_at,
            });
        }
    }
}

fn slug(s: &str) -> String {
    s.to_lowercase().replace(' ', "-")
}

impl Seed {
    /// A plausible org, the same for the same `(n, rng_seed)`:
    /// an admin (`admin@example.com`), 2–3 managers, the sales-ops fallback user
    /// (`sales-ops@example.com`), 3–5 reps per manager (`reports_to` set), one
    /// inactive rep, and for the first three reps `n` records of each kind each
    /// (about 20% of their deals in won/lost stages, about 30% of their tasks
    /// completed). The other active reps own `n / 10` (at most 10) of each kind.
    /// Each of those reps also owns a quarter as many organizations (contacts
    /// with `is_organization`, which Pipedrive, HubSpot and Salesforce serve as
    /// organizations, companies and Accounts) and as many tickets (about 30 %
    /// closed; only HubSpot and Salesforce serve them).
    ///
    /// Organizations and tickets are drawn after every other record, so the
    /// leads, people, deals and tasks are the ones earlier versions generated
    /// for the same arguments; organizations take contact ids after the last
    /// person's, tickets count from 50,001.
    pub fn generate(n: usize, rng_seed: u64) -> Seed {
        let mut b = Builder::new(rng_seed);
        let admin = b.user(
            1,
            "Avery Admin",
            "admin@example.com",
            UserRole::Admin,
            UserStatus::Active,
            None,
            "Operations",
        );
        b.user(
            2,
            "Sales Ops",
            "sales-ops@example.com",
            UserRole::User,
            UserStatus::Active,
            Some(admin),
            "Sales Ops",
        );
        let managers = b.rng.random_range(2..=3);
        let mut next = 100;
        let mut reps = Vec::new();
        for m in 0..managers {
            let team = TEAMS[m % TEAMS.len()];
            let (first, last) = b.person();
            let email = format!(
                "{}.{}@example.com",
                first.to_lowercase(),
                last.to_lowercase()
            );
            let manager = b.user(
                next,
                &format!("{first} {last}"),
                &email,
                UserRole::User,
                UserStatus::Active,
                Some(admin),
                team,
            );
            next += 1;
            for _ in 0..b.rng.random_range(3..=5) {
                reps.push(b.random_user(next, manager, team, UserStatus::Active));
                next += 1;
            }
        }
        b.random_user(next, 100, TEAMS[0], UserStatus::Inactive);
        let per_kind = |i: usize| if i < 3 { n } else { (n / 10).min(10) };
        for (i, &rep) in reps.iter().enumerate() {
            let book = Book::even(per_kind(i), &mut b.rng);
            b.book(rep, book);
        }
        for (i, &rep) in reps.iter().enumerate() {
            b.accounts(rep, per_kind(i) / 4);
        }
        b.seed
    }

    /// The fixed org `offboard demo` works on.
    ///
    /// | id | e-mail | role |
    /// |---|---|---|
    /// | 1 | `admin@example.com` | admin |
    /// | 2 | `sales-ops@example.com` | the fallback owner |
    /// | 100 | `max.manager@example.com` | manager of 101, 102, 103, 104 |
    /// | 200 | `mia.manager@example.com` | manager of 201 |
    /// | 101 | `jane.doe@example.com` | rep: 120 open records (104 leads, so lists page at 100) |
    /// | 102 | `sam.seller@example.com` | rep: 31 open records |
    /// | 201 | `lee.hold@example.com` | rep: 22 open records |
    /// | 103 | `rita.rep@example.com` | rep who stays |
    /// | 104 | `ivan.inactive@example.com` | inactive former rep |
    ///
    /// Every leaver also owns closed deals and completed tasks, which stay put.
    pub fn demo() -> Seed {
        let mut b = Builder::new(2026);
        let (user, active) = (UserRole::User, UserStatus::Active);
        b.user(
            1,
            "Ada Admin",
            "admin@example.com",
            UserRole::Admin,
            active,
            None,
            "Operations",
        );
        b.user(
            2,
            "Sales Ops",
            "sales-ops@example.com",
            user,
            active,
            Some(1),
            "Sales Ops",
        );
        b.user(
            100,
            "Max Manager",
            "max.manager@example.com",
            user,
            active,
            Some(1),
            "EMEA",
        );
        b.user(
            200,
            "Mia Manager",
            "mia.manager@example.com",
            user,
            active,
            Some(1),
            "North America",
        );
        b.user(
            101,
            "Jane Doe",
            "jane.doe@example.com",
            user,
            active,
            Some(100),
            "EMEA",
        );
        b.user(
            102,
            "Sam Seller",
            "sam.seller@example.com",
            user,
            active,
            Some(100),
            "EMEA",
        );
        b.user(
            103,
            "Rita Rep",
            "rita.rep@example.com",
            user,
            active,
            Some(100),
            "EMEA",
        );
        b.user(
            104,
            "Ivan Inactive",
            "ivan.inactive@example.com",
            user,
            UserStatus::Inactive,
            Some(100),
            "EMEA",
        );
        b.user(
            201,
            "Lee Hold",
            "lee.hold@example.com",
            user,
            active,
            Some(200),
            "North America",
        );
        let book = |leads, contacts, open_deals, closed_deals, open_tasks, done_tasks| Book {
            leads,
            contacts,
            open_deals,
            closed_deals,
            open_tasks,
            done_tasks,
        };
        b.book(101, book(104, 7, 5, 3, 4, 4));
        b.book(102, book(14, 8, 5, 3, 4, 3));
        b.book(201, book(9, 6, 4, 2, 3, 2));
        b.book(103, book(5, 3, 2, 1, 2, 1));
        b.book(100, book(3, 2, 1, 1, 1, 0));
        b.book(104, book(0, 0, 0, 2, 0, 1));
        b.seed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_is_deterministic_and_valid() {
        let a = Seed::generate(50, 7);
        assert_eq!(a, Seed::generate(50, 7));
        assert_ne!(a, Seed::generate(50, 8));
        a.validate().unwrap();
        assert!(
            a.users
                .iter()
                .any(|u| u.email == "admin@example.com" && u.role == UserRole::Admin)
        );
        assert!(
            a.users
                .iter()
                .any(|u| u.email == "sales-ops@example.com" && u.is_active())
        );
        assert!(a.users.iter().any(|u| u.status == UserStatus::Inactive));
        let stages = Seed::default_stages();
        let closed = a
            .deals
            .iter()
            .filter(|d| stages.iter().any(|s| s.id == d.stage_id && s.is_closing()))
            .count();
        let share = closed as f64 / a.deals.len() as f64;
        assert!((0.1..0.3).contains(&share), "closed deals share {share}");
        let done = a.tasks.iter().filter(|t| t.completed).count() as f64 / a.tasks.len() as f64;
        assert!((0.2..0.4).contains(&done), "completed tasks share {done}");
        let top = a
            .users
            .iter()
            .find(|u| u.reports_to.is_some_and(|m| m >= 100))
            .unwrap();
        assert_eq!(a.leads.iter().filter(|l| l.owner_id == top.id).count(), 50);
        let orgs = a
            .contacts
            .iter()
            .filter(|c| c.owner_id == top.id && c.is_organization)
            .count();
        assert_eq!(orgs, 12);
        let tickets: Vec<&Ticket> = a.tickets.iter().filter(|t| t.owner_id == top.id).collect();
        assert_eq!(tickets.len(), 12);
        let closed = a.tickets.iter().filter(|t| t.closed).count() as f64 / a.tickets.len() as f64;
        assert!(
            (0.1..0.5).contains(&closed),
            "closed tickets share {closed}"
        );
    }

    #[test]
    fn demo_has_the_users_the_demo_needs() {
        let d = Seed::demo();
        d.validate().unwrap();
        let id = |email: &str| {
            d.users
                .iter()
                .find(|u| u.email == email)
                .map(|u| u.id)
                .unwrap()
        };
        assert_eq!(
            d.users
                .iter()
                .find(|u| u.id == id("jane.doe@example.com"))
                .unwrap()
                .reports_to,
            Some(100)
        );
        let jane = id("jane.doe@example.com");
        let open = d.leads.iter().filter(|r| r.owner_id == jane).count()
            + d.contacts.iter().filter(|r| r.owner_id == jane).count()
            + d.deals
                .iter()
                .filter(|r| r.owner_id == jane && OPEN_STAGES.contains(&r.stage_id))
                .count()
            + d.tasks
                .iter()
                .filter(|r| r.owner_id == jane && !r.completed)
                .count();
        assert_eq!(open, 120);
        for leaver in [
            "jane.doe@example.com",
            "sam.seller@example.com",
            "lee.hold@example.com",
        ] {
            let u = id(leaver);
            assert!(
                d.deals
                    .iter()
                    .any(|r| r.owner_id == u && !OPEN_STAGES.contains(&r.stage_id))
            );
            assert!(d.tasks.iter().any(|r| r.owner_id == u && r.completed));
        }
    }
}
