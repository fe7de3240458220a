//! AWS TestInvokeMethod on the admin listener: `POST /restapis/{apiId}/stages/{stage}/test-invoke`
//! runs one request through the stage's current routing table, without any client listener,
//! through [`service::serve_traced`] — the very function every real request goes through —
//! with an execution log ([`Trace`]) attached, and answers AWS's shape:
//! `{status, body, headers, multiValueHeaders, log, latency}`.
//!
//! The request is served as if it had arrived on the listener the API is served on (the
//! private one for a PRIVATE API) from a loopback peer. The one difference from a client's
//! request: a PRIVATE API's resource policy, which is about who the caller is, is not
//! evaluated (the log says so) — the caller is the operator, checked by the admin listener's
//! access rule (loopback, or the admin bearer token). Nothing about the public listener
//! changes: a PRIVATE API stays unreachable there.
//!
//! `{apiId}` may also be the RestApi's name (with `?namespace=` when the name is not unique).

use std::{collections::BTreeMap, net::SocketAddr};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use turnpike_core::{model::EndpointType, routing::Listener};

use crate::{Shared, body::RequestBody, ctx::ConnInfo, service, trace::Trace};

/// The largest test-invoke request document read.
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// A test-invoke request, as AWS's TestInvokeMethod takes it (plus the method).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TestInvokeRequest {
    /// The HTTP method (`GET` when absent).
    pub http_method: Option<String>,
    /// The resource path with its query string, e.g. `/pets/1?type=dog`.
    pub path_with_query_string: String,
    pub headers: BTreeMap<String, String>,
    pub multi_value_headers: BTreeMap<String, Vec<String>>,
    pub body: Option<String>,
}

impl TestInvokeRequest {
    /// Reads the JSON document `{"httpMethod", "pathWithQueryString", "headers",
    /// "multiValueHeaders", "body"}` strictly: unknown members and wrong types are errors.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let Value::Object(members) = value else {
            return Err("the document is not a JSON object".into());
        };
        let string = |name: &str, v: &Value| -> Result<String, String> {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{name} is not a string"))
        };
        let mut out = TestInvokeRequest::default();
        let mut path = None;
        for (name, v) in &members {
            match name.as_str() {
                _ if v.is_null() => {}
                "httpMethod" => out.http_method = Some(string(name, v)?),
                "pathWithQueryString" => path = Some(string(name, v)?),
                "body" => out.body = Some(string(name, v)?),
                "headers" => {
                    let map = v.as_object().ok_or("headers is not an object")?;
                    for (k, v) in map {
                        out.headers.insert(k.clone(), string(&format!("headers.{k}"), v)?);
                    }
                }
                "multiValueHeaders" => {
                    let map = v.as_object().ok_or("multiValueHeaders is not an object")?;
                    for (k, vs) in map {
                        let list = vs
                            .as_array()
                            .ok_or_else(|| format!("multiValueHeaders.{k} is not a list"))?;
                        let values = list
                            .iter()
                            .map(|v| string(&format!("multiValueHeaders.{k}"), v))
                            .collect::<Result<Vec<_>, _>>()?;
                        out.multi_value_headers.insert(k.clone(), values);
                    }
                }
                other => return Err(format!("unknown member {other:?}")),
            }
        }
        out.path_with_query_string = path.ok_or("pathWithQueryString is required")?;
        Ok(out)
    }
}

/// A test-invoke answer, in AWS's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestInvokeResponse {
    pub status: u16,
    pub body: String,
    pub headers: BTreeMap<String, String>,
    pub multi_value_headers: BTreeMap<String, Vec<String>>,
    /// The execution log, one line each.
    pub log: String,
    /// Milliseconds from the start of the request to the end of its answer.
    pub latency: u64,
}

impl TestInvokeResponse {
    /// `{"status", "body", "headers", "multiValueHeaders", "log", "latency"}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "status": self.status,
            "body": self.body,
            "headers": self.headers,
            "multiValueHeaders": self.multi_value_headers,
            "log": self.log,
            "latency": self.latency,
        })
        .to_string()
    }
}

/// Why a test invoke was not run: a status and a message (`{"message": ...}`).
pub type Refusal = (StatusCode, String);

/// Runs `request` against stage `stage` of the API `api` (an id, or a RestApi name).
pub async fn run(
    shared: &Shared,
    api: &str,
    namespace: Option<&str>,
    stage: &str,
    request: TestInvokeRequest,
) -> Result<TestInvokeResponse, Refusal> {
    let not_found = |what: &str| {
        (
            StatusCode::NOT_FOUND,
            format!("Invalid {what} identifier specified"),
        )
    };
    let (id, endpoint_type, host) = {
        let table = shared.store.load();
        let entry = match table.api(api) {
            Some(e) => e.clone(),
            None => {
                let mut named = table.apis().filter(|a| {
                    *a.object.name == *api && namespace.is_none_or(|ns| *a.object.namespace == *ns)
                });
                let first = named.next().ok_or_else(|| not_found("API"))?.clone();
                if named.next().is_some() {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        format!("more than one RestApi is named {api:?}: give ?namespace="),
                    ));
                }
                first
            }
        };
        if !entry.stages.contains_key(stage) {
            return Err(not_found("stage"));
        }
        (
            entry.id.to_string(),
            entry.endpoint_type,
            table.hosts.api_host(&entry.id),
        )
    };
    let method = request.http_method.as_deref().unwrap_or("GET");
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| (StatusCode::BAD_REQUEST, format!("invalid httpMethod {method:?}")))?;
    let path = &request.path_with_query_string;
    if !path.starts_with('/') {
        return Err((
            StatusCode::BAD_REQUEST,
            "pathWithQueryString must start with '/'".into(),
        ));
    }
    let uri = format!("/restapis/{id}/{stage}/_user_request_{path}");
    let mut builder = Request::builder().method(method).uri(uri);
    let single = request.headers.iter();
    let multi = request
        .multi_value_headers
        .iter()
        .flat_map(|(k, vs)| vs.iter().map(move |v| (k, v)));
    for (name, value) in single.chain(multi) {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| (StatusCode::BAD_REQUEST, format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| (StatusCode::BAD_REQUEST, format!("invalid value of header {name}")))?;
        builder = builder.header(name, value);
    }
    let body = Bytes::from(request.body.unwrap_or_default());
    let req = builder
        .body(())
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("invalid request: {e}")))?;
    let (mut parts, ()) = req.into_parts();
    // The API's own host, as a client calling its invoke URL would send it.
    if !parts.headers.contains_key(http::header::HOST)
        && let Ok(host) = HeaderValue::from_str(&host)
    {
        parts.headers.insert(http::header::HOST, host);
    }
    if !body.is_empty() && !parts.headers.contains_key(http::header::CONTENT_LENGTH) {
        parts
            .headers
            .insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let listener = if endpoint_type == EndpointType::Private {
        Listener::Private
    } else {
        Listener::Public
    };
    let conn = ConnInfo::new(SocketAddr::from(([127, 0, 0, 1], 0)), listener, true);
    let trace = Trace::new();
    trace.log(format!(
        "Method request body before transformations: {}",
        crate::trace::body(&body)
    ));
    let resp = service::serve_traced(shared, &conn, parts, RequestBody::full(body), Some(&trace)).await;
    let (mut head, mut body) = resp.into_parts();
    if let Some(ids) = body.take_ids() {
        head.headers.insert(service::REQUEST_ID, ids.request_id_header());
        head.headers.insert(service::APIGW_ID, ids.extended_header());
    }
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            trace.log(format!("Reading the method response failed: {e}"));
            Bytes::new()
        }
    };
    let latency = trace.elapsed();
    trace.log(format!("Method completed with status: {}", head.status.as_u16()));
    let mut headers = BTreeMap::new();
    let mut multi_value_headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &head.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers.insert(name.to_string(), value.clone());
        multi_value_headers
            .entry(name.to_string())
            .or_default()
            .push(value);
    }
    Ok(TestInvokeResponse {
        status: head.status.as_u16(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        headers,
        multi_value_headers,
        log: trace.text(),
        latency: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_documents_are_read_strictly() {
        let r = TestInvokeRequest::from_json(
            br#"{"httpMethod": "POST", "pathWithQueryString": "/a?b=1", "headers": {"x": "1"},
                "multiValueHeaders": {"y": ["2", "3"]}, "body": "{}", "stageVariables": null}"#,
        )
        .expect("valid");
        assert_eq!(r.http_method.as_deref(), Some("POST"));
        assert_eq!(r.multi_value_headers["y"], ["2", "3"]);
        for bad in [
            &br#"{"path": "/a"}"#[..],
            br#"{"pathWithQueryString": 1}"#,
            br#"{"pathWithQueryString": "/a", "headers": {"x": 1}}"#,
            br#"{"pathWithQueryString": "/a", "multiValueHeaders": {"x": "1"}}"#,
            br#"{"httpMethod": "GET"}"#,
            b"[1]",
            b"{",
        ] {
            assert!(
                TestInvokeRequest::from_json(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
