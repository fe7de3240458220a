//! Declarative CORS (`spec.cors`), as AWS HTTP APIs have it: the gateway answers preflights
//! itself and adds the CORS headers to every answer of the API, its own errors included.

use std::time::Duration;

/// A validated CORS configuration.
///
/// Validation guarantees: every origin is `*`, an exact `scheme://host[:port]` or a wildcard
/// subdomain `scheme://*.domain[:port]`; `*` is never combined with `allow_credentials`; method
/// names are AWS's seven or `*`; header names are tokens (kept lowercase).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cors {
    pub allow_origins: Vec<OriginPattern>,
    /// Upper-case method names, or `*`.
    pub allow_methods: Vec<String>,
    /// Lowercase header names, or `*`.
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<Duration>,
    pub allow_credentials: bool,
}

/// An allowed origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginPattern {
    /// `*`: any origin.
    Any,
    /// An exact origin, lowercase: `https://app.example.com`.
    Exact(String),
    /// `https://*.example.com`: any subdomain (one label or more) of `example.com`, with this
    /// scheme and port; `suffix` is `.example.com` (lowercase) and `port` is `:8443` or empty.
    Subdomains {
        scheme: String,
        suffix: String,
        port: String,
    },
}

impl OriginPattern {
    /// Parses an origin pattern; the error says what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw == "*" {
            return Ok(OriginPattern::Any);
        }
        let (scheme, rest) = raw.split_once("://").ok_or_else(|| {
            format!("{raw:?} is not an origin: scheme://host[:port], e.g. https://app.example.com")
        })?;
        if !matches!(scheme, "http" | "https") {
            return Err(format!("{raw:?}: the scheme must be http or https"));
        }
        let (host, port) = match rest.find(']') {
            Some(end) if rest.starts_with('[') => rest.split_at(end + 1),
            _ => match rest.rfind(':') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            },
        };
        if let Some(p) = port.strip_prefix(':') {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
                return Err(format!("{raw:?}: {p:?} is not a port"));
            }
        } else if !port.is_empty() {
            return Err(format!("{raw:?} is not an origin: scheme://host[:port]"));
        }
        let port = port.to_string();
        let valid_host = |h: &str| {
            !h.is_empty()
                && h.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        };
        if let Some(domain) = host.strip_prefix("*.") {
            if !valid_host(domain) {
                return Err(format!(
                    "{raw:?}: a wildcard origin is scheme://*.domain[:port], e.g. https://*.example.com"
                ));
            }
            return Ok(OriginPattern::Subdomains {
                scheme: scheme.to_string(),
                suffix: format!(".{}", domain.to_ascii_lowercase()),
                port,
            });
        }
        let ipv6 = host.starts_with('[') && host.ends_with(']');
        if !(valid_host(host) || ipv6) {
            return Err(format!(
                "{raw:?}: the host must be a DNS name or an IP address (no path, no '*' but a leading '*.')"
            ));
        }
        Ok(OriginPattern::Exact(raw.to_ascii_lowercase()))
    }

    /// Whether the pattern allows the request's `Origin`.
    pub fn matches(&self, origin: &str) -> bool {
        match self {
            OriginPattern::Any => true,
            OriginPattern::Exact(o) => o.eq_ignore_ascii_case(origin),
            OriginPattern::Subdomains { scheme, suffix, port } => {
                let Some(rest) = origin
                    .strip_prefix(scheme.as_str())
                    .and_then(|r| r.strip_prefix("://"))
                else {
                    return false;
                };
                let Some(host) = rest.strip_suffix(port.as_str()) else {
                    return false;
                };
                if host.contains(':') {
                    return false;
                }
                let host = host.to_ascii_lowercase();
                host.len() > suffix.len()
                    && host.ends_with(suffix.as_str())
                    && host[..host.len() - suffix.len()]
                        .split('.')
                        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            }
        }
    }
}

impl Cors {
    /// What `Access-Control-Allow-Origin` says to a request from `origin`: `None` when the
    /// origin is not allowed (then no CORS header is sent at all). With credentials the origin is
    /// echoed, never `*`.
    pub fn allow_origin<'o>(&self, origin: &'o str) -> Option<&'o str> {
        let pattern = self.allow_origins.iter().find(|p| p.matches(origin))?;
        Some(match pattern {
            OriginPattern::Any if !self.allow_credentials => "*",
            _ => origin,
        })
    }

    /// Whether a preflight may ask for `method`.
    pub fn allows_method(&self, method: &str) -> bool {
        self.allow_methods.iter().any(|m| m == "*" || m == method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_or_by_subdomain() {
        let exact = OriginPattern::parse("https://App.example.com").expect("exact");
        assert!(exact.matches("https://app.example.com"));
        assert!(!exact.matches("http://app.example.com"));
        assert!(!exact.matches("https://app.example.com:8443"));

        let sub = OriginPattern::parse("https://*.example.com").expect("wildcard");
        assert!(sub.matches("https://a.example.com"));
        assert!(sub.matches("https://a.b.example.com"));
        assert!(!sub.matches("https://example.com"));
        assert!(!sub.matches("https://evil-example.com"));
        assert!(!sub.matches("https://a.example.com.evil.net"));
        assert!(!sub.matches("https://a.example.com:444"));
        assert!(!sub.matches("http://a.example.com"));

        let port = OriginPattern::parse("http://*.localhost:8080").expect("port");
        assert!(port.matches("http://x.localhost:8080"));
        assert!(!port.matches("http://x.localhost"));

        assert!(OriginPattern::parse("http://127.0.0.1:3000").is_ok());
        for bad in [
            "example.com",
            "ftp://x.com",
            "https://x.com/path",
            "https://*",
            "https://a.*.com",
            "https://x:99999",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_echo_the_origin() {
        let mut cors = Cors {
            allow_origins: vec![OriginPattern::Any],
            ..Default::default()
        };
        assert_eq!(cors.allow_origin("https://a.b"), Some("*"));
        cors.allow_credentials = true;
        assert_eq!(cors.allow_origin("https://a.b"), Some("https://a.b"));
    }
}
