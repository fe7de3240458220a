//! CORS: the REST API way (an OPTIONS method with a MOCK integration) and the declarative
//! `spec.cors` (preflights answered by the gateway, headers on every answer, its own errors
//! included), checked header by header with curl; then a real browser (headless Chromium)
//! calling the API from another origin with fetch().

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::support::*;

/// The REST API way: OPTIONS answered by a MOCK integration whose integration response maps
/// static `Access-Control-Allow-*` values; GET adds the allowed origin the same way.
fn rest_way(up: SocketAddr) -> String {
    let spec = format!(
        r#"  resources:
    /items:
      OPTIONS:
        integration:
          type: MOCK
          requestTemplates: {{application/json: '{{"statusCode": 200}}'}}
          integrationResponses:
            - statusCode: "200"
              responseParameters:
                method.response.header.Access-Control-Allow-Origin: "'https://app.example.com'"
                method.response.header.Access-Control-Allow-Methods: "'GET,PUT,OPTIONS'"
                method.response.header.Access-Control-Allow-Headers: "'Content-Type,X-Custom'"
                method.response.header.Access-Control-Max-Age: "'600'"
      GET:
        integration:
          type: HTTP
          uri: "http://{up}/echo/items"
          integrationResponses:
            - statusCode: "200"
              responseParameters:
                method.response.header.Access-Control-Allow-Origin: "'https://app.example.com'"
"#
    );
    ApiSet::new(NS, "restcors").spec(&spec).stage("prod").yaml()
}

/// Declarative CORS; `page` is the origin of the browser test's page.
fn declarative(up: SocketAddr, closed: SocketAddr, page: &str) -> String {
    let spec = format!(
        r#"  cors:
    allowOrigins: ["https://app.example.com", "https://*.example.org", "{page}"]
    allowMethods: [GET, PUT]
    allowHeaders: [content-type, x-custom]
    exposeHeaders: [x-amzn-requestid, x-backend]
    maxAge: 600
    allowCredentials: true
  resources:
    /items:
      ANY:
        integration: {{type: HTTP_PROXY, uri: "http://{up}/echo/items"}}
    /keyed:
      GET:
        apiKeyRequired: true
        integration: {{type: HTTP_PROXY, uri: "http://{up}/echo/keyed"}}
    /refused:
      GET:
        integration: {{type: HTTP_PROXY, uri: "http://{closed}/x"}}
"#
    );
    ApiSet::new(NS, "cors").spec(&spec).stage("prod").yaml()
}

/// The value of a header in curl's `-i` output (the last answer's), lowercase name.
fn header<'a>(out: &'a str, name: &str) -> Option<&'a str> {
    out.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn cors_headers(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("access-control-"))
        .collect()
}

async fn preflight(url: &str, origin: &str, method: &str, headers: &str) -> (u16, String) {
    let origin = format!("Origin: {origin}");
    let method = format!("Access-Control-Request-Method: {method}");
    let headers = format!("Access-Control-Request-Headers: {headers}");
    curl(&["-X", "OPTIONS", "-H", &origin, "-H", &method, "-H", &headers, url]).await
}

#[tokio::test]
async fn cors_the_rest_api_way_with_a_mock_options_method() {
    let up = Upstream::start().await;
    let gw = Gateway::start(table(&rest_way(up.addr), 1)).await;
    let url = gw.plain_url(&api_id(NS, "restcors"), "prod", "/items");
    let (status, out) = preflight(&url, "https://app.example.com", "PUT", "x-custom").await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        cors_headers(&out),
        [
            "access-control-allow-headers: Content-Type,X-Custom",
            "access-control-allow-methods: GET,PUT,OPTIONS",
            "access-control-allow-origin: https://app.example.com",
            "access-control-max-age: 600",
        ],
        "{out}"
    );
    let (status, out) = curl(&["-H", "Origin: https://app.example.com", &url]).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        header(&out, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(up.hits(), 1, "only the GET reaches the backend");
}

#[tokio::test]
async fn declarative_cors_preflights_actual_requests_and_gateway_errors() {
    let up = Upstream::start().await;
    let closed = closed_port().await;
    let gw = Gateway::start(table(&declarative(up.addr, closed, "http://127.0.0.1:1"), 1)).await;
    let id = api_id(NS, "cors");
    let url = |path: &str| gw.plain_url(&id, "prod", path);

    // An allowed preflight: 204 from the gateway, every header, the backend never called.
    for origin in ["https://app.example.com", "https://a.b.example.org"] {
        let (status, out) = preflight(&url("/items"), origin, "PUT", "x-custom,content-type").await;
        assert_eq!(status, 204, "{out}");
        assert_eq!(
            cors_headers(&out),
            [
                format!("access-control-allow-origin: {origin}").as_str(),
                "access-control-allow-credentials: true",
                "access-control-allow-methods: GET,PUT",
                "access-control-allow-headers: content-type,x-custom",
                "access-control-max-age: 600",
            ],
            "{out}"
        );
        assert_eq!(header(&out, "vary"), Some("Origin"));
        assert!(header(&out, "x-amzn-requestid").is_some());
    }
    // Preflights are answered for any path of the API, as AWS HTTP APIs do.
    let (status, _) = preflight(
        &url("/no/such/path"),
        "https://app.example.com",
        "GET",
        "x-custom",
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(up.hits(), 0, "no preflight reached the backend");

    // A refused origin or method: the 204 without CORS headers.
    for (origin, method) in [
        ("https://evil.example.com", "PUT"),
        ("https://example.org", "GET"),
        ("http://app.example.com", "GET"),
        ("https://app.example.com", "DELETE"),
    ] {
        let (status, out) = preflight(&url("/items"), origin, method, "x-custom").await;
        assert_eq!(status, 204, "{out}");
        assert!(cors_headers(&out).is_empty(), "{origin} {method}: {out}");
        assert_eq!(header(&out, "vary"), Some("Origin"));
    }

    // An actual request from an allowed origin: the origin echoed (credentials), exposed
    // headers, Vary; from a refused origin, only Vary.
    let (status, out) = curl(&["-H", "Origin: https://app.example.com", &url("/items")]).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        cors_headers(&out),
        [
            "access-control-allow-origin: https://app.example.com",
            "access-control-allow-credentials: true",
            "access-control-expose-headers: x-amzn-requestid,x-backend",
        ],
        "{out}"
    );
    assert_eq!(header(&out, "vary"), Some("Origin"));
    let (status, out) = curl(&["-H", "Origin: https://evil.example.com", &url("/items")]).await;
    assert_eq!(status, 200, "{out}");
    assert!(cors_headers(&out).is_empty(), "{out}");
    assert_eq!(header(&out, "vary"), Some("Origin"));
    // A plain OPTIONS that is not a preflight goes to the method (ANY here).
    let (status, out) = curl(&[
        "-X",
        "OPTIONS",
        "-H",
        "Origin: https://app.example.com",
        &url("/items"),
    ])
    .await;
    assert_eq!(status, 200, "{out}");
    assert!(out.contains(r#""method":"OPTIONS""#), "{out}");

    // The gateway's own 4XX and 5XX carry the CORS headers too.
    for (path, status) in [("/keyed", 403), ("/nothing", 403), ("/refused", 502)] {
        let (got, out) = curl(&["-H", "Origin: https://x.example.org", &url(path)]).await;
        assert_eq!(got, status, "{out}");
        assert_eq!(
            header(&out, "access-control-allow-origin"),
            Some("https://x.example.org"),
            "{path}: {out}"
        );
        assert_eq!(header(&out, "access-control-allow-credentials"), Some("true"));
        assert_eq!(header(&out, "vary"), Some("Origin"));
    }
}

// === a real browser ===

/// The page the browser loads: it calls the API on `api` (another origin) with fetch(), a
/// simple GET with credentials, a PUT with a custom header (which needs a preflight), and a
/// GET the gateway refuses (403), then writes what it saw into `#result`.
const PAGE: &str = r#"<!doctype html>
<html><body><pre id="result">pending</pre><script>
const api = "API";
async function call(name, path, init) {
  try {
    const r = await fetch(api + path, init);
    const text = await r.text();
    let method = null;
    try { method = JSON.parse(text).method; } catch (e) {}
    return {status: r.status, method, body: method ? null : text,
            requestId: r.headers.get("x-amzn-requestid")};
  } catch (e) {
    return "refused: " + e.name;
  }
}
(async () => {
  const out = {};
  out.get = await call("get", "/items", {credentials: "include"});
  out.put = await call("put", "/items", {method: "PUT", headers: {"x-custom": "1", "content-type": "application/json"}, body: "{}"});
  out.denied = await call("denied", "/keyed", {});
  document.getElementById("result").textContent = JSON.stringify(out);
})();
</script></body></html>"#;

/// Serves `page` for every request on `l` (a second loopback origin).
fn page_server(l: TcpListener, page: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let page = page.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    })
}

/// Loads `url` in headless Chromium and returns the `#result` text once the page's fetches
/// are done (virtual time does not advance while fetches are pending), at most 60 s.
async fn browse(url: &str) -> serde_json::Value {
    let profile = tempfile::tempdir().expect("profile dir");
    let run = tokio::process::Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=20000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("chromium finishes within 60 s")
        .expect("chromium runs (tests/setup.sh installs Debian's chromium)");
    let dom = String::from_utf8_lossy(&out.stdout);
    let result = dom
        .split_once(r#"<pre id="result">"#)
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(r, _)| r.replace("&quot;", "\"").replace("&amp;", "&"))
        .unwrap_or_else(|| {
            panic!(
                "no result in the DOM: {dom}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(&result).unwrap_or_else(|e| panic!("{e}: {result}"))
}

#[tokio::test]
async fn a_browser_calls_the_api_from_an_allowed_origin_and_is_refused_from_another() {
    let up = Upstream::start().await;
    let closed = closed_port().await;
    // The page's origin is allowed; the page names the gateway's address.
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let page = l.local_addr().expect("addr");
    let allowed = format!("http://127.0.0.1:{}", page.port());
    let gw = Gateway::start(table(&declarative(up.addr, closed, &allowed), 1)).await;
    let api = format!(
        "http://{}/restapis/{}/prod/_user_request_",
        gw.public_plain,
        api_id(NS, "cors")
    );
    let _server = page_server(l, PAGE.replace("API", &api));

    // From the allowed origin: the GET's JSON and an exposed header are readable, the PUT
    // passes its preflight (answered by the gateway: the backend sees GET and PUT only), and
    // the gateway's own 403 is readable too.
    let seen = browse(&format!("{allowed}/page.html")).await;
    assert_eq!(seen["get"]["status"], 200, "{seen}");
    assert_eq!(seen["get"]["method"], "GET", "{seen}");
    assert!(
        seen["get"]["requestId"].as_str().is_some_and(|id| id.len() == 36),
        "the exposed header is readable: {seen}"
    );
    assert_eq!(seen["put"]["status"], 200, "{seen}");
    assert_eq!(seen["put"]["method"], "PUT", "{seen}");
    assert_eq!(seen["denied"]["status"], 403, "{seen}");
    assert_eq!(seen["denied"]["body"], r#"{"message":"Forbidden"}"#, "{seen}");
    assert_eq!(
        up.hits(),
        2,
        "GET and PUT; the preflight never reached the backend"
    );

    // From another origin (the same page under `localhost`): every fetch rejects; the PUT
    // stops at its preflight.
    let seen = browse(&format!("http://localhost:{}/page.html", page.port())).await;
    for call in ["get", "put", "denied"] {
        assert_eq!(seen[call], "refused: TypeError", "{call}: {seen}");
    }
    assert_eq!(
        up.hits(),
        3,
        "only the simple GET was sent (and its answer hidden)"
    );
}
