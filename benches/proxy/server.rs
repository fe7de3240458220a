//! The processes of the proxy benchmark (`benches/proxy/run.sh`), as one binary:
//!
//! - `upstream ADDR`: a minimal HTTP/1.1 server answering every request with a fixed body.
//! - `turnpike PLAIN_ADDR TLS_ADDR UPSTREAM_ADDR CERT KEY`: the Turnpike proxy with one
//!   REGIONAL API whose `/{proxy+}` resource is an HTTP_PROXY to the upstream, served on a
//!   current-thread runtime (the script pins it to one core), access log off, metrics on.
//!   `BENCH_METERED=1` adds a metered route (`benches/proxy/usage.sh`), `BENCH_VALIDATED=1` a
//!   validated one (`benches/proxy/validation.sh`), `BENCH_CACHED=1` a stage cache with a
//!   cached route and one that caching is off for (`benches/proxy/cache.sh`),
//!   `BENCH_TEMPLATED=1` two HTTP routes, one with a request and a response mapping template
//!   and one without (`benches/proxy/templates.sh`), `BENCH_WEBSOCKET=1` a WebSocket API
//!   whose `echo` route is two-way through an HTTP integration to the upstream
//!   (`benches/proxy/websocket.sh`).
//!   `BENCH_AUTHORIZED=1` two routes behind authorizers (`benches/proxy/authorizers.sh`):
//!   `/jwt/…` a JWT authorizer of issuer `BENCH_ISSUER` with keys from `BENCH_JWKS_URI`, and
//!   `/fn/…` a TOKEN authorizer (answer cached 300 s) of the function host `BENCH_FUNCTIONS`.
//! - `functions ADDR`: a function host speaking the Lambda Invoke API whose authorizer allows
//!   every method of every API.
//! - `body`: the 1 KiB JSON body the validated route is sent.
//!
//! Build: `cargo build --profile bench --bench proxy_server`.

#[path = "../support/order.rs"]
mod order;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use tokio::net::TcpListener;
use turnpike_controller::ingest::world_from_yaml;
use turnpike_core::compile::{CompileConfig, compile};
use turnpike_core::routing::Listener;
use turnpike_proxy::store::TableStore;
use turnpike_proxy::{ListenerConfig, Proxy, ProxyConfig};
use turnpike_telemetry::metrics::Metrics;

/// mimalloc, as the product binary uses: per-request buffers and maps are freed on the thread
/// that allocated them, which is its fast path.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The API the benchmark calls: `/{stage}/anything` → `http://{upstream}/anything`.
fn api_yaml(upstream: SocketAddr) -> String {
    format!(
        r#"
apiVersion: turnpike.dev/v1alpha1
kind: RestApi
metadata: {{name: bench, namespace: bench}}
spec:
  endpointConfiguration: {{types: [REGIONAL]}}
  resources:
    /{{proxy+}}:
      ANY:
        integration: {{type: HTTP_PROXY, uri: "http://{upstream}/{{proxy}}"}}
---
apiVersion: turnpike.dev/v1alpha1
kind: Deployment
metadata: {{name: v1, namespace: bench}}
spec:
  restApiRef: {{name: bench}}
---
apiVersion: turnpike.dev/v1alpha1
kind: Stage
metadata: {{name: prod, namespace: bench}}
spec:
  restApiRef: {{name: bench}}
  stageName: prod
  deploymentRef: {{name: v1}}
"#
    )
}

/// The API key of the metered route (`x-api-key`).
const BENCH_KEY: &str = "BenchKey0123456789abcdefXYZ";

/// The API with a metered route beside the plain one: `/{stage}/k/anything` requires the API
/// key, whose usage plan has a throttle and a quota far above what the run reaches, so every
/// request pays for the key, the bucket and the quota and none is refused.
fn metered_api_yaml(upstream: SocketAddr) -> String {
    let api = api_yaml(upstream).replace(
        "  resources:\n",
        &format!(
            "  resources:\n    /k/{{proxy+}}:\n      ANY:\n        apiKeyRequired: true\n        integration: {{type: HTTP_PROXY, uri: \"http://{upstream}/{{proxy}}\"}}\n"
        ),
    );
    format!(
        r#"{api}
---
apiVersion: turnpike.dev/v1alpha1
kind: UsagePlan
metadata: {{name: metered, namespace: bench}}
spec:
  apiStages: [{{restApiRef: {{name: bench}}, stage: prod}}]
  throttle: {{rateLimit: 100000000, burstLimit: 100000000}}
  quota: {{limit: 1000000000000, period: MONTH}}
---
apiVersion: turnpike.dev/v1alpha1
kind: ApiKey
metadata: {{name: bench, namespace: bench}}
spec:
  valueFrom: {{secretKeyRef: {{name: bench-key, key: value}}}}
  usagePlanRefs: [{{name: metered}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: bench-key, namespace: bench, labels: {{turnpike.dev/api-key: "true"}}}}
stringData: {{value: {BENCH_KEY}}}
"#
    )
}

/// The API with a validated route beside the plain one: `POST /{stage}/v/anything` checks its
/// JSON body against the `Order` model (nested objects, an array of `$ref`'d items, patterns
/// and bounds) before the same HTTP_PROXY integration.
fn validated_api_yaml(upstream: SocketAddr) -> String {
    api_yaml(upstream).replace(
        "  resources:\n",
        &format!(
            r##"  models:
    Order:
      contentType: application/json
      schema:
        type: object
        required: [id, customer, items, total]
        properties:
          id: {{type: string, pattern: "^[a-z0-9-]+$"}}
          customer:
            type: object
            required: [name, email]
            properties:
              name: {{type: string, maxLength: 100}}
              email: {{type: string, pattern: "^[^@]+@[^@]+$"}}
          items: {{type: array, minItems: 1, maxItems: 50, items: {{$ref: "#/models/Item"}}}}
          total: {{type: number, minimum: 0}}
          note: {{type: string}}
    Item:
      schema:
        type: object
        required: [sku, qty, price]
        properties:
          sku: {{type: string}}
          qty: {{type: integer, minimum: 1}}
          price: {{type: number, minimum: 0}}
  requestValidators:
    body: {{validateRequestBody: true}}
  resources:
    /v/{{proxy+}}:
      POST:
        requestValidatorId: body
        requestModels: {{application/json: Order}}
        integration: {{type: HTTP_PROXY, uri: "http://{upstream}/{{proxy}}"}}
"##
        ),
    )
}

/// The benchmark API as a WebSocket API: `$connect` a MOCK, `echo` (`{"action":"echo"}`) a
/// two-way route whose HTTP integration's answer (the upstream's fixed body) goes back to the
/// client.
fn websocket_api_yaml(upstream: SocketAddr) -> String {
    api_yaml(upstream).replace(
        &format!(
            "  resources:\n    /{{proxy+}}:\n      ANY:\n        integration: {{type: HTTP_PROXY, uri: \"http://{upstream}/{{proxy}}\"}}\n"
        ),
        &format!(
            r#"  protocolType: WEBSOCKET
  routeSelectionExpression: $request.body.action
  routes:
    $connect:
      integration: {{type: MOCK, integrationResponses: [{{statusCode: "200"}}]}}
    echo:
      routeResponseSelectionExpression: $default
      integration: {{type: HTTP_PROXY, uri: "http://{upstream}/echo"}}
"#
        ),
    )
}

/// Three HTTP (non-proxy) routes to the upstream's JSON answer: `/plain/…` without templates,
/// `/t/…` with a request template reshaping the posted order and a response template
/// reshaping the answer, about twenty lines in all (a typical JSON-to-JSON mapping), and
/// `/id/…` with templates that copy the payload (`$input.body`): what running any template
/// costs beyond the engine (the payloads read whole, the template's scope, the answer rebuilt).
fn templated_api_yaml(upstream: SocketAddr) -> String {
    let routes = [
        json_route(
            upstream,
            "plain",
            "          integrationResponses: [{statusCode: \"200\"}]\n",
        ),
        json_route(
            upstream,
            "id",
            r#"          requestTemplates: {application/json: "$input.body"}
          integrationResponses:
            - statusCode: "200"
              responseTemplates: {application/json: "$input.body"}
"#,
        ),
        json_route(
            upstream,
            "t",
            r##"          requestTemplates:
            application/json: |
              #set($o = $input.path('$'))
              {
                "orderId": "$o.id",
                "customer": {"name": "$util.escapeJavaScript($o.customer.name)", "email": "$o.customer.email"},
                "lines": [
              #foreach($i in $o.items)
                  {"sku": "$i.sku", "quantity": $i.qty, "unitPrice": $i.price}#if($foreach.hasNext),#end
              #end
                ],
                "total": $o.total,
                "requestId": "$context.requestId",
                "source": "$input.params('source')"
              }
          integrationResponses:
            - statusCode: "200"
              responseTemplates:
                application/json: |
                  #set($r = $input.path('$'))
                  {
                    "order": "$r.id",
                    "state": "$r.status.toUpperCase()",
                    "etaDays": $r.eta.days,
                    "lines": [#foreach($l in $r.items)"$l.sku:$l.state"#if($foreach.hasNext),#end#end],
                    "stage": "$context.stage"
                  }
"##,
        ),
    ];
    api_yaml(upstream).replace("  resources:\n", &format!("  resources:\n{}", routes.concat()))
}

/// `POST /PREFIX/{proxy+}`: an HTTP integration to the upstream's JSON answer, `rest` its
/// further lines (templates, integration responses).
fn json_route(upstream: SocketAddr, prefix: &str, rest: &str) -> String {
    format!(
        r#"    /{prefix}/{{proxy+}}:
      POST:
        integration:
          type: HTTP
          uri: "http://{upstream}/json/{{proxy}}"
          requestParameters: {{integration.request.path.proxy: method.request.path.proxy}}
{rest}"#
    )
}

/// The API with the stage cache on (0.5 GB budget) in stage `prod`: `GET /prod/c/anything` is
/// cached for an hour (its path is the key); `/prod/nc/anything` has caching off (TTL 0).
/// Stage `direct` (same deployment, no cache) is the plain proxy.
fn cached_api_yaml(upstream: SocketAddr) -> String {
    let api = api_yaml(upstream).replace(
        "  resources:\n",
        &format!(
            "  resources:\n    /c/{{proxy+}}:\n      GET:\n        integration: {{type: HTTP_PROXY, uri: \"http://{upstream}/{{proxy}}\"}}\n    /nc/{{proxy+}}:\n      GET:\n        integration: {{type: HTTP_PROXY, uri: \"http://{upstream}/{{proxy}}\"}}\n"
        ),
    );
    format!(
        r#"{api}
  cacheClusterEnabled: true
  cacheClusterSize: "0.5"
  methodSettings:
    "*/*": {{cacheTtlInSeconds: 3600}}
    "/nc/{{proxy+}}/GET": {{cacheTtlInSeconds: 0}}
---
apiVersion: turnpike.dev/v1alpha1
kind: Stage
metadata: {{name: direct, namespace: bench}}
spec:
  restApiRef: {{name: bench}}
  stageName: direct
  deploymentRef: {{name: v1}}
"#
    )
}

/// The audience and scope of the benchmark's JWT.
const BENCH_AUDIENCE: &str = "bench";

/// Two routes behind authorizers beside the plain one, all to the same HTTP_PROXY upstream:
/// `/{stage}/jwt/anything` (a JWT of `issuer`, keys from `jwks_uri`, scope `bench/read`) and
/// `/{stage}/fn/anything` (a TOKEN authorizer on `Authorization`, answers cached 300 s).
fn authorized_api_yaml(upstream: SocketAddr, issuer: &str, jwks_uri: &str, functions: &str) -> String {
    api_yaml(upstream).replace(
        "  resources:\n",
        &format!(
            r#"  authorizers:
    oidc:
      type: JWT
      jwtConfiguration: {{issuer: "{issuer}", jwksUri: "{jwks_uri}", audience: [{BENCH_AUDIENCE}]}}
    token:
      type: TOKEN
      identitySource: method.request.header.Authorization
      authorizerResultTtlInSeconds: 300
      authorizerUri: allow
      functionHost: {{url: "http://{functions}"}}
  resources:
    /jwt/{{proxy+}}:
      ANY:
        authorizationType: JWT
        authorizerId: oidc
        authorizationScopes: [bench/read]
        integration: {{type: HTTP_PROXY, uri: "http://{upstream}/{{proxy}}"}}
    /fn/{{proxy+}}:
      ANY:
        authorizationType: CUSTOM
        authorizerId: token
        integration: {{type: HTTP_PROXY, uri: "http://{upstream}/{{proxy}}"}}
"#
        ),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.first().map(String::as_str) {
        Some("upstream") => rt.block_on(upstream(args[1].parse()?)),
        Some("turnpike") => rt.block_on(turnpike(
            args[1].parse()?,
            args[2].parse()?,
            args[3].parse()?,
            PathBuf::from(&args[4]),
            PathBuf::from(&args[5]),
        )),
        Some("functions") => rt.block_on(functions(args[1].parse()?)),
        Some("body") => {
            #[allow(clippy::print_stdout)]
            {
                print!("{}", order::validated_body());
            }
            Ok(())
        }
        Some("host") => {
            // The Host of the benchmark API: `{apiId}.execute-api.local.turnpike.dev`.
            let id = turnpike_core::model::ApiId::from_uid("uid-RestApi-bench-bench");
            #[allow(clippy::print_stdout)]
            {
                println!("{id}.execute-api.local.turnpike.dev");
            }
            Ok(())
        }
        _ => {
            eprintln!(
                "usage: proxy_server upstream ADDR | functions ADDR | turnpike PLAIN TLS UPSTREAM CERT KEY | host | body"
            );
            Ok(())
        }
    }
}

/// The upstream: a minimal HTTP/1.1 responder answering every request with a fixed body.
///
/// It shares the load core with wrk, so what it costs caps every target's requests/s; it is
/// kept to a read, a parse and one write per batch of requests (hyper here cost about 1 µs of
/// user time per request more). Requests may carry a Content-Length body (skipped); a chunked
/// body is answered 501 and the connection closed.
async fn upstream(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(respond_forever(stream));
    }
}

const BODY: &[u8] = b"hello from the upstream\n";

/// The answer to paths under `/json/`: an order's status, for the templated routes.
const JSON_BODY: &[u8] = br#"{"id":"order-20261202-0001","status":"accepted","eta":{"days":3},"items":[{"sku":"sku-0000","state":"reserved"},{"sku":"sku-0001","state":"reserved"},{"sku":"sku-0002","state":"backordered"}]}"#;

async fn respond_forever(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = bytes::BytesMut::with_capacity(16 * 1024);
    let mut out = Vec::with_capacity(4 * 1024);
    let mut skip = 0usize; // body bytes of the last request still to come
    let mut date = (0u64, String::new());
    loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        loop {
            let n = skip.min(buf.len());
            bytes::Buf::advance(&mut buf, n);
            skip -= n;
            if skip > 0 || buf.is_empty() {
                break;
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let len = match req.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => break,
                Err(_) => return,
            };
            for h in req.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    skip = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            }
            let json = req.path.is_some_and(|p| p.starts_with("/json/"));
            bytes::Buf::advance(&mut buf, len);
            let now = std::time::SystemTime::now();
            let secs = now
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if secs != date.0 {
                date = (secs, httpdate::fmt_http_date(now));
            }
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\ndate: ");
            out.extend_from_slice(date.1.as_bytes());
            if json {
                out.extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: ");
                out.extend_from_slice(JSON_BODY.len().to_string().as_bytes());
                out.extend_from_slice(b"\r\n\r\n");
                out.extend_from_slice(JSON_BODY);
            } else {
                out.extend_from_slice(b"\r\ncontent-length: 24\r\n\r\n");
                out.extend_from_slice(BODY);
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

/// The function host: the Lambda Invoke API (`POST /2015-03-31/functions/NAME/invocations`),
/// answering every authorizer event with an Allow of every method. Called once per token
/// within the TTL, so hyper's cost does not matter here.
async fn functions(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    use http_body_util::{BodyExt as _, Full};
    const ALLOW: &str = r#"{"principalId":"bench-user","policyDocument":{"Version":"2012-10-17","Statement":[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"arn:aws:execute-api:*"}]},"context":{"tier":"gold"}}"#;
    let listener = TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                let invoke = req.method() == hyper::Method::POST
                    && req.uri().path().starts_with("/2015-03-31/functions/")
                    && req.uri().path().ends_with("/invocations");
                let _ = req.into_body().collect().await;
                let mut resp = hyper::Response::new(Full::new(bytes::Bytes::from_static(if invoke {
                    ALLOW.as_bytes()
                } else {
                    b""
                })));
                if !invoke {
                    *resp.status_mut() = hyper::StatusCode::NOT_FOUND;
                }
                Ok::<_, std::convert::Infallible>(resp)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn turnpike(
    plain: SocketAddr,
    tls: SocketAddr,
    upstream: SocketAddr,
    cert: PathBuf,
    key: PathBuf,
) -> Result<(), Box<dyn std::error::Error>> {
    // BENCH_METERED=1 adds the metered route; BENCH_REDIS_URL shares the limits through
    // Redis (benches/proxy/usage.sh).
    let redis = std::env::var("BENCH_REDIS_URL").ok();
    let yaml = if std::env::var_os("BENCH_METERED").is_some() {
        metered_api_yaml(upstream)
    } else if std::env::var_os("BENCH_VALIDATED").is_some() {
        validated_api_yaml(upstream)
    } else if std::env::var_os("BENCH_CACHED").is_some() {
        cached_api_yaml(upstream)
    } else if std::env::var_os("BENCH_TEMPLATED").is_some() {
        templated_api_yaml(upstream)
    } else if std::env::var_os("BENCH_AUTHORIZED").is_some() {
        let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
        authorized_api_yaml(
            upstream,
            &var("BENCH_ISSUER")?,
            &var("BENCH_JWKS_URI")?,
            &var("BENCH_FUNCTIONS")?,
        )
    } else if std::env::var_os("BENCH_WEBSOCKET").is_some() {
        websocket_api_yaml(upstream)
    } else {
        api_yaml(upstream)
    };
    let world = world_from_yaml(&yaml)?;
    let store = TableStore::new();
    store.publish(compile(&world, &CompileConfig::default(), 1).table);
    let config = ProxyConfig {
        listeners: vec![
            ListenerConfig {
                addr: plain,
                listener: Listener::Public,
                tls: false,
            },
            ListenerConfig {
                addr: tls,
                listener: Listener::Public,
                tls: true,
            },
        ],
        cert_files: Some((cert, key)),
        default_access_log: None,
        usage: turnpike_proxy::usage::UsageConfig {
            // Far above what the run reaches, as the plan's limits: every request is admitted
            // (the plain route still takes its token from the gateway default bucket).
            default_throttle: turnpike_core::model::Throttle {
                rate: 1e9,
                burst: 1_000_000_000,
            },
            redis: redis.map(|url| turnpike_proxy::usage::redis::RedisConfig {
                urls: vec![url],
                cluster: false,
                failure_mode: turnpike_proxy::usage::redis::FailureMode::Closed,
            }),
            ..Default::default()
        },
        ..ProxyConfig::default()
    };
    let (_registry, metrics) = Metrics::registry();
    let proxy = Proxy::bind(config, store, Arc::new(metrics)).await?;
    proxy
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
