//! The one mapping from [`Reject`] to an HTTP response, following the AWS gateway response
//! table (status, body, `x-amzn-ErrorType`).

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::ProxyBody;
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
    pub response_type: &'static str,
    /// `$context.error.message`.
    pub message: &'static str,
}

// === impl Reject ===

impl Reject {
    /// Who is at fault.
    pub fn source(&self) -> Source {
        match self {
            Reject::Timeout | Reject::Upstream(_) | Reject::NoEndpoint => Source::Upstream,
            Reject::Internal(_) | Reject::LimitsUnavailable => Source::Internal,
            _ => Source::Downstream,
        }
    }

    /// The AWS gateway response for this rejection.
    pub fn gateway_response(&self) -> GatewayResponse {
        let fixed = |status, body: &'static str, error_type, response_type, message| GatewayResponse {
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
                "MISSING_AUTHENTICATION_TOKEN",
                "Missing Authentication Token",
            ),
            Reject::PrivateApi => fixed(
                StatusCode::FORBIDDEN,
                r#"{"message":"Forbidden"}"#,
                Some("ForbiddenException"),
                "ACCESS_DENIED",
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
                    response_type: "ACCESS_DENIED",
                    message: "User: anonymous is not authorized to perform: execute-api:Invoke",
                }
            }
            Reject::InvalidApiKey(_) => fixed(
                StatusCode::FORBIDDEN,
                r#"{"message":"Forbidden"}"#,
                Some("ForbiddenException"),
                "INVALID_API_KEY",
                "Forbidden",
            ),
            Reject::Throttled(_) => fixed(
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"message":"Too Many Requests"}"#,
                Some("TooManyRequestsException"),
                "THROTTLED",
                "Too Many Requests",
            ),
            Reject::QuotaExceeded => fixed(
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"message":"Limit Exceeded"}"#,
                Some("LimitExceededException"),
                "QUOTA_EXCEEDED",
                "Limit Exceeded",
            ),
            Reject::LimitsUnavailable => fixed(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"message": "Service Unavailable"}"#,
                None,
                "DEFAULT_5XX",
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
                response_type: "BAD_REQUEST_PARAMETERS",
                message: "Missing required request parameters",
            },
            Reject::InvalidBody { .. } => fixed(
                StatusCode::BAD_REQUEST,
                r#"{"message": "Invalid request body"}"#,
                Some("BadRequestException"),
                "BAD_REQUEST_BODY",
                "Invalid request body",
            ),
            Reject::UnsupportedMediaType => fixed(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                r#"{"message": "Unsupported Media Type"}"#,
                Some("UnsupportedMediaTypeException"),
                "UNSUPPORTED_MEDIA_TYPE",
                "Unsupported Media Type",
            ),
            Reject::BadRequest(_) => fixed(
                StatusCode::BAD_REQUEST,
                r#"{"message": "Bad Request"}"#,
                Some("BadRequestException"),
                "BAD_REQUEST_PARAMETERS",
                "Bad Request",
            ),
            Reject::BodyTooLarge => fixed(
                StatusCode::PAYLOAD_TOO_LARGE,
                r#"{"message":"Request Too Long"}"#,
                None,
                "REQUEST_TOO_LARGE",
                "Request Too Long",
            ),
            Reject::UriTooLong => fixed(
                StatusCode::URI_TOO_LONG,
                r#"{"message":"Request-URI Too Long"}"#,
                None,
                "REQUEST_TOO_LARGE",
                "Request-URI Too Long",
            ),
            Reject::HeadersTooLarge => fixed(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                r#"{"message":"Request Header Fields Too Large"}"#,
                None,
                "REQUEST_TOO_LARGE",
                "Request Header Fields Too Large",
            ),
            Reject::Timeout => fixed(
                StatusCode::GATEWAY_TIMEOUT,
                r#"{"message": "Endpoint request timed out"}"#,
                None,
                "INTEGRATION_TIMEOUT",
                "Endpoint request timed out",
            ),
            Reject::Upstream(_) => fixed(
                StatusCode::BAD_GATEWAY,
                r#"{"message": "Internal server error"}"#,
                None,
                "INTEGRATION_FAILURE",
                "Internal server error",
            ),
            Reject::NoEndpoint => fixed(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"message": "Service Unavailable"}"#,
                None,
                "INTEGRATION_FAILURE",
                "Service Unavailable",
            ),
            Reject::Internal(_) => fixed(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"message": "Internal server error"}"#,
                None,
                "DEFAULT_5XX",
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
