//! Declarative CORS (`spec.cors`): the gateway answers preflights itself and adds the CORS
//! headers to every answer of the API, its own errors included, so a browser sees the real
//! error instead of an opaque CORS failure.
//!
//! APIs without `spec.cors` are untouched: they do CORS the REST API way, with an OPTIONS
//! method whose MOCK integration sets `Access-Control-Allow-*` headers.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header, request::Parts};

use crate::{body::ProxyBody, ctx::RequestCtx, phase::Flow};
use turnpike_core::model::Cors;

/// `Vary: Origin`: the answer depends on the request's origin, so caches keep one per origin.
fn vary_origin() -> HeaderValue {
    HeaderValue::from_static("Origin")
}

/// Notes the request's `Origin` (right after the API is known, so every later answer, errors
/// included, can carry the CORS headers).
pub fn origin(ctx: &mut RequestCtx<'_>, parts: &Parts) {
    if ctx.api.is_some_and(|a| a.cors.is_some()) {
        ctx.origin = parts.headers.get(header::ORIGIN).cloned();
    }
}

/// Answers a preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) with 204,
/// without calling any integration. A refused origin or method gets the 204 without CORS
/// headers: the browser then refuses the actual request.
pub fn preflight(ctx: &mut RequestCtx<'_>, parts: &Parts) -> Flow {
    let Some(cors) = ctx.api.and_then(|a| a.cors.as_ref()) else {
        return Flow::Continue;
    };
    if parts.method != Method::OPTIONS || ctx.origin.is_none() {
        return Flow::Continue;
    }
    let Some(requested) = parts.headers.get(header::ACCESS_CONTROL_REQUEST_METHOD) else {
        return Flow::Continue;
    };
    ctx.cors_preflight = true;
    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(header::VARY, vary_origin());
    let origin = ctx.origin.as_ref().and_then(|o| o.to_str().ok());
    let allowed = origin.and_then(|o| cors.allow_origin(o));
    let method_ok = requested.to_str().is_ok_and(|m| cors.allows_method(m));
    let (Some(allowed), true) = (allowed, method_ok) else {
        tracing::debug!(request_id = ?ctx.ids, ?origin, ?requested, "CORS preflight refused");
        return Flow::Respond(resp);
    };
    allow_origin(h, cors, allowed);
    let methods = if cors.allow_methods.iter().any(|m| m == "*") {
        Some(requested.clone())
    } else {
        join(&cors.allow_methods)
    };
    if let Some(m) = methods {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, m);
    }
    let headers = if cors.allow_headers.iter().any(|n| n == "*") {
        parts.headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned()
    } else {
        join(&cors.allow_headers)
    };
    if let Some(v) = headers {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    if let Some(age) = cors.max_age {
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age.as_secs()));
    }
    Flow::Respond(resp)
}

/// Adds the CORS headers to an answer of an API with `spec.cors` (the backend's, a MOCK's or
/// the gateway's own): `Vary: Origin` always, the rest when the request's origin is allowed.
pub fn decorate(ctx: &RequestCtx<'_>, headers: &mut HeaderMap) {
    let Some(cors) = ctx.api.and_then(|a| a.cors.as_ref()) else {
        return;
    };
    if ctx.cors_preflight {
        return;
    }
    headers.append(header::VARY, vary_origin());
    let Some(allowed) = ctx
        .origin
        .as_ref()
        .and_then(|o| o.to_str().ok())
        .and_then(|o| cors.allow_origin(o))
    else {
        return;
    };
    allow_origin(headers, cors, allowed);
    if let Some(v) = join(&cors.expose_headers) {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
}

fn allow_origin(h: &mut HeaderMap, cors: &Cors, allowed: &str) {
    if let Ok(v) = HeaderValue::from_str(allowed) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    if cors.allow_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

/// `a,b,c`, or `None` for an empty list.
fn join(list: &[String]) -> Option<HeaderValue> {
    if list.is_empty() {
        return None;
    }
    HeaderValue::from_str(&list.join(",")).ok()
}
