//! `/api/v1/users`: list, one, `find` (by name or, with `search_by_email=1`,
//! by e-mail), `me` (the token owner) and `PUT` of `active_flag`, the only field
//! Pipedrive lets the API change. Deactivating and reactivating change the
//! shared model's user status, exactly as the admin's control routes do;
//! Pipedrive users can't be deleted through the API, so there is no `DELETE`.
//! Users deleted in the shared model (a Sell-only act) are invisible here.

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State, rejection::BytesRejection, rejection::PathRejection},
};
use serde_json::Value;

use super::{
    Answer,
    envelope::{PdError, list, ok},
    wire,
};
use crate::{SandboxState, db::ControlError, query::Params, state::now};
use offboard_domain::{UserRole, UserStatus};

fn user_id(path: Result<Path<String>, PathRejection>) -> Result<i64, PdError> {
    path.ok()
        .and_then(|Path(id)| id.parse().ok())
        .ok_or_else(|| PdError::not_found("User"))
}

pub(super) async fn all(State(state): State<SandboxState>) -> Answer {
    let db = state.inner.db.read().await;
    let me = state.token_user(&db).map(|u| u.id);
    let users = db
        .users
        .values()
        .filter(|u| u.deleted_at.is_none())
        .map(|u| wire::user(u, me))
        .collect();
    Ok(list(users, serde_json::json!({})))
}

pub(super) async fn one(
    State(state): State<SandboxState>,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = user_id(path)?;
    let db = state.inner.db.read().await;
    let me = state.token_user(&db).map(|u| u.id);
    let user = db
        .visible_user(id)
        .ok_or_else(|| PdError::not_found("User"))?;
    Ok(ok(wire::user(user, me)))
}

pub(super) async fn me(State(state): State<SandboxState>) -> Answer {
    let db = state.inner.db.read().await;
    let user = state
        .token_user(&db)
        .ok_or_else(|| PdError::not_found("User"))?;
    Ok(ok(wire::me(user)))
}

/// `term` matches anywhere, case-insensitively, in the name or (with
/// `search_by_email=1`) only in the e-mail, so an exact e-mail may also find
/// `x.jane.doe@…`: clients must compare the e-mail themselves.
pub(super) async fn find(State(state): State<SandboxState>, RawQuery(q): RawQuery) -> Answer {
    let params = Params::parse(q.as_deref())?;
    let term = params
        .get("term")
        .map(str::to_lowercase)
        .ok_or_else(|| PdError::bad_request("term is required"))?;
    let by_email = match params.get("search_by_email") {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(other) => {
            return Err(PdError::bad_request(format!(
                "search_by_email must be 0 or 1, got {other:?}"
            )));
        }
    };
    let db = state.inner.db.read().await;
    let me = state.token_user(&db).map(|u| u.id);
    let found = db
        .users
        .values()
        .filter(|u| u.deleted_at.is_none())
        .filter(|u| {
            let field = if by_email { &u.email } else { &u.name };
            field.to_lowercase().contains(&term)
        })
        .map(|u| wire::user(u, me))
        .collect();
    Ok(list(found, serde_json::json!({})))
}

/// `PUT /api/v1/users/{id}` with `{"active_flag": bool}`; only an admin's token
/// may change a seat.
pub(super) async fn update(
    State(state): State<SandboxState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let id = user_id(path)?;
    let body = super::body_object(body)?;
    if let Some(field) = body.keys().find(|k| *k != "active_flag") {
        return Err(PdError::bad_request(format!(
            "{field} can't be updated; only active_flag can"
        )));
    }
    let active = match body.get("active_flag") {
        Some(Value::Bool(b)) => *b,
        _ => {
            return Err(PdError::bad_request(
                "active_flag is required and must be a boolean",
            ));
        }
    };
    let mut db = state.inner.db.write().await;
    let admin = state
        .token_user(&db)
        .is_some_and(|u| u.role == UserRole::Admin && u.is_active());
    if !admin {
        return Err(PdError::forbidden(
            "Only admins can activate or deactivate users",
        ));
    }
    let status = if active {
        UserStatus::Active
    } else {
        UserStatus::Inactive
    };
    let user = db.set_status(id, status, &now()).map_err(|e| match e {
        ControlError::UnknownUser(_) | ControlError::Deleted(_) => PdError::not_found("User"),
        _ => PdError::internal(),
    })?;
    let me = state.token_user(&db).map(|u| u.id);
    Ok(ok(wire::user(&user, me)))
}
