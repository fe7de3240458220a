//! A synthetic world for benchmarks: `routes` (resource, method) pairs spread over APIs of
//! 100 resources × 2 methods each, with literal, `{param}` and `{proxy+}` resources, one
//! Deployment and one Stage per API.

use std::collections::BTreeMap;

use turnpike_api as api;
use turnpike_api::LocalRef;
use turnpike_api::v1alpha1::rest_api::{IntegrationSpec, IntegrationType, MethodSpec};
use turnpike_core::compile::{DeploymentObj, Meta, Obj, RestApiObj, Snapshot, World};
use turnpike_core::model::{self, ObjectKey};

pub const RESOURCES_PER_API: usize = 100;
pub const METHODS_PER_RESOURCE: usize = 2;

/// The path of resource `r` of an API.
pub fn resource_path(r: usize) -> String {
    match r % 10 {
        0 => format!("/svc{r}/items/{{id}}"),
        1 => format!("/svc{r}/files/{{proxy+}}"),
        2 => format!("/svc{r}/items/{{id}}/parts/{{part}}"),
        _ => format!("/svc{r}/v1/things"),
    }
}

/// A concrete request path that matches resource `r`.
#[allow(dead_code)]
pub fn request_path(r: usize) -> String {
    match r % 10 {
        0 => format!("/svc{r}/items/12345"),
        1 => format!("/svc{r}/files/a/b/c.txt"),
        2 => format!("/svc{r}/items/7/parts/9"),
        _ => format!("/svc{r}/v1/things"),
    }
}

fn spec(api: usize) -> api::RestApiSpec {
    let mut resources = BTreeMap::new();
    for r in 0..RESOURCES_PER_API {
        let mut methods = BTreeMap::new();
        for m in ["GET", "POST"].iter().take(METHODS_PER_RESOURCE) {
            let uri = format!(
                "http://backend-{api}.default.svc:8080{}",
                resource_path(r).replace("+}", "}")
            );
            methods.insert(
                (*m).to_string(),
                MethodSpec {
                    integration: IntegrationSpec {
                        type_: IntegrationType::HttpProxy,
                        uri: Some(uri),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            );
        }
        resources.insert(resource_path(r), methods);
    }
    api::RestApiSpec {
        resources,
        ..Default::default()
    }
}

/// A world with about `routes` routes.
pub fn world(routes: usize) -> World {
    let apis = routes.div_ceil(RESOURCES_PER_API * METHODS_PER_RESOURCE);
    let mut world = World::default();
    for a in 0..apis {
        let ns = "bench";
        let name = format!("api{a}");
        let spec = spec(a);
        let def = turnpike_api::convert::rest_api(ns, &spec);
        let digest = turnpike_controller::ingest::spec_digest(&spec);
        let meta = |kind: &str, name: &str| Meta {
            key: ObjectKey::new(ns, name),
            uid: format!("uid-{kind}-{name}").into(),
            generation: 1,
        };
        world.rest_apis.insert(
            ObjectKey::new(ns, &name),
            RestApiObj {
                meta: meta("api", &name),
                def: def.clone(),
                digest: digest.clone(),
                open_api: None,
            },
        );
        let dep = format!("{name}-v1");
        world.deployments.insert(
            ObjectKey::new(ns, &dep),
            DeploymentObj {
                meta: meta("dep", &dep),
                def: Ok(model::DeploymentDef {
                    rest_api: name.clone(),
                }),
                snapshot: Snapshot::Recorded {
                    digest,
                    def: Box::new(def),
                },
            },
        );
        let stage = api::StageSpec {
            rest_api_ref: LocalRef { name: name.clone() },
            stage_name: "prod".into(),
            deployment_ref: Some(LocalRef { name: dep }),
            ..Default::default()
        };
        let stage_name = format!("{name}-prod");
        world.stages.insert(
            ObjectKey::new(ns, &stage_name),
            Obj {
                meta: meta("stage", &stage_name),
                def: turnpike_api::convert::stage(&stage),
            },
        );
    }
    world
}
