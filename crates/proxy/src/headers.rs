//! Header rules every path through the proxy shares: hop-by-hop headers (RFC 9110 §7.6.1)
//! and the backend response headers API Gateway renames.

use http::{HeaderMap, HeaderName, HeaderValue, header};

/// Whether reserved backend response headers are renamed when the answer is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserved {
    /// `Date`, `Server`, `WWW-Authenticate` and `Authorization` become
    /// `X-Amzn-Remapped-<name>` (what an HTTP_PROXY client sees).
    Remap,
    /// The names stay as the backend sent them (an HTTP integration maps them itself).
    Keep,
}

/// Removes hop-by-hop headers: Connection and what it lists, Keep-Alive, TE, Trailer,
/// Transfer-Encoding, Upgrade and Proxy-*. One pass over the headers first: most requests
/// and responses carry none, and then nothing is hashed.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if let Some(conn) = headers.remove(header::CONNECTION) {
        let listed: Vec<HeaderName> = conn
            .to_str()
            .unwrap_or_default()
            .split(',')
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for n in listed {
            headers.remove(n);
        }
        // Connection may appear more than once.
        while headers.remove(header::CONNECTION).is_some() {}
    }
    for name in [
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == header::PROXY_AUTHORIZATION
        || name == header::PROXY_AUTHENTICATE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

const RESERVED_COUNT: usize = 4;

const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
const XFH: HeaderName = HeaderName::from_static("x-forwarded-host");

/// What a proxied request tells its backend about the client: X-Forwarded-For (the client's
/// list with the peer appended), X-Forwarded-Proto and X-Forwarded-Host, which replace the
/// client's own, and the Host, which becomes the backend's.
///
/// The HTTP/1.1 client writes them while it writes the head, so the request's header map
/// is never changed for them; [`Forwarded::apply`] does it for clients that take a map.
#[derive(Clone, Debug)]
pub struct Forwarded {
    /// The peer's address.
    pub peer: HeaderValue,
    /// `http` or `https`.
    pub proto: &'static str,
    /// The Host the client asked for.
    pub host: Option<HeaderValue>,
}

impl Forwarded {
    /// Sets them in a header map, and removes the client's Host.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let xff = match headers.get(&XFF) {
            Some(prev) => {
                let mut v = Vec::with_capacity(prev.len() + 2 + self.peer.len());
                v.extend_from_slice(prev.as_bytes());
                v.extend_from_slice(b", ");
                v.extend_from_slice(self.peer.as_bytes());
                HeaderValue::from_bytes(&v).unwrap_or_else(|_| self.peer.clone())
            }
            None => self.peer.clone(),
        };
        headers.insert(XFF, xff);
        headers.insert(XFP, HeaderValue::from_static(self.proto));
        match &self.host {
            Some(h) => {
                headers.insert(XFH, h.clone());
            }
            None => {
                headers.remove(XFH);
            }
        }
        headers.remove(header::HOST);
    }

    /// Whether a request header is one of those these replace (Host and X-Forwarded-*).
    pub fn replaces(name: &HeaderName) -> bool {
        *name == header::HOST || *name == XFF || *name == XFP || *name == XFH
    }

    /// Whether a request header is X-Forwarded-For (appended to, not replaced).
    pub fn is_for(name: &HeaderName) -> bool {
        *name == XFF
    }
}

/// Backend response headers API Gateway renames to `X-Amzn-Remapped-<name>` so they cannot
/// be confused with the gateway's own.
const RESERVED: [(HeaderName, HeaderName); RESERVED_COUNT] = [
    (header::DATE, HeaderName::from_static("x-amzn-remapped-date")),
    (header::SERVER, HeaderName::from_static("x-amzn-remapped-server")),
    (
        header::WWW_AUTHENTICATE,
        HeaderName::from_static("x-amzn-remapped-www-authenticate"),
    ),
    (
        header::AUTHORIZATION,
        HeaderName::from_static("x-amzn-remapped-authorization"),
    ),
];

/// The name a reserved backend response header is renamed to.
pub fn remapped(name: &HeaderName) -> Option<HeaderName> {
    RESERVED.iter().find(|(r, _)| r == name).map(|(_, to)| to.clone())
}

/// Renames the reserved backend response headers of an answer read into a map already. One
/// pass over the names first, so only those present are looked up. (The HTTP/1.1 client
/// renames them as it reads the head, which costs no removal.)
pub fn remap_reserved(headers: &mut HeaderMap) {
    let mut present = [false; RESERVED_COUNT];
    for name in headers.keys() {
        if let Some(i) = RESERVED.iter().position(|(r, _)| r == name) {
            present[i] = true;
        }
    }
    for (_, (name, remapped)) in RESERVED.iter().enumerate().filter(|(i, _)| present[*i]) {
        // One lookup per name; the values move without being copied.
        if let header::Entry::Occupied(e) = headers.entry(name) {
            let (_, values) = e.remove_entry_mult();
            let values: smallvec::SmallVec<[HeaderValue; 2]> = values.collect();
            for v in values {
                headers.append(remapped.clone(), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_headers_are_remapped_with_every_value() {
        let mut h = HeaderMap::new();
        h.insert(header::DATE, HeaderValue::from_static("Mon"));
        h.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        h.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        remap_reserved(&mut h);
        assert!(h.get(header::DATE).is_none());
        assert_eq!(
            h.get("x-amzn-remapped-date").map(|v| v.as_bytes()),
            Some(&b"Mon"[..])
        );
        let auth: Vec<_> = h.get_all("x-amzn-remapped-www-authenticate").iter().collect();
        assert_eq!(auth, ["Basic", "Bearer"]);
        assert_eq!(h.len(), 4);
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_lists_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }
}
