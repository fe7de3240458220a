//! The SOAP example (config/examples/soap.yaml) end to end: curl sends JSON to the gateway,
//! the request template writes a SOAP envelope to the example's real SOAP backend
//! (src/soap.rs, served here on 127.0.0.1:0), and the response templates turn its XML answer
//! (or its SOAP Fault) back into JSON. Also: passthroughBehavior NEVER refuses other payloads.

use std::{convert::Infallible, net::SocketAddr};

use http_body_util::BodyExt as _;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::{soap_backend, support::*};

/// Serves the SOAP backend on 127.0.0.1:0, recording the SOAPAction of each request.
async fn soap_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: hyper::Request<Incoming>| async move {
                    let (parts, body) = req.into_parts();
                    let bytes = http_body_util::Limited::new(body, soap_backend::MAX_ENVELOPE)
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let action_ok = parts
                        .headers
                        .get("soapaction")
                        .is_some_and(|v| v.as_bytes() == b"urn:turnpike:petstore#GetPet");
                    let mut resp = soap_backend::answer(&parts.headers, &bytes);
                    if !action_ok {
                        *resp.status_mut() = http::StatusCode::BAD_REQUEST;
                    }
                    Ok::<_, Infallible>(resp)
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

/// The example, with the Service `petstore` whose one ready endpoint is `backend`.
fn example(backend: SocketAddr) -> String {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples/soap.yaml"))
        .expect("config/examples/soap.yaml");
    format!(
        r#"{example}
---
apiVersion: v1
kind: Service
metadata: {{name: petstore, namespace: default}}
spec:
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: petstore-abcde
  namespace: default
  labels: {{kubernetes.io/service-name: petstore}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints: [{{addresses: ["127.0.0.1"], conditions: {{ready: true}}}}]
"#,
        port = backend.port()
    )
}

/// `curl -i` output → (status, body).
async fn post(url: &str, content_type: &str, body: &str) -> (u16, String) {
    let (status, text) = curl(&[
        "-X",
        "POST",
        url,
        "-H",
        &format!("Content-Type: {content_type}"),
        "-d",
        body,
    ])
    .await;
    let body = text
        .split_once("\r\n\r\n")
        .map_or(text.as_str(), |(_, b)| b)
        .to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_example_maps_json_to_xml_and_back() {
    let (backend, task) = soap_server().await;
    let mut gw = Gateway::start(table(&example(backend), 1)).await;
    let url = gw.plain_url(&api_id("default", "soap-pets"), "prod", "/pets/lookup");

    let (status, body) = post(&url, "application/json", r#"{"petId": 1}"#).await;
    assert_eq!(status, 200, "{body}");
    let pet: serde_json::Value = serde_json::from_str(&body).expect(&body);
    assert_eq!(
        pet,
        serde_json::json!({"id": 1, "type": "dog", "name": "Rex", "price": 249.99})
    );

    // A SOAP Fault (HTTP 500 from the backend) is the 404 integration response.
    let (status, body) = post(&url, "application/json", r#"{"petId": 9}"#).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body.trim(), r#"{"message": "no pet 9"}"#);

    // passthroughBehavior NEVER: a payload with no template is refused, never sent on.
    let (status, body) = post(&url, "text/plain", "petId=1").await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(body, r#"{"message": "Unsupported Media Type"}"#);

    // A body that is not JSON, where the template reads it as JSON: 400, never sent on.
    let (status, body) = post(&url, "application/json", "{petId").await;
    assert_eq!(status, 400, "{body}");

    gw.shutdown().await;
    task.abort();
}
