//! The access log: one line per request, as a tracing event with target
//! `turnpike::access_log`, in the stage's format (its own test binary: it installs the global
//! subscriber).

#[path = "support/proxy.rs"]
mod support;

#[path = "support/authorizers.rs"]
mod authorizers;

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

/// An API behind a TOKEN authorizer (`/pets/{id}`, the test function host) and a JWT
/// authorizer (`/orders`, the test issuer), logging what they said.
fn authorized_yaml(up: std::net::SocketAddr, functions: std::net::SocketAddr, issuer: &str) -> String {
    let backend = format!("http://{up}/echo");
    let format = "$context.requestId principal=$context.authorizer.principalId tenant=$context.authorizer.tenant level=$context.authorizer.level email=$context.authorizer.claims.email error=$context.authorizer.error";
    ApiSet::new(NS, "guarded")
        .spec(&format!(
            "  authorizers:\n    token:\n      type: TOKEN\n      authorizerUri: auth\n      functionHost: {{url: \"http://{functions}\"}}\n    oidc:\n      type: JWT\n      jwtConfiguration:\n        issuer: \"{issuer}\"\n        audience: [{}]",
            authorizers::AUDIENCE
        ))
        .method(
            "/pets/{id}",
            "GET",
            &format!(
                "        authorizationType: CUSTOM\n        authorizerId: token\n        integration: {{type: HTTP_PROXY, uri: \"{backend}\"}}"
            ),
        )
        .method(
            "/orders",
            "GET",
            &format!(
                "        authorizationType: JWT\n        authorizerId: oidc\n        integration: {{type: HTTP_PROXY, uri: \"{backend}\"}}"
            ),
        )
        .stage_with("prod", &format!("  accessLogSettings: {{format: \"{format}\"}}"))
        .yaml()
}

#[tokio::test]
async fn one_line_per_request_in_the_stage_format() {
    let lines = capture_access_log();
    let up = Upstream::start().await;
    let functions = authorizers::Functions::start().await;
    let k1 = authorizers::key("k1");
    let issuer = authorizers::Issuer::start(&[&k1]).await;
    let gw = Gateway::start(table(
        &(yaml(up.addr) + &authorized_yaml(up.addr, functions.addr, &issuer.url)),
        1,
    ))
    .await;
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
    let text = lines.until(&miss_id).await;
    let line_of = |id: &str| support::line_of(&text, id);
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

    // What the authorizers said: a function's principal and context, a token's claims, and
    // why an authorizer failed; never the token.
    let guarded = api_id(NS, "guarded");
    let client = client(false);
    let call = |path: &str, token: &str| {
        let req = http::Request::get(gw.url(&guarded, "prod", path))
            .header("authorization", token)
            .body(empty())
            .expect("request");
        send(&client, req)
    };
    let allowed = call("/pets/7", "Bearer allow").await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    let jwt = issuer.token(&k1, issuer.claims(serde_json::json!({})));
    let verified = call("/orders", &format!("Bearer {jwt}")).await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    let failed = call("/pets/7", "Bearer error").await;
    failed.assert(500, r#"{"message": null}"#);
    let refused = call("/orders", "Bearer not.a.jwt").await;
    assert_eq!(refused.status, 401);
    let id = |a: &Answer| a.header("x-amzn-requestid").expect("id").to_string();
    let (allowed_id, verified_id, failed_id, refused_id) =
        (id(&allowed), id(&verified), id(&failed), id(&refused));
    let text = lines.until(&refused_id).await;
    let line_of = |id: &str| self::support::line_of(&text, id);
    let allowed = line_of(&allowed_id);
    assert!(
        allowed.ends_with(&format!(
            "{allowed_id} principal=p-allow tenant=allow level=3 email=- error=-"
        )),
        "{allowed}"
    );
    let verified = line_of(&verified_id);
    assert!(
        verified.ends_with(&format!(
            "{verified_id} principal=user-1 tenant=- level=- email=a@b.c error=-"
        )),
        "{verified}"
    );
    let failed = line_of(&failed_id);
    assert!(
        failed.ends_with(&format!(
            "{failed_id} principal=- tenant=- level=- email=- error=the function failed: boom"
        )),
        "{failed}"
    );
    let refused = line_of(&refused_id);
    assert!(
        refused.contains(&format!("{refused_id} principal=- "))
            && refused.contains("error=the token is malformed"),
        "{refused}"
    );
    assert!(!text.contains(&jwt), "the token is never logged");
}
