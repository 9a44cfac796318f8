//! `GET /scim/v2/Users` query parameters: the filters identity providers send to
//! find a user before they create or change one, and paging.
//!
//! Supported (and said so in `ServiceProviderConfig`'s documentation): `userName eq
//! "…"` (without case, as userName is caseExact false), `externalId eq "…"`, and
//! those joined by `and`. Anything else the grammar accepts is a 400
//! `invalidFilter` naming what is supported, never a silently wider answer.

use std::collections::BTreeMap;

use scim_v2::filter::{AttrExp, AttrPath, CompValue, CompareOp, Filter};

use super::{error::ScimError, resource::USER_SCHEMA};
use crate::store::ScimUserQuery;

/// Page size when the client asks for none.
pub const DEFAULT_COUNT: u64 = 100;
/// Most users one page returns (`ServiceProviderConfig` `filter.maxResults`).
pub const MAX_COUNT: u64 = 1000;

/// What a list request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// The store query (conditions and page).
    pub query: ScimUserQuery,
    /// `startIndex` as answered (1-based).
    pub start_index: u64,
    /// The filter matches no one by construction (`userName eq "a" and userName eq "b"`).
    pub empty: bool,
    /// `attributes`, split.
    pub attributes: Vec<String>,
    /// `excludedAttributes`, split.
    pub excluded: Vec<String>,
}

/// Reads the query parameters (names compared without case).
pub fn list_request(params: &BTreeMap<String, String>) -> Result<ListRequest, ScimError> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if get("sortBy").is_some() {
        return Err(ScimError::invalid_value(
            "sortBy is not supported (ServiceProviderConfig says sort.supported = false); users come oldest first",
        ));
    }
    let number = |name: &str| -> Result<Option<i64>, ScimError> {
        get(name)
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    ScimError::invalid_value(format!("{name} must be an integer, not {v:?}"))
                })
            })
            .transpose()
    };
    // RFC 7644 §3.4.2.4: a startIndex below 1 is read as 1, a negative count as 0.
    let start_index = u64::try_from(number("startIndex")?.unwrap_or(1).max(1)).unwrap_or(1);
    let count = number("count")?
        .map_or(DEFAULT_COUNT, |c| u64::try_from(c.max(0)).unwrap_or(0))
        .min(MAX_COUNT);
    let mut query = ScimUserQuery {
        offset: start_index - 1,
        limit: count,
        ..ScimUserQuery::default()
    };
    let mut empty = false;
    if let Some(text) = get("filter").filter(|f| !f.trim().is_empty()) {
        let filter: Filter = text
            .parse()
            .map_err(|e| ScimError::invalid_filter(format!("cannot parse filter {text:?}: {e}")))?;
        empty = !fold(&filter, &mut query)?;
    }
    let list = |name: &str| {
        get(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(ListRequest {
        query,
        start_index,
        empty,
        attributes: list("attributes"),
        excluded: list("excludedAttributes"),
    })
}

const SUPPORTED: &str =
    "offboard filters users by userName eq \"…\" and externalId eq \"…\", joined by and";

/// Adds the filter's conditions to `query`; `false` when they contradict each other.
fn fold(filter: &Filter, query: &mut ScimUserQuery) -> Result<bool, ScimError> {
    match filter {
        Filter::And(operands) => {
            let mut satisfiable = true;
            for f in operands.as_slice() {
                satisfiable &= fold(f, query)?;
            }
            Ok(satisfiable)
        }
        Filter::Attr(AttrExp::Comparison(path, CompareOp::Eq, CompValue::Str(value))) => {
            match attribute(path) {
                Some(Attribute::UserName) => Ok(narrow(&mut query.user_name, value, |a, b| {
                    a.to_lowercase() == b.to_lowercase()
                })),
                Some(Attribute::ExternalId) => {
                    Ok(narrow(&mut query.external_id, value, |a, b| a == b))
                }
                None => Err(ScimError::invalid_filter(format!(
                    "{SUPPORTED}; not {path}"
                ))),
            }
        }
        other => Err(ScimError::invalid_filter(format!(
            "{SUPPORTED}; not {other}"
        ))),
    }
}

enum Attribute {
    UserName,
    ExternalId,
}

fn attribute(path: &AttrPath) -> Option<Attribute> {
    if path.sub_attr.is_some()
        || path
            .uri
            .as_deref()
            .is_some_and(|u| !u.eq_ignore_ascii_case(USER_SCHEMA))
    {
        return None;
    }
    if path.name.eq_ignore_ascii_case("userName") {
        Some(Attribute::UserName)
    } else if path.name.eq_ignore_ascii_case("externalId") {
        Some(Attribute::ExternalId)
    } else {
        None
    }
}

/// Sets a condition, or checks it agrees with the one already set.
fn narrow(slot: &mut Option<String>, value: &str, same: impl Fn(&str, &str) -> bool) -> bool {
    match slot {
        Some(existing) => same(existing, value),
        None => {
            *slot = Some(value.to_owned());
            true
        }
    }
}
