//! Salesforce record ids over the model's `i64` ids, one codec for the whole face.
//!
//! A Salesforce id is 15 case-sensitive characters — a 3-character key prefix
//! naming the object (`005` User, `00Q` Lead, …) and 12 more — plus, in the
//! 18-character form the API sends, a 3-character suffix that encodes which of
//! the 15 are upper-case letters, so that the long form survives
//! case-insensitive handling. Here the 12 characters are the model id in
//! base 62 (`0-9A-Za-z`, Salesforce's own alphabet), zero-padded: `005` + id 1
//! is `005000000000001AAA`. 62^12 > 2^63, so every non-negative `i64` fits;
//! the sandbox refuses to start a Salesforce face on a seed with a negative id.
//!
//! The suffix: split the 15 characters into three groups of five; in each, bit
//! `i` is set when character `i` is `A`–`Z`; the 5-bit number indexes
//! `ABCDEFGHIJKLMNOPQRSTUVWXYZ012345`. Input ids may be 15 characters (case
//! matters) or 18 (the suffix restores the case, so any casing is accepted, as
//! Salesforce does).

/// Salesforce's digits, in its order.
const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// The case-safety suffix's alphabet.
const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
/// Characters after the key prefix in the 15-character form.
const BODY: usize = 12;

/// The 3-character case-safety suffix of a 15-character id.
pub(crate) fn checksum(id15: &str) -> String {
    id15.as_bytes()
        .chunks(5)
        .take(3)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            SUFFIX[bits] as char
        })
        .collect()
}

/// The 18-character id of model id `n` under `prefix` (`None` for a negative id).
pub(crate) fn encode(prefix: &str, n: i64) -> Option<String> {
    let mut n = u64::try_from(n).ok()?;
    let mut body = [b'0'; BODY];
    for slot in body.iter_mut().rev() {
        *slot = DIGITS[(n % 62) as usize];
        n /= 62;
    }
    let id15 = format!("{prefix}{}", std::str::from_utf8(&body).ok()?);
    let suffix = checksum(&id15);
    Some(id15 + &suffix)
}

/// [`encode`] for ids the seed check has already vetted (non-negative).
pub(crate) fn id(prefix: &str, n: i64) -> String {
    encode(prefix, n).unwrap_or_else(|| format!("{prefix}{n}"))
}

/// The 15 case-sensitive characters of a 15- or 18-character id, or `None`
/// when it is neither, isn't alphanumeric, or its suffix doesn't match.
pub(crate) fn canonical15(id: &str) -> Option<String> {
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    match id.len() {
        15 => Some(id.to_owned()),
        18 => {
            let (head, suffix) = id.split_at(15);
            let mut out = Vec::with_capacity(15);
            for (group, s) in head.as_bytes().chunks(5).zip(suffix.bytes()) {
                let bits = SUFFIX.iter().position(|c| *c == s.to_ascii_uppercase())?;
                for (i, c) in group.iter().enumerate() {
                    out.push(if bits & (1 << i) != 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    });
                }
            }
            let restored = String::from_utf8(out).ok()?;
            // Digits can't carry case: a suffix bit on a digit is no suffix Salesforce made.
            (checksum(&restored) == suffix.to_ascii_uppercase()).then_some(restored)
        }
        _ => None,
    }
}

/// The key prefix and model id an id names, if it is one of ours.
pub(crate) fn decode(id: &str) -> Option<(String, i64)> {
    let id15 = canonical15(id)?;
    let (prefix, body) = id15.split_at(3);
    let mut n: u64 = 0;
    for b in body.bytes() {
        let d = DIGITS.iter().position(|c| *c == b)? as u64;
        n = n.checked_mul(62)?.checked_add(d)?;
    }
    Some((prefix.to_owned(), i64::try_from(n).ok()?))
}

/// The model id behind `id` if it carries `prefix`.
pub(crate) fn decode_as(prefix: &str, id: &str) -> Option<i64> {
    decode(id).filter(|(p, _)| p == prefix).map(|(_, n)| n)
}

/// The 18-character form of any 15- or 18-character id, for comparisons.
pub(crate) fn long_form(id: &str) -> Option<String> {
    canonical15(id).map(|s| {
        let suffix = checksum(&s);
        s + &suffix
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_examples_get_their_published_suffixes() {
        // Salesforce's REST docs (an Account and a User in their examples).
        assert_eq!(checksum("001D000000IRFma"), "IAH");
        assert_eq!(checksum("005D0000001QX8W"), "IAW");
        // salesforce_id_formatter's README and a widely copied converter's doctests.
        assert_eq!(checksum("70130000001tcyI"), "AAQ");
        assert_eq!(checksum("a0BA0000000L2ZC"), "MA0");
        assert_eq!(checksum("AAaAAbbBBBCcCCC"), "123");
        assert_eq!(checksum("ABCDEFGHIJKLMNO"), "555");
    }

    #[test]
    fn ids_round_trip_in_both_forms() {
        for n in [0, 1, 61, 62, 101, 30_001, 123_456_789, i64::MAX] {
            let long = encode("00Q", n).unwrap();
            assert_eq!(long.len(), 18, "{long}");
            assert!(long.starts_with("00Q"));
            assert_eq!(decode(&long), Some(("00Q".to_owned(), n)));
            assert_eq!(decode(&long[..15]), Some(("00Q".to_owned(), n)), "15 chars");
            assert_eq!(
                decode(&long.to_ascii_lowercase()),
                Some(("00Q".to_owned(), n)),
                "the 18-character form is case-safe"
            );
        }
        assert_eq!(encode("005", 1).unwrap(), "005000000000001AAA");
        assert_eq!(encode("005", -1), None);
    }

    #[test]
    fn bad_ids_are_refused() {
        let long = encode("003", 4242).unwrap();
        assert_eq!(decode_as("001", &long), None, "wrong prefix");
        assert_eq!(decode_as("003", &long), Some(4242));
        let mut wrong = long.clone();
        wrong.replace_range(15.., "ZZZ");
        assert_eq!(decode(&wrong), None, "suffix marks digits as upper case");
        assert_eq!(decode("003"), None);
        assert_eq!(decode("003000000000001-AA"), None);
        assert_eq!(long_form(&long[..15]), Some(long.clone()));
        // 62^12 - 1 doesn't fit an i64.
        assert_eq!(decode("003zzzzzzzzzzzz"), None);
    }
}
