//! Request handling held to the RFCs (README, "Request handling"): raw bytes on the wire over
//! the plain and the TLS listener, each answer checked together with what the backend read —
//! nothing, a whole request, or an incomplete one and a close.

#[path = "support/proxy.rs"]
mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use support::*;
use turnpike_proxy::ProxyConfig;

const SUFFIX: &str = ".execute-api.local.turnpike.dev";

/// A REGIONAL API `strict` and a PRIVATE API `hidden`, each proxying `/r/{proxy+}` (any
/// method) to the recorder.
fn world(backend: SocketAddr) -> String {
    let spec = format!(
        r#"
  resources:
    /r/{{proxy+}}:
      ANY:
        integration: {{type: HTTP_PROXY, uri: "http://{backend}/r/{{proxy}}"}}"#
    );
    rest_api("strict", "REGIONAL", &spec) + &rest_api("hidden", "PRIVATE", &spec)
}

struct Env {
    gw: Gateway,
    rec: Recorder,
    /// The ids of `strict` and `hidden`.
    api: String,
    private: String,
}

async fn env_with(tweak: impl FnOnce(&mut ProxyConfig)) -> Env {
    let rec = Recorder::start().await;
    let gw = Gateway::start_with(table(&world(rec.addr), 1), tweak).await;
    Env {
        gw,
        rec,
        api: api_id(NS, "strict"),
        private: api_id(NS, "hidden"),
    }
}

async fn env() -> Env {
    env_with(|_| {}).await
}

impl Env {
    /// The public listener, TLS or plain.
    fn public(&self, tls: bool) -> SocketAddr {
        if tls {
            self.gw.public_tls
        } else {
            self.gw.public_plain
        }
    }

    /// `/restapis/{api}/prod/_user_request_/r{rest}`.
    fn path(&self, rest: &str) -> String {
        format!("/restapis/{}/prod/_user_request_/r{rest}", self.api)
    }

    /// The Host of the Host form.
    fn host(&self) -> String {
        format!("{}{SUFFIX}", self.api)
    }

    /// The URL of `/r{rest}` (path form) on the public listener, for the HTTP/2 client.
    fn url(&self, tls: bool, rest: &str) -> String {
        let scheme = if tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.public(tls), self.path(rest))
    }

    /// Sends over HTTP/2 and checks the answer is 400 and the backend was never reached.
    async fn h2_bad_request(&self, req: Request<TestBody>) {
        let before = self.rec.accepted();
        let a = send(&client(true), req).await;
        assert_eq!(
            (a.status, a.body.as_str()),
            (400, r#"{"message": "Bad Request"}"#),
            "{a:?}"
        );
        assert_eq!(a.header("x-amzn-errortype"), Some("BadRequestException"));
        assert_eq!(self.rec.accepted(), before, "the backend was reached");
    }

    async fn ask(&self, tls: bool, request: &[u8]) -> String {
        raw_on(self.public(tls), tls, request).await
    }

    /// Asks, and checks the backend was never reached.
    async fn refused(&self, tls: bool, request: &[u8]) -> String {
        let before = self.rec.accepted();
        let answer = self.ask(tls, request).await;
        assert_eq!(
            self.rec.accepted(),
            before,
            "the backend was reached for {:?}",
            String::from_utf8_lossy(request)
        );
        answer
    }
}

/// `GET {target}` with `Connection: close` and the given header lines.
fn get(target: &str, headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n").into_bytes()
}

fn assert_gateway_answer(answer: &str, status: u16, body: &str, error_type: &str, what: &str) {
    assert_eq!(raw_status(answer), status, "{what}: {answer}");
    assert!(answer.ends_with(body), "{what}: {answer}");
    assert!(
        answer.contains(&format!("\r\nx-amzn-ErrorType: {error_type}\r\n")),
        "{what}: {answer}"
    );
}

fn assert_bad_request(answer: &str, what: &str) {
    assert_gateway_answer(
        answer,
        400,
        r#"{"message": "Bad Request"}"#,
        "BadRequestException",
        what,
    );
}

fn assert_forwarded(answer: &str, what: &str) {
    assert_eq!(raw_status(answer), 200, "{what}: {answer}");
    assert!(answer.ends_with("{}"), "{what}: {answer}");
}

// === 1. Host and authority ===

#[tokio::test]
async fn http1_needs_one_valid_host_that_agrees_with_the_target() {
    let mut e = env().await;
    let path = e.path("/x");
    let host = e.host();
    for tls in [false, true] {
        for (what, request) in [
            ("no Host", get(&path, "")),
            ("two Hosts", get(&path, "Host: a.example\r\nHost: a.example\r\n")),
            ("a list", get(&path, "Host: a.example, b.example\r\n")),
            ("user info", get(&path, "Host: user@a.example\r\n")),
            ("a bad port", get(&path, "Host: a.example:99999\r\n")),
            ("an empty port", get(&path, "Host: a.example:\r\n")),
            ("a bad character", get(&path, "Host: a!example\r\n")),
            ("percent-encoding", get(&path, "Host: a%2eexample\r\n")),
            (
                "an absolute target against another Host",
                get(&format!("http://{host}/prod/r/x"), "Host: other.example\r\n"),
            ),
            (
                "an absolute target without Host",
                get(&format!("http://{host}/prod/r/x"), ""),
            ),
        ] {
            let answer = e.refused(tls, &request).await;
            assert_bad_request(&answer, what);
        }

        // The Host form routes by the one authority, and the backend is told it.
        let answer = e.ask(tls, &get("/prod/r/x", &format!("Host: {host}\r\n"))).await;
        assert_forwarded(&answer, "Host form");
        let got = e.rec.next().await.text();
        assert!(got.starts_with("GET /r/x HTTP/1.1\r\n"), "{got}");
        assert!(
            got.contains(&format!("\r\nx-forwarded-host: {host}\r\n")),
            "{got}"
        );
        assert!(got.contains(&format!("\r\nhost: {}\r\n", e.rec.addr)), "{got}");

        // An absolute-form target names the authority (its Host agrees, ASCII case aside).
        let request = get(
            &format!("http://{host}/prod/r/abs"),
            &format!("Host: {}\r\n", host.to_ascii_uppercase()),
        );
        assert_forwarded(&e.ask(tls, &request).await, "absolute form");
        let got = e.rec.next().await.text();
        assert!(got.starts_with("GET /r/abs HTTP/1.1\r\n"), "{got}");
        assert!(
            got.contains(&format!("\r\nx-forwarded-host: {host}\r\n")),
            "{got}"
        );

        // A PRIVATE API on the public listener, by Host or by absolute target: 403.
        let private = format!("{}{SUFFIX}", e.private);
        for request in [
            get("/prod/r/x", &format!("Host: {private}\r\n")),
            get(
                &format!("http://{private}/prod/r/x"),
                &format!("Host: {private}\r\n"),
            ),
        ] {
            let answer = e.refused(tls, &request).await;
            assert_gateway_answer(
                &answer,
                403,
                r#"{"message":"Forbidden"}"#,
                "ForbiddenException",
                "private API",
            );
        }
    }
}

#[tokio::test]
async fn http2_host_must_agree_with_authority() {
    let e = env().await;
    for tls in [false, true] {
        let req = Request::get(e.url(tls, "/h2"))
            .header("host", "other.example")
            .body(empty())
            .expect("request");
        e.h2_bad_request(req).await;
    }
}

// === 2. Methods ===

#[tokio::test]
async fn only_awss_seven_methods_are_forwarded() {
    let mut e = env().await;
    let path = e.path("/m");
    for tls in [false, true] {
        for method in ["TRACE", "get", "PROPFIND", "BREW", "CONNECT"] {
            let target = if method == "CONNECT" { "127.0.0.1:1" } else { &path };
            let request =
                format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let answer = e.refused(tls, request.as_bytes()).await;
            assert_gateway_answer(
                &answer,
                403,
                r#"{"message":"Missing Authentication Token"}"#,
                "MissingAuthenticationTokenException",
                method,
            );
        }
        for method in ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"] {
            let request = format!(
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let answer = e.ask(tls, request.as_bytes()).await;
            assert_eq!(raw_status(&answer), 200, "{method}: {answer}");
            let got = e.rec.next().await;
            assert!(
                got.complete && got.text().starts_with(&format!("{method} /r/m ")),
                "{got:?}"
            );
        }
    }
}

// === 3. Header names with `_` ===

const UNDERSCORED: &str = "X_Secret: 1\r\nContent_Length: 3\r\nTransfer_Encoding: chunked\r\nx-kept: 2\r\n";

#[tokio::test]
async fn underscored_header_names_are_dropped() {
    let mut e = env().await;
    let path = e.path("/u");
    for tls in [false, true] {
        let request = get(&path, &format!("Host: 127.0.0.1\r\n{UNDERSCORED}"));
        assert_forwarded(&e.ask(tls, &request).await, "underscores");
        let got = e.rec.next().await.text().to_ascii_lowercase();
        assert!(got.contains("\r\nx-kept: 2\r\n"), "{got}");
        for name in ["x_secret", "content_length", "transfer_encoding"] {
            assert!(!got.contains(name), "{name} reached the backend: {got}");
        }

        // HTTP/2 alike.
        let req = Request::get(e.url(tls, "/u"))
            .header("x_secret", "1")
            .header("x-kept", "2")
            .body(empty())
            .expect("request");
        assert_eq!(send(&client(true), req).await.status, 200);
        let got = e.rec.next().await.text();
        assert!(
            got.contains("\r\nx-kept: 2\r\n") && !got.contains("x_secret"),
            "{got}"
        );
    }
}

#[tokio::test]
async fn underscored_header_names_pass_when_allowed() {
    let mut e = env_with(|c| c.allow_underscores_in_headers = true).await;
    let path = e.path("/u");
    for tls in [false, true] {
        let request = get(&path, &format!("Host: 127.0.0.1\r\n{UNDERSCORED}"));
        assert_forwarded(&e.ask(tls, &request).await, "underscores allowed");
        let got = e.rec.next().await.text();
        assert!(got.contains("\r\nx_secret: 1\r\n"), "{got}");
        assert!(got.contains("\r\ncontent_length: 3\r\n"), "{got}");
    }
}

// === 4. Chunked framing and request targets ===

fn chunked(path: &str, body: &[u8]) -> Vec<u8> {
    let mut r =
        format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes();
    r.extend_from_slice(body);
    r
}

#[tokio::test]
async fn chunked_bodies_are_strict_and_a_bad_one_never_completes_upstream() {
    let mut e = env().await;
    let path = e.path("/c");
    for tls in [false, true] {
        for body in [
            &b"5 \r\nhello\r\n0\r\n\r\n"[..],
            b"5\t\r\nhello\r\n0\r\n\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"5;a b\r\nhello\r\n0\r\n\r\n",
            b"5; a=b\r\nhello\r\n0\r\n\r\n",
            b"5;a\rb\r\nhello\r\n0\r\n\r\n",
            b"5;a\0\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\nGET /x HTTP/1.1\r\n\r\n",
            b"5\r\nhello\r\n0\r\nx-t: 1\r\n folded\r\n\r\n",
            b"5\r\nhello\r\n0\r\nx-t: a\rb\r\n\r\n",
            b"5\r\nhello\r\n5\nworld\r\n0\r\n\r\n",
        ] {
            let what = String::from_utf8_lossy(body).into_owned();
            let answer = e.ask(tls, &chunked(&path, body)).await;
            assert_bad_request(&answer, &what);
            // The head went out before the body was read: the backend holds a cut request
            // and a closed connection, never the last chunk.
            let got = e.rec.next().await;
            assert!(!got.complete, "{what}: the backend got a whole request: {got:?}");
            let text = got.text();
            assert!(text.starts_with("POST /r/c HTTP/1.1\r\n"), "{what}: {text}");
            assert!(!text.contains("\r\n0\r\n"), "{what}: {text}");
        }

        // Extensions and trailers that follow the grammar pass; the body arrives whole.
        let good = chunked(
            &path,
            b"005;a;b=c;d=\"e\\\"f\"\r\nhello\r\n0\r\nx-t: 1\r\n\r\nGET /next HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        );
        let answer = e.ask(tls, &good).await;
        assert_eq!(raw_status(&answer), 200, "{answer}");
        let got = e.rec.next().await;
        assert!(got.complete, "{got:?}");
        assert!(got.text().ends_with("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), "{got:?}");
    }
}

#[tokio::test]
async fn request_targets_with_fragments_or_raw_bytes_and_bare_lf_heads_are_refused() {
    let e = env().await;
    let path = e.path("/t");
    for tls in [false, true] {
        let mut non_ascii = format!("GET {path}/caf").into_bytes();
        non_ascii.extend_from_slice(b"\xc3\xa9 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        for (what, request) in [
            ("a fragment", get(&format!("{path}#frag"), "Host: 127.0.0.1\r\n")),
            ("raw UTF-8", non_ascii),
            (
                "a bare LF",
                format!("GET {path} HTTP/1.1\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").into_bytes(),
            ),
        ] {
            let answer = e.refused(tls, &request).await;
            assert_bad_request(&answer, what);
        }
    }
}

/// A body stream of these pieces, each its own DATA frame.
fn pieces(parts: &[&'static [u8]]) -> TestBody {
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = parts
        .iter()
        .map(|p| Ok(Frame::data(Bytes::from_static(p))))
        .collect();
    StreamBody::new(futures::stream::iter(frames)).boxed()
}

const LONGER: [&[u8]; 2] = [b"hello", b"x"];
const SHORTER: [&[u8]; 1] = [b"hello"];

#[tokio::test]
async fn http2_bodies_off_their_content_length_never_complete_upstream() {
    let mut e = env().await;
    for tls in [false, true] {
        let url = e.url(tls, "/h2");
        for (what, declared, body) in [("longer", "5", &LONGER[..]), ("shorter", "10", &SHORTER[..])] {
            let req = Request::post(&url)
                .header("content-length", declared)
                .body(pieces(body))
                .expect("request");
            // The stream is reset by the HTTP/2 layer, or answered 400: never forwarded whole.
            if let Ok(resp) = client(true).request(req).await {
                assert_eq!(resp.status(), 400, "{what}");
            }
            let got = e.rec.next().await;
            assert!(!got.complete, "{what}: the backend got a whole request: {got:?}");
            // The gateway may have been stopped by the reset before it wrote anything; what it
            // wrote is the head and, when the stream was longer, none of the body (the bytes that
            // completed the declared length were held back).
            let text = got.text();
            assert!(
                text.is_empty() || text.contains(&format!("\r\ncontent-length: {declared}\r\n")),
                "{what}: {text}"
            );
            if what == "longer" {
                assert!(!text.contains("hello"), "{what}: {text}");
            }
        }
    }
}

#[tokio::test]
async fn http2_paths_with_raw_bytes_beyond_ascii_are_refused() {
    let e = env().await;
    for tls in [false, true] {
        let req = Request::get(e.url(tls, "/caf\u{e9}"))
            .body(empty())
            .expect("request");
        e.h2_bad_request(req).await;
    }
}

// === 5. Paths ===

#[tokio::test]
async fn escapes_of_unreserved_characters_route_as_decoded() {
    let mut e = env().await;
    let host = e.host();
    for tls in [false, true] {
        for request in [
            get(&e.path("/%61dmin/%7Ex%2Fy"), "Host: 127.0.0.1\r\n"),
            get("/prod/r/%61dmin/%7Ex%2Fy", &format!("Host: {host}\r\n")),
        ] {
            let answer = e.ask(tls, &request).await;
            assert_eq!(
                raw_status(&answer),
                400,
                "an encoded slash stays refused: {answer}"
            );
        }
        for request in [
            get(&e.path("/%61dmin/%7Ex%20y"), "Host: 127.0.0.1\r\n"),
            get("/prod/r/%61dmin/%7Ex%20y", &format!("Host: {host}\r\n")),
        ] {
            assert_forwarded(&e.ask(tls, &request).await, "unreserved escapes");
            let got = e.rec.next().await.text();
            assert!(got.starts_with("GET /r/admin/~x%20y HTTP/1.1\r\n"), "{got}");
        }
    }
}

const RAW_SEGMENTS: [&str; 9] = [
    "/..;/x",
    "/.;a=b/x",
    "/%2e%2e;x/y",
    "/%c0%ae%c0%ae/x",
    "/a%ffb",
    "/%ef%bc%8e%ef%bc%8e/x",
    "/a%ef%bc%8fb",
    "/%e2%80%a4/x",
    "/a%ef%bc%bcb",
];

#[tokio::test]
async fn segments_a_backend_could_read_as_dots_are_refused() {
    let e = env().await;
    let host = e.host();
    for tls in [false, true] {
        for segment in RAW_SEGMENTS {
            for request in [
                get(&e.path(segment), "Host: 127.0.0.1\r\n"),
                get(&format!("/prod/r{segment}"), &format!("Host: {host}\r\n")),
            ] {
                let answer = e.refused(tls, &request).await;
                assert_bad_request(&answer, segment);
            }
        }
    }
}

#[tokio::test]
async fn raw_segments_pass_when_allowed() {
    let mut e = env_with(|c| c.allow_raw_path_segments = true).await;
    for tls in [false, true] {
        for segment in RAW_SEGMENTS {
            let answer = e.ask(tls, &get(&e.path(segment), "Host: 127.0.0.1\r\n")).await;
            assert_forwarded(&answer, segment);
            let got = e.rec.next().await.text();
            // Escapes of unreserved characters are decoded whatever the flag says.
            let forwarded = segment.replace("%2e", ".");
            assert!(
                got.starts_with(&format!("GET /r{forwarded} HTTP/1.1\r\n")),
                "{got}"
            );
        }
        // Plain dot segments still never pass.
        let answer = e
            .refused(tls, &get(&e.path("/../x"), "Host: 127.0.0.1\r\n"))
            .await;
        assert_bad_request(&answer, "dot segment");
    }
}
