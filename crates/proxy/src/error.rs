//! The one mapping from [`Reject`] to an HTTP response, following the AWS gateway response
//! table (status, body, `x-amzn-ErrorType`).

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::{body::ProxyBody, ctx::RequestCtx};
use turnpike_core::model::{ContextVar, GatewayResponseDef, ParamLocation, ResponseType, ResponseValue};
use turnpike_core::routing::Miss;

/// Who is at fault for a rejected request (pingora's error source): it decides which side a
/// 4xx/5xx is blamed on in logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The client sent something we refuse.
    Downstream,
    /// The backend failed or was unreachable.
    Upstream,
    /// The gateway itself failed.
    Internal,
}

/// Why the gateway answered a request itself.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Reject {
    /// No API, stage, resource or method matched (AWS MISSING_AUTHENTICATION_TOKEN).
    #[error("no route: {0:?}")]
    NoRoute(Miss),
    /// A PRIVATE API asked for on the public listener.
    #[error("private API on the public listener")]
    PrivateApi,
    /// The resource policy denies the caller; `arn` is the method ARN.
    #[error("resource policy denies {arn}")]
    PolicyDenied { arn: String, explicit: bool },
    /// A `Cache-Control: max-age=0` from a caller not authorized to invalidate the cache, on a
    /// method whose strategy is FAIL_WITH_403; `arn` is the method ARN.
    #[error("not authorized to invalidate the cache of {arn}")]
    CacheInvalidationDenied { arn: String },
    /// The method requires an API key and the request has none that is valid for this stage
    /// (AWS INVALID_API_KEY). The reason is for debug logs; the answer never says which.
    #[error("invalid API key: {0}")]
    InvalidApiKey(KeyProblem),
    /// A throttle's bucket is empty (AWS THROTTLED).
    #[error("throttled by the {0} limit")]
    Throttled(ThrottleLevel),
    /// The key's usage plan quota for the period is used up (AWS QUOTA_EXCEEDED).
    #[error("quota exceeded")]
    QuotaExceeded,
    /// The shared limit store (Redis) is unreachable and the gateway is configured to fail
    /// closed.
    #[error("limit store unavailable")]
    LimitsUnavailable,
    /// Required request parameters are missing; `names` is `a, b`.
    #[error("missing required request parameters: [{names}]")]
    MissingParameters { names: String },
    /// The body does not match the method's model (AWS BAD_REQUEST_BODY). `error` is the
    /// schema's complaint for `$context.error.validationErrorString`: paths and keywords,
    /// never the body.
    #[error("invalid request body: {error}")]
    InvalidBody { error: String },
    /// The payload's media type is not one the method takes (AWS UNSUPPORTED_MEDIA_TYPE, the
    /// answer of strict passthrough behaviour).
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// The request line or path is malformed or tries to escape its stage.
    #[error("malformed request: {0}")]
    BadRequest(&'static str),
    /// The body is over the payload limit (declared or streamed).
    #[error("request body too large")]
    BodyTooLarge,
    /// The URL is over the limit.
    #[error("request URI too long")]
    UriTooLong,
    /// The headers are over the limit.
    #[error("request headers too large")]
    HeadersTooLarge,
    /// The integration did not answer within its timeout.
    #[error("integration timed out")]
    Timeout,
    /// The backend refused or reset the connection, or answered garbage.
    #[error("integration failed: {0}")]
    Upstream(String),
    /// A private integration's Service has no ready endpoint.
    #[error("no ready endpoint")]
    NoEndpoint,
    /// The API's configuration cannot serve the request (AWS API_CONFIGURATION_ERROR): an
    /// invalid backend address, a payload that is not base64 where `contentHandling` decodes,
    /// no integration response for a MOCK's status.
    #[error("API configuration error: {0}")]
    ApiConfiguration(Cow<'static, str>),
    /// The method's authorizer refused the caller: no identity, or a token that fails its
    /// checks (AWS UNAUTHORIZED). The cause is in `$context.authorizer.error`.
    #[error("unauthorized")]
    Unauthorized,
    /// A JWT authorizer's token has expired (AWS EXPIRED_TOKEN; answered as UNAUTHORIZED).
    #[error("unauthorized: the token has expired")]
    ExpiredToken,
    /// A JWT authorizer's token has a signature its issuer's key does not verify (AWS
    /// INVALID_SIGNATURE; answered as UNAUTHORIZED).
    #[error("unauthorized: invalid token signature")]
    InvalidSignature,
    /// The authorizer's policy denies the method (AWS ACCESS_DENIED); `explicit` when a Deny
    /// statement matched.
    #[error("the authorizer's policy denies the method")]
    AuthorizerDenied { explicit: bool },
    /// The authorizer cannot be reached or used: its function host does not answer (or not in
    /// time, or not 2xx), the issuer's keys cannot be fetched, or the method names no
    /// authorizer of the API (AWS AUTHORIZER_CONFIGURATION_ERROR). The cause is in
    /// `$context.authorizer.error`.
    #[error("authorizer configuration error")]
    AuthorizerConfiguration,
    /// The authorizer's function ran and failed to authenticate the caller: it raised an error
    /// (other than `Unauthorized`) or answered something that is not an authorizer's answer
    /// (AWS AUTHORIZER_FAILURE; the built-in answer is AUTHORIZER_CONFIGURATION_ERROR's, as in
    /// AWS). The cause is in `$context.authorizer.error`.
    #[error("authorizer failure")]
    AuthorizerFailure,
    /// A bug or impossible configuration in the gateway. Mostly a fixed message, so building
    /// one (e.g. eagerly, for `ok_or`) costs no allocation.
    #[error("internal error: {0}")]
    Internal(Cow<'static, str>),
}

/// Why a request's API key was refused (logged at debug level with the key id, never the
/// value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyProblem {
    /// No `x-api-key` header.
    Missing,
    /// No key has this value.
    Unknown,
    /// The key is disabled.
    Disabled,
    /// The key is in no usage plan of this stage.
    NotInPlan,
}

impl std::fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyProblem::Missing => "missing",
            KeyProblem::Unknown => "unknown",
            KeyProblem::Disabled => "disabled",
            KeyProblem::NotInPlan => "in no usage plan of the stage",
        })
    }
}

/// Which throttle limited a request, most specific first (the AWS precedence).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThrottleLevel {
    /// The usage plan's per-method throttle, per key.
    PlanMethod,
    /// The usage plan's throttle, per key.
    Plan,
    /// The stage's `methodSettings` throttle.
    StageMethod,
    /// The stage's default throttle.
    Stage,
    /// The gateway default (`--default-rate-limit`, `--default-burst-limit`).
    Gateway,
}

impl ThrottleLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleLevel::PlanMethod => "usage-plan-method",
            ThrottleLevel::Plan => "usage-plan",
            ThrottleLevel::StageMethod => "stage-method",
            ThrottleLevel::Stage => "stage",
            ThrottleLevel::Gateway => "gateway",
        }
    }
}

impl std::fmt::Display for ThrottleLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A gateway response: status, JSON body, `x-amzn-ErrorType` and the `$context.error.*`
/// values of the access log.
#[derive(Debug)]
pub struct GatewayResponse {
    pub status: StatusCode,
    pub body: Bytes,
    pub error_type: Option<&'static str>,
    /// `$context.error.responseType`.
    pub response_type: ResponseType,
    /// `$context.error.message`.
    pub message: &'static str,
}

// === impl Reject ===

impl Reject {
    /// Who is at fault.
    pub fn source(&self) -> Source {
        match self {
            Reject::Timeout | Reject::Upstream(_) | Reject::NoEndpoint => Source::Upstream,
            Reject::Internal(_)
            | Reject::ApiConfiguration(_)
            | Reject::LimitsUnavailable
            | Reject::AuthorizerConfiguration
            | Reject::AuthorizerFailure => Source::Internal,
            _ => Source::Downstream,
        }
    }

    /// The AWS gateway response type of this rejection: which `spec.gatewayResponses` entry
    /// customizes its answer (else DEFAULT_4XX/DEFAULT_5XX by its status). One arm per
    /// variant, so a new rejection has to say what it is.
    pub fn response_type(&self) -> ResponseType {
        match self {
            Reject::NoRoute(_) => ResponseType::MissingAuthenticationToken,
            Reject::PrivateApi => ResponseType::AccessDenied,
            Reject::PolicyDenied { .. } => ResponseType::AccessDenied,
            Reject::CacheInvalidationDenied { .. } => ResponseType::AccessDenied,
            Reject::InvalidApiKey(_) => ResponseType::InvalidApiKey,
            Reject::Throttled(_) => ResponseType::Throttled,
            Reject::QuotaExceeded => ResponseType::QuotaExceeded,
            Reject::LimitsUnavailable => ResponseType::Default5xx,
            Reject::MissingParameters { .. } => ResponseType::BadRequestParameters,
            Reject::BadRequest(_) => ResponseType::BadRequestParameters,
            Reject::InvalidBody { .. } => ResponseType::BadRequestBody,
            Reject::UnsupportedMediaType => ResponseType::UnsupportedMediaType,
            Reject::BodyTooLarge => ResponseType::RequestTooLarge,
            Reject::UriTooLong => ResponseType::RequestTooLarge,
            Reject::HeadersTooLarge => ResponseType::RequestTooLarge,
            Reject::Timeout => ResponseType::IntegrationTimeout,
            Reject::Upstream(_) => ResponseType::IntegrationFailure,
            Reject::NoEndpoint => ResponseType::IntegrationFailure,
            Reject::ApiConfiguration(_) => ResponseType::ApiConfigurationError,
            Reject::Unauthorized => ResponseType::Unauthorized,
            Reject::ExpiredToken => ResponseType::ExpiredToken,
            Reject::InvalidSignature => ResponseType::InvalidSignature,
            Reject::AuthorizerDenied { .. } => ResponseType::AccessDenied,
            Reject::AuthorizerConfiguration => ResponseType::AuthorizerConfigurationError,
            Reject::AuthorizerFailure => ResponseType::AuthorizerFailure,
            Reject::Internal(_) => ResponseType::Default5xx,
        }
    }

    /// `$context.error.message` as a customized answer shows it: the built-in message, with
    /// the details the built-in body carries (the missing parameters, the denied ARN).
    fn error_message(&self, gw: &GatewayResponse) -> Cow<'static, str> {
        match self {
            Reject::MissingParameters { names } => {
                format!("Missing required request parameters: [{names}]").into()
            }
            Reject::PolicyDenied { .. } | Reject::CacheInvalidationDenied { .. } => {
                serde_json::from_slice::<serde_json::Value>(&gw.body)
                    .ok()
                    .and_then(|v| v.get("Message").and_then(|m| m.as_str()).map(str::to_owned))
                    .map_or(Cow::Borrowed(gw.message), Cow::Owned)
            }
            _ => Cow::Borrowed(gw.message),
        }
    }

    /// The AWS gateway response for this rejection.
    pub fn gateway_response(&self) -> GatewayResponse {
        let response_type = self.response_type();
        let fixed = |status, body: &'static str, error_type, message| GatewayResponse {
            status,
            body: Bytes::from_static(body.as_bytes()),
            error_type,
            response_type,
            message,
        };
        match self {
            Reject::NoRoute(_) => fixed(
                StatusCode::FORBIDDEN,
                r#"{"message":"Missing Authentication Token"}"#,
                Some("MissingAuthenticationTokenException"),
                "Missing Authentication Token",
            ),
            Reject::PrivateApi => fixed(
                StatusCode::FORBIDDEN,
                r#"{"message":"Forbidden"}"#,
                Some("ForbiddenException"),
                "Forbidden",
            ),
            Reject::PolicyDenied { arn, explicit } => {
                let why = if *explicit {
                    "with an explicit deny"
                } else {
                    "because no resource-based policy allows the execute-api:Invoke action"
                };
                let message = format!(
                    "User: anonymous is not authorized to perform: execute-api:Invoke on resource: {arn} {why}"
                );
                let body = serde_json::json!({ "Message": message }).to_string();
                GatewayResponse {
                    status: StatusCode::FORBIDDEN,
                    body: Bytes::from(body),
                    error_type: Some("AccessDeniedException"),
                    response_type,
                    message: "User: anonymous is not authorized to perform: execute-api:Invoke",
                }
            }
            Reject::CacheInvalidationDenied { arn } => {
                let message =
                    format!("User: anonymous is not authorized to perform: execute-api:InvalidateCache on resource: {arn}");
                GatewayResponse {
                    status: StatusCode::FORBIDDEN,
                    body: Bytes::from(serde_json::json!({ "Message": message }).to_string()),
                    error_type: Some("AccessDeniedException"),
                    response_type,
                    message: "User: anonymous is not authorized to perform: execute-api:InvalidateCache",
                }
            }
            Reject::InvalidApiKey(_) => fixed(
                StatusCode::FORBIDDEN,
                r#"{"message":"Forbidden"}"#,
                Some("ForbiddenException"),
                "Forbidden",
            ),
            Reject::Throttled(_) => fixed(
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"message":"Too Many Requests"}"#,
                Some("TooManyRequestsException"),
                "Too Many Requests",
            ),
            Reject::QuotaExceeded => fixed(
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"message":"Limit Exceeded"}"#,
                Some("LimitExceededException"),
                "Limit Exceeded",
            ),
            Reject::LimitsUnavailable => fixed(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"message": "Service Unavailable"}"#,
                None,
                "Service Unavailable",
            ),
            Reject::MissingParameters { names } => GatewayResponse {
                status: StatusCode::BAD_REQUEST,
                body: Bytes::from(
                    serde_json::json!({ "message": format!("Missing required request parameters: [{names}]") })
                        .to_string()
                        // AWS writes this body with a space after the colon.
                        .replacen("\":\"", "\": \"", 1),
                ),
                error_type: Some("BadRequestException"),
                response_type,
                message: "Missing required request parameters",
            },
            Reject::InvalidBody { .. } => fixed(
                StatusCode::BAD_REQUEST,
                r#"{"message": "Invalid request body"}"#,
                Some("BadRequestException"),
                "Invalid request body",
            ),
            Reject::UnsupportedMediaType => fixed(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                r#"{"message": "Unsupported Media Type"}"#,
                Some("UnsupportedMediaTypeException"),
                "Unsupported Media Type",
            ),
            Reject::BadRequest(_) => fixed(
                StatusCode::BAD_REQUEST,
                r#"{"message": "Bad Request"}"#,
                Some("BadRequestException"),
                "Bad Request",
            ),
            Reject::BodyTooLarge => fixed(
                StatusCode::PAYLOAD_TOO_LARGE,
                r#"{"message":"Request Too Long"}"#,
                None,
                "Request Too Long",
            ),
            Reject::UriTooLong => fixed(
                StatusCode::URI_TOO_LONG,
                r#"{"message":"Request-URI Too Long"}"#,
                None,
                "Request-URI Too Long",
            ),
            Reject::HeadersTooLarge => fixed(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                r#"{"message":"Request Header Fields Too Large"}"#,
                None,
                "Request Header Fields Too Large",
            ),
            Reject::Timeout => fixed(
                StatusCode::GATEWAY_TIMEOUT,
                r#"{"message": "Endpoint request timed out"}"#,
                None,
                "Endpoint request timed out",
            ),
            Reject::Upstream(_) => fixed(
                StatusCode::BAD_GATEWAY,
                r#"{"message": "Internal server error"}"#,
                None,
                "Internal server error",
            ),
            Reject::NoEndpoint => fixed(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"message": "Service Unavailable"}"#,
                None,
                "Service Unavailable",
            ),
            Reject::Unauthorized | Reject::ExpiredToken | Reject::InvalidSignature => fixed(
                StatusCode::UNAUTHORIZED,
                r#"{"message":"Unauthorized"}"#,
                Some("UnauthorizedException"),
                "Unauthorized",
            ),
            Reject::AuthorizerDenied { explicit: true } => fixed(
                StatusCode::FORBIDDEN,
                r#"{"Message":"User is not authorized to access this resource with an explicit deny"}"#,
                Some("AccessDeniedException"),
                "User is not authorized to access this resource with an explicit deny",
            ),
            Reject::AuthorizerDenied { explicit: false } => fixed(
                StatusCode::FORBIDDEN,
                r#"{"Message":"User is not authorized to access this resource"}"#,
                Some("AccessDeniedException"),
                "User is not authorized to access this resource",
            ),
            Reject::AuthorizerConfiguration | Reject::AuthorizerFailure => fixed(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"message": null}"#,
                Some("AuthorizerConfigurationException"),
                "Authorizer configuration error",
            ),
            Reject::ApiConfiguration(_) | Reject::Internal(_) => fixed(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"message": "Internal server error"}"#,
                None,
                "Internal server error",
            ),
        }
    }
}

/// `x-amzn-ErrorType`.
pub const ERROR_TYPE: &str = "x-amzn-errortype";

// === impl GatewayResponse ===

impl GatewayResponse {
    /// The response (without the request id headers, which the service adds to every answer).
    pub fn into_response(self) -> Response<ProxyBody> {
        let mut resp = Response::new(ProxyBody::full(self.body));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(t) = self.error_type {
            h.insert(ERROR_TYPE, HeaderValue::from_static(t));
        }
        resp
    }
}

// === customized answers ===

/// What the answer to a request may read of the request itself, besides the [`RequestCtx`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestView<'r> {
    /// The request headers (kept until the answer when a customization reads them).
    pub headers: Option<&'r http::HeaderMap>,
    pub query: Option<&'r str>,
    pub method: Option<&'r str>,
    /// The request path as received (`$context.path`).
    pub path: Option<&'r str>,
    pub protocol: &'static str,
    pub user_agent: Option<&'r str>,
}

/// The answer to a rejected request: the API's customization of its response type (else of
/// its fallbacks: UNAUTHORIZED for a refused token's type, DEFAULT_4XX/DEFAULT_5XX), else the
/// built-in AWS answer. Returns the answer and the
/// `$context.error` values for the access log.
pub fn answer(
    reject: &Reject,
    ctx: &RequestCtx<'_>,
    request: &RequestView<'_>,
) -> (Response<ProxyBody>, &'static str, ResponseType) {
    let gw = reject.gateway_response();
    let (message, response_type) = (gw.message, gw.response_type);
    let custom = ctx
        .api
        .and_then(|a| a.gateway_responses.find(response_type, gw.status.as_u16()));
    let resp = match custom {
        None => gw.into_response(),
        Some(def) => customize(reject, gw, def, ctx, request),
    };
    (resp, message, response_type)
}

fn customize(
    reject: &Reject,
    gw: GatewayResponse,
    def: &GatewayResponseDef,
    ctx: &RequestCtx<'_>,
    request: &RequestView<'_>,
) -> Response<ProxyBody> {
    let message = reject.error_message(&gw);
    let response_type = gw.response_type;
    let status = def
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(gw.status);
    let accept = request
        .headers
        .and_then(|h| h.get(header::ACCEPT))
        .and_then(|v| v.to_str().ok());
    let (content_type, body) = match def.template(accept) {
        Some((content_type, template)) => {
            let facts = crate::phase::mapping::ErrorFacts {
                message: &message,
                response_type,
                validation_error: match reject {
                    Reject::InvalidBody { error } => error,
                    _ => "",
                },
            };
            match crate::phase::mapping::gateway_response(template, ctx, request, &facts) {
                Ok(out) => (
                    HeaderValue::from_str(content_type)
                        .unwrap_or_else(|_| HeaderValue::from_static("application/json")),
                    Bytes::from(out),
                ),
                // A template that fails on this request (a limit, a failing method) leaves the
                // built-in body: the client still gets the answer's status and headers.
                Err(e) => {
                    tracing::debug!(request_id = ?ctx.ids, error = %e, "gateway response template failed");
                    (HeaderValue::from_static("application/json"), gw.body)
                }
            }
        }
        None => (HeaderValue::from_static("application/json"), gw.body),
    };
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    if let Some(t) = gw.error_type {
        h.insert(ERROR_TYPE, HeaderValue::from_static(t));
    }
    for (name, source) in &def.headers {
        let value = match source {
            ResponseValue::Static(v) => HeaderValue::from_str(v).ok(),
            ResponseValue::StageVariable(n) => {
                ctx.stage_variable(n).and_then(|v| HeaderValue::from_str(v).ok())
            }
            ResponseValue::Context(var) => {
                let mut out = String::new();
                write_context(*var, &message, response_type, ctx, request, &mut out);
                HeaderValue::from_str(&out).ok()
            }
            ResponseValue::Request(p) => match p.location {
                ParamLocation::Header => request.headers.and_then(|h| h.get(p.name.as_str())).cloned(),
                ParamLocation::Querystring => crate::phase::params::query_value(request.query, &p.name)
                    .and_then(|v| HeaderValue::from_str(v).ok()),
                ParamLocation::Path => ctx.param(&p.name).and_then(|v| HeaderValue::from_str(v).ok()),
            },
        };
        // A value that is absent (or cannot be a header) leaves the header out, as in AWS.
        if let (Ok(name), Some(value)) = (http::HeaderName::from_bytes(name.as_bytes()), value) {
            h.insert(name, value);
        }
    }
    resp
}

/// Writes the value of a `$context` variable of a customized answer.
pub(crate) fn write_context(
    var: ContextVar,
    message: &str,
    response_type: ResponseType,
    ctx: &RequestCtx<'_>,
    request: &RequestView<'_>,
    out: &mut String,
) {
    use std::fmt::Write as _;
    match var {
        ContextVar::ErrorMessage => out.push_str(message),
        ContextVar::ErrorMessageString => match serde_json::to_string(message) {
            Ok(q) => out.push_str(&q),
            Err(_) => out.push_str("\"\""),
        },
        ContextVar::ErrorResponseType => out.push_str(response_type.as_str()),
        // Written from the ids' bytes (ASCII: borrowed, not copied).
        ContextVar::RequestId => out.push_str(ctx.ids.request_id_text()),
        ContextVar::ExtendedRequestId => out.push_str(ctx.ids.extended_text()),
        ContextVar::ApiId => out.push_str(ctx.api.map_or("", |a| a.id.as_str())),
        ContextVar::Stage => out.push_str(ctx.stage.map_or("", |s| s.name.as_str())),
        ContextVar::ResourcePath => out.push_str(ctx.resource.map_or("", |r| r.path.as_str())),
        ContextVar::ResourceId => out.push_str(ctx.resource.map_or("", |r| r.id.as_str())),
        ContextVar::HttpMethod => out.push_str(request.method.unwrap_or_default()),
        ContextVar::Path => out.push_str(request.path.unwrap_or_default()),
        ContextVar::Protocol => out.push_str(request.protocol),
        ContextVar::DomainName => {
            out.push_str(ctx.host.and_then(|h| h.to_str().ok()).unwrap_or_default());
        }
        ContextVar::RequestTime => {
            if let Some(t) = std::time::SystemTime::now().checked_sub(ctx.start.elapsed()) {
                turnpike_telemetry::access_log::clf_time(out, t);
            }
        }
        ContextVar::RequestTimeEpoch => {
            if let Some(t) = std::time::SystemTime::now().checked_sub(ctx.start.elapsed()) {
                let ms = t
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis();
                let _ = write!(out, "{ms}");
            }
        }
        ContextVar::SourceIp => {
            let _ = write!(out, "{}", ctx.conn.peer.ip());
        }
        ContextVar::UserAgent => out.push_str(request.user_agent.unwrap_or_default()),
        ContextVar::ApiKeyId => {
            if let Some(k) = ctx.key {
                let _ = write!(out, "{}", k.id);
            }
        }
        ContextVar::DeploymentId => out.push_str(ctx.variant.map_or("", |v| v.deployment_id.as_str())),
    }
}
