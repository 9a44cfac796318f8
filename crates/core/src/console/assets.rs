//! The console's static files, compiled into the binary: its stylesheet and the
//! vendored htmx (see `assets/README.md`). They are the same bytes for everyone,
//! so they are served without a session; everything with data needs one.

use axum::{
    http::header,
    response::{IntoResponse, Response},
};

const CSS: &[u8] = include_bytes!("assets/console.css");
const HTMX: &[u8] = include_bytes!("assets/htmx.min.js");

/// `GET /console/assets/console.css`
pub(crate) async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

/// `GET /console/assets/htmx.min.js`
pub(crate) async fn htmx() -> Response {
    asset("text/javascript; charset=utf-8", HTMX)
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // A new build may change them: cached for an hour, not forever.
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
