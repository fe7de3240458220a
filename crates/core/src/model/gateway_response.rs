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
//! type. Templates are the small subset of the mapping-template language a gateway response
//! needs ([`Template`]): parsed once when the API is validated, rendered per answer.

use std::fmt;

use crate::model::ParamRef;

// === ResponseType ===

/// An AWS gateway response type.
///
/// Some types are accepted and validated but not produced yet: the authorizer ones
/// (UNAUTHORIZED, AUTHORIZER_FAILURE, AUTHORIZER_CONFIGURATION_ERROR), EXPIRED_TOKEN,
/// INVALID_SIGNATURE and WAF_FILTERED take effect when those features exist. Until then their
/// customization is kept and simply never selected.
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

    /// The default that stands in for this type when the API does not customize it: DEFAULT_5XX
    /// for a 5xx answer, else DEFAULT_4XX. `None` for the defaults themselves.
    pub fn fallback(self, status: u16) -> Option<ResponseType> {
        match self {
            ResponseType::Default4xx | ResponseType::Default5xx => None,
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
    /// Whether any customization reads `method.request.*` (then the proxy keeps the request
    /// headers until the answer is written).
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
    /// `status`: the type's own, else DEFAULT_4XX or DEFAULT_5XX. `None`: the built-in answer.
    pub fn find(&self, t: ResponseType, status: u16) -> Option<&GatewayResponseDef> {
        if self.entries.is_empty() {
            return None;
        }
        self.get(t)
            .or_else(|| t.fallback(status).and_then(|d| self.get(d)))
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
    /// Body templates by content type, sorted by content type. Empty keeps the built-in body.
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

// === Template ===

/// A `$context` variable a gateway response can read.
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

    /// The names of every variable, for error messages.
    pub fn names() -> String {
        ContextVar::ALL
            .iter()
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The `$name` or `${name}` reference at the start of `after` (the text after a `$`): its
/// name (letters, digits, `.` and `_`; a trailing `.` is punctuation, as in "… $context.stage.")
/// and how many bytes of `after` it takes. `None` for a `${` that does not close.
pub fn reference(after: &str) -> Option<(&str, usize)> {
    let (braced, body) = match after.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, after),
    };
    let end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
        .unwrap_or(body.len());
    let name = body[..end].trim_end_matches('.');
    if braced && !body[name.len()..].starts_with('}') {
        return None;
    }
    Some((name, name.len() + 2 * usize::from(braced)))
}

/// A piece of a [`Template`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Literal(Box<str>),
    /// `$context.NAME` or `${context.NAME}`.
    Context(ContextVar),
    /// `$stageVariables.NAME` or `${stageVariables.NAME}`.
    StageVariable(Box<str>),
}

/// A body template of a gateway response, parsed once.
///
/// The language is the subset of AWS mapping templates a gateway response needs: literal text
/// with `$context.NAME` and `$stageVariables.NAME` references (also written `${…}`). A `$` that
/// starts no such reference is literal text, as Velocity leaves an unknown reference as written;
/// an unknown `$context.` name is refused when the API is validated, so a typo never ships. A
/// full mapping-template engine can replace this type behind [`Template::render`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pieces: Box<[Piece]>,
}

impl Template {
    /// Parses a template; the error names the first unknown `$context` variable or invalid stage
    /// variable name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = raw;
        while let Some(i) = rest.find('$') {
            literal.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let reference = reference(after);
            let name = reference.map_or("", |(name, _)| name);
            let piece = if reference.is_none() {
                None
            } else if let Some(var) = name.strip_prefix("context.") {
                Some(Piece::Context(ContextVar::parse(var).ok_or_else(|| {
                    format!(
                        "unknown variable $context.{var}; a gateway response template may use $context.{{{}}} and $stageVariables.NAME",
                        ContextVar::names()
                    )
                })?))
            } else if let Some(var) = name.strip_prefix("stageVariables.") {
                if !crate::model::is_stage_variable_name(var) {
                    return Err(format!("invalid stage variable name {var:?}"));
                }
                Some(Piece::StageVariable(var.into()))
            } else {
                None
            };
            match piece {
                Some(p) => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal).into()));
                    }
                    pieces.push(p);
                    rest = &after[reference.map_or(0, |(_, len)| len)..];
                }
                None => {
                    literal.push('$');
                    rest = after;
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal.into()));
        }
        Ok(Template {
            pieces: pieces.into_boxed_slice(),
        })
    }

    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Renders into `out`; `context` writes a `$context` value, `variable` gives a stage
    /// variable (an unknown one renders empty, as in AWS).
    pub fn render<'v>(
        &self,
        out: &mut String,
        mut context: impl FnMut(ContextVar, &mut String),
        mut variable: impl FnMut(&str) -> Option<&'v str>,
    ) {
        for piece in &*self.pieces {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                Piece::Context(v) => context(*v, out),
                Piece::StageVariable(n) => out.push_str(variable(n).unwrap_or_default()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str) -> String {
        let t = Template::parse(t).expect("parses");
        let mut out = String::new();
        t.render(
            &mut out,
            |v, out| match v {
                ContextVar::ErrorMessageString => out.push_str("\"Forbidden\""),
                ContextVar::ErrorResponseType => out.push_str("INVALID_API_KEY"),
                other => out.push_str(&format!("<{other:?}>")),
            },
            |n| (n == "team").then_some("blue"),
        );
        out
    }

    #[test]
    fn templates_render_context_and_stage_variables() {
        assert_eq!(
            render(r#"{"message":$context.error.messageString,"type":"$context.error.responseType"}"#),
            r#"{"message":"Forbidden","type":"INVALID_API_KEY"}"#
        );
        assert_eq!(
            render("${context.requestId}|$stageVariables.team|${stageVariables.none}|"),
            "<RequestId>|blue||"
        );
        // A `$` that starts no known reference stays as written; a trailing dot is text.
        assert_eq!(
            render("$5 $input.body ${x} at $context.stage."),
            "$5 $input.body ${x} at <Stage>."
        );
    }

    #[test]
    fn unknown_context_variables_are_refused() {
        let e = Template::parse("$context.error.mesage").expect_err("typo");
        assert!(e.contains("unknown variable $context.error.mesage"), "{e}");
        assert!(
            Template::parse("$stageVariables.a-b").is_ok(),
            "the name ends at '-'"
        );
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
        assert!(
            ResponseType::ALL
                .iter()
                .all(|t| ResponseType::parse(t.as_str()) == Some(*t))
        );
    }
}
