//! Sell for tests, backed by the real [`offboard_sandbox`] rather than a fake
//! per test file: one implementation of Sell's envelopes, paging, owner rules
//! and errors, checked against Sell's documented behaviour in the sandbox's own
//! tests. What a test asserts about the traffic (PUT counts, the admin task)
//! comes from the sandbox's request log and statistics.

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
    use offboard_domain::Resource;

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
    }
}
