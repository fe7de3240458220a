//! Authorizer state kept across table swaps: the issuers' key sets (JWKS) and the answers of
//! TOKEN and REQUEST functions, with the client that fetches both.
//!
//! Key sets are read lock-free ([`ArcSwap`]): a request whose token's `kid` is in the cached set
//! never waits. A set is fetched when an issuer is first used, and again when a token names a
//! `kid` the set does not have — at most once per [`Authorizers::min_refresh`], so a flood of
//! made-up kids cannot turn into a flood of fetches. Once fetched, a set is refreshed in the
//! background before it goes stale (its `Cache-Control` lifetime, within
//! [`KeysRefresh`]'s bounds), so a key rotated out at the issuer is dropped, and a new one
//! taken, without a request paying for the fetch; a failed refresh keeps the keys it has. A set
//! no request used between two refreshes is forgotten (a later request fetches it again).

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
/// Background refreshes of issuers' keys: their lifetime is the JWKS response's
/// `Cache-Control` max-age (or [`KeysRefresh::default_age`] without one), held within
/// `[min_age, max_age]`; a set is refreshed when nine tenths of it have passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeysRefresh {
    pub min_age: Duration,
    pub max_age: Duration,
    pub default_age: Duration,
}

impl Default for KeysRefresh {
    fn default() -> Self {
        KeysRefresh {
            min_age: Duration::from_secs(5 * 60),
            max_age: Duration::from_secs(24 * 3600),
            default_age: Duration::from_secs(3600),
        }
    }
}

impl KeysRefresh {
    /// How long after a fetch the set is fetched again, by the response's max-age.
    pub fn after(&self, max_age: Option<u64>) -> Duration {
        let age = max_age.map_or(self.default_age, Duration::from_secs);
        let age = age.clamp(self.min_age, self.max_age.max(self.min_age));
        // Never a busy loop, whatever the bounds say.
        (age - age / 10).max(Duration::from_millis(100))
    }
}

/// The most verified tokens remembered.
const MAX_VERIFIED_TOKENS: u64 = 100_000;
/// The longest a verified token is remembered, whatever its `exp`.
const MAX_VERIFIED_AGE: Duration = Duration::from_secs(3600);

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

/// A token whose signature, issuer and lifetime were verified: its claims, reused until it
/// expires while its key is still in the issuer's set.
#[derive(Clone, Debug)]
struct Verified {
    claims: Arc<Map<String, Value>>,
    kid: Option<String>,
    /// The last Unix second the token is accepted (`exp` plus the leeway).
    until: u64,
}

/// The key of a verified token: SHA-256 over the issuer, the key source and the token, so a
/// token is never taken for another (a collision is out of reach) and the token itself is not
/// kept.
pub type TokenDigest = [u8; 32];

/// The authorizers' shared state.
pub struct Authorizers {
    fetcher: Fetcher,
    /// Key sets by key source URL.
    keys: ArcSwap<HashMap<String, Arc<KeySet>>>,
    /// Serialises fetches of key sets (they are rare), so concurrent misses fetch once.
    fetching: tokio::sync::Mutex<()>,
    /// The least time between two fetches of one issuer's keys.
    pub min_refresh: Duration,
    /// When keys are refreshed in the background.
    refresh: KeysRefresh,
    /// This state, for the background refresh tasks (which end when it is dropped).
    me: std::sync::Weak<Authorizers>,
    answers: moka::future::Cache<String, Cached>,
    /// Verified tokens, so a token is verified once, not on every request.
    verified: moka::future::Cache<TokenDigest, Verified>,
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
    pub fn new(fetcher: Fetcher, min_refresh: Duration, refresh: KeysRefresh) -> Arc<Self> {
        Arc::new_cyclic(|me| Authorizers {
            fetcher,
            refresh,
            me: me.clone(),
            keys: ArcSwap::from_pointee(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
            min_refresh,
            answers: moka::future::Cache::builder()
                .max_capacity(MAX_CACHED_ANSWERS)
                .time_to_live(Duration::from_secs(
                    turnpike_core::model::MAX_AUTHORIZER_TTL_SECS.unsigned_abs(),
                ))
                .build(),
            verified: moka::future::Cache::builder()
                .max_capacity(MAX_VERIFIED_TOKENS)
                .time_to_live(MAX_VERIFIED_AGE)
                .build(),
            invocations: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The digest a verified token is cached under.
    pub fn token_digest(settings: &JwtSettings, token: &str) -> TokenDigest {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(settings.issuer.as_bytes());
        h.update([0]);
        h.update(source_id(settings).as_bytes());
        h.update([0]);
        h.update(token.as_bytes());
        h.finalize().into()
    }

    /// The claims of a token verified before, while it has not expired and the issuer still
    /// has its key (a key removed at the issuer refuses its tokens as soon as the set is
    /// refreshed).
    pub async fn verified_claims(
        &self,
        digest: &TokenDigest,
        settings: &JwtSettings,
    ) -> Option<Arc<Map<String, Value>>> {
        let v = self.verified.get(digest).await?;
        if unix_now() > v.until {
            self.verified.invalidate(digest).await;
            return None;
        }
        self.cached_keys(settings, v.kid.as_deref())?;
        Some(v.claims)
    }

    /// Remembers a verified token until it expires.
    pub async fn store_verified(
        &self,
        digest: TokenDigest,
        claims: Arc<Map<String, Value>>,
        kid: Option<String>,
    ) {
        let Some(until) = jwt::expires_at(&claims) else {
            return;
        };
        self.verified
            .insert(digest, Verified { claims, kid, until })
            .await;
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
            _ => {
                set.mark_used();
                Some(Arc::clone(set))
            }
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
        let (set, max_age) = self.fetch_keys(settings).await?;
        let set = Arc::new(set);
        set.mark_used();
        tracing::debug!(issuer = %settings.issuer, ?set, "issuer keys fetched");
        let mut new_source = false;
        self.keys.rcu(|map| {
            let mut map = HashMap::clone(map);
            new_source = map.insert(id.to_string(), Arc::clone(&set)).is_none();
            map
        });
        if new_source {
            self.refresh_later(settings.clone(), self.refresh.after(max_age));
        }
        Ok(set)
    }

    /// Refreshes an issuer's keys after `wait`, and again by each answer's lifetime, until
    /// this state is dropped or no request used the keys between two refreshes.
    fn refresh_later(&self, settings: JwtSettings, mut wait: Duration) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let me = self.me.clone();
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(wait).await;
                let Some(this) = me.upgrade() else {
                    return;
                };
                match this.refresh_keys(&settings).await {
                    Some(next) => wait = next,
                    None => return,
                }
            }
        });
    }

    /// One background refresh: the new set replaces the old; a failure keeps the old (and is
    /// tried again after [`Self::min_refresh`], at least the least lifetime). `None` when the
    /// set is no longer wanted.
    async fn refresh_keys(&self, settings: &JwtSettings) -> Option<Duration> {
        use std::sync::atomic::Ordering::Relaxed;
        let id = source_id(settings);
        let _fetching = self.fetching.lock().await;
        let current = self.keys.load().get(id).cloned()?;
        if !current.used.load(Relaxed) {
            tracing::debug!(issuer = %settings.issuer, "issuer keys unused since their last refresh: forgotten");
            self.keys.rcu(|map| {
                let mut map = HashMap::clone(map);
                if map.get(id).is_some_and(|s| Arc::ptr_eq(s, &current)) {
                    map.remove(id);
                }
                map
            });
            return None;
        }
        match self.fetch_keys(settings).await {
            Ok((set, max_age)) => {
                tracing::debug!(issuer = %settings.issuer, ?set, "issuer keys refreshed");
                let set = Arc::new(set);
                self.keys.rcu(|map| {
                    let mut map = HashMap::clone(map);
                    map.insert(id.to_string(), Arc::clone(&set));
                    map
                });
                Some(self.refresh.after(max_age))
            }
            Err(e) => {
                tracing::warn!(issuer = %settings.issuer, error = %e, "refreshing the issuer's keys failed; the keys fetched before stay in use");
                Some(self.min_refresh.max(self.refresh.min_age))
            }
        }
    }

    /// Fetches an issuer's key set, and how long its answer says it may be kept.
    async fn fetch_keys(&self, settings: &JwtSettings) -> Result<(KeySet, Option<u64>), KeysError> {
        let jwks_uri = match &settings.keys {
            KeySource::JwksUri(u) => u.clone(),
            KeySource::Discovery => {
                let (doc, _) = self.get(&settings.discovery_url()).await?;
                let v: Value = serde_json::from_slice(&doc)
                    .map_err(|e| KeysError::Unavailable(format!("discovery document: {e}")))?;
                v.get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| KeysError::Unavailable("the discovery document has no jwks_uri".into()))?
                    .to_string()
            }
        };
        let (doc, max_age) = self.get(&jwks_uri).await?;
        let set = KeySet::parse(&doc, Instant::now()).map_err(KeysError::Unavailable)?;
        Ok((set, max_age))
    }

    /// A document and its `Cache-Control` max-age.
    async fn get(&self, url: &str) -> Result<(Bytes, Option<u64>), KeysError> {
        let (status, headers, body) = self
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
        let max_age = headers
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(jwt::max_age);
        Ok((body, max_age))
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

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The key under which an issuer's keys are cached.
fn source_id(settings: &JwtSettings) -> &str {
    match &settings.keys {
        KeySource::JwksUri(u) => u,
        KeySource::Discovery => &settings.issuer,
    }
}
