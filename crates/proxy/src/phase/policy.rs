//! The resource policy of PRIVATE APIs, evaluated on the private listener.

use http::Method;

use crate::{ctx::RequestCtx, error::Reject};
use turnpike_core::model::EndpointType;
use turnpike_core::routing::Listener;

/// Denies a caller the API's resource policy does not allow. Only PRIVATE APIs on the private
/// listener are checked (a PRIVATE API's default is deny); the caller's namespace comes from
/// the configured [`crate::NamespaceLookup`], if any.
pub fn check(ctx: &RequestCtx<'_>, method: &Method) -> Result<(), Reject> {
    let (Some(api), Some(stage)) = (ctx.api, ctx.stage) else {
        return Err(Reject::Internal("policy before locate".into()));
    };
    if ctx.conn.listener != Listener::Private || api.endpoint_type != EndpointType::Private {
        return Ok(());
    }
    if ctx.trace.is_some() {
        // A test invoke from the admin listener: its caller is the operator, whom the admin
        // listener's access rule has checked; the policy is about clients.
        ctx.trace(|| "Resource policy: not evaluated for a test invoke".to_string());
        return Ok(());
    }
    let ip = ctx.conn.peer.ip();
    let namespace = ctx
        .shared
        .config
        .namespace_lookup
        .as_ref()
        .and_then(|l| l.namespace_of(ip));
    if api.policy.allows(ip, namespace.as_deref(), false) {
        return Ok(());
    }
    let explicit = api
        .policy
        .deny
        .iter()
        .any(|r| r.matches(ip, namespace.as_deref()));
    Err(Reject::PolicyDenied {
        arn: method_arn(ctx, api.id.as_str(), &stage.name, method),
        explicit,
    })
}

/// The method ARN of a request, as AWS shows it in denials (account digits masked).
pub(crate) fn method_arn(ctx: &RequestCtx<'_>, api: &str, stage: &str, method: &Method) -> String {
    format!(
        "arn:aws:execute-api:{}:********0000:{api}/{stage}/{}/{}",
        ctx.table.hosts.region,
        method.as_str(),
        ctx.path.trim_start_matches('/')
    )
}
