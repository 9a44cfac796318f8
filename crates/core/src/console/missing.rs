//! `/console/…` paths that are no page: a 404 page with the security headers,
//! and only inside a session, like every other console route (a stranger is sent
//! to the sign-in form and learns nothing about what exists).

use super::{auth::Signed, error::ConsoleError};

/// `GET /console/{*rest}` for anything no other route matches.
pub(crate) async fn no_such_page(_signed: Signed) -> ConsoleError {
    ConsoleError::NotFound("no such console page".to_owned())
}
