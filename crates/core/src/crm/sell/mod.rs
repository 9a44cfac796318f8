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

mod settings;
mod transport;
mod wire;

pub use settings::SellSettings;

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use reqwest::{
    Method,
    header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue},
};
use serde::de::DeserializeOwned;
use serde_json::json;
use sha2::{Digest, Sha256};

use self::{
    transport::{Call, Transport},
    wire::{Created, Page, RawRecord, RawStage, RawTask, Single},
};
use super::{
    contract::{Crm, CrmError, NewTask, Record},
    pacing::{BudgetSettings, LocalBudget, RateBudget},
};
use crate::{
    config::{Config, Secret},
    domain::{CrmUser, Resource},
};

/// Sell's maximum page size.
const PER_PAGE: u32 = 100;

/// A guard against a server that never stops saying "next page" (1,000,000 records).
const MAX_PAGES: u32 = 10_000;

/// Why a [`SellClient`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SellBuildError {
    /// `base_url` is not an absolute http(s) URL.
    #[error("invalid Sell base URL {url:?}: {problem}")]
    BaseUrl {
        /// `crm.base_url` as configured.
        url: String,
        /// Why it is refused (parse error, wrong scheme, has a query…).
        problem: String,
    },
    /// The token is empty or cannot be sent in a header.
    #[error("invalid Sell access token: {0}")]
    Token(String),
    /// The HTTP client could not be set up (TLS roots, …).
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

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
        let base = normalize_base(base_url)?;
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
        let base = normalize_base(base_url)?;
        if token.expose().trim().is_empty() {
            return Err(SellBuildError::Token("it is empty".to_owned()));
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose().trim()))
            .map_err(|_| {
                SellBuildError::Token(
                    "it contains characters not allowed in an HTTP header".to_owned(),
                )
            })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .user_agent(concat!("offboard/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .pool_max_idle_per_host(settings.max_in_flight.max(1))
            .build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                transport: Transport {
                    http,
                    base,
                    budget,
                    settings,
                },
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
        let body = self.inner.transport.execute(&call).await?;
        decode(&call, &body)
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
    async fn find_user_by_email(&self, email: &str) -> Result<Option<CrmUser>, CrmError> {
        let wanted = email.trim();
        let pick = |users: Vec<CrmUser>| {
            let mut matching: Vec<CrmUser> = users
                .into_iter()
                .filter(|u| u.email.trim().eq_ignore_ascii_case(wanted))
                .collect();
            // A deleted seat can share the address with a live one; the live one is
            // the person.
            matching.sort_by_key(|u| (u.is_deleted(), u.id));
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

    async fn get_user(&self, id: i64) -> Result<Option<CrmUser>, CrmError> {
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

    async fn list_owned(&self, resource: Resource, owner_id: i64) -> Result<Vec<Record>, CrmError> {
        let raw: Vec<RawRecord> = self
            .all_pages(
                list_endpoint(resource),
                vec![("owner_id", owner_id.to_string())],
            )
            .await?;
        let closed_stages = if resource == Resource::Deals && !raw.is_empty() {
            let used: HashSet<i64> = raw.iter().filter_map(|r| r.stage_id).collect();
            self.closed_stages(&used).await?
        } else {
            HashSet::new()
        };
        Ok(raw
            .into_iter()
            .map(|r| Record {
                id: r.id,
                owner_id: r.owner_id.unwrap_or(owner_id),
                open: match resource {
                    Resource::Leads | Resource::Contacts => true,
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
        record_id: i64,
        new_owner: i64,
    ) -> Result<(), CrmError> {
        let call = Call {
            method: Method::PUT,
            endpoint: item_endpoint(resource),
            path: format!("/v2/{resource}/{record_id}"),
            query: vec![],
            body: Some(json!({ "data": { "owner_id": new_owner } })),
        };
        self.inner.transport.execute(&call).await.map(drop)
    }

    async fn create_task(&self, task: &NewTask) -> Result<i64, CrmError> {
        let mut data = json!({ "content": task.content, "owner_id": task.owner_id });
        if let (Some(due), Some(obj)) = (&task.due_date, data.as_object_mut()) {
            obj.insert("due_date".to_owned(), json!(due));
        }
        let call = Call {
            method: Method::POST,
            endpoint: "/v2/tasks",
            path: "/v2/tasks".to_owned(),
            query: vec![],
            body: Some(json!({ "data": data })),
        };
        let body = self.inner.transport.execute(&call).await?;
        decode::<Single<Created>>(&call, &body).map(|s| s.data.id)
    }

    async fn find_task(&self, owner_id: i64, marker: &str) -> Result<Option<i64>, CrmError> {
        let tasks: Vec<RawTask> = self
            .all_pages("/v2/tasks", vec![("owner_id", owner_id.to_string())])
            .await?;
        let mut found: Vec<RawTask> = tasks
            .into_iter()
            .filter(|t| t.content.as_deref().is_some_and(|c| c.contains(marker)))
            .collect();
        // An open task first; a completed one still proves the task was created.
        found.sort_by_key(|t| (t.completed == Some(true), t.id));
        Ok(found.first().map(|t| t.id))
    }
}

fn decode<T: DeserializeOwned>(call: &Call, body: &[u8]) -> Result<T, CrmError> {
    serde_json::from_slice(body).map_err(|e| CrmError::Permanent {
        status: 200,
        code: "unreadable_response".to_owned(),
        message: format!("{} {}: unexpected answer: {e}", call.method, call.endpoint),
    })
}

fn list_endpoint(resource: Resource) -> &'static str {
    match resource {
        Resource::Leads => "/v2/leads",
        Resource::Contacts => "/v2/contacts",
        Resource::Deals => "/v2/deals",
        Resource::Tasks => "/v2/tasks",
    }
}

fn item_endpoint(resource: Resource) -> &'static str {
    match resource {
        Resource::Leads => "/v2/leads/:id",
        Resource::Contacts => "/v2/contacts/:id",
        Resource::Deals => "/v2/deals/:id",
        Resource::Tasks => "/v2/tasks/:id",
    }
}

/// An absolute http(s) URL without a trailing slash, so paths can be appended.
fn normalize_base(base_url: &str) -> Result<String, SellBuildError> {
    let bad = |problem: &str| SellBuildError::BaseUrl {
        url: base_url.to_owned(),
        problem: problem.to_owned(),
    };
    let url = reqwest::Url::parse(base_url.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Identifies a token's budget without keeping the token in the registry.
fn budget_key(base: &str, token: &Secret) -> String {
    let mut hash = Sha256::new();
    hash.update(base.as_bytes());
    hash.update([0]);
    hash.update(token.expose().trim().as_bytes());
    hex::encode(hash.finalize())
}

/// Builds the Sell client the configuration describes (`[crm]`, `[privacy]`),
/// pacing through this process's budget for the token.
pub fn client_from_config(
    config: &Config,
    token: Secret,
) -> Result<std::sync::Arc<dyn Crm>, SellBuildError> {
    client_from_config_sharing(config, token, |_, _| None)
}

/// Like [`client_from_config`], but first offers `shared` the token's budget key (a
/// hash of base URL and token) and settings: the budget it returns (one shared
/// between processes, e.g. through the PostgreSQL store) paces the client; `None`
/// falls back to this process's budget.
pub fn client_from_config_sharing(
    config: &Config,
    token: Secret,
    shared: impl FnOnce(&str, &BudgetSettings) -> Option<Arc<dyn RateBudget>>,
) -> Result<std::sync::Arc<dyn Crm>, SellBuildError> {
    let settings = SellSettings::from_config(config);
    let base = normalize_base(&config.crm.base_url)?;
    let key = budget_key(&base, &token);
    let budget_settings = settings.budget();
    let budget = match shared(&key, &budget_settings) {
        Some(budget) => budget,
        None => LocalBudget::shared(&key, budget_settings),
    };
    let client = SellClient::with_budget(&base, token, settings, budget)?;
    Ok(std::sync::Arc::new(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalized_and_checked() {
        assert_eq!(
            normalize_base("https://api.getbase.com").unwrap(),
            "https://api.getbase.com"
        );
        assert_eq!(
            normalize_base("https://api.getbase.com/").unwrap(),
            "https://api.getbase.com"
        );
        assert_eq!(
            normalize_base("http://127.0.0.1:8/sell/").unwrap(),
            "http://127.0.0.1:8/sell"
        );
        assert!(normalize_base("api.getbase.com").is_err());
        assert!(normalize_base("ftp://x").is_err());
        assert!(normalize_base("https://x/?a=1").is_err());
    }

    #[test]
    fn bad_tokens_are_refused_without_echoing_them() {
        let s = SellSettings::default();
        let e = SellClient::new("https://x", Secret::new("  ".into()), s.clone()).unwrap_err();
        assert!(matches!(e, SellBuildError::Token(_)));
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
    fn budget_key_hides_the_token() {
        let key = budget_key("https://x", &Secret::new("super-secret".into()));
        assert!(!key.contains("super-secret"));
        assert_eq!(key.len(), 64);
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
