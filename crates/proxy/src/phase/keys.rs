//! API keys: on methods with `apiKeyRequired`, the `x-api-key` header must carry the value of
//! an enabled key that is in a usage plan bound to the request's stage.

use http::{HeaderMap, HeaderName};

use crate::{
    ctx::RequestCtx,
    error::{KeyProblem, Reject},
};
use turnpike_core::model::{ApiKeySource, KeyDigest};

/// `x-api-key`.
pub const API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Sets `ctx.key` and `ctx.plan` for a method that requires a key, or refuses the request
/// with 403 Forbidden (every problem answers the same, as AWS does).
///
/// The presented value is digested (SHA-256) and looked up by digest; digests compare in
/// constant time. The value itself is never stored, logged or echoed: only the key id is.
/// Methods without `apiKeyRequired` ignore any key sent, so usage plans do not apply to them
/// (as in AWS). With `apiKeySource: AUTHORIZER` the key is the `usageIdentifierKey` the
/// method's TOKEN or REQUEST authorizer answered (a method without one has no key).
pub fn authenticate(ctx: &mut RequestCtx<'_>, headers: &HeaderMap) -> Result<(), Reject> {
    let (Some(method), Some(api), Some(stage)) = (ctx.method, ctx.api, ctx.stage) else {
        return Err(Reject::Internal("keys before resolve".into()));
    };
    if !method.api_key_required {
        return Ok(());
    }
    let digest = if api.api_key_source == ApiKeySource::Authorizer {
        let presented = ctx
            .identity
            .as_ref()
            .and_then(|i| i.usage_identifier_key())
            .ok_or(Reject::InvalidApiKey(KeyProblem::Missing))?;
        KeyDigest::digest(presented.as_bytes())
    } else {
        let presented = headers
            .get(&API_KEY)
            .ok_or(Reject::InvalidApiKey(KeyProblem::Missing))?;
        KeyDigest::digest(presented.as_bytes())
    };
    let key = ctx
        .table
        .key(&digest)
        .ok_or(Reject::InvalidApiKey(KeyProblem::Unknown))?;
    ctx.key = Some(key);
    if !key.enabled {
        return Err(Reject::InvalidApiKey(KeyProblem::Disabled));
    }
    // A key is in at most one plan per stage (compile refuses a second), so the first is it.
    let plan = key
        .plans
        .iter()
        .find_map(|p| stage.plans.get(p))
        .ok_or(Reject::InvalidApiKey(KeyProblem::NotInPlan))?;
    ctx.plan = Some(plan);
    Ok(())
}
