//! Gateway responses: the answers the gateway gives itself (a missing route, a bad key, a
//! throttle, a backend that failed), their AWS response types, and how an API customizes them.
//!
//! The proxy decides which [`ResponseType`] a rejection is (`turnpike_proxy::error`); this
//! module only knows the types, their fallback order and the validated customizations:
//!
//! ```text
//! the specific type (THROTTLED) ─► DEFAULT_4XX / DEFAULT_5XX (by its default status) ─► built-in
//! ```
//!
//! A customization may set the status code, headers (`gatewayresponse.header.NAME` from a
//! static value, the request, `$context` or a stage variable) and body templates by content
//! type. Templates are mapping templates ([`crate::template`], the language of integration
//! templates): parsed once when the API is validated, rendered per answer with
//! `$context.error.*`, `$context.requestId`, `$context.authorizer.*`, `$stageVariables` and
//! `$input.params()`.

use std::fmt;

use crate::model::ParamRef;
use crate::template::Template;

// === ResponseType ===

/// An AWS gateway response type.
///
/// Every type but two is produced by the gateway (the proxy's `error` module decides which
/// rejection is which). WAF_FILTERED is accepted and never selected: AWS sends it only when an
/// AWS WAF web ACL blocks a request, and Turnpike has no web application firewall.
/// RESOURCE_NOT_FOUND likewise: AWS answers an unknown route with MISSING_AUTHENTICATION_TOKEN,
/// as Turnpike does. EXPIRED_TOKEN and INVALID_SIGNATURE, which AWS sends for SigV4 (IAM)
/// credentials, are the answers to a JWT authorizer's expired token and bad signature; they
/// fall back to UNAUTHORIZED before DEFAULT_4XX ([`ResponseType::fallback`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResponseType {
    Default4xx,
    Default5xx,
    AccessDenied,
    ApiConfigurationError,
    AuthorizerConfigurationError,
    AuthorizerFailure,
    BadRequestBody,
    BadRequestParameters,
    ExpiredToken,
    IntegrationFailure,
    IntegrationTimeout,
    InvalidApiKey,
    InvalidSignature,
    MissingAuthenticationToken,
    QuotaExceeded,
    RequestTooLarge,
    ResourceNotFound,
    Throttled,
    Unauthorized,
    UnsupportedMediaType,
    WafFiltered,
}

impl ResponseType {
    /// Every type, in AWS's alphabetical order (the two defaults first).
    pub const ALL: [ResponseType; 21] = [
        ResponseType::Default4xx,
        ResponseType::Default5xx,
        ResponseType::AccessDenied,
        ResponseType::ApiConfigurationError,
        ResponseType::AuthorizerConfigurationError,
        ResponseType::AuthorizerFailure,
        ResponseType::BadRequestBody,
        ResponseType::BadRequestParameters,
        ResponseType::ExpiredToken,
        ResponseType::IntegrationFailure,
        ResponseType::IntegrationTimeout,
        ResponseType::InvalidApiKey,
        ResponseType::InvalidSignature,
        ResponseType::MissingAuthenticationToken,
        ResponseType::QuotaExceeded,
        ResponseType::RequestTooLarge,
        ResponseType::ResourceNotFound,
        ResponseType::Throttled,
        ResponseType::Unauthorized,
        ResponseType::UnsupportedMediaType,
        ResponseType::WafFiltered,
    ];

    /// The AWS name, e.g. `MISSING_AUTHENTICATION_TOKEN` (`$context.error.responseType`).
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseType::Default4xx => "DEFAULT_4XX",
            ResponseType::Default5xx => "DEFAULT_5XX",
            ResponseType::AccessDenied => "ACCESS_DENIED",
            ResponseType::ApiConfigurationError => "API_CONFIGURATION_ERROR",
            ResponseType::AuthorizerConfigurationError => "AUTHORIZER_CONFIGURATION_ERROR",
            ResponseType::AuthorizerFailure => "AUTHORIZER_FAILURE",
            ResponseType::BadRequestBody => "BAD_REQUEST_BODY",
            ResponseType::BadRequestParameters => "BAD_REQUEST_PARAMETERS",
            ResponseType::ExpiredToken => "EXPIRED_TOKEN",
            ResponseType::IntegrationFailure => "INTEGRATION_FAILURE",
            ResponseType::IntegrationTimeout => "INTEGRATION_TIMEOUT",
            ResponseType::InvalidApiKey => "INVALID_API_KEY",
            ResponseType::InvalidSignature => "INVALID_SIGNATURE",
            ResponseType::MissingAuthenticationToken => "MISSING_AUTHENTICATION_TOKEN",
            ResponseType::QuotaExceeded => "QUOTA_EXCEEDED",
            ResponseType::RequestTooLarge => "REQUEST_TOO_LARGE",
            ResponseType::ResourceNotFound => "RESOURCE_NOT_FOUND",
            ResponseType::Throttled => "THROTTLED",
            ResponseType::Unauthorized => "UNAUTHORIZED",
            ResponseType::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ResponseType::WafFiltered => "WAF_FILTERED",
        }
    }

    /// Parses an AWS name.
    pub fn parse(s: &str) -> Option<Self> {
        ResponseType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The type that stands in for this one when the API does not customize it: UNAUTHORIZED
    /// for EXPIRED_TOKEN and INVALID_SIGNATURE (refused tokens, which AWS's authorizers answer
    /// as UNAUTHORIZED), DEFAULT_5XX for a 5xx answer, else DEFAULT_4XX. `None` for the
    /// defaults themselves.
    pub fn fallback(self, status: u16) -> Option<ResponseType> {
        match self {
            ResponseType::Default4xx | ResponseType::Default5xx => None,
            ResponseType::ExpiredToken | ResponseType::InvalidSignature => Some(ResponseType::Unauthorized),
            _ if status >= 500 => Some(ResponseType::Default5xx),
            _ => Some(ResponseType::Default4xx),
        }
    }
}

impl fmt::Display for ResponseType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === GatewayResponses ===

/// An API's customized gateway responses. Looked up on every gateway answer of the API, so it
/// is a small sorted list (at most 21 entries), not a map.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GatewayResponses {
    entries: Vec<(ResponseType, GatewayResponseDef)>,
    /// Whether any customization reads `method.request.*` or `$input` (then the proxy keeps
    /// the request headers until the answer is written).
    reads_request: bool,
}

impl GatewayResponses {
    /// The customizations, one per type.
    pub fn new(mut entries: Vec<(ResponseType, GatewayResponseDef)>) -> Self {
        entries.sort_by_key(|(t, _)| *t);
        entries.dedup_by_key(|(t, _)| *t);
        let reads_request = entries.iter().any(|(_, d)| {
            d.headers
                .iter()
                .any(|(_, v)| matches!(v, ResponseValue::Request(_)))
                // `$input.params()` reads the request's headers (a template that merely
                // mentions "input" keeps them too, which costs a copy, never an answer).
                || d.templates.iter().any(|(_, t)| t.source().contains("input"))
        });
        GatewayResponses {
            entries,
            reads_request,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The customization of exactly this type.
    pub fn get(&self, t: ResponseType) -> Option<&GatewayResponseDef> {
        self.entries.iter().find(|(k, _)| *k == t).map(|(_, d)| d)
    }

    /// The customization that applies to an answer of type `t` whose built-in status is
    /// `status`: the type's own, else its fallbacks in order ([`ResponseType::fallback`]).
    /// `None`: the built-in answer.
    pub fn find(&self, t: ResponseType, status: u16) -> Option<&GatewayResponseDef> {
        if self.entries.is_empty() {
            return None;
        }
        let mut t = Some(t);
        while let Some(current) = t {
            if let Some(d) = self.get(current) {
                return Some(d);
            }
            t = current.fallback(status);
        }
        None
    }

    /// Whether any customization reads `method.request.*`.
    pub fn reads_request(&self) -> bool {
        self.reads_request
    }

    pub fn iter(&self) -> impl Iterator<Item = &(ResponseType, GatewayResponseDef)> {
        self.entries.iter()
    }
}

/// One customized gateway response.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GatewayResponseDef {
    /// The status code; `None` keeps the built-in one.
    pub status: Option<u16>,
    /// Response headers (lowercase names), set in order after the built-in ones.
    pub headers: Vec<(String, ResponseValue)>,
    /// Body templates (mapping templates) by content type, sorted by content type. Empty keeps
    /// the built-in body.
    pub templates: Vec<(String, Template)>,
}

impl GatewayResponseDef {
    /// The template for an answer: the one for `application/json` if there is one, else the
    /// first by content type (AWS picks by the request's `Accept` among the configured types and
    /// falls back to `application/json`; only `application/json` is common in practice).
    pub fn template(&self, accept: Option<&str>) -> Option<&(String, Template)> {
        let wanted = accept
            .and_then(|a| a.split(',').next())
            .map(|a| a.split(';').next().unwrap_or(a).trim());
        wanted
            .and_then(|w| self.templates.iter().find(|(ct, _)| ct.eq_ignore_ascii_case(w)))
            .or_else(|| self.templates.iter().find(|(ct, _)| ct == "application/json"))
            .or_else(|| self.templates.first())
    }
}

/// Where a gateway response header value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseValue {
    /// `'static value'`.
    Static(String),
    /// `method.request.{path|querystring|header}.NAME`.
    Request(ParamRef),
    /// `context.NAME`.
    Context(ContextVar),
    /// `stageVariables.NAME`.
    StageVariable(String),
}

// === ContextVar ===

/// A `$context` variable a gateway response header (`context.NAME`) can read; templates see
/// the same variables in `$context`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContextVar {
    /// `error.message`: the answer's message, e.g. `Missing Authentication Token`.
    ErrorMessage,
    /// `error.messageString`: the message as a quoted JSON string.
    ErrorMessageString,
    /// `error.responseType`: the type, e.g. `THROTTLED`.
    ErrorResponseType,
    RequestId,
    ExtendedRequestId,
    ApiId,
    Stage,
    ResourcePath,
    ResourceId,
    HttpMethod,
    Path,
    Protocol,
    DomainName,
    RequestTime,
    RequestTimeEpoch,
    SourceIp,
    UserAgent,
    ApiKeyId,
    DeploymentId,
}

impl ContextVar {
    /// Every variable with its name after `context.`.
    pub const ALL: [(ContextVar, &'static str); 19] = [
        (ContextVar::ErrorMessage, "error.message"),
        (ContextVar::ErrorMessageString, "error.messageString"),
        (ContextVar::ErrorResponseType, "error.responseType"),
        (ContextVar::RequestId, "requestId"),
        (ContextVar::ExtendedRequestId, "extendedRequestId"),
        (ContextVar::ApiId, "apiId"),
        (ContextVar::Stage, "stage"),
        (ContextVar::ResourcePath, "resourcePath"),
        (ContextVar::ResourceId, "resourceId"),
        (ContextVar::HttpMethod, "httpMethod"),
        (ContextVar::Path, "path"),
        (ContextVar::Protocol, "protocol"),
        (ContextVar::DomainName, "domainName"),
        (ContextVar::RequestTime, "requestTime"),
        (ContextVar::RequestTimeEpoch, "requestTimeEpoch"),
        (ContextVar::SourceIp, "identity.sourceIp"),
        (ContextVar::UserAgent, "identity.userAgent"),
        (ContextVar::ApiKeyId, "identity.apiKeyId"),
        (ContextVar::DeploymentId, "deploymentId"),
    ];

    /// The variable named `name` (what follows `context.`).
    pub fn parse(name: &str) -> Option<Self> {
        ContextVar::ALL.iter().find(|(_, n)| *n == name).map(|(v, _)| *v)
    }

    /// The `error.*` variables, which only a gateway response has: the first three of
    /// [`ContextVar::ALL`] (`mask_under("error")`).
    pub const ERRORS: u32 = 0b111;

    /// Every variable of [`ContextVar::ALL`], as bits.
    pub const EVERY: u32 = (1 << ContextVar::ALL.len()) - 1;

    /// The variables at or under the top-level `$context` entry `key` (`identity` holds
    /// three), as bits of their index in [`ContextVar::ALL`].
    pub fn mask_under(key: &str) -> u32 {
        ContextVar::ALL
            .iter()
            .enumerate()
            .filter(|(_, (_, name))| in_entry(name, key))
            .fold(0, |mask, (i, _)| mask | 1 << i)
    }

    /// The variables of the bits of `mask` ([`ContextVar::mask_under`]), with their names.
    pub fn of_mask(mask: u32) -> impl Iterator<Item = (ContextVar, &'static str)> {
        let mut left = mask & ContextVar::EVERY;
        std::iter::from_fn(move || {
            let i = left.trailing_zeros() as usize;
            left &= left.checked_sub(1)?;
            ContextVar::ALL.get(i).copied()
        })
    }

    /// The names of every variable, for error messages.
    pub fn names() -> String {
        ContextVar::ALL
            .iter()
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether the variable `name` (`identity.sourceIp`) is, or is under, the top-level entry
/// `key`. Lengths first: most names differ there.
pub fn in_entry(name: &str, key: &str) -> bool {
    name == key || (name.as_bytes().get(key.len()) == Some(&b'.') && name.starts_with(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_variables_fall_under_their_top_level_entry() {
        assert!(in_entry("requestId", "requestId"));
        assert!(in_entry("identity.sourceIp", "identity"));
        for (name, key) in [
            ("identity.sourceIp", "ident"),
            ("requestIdX", "requestId"),
            ("requestId", "requestIdX"),
            ("resourcePath", "path"),
            ("path", "resourcePath"),
            ("error.message", "errors"),
        ] {
            assert!(!in_entry(name, key), "{name} under {key}");
        }
    }

    #[test]
    fn a_mask_holds_the_variables_under_its_entries() {
        let names = |mask| ContextVar::of_mask(mask).map(|(_, n)| n).collect::<Vec<_>>();
        assert_eq!(names(ContextVar::mask_under("requestId")), ["requestId"]);
        assert_eq!(
            names(ContextVar::mask_under("identity") | ContextVar::mask_under("stage")),
            [
                "stage",
                "identity.sourceIp",
                "identity.userAgent",
                "identity.apiKeyId"
            ]
        );
        assert_eq!(names(ContextVar::mask_under("nothing")), Vec::<&str>::new());
        assert_eq!(ContextVar::mask_under("error"), ContextVar::ERRORS);
        assert_eq!(names(u32::MAX).len(), ContextVar::ALL.len());
        for (i, (var, name)) in ContextVar::ALL.iter().enumerate() {
            assert_eq!(ContextVar::mask_under(name), 1 << i, "{name}");
            assert_eq!(ContextVar::of_mask(1 << i).collect::<Vec<_>>(), [(*var, *name)]);
        }
    }

    #[test]
    fn fallback_order_is_type_then_default_class_then_built_in() {
        let def = |s| GatewayResponseDef {
            status: Some(s),
            ..Default::default()
        };
        let r = GatewayResponses::new(vec![
            (ResponseType::Throttled, def(503)),
            (ResponseType::Default4xx, def(400)),
        ]);
        assert_eq!(
            r.find(ResponseType::Throttled, 429).and_then(|d| d.status),
            Some(503)
        );
        assert_eq!(
            r.find(ResponseType::QuotaExceeded, 429).and_then(|d| d.status),
            Some(400)
        );
        assert_eq!(r.find(ResponseType::IntegrationTimeout, 504), None);
        // A refused token: its own type, else UNAUTHORIZED, else DEFAULT_4XX.
        assert_eq!(
            r.find(ResponseType::ExpiredToken, 401).and_then(|d| d.status),
            Some(400)
        );
        let r = GatewayResponses::new(vec![
            (ResponseType::Unauthorized, def(401)),
            (ResponseType::Default4xx, def(400)),
        ]);
        assert_eq!(
            r.find(ResponseType::InvalidSignature, 401).and_then(|d| d.status),
            Some(401)
        );
        assert!(
            ResponseType::ALL
                .iter()
                .all(|t| ResponseType::parse(t.as_str()) == Some(*t))
        );
    }
}
