//! The CRM seam: what offboard needs from a sales CRM, independent of any vendor.
//!
//! [`Crm`] is the trait the worker talks to; [`sell`] implements it for Zendesk
//! Sell over HTTP (and [`pipedrive`] for Pipedrive, [`hubspot`] for HubSpot,
//! [`salesforce`] for Salesforce), and [`client_from_config`]
//! builds the one `[crm] kind` names. What a CRM can do is data
//! ([`Capabilities`]), so the worker never branches on a vendor. Only this folder
//! knows a vendor's JSON. Every HTTP call a client makes goes through the shared
//! `transport` (pacing, retries, audit of each attempt) and is reported to the
//! [`calls`] sink of the current task, so the worker can store it in the job's
//! audit trail without the trait carrying it. [`pacing`] holds the per-token
//! request budget that every client call waits on. The trait and its types live
//! in the private leaf `contract`, re-exported here, so the clients import that
//! leaf and this file stays declarations, re-exports and the choice of client.
//!
//! A CRM never decides anything: it lists, reassigns, changes seats and creates
//! tasks when told to.

pub mod calls;
mod contract;
pub mod hubspot;
pub mod pacing;
pub mod pipedrive;
pub mod salesforce;
pub mod sell;
mod settings;
mod transport;

use std::sync::Arc;

pub use contract::{Crm, CrmError, NewTask, Record, RecordRef, WriteOutcome};
pub use offboard_domain::{
    Capabilities, CrmId, CrmUser, Resource, SeatAbility, SeatChange, UserRole, UserStatus,
};
pub use settings::ClientSettings;
pub use transport::ClientBuildError;

use crate::config::{
    Config, ConfigError, CrmConfig, CrmKind, DEFAULT_SALESFORCE_API_VERSION, SeatExecutor, Secret,
};
use pacing::{BudgetSettings, LocalBudget, RateBudget};

/// What the CRM `kind` can do, known before any client exists (config checks,
/// `policy explain`, `policy check`).
pub fn capabilities_of(kind: CrmKind) -> &'static Capabilities {
    match kind {
        CrmKind::ZendeskSell => &sell::CAPABILITIES,
        CrmKind::Pipedrive => &pipedrive::CAPABILITIES,
        CrmKind::Hubspot => &hubspot::CAPABILITIES,
        CrmKind::Salesforce => &salesforce::CAPABILITIES,
    }
}

/// The seat executor in force for `[crm]`: the configured one, else `api` where
/// the CRM's API can deactivate or delete users (each change it can't make by API
/// still goes to a person), else `manual`. `api` for a CRM whose API can change
/// no seat at all is a configuration error.
pub fn seat_executor(crm: &CrmConfig) -> Result<SeatExecutor, ConfigError> {
    let can = capabilities_of(crm.kind);
    let by_api = |ability| ability == SeatAbility::Api;
    match crm.seat_executor_setting {
        Some(SeatExecutor::Api) if !by_api(can.deactivate) && !by_api(can.delete) => {
            Err(ConfigError::Invalid(format!(
                "crm.seat_executor: {}'s API cannot change a user's status: only \"manual\" is available",
                can.name
            )))
        }
        Some(chosen) => Ok(chosen),
        None if by_api(can.deactivate) || by_api(can.delete) => Ok(SeatExecutor::Api),
        None => Ok(SeatExecutor::Manual),
    }
}

/// Builds the client `[crm]` describes (with `[privacy]`), pacing through this
/// process's budget for the token.
pub fn client_from_config(
    config: &Config,
    token: Secret,
) -> Result<Arc<dyn Crm>, ClientBuildError> {
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
) -> Result<Arc<dyn Crm>, ClientBuildError> {
    let settings = ClientSettings::from_config(config);
    let vendor = capabilities_of(config.crm.kind).name;
    let base = transport::normalize_base(vendor, &config.crm.base_url)?;
    let key = transport::budget_key(&base, &token);
    let budget_settings = settings.budget();
    let budget = shared(&key, &budget_settings)
        .unwrap_or_else(|| LocalBudget::shared(&key, budget_settings));
    Ok(match config.crm.kind {
        CrmKind::ZendeskSell => Arc::new(sell::SellClient::with_budget(
            &base, token, settings, budget,
        )?),
        CrmKind::Pipedrive => Arc::new(pipedrive::PipedriveClient::with_budget(
            &base, token, settings, budget,
        )?),
        CrmKind::Hubspot => Arc::new(hubspot::HubSpotClient::with_budget(
            &base, token, settings, budget,
        )?),
        // The client checks the version too (a config loaded has already).
        CrmKind::Salesforce => Arc::new(salesforce::SalesforceClient::with_budget(
            &base,
            config
                .crm
                .api_version
                .as_deref()
                .unwrap_or(DEFAULT_SALESFORCE_API_VERSION),
            token,
            settings,
            budget,
        )?),
    })
}
