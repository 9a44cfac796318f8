//! Pipedrive behind the [`Crm`](super::Crm) trait (`[crm] kind = "pipedrive"`).
//!
//! Zendesk names Pipedrive as Sell's migration partner (DESIGN.md §9), so offboard
//! must offboard there too. Pipedrive differs from Sell where it matters to the
//! worker: users can be deactivated by API (`active_flag`, the only writable user
//! field) but never deleted; leads are UUIDs on the v1 API while every other object
//! is numbered on v2; lists page two ways (v2 cursor, v1 offset); and the token's
//! budget is a 2-second burst window plus a daily allowance, announced in headers.
//!
//! [`PipedriveClient`] is cheap to clone; clones share one connection pool and one
//! [`RateBudget`], and [`PipedriveClient::new`] takes the budget from
//! [`LocalBudget::shared`], so every client of one token in the process shares the
//! token's rate. Inside: `wire` knows Pipedrive's envelopes, error conventions and
//! rate-limit headers (pure, unit-tested); the shared `transport` paces, sends,
//! reports and retries; this file maps the trait onto the endpoints.
//!
//! This module never decides what to reassign or to whom, never deletes a user
//! (Pipedrive can't), and never retries an activity creation that may have reached
//! Pipedrive.
//!
//! # Facts relied on, and where they come from
//!
//! Paths are below the company domain (`https://<company>.pipedrive.com`), where
//! Pipedrive wants `/api/v1` and `/api/v2` (client-nodejs CHANGELOG: "Use /api/v1
//! path when accessing the API using company domain").
//!
//! - Auth: `x-api-token: <token>` header (client-nodejs 27.0.0: "Send token in the
//!   `x-api-token` header instead of `api_token` query parameter"; every generated
//!   operation calls `setApiKeyToObject(…, "x-api-token", …)`).
//!   <https://github.com/pipedrive/client-nodejs/blob/master/CHANGELOG.md>
//! - Users (`src/versions/v1/api/users-api.ts`, `models/base-user.ts`):
//!   `GET /v1/users/find?term=&search_by_email=1` (a substring search, so the exact
//!   address is picked here; `data` is `null` when nothing matches); `GET
//!   /v1/users/{id}`; `GET /v1/users` (all users, active and not, no paging
//!   parameters); `GET /v1/users/me`; `PUT /v1/users/{id}` `{"active_flag":bool}`
//!   ("Currently, only `active_flag` can be updated"). A user has `id`, `name`,
//!   `email`, `active_flag`, `is_deleted`, and `access: [{app, admin,
//!   permission_set_id}]`; `is_admin` (1/0) is deprecated in favour of `access`
//!   but still read. <https://developers.pipedrive.com/docs/api/v1/Users>
//! - v2 lists (`src/versions/v2/api/{deals,persons,organizations,activities}-api.ts`):
//!   `GET /api/v2/{deals|persons|organizations|activities}?owner_id=` with `cursor`
//!   and `limit` ("a maximum value of 500"), next page in
//!   `additional_data.next_cursor` (`null` at the end). Deals take `status=open|
//!   won|lost|deleted` (omitted: all but deleted), activities `done=`. v2 deals
//!   exclude archived deals. v1 deals/persons/organizations/activities are gone
//!   from the SDK since 32.0.0. <https://pipedrive.readme.io/docs/core-api-concepts-pagination>
//! - Leads (`src/versions/v1/api/leads-api.ts`, `models/lead.ts`): `GET
//!   /v1/leads?owner_id=&start=&limit=` returns only non-archived leads
//!   (`archived_status` was removed, 26.0.0); ids are UUIDs; `owner_id`,
//!   `is_archived`; paging by `additional_data` `more_items_in_collection` (and
//!   `next_start`), nested in `pagination` or flat. Owner change: `PATCH
//!   /v1/leads/{id}` `{"owner_id":N}` (PATCH, not PUT).
//! - Owner changes of v2 objects: `PATCH /api/v2/{deals|persons|organizations|
//!   activities}/{id}` `{"owner_id":N}` (v2 renamed v1's `user_id` to `owner_id`).
//!   Without the "change owner" permission Pipedrive answers 403 "You do not have
//!   permission to change the owner."
//!   <https://developers.pipedrive.com/changelog/post/introducing-a-new-permission-changing-the-owner-of-an-entity>
//! - Activities: `POST /api/v2/activities` with `subject`, `owner_id`, `due_date`
//!   (`YYYY-MM-DD`), `note`, optional `type` (left out: the account's default);
//!   an activity has `done`, `subject`, `note`.
//! - Errors: `{"success":false,"error":"…","error_info":"…","data":null,
//!   "additional_data":null}`, at times with `code` (a string) or `errorCode` (a
//!   number). <https://pipedrive.readme.io/docs/core-api-concepts-responses>
//!   Statuses: 400 request not understood, 401 invalid token, 402 account not
//!   open, 403 not allowed or a plan limit, 404 resource unavailable, 405, 410
//!   old resource permanently unavailable, 415 feature not enabled, 422 (webhooks
//!   limit), 429 rate limit, 500 server error, 501 non-existent functionality,
//!   503 maintenance. <https://pipedrive.readme.io/docs/core-api-concepts-http-status-codes>
//! - Rate limits: per token, a 2-second window, plus a daily token budget (costs
//!   per endpoint) that resets at the start of the day; `x-ratelimit-limit`,
//!   `x-ratelimit-remaining`, `x-ratelimit-reset` (seconds left in the window) on
//!   every answer, `x-daily-requests-left` for api_token writes; 429 when over.
//!   <https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting>
//!
//! Not confirmed by any source found: the status Pipedrive answers when the new
//! owner is deactivated (treated like any 400/422 on an owner change: the record is
//! rejected with Pipedrive's message), the maximum `limit` of `/v1/leads`, and
//! whether `/v1/users` ever pages (its answer's paging fields are honoured if sent).

mod wire;

pub use self::wire::read_every_answer;

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use serde::de::DeserializeOwned;

use self::wire::{
    Created, Me, NewActivity, OwnerChange, Page, RawRecord, RawUser, RecordKind, SeatFlag, Single,
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
    domain::{Capabilities, CrmId, CrmUser, Resource, SeatAbility, SeatChange, UserStatus},
};

/// What Pipedrive can do (DESIGN.md §9): `active_flag` deactivates and reactivates
/// a user by API, nothing deletes one; one record per `PATCH`; users have no
/// manager; persons and organizations are separate objects.
pub const CAPABILITIES: Capabilities = Capabilities {
    name: "Pipedrive",
    seat_admin_path: "Settings › Manage users › Users and access",
    deactivate: SeatAbility::Api,
    delete: SeatAbility::Impossible,
    reactivate: SeatAbility::Api,
    records_per_write: 1,
    mixed_writes: false,
    write_verb: "PATCH",
    manager_field: false,
    resources: &[
        Resource::Leads,
        Resource::Contacts,
        Resource::Organizations,
        Resource::Deals,
        Resource::Tasks,
    ],
};

const DIALECT: Dialect = Dialect {
    vendor: "Pipedrive",
    error_for: wire::error_for,
    retry_after: wire::retry_after,
    quota_pause: wire::quota_pause,
};

/// The token travels in this header, never in the query (where the audit trail
/// and proxies' logs would keep it).
const TOKEN_HEADER: &str = "x-api-token";

/// v2 lists' maximum page size; fewer pages spend less of the daily budget.
const V2_LIMIT: u32 = 500;

/// `/v1/leads` page size (the v1 maximum third-party clients use; a smaller cap on
/// Pipedrive's side only means more pages, since paging follows what came back).
const LEADS_LIMIT: u32 = 500;

/// A guard against a server that never stops saying "more" (5,000,000 records).
const MAX_PAGES: u32 = 10_000;

/// A Pipedrive API client. Clones share everything, including the rate budget.
#[derive(Debug, Clone)]
pub struct PipedriveClient {
    transport: Arc<Transport>,
}

impl PipedriveClient {
    /// A client of the Pipedrive company domain at `base_url` (e.g.
    /// `https://acme.pipedrive.com`), pacing through the process-wide budget of
    /// this token.
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
        let auth = Auth::Header(TOKEN_HEADER);
        let transport = Transport::new(base, &token, auth, settings, budget, DIALECT)?;
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

    /// Sends `call` and reads the 2xx answer as `T`, unless Pipedrive's envelope
    /// says `success: false` despite the status.
    async fn read<T: DeserializeOwned>(&self, call: &Call) -> Result<T, CrmError> {
        let body = self.transport.execute(call).await?;
        if wire::says_unsuccessful(&body) {
            return Err(wire::unsuccessful(200, &body));
        }
        decode(call, &body)
    }

    /// Sends a write whose answer only matters as a verdict.
    async fn write(&self, call: &Call) -> Result<(), CrmError> {
        let body = self.transport.execute(call).await?;
        if wire::says_unsuccessful(&body) {
            return Err(wire::unsuccessful(200, &body));
        }
        Ok(())
    }

    /// Every item of a v2 list, following `next_cursor` to the last page.
    async fn cursor_pages<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        query: Vec<(&'static str, String)>,
    ) -> Result<Vec<T>, CrmError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut q = query.clone();
            q.push(("limit", V2_LIMIT.to_string()));
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let page: Page<T> = self
                .read(&Call::get(endpoint, endpoint.to_owned(), q))
                .await?;
            let next = page.next_cursor();
            items.extend(page.into_items());
            match next {
                // The same cursor again would fetch the same page forever.
                Some(n) if cursor.as_deref() != Some(n.as_str()) => cursor = Some(n),
                _ => return Ok(items),
            }
        }
        Err(too_many_pages(endpoint))
    }

    /// Every item of a v1 list, following `start` while Pipedrive says there are
    /// more. With `limit` `None` the first request carries no paging parameters
    /// (for endpoints that document none, like `/v1/users`).
    async fn offset_pages<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        query: Vec<(&'static str, String)>,
        limit: Option<u32>,
    ) -> Result<Vec<T>, CrmError> {
        let mut items = Vec::new();
        let mut start: u64 = 0;
        for _ in 0..MAX_PAGES {
            let mut q = query.clone();
            if limit.is_some() || start > 0 {
                q.push(("start", start.to_string()));
            }
            if let Some(limit) = limit {
                q.push(("limit", limit.to_string()));
            }
            let page: Page<T> = self
                .read(&Call::get(endpoint, endpoint.to_owned(), q))
                .await?;
            let next = page.next_start(start);
            items.extend(page.into_items());
            match next {
                Some(n) => start = n,
                None => return Ok(items),
            }
        }
        Err(too_many_pages(endpoint))
    }

    async fn users_matching(&self, term: &str) -> Result<Vec<CrmUser>, CrmError> {
        let users: Vec<RawUser> = self
            .offset_pages(
                "/api/v1/users/find",
                vec![
                    ("term", term.to_owned()),
                    ("search_by_email", "1".to_owned()),
                ],
                None,
            )
            .await?;
        Ok(users.into_iter().map(RawUser::into_user).collect())
    }
}

#[async_trait]
impl Crm for PipedriveClient {
    fn capabilities(&self) -> &Capabilities {
        &CAPABILITIES
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<CrmUser>, CrmError> {
        let wanted = email.trim();
        if wanted.is_empty() {
            return Ok(None);
        }
        // `/users/find` matches parts of addresses too (`ann@x` finds `joann@x`), so
        // the exact address is picked here.
        let pick = |users: Vec<CrmUser>| {
            let mut matching: Vec<CrmUser> = users
                .into_iter()
                .filter(|u| u.email.trim().eq_ignore_ascii_case(wanted))
                .collect();
            // Should two seats share the address, the active one is the person.
            matching.sort_by_key(|u| (u.status != UserStatus::Active, u.id.as_i64()));
            matching.into_iter().next()
        };
        if let Some(user) = pick(self.users_matching(wanted).await?) {
            return Ok(Some(user));
        }
        // Nothing promises the search ignores case; addresses are mostly stored
        // lower-case, so one more search is worth its cost when the input isn't.
        let lower = wanted.to_lowercase();
        if lower != wanted {
            return Ok(pick(self.users_matching(&lower).await?));
        }
        Ok(None)
    }

    async fn get_user(&self, id: &CrmId) -> Result<Option<CrmUser>, CrmError> {
        // Pipedrive numbers its users: any other id names nobody there.
        let Some(n) = id.as_i64() else {
            return Ok(None);
        };
        let call = Call::get("/api/v1/users/:id", format!("/api/v1/users/{n}"), vec![]);
        match self.read::<Single<RawUser>>(&call).await {
            Ok(single) => Ok(single.data.map(RawUser::into_user)),
            Err(CrmError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_users(&self) -> Result<Vec<CrmUser>, CrmError> {
        let users: Vec<RawUser> = self.offset_pages("/api/v1/users", vec![], None).await?;
        Ok(users.into_iter().map(RawUser::into_user).collect())
    }

    async fn token_user(&self) -> Result<Option<CrmId>, CrmError> {
        let call = Call::get("/api/v1/users/me", "/api/v1/users/me".to_owned(), vec![]);
        let me: Single<Me> = self.read(&call).await?;
        Ok(me.data.map(|m| m.id))
    }

    async fn list_owned(&self, resource: Resource, owner: &CrmId) -> Result<Vec<Record>, CrmError> {
        let Some((kind, endpoint, _)) = endpoints(resource) else {
            return Ok(Vec::new());
        };
        let owner_n = numeric_user(owner)?;
        let query = vec![("owner_id", owner_n.to_string())];
        // Open or not, as the trait asks: `open_only` is the worker's to apply, so
        // no `status=open`/`done=false` filter here.
        let raw: Vec<RawRecord> = if kind == RecordKind::Lead {
            self.offset_pages(endpoint, query, Some(LEADS_LIMIT))
                .await?
        } else {
            self.cursor_pages(endpoint, query).await?
        };
        Ok(raw
            .into_iter()
            .map(|r| Record {
                open: r.is_open(kind),
                owner_id: r.owner_id.clone().unwrap_or_else(|| owner.clone()),
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
        let Some((kind, list, endpoint)) = endpoints(resource) else {
            return Err(resource_unsupported(&CAPABILITIES, resource));
        };
        let owner_id = numeric_user(new_owner)?;
        let body =
            serde_json::to_value(OwnerChange { owner_id }).map_err(|e| CrmError::Permanent {
                status: 0,
                code: "invalid_body".to_owned(),
                message: format!("cannot write an owner change: {e}"),
            })?;
        let mut outcomes = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(path) = item_path(kind, list, id) else {
                outcomes.push(WriteOutcome {
                    id: id.clone(),
                    result: Err(invalid_id(kind, id)),
                });
                continue;
            };
            let call = Call::with_body(Method::PATCH, endpoint, path, body.clone());
            match self.write(&call).await.map_err(wire::refusal) {
                Ok(()) => outcomes.push(WriteOutcome {
                    id: id.clone(),
                    result: Ok(()),
                }),
                // This record is gone or refused; the others may still move.
                Err(e @ (CrmError::NotFound(_) | CrmError::Rejected { .. })) => {
                    outcomes.push(WriteOutcome {
                        id: id.clone(),
                        result: Err(e),
                    })
                }
                // Auth, permission, budget or an outage: every record would fail
                // alike, so the call fails and the worker retries it as a whole.
                Err(e) => return Err(e),
            }
        }
        Ok(outcomes)
    }

    async fn change_seat(&self, user: &CrmId, change: SeatChange) -> Result<(), CrmError> {
        let active_flag = match change {
            SeatChange::Deactivate => false,
            SeatChange::Reactivate => true,
            SeatChange::Delete => return Err(seat_change_unsupported(&CAPABILITIES, change)),
        };
        let n = numeric_user(user)?;
        let body =
            serde_json::to_value(SeatFlag { active_flag }).map_err(|e| CrmError::Permanent {
                status: 0,
                code: "invalid_body".to_owned(),
                message: format!("cannot write a seat change: {e}"),
            })?;
        let call = Call::with_body(
            Method::PUT,
            "/api/v1/users/:id",
            format!("/api/v1/users/{n}"),
            body,
        );
        self.write(&call).await
    }

    async fn create_task(&self, task: &NewTask) -> Result<CrmId, CrmError> {
        let owner_id = numeric_user(&task.owner_id)?;
        let activity = NewActivity {
            subject: wire::subject_of(&task.content),
            owner_id,
            due_date: task.due_date.as_deref().and_then(wire::due_day),
            note: &task.content,
        };
        let body = serde_json::to_value(&activity).map_err(|e| CrmError::Permanent {
            status: 0,
            code: "invalid_body".to_owned(),
            message: format!("cannot write an activity: {e}"),
        })?;
        let call = Call::with_body(
            Method::POST,
            "/api/v2/activities",
            "/api/v2/activities".to_owned(),
            body,
        );
        let created: Single<Created> = self.read(&call).await?;
        created
            .data
            .map(|c| c.id)
            .ok_or_else(|| CrmError::Permanent {
                status: 200,
                code: "unreadable_response".to_owned(),
                message: "POST /api/v2/activities answered without the new activity".to_owned(),
            })
    }

    async fn find_task(&self, owner: &CrmId, marker: &str) -> Result<Option<CrmId>, CrmError> {
        let owner_n = numeric_user(owner)?;
        // Open activities first, and done ones only if no open one matches: an
        // admin's done activities pile up over the years, and each page costs
        // budget. A done one still proves the task was created.
        for done in ["false", "true"] {
            let activities: Vec<RawRecord> = self
                .cursor_pages(
                    "/api/v2/activities",
                    vec![("owner_id", owner_n.to_string()), ("done", done.to_owned())],
                )
                .await?;
            let found = activities
                .into_iter()
                .filter(|a| a.is_deleted != Some(true) && a.mentions(marker))
                // The oldest, comparing ids as numbers ("9" before "10").
                .min_by_key(|a| (a.id.as_i64(), a.id.clone()));
            if let Some(a) = found {
                return Ok(Some(a.id));
            }
        }
        Ok(None)
    }
}

/// Where each resource lives: its kind, its list endpoint and its item endpoint
/// (the metrics' name for one record). Leads are on v1 (UUIDs), the rest on v2.
/// `None` for tickets: Pipedrive has no support objects.
fn endpoints(resource: Resource) -> Option<(RecordKind, &'static str, &'static str)> {
    Some(match resource {
        Resource::Leads => (RecordKind::Lead, "/api/v1/leads", "/api/v1/leads/:id"),
        Resource::Contacts => (RecordKind::Person, "/api/v2/persons", "/api/v2/persons/:id"),
        Resource::Organizations => (
            RecordKind::Organization,
            "/api/v2/organizations",
            "/api/v2/organizations/:id",
        ),
        Resource::Deals => (RecordKind::Deal, "/api/v2/deals", "/api/v2/deals/:id"),
        Resource::Tasks => (
            RecordKind::Activity,
            "/api/v2/activities",
            "/api/v2/activities/:id",
        ),
        Resource::Tickets => return None,
    })
}

/// The path of one record below `list`, or `None` when the id can't be one of
/// `kind`: ids are opaque, and one carrying `/` or `?` must not reach another
/// endpoint.
fn item_path(kind: RecordKind, list: &str, id: &CrmId) -> Option<String> {
    let ok = match kind {
        RecordKind::Lead => {
            let s = id.as_str();
            !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        }
        _ => id.as_i64().is_some_and(|n| n > 0),
    };
    ok.then(|| format!("{list}/{id}"))
}

fn invalid_id(kind: RecordKind, id: &CrmId) -> CrmError {
    CrmError::Permanent {
        status: 0,
        code: "invalid_id".to_owned(),
        message: format!("{id:?} is not a Pipedrive {kind:?} id"),
    }
}

/// Pipedrive user ids are numbers; the API takes nothing else for `owner_id`.
fn numeric_user(id: &CrmId) -> Result<i64, CrmError> {
    id.as_i64().ok_or_else(|| CrmError::Permanent {
        status: 0,
        code: "invalid_id".to_owned(),
        message: format!("{id:?} is not a Pipedrive user id (they are numbers)"),
    })
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

    #[test]
    fn capabilities_say_what_pipedrive_can_do() {
        assert_eq!(
            CAPABILITIES.ability(SeatChange::Deactivate),
            SeatAbility::Api
        );
        assert_eq!(
            CAPABILITIES.ability(SeatChange::Reactivate),
            SeatAbility::Api
        );
        assert_eq!(
            CAPABILITIES.ability(SeatChange::Delete),
            SeatAbility::Impossible
        );
        assert_eq!(CAPABILITIES.records_per_write, 1);
        const { assert!(!CAPABILITIES.manager_field) };
        assert!(
            Resource::ALL
                .iter()
                .all(|r| CAPABILITIES.has(*r) == (*r != Resource::Tickets))
        );
    }

    #[test]
    fn item_paths_only_for_ids_of_the_kind() {
        let path = |resource, id: &CrmId| {
            let (kind, list, _) = endpoints(resource).expect("a Pipedrive resource");
            item_path(kind, list, id)
        };
        let lead = CrmId::from("adf21080-0e10-11eb-879b-05d71fb426ec");
        assert_eq!(
            path(Resource::Leads, &lead).as_deref(),
            Some("/api/v1/leads/adf21080-0e10-11eb-879b-05d71fb426ec")
        );
        assert_eq!(
            path(Resource::Deals, &CrmId::from(5001)).as_deref(),
            Some("/api/v2/deals/5001")
        );
        assert_eq!(
            path(Resource::Tasks, &CrmId::from(7)).as_deref(),
            Some("/api/v2/activities/7")
        );
        assert_eq!(path(Resource::Deals, &lead), None);
        assert_eq!(path(Resource::Leads, &CrmId::from("../users/1")), None);
        assert_eq!(path(Resource::Contacts, &CrmId::from("1?x=2")), None);
        assert_eq!(path(Resource::Organizations, &CrmId::from(0)), None);
    }

    #[test]
    fn user_ids_must_be_numbers() {
        assert_eq!(numeric_user(&CrmId::from(17)).ok(), Some(17));
        assert!(matches!(
            numeric_user(&CrmId::from("abc")),
            Err(CrmError::Permanent { code, .. }) if code == "invalid_id"
        ));
    }

    #[test]
    fn bad_tokens_are_refused_without_echoing_them() {
        let s = ClientSettings::default();
        let e = PipedriveClient::new("https://x", Secret::new("  ".into()), s.clone()).unwrap_err();
        assert!(matches!(e, ClientBuildError::Token { .. }));
        let e = PipedriveClient::new("https://x", Secret::new("abc\ndef".into()), s).unwrap_err();
        assert!(!e.to_string().contains("abc"), "{e}");
    }

    #[test]
    fn one_budget_per_token_and_base() {
        let s = ClientSettings::default();
        let new = |base: &str, token: &str| {
            PipedriveClient::new(base, Secret::new(token.into()), s.clone()).unwrap()
        };
        let a = new("https://pd-budget-test.invalid", "t1");
        let b = new("https://pd-budget-test.invalid/", "t1");
        let c = new("https://pd-budget-test.invalid", "t2");
        assert!(Arc::ptr_eq(a.budget(), b.budget()));
        assert!(!Arc::ptr_eq(a.budget(), c.budget()));
        assert!(Arc::ptr_eq(a.budget(), a.clone().budget()));
    }
}
