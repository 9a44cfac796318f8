//! The console's errors, answered as pages rather than the API's JSON envelope: a
//! person reads them. 4xx say what was wrong; a store failure is logged and the
//! page says only that it happened (like the API's opaque 5xx).

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};

use super::layout::{NoticeKind, Shell, notice, page};
use crate::store::StoreError;

/// Why a console request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConsoleError {
    /// No such job (or page).
    #[error("{0}")]
    NotFound(String),
    /// The request itself is wrong (a filter that does not parse).
    #[error("{0}")]
    BadRequest(String),
    /// A form without the session's CSRF token, or with another one.
    #[error(
        "this form is not from your session (missing or wrong CSRF token); nothing was changed"
    )]
    Csrf,
    /// The action does not apply in the job's state (it moved on meanwhile).
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(StoreError),
}

impl From<StoreError> for ConsoleError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => Self::NotFound(format!("no job {id}")),
            StoreError::WrongState { .. } => Self::Conflict(format!("{e}; nothing was changed")),
            other => Self::Store(other),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, title) = match &self {
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
            Self::Csrf => (StatusCode::FORBIDDEN, "Forbidden"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "Not possible now"),
            Self::Store(e) if e.is_unavailable() => {
                (StatusCode::SERVICE_UNAVAILABLE, "Store unavailable")
            }
            Self::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Something failed"),
        };
        let text = match &self {
            Self::Store(e) if e.is_unavailable() => {
                tracing::warn!(surface = "console", error = %e, "store unavailable: answering 503");
                metrics::counter!(crate::metrics::STORE_UNAVAILABLE_TOTAL, "surface" => "console")
                    .increment(1);
                "The store is unavailable right now; nothing was changed. Try again in a moment."
                    .to_owned()
            }
            Self::Store(e) => {
                tracing::error!(error = %e, "console: store failed");
                "The store failed while answering; the server log has the details.".to_owned()
            }
            other => other.to_string(),
        };
        // No navigation (it needs the session's token, which an error may lack);
        // the link leads back in.
        let body = maud::html! {
            (notice(NoticeKind::Error, &text))
            p { a href="/console" { "Back to the overview" } }
        };
        let mut response = (status, page(title, Shell::default(), body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, 1.into());
        }
        response
    }
}
