//! GetExport on the admin listener, end to end: the embedded API server, a Turnpike replica, a
//! RestApi deployed to a stage, and `GET /restapis/{apiId}/stages/{stage}/exports/{type}`
//! answering what the stage serves (its Deployment's snapshot, not later edits).
//!
//! ```sh
//! cargo test --test openapi_export_e2e
//! ```

mod controller_support;
#[path = "support/proxy.rs"]
mod support;

use std::{net::SocketAddr, time::Duration};

use controller_support::*;
use http::Request;

/// `GET path` on the admin listener: the status and the body.
async fn admin_get(addr: SocketAddr, path: &str, accept: &str) -> (u16, String) {
    let req = Request::get(format!("http://{addr}{path}")).header("accept", accept);
    let answer = support::send(
        &support::client(false),
        req.body(support::empty()).expect("request"),
    )
    .await;
    (answer.status, answer.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_exports_its_deployment_as_openapi() {
    let cluster = Cluster::start().await;
    let node = cluster.node("export-0").await;
    cluster.apply(&mock_stack(
        "exported",
        "1",
        "  description: exported by the admin listener",
    ));
    let api_id = cluster.api_id("exported").await;
    let path = format!("/restapis/{api_id}/stages/prod/exports/oas30?extensions=integrations,apigateway");

    let doc = eventually("the prod stage exports", Duration::from_secs(30), || async {
        let (status, body) = admin_get(node.admin, &path, "application/json").await;
        (status == 200).then_some(body)
    })
    .await;
    let value: serde_json::Value = serde_json::from_str(&doc).expect("JSON");
    assert_eq!(value["openapi"], "3.0.1");
    assert_eq!(value["info"]["title"], "exported");
    assert_eq!(value["info"]["description"], "exported by the admin listener");
    assert_eq!(value["servers"][0]["variables"]["basePath"]["default"], "prod");
    let integration = &value["paths"]["/v"]["get"]["x-amazon-apigateway-integration"];
    assert_eq!(integration["type"], "mock");
    assert_eq!(
        integration["responses"]["default"]["responseTemplates"]["application/json"],
        r#"{"v": "1"}"#
    );
    // What was exported imports back as the RestApi that was deployed.
    let imported = turnpike_openapi::import(&doc).expect("imports");
    assert_eq!(imported.warnings, []);
    assert_eq!(
        imported.spec.resources["/v"]["GET"]
            .integration
            .integration_responses
            .len(),
        1
    );

    // A later edit of the RestApi is not what the stage serves: the export stays the snapshot.
    cluster.apply(&mock_api("exported", "2", "  description: edited"));
    eventually("the edit is seen", Duration::from_secs(30), || async {
        let spec = cluster.get("restapi/exported")?;
        (spec["spec"]["description"] == "edited").then_some(())
    })
    .await;
    let (status, body) = admin_get(node.admin, &path, "application/json").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#"{\"v\": \"1\"}"#), "{body}");

    // Swagger, as YAML; and AWS's errors.
    let swagger = format!("/restapis/{api_id}/stages/prod/exports/swagger");
    let (status, body) = admin_get(node.admin, &swagger, "application/yaml").await;
    assert_eq!(status, 200);
    assert!(body.contains("\nswagger: '2.0'\n"), "{body}");
    assert!(body.contains("basePath: /prod"), "{body}");
    // Without extensions: no integrations.
    assert!(!body.contains("x-amazon-apigateway"), "{body}");
    let (status, body) = admin_get(
        node.admin,
        "/restapis/nope123456/stages/prod/exports/oas30",
        "*/*",
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (404, r#"{"message":"Invalid API identifier specified"}"#)
    );
    let (status, body) = admin_get(
        node.admin,
        &format!("/restapis/{api_id}/stages/beta/exports/oas30"),
        "*/*",
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (404, r#"{"message":"Invalid stage identifier specified"}"#)
    );
    let (status, _) = admin_get(
        node.admin,
        &format!("/restapis/{api_id}/stages/prod/exports/postman"),
        "*/*",
    )
    .await;
    assert_eq!(status, 400);
    node.shutdown().await;
}
