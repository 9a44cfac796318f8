//! HubSpot behind the [`Crm`](super::Crm) trait (`[crm] kind = "hubspot"`).
//!
//! HubSpot differs from Sell and Pipedrive where it matters to the worker: a
//! person has two ids (the CRM *owner* records point at, and the settings-API
//! *user* seat changes take); lists of owned records come from the search API,
//! which stops at 10,000 results per query; one write call moves up to 100
//! records and answers per record; and a seat can be removed by API but not
//! deactivated or reactivated.
//!
//! [`HubSpotClient`] is cheap to clone; clones share one connection pool and one
//! [`RateBudget`], and [`HubSpotClient::new`] takes the budget from
//! [`LocalBudget::shared`], so every client of one token in the process shares the
//! token's rate. Inside: `wire` knows HubSpot's shapes, error envelope and
//! rate-limit headers (pure, unit-tested); the shared `transport` paces, sends,
//! reports and retries; this file maps the trait onto the endpoints.
//!
//! # Which id is the user's
//!
//! [`CrmUser::id`] is the **owner id**: the worker compares it with records'
//! owners and sends it as `new_owner`, and HubSpot only accepts owner ids in
//! `hubspot_owner_id` (a user id "will result in an error if it is used to
//! assign ownership"). The settings-API user id is not encoded into the
//! [`CrmId`]: it is looked up from the owner (`userId`, or
//! `userIdIncludingInactive` once the user is deactivated) where a seat call
//! needs it, in [`Crm::change_seat`] and when reading whether a user is an admin
//! or was removed. One extra read per seat change keeps ids opaque and stable
//! across audit trails and checkpoints, and it can't go stale: a user id baked
//! into the id would be wrong for an owner whose user is re-invited.
//!
//! # Facts relied on, and where they come from
//!
//! Paths are below `https://api.hubapi.com` (`crm.base_url`).
//!
//! - Auth: a private app's access token as `Authorization: Bearer <token>`.
//!   <https://developers.hubspot.com/docs/api-reference/settings-user-provisioning-v3/users/delete-settings-v3-users-userId>
//!   (every reference page shows `--header 'Authorization: Bearer <token>'`).
//! - Owners: `GET /crm/v3/owners?email=&after=&limit=&archived=` and `GET
//!   /crm/v3/owners/{ownerId}?idProperty=id|userId&archived=`; `archived`
//!   returns *only* archived owners, so both kinds take two calls. An owner has
//!   `id` (to assign records), `userId` (for the settings API; "will result in
//!   an error if it is used to assign ownership"), `userIdIncludingInactive`,
//!   `email`, `firstName`, `lastName`, `archived`, `updatedAt`.
//!   <https://developers.hubspot.com/docs/api-reference/crm-crm-owners-v3/guide>;
//!   parameters and fields from hubspot-api-nodejs
//!   `codegen/crm/owners/apis/OwnersApi.ts`, `models/PublicOwner.ts`.
//! - Users: `GET /settings/v3/users/{userId}` (`idProperty=USER_ID|EMAIL`), `GET
//!   /settings/v3/users?limit=&after=` ("maximum 100 users per page"), `DELETE
//!   /settings/v3/users/{userId}` ("Removes a user", no body), scopes
//!   `settings.users.read`/`settings.users.write`. A user has `id`, `email`,
//!   `superAdmin` and roles/teams, and no active flag.
//!   <https://developers.hubspot.com/docs/api-reference/legacy/account/settings/user-provisioning/users/delete-user>;
//!   hubspot-api-nodejs `codegen/settings/users/apis/UsersApi.ts`,
//!   `models/PublicUser.ts`.
//! - Deactivation and reactivation are UI actions (Settings › Users & Teams ›
//!   Actions › Deactivate/Reactivate user); "The user must be deactivated before
//!   you can fully remove them" in the UI.
//!   <https://knowledge.hubspot.com/user-management/deactivate-hubspot-users>
//!   No API for them was found, so both are [`SeatAbility::Manual`].
//! - Search: `POST /crm/v3/objects/{objectType}/search` with `filterGroups`
//!   (filters `propertyName`/`operator`/`value`), `sorts`, `properties`,
//!   `limit` and `after`; answers `total`, `results`, `paging.next.after`.
//!   <https://developers.hubspot.com/docs-beta/crm/search>; request and response
//!   models `PublicObjectSearchRequest.ts`,
//!   `CollectionResponseWithTotalSimplePublicObjectForwardPaging.ts`. At most
//!   10,000 results per query ("Any partition having more than 10,000 records
//!   will result in a 400 error",
//!   <https://docs.aws.amazon.com/glue/latest/dg/hubspot-connector-limitations.md>,
//!   pointing at HubSpot's search "Limitations"), and the search endpoints have
//!   their own per-second limit (4–5 requests per second,
//!   <https://developers.hubspot.com/changelog/crm-search-api-rate-limit-increase>).
//! - Batch update: `POST /crm/v3/objects/{objectType}/batch/update` `{"inputs":
//!   [{"id","properties":{…}}]}`; "a 200 when batch updates are fully successful
//!   or a 207 Multi-Status response when one or more of the batch operations
//!   fails" <https://developers.hubspot.com/changelog/simplifying-batch-update-response-codes-for-crm-v3-apis>;
//!   the answer has `status`, `results[]`, `numErrors`, `errors[]`
//!   (`StandardError`: `status`, `category`, `message`, `context` (string
//!   lists), `id`, `errors`) (`BatchResponseSimplePublicObjectWithErrors.ts`,
//!   `StandardError.ts`). 100 inputs per batch: DESIGN.md §9 and
//!   <https://apis.io/rate-limits/hubspot/hubspot-rate-limits/> ("Batch
//!   endpoints … objects_per_request 100").
//! - Tasks: `POST /crm/v3/objects/tasks` with `properties` `hs_timestamp`
//!   ("Required … the task's due date", Unix ms or UTC), `hs_task_body`,
//!   `hubspot_owner_id` ("The owner ID"), `hs_task_subject`, `hs_task_status`
//!   (`COMPLETED`, `NOT_STARTED`, and `WAITING` in the example), `hs_task_type`
//!   (`TODO`, …). <https://developers.hubspot.com/docs/api/crm/tasks>
//! - Tickets: the `tickets` object searched like the others; a ticket's status
//!   is its `hs_pipeline_stage` (a stage id), and whether a stage is closed is
//!   its `metadata.ticketState` (`OPEN` or `CLOSED`) in `GET
//!   /crm/v3/pipelines/tickets` (`results[].stages[].{id,metadata}`).
//!   <https://developers.hubspot.com/docs/api/crm/tickets> ("Tickets are tracked
//!   through your support process in pipeline statuses until they're closed";
//!   `hs_pipeline_stage` is "the ticket's status"),
//!   <https://developers.hubspot.com/docs/api-reference/legacy/crm/pipelines/get-pipeline>
//!   (stages with `"metadata": {"ticketState": "CLOSED"}`). The pipelines are
//!   read once per listing, and only when the leaver owns tickets.
//! - Errors: `{"status":"error","message":…,"errors":[{"message","in"}],
//!   "category":"VALIDATION_ERROR","correlationId":…}`, every field optional.
//!   <https://developers.hubspot.com/docs/faq/api-error-responses>;
//!   `category` e.g. `RATE_LIMITS`, `VALIDATION_ERROR`
//!   (<https://developers.hubspot.com/changelog/upcoming-changes-to-error-responses>);
//!   401 bad auth, 403 missing scope, 207 multi-status
//!   (<https://developers.hubspot.com/docs/api-reference/error-handling>).
//! - Rate limits: per app 100 (Free/Starter) or 190 (Professional/Enterprise)
//!   requests per 10 seconds, plus a daily allowance per account that resets at
//!   midnight in the account's time zone; a 429 carries `policyName` (`DAILY`,
//!   `SECONDLY`…); headers `X-HubSpot-RateLimit-Daily`, `-Daily-Remaining`
//!   (not with OAuth), `-Interval-Milliseconds`, `-Max`, `-Remaining`.
//!   <https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines>
//!
//! Not confirmed by any source found, and what this client does about it:
//! - `hs_is_closed` ("True if the deal was won or lost") is read from client
//!   code, not HubSpot's docs; a deal without it is taken as open.
//! - The shape of a per-record batch error: the ids are read from `context.ids`
//!   or `id`; an id the answer does not mention is a transient failure, so the
//!   worker retries rather than counting it as moved. A whole batch refused with
//!   400 `VALIDATION_ERROR` (an owner HubSpot does not accept) rejects every
//!   record in it.
//! - That an archived owner whose settings user answers 404 was removed (it
//!   reads as deleted), and that a deactivated user's owner keeps only
//!   `userIdIncludingInactive` (it reads as inactive).
//! - Whether `DELETE /settings/v3/users` needs the user deactivated first, as
//!   the UI does; if HubSpot refuses, the error reaches the worker unchanged.
//! - Cutting a big book into `hs_object_id GT <last id>` partitions (sorted
//!   ascending) to stay under the 10,000 cap: a common practice, not a
//!   documented recipe.
//! - Which user a private-app token acts as: HubSpot names none, so
//!   [`Crm::token_user`] answers `None`.

mod wire;

pub use self::wire::read_every_answer;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use async_trait::async_trait;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use self::wire::{
    BatchResponse, COMPLETED, Filter, ID_PROPERTY, Lookup, NewTaskBody, OWNER_PROPERTY, ObjectType,
    Owner, Page, Pipelines, RawObject, SettingsUser, TASK_STATUS, TaskProperties,
};
use super::{
    contract::{
        Crm, CrmError, NewTask, Record, WriteOutcome, resource_unsupported, seat_change_unsupported,
    },
    pacing::{LocalBudget, RateBudget},
    settings::ClientSettings,
    transport::{
        Auth, Call, ClientBuildError, Dialect, Transport, budget_key, decode, normalize_base,
    },
};
use crate::{
    config::Secret,
    domain::{Capabilities, CrmId, CrmUser, Resource, SeatAbility, SeatChange},
};

/// What HubSpot can do (DESIGN.md §9): `DELETE /settings/v3/users/{userId}`
/// removes a user by API; deactivating and reactivating are the admin's (no API
/// for them was found); 100 records per `batch/update`; users have no manager;
/// companies are offboard's organizations; tickets are offboard's tickets. No
/// leads.
pub const CAPABILITIES: Capabilities = Capabilities {
    name: "HubSpot",
    seat_admin_path: "Settings › Users & Teams",
    deactivate: SeatAbility::Manual,
    delete: SeatAbility::Api,
    reactivate: SeatAbility::Manual,
    records_per_write: BATCH_MAX,
    mixed_writes: false,
    write_verb: "POST",
    manager_field: false,
    resources: &[
        Resource::Contacts,
        Resource::Organizations,
        Resource::Deals,
        Resource::Tasks,
        Resource::Tickets,
    ],
};

const DIALECT: Dialect = Dialect {
    vendor: "HubSpot",
    error_for: wire::error_for,
    retry_after: wire::retry_after,
    quota_pause: wire::quota_pause,
};

/// Inputs per `batch/update` call.
const BATCH_MAX: usize = 100;

/// Search page size (HubSpot's maximum for search).
const SEARCH_LIMIT: u32 = 200;

/// Results one search query can page through.
const SEARCH_CAP: u64 = 10_000;

/// Owners and settings users per page (the users API's maximum; the owners
/// API's default).
const LIST_LIMIT: u32 = 100;

/// A guard against a server that never stops saying "more".
const MAX_PAGES: u32 = 10_000;

/// A HubSpot API client. Clones share everything, including the rate budget.
#[derive(Debug, Clone)]
pub struct HubSpotClient {
    transport: Arc<Transport>,
}

impl HubSpotClient {
    /// A client of the HubSpot API at `base_url` (`https://api.hubapi.com`),
    /// pacing through the process-wide budget of this token.
    pub fn new(
        base_url: &str,
        token: Secret,
        settings: ClientSettings,
    ) -> Result<Self, ClientBuildError> {
        let base = normalize_base(DIALECT.vendor, base_url)?;
        let budget = LocalBudget::shared(&budget_key(&base, &token), settings.budget());
        Self::with_budget(&base, token, settings, budget)
    }

    /// Like [`Self::new`], with a budget of the caller's (one shared between
    /// processes, or a test's own).
    pub fn with_budget(
        base_url: &str,
        token: Secret,
        settings: ClientSettings,
        budget: Arc<dyn RateBudget>,
    ) -> Result<Self, ClientBuildError> {
        let base = normalize_base(DIALECT.vendor, base_url)?;
        let transport = Transport::new(base, &token, Auth::Bearer, settings, budget, DIALECT)?;
        Ok(Self {
            transport: Arc::new(transport),
        })
    }

    /// The rate budget this client paces through.
    pub fn budget(&self) -> &Arc<dyn RateBudget> {
        &self.transport.budget
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &ClientSettings {
        &self.transport.settings
    }

    async fn get<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        path: String,
        query: Vec<(&'static str, String)>,
    ) -> Result<T, CrmError> {
        self.transport
            .fetch(&Call::get(endpoint, path, query))
            .await
    }

    /// A `POST` that changes nothing twice: a search, or an owner write (the
    /// same owner set again is the same state), so the transport may retry it.
    async fn post_repeatable(
        &self,
        endpoint: &'static str,
        path: String,
        body: Value,
    ) -> Result<Vec<u8>, CrmError> {
        let call = Call::with_body(Method::POST, endpoint, path, body).repeatable();
        self.transport.execute(&call).await
    }

    /// Every owner (active, or archived only), optionally those with `email`.
    async fn owners(&self, archived: bool, email: Option<&str>) -> Result<Vec<Owner>, CrmError> {
        let mut owners = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut q = vec![
                ("limit", LIST_LIMIT.to_string()),
                ("archived", archived.to_string()),
            ];
            if let Some(e) = email {
                q.push(("email", e.to_owned()));
            }
            if let Some(a) = &after {
                q.push(("after", a.clone()));
            }
            let page: Page<Owner> = self
                .get("/crm/v3/owners", "/crm/v3/owners".to_owned(), q)
                .await?;
            let next = page.next_after();
            owners.extend(page.results);
            match next {
                Some(n) if after.as_deref() != Some(n.as_str()) => after = Some(n),
                _ => return Ok(owners),
            }
        }
        Err(too_many_pages("/crm/v3/owners"))
    }

    /// One owner by owner id, active first, then archived; `None` when HubSpot
    /// has neither.
    async fn owner(&self, id: &CrmId) -> Result<Option<Owner>, CrmError> {
        // Owner ids are numbers: anything else names nobody and must not reach
        // another path.
        let Some(n) = id.as_i64().filter(|n| *n > 0) else {
            return Ok(None);
        };
        for archived in [false, true] {
            let query = vec![
                ("idProperty", "id".to_owned()),
                ("archived", archived.to_string()),
            ];
            match self
                .get::<Owner>("/crm/v3/owners/:id", format!("/crm/v3/owners/{n}"), query)
                .await
            {
                Ok(owner) => return Ok(Some(owner)),
                Err(CrmError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// What the settings API says about the user behind `owner`.
    async fn settings_user(&self, owner: &Owner) -> Result<Lookup<SettingsUser>, CrmError> {
        let Some(n) = owner.user().and_then(CrmId::as_i64).filter(|n| *n > 0) else {
            return Ok(Lookup::Unknown);
        };
        match self
            .get::<SettingsUser>(
                "/settings/v3/users/:id",
                format!("/settings/v3/users/{n}"),
                vec![],
            )
            .await
        {
            Ok(user) => Ok(Lookup::Found(user)),
            Err(CrmError::NotFound(_)) => Ok(Lookup::Gone),
            Err(e) => Err(e),
        }
    }

    /// The seat behind `owner`, with what the settings API says about its user.
    async fn user_of(&self, owner: Owner) -> Result<CrmUser, CrmError> {
        let lookup = self.settings_user(&owner).await?;
        let lookup = match &lookup {
            Lookup::Found(u) => Lookup::Found(u),
            Lookup::Gone => Lookup::Gone,
            Lookup::Unknown => Lookup::Unknown,
        };
        Ok(owner.into_user(lookup))
    }

    /// Every settings user, by user id.
    async fn settings_users(&self) -> Result<HashMap<CrmId, SettingsUser>, CrmError> {
        let mut users = HashMap::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut q = vec![("limit", LIST_LIMIT.to_string())];
            if let Some(a) = &after {
                q.push(("after", a.clone()));
            }
            let page: Page<SettingsUser> = self
                .get("/settings/v3/users", "/settings/v3/users".to_owned(), q)
                .await?;
            let next = page.next_after();
            users.extend(page.results.into_iter().map(|u| (u.id.clone(), u)));
            match next {
                Some(n) if after.as_deref() != Some(n.as_str()) => after = Some(n),
                _ => return Ok(users),
            }
        }
        Err(too_many_pages("/settings/v3/users"))
    }

    /// Every record of `kind` matching `filters`, however many: pages of
    /// [`SEARCH_LIMIT`] ascending by id, and once a query would page past the
    /// [`SEARCH_CAP`] HubSpot allows, a new query for the ids above the last one
    /// seen.
    async fn search_all(
        &self,
        kind: ObjectType,
        filters: &[Filter],
    ) -> Result<Vec<RawObject>, CrmError> {
        let path = format!("/crm/v3/objects/{}/search", kind.path());
        let mut items = Vec::new();
        let mut floor: Option<i64> = None;
        let mut pages = 0u32;
        loop {
            let mut query = filters.to_vec();
            if let Some(f) = floor {
                query.push(Filter {
                    property: ID_PROPERTY,
                    operator: "GT",
                    value: f.to_string(),
                });
            }
            let mut after: Option<String> = None;
            let mut in_query: u64 = 0;
            let mut highest = floor;
            loop {
                pages += 1;
                if pages > MAX_PAGES {
                    return Err(too_many_pages("/crm/v3/objects/:type/search"));
                }
                let body =
                    wire::search_body(&query, kind.properties(), SEARCH_LIMIT, after.as_deref());
                let raw = self
                    .post_repeatable("/crm/v3/objects/:type/search", path.clone(), body)
                    .await?;
                let page: Page<RawObject> = decode(&search_call(&path), &raw)?;
                let next = page.next_after();
                let got = page.results.len() as u64;
                in_query += got;
                for r in page.results {
                    if let Some(n) = r.id.as_i64() {
                        highest = Some(highest.map_or(n, |h| h.max(n)));
                    }
                    items.push(r);
                }
                match next {
                    None => return Ok(items),
                    // An empty page that still says "more", or the same cursor
                    // again, would loop forever.
                    Some(_) if got == 0 => return Ok(items),
                    Some(n) if after.as_deref() == Some(n.as_str()) => return Ok(items),
                    // The next page would start at or past the cap: HubSpot would
                    // refuse it, so the next query starts above the last id.
                    Some(_) if in_query + u64::from(SEARCH_LIMIT) > SEARCH_CAP => break,
                    Some(n) => after = Some(n),
                }
            }
            if highest == floor {
                // No id moved the floor up (ids that aren't numbers): another
                // query would return the same records.
                return Err(CrmError::Permanent {
                    status: 200,
                    code: "too_many_pages".to_owned(),
                    message: format!(
                        "{path}: more than {SEARCH_CAP} results and no numeric id to partition on"
                    ),
                });
            }
            floor = highest;
        }
    }
}

fn search_call(path: &str) -> Call {
    Call::with_body(
        Method::POST,
        "/crm/v3/objects/:type/search",
        path.to_owned(),
        Value::Null,
    )
}

#[async_trait]
impl Crm for HubSpotClient {
    fn capabilities(&self) -> &Capabilities {
        &CAPABILITIES
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<CrmUser>, CrmError> {
        let wanted = email.trim();
        if wanted.is_empty() {
            return Ok(None);
        }
        // Active owners first; a leaver already deactivated or removed in the UI
        // is only among the archived ones, and must still be found (to reassign
        // what they own and to verify the seat).
        for archived in [false, true] {
            let owners = self.owners(archived, Some(wanted)).await?;
            // The email filter's matching rules are not documented: the exact
            // address is picked here.
            let found = owners
                .into_iter()
                .filter(|o| {
                    o.email
                        .as_deref()
                        .is_some_and(|e| e.trim().eq_ignore_ascii_case(wanted))
                })
                // Should two owners share the address, the one with an active
                // user is the person.
                .min_by_key(|o| (o.user_id.is_none(), o.id.as_i64(), o.id.clone()));
            if let Some(owner) = found {
                return self.user_of(owner).await.map(Some);
            }
        }
        Ok(None)
    }

    async fn get_user(&self, id: &CrmId) -> Result<Option<CrmUser>, CrmError> {
        match self.owner(id).await? {
            Some(owner) => self.user_of(owner).await.map(Some),
            None => Ok(None),
        }
    }

    async fn list_users(&self) -> Result<Vec<CrmUser>, CrmError> {
        let mut owners = self.owners(false, None).await?;
        owners.extend(self.owners(true, None).await?);
        let settings = self.settings_users().await?;
        Ok(owners
            .into_iter()
            .map(|o| {
                let lookup = match o.user() {
                    Some(uid) => settings.get(uid).map_or(Lookup::Gone, Lookup::Found),
                    None => Lookup::Unknown,
                };
                o.into_user(lookup)
            })
            .collect())
    }

    async fn token_user(&self) -> Result<Option<CrmId>, CrmError> {
        // A private app's token belongs to the app, not to a user: HubSpot names
        // no user it acts as, so there is no seat of our own to protect.
        Ok(None)
    }

    async fn list_owned(&self, resource: Resource, owner: &CrmId) -> Result<Vec<Record>, CrmError> {
        let Some(kind) = object_type(resource) else {
            return Ok(vec![]);
        };
        // Open or not, as the trait asks: `open_only` is the worker's to apply.
        let filters = [owner_filter(owner)];
        let raw = self.search_all(kind, &filters).await?;
        let closed_ticket_stages = if kind == ObjectType::Tickets && !raw.is_empty() {
            let pipelines: Pipelines = self
                .get(
                    "/crm/v3/pipelines/tickets",
                    "/crm/v3/pipelines/tickets".to_owned(),
                    vec![],
                )
                .await?;
            wire::closed_ticket_stages(&pipelines)
        } else {
            HashSet::new()
        };
        Ok(raw
            .into_iter()
            .map(|r| Record {
                open: r.is_open(kind, &closed_ticket_stages),
                owner_id: r.owner().unwrap_or_else(|| owner.clone()),
                id: r.id,
            })
            .collect())
    }

    async fn reassign(
        &self,
        resource: Resource,
        ids: &[CrmId],
        new_owner: &CrmId,
    ) -> Result<Vec<WriteOutcome>, CrmError> {
        let Some(kind) = object_type(resource) else {
            return Err(resource_unsupported(&CAPABILITIES, resource));
        };
        if ids.len() > BATCH_MAX {
            return Err(CrmError::Permanent {
                status: 0,
                code: "too_many_records".to_owned(),
                message: format!(
                    "{} records in one HubSpot batch; at most {BATCH_MAX}",
                    ids.len()
                ),
            });
        }
        // Record ids are numbers; another id would make HubSpot refuse the
        // whole batch, so it is answered here and left out.
        let (sendable, invalid): (Vec<&CrmId>, Vec<&CrmId>) = ids
            .iter()
            .partition(|id| id.as_i64().is_some_and(|n| n > 0));
        let mut outcomes: HashMap<CrmId, Result<(), CrmError>> = invalid
            .into_iter()
            .map(|id| {
                let e = CrmError::Permanent {
                    status: 0,
                    code: "invalid_id".to_owned(),
                    message: format!("{id:?} is not a HubSpot record id"),
                };
                (id.clone(), Err(e))
            })
            .collect();
        if !sendable.is_empty() {
            let batch: Vec<CrmId> = sendable.into_iter().cloned().collect();
            let path = format!("/crm/v3/objects/{}/batch/update", kind.path());
            let answer = self
                .post_repeatable(
                    "/crm/v3/objects/:type/batch/update",
                    path.clone(),
                    wire::owner_batch(&batch, new_owner),
                )
                .await
                .map_err(wire::refusal);
            match answer {
                Ok(raw) => {
                    let call = Call::with_body(
                        Method::POST,
                        "/crm/v3/objects/:type/batch/update",
                        path,
                        Value::Null,
                    );
                    let answer: BatchResponse = decode(&call, &raw)?;
                    for o in wire::batch_outcomes(&batch, &answer) {
                        outcomes.insert(o.id, o.result);
                    }
                }
                // HubSpot refused the batch's data (the new owner): every record
                // in it is refused alike, and the worker tries the fallback owner.
                Err(e @ CrmError::Rejected { .. }) => {
                    for id in batch {
                        outcomes.insert(id, Err(e.clone()));
                    }
                }
                // Auth, scope, budget or an outage: the call fails as a whole and
                // the worker retries it.
                Err(e) => return Err(e),
            }
        }
        Ok(ids
            .iter()
            .map(|id| WriteOutcome {
                id: id.clone(),
                result: outcomes.remove(id).unwrap_or_else(|| {
                    Err(CrmError::Transient(format!(
                        "no outcome for record {id} (sent twice in one batch?)"
                    )))
                }),
            })
            .collect())
    }

    async fn change_seat(&self, user: &CrmId, change: SeatChange) -> Result<(), CrmError> {
        if change != SeatChange::Delete {
            return Err(seat_change_unsupported(&CAPABILITIES, change));
        }
        let Some(owner) = self.owner(user).await? else {
            return Err(CrmError::NotFound(format!("HubSpot has no owner {user}")));
        };
        let Some(n) = owner.user().and_then(CrmId::as_i64).filter(|n| *n > 0) else {
            return Err(CrmError::Permanent {
                status: 0,
                code: "no_user".to_owned(),
                message: format!("HubSpot owner {user} has no user to remove"),
            });
        };
        let call = Call {
            method: Method::DELETE,
            endpoint: "/settings/v3/users/:id",
            path: format!("/settings/v3/users/{n}"),
            query: vec![],
            body: None,
            repeatable: false,
        };
        match self.transport.execute(&call).await {
            Ok(_) => Ok(()),
            // Already removed (a retried DELETE whose first attempt arrived): the
            // state asked for holds, and reading the user back verifies it.
            Err(CrmError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn create_task(&self, task: &NewTask) -> Result<CrmId, CrmError> {
        let body = NewTaskBody {
            properties: TaskProperties {
                hs_task_subject: wire::subject_of(&task.content),
                hs_task_body: &task.content,
                hs_timestamp: wire::task_timestamp(task.due_date.as_deref(), chrono::Utc::now()),
                hubspot_owner_id: task.owner_id.as_str(),
                hs_task_status: "NOT_STARTED",
                hs_task_type: "TODO",
            },
        };
        let body = serde_json::to_value(&body).map_err(|e| CrmError::Permanent {
            status: 0,
            code: "invalid_body".to_owned(),
            message: format!("cannot write a task: {e}"),
        })?;
        // Not repeatable: a second POST would create a second task. The
        // transport retries only what certainly did not arrive; otherwise the
        // caller looks for the task (find_task) before trying again.
        let call = Call::with_body(
            Method::POST,
            "/crm/v3/objects/tasks",
            "/crm/v3/objects/tasks".to_owned(),
            body,
        );
        let created: RawObject = self.transport.fetch(&call).await?;
        Ok(created.id)
    }

    async fn find_task(&self, owner: &CrmId, marker: &str) -> Result<Option<CrmId>, CrmError> {
        // Open tasks first, and completed ones only if no open one matches: an
        // admin's completed tasks pile up over the years, and each page costs
        // budget. A completed one still proves the task was created.
        for operator in ["NEQ", "EQ"] {
            let filters = [
                owner_filter(owner),
                Filter {
                    property: TASK_STATUS,
                    operator,
                    value: COMPLETED.to_owned(),
                },
            ];
            let tasks = self.search_all(ObjectType::Tasks, &filters).await?;
            let found = tasks
                .into_iter()
                .filter(|t| t.mentions(marker))
                // The oldest, comparing ids as numbers ("9" before "10").
                .min_by_key(|t| (t.id.as_i64(), t.id.clone()));
            if let Some(t) = found {
                return Ok(Some(t.id));
            }
        }
        Ok(None)
    }
}

/// HubSpot's object type for each resource offboard knows; `None` for leads.
fn object_type(resource: Resource) -> Option<ObjectType> {
    match resource {
        Resource::Contacts => Some(ObjectType::Contacts),
        Resource::Organizations => Some(ObjectType::Companies),
        Resource::Deals => Some(ObjectType::Deals),
        Resource::Tasks => Some(ObjectType::Tasks),
        Resource::Tickets => Some(ObjectType::Tickets),
        Resource::Leads => None,
    }
}

fn owner_filter(owner: &CrmId) -> Filter {
    Filter {
        property: OWNER_PROPERTY,
        operator: "EQ",
        value: owner.as_str().to_owned(),
    }
}

fn too_many_pages(endpoint: &str) -> CrmError {
    CrmError::Permanent {
        status: 200,
        code: "too_many_pages".to_owned(),
        message: format!("{endpoint} still had more after {MAX_PAGES} pages"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserStatus;

    #[test]
    fn capabilities_say_what_hubspot_can_do() {
        assert_eq!(CAPABILITIES.ability(SeatChange::Delete), SeatAbility::Api);
        assert_eq!(
            CAPABILITIES.ability(SeatChange::Deactivate),
            SeatAbility::Manual
        );
        assert_eq!(
            CAPABILITIES.ability(SeatChange::Reactivate),
            SeatAbility::Manual
        );
        assert_eq!(CAPABILITIES.records_per_write, 100);
        assert_eq!(CAPABILITIES.write_verb, "POST");
        const { assert!(!CAPABILITIES.manager_field) };
        assert!(!CAPABILITIES.has(Resource::Leads));
        for r in [
            Resource::Contacts,
            Resource::Organizations,
            Resource::Deals,
            Resource::Tasks,
            Resource::Tickets,
        ] {
            assert!(CAPABILITIES.has(r), "{r}");
            assert!(object_type(r).is_some(), "{r}");
        }
        assert_eq!(
            object_type(Resource::Organizations).map(ObjectType::path),
            Some("companies")
        );
        assert_eq!(object_type(Resource::Leads), None);
    }

    #[test]
    fn the_active_status_is_what_the_owner_says() {
        // Guards the mapping the worker relies on: an owner with a user id reads
        // active, one without reads inactive.
        let o: Owner = serde_json::from_str(r#"{"id":"5","userId":50}"#).unwrap();
        assert_eq!(o.into_user(Lookup::Unknown).status, UserStatus::Active);
    }

    #[test]
    fn bad_tokens_are_refused_without_echoing_them() {
        let s = ClientSettings::default();
        let e = HubSpotClient::new("https://x", Secret::new("  ".into()), s.clone()).unwrap_err();
        assert!(matches!(e, ClientBuildError::Token { .. }));
        let e = HubSpotClient::new("https://x", Secret::new("abc\ndef".into()), s).unwrap_err();
        assert!(!e.to_string().contains("abc"), "{e}");
    }

    #[test]
    fn one_budget_per_token_and_base() {
        let s = ClientSettings::default();
        let new = |base: &str, token: &str| {
            HubSpotClient::new(base, Secret::new(token.into()), s.clone()).unwrap()
        };
        let a = new("https://hs-budget-test.invalid", "t1");
        let b = new("https://hs-budget-test.invalid/", "t1");
        let c = new("https://hs-budget-test.invalid", "t2");
        assert!(Arc::ptr_eq(a.budget(), b.budget()));
        assert!(!Arc::ptr_eq(a.budget(), c.budget()));
    }
}
