//! Pipedrive behind the [`Crm`](super::Crm) trait (`[crm] kind = "pipedrive"`).
//!
//! Zendesk names Pipedrive as Sell's migration partner (DESIGN.md §9), so offboard
//! must offboard there too. Pipedrive differs from Sell where it matters to the
//! worker: users can be deactivated by API (`active_flag`, the only writable user
//! field) but never deleted; leads are UUIDs on the v1 API while every other object
//! is numbered on v2; lists page two ways (v2 cursor, v1 offset); and the token's
//! budget is a 2-second burst window plus a daily allowance, announced in headers.
//!
//! Inside: `wire` knows Pipedrive's envelopes, error conventions and rate-limit
//! headers (pure, unit-tested); this file maps the trait onto the endpoints.
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
