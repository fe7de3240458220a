//! The path rule: a request path can never escape its stage or API.
//!
//! The matcher and the backend URL both work on the path *as received* (percent-encoded), so
//! the proxy itself never turns `%2F` into a separator. What a backend might decode is the
//! risk, so a path is refused (400) when any segment, decoded once, is `.` or `..`, contains
//! `/`, `\` or NUL, or still contains an encoded `.`, `/`, `\` or NUL (double encoding such as
//! `%252e`); invalid percent-encoding is refused too. Empty segments (`//`) are collapsed, as
//! they are by most servers. Clients normalise `./..` themselves (RFC 3986), so well-behaved
//! callers never see this rule.

use std::borrow::Cow;

use crate::error::Reject;

/// The normalised path, or why it is refused.
pub fn path(raw: &str) -> Result<Cow<'_, str>, Reject> {
    if !raw.starts_with('/') {
        // `*` (OPTIONS) or an absolute-form oddity: nothing routes there.
        return Err(Reject::BadRequest("path must start with '/'"));
    }
    // One pass over the bytes first: most paths have no escape, backslash, dot or empty
    // segment, and then no segment needs a closer look.
    let bytes = raw.as_bytes();
    let special = bytes.iter().any(|b| matches!(b, b'%' | b'\\' | b'.'));
    let collapse = bytes.windows(2).any(|w| w == b"//");
    if special {
        for segment in raw.split('/').filter(|s| !s.is_empty()) {
            check_segment(segment)?;
        }
    }
    if !collapse {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    for segment in raw.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || raw.ends_with('/') {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

fn check_segment(segment: &str) -> Result<(), Reject> {
    if segment == "." || segment == ".." {
        return Err(Reject::BadRequest("dot segment"));
    }
    if !segment.contains('%') {
        return if segment.contains('\\') {
            Err(Reject::BadRequest("backslash"))
        } else {
            Ok(())
        };
    }
    let decoded = decode(segment.as_bytes()).ok_or(Reject::BadRequest("invalid percent-encoding"))?;
    if decoded == b"." || decoded == b".." {
        return Err(Reject::BadRequest("encoded dot segment"));
    }
    if decoded.iter().any(|b| matches!(b, b'/' | b'\\' | 0)) {
        return Err(Reject::BadRequest("encoded separator"));
    }
    if segment.contains('\\') {
        return Err(Reject::BadRequest("backslash"));
    }
    // Double encoding: what a second decode would turn into a separator or dot.
    if let Some(twice) = decode(&decoded)
        && (twice.iter().any(|b| matches!(b, b'/' | b'\\' | 0)) || twice == b"." || twice == b"..")
        && twice != decoded
    {
        return Err(Reject::BadRequest("double-encoded separator"));
    }
    Ok(())
}

/// Percent-decodes; `None` on a malformed escape.
fn decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hi = hex(*s.get(i + 1)?)?;
            let lo = hex(*s.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass_untouched() {
        for p in [
            "/",
            "/prod",
            "/prod/pets/7",
            "/prod/files/a%20b",
            "/prod/x/",
            "/prod/100%25",
        ] {
            assert!(matches!(path(p), Ok(Cow::Borrowed(s)) if s == p), "{p}");
        }
    }

    #[test]
    fn empty_segments_collapse() {
        assert_eq!(path("//prod//pets").expect("ok"), "/prod/pets");
        assert_eq!(path("/prod/pets//").expect("ok"), "/prod/pets/");
    }

    #[test]
    fn escapes_are_refused() {
        for p in [
            "/prod/../dev/x",
            "/prod/./x",
            "/prod/%2e%2e/dev",
            "/prod/%2E/x",
            "/prod/.%2e/x",
            "/prod/a%2Fb",
            "/prod/a%5cb",
            "/prod/a\\b",
            "/prod/a%00b",
            "/prod/%252e%252e/x",
            "/prod/a%252Fb",
            "/prod/%zz",
            "/prod/%2",
            "*",
        ] {
            assert!(path(p).is_err(), "{p} must be refused");
        }
    }
}
