//! The OpenAPI 3.1 description of the HTTP API, served at `/api/v1/openapi.json`.
//! Written by hand from [`ROUTES`], the same table the tests compare with the live
//! router, so the document cannot silently miss a route.

use serde_json::{Value, json};

/// Every route offboard serves: (method, path as in the OpenAPI document).
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/webhooks/{source}"),
    ("get", "/webhooks/{source}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/{id}"),
    ("post", "/api/v1/jobs/{id}/retry"),
    ("post", "/api/v1/jobs/{id}/cancel"),
    ("post", "/api/v1/jobs/{id}/approve"),
];

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn id_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } })
}

fn operate(op: &str, what: &str) -> Value {
    json!({
        "post": {
            "operationId": format!("{op}Job"),
            "summary": what,
            "security": [{ "bearer": [] }],
            "parameters": [id_param()],
            "responses": {
                "200": { "description": "the job after the change", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/JobSummary" } } } },
                "401": error_response("missing or wrong admin token"),
                "404": error_response("no such job"),
                "409": error_response("the job's state does not allow this")
            }
        }
    })
}

/// Statuses any operation may answer besides its own, each in the error envelope:
/// the request timeout, a server fault, and (where the store is read or written)
/// the store being away.
fn add_common_statuses(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let uses_store = !STORELESS.contains(&path.as_str());
        let Some(operations) = item.as_object_mut() else {
            continue;
        };
        for operation in operations.values_mut() {
            let Some(responses) = operation["responses"].as_object_mut() else {
                continue;
            };
            responses.entry("408").or_insert_with(|| {
                error_response("the request took longer than server.request_timeout_secs")
            });
            responses
                .entry("500")
                .or_insert_with(|| error_response("internal error; see the server log"));
            if uses_store {
                responses.entry("503").or_insert_with(|| {
                    json!({
                        "description": "store_unavailable: the store did not answer within [store] unavailable_after_ms; nothing was stored; retry after Retry-After seconds",
                        "headers": { "Retry-After": { "schema": { "type": "integer" } } },
                        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
                    })
                });
            }
        }
    }
}

/// Paths whose answer never waits on the store.
const STORELESS: &[&str] = &["/healthz", "/metrics", "/api/v1/openapi.json"];

/// The OpenAPI 3.1 description of the admin API, served at
/// `GET /api/v1/openapi.json`; `tests/api` checks it against the real routes.
pub fn document() -> Value {
    let mut doc = described();
    add_common_statuses(&mut doc);
    doc
}

fn described() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "offboard",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Receives HR offboarding webhooks and operates the offboarding job queue."
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": { "error": { "type": "object", "required": ["code", "message"],
                        "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } }
                },
                "JobState": { "type": "string", "enum": ["queued", "running", "scheduled", "needs_review", "succeeded", "failed", "cancelled"] },
                "JobSummary": {
                    "type": "object", "required": ["id", "state", "employee_email", "created_at", "updated_at"],
                    "properties": {
                        "id": { "type": "string" }, "kind": { "type": "string" }, "state": { "$ref": "#/components/schemas/JobState" },
                        "employee_email": { "type": "string" }, "action": { "type": ["string", "null"] },
                        "created_at": { "type": "string", "format": "date-time" }, "updated_at": { "type": "string", "format": "date-time" }
                    }
                },
                "JobDetail": {
                    "type": "object", "required": ["id", "state", "attempt", "event", "plan", "checkpoints", "audit", "notifications"],
                    "properties": {
                        "id": { "type": "string" }, "state": { "$ref": "#/components/schemas/JobState" }, "attempt": { "type": "integer" },
                        "event": { "type": "object" }, "plan": { "type": ["object", "null"] }, "checkpoints": { "type": "object" },
                        "audit": { "type": "array", "items": { "type": "object", "required": ["at", "kind", "detail"],
                            "properties": { "at": { "type": "string", "format": "date-time" }, "kind": { "type": "string" }, "detail": {} } } },
                        "notifications": { "type": "array", "items": { "$ref": "#/components/schemas/Notification" },
                            "description": "What the job's steps told people (DESIGN.md §13), oldest first, each with its delivery state." }
                    }
                },
                "Notification": {
                    "type": "object",
                    "required": ["id", "job_id", "event", "channel", "target", "message", "state", "attempts", "next_at", "created_at", "updated_at"],
                    "properties": {
                        "id": { "type": "string", "description": "Stable per cause and recipient; sent as webhook-id and in the e-mail's Message-ID." },
                        "job_id": { "type": "string" },
                        "event": { "type": "string", "enum": ["job.decided", "records.reassigned", "seat.requested", "seat.verified", "job.needs_review", "job.failed"] },
                        "channel": { "type": "string", "enum": ["email", "webhook"] },
                        "target": { "type": "string", "description": "The address (redacted with [privacy] redact_emails), or the webhook endpoint's name." },
                        "message": { "type": "object", "description": "What is sent: subject, text and html; or the webhook's JSON body." },
                        "state": { "type": "string", "enum": ["pending", "sending", "delivered", "dead"] },
                        "attempts": { "type": "integer" },
                        "next_at": { "type": "string", "format": "date-time" },
                        "last_error": { "type": ["string", "null"] },
                        "delivered_at": { "type": ["string", "null"], "format": "date-time" },
                        "created_at": { "type": "string", "format": "date-time" },
                        "updated_at": { "type": "string", "format": "date-time" }
                    }
                },
                "Accepted": {
                    "type": "object", "required": ["event_id", "job_id", "duplicate"],
                    "properties": { "event_id": { "type": "string" }, "job_id": { "type": "string" }, "duplicate": { "type": "boolean" } }
                }
            }
        },
        "paths": {
            "/webhooks/{source}": { "get": {
                "operationId": "verifyWebhookSource",
                "summary": "Answer Okta's one-time verification request (static_token sources only)",
                "parameters": [
                    { "name": "source", "in": "path", "required": true, "schema": { "type": "string" } },
                    { "name": "x-okta-verification-challenge", "in": "header", "schema": { "type": "string" } }
                ],
                "responses": {
                    "200": { "description": "the challenge echoed", "content": { "application/json": { "schema": { "type": "object", "required": ["verification"], "properties": { "verification": { "type": "string" } } } } } },
                    "400": error_response("the challenge header is missing"),
                    "401": error_response("the source's token is missing or wrong"),
                    "404": error_response("unknown source"),
                    "405": error_response("this source's scheme has no verification request: webhooks are POSTed")
                }
            }, "post": {
                "operationId": "receiveWebhook",
                "summary": "Receive a signed HR webhook",
                "parameters": [{ "name": "source", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } },
                "responses": {
                    "202": { "description": "stored", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Accepted" } } } },
                    "200": { "description": "a repeat of a stored event", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Accepted" } } } },
                    "400": error_response("not JSON or not mappable to an offboarding event"),
                    "401": error_response("bad, missing or stale signature"),
                    "404": error_response("unknown source"),
                    "409": error_response("the event id was already used with another body"),
                    "413": error_response("body larger than server.max_body_bytes")
                }
            } },
            "/healthz": { "get": { "operationId": "healthz", "summary": "Liveness", "responses": { "200": { "description": "alive", "content": { "application/json": { "schema": { "type": "object", "required": ["status"], "properties": { "status": { "const": "ok" } } } } } } } } },
            "/readyz": { "get": { "operationId": "readyz", "summary": "Store reachable and migrated",
                "responses": { "200": { "description": "ready" }, "503": error_response("not ready") } } },
            "/metrics": { "get": { "operationId": "metrics", "summary": "Prometheus metrics",
                "responses": { "200": { "description": "Prometheus text format", "content": { "text/plain": {} } } } } },
            "/api/v1/openapi.json": { "get": { "operationId": "openapi", "summary": "This document", "security": [{ "bearer": [] }],
                "responses": { "200": { "description": "OpenAPI 3.1", "content": { "application/json": {} } },
                    "401": error_response("missing or wrong admin token") } } },
            "/api/v1/jobs": { "get": {
                "operationId": "listJobs", "summary": "List jobs, newest first",
                "security": [{ "bearer": [] }],
                "parameters": [
                    { "name": "state", "in": "query", "schema": { "$ref": "#/components/schemas/JobState" } },
                    { "name": "employee", "in": "query", "schema": { "type": "string" } },
                    { "name": "since", "in": "query", "schema": { "type": "string", "format": "date-time" } },
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 0, "maximum": crate::store::JobFilter::MAX_LIMIT } },
                    { "name": "cursor", "in": "query", "schema": { "type": "string" } }
                ],
                "responses": {
                    "200": { "description": "jobs", "content": { "application/json": { "schema": { "type": "object", "required": ["jobs", "next_cursor"],
                        "properties": { "jobs": { "type": "array", "items": { "$ref": "#/components/schemas/JobSummary" } }, "next_cursor": { "type": ["string", "null"] } } } } } },
                    "400": error_response("bad filter"),
                    "401": error_response("missing or wrong admin token")
                }
            } },
            "/api/v1/jobs/{id}": { "get": {
                "operationId": "showJob", "summary": "One job with its event, plan, checkpoints and audit trail",
                "security": [{ "bearer": [] }],
                "parameters": [id_param()],
                "responses": {
                    "200": { "description": "the job", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/JobDetail" } } } },
                    "401": error_response("missing or wrong admin token"),
                    "404": error_response("no such job")
                }
            } },
            "/api/v1/jobs/{id}/retry": operate("retry", "Put a failed, cancelled or needs_review job back in the queue"),
            "/api/v1/jobs/{id}/cancel": operate("cancel", "Cancel a job that has not finished"),
            "/api/v1/jobs/{id}/approve": operate("approve", "Let a job waiting in needs_review proceed")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_every_route() {
        let doc = document();
        for (method, path) in ROUTES {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} missing"
            );
        }
        let count: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(count, ROUTES.len(), "document has routes the table lacks");
    }
}
