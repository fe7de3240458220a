//! The request path: the ONE place the phase order lives.
//!
//! ```text
//! limits → method → authority → normalize → route::locate → cors::origin → policy
//!   → cors::preflight → canary → route::resolve → authorize → keys → params → cache::plan → throttle
//!   → cache::lookup → validate → integrate (→ cache::store) → compress
//! ```
//!
//! Then, for every answer (the backend's or the gateway's own): `x-amzn-RequestId`,
//! `x-amz-apigw-id`, the EDGE headers, and a response body that records metrics and the access
//! log line when it ends. The two ids travel with the body ([`ResponseBody::take_ids`]): the
//! HTTP/1.1 server writes them straight into the head, the HTTP/2 side puts them in the map.

use std::{
    borrow::Cow,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use futures::future::Either;
use http::{HeaderName, HeaderValue, Response, Version, header, request::Parts};
use http_body::{Body, Frame, SizeHint};

use crate::{
    Shared,
    body::{BoxError, ProxyBody, RequestBody},
    ctx::{ConnInfo, RequestCtx},
    error::{Reject, RequestView},
    ids::{self, RequestIds},
    phase::{self, Flow},
    upstream::EndpointGuard,
    usage::Admission,
};
use turnpike_core::model::{AccessLogFormat, EndpointType, MethodKey};
use turnpike_core::routing::{Listener, Miss};
use turnpike_telemetry::{
    access_log::{self, AccessRecord},
    metrics::RouteMetrics,
};

/// `x-amzn-RequestId`.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
/// `x-amz-apigw-id`.
pub const APIGW_ID: HeaderName = HeaderName::from_static("x-amz-apigw-id");

/// Serves one request. Never fails: every error becomes an AWS gateway response.
pub async fn serve(
    shared: &Shared,
    conn: &ConnInfo,
    parts: Parts,
    body: RequestBody,
) -> Response<ResponseBody> {
    serve_traced(shared, conn, parts, body, None).await
}

/// [`serve`], writing the execution log into `trace` when given (a test invoke): the same
/// phases, in the same order, for real and test requests.
pub async fn serve_traced(
    shared: &Shared,
    conn: &ConnInfo,
    mut parts: Parts,
    body: RequestBody,
    trace: Option<&crate::trace::Trace>,
) -> Response<ResponseBody> {
    let table = shared.store.load();
    let ids = RequestIds::new(parts.headers.get(&REQUEST_ID));
    // The URI is cheap to clone (shared bytes) and lets the path be borrowed for the whole
    // request while the integration borrows `parts` mutably (it takes the headers out).
    let uri = parts.uri.clone();
    let summary = Summary::of(&parts, &uri);
    let accept_encoding = parts.headers.get(header::ACCEPT_ENCODING).cloned();
    let path = phase::normalize::path(uri.path(), shared.config.allow_raw_path_segments);
    let host = phase::authority::decide(&parts);
    let mut ctx = RequestCtx::new(shared, conn, &table, ids);
    ctx.host = host.as_ref().ok().and_then(Option::as_ref);
    ctx.trace = trace;
    // The @connections management API of WebSocket APIs: in-cluster callers only.
    if conn.listener == Listener::Private
        && let Some(id) = crate::websocket::connections::target(uri.path())
    {
        let result = crate::websocket::connections::route(shared, &parts.method, &id, body).await;
        return finish(ctx, summary, result, Some(&parts.headers));
    }
    let mut flow = phases(&mut ctx, &path, &host, &parts);
    if ctx.trace.is_some() {
        trace_method_request(&ctx, &parts, &flow);
    }
    if matches!(flow, Ok(Flow::Continue)) {
        // The authorizer may wait (a function, a JWKS fetch): boxed, so requests to methods
        // without one carry no room for it in their future.
        if phase::authorize::wanted(&ctx)
            && let Err(reject) = Box::pin(phase::authorize::run(&mut ctx, &parts)).await
        {
            flow = Err(reject);
        }
        if matches!(flow, Ok(Flow::Continue)) {
            flow = identified(&mut ctx, &parts);
        }
    }
    // The stage cache decides before the throttles (which count hits as in AWS), while the
    // request's headers are still here.
    let mut cache = None;
    if matches!(flow, Ok(Flow::Continue)) {
        match phase::cache::plan(&ctx, &parts) {
            Ok(plan) => cache = plan,
            Err(reject) => flow = Err(reject),
        }
    }
    if matches!(flow, Ok(Flow::Continue)) && keep_headers(&ctx) {
        // The integration takes the headers; a customized answer reads them.
        ctx.kept_headers = Some(Box::new(parts.headers.clone()));
    }
    let result = match flow {
        // Throttles and quotas, after the phases that find the key: decided at once, or (with
        // Redis, when this replica's slice has run out) after one round trip.
        Ok(Flow::Continue) => match phase::throttle::admit(&ctx) {
            Admission::Now(Ok(())) => respond(&mut ctx, cache, &mut parts, body).await,
            Admission::Now(Err(reject)) => Err(reject),
            Admission::Later(wait) => match wait.await {
                Ok(()) => respond(&mut ctx, cache, &mut parts, body).await,
                Err(reject) => Err(reject),
            },
        },
        Ok(Flow::Respond(resp)) => Ok(resp),
        Err(reject) => Err(reject),
    };
    let result = match (result, ctx.api.and_then(|a| a.minimum_compression_size)) {
        (Ok(resp), Some(min)) => {
            Ok(crate::compress::response(resp, min, accept_encoding.as_ref(), &summary.method).await)
        }
        (result, _) => result,
    };
    finish(ctx, summary, result, Some(&parts.headers))
}

/// The answer to a request served outside [`serve`] (a WebSocket upgrade): the same ids,
/// headers, metrics and access log as any other.
pub fn answer(
    ctx: RequestCtx<'_>,
    parts: &Parts,
    result: Result<Response<ProxyBody>, Reject>,
) -> Response<ResponseBody> {
    let summary = Summary::of(parts, &parts.uri);
    finish(ctx, summary, result, Some(&parts.headers))
}

/// The execution log's account of the method request, once routing has decided.
fn trace_method_request(ctx: &RequestCtx<'_>, parts: &Parts, flow: &Result<Flow, Reject>) {
    ctx.trace(|| format!("Starting execution for request: {}", ctx.ids.request_id_str()));
    if let (Some(resource), Some(key)) = (ctx.resource, ctx.method_key) {
        ctx.trace(|| format!("HTTP Method: {}, Resource Path: {}", key.as_str(), resource.path));
        ctx.trace(|| {
            let params: Vec<String> = ctx.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("Method request path: {{{}}}", params.join(", "))
        });
        ctx.trace(|| {
            format!(
                "Method request query string: {{{}}}",
                parts.uri.query().unwrap_or_default()
            )
        });
        ctx.trace(|| {
            format!(
                "Method request headers: {}",
                crate::trace::headers(&parts.headers)
            )
        });
        ctx.trace(|| {
            let vars: Vec<String> = ctx
                .variant
                .map(|v| v.variables.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            format!("Stage variables: {{{}}}", vars.join(", "))
        });
        if let Some(m) = ctx.method {
            ctx.trace(|| format!("Integration: {:?}", m.integration.kind));
        }
    }
    if let Err(reject) = flow {
        ctx.trace(|| format!("Execution failed before the integration: {reject}"));
    }
}

/// Whether a gateway response of the request's API reads `method.request.*`.
fn keep_headers(ctx: &RequestCtx<'_>) -> bool {
    ctx.api.is_some_and(|a| a.gateway_responses.reads_request())
}

/// The answer of an admitted request: from the stage cache when it has one, else from the
/// integration (stored in the cache when the plan says so). Without a plan, the integration's
/// own future.
fn respond<'c, 'a>(
    ctx: &'c mut RequestCtx<'a>,
    plan: Option<phase::cache::Plan>,
    parts: &'c mut Parts,
    body: RequestBody,
) -> impl Future<Output = Result<Response<ProxyBody>, Reject>> + 'c {
    match plan {
        None => Either::Left(integrate(ctx, parts, body)),
        Some(plan) => Either::Right(async move {
            let guard = match phase::cache::lookup(ctx, &plan).await {
                phase::cache::Lookup::Hit(resp) => return Ok(resp),
                phase::cache::Lookup::Miss(guard) => guard,
            };
            let resp = integrate(ctx, parts, body).await?;
            let now = ctx.shared.cache.now();
            Ok(phase::cache::store(plan, resp, guard, now).await)
        }),
    }
}

/// The integration, after the body validation its method asks for. Not an `async fn`: a
/// method without body validation runs the integration's own future, one level fewer.
fn integrate<'c, 'a>(
    ctx: &'c mut RequestCtx<'a>,
    parts: &'c mut Parts,
    body: RequestBody,
) -> impl Future<Output = Result<Response<ProxyBody>, Reject>> + 'c {
    match phase::validate::wanted(ctx) {
        None => Either::Left(phase::integrate::run(ctx, parts, body)),
        Some(validation) => Either::Right(async move {
            let body = phase::validate::body(ctx, validation, parts, body).await?;
            phase::integrate::run(ctx, parts, body).await
        }),
    }
}

/// The answer to a request the HTTP layer refused before it had a usable head (malformed,
/// ambiguous framing, over the size limits): the same gateway response, ids, metrics and
/// access log as any other.
pub fn reject(shared: &Shared, conn: &ConnInfo, reject: Reject) -> Response<ResponseBody> {
    let table = shared.store.load();
    let ctx = RequestCtx::new(shared, conn, &table, RequestIds::new(None));
    let summary = Summary {
        method: None,
        version: Version::HTTP_11,
        uri: None,
        user_agent: None,
    };
    finish(ctx, summary, Err(reject), None)
}

/// The phases before the integration, in order. [`serve`] runs the integration right after:
/// it is the only phase that waits, and a separate future level around it would be one more
/// copy of the whole request future per request.
fn phases<'a>(
    ctx: &mut RequestCtx<'a>,
    path: &'a Result<Cow<'a, str>, Reject>,
    host: &Result<Option<HeaderValue>, Reject>,
    parts: &Parts,
) -> Result<Flow, Reject> {
    phase::limits::check(parts, &ctx.shared.config.limits)?;
    // ANY means AWS's seven methods: any other (TRACE, CONNECT, `get`, extension methods)
    // matches no method of any resource, and is answered before anything else reads it.
    if MethodKey::of_request(&parts.method).is_none() {
        return Err(Reject::NoRoute(Miss::Method));
    }
    host.as_ref().map_err(Reject::clone)?;
    let path: &'a str = path.as_ref().map_err(Reject::clone)?;
    let host = ctx.host.and_then(|h| h.to_str().ok());
    if let Flow::Respond(resp) = phase::route::locate(ctx, host, path)? {
        return Ok(Flow::Respond(resp));
    }
    phase::cors::origin(ctx, parts);
    phase::policy::check(ctx, &parts.method)?;
    if let Flow::Respond(resp) = phase::cors::preflight(ctx, parts) {
        return Ok(Flow::Respond(resp));
    }
    phase::canary::pick(ctx, &parts.headers)?;
    phase::route::resolve(ctx, &parts.method)?;
    Ok(Flow::Continue)
}

/// The phases after the authorizer: the API key (which an authorizer may have supplied) and
/// the required parameters.
fn identified(ctx: &mut RequestCtx<'_>, parts: &Parts) -> Result<Flow, Reject> {
    phase::keys::authenticate(ctx, &parts.headers)?;
    phase::params::require(ctx, parts)?;
    Ok(Flow::Continue)
}

/// What the access log needs from the request head, taken before the integration takes the
/// headers out of it.
struct Summary<'a> {
    method: Option<http::Method>,
    version: Version,
    uri: Option<&'a http::Uri>,
    user_agent: Option<HeaderValue>,
}

impl<'a> Summary<'a> {
    fn of(parts: &Parts, uri: &'a http::Uri) -> Self {
        Summary {
            method: Some(parts.method.clone()),
            version: parts.version,
            uri: Some(uri),
            user_agent: access_log::enabled()
                .then(|| parts.headers.get(header::USER_AGENT).cloned())
                .flatten(),
        }
    }
}

/// Adds the headers every answer carries and wraps the body so the request is recorded when
/// the body ends.
fn finish(
    mut ctx: RequestCtx<'_>,
    summary: Summary<'_>,
    result: Result<Response<ProxyBody>, Reject>,
    headers: Option<&http::HeaderMap>,
) -> Response<ResponseBody> {
    let shared = ctx.shared;
    let mut error = None;
    let mut validation_error = None;
    let mut resp = match result {
        Ok(resp) => resp,
        Err(reject) => {
            if let Reject::InvalidBody { error } = &reject {
                validation_error = Some(error.clone());
            }
            let headers = ctx.kept_headers.as_deref().or(headers);
            let request = RequestView {
                headers,
                query: summary.uri.and_then(http::Uri::query),
                method: summary.method.as_ref().map(http::Method::as_str),
                path: summary.uri.map(http::Uri::path),
                protocol: protocol(summary.version),
                user_agent: headers
                    .and_then(|h| h.get(header::USER_AGENT))
                    .and_then(|v| v.to_str().ok()),
            };
            let (resp, message, response_type) = crate::error::answer(&reject, &ctx, &request);
            match reject.source() {
                crate::error::Source::Internal => {
                    tracing::warn!(request_id = ?ctx.ids, error = %reject, "internal error");
                }
                source => {
                    tracing::debug!(request_id = ?ctx.ids, ?source, error = %reject, "rejected");
                }
            }
            error = Some((message, response_type.as_str()));
            resp
        }
    };
    let status = resp.status().as_u16();
    let headers = resp.headers_mut();
    phase::cors::decorate(&ctx, headers);
    if ctx.api.is_some_and(|a| a.endpoint_type == EndpointType::Edge) {
        // What CloudFront adds in front of an edge-optimized API, with the gateway instance
        // in place of the edge location; HTTP/1.1 header names are capitalised.
        headers.append(header::VIA, shared.via.clone());
        let x_cache = if ctx.cache_status == Some(phase::cache::CacheStatus::Hit) {
            "Hit from cloudfront"
        } else {
            "Miss from cloudfront"
        };
        headers.insert(
            HeaderName::from_static("x-cache"),
            HeaderValue::from_static(x_cache),
        );
        headers.insert(HeaderName::from_static("x-amz-cf-pop"), shared.pop.clone());
        headers.insert(HeaderName::from_static("x-amz-cf-id"), ids::edge_request_id());
        resp.extensions_mut().insert(crate::h1::TitleCase);
    }

    let api_id = ctx.api.map_or("", |a| a.id.as_str());
    let stage_name = ctx.stage.map_or("", |s| s.name.as_str());
    let resource_path = ctx.resource.map_or("", |r| r.path.as_str());
    let method_label = match ctx.method_key {
        Some(k) => k.as_str(),
        None => summary
            .method
            .as_ref()
            .and_then(MethodKey::of_request)
            .map_or("OTHER", MethodKey::as_str),
    };
    let route_metrics =
        shared
            .metrics
            .route(api_id, stage_name, resource_path, method_label, ctx.is_canary());
    let format = ctx
        .stage
        .and_then(|s| s.access_log.as_ref())
        .or(shared.config.default_access_log.as_ref());
    let record = format.filter(|_| access_log::enabled()).map(|format| {
        let record = AccessRecord {
            request_id: ctx.ids.request_id_str(),
            extended_request_id: ctx.ids.extended_str(),
            request_time: std::time::SystemTime::now().checked_sub(ctx.start.elapsed()),
            http_method: summary
                .method
                .as_ref()
                .map_or("-", http::Method::as_str)
                .to_string(),
            resource_path: resource_path.to_string(),
            resource_id: ctx.resource.map(|r| r.id.clone()).unwrap_or_default(),
            path: summary.uri.map_or("-", http::Uri::path).to_string(),
            protocol: protocol(summary.version),
            status,
            response_length: 0,
            response_latency: Default::default(),
            integration_latency: ctx.integration_latency,
            integration_status: ctx.integration_status,
            integration_error: ctx.integration_error.take(),
            source_ip: Some(ctx.conn.peer.ip()),
            user_agent: summary.user_agent.as_ref().map(header_str),
            domain_name: ctx.host.map(header_str),
            api_key_id: ctx.key.map(|k| k.id.to_string()),
            api_key_masked: ctx.key.map(|k| k.digest.masked()),
            api_id: api_id.to_string(),
            stage: stage_name.to_string(),
            deployment_id: ctx.variant.map(|v| v.deployment_id.clone()).unwrap_or_default(),
            is_canary: ctx.is_canary(),
            cache_status: ctx.cache_status.map(phase::cache::CacheStatus::as_str),
            error_message: error.map(|e| e.0),
            error_response_type: error.map(|e| e.1),
            validation_error_string: validation_error,
            authorizer: ctx
                .identity
                .as_ref()
                .map(crate::authorizer::Identity::values)
                .unwrap_or_default(),
            authorizer_error: ctx.authorizer_error.take(),
            authorizer_latency: ctx.authorizer_latency,
            websocket: None,
        };
        (Box::new(record), format.clone())
    });
    let completion = Completion {
        cache_hit: ctx.cache_status.map(|s| s == phase::cache::CacheStatus::Hit),
        metrics: route_metrics,
        status,
        start: ctx.start,
        integration_latency: ctx.integration_latency,
        record,
        _endpoint: ctx.endpoint.take(),
    };
    let ids = Some(ctx.ids);
    resp.map(|body| ResponseBody {
        inner: body,
        sent: 0,
        ids,
        completion: Some(completion),
    })
}

fn header_str(v: &HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes()).into_owned()
}

pub(crate) fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// What is recorded when the response body ends (or is dropped unfinished).
struct Completion {
    metrics: Arc<RouteMetrics>,
    /// For a cached method: whether the cache answered.
    cache_hit: Option<bool>,
    status: u16,
    start: Instant,
    integration_latency: Option<std::time::Duration>,
    record: Option<(Box<AccessRecord>, AccessLogFormat)>,
    /// Keeps the endpoint's outstanding count until the response ends.
    _endpoint: Option<EndpointGuard>,
}

impl Completion {
    fn complete(self, sent: u64) {
        let latency = self.start.elapsed();
        self.metrics
            .record(self.status, latency, self.integration_latency);
        if let Some(hit) = self.cache_hit {
            self.metrics.record_cache(hit);
        }
        if let Some((mut record, format)) = self.record {
            record.response_length = sent;
            record.response_latency = latency;
            record.emit(&format);
        }
    }
}

/// The body of every response: the inner body, counted; metrics and the access log line are
/// recorded when it ends or is dropped.
pub struct ResponseBody {
    inner: ProxyBody,
    sent: u64,
    /// `x-amzn-RequestId` and `x-amz-apigw-id`, until the head is written.
    ids: Option<RequestIds>,
    completion: Option<Completion>,
}

// === impl ResponseBody ===

impl ResponseBody {
    /// The answer's `x-amzn-RequestId` and `x-amz-apigw-id`, for the head (once).
    pub fn take_ids(&mut self) -> Option<RequestIds> {
        self.ids.take()
    }

    /// The backend's head, for writing its header names as it spelled them.
    pub fn received(&self) -> Option<&crate::h1::ReceivedHead> {
        self.inner.received()
    }
}

/// Puts the ids of an answer into its header map (for writers that take a map: hyper).
pub fn ids_into_headers(resp: &mut Response<ResponseBody>) {
    if let Some(ids) = resp.body_mut().take_ids() {
        let headers = resp.headers_mut();
        headers.insert(REQUEST_ID, ids.request_id_header());
        headers.insert(APIGW_ID, ids.extended_header());
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.sent += d.len() as u64;
                }
            }
            Poll::Ready(None) => {
                if let Some(c) = this.completion.take() {
                    c.complete(this.sent);
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(c) = self.completion.take() {
            c.complete(self.sent);
        }
    }
}
