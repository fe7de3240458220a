use super::*;

fn rest_api_spec(yaml: &str) -> api::RestApiSpec {
    serde_yaml::from_str(yaml).expect("RestApi spec")
}

fn stage_spec(yaml: &str) -> api::StageSpec {
    serde_yaml::from_str(yaml).expect("Stage spec")
}

fn errors<T: std::fmt::Debug>(r: Result<T, Vec<Invalid>>) -> Vec<(Reason, String)> {
    r.expect_err("invalid")
        .into_iter()
        .map(|e| (e.reason, e.to_string()))
        .collect()
}

#[test]
fn sibling_variables_are_a_route_conflict_not_an_invalid_path() {
    let spec = rest_api_spec(
        r#"
resources:
  /pets/{id}: {GET: {integration: {type: MOCK}}}
  /pets/{petId}/toys: {GET: {integration: {type: MOCK}}}
"#,
    );
    let errs = errors(rest_api("default", &spec));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, Reason::RouteConflict);
    assert!(
        errs[0].1.starts_with(r#"spec.resources["/pets/{petId}/toys"]: "#),
        "{errs:?}"
    );
}

#[test]
fn the_same_variable_below_one_parent_is_fine() {
    let spec = rest_api_spec(
        r#"
resources:
  /pets/{id}: {GET: {integration: {type: MOCK}}}
  /pets/{id}/toys: {GET: {integration: {type: MOCK}}}
  /pets/mine: {GET: {integration: {type: MOCK}}}
"#,
    );
    assert!(rest_api("default", &spec).is_ok());
}

#[test]
fn a_greedy_and_a_param_at_one_place_conflict() {
    let spec = rest_api_spec(
        r#"
resources:
  /files/{name}: {GET: {integration: {type: MOCK}}}
  /files/{proxy+}: {GET: {integration: {type: MOCK}}}
"#,
    );
    let errs = errors(rest_api("default", &spec));
    assert_eq!(errs[0].0, Reason::RouteConflict, "{errs:?}");
}

#[test]
fn timeout_errors_name_the_endpoint_type_as_users_write_it() {
    let spec = rest_api_spec(
        r#"
resources:
  /slow: {GET: {integration: {type: HTTP_PROXY, uri: "http://x/", timeoutInMillis: 30000}}}
"#,
    );
    let errs = errors(rest_api("default", &spec));
    assert!(errs[0].1.ends_with("50 to 29000 for EDGE APIs"), "{errs:?}");
}

#[test]
fn method_setting_throttle_errors_name_the_method_setting_fields() {
    let spec = stage_spec(
        r#"
restApiRef: {name: shop}
stageName: prod
deploymentRef: {name: shop-v1}
methodSettings:
  /pets/GET: {throttlingRateLimit: 5}
  /pets/POST: {throttlingRateLimit: -1, throttlingBurstLimit: -1}
"#,
    );
    let errs: Vec<String> = errors(stage(&spec)).into_iter().map(|(_, m)| m).collect();
    assert_eq!(
        errs,
        [
            r#"spec.methodSettings["/pets/GET"].throttlingBurstLimit: must be > 0 when throttlingRateLimit is set, or no request is ever admitted"#,
            r#"spec.methodSettings["/pets/POST"].throttlingRateLimit: -1 must be a number >= 0"#,
            r#"spec.methodSettings["/pets/POST"].throttlingBurstLimit: -1 must be >= 0"#,
        ]
    );
}

#[test]
fn stage_throttle_errors_name_the_throttle_fields() {
    let spec = stage_spec(
        r#"
restApiRef: {name: shop}
stageName: prod
deploymentRef: {name: shop-v1}
throttle: {rateLimit: 5}
"#,
    );
    let errs: Vec<String> = errors(stage(&spec)).into_iter().map(|(_, m)| m).collect();
    assert_eq!(
        errs,
        ["spec.throttle.burstLimit: must be > 0 when rateLimit is set, or no request is ever admitted"]
    );
}

#[test]
fn every_gateway_response_type_is_accepted_and_unknown_ones_are_named() {
    let mut yaml = String::from("gatewayResponses:\n");
    for t in ResponseType::ALL {
        yaml.push_str(&format!("  {t}: {{statusCode: \"418\"}}\n"));
    }
    let def = rest_api("default", &rest_api_spec(&yaml)).expect("valid");
    assert_eq!(def.gateway_responses.iter().count(), ResponseType::ALL.len());

    let spec = rest_api_spec(
        r#"
gatewayResponses:
  THROTLED: {statusCode: "429"}
  DEFAULT_4XX:
    statusCode: "99"
    responseParameters:
      gatewayresponse.header.x-a: "'fine'"
      method.response.header.x-b: "'wrong key'"
      gatewayresponse.header.x-c: context.nope
      gatewayresponse.header.x-d: integration.response.header.x
    responseTemplates:
      application/json: "{\"m\": $context.error.messageString}\n#if($x) open"
"#,
    );
    let errs = errors(rest_api("default", &spec));
    let fields: Vec<&str> = errs
        .iter()
        .map(|(r, m)| {
            // A template that does not parse is a mapping template error, with its line and
            // column; the rest are the gateway response's own.
            if m.contains("responseTemplates") {
                assert_eq!(*r, Reason::InvalidMappingTemplate, "{m}");
                assert!(m.contains(": line 2, column "), "{m}");
            } else {
                assert_eq!(*r, Reason::InvalidGatewayResponse, "{m}");
            }
            m.split(": ").next().unwrap_or_default()
        })
        .collect();
    assert_eq!(
        fields,
        [
            r#"spec.gatewayResponses["DEFAULT_4XX"].statusCode"#,
            r#"spec.gatewayResponses["DEFAULT_4XX"].responseParameters["gatewayresponse.header.x-c"]"#,
            r#"spec.gatewayResponses["DEFAULT_4XX"].responseParameters["gatewayresponse.header.x-d"]"#,
            r#"spec.gatewayResponses["DEFAULT_4XX"].responseParameters["method.response.header.x-b"]"#,
            r#"spec.gatewayResponses["DEFAULT_4XX"].responseTemplates["application/json"]"#,
            r#"spec.gatewayResponses["THROTLED"]"#,
        ],
        "{errs:?}"
    );
}

#[test]
fn cors_origins_methods_headers_and_credentials_are_validated_with_field_paths() {
    let ok = rest_api_spec(
        r#"
cors:
  allowOrigins: ["https://app.example.com", "https://*.example.org", "http://127.0.0.1:3000"]
  allowMethods: [GET, "*"]
  allowHeaders: ["*", X-Custom]
  exposeHeaders: [x-amzn-requestid]
  maxAge: 600
  allowCredentials: true
"#,
    );
    let cors = rest_api("default", &ok).expect("valid").cors.expect("cors");
    assert_eq!(cors.allow_headers, ["*", "x-custom"]);
    assert_eq!(cors.max_age, Some(Duration::from_secs(600)));

    let bad = rest_api_spec(
        r#"
cors:
  allowOrigins: ["https://app.example.com", "https://app.example.com/path", "*"]
  allowMethods: [GET, ANY]
  exposeHeaders: ["*"]
  maxAge: 90000
  allowCredentials: true
"#,
    );
    let errs = errors(rest_api("default", &bad));
    let got: Vec<(Reason, &str)> = errs
        .iter()
        .map(|(r, m)| (*r, m.split(": ").next().unwrap_or_default()))
        .collect();
    assert_eq!(
        got,
        [
            (Reason::InvalidCors, "spec.cors.allowOrigins[1]"),
            (Reason::InvalidCors, "spec.cors.allowOrigins[2]"),
            (Reason::InvalidCors, "spec.cors.allowMethods[1]"),
            (Reason::InvalidCors, "spec.cors.exposeHeaders[0]"),
            (Reason::InvalidCors, "spec.cors.maxAge"),
        ],
        "{errs:?}"
    );
    assert!(
        errs[1].1.contains("cannot be combined with allowCredentials"),
        "{errs:?}"
    );
}

#[test]
fn mapping_templates_that_do_not_parse_name_the_field_line_and_column() {
    let spec = rest_api_spec(
        r##"
resources:
  /pets:
    POST:
      integration:
        type: HTTP
        uri: "http://backend/pets"
        requestTemplates:
          application/json: "{\n  #if($input.path('$.a')\n}"
        integrationResponses:
          - statusCode: "200"
            responseTemplates:
              application/xml: "#foreach($x in $y)"
"##,
    );
    let errs = errors(rest_api("default", &spec));
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs.iter().all(|(r, _)| *r == Reason::InvalidMappingTemplate),
        "{errs:?}"
    );
    let messages: Vec<&str> = errs.iter().map(|(_, m)| m.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.starts_with(
            r#"spec.resources["/pets"].POST.integration.requestTemplates["application/json"]: line 3, column 1: expected ')' to close #if"#
        )),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with(
            r#"spec.resources["/pets"].POST.integration.integrationResponses[0].responseTemplates["application/xml"]: line 1, column 1: #foreach without its #end"#
        )),
        "{messages:?}"
    );
}

#[test]
fn passthrough_behavior_decides_a_payload_without_a_template() {
    use turnpike_core::model::RequestMapping;
    let integration = |behaviour: &str, templates: &str| {
        let spec = rest_api_spec(&format!(
            r#"
resources:
  /pets: {{POST: {{integration: {{type: HTTP, uri: "http://b/", {behaviour} requestTemplates: {templates}}}}}}}
"#
        ));
        let def = rest_api("default", &spec).expect("valid");
        let method = def.resources[0].methods.values().next().expect("method").clone();
        method.integration.clone()
    };
    let with_json = "{application/json: '{}'}";
    let xml = Some("application/xml");
    let json = Some("application/json; charset=utf-8");
    for (behaviour, templates, content_type, want) in [
        ("", with_json, json, "template"),
        ("", with_json, None, "template"),
        ("", with_json, xml, "passthrough"),
        (
            "passthroughBehavior: WHEN_NO_MATCH,",
            with_json,
            xml,
            "passthrough",
        ),
        ("passthroughBehavior: WHEN_NO_TEMPLATES,", with_json, xml, "415"),
        (
            "passthroughBehavior: WHEN_NO_TEMPLATES,",
            "{}",
            xml,
            "passthrough",
        ),
        ("passthroughBehavior: NEVER,", "{}", xml, "415"),
        ("passthroughBehavior: NEVER,", with_json, json, "template"),
        ("passthroughBehavior: NEVER,", with_json, xml, "415"),
    ] {
        let i = integration(behaviour, templates);
        let got = match i.request_mapping(content_type) {
            RequestMapping::Template(ct, _) => {
                assert_eq!(ct, "application/json");
                "template"
            }
            RequestMapping::Passthrough => "passthrough",
            RequestMapping::Unsupported => "415",
        };
        assert_eq!(got, want, "{behaviour} {templates} {content_type:?}");
    }
}
