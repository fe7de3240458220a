//! The shared tier of the stage cache (`--cache-backend redis`): entries in the Redis of the
//! usage plans, behind each replica's in-memory tier, so a miss on one replica can be a hit
//! on another.
//!
//! ```text
//! tp:cache:{<api>/<stage>}:gen      the stage's generation (INCR flushes the whole stage)
//! tp:cache:{<sha256 hex>}           one entry; the hash covers api, stage, flush token,
//!                                   generation and the cache key; PX = its remaining TTL
//! ```
//!
//! Contract:
//! - Keys live under the `tp:cache:` namespace. An entry's name includes the stage's
//!   generation and its `turnpike.dev/flush-cache` token, so flushing (admin: `INCR` of the
//!   generation; annotation: a new token) is O(1) and the old entries expire on their own.
//!   Entry names hash to their own Cluster slot; the generation has the stage's hash tag.
//! - Replicas read each stage's generation every 500 ms and empty their in-memory tier when it
//!   moved, so an admin flush on one replica reaches every replica within that period.
//! - Every call is bounded ([`BOUND`]) and none is made while Redis is down (the usage plans'
//!   ping task brings it back): then the in-memory tier alone serves.
//! - Entries are encoded by [`encode`] and decoded strictly by [`decode`] (a Redis value is
//!   not trusted more than a request: anything malformed is a miss).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

use super::{Entry, MAX_ENTRY_BYTES, StageId};

/// How long a request may wait for one Redis call of the cache.
pub const BOUND: Duration = Duration::from_millis(100);

/// The first bytes of an encoded entry (format version 1).
const MAGIC: &[u8; 4] = b"TPC1";

/// Headers an entry may carry.
const MAX_HEADERS: usize = 256;

/// The Redis name of a stage's generation counter.
pub fn gen_key(stage: &StageId) -> String {
    format!("tp:cache:{{{}/{}}}:gen", stage.api, stage.stage)
}

/// The Redis name of an entry: a digest of everything that tells entries apart, each part
/// length-prefixed so no part can forge another.
pub fn entry_key(stage: &StageId, flush: Option<&str>, generation: u64, key: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        stage.api.as_bytes(),
        stage.stage.as_bytes(),
        flush.unwrap_or_default().as_bytes(),
        &generation.to_be_bytes(),
        key.as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    let digest = h.finalize();
    let mut name = String::with_capacity(12 + 32 + 1);
    name.push_str("tp:cache:{");
    for b in &digest[..16] {
        use std::fmt::Write;
        let _ = write!(name, "{b:02x}");
    }
    name.push('}');
    name
}

/// An entry as stored in Redis: `TPC1`, status (u16), stored at (u64 ns), TTL (u64 ms), the
/// header count (u16), each header as name length (u16), name, value length (u32), value,
/// then the body. Integers are big-endian.
pub fn encode(entry: &Entry) -> Vec<u8> {
    let headers: usize = entry
        .headers
        .iter()
        .map(|(k, v)| 6 + k.as_str().len() + v.len())
        .sum();
    let mut out = Vec::with_capacity(24 + headers + entry.body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&entry.status.as_u16().to_be_bytes());
    out.extend_from_slice(&entry.stored_at.to_be_bytes());
    let ttl_ms = u64::try_from(entry.ttl.as_millis()).unwrap_or(u64::MAX);
    out.extend_from_slice(&ttl_ms.to_be_bytes());
    let count = entry.headers.len().min(MAX_HEADERS);
    out.extend_from_slice(&(count as u16).to_be_bytes());
    for (name, value) in entry.headers.iter().take(count) {
        let n = name.as_str().as_bytes();
        out.extend_from_slice(&(n.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
        out.extend_from_slice(n);
        out.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(&entry.body);
    out
}

/// Reads an entry [`encode`] wrote; `None` for anything else (a wrong version, a cut or
/// oversized value, an invalid status or header).
pub fn decode(bytes: &[u8]) -> Option<Entry> {
    let mut r = Reader(bytes);
    if r.take(4)? != MAGIC {
        return None;
    }
    let status = StatusCode::from_u16(u16::from_be_bytes(r.array()?)).ok()?;
    let stored_at = u64::from_be_bytes(r.array()?);
    let ttl = Duration::from_millis(u64::from_be_bytes(r.array()?));
    let count = usize::from(u16::from_be_bytes(r.array()?));
    if count > MAX_HEADERS {
        return None;
    }
    let mut headers = HeaderMap::with_capacity(count);
    for _ in 0..count {
        let n = usize::from(u16::from_be_bytes(r.array()?));
        let name = HeaderName::from_bytes(r.take(n)?).ok()?;
        let n = usize::try_from(u32::from_be_bytes(r.array()?)).ok()?;
        let value = HeaderValue::from_bytes(r.take(n)?).ok()?;
        headers.append(name, value);
    }
    if r.0.len() > MAX_ENTRY_BYTES {
        return None;
    }
    Some(Entry {
        status,
        headers,
        body: Bytes::copy_from_slice(r.0),
        stored_at,
        ttl,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        Entry {
            status: StatusCode::CREATED,
            headers,
            body: Bytes::from_static(b"{\"ok\":true}"),
            stored_at: 1_764_000_000_000_000_000,
            ttl: Duration::from_secs(300),
        }
    }

    #[test]
    fn an_entry_reads_back_as_written() {
        let e = entry();
        let back = decode(&encode(&e)).expect("decodes");
        assert_eq!(back.status, e.status);
        assert_eq!(back.headers, e.headers);
        assert_eq!(back.body, e.body);
        assert_eq!(back.stored_at, e.stored_at);
        assert_eq!(back.ttl, e.ttl);
    }

    #[test]
    fn anything_else_is_refused() {
        let bytes = encode(&entry());
        for cut in 0..bytes.len() - entry().body.len() {
            assert!(decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut wrong = bytes.clone();
        wrong[3] = b'2';
        assert!(decode(&wrong).is_none(), "another version");
        let mut status = bytes.clone();
        status[4..6].copy_from_slice(&9999u16.to_be_bytes());
        assert!(decode(&status).is_none(), "an invalid status");
        let mut big = encode(&Entry {
            body: Bytes::new(),
            ..entry()
        });
        big.extend(std::iter::repeat_n(b'x', MAX_ENTRY_BYTES + 1));
        assert!(decode(&big).is_none(), "over 1 MiB");
        for seed in [&bytes[..], b"TPC1", b""] {
            crate::fuzzing::cache_entry(seed);
        }
    }

    #[test]
    fn entry_names_tell_stages_flushes_generations_and_keys_apart() {
        let a = StageId::new("api1", "prod");
        let name = entry_key(&a, None, 0, "k");
        assert!(name.starts_with("tp:cache:{") && name.ends_with('}'), "{name}");
        assert_eq!(name, entry_key(&a, None, 0, "k"));
        assert_ne!(name, entry_key(&StageId::new("api1", "dev"), None, 0, "k"));
        assert_ne!(name, entry_key(&a, Some("1"), 0, "k"));
        assert_ne!(name, entry_key(&a, None, 1, "k"));
        assert_ne!(name, entry_key(&a, None, 0, "k2"));
        assert_ne!(
            entry_key(&StageId::new("ab", "c"), None, 0, "k"),
            entry_key(&StageId::new("a", "bc"), None, 0, "k")
        );
        assert_eq!(gen_key(&a), "tp:cache:{api1/prod}:gen");
    }
}
