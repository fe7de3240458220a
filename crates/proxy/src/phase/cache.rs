//! The stage cache phase: answers GETs of cached methods from the stage's cache, and stores
//! what the backend answered.
//!
//! Rules (AWS's, see the README's "Stage cache"):
//! - A method is cached when its stage has `cacheClusterEnabled`, the request is a GET, and
//!   the stage's `methodSettings` (the most specific selector that sets each field) leave
//!   `cachingEnabled` on (the default for GET) with a TTL above 0 (default 300 s).
//! - The key is the deployment (the stage's own for a canary with `useStageCache`), the
//!   resource (or the integration's `cacheNamespace`), the method, the path parameters and
//!   the declared `cacheKeyParameters`: nothing else, so other query strings and headers do
//!   not split the cache, and a new deployment never serves the old one's entries.
//! - Only 2xx answers with a body of at most 1 MiB are stored, and not those the backend
//!   content-encoded (for the Accept-Encoding of one client, which is not in the key).
//! - `Cache-Control: max-age=0` fetches the answer again and replaces the entry, when the
//!   caller may invalidate: `requireAuthorizationForCacheControl` off, or an enabled API key
//!   in a usage plan of the stage. Otherwise `unauthorizedCacheControlHeaderStrategy` says:
//!   403 (FAIL_WITH_403), or serve as if the header were absent, with or without a `Warning`.
//! - With the shared tier (`--cache-backend redis`), the request that leads a key's fetch
//!   looks it up in Redis before calling the backend, and stores what it gets in both tiers
//!   (each Redis call bounded, none while Redis is down).
//! - Concurrent misses of one key make one backend call: the others wait for it, at most the
//!   integration timeout, then read the entry it stored or, when it stored none, call the
//!   backend themselves.

use std::{sync::Arc, time::Duration};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, header, request::Parts};
use http_body_util::BodyExt;

use crate::{
    body::ProxyBody,
    cache::{Entry, Lead, LeadGuard, MAX_ENTRY_BYTES, StageCache},
    ctx::RequestCtx,
    error::Reject,
    phase::keys::API_KEY,
};
use turnpike_core::model::{EndpointType, KeyDigest, ParamLocation, UnauthorizedCacheControl};

/// The TTL of a cached method without one (AWS).
const DEFAULT_TTL_SECS: u32 = 300;

/// `Warning` on answers that ignored an unauthorized `Cache-Control: max-age=0`.
const IGNORED_WARNING: &str =
    "199 - \"Cache-Control: max-age=0 ignored: not authorized to invalidate the cache\"";

/// What the cache does for a request: `$context.cacheStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    /// `Cache-Control: max-age=0` honoured: fetched again, the entry replaced.
    Invalidated,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Invalidated => "INVALIDATED",
        }
    }
}

/// How a cached request is served.
pub struct Plan {
    cache: Arc<StageCache>,
    key: String,
    ttl: Duration,
    /// The caller may and asked to invalidate the entry.
    invalidate: bool,
    /// Add the `Warning` of an ignored `Cache-Control: max-age=0`.
    warn: bool,
    /// EDGE APIs add `Age` to hits.
    edge: bool,
}

/// Whether a request is served through the cache, and how. Runs after the key phase and
/// before the throttles (which count hits too, as in AWS).
pub fn plan(ctx: &RequestCtx<'_>, parts: &Parts) -> Result<Option<Plan>, Reject> {
    let (Some(api), Some(stage), Some(resource), Some(method_key), Some(method), Some(variant)) = (
        ctx.api,
        ctx.stage,
        ctx.resource,
        ctx.method_key,
        ctx.method,
        ctx.variant,
    ) else {
        return Ok(None);
    };
    if !stage.cache_enabled || parts.method != Method::GET {
        return Ok(None);
    }
    let path = resource.path.as_str();
    let settings = || {
        stage
            .method_settings
            .iter()
            .filter(move |m| m.selector.applies(path, method_key))
    };
    let enabled = settings().find_map(|m| m.caching_enabled).unwrap_or(true);
    let ttl = settings()
        .find_map(|m| m.cache_ttl_seconds)
        .unwrap_or(DEFAULT_TTL_SECS);
    if !enabled || ttl == 0 {
        return Ok(None);
    }

    let mut invalidate = false;
    let mut warn = false;
    if asks_invalidation(&parts.headers) {
        let require = settings()
            .find_map(|m| m.require_authorization_for_cache_control)
            .unwrap_or(true);
        if !require || may_invalidate(ctx, &parts.headers) {
            invalidate = true;
        } else {
            match settings()
                .find_map(|m| m.unauthorized_cache_control)
                .unwrap_or_default()
            {
                UnauthorizedCacheControl::FailWith403 => {
                    return Err(Reject::CacheInvalidationDenied {
                        arn: crate::phase::policy::method_arn(
                            ctx,
                            api.id.as_str(),
                            &stage.name,
                            &parts.method,
                        ),
                    });
                }
                UnauthorizedCacheControl::SucceedWithResponseHeader => warn = true,
                UnauthorizedCacheControl::SucceedWithoutResponseHeader => {}
            }
        }
    }

    // A canary that shares the stage cache reads and writes the primary deployment's entries.
    let deployment = match &stage.canary {
        Some(c) if variant.is_canary && c.use_stage_cache => stage.primary.deployment_id.as_str(),
        _ => variant.deployment_id.as_str(),
    };
    let namespace = method
        .integration
        .cache_namespace
        .as_deref()
        .unwrap_or(resource.id.as_str());
    let mut key = String::with_capacity(64 + ctx.path.len());
    for part in [deployment, namespace, method_key.as_str()] {
        key.push_str(part);
        key.push('\n');
    }
    for (name, value) in ctx.params.iter() {
        push_param(&mut key, "path", name, [value]);
    }
    for p in &method.integration.cache_key_parameters {
        match p.location {
            // Every path parameter is in the key already.
            ParamLocation::Path => {}
            ParamLocation::Querystring => {
                let values = query_values(parts.uri.query(), &p.name);
                push_param(&mut key, "q", &p.name, values.iter().map(String::as_str));
            }
            ParamLocation::Header => {
                let values = parts
                    .headers
                    .get_all(p.name.as_str())
                    .iter()
                    .map(|v| std::str::from_utf8(v.as_bytes()).unwrap_or("\u{fffd}"));
                push_param(&mut key, "h", &p.name, values);
            }
        }
    }
    Ok(Some(Plan {
        cache: ctx.shared.cache.stage(api.id.as_str(), stage),
        key,
        ttl: Duration::from_secs(u64::from(ttl)),
        invalidate,
        warn,
        edge: api.endpoint_type == EndpointType::Edge,
    }))
}

/// `name=v1,v2` under a location tag, each value length-prefixed so no value can forge
/// another parameter.
pub(crate) fn push_param<'v>(
    key: &mut String,
    tag: &str,
    name: &str,
    values: impl IntoIterator<Item = &'v str>,
) {
    use std::fmt::Write;
    let _ = write!(key, "{tag}.{name}");
    for v in values {
        let _ = write!(key, ":{}:{v}", v.len());
    }
    key.push('\n');
}

/// The decoded values of a query string parameter, in order.
pub(crate) fn query_values(query: Option<&str>, name: &str) -> Vec<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// `Cache-Control: max-age=0` (as a directive of any of the request's Cache-Control headers).
pub(crate) fn asks_invalidation(headers: &HeaderMap) -> bool {
    headers.get_all(header::CACHE_CONTROL).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|d| d.trim().eq_ignore_ascii_case("max-age=0")))
    })
}

/// Whether the caller may invalidate: an enabled API key in a usage plan of the stage (until
/// authorizers exist, the permission AWS gives through `execute-api:InvalidateCache`).
fn may_invalidate(ctx: &RequestCtx<'_>, headers: &HeaderMap) -> bool {
    let Some(stage) = ctx.stage else { return false };
    let key = ctx.key.or_else(|| {
        let presented = headers.get(&API_KEY)?;
        ctx.table
            .key(&KeyDigest::digest(presented.as_bytes()))
            .map(|k| &**k)
    });
    key.is_some_and(|k| k.enabled && k.plans.iter().any(|p| stage.plans.contains_key(p)))
}

/// What the lookup found.
pub enum Lookup {
    /// Answered from the cache.
    Hit(Response<ProxyBody>),
    /// Call the backend; the guard (when this request leads the key) releases waiters when
    /// dropped.
    Miss(Option<LeadGuard>),
}

/// Looks the key up; on a miss, leads the fetch or waits for the one in flight.
pub async fn lookup(ctx: &mut RequestCtx<'_>, plan: &Plan) -> Lookup {
    let caches = &ctx.shared.cache;
    if plan.invalidate {
        plan.cache.invalidate(&plan.key).await;
        ctx.cache_status = Some(CacheStatus::Invalidated);
        return Lookup::Miss(None);
    }
    ctx.cache_status = Some(CacheStatus::Miss);
    if let Some(hit) = plan.cache.get(&plan.key, caches.now()).await {
        return Lookup::Hit(hit_response(ctx, plan, &hit));
    }
    match plan.cache.lead(&plan.key) {
        Lead::Leader(guard) => {
            // A leader may have stored the entry between the lookup and the lead; with the
            // shared tier, another replica may have.
            let now = caches.now();
            let hit = match plan.cache.get(&plan.key, now).await {
                Some(hit) => Some(hit),
                None => plan.cache.get_shared(&plan.key, now).await,
            };
            match hit {
                Some(hit) => Lookup::Hit(hit_response(ctx, plan, &hit)),
                None => Lookup::Miss(Some(guard)),
            }
        }
        Lead::Wait(mut done) => {
            let bound = ctx
                .method
                .map_or(Duration::from_secs(29), |m| m.integration.timeout);
            // Err: the leader is done (its sender dropped); Elapsed: it took too long.
            let _ = tokio::time::timeout(bound, done.changed()).await;
            match plan.cache.get(&plan.key, caches.now()).await {
                Some(hit) => Lookup::Hit(hit_response(ctx, plan, &hit)),
                None => Lookup::Miss(None),
            }
        }
    }
}

fn hit_response(ctx: &mut RequestCtx<'_>, plan: &Plan, hit: &Entry) -> Response<ProxyBody> {
    ctx.cache_status = Some(CacheStatus::Hit);
    let mut resp = Response::new(ProxyBody::full(hit.body.clone()));
    *resp.status_mut() = hit.status;
    *resp.headers_mut() = hit.headers.clone();
    if plan.edge {
        let age = hit.age_secs(ctx.shared.cache.now());
        resp.headers_mut().insert(header::AGE, HeaderValue::from(age));
    }
    decorate(plan, &mut resp);
    resp
}

fn decorate(plan: &Plan, resp: &mut Response<ProxyBody>) {
    if plan.warn {
        resp.headers_mut()
            .append(header::WARNING, HeaderValue::from_static(IGNORED_WARNING));
    }
}

/// Whether an answer is meant for its client alone: it sets a cookie, or the backend's
/// `Cache-Control` says `private` or `no-store`.
fn for_one_client(headers: &HeaderMap) -> bool {
    headers.contains_key(header::SET_COOKIE)
        || headers.get_all(header::CACHE_CONTROL).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',').any(|d| {
                    let name = d.split('=').next().unwrap_or_default().trim();
                    name.eq_ignore_ascii_case("private") || name.eq_ignore_ascii_case("no-store")
                })
            })
        })
}

/// Stores a backend answer when it may be cached (2xx, body at most 1 MiB) and hands it on.
/// The lead guard is dropped after the entry is stored, so waiters find it.
pub async fn store(
    plan: Plan,
    resp: Response<ProxyBody>,
    guard: Option<LeadGuard>,
    now: u64,
) -> Response<ProxyBody> {
    let mut resp = keep(&plan, resp, now).await;
    drop(guard);
    decorate(&plan, &mut resp);
    resp
}

async fn keep(plan: &Plan, resp: Response<ProxyBody>, now: u64) -> Response<ProxyBody> {
    // An answer the backend encoded was encoded for this client's Accept-Encoding, which is
    // not in the key: another client may not accept it. (The gateway's own compression runs
    // after the cache, per client.)
    if !resp.status().is_success() || resp.headers().contains_key(header::CONTENT_ENCODING) {
        return resp;
    }
    // An answer for one client only: a cookie (a session, most often) or a backend's
    // `Cache-Control: private` or `no-store`. A shared cache must not hand it to others.
    if for_one_client(resp.headers()) {
        return resp;
    }
    let declared = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_ENTRY_BYTES as u64) {
        return resp;
    }
    let (head, mut body) = resp.into_parts();
    let mut buf = BytesMut::new();
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
                if buf.len() > MAX_ENTRY_BYTES {
                    // Too big: what was read, then the rest, streamed as it comes.
                    return Response::from_parts(head, ProxyBody::chain(buf.freeze(), body));
                }
            }
            Some(Err(e)) => {
                let received = body.take_received();
                return Response::from_parts(head, ProxyBody::failed(buf.freeze(), e, received));
            }
            None => break,
        }
    }
    let bytes: Bytes = buf.freeze();
    let mut headers = head.headers.clone();
    // Per-answer headers the gateway sets again on every answer.
    for h in [
        HeaderName::from_static("x-amzn-requestid"),
        HeaderName::from_static("x-amz-apigw-id"),
    ] {
        headers.remove(h);
    }
    let entry = plan
        .cache
        .insert(
            plan.key.clone(),
            Entry {
                status: head.status,
                headers,
                body: bytes.clone(),
                stored_at: now,
                ttl: plan.ttl,
            },
        )
        .await;
    plan.cache.put_shared(&plan.key, &entry, now).await;
    let mut body = ProxyBody::full(bytes);
    // The stored answer is sent as the gateway writes headers (as a hit will be).
    body.forget_received();
    Response::from_parts(head, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_zero_is_one_directive_among_others() {
        let asks = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::CACHE_CONTROL, HeaderValue::from_str(v).expect("value"));
            }
            asks_invalidation(&h)
        };
        assert!(asks(&["max-age=0"]));
        assert!(asks(&["no-cache, Max-Age=0"]));
        assert!(asks(&["no-store", "max-age=0"]));
        assert!(!asks(&["max-age=60"]));
        assert!(!asks(&["max-age=00x"]));
        assert!(!asks(&[]));
    }

    #[test]
    fn key_parts_tell_value_lists_apart() {
        let part = |values: &[&str]| {
            let mut key = String::new();
            push_param(&mut key, "q", "type", values.iter().copied());
            key
        };
        assert_ne!(part(&["a", "b"]), part(&["a,b"]));
        assert_ne!(part(&["1:a"]), part(&["1", "a"]));
        assert_ne!(part(&[]), part(&[""]));
        assert_eq!(query_values(Some("type=a&x=1&type=b%2Cc"), "type"), ["a", "b,c"]);
        for seed in [
            &b"type=a&type=b&x=1\nmax-age=0\n"[..],
            b"a=1:1:x&a=&a=1\n",
            b"\n\n",
        ] {
            crate::fuzzing::cache_request(seed);
        }
    }
}
