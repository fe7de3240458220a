//! `turnpike openapi import|export`, run as a user runs them: the binary, files in and
//! manifests or documents out.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use turnpike_api::RestApi;

fn turnpike(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_turnpike"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("turnpike runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("turnpike exits")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/openapi")
        .join(name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn import_prints_a_rest_api_manifest_and_warnings_on_stderr() {
    let path = fixture("vpc-link-proxy.oas30.json");
    let out = turnpike(
        &["openapi", "import", path.to_str().expect("path"), "-n", "shop"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let api: RestApi = serde_yaml::from_slice(&out.stdout).expect("a RestApi manifest");
    // Named after info.title, in the namespace asked for.
    assert_eq!(api.metadata.name.as_deref(), Some("orders-private"));
    assert_eq!(api.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(api.spec.resources["/orders"]["POST"].api_key_required, Some(true));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "warning: /paths/~1invoices/get/x-amazon-apigateway-integration: the function runs on a host speaking the Lambda Invoke API: set integration.functionHost"
        ),
        "{stderr}"
    );
    // The Cognito scheme is an authorizer now: no warning, the method names it.
    assert!(
        !stderr.contains("/components/securitySchemes/cognito"),
        "{stderr}"
    );
    assert_eq!(
        api.spec.resources["/orders/{proxy+}"]["ANY"]
            .authorizer_id
            .as_deref(),
        Some("cognito")
    );

    // --strict refuses a document with anything left out; --name names the RestApi.
    let strict = turnpike(
        &["openapi", "import", path.to_str().expect("path"), "--strict"],
        None,
    );
    assert!(!strict.status.success());
    assert!(strict.stdout.is_empty());
    let clean = fixture("mock-cors.oas30.yaml");
    let named = turnpike(
        &[
            "openapi",
            "import",
            clean.to_str().expect("path"),
            "--strict",
            "--name",
            "health",
        ],
        None,
    );
    assert!(named.status.success(), "{}", text(&named.stderr));
    assert!(named.stderr.is_empty(), "{}", text(&named.stderr));
    let api: RestApi = serde_yaml::from_slice(&named.stdout).expect("a RestApi manifest");
    assert_eq!(api.metadata.name.as_deref(), Some("health"));
}

#[test]
fn import_of_a_document_that_is_not_openapi_fails() {
    let out = turnpike(&["openapi", "import", "-"], Some("kind: ConfigMap\n"));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not an OpenAPI document"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn export_then_import_through_the_binary_gives_the_same_rest_api() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/validation.yaml");
    for kind in ["oas30", "swagger"] {
        for output in ["json", "yaml"] {
            let out = turnpike(
                &[
                    "openapi",
                    "export",
                    example.to_str().expect("path"),
                    "--type",
                    kind,
                    "--stage",
                    "prod",
                    "-o",
                    output,
                ],
                None,
            );
            assert!(out.status.success(), "{}", text(&out.stderr));
            let doc = text(&out.stdout);
            assert!(doc.contains("x-amazon-apigateway-request-validators"), "{doc}");
            let back = turnpike(&["openapi", "import", "-", "--strict"], Some(&doc));
            assert!(back.status.success(), "{kind} {output}: {}", text(&back.stderr));
            let api: RestApi = serde_yaml::from_slice(&back.stdout).expect("a RestApi manifest");
            assert_eq!(api.metadata.name.as_deref(), Some("orders"));
            assert_eq!(
                api.spec.resources["/orders"]["POST"].request_models["application/json"],
                "Order"
            );
            assert_eq!(api.spec.minimum_compression_size, Some(1024));
        }
    }
    // Without extensions: plain OpenAPI, which imports to methods without integrations.
    let plain = turnpike(
        &[
            "openapi",
            "export",
            example.to_str().expect("path"),
            "--extensions",
            "",
        ],
        None,
    );
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    assert!(!text(&plain.stdout).contains("x-amazon-apigateway"));
}

#[test]
fn export_of_a_websocket_api_fails() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/websocket.yaml");
    let out = turnpike(&["openapi", "export", example.to_str().expect("path")], None);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("a WEBSOCKET API has routes, not resources"),
        "{}",
        text(&out.stderr)
    );
}
