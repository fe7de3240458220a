//! The request phases, one file each, in the order [`crate::service`] runs them:
//!
//! 1. [`limits`]: URL, header and declared body size; malformed framing.
//! 2. The method: one of AWS's seven, else 403 `MissingAuthenticationTokenException`.
//! 3. [`authority`]: the one Host of the request (400 when missing, repeated or invalid).
//! 4. [`normalize`]: the path rule (no dot segments, no encoded separators).
//! 5. [`route`]`::locate`: API and stage (and the reserved `/ping`, `/sping`); then
//!    [`cors`]`::origin` notes the `Origin` of APIs with `spec.cors`.
//! 6. [`policy`]: the resource policy of PRIVATE APIs on the private listener; then
//!    [`cors`]`::preflight` answers CORS preflights of APIs with `spec.cors`.
//! 7. [`canary`]: primary or canary variant.
//! 8. [`route`]`::resolve`: resource and method.
//! 9. [`authorize`]: the method's authorizer (JWT / user pool, TOKEN or REQUEST function),
//!    run by [`crate::service`] after the phases above (it may wait for a function or a JWKS
//!    fetch), before the ones below.
//! 9. [`keys`]: the API key of methods that require one, and its usage plan on the stage.
//! 10. [`params`]: required request parameters.
//! 11. [`throttle`]: the token bucket the AWS precedence picks, then the key's quota (run by
//!     [`crate::service`] after the others: with Redis it may wait for one round trip).
//! 12. [`cache`]: a GET of a cached method is answered from the stage cache, or the backend's
//!     answer is stored (run by [`crate::service`] around the integration; it decides before
//!     the throttles, which count hits too).
//! 13. [`validate`]: the body against the method's model, when its validator says so (the
//!     one phase that reads the whole body; run by [`crate::service`] right before the
//!     integration).
//! 14. [`integrate`]: MOCK, HTTP or HTTP_PROXY, to a URL or a Service's endpoints (with
//!     `contentHandling` conversions and [`mapping`] templates for HTTP); AWS_PROXY through
//!     [`function`] (the Lambda proxy integration).
//!
//! Then [`crate::compress`] compresses the answer when the API asks for it.
//!
//! A phase returns `Err(Reject)` to answer with a gateway response, or [`Flow::Respond`] to
//! answer with something else.

pub mod authority;
pub mod authorize;
pub mod cache;
pub mod canary;
pub mod cors;
pub mod function;
pub mod integrate;
pub mod keys;
pub mod limits;
pub mod mapping;
pub mod normalize;
pub mod params;
pub mod policy;
pub mod route;
pub mod throttle;
pub mod validate;

use http::Response;

use crate::body::ProxyBody;

/// Whether the request goes on to the next phase.
#[derive(Debug)]
pub enum Flow {
    Continue,
    /// Answer now with this response.
    Respond(Response<ProxyBody>),
}
