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
    error::{Reject, ThrottleLevel},
    usage::Limit,
};

/// Takes a token from the request's bucket and counts it against its key's quota.
pub fn admit(ctx: &RequestCtx<'_>) -> Result<(), Reject> {
    let usage = &ctx.shared.usage;
    let now = usage.now();
    usage.throttle(limit(ctx), now)?;
    if let (Some(plan), Some(key)) = (ctx.plan, ctx.key) {
        usage.count(&plan.object, &key.id, plan.quota, now)?;
    }
    Ok(())
}

/// The most specific throttle configured for the request; `None` is the gateway default.
fn limit(ctx: &RequestCtx<'_>) -> Option<Limit> {
    let (api, stage, resource, method) = (ctx.api?, ctx.stage?, ctx.resource?, ctx.method_key?);
    let usage = &ctx.shared.usage;
    let path = resource.path.as_str();
    if let (Some(plan), Some(key)) = (ctx.plan, ctx.key) {
        if let Some((_, t)) = plan
            .method_throttles
            .iter()
            .find(|(selector, _)| selector.applies(path, method))
        {
            return Some(Limit {
                level: ThrottleLevel::PlanMethod,
                id: usage.id(("plan-method", &plan.object, &key.id, path, method.as_str())),
                settings: *t,
            });
        }
        if let Some(t) = plan.throttle {
            return Some(Limit {
                level: ThrottleLevel::Plan,
                id: usage.id(("plan", &plan.object, &key.id)),
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
            id: usage.id(("stage-method", api_id, stage.name.as_str(), path, method.as_str())),
            settings: t,
        });
    }
    stage.throttle.map(|t| Limit {
        level: ThrottleLevel::Stage,
        id: usage.id(("stage", api_id, stage.name.as_str(), path, method.as_str())),
        settings: t,
    })
}
