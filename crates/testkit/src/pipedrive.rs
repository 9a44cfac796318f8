//! Pipedrive for tests: the same sandbox and organisation as [`crate::sell`],
//! seen the way Pipedrive keeps it — companies apart from people, archived leads
//! that offboarding must leave alone.

use offboard_sandbox::Seed;

/// [`crate::sell::standard_org`] with every fourth contact an organization and
/// the first tenth of each owner's leads archived.
pub fn standard_org() -> Seed {
    let mut seed = crate::sell::standard_org();
    for (i, contact) in seed.contacts.iter_mut().enumerate() {
        contact.is_organization = i % 4 == 0;
    }
    let mut per_owner = std::collections::BTreeMap::<i64, usize>::new();
    let archived: Vec<i64> = seed
        .leads
        .iter()
        .filter(|lead| {
            let n = per_owner.entry(lead.owner_id).or_default();
            *n += 1;
            *n % 10 == 1
        })
        .map(|lead| lead.id)
        .collect();
    seed.archived_leads.extend(archived);
    seed
}
