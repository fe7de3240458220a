//! End to end: YAML → compile → proxy on 127.0.0.1:0 → real upstream servers, with real
//! clients (hyper over TLS h1 and h2, plain HTTP, curl, raw TCP).

#[path = "support/proxy.rs"]
mod support;

#[path = "proxy_e2e/cors.rs"]
mod cors;
#[path = "proxy_e2e/gateway_responses.rs"]
mod gateway_responses;

use std::net::SocketAddr;

use http::Request;
use support::*;

fn mock_api(name: &str, endpoint: &str, policy: &str) -> String {
    rest_api(
        name,
        endpoint,
        &format!(
            r#"{policy}
  resources:
    /hello:
      GET:
        integration:
          type: MOCK
          requestTemplates: {{application/json: '{{"statusCode": 200}}'}}
          integrationResponses:
            - statusCode: "200"
              responseParameters: {{method.response.header.x-custom-thing: "'yes'"}}
              responseTemplates: {{application/json: '{{"hello":"{name}"}}'}}"#
        ),
    )
}

/// Every API the tests use, against `up` (the echo upstream) and the Service endpoints.
fn world(up: SocketAddr, closed: SocketAddr, reset: SocketAddr, svc_endpoints: &[SocketAddr]) -> String {
    let backend = up.to_string();
    let resources = format!(
        r#"  resources:
    /pets/{{id}}:
      GET:
        integration: {{type: HTTP_PROXY, uri: "http://${{stageVariables.backend}}/echo/pets/{{id}}"}}
      POST:
        integration: {{type: HTTP_PROXY, uri: "http://${{stageVariables.backend}}/echo/pets/{{id}}"}}
    /files/{{proxy+}}:
      ANY:
        integration: {{type: HTTP_PROXY, uri: "http://${{stageVariables.backend}}/echo/files/{{proxy}}"}}
    /status/{{code}}:
      GET:
        integration: {{type: HTTP_PROXY, uri: "http://{backend}/status/{{code}}"}}
    /slow:
      GET:
        integration: {{type: HTTP_PROXY, uri: "http://{backend}/sleep/3000", timeoutInMillis: 100}}
    /refused:
      GET:
        integration: {{type: HTTP_PROXY, uri: "http://{closed}/x"}}
    /reset:
      GET:
        integration: {{type: HTTP_PROXY, uri: "http://{reset}/x"}}
    /gate:
      GET:
        integration: {{type: HTTP_PROXY, uri: "http://{backend}/gate"}}
    /bytes/{{n}}:
      GET:
        integration: {{type: HTTP_PROXY, uri: "http://{backend}/bytes/{{n}}"}}
    /upload:
      POST:
        integration: {{type: HTTP_PROXY, uri: "http://{backend}/read-gated"}}
    /needs:
      GET:
        requestParameters:
          method.request.querystring.name: true
          method.request.header.x-token: true
        integration: {{type: HTTP_PROXY, uri: "http://{backend}/echo/needs"}}
    /mock:
      GET:
        integration:
          type: MOCK
          requestTemplates: {{application/json: '{{"statusCode": 200}}'}}
          integrationResponses:
            - statusCode: "200"
              responseParameters: {{method.response.header.x-mock: "'yes'"}}
              responseTemplates: {{application/json: '{{"mocked":true,"id":"$context.requestId","at":"$context.stage$context.resourcePath","label":"${{stageVariables.label}}","raw":"$input.body"}}'}}
    /teapot:
      GET:
        integration:
          type: MOCK
          requestTemplates: {{application/json: '{{"statusCode": 418}}'}}
          integrationResponses:
            - statusCode: "418"
              selectionPattern: "418"
              responseTemplates: {{text/plain: "short and stout"}}
            - statusCode: "200"
    /http/{{id}}:
      GET:
        integration:
          type: HTTP
          uri: "http://${{stageVariables.backend}}/echo/items/{{id}}"
          requestParameters:
            integration.request.path.id: method.request.path.id
            integration.request.querystring.q: method.request.querystring.search
            integration.request.header.x-stage: stageVariables.label
            integration.request.header.x-static: "'fixed'"
          integrationResponses:
            - statusCode: "200"
              responseParameters:
                method.response.header.x-backend-server: integration.response.header.server
    /http-status/{{code}}:
      GET:
        integration:
          type: HTTP
          uri: "http://{backend}/status/{{code}}"
          requestParameters:
            integration.request.path.code: method.request.path.code
          integrationResponses:
            - statusCode: "404"
              selectionPattern: "4\\d\\d"
              responseParameters:
                method.response.header.x-mapped: integration.response.header.x-backend-status
              responseTemplates: {{application/json: '{{"error":"not found"}}'}}
            - statusCode: "200"
    /svc/{{proxy+}}:
      ANY:
        integration:
          type: HTTP_PROXY
          connectionType: VPC_LINK
          serviceRef: {{name: backend, port: 80}}
          uri: "http://backend/echo/svc/{{proxy}}"
    /nosvc:
      GET:
        integration:
          type: HTTP_PROXY
          connectionType: VPC_LINK
          serviceRef: {{name: empty, port: 80}}
          uri: "http://empty/x"
"#
    );
    let mut yaml = ApiSet::new(NS, "pets")
        .spec(&resources)
        .stage_with(
            "prod",
            &format!(
                "  variables: {{backend: \"{backend}\", label: primary}}\n  canarySettings: {{percentTraffic: 30, stageVariableOverrides: {{label: canary}}}}"
            ),
        )
        .yaml();
    yaml += &mock_api("edge", "EDGE", "");
    yaml += &mock_api("regional", "REGIONAL", "");
    yaml += &mock_api(
        "priv-open",
        "PRIVATE",
        "  policy: {allow: [{sourceCidrs: [127.0.0.0/8]}]}",
    );
    yaml += &mock_api(
        "priv-deny",
        "PRIVATE",
        "  policy: {allow: [{sourceCidrs: [0.0.0.0/0]}], deny: [{sourceCidrs: [127.0.0.1/32]}]}",
    );
    yaml += &mock_api(
        "priv-none",
        "PRIVATE",
        "  policy: {allow: [{sourceCidrs: [10.0.0.0/8]}]}",
    );
    yaml += &mock_api(
        "priv-ns",
        "PRIVATE",
        "  policy: {allow: [{sourceNamespaces: [team-a]}]}",
    );
    // The Service `backend` with one EndpointSlice per endpoint (they differ in port).
    yaml += &format!(
        r#"
---
apiVersion: v1
kind: Service
metadata: {{name: backend, namespace: {NS}}}
spec:
  ports: [{{name: http, port: 80}}]
---
apiVersion: v1
kind: Service
metadata: {{name: empty, namespace: {NS}}}
spec:
  ports: [{{name: http, port: 80}}]
"#
    );
    for (i, ep) in svc_endpoints.iter().enumerate() {
        yaml += &format!(
            r#"
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: backend-{i}
  namespace: {NS}
  labels: {{kubernetes.io/service-name: backend}}
addressType: IPv4
ports: [{{name: http, port: {}}}]
endpoints: [{{addresses: ["{}"], conditions: {{ready: true}}}}]
"#,
            ep.port(),
            ep.ip()
        );
    }
    yaml
}

struct Env {
    gw: Gateway,
    up: Upstream,
    up2: Upstream,
    /// The Service endpoint nothing listens on.
    dead: SocketAddr,
    pets: String,
    _reset: tokio::task::JoinHandle<()>,
}

async fn env() -> Env {
    let up = Upstream::start().await;
    let up2 = Upstream::start().await;
    let closed = closed_port().await;
    let (reset, reset_task) = resetting_backend().await;
    let dead = closed_port().await;
    let eps = [up.addr, up2.addr, dead];
    let gw = Gateway::start(table(&world(up.addr, closed, reset, &eps), 1)).await;
    Env {
        gw,
        dead,
        up,
        up2,
        pets: api_id(NS, "pets"),
        _reset: reset_task,
    }
}

fn assert_missing_token(a: &Answer) {
    assert_eq!(a.status, 403, "{a:?}");
    assert_eq!(a.body, r#"{"message":"Missing Authentication Token"}"#);
    assert_eq!(
        a.header("x-amzn-errortype"),
        Some("MissingAuthenticationTokenException")
    );
    assert!(a.header("x-amzn-requestid").is_some());
}

#[tokio::test]
async fn http_proxy_over_tls_h1_and_h2_and_plain() {
    let e = env().await;
    for (h2, url) in [
        (false, e.gw.url(&e.pets, "prod", "/pets/7?color=red&x=1")),
        (true, e.gw.url(&e.pets, "prod", "/pets/7?color=red&x=1")),
        (false, e.gw.plain_url(&e.pets, "prod", "/pets/7?color=red&x=1")),
    ] {
        let req = Request::get(&url)
            .header("connection", "x-secret")
            .header("x-secret", "hop")
            .header("te", "trailers")
            .header("x-forwarded-for", "203.0.113.9")
            .header("x-keep", "me")
            .header("x-turnpike-canary", "never")
            .body(empty())
            .expect("req");
        let a = send(&client(h2), req).await;
        assert_eq!(a.status, 200, "{a:?}");
        if h2 {
            assert_eq!(a.version, http::Version::HTTP_2);
        }
        let echo = a.json();
        assert_eq!(echo["path"], "/echo/pets/7");
        assert_eq!(echo["query"], "color=red&x=1");
        let h = &echo["headers"];
        assert_eq!(h["x-keep"], "me");
        assert!(h.get("x-secret").is_none(), "listed in Connection: {h}");
        assert!(h.get("te").is_none());
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
        let proto = if url.starts_with("https") { "https" } else { "http" };
        assert_eq!(h["x-forwarded-proto"], proto);
        assert!(
            h["x-forwarded-host"]
                .as_str()
                .is_some_and(|v| v.starts_with("127.0.0.1:"))
        );
        // Response: hop-by-hop removed, reserved headers remapped, ids added.
        assert!(a.header("x-hop").is_none());
        assert_eq!(a.header("x-amzn-remapped-server"), Some("upstream/1.0"));
        assert_eq!(a.header("x-amzn-remapped-www-authenticate"), Some("Basic"));
        assert!(a.header("server").is_none());
        let rid = a.header("x-amzn-requestid").expect("request id");
        assert!(uuid::Uuid::parse_str(rid).is_ok(), "{rid}");
        assert_eq!(a.headers.get_all("x-amzn-requestid").iter().count(), 1);
        let ext = a.header("x-amz-apigw-id").expect("apigw id");
        assert_eq!(ext.len(), 16);
        assert!(ext.ends_with('='));
        assert!(a.header("via").is_none(), "REGIONAL has no edge headers");
    }
}

#[tokio::test]
async fn greedy_path_host_form_and_request_id() {
    let e = env().await;
    let a = get(&e.gw.url(&e.pets, "prod", "/files/a/b%20c/d.txt")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["path"], "/echo/files/a/b%20c/d.txt");

    // Host form: {apiId}.execute-api.{region}.{baseDomain}/{stage}/...
    let host = format!("{}.execute-api.local.turnpike.dev", e.pets);
    let req = Request::get(format!("http://{}/prod/pets/9", e.gw.public_plain))
        .header("host", &host)
        .header("x-amzn-requestid", "c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
        .body(empty())
        .expect("req");
    let a = send(&client(false), req).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["path"], "/echo/pets/9");
    assert_eq!(
        a.header("x-amzn-requestid"),
        Some("c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
    );

    // curl over HTTP/2 and HTTP/1.1 with TLS.
    let url = e.gw.url(&e.pets, "prod", "/pets/3");
    let (code, out) = curl(&["--http2", &url]).await;
    assert_eq!(code, 200, "{out}");
    assert!(out.starts_with("HTTP/2 200"), "{out}");
    let (code, out) = curl(&["--http1.1", &url]).await;
    assert_eq!(code, 200, "{out}");
    assert!(out.contains("/echo/pets/3"));
}

#[tokio::test]
async fn misses_answer_missing_authentication_token() {
    let e = env().await;
    let gw = &e.gw;
    assert_missing_token(&get(&gw.url("nosuchapi0", "prod", "/pets/1")).await);
    assert_missing_token(&get(&gw.url(&e.pets, "nostage", "/pets/1")).await);
    assert_missing_token(&get(&gw.url(&e.pets, "prod", "/nothing")).await);
    let del = send(
        &client(false),
        Request::delete(gw.url(&e.pets, "prod", "/pets/1"))
            .body(empty())
            .expect("req"),
    )
    .await;
    assert_missing_token(&del);
    // Unknown Host and no path form.
    assert_missing_token(&get(&format!("https://{}/prod/pets/1", gw.public_tls)).await);
    // Reserved health paths.
    let ping = get(&format!("https://{}/ping", gw.public_tls)).await;
    assert_eq!(ping.status, 200);
    assert_eq!(
        get(&format!("http://{}/sping", gw.public_plain)).await.status,
        200
    );
    assert_eq!(e.up.hits(), 0, "no miss reaches the backend");
}

#[tokio::test]
async fn edge_apis_add_edge_headers() {
    let e = env().await;
    let a = get(&e.gw.url(&api_id(NS, "edge"), "prod", "/hello")).await;
    a.assert(200, r#"{"hello":"edge"}"#);
    let via = a.header("via").expect("via");
    assert!(
        via.starts_with("1.1 ") && via.ends_with(".turnpike (Turnpike)"),
        "{via}"
    );
    assert_eq!(a.header("x-cache"), Some("Miss from turnpike"));
    assert!(a.header("x-amz-cf-pop").is_some_and(|p| p.starts_with("TPK-")));
    assert_eq!(a.header("x-amz-cf-id").map(str::len), Some(56));
    // Over HTTP/1.1 an EDGE answer capitalises header names (REGIONAL passes them as they are).
    for (api, capitalised) in [("edge", true), ("regional", false)] {
        let answer = raw(
            e.gw.public_plain,
            format!(
                "GET /restapis/{}/prod/_user_request_/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                api_id(NS, api)
            )
            .as_bytes(),
        )
        .await;
        assert_eq!(raw_status(&answer), 200, "{answer}");
        assert_eq!(
            answer.contains("\r\nX-Custom-Thing: yes\r\n"),
            capitalised,
            "{answer}"
        );
        assert_eq!(
            answer.contains("\r\nx-custom-thing: yes\r\n"),
            !capitalised,
            "{answer}"
        );
        assert!(answer.contains("\r\nx-amzn-RequestId: "), "{answer}");
        if capitalised {
            for name in ["Via", "X-Cache", "X-Amz-Cf-Pop", "X-Amz-Cf-Id", "Content-Type"] {
                assert!(answer.contains(&format!("\r\n{name}: ")), "{name} in {answer}");
            }
        }
    }
}

/// Each of `lines` starts a line of a raw answer's head, spelled exactly so.
fn assert_header_lines(answer: &str, lines: &[&str]) {
    for line in lines {
        assert!(answer.contains(&format!("\r\n{line}")), "{line:?} in {answer}");
    }
}

#[tokio::test]
async fn regional_answers_keep_the_backends_header_spelling() {
    let (backend, _task) = fixed_backend(
        b"HTTP/1.1 200 OK\r\nX-MiXeD-Case: 1\r\ncontent-type: text/plain\r\nETAG: \"v1\"\r\n\
          Set-Cookie: a=1\r\nset-cookie: b=2\r\nx-lower: 3\r\nServer: up\r\nContent-Length: 2\r\n\r\nok",
    )
    .await;
    let api = |name: &str, endpoint: &str| {
        let resources = format!(
            r#"  resources:
    /{{proxy+}}:
      ANY:
        integration: {{type: HTTP_PROXY, uri: "http://{backend}/{{proxy}}"}}"#
        );
        rest_api(name, endpoint, &resources)
    };
    let gw = Gateway::start(table(&(api("as-is", "REGIONAL") + &api("cf", "EDGE")), 1)).await;
    let ask = |name: &str| {
        format!(
            "GET /restapis/{}/prod/_user_request_/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            api_id(NS, name)
        )
    };
    let answer = raw(gw.public_plain, ask("as-is").as_bytes()).await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert_header_lines(
        &answer,
        &[
            "X-MiXeD-Case: 1",
            "content-type: text/plain",
            "ETAG: \"v1\"",
            "Set-Cookie: a=1",
            "set-cookie: b=2",
            "x-lower: 3",
            "Content-Length: 2",
            // Reserved names are renamed in the gateway's own spelling.
            "x-amzn-Remapped-Server: up",
            "x-amzn-RequestId: ",
        ],
    );
    // EDGE capitalises whatever the backend sent.
    let answer = raw(gw.public_plain, ask("cf").as_bytes()).await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert_header_lines(
        &answer,
        &[
            "X-Mixed-Case: 1",
            "Content-Type: text/plain",
            "ETag: \"v1\"",
            "Set-Cookie: b=2",
            "X-Lower: 3",
        ],
    );
    // HTTP/2 names are lowercase by the protocol.
    let a = send(
        &client(true),
        Request::get(gw.url(&api_id(NS, "as-is"), "prod", "/x"))
            .body(empty())
            .expect("req"),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-mixed-case"), Some("1"));
}

#[tokio::test]
async fn private_apis_and_resource_policies() {
    let e = env().await;
    let gw = &e.gw;
    let open = api_id(NS, "priv-open");
    // On the public listener: 403 Forbidden.
    let a = get(&gw.url(&open, "prod", "/hello")).await;
    a.assert(403, r#"{"message":"Forbidden"}"#);
    assert_eq!(a.header("x-amzn-errortype"), Some("ForbiddenException"));
    // On the private listener, TLS and plain: allowed by CIDR.
    let private = |api: &str, tls: bool| {
        if tls {
            format!(
                "https://{}/restapis/{api}/prod/_user_request_/hello",
                gw.private_tls
            )
        } else {
            format!(
                "http://{}/restapis/{api}/prod/_user_request_/hello",
                gw.private_plain
            )
        }
    };
    let a = get(&private(&open, true)).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(get(&private(&open, false)).await.status, 200);
    // Public APIs are not served on the private listener.
    assert_missing_token(
        &get(&format!(
            "http://{}/restapis/{}/prod/_user_request_/pets/1",
            gw.private_plain, e.pets
        ))
        .await,
    );
    // Explicit deny.
    let deny = api_id(NS, "priv-deny");
    let a = get(&private(&deny, false)).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.header("x-amzn-errortype"), Some("AccessDeniedException"));
    assert_eq!(
        a.json()["Message"],
        format!(
            "User: anonymous is not authorized to perform: execute-api:Invoke on resource: \
             arn:aws:execute-api:local:********0000:{deny}/prod/GET/hello with an explicit deny"
        )
    );
    // No allow rule matches.
    let none = api_id(NS, "priv-none");
    let a = get(&private(&none, false)).await;
    assert_eq!(a.status, 403);
    assert!(
        a.json()["Message"].as_str().is_some_and(
            |m| m.ends_with("because no resource-based policy allows the execute-api:Invoke action")
        ),
        "{a:?}"
    );
    // Namespaces: denied without a lookup...
    let ns = api_id(NS, "priv-ns");
    assert_eq!(get(&private(&ns, false)).await.status, 403);
}

#[tokio::test]
async fn resource_policy_namespaces_use_the_lookup() {
    let up = Upstream::start().await;
    let closed = closed_port().await;
    let yaml = world(up.addr, closed, closed, &[]);
    let gw = Gateway::start_with(table(&yaml, 1), |c| {
        c.namespace_lookup = Some(namespace_is("team-a"))
    })
    .await;
    let url = format!(
        "http://{}/restapis/{}/prod/_user_request_/hello",
        gw.private_plain,
        api_id(NS, "priv-ns")
    );
    let a = get(&url).await;
    assert_eq!(a.status, 200, "{a:?}");
}

#[tokio::test]
async fn mock_integrations() {
    let e = env().await;
    let req = Request::get(e.gw.url(&e.pets, "prod", "/mock"))
        .header("x-turnpike-canary", "never")
        .body(empty())
        .expect("req");
    let a = send(&client(false), req).await;
    assert_eq!(a.status, 200);
    let id = a.header("x-amzn-requestid").expect("id");
    assert_eq!(
        a.body,
        format!(r#"{{"mocked":true,"id":"{id}","at":"prod/mock","label":"primary","raw":"$input.body"}}"#)
    );
    assert_eq!(a.header("x-mock"), Some("yes"));
    assert_eq!(a.header("content-type"), Some("application/json"));
    let a = get(&e.gw.url(&e.pets, "prod", "/teapot")).await;
    a.assert(418, "short and stout");
}

#[tokio::test]
async fn http_integrations_map_parameters_and_responses() {
    let e = env().await;
    let a = get(&e.gw.url(&e.pets, "prod", "/http/42?search=blue%20cat&other=1")).await;
    assert_eq!(a.status, 200, "{a:?}");
    let echo = a.json();
    assert_eq!(echo["path"], "/echo/items/42");
    assert_eq!(
        echo["query"], "q=blue%20cat",
        "only mapped query parameters go through"
    );
    assert!(echo["headers"]["x-stage"] == "primary" || echo["headers"]["x-stage"] == "canary");
    assert_eq!(echo["headers"]["x-static"], "fixed");
    assert_eq!(a.header("x-backend-server"), Some("upstream/1.0"));

    let a = get(&e.gw.url(&e.pets, "prod", "/http-status/404")).await;
    a.assert(404, r#"{"error":"not found"}"#);
    assert_eq!(a.header("x-mapped"), Some("404"));
    let a = get(&e.gw.url(&e.pets, "prod", "/http-status/201")).await;
    assert_eq!(a.status, 200, "the default response");
    assert_eq!(a.body, "status 201", "no template: the body passes through");
}

#[tokio::test]
async fn canary_split_and_override_header() {
    let e = env().await;
    let c = client(false);
    let url = e.gw.url(&e.pets, "prod", "/http/1");
    let label = |force: &'static str| {
        let c = &c;
        let url = url.clone();
        async move {
            let mut req = Request::get(&url);
            if !force.is_empty() {
                req = req.header("x-turnpike-canary", force);
            }
            let a = send(c, req.body(empty()).expect("req")).await;
            assert_eq!(a.status, 200);
            a.json()["headers"]["x-stage"]
                .as_str()
                .expect("label")
                .to_string()
        }
    };
    for _ in 0..20 {
        assert_eq!(label("always").await, "canary");
        assert_eq!(label("never").await, "primary");
    }
    let mut canary = 0;
    let n = 400;
    for _ in 0..n {
        if label("").await == "canary" {
            canary += 1;
        }
    }
    // 30% ± a generous tolerance (p of failing ≈ 1e-9).
    assert!((60..=180).contains(&canary), "{canary} of {n} went to the canary");
}

#[tokio::test]
async fn private_integration_balances_and_ejects() {
    let e = env().await;
    let c = client(false);
    for i in 0..60 {
        let a = send(
            &c,
            Request::get(e.gw.url(&e.pets, "prod", &format!("/svc/item/{i}")))
                .body(empty())
                .expect("req"),
        )
        .await;
        assert_eq!(a.status, 200, "request {i}: {a:?}");
        assert_eq!(a.json()["path"], format!("/echo/svc/item/{i}"));
    }
    assert!(
        e.up.hits() > 0 && e.up2.hits() > 0,
        "{} / {}",
        e.up.hits(),
        e.up2.hits()
    );
    assert_eq!(e.up.hits() + e.up2.hits(), 60);
    // The dead endpoint was tried (a GET retries once elsewhere) and is now ejected.
    let balancer = e.gw.shared.upstreams.balancer();
    assert!(balancer.is_ejected(e.dead), "the refusing endpoint is ejected");
    assert!(!balancer.is_ejected(e.up.addr));
    let a = get(&e.gw.url(&e.pets, "prod", "/nosvc")).await;
    a.assert(503, r#"{"message": "Service Unavailable"}"#);
}

#[tokio::test]
async fn upstream_failures_map_to_aws_errors() {
    let e = env().await;
    let a = get(&e.gw.url(&e.pets, "prod", "/slow")).await;
    a.assert(504, r#"{"message": "Endpoint request timed out"}"#);
    // On a pooled connection whose timer was last armed for a 29 s integration, the short
    // timeout still holds (the backend would answer 200 after 3 s).
    for _ in 0..3 {
        assert_eq!(get(&e.gw.url(&e.pets, "prod", "/status/200")).await.status, 200);
        let a = get(&e.gw.url(&e.pets, "prod", "/slow")).await;
        assert_eq!(a.status, 504, "{a:?}");
    }
    let a = get(&e.gw.url(&e.pets, "prod", "/refused")).await;
    a.assert(502, r#"{"message": "Internal server error"}"#);
    let a = get(&e.gw.url(&e.pets, "prod", "/reset")).await;
    a.assert(502, r#"{"message": "Internal server error"}"#);
    // Backend statuses pass through an HTTP_PROXY untouched.
    let a = get(&e.gw.url(&e.pets, "prod", "/status/503")).await;
    a.assert(503, "status 503");
}

#[tokio::test]
async fn missing_required_parameters() {
    let e = env().await;
    let a = get(&e.gw.url(&e.pets, "prod", "/needs")).await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.body,
        r#"{"message": "Missing required request parameters: [x-token, name]"}"#
    );
    let req = Request::get(e.gw.url(&e.pets, "prod", "/needs?name=x"))
        .header("x-token", "t")
        .body(empty())
        .expect("req");
    assert_eq!(send(&client(false), req).await.status, 200);
}

#[tokio::test]
async fn tls_upstreams_verify_unless_told_not_to() {
    let up = Upstream::start_tls().await;
    let resources = format!(
        r#"  resources:
    /insecure:
      GET:
        integration:
          type: HTTP_PROXY
          uri: "https://localhost:{port}/echo/insecure"
          tlsConfig: {{insecureSkipVerification: true}}
    /verified:
      GET:
        integration: {{type: HTTP_PROXY, uri: "https://localhost:{port}/echo/verified"}}
"#,
        port = up.addr.port()
    );
    let yaml = rest_api("tls", "REGIONAL", &resources);
    let gw = Gateway::start(table(&yaml, 1)).await;
    let api = api_id(NS, "tls");
    let a = get(&gw.url(&api, "prod", "/insecure")).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        a.json()["version"],
        "HTTP/2.0",
        "h2 negotiated with the backend by ALPN"
    );
    // The self-signed backend certificate is not in the system roots.
    let a = get(&gw.url(&api, "prod", "/verified")).await;
    assert_eq!(a.status, 502);
    assert_eq!(up.hits(), 1);
}
