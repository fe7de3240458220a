//! Size limits and framing checks, before anything else looks at the request.

use http::{header, request::Parts};

use crate::{Limits, error::Reject};

/// Rejects a request over the URL (414), header (431) or declared body (413) limits, or with
/// both Content-Length and Transfer-Encoding, or an unparsable Content-Length (400). Streamed
/// bodies are cut at the limit later, by [`crate::body::Limited`].
pub fn check(parts: &Parts, limits: &Limits) -> Result<(), Reject> {
    let uri_len = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > limits.max_uri_bytes {
        return Err(Reject::UriTooLong);
    }
    let mut total = 0usize;
    for (name, value) in &parts.headers {
        if value.len() > limits.max_header_value_bytes {
            return Err(Reject::HeadersTooLarge);
        }
        total += name.as_str().len() + value.len() + 4;
    }
    if total > limits.max_header_bytes {
        return Err(Reject::HeadersTooLarge);
    }
    let mut lengths = parts.headers.get_all(header::CONTENT_LENGTH).iter();
    if let Some(cl) = lengths.next() {
        if parts.headers.contains_key(header::TRANSFER_ENCODING) {
            return Err(Reject::BadRequest("both Content-Length and Transfer-Encoding"));
        }
        let n: u64 = cl
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or(Reject::BadRequest("invalid Content-Length"))?;
        if lengths.any(|other| other != cl) {
            return Err(Reject::BadRequest("conflicting Content-Length headers"));
        }
        if n > limits.max_body_bytes {
            return Err(Reject::BodyTooLarge);
        }
    }
    Ok(())
}
