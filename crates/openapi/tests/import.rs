//! Import of AWS-style OpenAPI documents (tests/openapi/ at the repository root): what each
//! becomes, and the warning (with its JSON pointer) for everything the spec cannot carry.

use std::path::PathBuf;

use pretty_assertions::assert_eq;
use turnpike_api::{
    convert,
    v1alpha1::rest_api::{
        ApiKeySource, AuthorizationType, AuthorizerType, ConnectionType, ContentHandling, EndpointType,
        IntegrationType, PassthroughBehavior,
    },
};
use turnpike_openapi::{ImportError, Imported, import};

fn fixture(name: &str) -> Imported {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/openapi")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("fixture");
    import(&text).expect("imports")
}

fn pointers(imported: &Imported) -> Vec<&str> {
    imported.warnings.iter().map(|w| w.pointer.as_str()).collect()
}

#[test]
fn swagger_json_with_http_integrations() {
    let i = fixture("petstore-http.swagger.json");
    assert_eq!(i.title.as_deref(), Some("PetStore"));
    assert_eq!(pointers(&i), Vec::<&str>::new(), "{:?}", i.warnings);
    let s = &i.spec;
    assert_eq!(
        s.description.as_deref(),
        Some("Your first API with Amazon API Gateway.")
    );
    assert_eq!(s.api_key_source, Some(ApiKeySource::Header));
    assert_eq!(s.binary_media_types, ["image/png", "application/octet-stream"]);
    assert_eq!(s.minimum_compression_size, Some(1024));
    assert!(s.request_validators["all"].validate_request_parameters);
    assert!(!s.request_validators["body-only"].validate_request_parameters);

    let get = &s.resources["/pets"]["GET"];
    assert_eq!(get.api_key_required, Some(true));
    assert_eq!(get.request_parameters["method.request.querystring.page"], false);
    assert_eq!(get.integration.type_, IntegrationType::Http);
    assert_eq!(get.integration.http_method.as_deref(), Some("GET"));
    assert_eq!(get.integration.timeout_in_millis, Some(10000));
    assert_eq!(
        get.integration.passthrough_behavior,
        Some(PassthroughBehavior::WhenNoMatch)
    );
    assert_eq!(
        get.integration.request_parameters["integration.request.querystring.type"],
        "method.request.querystring.type"
    );

    let post = &s.resources["/pets"]["POST"];
    assert_eq!(post.api_key_required, None);
    assert_eq!(post.request_validator_id.as_deref(), Some("body-only"));
    assert_eq!(post.request_models["application/json"], "NewPet");
    assert_eq!(
        post.integration.passthrough_behavior,
        Some(PassthroughBehavior::Never)
    );
    assert!(post.integration.request_templates["application/json"].contains("$input.json('$.type')"));
    // Selection patterns first, the default last.
    let responses: Vec<_> = post
        .integration
        .integration_responses
        .iter()
        .map(|r| (r.selection_pattern.as_deref(), r.status_code.as_str()))
        .collect();
    assert_eq!(
        responses,
        [(Some("4\\d{2}"), "400"), (Some("5\\d{2}"), "500"), (None, "200")]
    );
    assert!(
        post.integration.integration_responses[0].response_templates["application/json"]
            .contains("$.message")
    );

    let pet = &s.resources["/pets/{petId}"]["GET"];
    assert_eq!(pet.request_parameters["method.request.path.petId"], true);
    assert_eq!(
        pet.integration.content_handling,
        Some(ContentHandling::ConvertToText)
    );
    assert_eq!(
        pet.integration.cache_key_parameters,
        ["method.request.path.petId"]
    );
    assert_eq!(pet.integration.cache_namespace.as_deref(), Some("pets"));

    // Models keep their references, in the spec's own form.
    assert_eq!(
        s.models["NewPet"].schema["properties"]["type"]["$ref"],
        "#/models/PetType"
    );
    // Valid but for the HTTP request templates, which the template engine gives meaning to.
    if let Err(errors) = convert::rest_api("default", s) {
        assert!(
            errors
                .iter()
                .all(|e| format!("{e:?}").contains("requestTemplates")),
            "{errors:?}"
        );
    }
}

#[test]
fn oas30_yaml_with_mock_cors_gateway_responses_and_policy() {
    let i = fixture("mock-cors.oas30.yaml");
    assert_eq!(pointers(&i), Vec::<&str>::new(), "{:?}", i.warnings);
    let s = &i.spec;
    assert_eq!(
        s.endpoint_configuration.as_ref().map(|e| e.types.clone()),
        Some(vec![EndpointType::Regional])
    );
    let health = &s.resources["/health"]["GET"].integration;
    assert_eq!(health.type_, IntegrationType::Mock);
    assert_eq!(
        health.passthrough_behavior,
        Some(PassthroughBehavior::WhenNoTemplates)
    );
    // A numeric status code in YAML is read as the string AWS has.
    assert_eq!(health.integration_responses[0].status_code, "200");
    let options = &s.resources["/health"]["OPTIONS"].integration;
    assert_eq!(
        options.integration_responses[0].response_parameters["method.response.header.Access-Control-Allow-Methods"],
        "'GET,OPTIONS'"
    );
    let cors = s.cors.as_ref().expect("cors");
    assert_eq!(cors.allow_origins, ["https://app.example.com"]);
    assert_eq!(cors.max_age, Some(300));
    assert_eq!(cors.allow_credentials, Some(true));
    assert_eq!(
        s.gateway_responses["MISSING_AUTHENTICATION_TOKEN"]
            .status_code
            .as_deref(),
        Some("404")
    );
    assert_eq!(
        s.gateway_responses["DEFAULT_4XX"].response_parameters["gatewayresponse.header.Access-Control-Allow-Origin"],
        "'*'"
    );
    let policy = s.policy.as_ref().expect("policy");
    assert_eq!(policy.allow[0].source_cidrs, ["0.0.0.0/0", "::/0"]);
    assert_eq!(policy.deny[0].source_cidrs, ["192.0.2.0/24", "198.51.100.7/32"]);
    convert::rest_api("default", s).expect("a valid RestApi");
}

#[test]
fn oas30_json_vpc_link_with_refs_and_every_unsupported_construct_warned() {
    let i = fixture("vpc-link-proxy.oas30.json");
    let s = &i.spec;
    let post = &s.resources["/orders"]["POST"];
    assert_eq!(post.api_key_required, Some(true));
    assert_eq!(post.request_validator_id.as_deref(), Some("all"));
    // Through components.parameters and components.requestBodies.
    assert_eq!(
        post.request_parameters["method.request.header.x-request-id"],
        true
    );
    assert_eq!(post.request_models["application/json"], "Order");
    assert_eq!(post.integration.connection_type, Some(ConnectionType::VpcLink));
    let service = post.integration.service_ref.as_ref().expect("serviceRef");
    assert_eq!((service.name.as_str(), service.port), ("orders", 8080));
    assert_eq!(
        s.models["Order"].schema["properties"]["lines"]["items"]["$ref"],
        "#/models/Line"
    );
    let any = &s.resources["/orders/{proxy+}"]["ANY"];
    assert_eq!(any.request_parameters["method.request.path.proxy"], true);
    assert!(any.integration.service_ref.is_none());
    // The Lambda method is an AWS_PROXY integration, which needs its function host set.
    let invoices = &s.resources["/invoices"]["GET"].integration;
    assert_eq!(invoices.type_, IntegrationType::AwsProxy);
    assert!(invoices.function_host.is_none());
    // The Cognito user pool is an authorizer with the pool's issuer.
    let cognito = &s.authorizers["cognito"];
    assert_eq!(cognito.type_, AuthorizerType::CognitoUserPools);
    assert_eq!(
        cognito.jwt_configuration.as_ref().map(|j| j.issuer.as_str()),
        Some("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc")
    );
    assert_eq!(any.authorizer_id.as_deref(), Some("cognito"));
    assert_eq!(any.authorization_type, Some(AuthorizationType::CognitoUserPools));
    assert_eq!(
        s.endpoint_configuration.as_ref().map(|e| e.types.clone()),
        Some(vec![EndpointType::Private])
    );

    let mut got: Vec<(&str, &str)> = i
        .warnings
        .iter()
        .map(|w| (w.pointer.as_str(), w.message.as_str()))
        .collect();
    got.sort();
    let expected = [
        (
            "/paths/~1invoices/get/x-amazon-apigateway-integration",
            "the function runs on a host speaking the Lambda Invoke API: set integration.functionHost",
        ),
        (
            "/paths/~1invoices/get/x-amazon-apigateway-integration/credentials",
            "the integration member \"credentials\" is not supported; ignored",
        ),
        (
            "/paths/~1orders~1{proxy+}/x-amazon-apigateway-any-method/x-amazon-apigateway-integration/connectionId",
            "connectionId names an AWS VPC link; a private integration calls an in-cluster Service: set integration.serviceRef",
        ),
        (
            "/x-amazon-apigateway-documentation",
            "the extension x-amazon-apigateway-documentation is not supported; ignored",
        ),
        (
            "/x-amazon-apigateway-endpoint-configuration/vpcEndpointIds",
            "the member \"vpcEndpointIds\" is not supported; ignored",
        ),
    ];
    assert_eq!(got, expected);
}

#[test]
fn swagger_yaml_http_proxy_with_api_keys_and_a_default_validator() {
    let i = fixture("http-proxy-keys.swagger.yaml");
    let s = &i.spec;
    assert_eq!(s.api_key_source, Some(ApiKeySource::Authorizer));
    let get = &s.resources["/items"]["GET"];
    // The document's `security` applies where an operation has none; its validator too.
    assert_eq!(get.api_key_required, Some(true));
    assert_eq!(get.request_validator_id.as_deref(), Some("params"));
    assert_eq!(get.request_parameters["method.request.querystring.q"], true);
    assert_eq!(get.request_parameters["method.request.header.x-tenant"], false);
    assert_eq!(get.integration.type_, IntegrationType::HttpProxy);
    assert!(get.integration.integration_responses.is_empty());
    assert!(
        get.integration
            .tls_config
            .as_ref()
            .is_some_and(|t| t.insecure_skip_verification)
    );
    let post = &s.resources["/items"]["POST"];
    // `security: []` opts out.
    assert_eq!(post.api_key_required, None);
    // The document's `consumes` names the body's content type.
    assert_eq!(post.request_models["application/json"], "Item");
    assert_eq!(pointers(&i), ["/paths/~1items/post/parameters/1/in"]);
    convert::rest_api("default", s).expect("a valid RestApi");
}

#[test]
fn documents_that_are_not_openapi_are_errors() {
    assert!(matches!(import("{"), Err(ImportError::Syntax(_))));
    assert!(matches!(import("- a\n- b\n"), Err(ImportError::NotOpenApi(_))));
    assert!(matches!(
        import("openapi: 3.1.0\npaths: {}\n"),
        Err(ImportError::NotOpenApi(_))
    ));
    assert!(matches!(
        import("swagger: '1.2'\n"),
        Err(ImportError::NotOpenApi(_))
    ));
    let huge = format!(
        "swagger: '2.0'\ninfo: {{title: '{}'}}\n",
        "x".repeat(turnpike_openapi::MAX_DOCUMENT_BYTES)
    );
    assert!(matches!(import(&huge), Err(ImportError::TooLarge(_))));
}

#[test]
fn wrong_types_are_warnings_not_failures() {
    let doc = r#"
openapi: 3.0.0
info: {title: t, version: "1"}
x-amazon-apigateway-minimum-compression-size: lots
x-amazon-apigateway-binary-media-types: 7
x-amazon-apigateway-policy: "not json"
x-widget: 1
paths:
  /a:
    trace: {}
    get:
      parameters: {}
      x-amazon-apigateway-integration:
        type: mock
        timeoutInMillis: [1]
        passthroughBehavior: sometimes
        responses:
          default: {}
    put: {}
"#;
    let i = import(doc).expect("imports");
    assert_eq!(
        pointers(&i),
        [
            "/x-amazon-apigateway-binary-media-types",
            "/x-amazon-apigateway-minimum-compression-size",
            "/x-amazon-apigateway-policy",
            "/x-widget",
            "/paths/~1a/get/x-amazon-apigateway-integration/passthroughBehavior",
            "/paths/~1a/get/x-amazon-apigateway-integration/timeoutInMillis",
            "/paths/~1a/get/x-amazon-apigateway-integration/responses/default",
            "/paths/~1a/get/parameters",
            "/paths/~1a/put",
            "/paths/~1a/trace",
        ]
    );
    assert_eq!(i.spec.resources["/a"].len(), 1);
}
