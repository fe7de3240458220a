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
