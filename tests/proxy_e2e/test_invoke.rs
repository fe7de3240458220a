//! Test invoke (AWS TestInvokeMethod) end to end: `POST /restapis/{api}/stages/{stage}/test-invoke`
//! on the admin listener and `turnpike test-invoke` run a request through the stage's table
//! with its execution log — the templates' output and the backend request and response on a
//! templated HTTP API, the selected status on a MOCK — and a PRIVATE API is test-invokable from
//! the admin listener while the public listener still refuses it.

use std::{net::SocketAddr, process::Command};

use http::Request;
use serde_json::{Value, json};

use crate::support::*;

fn apis(up: SocketAddr) -> String {
    let templated = ApiSet::new(NS, "templated")
        .method(
            "/orders/{id}",
            "POST",
            &format!(
                r##"        integration:
          type: HTTP
          uri: "http://{up}/mirror"
          requestTemplates:
            application/json: '{{"orderId": "$input.params(''id'')", "total": $input.json(''$.total''), "tier": "$stageVariables.tier"}}'
          integrationResponses:
            - statusCode: "200"
              responseTemplates:
                application/json: '{{"id": "$input.path(''$.orderId'')", "reshaped": true}}'"##
            ),
        )
        .method(
            "/mock",
            "GET",
            r#"        integration:
          type: MOCK
          requestTemplates:
            application/json: '#if($input.params("make") == "it") {"statusCode": 201} #else {"statusCode": 200} #end'
          integrationResponses:
            - statusCode: "201"
              selectionPattern: "201"
              responseTemplates: {application/json: '{"made": true}'}
            - statusCode: "200""#,
        )
        .stage_with("prod", "  variables: {tier: gold}")
        .yaml();
    let private = ApiSet::new(NS, "inside")
        .endpoint("PRIVATE")
        .spec("  policy: {allow: [{sourceCidrs: [10.0.0.0/8]}]}")
        .method(
            "/hello",
            "GET",
            r#"        integration:
          type: MOCK
          integrationResponses:
            - statusCode: "200"
              responseTemplates: {application/json: '{"inside": true}'}"#,
        )
        .stage("prod")
        .yaml();
    templated + &private
}

/// `turnpike test-invoke --admin ADMIN --api templated ARGS…`, run off the runtime's threads.
async fn cli(admin: &str, args: &[&str]) -> std::process::Output {
    let mut argv = vec!["test-invoke", "--admin", admin, "--api", "templated"];
    argv.extend_from_slice(args);
    let argv: Vec<String> = argv.into_iter().map(String::from).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_turnpike"))
            .args(&argv)
            .output()
            .expect("run turnpike test-invoke")
    })
    .await
    .expect("join")
}

async fn invoke(admin: &str, api: &str, stage: &str, request: Value) -> (u16, Value) {
    let req = Request::post(format!("{admin}/restapis/{api}/stages/{stage}/test-invoke"))
        .header("content-type", "application/json")
        .body(full(request.to_string()))
        .expect("request");
    let a = send(&client(false), req).await;
    let body = serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", a.body));
    (a.status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_invoke_logs_templates_backend_and_mock_status() {
    let up = Upstream::start().await;
    let mut gw = Gateway::start(table(&apis(up.addr), 1)).await;
    let admin = gw.serve_admin().await;
    let id = api_id(NS, "templated");

    let request = json!({
        "httpMethod": "POST",
        "pathWithQueryString": "/orders/o-7?x=1",
        "headers": {"Content-Type": "application/json", "x-api-key": "not-to-be-logged"},
        "body": "{\"total\": 12.5}",
    });
    let (status, answer) = invoke(&admin, &id, "prod", request.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"], r#"{"id": "o-7", "reshaped": true}"#);
    assert_eq!(answer["headers"]["content-type"], "application/json");
    assert!(answer["multiValueHeaders"]["x-amzn-requestid"].is_array());
    assert!(answer["latency"].is_u64());
    let log = answer["log"].as_str().expect("log");
    for line in [
        "HTTP Method: POST, Resource Path: /orders/{id}",
        "Method request path: {id=o-7}",
        "Method request query string: {x=1}",
        "Stage variables: {tier=gold}",
        r#"Method request body before transformations: {"total": 12.5}"#,
        r#"Endpoint request body after transformations: {"orderId": "o-7", "total": 12.5, "tier": "gold"}"#,
        &format!("Endpoint request URI: POST http://{}/mirror", up.addr),
        "Received response. Status: 200",
        r#"Endpoint response body before transformations: {"orderId": "o-7", "total": 12.5, "tier": "gold"}"#,
        r#"Method response body after transformations: {"id": "o-7", "reshaped": true}"#,
        "Method completed with status: 200",
    ] {
        assert!(log.contains(line), "no {line:?} in\n{log}");
    }
    assert!(!log.contains("not-to-be-logged"), "{log}");
    assert!(log.contains("x-api-key=****"), "{log}");

    // The RestApi's name works where the id does.
    let (status, answer) = invoke(&admin, "templated", "prod", request).await;
    assert_eq!((status, answer["status"].as_u64()), (200, Some(200)), "{answer}");

    // MOCK: the request template's output and the status it selects.
    let (_, answer) = invoke(
        &admin,
        &id,
        "prod",
        json!({"pathWithQueryString": "/mock?make=it"}),
    )
    .await;
    assert_eq!(answer["status"], 201, "{answer}");
    assert_eq!(answer["body"], r#"{"made": true}"#);
    let log = answer["log"].as_str().expect("log");
    assert!(log.contains("MOCK integration selected status: 201"), "{log}");
    assert!(
        log.contains(r#"Request template output:  {"statusCode": 201} "#),
        "{log}"
    );

    // Unknown API or stage, a malformed document: AWS-shaped errors.
    let (status, answer) = invoke(&admin, &id, "nope", json!({"pathWithQueryString": "/mock"})).await;
    assert_eq!(status, 404);
    assert_eq!(answer["message"], "Invalid stage identifier specified");
    let (status, _) = invoke(&admin, "nope", "prod", json!({"pathWithQueryString": "/mock"})).await;
    assert_eq!(status, 404);
    let (status, _) = invoke(&admin, &id, "prod", json!({"path": "/mock"})).await;
    assert_eq!(status, 400);

    // A PRIVATE API is test-invokable from the admin listener, its policy not evaluated...
    let inside = api_id(NS, "inside");
    let (status, answer) = invoke(&admin, &inside, "prod", json!({"pathWithQueryString": "/hello"})).await;
    assert_eq!((status, answer["status"].as_u64()), (200, Some(200)), "{answer}");
    assert_eq!(answer["body"], r#"{"inside": true}"#);
    assert!(
        answer["log"]
            .as_str()
            .is_some_and(|l| l.contains("Resource policy: not evaluated for a test invoke")),
        "{answer}"
    );
    // ...while the public listener still refuses it, and the private one applies the policy.
    let a = get(&gw.url(&inside, "prod", "/hello")).await;
    assert_eq!(a.status, 403, "{}", a.body);
    let a = get(&format!(
        "http://{}/restapis/{inside}/prod/_user_request_/hello",
        gw.private_plain
    ))
    .await;
    assert_eq!(a.status, 403, "{}", a.body);

    // The CLI prints the log and the response.
    let out = cli(
        &admin,
        &[
            "--stage",
            "prod",
            "POST",
            "/orders/o-9",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"total": 3}"#,
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "Execution log:",
        r#"Endpoint request body after transformations: {"orderId": "o-9", "total": 3, "tier": "gold"}"#,
        "Status: 200",
        "content-type: application/json",
        r#"{"id": "o-9", "reshaped": true}"#,
    ] {
        assert!(stdout.contains(line), "no {line:?} in\n{stdout}");
    }
    // A MOCK through the CLI, and a refusal is an error exit.
    let out = cli(&admin, &["--stage", "nope", "GET", "/mock"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Invalid stage identifier specified"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    gw.shutdown().await;
}
