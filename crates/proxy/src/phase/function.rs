//! AWS_PROXY, the Lambda proxy integration: the request becomes AWS's proxy event (payload
//! format 1.0), POSTed to the function host's Invoke API; the function's
//! `{statusCode, headers, multiValueHeaders, body, isBase64Encoded}` is the answer. A function
//! that fails or answers anything else is a 502 `{"message": "Internal server error"}`, as AWS.

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, request::Parts};
use serde_json::{Value, json};

use crate::{
    body::{ProxyBody, RequestBody},
    ctx::RequestCtx,
    error::Reject,
    headers::remap_reserved,
    phase::authorize::{call_function, facts},
};
use turnpike_core::model::{Backend, Integration};

/// Runs an AWS_PROXY integration.
pub async fn run(
    ctx: &mut RequestCtx<'_>,
    integration: &Integration,
    parts: &Parts,
    body: RequestBody,
) -> Result<Response<ProxyBody>, Reject> {
    let Backend::Function(function) = &integration.backend else {
        return Err(Reject::Internal("AWS_PROXY without a function".into()));
    };
    let limit = ctx.shared.config.limits.max_body_bytes;
    let bytes = crate::phase::validate::collect(body, limit).await?;
    let binary = ctx.api.is_some_and(|a| {
        parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| a.binary_media_types.matches(ct))
    });
    let event = {
        let facts = facts(ctx, parts);
        let mut m = facts.request_fields();
        if let (Some(identity), Some(Value::Object(rc))) = (&ctx.identity, m.get_mut("requestContext")) {
            rc.insert("authorizer".into(), identity.to_event_json());
        }
        let (body, encoded) = if bytes.is_empty() {
            (Value::Null, false)
        } else if binary || std::str::from_utf8(&bytes).is_err() {
            (
                json!(base64::engine::general_purpose::STANDARD.encode(&bytes)),
                true,
            )
        } else {
            (json!(String::from_utf8_lossy(&bytes)), false)
        };
        m.insert("body".into(), body);
        m.insert("isBase64Encoded".into(), json!(encoded));
        Value::Object(m)
    };
    let started = std::time::Instant::now();
    let result = call_function(ctx, function, &event, integration.timeout).await;
    ctx.integration_latency = Some(started.elapsed());
    let (status, headers, payload) = match result {
        Ok(r) => r,
        Err(cause) => {
            let timed_out = cause.ends_with("timed out");
            ctx.integration_error = Some(cause);
            return Err(if timed_out {
                Reject::Timeout
            } else {
                Reject::Upstream("the function host failed".into())
            });
        }
    };
    ctx.integration_status = Some(status.as_u16());
    if headers.contains_key("x-amz-function-error") || !status.is_success() {
        ctx.integration_error = Some(format!("the function failed (status {status})"));
        return Err(Reject::Upstream("the function failed".into()));
    }
    proxy_response(&payload).map_err(|e| {
        ctx.integration_error = Some(format!("malformed Lambda proxy response: {e}"));
        Reject::Upstream("malformed Lambda proxy response".into())
    })
}

/// The answer a function's proxy response describes, strictly: an object with an integer
/// `statusCode` (100–599), string `headers`, lists of strings in `multiValueHeaders`, a
/// string `body` (base64 when `isBase64Encoded`).
pub fn proxy_response(payload: &[u8]) -> Result<Response<ProxyBody>, String> {
    let v: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    let status = obj
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .filter(|s| (100..600).contains(&s.as_u16()))
        .ok_or("statusCode is missing or not a status")?;
    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    let header = |name: &str, value: &str| -> Result<(HeaderName, HeaderValue), String> {
        let n =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name {name:?}"))?;
        let v = HeaderValue::from_str(value).map_err(|_| format!("invalid value of header {name:?}"))?;
        Ok((n, v))
    };
    match obj.get("multiValueHeaders") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (name, values) in m {
                let values = values
                    .as_array()
                    .ok_or("a multiValueHeaders entry is not a list")?;
                for value in values {
                    let (n, v) = header(name, value.as_str().ok_or("a header value is not a string")?)?;
                    h.append(n, v);
                }
            }
        }
        Some(_) => return Err("multiValueHeaders is not an object".into()),
    }
    match obj.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (name, value) in m {
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return Err(format!("header {name:?} is not a string")),
                };
                let (n, v) = header(name, &text)?;
                // A name in both keeps both values; otherwise headers sets it.
                if !h.contains_key(&n) {
                    h.insert(n, v);
                }
            }
        }
        Some(_) => return Err("headers is not an object".into()),
    }
    let encoded = match obj.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("isBase64Encoded is not a boolean".into()),
    };
    let body = match obj.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(s)) if encoded => base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map(Bytes::from)
            .map_err(|_| "body is not base64")?,
        Some(Value::String(s)) => Bytes::from(s.clone()),
        Some(_) => return Err("body is not a string".into()),
    };
    // Framing is the gateway's; reserved names are renamed as for any backend.
    h.remove(http::header::CONTENT_LENGTH);
    h.remove(http::header::TRANSFER_ENCODING);
    h.remove(http::header::CONNECTION);
    remap_reserved(h);
    if !h.contains_key(http::header::CONTENT_TYPE) {
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    *resp.body_mut() = ProxyBody::full(body);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_responses_become_answers() {
        let r = proxy_response(
            br#"{"statusCode":201,"headers":{"x-one":"1","x-n":5},"multiValueHeaders":{"set-cookie":["a=1","b=2"]},"body":"{\"ok\":true}"}"#,
        )
        .expect("valid");
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["x-one"], "1");
        assert_eq!(r.headers()["x-n"], "5");
        assert_eq!(r.headers().get_all("set-cookie").iter().count(), 2);
        assert_eq!(r.headers()["content-length"], "11");
        let r = proxy_response(br#"{"statusCode":200,"body":"AAEC","isBase64Encoded":true}"#).expect("valid");
        assert_eq!(r.headers()["content-length"], "3");
        assert!(proxy_response(br#"{"statusCode":200}"#).is_ok());
    }

    #[test]
    fn malformed_proxy_responses_are_refused() {
        for body in [
            &b"nope"[..],
            b"[]",
            br#"{"body":"x"}"#,
            br#"{"statusCode":"200"}"#,
            br#"{"statusCode":99}"#,
            br#"{"statusCode":200,"headers":{"x":{}}}"#,
            br#"{"statusCode":200,"headers":{"bad name":"x"}}"#,
            br#"{"statusCode":200,"multiValueHeaders":{"x":"y"}}"#,
            br#"{"statusCode":200,"body":5}"#,
            br#"{"statusCode":200,"body":"***","isBase64Encoded":true}"#,
            br#"{"statusCode":200,"isBase64Encoded":"yes"}"#,
        ] {
            assert!(proxy_response(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
