//! The execution log of one request (AWS TestInvokeMethod's `log`): a sink the phases write
//! to only when the request carries one ([`RequestCtx::trace`](crate::ctx::RequestCtx)).
//! Real requests carry none, so each log point costs one `Option` check and formats nothing.
//!
//! Lines are AWS's (`Endpoint request URI: ...`, `Method response body after
//! transformations: ...`), each prefixed with the time since the request started. Header
//! values that carry credentials (`Authorization`, `x-api-key`, cookies) are masked, as AWS
//! masks them; bodies are cut at [`MAX_LOGGED_BODY`] bytes.

use std::{
    fmt::Write as _,
    sync::RwLock,
    time::{Duration, Instant},
};

use http::HeaderMap;

/// The most of a body a log line shows.
pub const MAX_LOGGED_BODY: usize = 32 * 1024;

/// Headers whose values are never logged.
const MASKED: [&str; 5] = [
    "authorization",
    "x-api-key",
    "cookie",
    "set-cookie",
    "proxy-authorization",
];

/// An execution log being written.
#[derive(Debug)]
pub struct Trace {
    start: Instant,
    /// Written briefly by each log point, never held across an await.
    lines: RwLock<Vec<String>>,
}

impl Default for Trace {
    fn default() -> Self {
        Trace::new()
    }
}

impl Trace {
    pub fn new() -> Self {
        Trace {
            start: Instant::now(),
            lines: RwLock::new(Vec::new()),
        }
    }

    /// Appends a line.
    pub fn log(&self, line: impl AsRef<str>) {
        let elapsed = self.start.elapsed();
        let line = format!("{:>9.3} ms : {}", ms(elapsed), line.as_ref());
        self.lines.write().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    /// Time since the trace started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The log, one line each.
    pub fn text(&self) -> String {
        let lines = self.lines.read().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for l in lines.iter() {
            out.push_str(l);
            out.push('\n');
        }
        out
    }
}

/// Milliseconds, fractional.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Headers as AWS logs them: `{name=value, ...}`, credentials masked.
pub fn headers(map: &HeaderMap) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let shown = if MASKED.contains(&name.as_str()) {
            "****".into()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        let _ = write!(out, "{name}={shown}");
    }
    out.push('}');
    out
}

/// A body as a log line shows it: UTF-8 (lossy), cut at [`MAX_LOGGED_BODY`] bytes.
pub fn body(bytes: &[u8]) -> String {
    if bytes.len() > MAX_LOGGED_BODY {
        format!(
            "{} [TRUNCATED: {} bytes in all]",
            String::from_utf8_lossy(&bytes[..MAX_LOGGED_BODY]),
            bytes.len()
        )
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn credentials_are_masked_and_bodies_cut() {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("secret-key"));
        h.insert("authorization", HeaderValue::from_static("Bearer t0ken"));
        h.insert("x-other", HeaderValue::from_static("shown"));
        let line = headers(&h);
        assert!(!line.contains("secret-key") && !line.contains("t0ken"), "{line}");
        assert!(line.contains("x-other=shown"), "{line}");
        let long = vec![b'a'; MAX_LOGGED_BODY + 5];
        assert!(body(&long).ends_with(&format!("[TRUNCATED: {} bytes in all]", MAX_LOGGED_BODY + 5)));
        let t = Trace::new();
        t.log("one");
        t.log("two");
        let text = t.text();
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.lines().next().is_some_and(|l| l.ends_with(" ms : one")),
            "{text}"
        );
    }
}
