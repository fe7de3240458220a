//! Hot swap under load, graceful shutdown, runtime certificates and the access log.

#[path = "support/proxy.rs"]
mod support;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::Request;
use support::*;
use turnpike_controller::ingest::world_from_yaml;
use turnpike_core::compile::{CompileConfig, compile};

const NS: &str = "swap";

/// `version` picks the backend path (`/echo/v{version}/...`), so each table is different.
fn yaml(up: SocketAddr, version: u32) -> String {
    ApiSet::new(NS, "api")
        .proxy(
            "/items/{id}",
            "GET",
            &format!("http://{up}/echo/v{version}/{{id}}"),
        )
        .proxy("/sleep/{ms}", "GET", &format!("http://{up}/sleep/{{ms}}"))
        .stage("prod")
        .yaml()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_swaps_under_load_fail_no_request() {
    let up = Upstream::start().await;
    let worlds = [
        world_from_yaml(&yaml(up.addr, 1)).expect("yaml"),
        world_from_yaml(&yaml(up.addr, 2)).expect("yaml"),
    ];
    let gw = Gateway::start(compile(&worlds[0], &CompileConfig::default(), 1).table).await;
    let api = api_id(NS, "api");
    let done = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(tokio::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (done, ok, failures) = (done.clone(), ok.clone(), failures.clone());
        let url = if w % 2 == 0 {
            gw.url(&api, "prod", &format!("/items/{w}"))
        } else {
            gw.plain_url(&api, "prod", &format!("/items/{w}"))
        };
        let c = client(w % 4 == 0);
        workers.push(tokio::spawn(async move {
            // Bounded: stops when the swaps are done, or after 20 000 requests.
            for _ in 0..20_000 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let a = send(&c, Request::get(&url).body(empty()).expect("req")).await;
                let path = a.json()["path"].as_str().unwrap_or_default().to_string();
                if a.status == 200 && (path == format!("/echo/v1/{w}") || path == format!("/echo/v2/{w}")) {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.lock().await.push(format!("{} {}", a.status, a.body));
                }
            }
        }));
    }
    // Wait until traffic flows, then swap 1000 times.
    while ok.load(Ordering::Relaxed) < 50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for v in 2..=1001u64 {
        let world = &worlds[(v % 2) as usize];
        gw.store
            .publish(compile(world, &CompileConfig::default(), v).table);
        if v % 10 == 0 {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let during = ok.load(Ordering::Relaxed);
    done.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let failures = failures.lock().await;
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(during > 100, "only {during} requests ran during the swaps");
    assert_eq!(gw.store.load().version, 1001);
}

#[tokio::test]
async fn graceful_shutdown_drains_in_flight_requests() {
    let up = Upstream::start().await;
    let mut gw = Gateway::start(table(&yaml(up.addr, 1), 1)).await;
    let api = api_id(NS, "api");
    let url = gw.plain_url(&api, "prod", "/sleep/700");
    let in_flight = tokio::spawn(async move { get(&url).await });
    while up.hits() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let addr = gw.public_plain;
    // An idle keep-alive connection (one answered request, then nothing).
    let mut idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let path = format!("/restapis/{api}/prod/_user_request_/sleep/1");
        idle.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        while !String::from_utf8_lossy(&got).contains("slept") {
            let n = idle.read(&mut chunk).await.expect("read");
            assert!(n > 0, "answered before closing");
            got.extend_from_slice(&chunk[..n]);
        }
    }
    gw.shutdown().await;
    {
        use tokio::io::AsyncReadExt as _;
        let mut rest = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut rest))
            .await
            .expect("the idle connection is closed at shutdown, not left to time out")
            .unwrap_or(0);
        assert_eq!(n, 0, "closed without another answer");
    }
    let a = in_flight.await.expect("request");
    assert_eq!(a.status, 200, "the in-flight request finishes");
    assert_eq!(a.body, "slept");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn certificates_set_at_runtime_are_served_by_sni() {
    let up = Upstream::start().await;
    let gw = Gateway::start(table(&yaml(up.addr, 1), 1)).await;
    // The store behind the running listeners (shared with the proxy).
    let generated = rcgen::generate_simple_self_signed(vec!["api.example.test".into()]).expect("gen");
    let pem = generated.cert.pem();
    gw_cert_store(&gw)
        .set(
            &["api.example.test"],
            pem.as_bytes(),
            generated.signing_key.serialize_pem().as_bytes(),
        )
        .expect("set");
    let dir = tempfile::tempdir().expect("dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pem).expect("write");
    let url = format!(
        "https://api.example.test:{}/restapis/{}/prod/_user_request_/items/1",
        gw.public_tls.port(),
        api_id(NS, "api")
    );
    let resolve = format!("api.example.test:{}:127.0.0.1", gw.public_tls.port());
    // Without -k: curl verifies the runtime certificate against it as the CA.
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            ca.to_str().expect("path"),
            "--resolve",
            &resolve,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url,
        ])
        .output()
        .await
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another name gets the self-signed default, which that CA does not verify.
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            ca.to_str().expect("path"),
            "--resolve",
            &format!("other.example.test:{}:127.0.0.1", gw.public_tls.port()),
            "-o",
            "/dev/null",
            &url.replace("api.example.test", "other.example.test"),
        ])
        .output()
        .await
        .expect("curl");
    assert!(!out.status.success());
    // TLS 1.1 is refused; 1.2 is accepted.
    let (code, _) = curl(&[
        "--tls-max",
        "1.1",
        &gw.url(&api_id(NS, "api"), "prod", "/items/1"),
    ])
    .await;
    assert_eq!(code, 0);
    let (code, _) = curl(&[
        "--tlsv1.2",
        "--tls-max",
        "1.2",
        &gw.url(&api_id(NS, "api"), "prod", "/items/1"),
    ])
    .await;
    assert_eq!(code, 200);
}

fn gw_cert_store(gw: &Gateway) -> Arc<turnpike_proxy::CertStore> {
    gw.certs.clone()
}
