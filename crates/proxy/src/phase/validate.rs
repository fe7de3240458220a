//! Request body validation (AWS BAD_REQUEST_BODY): the body is read whole, up to the payload
//! limit, and checked against the model the method names for its Content-Type (else the
//! `$default` model). The models were compiled with the routing table; a request only runs
//! one. A body without a model for its content type passes unchecked, as in AWS.

use bytes::Bytes;
use http::{header, request::Parts};
use http_body_util::BodyExt;

use crate::{
    body::{LimitExceeded, Limited, RequestBody},
    ctx::RequestCtx,
    error::Reject,
};
use turnpike_core::model::BodyValidation;

/// The body validation of the request's method, when its validator validates bodies.
pub fn wanted<'a>(ctx: &RequestCtx<'a>) -> Option<&'a BodyValidation> {
    ctx.method?.validation.as_ref()?.body.as_ref()
}

/// Validates the body; gives it back whole for the integration. Fails with
/// [`Reject::InvalidBody`] (the schema's complaint, never the body), or 413 over the limit.
pub async fn body(
    ctx: &RequestCtx<'_>,
    validation: &BodyValidation,
    parts: &Parts,
    body: RequestBody,
) -> Result<RequestBody, Reject> {
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let Some(model) = validation.model_for(content_type) else {
        return Ok(body);
    };
    let bytes = collect(body, ctx.shared.config.limits.max_body_bytes).await?;
    model
        .validate(&bytes)
        .map_err(|invalid| Reject::InvalidBody { error: invalid.0 })?;
    Ok(RequestBody::full(bytes))
}

/// The whole request body, at most `limit` bytes (413 beyond; 400 when the client's framing
/// fails).
pub async fn collect(body: RequestBody, limit: u64) -> Result<Bytes, Reject> {
    if let Some(full) = body.as_full() {
        if full.len() as u64 > limit {
            return Err(Reject::BodyTooLarge);
        }
        return Ok(full.clone());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LimitExceeded>() => Err(Reject::BodyTooLarge),
        Err(_) => Err(Reject::BadRequest("the request body could not be read")),
    }
}
