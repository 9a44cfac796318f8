//! Query strings and paging the way Sell reads them: `page` from 1, `per_page`
//! defaulting to 25 and clamped to 100, `ids` as a comma list. A parameter that
//! can't be read is a 400 Sell envelope; unknown parameters are ignored.
//!
//! [`paginate`] cuts one page and builds its `meta.links`, keeping the caller's
//! filters in every link and leaving `next_page` out on the last page.

use std::collections::BTreeSet;

use super::envelope::{Links, SellError};

/// Sell's default page size.
pub(super) const DEFAULT_PER_PAGE: usize = 25;
/// Sell's largest page.
pub(super) const MAX_PER_PAGE: usize = 100;

/// The decoded query string, in order.
#[derive(Debug, Default)]
pub(super) struct Params(Vec<(String, String)>);

/// Which page to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Paging {
    pub page: usize,
    pub per_page: usize,
}

impl Params {
    pub fn parse(raw: Option<&str>) -> Result<Params, SellError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|e| {
                SellError::bad_param("query", format!("The query string can't be decoded: {e}"))
            })?;
        Ok(Params(pairs))
    }

    /// The value of `name`, if given and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, SellError> {
        self.get(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    SellError::bad_param(name, format!("{name} must be an integer, got {v:?}."))
                })
            })
            .transpose()
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, SellError> {
        self.get(name)
            .map(|v| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(SellError::bad_param(
                    name,
                    format!("{name} must be true or false, got {v:?}."),
                )),
            })
            .transpose()
    }

    /// `ids=1,2,3`.
    pub fn ids(&self, name: &str) -> Result<Option<BTreeSet<i64>>, SellError> {
        self.get(name)
            .map(|v| {
                v.split(',')
                    .map(|id| id.trim().parse::<i64>())
                    .collect::<Result<BTreeSet<i64>, _>>()
                    .map_err(|_| {
                        SellError::bad_param(
                            name,
                            format!("{name} must be a comma-separated list of integers."),
                        )
                    })
            })
            .transpose()
    }

    /// One of `allowed`, if given.
    pub fn one_of<'a>(
        &self,
        name: &str,
        allowed: &[&'a str],
    ) -> Result<Option<&'a str>, SellError> {
        self.get(name)
            .map(|v| {
                allowed
                    .iter()
                    .find(|a| a.eq_ignore_ascii_case(v))
                    .copied()
                    .ok_or_else(|| {
                        SellError::bad_param(
                            name,
                            format!("{name} must be one of {}, got {v:?}.", allowed.join(", ")),
                        )
                    })
            })
            .transpose()
    }

    /// `page` (≥ 1) and `per_page` (1..=100, default 25).
    pub fn paging(&self) -> Result<Paging, SellError> {
        let positive = |name: &str, default: usize| -> Result<usize, SellError> {
            match self.int(name)? {
                None => Ok(default),
                Some(n) => Ok(usize::try_from(n).unwrap_or(0).max(1)),
            }
        };
        Ok(Paging {
            page: positive("page", 1)?,
            per_page: positive("per_page", DEFAULT_PER_PAGE)?.min(MAX_PER_PAGE),
        })
    }

    /// The query for another page: the caller's filters, then `page` and `per_page`.
    fn with_page(&self, page: usize, per_page: usize) -> String {
        let mut pairs: Vec<(&str, String)> = self
            .0
            .iter()
            .filter(|(k, _)| k != "page" && k != "per_page")
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        pairs.push(("page", page.to_string()));
        pairs.push(("per_page", per_page.to_string()));
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    }
}

/// One page of `items` and its links (`{base_url}{path}?…`).
pub(super) fn paginate<T>(
    items: Vec<T>,
    paging: Paging,
    params: &Params,
    base_url: &str,
    path: &str,
) -> (Vec<T>, Links) {
    let Paging { page, per_page } = paging;
    let start = (page - 1).saturating_mul(per_page);
    let more = items.len() > start.saturating_add(per_page);
    let page_items: Vec<T> = items.into_iter().skip(start).take(per_page).collect();
    let link = |p: usize| format!("{base_url}{path}?{}", params.with_page(p, per_page));
    let links = Links {
        this: link(page),
        first_page: link(1),
        prev_page: (page > 1).then(|| link(page - 1)),
        next_page: more.then(|| link(page + 1)),
    };
    (page_items, links)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_is_clamped() {
        let p = Params::parse(Some("per_page=500&page=0")).unwrap();
        assert_eq!(
            p.paging().unwrap(),
            Paging {
                page: 1,
                per_page: 100
            }
        );
        let p = Params::parse(None).unwrap();
        assert_eq!(
            p.paging().unwrap(),
            Paging {
                page: 1,
                per_page: 25
            }
        );
        assert!(Params::parse(Some("page=x")).unwrap().paging().is_err());
    }

    #[test]
    fn links_keep_filters_and_stop_at_the_last_page() {
        let p = Params::parse(Some("email=jane.doe%40example.com&per_page=2&page=1")).unwrap();
        let (items, links) = paginate(
            vec![1, 2, 3],
            p.paging().unwrap(),
            &p,
            "http://h",
            "/v2/users",
        );
        assert_eq!(items, [1, 2]);
        assert_eq!(
            links.this,
            "http://h/v2/users?email=jane.doe%40example.com&page=1&per_page=2"
        );
        assert_eq!(
            links.next_page.as_deref(),
            Some("http://h/v2/users?email=jane.doe%40example.com&page=2&per_page=2")
        );
        assert!(links.prev_page.is_none());
        let p = Params::parse(Some("per_page=2&page=2")).unwrap();
        let (items, links) = paginate(
            vec![1, 2, 3],
            p.paging().unwrap(),
            &p,
            "http://h",
            "/v2/users",
        );
        assert_eq!(items, [3]);
        assert!(links.next_page.is_none());
        let (items, links) = paginate(vec![1, 2], p.paging().unwrap(), &p, "http://h", "/v2/users");
        assert!(items.is_empty() && links.next_page.is_none());
    }

    #[test]
    fn ids_and_bools() {
        let p = Params::parse(Some("ids=3,1&completed=false&x=")).unwrap();
        assert_eq!(p.ids("ids").unwrap(), Some(BTreeSet::from([1, 3])));
        assert_eq!(p.bool("completed").unwrap(), Some(false));
        assert_eq!(p.int("x").unwrap(), None);
        assert!(Params::parse(Some("ids=1,a")).unwrap().ids("ids").is_err());
    }
}
