use std::{sync::Arc, time::Duration};

use super::*;
use crate::model::{
    ApiId, ApiKeySource, Backend, EndpointType, Integration, IntegrationKind, MethodDef, MethodKey,
    ObjectKey, PathTemplate, ResourcePolicy,
};
use crate::routing::{
    ApiEntry, HostSettings, ResourceEntry, RouteSet, RoutingTable, StageEntry, StageVariant, TableParts,
};

const ID: &str = "a1b2c3d4e5";
const HOST: &str = "a1b2c3d4e5.execute-api.local.turnpike.dev";

fn mk_method() -> Arc<MethodDef> {
    Arc::new(MethodDef {
        api_key_required: false,
        auth: Default::default(),
        required_parameters: Box::default(),
        validation: None,
        integration: Integration {
            kind: IntegrationKind::Mock,
            backend: Backend::None,
            http_method: None,
            timeout: Duration::from_secs(29),
            request_parameters: Box::default(),
            responses: Box::default(),
            insecure_skip_verify: false,
            content_handling: None,
            cache_key_parameters: Box::default(),
            cache_namespace: None,
            request_templates: Box::default(),
            passthrough_behavior: Default::default(),
        },
    })
}

/// A route set of `(path, [methods])`, explicit methods before ANY as compile orders them.
fn mk_routes(resources: &[(&str, &[MethodKey])]) -> RouteSet {
    let entries = resources
        .iter()
        .map(|(path, methods)| {
            let mut methods: Vec<MethodKey> = methods.to_vec();
            methods.sort();
            ResourceEntry {
                path: PathTemplate::parse(path).expect(path),
                id: "abcdef".into(),
                methods: methods.into_iter().map(|m| (m, mk_method())).collect(),
            }
        })
        .collect();
    RouteSet::new(entries).expect("no conflict")
}

fn mk_table(endpoint_type: EndpointType, routes: RouteSet) -> RoutingTable {
    let routes = Arc::new(routes);
    let stage = StageEntry {
        name: "prod".into(),
        object: ObjectKey::new("default", "shop-prod"),
        primary: Arc::new(StageVariant {
            deployment_id: "abc123".into(),
            variables: Arc::default(),
            routes,
            is_canary: false,
        }),
        canary: None,
        throttle: None,
        method_settings: Vec::new(),
        cache_enabled: false,
        cache_budget: 0,
        cache_flush: None,
        access_log: None,
        plans: Default::default(),
    };
    let api = ApiEntry {
        id: ApiId::parse(ID).expect("id"),
        object: ObjectKey::new("default", "shop"),
        endpoint_type,
        api_key_source: ApiKeySource::Header,
        policy: ResourcePolicy::default(),
        gateway_responses: Default::default(),
        cors: None,
        stages: [("prod".to_string(), Arc::new(stage))].into_iter().collect(),
        binary_media_types: Default::default(),
        minimum_compression_size: None,
    };
    RoutingTable::new(
        1,
        TableParts {
            hosts: HostSettings::default(),
            apis: vec![api],
            ..Default::default()
        },
    )
}

fn shop() -> RoutingTable {
    mk_table(
        EndpointType::Regional,
        mk_routes(&[
            ("/", &[MethodKey::Get]),
            ("/pets", &[MethodKey::Get, MethodKey::Any]),
            ("/pets/mine", &[MethodKey::Get]),
            ("/pets/{id}", &[MethodKey::Get]),
            ("/{proxy+}", &[MethodKey::Any]),
        ]),
    )
}

/// `resource METHOD params` of a request on the public listener, or the miss.
fn find(table: &RoutingTable, host: Option<&str>, method: &str, path: &str) -> Result<String, Miss> {
    let method = http::Method::from_bytes(method.as_bytes()).expect("method");
    let (located, m) = table.find(Listener::Public, host, path, &method)?;
    let params: Vec<String> = m.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(format!(
        "{} {} {} [{}]",
        located.stage.name,
        m.resource.path,
        m.method,
        params.join(",")
    ))
}

fn get(table: &RoutingTable, path: &str) -> Result<String, Miss> {
    find(table, Some(HOST), "GET", path)
}

// === precedence ===

#[test]
fn a_literal_beats_a_param_which_beats_a_greedy() {
    let t = shop();
    assert_eq!(get(&t, "/prod/pets/mine"), Ok("prod /pets/mine GET []".into()));
    assert_eq!(get(&t, "/prod/pets/42"), Ok("prod /pets/{id} GET [id=42]".into()));
    assert_eq!(
        get(&t, "/prod/pets/42/toys"),
        Ok("prod /{proxy+} ANY [proxy=pets/42/toys]".into())
    );
    assert_eq!(
        get(&t, "/prod/other"),
        Ok("prod /{proxy+} ANY [proxy=other]".into())
    );
}

#[test]
fn an_explicit_method_beats_any() {
    let t = shop();
    assert_eq!(get(&t, "/prod/pets"), Ok("prod /pets GET []".into()));
    assert_eq!(
        find(&t, Some(HOST), "POST", "/prod/pets"),
        Ok("prod /pets ANY []".into())
    );
}

#[test]
fn a_resource_without_the_method_or_any_misses_method() {
    let t = shop();
    assert_eq!(find(&t, Some(HOST), "POST", "/prod/pets/mine"), Err(Miss::Method));
    // Methods a resource cannot declare match ANY only.
    assert_eq!(
        find(&t, Some(HOST), "TRACE", "/prod/pets/mine"),
        Err(Miss::Method)
    );
    assert_eq!(
        find(&t, Some(HOST), "TRACE", "/prod/pets"),
        Ok("prod /pets ANY []".into())
    );
}

#[test]
fn the_stage_root_is_the_root_resource() {
    let t = shop();
    assert_eq!(get(&t, "/prod"), Ok("prod / GET []".into()));
    assert_eq!(get(&t, "/prod/"), Ok("prod / GET []".into()));
}

#[test]
fn a_trailing_slash_is_ignored() {
    let t = shop();
    assert_eq!(get(&t, "/prod/pets/"), Ok("prod /pets GET []".into()));
    assert_eq!(
        get(&t, "/prod/pets/42/"),
        Ok("prod /pets/{id} GET [id=42]".into())
    );
}

#[test]
fn a_greedy_needs_at_least_one_segment() {
    let t = mk_table(
        EndpointType::Regional,
        mk_routes(&[("/files/{proxy+}", &[MethodKey::Get])]),
    );
    assert_eq!(get(&t, "/prod/files"), Err(Miss::Resource));
    assert_eq!(get(&t, "/prod/files/"), Err(Miss::Resource));
    assert_eq!(
        get(&t, "/prod/files/a/b.txt"),
        Ok("prod /files/{proxy+} GET [proxy=a/b.txt]".into())
    );
}

#[test]
fn params_keep_percent_encoding() {
    let t = shop();
    assert_eq!(
        get(&t, "/prod/pets/a%2Fb"),
        Ok("prod /pets/{id} GET [id=a%2Fb]".into())
    );
}

#[test]
fn paths_are_case_sensitive() {
    let t = mk_table(EndpointType::Regional, mk_routes(&[("/pets", &[MethodKey::Get])]));
    assert_eq!(get(&t, "/prod/Pets"), Err(Miss::Resource));
    assert_eq!(get(&t, "/Prod/pets"), Err(Miss::Stage));
}

#[test]
fn an_unknown_stage_misses_stage() {
    let t = shop();
    assert_eq!(get(&t, "/dev/pets"), Err(Miss::Stage));
    assert_eq!(get(&t, "/"), Err(Miss::Stage));
    assert_eq!(get(&t, ""), Err(Miss::Stage));
}

// === hosts ===

#[test]
fn hosts_may_carry_a_port_and_any_case() {
    let t = shop();
    for host in [
        HOST,
        "a1b2c3d4e5.execute-api.local.turnpike.dev:8443",
        "a1b2c3d4e5.EXECUTE-API.Local.Turnpike.Dev",
        "a1b2c3d4e5.execute-api.local.turnpike.dev:443",
    ] {
        assert_eq!(
            find(&t, Some(host), "GET", "/prod/pets"),
            Ok("prod /pets GET []".into()),
            "{host}"
        );
    }
}

#[test]
fn the_api_id_is_case_sensitive() {
    // Ids are lower case; an upper-case id names no API.
    let t = shop();
    let host = "A1B2C3D4E5.execute-api.local.turnpike.dev";
    assert_eq!(find(&t, Some(host), "GET", "/prod/pets"), Err(Miss::Api));
}

#[test]
fn other_hosts_miss_api() {
    let t = shop();
    for host in [
        "example.com",
        "execute-api.local.turnpike.dev",
        ".execute-api.local.turnpike.dev",
        "x.a1b2c3d4e5.execute-api.local.turnpike.dev",
        "zzzzzzzzzz.execute-api.local.turnpike.dev",
        "a1b2c3d4e5.execute-api.other.turnpike.dev",
        "a1b2c3d4e5.execute-api.local.turnpike.dev:port",
        "[::1]:8443",
    ] {
        assert_eq!(
            find(&t, Some(host), "GET", "/prod/pets"),
            Err(Miss::Api),
            "{host}"
        );
    }
    assert_eq!(find(&t, None, "GET", "/prod/pets"), Err(Miss::Api));
}

// === the path form ===

#[test]
fn the_path_form_works_with_any_host() {
    let t = shop();
    for host in [None, Some("localhost:8443"), Some(HOST)] {
        assert_eq!(
            find(
                &t,
                host,
                "GET",
                "/restapis/a1b2c3d4e5/prod/_user_request_/pets/42"
            ),
            Ok("prod /pets/{id} GET [id=42]".into())
        );
    }
}

#[test]
fn the_path_form_root_with_and_without_slash() {
    let t = shop();
    assert_eq!(
        get(&t, "/restapis/a1b2c3d4e5/prod/_user_request_"),
        Ok("prod / GET []".into())
    );
    assert_eq!(
        get(&t, "/restapis/a1b2c3d4e5/prod/_user_request_/"),
        Ok("prod / GET []".into())
    );
}

#[test]
fn the_path_form_needs_user_request_exactly() {
    let t = shop();
    assert_eq!(get(&t, "/restapis/a1b2c3d4e5/prod/pets"), Err(Miss::Resource));
    assert_eq!(
        get(&t, "/restapis/a1b2c3d4e5/prod/_user_request_x/pets"),
        Err(Miss::Resource)
    );
    assert_eq!(get(&t, "/restapis/a1b2c3d4e5/prod"), Err(Miss::Resource));
}

#[test]
fn the_path_form_misses_unknown_apis_and_stages() {
    let t = shop();
    assert_eq!(
        get(&t, "/restapis/zzzzzzzzzz/prod/_user_request_/pets"),
        Err(Miss::Api)
    );
    assert_eq!(
        get(&t, "/restapis/a1b2c3d4e5/dev/_user_request_/pets"),
        Err(Miss::Stage)
    );
    assert_eq!(get(&t, "/restapis/a1b2c3d4e5"), Err(Miss::Stage));
    assert_eq!(get(&t, "/restapis/"), Err(Miss::Api));
}

// === listeners ===

#[test]
fn a_private_api_is_served_on_the_private_listener_only() {
    let t = mk_table(EndpointType::Private, mk_routes(&[("/pets", &[MethodKey::Get])]));
    let get = http::Method::GET;
    assert_eq!(
        t.find(Listener::Public, Some(HOST), "/prod/pets", &get)
            .map(|_| ()),
        Err(Miss::PrivateApi)
    );
    assert!(t.find(Listener::Private, Some(HOST), "/prod/pets", &get).is_ok());
}

#[test]
fn public_apis_are_not_served_on_the_private_listener() {
    for endpoint_type in [EndpointType::Edge, EndpointType::Regional] {
        let t = mk_table(endpoint_type, mk_routes(&[("/pets", &[MethodKey::Get])]));
        let get = http::Method::GET;
        assert_eq!(
            t.find(Listener::Private, Some(HOST), "/prod/pets", &get)
                .map(|_| ()),
            Err(Miss::Api)
        );
        assert!(t.find(Listener::Public, Some(HOST), "/prod/pets", &get).is_ok());
    }
}
