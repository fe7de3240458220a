//! The compiled, immutable routing table.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::Arc,
};

use crate::model::{
    AccessLogFormat, ApiId, ApiKeySource, BinaryMediaTypes, Cors, EndpointType, GatewayResponses, KeyDigest,
    KeyId, MethodDef, MethodKey, MethodSelector, ObjectKey, PathTemplate, Quota, ResourcePolicy, ServiceRef,
    Throttle, WebSocketDef,
};
use crate::routing::trie::{Conflict, Trie};

/// The hash map of the request path: foldhash, seeded per process (SipHash costs a third of a
/// route lookup; keys here come from requests, and a per-process seed keeps them from being
/// chosen to collide).
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Which listener a request arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Listener {
    /// Serves EDGE and REGIONAL APIs.
    Public,
    /// Serves PRIVATE APIs (inside the cluster).
    Private,
}

/// Host and URL settings shared by every API of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSettings {
    /// The region label in `{apiId}.execute-api.{region}.{baseDomain}`.
    pub region: String,
    /// The base domain in `{apiId}.execute-api.{region}.{baseDomain}`.
    pub base_domain: String,
}

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings {
            region: "local".into(),
            base_domain: "turnpike.dev".into(),
        }
    }
}

impl HostSettings {
    /// `.execute-api.{region}.{baseDomain}`, the host suffix after the api id.
    pub fn host_suffix(&self) -> String {
        format!(".execute-api.{}.{}", self.region, self.base_domain)
    }

    /// `{apiId}.execute-api.{region}.{baseDomain}`.
    pub fn api_host(&self, id: &ApiId) -> String {
        format!("{id}{}", self.host_suffix())
    }
}

/// Everything the proxy needs to serve requests, compiled and immutable.
#[derive(Debug, Default)]
pub struct RoutingTable {
    /// Increases with every publication.
    pub version: u64,
    pub hosts: HostSettings,
    host_suffix: String,
    /// Keyed by the packed id ([`pack_id`]), so a lookup compares integers and never follows
    /// a string pointer. foldhash: SipHash was a third of a lookup; foldhash is seeded per
    /// process, so ids cannot be chosen to collide.
    apis: FastMap<u64, Arc<ApiEntry>>,
    /// API keys by value digest: a set of the entries, looked up by the digest each holds,
    /// so a slot is one pointer rather than a copy of the digest beside it.
    keys: HashSet<ByDigest>,
    /// Ready endpoints of the Services private integrations call.
    services: HashMap<ServiceRef, Arc<[SocketAddr]>>,
}

/// A key's table entry, hashed and compared by its digest (as the digest itself hashes and
/// compares), so a set of them is a map by digest.
#[derive(Debug, Clone)]
struct ByDigest(Arc<KeyEntry>);

impl PartialEq for ByDigest {
    fn eq(&self, other: &Self) -> bool {
        self.0.digest == other.0.digest
    }
}

impl Eq for ByDigest {}

impl std::hash::Hash for ByDigest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.digest.hash(state);
    }
}

impl std::borrow::Borrow<KeyDigest> for ByDigest {
    fn borrow(&self) -> &KeyDigest {
        &self.0.digest
    }
}

/// What a [`RoutingTable`] is made of.
#[derive(Debug, Default)]
pub struct TableParts {
    pub hosts: HostSettings,
    pub apis: Vec<ApiEntry>,
    pub keys: Vec<Arc<KeyEntry>>,
    pub services: Vec<(ServiceRef, Vec<SocketAddr>)>,
}

impl RoutingTable {
    /// A table made of `parts`.
    pub fn new(version: u64, parts: TableParts) -> Self {
        let TableParts {
            hosts,
            apis,
            keys,
            services,
        } = parts;
        RoutingTable {
            version,
            host_suffix: hosts.host_suffix(),
            hosts,
            apis: apis
                .into_iter()
                .filter_map(|a| Some((pack_id(a.id.as_str())?, Arc::new(a))))
                .collect(),
            keys: {
                let mut set = HashSet::with_capacity(keys.len());
                for k in keys {
                    // Of two entries with the same digest, the later is kept.
                    set.replace(ByDigest(k));
                }
                set
            },
            services: services.into_iter().map(|(s, e)| (s, Arc::from(e))).collect(),
        }
    }

    /// The ready endpoints of a Service port; `None` when the Service is unknown.
    pub fn service_endpoints(&self, service: &ServiceRef) -> Option<&Arc<[SocketAddr]>> {
        self.services.get(service)
    }

    /// Every Service private integrations call, with its ready endpoints, in no particular order.
    pub fn services(&self) -> impl Iterator<Item = (&ServiceRef, &Arc<[SocketAddr]>)> {
        self.services.iter()
    }

    /// The same table under another version number.
    pub fn with_version(mut self, version: u64) -> Self {
        self.version = version;
        self
    }

    pub fn api(&self, id: &str) -> Option<&Arc<ApiEntry>> {
        self.apis.get(&pack_id(id)?)
    }

    /// Every API, in no particular order.
    pub fn apis(&self) -> impl Iterator<Item = &Arc<ApiEntry>> {
        self.apis.values()
    }

    /// The API key with this digest.
    pub fn key(&self, digest: &KeyDigest) -> Option<&Arc<KeyEntry>> {
        self.keys.get(digest).map(|k| &k.0)
    }

    pub fn keys(&self) -> impl Iterator<Item = &Arc<KeyEntry>> {
        self.keys.iter().map(|k| &k.0)
    }

    /// The total number of (resource, method) routes over every stage variant.
    pub fn route_count(&self) -> usize {
        self.apis
            .values()
            .flat_map(|a| a.stages.values())
            .map(|s| {
                s.primary.routes.route_count()
                    + s.canary.as_ref().map_or(0, |c| c.variant.routes.route_count())
            })
            .sum()
    }

    pub(crate) fn host_suffix(&self) -> &str {
        &self.host_suffix
    }
}

/// Packs an api id (10 of `[a-z0-9]`) into an integer, base 36; `None` for anything else.
pub(crate) fn pack_id(id: &str) -> Option<u64> {
    if id.len() != ApiId::LEN {
        return None;
    }
    id.bytes().try_fold(0u64, |acc, b| {
        let digit = match b {
            b'a'..=b'z' => b - b'a',
            b'0'..=b'9' => b - b'0' + 26,
            _ => return None,
        };
        Some(acc * 36 + u64::from(digit))
    })
}

/// A RestApi as served.
#[derive(Debug)]
pub struct ApiEntry {
    pub id: ApiId,
    /// The RestApi object (labels metrics and logs).
    pub object: ObjectKey,
    pub endpoint_type: EndpointType,
    pub api_key_source: ApiKeySource,
    pub policy: ResourcePolicy,
    /// Customized gateway responses; empty for most APIs (then the built-in answers).
    pub gateway_responses: GatewayResponses,
    /// Declarative CORS: preflights answered by the gateway, CORS headers on every answer.
    pub cors: Option<Cors>,
    pub stages: FastMap<String, Arc<StageEntry>>,
    /// Media types whose payloads are binary (`contentHandling` of HTTP integrations).
    pub binary_media_types: BinaryMediaTypes,
    /// Responses of at least this many bytes are compressed when the client accepts it.
    pub minimum_compression_size: Option<u64>,
}

impl ApiEntry {
    /// Whether a listener may serve this API.
    pub fn served_on(&self, listener: Listener) -> bool {
        match self.endpoint_type {
            EndpointType::Private => listener == Listener::Private,
            EndpointType::Edge | EndpointType::Regional => listener == Listener::Public,
        }
    }
}

/// A stage as served: a primary variant and an optional canary.
#[derive(Debug)]
pub struct StageEntry {
    pub name: String,
    /// The Stage object.
    pub object: ObjectKey,
    pub primary: Arc<StageVariant>,
    pub canary: Option<CanaryEntry>,
    /// The stage-wide throttle.
    pub throttle: Option<Throttle>,
    /// Per-method settings, most specific first.
    pub method_settings: Vec<crate::model::MethodSettings>,
    pub cache_enabled: bool,
    /// The memory budget of this replica's cache for the stage, in bytes.
    pub cache_budget: u64,
    /// The stage's flush token (the `turnpike.dev/flush-cache` annotation): the proxy
    /// flushes the stage's cache when it changes.
    pub cache_flush: Option<String>,
    pub access_log: Option<AccessLogFormat>,
    /// Usage plans that apply to this stage, by plan object.
    pub plans: FastMap<ObjectKey, Arc<PlanEntry>>,
}

/// The canary of a stage.
#[derive(Debug)]
pub struct CanaryEntry {
    /// 0.0 to 100.0.
    pub percent: f64,
    pub variant: Arc<StageVariant>,
    pub use_stage_cache: bool,
}

/// What one variant of a stage serves: a deployment's routes with the stage variables.
#[derive(Debug)]
pub struct StageVariant {
    /// The deployment id, or `live-{digest}` for an autoDeploy stage.
    pub deployment_id: String,
    /// Stage variables (with canary overrides applied for a canary variant).
    pub variables: Arc<std::collections::BTreeMap<String, String>>,
    /// Shared between every stage that serves the same deployment.
    pub routes: Arc<RouteSet>,
    pub is_canary: bool,
}

impl StageVariant {
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.variables.get(name).map(String::as_str)
    }
}

/// A usage plan, as it applies to one stage.
#[derive(Debug)]
pub struct PlanEntry {
    pub object: ObjectKey,
    pub throttle: Option<Throttle>,
    pub quota: Option<Quota>,
    pub method_throttles: Vec<(MethodSelector, Throttle)>,
}

/// An API key.
#[derive(Debug)]
pub struct KeyEntry {
    pub id: KeyId,
    pub object: ObjectKey,
    pub digest: KeyDigest,
    pub enabled: bool,
    pub customer_id: Option<Arc<str>>,
    /// The usage plans the key is in (one list shared by the keys in the same plans).
    pub plans: Arc<[ObjectKey]>,
    /// The rest of the key's status (`id` and `object` above are the rest): the generation
    /// compile read and the conditions it decided, one copy shared by the keys that have the
    /// same. Held here so that a served key's status is read from its entry
    /// ([`crate::compile::Status::Key`]) rather than kept in an allocation of its own: one
    /// 160-byte block per key instead of a 128-byte and a 112-byte one.
    pub generation: i64,
    pub conditions: Arc<[crate::conditions::Cond]>,
}

/// The compiled routes of one deployment (or live definition).
#[derive(Debug)]
pub struct RouteSet {
    index: Trie,
    resources: Vec<ResourceEntry>,
    /// The routes of a WEBSOCKET API (which has no resources).
    websocket: Option<WebSocketDef>,
}

/// A resource of a route set.
#[derive(Debug)]
pub struct ResourceEntry {
    pub path: PathTemplate,
    /// The AWS-style resource id (6 lowercase alphanumerics).
    pub id: String,
    /// Explicit methods first, ANY last.
    pub methods: Vec<(MethodKey, Arc<MethodDef>)>,
}

impl ResourceEntry {
    /// The method entry for a request method: an explicit method beats ANY.
    pub fn method(&self, method: &http::Method) -> Option<(MethodKey, &Arc<MethodDef>)> {
        let wanted = MethodKey::of_request(method);
        self.methods
            .iter()
            .find(|(k, _)| Some(*k) == wanted)
            .or_else(|| self.methods.iter().find(|(k, _)| *k == MethodKey::Any))
            .map(|(k, d)| (*k, d))
    }
}

/// Two resources of a route set match the same requests.
pub type RouteConflict = Conflict;

impl RouteSet {
    /// Builds the routes of resources; the first conflicting path fails the whole set.
    pub fn new(resources: Vec<ResourceEntry>) -> Result<Self, RouteConflict> {
        let paths: Vec<&PathTemplate> = resources.iter().map(|r| &r.path).collect();
        let index = Trie::build(&paths)?;
        Ok(RouteSet {
            index,
            resources,
            websocket: None,
        })
    }

    /// The same set, serving WebSocket connections with these routes.
    pub fn with_websocket(mut self, websocket: Option<WebSocketDef>) -> Self {
        self.websocket = websocket;
        self
    }

    /// The routes of a WEBSOCKET API; `None` for a REST API.
    pub fn websocket(&self) -> Option<&WebSocketDef> {
        self.websocket.as_ref()
    }

    pub fn resources(&self) -> &[ResourceEntry] {
        &self.resources
    }

    pub fn route_count(&self) -> usize {
        self.resources.iter().map(|r| r.methods.len()).sum::<usize>()
            + self.websocket.as_ref().map_or(0, |w| w.routes.len())
    }

    pub(crate) fn index(&self) -> &Trie {
        &self.index
    }

    pub(crate) fn resource(&self, index: u32) -> Option<&ResourceEntry> {
        self.resources.get(index as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys are found by their digest; of two entries with one digest, the later.
    #[test]
    fn keys_are_found_by_digest() {
        let digest = |value: &str| KeyDigest::of_value(&format!("{value}0123456789abcdefghij")).unwrap();
        let entry = |value: &str, name: &str| {
            Arc::new(KeyEntry {
                id: KeyId::from_uid(name),
                object: ObjectKey::new("default", name),
                digest: digest(value),
                enabled: true,
                customer_id: None,
                plans: Arc::new([]),
                generation: 1,
                conditions: Arc::new([]),
            })
        };
        let (a, b, c) = (entry("valuea", "a"), entry("valueb", "b"), entry("valuea", "c"));
        let table = RoutingTable::new(
            1,
            TableParts {
                keys: vec![a, b.clone(), c.clone()],
                ..Default::default()
            },
        );
        assert_eq!(table.keys().count(), 2);
        assert!(Arc::ptr_eq(table.key(&digest("valuea")).unwrap(), &c));
        assert!(Arc::ptr_eq(table.key(&digest("valueb")).unwrap(), &b));
        assert!(table.key(&digest("valuec")).is_none());
    }

    #[test]
    fn packed_ids_are_distinct_and_only_for_well_formed_ids() {
        assert_eq!(pack_id("aaaaaaaaaa"), Some(0));
        assert_eq!(pack_id("aaaaaaaaab"), Some(1));
        assert_eq!(pack_id("999999999999"), None);
        assert_ne!(pack_id("12kpjpijpt"), pack_id("12kpjpijpu"));
        assert_eq!(pack_id("12KPJPIJPT"), None);
        assert_eq!(pack_id("short"), None);
        assert_eq!(pack_id("a-b-c-d-e-"), None);
        assert!(pack_id("9999999999").is_some_and(|v| v < 36u64.pow(10)));
    }
}
