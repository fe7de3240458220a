//! Compile: a pure function from the validated world to the routing table and the status of
//! every object.
//!
//! No I/O, clock or randomness: the same [`World`] always gives the same [`Compiled`]. Maps are
//! `BTreeMap`s so iteration, and with it every choice below, is deterministic. Passes run in
//! dependency order, each reading what the previous ones decided:
//!
//! ```text
//! RestApis ─► Deployments (snapshots → route sets) ─► Stages (primary + canary variants)
//!                                                        ├─► UsagePlans (attach to stages)
//!                                                        └─► ApiKeys (digests → plans)
//! ```
//!
//! A problem with one object becomes a condition on that object (and on the objects that refer
//! to it) and never stops the others from compiling.

mod status;
mod world;

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    sync::Arc,
};

pub(crate) use status::Conditions;
pub use status::{Cond, Kind, OtherFields, Status, StatusFields, StatusUpdate};
pub use world::*;

use crate::conditions::{reasons, types};
use crate::model::{
    ApiId, ApiKeyDef, Backend, DeploymentId, EndpointType, KeyDigest, KeyId, KeySelector, KeyValueSource,
    ObjectKey, RestApiDef, SecretData, ServiceRef, StageSource, Uid, UsagePlanDef, short_id,
};
use crate::routing::{
    ApiEntry, CanaryEntry, FastMap, HostSettings, KeyEntry, PlanEntry, ResourceEntry, RouteSet, RoutingTable,
    StageEntry, StageVariant, TableParts,
};

/// Settings that shape the table and the URLs in status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompileConfig {
    pub hosts: HostSettings,
    /// When set (e.g. `https://127.0.0.1:8443`), invoke URLs use the DNS-free path form
    /// `{base}/restapis/{apiId}/{stage}/_user_request_/`; otherwise
    /// `https://{apiId}.execute-api.{region}.{baseDomain}/{stage}`.
    pub invoke_base: Option<String>,
    /// The same for PRIVATE APIs, which only the private listener serves (e.g.
    /// `https://127.0.0.1:9443`); when unset, PRIVATE APIs use `invoke_base` too.
    pub private_invoke_base: Option<String>,
}

/// The output of [`compile`].
#[derive(Debug)]
pub struct Compiled {
    pub table: RoutingTable,
    /// One status per object of the world, ordered by kind then key. Shared: an API key's
    /// is kept in the [`CompileCache`] (a served key's in its table entry) for the next run.
    pub statuses: Vec<Status>,
}

/// The deployment id a stage reports when it serves the live definition (`autoDeploy`).
pub const LIVE_DEPLOYMENT_ID: &str = "live";

/// Compiles the world into a routing table of version `version`, and the status of every object.
pub fn compile(world: &World, config: &CompileConfig, version: u64) -> Compiled {
    compile_with(world, config, version, &mut CompileCache::default())
}

/// [`compile`], reusing from `cache` the outcome of every API key whose inputs are what they
/// were in the run that filled it, and leaving in it this run's. The output is the same as
/// [`compile`]'s for the same world.
pub fn compile_with(
    world: &World,
    config: &CompileConfig,
    version: u64,
    cache: &mut CompileCache,
) -> Compiled {
    let mut statuses: BTreeMap<(Kind, ObjectKey), StatusUpdate> = BTreeMap::new();
    let apis = rest_apis(world);
    let deployments = deployments(world, &apis, &mut statuses);
    let mut stages = stages(world, config, &apis, &deployments, &mut statuses);
    usage_plans(world, &mut stages, &mut statuses);
    let (keys, key_statuses) = api_keys(world, &stages, cache);
    let (api_entries, services) = assemble(world, &apis, stages);
    finish_rest_apis(world, &apis, &api_entries, &mut statuses);

    let table = RoutingTable::new(
        version,
        TableParts {
            hosts: config.hosts.clone(),
            apis: api_entries,
            keys,
            services,
        },
    );
    // ApiKey is the last kind, and its updates come in key order: they go last.
    let mut all: Vec<Status> = Vec::with_capacity(statuses.len() + key_statuses.len());
    all.extend(statuses.into_values().map(|u| Status::Update(Arc::new(u))));
    all.extend(key_statuses);
    Compiled { table, statuses: all }
}

// === RestApis ===

/// What the passes need to know about a RestApi.
struct ApiInfo<'w> {
    id: ApiId,
    uid: &'w Uid,
    /// The live definition, when valid.
    live: Option<&'w RestApiDef>,
    /// The live definition's routes, built only when some stage serves it.
    live_routes: Option<Result<Arc<RouteSet>, String>>,
}

fn rest_apis(world: &World) -> BTreeMap<ObjectKey, ApiInfo<'_>> {
    let live_stages: BTreeSet<ObjectKey> = world
        .stages
        .iter()
        .filter_map(|(k, s)| match &s.def {
            Ok(def) if def.source == StageSource::Live => Some(k.sibling(&def.rest_api)),
            _ => None,
        })
        .collect();
    world
        .rest_apis
        .iter()
        .map(|(key, obj)| {
            let live = obj.def.as_ref().ok();
            let live_routes = live
                .filter(|_| live_stages.contains(key))
                .map(|def| route_set(&obj.meta.uid, def));
            (
                key.clone(),
                ApiInfo {
                    id: obj.meta.uid.with_str(ApiId::from_uid),
                    uid: &obj.meta.uid,
                    live,
                    live_routes,
                },
            )
        })
        .collect()
}

fn finish_rest_apis(
    world: &World,
    apis: &BTreeMap<ObjectKey, ApiInfo<'_>>,
    entries: &[ApiEntry],
    statuses: &mut BTreeMap<(Kind, ObjectKey), StatusUpdate>,
) {
    for (key, obj) in &world.rest_apis {
        let mut c = Conditions::new(Kind::RestApi, key);
        let info = &apis[key];
        match &obj.def {
            Err(errors) => c.invalid(errors),
            Ok(def) => {
                for problem in service_problems(world, def) {
                    c.unresolved(problem.0, problem.1);
                }
                for problem in authorizer_problems(def) {
                    c.unresolved(reasons::AUTHORIZER_NOT_FOUND, problem);
                }
                if let Some(Err(conflict)) = &info.live_routes {
                    c.reject(reasons::ROUTE_CONFLICT, conflict.clone());
                }
            }
        }
        let served: Vec<&str> = entries
            .iter()
            .find(|e| e.object == *key)
            .map(|e| {
                let mut names: Vec<&str> = e.stages.keys().map(String::as_str).collect();
                names.sort_unstable();
                names
            })
            .unwrap_or_default();
        // A served API is Ready even when a private integration's Service is missing: the
        // table holds it, and ResolvedRefs says what fails.
        if c.is_accepted() && (c.is_resolved() || !served.is_empty()) {
            if served.is_empty() {
                c.ready("valid; not served by any stage yet (create a Deployment and a Stage)");
            } else {
                c.ready(format!("served by stages: {}", served.join(", ")));
            }
        } else if !served.is_empty() && obj.def.is_err() {
            // Stages keep serving their snapshots; say so.
            c.not_ready(
                reasons::NOT_ACCEPTED,
                format!(
                    "the live definition is invalid; stages {} keep serving their deployments",
                    served.join(", ")
                ),
            );
        }
        let fields = StatusFields {
            api_id: Some(info.id),
            ..Default::default()
        };
        let mut update = c.finish(obj.meta.generation, fields);
        if let Some(import) = &obj.open_api {
            let mut conditions = update.conditions.to_vec();
            conditions.push(open_api_condition(import));
            update.conditions = conditions.into();
        }
        statuses.insert((Kind::RestApi, key.clone()), update);
    }
}

/// Most warnings an `OpenApiImported` message lists one by one (the rest are counted): a
/// condition message is at most 32 KiB.
const LISTED_IMPORT_WARNINGS: usize = 50;

/// `OpenApiImported`: true when the document was imported (with every warning's JSON pointer
/// in the message), false with the failure's reason when it was not.
fn open_api_condition(import: &OpenApiImport) -> Cond {
    match import {
        OpenApiImport::Imported { warnings } if warnings.is_empty() => Cond::ok(
            types::OPEN_API_IMPORTED,
            reasons::IMPORTED,
            "the OpenAPI document was imported whole",
        ),
        OpenApiImport::Imported { warnings } => {
            let mut listed: Vec<String> = warnings
                .iter()
                .take(LISTED_IMPORT_WARNINGS)
                .map(|(pointer, message)| format!("{pointer}: {message}"))
                .collect();
            if warnings.len() > LISTED_IMPORT_WARNINGS {
                listed.push(format!("and {} more", warnings.len() - LISTED_IMPORT_WARNINGS));
            }
            Cond::ok(
                types::OPEN_API_IMPORTED,
                reasons::IMPORTED_WITH_WARNINGS,
                format!(
                    "imported; {} member(s) of the document are not carried: {}",
                    warnings.len(),
                    listed.join("; ")
                ),
            )
        }
        OpenApiImport::Failed { reason, message } => {
            Cond::fail(types::OPEN_API_IMPORTED, reason.as_str(), message.clone())
        }
    }
}

/// The routes of a definition. Resource ids are derived from the API uid and the path, so they
/// are the same in every deployment of the API.
fn route_set(api_uid: &Uid, def: &RestApiDef) -> Result<Arc<RouteSet>, String> {
    let resources = def
        .resources
        .iter()
        .map(|r| ResourceEntry {
            path: r.path.clone(),
            id: short_id(&format!("{api_uid}{}", r.path), 6),
            methods: r.methods.iter().map(|(k, d)| (*k, Arc::clone(d))).collect(),
        })
        .collect();
    RouteSet::new(resources)
        .map(|set| Arc::new(set.with_websocket(def.websocket.clone())))
        .map_err(|e| e.to_string())
}

/// Private integrations whose Service or port is missing, or whose port has no ready
/// endpoint: (reason, message) per method.
///
/// All three are `ResolvedRefs=False`: the method's backend reference does not lead to anything
/// that can take a request. None of them keeps the object out of the table (its other routes
/// serve, and the table is rebuilt when the Service or its endpoints change), so `Ready`
/// stays as it is.
fn service_problems(world: &World, def: &RestApiDef) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (field, what, m) in def.methods() {
        {
            if let Backend::Service { service, .. } = &m.integration.backend {
                let field = format!("{field}.integration.serviceRef");
                match world.endpoints(service) {
                    Ok(endpoints) if endpoints.is_empty() => out.push((
                        reasons::NO_READY_ENDPOINTS,
                        format!(
                            "{field}: Service \"{}/{}\" port {} has no ready endpoints; {what} fail until it has",
                            service.namespace, service.name, service.port,
                        ),
                    )),
                    Ok(_) => {}
                    Err(EndpointsError::ServiceNotFound) => out.push((
                        reasons::SERVICE_NOT_FOUND,
                        format!(
                            "{field}: Service \"{}/{}\" not found",
                            service.namespace, service.name
                        ),
                    )),
                    Err(EndpointsError::PortNotFound) => out.push((
                        reasons::SERVICE_PORT_NOT_FOUND,
                        format!(
                            "{field}.port: Service \"{}/{}\" has no port {}",
                            service.namespace, service.name, service.port
                        ),
                    )),
                }
            }
        }
    }
    out
}

/// Methods naming an authorizer the API does not declare. `ResolvedRefs=False`, like a
/// missing Service: such a method answers 500 (AUTHORIZER_CONFIGURATION_ERROR, failing
/// closed) while the API's other methods serve.
fn authorizer_problems(def: &RestApiDef) -> Vec<String> {
    let mut out = Vec::new();
    for resource in &def.resources {
        for (method, m) in &resource.methods {
            if let crate::model::MethodAuth::Missing(id) = &m.auth {
                out.push(format!(
                    "spec.resources[{:?}].{method}.authorizerId: authorizer {id:?} is not in spec.authorizers; {method} {} answers 500 until it is",
                    resource.path.as_str(),
                    resource.path.as_str()
                ));
            }
        }
    }
    out
}

// === Deployments ===

/// A deployment that can be served.
struct DeployInfo<'w> {
    id: DeploymentId,
    rest_api: ObjectKey,
    def: &'w RestApiDef,
    routes: Arc<RouteSet>,
}

fn deployments<'w>(
    world: &'w World,
    apis: &BTreeMap<ObjectKey, ApiInfo<'w>>,
    statuses: &mut BTreeMap<(Kind, ObjectKey), StatusUpdate>,
) -> BTreeMap<ObjectKey, DeployInfo<'w>> {
    let mut out = BTreeMap::new();
    for (key, obj) in &world.deployments {
        let mut c = Conditions::new(Kind::Deployment, key);
        let id = obj.meta.uid.with_str(DeploymentId::from_uid);
        let mut fields = StatusFields::default();
        fields.other().deployment_id = Some(id.as_str().into());
        match &obj.def {
            Err(errors) => c.invalid(errors),
            Ok(def) => {
                let api_key = key.sibling(&def.rest_api);
                let api = apis.get(&api_key);
                match &obj.snapshot {
                    Snapshot::Pending => match api {
                        None => c.unresolved(
                            reasons::REST_API_NOT_FOUND,
                            format!("spec.restApiRef.name: RestApi {:?} not found", def.rest_api),
                        ),
                        Some(a) if a.live.is_none() => c.unresolved(
                            reasons::REST_API_INVALID,
                            format!(
                                "spec.restApiRef.name: RestApi {:?} is invalid and cannot be deployed",
                                def.rest_api
                            ),
                        ),
                        Some(_) => c.not_ready(reasons::SNAPSHOT_PENDING, "the snapshot is not recorded yet"),
                    },
                    Snapshot::Corrupt { message } => c.not_ready(reasons::SNAPSHOT_INVALID, message.clone()),
                    Snapshot::Recorded {
                        digest,
                        def: snapshot,
                    } => {
                        fields.other().digest = Some(digest.as_str().into());
                        match (snapshot.as_ref(), api) {
                            (Err(errors), _) => {
                                let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                                c.not_ready(
                                    reasons::SNAPSHOT_INVALID,
                                    format!("the snapshot is invalid: {}", list.join("; ")),
                                );
                            }
                            (Ok(_), None) => c.unresolved(
                                reasons::REST_API_NOT_FOUND,
                                format!("spec.restApiRef.name: RestApi {:?} not found", def.rest_api),
                            ),
                            (Ok(snapshot), Some(api)) => match route_set(api.uid, snapshot) {
                                Err(conflict) => c.not_ready(reasons::ROUTE_CONFLICT, conflict),
                                Ok(routes) => {
                                    for (reason, message) in service_problems(world, snapshot) {
                                        // The field path is the snapshot's, not this object's.
                                        c.unresolved(reason, format!("in the snapshot, {message}"));
                                    }
                                    c.ready(format!(
                                        "snapshot {} of RestApi {:?}: {} routes",
                                        &digest[..digest.len().min(12)],
                                        def.rest_api,
                                        routes.route_count()
                                    ));
                                    out.insert(
                                        key.clone(),
                                        DeployInfo {
                                            id,
                                            rest_api: api_key,
                                            def: snapshot,
                                            routes,
                                        },
                                    );
                                }
                            },
                        }
                    }
                }
            }
        }
        statuses.insert(
            (Kind::Deployment, key.clone()),
            c.finish(obj.meta.generation, fields),
        );
    }
    out
}

// === Stages ===

/// A stage on its way into the table; plans are attached before it is frozen.
struct StageDraft<'w> {
    api: ObjectKey,
    name: String,
    object: ObjectKey,
    def: &'w crate::model::StageDef,
    primary: (String, &'w RestApiDef, Arc<RouteSet>),
    canary: Option<(String, &'w RestApiDef, Arc<RouteSet>)>,
    plans: FastMap<ObjectKey, Arc<PlanEntry>>,
}

fn stages<'w>(
    world: &'w World,
    config: &CompileConfig,
    apis: &BTreeMap<ObjectKey, ApiInfo<'w>>,
    deployments: &BTreeMap<ObjectKey, DeployInfo<'w>>,
    statuses: &mut BTreeMap<(Kind, ObjectKey), StatusUpdate>,
) -> Vec<StageDraft<'w>> {
    // The first Stage object (by name) to claim an API stage name owns it.
    let mut owners: BTreeMap<(ObjectKey, &str), &ObjectKey> = BTreeMap::new();
    for (key, obj) in &world.stages {
        if let Ok(def) = &obj.def {
            owners
                .entry((key.sibling(&def.rest_api), def.name.as_str()))
                .or_insert(key);
        }
    }

    let mut out = Vec::new();
    for (key, obj) in &world.stages {
        let mut c = Conditions::new(Kind::Stage, key);
        let mut fields = StatusFields::default();
        let def = match &obj.def {
            Err(errors) => {
                c.invalid(errors);
                statuses.insert((Kind::Stage, key.clone()), c.finish(obj.meta.generation, fields));
                continue;
            }
            Ok(def) => def,
        };
        let api_key = key.sibling(&def.rest_api);
        let owner = owners.get(&(api_key.clone(), def.name.as_str())).copied();
        if owner != Some(key) {
            let owner = owner.map_or_else(String::new, |o| o.name.to_string());
            c.reject(
                reasons::STAGE_CONFLICT,
                format!(
                    "spec.stageName: stage {:?} of RestApi {:?} is already defined by Stage {owner:?}",
                    def.name.as_str(),
                    def.rest_api
                ),
            );
            statuses.insert((Kind::Stage, key.clone()), c.finish(obj.meta.generation, fields));
            continue;
        }
        let Some(api) = apis.get(&api_key) else {
            c.unresolved(
                reasons::REST_API_NOT_FOUND,
                format!("spec.restApiRef.name: RestApi {:?} not found", def.rest_api),
            );
            statuses.insert((Kind::Stage, key.clone()), c.finish(obj.meta.generation, fields));
            continue;
        };
        let private = api.live.is_some_and(|d| d.endpoint_type == EndpointType::Private);
        fields.other().invoke_url = Some(invoke_url(config, &api.id, def.name.as_str(), private).into());

        let resolve = |name: &str,
                       field: &str,
                       c: &mut Conditions|
         -> Option<(String, &'w RestApiDef, Arc<RouteSet>)> {
            let Some(d) = deployments.get(&key.sibling(name)) else {
                let exists = world.deployments.contains_key(&key.sibling(name));
                if exists {
                    c.unresolved(
                        reasons::DEPLOYMENT_NOT_READY,
                        format!("{field}: Deployment {name:?} is not ready"),
                    );
                } else {
                    c.unresolved(
                        reasons::DEPLOYMENT_NOT_FOUND,
                        format!("{field}: Deployment {name:?} not found"),
                    );
                }
                return None;
            };
            if d.rest_api != api_key {
                c.unresolved(
                    reasons::DEPLOYMENT_API_MISMATCH,
                    format!(
                        "{field}: Deployment {name:?} deploys RestApi {:?}, not {:?}",
                        d.rest_api.name, def.rest_api
                    ),
                );
                return None;
            }
            Some((d.id.to_string(), d.def, Arc::clone(&d.routes)))
        };
        let live = |c: &mut Conditions| -> Option<(String, &'w RestApiDef, Arc<RouteSet>)> {
            match (api.live, &api.live_routes) {
                (Some(def), Some(Ok(routes))) => {
                    Some((LIVE_DEPLOYMENT_ID.to_string(), def, Arc::clone(routes)))
                }
                _ => {
                    c.unresolved(
                        reasons::REST_API_INVALID,
                        format!(
                            "spec.autoDeploy: RestApi {:?} is not valid, so there is nothing to serve",
                            def.rest_api
                        ),
                    );
                    None
                }
            }
        };

        let primary = match &def.source {
            StageSource::Deployment(name) => resolve(name, "spec.deploymentRef.name", &mut c),
            StageSource::Live => live(&mut c),
        };
        let Some(primary) = primary else {
            statuses.insert((Kind::Stage, key.clone()), c.finish(obj.meta.generation, fields));
            continue;
        };
        fields.other().deployment_id = Some(primary.0.as_str().into());

        // A canary that does not resolve leaves the stage serving its primary deployment only.
        let canary = def.canary.as_ref().and_then(|canary| match &canary.deployment {
            Some(name) => resolve(name, "spec.canarySettings.deploymentRef.name", &mut c),
            None => Some(primary.clone()),
        });
        fields.other().canary_deployment_id = canary.as_ref().map(|(id, _, _)| id.as_str().into());
        for (reason, message) in service_problems(world, primary.1) {
            // The field path is the deployment's, not this object's.
            c.unresolved(reason, format!("in deployment {}, {message}", primary.0));
        }
        let canary_note = match (&def.canary, &canary) {
            (Some(settings), Some((id, _, _))) => format!(", canary {id} at {}%", settings.percent),
            // The reason is in ResolvedRefs; say here that no request goes to a canary.
            (Some(_), None) => ", no canary (its deployment does not resolve)".to_string(),
            (None, _) => String::new(),
        };
        c.ready(format!("serving deployment {}{canary_note}", primary.0));
        statuses.insert((Kind::Stage, key.clone()), c.finish(obj.meta.generation, fields));
        out.push(StageDraft {
            api: api_key,
            name: def.name.as_str().to_string(),
            object: key.clone(),
            def,
            primary,
            canary,
            plans: FastMap::default(),
        });
    }
    out
}

fn invoke_url(config: &CompileConfig, id: &ApiId, stage: &str, private: bool) -> String {
    let base = match &config.private_invoke_base {
        Some(base) if private => Some(base),
        _ => config.invoke_base.as_ref(),
    };
    match base {
        Some(base) => format!(
            "{}/restapis/{id}/{stage}/_user_request_/",
            base.trim_end_matches('/')
        ),
        None => format!("https://{}/{stage}", config.hosts.api_host(id)),
    }
}

// === UsagePlans ===

fn usage_plans(
    world: &World,
    stages: &mut [StageDraft<'_>],
    statuses: &mut BTreeMap<(Kind, ObjectKey), StatusUpdate>,
) {
    for (key, obj) in &world.usage_plans {
        let mut c = Conditions::new(Kind::UsagePlan, key);
        let selector = obj.def.as_ref().ok().and_then(|d| d.key_selector.as_ref());
        let keys_in_plan = world
            .api_keys
            .values()
            .filter(|k| k.meta.key.namespace == key.namespace)
            .filter(|k| {
                k.def.as_ref().is_ok_and(|d| {
                    d.usage_plans.iter().any(|p| **p == *key.name)
                        || selector.is_some_and(|s| s.matches(&d.labels))
                })
            })
            .count();
        let fields = StatusFields {
            other: Some(Box::new(OtherFields {
                api_key_count: i64::try_from(keys_in_plan).ok(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let def = match &obj.def {
            Err(errors) => {
                c.invalid(errors);
                statuses.insert(
                    (Kind::UsagePlan, key.clone()),
                    c.finish(obj.meta.generation, fields),
                );
                continue;
            }
            Ok(def) => def,
        };
        let mut bound = Vec::new();
        for (i, s) in def.stages.iter().enumerate() {
            let api_key = key.sibling(&s.rest_api);
            if !world.rest_apis.contains_key(&api_key) {
                c.unresolved(
                    reasons::REST_API_NOT_FOUND,
                    format!(
                        "spec.apiStages[{i}].restApiRef.name: RestApi {:?} not found",
                        s.rest_api
                    ),
                );
                continue;
            }
            match stages.iter().position(|d| d.api == api_key && d.name == s.stage) {
                Some(pos) => bound.push((pos, s)),
                None => c.unresolved(
                    reasons::STAGE_NOT_FOUND,
                    format!(
                        "spec.apiStages[{i}].stage: RestApi {:?} has no ready stage {:?}",
                        s.rest_api, s.stage
                    ),
                ),
            }
        }
        for (pos, s) in &bound {
            let entry = PlanEntry {
                object: key.clone(),
                throttle: def.throttle,
                quota: def.quota,
                method_throttles: s.method_throttles.clone(),
            };
            stages[*pos].plans.insert(key.clone(), Arc::new(entry));
        }
        if c.is_resolved() {
            c.ready(format!(
                "applies to {} stage(s) and {keys_in_plan} key(s)",
                bound.len()
            ));
        }
        statuses.insert(
            (Kind::UsagePlan, key.clone()),
            c.finish(obj.meta.generation, fields),
        );
    }
}

// === ApiKeys ===

/// What compile keeps from one run to the next: the outcome of every valid API key, with the
/// inputs it was computed from. A key whose object (the same converted `Arc`, which the
/// controller's conversion cache keeps while the ApiKey's spec and labels stay), Secret data
/// and plan context ([`KeyContext`]) are unchanged gets its entry and status back without being
/// compiled again: a rebuild for a Stage edit, with 10,000 keys, compiles none of them.
///
/// Duplicate values are the one input that depends on other keys: an outcome is reused only
/// when no key before it took the same value, and an outcome that found a duplicate is not
/// kept.
///
/// It also keeps one copy of each set of conditions the keys have, and of each set of plans
/// they are in: 10,000 ready keys of one plan share their three conditions and their plan list
/// rather than hold 10,000 copies of them.
///
/// The outcomes are a list in key order, walked beside the world's keys (in the same order):
/// no hashing, and no room for a map's empty slots (a map of 10,000 outcomes held as many
/// again empty).
#[derive(Debug, Default)]
pub struct CompileCache {
    context: Option<KeyContext>,
    keys: Vec<CachedKey>,
    conditions: Shared<Cond>,
    plans: Shared<ObjectKey>,
}

impl CompileCache {
    /// How many API key outcomes are kept.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What every key's outcome reads besides the key and its Secret: each usage plan (whether it
/// exists; for a valid one, the stages it covers and its key selector) and the plans bound to
/// each stage.
#[derive(Debug, PartialEq)]
struct KeyContext {
    plans: Vec<(ObjectKey, Option<PlanScope>)>,
    stage_plans: Vec<Vec<ObjectKey>>,
}

/// The stages (RestApi name, stage name) a valid plan covers, and its key selector.
type PlanScope = (Vec<(String, String)>, Option<KeySelector>);

impl KeyContext {
    fn of(world: &World, stages: &[StageDraft<'_>]) -> Self {
        let plans = world
            .usage_plans
            .iter()
            .map(|(key, p)| {
                let scope = p.def.as_ref().ok().map(|d| {
                    let covered = d
                        .stages
                        .iter()
                        .map(|s| (s.rest_api.clone(), s.stage.clone()))
                        .collect();
                    (covered, d.key_selector.clone())
                });
                (key.clone(), scope)
            })
            .collect();
        let stage_plans = stages
            .iter()
            .map(|s| {
                let mut plans: Vec<ObjectKey> = s.plans.keys().cloned().collect();
                plans.sort_unstable();
                plans
            })
            .collect();
        KeyContext { plans, stage_plans }
    }
}

/// One key's outcome and what it was computed from.
#[derive(Debug)]
struct CachedKey {
    obj: Arc<Obj<ApiKeyDef>>,
    /// What was known of the Secret the key reads: its data, or whether it exists without
    /// the label.
    secret: Option<SecretData>,
    unlabelled: bool,
    /// The table entry, when the key took its value (no key before it had it).
    entry: Option<Arc<KeyEntry>>,
    /// The key's status, when it has no entry to hold it.
    unserved: Option<Arc<StatusUpdate>>,
}

impl CachedKey {
    /// The key's namespace and name: what the outcomes are ordered by.
    fn key(&self) -> &ObjectKey {
        &self.obj.meta.key
    }

    fn status(&self) -> Option<Status> {
        match (&self.unserved, &self.entry) {
            (Some(u), _) => Some(Status::Update(u.clone())),
            (None, Some(e)) => Some(Status::Key(e.clone())),
            (None, None) => None,
        }
    }

    /// The value's digest, when the Secret held a valid one: read from the Secret data kept,
    /// not kept beside it.
    fn digest(&self) -> Option<KeyDigest> {
        let data_key = match &self.obj.def.as_ref().ok()?.value {
            KeyValueSource::Secret { key, .. } => &**key,
            KeyValueSource::Generated { .. } => crate::model::GENERATED_SECRET_KEY,
        };
        self.secret.as_ref()?.get(data_key)?.as_ref().ok().copied()
    }

    /// Whether this outcome is the one compiling `obj` against `world` now would give, with
    /// the values taken so far in `seen`.
    fn holds_for(
        &self,
        obj: &Arc<Obj<ApiKeyDef>>,
        world: &World,
        seen: &FastMap<KeyDigest, &ObjectKey>,
    ) -> bool {
        let Ok(def) = &self.obj.def else {
            return false;
        };
        let (secret, _) = def.secret(&self.obj.meta.key);
        let same_secret = match (world.secrets.get(&secret), &self.secret) {
            (Some(now), Some(then)) => now.same(then) || now == then,
            (None, None) => world.unlabelled_secrets.contains(&secret) == self.unlabelled,
            _ => false,
        };
        Arc::ptr_eq(&self.obj, obj) && same_secret && self.digest().is_none_or(|d| !seen.contains_key(&d))
    }
}

/// The valid plans that take keys in by label.
type Selecting<'w> = Vec<(&'w ObjectKey, &'w UsagePlanDef, &'w KeySelector)>;

/// Every key's table entry and status, in key order.
fn api_keys(
    world: &World,
    stages: &[StageDraft<'_>],
    cache: &mut CompileCache,
) -> (Vec<Arc<KeyEntry>>, Vec<Status>) {
    let context = KeyContext::of(world, stages);
    if cache.context.as_ref() != Some(&context) {
        cache.keys.clear();
        cache.context = Some(context);
    }
    let mut out: Vec<Arc<KeyEntry>> = Vec::new();
    // The last outcomes, in key order, as the world's keys are walked; what this world
    // keeps, in the same order.
    let mut last = std::mem::take(&mut cache.keys).into_iter().peekable();
    let mut kept = Vec::with_capacity(world.api_keys.len());
    let mut statuses = Vec::with_capacity(world.api_keys.len());
    let mut seen: FastMap<KeyDigest, &ObjectKey> = FastMap::default();
    let selecting: Selecting<'_> = world
        .usage_plans
        .iter()
        .filter_map(|(k, p)| {
            let def = p.def.as_ref().ok()?;
            Some((k, def, def.key_selector.as_ref()?))
        })
        .collect();
    for (key, obj) in &world.api_keys {
        while last.next_if(|c| c.key() < key).is_some() {}
        if let Some(cached) = last.next_if(|c| c.key() == key)
            && cached.holds_for(obj, world, &seen)
        {
            if let Some(entry) = &cached.entry {
                seen.insert(entry.digest, key);
                out.push(entry.clone());
            }
            statuses.extend(cached.status());
            kept.push(cached);
            continue;
        }
        let def = match &obj.def {
            Err(errors) => {
                let mut c = Conditions::new(Kind::ApiKey, key);
                c.invalid(errors);
                let fields = StatusFields::of_key(&obj.meta.uid.with_str(KeyId::from_uid));
                statuses.push(Status::Update(Arc::new(c.finish(obj.meta.generation, fields))));
                continue;
            }
            Ok(def) => def,
        };
        let mut outcome = api_key(world, stages, &selecting, &seen, key, obj, def);
        outcome.status.conditions = shared(&mut cache.conditions, &outcome.status.conditions);
        if let Some(e) = &mut outcome.entry {
            e.plans = shared(&mut cache.plans, &e.plans);
            e.conditions = outcome.status.conditions.clone();
        }
        let entry = outcome.entry.map(Arc::new);
        // A served key's status is read from its entry, which holds the same.
        let unserved = match &entry {
            Some(e) => {
                debug_assert_eq!(*Status::Key(e.clone()).update(), outcome.status);
                seen.insert(e.digest, key);
                out.push(e.clone());
                statuses.push(Status::Key(e.clone()));
                None
            }
            None => {
                let status = Arc::new(outcome.status);
                statuses.push(Status::Update(status.clone()));
                Some(status)
            }
        };
        if outcome.duplicate {
            continue;
        }
        let cached = CachedKey {
            obj: obj.clone(),
            secret: outcome.secret,
            unlabelled: outcome.unlabelled,
            entry,
            unserved,
        };
        kept.push(cached);
    }
    // The outcomes of this world's keys (those of keys gone are dropped with `last`), and
    // the condition sets and plan lists some key still has.
    drop(last);
    cache.keys = kept;
    cache.conditions.retain(|c| Arc::strong_count(c) > 1);
    cache.plans.retain(|p| Arc::strong_count(p) > 1);
    (out, statuses)
}

/// One copy of each of many equal values (conditions, a key's plans), shared.
type Shared<T> = HashSet<Arc<[T]>, foldhash::fast::RandomState>;

/// The copy of `value` that `kept` holds, kept there if it holds none.
fn shared<T: Eq + std::hash::Hash>(kept: &mut Shared<T>, value: &Arc<[T]>) -> Arc<[T]> {
    match kept.get(value) {
        Some(c) => c.clone(),
        None => {
            kept.insert(value.clone());
            value.clone()
        }
    }
}

/// One valid key compiled, and what it read.
struct KeyOutcome {
    status: StatusUpdate,
    entry: Option<KeyEntry>,
    secret: Option<SecretData>,
    unlabelled: bool,
    /// Whether a key before it had the same value.
    duplicate: bool,
}

fn api_key(
    world: &World,
    stages: &[StageDraft<'_>],
    selecting: &Selecting<'_>,
    seen: &FastMap<KeyDigest, &ObjectKey>,
    key: &ObjectKey,
    obj: &Obj<ApiKeyDef>,
    def: &ApiKeyDef,
) -> KeyOutcome {
    let mut c = Conditions::new(Kind::ApiKey, key);
    let id = obj.meta.uid.with_str(KeyId::from_uid);
    let fields = StatusFields::of_key(&id);
    let (secret_key, data_key) = def.secret(key);
    let field = match &def.value {
        KeyValueSource::Secret { .. } => "spec.valueFrom.secretKeyRef",
        KeyValueSource::Generated { .. } => "spec",
    };
    let secret = &*secret_key.name;
    let secret_data = world.secrets.get(&secret_key).cloned();
    let unlabelled = secret_data.is_none() && world.unlabelled_secrets.contains(&secret_key);
    let digest = match &secret_data {
        None if unlabelled => {
            let name = if matches!(def.value, KeyValueSource::Generated { .. }) {
                ""
            } else {
                ".name"
            };
            c.unresolved(
                reasons::SECRET_NOT_LABELLED,
                format!(
                    "{field}{name}: Secret {secret:?} lacks the label {}; the controller reads only \
                     labelled Secrets",
                    crate::model::API_KEY_SECRET_LABEL
                ),
            );
            None
        }
        None if matches!(def.value, KeyValueSource::Generated { .. }) => {
            c.unresolved(
                reasons::SECRET_NOT_FOUND,
                format!("{field}: the generated Secret {secret:?} does not exist yet"),
            );
            None
        }
        None => {
            c.unresolved(
                reasons::SECRET_NOT_FOUND,
                format!("{field}.name: Secret {secret:?} not found"),
            );
            None
        }
        Some(data) => match data.get(data_key) {
            None => {
                c.unresolved(
                    reasons::SECRET_KEY_NOT_FOUND,
                    format!("{field}.key: Secret {secret:?} has no key {data_key:?}"),
                );
                None
            }
            Some(value) => match value {
                Ok(d) => Some(*d),
                Err(e) => {
                    // The message says what is wrong with the value, never the value.
                    c.unresolved(
                        reasons::INVALID_API_KEY,
                        format!("{field}: the value in Secret {secret:?} is not a valid key: {e}"),
                    );
                    None
                }
            },
        },
    };

    let mut plans = Vec::new();
    let mut covered: BTreeMap<(ObjectKey, String), String> = BTreeMap::new();
    // One plan per key per stage, as in AWS.
    let mut cover = |field: &str, name: &str, plan_def: &UsagePlanDef, c: &mut Conditions| {
        for s in &plan_def.stages {
            if let Some(other) = covered.insert((key.sibling(&s.rest_api), s.stage.clone()), name.to_string())
            {
                c.unresolved(
                    reasons::INVALID_REFERENCE,
                    format!("{field}: UsagePlans {other:?} and {name:?} both cover stage {}/{}; a key may be in one plan per stage", s.rest_api, s.stage),
                );
            }
        }
    };
    for (i, name) in def.usage_plans.iter().enumerate() {
        let plan_key = key.sibling(name);
        let Some(plan) = world.usage_plans.get(&plan_key) else {
            c.unresolved(
                reasons::USAGE_PLAN_NOT_FOUND,
                format!("spec.usagePlanRefs[{i}].name: UsagePlan {name:?} not found"),
            );
            continue;
        };
        if let Ok(plan_def) = &plan.def {
            cover(&format!("spec.usagePlanRefs[{i}].name"), name, plan_def, &mut c);
        }
        plans.push(plan_key);
    }
    for (plan_key, plan_def, selector) in selecting {
        if plan_key.namespace != key.namespace
            || def.usage_plans.iter().any(|p| **p == *plan_key.name)
            || !selector.matches(&def.labels)
        {
            continue;
        }
        let field = format!("metadata.labels (UsagePlan {:?} selects the key)", plan_key.name);
        cover(&field, &plan_key.name, plan_def, &mut c);
        plans.push((*plan_key).clone());
    }

    let mut served = None;
    let mut duplicate = false;
    if let Some(digest) = digest {
        if let Some(first) = seen.get(&digest) {
            duplicate = true;
            c.unresolved(
                reasons::DUPLICATE_API_KEY,
                format!(
                    "{field}: the same value is already used by ApiKey {:?}",
                    first.name
                ),
            );
        } else if c.is_resolved() {
            served = Some(digest);
        }
    }
    if c.is_resolved() {
        if !def.enabled {
            c.not_ready(
                reasons::DISABLED,
                "spec.enabled is false: requests with this key are refused",
            );
        } else {
            let stage_count = stages
                .iter()
                .filter(|s| plans.iter().any(|p| s.plans.contains_key(p)))
                .count();
            c.ready(format!(
                "in {} usage plan(s), {stage_count} stage(s)",
                plans.len()
            ));
        }
    }
    let status = c.finish(obj.meta.generation, fields);
    let entry = served.map(|digest| KeyEntry {
        id,
        object: key.clone(),
        digest,
        enabled: def.enabled,
        customer_id: def.customer_id.clone(),
        plans: plans.as_slice().into(),
        generation: status.observed_generation,
        conditions: status.conditions.clone(),
    });
    KeyOutcome {
        status,
        entry,
        secret: secret_data,
        unlabelled,
        duplicate,
    }
}

// === Assembly ===

/// Freezes the stage drafts into API entries and collects the endpoints of every Service the
/// served routes call.
fn assemble(
    world: &World,
    apis: &BTreeMap<ObjectKey, ApiInfo<'_>>,
    stages: Vec<StageDraft<'_>>,
) -> (Vec<ApiEntry>, Vec<(ServiceRef, Vec<std::net::SocketAddr>)>) {
    let mut by_api: BTreeMap<ObjectKey, Vec<StageDraft<'_>>> = BTreeMap::new();
    for s in stages {
        by_api.entry(s.api.clone()).or_default().push(s);
    }
    let mut services: BTreeSet<ServiceRef> = BTreeSet::new();
    let mut entries = Vec::new();
    for (api_key, drafts) in by_api {
        let info = &apis[&api_key];
        // API-wide settings come from the live definition; when it is invalid, from the
        // first serving stage's deployment.
        let settings = info.live.or_else(|| drafts.first().map(|d| d.primary.1));
        let Some(settings) = settings else { continue };
        let mut stage_map = FastMap::default();
        for d in drafts {
            collect_services(d.primary.1, &mut services);
            let def = d.def;
            let primary = Arc::new(StageVariant {
                deployment_id: d.primary.0.clone(),
                variables: Arc::new(def.variables.clone()),
                routes: Arc::clone(&d.primary.2),
                is_canary: false,
            });
            let canary = d.canary.map(|(id, canary_def, routes)| {
                collect_services(canary_def, &mut services);
                let settings = def.canary.as_ref();
                let mut variables = def.variables.clone();
                if let Some(s) = settings {
                    variables.extend(s.variable_overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                CanaryEntry {
                    percent: settings.map_or(0.0, |s| s.percent),
                    variant: Arc::new(StageVariant {
                        deployment_id: id,
                        variables: Arc::new(variables),
                        routes,
                        is_canary: true,
                    }),
                    use_stage_cache: settings.is_some_and(|s| s.use_stage_cache),
                }
            });
            stage_map.insert(
                d.name.clone(),
                Arc::new(StageEntry {
                    name: d.name,
                    object: d.object,
                    primary,
                    canary,
                    throttle: def.throttle,
                    method_settings: def.method_settings.clone(),
                    cache_enabled: def.cache_enabled,
                    cache_budget: def.cache_size.bytes(),
                    cache_flush: def.cache_flush.clone(),
                    access_log: def.access_log.clone(),
                    plans: d.plans,
                }),
            );
        }
        entries.push(ApiEntry {
            id: info.id,
            object: api_key,
            endpoint_type: settings.endpoint_type,
            api_key_source: settings.api_key_source,
            policy: settings.policy.clone(),
            gateway_responses: settings.gateway_responses.clone(),
            cors: settings.cors.clone(),
            stages: stage_map,
            binary_media_types: settings.binary_media_types.clone(),
            minimum_compression_size: settings.minimum_compression_size,
        });
    }
    let services = services
        .into_iter()
        .filter_map(|s| world.endpoints(&s).ok().map(|e| (s, e)))
        .collect();
    (entries, services)
}

fn collect_services(def: &RestApiDef, out: &mut BTreeSet<ServiceRef>) {
    for (_, _, m) in def.methods() {
        if let Backend::Service { service, .. } = &m.integration.backend {
            out.insert(service.clone());
        }
    }
}
