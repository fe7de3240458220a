//! The path rule: a request path can never escape its stage or API, nor mean something else
//! to a backend that normalises paths its own way.
//!
//! The matcher and the backend URL both work on the path *as received* (percent-encoded), so
//! the proxy itself never turns `%2F` into a separator. What a backend might decode is the
//! risk, so a path is refused (400) when any segment, decoded once, is `.` or `..`, contains
//! `/`, `\` or NUL, or still contains an encoded `.`, `/`, `\` or NUL (double encoding such as
//! `%252e`); invalid percent-encoding is refused too. Empty segments (`//`) are collapsed, as
//! they are by most servers, and escapes of unreserved characters are decoded (`/%61dmin` is
//! `/admin`, RFC 3986 §6.2.2.2), so that a resource's settings cannot be sidestepped by
//! spelling its path otherwise. Clients normalise `./..` themselves (RFC 3986), so well-behaved
//! callers never see this rule.
//!
//! Beyond AWS, and unless `ProxyConfig::allow_raw_path_segments` says otherwise, a segment is
//! also refused (400) when:
//!
//! - it is `.` or `..` once its `;parameters` are removed (`/..;/`, `/.;x/`, `/%2e%2e;x/`):
//!   Tomcat and Jetty drop them before resolving dot segments;
//! - its percent-encoded bytes are not UTF-8, overlong forms included (`%c0%ae` is `.` to a
//!   lenient decoder such as old IIS);
//! - it holds, raw or encoded, a character that Unicode compatibility normalisation (NFKC)
//!   turns into `.`, `/` or `\`: U+FF0E, U+FE52, U+2024, U+FF0F, U+FF3C (full-width and small
//!   forms), which some frameworks fold before routing.
//!
//! The rules read the whole path, so they hold for the Host form and the path form
//! (`/restapis/{id}/{stage}/_user_request_/...`) alike.

use std::borrow::Cow;

use crate::error::Reject;

/// The normalised path, or why it is refused; `allow_raw` turns the rules beyond AWS off.
pub fn path(raw: &str, allow_raw: bool) -> Result<Cow<'_, str>, Reject> {
    if !raw.starts_with('/') {
        // `*` (OPTIONS) or an absolute-form oddity: nothing routes there.
        return Err(Reject::BadRequest("path must start with '/'"));
    }
    // One pass over the bytes first: most paths have no escape, backslash, dot or empty
    // segment, and then no segment needs a closer look.
    let bytes = raw.as_bytes();
    let special = bytes.iter().any(|b| matches!(b, b'%' | b'\\' | b'.'));
    let mut rewrite = bytes.windows(2).any(|w| w == b"//");
    if special {
        for segment in raw.split('/').filter(|s| !s.is_empty()) {
            check_segment(segment, !allow_raw)?;
        }
        rewrite |= encodes_unreserved(bytes);
    }
    if !rewrite {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    for segment in raw.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        push_decoding_unreserved(&mut out, segment);
    }
    if out.is_empty() || raw.ends_with('/') {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

fn check_segment(segment: &str, strict: bool) -> Result<(), Reject> {
    if segment == "." || segment == ".." {
        return Err(Reject::BadRequest("dot segment"));
    }
    if !segment.contains('%') {
        return if segment.contains('\\') {
            Err(Reject::BadRequest("backslash"))
        } else if strict && is_dots(without_params(segment.as_bytes())) {
            Err(Reject::BadRequest("dot segment with parameters"))
        } else if strict && has_look_alike(segment) {
            Err(Reject::BadRequest("look-alike of a dot or slash"))
        } else {
            Ok(())
        };
    }
    let decoded = decode(segment.as_bytes()).ok_or(Reject::BadRequest("invalid percent-encoding"))?;
    if is_dots(&decoded) {
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
        && (twice.iter().any(|b| matches!(b, b'/' | b'\\' | 0)) || is_dots(&twice))
        && twice != decoded
    {
        return Err(Reject::BadRequest("double-encoded separator"));
    }
    if strict {
        let text = std::str::from_utf8(&decoded)
            .map_err(|_| Reject::BadRequest("percent-encoded bytes that are not UTF-8"))?;
        if is_dots(without_params(&decoded)) {
            return Err(Reject::BadRequest("dot segment with parameters"));
        }
        if has_look_alike(text) {
            return Err(Reject::BadRequest("look-alike of a dot or slash"));
        }
    }
    Ok(())
}

/// Whether an escape in `s` stands for an unreserved character (RFC 3986 §2.3).
fn encodes_unreserved(s: &[u8]) -> bool {
    memchr::memchr_iter(b'%', s).any(|i| escaped(s, i).is_some_and(is_unreserved))
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The byte the escape at `s[i]` stands for.
fn escaped(s: &[u8], i: usize) -> Option<u8> {
    Some(hex(*s.get(i + 1)?)? << 4 | hex(*s.get(i + 2)?)?)
}

/// Appends `segment` with its escapes of unreserved characters decoded (RFC 3986 §6.2.2.2:
/// `%61dmin` and `admin` are the same path, and must match the same resource); other escapes
/// stay as they are.
fn push_decoding_unreserved(out: &mut String, segment: &str) {
    let s = segment.as_bytes();
    let mut from = 0;
    for i in memchr::memchr_iter(b'%', s) {
        if let Some(b) = escaped(s, i).filter(|b| is_unreserved(*b)) {
            out.push_str(&segment[from..i]);
            out.push(char::from(b));
            from = i + 3;
        }
    }
    out.push_str(&segment[from..]);
}

fn is_dots(s: &[u8]) -> bool {
    s == b"." || s == b".."
}

/// A segment without its `;parameters` (Tomcat's and Jetty's reading).
fn without_params(segment: &[u8]) -> &[u8] {
    match memchr::memchr(b';', segment) {
        Some(i) => &segment[..i],
        None => segment,
    }
}

/// Whether `s` holds a character NFKC turns into `.`, `/` or `\`.
fn has_look_alike(s: &str) -> bool {
    !s.is_ascii()
        && s.chars()
            .any(|c| matches!(c, '\u{FF0E}' | '\u{FE52}' | '\u{2024}' | '\u{FF0F}' | '\u{FF3C}'))
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
            assert!(matches!(path(p, false), Ok(Cow::Borrowed(s)) if s == p), "{p}");
        }
    }

    #[test]
    fn escapes_of_unreserved_characters_are_decoded() {
        assert_eq!(path("/prod/%61dmin", false).expect("ok"), "/prod/admin");
        assert_eq!(
            path("/prod/a%2Eb%7e/%41%20x", false).expect("ok"),
            "/prod/a.b~/A%20x"
        );
        assert_eq!(path("/prod//%2d", false).expect("ok"), "/prod/-");
        assert!(path("/prod/a%20b%2F", false).is_err());
        assert!(matches!(path("/prod/a%20b", false), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn empty_segments_collapse() {
        assert_eq!(path("//prod//pets", false).expect("ok"), "/prod/pets");
        assert_eq!(path("/prod/pets//", false).expect("ok"), "/prod/pets/");
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
            assert!(path(p, false).is_err(), "{p} must be refused");
            assert!(path(p, true).is_err(), "{p} must be refused, even raw");
        }
    }

    #[test]
    fn segments_a_backend_could_read_as_dots_are_refused_unless_raw() {
        for p in [
            "/prod/..;/dev/x",
            "/prod/.;x/y",
            "/prod/..;jsessionid=1/x",
            "/prod/%2e%2e;x/y",
            "/prod/..%3bx/y",
            "/prod/%c0%ae%c0%ae/x",
            "/prod/%c0%2e/x",
            "/prod/%e0%80%ae/x",
            "/prod/a%ffb",
            "/prod/%ef%bc%8e%ef%bc%8e/x",
            "/prod/a%ef%bc%8fb",
            "/prod/a%ef%bc%bcb",
            "/prod/%e2%80%a4/x",
            "/prod/%ef%b9%92/x",
        ] {
            assert!(
                matches!(path(p, false), Err(Reject::BadRequest(_))),
                "{p} must be refused"
            );
            assert!(path(p, true).is_ok(), "{p} passes when raw segments are allowed");
        }
        // Parameters and UTF-8 that are no dot segment pass.
        for p in [
            "/prod/a;b=1/x",
            "/prod/caf%c3%a9",
            "/prod/.well-known;x",
            "/prod/...;x",
        ] {
            assert!(path(p, false).is_ok(), "{p}");
        }
    }
}
