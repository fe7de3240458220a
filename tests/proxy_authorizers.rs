//! Authorizers and function integrations end to end: a real OIDC issuer (discovery + JWKS,
//! keys generated here, rotated) for JWT and COGNITO_USER_POOLS authorizers, a function host
//! speaking the Lambda Invoke API for TOKEN and REQUEST authorizers and AWS_PROXY
//! integrations, and a real Python handler under the Lambda Runtime Interface Client
//! (`awslambdaric`) behind a Runtime API. Every answer is AWS's.

#[path = "support/proxy.rs"]
mod support;

#[path = "support/authorizers.rs"]
mod authorizers;

use std::{net::SocketAddr, sync::atomic::Ordering, time::Duration};

use authorizers::*;
use http::Request;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::*;
use tokio::net::TcpListener;

// === helpers ===

async fn get_auth(client: &TestClient, url: &str, header: Option<(&str, &str)>) -> Answer {
    let mut req = Request::get(url);
    if let Some((k, v)) = header {
        req = req.header(k, v);
    }
    send(client, req.body(empty()).expect("request")).await
}

fn assert_unauthorized(a: &Answer, what: &str) {
    assert_eq!(a.status, 401, "{what}: {}", a.body);
    assert_eq!(a.body, r#"{"message":"Unauthorized"}"#, "{what}");
    assert_eq!(
        a.header("x-amzn-errortype"),
        Some("UnauthorizedException"),
        "{what}"
    );
}

fn jwt_api(up: SocketAddr, issuer: &str) -> String {
    let backend = format!("http://{up}/echo");
    ApiSet::new(NS, "jwt")
        .spec(&format!(
            "  authorizers:\n    oidc:\n      type: JWT\n      jwtConfiguration:\n        issuer: \"{issuer}\"\n        audience: [{AUDIENCE}]\n    pool:\n      type: COGNITO_USER_POOLS\n      jwtConfiguration:\n        issuer: \"{issuer}\"\n        jwksUri: \"{issuer}/jwks\""
        ))
        .method(
            "/orders",
            "GET",
            &format!(
                "        authorizationType: JWT\n        authorizerId: oidc\n        authorizationScopes: [orders/read]\n        integration: {{type: HTTP_PROXY, uri: \"{backend}\"}}"
            ),
        )
        .method(
            "/profile",
            "GET",
            &format!(
                "        authorizationType: COGNITO_USER_POOLS\n        authorizerId: pool\n        integration:\n          type: HTTP\n          uri: \"{backend}\"\n          requestParameters:\n            integration.request.header.x-user: context.authorizer.claims.email\n            integration.request.header.x-principal: context.authorizer.principalId"
            ),
        )
        .method(
            "/orphan",
            "GET",
            &format!(
                "        authorizationType: CUSTOM\n        authorizerId: gone\n        integration: {{type: HTTP_PROXY, uri: \"{backend}\"}}"
            ),
        )
        .proxy("/open", "GET", &backend)
        .stage("prod")
        .yaml()
}

/// Compiles without insisting that every object is ready (the orphan method is reported).
fn lenient_table(yaml: &str) -> turnpike_core::routing::RoutingTable {
    let world = turnpike_controller::ingest::world_from_yaml(yaml).expect("yaml");
    turnpike_core::compile::compile(&world, &turnpike_core::compile::CompileConfig::default(), 1).table
}

#[tokio::test]
async fn jwt_authorizers_verify_tokens_as_aws_does() {
    let up = Upstream::start().await;
    let k1 = key("k1");
    let issuer = Issuer::start(&[&k1]).await;
    let gw = Gateway::start_with(lenient_table(&jwt_api(up.addr, &issuer.url)), |c| {
        // Rotation below must be picked up at once; the interval is tested by
        // `unknown_kids_refetch_at_most_once_per_interval`.
        c.jwks_min_refresh = Duration::ZERO;
    })
    .await;
    let api = api_id(NS, "jwt");
    let client = client(false);
    let orders = gw.url(&api, "prod", "/orders");
    let bearer = |t: &str| format!("Bearer {t}");

    let good = issuer.token(&k1, issuer.claims(json!({"scope": "orders/read orders/write"})));
    let ok = get_auth(&client, &orders, Some(("authorization", &bearer(&good)))).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1);
    // Later requests use the cached keys.
    for _ in 0..3 {
        let again = get_auth(&client, &orders, Some(("authorization", &good))).await;
        assert_eq!(again.status, 200, "{}", again.body);
    }
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1, "keys are cached");

    let other = key("k1");
    let cases = [
        ("no token", None),
        ("not a token", Some("Bearer nope".to_string())),
        (
            "bad signature",
            Some(issuer.token(&other, issuer.claims(json!({"scope": "orders/read"})))),
        ),
        (
            "wrong issuer",
            Some(issuer.token(
                &k1,
                issuer.claims(json!({"scope": "orders/read", "iss": "http://evil"})),
            )),
        ),
        (
            "wrong audience",
            Some(issuer.token(
                &k1,
                issuer.claims(json!({"scope": "orders/read", "aud": "other"})),
            )),
        ),
        (
            "expired",
            Some(issuer.token(
                &k1,
                issuer.claims(json!({"scope": "orders/read", "exp": now() - 3600})),
            )),
        ),
        (
            "not yet valid",
            Some(issuer.token(
                &k1,
                issuer.claims(json!({"scope": "orders/read", "nbf": now() + 3600})),
            )),
        ),
        (
            "missing scope",
            Some(issuer.token(&k1, issuer.claims(json!({"scope": "orders/write"})))),
        ),
        (
            "HS256 keyed with the public key",
            Some({
                let mut h = Header::new(Algorithm::HS256);
                h.kid = Some("k1".into());
                jsonwebtoken::encode(
                    &h,
                    &issuer.claims(json!({"scope": "orders/read"})),
                    &EncodingKey::from_secret(k1.jwk.to_string().as_bytes()),
                )
                .expect("sign")
            }),
        ),
    ];
    for (what, token) in cases {
        let a = get_auth(&client, &orders, token.as_deref().map(|t| ("authorization", t))).await;
        assert_unauthorized(&a, what);
    }
    assert_eq!(up.hits(), 4, "refused requests never reach the backend");

    // Rotation: a token under a new kid makes the gateway fetch the keys again.
    let k2 = key("k2");
    issuer.rotate(&[&k1, &k2]);
    let rotated = issuer.token(&k2, issuer.claims(json!({"scope": "orders/read"})));
    let a = get_auth(&client, &orders, Some(("authorization", &rotated))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2);

    // A user pool authorizer without scopes; claims reach the backend through mappings.
    let profile = gw.url(&api, "prod", "/profile");
    let id_token = issuer.token(&k1, issuer.claims(json!({})));
    let a = get_auth(&client, &profile, Some(("authorization", &id_token))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["headers"]["x-user"], "a@b.c");
    assert_eq!(a.json()["headers"]["x-principal"], "user-1");

    // A method naming a missing authorizer fails closed; the others serve.
    let a = get_auth(
        &client,
        &gw.url(&api, "prod", "/orphan"),
        Some(("authorization", &good)),
    )
    .await;
    a.assert(500, r#"{"message": null}"#);
    assert_eq!(
        a.header("x-amzn-errortype"),
        Some("AuthorizerConfigurationException")
    );
    assert_eq!(
        get_auth(&client, &gw.url(&api, "prod", "/open"), None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_interval() {
    let up = Upstream::start().await;
    let k1 = key("k1");
    let issuer = Issuer::start(&[&k1]).await;
    // The default interval (60 s): longer than this test.
    let gw = Gateway::start(lenient_table(&jwt_api(up.addr, &issuer.url))).await;
    let orders = gw.url(&api_id(NS, "jwt"), "prod", "/orders");
    let client = client(false);
    let good = issuer.token(&k1, issuer.claims(json!({"scope": "orders/read"})));
    assert_eq!(
        get_auth(&client, &orders, Some(("authorization", &good)))
            .await
            .status,
        200
    );
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1);
    let k2 = key("k2");
    issuer.rotate(&[&k1, &k2]);
    let made_up = issuer.token(&k2, issuer.claims(json!({"scope": "orders/read"})));
    for _ in 0..5 {
        let a = get_auth(&client, &orders, Some(("authorization", &made_up))).await;
        assert_unauthorized(&a, "a kid fetched too recently to refetch");
    }
    assert_eq!(
        issuer.fetches.load(Ordering::SeqCst),
        1,
        "no fetch within the interval"
    );
    // Tokens of the cached key still pass.
    assert_eq!(
        get_auth(&client, &orders, Some(("authorization", &good)))
            .await
            .status,
        200
    );
}

/// Polls until the issuer has served `n` JWKS fetches (bounded: about ten seconds).
async fn wait_for_fetches(issuer: &Issuer, n: usize) {
    for _ in 0..1000 {
        if issuer.fetches.load(Ordering::SeqCst) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the issuer's keys were fetched {} times, not {n}",
        issuer.fetches.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn keys_are_refreshed_in_the_background_and_a_failed_refresh_keeps_them() {
    let up = Upstream::start().await;
    let k1 = key("k1");
    let issuer = Issuer::start(&[&k1]).await;
    // The issuer's JWKS lives two seconds (its Cache-Control); the least lifetime is lowered
    // so the test does not wait five minutes. Unknown kids refetch at most once a minute (the
    // default), so a new key can only come from the background refresh.
    let gw = Gateway::start_with(lenient_table(&jwt_api(up.addr, &issuer.url)), |c| {
        c.jwks_refresh = turnpike_proxy::authorizer::KeysRefresh {
            min_age: Duration::from_millis(200),
            ..Default::default()
        };
    })
    .await;
    let orders = gw.url(&api_id(NS, "jwt"), "prod", "/orders");
    let client = client(false);
    let claims = || issuer.claims(json!({"scope": "orders/read"}));
    let old = issuer.token(&k1, claims());
    assert_eq!(
        get_auth(&client, &orders, Some(("authorization", &old)))
            .await
            .status,
        200
    );
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1);

    // The issuer rotates: k1 disappears, k2 signs.
    let k2 = key("k2");
    issuer.rotate(&[&k2]);
    wait_for_fetches(&issuer, 2).await;
    let new = issuer.token(&k2, claims());
    let a = get_auth(&client, &orders, Some(("authorization", &new))).await;
    assert_eq!(
        a.status, 200,
        "the new key is known without a fetch by a request: {}",
        a.body
    );
    // The old key is gone, and with it the tokens it signed (even one verified before).
    assert_unauthorized(
        &get_auth(&client, &orders, Some(("authorization", &old))).await,
        "a token of a key rotated out",
    );
    assert_eq!(
        issuer.fetches.load(Ordering::SeqCst),
        2,
        "no request fetched the keys"
    );

    // The issuer fails: the next refresh keeps the keys it has.
    issuer.failing.store(true, std::sync::atomic::Ordering::SeqCst);
    wait_for_fetches(&issuer, 3).await;
    let a = get_auth(&client, &orders, Some(("authorization", &new))).await;
    assert_eq!(a.status, 200, "the keys outlive a failed refresh: {}", a.body);
}

#[tokio::test]
async fn an_unreachable_issuer_is_a_configuration_error() {
    let up = Upstream::start().await;
    // A port nothing listens on.
    let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let gw = Gateway::start(lenient_table(&jwt_api(up.addr, &url))).await;
    let k1 = key("k1");
    let token = {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(
            &h,
            &json!({"iss": url, "aud": AUDIENCE, "exp": now() + 600, "scope": "orders/read"}),
            &EncodingKey::from_ec_pem(k1.pem.as_bytes()).expect("pem"),
        )
        .expect("sign")
    };
    let a = get_auth(
        &client(false),
        &gw.url(&api_id(NS, "jwt"), "prod", "/orders"),
        Some(("authorization", &token)),
    )
    .await;
    a.assert(500, r#"{"message": null}"#);
}

fn function_api(up: SocketAddr, functions: SocketAddr, ttl: u32) -> String {
    let backend = format!("http://{up}/echo");
    let arn = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:auth/invocations";
    let api = ApiSet::new(NS, "fn")
        .spec(&format!(
            "  apiKeySource: AUTHORIZER\n  authorizers:\n    token:\n      type: TOKEN\n      identityValidationExpression: \"Bearer [a-z]+\"\n      authorizerResultTtlInSeconds: {ttl}\n      authorizerUri: \"{arn}\"\n      functionHost: {{url: \"http://{functions}\"}}\n    request:\n      type: REQUEST\n      identitySource: method.request.header.x-tenant, method.request.querystring.user\n      authorizerResultTtlInSeconds: {ttl}\n      authorizerUri: request-auth\n      functionHost: {{url: \"http://{functions}\"}}"
        ))
        .method(
            "/pets/{id}",
            "GET",
            &format!(
                "        authorizationType: CUSTOM\n        authorizerId: token\n        integration:\n          type: HTTP\n          uri: \"{backend}\"\n          requestParameters:\n            integration.request.header.x-tenant: context.authorizer.tenant\n            integration.request.header.x-level: context.authorizer.level\n            integration.request.header.x-principal: context.authorizer.principalId"
            ),
        )
        .method(
            "/pets/{id}",
            "DELETE",
            &format!(
                "        authorizationType: CUSTOM\n        authorizerId: token\n        integration: {{type: HTTP_PROXY, uri: \"{backend}\"}}"
            ),
        )
        .method(
            "/tenants",
            "GET",
            &format!(
                "        authorizationType: CUSTOM\n        authorizerId: request\n        integration: {{type: HTTP_PROXY, uri: \"{backend}\"}}"
            ),
        )
        .method(
            "/metered",
            "GET",
            &format!(
                "        authorizationType: CUSTOM\n        authorizerId: token\n        apiKeyRequired: true\n        integration: {{type: HTTP_PROXY, uri: \"{backend}\"}}"
            ),
        )
        .stage_with("prod", "  variables: {env: prod}")
        .yaml();
    [
        api,
        usage_plan_yaml(
            NS,
            "metered",
            &[("fn", "prod")],
            "  quota: {limit: 2, period: DAY}\n",
        ),
        api_key_yaml(
            NS,
            "from-authorizer",
            "AuthorizerKey0123456789abc",
            &["metered"],
            true,
        ),
    ]
    .concat()
}

#[tokio::test]
async fn token_and_request_authorizers_answer_as_aws() {
    let up = Upstream::start().await;
    let functions = Functions::start().await;
    let gw = Gateway::start(lenient_table(&function_api(up.addr, functions.addr, 300))).await;
    let api = api_id(NS, "fn");
    let client = client(false);
    let pet = gw.url(&api, "prod", "/pets/7");
    let auth = |t: &'static str| Some(("authorization", t));

    // Allow; the context reaches the backend through parameter mappings.
    let a = get_auth(&client, &pet, auth("Bearer allow")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let echoed = a.json();
    assert_eq!(echoed["headers"]["x-tenant"], "allow");
    assert_eq!(echoed["headers"]["x-level"], "3");
    assert_eq!(echoed["headers"]["x-principal"], "p-allow");
    let event = functions.events.load()[0].clone();
    assert_eq!(event["type"], "TOKEN");
    assert_eq!(event["authorizationToken"], "Bearer allow");
    assert_eq!(
        event["methodArn"],
        format!("arn:aws:execute-api:local:000000000000:{api}/prod/GET/pets/7")
    );

    // Missing or malformed identity: 401 without calling the function.
    let before = functions.calls();
    assert_unauthorized(&get_auth(&client, &pet, None).await, "no token");
    assert_unauthorized(
        &get_auth(&client, &pet, auth("Basic abc")).await,
        "fails the validation expression",
    );
    assert_eq!(functions.calls(), before);

    // The function says Unauthorized: 401.
    assert_unauthorized(
        &get_auth(&client, &pet, auth("Bearer unauthorized")).await,
        "function",
    );
    // An explicit deny: 403.
    let a = get_auth(&client, &pet, auth("Bearer deny")).await;
    a.assert(
        403,
        r#"{"Message":"User is not authorized to access this resource with an explicit deny"}"#,
    );
    assert_eq!(a.header("x-amzn-errortype"), Some("AccessDeniedException"));
    // No statement allows the method: 403 without "explicit deny".
    let a = get_auth(&client, &pet, auth("Bearer nobody")).await;
    a.assert(
        403,
        r#"{"Message":"User is not authorized to access this resource"}"#,
    );
    // A failing or garbling function: 500.
    for token in ["Bearer error", "Bearer garbage"] {
        let a = get_auth(&client, &pet, Some(("authorization", token))).await;
        a.assert(500, r#"{"message": null}"#);
        assert_eq!(
            a.header("x-amzn-errortype"),
            Some("AuthorizerConfigurationException")
        );
    }

    // Wildcard resources: GET anywhere, not DELETE; the cached answer is evaluated against
    // each request's own method ARN.
    let calls = functions.calls();
    assert_eq!(get_auth(&client, &pet, auth("Bearer wild")).await.status, 200);
    assert_eq!(
        get_auth(&client, &gw.url(&api, "prod", "/pets/8"), auth("Bearer wild"))
            .await
            .status,
        200
    );
    let del = send(
        &client,
        Request::delete(&pet)
            .header("authorization", "Bearer wild")
            .body(empty())
            .expect("request"),
    )
    .await;
    assert_eq!(del.status, 403, "{}", del.body);
    assert_eq!(functions.calls(), calls + 1, "one call for the three requests");

    // Cache: N requests with one token within the TTL call the function once.
    let calls = functions.calls();
    for _ in 0..5 {
        assert_eq!(get_auth(&client, &pet, auth("Bearer cached")).await.status, 200);
    }
    assert_eq!(functions.calls(), calls + 1);

    // REQUEST: every identity source is needed; the event carries the request.
    let tenants = gw.url(&api, "prod", "/tenants");
    let calls = functions.calls();
    assert_unauthorized(
        &get_auth(&client, &tenants, Some(("x-tenant", "acme"))).await,
        "no user query",
    );
    assert_eq!(functions.calls(), calls);
    let with_user = format!("{tenants}?user=u1&user=u2");
    let a = get_auth(&client, &with_user, Some(("x-tenant", "acme"))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let event = functions.events.load().last().cloned().expect("event");
    assert_eq!(event["type"], "REQUEST");
    assert_eq!(event["headers"]["x-tenant"], "acme");
    assert_eq!(
        event["multiValueQueryStringParameters"]["user"],
        json!(["u1", "u2"])
    );
    assert_eq!(event["stageVariables"]["env"], "prod");
    assert_eq!(event["resource"], "/tenants");
    assert_eq!(event["requestContext"]["stage"], "prod");

    // The cached answer for "allow" names only GET /pets/7: as in AWS, it does not allow
    // another method ARN.
    let metered = gw.url(&api, "prod", "/metered");
    let a = get_auth(&client, &metered, auth("Bearer allow")).await;
    a.assert(
        403,
        r#"{"Message":"User is not authorized to access this resource"}"#,
    );

    // usageIdentifierKey feeds the usage plan (quota 2 a day).
    assert_eq!(get_auth(&client, &metered, auth("Bearer wild")).await.status, 200);
    assert_eq!(get_auth(&client, &metered, auth("Bearer wild")).await.status, 200);
    let a = get_auth(&client, &metered, auth("Bearer wild")).await;
    a.assert(429, r#"{"message":"Limit Exceeded"}"#);
}

#[tokio::test]
async fn a_zero_ttl_calls_the_function_every_time() {
    let up = Upstream::start().await;
    let functions = Functions::start().await;
    let gw = Gateway::start(lenient_table(&function_api(up.addr, functions.addr, 0))).await;
    let pet = gw.url(&api_id(NS, "fn"), "prod", "/pets/7");
    let client = client(false);
    for _ in 0..3 {
        let a = get_auth(&client, &pet, Some(("authorization", "Bearer allow"))).await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    assert_eq!(functions.calls(), 3);
}

// === AWS_PROXY ===

/// A Lambda proxy function host: answers by the event's path; `/echo` returns the event.
async fn proxy_functions() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(serve(listener, |path, body| {
        if path != "/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:pets/invocations" {
            return (404, String::new(), false);
        }
        let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match event["path"].as_str().unwrap_or_default() {
            "/echo" => (
                200,
                json!({
                    "statusCode": 201,
                    "headers": {"content-type": "application/json", "x-single": "one"},
                    "multiValueHeaders": {"set-cookie": ["a=1", "b=2"]},
                    "body": event.to_string(),
                })
                .to_string(),
                false,
            ),
            "/binary" => (
                200,
                json!({"statusCode": 200, "headers": {"content-type": "image/png"}, "body": "AAEC/w==", "isBase64Encoded": true}).to_string(),
                false,
            ),
            "/fails" => (200, json!({"errorMessage": "boom"}).to_string(), true),
            _ => (200, "{\"statusCode\": \"teapot\"}".into(), false),
        }
    }));
    (addr, task)
}

#[tokio::test]
async fn aws_proxy_integrations_round_trip() {
    let (functions, _task) = proxy_functions().await;
    let uri = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:pets/invocations";
    let method = format!(
        "        integration: {{type: AWS_PROXY, uri: \"{uri}\", functionHost: {{url: \"http://{functions}\"}}}}"
    );
    let yaml = ApiSet::new(NS, "lambda")
        .spec("  binaryMediaTypes: [image/png]")
        .method("/{proxy+}", "ANY", &method)
        .stage_with("prod", "  variables: {env: prod}")
        .yaml();
    let gw = Gateway::start(table(&yaml, 1)).await;
    let api = api_id(NS, "lambda");
    let client = client(false);

    // JSON, multi-value headers and query.
    let a = send(
        &client,
        Request::post(gw.url(&api, "prod", "/echo?q=1&q=2&x=y"))
            .header("x-multi", "a")
            .header("x-multi", "b")
            .header("content-type", "application/json")
            .body(full("{\"name\":\"rex\"}"))
            .expect("request"),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.header("x-single"), Some("one"));
    assert_eq!(a.headers.get_all("set-cookie").iter().count(), 2);
    let event = a.json();
    assert_eq!(event["httpMethod"], "POST");
    assert_eq!(event["resource"], "/{proxy+}");
    assert_eq!(event["path"], "/echo");
    assert_eq!(event["pathParameters"]["proxy"], "echo");
    assert_eq!(event["queryStringParameters"]["q"], "2");
    assert_eq!(event["multiValueQueryStringParameters"]["q"], json!(["1", "2"]));
    assert_eq!(event["multiValueHeaders"]["x-multi"], json!(["a", "b"]));
    assert_eq!(event["stageVariables"]["env"], "prod");
    assert_eq!(event["body"], "{\"name\":\"rex\"}");
    assert_eq!(event["isBase64Encoded"], false);
    assert_eq!(event["requestContext"]["stage"], "prod");

    // A binary request body goes base64-encoded; a base64 answer comes back as bytes.
    let a = send(
        &client,
        Request::post(gw.url(&api, "prod", "/echo"))
            .header("content-type", "image/png")
            .body(full(vec![0u8, 1, 2, 255]))
            .expect("request"),
    )
    .await;
    let event = a.json();
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(event["body"], "AAEC/w==");
    let a = get_auth(&client, &gw.url(&api, "prod", "/binary"), None).await;
    assert_eq!(a.status, 200);
    assert_eq!(&a.bytes[..], &[0u8, 1, 2, 255]);

    // A failing function or a malformed answer: 502 as AWS.
    for path in ["/fails", "/malformed"] {
        let a = get_auth(&client, &gw.url(&api, "prod", path), None).await;
        a.assert(502, r#"{"message": "Internal server error"}"#);
    }
}

// === a real Lambda runtime ===

/// The Python with the Lambda Runtime Interface Client: `TURNPIKE_PYTHON`, else the venv
/// tests/setup.sh makes (`.venv`, from tests/python/requirements.txt).
fn lambda_python() -> std::path::PathBuf {
    std::env::var_os("TURNPIKE_PYTHON").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
        std::path::PathBuf::from,
    )
}

#[tokio::test]
async fn a_python_handler_under_the_lambda_runtime_interface_client_authorizes_and_answers() {
    let runtime = RuntimeApi::start().await;
    let python = lambda_python();
    assert!(
        python.exists(),
        "{} is missing: tests/setup.sh makes it (awslambdaric from tests/python/requirements.txt)",
        python.display()
    );
    let functions = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/functions");
    // The runtime process: `python -m awslambdaric app.handler`, as a Lambda container image
    // runs it, polling the test's Runtime API.
    let _process = tokio::process::Command::new(&python)
        .args(["-m", "awslambdaric", "app.handler"])
        .current_dir(&functions)
        .env("AWS_LAMBDA_RUNTIME_API", runtime.addr.to_string())
        .env("PYTHONPATH", &functions)
        .env("AWS_LAMBDA_FUNCTION_NAME", "ric")
        .kill_on_drop(true)
        .spawn()
        .expect("start awslambdaric");

    let host = format!("{{url: \"http://{}\"}}", runtime.addr);
    let function = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:ric/invocations";
    let yaml = ApiSet::new(NS, "ric")
        .spec(&format!(
            "  authorizers:\n    ric:\n      type: TOKEN\n      authorizerResultTtlInSeconds: 0\n      authorizerUri: \"{function}\"\n      functionHost: {host}"
        ))
        .method(
            "/things/{id}",
            "ANY",
            &format!(
                "        authorizationType: CUSTOM\n        authorizerId: ric\n        integration: {{type: AWS_PROXY, uri: \"{function}\", functionHost: {host}}}"
            ),
        )
        .stage("prod")
        .yaml();
    let gw = Gateway::start(table(&yaml, 1)).await;
    let api = api_id(NS, "ric");
    let client = client(false);
    let thing = gw.url(&api, "prod", "/things/7?color=red");
    let post = |token: &'static str, url: String| {
        let req = Request::post(url)
            .header("authorization", token)
            .header("content-type", "application/json")
            .body(full("{\"n\":1}"))
            .expect("request");
        send(&client, req)
    };

    // Allowed by the handler as authorizer, answered by the handler as AWS_PROXY function,
    // which sees the authorizer's principal and context.
    let a = post("Bearer allow", thing.clone()).await;
    assert_eq!(
        a.status,
        201,
        "{} (runtime init errors: {:?})",
        a.body,
        runtime.init_errors.load()
    );
    assert_eq!(
        a.headers
            .get_all("x-seen")
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    let seen = a.json();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["resource"], "/things/{id}");
    assert_eq!(seen["path"], "/things/7");
    assert_eq!(seen["query"]["color"], "red");
    assert_eq!(seen["principal"], "ric-user");
    assert_eq!(seen["runtime"], "awslambdaric");
    assert_eq!(seen["body"], "{\"n\":1}");

    // The handler denies another token: 403; it raises `Unauthorized`: 401.
    post("Bearer other", thing.clone()).await.assert(
        403,
        r#"{"Message":"User is not authorized to access this resource with an explicit deny"}"#,
    );
    assert_unauthorized(
        &post("Bearer unauthorized", thing.clone()).await,
        "the handler raised Unauthorized",
    );
    // No token: 401 without invoking anything.
    assert_unauthorized(&get_auth(&client, &thing, None).await, "no token");
    // The handler raises while answering the request: 502 as AWS.
    post("Bearer allow", gw.url(&api, "prod", "/things/boom"))
        .await
        .assert(502, r#"{"message": "Internal server error"}"#);
}

// === $connect of WebSocket APIs ===

/// Two WebSocket APIs whose `$connect` is guarded: `wsreq` by a REQUEST authorizer (identity
/// from the query string, as browsers cannot set headers), `wsjwt` by a JWT authorizer. Their
/// `whoami` route is two-way and mirrors the AWS event back to the client.
fn websocket_apis(up: SocketAddr, functions: SocketAddr, issuer: &str) -> String {
    let routes = |auth: &str| {
        format!(
            "  protocolType: WEBSOCKET\n  routeSelectionExpression: $request.body.action\n  routes:\n\
             \x20   $connect:\n{auth}      integration: {{type: MOCK, integrationResponses: [{{statusCode: \"200\"}}]}}\n\
             \x20   whoami:\n      routeResponseSelectionExpression: $default\n      integration: {{type: HTTP_PROXY, uri: 'http://{up}/mirror'}}\n"
        )
    };
    let request = format!(
        "  authorizers:\n    request:\n      type: REQUEST\n      identitySource: method.request.querystring.tenant\n      authorizerResultTtlInSeconds: 0\n      authorizerUri: request-auth\n      functionHost: {{url: \"http://{functions}\"}}\n{}",
        routes("      authorizationType: CUSTOM\n      authorizerId: request\n")
    );
    let jwt = format!(
        "  authorizers:\n    oidc:\n      type: JWT\n      jwtConfiguration:\n        issuer: \"{issuer}\"\n        audience: [{AUDIENCE}]\n{}",
        routes("      authorizationType: JWT\n      authorizerId: oidc\n")
    );
    [
        ApiSet::new(NS, "wsreq").spec(&request).stage("prod").yaml(),
        ApiSet::new(NS, "wsjwt").spec(&jwt).stage("prod").yaml(),
    ]
    .concat()
}

type WsClient = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to a stage's URL on the plain public listener: the client, or the refusal's status.
async fn ws_connect(
    gw: &Gateway,
    api: &str,
    query: &str,
    authorization: Option<&str>,
) -> Result<WsClient, u16> {
    use tokio_tungstenite::tungstenite::{Error, client::IntoClientRequest as _};
    let url = format!(
        "ws://{}/restapis/{api}/prod/_user_request_{query}",
        gw.public_plain
    );
    let mut req = url.into_client_request().expect("request");
    if let Some(a) = authorization {
        req.headers_mut()
            .insert("authorization", a.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(other) => panic!("not an HTTP refusal: {other}"),
    }
}

/// Sends `whoami` and reads the event the backend mirrored: its `requestContext`.
async fn whoami(ws: &mut WsClient) -> Value {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text(r#"{"action":"whoami"}"#))
        .await
        .expect("send");
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("an answer in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(text) = msg {
            let event: Value = serde_json::from_str(&text).expect("the mirrored event");
            return event["requestContext"].clone();
        }
    }
}

#[tokio::test]
async fn connect_routes_run_request_and_jwt_authorizers() {
    let up = Upstream::start().await;
    let functions = Functions::start().await;
    let k1 = key("k1");
    let issuer = Issuer::start(&[&k1]).await;
    let gw = Gateway::start(lenient_table(&websocket_apis(
        up.addr,
        functions.addr,
        &issuer.url,
    )))
    .await;

    // REQUEST: the identity from the query string; the policy names the $connect route.
    let api = api_id(NS, "wsreq");
    let mut ws = ws_connect(&gw, &api, "?tenant=acme", None)
        .await
        .expect("allowed");
    let event = functions.events.load().last().cloned().expect("an event");
    assert_eq!(event["type"], "REQUEST");
    assert_eq!(
        event["methodArn"],
        format!("arn:aws:execute-api:local:000000000000:{api}/prod/$connect")
    );
    assert_eq!(event["queryStringParameters"]["tenant"], "acme");
    assert_eq!(event["requestContext"]["routeKey"], "$connect");
    assert_eq!(event["requestContext"]["eventType"], "CONNECT");
    // The authorizer's answer reaches the events of the connection's messages.
    let ctx = whoami(&mut ws).await;
    assert_eq!(ctx["routeKey"], "whoami");
    assert_eq!(ctx["authorizer"]["principalId"], "p-acme");
    assert_eq!(ctx["authorizer"]["tenant"], "acme");
    assert_eq!(ctx["authorizer"]["level"], 3);

    // No identity: 401 without asking the function; Unauthorized: 401; a Deny, explicit or
    // implicit: 403; a failing function: 500.
    let before = functions.calls();
    assert_eq!(ws_connect(&gw, &api, "", None).await.err(), Some(401));
    assert_eq!(functions.calls(), before, "no identity, no call");
    for (tenant, status) in [
        ("unauthorized", 401),
        ("deny", 403),
        ("other", 403),
        ("error", 500),
    ] {
        assert_eq!(
            ws_connect(&gw, &api, &format!("?tenant={tenant}"), None)
                .await
                .err(),
            Some(status),
            "{tenant}"
        );
    }

    // JWT: the token's claims reach the events.
    let api = api_id(NS, "wsjwt");
    let token = issuer.token(&k1, issuer.claims(json!({})));
    let mut ws = ws_connect(&gw, &api, "", Some(&format!("Bearer {token}")))
        .await
        .expect("a valid token");
    let ctx = whoami(&mut ws).await;
    assert_eq!(ctx["authorizer"]["claims"]["sub"], "user-1");
    assert_eq!(ctx["authorizer"]["claims"]["email"], "a@b.c");
    assert_eq!(ws_connect(&gw, &api, "", None).await.err(), Some(401));
    let expired = issuer.token(&k1, issuer.claims(json!({"exp": now() - 600})));
    assert_eq!(
        ws_connect(&gw, &api, "", Some(&format!("Bearer {expired}")))
            .await
            .err(),
        Some(401)
    );
}

// === gateway responses of authorizers ===

/// The body template of the customized authorizer answers: the `$context.error` values, the
/// authorizer's `$context.authorizer` values, a request header through `$input.params()` and a
/// `#if` on the type.
const AUTH_TEMPLATE: &str = r##"{"type":"$context.error.responseType","message":$context.error.messageString,"why":"$context.authorizer.error","principal":"$!context.authorizer.principalId","tenant":"$input.params('x-tenant')"#if($context.error.responseType == "ACCESS_DENIED"),"denied":true#end}"##;

/// `spec.gatewayResponses` customizing `types` (with a status each, or none) the same way:
/// `x-type` names the customization, the body is [`AUTH_TEMPLATE`].
fn auth_responses(types: &[(&str, Option<u16>)]) -> String {
    let template = serde_json::to_string(AUTH_TEMPLATE).expect("json");
    let mut y = String::from("  gatewayResponses:\n");
    for (t, status) in types {
        y.push_str(&format!("    {t}:\n"));
        if let Some(s) = status {
            y.push_str(&format!("      statusCode: \"{s}\"\n"));
        }
        y.push_str(&format!(
            "      responseParameters: {{gatewayresponse.header.x-type: \"'{t}'\"}}\n      responseTemplates:\n        application/json: {template}\n"
        ));
    }
    y
}

/// An API `name` with spec.cors, a JWT authorizer (`/jwt`), a TOKEN function (`/fn`) and a
/// TOKEN function whose host refuses connections (`/broken`), and `responses`.
fn authorizer_responses_api(
    name: &str,
    up: SocketAddr,
    issuer: &str,
    functions: SocketAddr,
    closed: SocketAddr,
    responses: &str,
) -> String {
    let backend = format!("http://{up}/echo");
    let arn = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:auth/invocations";
    let method = |authorizer: &str, kind: &str| {
        format!(
            "        authorizationType: {kind}\n        authorizerId: {authorizer}\n        integration: {{type: HTTP_PROXY, uri: \"{backend}\"}}"
        )
    };
    ApiSet::new(NS, name)
        .spec(&format!(
            "  cors: {{allowOrigins: [\"https://app.example.com\"]}}\n  authorizers:\n    oidc:\n      type: JWT\n      jwtConfiguration:\n        issuer: \"{issuer}\"\n        audience: [{AUDIENCE}]\n    token:\n      type: TOKEN\n      authorizerUri: \"{arn}\"\n      functionHost: {{url: \"http://{functions}\"}}\n    broken:\n      type: TOKEN\n      authorizerUri: \"{arn}\"\n      functionHost: {{url: \"http://{closed}\"}}\n{responses}"
        ))
        .method("/jwt", "GET", &method("oidc", "JWT"))
        .method("/fn", "GET", &method("token", "CUSTOM"))
        .method("/broken", "GET", &method("broken", "CUSTOM"))
        .stage("prod")
        .yaml()
}

/// What each refusal is: (type, built-in status, built-in body, `x-amzn-ErrorType`).
const AUTH_REFUSALS: [(&str, u16, &str, &str); 7] = [
    (
        "UNAUTHORIZED",
        401,
        r#"{"message":"Unauthorized"}"#,
        "UnauthorizedException",
    ),
    (
        "EXPIRED_TOKEN",
        401,
        r#"{"message":"Unauthorized"}"#,
        "UnauthorizedException",
    ),
    (
        "INVALID_SIGNATURE",
        401,
        r#"{"message":"Unauthorized"}"#,
        "UnauthorizedException",
    ),
    (
        "ACCESS_DENIED",
        403,
        r#"{"Message":"User is not authorized to access this resource with an explicit deny"}"#,
        "AccessDeniedException",
    ),
    (
        "AUTHORIZER_FAILURE",
        500,
        r#"{"message": null}"#,
        "AuthorizerConfigurationException",
    ),
    (
        "AUTHORIZER_FAILURE",
        500,
        r#"{"message": null}"#,
        "AuthorizerConfigurationException",
    ),
    (
        "AUTHORIZER_CONFIGURATION_ERROR",
        500,
        r#"{"message": null}"#,
        "AuthorizerConfigurationException",
    ),
];

/// One request per entry of [`AUTH_REFUSALS`], in order, to the API `name`, each from the
/// allowed origin and with `x-tenant: t-9`.
async fn auth_refusals(gw: &Gateway, issuer: &Issuer, signer: &Key, name: &str) -> Vec<Answer> {
    let forged = key(&signer.kid);
    let valid = issuer.claims(json!({}));
    let expired = issuer.claims(json!({"exp": now() - 3600}));
    let tokens = [
        ("/jwt", None),
        ("/jwt", Some(issuer.token(signer, expired))),
        ("/jwt", Some(issuer.token(&forged, valid))),
        ("/fn", Some("Bearer deny".to_string())),
        ("/fn", Some("Bearer error".to_string())),
        ("/fn", Some("Bearer garbage".to_string())),
        ("/broken", Some("Bearer allow".to_string())),
    ];
    let c = client(false);
    let mut out = Vec::new();
    for (path, token) in tokens {
        let mut req = Request::get(gw.url(&api_id(NS, name), "prod", path))
            .header("origin", "https://app.example.com")
            .header("x-tenant", "t-9");
        if let Some(t) = token {
            req = req.header("authorization", t);
        }
        out.push(send(&c, req.body(empty()).expect("request")).await);
    }
    out
}

#[tokio::test]
async fn authorizer_gateway_responses_are_customized_and_fall_back() {
    let up = Upstream::start().await;
    let k1 = key("k1");
    let issuer = Issuer::start(&[&k1]).await;
    let functions = Functions::start().await;
    let closed = closed_port().await;
    let custom: Vec<(&str, Option<u16>)> = vec![
        ("UNAUTHORIZED", Some(419)),
        ("EXPIRED_TOKEN", Some(440)),
        ("INVALID_SIGNATURE", Some(441)),
        ("ACCESS_DENIED", Some(451)),
        ("AUTHORIZER_FAILURE", Some(502)),
        ("AUTHORIZER_CONFIGURATION_ERROR", Some(503)),
    ];
    let api = |name: &str, responses: &str| {
        authorizer_responses_api(name, up.addr, &issuer.url, functions.addr, closed, responses)
    };
    let yaml = [
        api("auth-custom", &auth_responses(&custom)),
        api(
            "auth-defaults",
            &auth_responses(&[("DEFAULT_4XX", None), ("DEFAULT_5XX", None)]),
        ),
        api("auth-unauthorized", &auth_responses(&[("UNAUTHORIZED", None)])),
        api("auth-builtin", ""),
    ]
    .concat();
    let gw = Gateway::start(lenient_table(&yaml)).await;

    let why = |t: &str| match t {
        "UNAUTHORIZED" => "identity source missing",
        "EXPIRED_TOKEN" => "the token has expired",
        "INVALID_SIGNATURE" => "the signature is invalid",
        "ACCESS_DENIED" => "the policy denies the method explicitly",
        "AUTHORIZER_CONFIGURATION_ERROR" => "invoking",
        _ => "",
    };
    let message = |t: &str| match t {
        "ACCESS_DENIED" => "User is not authorized to access this resource with an explicit deny",
        "AUTHORIZER_FAILURE" | "AUTHORIZER_CONFIGURATION_ERROR" => "Authorizer configuration error",
        _ => "Unauthorized",
    };
    // The customized answer of type `t`, chosen as `shown`; every one carries the CORS headers.
    let check = |a: &Answer, t: &str, shown: Option<&str>, status: u16, builtin: (&str, &str)| {
        assert_eq!(a.status, status, "{t}: {a:?}");
        assert_eq!(a.header("x-amzn-errortype"), Some(builtin.1), "{t}");
        assert_eq!(
            a.header("access-control-allow-origin"),
            Some("https://app.example.com"),
            "{t}: spec.cors applies to the gateway's answers"
        );
        assert_eq!(a.header("vary"), Some("Origin"), "{t}");
        assert_eq!(a.header("x-type"), shown, "{t}");
        let Some(_) = shown else {
            assert_eq!(a.body, builtin.0, "{t}: the built-in answer, byte for byte");
            return;
        };
        let body = a.json();
        assert_eq!(body["type"], t, "{t}: {}", a.body);
        assert_eq!(body["message"], message(t), "{t}");
        assert_eq!(body["tenant"], "t-9", "{t}: $input.params");
        let cause = body["why"].as_str().expect("why");
        assert!(
            cause.contains(why(t)),
            "{t}: $context.authorizer.error is {cause:?}"
        );
        assert_eq!(
            body["denied"].as_bool(),
            (t == "ACCESS_DENIED").then_some(true),
            "{t}"
        );
        if t == "ACCESS_DENIED" {
            assert_eq!(body["principal"], "p", "$context.authorizer.principalId");
        }
    };

    // Each type's own customization.
    let answers = auth_refusals(&gw, &issuer, &k1, "auth-custom").await;
    for ((t, _, body, error_type), a) in AUTH_REFUSALS.iter().zip(&answers) {
        let status = custom.iter().find(|(n, _)| n == t).and_then(|(_, s)| *s);
        check(a, t, Some(t), status.unwrap_or_default(), (body, error_type));
    }
    // DEFAULT_4XX / DEFAULT_5XX by the built-in status, which stays.
    let answers = auth_refusals(&gw, &issuer, &k1, "auth-defaults").await;
    for ((t, status, body, error_type), a) in AUTH_REFUSALS.iter().zip(&answers) {
        let shown = if *status >= 500 {
            "DEFAULT_5XX"
        } else {
            "DEFAULT_4XX"
        };
        check(a, t, Some(shown), *status, (body, error_type));
    }
    // A refused token falls back to UNAUTHORIZED; the others to their built-in answers.
    let answers = auth_refusals(&gw, &issuer, &k1, "auth-unauthorized").await;
    for ((t, status, body, error_type), a) in AUTH_REFUSALS.iter().zip(&answers) {
        let shown =
            matches!(*t, "UNAUTHORIZED" | "EXPIRED_TOKEN" | "INVALID_SIGNATURE").then_some("UNAUTHORIZED");
        check(a, t, shown, *status, (body, error_type));
    }
    // No customization: every built-in answer, byte for byte.
    let answers = auth_refusals(&gw, &issuer, &k1, "auth-builtin").await;
    for ((t, status, body, error_type), a) in AUTH_REFUSALS.iter().zip(&answers) {
        check(a, t, None, *status, (body, error_type));
    }
}
