//! Sell for tests, backed by the real [`offboard_sandbox`] rather than a fake
//! per test file: one implementation of Sell's envelopes, paging, owner rules
//! and errors, checked against Sell's documented behaviour in the sandbox's own
//! tests. What a test asserts about the traffic (PUT counts, the admin task)
//! comes from the sandbox's request log and statistics.

use std::collections::{BTreeSet, HashSet};

use offboard_domain::Resource;
use offboard_sandbox::{Sandbox, SandboxOptions, SandboxState, Seed};
use serde_json::{Value, json};

/// Starts a sandbox with `opts`, panicking if it cannot (a bad seed or no port).
pub async fn start(opts: SandboxOptions) -> Sandbox {
    Sandbox::start(opts).await.expect("start the Sell sandbox")
}

/// The organisation the API tests are written against, as a sandbox seed:
/// admin 1, manager 2, sales-ops 3, jane 10 (reports to 2) with 250 records of
/// each kind — three pages at Sell's largest `per_page` of 100 — sam 11 and lee
/// 12 (report to 2), a second admin 13, boss 20 with an active reportee 21.
/// Everyone but 21 owns records (40 of each kind for 11, 12, 13 and 20); the
/// first 30 % of each owner's deals are won or lost and of their tasks
/// completed, so "open only" has something to leave behind.
pub fn standard_org() -> Seed {
    let users = [
        (1, "admin@example.com", "admin", None),
        (2, "max.manager@example.com", "user", None),
        (3, "sales-ops@example.com", "user", None),
        (10, "jane.doe@example.com", "user", Some(2)),
        (11, "sam.seller@example.com", "user", Some(2)),
        (12, "lee.hold@example.com", "user", Some(2)),
        (13, "ada.admin@example.com", "admin", None),
        (20, "boss@example.com", "user", None),
        (21, "report@example.com", "user", Some(20)),
    ];
    let mut seed = json!({
        "users": users.iter().map(|(id, email, role, reports_to)| json!({
            "id": id, "name": email.split('@').next(), "email": email,
            "role": role, "reports_to": reports_to, "team_name": "EMEA",
        })).collect::<Vec<_>>(),
        "leads": [], "contacts": [], "deals": [], "tasks": [],
    });
    let mut next_id = 100_000;
    for (owner, n) in [(10, 250), (11, 40), (12, 40), (13, 40), (20, 40)] {
        add_records(&mut seed, &mut next_id, owner, n);
    }
    Seed::from_json(&seed.to_string()).expect("the standard org is a valid seed")
}

/// [`standard_org`] plus one active rep per `(id, email)`, reporting to the
/// manager (2), each owning `n` records of each kind (30 % of deals and tasks
/// closed): the leavers of a test that offboards many people at once.
pub fn standard_org_with_reps(reps: &[(i64, &str)], n: usize) -> Seed {
    let mut seed = serde_json::to_value(standard_org()).expect("a seed is JSON");
    // Above every id standard_org hands out, so the records cannot collide.
    let mut next_id = 200_000;
    for &(id, email) in reps {
        seed["users"].as_array_mut().expect("a list").push(json!({
            "id": id, "name": email.split('@').next(), "email": email,
            "reports_to": 2, "team_name": "EMEA",
        }));
        add_records(&mut seed, &mut next_id, id, n);
    }
    Seed::from_json(&seed.to_string()).expect("reps with fresh ids and e-mails")
}

/// `(open, closed)` records of `resource` that `owner` holds now.
pub async fn owned(state: &SandboxState, resource: Resource, owner: i64) -> (usize, usize) {
    let c = state.open_counts(owner).await.get(resource);
    (c.open, c.closed)
}

/// Which records `owner` holds now, `(open, closed)`, each named the way
/// [`Stats::puts`](offboard_sandbox::Stats::puts) counts it (`deals/100003`), so
/// a test can check that exactly the open ones were written and that the closed
/// ones stayed — which [`owned`]'s counts alone cannot tell apart from a swap.
pub async fn owned_records(
    state: &SandboxState,
    owner: i64,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let seed = state.snapshot().await;
    let closing: HashSet<i64> = seed
        .stages
        .iter()
        .filter(|s| matches!(s.category.as_str(), "won" | "lost"))
        .map(|s| s.id)
        .collect();
    let rows = seed
        .leads
        .iter()
        .map(|r| (Resource::Leads, r.id, r.owner_id, true))
        .chain(
            seed.contacts
                .iter()
                .map(|r| (Resource::Contacts, r.id, r.owner_id, true)),
        )
        .chain(seed.deals.iter().map(|r| {
            let open = !closing.contains(&r.stage_id);
            (Resource::Deals, r.id, r.owner_id, open)
        }))
        .chain(
            seed.tasks
                .iter()
                .map(|r| (Resource::Tasks, r.id, r.owner_id, !r.completed)),
        );
    let (mut open, mut closed) = (BTreeSet::new(), BTreeSet::new());
    for (resource, id, _, is_open) in rows.filter(|r| r.2 == owner) {
        let key = format!("{resource}/{id}");
        if is_open {
            open.insert(key);
        } else {
            closed.insert(key);
        }
    }
    (open, closed)
}

/// The contents of the tasks created through the API (ids the seed did not
/// hold), oldest first: the admin tasks offboard wrote, to check what they ask.
pub async fn created_tasks(state: &SandboxState) -> Vec<String> {
    let mut created: Vec<_> = state
        .snapshot()
        .await
        .tasks
        .into_iter()
        .filter(|t| t.created_at != SEEDED_AT)
        .collect();
    created.sort_by_key(|t| t.id);
    created.into_iter().map(|t| t.content).collect()
}

/// The creation time every seeded record carries (the sandbox's default), told
/// apart from records the API created, which carry the time of the request.
const SEEDED_AT: &str = "2026-01-05T09:00:00Z";

/// `n` records of each kind for `owner`, the first 30 % of deals and tasks closed.
fn add_records(seed: &mut Value, next_id: &mut i64, owner: i64, n: usize) {
    for i in 0..n {
        let closed = i * 100 / n < 30;
        let mut id = || {
            *next_id += 1;
            *next_id
        };
        let (lead, contact, deal, task) = (id(), id(), id(), id());
        // Both default pipelines: 1/2/11 are open stages, 3/4/14 won or lost.
        let stage = if closed { [3, 4, 14] } else { [1, 2, 11] }[i % 3];
        let push = |seed: &mut Value, kind: &str, v: Value| {
            seed[kind].as_array_mut().expect("a list").push(v)
        };
        push(
            seed,
            "leads",
            json!({ "id": lead, "owner_id": owner, "last_name": format!("Lead {i}") }),
        );
        push(
            seed,
            "contacts",
            json!({ "id": contact, "owner_id": owner, "name": format!("Contact {i}") }),
        );
        push(
            seed,
            "deals",
            json!({ "id": deal, "owner_id": owner, "stage_id": stage, "name": format!("Deal {i}") }),
        );
        push(
            seed,
            "tasks",
            json!({ "id": task, "owner_id": owner, "completed": closed, "content": format!("task {i}") }),
        );
    }
}

/// Admin tasks the sandbox accepted: `POST /v2/tasks` answered 200.
pub fn admin_tasks(state: &SandboxState) -> usize {
    state
        .request_log()
        .iter()
        .filter(|e| e.method == "POST" && e.path.starts_with("/v2/tasks") && e.status == Some(200))
        .count()
}

/// The paths of the `PUT`s the sandbox received, whatever their outcome, in
/// arrival order: what a test inspects when it needs
/// the requests themselves rather than the counts in [`SandboxState::stats`].
pub fn puts(state: &SandboxState) -> Vec<String> {
    state
        .request_log()
        .into_iter()
        .filter(|e| e.method == "PUT")
        .map(|e| e.path)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_standard_org_serves_with_open_and_closed_records() {
        let sb = start(SandboxOptions {
            seed: standard_org(),
            ..SandboxOptions::default()
        })
        .await;
        let jane = sb.state().open_counts(10).await;
        assert_eq!(jane.get(Resource::Leads).open, 250);
        assert_eq!(jane.get(Resource::Deals).open, 175);
        assert_eq!(jane.get(Resource::Deals).closed, 75);
        assert_eq!(jane.get(Resource::Tasks).closed, 75);
        assert_eq!(sb.state().open_counts(21).await.open_total(), 0);
        assert_eq!(admin_tasks(&sb.state()), 0);
        assert!(puts(&sb.state()).is_empty());
        assert!(created_tasks(&sb.state()).await.is_empty());
        assert_eq!(owned(&sb.state(), Resource::Tasks, 20).await, (28, 12));
        let (open, closed) = owned_records(&sb.state(), 10).await;
        assert_eq!((open.len(), closed.len()), (250 * 4 - 150, 150));
        assert!(open.contains("leads/100001") && closed.contains("deals/100003"));
    }

    #[tokio::test]
    async fn tasks_posted_through_the_api_are_the_created_ones() {
        let sb = start(SandboxOptions {
            seed: standard_org(),
            ..SandboxOptions::default()
        })
        .await;
        let resp = reqwest::Client::new()
            .post(format!("{}/v2/tasks", sb.base_url()))
            .bearer_auth("any")
            .header("user-agent", "offboard-testkit")
            .json(&json!({ "data": { "content": "offboard: please act", "owner_id": 1 } }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
        assert_eq!(created_tasks(&sb.state()).await, ["offboard: please act"]);
        assert_eq!(admin_tasks(&sb.state()), 1);
    }

    #[test]
    fn reps_join_the_standard_org() {
        let seed = standard_org_with_reps(&[(30, "leaver0@example.com")], 5);
        assert_eq!(seed.users.len(), 10);
        assert_eq!(seed.leads.iter().filter(|l| l.owner_id == 30).count(), 5);
    }
}
