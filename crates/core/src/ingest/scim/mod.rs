//! The second door in: a SCIM 2.0 service provider (RFC 7643/7644, DESIGN.md §10)
//! through which Okta and Microsoft Entra ID push users, so that switching a
//! person off in the identity provider offboards them like an HR webhook does.
//!
//! - [`routes`]: the handlers and the bearer-token check; one metrics outcome
//!   per request.
//! - [`resource`]: the User resource in and out (normalised names, `active` as a
//!   boolean, `meta`, attribute projection, e-mail and name for the event).
//! - [`patch`]: PATCH operations in both providers' dialects, all or nothing.
//! - [`filter`]: the supported filters and paging.
//! - [`event`]: a change of `active` → the canonical event and its job.
//! - [`discovery`]: `ServiceProviderConfig`, `ResourceTypes`, `Schemas`.
//! - [`error`]: the SCIM error object, the only error shape under `/scim`.
//!
//! Invariant (kept by [`crate::store::JobStore::scim_write`], checked by
//! `tests/scim.rs`): a user change and the event it makes are one transaction,
//! committed before the answer; a change that makes no transition of `active`
//! makes no event, so a provider's retries store nothing new.

pub mod discovery;
pub mod error;
pub mod event;
pub mod filter;
pub mod patch;
pub mod resource;
pub mod routes;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    middleware,
    routing::{get, post},
};

pub use error::SCIM_JSON;
pub use routes::ScimState;

/// `/scim/v2/…`, every route behind the SCIM bearer token.
pub fn router(state: ScimState, max_body_bytes: usize) -> Router {
    let not_allowed = routes::method_not_allowed;
    let api = Router::new()
        .route(
            "/ServiceProviderConfig",
            get(routes::service_provider_config).fallback(not_allowed),
        )
        .route(
            "/ResourceTypes",
            get(routes::resource_types).fallback(not_allowed),
        )
        .route(
            "/ResourceTypes/{id}",
            get(routes::resource_types).fallback(not_allowed),
        )
        .route("/Schemas", get(routes::schemas).fallback(not_allowed))
        .route("/Schemas/{id}", get(routes::schemas).fallback(not_allowed))
        .route(
            "/Users",
            get(routes::list_users)
                .post(routes::create_user)
                .fallback(not_allowed),
        )
        .route(
            "/Users/{id}",
            get(routes::get_user)
                .put(routes::replace_user)
                .patch(routes::patch_user)
                .delete(routes::delete_user)
                .fallback(not_allowed),
        )
        // Declared unsupported in ServiceProviderConfig; RFC 7644 §3.12 answers 501.
        .route(
            "/.search",
            post(routes::not_implemented).fallback(not_allowed),
        )
        .route(
            "/Users/.search",
            post(routes::not_implemented).fallback(not_allowed),
        )
        .route("/Bulk", post(routes::not_implemented).fallback(not_allowed))
        .fallback(routes::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            routes::require_token,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state);
    Router::new().nest("/scim/v2", api)
}
