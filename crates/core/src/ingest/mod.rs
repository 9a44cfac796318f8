//! The receiving end: verify a webhook's signature on the raw bytes, map the
//! payload to canonical events, and hand them to the store in one transaction.
//!
//! - [`schemes`]: one module per signature scheme behind [`schemes::SignatureScheme`];
//!   vendor presets are rows of one table over the configurable HMAC scheme.
//! - [`mapping`]: JSON Pointers, value maps, defaults, arrays, forms (a private
//!   `form` module, whose [`FormError`] is re-exported), pings → events.
//! - `source`: the configured sources ([`Sources`]), each a verifier and a mapping.
//! - [`routes`]: `POST /webhooks/{source}` (and Okta's `GET` challenge), with one
//!   metrics outcome per request.
//!
//! Architecture invariant: nothing here calls the CRM or runs policy. A 2xx is
//! only sent after the store committed the event and its job (a ping excepted:
//! it stores nothing). Nothing here deletes events: they are the durable dedupe
//! record, kept well past any vendor's retry window.

mod form;
pub mod mapping;
pub mod routes;
pub mod schemes;
pub mod scim;
mod source;

pub use form::FormError;
pub use source::{Source, SourceError, Sources};
