//! The headers every console response carries, pages, errors and redirects
//! alike: a Content Security Policy that allows only the console's own files (no
//! inline script or style, no framing, forms post only here), `X-Frame-Options`,
//! `Referrer-Policy`, `X-Content-Type-Options`, and `Cache-Control: no-store`
//! wherever the handler set no caching of its own (pages hold personal data).

use axum::{
    http::{HeaderName, HeaderValue, header},
    response::Response,
};

/// The console's CSP: its own origin only, nothing inline.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'; object-src 'none'";

/// Adds the security headers to `response` (an `axum::middleware::map_response`).
pub(crate) async fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in set {
        h.insert(name, HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
