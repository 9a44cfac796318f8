//! The Pipedrive dialect: the part of Pipedrive's API v1 and v2 offboard uses
//! (DESIGN.md §9), served from the same organisation model as Sell.
//!
//! - users (`users.rs`): `GET /api/v1/users`, `/users/{id}`, `/users/me`,
//!   `/users/find?term=&search_by_email=1`, `PUT /api/v1/users/{id}`
//!   `{"active_flag": bool}` (admin tokens only);
//! - records (`records.rs`): `GET /api/v2/{deals,persons,organizations,activities}`
//!   (cursor paging), `GET`/`PATCH /api/v2/{type}/{id}`, `POST /api/v2/activities`;
//!   `GET /api/v1/leads`, `/api/v1/leads/archived` (offset paging),
//!   `GET`/`PATCH /api/v1/leads/{uuid}`;
//! - the gate (`gate.rs`): `x-api-token`, `api_token` or OAuth bearer, the
//!   two-second rate-limit window and its `x-ratelimit-*` headers;
//! - bodies (`envelope.rs`) and the mapping of the shared model (`wire.rs`):
//!   persons and organizations are the contacts with `is_organization` false and
//!   true, a deal's `status` comes from its stage's category, activities are the
//!   tasks (`done` = `completed`), lead ids are UUIDs derived from the internal
//!   id ([`lead_uuid`]), archived leads are `Seed::archived_leads`.
//!
//! The token belongs to `SandboxOptions::token_owner`, by default the first
//! active admin: that user is `/users/me` and `is_you`, the default owner and
//! the creator of new activities, and must be an admin for seat changes.
//!
//! Sources (read for facts; the shapes are written from them):
//! - <https://pipedrive.readme.io/docs/core-api-concepts-authentication>:
//!   the token goes in the `x-api-token` header.
//! - <https://pipedrive.readme.io/docs/core-api-concepts-pagination>: v2 lists
//!   take `cursor` and `limit` (default 100, at most 500) and answer
//!   `additional_data.next_cursor`, `null` on the last page; offset lists take
//!   `start`/`limit` and answer `additional_data.pagination`
//!   (`start`, `limit`, `more_items_in_collection`, `next_start`).
//! - <https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting>: limits
//!   per token per 2-second window, `x-ratelimit-limit`, `x-ratelimit-remaining`,
//!   `x-ratelimit-reset` on each answer, 429 beyond; a daily token budget.
//! - <https://pipedrive.readme.io/docs/core-api-concepts-http-status-codes>.
//! - <https://github.com/pipedrive/client-nodejs> (v32.2.1), generated from
//!   Pipedrive's OpenAPI files: `src/versions/v1/api/users-api.ts` and
//!   `leads-api.ts` (paths, methods, `search_by_email`, "only `active_flag`
//!   can be updated", leads `PATCH`, `/leads/archived`), `src/versions/v1/models/`
//!   `base-user.ts`, `update-user-request.ts`, `lead.ts`, `update-lead-request.ts`;
//!   `src/versions/v2/api/{deals,persons,organizations,activities}-api.ts`
//!   (list filters, `limit` ≤ 500, `PATCH` updates), `src/versions/v2/models/`
//!   `deal.ts`, `organization-item.ts`, `activity-item.ts`, `add-activity-request.ts`;
//!   `CHANGELOG.md` (`is_admin` deprecated for `access`; `archived_status`
//!   removed, `GET /v1/leads` returns no archived leads; `x-api-token`
//!   replaces the `api_token` query parameter).
//! - <https://github.com/pipedrive/client-php>: `docs/versions/v2/Model/PersonItem.md`,
//!   `docs/versions/v1/Model/Unauthorized.md` (`success`, `error`, `errorCode`),
//!   `LeadNotFoundResponse.md` (`success`, `error`, `error_info`, `data`,
//!   `additional_data`), `lib/versions/v2/Api/ActivitiesApi.php` (adding an
//!   activity answers 200), `lib/versions/v1/Api/UsersApi.php` (updating a
//!   user answers 200, 403 or 404).
//!
//! Not confirmed, so chosen and kept plain: the exact `error` texts (401's
//! "unauthorized access", 429's "Request over limit"), the status of a
//! `limit` over 500 or a bad cursor (400 here), what Pipedrive does with an
//! inactive owner (400 here, as Sell's rule says), and whether an empty v1 list
//! is `[]` or `null` (`[]` here).

mod envelope;
mod gate;
mod records;
mod users;
mod wire;

use axum::{
    Router,
    body::Bytes,
    extract::{Path, RawQuery, State, rejection::BytesRejection, rejection::PathRejection},
    response::Response,
    routing::{MethodRouter, get},
};
use serde_json::{Map, Value};

use crate::SandboxState;
use envelope::PdError;
use offboard_domain::Resource;
use records::V2;

pub(crate) use gate::{admit, redact_token};
pub(crate) use wire::lead_id_fits;
pub use wire::{lead_id_from_uuid, lead_uuid};

type Answer = Result<Response, PdError>;

/// The `/api/v1` and `/api/v2` routes (the gate is layered on by the caller).
pub(crate) fn router() -> Router<SandboxState> {
    let mut router = Router::new()
        .route("/api/v1/users", get(users::all))
        .route("/api/v1/users/me", get(users::me))
        .route("/api/v1/users/find", get(users::find))
        .route("/api/v1/users/{id}", get(users::one).put(users::update))
        .route("/api/v1/leads", get(leads(false)))
        .route("/api/v1/leads/archived", get(leads(true)))
        .route(
            "/api/v1/leads/{id}",
            get(records::get_lead).patch(records::patch_lead),
        );
    for (path, kind) in [
        ("deals", V2::Deals),
        ("persons", V2::Persons),
        ("organizations", V2::Organizations),
        ("activities", V2::Activities),
    ] {
        let mut list = v2_list(kind);
        if kind == V2::Activities {
            list = list.post(records::create_activity);
        }
        router = router
            .route(&format!("/api/v2/{path}"), list)
            .route(&format!("/api/v2/{path}/{{id}}"), v2_one(kind));
    }
    router
        .fallback(|| async { PdError::no_route() })
        .method_not_allowed_fallback(|| async { PdError::method_not_allowed() })
}

fn leads(archived: bool) -> MethodRouter<SandboxState> {
    get(
        move |State(s): State<SandboxState>, RawQuery(q): RawQuery| {
            records::list_leads(archived, s, q)
        },
    )
}

fn v2_list(kind: V2) -> MethodRouter<SandboxState> {
    get(move |State(s): State<SandboxState>, RawQuery(q): RawQuery| records::list_v2(kind, s, q))
}

fn v2_one(kind: V2) -> MethodRouter<SandboxState> {
    get(
        move |State(s): State<SandboxState>, path: Result<Path<String>, PathRejection>| {
            records::get_v2(kind, s, path)
        },
    )
    .patch(
        move |State(s): State<SandboxState>,
              path: Result<Path<String>, PathRejection>,
              body: Result<Bytes, BytesRejection>| records::patch_v2(kind, s, path, body),
    )
}

/// A JSON object body.
fn body_object(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, PdError> {
    let body = body.map_err(|e| PdError::bad_request(e.body_text()))?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(PdError::bad_request(
            "The request body must be a JSON object",
        )),
        Err(e) => Err(PdError::bad_request(format!(
            "The request body is not valid JSON: {e}"
        ))),
    }
}

/// The record a Pipedrive update request names, in offboard's terms, for the
/// request log's counters: `PATCH /api/v2/persons/7` → contacts 7,
/// `PATCH /api/v1/leads/{uuid}` → leads with the internal id.
pub(crate) fn updated_record(method: &str, path: &str) -> Option<(Resource, i64)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("PATCH", ["api", "v2", kind, id]) => {
            let resource = match *kind {
                "deals" => Resource::Deals,
                "persons" => Resource::Contacts,
                "organizations" => Resource::Organizations,
                "activities" => Resource::Tasks,
                _ => return None,
            };
            Some((resource, id.parse().ok()?))
        }
        ("PATCH", ["api", "v1", "leads", uuid]) => {
            Some((Resource::Leads, lead_id_from_uuid(uuid)?))
        }
        _ => None,
    }
}
