//! Export then import gives back an equivalent RestApi: for every RestApi of config/examples and
//! of the import fixtures (tests/openapi), in both document types, as JSON and as YAML, with
//! no warning on the way back in.

use std::path::{Path, PathBuf};

use pretty_assertions::assert_eq;
use turnpike_api::{
    RestApiSpec,
    v1alpha1::rest_api::{FunctionHostSpec, IntegrationType, PolicyRule, ProtocolType, ResourcePolicy},
};
use turnpike_openapi::{ExportError, ExportOptions, ExportType, Extensions, export, import};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every REST RestApi spec in the YAML files of a directory, with its file and name.
/// WEBSOCKET APIs have routes, not paths: OpenAPI cannot describe them and export refuses them
/// (`websocket_api_is_not_exported`).
fn rest_apis(dir: &Path) -> Vec<(String, RestApiSpec)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut specs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("file");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: serde_yaml::Value = serde::Deserialize::deserialize(doc).expect("yaml");
            if value.get("kind").and_then(|k| k.as_str()) == Some("RestApi") {
                let name = format!(
                    "{}:{}",
                    file.display(),
                    value["metadata"]["name"].as_str().unwrap_or("?")
                );
                let mut spec: RestApiSpec =
                    serde_yaml::from_value(value["spec"].clone()).expect("RestApi spec");
                if let Some(source) = spec.open_api.take() {
                    // What the controller serves: the document imported, the spec's resources
                    // merged over it (the controller's merge; these examples set only resources).
                    let body = source.body.expect("examples carry their document inline");
                    let mut imported = import(&body).expect("the example's document imports").spec;
                    for (path, methods) in std::mem::take(&mut spec.resources) {
                        imported.resources.entry(path).or_default().extend(methods);
                    }
                    assert_eq!(
                        spec,
                        RestApiSpec::default(),
                        "{name}: only resources beside openApi"
                    );
                    spec = imported;
                }
                if spec.protocol_type == ProtocolType::Websocket {
                    continue;
                }
                specs.push((name, spec));
            }
        }
    }
    specs
}

/// The spec with everything that has two equivalent spellings written one way.
fn normalized(spec: &RestApiSpec) -> RestApiSpec {
    let mut s = spec.clone();
    for (path, methods) in &mut s.resources {
        for m in methods.values_mut() {
            if m.api_key_required == Some(false) {
                m.api_key_required = None;
            }
            // Path parameters are always there, and always required.
            for segment in path.split('/') {
                if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    m.request_parameters.insert(
                        format!("method.request.path.{}", name.trim_end_matches('+')),
                        true,
                    );
                }
            }
            m.integration.integration_responses.sort_by(|a, b| {
                (a.selection_pattern.is_none(), &a.selection_pattern)
                    .cmp(&(b.selection_pattern.is_none(), &b.selection_pattern))
            });
        }
    }
    for model in s.models.values_mut() {
        if model.content_type.as_deref() == Some("application/json") {
            model.content_type = None;
        }
        if let serde_json::Value::String(text) = &model.schema {
            model.schema = serde_json::from_str(text).expect("a JSON schema");
        }
    }
    if let Some(policy) = &mut s.policy {
        // A rule on addresses and namespaces is one rule on each.
        let split = |rules: &[PolicyRule]| -> Vec<PolicyRule> {
            rules
                .iter()
                .flat_map(|r| {
                    let cidrs = (!r.source_cidrs.is_empty()).then(|| PolicyRule {
                        source_cidrs: r.source_cidrs.clone(),
                        source_namespaces: Vec::new(),
                    });
                    let namespaces = (!r.source_namespaces.is_empty()).then(|| PolicyRule {
                        source_cidrs: Vec::new(),
                        source_namespaces: r.source_namespaces.clone(),
                    });
                    cidrs.into_iter().chain(namespaces)
                })
                .collect()
        };
        *policy = ResourcePolicy {
            allow: split(&policy.allow),
            deny: split(&policy.deny),
        };
    }
    s
}

fn options(kind: ExportType) -> ExportOptions {
    ExportOptions {
        kind,
        extensions: "integrations,authorizers,apigateway".parse().expect("extensions"),
        title: "api".into(),
        version: "1".into(),
        host: Some("abcdefghij.execute-api.local.turnpike.dev".into()),
        stage: Some("prod".into()),
    }
}

fn assert_round_trip(name: &str, spec: &RestApiSpec) {
    for kind in [ExportType::Oas30, ExportType::Swagger] {
        let doc = export(spec, &options(kind)).expect("exports");
        for text in [
            serde_json::to_string_pretty(&doc).expect("json"),
            serde_yaml::to_string(&doc).expect("yaml"),
        ] {
            let back = import(&text).unwrap_or_else(|e| panic!("{name} ({kind}): {e}"));
            assert_eq!(back.warnings, [], "{name} ({kind})");
            assert_eq!(back.title.as_deref(), Some("api"));
            assert_eq!(normalized(&back.spec), normalized(spec), "{name} ({kind})");
        }
    }
}

#[test]
fn every_example_round_trips() {
    let specs = rest_apis(&repo().join("config/examples"));
    assert!(specs.len() >= 8, "{} RestApis in config/examples", specs.len());
    for (name, spec) in &specs {
        assert_round_trip(name, spec);
    }
}

#[test]
fn every_import_fixture_round_trips() {
    let dir = repo().join("tests/openapi");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("fixture");
        let mut spec = import(&text).expect("imports").spec;
        // As its import warning asks: an AWS_PROXY integration gets its function host.
        for m in spec.resources.values_mut().flat_map(|m| m.values_mut()) {
            if m.integration.type_ == IntegrationType::AwsProxy && m.integration.function_host.is_none() {
                m.integration.function_host = Some(FunctionHostSpec {
                    url: Some("http://127.0.0.1:9000".into()),
                    service_ref: None,
                });
            }
        }
        assert_round_trip(&path.display().to_string(), &spec);
        count += 1;
    }
    assert!(count >= 4);
}

/// The shipped OpenAPI examples import cleanly into valid RestApis, and round-trip.
#[test]
fn shipped_openapi_examples_import_cleanly() {
    let dir = repo().join("config/openapi");
    for entry in std::fs::read_dir(&dir).expect("config/openapi") {
        let path = entry.expect("entry").path();
        let imported = import(&std::fs::read_to_string(&path).expect("read")).expect("imports");
        assert_eq!(imported.warnings, [], "{}", path.display());
        turnpike_api::convert::rest_api("default", &imported.spec).expect("a valid RestApi");
        assert_round_trip(&path.display().to_string(), &imported.spec);
    }
}

#[test]
fn without_extensions_the_export_is_plain_openapi() {
    let specs = rest_apis(&repo().join("config/examples"));
    for kind in [ExportType::Oas30, ExportType::Swagger] {
        let mut o = options(kind);
        o.extensions = Extensions::default();
        for (name, spec) in &specs {
            let text = export(spec, &o).expect("exports").to_string();
            assert!(!text.contains("x-amazon-apigateway"), "{name} ({kind})");
        }
        o.extensions = "integrations".parse().expect("extensions");
        let (_, spec) = &specs[0];
        let doc = export(spec, &o).expect("exports");
        let text = doc.to_string();
        assert!(text.contains("x-amazon-apigateway-integration"));
        assert!(!text.contains("x-amazon-apigateway-endpoint-configuration"));
    }
    assert!("postman".parse::<Extensions>().is_err());
}

#[test]
fn export_has_aws_shape() {
    let (_, spec) = rest_apis(&repo().join("config/examples"))
        .into_iter()
        .find(|(n, _)| n.ends_with(":orders"))
        .expect("the validation example");
    let oas = export(&spec, &options(ExportType::Oas30)).expect("exports");
    assert_eq!(oas["openapi"], "3.0.1");
    assert_eq!(
        oas["servers"][0]["url"],
        "https://abcdefghij.execute-api.local.turnpike.dev/{basePath}"
    );
    assert_eq!(oas["servers"][0]["variables"]["basePath"]["default"], "prod");
    assert_eq!(
        oas["components"]["schemas"]["Order"]["properties"]["items"]["items"]["$ref"],
        "#/components/schemas/Item"
    );
    let post = &oas["paths"]["/orders"]["post"];
    assert_eq!(
        post["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Order"
    );
    assert_eq!(post["x-amazon-apigateway-request-validator"], "all");
    assert_eq!(post["x-amazon-apigateway-integration"]["type"], "mock");
    let swagger = export(&spec, &options(ExportType::Swagger)).expect("exports");
    assert_eq!(swagger["swagger"], "2.0");
    assert_eq!(swagger["basePath"], "/prod");
    assert_eq!(swagger["host"], "abcdefghij.execute-api.local.turnpike.dev");
    assert_eq!(
        swagger["definitions"]["Order"]["properties"]["items"]["items"]["$ref"],
        "#/definitions/Item"
    );
    assert_eq!(swagger["paths"]["/orders"]["post"]["parameters"][1]["in"], "body");
    assert_eq!(swagger["x-amazon-apigateway-minimum-compression-size"], 1024);
}

#[test]
fn websocket_api_is_not_exported() {
    let spec = RestApiSpec {
        protocol_type: ProtocolType::Websocket,
        ..RestApiSpec::default()
    };
    for kind in [ExportType::Oas30, ExportType::Swagger] {
        let err = export(&spec, &options(kind)).expect_err("a WEBSOCKET API");
        assert!(matches!(err, ExportError::WebSocket));
        assert!(err.to_string().contains("WEBSOCKET"), "{err}");
    }
}

#[test]
fn authorizers_and_function_integrations_have_aws_shape() {
    let (_, spec) = rest_apis(&repo().join("config/examples"))
        .into_iter()
        .find(|(n, _)| n.ends_with(":guarded"))
        .expect("the authorizers example");
    let oas = export(&spec, &options(ExportType::Oas30)).expect("exports");
    let schemes = &oas["components"]["securitySchemes"];
    let bearer = &schemes["bearer"];
    assert_eq!(bearer["type"], "apiKey");
    assert_eq!(bearer["name"], "Authorization");
    assert_eq!(bearer["x-amazon-apigateway-authtype"], "custom");
    let authorizer = &bearer["x-amazon-apigateway-authorizer"];
    assert_eq!(authorizer["type"], "token");
    assert_eq!(authorizer["authorizerResultTtlInSeconds"], 300);
    assert_eq!(
        authorizer["identitySource"],
        "method.request.header.Authorization"
    );
    assert!(
        authorizer["authorizerUri"]
            .as_str()
            .is_some_and(|u| u.starts_with("arn:aws:apigateway:"))
    );
    assert_eq!(
        authorizer["x-turnpike-function-host"]["serviceRef"],
        serde_json::json!({"name": "petstore", "port": 80})
    );
    let oidc = &schemes["oidc"]["x-amazon-apigateway-authorizer"];
    assert_eq!(oidc["type"], "jwt");
    assert_eq!(oidc["jwtConfiguration"]["audience"][0], "pets-api");
    assert_eq!(
        schemes["tenant"]["x-amazon-apigateway-authorizer"]["type"],
        "request"
    );
    assert_eq!(
        oas["paths"]["/pets"]["get"]["security"],
        serde_json::json!([{"oidc": ["pets/read"]}])
    );
    let swagger = export(&spec, &options(ExportType::Swagger)).expect("exports");
    assert_eq!(
        swagger["securityDefinitions"]["bearer"]["x-amazon-apigateway-authtype"],
        "custom"
    );
    // Without the authorizers extension, the schemes stay, plain.
    let mut o = options(ExportType::Oas30);
    o.extensions = "integrations".parse().expect("extensions");
    let plain = export(&spec, &o).expect("exports");
    assert!(!plain.to_string().contains("x-amazon-apigateway-authorizer"));
}
