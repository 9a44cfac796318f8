//! Salesforce for tests: the organisation of [`crate::pipedrive`] (Accounts
//! apart from Contacts, converted leads as Pipedrive's archived ones) with Cases
//! too, seen the way Salesforce keeps it.

use offboard_sandbox::{Seed, Ticket};
use serde_json::json;

/// [`crate::pipedrive::standard_org`] plus Cases: each record owner gets as
/// many tickets as records of each other kind (jane 10: 250; 11, 12, 13 and 20:
/// 40), the first 30 % of them closed.
pub fn standard_org() -> Seed {
    let mut seed = crate::pipedrive::standard_org();
    // Above every id standard_org and standard_org_with_reps hand out.
    let mut next_id = 300_000;
    for (owner, n) in [(10, 250), (11, 40), (12, 40), (13, 40), (20, 40)] {
        for i in 0..n {
            next_id += 1;
            let ticket: Ticket = serde_json::from_value(json!({
                "id": next_id, "owner_id": owner, "subject": format!("Case {i}"),
                "closed": i * 100 / n < 30,
            }))
            .expect("a ticket");
            seed.tickets.push(ticket);
        }
    }
    seed.validate().expect("the Salesforce org is a valid seed");
    seed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_owner_has_open_and_closed_cases() {
        let seed = standard_org();
        let jane: Vec<_> = seed.tickets.iter().filter(|t| t.owner_id == 10).collect();
        assert_eq!(jane.len(), 250);
        assert_eq!(jane.iter().filter(|t| t.closed).count(), 75);
        assert!(!seed.archived_leads.is_empty());
        assert!(seed.contacts.iter().any(|c| c.is_organization));
    }
}
