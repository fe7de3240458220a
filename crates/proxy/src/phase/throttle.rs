//! Throttling and quotas, after the API key: which token bucket a request draws from (the
//! AWS precedence), then the key's quota.
//!
//! Precedence, most specific first; the first level configured for the request is the one
//! that applies:
//!
//! 1. the usage plan's per-method throttle (`apiStages[].throttle`), per key;
//! 2. the usage plan's throttle, per key;
//! 3. the stage's `methodSettings` throttle (the most specific selector), per method;
//! 4. the stage's throttle, per method (the stage default of every method, as AWS);
//! 5. the gateway default (`--default-rate-limit`/`--default-burst-limit`), for the gateway.
//!
//! Levels 1–2 apply only to methods with `apiKeyRequired` (where a key and its plan are
//! known); 3–5 apply to every request. A throttled request does not count against the quota.

use crate::{
    ctx::RequestCtx,
    error::ThrottleLevel,
    usage::{Admission, BucketName, Limit, Metered},
};

/// Takes a token from the request's bucket and counts it against its key's quota. Mostly
/// decided at once; with Redis, a request whose replica has run out of its leased slice waits
/// for one round trip ([`Admission::Later`]).
pub fn admit(ctx: &RequestCtx<'_>) -> Admission {
    let metered = match (ctx.plan, ctx.key) {
        (Some(plan), Some(key)) => Some(Metered {
            plan: &plan.object,
            key: &key.id,
            quota: plan.quota,
        }),
        _ => None,
    };
    ctx.shared.usage.admit(limit(ctx), metered)
}

/// The most specific throttle configured for the request; `None` is the gateway default.
fn limit<'a>(ctx: &RequestCtx<'a>) -> Option<Limit<'a>> {
    let (api, stage) = (ctx.api?, ctx.stage?);
    // A WebSocket route has no resource: it draws from the buckets of `/` ANY.
    let path = ctx.resource.map_or("/", |r| r.path.as_str());
    let method = ctx.method_key.unwrap_or(turnpike_core::model::MethodKey::Any);
    if let (Some(plan), Some(key)) = (ctx.plan, ctx.key) {
        if let Some((_, t)) = plan
            .method_throttles
            .iter()
            .find(|(selector, _)| selector.applies(path, method))
        {
            return Some(Limit {
                level: ThrottleLevel::PlanMethod,
                name: BucketName::PlanMethod(&plan.object, &key.id, path, method.as_str()),
                settings: *t,
            });
        }
        if let Some(t) = plan.throttle {
            return Some(Limit {
                level: ThrottleLevel::Plan,
                name: BucketName::Plan(&plan.object, &key.id),
                settings: t,
            });
        }
    }
    let api_id = api.id.as_str();
    if let Some(t) = stage
        .method_settings
        .iter()
        .filter(|m| m.selector.applies(path, method))
        .find_map(|m| m.throttle)
    {
        return Some(Limit {
            level: ThrottleLevel::StageMethod,
            name: BucketName::StageMethod(api_id, stage.name.as_str(), path, method.as_str()),
            settings: t,
        });
    }
    stage.throttle.map(|t| Limit {
        level: ThrottleLevel::Stage,
        name: BucketName::Stage(api_id, stage.name.as_str(), path, method.as_str()),
        settings: t,
    })
}
