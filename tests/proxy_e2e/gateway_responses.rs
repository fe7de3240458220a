//! Gateway responses: every type the gateway produces today, customized (status, headers from a
//! static value, the request, `$context` and a stage variable, templates), falling back to
//! DEFAULT_4XX/DEFAULT_5XX, and to the built-in answer when neither is set.

use std::{fmt::Write as _, net::SocketAddr};

use http::Request;

use crate::support::*;

/// The types this file triggers, with the status each customization sets (`None` keeps the
/// built-in status).
const CUSTOM: &[(&str, Option<u16>)] = &[
    ("MISSING_AUTHENTICATION_TOKEN", Some(404)),
    ("INVALID_API_KEY", Some(401)),
    ("THROTTLED", Some(503)),
    ("QUOTA_EXCEEDED", Some(402)),
    ("BAD_REQUEST_PARAMETERS", Some(422)),
    ("BAD_REQUEST_BODY", Some(422)),
    ("INTEGRATION_FAILURE", Some(500)),
    ("API_CONFIGURATION_ERROR", Some(503)),
    ("INTEGRATION_TIMEOUT", None),
    ("REQUEST_TOO_LARGE", Some(400)),
    ("ACCESS_DENIED", Some(401)),
    ("UNSUPPORTED_MEDIA_TYPE", Some(400)),
];

const TEMPLATE: &str = r#"{"type":"$context.error.responseType","message":$context.error.messageString,"id":"$context.requestId","stage":"$context.stage"}"#;

/// `spec.gatewayResponses` customizing `types` the same way: `x-type` (static), `x-trace`
/// (`method.request.header.x-trace`), `x-req` (`context.requestId`), `x-team` (a stage
/// variable), and [`TEMPLATE`]. MISSING_AUTHENTICATION_TOKEN also has a `text/plain` template.
fn responses_yaml(types: &[(&str, Option<u16>)]) -> String {
    let mut y = String::from("  gatewayResponses:\n");
    for (t, status) in types {
        let _ = writeln!(y, "    {t}:");
        if let Some(s) = status {
            let _ = writeln!(y, "      statusCode: \"{s}\"");
        }
        let _ = write!(
            y,
            "      responseParameters:\n        gatewayresponse.header.x-type: \"'{t}'\"\n        \
             gatewayresponse.header.x-trace: method.request.header.x-trace\n        \
             gatewayresponse.header.x-req: context.requestId\n        \
             gatewayresponse.header.x-team: stageVariables.team\n      responseTemplates:\n        \
             application/json: '{TEMPLATE}'\n"
        );
        if *t == "MISSING_AUTHENTICATION_TOKEN" {
            y.push_str("        text/plain: 'no route ($context.error.message) for $context.httpMethod $context.path'\n");
        }
    }
    y
}

/// A REGIONAL API `name` with a route for each way to be refused, `extra` under its spec, its
/// stage `prod` (stage variable `team`, a one-request throttle on /throttled) and a key with a
/// one-request quota.
fn api(name: &str, up: SocketAddr, closed: SocketAddr, extra: &str) -> String {
    let resources = format!(
        r#"  resources:
    /ok:
      GET:
        integration: {{type: HTTP_PROXY, uri: "http://{up}/echo/ok"}}
    /keyed:
      GET:
        apiKeyRequired: true
        integration: {{type: HTTP_PROXY, uri: "http://{up}/echo/keyed"}}
    /quota:
      GET:
        apiKeyRequired: true
        integration: {{type: HTTP_PROXY, uri: "http://{up}/echo/quota"}}
    /throttled:
      GET:
        integration: {{type: HTTP_PROXY, uri: "http://{up}/echo/throttled"}}
    /needs:
      GET:
        requestValidatorId: all
        requestParameters: {{method.request.querystring.name: true}}
        integration: {{type: HTTP_PROXY, uri: "http://{up}/echo/needs"}}
    /decode:
      POST:
        integration:
          type: HTTP
          uri: "http://{up}/echo/decode"
          contentHandling: CONVERT_TO_BINARY
          integrationResponses: [{{statusCode: "200"}}]
    /body:
      POST:
        requestValidatorId: all
        requestModels: {{application/json: Item}}
        integration: {{type: HTTP_PROXY, uri: "http://{up}/echo/body"}}
    /refused:
      GET:
        integration: {{type: HTTP_PROXY, uri: "http://{closed}/x"}}
    /slow:
      GET:
        integration: {{type: HTTP_PROXY, uri: "http://{up}/sleep/3000", timeoutInMillis: 100}}
    /upload:
      POST:
        integration: {{type: HTTP_PROXY, uri: "http://{up}/read-gated"}}
    /strict:
      POST:
        integration:
          type: HTTP
          uri: "http://{up}/echo/strict"
          passthroughBehavior: NEVER
          requestTemplates: {{application/json: '{{"wrapped": $input.json(''$'')}}'}}
          integrationResponses: [{{statusCode: "200"}}]
  requestValidators:
    all: {{validateRequestBody: true, validateRequestParameters: true}}
  models:
    Item:
      schema: {{type: object, required: [name]}}
{extra}"#
    );
    let stage = "  variables: {team: blue}\n  methodSettings:\n    \
                 /throttled/GET: {throttlingRateLimit: 0.001, throttlingBurstLimit: 1}";
    [
        ApiSet::new(NS, name)
            .spec(&resources)
            .stage_with("prod", stage)
            .yaml(),
        usage_plan_yaml(
            NS,
            &format!("{name}-plan"),
            &[(name, "prod")],
            "  quota: {limit: 1, period: DAY}",
        ),
        api_key_yaml(
            NS,
            &format!("{name}-key"),
            &key_of(name),
            &[&format!("{name}-plan")],
            true,
        ),
    ]
    .concat()
}

fn key_of(api: &str) -> String {
    format!("{api}keyvalue0123456789")
}

/// A PRIVATE API that denies 127.0.0.1 (ACCESS_DENIED on the private listener).
fn denying(name: &str, extra: &str) -> String {
    let spec = format!(
        "  policy: {{allow: [{{sourceCidrs: [0.0.0.0/0]}}], deny: [{{sourceCidrs: [127.0.0.1/32]}}]}}\n  resources:\n    \
         /ok:\n      GET:\n        integration: {{type: MOCK}}\n{extra}"
    );
    ApiSet::new(NS, name)
        .endpoint("PRIVATE")
        .spec(&spec)
        .stage_with("prod", "  variables: {team: blue}")
        .yaml()
}

/// One request that the gateway refuses with each type: (type, built-in status, answer).
async fn refusals(gw: &Gateway, name: &str) -> Vec<(&'static str, u16, Answer)> {
    let id = api_id(NS, name);
    let c = client(false);
    let traced = |path: &str| {
        Request::get(gw.plain_url(&id, "prod", path))
            .header("x-trace", "t-1")
            .body(empty())
            .expect("request")
    };
    let mut out = Vec::new();
    out.push((
        "MISSING_AUTHENTICATION_TOKEN",
        403,
        send(&c, traced("/nothing")).await,
    ));
    out.push(("INVALID_API_KEY", 403, send(&c, traced("/keyed")).await));
    assert_eq!(send(&c, traced("/throttled")).await.status, 200);
    out.push(("THROTTLED", 429, send(&c, traced("/throttled")).await));
    let keyed = || {
        Request::get(gw.plain_url(&id, "prod", "/quota"))
            .header("x-trace", "t-1")
            .header("x-api-key", key_of(name))
            .body(empty())
            .expect("request")
    };
    assert_eq!(send(&c, keyed()).await.status, 200);
    out.push(("QUOTA_EXCEEDED", 429, send(&c, keyed()).await));
    out.push(("BAD_REQUEST_PARAMETERS", 400, send(&c, traced("/needs")).await));
    let invalid = Request::post(gw.plain_url(&id, "prod", "/body"))
        .header("x-trace", "t-1")
        .header("content-type", "application/json")
        .body(full("{}"))
        .expect("request");
    out.push(("BAD_REQUEST_BODY", 400, send(&c, invalid).await));
    let not_base64 = Request::post(gw.plain_url(&id, "prod", "/decode"))
        .header("x-trace", "t-1")
        .header("content-type", "text/plain")
        .body(full("not base64!"))
        .expect("request");
    out.push(("API_CONFIGURATION_ERROR", 500, send(&c, not_base64).await));
    out.push(("INTEGRATION_FAILURE", 502, send(&c, traced("/refused")).await));
    out.push(("INTEGRATION_TIMEOUT", 504, send(&c, traced("/slow")).await));
    out.push(("REQUEST_TOO_LARGE", 413, streamed_too_large(gw, &id).await));
    let unmapped = Request::post(gw.plain_url(&id, "prod", "/strict"))
        .header("x-trace", "t-1")
        .header("content-type", "text/plain")
        .body(full("plain"))
        .expect("request");
    out.push(("UNSUPPORTED_MEDIA_TYPE", 415, send(&c, unmapped).await));
    out
}

/// A chunked body over the payload limit (64 bytes here): cut while streaming, after the API
/// is known.
async fn streamed_too_large(gw: &Gateway, id: &str) -> Answer {
    let head = format!(
        "POST /restapis/{id}/prod/_user_request_/upload HTTP/1.1\r\nhost: 127.0.0.1\r\nx-trace: t-1\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\nc8\r\n{}\r\n0\r\n\r\n",
        "x".repeat(200)
    );
    parse_raw(&raw(gw.public_plain, head.as_bytes()).await)
}

/// A raw HTTP/1.1 answer as an [`Answer`].
fn parse_raw(text: &str) -> Answer {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut headers = http::HeaderMap::new();
    for line in head.lines().skip(1) {
        if let Some((k, v)) = line.split_once(':')
            && let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.trim().as_bytes()),
                http::HeaderValue::from_str(v.trim()),
            )
        {
            headers.append(k, v);
        }
    }
    Answer {
        status: raw_status(text),
        headers,
        body: body.to_string(),
        version: http::Version::HTTP_11,
        bytes: bytes::Bytes::copy_from_slice(body.as_bytes()),
    }
}

fn message_of(t: &str) -> &'static str {
    match t {
        "MISSING_AUTHENTICATION_TOKEN" => "Missing Authentication Token",
        "INVALID_API_KEY" => "Forbidden",
        "THROTTLED" => "Too Many Requests",
        "QUOTA_EXCEEDED" => "Limit Exceeded",
        "BAD_REQUEST_PARAMETERS" => "Missing required request parameters: [name]",
        "BAD_REQUEST_BODY" => "Invalid request body",
        "INTEGRATION_FAILURE" => "Internal server error",
        "API_CONFIGURATION_ERROR" => "Internal server error",
        "INTEGRATION_TIMEOUT" => "Endpoint request timed out",
        "REQUEST_TOO_LARGE" => "Request Too Long",
        "UNSUPPORTED_MEDIA_TYPE" => "Unsupported Media Type",
        other => panic!("no message for {other}"),
    }
}

/// The customized answer of type `t` shown as `shown` (the type itself, or the default that
/// stands in for it).
#[track_caller]
fn assert_custom(a: &Answer, t: &str, shown: &str, status: u16) {
    let id = a.header("x-amzn-requestid").expect("request id");
    assert_eq!(a.status, status, "{t}: {a:?}");
    let message = serde_json::to_string(message_of(t)).expect("json");
    assert_eq!(
        a.body,
        format!(r#"{{"type":"{t}","message":{message},"id":"{id}","stage":"prod"}}"#),
        "{t}"
    );
    assert_eq!(a.header("content-type"), Some("application/json"), "{t}");
    assert_eq!(a.header("x-type"), Some(shown), "{t}");
    assert_eq!(a.header("x-trace"), Some("t-1"), "{t}: method.request.header");
    assert_eq!(a.header("x-req"), Some(id), "{t}: context.requestId");
    assert_eq!(a.header("x-team"), Some("blue"), "{t}: stageVariables");
}

#[tokio::test]
async fn every_type_customized_falls_back_to_its_default_then_to_the_built_in() {
    let up = Upstream::start().await;
    let closed = closed_port().await;
    let defaults = [("DEFAULT_4XX", None), ("DEFAULT_5XX", None)];
    let yaml = [
        api("custom", up.addr, closed, &responses_yaml(CUSTOM)),
        api("defaults", up.addr, closed, &responses_yaml(&defaults)),
        api("only4xx", up.addr, closed, &responses_yaml(&defaults[..1])),
        denying("custom-deny", &responses_yaml(CUSTOM)),
        denying("defaults-deny", &responses_yaml(&defaults)),
    ]
    .concat();
    let gw = Gateway::start_with(table(&yaml, 1), |c| c.limits.max_body_bytes = 64).await;

    // Each type's own customization, and its status (or the built-in one when unset).
    for (t, builtin, a) in refusals(&gw, "custom").await {
        let status = CUSTOM.iter().find(|(n, _)| *n == t).and_then(|(_, s)| *s);
        assert_custom(&a, t, t, status.unwrap_or(builtin));
    }
    // Without it, DEFAULT_4XX or DEFAULT_5XX by the built-in status, which stays.
    for (t, builtin, a) in refusals(&gw, "defaults").await {
        let shown = if builtin >= 500 {
            "DEFAULT_5XX"
        } else {
            "DEFAULT_4XX"
        };
        assert_custom(&a, t, shown, builtin);
    }
    // Without either, the built-in answer, byte for byte.
    let only4xx = refusals(&gw, "only4xx").await;
    for (t, builtin, a) in &only4xx {
        if *builtin >= 500 {
            assert_eq!(a.header("x-type"), None, "{t}: {a:?}");
            assert_eq!(a.status, *builtin);
        } else {
            assert_eq!(a.header("x-type"), Some("DEFAULT_4XX"), "{t}: {a:?}");
        }
    }
    let (_, _, failure) = only4xx
        .iter()
        .find(|(t, _, _)| *t == "INTEGRATION_FAILURE")
        .expect("failure");
    failure.assert(502, r#"{"message": "Internal server error"}"#);

    // ACCESS_DENIED keeps the built-in message's detail in $context.error.message.
    let denied = |name: &str| {
        let url = format!(
            "http://{}/restapis/{}/prod/_user_request_/ok",
            gw.private_plain,
            api_id(NS, name)
        );
        async move {
            send(
                &client(false),
                Request::get(url)
                    .header("x-trace", "t-1")
                    .body(empty())
                    .expect("req"),
            )
            .await
        }
    };
    for (name, shown, status) in [
        ("custom-deny", "ACCESS_DENIED", 401),
        ("defaults-deny", "DEFAULT_4XX", 403),
    ] {
        let a = denied(name).await;
        assert_eq!(a.status, status, "{a:?}");
        assert_eq!(a.header("x-type"), Some(shown));
        assert_eq!(a.header("x-amzn-errortype"), Some("AccessDeniedException"));
        let body = a.json();
        assert_eq!(body["type"], "ACCESS_DENIED");
        let message = body["message"].as_str().expect("message");
        assert!(
            message.starts_with(
                "User: anonymous is not authorized to perform: execute-api:Invoke on resource: arn:"
            ) && message.ends_with("with an explicit deny"),
            "{message}"
        );
    }

    // The template is picked by the first Accept type; the built-in error type header stays.
    let a = send(
        &client(false),
        Request::get(gw.plain_url(&api_id(NS, "custom"), "prod", "/nothing?x=1"))
            .header("accept", "text/plain, application/json")
            .body(empty())
            .expect("req"),
    )
    .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.header("content-type"), Some("text/plain"));
    assert_eq!(
        a.body,
        "no route (Missing Authentication Token) for GET /restapis/".to_string()
            + &api_id(NS, "custom")
            + "/prod/_user_request_/nothing"
    );
    assert_eq!(
        a.header("x-amzn-errortype"),
        Some("MissingAuthenticationTokenException")
    );
    assert_eq!(
        a.header("x-trace"),
        None,
        "an absent request header leaves the header out"
    );

    // Answers given before the API is known are the built-in ones: an unknown stage, and a
    // declared body over the limit.
    let a = get(&gw.plain_url(&api_id(NS, "custom"), "nostage", "/ok")).await;
    a.assert(403, r#"{"message":"Missing Authentication Token"}"#);
    let head = format!(
        "POST /restapis/{}/prod/_user_request_/upload HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 100\r\n\
         connection: close\r\n\r\n{}",
        api_id(NS, "custom"),
        "x".repeat(100)
    );
    let a = parse_raw(&raw(gw.public_plain, head.as_bytes()).await);
    a.assert(413, r#"{"message":"Request Too Long"}"#);
}

/// Gateway response templates are mapping templates: `#set`, `#if`, `$util`, `$input.params()`,
/// `$stageVariables` and `$context.error.validationErrorString` (the schema's complaint).
#[tokio::test]
async fn templates_are_mapping_templates() {
    let up = Upstream::start().await;
    let closed = closed_port().await;
    let template = serde_json::to_string(
        "#set($e = $context.error)\n{\"type\":\"$e.responseType\",\"validation\":\"$util.escapeJavaScript($e.validationErrorString)\",\"q\":\"$input.params('q')\",\"team\":\"$stageVariables.team\"#if($e.responseType == \"BAD_REQUEST_BODY\"),\"body\":true#end}",
    )
    .expect("json");
    let extra = format!(
        "  gatewayResponses:\n    BAD_REQUEST_BODY:\n      responseTemplates: {{application/json: {template}}}\n    \
         BAD_REQUEST_PARAMETERS:\n      responseTemplates: {{application/json: {template}}}\n"
    );
    let gw = Gateway::start(table(&api("vtl", up.addr, closed, &extra), 1)).await;
    let id = api_id(NS, "vtl");
    let c = client(false);

    let invalid = Request::post(gw.plain_url(&id, "prod", "/body?q=v1"))
        .header("content-type", "application/json")
        .body(full("{}"))
        .expect("request");
    let a = send(&c, invalid).await;
    assert_eq!(a.status, 400, "{a:?}");
    let body = a.json();
    assert_eq!(body["type"], "BAD_REQUEST_BODY");
    assert_eq!(body["q"], "v1");
    assert_eq!(body["team"], "blue");
    assert_eq!(body["body"], true);
    let validation = body["validation"].as_str().expect("validation");
    assert!(
        validation.starts_with('[') && validation.contains("required property"),
        "{validation}"
    );

    let a = send(
        &c,
        Request::get(gw.plain_url(&id, "prod", "/needs?q=v2"))
            .body(empty())
            .expect("request"),
    )
    .await;
    assert_eq!(a.status, 400, "{a:?}");
    let body = a.json();
    assert_eq!(body["type"], "BAD_REQUEST_PARAMETERS");
    assert_eq!(body["q"], "v2");
    assert_eq!(body["validation"], "");
    assert_eq!(body.get("body"), None);
}

/// `config/examples/gateway-responses.yaml` answers as its comment says.
#[tokio::test]
async fn the_gateway_responses_example_answers_as_its_comment_says() {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/examples/gateway-responses.yaml"
    ))
    .expect("example");
    let gw = Gateway::start(table(&yaml, 1)).await;
    let id = api_id("default", "answers");
    let c = client(false);
    let call = |method: &str, path: &str, headers: &[(&str, &str)], body: &'static str| {
        let mut req = Request::builder()
            .method(method)
            .uri(gw.plain_url(&id, "prod", path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(full(body)).expect("request")
    };

    let a = send(&c, call("GET", "/nothing?trace=t-1", &[], "")).await;
    assert_eq!(a.status, 404, "{a:?}");
    let body = a.json();
    assert_eq!(body["trace"], "t-1");
    assert_eq!(body["message"], "no such route");
    assert_eq!(body["requestId"].as_str(), a.header("x-amzn-requestid"));
    assert_eq!(a.header("x-team"), Some("platform"));
    let a = send(&c, call("GET", "/nothing", &[], "")).await;
    assert_eq!(a.json().get("trace"), None, "{}", a.body);
    let a = send(&c, call("GET", "/nothing", &[("accept", "text/plain")], "")).await;
    assert_eq!(a.header("content-type"), Some("text/plain"));
    assert!(a.body.starts_with("no route for GET /restapis/"), "{}", a.body);

    let json = [("content-type", "application/json")];
    let a = send(&c, call("POST", "/orders", &json, r#"{"sku":"a"}"#)).await;
    a.assert(200, r#"{"accepted": true}"#);
    let a = send(&c, call("POST", "/orders", &json, "{}")).await;
    assert_eq!(a.status, 422, "{a:?}");
    assert_eq!(a.json()["message"], "Invalid request body");
    assert!(
        a.json()["why"].as_str().is_some_and(|w| w.contains("sku")),
        "{}",
        a.body
    );
    let a = send(&c, call("POST", "/pets", &[("content-type", "text/plain")], "x")).await;
    assert_eq!(a.status, 415, "{a:?}");
    assert_eq!(a.json()["type"], "UNSUPPORTED_MEDIA_TYPE");
    let a = send(&c, call("GET", "/keyed", &[], "")).await;
    assert_eq!(a.status, 403, "{a:?}");
    assert_eq!(a.header("x-error-type"), Some("INVALID_API_KEY"));
    assert_eq!(
        a.json(),
        serde_json::json!({"error": "Forbidden", "team": "platform"})
    );
}
