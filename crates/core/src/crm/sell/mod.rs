//! Zendesk Sell (API v2) behind the [`Crm`] trait.
//!
//! [`SellClient`] is cheap to clone and every clone shares one connection pool, one
//! deal-stage cache and one [`RateBudget`]; [`SellClient::new`] takes the budget
//! from [`LocalBudget::shared`], so all clients of one token in the process share
//! the token's rate however many jobs run. [`SellSettings`] holds the pacing,
//! timeout and retry knobs.
//!
//! Inside: `wire` knows Sell's JSON envelopes and error conventions, `transport`
//! paces, sends, reports (audit sink and metrics) and retries one request, and this
//! file maps the [`Crm`] methods onto Sell's endpoints. Sell facts it relies on
//! (DESIGN.md §2): lists page with `page`/`per_page` until `meta.links.next_page`
//! is absent; a deal is closed when its stage's category is `won` or `lost`; the
//! users API is read-only.
//!
//! This module never decides what to reassign or to whom, and never retries a
//! task creation that may have reached Sell.

mod wire;

pub use self::wire::read_every_answer;

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::json;

use self::wire::{Created, Page, RawRecord, RawStage, RawTask, Single};
use super::{
    contract::{
        Crm, CrmError, NewTask, Record, WriteOutcome, resource_unsupported, seat_change_unsupported,
    },
    pacing::{LocalBudget, RateBudget},
    settings::ClientSettings,
    transport::{Auth, Call, ClientBuildError, Dialect, Transport, budget_key, normalize_base},
};
use crate::{
    config::Secret,
    domain::{Capabilities, CrmId, CrmUser, Resource, SeatAbility, SeatChange},
};

/// A Sell client's settings are every client's.
pub type SellSettings = ClientSettings;

/// Why a Sell client could not be built.
pub type SellBuildError = ClientBuildError;

/// Sell's maximum page size.
const PER_PAGE: u32 = 100;

/// A guard against a server that never stops saying "next page" (1,000,000 records).
const MAX_PAGES: u32 = 10_000;

/// What Sell can do (DESIGN.md §2, §9): its users API is read-only, so every seat
/// change is an admin's; one record per `PUT`; users have `reports_to`; companies
/// are contacts, so there is no separate organizations object.
pub const CAPABILITIES: Capabilities = Capabilities {
    name: "Sell",
    seat_admin_path: "Settings › Manage › Users",
    deactivate: SeatAbility::Manual,
    delete: SeatAbility::Manual,
    reactivate: SeatAbility::Manual,
    records_per_write: 1,
    mixed_writes: false,
    write_verb: "PUT",
    manager_field: true,
    resources: &[
        Resource::Leads,
        Resource::Contacts,
        Resource::Deals,
        Resource::Tasks,
    ],
};

const DIALECT: Dialect = Dialect {
    vendor: "Sell",
    error_for: wire::error_for,
    retry_after: wire::retry_after,
    quota_pause: |_| None,
};

/// A Zendesk Sell API client. Clones share everything, including the rate budget.
#[derive(Debug, Clone)]
pub struct SellClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    transport: Transport,
    stages: tokio::sync::Mutex<Option<StageCache>>,
}

/// Which deal stages are closed, across every pipeline.
#[derive(Debug)]
struct StageCache {
    known: HashSet<i64>,
    closed: HashSet<i64>,
    fetched_at: Instant,
}

/// A deal naming a stage we don't know refreshes the cache at most this often, so
/// a deleted stage doesn't cost a stage listing per call.
const UNKNOWN_STAGE_REFRESH: Duration = Duration::from_secs(30);

impl StageCache {
    fn needs_refresh(&self, stage_ids: &HashSet<i64>, ttl: Duration) -> bool {
        let age = self.fetched_at.elapsed();
        age >= ttl || (age >= UNKNOWN_STAGE_REFRESH && !stage_ids.is_subset(&self.known))
    }
}

impl SellClient {
    /// A client of the Sell API at `base_url` (e.g. `https://api.getbase.com`),
    /// pacing through the process-wide budget of this token.
    pub fn new(
        base_url: &str,
        token: Secret,
        settings: SellSettings,
    ) -> Result<Self, SellBuildError> {
        let base = normalize_base(DIALECT.vendor, base_url)?;
        let budget = LocalBudget::shared(&budget_key(&base, &token), settings.budget());
        Self::with_budget(&base, token, settings, budget)
    }

    /// Like [`Self::new`], with a budget of the caller's (one shared between
    /// processes, or a test's own).
    pub fn with_budget(
        base_url: &str,
        token: Secret,
        settings: SellSettings,
        budget: Arc<dyn RateBudget>,
    ) -> Result<Self, SellBuildError> {
        let base = normalize_base(DIALECT.vendor, base_url)?;
        let transport = Transport::new(base, &token, Auth::Bearer, settings, budget, DIALECT)?;
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                stages: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// The rate budget this client paces through.
    pub fn budget(&self) -> &Arc<dyn RateBudget> {
        &self.inner.transport.budget
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &SellSettings {
        &self.inner.transport.settings
    }

    async fn get<T: DeserializeOwned>(&self, call: Call) -> Result<T, CrmError> {
        self.inner.transport.fetch(&call).await
    }

    /// Every item of a list endpoint, page by page until `next_page` is absent.
    async fn all_pages<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        query: Vec<(&'static str, String)>,
    ) -> Result<Vec<T>, CrmError> {
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut q = query.clone();
            q.push(("page", page.to_string()));
            q.push(("per_page", PER_PAGE.to_string()));
            let list: Page<T> = self
                .get(Call::get(endpoint, endpoint.to_owned(), q))
                .await?;
            let more = list.has_next() && !list.items.is_empty();
            items.extend(list.items.into_iter().map(|i| i.data));
            if !more {
                return Ok(items);
            }
        }
        Err(CrmError::Permanent {
            status: 200,
            code: "too_many_pages".to_owned(),
            message: format!("{endpoint} still had a next page after {MAX_PAGES} pages"),
        })
    }

    /// Ids of closed (won or lost) stages, refreshing the cache when it is old or
    /// doesn't know one of `stage_ids`.
    async fn closed_stages(&self, stage_ids: &HashSet<i64>) -> Result<HashSet<i64>, CrmError> {
        // Held across the fetch so concurrent deal listings fetch the stages once.
        let mut cache = self.inner.stages.lock().await;
        let ttl = self.inner.transport.settings.stages_ttl;
        if let Some(c) = cache.as_ref()
            && !c.needs_refresh(stage_ids, ttl)
        {
            return Ok(c.closed.clone());
        }
        let stages: Vec<RawStage> = self.all_pages("/v2/stages", vec![]).await?;
        let fresh = StageCache {
            known: stages.iter().map(|s| s.id).collect(),
            closed: stages
                .iter()
                .filter(|s| s.is_closed())
                .map(|s| s.id)
                .collect(),
            fetched_at: Instant::now(),
        };
        let closed = fresh.closed.clone();
        *cache = Some(fresh);
        Ok(closed)
    }

    async fn users_by_email(&self, email: &str) -> Result<Vec<CrmUser>, CrmError> {
        self.all_pages("/v2/users", vec![("email", email.to_owned())])
            .await
    }
}

#[async_trait]
impl Crm for SellClient {
    fn capabilities(&self) -> &Capabilities {
        &CAPABILITIES
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<CrmUser>, CrmError> {
        let wanted = email.trim();
        let pick = |users: Vec<CrmUser>| {
            let mut matching: Vec<CrmUser> = users
                .into_iter()
                .filter(|u| u.email.trim().eq_ignore_ascii_case(wanted))
                .collect();
            // A deleted seat can share the address with a live one; the live one is
            // the person.
            matching.sort_by_key(|u| (u.is_deleted(), u.id.as_i64()));
            matching.into_iter().next()
        };
        if let Some(user) = pick(self.users_by_email(wanted).await?) {
            return Ok(Some(user));
        }
        // Sell's filter may match case-sensitively; addresses are stored as typed.
        let lower = wanted.to_lowercase();
        if lower != wanted {
            return Ok(pick(self.users_by_email(&lower).await?));
        }
        Ok(None)
    }

    async fn get_user(&self, id: &CrmId) -> Result<Option<CrmUser>, CrmError> {
        match self
            .get::<Single<CrmUser>>(Call::get(
                "/v2/users/:id",
                format!("/v2/users/{id}"),
                vec![],
            ))
            .await
        {
            Ok(single) => Ok(Some(single.data)),
            Err(CrmError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_users(&self) -> Result<Vec<CrmUser>, CrmError> {
        self.all_pages("/v2/users", vec![]).await
    }

    /// Sell's users API cannot say whose the token is in a way offboard needs: it
    /// never changes a seat itself, so there is no own seat to protect.
    async fn token_user(&self) -> Result<Option<CrmId>, CrmError> {
        Ok(None)
    }

    async fn list_owned(&self, resource: Resource, owner: &CrmId) -> Result<Vec<Record>, CrmError> {
        let Some(endpoint) = list_endpoint(resource) else {
            return Ok(Vec::new());
        };
        let pages = self.all_pages(endpoint, vec![("owner_id", owner.to_string())]);
        let raw: Vec<RawRecord> = if resource == Resource::Deals {
            // The stages are needed once the deals are in; fetching them (when
            // the cache is cold or old) alongside the pages spares a round trip.
            let (raw, _) =
                futures::future::try_join(pages, self.closed_stages(&HashSet::new())).await?;
            raw
        } else {
            pages.await?
        };
        let closed_stages = if resource == Resource::Deals && !raw.is_empty() {
            let used: HashSet<i64> = raw.iter().filter_map(|r| r.stage_id).collect();
            self.closed_stages(&used).await?
        } else {
            HashSet::new()
        };
        Ok(raw
            .into_iter()
            .map(|r| Record {
                id: r.id.into(),
                owner_id: r.owner_id.map_or_else(|| owner.clone(), CrmId::from),
                open: match resource {
                    Resource::Leads
                    | Resource::Contacts
                    | Resource::Organizations
                    | Resource::Tickets => true,
                    // A deal in a stage we can't place is treated as open: moving it
                    // is harmless, leaving it with a deleted owner is not.
                    Resource::Deals => r.stage_id.is_none_or(|s| !closed_stages.contains(&s)),
                    Resource::Tasks => r.completed != Some(true),
                },
            })
            .collect())
    }

    async fn reassign(
        &self,
        resource: Resource,
        ids: &[CrmId],
        new_owner: &CrmId,
    ) -> Result<Vec<WriteOutcome>, CrmError> {
        let Some(endpoint) = item_endpoint(resource) else {
            return Err(resource_unsupported(&CAPABILITIES, resource));
        };
        // One PUT per record (records_per_write = 1): a call's failure is its record's.
        let mut outcomes = Vec::with_capacity(ids.len());
        for id in ids {
            let call = Call::with_body(
                Method::PUT,
                endpoint,
                format!("/v2/{resource}/{id}"),
                json!({ "data": { "owner_id": new_owner } }),
            );
            let result = self.inner.transport.execute(&call).await.map(drop);
            if ids.len() == 1
                && let Err(e) = &result
                && !matches!(e, CrmError::NotFound(_) | CrmError::Rejected { .. })
            {
                return Err(e.clone());
            }
            outcomes.push(WriteOutcome {
                id: id.clone(),
                result,
            });
        }
        Ok(outcomes)
    }

    async fn change_seat(&self, _user: &CrmId, change: SeatChange) -> Result<(), CrmError> {
        Err(seat_change_unsupported(&CAPABILITIES, change))
    }

    async fn create_task(&self, task: &NewTask) -> Result<CrmId, CrmError> {
        let mut data = json!({ "content": task.content, "owner_id": task.owner_id });
        if let (Some(due), Some(obj)) = (&task.due_date, data.as_object_mut()) {
            obj.insert("due_date".to_owned(), json!(due));
        }
        let call = Call::with_body(
            Method::POST,
            "/v2/tasks",
            "/v2/tasks".to_owned(),
            json!({ "data": data }),
        );
        let created: Single<Created> = self.inner.transport.fetch(&call).await?;
        Ok(created.data.id.into())
    }

    async fn find_task(&self, owner: &CrmId, marker: &str) -> Result<Option<CrmId>, CrmError> {
        let tasks: Vec<RawTask> = self
            .all_pages("/v2/tasks", vec![("owner_id", owner.to_string())])
            .await?;
        let mut found: Vec<RawTask> = tasks
            .into_iter()
            .filter(|t| t.content.as_deref().is_some_and(|c| c.contains(marker)))
            .collect();
        // An open task first; a completed one still proves the task was created.
        found.sort_by_key(|t| (t.completed == Some(true), t.id));
        Ok(found.first().map(|t| t.id.into()))
    }
}

/// `None` for organizations: Sell keeps companies among contacts.
fn list_endpoint(resource: Resource) -> Option<&'static str> {
    match resource {
        Resource::Leads => Some("/v2/leads"),
        Resource::Contacts => Some("/v2/contacts"),
        Resource::Organizations => None,
        Resource::Deals => Some("/v2/deals"),
        Resource::Tasks => Some("/v2/tasks"),
        Resource::Tickets => None,
    }
}

fn item_endpoint(resource: Resource) -> Option<&'static str> {
    match resource {
        Resource::Leads => Some("/v2/leads/:id"),
        Resource::Contacts => Some("/v2/contacts/:id"),
        Resource::Organizations => None,
        Resource::Deals => Some("/v2/deals/:id"),
        Resource::Tasks => Some("/v2/tasks/:id"),
        Resource::Tickets => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn bad_tokens_are_refused_without_echoing_them() {
        let s = SellSettings::default();
        let e = SellClient::new("https://x", Secret::new("  ".into()), s.clone()).unwrap_err();
        assert!(matches!(e, SellBuildError::Token { .. }));
        let e = SellClient::new("https://x", Secret::new("abc\ndef".into()), s).unwrap_err();
        assert!(!e.to_string().contains("abc"), "{e}");
    }

    #[test]
    fn one_budget_per_token_and_base() {
        let s = SellSettings::default();
        let a = SellClient::new(
            "https://budget-test.invalid",
            Secret::new("t1".into()),
            s.clone(),
        )
        .unwrap();
        let b = SellClient::new(
            "https://budget-test.invalid/",
            Secret::new("t1".into()),
            s.clone(),
        )
        .unwrap();
        let c =
            SellClient::new("https://budget-test.invalid", Secret::new("t2".into()), s).unwrap();
        assert!(Arc::ptr_eq(a.budget(), b.budget()));
        assert!(!Arc::ptr_eq(a.budget(), c.budget()));
        assert!(Arc::ptr_eq(a.budget(), a.clone().budget()));
    }

    #[test]
    fn stage_cache_refreshes_when_old_or_surprised() {
        let cache = StageCache {
            known: [1, 2].into(),
            closed: [2].into(),
            fetched_at: Instant::now(),
        };
        let ttl = Duration::from_secs(600);
        assert!(!cache.needs_refresh(&[1].into(), ttl));
        // Unknown stage but just fetched: don't hammer the stages endpoint.
        assert!(!cache.needs_refresh(&[9].into(), ttl));
        assert!(cache.needs_refresh(&[1].into(), Duration::ZERO));
        if let Some(earlier) = Instant::now().checked_sub(UNKNOWN_STAGE_REFRESH) {
            let old = StageCache {
                fetched_at: earlier,
                ..cache
            };
            assert!(old.needs_refresh(&[9].into(), ttl));
            assert!(!old.needs_refresh(&[1, 2].into(), ttl));
        }
    }

    #[test]
    fn settings_come_from_the_config() {
        let mut config = Config::from_toml("").unwrap();
        config.privacy.redact_emails = true;
        let s = SellSettings::from_config(&config);
        assert!(s.redact_emails);
        assert_eq!(s.requests_per_second, config.crm.requests_per_second);
        assert_eq!(s.max_in_flight, config.crm.max_in_flight);
        assert_eq!(s.timeout, Duration::from_secs(config.crm.timeout_secs));
        assert_eq!(s.max_retries, 5);
    }
}
