//! Routing: API and stage from (listener, Host, path), then resource and method.

use bytes::Bytes;
use http::{HeaderValue, Method, Response, header};

use crate::{body::ProxyBody, ctx::RequestCtx, error::Reject, phase::Flow};

/// Finds the API and stage. `/ping` and `/sping` are reserved and answer healthy whatever the
/// table holds (AWS reserves them the same way).
pub fn locate<'a>(ctx: &mut RequestCtx<'a>, host: Option<&str>, path: &'a str) -> Result<Flow, Reject> {
    if path == "/ping" || path == "/sping" {
        let mut resp = Response::new(ProxyBody::full(Bytes::from_static(b"{}")));
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(Flow::Respond(resp));
    }
    let located = ctx
        .table
        .locate(ctx.conn.listener, host, path)
        .map_err(|miss| match miss {
            turnpike_core::routing::Miss::PrivateApi => Reject::PrivateApi,
            other => Reject::NoRoute(other),
        })?;
    ctx.api = Some(located.api);
    ctx.stage = Some(located.stage);
    ctx.path = located.path;
    Ok(Flow::Continue)
}

/// Finds the resource and method in the chosen variant's routes.
pub fn resolve(ctx: &mut RequestCtx<'_>, method: &Method) -> Result<(), Reject> {
    let variant = ctx
        .variant
        .ok_or(Reject::Internal("resolve before canary pick".into()))?;
    let found = variant.routes.find(ctx.path, method).map_err(Reject::NoRoute)?;
    ctx.resource = Some(found.resource);
    ctx.method_key = Some(found.method);
    ctx.method = Some(found.entry);
    ctx.params = found.params;
    Ok(())
}
