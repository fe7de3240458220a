//! [`RequestCtx`]: what the phases know about one request.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use http::HeaderValue;

use crate::{Shared, ids::RequestIds, upstream::EndpointGuard};
use turnpike_core::model::{MethodDef, MethodKey};
use turnpike_core::routing::{
    ApiEntry, KeyEntry, Listener, PathParams, PlanEntry, ResourceEntry, RoutingTable, StageEntry,
    StageVariant,
};

/// How a connection reached the proxy.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub listener: Listener,
    pub tls: bool,
    /// The peer's IP as a header value (for X-Forwarded-For), rendered once per connection.
    pub peer_ip: HeaderValue,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, listener: Listener, tls: bool) -> Self {
        let peer_ip = HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ConnInfo {
            peer,
            listener,
            tls,
            peer_ip,
        }
    }
}

/// The state of one request as it goes through the phases.
///
/// Everything borrowed lives as long as the request (`'a`): the routing snapshot loaded once
/// at the start and the request path. Phases fill the `Option`s in order: `route::locate` sets
/// `api`, `stage` and `path`; `canary::pick` sets `variant`; `route::resolve` sets
/// `resource`, `method_key`, `method` and `params`; `keys::authenticate` sets `key` and
/// `plan`; the integration sets the `integration_*`
/// fields. The service reads them at the end for the response headers, metrics and the access
/// log.
pub struct RequestCtx<'a> {
    pub shared: &'a Shared,
    pub conn: &'a ConnInfo,
    /// The snapshot this request is served from, start to end.
    pub table: &'a RoutingTable,
    pub start: Instant,
    /// `x-amzn-RequestId` (the client's UUID or a new one) and `x-amz-apigw-id`
    /// (`$context.extendedRequestId`).
    pub ids: RequestIds,
    pub api: Option<&'a ApiEntry>,
    pub stage: Option<&'a StageEntry>,
    /// The Host the client asked for (`:authority` for h2).
    pub host: Option<&'a HeaderValue>,
    /// The resource path within the stage (normalised, still percent-encoded).
    pub path: &'a str,
    pub variant: Option<&'a StageVariant>,
    pub resource: Option<&'a ResourceEntry>,
    pub method_key: Option<MethodKey>,
    pub method: Option<&'a MethodDef>,
    /// Path parameters, percent-encoded as received (inline, no allocation).
    pub params: PathParams<'a, 'a>,
    /// The API key the request presented (set by `keys::authenticate`, only on methods that
    /// require one; also when it is then refused as disabled or in no plan).
    pub key: Option<&'a KeyEntry>,
    /// The key's usage plan on this stage.
    pub plan: Option<&'a PlanEntry>,
    pub integration_status: Option<u16>,
    pub integration_latency: Option<Duration>,
    pub integration_error: Option<String>,
    /// The endpoint of a private integration; held until the response body ends so the
    /// outstanding count is true.
    pub endpoint: Option<EndpointGuard>,
    /// The request's `Origin`, noted only for APIs with `spec.cors`.
    pub origin: Option<HeaderValue>,
    /// Whether the answer is the gateway's own CORS preflight answer (which carries its own
    /// CORS headers).
    pub cors_preflight: bool,
    /// The request headers, kept past the integration (which takes them) only when a
    /// gateway response of the API reads `method.request.*`.
    pub kept_headers: Option<Box<http::HeaderMap>>,
    /// What the stage cache did (`None` for a method without caching).
    pub cache_status: Option<crate::phase::cache::CacheStatus>,
    /// What the method's authorizer established (set by `authorize::run`).
    pub identity: Option<crate::authorizer::Identity>,
    /// Why the authorizer refused or failed (`$context.authorizer.error`).
    pub authorizer_error: Option<String>,
    pub authorizer_latency: Option<Duration>,
    /// The execution log, for a test invoke only (see [`RequestCtx::trace`]).
    pub trace: Option<&'a crate::trace::Trace>,
}

// === impl RequestCtx ===

impl<'a> RequestCtx<'a> {
    pub fn new(shared: &'a Shared, conn: &'a ConnInfo, table: &'a RoutingTable, ids: RequestIds) -> Self {
        RequestCtx {
            shared,
            conn,
            table,
            start: Instant::now(),
            ids,
            api: None,
            stage: None,
            host: None,
            path: "/",
            variant: None,
            resource: None,
            method_key: None,
            method: None,
            params: PathParams::default(),
            key: None,
            plan: None,
            integration_status: None,
            integration_latency: None,
            integration_error: None,
            endpoint: None,
            origin: None,
            cors_preflight: false,
            kept_headers: None,
            cache_status: None,
            identity: None,
            authorizer_error: None,
            authorizer_latency: None,
            trace: None,
        }
    }

    /// A path parameter (percent-encoded as received).
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params.get(name)
    }

    /// A stage variable of the chosen variant.
    pub fn stage_variable(&self, name: &str) -> Option<&'a str> {
        self.variant.and_then(|v| v.variable(name))
    }

    /// Writes a line to the execution log when the request has one (a test invoke); `line`
    /// runs only then, so real requests pay one branch.
    #[inline]
    pub fn trace(&self, line: impl FnOnce() -> String) {
        if let Some(t) = self.trace {
            t.log(line());
        }
    }

    pub fn is_canary(&self) -> bool {
        self.variant.is_some_and(|v| v.is_canary)
    }
}
