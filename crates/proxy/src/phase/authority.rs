//! The authority of a request: the one host name every later step reads (the Host form of
//! routing, the PRIVATE listener check, `X-Forwarded-Host` and `$context.domainName`), decided
//! here once for HTTP/1.x and HTTP/2 alike.
//!
//! The rules (RFC 9112 §3.2, RFC 9113 §8.3.1), each refused with 400 `BadRequestException`:
//!
//! - HTTP/1.1 needs exactly one `Host`, even with an absolute-form target; none, or more
//!   than one, is refused. HTTP/1.0 may go without.
//! - An absolute-form target (`GET http://h/x HTTP/1.1`) names the authority; a `Host` that
//!   differs from it (ASCII case aside) is refused rather than ignored, so a proxy in front
//!   that reads `Host` and the gateway that reads the target cannot route one request two ways.
//! - HTTP/2: `:authority` is the authority; a `host` header that differs from it makes the
//!   request malformed. Without `:authority`, `host` is used.
//! - The value is `host[:port]`: a name of letters, digits, `-`, `.`, `_` and `~`, or an IP
//!   literal in brackets, and a port of 1 to 5 digits up to 65535. A list (`a, b`), user info
//!   (`u@h`), percent-encoding, spaces and control characters are refused.
//! - An empty `Host` (allowed by RFC 9112 when the target has no authority) means none: only
//!   the path form routes.

use http::{HeaderValue, Version, header, request::Parts};

use crate::error::Reject;

/// The request's authority, or why the request is refused. `None`: the request names none
/// (HTTP/1.0 without Host, an empty Host, HTTP/2 with neither `:authority` nor `host`).
pub fn decide(parts: &Parts) -> Result<Option<HeaderValue>, Reject> {
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(Reject::BadRequest("more than one Host"));
    }
    let target = parts.uri.authority().map(|a| a.as_str());
    let decided = match (target, host) {
        (_, None) if parts.version == Version::HTTP_11 => {
            return Err(Reject::BadRequest("missing Host"));
        }
        (Some(t), Some(h)) if !t.as_bytes().eq_ignore_ascii_case(h.as_bytes()) => {
            return Err(Reject::BadRequest("Host differs from the request's authority"));
        }
        (Some(t), _) => HeaderValue::from_str(t).map_err(|_| Reject::BadRequest("invalid authority"))?,
        (None, Some(h)) => h.clone(),
        (None, None) => return Ok(None),
    };
    if decided.is_empty() {
        return Ok(None);
    }
    if !valid(decided.as_bytes()) {
        return Err(Reject::BadRequest("invalid Host"));
    }
    Ok(Some(decided))
}

/// Whether `value` is `host[:port]` as the module documents.
fn valid(value: &[u8]) -> bool {
    let (host, port) = if value.first() == Some(&b'[') {
        let Some(end) = memchr::memchr(b']', value) else {
            return false;
        };
        let literal = &value[1..end];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        {
            return false;
        }
        match &value[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&value[..=end], Some(port)),
            _ => return false,
        }
    } else {
        match memchr::memrchr(b':', value) {
            Some(i) => (&value[..i], Some(&value[i + 1..])),
            None => (value, None),
        }
    };
    let name_ok = !host.is_empty()
        && (host.first() == Some(&b'[')
            || host
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')));
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.iter().all(u8::is_ascii_digit)
            && p.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')) <= 65535
    });
    name_ok && port_ok
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;

    fn parts(version: Version, uri: &str, hosts: &[&'static str]) -> Parts {
        let mut b = Request::get(uri).version(version);
        for h in hosts {
            b = b.header(header::HOST, *h);
        }
        b.body(()).expect("request").into_parts().0
    }

    fn decided(version: Version, uri: &str, hosts: &[&'static str]) -> Result<Option<String>, Reject> {
        decide(&parts(version, uri, hosts)).map(|h| h.map(|h| h.to_str().expect("ascii").to_string()))
    }

    #[test]
    fn one_valid_host_is_the_authority() {
        let (v10, v11, v2) = (Version::HTTP_10, Version::HTTP_11, Version::HTTP_2);
        for (v, uri, hosts, want) in [
            (v11, "/x", &["a.example"][..], Some("a.example")),
            (v11, "/x", &["a.example:8443"], Some("a.example:8443")),
            (v11, "/x", &["[::1]:443"], Some("[::1]:443")),
            (v11, "/x", &["127.0.0.1"], Some("127.0.0.1")),
            (v11, "/x", &[""], None),
            (v11, "http://A.example/x", &["a.EXAMPLE"], Some("A.example")),
            (v10, "/x", &[], None),
            (v2, "https://a.example/x", &[], Some("a.example")),
            (v2, "https://a.example/x", &["a.example"], Some("a.example")),
            (v2, "/x", &["b.example"], Some("b.example")),
        ] {
            assert_eq!(
                decided(v, uri, hosts).expect("valid").as_deref(),
                want,
                "{v:?} {uri} {hosts:?}"
            );
        }
    }

    #[test]
    fn missing_repeated_conflicting_or_invalid_hosts_are_refused() {
        let (v11, v2) = (Version::HTTP_11, Version::HTTP_2);
        for (v, uri, hosts) in [
            (v11, "/x", &[][..]),
            (v11, "/x", &["a.example", "a.example"]),
            (v11, "/x", &["a.example, b.example"]),
            (v11, "/x", &["user@a.example"]),
            (v11, "/x", &["a.example:"]),
            (v11, "/x", &["a.example:99999"]),
            (v11, "/x", &["a.example:8x"]),
            (v11, "/x", &[":80"]),
            (v11, "/x", &["a%2eexample"]),
            (v11, "/x", &["a example"]),
            (v11, "/x", &["[::1"]),
            (v11, "/x", &["[zz]"]),
            (v11, "/x", &["[::1]x"]),
            (v11, "http://a.example/x", &["b.example"]),
            (v11, "http://u@a.example/x", &["u@a.example"]),
            (v11, "http://a.example/x", &[]),
            (v2, "https://a.example/x", &["b.example"]),
        ] {
            assert!(
                matches!(decided(v, uri, hosts), Err(Reject::BadRequest(_))),
                "{v:?} {uri} {hosts:?} must be refused"
            );
        }
    }
}
