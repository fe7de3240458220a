//! The integration: MOCK answers from the integration responses; HTTP_PROXY streams the
//! request to the backend and the response back untouched (but for hop-by-hop and reserved
//! headers); HTTP maps request parameters in and integration responses out. Backends are a
//! URL or an in-cluster Service's ready endpoints.

use std::{future::ready, net::SocketAddr, time::Instant};

use bytes::Bytes;
use futures::future::Either;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version, header, request::Parts,
};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::{
    body::{Limited, ProxyBody, RequestBody},
    ctx::RequestCtx,
    error::Reject,
    headers::{Forwarded, Reserved, remap_reserved, strip_hop_by_hop},
    phase::{
        mapping::{self, TemplateScope},
        params::query_value,
    },
    upstream::{Outgoing, SendError, UrlParts, split_url},
};
use turnpike_core::{
    model::{
        Backend, BinaryMediaTypes, ContentHandling, HeaderSource, Integration, IntegrationKind,
        IntegrationResponse, ParamLocation, RequestMapping, ValueSource,
    },
    template::{Rendered, Template},
};

use crate::trace::{self, Trace};

/// Characters escaped in a mapped query value or path parameter.
const COMPONENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'/')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Runs the method's integration. The request head is borrowed, not moved: each level of
/// request future would otherwise hold its own copy of it; what goes to the backend is taken
/// out of it. Not an `async fn`: it hands back the integration's own future, one level (and
/// one copy per request) fewer.
pub fn run<'c, 'a>(
    ctx: &'c mut RequestCtx<'a>,
    parts: &'c mut Parts,
    body: RequestBody,
) -> impl Future<Output = Result<Response<ProxyBody>, Reject>> + 'c {
    let Some(method) = ctx.method else {
        return Either::Left(Either::Left(Either::Left(ready(Err(Reject::Internal(
            "integration before resolve".into(),
        ))))));
    };
    let integration = &method.integration;
    match integration.kind {
        IntegrationKind::Mock => {
            Either::Left(Either::Left(Either::Right(mock(ctx, integration, parts, body))))
        }
        IntegrationKind::HttpProxy => Either::Right(Either::Left(http_proxy(ctx, integration, parts, body))),
        IntegrationKind::Http => Either::Right(Either::Right(http(ctx, integration, parts, body))),
        // Boxed: its future holds the whole event; HTTP_PROXY requests should not carry room
        // for it.
        IntegrationKind::AwsProxy => Either::Left(Either::Right(Box::pin(crate::phase::function::run(
            ctx,
            integration,
            parts,
            body,
        )))),
    }
}

// === MOCK ===

async fn mock(
    ctx: &RequestCtx<'_>,
    integration: &Integration,
    parts: &Parts,
    body: RequestBody,
) -> Result<Response<ProxyBody>, Reject> {
    // Built once, by the first template that runs, for all of the integration's templates.
    let mut scope: Option<TemplateScope> = None;
    let templates = integration_templates(integration);
    let limits = mapping::limits(ctx);
    let status = match integration.request_mapping(header_str(&parts.headers, header::CONTENT_TYPE)) {
        RequestMapping::Unsupported => return Err(Reject::UnsupportedMediaType),
        RequestMapping::Passthrough => MOCK_STATUS,
        RequestMapping::Template(_, template) => {
            let payload =
                crate::phase::validate::collect(body, ctx.shared.config.limits.max_body_bytes).await?;
            let rendered = scope
                .get_or_insert_with(|| TemplateScope::new(ctx, parts, templates.clone()))
                .render(template, &payload, &limits)
                .map_err(mapping::request_failure)?;
            ctx.trace(|| {
                format!(
                    "Request template output: {}",
                    trace::body(rendered.body.as_bytes())
                )
            });
            mock_status(&rendered.body)?
        }
    };
    ctx.trace(|| format!("MOCK integration selected status: {status}"));
    let selected = select(&integration.responses, status).ok_or(Reject::ApiConfiguration(
        "no integration response for the mock status".into(),
    ))?;
    let rendered = match selected.template_for(header_str(&parts.headers, header::ACCEPT)) {
        Some((content_type, template)) => {
            let out = scope
                .get_or_insert_with(|| TemplateScope::new(ctx, parts, templates.clone()))
                .render(template, b"", &limits)
                .map_err(mapping::response_failure)?;
            ctx.trace(|| {
                format!(
                    "Method response body after transformations: {}",
                    trace::body(out.body.as_bytes())
                )
            });
            Some((content_type, out))
        }
        None => None,
    };
    let mut resp = Response::new(ProxyBody::empty());
    apply_response(&mut resp, selected, None, rendered)?;
    Ok(resp)
}

/// Every mapping template of an integration: its request templates, then its responses'.
fn integration_templates(integration: &Integration) -> impl Iterator<Item = &Template> + Clone {
    let responses = integration.responses.iter().flat_map(|r| r.templates.iter());
    integration
        .request_templates
        .iter()
        .chain(responses)
        .map(|(_, t)| t)
}

/// The status of a MOCK integration without a request template for the payload.
const MOCK_STATUS: u16 = 200;

/// The status a MOCK request template's output selects: the JSON object's `statusCode` (a
/// number or a numeric string), 200 without one. Output that is not such JSON is the API's
/// configuration error (500), as in AWS.
fn mock_status(rendered: &str) -> Result<u16, Reject> {
    let value: serde_json::Value = serde_json::from_str(rendered).map_err(|e| {
        Reject::ApiConfiguration(format!("the MOCK request template's output is not JSON: {e}").into())
    })?;
    let Some(object) = value.as_object() else {
        return Err(Reject::ApiConfiguration(
            "the MOCK request template's output is not a JSON object".into(),
        ));
    };
    let code = match object.get("statusCode") {
        None => return Ok(MOCK_STATUS),
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    code.and_then(|c| u16::try_from(c).ok())
        .filter(|c| (100..=599).contains(c))
        .ok_or_else(|| {
            Reject::ApiConfiguration(
                format!(
                    "the MOCK request template selects statusCode {}, not an HTTP status",
                    object["statusCode"]
                )
                .into(),
            )
        })
}

/// The integration response for a status: the first whose pattern matches, else the default.
fn select(responses: &[IntegrationResponse], status: u16) -> Option<&IntegrationResponse> {
    responses
        .iter()
        .find(|r| r.selection_pattern.is_some() && r.selects(status))
        .or_else(|| responses.iter().find(|r| r.selection_pattern.is_none()))
}

/// Sets status, mapped headers and the rendered template of `selected` on `resp` (with the
/// template's `$context.responseOverride`); `backend` is the backend's response headers (for
/// `integration.response.header.*`).
fn apply_response(
    resp: &mut Response<ProxyBody>,
    selected: &IntegrationResponse,
    backend: Option<&HeaderMap>,
    rendered: Option<(&str, Rendered)>,
) -> Result<(), Reject> {
    *resp.status_mut() = StatusCode::from_u16(selected.status).map_err(|_| {
        Reject::Internal(format!("invalid method response status {}", selected.status).into())
    })?;
    for (name, source) in &selected.headers {
        let value = match source {
            HeaderSource::Static(v) => HeaderValue::from_str(v).ok(),
            HeaderSource::Backend(n) => backend.and_then(|h| h.get(n.as_str())).cloned(),
        };
        if let (Ok(name), Some(value)) = (HeaderName::from_bytes(name.as_bytes()), value) {
            resp.headers_mut().insert(name, value);
        }
    }
    if let Some((content_type, rendered)) = rendered {
        if let Ok(ct) = HeaderValue::from_str(content_type) {
            resp.headers_mut().insert(header::CONTENT_TYPE, ct);
        }
        resp.headers_mut().remove(header::CONTENT_LENGTH);
        if let Some(status) = rendered
            .status_override()
            .and_then(|s| StatusCode::from_u16(s).ok())
        {
            *resp.status_mut() = status;
        }
        for (name, value) in rendered.header_overrides() {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                resp.headers_mut().insert(name, value);
            }
        }
        *resp.body_mut() = ProxyBody::full(Bytes::from(rendered.body));
    }
    Ok(())
}

// === HTTP_PROXY ===

async fn http_proxy(
    ctx: &mut RequestCtx<'_>,
    integration: &Integration,
    parts: &mut Parts,
    body: RequestBody,
) -> Result<Response<ProxyBody>, Reject> {
    let mut headers = std::mem::take(&mut parts.headers);
    let uri = &parts.uri;
    let target = match &integration.backend {
        Backend::Url(t) | Backend::Service { uri: t, .. } => t,
        Backend::None | Backend::Function(_) => {
            return Err(Reject::Internal("HTTP_PROXY without a backend".into()));
        }
    };
    let mut url = target.render(|n| ctx.param(n), |n| ctx.stage_variable(n));
    if let Some(q) = uri.query() {
        append_query(&mut url, q);
    }
    strip_hop_by_hop(&mut headers);
    let mut out = outgoing(ctx, integration, &parts.method, url, headers, body);
    out.forwarded = Some(Forwarded {
        peer: ctx.conn.peer_ip.clone(),
        proto: if ctx.conn.tls { "https" } else { "http" },
        host: ctx.host.cloned(),
    });
    let resp = send(ctx, integration, out, Reserved::Remap).await?;
    let (mut head, body) = resp.into_parts();
    strip_hop_by_hop(&mut head.headers);
    head.version = Version::HTTP_11;
    Ok(Response::from_parts(head, body))
}

// === HTTP ===

async fn http(
    ctx: &mut RequestCtx<'_>,
    integration: &Integration,
    parts: &mut Parts,
    body: RequestBody,
) -> Result<Response<ProxyBody>, Reject> {
    let target = match &integration.backend {
        Backend::Url(t) | Backend::Service { uri: t, .. } => t,
        Backend::None | Backend::Function(_) => {
            return Err(Reject::Internal("HTTP without a backend".into()));
        }
    };
    let mut path_values: Vec<(&str, String)> = Vec::new();
    let mut query = String::new();
    let mut headers = HeaderMap::new();
    for mapping in &integration.request_parameters {
        let value: Option<String> = match &mapping.source {
            ValueSource::Request(p) => match p.location {
                ParamLocation::Path => ctx.param(&p.name).map(str::to_string),
                ParamLocation::Querystring => query_value(parts.uri.query(), &p.name).map(str::to_string),
                ParamLocation::Header => parts
                    .headers
                    .get(p.name.as_str())
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            },
            ValueSource::StageVariable(n) => ctx.stage_variable(n).map(str::to_string),
            ValueSource::Static(v) => Some(v.clone()),
            ValueSource::Authorizer(n) => ctx.identity.as_ref().and_then(|i| i.value(n)),
        };
        let Some(value) = value else { continue };
        let from_url = matches!(
            &mapping.source,
            ValueSource::Request(p) if p.location != ParamLocation::Header
        );
        let encode = |v: &str| -> String {
            if from_url {
                v.to_string()
            } else {
                utf8_percent_encode(v, COMPONENT).to_string()
            }
        };
        match mapping.target.location {
            ParamLocation::Path => path_values.push((mapping.target.name.as_str(), encode(&value))),
            ParamLocation::Querystring => {
                if !query.is_empty() {
                    query.push('&');
                }
                query.push_str(&utf8_percent_encode(&mapping.target.name, COMPONENT).to_string());
                query.push('=');
                query.push_str(&encode(&value));
            }
            ParamLocation::Header => {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(mapping.target.name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    headers.insert(n, v);
                }
            }
        }
    }
    let mut url = target.render(
        |n| path_values.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str()),
        |n| ctx.stage_variable(n),
    );
    if !query.is_empty() {
        append_query(&mut url, &query);
    }
    let templates = integration_templates(integration);
    let scope = templates
        .clone()
        .next()
        .is_some()
        .then(|| TemplateScope::new(ctx, parts, templates));
    let limits = mapping::limits(ctx);
    let body_limit = ctx.shared.config.limits.max_body_bytes;
    let body = match (
        integration.request_mapping(header_str(&parts.headers, header::CONTENT_TYPE)),
        &scope,
    ) {
        (RequestMapping::Unsupported, _) => return Err(Reject::UnsupportedMediaType),
        (RequestMapping::Template(content_type, template), Some(scope)) => {
            let payload = crate::phase::validate::collect(body, body_limit).await?;
            let rendered = scope
                .render(template, &payload, &limits)
                .map_err(mapping::request_failure)?;
            ctx.trace(|| {
                format!(
                    "Endpoint request body after transformations: {}",
                    trace::body(rendered.body.as_bytes())
                )
            });
            // A Content-Type mapped by requestParameters wins over the template's.
            if !headers.contains_key(header::CONTENT_TYPE)
                && let Ok(ct) = HeaderValue::from_str(content_type)
            {
                headers.insert(header::CONTENT_TYPE, ct);
            }
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(rendered.body.len()));
            RequestBody::full(Bytes::from(rendered.body))
        }
        _ => passthrough(ctx, integration, parts, &mut headers, body).await?,
    };
    let out = outgoing(ctx, integration, &parts.method, url, headers, body);
    let resp = send(ctx, integration, out, Reserved::Keep).await?;
    let status = resp.status().as_u16();
    let (mut head, mut body) = resp.into_parts();
    strip_hop_by_hop(&mut head.headers);
    let Some(selected) = select(&integration.responses, status) else {
        // No integration response configured: pass the backend's answer through.
        remap_reserved(&mut head.headers);
        head.version = Version::HTTP_11;
        return Ok(Response::from_parts(head, body));
    };
    // The method response's names are the configuration's, not the backend's.
    body.forget_received();
    let template = selected.template_for(header_str(&parts.headers, header::ACCEPT));
    if let (Some((content_type, template)), Some(scope)) = (template, &scope) {
        let payload = collect_response(body, body_limit).await?;
        let rendered = scope
            .render(template, &payload, &limits)
            .map_err(mapping::response_failure)?;
        ctx.trace(|| {
            format!(
                "Method response body after transformations: {}",
                trace::body(rendered.body.as_bytes())
            )
        });
        let mut resp = Response::new(ProxyBody::empty());
        apply_response(
            &mut resp,
            selected,
            Some(&head.headers),
            Some((content_type, rendered)),
        )?;
        return Ok(resp);
    }
    let conversion = match ctx.api {
        Some(api) => response_conversion(
            &api.binary_media_types,
            selected.content_handling,
            header_str(&head.headers, header::CONTENT_TYPE),
            header_str(&parts.headers, header::ACCEPT),
        ),
        _ => None,
    };
    if let Some(conversion) = conversion {
        let limit = ctx.shared.config.limits.max_body_bytes;
        let bytes = collect_response(body, limit).await?;
        let converted = conversion.apply(&bytes).ok_or(Reject::ApiConfiguration(
            "the integration response is not base64".into(),
        ))?;
        head.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(converted.len()));
        body = ProxyBody::full(converted);
    }
    let mut resp = Response::new(body);
    if let Some(ct) = head.headers.get(header::CONTENT_TYPE) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
    }
    if let Some(cl) = head.headers.get(header::CONTENT_LENGTH) {
        resp.headers_mut().insert(header::CONTENT_LENGTH, cl.clone());
    }
    apply_response(&mut resp, selected, Some(&head.headers), None)?;
    Ok(resp)
}

/// The request payload passed through (no template for it): its Content-Type, length and
/// encoding go along, converted as `contentHandling` says.
async fn passthrough(
    ctx: &RequestCtx<'_>,
    integration: &Integration,
    parts: &Parts,
    headers: &mut HeaderMap,
    body: RequestBody,
) -> Result<RequestBody, Reject> {
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
    ] {
        if let Some(v) = parts.headers.get(&name) {
            headers.entry(name).or_insert_with(|| v.clone());
        }
    }
    let binary_types = ctx.api.map(|a| &a.binary_media_types);
    let body = match binary_types.and_then(|types| {
        request_conversion(
            types,
            integration.content_handling,
            header_str(&parts.headers, header::CONTENT_TYPE),
        )
    }) {
        None => body,
        Some(conversion) => {
            let limit = ctx.shared.config.limits.max_body_bytes;
            let bytes = crate::phase::validate::collect(body, limit).await?;
            let converted = conversion
                .apply(&bytes)
                .ok_or(Reject::ApiConfiguration("the request body is not base64".into()))?;
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(converted.len()));
            RequestBody::full(converted)
        }
    };
    Ok(body)
}

// === contentHandling ===

/// A payload conversion between binary and text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conversion {
    /// Binary to text: base64-encode.
    Encode,
    /// Text to binary: base64-decode.
    Decode,
}

impl Conversion {
    /// The converted payload; `None` when a payload to decode is not base64.
    fn apply(self, bytes: &[u8]) -> Option<Bytes> {
        use base64::Engine as _;
        let engine = &base64::engine::general_purpose::STANDARD;
        match self {
            Conversion::Encode => Some(Bytes::from(engine.encode(bytes))),
            Conversion::Decode => engine.decode(bytes.trim_ascii()).ok().map(Bytes::from),
        }
    }
}

/// The request payload conversion of an HTTP integration (AWS's table): whether the payload is
/// binary is decided by its Content-Type against the API's binary media types;
/// CONVERT_TO_TEXT encodes a binary one, CONVERT_TO_BINARY decodes a text one, and without
/// `contentHandling` the payload passes unchanged.
fn request_conversion(
    types: &BinaryMediaTypes,
    handling: Option<ContentHandling>,
    content_type: Option<&str>,
) -> Option<Conversion> {
    let binary = content_type.is_some_and(|ct| types.matches(ct));
    match handling? {
        ContentHandling::ConvertToText => binary.then_some(Conversion::Encode),
        ContentHandling::ConvertToBinary => (!binary).then_some(Conversion::Decode),
    }
}

/// The response payload conversion (AWS's table): the backend's payload is binary when its
/// Content-Type is a binary media type; the client wants binary when the FIRST type of its
/// Accept header is one. With a `contentHandling` the payload ends as it says; without one,
/// a binary payload for a client that wants text is encoded and a text payload for a client
/// that wants binary is decoded.
fn response_conversion(
    types: &BinaryMediaTypes,
    handling: Option<ContentHandling>,
    content_type: Option<&str>,
    accept: Option<&str>,
) -> Option<Conversion> {
    let binary = content_type.is_some_and(|ct| types.matches(ct));
    match handling {
        Some(ContentHandling::ConvertToText) => binary.then_some(Conversion::Encode),
        Some(ContentHandling::ConvertToBinary) => (!binary).then_some(Conversion::Decode),
        None => {
            let wants_binary = accept
                .and_then(|a| a.split(',').next())
                .is_some_and(|first| types.matches(first));
            match (binary, wants_binary) {
                (true, false) => Some(Conversion::Encode),
                (false, true) => Some(Conversion::Decode),
                _ => None,
            }
        }
    }
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A backend's whole body, at most `limit` bytes (a larger one is an integration failure, as
/// AWS's 10 MB response limit).
async fn collect_response(body: ProxyBody, limit: u64) -> Result<Bytes, Reject> {
    use http_body_util::BodyExt as _;
    let collected = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .collect()
        .await
        .map_err(|e| Reject::Upstream(format!("reading the integration response: {e}")))?;
    Ok(collected.to_bytes())
}

// === sending ===

/// The request for the backend: the integration's method (else the client's), and the body
/// held to the payload limit.
fn outgoing(
    ctx: &RequestCtx<'_>,
    integration: &Integration,
    method: &Method,
    url: String,
    headers: HeaderMap,
    body: RequestBody,
) -> Outgoing {
    Outgoing {
        method: integration.http_method.clone().unwrap_or_else(|| method.clone()),
        url,
        headers,
        body: Limited::new(body, ctx.shared.config.limits.max_body_bytes),
        forwarded: None,
    }
}

/// Appends a query string to a backend URL that may already have one.
fn append_query(url: &mut String, query: &str) {
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(query);
}

/// Sends to the backend: a URL directly, or a Service through the balancer (one retry on
/// another endpoint after a connect failure, for idempotent methods without a body).
async fn send(
    ctx: &mut RequestCtx<'_>,
    integration: &Integration,
    out: Outgoing,
    reserved: Reserved,
) -> Result<Response<ProxyBody>, Reject> {
    if let Some(t) = ctx.trace {
        trace_endpoint_request(t, integration, &out);
    }
    let upstreams = &ctx.shared.upstreams;
    let started = Instant::now();
    let send_to = |out: Outgoing| {
        upstreams.send(
            out,
            integration.insecure_skip_verify,
            started,
            integration.timeout,
            reserved,
        )
    };
    let result = match &integration.backend {
        // Boxed: the balancer's retry holds a second request and a second send; a URL backend
        // (the common case) should not carry their room in every request's future.
        Backend::Service { service, .. } => Box::pin(via_service(ctx, service, out, send_to)).await,
        _ => send_to(out).await,
    };
    ctx.integration_latency = Some(started.elapsed());
    match result {
        Ok(resp) => {
            ctx.integration_status = Some(resp.status().as_u16());
            match ctx.trace {
                Some(t) => traced_endpoint_response(t, ctx, resp).await,
                None => Ok(resp),
            }
        }
        Err(e) => {
            ctx.integration_error = Some(format!("{e:?}"));
            ctx.trace(|| format!("Execution failed due to an integration error: {e:?}"));
            Err(e.into())
        }
    }
}

/// The execution log's account of the request to the backend.
fn trace_endpoint_request(t: &Trace, integration: &Integration, out: &Outgoing) {
    match &integration.backend {
        Backend::Service { service, .. } => t.log(format!(
            "Endpoint request URI: {} {} (Service {}/{}:{})",
            out.method, out.url, service.namespace, service.name, service.port
        )),
        _ => t.log(format!("Endpoint request URI: {} {}", out.method, out.url)),
    }
    t.log(format!(
        "Endpoint request headers: {}",
        trace::headers(&out.headers)
    ));
}

/// The execution log's account of the backend's answer: a test invoke reads the whole body
/// (to log it) and hands it on.
async fn traced_endpoint_response(
    t: &Trace,
    ctx: &RequestCtx<'_>,
    resp: Response<ProxyBody>,
) -> Result<Response<ProxyBody>, Reject> {
    let latency = ctx.integration_latency.map_or(0.0, trace::ms);
    t.log(format!(
        "Received response. Status: {}, Integration latency: {latency:.3} ms",
        resp.status().as_u16()
    ));
    t.log(format!(
        "Endpoint response headers: {}",
        trace::headers(resp.headers())
    ));
    let (head, body) = resp.into_parts();
    let bytes = collect_response(body, ctx.shared.config.limits.max_body_bytes).await?;
    t.log(format!(
        "Endpoint response body before transformations: {}",
        trace::body(&bytes)
    ));
    Ok(Response::from_parts(head, ProxyBody::full(bytes)))
}

/// Sends to one of a Service's ready endpoints, balanced; a connect failure ejects the endpoint
/// and, for an idempotent method without a body, is retried once on another.
async fn via_service<F, Fut>(
    ctx: &mut RequestCtx<'_>,
    service: &turnpike_core::model::ServiceRef,
    mut out: Outgoing,
    send_to: F,
) -> Result<Response<ProxyBody>, SendError>
where
    F: Fn(Outgoing) -> Fut,
    Fut: Future<Output = Result<Response<ProxyBody>, SendError>>,
{
    let upstreams = &ctx.shared.upstreams;
    let url = std::mem::take(&mut out.url);
    let target = split_url(&url).map_err(SendError::InvalidUrl)?;
    let endpoints = crate::service_endpoints(ctx.table, service);
    let guard = upstreams
        .balancer
        .pick(endpoints, None)
        .ok_or(SendError::NoEndpoint)?;
    let retryable =
        is_idempotent(&out.method) && http_body::Body::is_end_stream(&out.body) && endpoints.len() > 1;
    let again = retryable.then(|| out.replay());
    out.url = at_endpoint(&target, guard.addr);
    match send_to(out).await {
        Err(SendError::Connect(e)) => {
            upstreams.balancer.eject(&guard);
            match again {
                Some(mut again) => {
                    let exclude = guard.addr;
                    drop(guard);
                    let guard = upstreams
                        .balancer
                        .pick(endpoints, Some(exclude))
                        .ok_or(SendError::NoEndpoint)?;
                    again.url = at_endpoint(&target, guard.addr);
                    let r = send_to(again).await;
                    settle(ctx, guard, r)
                }
                None => {
                    drop(guard);
                    Err(SendError::Connect(e))
                }
            }
        }
        other => settle(ctx, guard, other),
    }
}

/// Records the endpoint outcome and keeps the guard on the context until the response ends.
fn settle(
    ctx: &mut RequestCtx<'_>,
    guard: crate::upstream::EndpointGuard,
    result: Result<Response<ProxyBody>, SendError>,
) -> Result<Response<ProxyBody>, SendError> {
    let balancer = &ctx.shared.upstreams.balancer;
    match &result {
        Ok(_) => balancer.succeeded(&guard),
        Err(SendError::Connect(_)) => balancer.eject(&guard),
        Err(_) => {}
    }
    ctx.endpoint = Some(guard);
    result
}

/// The URL of one endpoint of a Service: the template's scheme, path and query with the
/// endpoint's address as the authority.
fn at_endpoint(target: &UrlParts<'_>, addr: SocketAddr) -> String {
    let scheme = if target.tls { "https" } else { "http" };
    format!("{scheme}://{addr}{}", target.path_and_query)
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TO_BINARY: Option<ContentHandling> = Some(ContentHandling::ConvertToBinary);
    const TO_TEXT: Option<ContentHandling> = Some(ContentHandling::ConvertToText);

    fn types(list: &[&str]) -> BinaryMediaTypes {
        BinaryMediaTypes(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn mock_templates_select_the_status_code() {
        assert_eq!(mock_status(r#"{"statusCode": 201}"#).ok(), Some(201));
        assert_eq!(mock_status(r#" {"statusCode": "404"} "#).ok(), Some(404));
        assert_eq!(mock_status(r#"{"other": 1}"#).ok(), Some(200));
        for bad in [
            "statusCode: 200",
            "[200]",
            r#"{"statusCode": 700}"#,
            r#"{"statusCode": true}"#,
            r#"{"statusCode": -1}"#,
            "",
        ] {
            assert!(
                matches!(mock_status(bad), Err(Reject::ApiConfiguration(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn request_conversions_follow_the_aws_table() {
        let none = types(&[]);
        let images = types(&["image/*"]);
        let (png, json) = (Some("image/png"), Some("application/json"));
        // binaryMediaTypes undefined: everything is text.
        assert_eq!(request_conversion(&none, None, png), None);
        assert_eq!(
            request_conversion(&none, TO_BINARY, png),
            Some(Conversion::Decode)
        );
        assert_eq!(request_conversion(&none, TO_TEXT, png), None);
        // Text data with matching types set.
        assert_eq!(request_conversion(&images, None, json), None);
        assert_eq!(
            request_conversion(&images, TO_BINARY, json),
            Some(Conversion::Decode)
        );
        assert_eq!(request_conversion(&images, TO_TEXT, json), None);
        // Binary data.
        assert_eq!(request_conversion(&images, None, png), None);
        assert_eq!(request_conversion(&images, TO_BINARY, png), None);
        assert_eq!(
            request_conversion(&images, TO_TEXT, png),
            Some(Conversion::Encode)
        );
    }

    #[test]
    fn response_conversions_follow_the_first_accept_type() {
        let images = types(&["image/*"]);
        let (png, json) = (Some("image/png"), Some("application/json"));
        let (wants_png, wants_json) = (
            Some("image/png, application/json"),
            Some("application/json, image/png"),
        );
        assert_eq!(response_conversion(&types(&[]), None, png, wants_png), None);
        assert_eq!(response_conversion(&images, None, png, wants_png), None);
        assert_eq!(
            response_conversion(&images, None, png, wants_json),
            Some(Conversion::Encode)
        );
        assert_eq!(
            response_conversion(&images, None, json, wants_png),
            Some(Conversion::Decode)
        );
        assert_eq!(response_conversion(&images, None, json, wants_json), None);
        assert_eq!(
            response_conversion(&images, TO_TEXT, png, wants_png),
            Some(Conversion::Encode)
        );
        assert_eq!(
            response_conversion(&images, TO_BINARY, json, wants_json),
            Some(Conversion::Decode)
        );
        assert_eq!(response_conversion(&images, TO_BINARY, png, wants_json), None);
    }

    #[test]
    fn base64_round_trip() {
        let bytes = [0u8, 1, 2, 255, 254, 128];
        let text = Conversion::Encode.apply(&bytes).expect("encode");
        assert_eq!(&text[..], b"AAEC//6A");
        assert_eq!(Conversion::Decode.apply(&text).expect("decode"), &bytes[..]);
        assert_eq!(Conversion::Decode.apply(b"not base64!"), None);
    }
}
