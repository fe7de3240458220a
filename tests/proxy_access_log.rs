//! The access log: one line per request, as a tracing event with target
//! `turnpike::access_log`, in the stage's format (its own test binary: it installs the global
//! subscriber).

#[path = "support/proxy.rs"]
mod support;

use support::*;

const NS: &str = "logs";

fn yaml(up: std::net::SocketAddr) -> String {
    let custom = "$context.requestId $context.httpMethod $context.resourcePath $context.status $context.isCanaryRequest";
    let mut api = ApiSet::new(NS, "api")
        .proxy("/items/{id}", "GET", &format!("http://{up}/echo/{{id}}"))
        .spec(
            "  models:\n    Item: {schema: {type: object, required: [name], properties: {pin: {type: integer}}}}\n  requestValidators:\n    body: {validateRequestBody: true}\n",
        )
        .method(
            "/items/{id}",
            "POST",
            &format!(
                "        requestValidatorId: body\n        requestModels: {{application/json: Item}}\n        integration: {{type: HTTP_PROXY, uri: \"http://{up}/echo/{{id}}\"}}"
            ),
        );
    let validation = "$context.requestId $context.error.responseType $context.error.validationErrorString";
    for (stage, format) in [
        ("clf", "CLF"),
        ("json", "JSON"),
        ("custom", custom),
        ("validation", validation),
    ] {
        api = api.stage_with(stage, &format!("  accessLogSettings: {{format: \"{format}\"}}"));
    }
    // Every request of this stage goes to its canary, so its line and metrics say so.
    api.stage_with(
        "canary",
        r#"  canarySettings: {percentTraffic: 100}
  accessLogSettings: {format: "$context.requestId $context.stage $context.isCanaryRequest"}"#,
    )
    .yaml()
}

#[tokio::test]
async fn one_line_per_request_in_the_stage_format() {
    let lines = capture_access_log();
    let up = Upstream::start().await;
    let gw = Gateway::start(table(&yaml(up.addr), 1)).await;
    let api = api_id(NS, "api");
    let a = get(&gw.url(&api, "clf", "/items/1")).await;
    assert_eq!(a.status, 200);
    let clf_id = a.header("x-amzn-requestid").expect("id").to_string();
    let a = get(&gw.url(&api, "json", "/items/2")).await;
    let json_id = a.header("x-amzn-requestid").expect("id").to_string();
    let a = get(&gw.url(&api, "custom", "/items/3")).await;
    let custom_id = a.header("x-amzn-requestid").expect("id").to_string();
    let a = get(&gw.url(&api, "canary", "/items/5")).await;
    assert_eq!(a.status, 200);
    let canary_id = a.header("x-amzn-requestid").expect("id").to_string();
    // A body the model refuses: the schema's complaint is logged, never the body.
    let req = http::Request::post(gw.url(&api, "validation", "/items/6"))
        .header("content-type", "application/json")
        .body(full(&br#"{"pin": "s3cr3t-value"}"#[..]))
        .expect("request");
    let a = send(&client(false), req).await;
    a.assert(400, r#"{"message": "Invalid request body"}"#);
    let invalid_id = a.header("x-amzn-requestid").expect("id").to_string();
    let miss = get(&gw.url(&api, "nostage", "/items/4")).await;
    assert_eq!(miss.status, 403);
    let miss_id = miss.header("x-amzn-requestid").expect("id").to_string();
    // The line is written when the response body ends; give the server a moment to finish.
    for _ in 0..200 {
        if lines.text().contains(&miss_id) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let text = lines.text();
    let line_of = |id: &str| {
        text.lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("no line for {id} in {text}"))
            .to_string()
    };
    assert_eq!(text.lines().count(), 6, "{text}");
    let invalid = line_of(&invalid_id);
    assert!(
        invalid.ends_with(&format!(
            "{invalid_id} BAD_REQUEST_BODY [/pin: fails \"type\" (schema /properties/pin/type), /: required property \"name\" is missing]"
        )),
        "{invalid}"
    );
    assert!(!text.contains("s3cr3t"), "{text}");
    let canary = line_of(&canary_id);
    assert!(canary.contains(&format!("{canary_id} canary true")), "{canary}");
    let metrics = gw.metrics_text();
    assert!(
        metrics.lines().any(|l| l.starts_with("turnpike_count_total{")
            && l.contains(r#"stage="canary""#)
            && l.contains(r#"canary="true""#)),
        "{metrics}"
    );
    let clf = line_of(&clf_id);
    assert!(clf.contains(r#"127.0.0.1 - - ["#), "{clf}");
    assert!(clf.contains(r#""GET /items/{id} HTTP/1.1" 200 "#), "{clf}");
    let json = line_of(&json_id);
    assert!(json.contains(r#""resourcePath":"/items/{id}""#), "{json}");
    assert!(json.contains(r#""path":"/restapis/"#), "{json}");
    assert!(json.contains(r#""integrationStatus":"200""#), "{json}");
    assert!(json.contains(r#""isCanaryRequest":"false""#), "{json}");
    let custom = line_of(&custom_id);
    assert!(
        custom.contains(&format!("{custom_id} GET /items/{{id}} 200 false")),
        "{custom}"
    );
    // A miss uses the default (JSON) format and names the gateway error.
    let miss = line_of(&miss_id);
    assert!(
        miss.contains(r#""error.responseType":"MISSING_AUTHENTICATION_TOKEN""#),
        "{miss}"
    );
    assert!(miss.contains(r#""status":403"#), "{miss}");
}
