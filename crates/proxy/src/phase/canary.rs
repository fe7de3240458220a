//! The canary pick: primary or canary variant of the stage, at random by `percentTraffic`.

use http::HeaderMap;
use rand::Rng as _;

use crate::{ctx::RequestCtx, error::Reject};

/// Picks the variant. The override header (`x-turnpike-canary` by default) forces the canary
/// with `always` and excludes it with `never`; otherwise a request goes to the canary with
/// probability `percent / 100`.
pub fn pick(ctx: &mut RequestCtx<'_>, headers: &HeaderMap) -> Result<(), Reject> {
    let stage = ctx
        .stage
        .ok_or(Reject::Internal("canary pick before locate".into()))?;
    let variant = match &stage.canary {
        None => &stage.primary,
        Some(canary) => {
            let forced = headers
                .get(&ctx.shared.config.canary_header)
                .and_then(|v| v.to_str().ok())
                .map(str::trim);
            let take = match forced {
                Some(v) if v.eq_ignore_ascii_case("always") => true,
                Some(v) if v.eq_ignore_ascii_case("never") => false,
                _ => canary.percent > 0.0 && rand::rng().random::<f64>() * 100.0 < canary.percent,
            };
            if take { &canary.variant } else { &stage.primary }
        }
    };
    ctx.variant = Some(variant);
    Ok(())
}
