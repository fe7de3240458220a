//! `RestApi.spec.openApi` end to end: the embedded API server, real kubectl and an in-process
//! replica. A document inline or in a labelled ConfigMap is imported, merged with or
//! overwriting the spec; import warnings are an `OpenApiImported` condition naming their JSON
//! pointer; a broken document makes only its API invalid; a ConfigMap edit is imported again
//! without a restart. Bounded waits only; nothing asserts on timing.
//!
//! ```sh
//! cargo test --test controller_openapi
//! ```

mod controller_support;
#[path = "support/proxy.rs"]
mod support;

use controller_support::*;
use http::Request;
use turnpike_controller::node::Node;

/// An OpenAPI 3.0 document (indented `indent` spaces) whose MOCK `GET /v` answers
/// `{"v": "<version>"}`, with `extra` paths after it (at the same indent as `/v`).
fn document(version: &str, extra: &str, indent: usize) -> String {
    let doc = format!(
        r#"openapi: 3.0.1
info: {{title: versions, version: "1"}}
paths:
  /v:
    get:
      x-amazon-apigateway-integration:
        type: mock
        requestTemplates: {{application/json: '{{"statusCode": 200}}'}}
        responses:
          default:
            statusCode: "200"
            responseTemplates: {{application/json: '{{"v": "{version}"}}'}}
{extra}"#
    );
    let pad = " ".repeat(indent);
    doc.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// An autoDeploy Stage `live` of RestApi `api`.
fn live_stage(api: &str) -> String {
    format!(
        "---\napiVersion: turnpike.dev/v1alpha1\nkind: Stage\nmetadata: {{name: {api}-live, namespace: default}}\nspec: {{restApiRef: {{name: {api}}}, stageName: live, autoDeploy: true}}\n"
    )
}

/// What `GET path` on stage `live` answers: (status, body).
async fn get(node: &Node, api_id: &str, path: &str) -> (u16, String) {
    let addr = node.public.expect("public listener");
    let req = Request::get(url(addr, api_id, "live", path))
        .body(support::empty())
        .expect("request");
    let a = support::send(&support::client(false), req).await;
    (a.status, a.body)
}

/// Waits until `GET path` answers 200 with `{"v": version}`.
async fn serves(node: &Node, api_id: &str, path: &str, version: &str) {
    let want = format!(r#"{{"v": "{version}"}}"#);
    eventually(&format!("{path} serves {version}"), DEADLINE, || async {
        let (status, body) = get(node, api_id, path).await;
        (status == 200 && body == want).then_some(())
    })
    .await;
}

/// Waits for a condition of `what` with `status` and `reason`; gives its message.
async fn condition(c: &Cluster, what: &str, type_: &str, status: &str, reason: &str) -> String {
    eventually(&format!("{what} {type_}={status} {reason}"), DEADLINE, || async {
        let cond = c.condition(what, type_)?;
        (cond["status"] == status && cond["reason"] == reason)
            .then(|| cond["message"].as_str().unwrap_or_default().to_string())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_documents_merge_warn_and_break_only_their_own_api() {
    let c = Cluster::start().await;
    let node = c.node("a").await;

    // Merge: the document's GET /v and GET /w, the spec's GET /v replacing the document's and
    // its GET /own extending it. The document's integration credentials are not carried.
    let extra = r#"  /w:
    get:
      x-amazon-apigateway-integration:
        type: mock
        credentials: arn:aws:iam::123456789012:role/apigw
        requestTemplates: {application/json: '{"statusCode": 200}'}
        responses:
          default:
            statusCode: "200"
            responseTemplates: {application/json: '{"v": "w-from-document"}'}
"#;
    let merged = mock_api(
        "merged",
        "from-spec",
        &format!("  openApi:\n    body: |\n{}", document("from-document", extra, 6)),
    )
    .replace("\n    /v:\n", "\n    /own:\n");
    c.apply(&(merged.clone() + &live_stage("merged")));
    let merged_id = c.api_id("merged").await;
    serves(&node, &merged_id, "/own", "from-spec").await;
    serves(&node, &merged_id, "/v", "from-document").await;
    serves(&node, &merged_id, "/w", "w-from-document").await;
    let message = condition(
        &c,
        "restapi/merged",
        "OpenApiImported",
        "True",
        "ImportedWithWarnings",
    )
    .await;
    assert!(
        message.contains("/paths/~1w/get/x-amazon-apigateway-integration/credentials"),
        "{message}"
    );

    // The spec's method of the same resource and verb wins over the document's.
    c.apply(&merged.replace("\n    /own:\n", "\n    /v:\n"));
    serves(&node, &merged_id, "/v", "from-spec").await;
    serves(&node, &merged_id, "/w", "w-from-document").await;

    // Overwrite: the document is the whole API; a spec that also has resources is refused
    // with the fields it sets.
    let overwrite = format!(
        "apiVersion: turnpike.dev/v1alpha1\nkind: RestApi\nmetadata: {{name: whole, namespace: default}}\nspec:\n  openApi:\n    mode: overwrite\n    body: |\n{}",
        document("whole", "", 6)
    );
    c.apply(&(overwrite.clone() + &live_stage("whole")));
    let whole_id = c.api_id("whole").await;
    serves(&node, &whole_id, "/v", "whole").await;
    condition(&c, "restapi/whole", "OpenApiImported", "True", "Imported").await;
    c.apply(&format!(
        "{overwrite}  resources:\n    /own:\n      GET:\n        integration: {{type: MOCK}}\n"
    ));
    let message = condition(&c, "restapi/whole", "Accepted", "False", "InvalidOpenApi").await;
    assert!(
        message.contains("spec.openApi") && message.contains("spec.resources"),
        "{message}"
    );
    condition(&c, "restapi/whole", "OpenApiImported", "False", "InvalidOpenApi").await;

    // A document that does not parse: that API is invalid and not served, the others are.
    c.apply(&format!(
        "apiVersion: turnpike.dev/v1alpha1\nkind: RestApi\nmetadata: {{name: broken, namespace: default}}\nspec:\n  openApi:\n    body: '{{\"openapi\": \"3.0.1\", \"paths\": {{'\n{}",
        live_stage("broken")
    ));
    let message = condition(&c, "restapi/broken", "Accepted", "False", "InvalidOpenApi").await;
    assert!(message.contains("spec.openApi"), "{message}");
    let broken_id = c.api_id("broken").await;
    let (status, _) = get(&node, &broken_id, "/v").await;
    assert_ne!(status, 200);
    serves(&node, &merged_id, "/w", "w-from-document").await;
    let (status, _) = get(&node, &merged_id, "/v").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_map_documents_are_imported_again_when_they_change() {
    let c = Cluster::start().await;
    let node = c.node("a").await;
    let config_map = |version: &str, label: bool| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: versions-doc\n  namespace: default\n{}data:\n  openapi.yaml: |\n{}",
            if label {
                "  labels: {turnpike.dev/openapi: \"true\"}\n"
            } else {
                ""
            },
            document(version, "", 4)
        )
    };
    let api = "apiVersion: turnpike.dev/v1alpha1\nkind: RestApi\nmetadata: {name: versions, namespace: default}\nspec:\n  openApi:\n    configMapKeyRef: {name: versions-doc, key: openapi.yaml}\n";

    // Without the label the controller does not see the ConfigMap: a condition, not a crash.
    c.apply(&format!(
        "{}---\n{api}{}",
        config_map("one", false),
        live_stage("versions")
    ));
    let message = condition(&c, "restapi/versions", "Accepted", "False", "ConfigMapNotFound").await;
    assert!(message.contains("turnpike.dev/openapi"), "{message}");

    // Labelled, it is imported; every edit of it is imported again, with no restart.
    c.apply(&config_map("one", true));
    let id = c.api_id("versions").await;
    serves(&node, &id, "/v", "one").await;
    condition(&c, "restapi/versions", "OpenApiImported", "True", "Imported").await;
    c.apply(&config_map("two", true));
    serves(&node, &id, "/v", "two").await;

    // A Deployment records the imported definition: later edits reach only autoDeploy stages.
    c.apply(&format!(
        "{}{}",
        support::deployment_yaml("default", "versions", "versions-v1"),
        support::stage_yaml("default", "versions", "prod", "versions-v1", "")
    ));
    let addr = node.public.expect("public");
    let prod = |path: &'static str| {
        let url = url(addr, &id, "prod", path);
        async move { support::get(&url).await }
    };
    eventually("prod serves two", DEADLINE, || async {
        let a = prod("/v").await;
        (a.status == 200 && a.body == r#"{"v": "two"}"#).then_some(())
    })
    .await;
    c.apply(&config_map("three", true));
    serves(&node, &id, "/v", "three").await;
    let a = prod("/v").await;
    assert_eq!(a.body, r#"{"v": "two"}"#);

    // A key that is not there is named.
    c.apply(&api.replace("key: openapi.yaml", "key: other.yaml"));
    let message = condition(
        &c,
        "restapi/versions",
        "OpenApiImported",
        "False",
        "ConfigMapNotFound",
    )
    .await;
    assert!(message.contains("other.yaml"), "{message}");
}
