//! Limits, malformed requests, path normalisation attacks, streaming without buffering, the
//! admin listener and metrics.

#[path = "support/proxy.rs"]
mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use support::*;
use turnpike_proxy::store::TableStore;

const NS: &str = "lim";

fn yaml(up: SocketAddr) -> String {
    ApiSet::new(NS, "api")
        .proxy("/pets/{id}", "ANY", &format!("http://{up}/echo/pets/{{id}}"))
        .proxy(
            "/files/{proxy+}",
            "ANY",
            &format!("http://{up}/echo/files/{{proxy}}"),
        )
        .proxy("/gate", "GET", &format!("http://{up}/gate"))
        .proxy("/bytes/{n}", "GET", &format!("http://{up}/bytes/{{n}}"))
        .proxy("/upload", "POST", &format!("http://{up}/read-gated"))
        .stage("prod")
        .stage("dev")
        .yaml()
}

async fn setup() -> (Gateway, Upstream, String) {
    let up = Upstream::start().await;
    let gw = Gateway::start(table(&yaml(up.addr), 1)).await;
    (gw, up, api_id(NS, "api"))
}

fn raw_get(api: &str, path: &str) -> Vec<u8> {
    format!("GET /restapis/{api}/prod/_user_request_{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

#[tokio::test]
async fn path_attacks_never_escape_the_stage() {
    let (gw, up, api) = setup().await;
    for attack in [
        "/pets/../../dev/pets/1",
        "/pets/./1",
        "/pets/%2e%2e/%2e%2e/dev/pets/1",
        "/pets/%2E%2e/x",
        "/pets/.%2e/x",
        "/files/a%2F..%2F..%2Fdev",
        "/files/a%5c..%5cb",
        "/files/a%00b",
        "/files/%252e%252e/%252e%252e/dev",
        "/files/a%252fb",
        "/files/%zz",
        "/files/a\\..\\b",
    ] {
        let answer = raw(gw.public_plain, &raw_get(&api, attack)).await;
        assert_eq!(raw_status(&answer), 400, "{attack}: {answer}");
        assert!(
            answer.contains(r#"{"message": "Bad Request"}"#),
            "{attack}: {answer}"
        );
        assert!(
            answer.to_ascii_lowercase().contains("x-amzn-requestid"),
            "{answer}"
        );
    }
    // Dots in the middle of the API prefix or the stage are refused the same way.
    let answer = raw(
        gw.public_plain,
        format!("GET /restapis/{api}/dev/../prod/_user_request_/pets/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert_eq!(raw_status(&answer), 400, "{answer}");
    assert_eq!(up.hits(), 0, "no attack reaches the backend");
    // Empty segments collapse; ordinary escapes pass through still encoded.
    let answer = raw(gw.public_plain, &raw_get(&api, "//pets//7")).await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert!(answer.contains(r#""path":"/echo/pets/7""#), "{answer}");
    let answer = raw(gw.public_plain, &raw_get(&api, "/files/a%20b/100%25")).await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert!(
        answer.contains(r#""path":"/echo/files/a%20b/100%25""#),
        "{answer}"
    );
}

#[tokio::test]
async fn malformed_framing_is_rejected_before_the_backend() {
    let (gw, up, api) = setup().await;
    let path = format!("/restapis/{api}/prod/_user_request_/pets/1");
    // Content-Length with Transfer-Encoding: refused with 400 (RFC 9112 §6.1 lets a server
    // reject it; a gateway must, or the two readings of the message smuggle a second request)
    // and the connection is closed, so the bytes after the head are never read as a request.
    let answer = raw(
        gw.public_plain,
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(raw_status(&answer), 400, "{answer}");
    assert!(answer.contains(r#"{"message": "Bad Request"}"#), "{answer}");
    assert!(
        answer.contains("x-amzn-RequestId: "),
        "gateway answers carry the request id: {answer}"
    );
    assert!(answer.contains("Connection: close"), "{answer}");
    assert_eq!(
        answer.matches("HTTP/1.1 ").count(),
        1,
        "the smuggled request is never read: {answer}"
    );
    assert_eq!(up.hits(), 0);
    for req in [
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello!"
        ),
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\nConnection: close\r\n\r\n"),
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked, identity\r\nConnection: close\r\n\r\n"
        ),
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nBad Header: v\r\nConnection: close\r\n\r\n"),
        "GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
    ] {
        let answer = raw(gw.public_plain, req.as_bytes()).await;
        assert_eq!(raw_status(&answer), 400, "{req:?} → {answer}");
        assert!(answer.contains("x-amzn-RequestId: "), "{req:?} → {answer}");
    }
    assert_eq!(up.hits(), 0, "no malformed request reached the backend");
}

#[tokio::test]
async fn size_limits() {
    let (gw, up, api) = setup().await;
    let c = client(false);
    // Declared body over 10 MB: 413 up front.
    let big = vec![b'a'; 10 * 1024 * 1024 + 1];
    let a = send(
        &c,
        Request::post(gw.plain_url(&api, "prod", "/pets/1"))
            .body(full(big))
            .expect("req"),
    )
    .await;
    assert_eq!(a.status, 413, "{a:?}");
    assert_eq!(a.body, r#"{"message":"Request Too Long"}"#);
    assert_eq!(up.hits(), 0);
    // Exactly 10 MB passes.
    let a = send(
        &c,
        Request::post(gw.plain_url(&api, "prod", "/pets/1"))
            .body(full(vec![b'a'; 10 * 1024 * 1024]))
            .expect("req"),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["body_len"], 10 * 1024 * 1024);
    // Header value over 10 KiB: 431; URL over 10 KiB: 414.
    let a = send(
        &c,
        Request::get(gw.plain_url(&api, "prod", "/pets/1"))
            .header("x-big", "v".repeat(11 * 1024))
            .body(empty())
            .expect("req"),
    )
    .await;
    assert_eq!(a.status, 431);
    let long = format!("/pets/{}", "p".repeat(11 * 1024));
    let a = get(&gw.plain_url(&api, "prod", &long)).await;
    assert_eq!(a.status, 414);
    // Headers beyond what the server reads at all: 431 from the HTTP layer.
    let mut req = format!("GET /restapis/{api}/prod/_user_request_/pets/1 HTTP/1.1\r\nHost: x\r\n");
    for i in 0..20 {
        req += &format!("x-h{i}: {}\r\n", "v".repeat(8 * 1024));
    }
    req += "Connection: close\r\n\r\n";
    let answer = raw(gw.public_plain, req.as_bytes()).await;
    assert_eq!(raw_status(&answer), 431, "{answer}");
    assert_eq!(up.hits(), 1, "only the 10 MB request reached the backend");
}

#[tokio::test]
async fn streamed_body_is_cut_at_the_limit() {
    let (gw, _up, api) = setup().await;
    // 11 MB in 64 KiB chunks, no Content-Length.
    let chunks = futures::stream::iter(
        (0..176).map(|_| Ok::<_, BoxError>(Frame::data(Bytes::from(vec![b'z'; 64 * 1024])))),
    );
    let body = BodyExt::boxed(StreamBody::new(chunks));
    let resp = client(false)
        .request(
            Request::post(gw.plain_url(&api, "prod", "/upload"))
                .body(body)
                .expect("req"),
        )
        .await;
    // The proxy answers while the client is still sending, then reads and drops the rest
    // before it closes, so the answer is not lost to a reset.
    let resp = resp.expect("an answer, not a reset");
    assert_eq!(resp.status(), 413);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], br#"{"message":"Request Too Long"}"#);
}

#[tokio::test]
async fn bodies_stream_both_ways_without_buffering() {
    let (gw, up, api) = setup().await;
    for h2 in [false, true] {
        let c = client(h2);
        // Response: the first bytes arrive while the backend still holds the rest.
        let resp = c
            .request(
                Request::get(gw.url(&api, "prod", "/gate"))
                    .body(empty())
                    .expect("req"),
            )
            .await
            .expect("response head");
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let first = body
            .frame()
            .await
            .expect("frame")
            .expect("ok")
            .into_data()
            .expect("data");
        assert_eq!(&first[..], b"first");
        up.open_gate();
        let rest = body.collect().await.expect("rest").to_bytes();
        assert_eq!(&rest[..], b"rest");

        // Request: the backend sees the first chunk before the client sends the second.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let body = BodyExt::boxed(StreamBody::new(tokio_stream_from(rx)));
        let pending = c.request(
            Request::post(gw.url(&api, "prod", "/upload"))
                .body(body)
                .expect("req"),
        );
        let sender = async {
            tx.send(Ok(Frame::data(Bytes::from_static(b"hello "))))
                .await
                .expect("send");
            up.first_chunk.notified().await;
            tx.send(Ok(Frame::data(Bytes::from_static(b"world"))))
                .await
                .expect("send");
            drop(tx);
        };
        let (resp, ()) = tokio::join!(pending, sender);
        let resp = resp.expect("response");
        let got = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&got[..], b"11");
    }
    // 64 MB through, chunk by chunk.
    let resp = client(true)
        .request(
            Request::get(gw.url(&api, "prod", &format!("/bytes/{}", 64 * 1024 * 1024)))
                .body(empty())
                .expect("req"),
        )
        .await
        .expect("response");
    let mut body = resp.into_body();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame.expect("frame").into_data() {
            total += d.len();
        }
    }
    assert_eq!(total, 64 * 1024 * 1024);
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn admin_readiness_and_metrics() {
    let store = TableStore::new();
    let up = Upstream::start().await;
    let gw = Gateway::start_on(store.clone(), |_| {}).await;
    let admin = turnpike_proxy::admin::Admin::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("admin");
    let admin_addr = admin.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(admin.run(store.clone(), gw.registry.clone(), async {
        let _ = stopped.await;
    }));
    let base = format!("http://{admin_addr}");
    assert_eq!(get(&format!("{base}/healthz")).await.status, 200);
    assert_eq!(get(&format!("{base}/readyz")).await.status, 503);
    // Before a table: every request is a miss.
    let api = api_id(NS, "api");
    assert_eq!(get(&gw.url(&api, "prod", "/pets/1")).await.status, 403);
    store.publish(table(&yaml(up.addr), 1));
    assert_eq!(get(&format!("{base}/readyz")).await.status, 200);
    for i in 0..3 {
        assert_eq!(
            get(&gw.url(&api, "prod", &format!("/pets/{i}"))).await.status,
            200
        );
    }
    assert_eq!(get(&gw.url(&api, "prod", "/nothing")).await.status, 403);
    let m = get(&format!("{base}/metrics")).await;
    assert_eq!(m.status, 200);
    let text = m.body;
    let route = format!(r#"api="{api}",stage="prod",resource="/pets/{{id}}",method="ANY",canary="false""#);
    assert!(
        text.contains(&format!("turnpike_count_total{{{route}}} 3")),
        "{text}"
    );
    assert!(
        text.contains(&format!("turnpike_latency_count{{{route}}} 3")),
        "{text}"
    );
    assert!(
        text.contains(&format!("turnpike_integration_latency_count{{{route}}} 3")),
        "{text}"
    );
    let miss = format!(r#"api="{api}",stage="prod",resource="",method="GET",canary="false""#);
    assert!(
        text.contains(&format!("turnpike_4xx_error_total{{{miss}}} 1")),
        "{text}"
    );
    assert!(!text.contains("/pets/1"), "raw paths never become labels");
    let _ = stop.send(());
    task.await.expect("admin task");
}

#[tokio::test]
async fn http11_connection_semantics() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (gw, _up, api) = setup().await;
    let target = |p: &str| format!("/restapis/{api}/prod/_user_request_{p}");

    // Pipelined requests are answered in order on one connection.
    let answer = raw(
        gw.public_plain,
        format!(
            "GET {} HTTP/1.1\r\nHost: x\r\n\r\nGET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            target("/pets/1"),
            target("/pets/2")
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{answer}");
    let first = answer.find(r#""path":"/echo/pets/1""#).expect("first answer");
    let second = answer.find(r#""path":"/echo/pets/2""#).expect("second answer");
    assert!(first < second, "{answer}");
    // The gateway's own headers are spelled as AWS spells them; the backend's keep its
    // spelling (the upstream writes lowercase names).
    for name in [
        "\r\nx-amzn-RequestId: ",
        "\r\nx-amz-apigw-id: ",
        "\r\nDate: ",
        "\r\ncontent-length: ",
    ] {
        assert!(answer.contains(name), "{name:?} in {answer}");
    }

    // HTTP/1.0 without keep-alive: one answer, then the connection closes.
    let answer = raw(
        gw.public_plain,
        format!("GET {} HTTP/1.0\r\nHost: x\r\n\r\n", target("/pets/3")).as_bytes(),
    )
    .await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert!(answer.contains("Connection: close"), "{answer}");

    // A chunked request body reaches the backend whole.
    let answer = raw(
        gw.public_plain,
        format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n",
            target("/pets/4")
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert!(answer.contains(r#""body_len":11"#), "{answer}");

    // Expect: 100-continue: the interim answer comes before the client sends the body.
    let mut s = tokio::net::TcpStream::connect(gw.public_plain)
        .await
        .expect("connect");
    s.write_all(
        format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            target("/pets/5")
        )
        .as_bytes(),
    )
    .await
    .expect("head");
    let mut interim = [0u8; 25];
    tokio::time::timeout(std::time::Duration::from_secs(5), s.read_exact(&mut interim))
        .await
        .expect("interim answer in time")
        .expect("read");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").await.expect("body");
    let mut rest = String::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_string(&mut rest))
        .await
        .expect("answer in time")
        .expect("read");
    assert_eq!(raw_status(&rest), 200, "{rest}");
    assert!(rest.contains(r#""body_len":5"#), "{rest}");

    // A declared body over the limit is not invited: the first answer is the 413.
    let answer = raw(
        gw.public_plain,
        format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\nExpect: 100-continue\r\n\r\n",
            target("/pets/6")
        )
        .as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
}

#[tokio::test]
async fn idle_connections_close_after_the_idle_timeout_and_not_before() {
    use std::time::{Duration, Instant, SystemTime};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    const IDLE: Duration = Duration::from_millis(1000);
    let up = Upstream::start().await;
    let gw = Gateway::start_with(table(&yaml(up.addr), 1), |c| c.idle_timeout = IDLE).await;
    let api = api_id(NS, "api");
    let mut conn = tokio::net::TcpStream::connect(gw.public_plain)
        .await
        .expect("connect");
    // One request and its whole answer (a small body, Content-Length framed).
    async fn ask(conn: &mut tokio::net::TcpStream, api: &str, n: u32) -> String {
        let req = format!("GET /restapis/{api}/prod/_user_request_/pets/{n} HTTP/1.1\r\nHost: x\r\n\r\n");
        conn.write_all(req.as_bytes()).await.expect("write");
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        for _ in 0..100 {
            let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk))
                .await
                .expect("an answer")
                .expect("read");
            assert!(n > 0, "closed while a request was open");
            got.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_string)
                    })
                    .and_then(|v| v.trim().parse().ok())
                    .expect("content-length");
                if got.len() >= end + 4 + len {
                    return text.into_owned();
                }
            }
        }
        panic!("no whole answer");
    }
    let first = ask(&mut conn, &api, 1).await;
    assert_eq!(raw_status(&first), 200, "{first}");
    // The gateway's Date is now, to the second (it is read from a coarse clock).
    let date = first
        .lines()
        .find_map(|l| l.strip_prefix("Date: "))
        .expect("Date");
    let date = httpdate::parse_http_date(date).expect("an HTTP date");
    let skew = SystemTime::now()
        .duration_since(date)
        .unwrap_or_else(|e| e.duration());
    assert!(skew < Duration::from_secs(3), "Date is {skew:?} off");
    // Two waits of 0.7 of the timeout each: the timer armed when the connection opened
    // fires during the second; the connection was idle for less than the timeout then, so
    // it stays open.
    for n in 2..4 {
        tokio::time::sleep(IDLE * 7 / 10).await;
        let answer = ask(&mut conn, &api, n).await;
        assert_eq!(raw_status(&answer), 200, "{answer}");
    }
    // Then, left idle, it closes once the timeout has passed.
    let idle_from = Instant::now();
    let mut chunk = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
        .await
        .expect("closed within 10 s")
        .unwrap_or(0);
    assert_eq!(n, 0, "the connection is closed, not answered");
    let idled = idle_from.elapsed();
    assert!(
        idled >= IDLE * 9 / 10,
        "closed after {idled:?}, before the idle timeout"
    );
}
