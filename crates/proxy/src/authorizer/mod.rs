//! Authorizer state kept across table swaps: the issuers' key sets (JWKS) and the answers of
//! TOKEN and REQUEST functions, with the client that fetches both.
//!
//! Key sets are read lock-free ([`ArcSwap`]): a request whose token's `kid` is in the cached set
//! never waits. A set is fetched when an issuer is first used, and again when a token names a
//! `kid` the set does not have — at most once per [`Authorizers::min_refresh`], so a flood of
//! made-up kids cannot turn into a flood of fetches.

pub mod answer;
pub mod event;
pub mod jwt;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, Method};
use serde_json::{Map, Value};

use crate::upstream::{FetchError, Fetcher};
use answer::{Answer, ContextValue};
use jwt::KeySet;
use turnpike_core::model::{JwtSettings, KeySource};

/// The most bytes read of a discovery document, a JWKS document or a function's answer.
const MAX_DOCUMENT: usize = 1 << 20;
/// How long a JWKS or discovery fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The default least time between two fetches of one issuer's keys.
pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(60);
/// The most function answers cached.
const MAX_CACHED_ANSWERS: u64 = 100_000;

/// What an authorizer established about the caller, for `$context.authorizer.*`, parameter
/// mappings, the Lambda proxy event and `apiKeySource: AUTHORIZER`.
#[derive(Clone, Debug)]
pub enum Identity {
    /// A TOKEN or REQUEST function's answer (possibly cached and shared).
    Function(Arc<Answer>),
    /// A verified token's claims.
    Jwt(Arc<Map<String, Value>>),
}

impl Identity {
    pub fn principal_id(&self) -> Option<&str> {
        match self {
            Identity::Function(a) => Some(&a.principal_id),
            Identity::Jwt(c) => c.get("sub").and_then(Value::as_str),
        }
    }

    /// `$context.authorizer.NAME`: `principalId`, `claims.CLAIM` (JWT) or a context key
    /// (functions).
    pub fn value(&self, name: &str) -> Option<String> {
        if name == "principalId" {
            return self.principal_id().map(str::to_string);
        }
        match self {
            Identity::Function(a) => a.context_value(name).map(ContextValue::to_text),
            Identity::Jwt(c) => name
                .strip_prefix("claims.")
                .and_then(|n| c.get(n))
                .map(jwt::claim_text),
        }
    }

    /// Every `$context.authorizer.*` value, for the access log.
    pub fn values(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(p) = self.principal_id() {
            out.push(("principalId".to_string(), p.to_string()));
        }
        match self {
            Identity::Function(a) => {
                out.extend(a.context.iter().map(|(k, v)| (k.clone(), v.to_text())));
            }
            Identity::Jwt(c) => {
                out.extend(c.iter().map(|(k, v)| (format!("claims.{k}"), jwt::claim_text(v))));
            }
        }
        out
    }

    /// The API key a function named (`usageIdentifierKey`).
    pub fn usage_identifier_key(&self) -> Option<&str> {
        match self {
            Identity::Function(a) => a.usage_identifier_key.as_deref(),
            Identity::Jwt(_) => None,
        }
    }

    /// `requestContext.authorizer` of a Lambda proxy event.
    pub fn to_event_json(&self) -> Value {
        let mut m = Map::new();
        match self {
            Identity::Function(a) => {
                m.insert("principalId".into(), Value::String(a.principal_id.clone()));
                for (k, v) in &a.context {
                    m.insert(k.clone(), v.to_json());
                }
            }
            Identity::Jwt(c) => {
                let claims: Map<String, Value> = c
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(jwt::claim_text(v))))
                    .collect();
                m.insert("claims".into(), Value::Object(claims));
            }
        }
        Value::Object(m)
    }
}

/// A cached function answer and when it stops being used.
#[derive(Clone, Debug)]
struct Cached {
    answer: Arc<Answer>,
    until: Instant,
}

/// The authorizers' shared state.
pub struct Authorizers {
    fetcher: Fetcher,
    /// Key sets by key source URL.
    keys: ArcSwap<HashMap<String, Arc<KeySet>>>,
    /// Serialises fetches of key sets (they are rare), so concurrent misses fetch once.
    fetching: tokio::sync::Mutex<()>,
    /// The least time between two fetches of one issuer's keys.
    pub min_refresh: Duration,
    answers: moka::future::Cache<String, Cached>,
    /// How many times a function was invoked (a cache miss), for tests and metrics.
    pub invocations: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Authorizers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizers").finish_non_exhaustive()
    }
}

/// Why an issuer's keys are not at hand.
#[derive(Clone, Debug, thiserror::Error)]
pub enum KeysError {
    /// The fetch failed (the issuer is down, or answered garbage): a configuration problem,
    /// answered 500.
    #[error("fetching the issuer's keys: {0}")]
    Unavailable(String),
    /// The set was fetched recently and does not have the kid.
    #[error("no key of the issuer has the token's kid")]
    UnknownKid,
}

// === impl Authorizers ===

impl Authorizers {
    pub fn new(fetcher: Fetcher, min_refresh: Duration) -> Self {
        Authorizers {
            fetcher,
            keys: ArcSwap::from_pointee(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
            min_refresh,
            answers: moka::future::Cache::builder()
                .max_capacity(MAX_CACHED_ANSWERS)
                .time_to_live(Duration::from_secs(
                    turnpike_core::model::MAX_AUTHORIZER_TTL_SECS.unsigned_abs(),
                ))
                .build(),
            invocations: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    /// The cached key set of an issuer when it has `kid` (or any set, for a token without a
    /// kid). Never waits.
    pub fn cached_keys(&self, settings: &JwtSettings, kid: Option<&str>) -> Option<Arc<KeySet>> {
        let keys = self.keys.load();
        let set = keys.get(source_id(settings))?;
        match kid {
            Some(kid) if !set.has(kid) => None,
            _ => Some(Arc::clone(set)),
        }
    }

    /// The key set of an issuer, fetched when absent, or when it lacks `kid` and was fetched
    /// at least [`Self::min_refresh`] ago.
    pub async fn keys(&self, settings: &JwtSettings, kid: Option<&str>) -> Result<Arc<KeySet>, KeysError> {
        if let Some(set) = self.cached_keys(settings, kid) {
            return Ok(set);
        }
        let _fetching = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        let id = source_id(settings);
        if let Some(set) = self.keys.load().get(id) {
            if kid.is_none_or(|k| set.has(k)) {
                return Ok(Arc::clone(set));
            }
            if set.fetched.elapsed() < self.min_refresh {
                return Err(KeysError::UnknownKid);
            }
        }
        let set = Arc::new(self.fetch_keys(settings).await?);
        tracing::debug!(issuer = %settings.issuer, ?set, "issuer keys fetched");
        self.keys.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(id.to_string(), Arc::clone(&set));
            map
        });
        Ok(set)
    }

    async fn fetch_keys(&self, settings: &JwtSettings) -> Result<KeySet, KeysError> {
        let jwks_uri = match &settings.keys {
            KeySource::JwksUri(u) => u.clone(),
            KeySource::Discovery => {
                let doc = self.get(&settings.discovery_url()).await?;
                let v: Value = serde_json::from_slice(&doc)
                    .map_err(|e| KeysError::Unavailable(format!("discovery document: {e}")))?;
                v.get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| KeysError::Unavailable("the discovery document has no jwks_uri".into()))?
                    .to_string()
            }
        };
        let doc = self.get(&jwks_uri).await?;
        KeySet::parse(&doc, Instant::now()).map_err(KeysError::Unavailable)
    }

    async fn get(&self, url: &str) -> Result<Bytes, KeysError> {
        let (status, _, body) = self
            .fetcher
            .call(
                Method::GET,
                url,
                HeaderMap::new(),
                Bytes::new(),
                FETCH_TIMEOUT,
                MAX_DOCUMENT,
            )
            .await
            .map_err(|e: FetchError| KeysError::Unavailable(format!("{url}: {e}")))?;
        if !status.is_success() {
            return Err(KeysError::Unavailable(format!("{url}: status {status}")));
        }
        Ok(body)
    }

    /// A cached function answer that is still fresh.
    pub async fn cached_answer(&self, key: &str) -> Option<Arc<Answer>> {
        let cached = self.answers.get(key).await?;
        if cached.until > Instant::now() {
            Some(cached.answer)
        } else {
            self.answers.invalidate(key).await;
            None
        }
    }

    /// Caches a function answer for `ttl`.
    pub async fn store_answer(&self, key: String, answer: Arc<Answer>, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let until = Instant::now() + ttl;
        self.answers.insert(key, Cached { answer, until }).await;
    }

    /// Counts one function invocation.
    pub fn invoked(&self) {
        self.invocations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The key under which an issuer's keys are cached.
fn source_id(settings: &JwtSettings) -> &str {
    match &settings.keys {
        KeySource::JwksUri(u) => u,
        KeySource::Discovery => &settings.issuer,
    }
}
