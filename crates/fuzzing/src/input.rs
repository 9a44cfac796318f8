//! The plain-text input formats the targets share: sections split by a line
//! `%%`, and header blocks of `Name: value` lines.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// The line between two sections.
pub(crate) const SEPARATOR: &[u8] = b"\n%%\n";

/// `data` cut at the first `N - 1` separators; the last section holds the rest, and
/// sections the input lacks are empty.
pub(crate) fn sections<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&data[..0]; N];
    let mut rest = data;
    for slot in out.iter_mut().take(N - 1) {
        match find(rest, SEPARATOR) {
            Some(at) => {
                *slot = &rest[..at];
                rest = &rest[at + SEPARATOR.len()..];
            }
            None => {
                *slot = rest;
                rest = &rest[rest.len()..];
            }
        }
    }
    out[N - 1] = rest;
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One `Name: value` per line, appended in order (so a repeated header stays
/// repeated); a line that is no valid header is skipped, as an HTTP server would
/// have refused the request. Values may hold any byte a `HeaderValue` allows,
/// obs-text included.
pub(crate) fn headers(block: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in block.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            map.append(name, value);
        }
    }
    map
}

/// The first line of `block` and the rest.
pub(crate) fn first_line(block: &[u8]) -> (&[u8], &[u8]) {
    match block.iter().position(|b| *b == b'\n') {
        Some(at) => (&block[..at], &block[at + 1..]),
        None => (block, &block[block.len()..]),
    }
}

/// The header lines of a request or answer, as a `headers` block.
pub(crate) fn header_lines(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_fill_missing_ones_with_nothing() {
        assert_eq!(sections::<3>(b"a\n%%\nb"), [&b"a"[..], b"b", b""]);
        assert_eq!(sections::<2>(b"a\n%%\nb\n%%\nc"), [&b"a"[..], b"b\n%%\nc"]);
        assert_eq!(sections::<2>(b""), [&b""[..], b""]);
    }

    #[test]
    fn header_lines_keep_repeats_and_skip_nonsense() {
        let h = headers(b"X-A: 1\nx-a: 2\nno colon\nbad name: x\nX-B:\xff\n");
        assert_eq!(h.get_all("x-a").iter().count(), 2);
        assert_eq!(h.get("x-b").map(|v| v.as_bytes()), Some(&b"\xff"[..]));
        assert_eq!(h.len(), 3);
    }
}
