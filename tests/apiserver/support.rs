//! Shared helpers of the `apiserver_*` tests: an in-process server on port 0 in a temporary
//! directory, with the Turnpike CRDs installed through the API like a user would.

#![allow(dead_code)]

#[path = "../support/insecure_tls.rs"]
pub mod insecure_tls;

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use turnpike_apiserver::{ApiServer, ApiServerConfig, ApiServerHandle};

/// A running server and its directory (removed on drop).
pub struct TestServer {
    pub handle: ApiServerHandle,
    pub client: Client,
    pub dir: tempfile::TempDir,
}

pub async fn start() -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ApiServerConfig::new(dir.path()).with_addr("127.0.0.1:0".parse().expect("addr"));
    let handle = ApiServer::start(config).await.expect("start api server");
    let client = handle.client().await.expect("client");
    TestServer { handle, client, dir }
}

pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in turnpike_api::crds() {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("create crd");
    }
    let list = crds.list(&ListParams::default()).await.expect("list crds");
    for crd in list {
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "CRD is established at once");
    }
}

/// Polls `f` every 50 ms for up to `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/apiserver/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
