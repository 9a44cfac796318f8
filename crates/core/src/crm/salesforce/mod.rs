//! Salesforce behind the [`Crm`](super::Crm) trait (`[crm] kind = "salesforce"`).
//!
//! Salesforce differs from the other CRMs where it matters to the worker: every
//! read is a SOQL query (`GET …/query?q=`) paged through `nextRecordsUrl`; one
//! write call (an sObject Collection) moves up to 200 records of one object and
//! answers per record; a seat is deactivated and reactivated by setting
//! `User.IsActive`, and can never be deleted; and calls count against the org's
//! 24-hour allocation, which every answer reports in `Sforce-Limit-Info`.
//!
//! [`SalesforceClient`] is cheap to clone; clones share one connection pool and
//! one [`RateBudget`], and [`SalesforceClient::new`] takes the budget from
//! [`LocalBudget::shared`], so every client of one token in the process shares
//! the token's rate. Inside: `wire` knows the SOQL literals, JSON shapes, error
//! array and limit header (pure, unit-tested); the shared `transport` paces,
//! sends, reports and retries; this file maps the trait onto the endpoints.
//!
//! # Facts relied on, and where they come from
//!
//! Paths are below the org's instance URL (`crm.base_url`, e.g.
//! `https://yourdomain.my.salesforce.com`); data calls below
//! `/services/data/v{crm.api_version}/`.
//!
//! - Auth: an OAuth access token as `Authorization: Bearer <token>` on every
//!   resource ("Authentication: Authorization: Bearer token").
//!   <https://developer.salesforce.com/docs/platform/api-rest/guide/resources-query.md>
//! - Query: `GET /services/data/vXX.X/query?q=<SOQL>` (spaces as `+` or `%20`;
//!   an invalid query answers `MALFORMED_QUERY`), answering `totalSize`, `done`,
//!   `records` (each with `attributes.type`/`url`) and, while not `done`,
//!   `nextRecordsUrl` (`/services/data/v67.0/query/01gRO0000016PIAYA2-500`: a
//!   path from the instance root), requested "without any parameters" until
//!   `done` is true; up to 2,000 records per batch, possibly fewer.
//!   <https://developer.salesforce.com/docs/platform/api-rest/guide/resources-query.md>,
//!   <https://developer.salesforce.com/docs/platform/api-rest/guide/resources-query-more-results.html>,
//!   <https://developer.salesforce.com/docs/platform/api-rest/guide/dome-query.md>
//! - SOQL string literals: `'` and `\` are reserved and take a backslash; `\n`,
//!   `\r`, `\t`, `\b`, `\f`, `\"` are escapes too; in `LIKE` only, `\_` and
//!   `\%` match the characters themselves.
//!   <https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_reservedcharacters.htm>,
//!   <https://developer.salesforce.com/docs/platform/salesforce-soql-sosl/guide/sforce-api-calls-soql-select-quotedstringescapes.html>
//! - A WHERE field "can be any field except a long text area field, encrypted
//!   data field, or base64-encoded field", and Task `Description` is a
//!   `textarea` of 32,000 characters: a task can only be found again by its
//!   `Subject`, so the marker goes there.
//!   <https://developer.salesforce.com/docs/atlas.en-us.238.0.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_fieldexpression.htm>,
//!   <https://developer.salesforce.com/docs/atlas.en-us.228.0.sfFieldRef.meta/sfFieldRef/salesforce_field_reference_ActivityHistory.htm>
//!   (the activity fields, `Description` "textarea 32000", `IsClosed`,
//!   `ActivityDate` "date"). `ActivityDate` is "the due date of a task", a
//!   date without time.
//!   <https://developer.salesforce.com/docs/platform/object-reference/references/standard-objects/object-activityhistory.html>
//! - User: supported calls are `create()`, `describeLayout()`,
//!   `describeSObjects()`, `getDeleted()`, `getUpdated()`, `query()`,
//!   `retrieve()`, `search()`, `update()`, `upsert()`: no `delete()`, so
//!   [`SeatAbility::Impossible`]; deactivation "allows your organization to
//!   apply their license to another user".
//!   <https://developer.salesforce.com/docs/atlas.en-us.258.0.object_reference.meta/object_reference/sforce_api_objects_user.htm>,
//!   <https://help.okta.com/en/prod/Content/Topics/Workflows/connector-reference/salesforce/actions/deactivateuser.htm>
//! - Update through sObject Collections: `PATCH
//!   /services/data/vXX.X/composite/sobjects` with `allOrNone` (default false:
//!   "continue with the independent update of other objects") and `records`,
//!   "up to 200", each with an `attributes` map naming its `type` and an `id`;
//!   a well-formed request answers 200 with one SaveResult per record, "in the
//!   order in which the update requests were specified"; a malformed one 400.
//!   "The list can contain objects of different types", processed in chunks
//!   of one type ("up to 10 chunks"), so one call carries several resources.
//!   <https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-update.html>
//! - Status codes: 201 for a POST, 204 for "some PATCH requests"; 401 "The
//!   session ID or OAuth token used has expired or is invalid"; 403 "If the
//!   error code is REQUEST_LIMIT_EXCEEDED, you've exceeded API request limits in
//!   your org", otherwise a permission; 404 not found; error bodies are an
//!   array of `{message, errorCode, fields}`.
//!   <https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm>
//! - `Sforce-Limit-Info: api-usage=<used>/<limit>` on every REST answer, "the
//!   daily API usage for the organization", optionally followed by
//!   `; per-app-api-usage=17/250(appName=…)` or `; api-bursts=1/750`, and the
//!   used count may exceed the limit (`api-usage=110018/100000`).
//!   <https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm>,
//!   <https://developer.salesforce.com/docs/atlas.en-us.214.0.api_rest.meta/api_rest/headers_api_usage.htm>,
//!   <https://developer.salesforce.com/docs/atlas.ja-jp.224.0.api_rest.meta/api_rest/headers_api_usage.htm>
//! - Who the token acts as: the UserInfo endpoint
//!   (`/services/oauth2/userinfo`, OpenID Connect) "provides access to
//!   information only for the current user"; its answer has `user_id`,
//!   `organization_id`, `email`, ….
//!   <https://help.salesforce.com/HTViewHelpDoc?id=remoteaccess_using_userinfo_endpoint.htm>;
//!   the fields from a client's example, <https://npmjs.com/package/@solarmosaic/sf-idp-client>.
//! - API versions: Spring '26 is API version 66.0, listed as the latest
//!   release in the REST API guide's version list; the default of
//!   `crm.api_version`.
//!   <https://developer.salesforce.com/docs/atlas.ja-jp.234.0.api_rest.meta/api/headers_api_usage.htm>
//!
//! Not confirmed by any source found, and what this client does about it:
//! - That `/services/oauth2/userinfo` answers on the instance (My Domain) URL:
//!   the docs name `login.salesforce.com` (and `test.salesforce.com` for
//!   sandboxes). Any failure there is an error, never "nobody", so the worker
//!   does not change a seat it can't rule out as its own.
//! - Task `Subject` holding at most 255 characters: the Subject is cut to 255,
//!   the marker kept whole at its end.
//! - The per-record codes: `ENTITY_IS_DELETED`, `INVALID_CROSS_REFERENCE_KEY`,
//!   `NOT_FOUND`, `INVALID_ID_FIELD` and `MALFORMED_ID` read as the record
//!   being gone (unless `fields` names `OwnerId`, which makes it about the new
//!   owner: refused); `UNABLE_TO_LOCK_ROW` as passing; every other code as
//!   Salesforce refusing the record (`INACTIVE_OWNER_OR_USER`,
//!   `FIELD_CUSTOM_VALIDATION_EXCEPTION`,
//!   `INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY`, …).
//! - That SOQL `=` on `Email` ignores case: the exact address is picked here
//!   ignoring case anyway, an active user first.
//! - How long a spent allocation lasts: the window is a rolling 24 hours, so
//!   the call is handed back with a one-hour wait; a 403
//!   `REQUEST_LIMIT_EXCEEDED` about concurrent long-running requests waits 30
//!   seconds instead. Salesforce documents no `Retry-After`; one is honoured
//!   if a proxy sends it.
//! - Only users with `UserType = 'Standard'` are listed: the licensed internal
//!   seats that own sales records and report to managers. Portal, community,
//!   guest and automated users (`PowerPartner`, `CspLitePortal`, `Guest`, …)
//!   can number in the hundreds of thousands and are never a rep's reportees.
//!   A leaver of another type is still found by e-mail and by id.
//! - An org administrator is a user whose profile has "Modify All Data"
//!   (`Profile.PermissionsModifyAllData`); a permission set granting it is not
//!   seen.

mod wire;

pub use self::wire::read_every_answer;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use async_trait::async_trait;
use reqwest::{Method, header::HeaderMap};
use serde::de::DeserializeOwned;

use self::wire::{
    ApiUsage, NewTaskBody, QueryPage, SObject, SaveResult, SfRecord, SfUser, UserInfo,
};
use super::{
    contract::{Crm, CrmError, NewTask, Record, RecordRef, WriteOutcome, seat_change_unsupported},
    pacing::{LocalBudget, RateBudget},
    settings::ClientSettings,
    transport::{
        Auth, Call, ClientBuildError, Dialect, Transport, budget_key, normalize_base,
        retry_after_header,
    },
};
use crate::{
    config::{Secret, normalize_api_version},
    domain::{Capabilities, CrmId, CrmUser, Resource, SeatAbility, SeatChange},
};

/// What Salesforce can do (DESIGN.md §9): `User.IsActive` deactivates and
/// reactivates by API; users can never be deleted (the policy turns a delete
/// into a deactivation, and says so); 200 records per collection write; users
/// have a manager (`ManagerId`); every offboard resource has an object.
pub const CAPABILITIES: Capabilities = Capabilities {
    name: "Salesforce",
    seat_admin_path: "Setup › Users",
    deactivate: SeatAbility::Api,
    delete: SeatAbility::Impossible,
    reactivate: SeatAbility::Api,
    records_per_write: BATCH_MAX,
    mixed_writes: true,
    write_verb: "PATCH",
    manager_field: true,
    resources: &[
        Resource::Leads,
        Resource::Contacts,
        Resource::Organizations,
        Resource::Deals,
        Resource::Tasks,
        Resource::Tickets,
    ],
};

const DIALECT: Dialect = Dialect {
    vendor: "Salesforce",
    error_for: wire::error_for,
    // Salesforce documents no `Retry-After` for its REST API; a proxy in front
    // may send one, so the shared reader is used as is.
    retry_after: retry_after_header,
    quota_pause: observe_limits,
};

/// Records per sObject Collections request.
const BATCH_MAX: usize = 200;

/// Runs of one object type per sObject Collections request ("A single request
/// can process up to 10 chunks"); the worker groups records by resource, so a
/// call holds at most six.
const TYPE_CHUNKS_MAX: usize = 10;

/// A guard against a server that never says `done`: with up to 2,000 records a
/// batch, far beyond any one rep's book.
const MAX_PAGES: u32 = 2_000;

const QUERY: &str = "/services/data/:version/query";
const QUERY_MORE: &str = "/services/data/:version/query/:locator";
const COLLECTION: &str = "/services/data/:version/composite/sobjects";
const USER: &str = "/services/data/:version/sobjects/User/:id";
const TASKS: &str = "/services/data/:version/sobjects/Task";
const USERINFO: &str = "/services/oauth2/userinfo";

/// The `crm` label of the limit gauges.
const METRIC_LABEL: &str = "salesforce";

/// A Salesforce REST API client. Clones share everything, including the rate
/// budget.
#[derive(Debug, Clone)]
pub struct SalesforceClient {
    transport: Arc<Transport>,
    /// `/services/data/v66.0`: the prefix of every data path.
    data: Arc<str>,
}

impl SalesforceClient {
    /// A client of the org at `base_url` (its instance URL,
    /// `https://yourdomain.my.salesforce.com`) speaking REST API `api_version`
    /// (`66.0`, or `v66.0`), pacing through the process-wide budget of this
    /// token.
    pub fn new(
        base_url: &str,
        api_version: &str,
        token: Secret,
        settings: ClientSettings,
    ) -> Result<Self, ClientBuildError> {
        let base = normalize_base(DIALECT.vendor, base_url)?;
        let budget = LocalBudget::shared(&budget_key(&base, &token), settings.budget());
        Self::with_budget(&base, api_version, token, settings, budget)
    }

    /// Like [`Self::new`], with a budget of the caller's (one shared between
    /// processes, or a test's own).
    pub fn with_budget(
        base_url: &str,
        api_version: &str,
        token: Secret,
        settings: ClientSettings,
        budget: Arc<dyn RateBudget>,
    ) -> Result<Self, ClientBuildError> {
        let base = normalize_base(DIALECT.vendor, base_url)?;
        let version =
            normalize_api_version(api_version).ok_or_else(|| ClientBuildError::ApiVersion {
                vendor: DIALECT.vendor,
                version: api_version.to_owned(),
            })?;
        let transport = Transport::new(base, &token, Auth::Bearer, settings, budget, DIALECT)?;
        Ok(Self {
            transport: Arc::new(transport),
            data: format!("/services/data/v{version}").into(),
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

    /// Every row `soql` selects, following `nextRecordsUrl` to the last batch.
    async fn query<T: DeserializeOwned>(&self, soql: String) -> Result<Vec<T>, CrmError> {
        let mut call = Call::get(QUERY, format!("{}/query", self.data), vec![("q", soql)]);
        let mut previous: Option<String> = None;
        let mut rows = Vec::new();
        for _ in 0..MAX_PAGES {
            let page: QueryPage<T> = self.transport.fetch(&call).await?;
            let next = page.next(previous.as_deref())?;
            rows.extend(page.records);
            let Some(next) = next else {
                return Ok(rows);
            };
            // The locator is a path from the instance root, asked for as is.
            call = Call::get(QUERY_MORE, next.clone(), vec![]);
            previous = Some(next);
        }
        Err(CrmError::Permanent {
            status: 200,
            code: "too_many_pages".to_owned(),
            message: format!("{QUERY} still not done after {MAX_PAGES} batches"),
        })
    }
}

/// The transport's `quota_pause` hook: every answer carrying `Sforce-Limit-Info`
/// updates the usage gauges, and a spent allocation pauses the budget.
fn observe_limits(headers: &HeaderMap) -> Option<std::time::Duration> {
    let usage = ApiUsage::from_headers(headers)?;
    metrics::gauge!(crate::metrics::CRM_API_USAGE, "crm" => METRIC_LABEL).set(usage.used as f64);
    metrics::gauge!(crate::metrics::CRM_API_LIMIT, "crm" => METRIC_LABEL).set(usage.max as f64);
    wire::quota_pause(headers)
}

#[async_trait]
impl Crm for SalesforceClient {
    fn capabilities(&self) -> &Capabilities {
        &CAPABILITIES
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<CrmUser>, CrmError> {
        let wanted = email.trim();
        if wanted.is_empty() {
            return Ok(None);
        }
        let users: Vec<SfUser> = self.query(wire::user_by_email(wanted)).await?;
        Ok(wire::pick_by_email(users, wanted).map(SfUser::into_user))
    }

    async fn get_user(&self, id: &CrmId) -> Result<Option<CrmUser>, CrmError> {
        if !wire::plausible_id(id) {
            return Ok(None);
        }
        let users: Vec<SfUser> = self.query(wire::user_by_id(id)).await?;
        Ok(users.into_iter().next().map(SfUser::into_user))
    }

    async fn list_users(&self) -> Result<Vec<CrmUser>, CrmError> {
        let users: Vec<SfUser> = self.query(wire::standard_users()).await?;
        Ok(users.into_iter().map(SfUser::into_user).collect())
    }

    async fn token_user(&self) -> Result<Option<CrmId>, CrmError> {
        let call = Call::get(USERINFO, USERINFO.to_owned(), vec![]);
        let info: UserInfo = self.transport.fetch(&call).await?;
        // Salesforce always knows the token's user: an answer without one is
        // unusable, not "nobody" (which would let the worker change any seat).
        match info.user_id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => Ok(Some(CrmId::from(id))),
            _ => Err(CrmError::Permanent {
                status: 200,
                code: "unreadable_response".to_owned(),
                message: format!("{USERINFO} names no user_id"),
            }),
        }
    }

    async fn list_owned(&self, resource: Resource, owner: &CrmId) -> Result<Vec<Record>, CrmError> {
        if !wire::plausible_id(owner) {
            return Ok(vec![]);
        }
        let object = object_type(resource);
        // Open or not, as the trait asks: `open_only` is the worker's to apply.
        let rows: Vec<SfRecord> = self.query(wire::owned_by(object, owner)).await?;
        Ok(rows
            .into_iter()
            .map(|r| Record {
                open: r.is_open(object),
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
        let records: Vec<RecordRef> = ids
            .iter()
            .map(|id| RecordRef {
                resource,
                id: id.clone(),
            })
            .collect();
        let outcomes = self.reassign_records(&records, new_owner).await?;
        Ok(outcomes.into_iter().map(|(_, o)| o).collect())
    }

    /// One collection call for records of any of the objects, as long as they
    /// come in at most [`TYPE_CHUNKS_MAX`] runs of one type.
    async fn reassign_records(
        &self,
        records: &[RecordRef],
        new_owner: &CrmId,
    ) -> Result<Vec<(Resource, WriteOutcome)>, CrmError> {
        if records.len() > BATCH_MAX {
            return Err(CrmError::Permanent {
                status: 0,
                code: "too_many_records".to_owned(),
                message: format!(
                    "{} records in one Salesforce collection; at most {BATCH_MAX}",
                    records.len()
                ),
            });
        }
        let chunks = records.chunk_by(|a, b| a.resource == b.resource).count();
        if chunks > TYPE_CHUNKS_MAX {
            return Err(CrmError::Permanent {
                status: 0,
                code: "too_many_chunks".to_owned(),
                message: format!(
                    "{chunks} runs of one object type in one Salesforce collection; at most {TYPE_CHUNKS_MAX}"
                ),
            });
        }
        if !wire::plausible_id(new_owner) {
            return Err(CrmError::Permanent {
                status: 0,
                code: "invalid_id".to_owned(),
                message: format!("{new_owner:?} is not a Salesforce user id"),
            });
        }
        // An id that can't be one is answered here and left out; the rest go
        // once each (a record twice in one collection would be two saves).
        let mut outcomes: HashMap<&RecordRef, Result<(), CrmError>> = HashMap::new();
        let mut batch: Vec<&RecordRef> = Vec::new();
        let mut queued: HashSet<&RecordRef> = HashSet::new();
        for record in records {
            if outcomes.contains_key(record) || queued.contains(record) {
                continue;
            }
            if wire::plausible_id(&record.id) {
                queued.insert(record);
                batch.push(record);
            } else {
                let e = CrmError::Permanent {
                    status: 0,
                    code: "invalid_id".to_owned(),
                    message: format!("{:?} is not a Salesforce record id", record.id),
                };
                outcomes.insert(record, Err(e));
            }
        }
        if !batch.is_empty() {
            let typed: Vec<(SObject, CrmId)> = batch
                .iter()
                .map(|r| (object_type(r.resource), r.id.clone()))
                .collect();
            // Setting the same owner twice leaves the same state, so a call whose
            // answer was lost is safe to send again.
            let call = Call::with_body(
                Method::PATCH,
                COLLECTION,
                format!("{}/composite/sobjects", self.data),
                wire::owner_collection(&typed, new_owner),
            )
            .repeatable();
            let answer: Vec<SaveResult> = self.transport.fetch(&call).await?;
            let ids: Vec<CrmId> = typed.into_iter().map(|(_, id)| id).collect();
            for (record, o) in batch.iter().zip(wire::collection_outcomes(&ids, &answer)) {
                outcomes.insert(record, o.result);
            }
        }
        Ok(records
            .iter()
            .map(|r| {
                let result = outcomes.get(r).cloned().unwrap_or_else(|| {
                    Err(CrmError::Transient(format!(
                        "no outcome for record {}",
                        r.id
                    )))
                });
                (
                    r.resource,
                    WriteOutcome {
                        id: r.id.clone(),
                        result,
                    },
                )
            })
            .collect())
    }

    async fn change_seat(&self, user: &CrmId, change: SeatChange) -> Result<(), CrmError> {
        let active = match change {
            SeatChange::Deactivate => false,
            SeatChange::Reactivate => true,
            SeatChange::Delete => return Err(seat_change_unsupported(&CAPABILITIES, change)),
        };
        if !wire::plausible_id(user) {
            return Err(CrmError::NotFound(format!(
                "{user:?} is not a Salesforce user id"
            )));
        }
        let call = Call::with_body(
            Method::PATCH,
            USER,
            format!("{}/sobjects/User/{}", self.data, user.as_str()),
            wire::user_active(active),
        );
        self.transport.execute(&call).await.map(|_| ())
    }

    async fn create_task(&self, task: &NewTask) -> Result<CrmId, CrmError> {
        let body = NewTaskBody {
            owner_id: task.owner_id.as_str(),
            subject: wire::subject_of(&task.content),
            description: &task.content,
            activity_date: wire::activity_date(task.due_date.as_deref()),
            status: "Not Started",
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
            TASKS,
            format!("{}/sobjects/Task", self.data),
            body,
        );
        let created: SaveResult = self.transport.fetch(&call).await?;
        match created.id.as_deref().map(str::trim) {
            Some(id) if created.success && !id.is_empty() => Ok(CrmId::from(id)),
            _ => Err(CrmError::Permanent {
                status: 201,
                code: "unreadable_response".to_owned(),
                message: "Salesforce answered the new task without an id".to_owned(),
            }),
        }
    }

    async fn find_task(&self, owner: &CrmId, marker: &str) -> Result<Option<CrmId>, CrmError> {
        if !wire::plausible_id(owner) || marker.trim().is_empty() {
            return Ok(None);
        }
        let tasks: Vec<SfRecord> = self.query(wire::tasks_with_marker(owner, marker)).await?;
        // An open one first, else the oldest closed one: it still proves the
        // task was created.
        Ok(tasks
            .into_iter()
            .filter(|t| t.mentions(marker))
            .min_by(|a, b| {
                (a.is_closed == Some(true), a.id.as_str())
                    .cmp(&(b.is_closed == Some(true), b.id.as_str()))
            })
            .map(|t| t.id))
    }
}

/// Salesforce's object for each resource offboard knows: all of them.
fn object_type(resource: Resource) -> SObject {
    match resource {
        Resource::Leads => SObject::Lead,
        Resource::Contacts => SObject::Contact,
        Resource::Organizations => SObject::Account,
        Resource::Deals => SObject::Opportunity,
        Resource::Tasks => SObject::Task,
        Resource::Tickets => SObject::Case,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_say_what_salesforce_can_do() {
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
        assert_eq!(CAPABILITIES.records_per_write, 200);
        assert_eq!(CAPABILITIES.write_verb, "PATCH");
        const { assert!(CAPABILITIES.manager_field) };
        for r in Resource::ALL {
            assert!(CAPABILITIES.has(r), "{r}");
        }
        assert_eq!(object_type(Resource::Organizations).name(), "Account");
        assert_eq!(object_type(Resource::Deals).name(), "Opportunity");
        assert_eq!(object_type(Resource::Tickets).name(), "Case");
    }

    #[test]
    fn bad_tokens_and_versions_are_refused_without_echoing_the_token() {
        let s = ClientSettings::default();
        let new = |version: &str, token: &str| {
            SalesforceClient::new("https://x", version, Secret::new(token.into()), s.clone())
        };
        assert!(matches!(
            new("66.0", "  ").unwrap_err(),
            ClientBuildError::Token { .. }
        ));
        let e = new("66.0", "abc\ndef").unwrap_err();
        assert!(!e.to_string().contains("abc"), "{e}");
        for bad in ["", "66", "v66.", "66.0.1", "sixty"] {
            assert!(
                matches!(
                    new(bad, "t").unwrap_err(),
                    ClientBuildError::ApiVersion { .. }
                ),
                "{bad:?}"
            );
        }
        let c = new("v62.0", "t").unwrap();
        assert_eq!(&*c.data, "/services/data/v62.0");
    }

    #[test]
    fn one_budget_per_token_and_base() {
        let s = ClientSettings::default();
        let new = |base: &str, token: &str| {
            SalesforceClient::new(base, "66.0", Secret::new(token.into()), s.clone()).unwrap()
        };
        let a = new("https://sf-budget-test.invalid", "t1");
        let b = new("https://sf-budget-test.invalid/", "t1");
        let c = new("https://sf-budget-test.invalid", "t2");
        assert!(Arc::ptr_eq(a.budget(), b.budget()));
        assert!(!Arc::ptr_eq(a.budget(), c.budget()));
    }
}
