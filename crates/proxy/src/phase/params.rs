//! Required request parameters (AWS BAD_REQUEST_PARAMETERS).

use http::request::Parts;

use crate::{ctx::RequestCtx, error::Reject};
use turnpike_core::model::ParamLocation;

/// Fails with 400 when a parameter the method requires is absent (named in the AWS form
/// `[a, b]`). As in AWS, required parameters are checked only when the method's request
/// validator has `validateRequestParameters`.
pub fn require(ctx: &RequestCtx<'_>, parts: &Parts) -> Result<(), Reject> {
    let Some(method) = ctx.method else {
        return Ok(());
    };
    if method.required_parameters.is_empty() || !method.validation.as_ref().is_some_and(|v| v.parameters) {
        return Ok(());
    }
    let mut missing: Vec<&str> = Vec::new();
    for p in &method.required_parameters {
        let present = match p.location {
            ParamLocation::Path => ctx.param(&p.name).is_some_and(|v| !v.is_empty()),
            ParamLocation::Querystring => query_value(parts.uri.query(), &p.name).is_some(),
            ParamLocation::Header => parts.headers.contains_key(p.name.as_str()),
        };
        if !present {
            missing.push(&p.name);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Reject::MissingParameters {
            names: missing.join(", "),
        })
    }
}

/// The first value of a query parameter, as received (percent-encoded).
pub fn query_value<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}
