//! The method's authorizer, after the route is resolved and before the API key (which an
//! authorizer may supply): JWT / user-pool tokens verified against the issuer's keys, or a
//! TOKEN / REQUEST function asked (its answer cached by the identity values for the TTL, and
//! its policy evaluated against each request's method ARN).
//!
//! Answers, as AWS: a missing identity → 401 `{"message":"Unauthorized"}` without calling
//! anything; a refused token → 401; a Deny → 403 (explicit deny wins); a function that fails,
//! times out or answers garbage → 500 AuthorizerConfigurationException, with the cause in
//! `$context.authorizer.error`.

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, request::Parts};
use serde_json::Value;

use crate::{
    authorizer::{
        Identity, KeysError,
        answer::{Answer, Verdict},
        event::{self, RequestFacts},
        jwt,
    },
    ctx::RequestCtx,
    error::Reject,
    phase::params::query_value,
};
use turnpike_core::model::{
    AUTHORIZER_TIMEOUT, AuthorizerDef, AuthorizerKind, FunctionHost, FunctionTarget, IdentitySource,
    MethodAuth,
};

/// The most bytes read of a function's answer.
const MAX_ANSWER: usize = 1 << 20;

/// Whether the request's method has an authorizer to run.
pub fn wanted(ctx: &RequestCtx<'_>) -> bool {
    ctx.method.is_some_and(|m| !matches!(m.auth, MethodAuth::None))
}

/// Runs the method's authorizer; on success `ctx.identity` is set.
pub async fn run(ctx: &mut RequestCtx<'_>, parts: &Parts) -> Result<(), Reject> {
    let Some(method) = ctx.method else {
        return Ok(());
    };
    let (authorizer, scopes) = match &method.auth {
        MethodAuth::None => return Ok(()),
        MethodAuth::Missing(id) => {
            return Err(configuration(
                ctx,
                format!("authorizer {id:?} is not in spec.authorizers"),
            ));
        }
        MethodAuth::Authorizer { authorizer, scopes } => (authorizer, scopes),
    };
    let started = Instant::now();
    let result = match authorizer.kind {
        AuthorizerKind::Jwt | AuthorizerKind::CognitoUserPools => {
            verify_token(ctx, authorizer, scopes, parts).await
        }
        AuthorizerKind::Token | AuthorizerKind::Request => ask_function(ctx, authorizer, parts).await,
    };
    ctx.authorizer_latency = Some(started.elapsed());
    result
}

fn configuration(ctx: &mut RequestCtx<'_>, cause: String) -> Reject {
    ctx.authorizer_error = Some(cause);
    Reject::AuthorizerConfiguration
}

/// The function ran and failed to authenticate the caller (AWS AUTHORIZER_FAILURE).
fn failure(ctx: &mut RequestCtx<'_>, cause: String) -> Reject {
    ctx.authorizer_error = Some(cause);
    Reject::AuthorizerFailure
}

/// A refused token is UNAUTHORIZED; an expired one and a bad signature have their own
/// response types (answered the same unless the API customizes them).
fn refused(ctx: &mut RequestCtx<'_>, e: jwt::JwtError) -> Reject {
    let reject = match e {
        jwt::JwtError::Expired => Reject::ExpiredToken,
        jwt::JwtError::Signature => Reject::InvalidSignature,
        _ => Reject::Unauthorized,
    };
    ctx.authorizer_error = Some(e.to_string());
    reject
}

fn unauthorized(ctx: &mut RequestCtx<'_>, cause: impl Into<String>) -> Reject {
    ctx.authorizer_error = Some(cause.into());
    Reject::Unauthorized
}

/// The identity values, in the order of the sources; `None` when one is missing or empty.
fn identity_values(ctx: &RequestCtx<'_>, authorizer: &AuthorizerDef, parts: &Parts) -> Option<Vec<String>> {
    authorizer
        .identity_sources
        .iter()
        .map(|source| {
            let v: Option<String> = match source {
                IdentitySource::Header(name) => {
                    let mut values = parts.headers.get_all(name.as_str()).iter();
                    let first = values.next()?;
                    // Several values of one header are one identity, joined as AWS does.
                    let mut out = String::from_utf8_lossy(first.as_bytes()).into_owned();
                    for v in values {
                        out.push(',');
                        out.push_str(&String::from_utf8_lossy(v.as_bytes()));
                    }
                    Some(out)
                }
                IdentitySource::Query(name) => query_value(parts.uri.query(), name).map(|v| {
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned()
                }),
                IdentitySource::StageVariable(name) => ctx.stage_variable(name).map(str::to_string),
                IdentitySource::Context(name) => context_value(ctx, parts, name),
            };
            v.filter(|v| !v.is_empty())
        })
        .collect()
}

/// The `$context` variables an identity source may name.
fn context_value(ctx: &RequestCtx<'_>, parts: &Parts, name: &str) -> Option<String> {
    Some(match name {
        "httpMethod" => parts.method.as_str().to_string(),
        "resourcePath" => ctx.resource?.path.to_string(),
        "resourceId" => ctx.resource?.id.clone(),
        "stage" => ctx.stage?.name.to_string(),
        "apiId" => ctx.api?.id.to_string(),
        "path" => parts.uri.path().to_string(),
        "identity.sourceIp" => ctx.conn.peer.ip().to_string(),
        "identity.userAgent" => parts
            .headers
            .get(http::header::USER_AGENT)?
            .to_str()
            .ok()?
            .to_string(),
        "domainName" => ctx.host?.to_str().ok()?.to_string(),
        _ => return None,
    })
}

// === JWT / COGNITO_USER_POOLS ===

async fn verify_token(
    ctx: &mut RequestCtx<'_>,
    authorizer: &AuthorizerDef,
    scopes: &[String],
    parts: &Parts,
) -> Result<(), Reject> {
    let Some(settings) = &authorizer.jwt else {
        return Err(configuration(ctx, "JWT authorizer without settings".into()));
    };
    let Some(mut values) = identity_values(ctx, authorizer, parts) else {
        return Err(unauthorized(ctx, "identity source missing"));
    };
    let raw = values.swap_remove(0);
    let token = strip_bearer(&raw);
    let authorizers = &ctx.shared.authorizers;
    let digest = crate::authorizer::Authorizers::token_digest(settings, token);
    let claims = match authorizers.verified_claims(&digest, settings).await {
        Some(claims) => claims,
        None => {
            let kid = match jwt::kid(token) {
                Ok(kid) => kid,
                Err(e) => return Err(unauthorized(ctx, e.to_string())),
            };
            let keys = match authorizers.cached_keys(settings, kid.as_deref()) {
                Some(keys) => keys,
                None => match authorizers.keys(settings, kid.as_deref()).await {
                    Ok(keys) => keys,
                    Err(KeysError::UnknownKid) => {
                        return Err(unauthorized(ctx, KeysError::UnknownKid.to_string()));
                    }
                    Err(e) => return Err(configuration(ctx, e.to_string())),
                },
            };
            match jwt::verify_signed(token, &keys, settings) {
                Ok(claims) => {
                    let claims = Arc::new(claims);
                    authorizers.store_verified(digest, Arc::clone(&claims), kid).await;
                    claims
                }
                Err(e) => return Err(refused(ctx, e)),
            }
        }
    };
    if let Err(e) = jwt::check_claims(&claims, settings, scopes) {
        return Err(refused(ctx, e));
    }
    ctx.identity = Some(Identity::Jwt(claims));
    Ok(())
}

/// The token of `Bearer TOKEN` (any case), or the value as it is.
fn strip_bearer(v: &str) -> &str {
    match v.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => v[7..].trim_start(),
        _ => v,
    }
}

// === TOKEN / REQUEST ===

async fn ask_function(
    ctx: &mut RequestCtx<'_>,
    authorizer: &AuthorizerDef,
    parts: &Parts,
) -> Result<(), Reject> {
    let Some(function) = &authorizer.function else {
        return Err(configuration(
            ctx,
            "function authorizer without a function".into(),
        ));
    };
    let values = if authorizer.identity_sources.is_empty() {
        Vec::new()
    } else {
        match identity_values(ctx, authorizer, parts) {
            Some(v) => v,
            None => return Err(unauthorized(ctx, "identity source missing")),
        }
    };
    if authorizer.kind == AuthorizerKind::Token
        && let (Some(re), Some(token)) = (&authorizer.identity_validation, values.first())
        && !re.is_match(token)
    {
        return Err(unauthorized(
            ctx,
            "the token does not match identityValidationExpression",
        ));
    }
    // The event's facts are gathered only when the function is called: a cached answer needs
    // just the method ARN and the cache key.
    let api_id = ctx.api.map_or("", |a| a.id.as_str());
    let stage = ctx.stage.map_or("", |s| s.name.as_str());
    let region = &ctx.table.hosts.region;
    let method_arn = match connect_route(ctx) {
        Some(route) => event::route_arn(region, api_id, stage, route),
        None => event::method_arn(region, api_id, stage, parts.method.as_str(), ctx.path),
    };
    let cache_key = (!authorizer.result_ttl.is_zero() && !values.is_empty()).then(|| {
        let mut key = String::with_capacity(
            api_id.len()
                + stage.len()
                + authorizer.id.len()
                + values.iter().map(|v| v.len() + 1).sum::<usize>()
                + 2,
        );
        for part in [api_id, "\0", stage, "\0", authorizer.id.as_str()] {
            key.push_str(part);
        }
        for v in &values {
            key.push('\0');
            key.push_str(v);
        }
        key
    });
    let authorizers = &ctx.shared.authorizers;
    let cached = match &cache_key {
        Some(k) => authorizers.cached_answer(k).await,
        None => None,
    };
    let answer = match cached {
        Some(a) => a,
        None => {
            let facts = facts(ctx, parts);
            let event = match authorizer.kind {
                AuthorizerKind::Token => facts.token_event(values.first().map_or("", String::as_str)),
                _ => facts.request_event(),
            };
            drop(facts);
            let answer = match invoke(ctx, function, event).await {
                Ok(Invoked::Answer(bytes)) => match Answer::parse(&bytes) {
                    Ok(a) => Arc::new(a),
                    Err(e) => return Err(failure(ctx, e.to_string())),
                },
                Ok(Invoked::Unauthorized) => {
                    return Err(unauthorized(ctx, "the function answered Unauthorized"));
                }
                Ok(Invoked::Failed(cause)) => return Err(failure(ctx, cause)),
                Err(cause) => return Err(configuration(ctx, cause)),
            };
            if let Some(k) = cache_key {
                ctx.shared
                    .authorizers
                    .store_answer(k, Arc::clone(&answer), authorizer.result_ttl)
                    .await;
            }
            answer
        }
    };
    let verdict = answer.evaluate(&method_arn);
    ctx.identity = Some(Identity::Function(answer));
    match verdict {
        Verdict::Allow => Ok(()),
        Verdict::ExplicitDeny => {
            ctx.authorizer_error = Some("the policy denies the method explicitly".into());
            Err(Reject::AuthorizerDenied { explicit: true })
        }
        Verdict::ImplicitDeny => {
            ctx.authorizer_error = Some("the policy allows no statement for the method".into());
            Err(Reject::AuthorizerDenied { explicit: false })
        }
    }
}

/// What the events say about the request.
pub fn facts<'c>(ctx: &'c RequestCtx<'_>, parts: &'c Parts) -> RequestFacts<'c> {
    RequestFacts {
        api_id: ctx.api.map_or("", |a| a.id.as_str()),
        stage: ctx.stage.map_or("", |s| s.name.as_str()),
        resource_path: ctx.resource.map_or("", |r| r.path.as_str()),
        resource_id: ctx.resource.map_or("", |r| r.id.as_str()),
        http_method: parts.method.as_str(),
        path: parts.uri.path(),
        stage_path: ctx.path,
        query: parts.uri.query(),
        headers: Some(&parts.headers),
        path_params: ctx.params.iter().collect(),
        stage_variables: ctx.variant.map(|v| &*v.variables),
        request_id: ctx.ids.request_id_str(),
        extended_request_id: ctx.ids.extended_str(),
        source_ip: ctx.conn.peer.ip().to_string(),
        protocol: match parts.version {
            http::Version::HTTP_2 => "HTTP/2.0",
            http::Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        },
        domain_name: ctx.host.and_then(|h| h.to_str().ok()).unwrap_or_default(),
        request_time_epoch: std::time::SystemTime::now()
            .checked_sub(ctx.start.elapsed())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis()),
        region: &ctx.table.hosts.region,
        route_key: connect_route(ctx),
    }
}

/// `$connect` when the request opens a WebSocket API's connection: the route its ARN names.
fn connect_route(ctx: &RequestCtx<'_>) -> Option<&'static str> {
    ctx.variant
        .and_then(|v| v.routes.websocket())
        .map(|_| turnpike_core::model::websocket::CONNECT)
}

/// What a function invocation gave.
pub enum Invoked {
    /// The function's payload (status 200, no `X-Amz-Function-Error`).
    Answer(Bytes),
    /// The function failed with the error message `Unauthorized` (AWS: 401).
    Unauthorized,
    /// The function raised another error (`X-Amz-Function-Error`); the cause.
    Failed(String),
}

/// `X-Amz-Function-Error`: set by the Invoke API when the function raised.
const FUNCTION_ERROR: &str = "x-amz-function-error";

/// Invokes a function through the Lambda Invoke API with a JSON event, within the AWS
/// authorizer timeout. The error is the cause, for `$context.authorizer.error`.
pub async fn invoke(
    ctx: &mut RequestCtx<'_>,
    function: &FunctionTarget,
    event: Value,
) -> Result<Invoked, String> {
    let (status, headers, body) = call_function(ctx, function, &event, AUTHORIZER_TIMEOUT).await?;
    ctx.shared.authorizers.invoked();
    if headers.contains_key(FUNCTION_ERROR) {
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("errorMessage").and_then(Value::as_str).map(str::to_string));
        if message.as_deref() == Some("Unauthorized") {
            return Ok(Invoked::Unauthorized);
        }
        return Ok(Invoked::Failed(format!(
            "the function failed: {}",
            message.unwrap_or_else(|| "no errorMessage".into())
        )));
    }
    if !status.is_success() {
        return Err(format!("the function host answered {status}"));
    }
    Ok(Invoked::Answer(body))
}

/// POSTs an event to a function's Invoke API: its host's URL, or one ready endpoint of its
/// Service.
pub async fn call_function(
    ctx: &mut RequestCtx<'_>,
    function: &FunctionTarget,
    event: &Value,
    timeout: std::time::Duration,
) -> Result<(http::StatusCode, HeaderMap, Bytes), String> {
    let path = function.invocation_path();
    let (url, guard) = match &function.host {
        FunctionHost::Url(base) => (format!("{base}{path}"), None),
        FunctionHost::Service(service) => {
            let endpoints = crate::service_endpoints(ctx.table, service);
            let guard = ctx
                .shared
                .upstreams
                .balancer
                .pick(endpoints, None)
                .ok_or_else(|| {
                    format!(
                        "Service {}/{} has no ready endpoint",
                        service.namespace, service.name
                    )
                })?;
            (format!("http://{}{path}", guard.addr), Some(guard))
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = Bytes::from(event.to_string());
    let result = ctx
        .shared
        .authorizers
        .fetcher()
        .call(Method::POST, &url, headers, body, timeout, MAX_ANSWER)
        .await
        .map_err(|e| format!("invoking {}: {e}", function.name));
    drop(guard);
    result
}
