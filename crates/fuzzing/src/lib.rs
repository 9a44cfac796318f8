//! The bodies of offboard's fuzz targets, written once: the cargo-fuzz crate in
//! `fuzz/` wraps each in a three-line `fuzz_target!`, and `tests/corpora.rs` runs
//! every committed corpus file through the same function under plain stable
//! `cargo test`, so CI replays what the fuzzer found without a nightly toolchain.
//!
//! This crate exists so the harnesses are ordinary, tested Rust next to the code
//! they drive: it is tooling, and the core does not depend on it.
//!
//! Each target takes any bytes and must never panic; a panic is a bug in the
//! product code (fixed there, with a regression test there too). Besides "no
//! panic", each checks properties that hold for every input:
//!
//! - [`signature_headers`]: a request (a Unix time, header lines, a body) against
//!   every scheme offboard ships (Standard Webhooks, each HMAC preset, custom HMAC
//!   templates, the static token); a request that verifies stops verifying when its
//!   body changes, and a message id is 1 to 256 characters.
//! - [`scheme_verify`]: a source's scheme settings as TOML, secrets and a body; a
//!   scheme that resolves and signs verifies what it signed, refuses it with one
//!   more byte of body and, when it signs a timestamp, once the window has passed.
//! - [`mapping`]: a source's mapping as TOML, request headers and a body (JSON or a
//!   form); every event mapped survives being stored and read back.
//! - [`policy_parse`]: a policy file; an error points inside the text, and a policy
//!   that loads decides for every kind of leaver without a guard making anything
//!   less safe, and its decisions survive being stored and read back.
//! - [`crm_responses`]: an answer (status, headers, body) read by each CRM client's
//!   decoders and error rules.
//!
//! The input formats are plain text with sections separated by a line `%%`, so a
//! corpus file can be read and a regression input written by hand; [`seeds`] makes
//! the starting inputs (`fuzz/README.md` says how the corpora were grown).

mod crm;
mod input;
mod mapping;
mod policy;
pub mod seeds;
mod signatures;

pub use crm::{crm_responses, decoded_shapes};
pub use mapping::mapping;
pub use policy::policy_parse;
pub use signatures::{scheme_verify, signature_headers};

/// A target's body: any bytes in, no panic.
pub type Target = fn(&[u8]);

/// Every fuzz target by name (the name of its `fuzz/fuzz_targets/<name>.rs` and of
/// its `fuzz/corpus/<name>/` directory).
pub const TARGETS: &[(&str, Target)] = &[
    ("signature_headers", signature_headers),
    ("scheme_verify", scheme_verify),
    ("mapping", mapping),
    ("policy_parse", policy_parse),
    ("crm_responses", crm_responses),
];
