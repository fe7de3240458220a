//! The input of [`compile`](super::compile): every object the routing table is made from,
//! already validated, plus the facts about Services and Secrets they refer to.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use crate::model::{
    ApiKeyDef, DeploymentDef, Invalid, ObjectKey, RestApiDef, SecretData, ServiceRef, StageDef, Uid,
    UsagePlanDef,
};

/// Identity of an object: its key, uid and generation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub key: ObjectKey,
    pub uid: Uid,
    pub generation: i64,
}

/// An object as converted: its identity and its validated definition, or why it is invalid.
#[derive(Clone, Debug)]
pub struct Obj<T> {
    pub meta: Meta,
    pub def: Result<T, Vec<Invalid>>,
}

/// A RestApi, with the digest of its spec (what a snapshot of it would record).
#[derive(Clone, Debug)]
pub struct RestApiObj {
    pub meta: Meta,
    pub def: Result<RestApiDef, Vec<Invalid>>,
    /// sha256 of the canonical spec JSON.
    pub digest: String,
    /// For a RestApi with `spec.openApi`: how its import went (the controller imports the
    /// document into the spec before conversion; `def` is the imported definition).
    pub open_api: Option<OpenApiImport>,
}

/// How the import of a RestApi's OpenAPI document went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenApiImport {
    /// Imported; what the spec does not carry: (JSON pointer, why), in document order.
    Imported { warnings: Vec<(String, String)> },
    /// Not imported (`def` holds the same failure): why.
    Failed {
        reason: crate::model::Reason,
        message: String,
    },
}

/// The recorded snapshot of a Deployment.
#[derive(Clone, Debug)]
pub enum Snapshot {
    /// Not recorded yet: the leader records it at the first reconcile.
    Pending,
    /// Recorded. The definition is validated again here, so a snapshot made by an older version
    /// with looser rules still reports what is wrong with it.
    Recorded {
        digest: String,
        /// Boxed: a definition is far larger than the other variants.
        def: Box<Result<RestApiDef, Vec<Invalid>>>,
    },
    /// The snapshot object exists but cannot be read (wrong digest, malformed content).
    Corrupt { message: String },
}

/// A Deployment and its snapshot.
#[derive(Clone, Debug)]
pub struct DeploymentObj {
    pub meta: Meta,
    pub def: Result<DeploymentDef, Vec<Invalid>>,
    pub snapshot: Snapshot,
}

/// What the cluster says about a Service: its ports and the ready endpoints behind each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceFacts {
    pub ports: Vec<ServicePortFacts>,
}

/// One Service port and its ready endpoints (from EndpointSlices).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServicePortFacts {
    pub name: Option<String>,
    pub port: u16,
    pub endpoints: Vec<SocketAddr>,
}

/// API key Secrets by name, as digests of their values.
pub type SecretMap = BTreeMap<ObjectKey, SecretData>;

/// Everything compile reads. Built by `crate::ingest` from Kubernetes objects, or by tests.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub rest_apis: BTreeMap<ObjectKey, RestApiObj>,
    pub deployments: BTreeMap<ObjectKey, DeploymentObj>,
    pub stages: BTreeMap<ObjectKey, Obj<StageDef>>,
    pub usage_plans: BTreeMap<ObjectKey, Obj<UsagePlanDef>>,
    /// Shared with the controller's conversion cache: a rebuild converts only the keys that
    /// changed.
    pub api_keys: BTreeMap<ObjectKey, Arc<Obj<ApiKeyDef>>>,
    pub services: BTreeMap<ObjectKey, ServiceFacts>,
    /// The Secrets API keys refer to, as digests; compile reads only those its keys name.
    /// Shared with the controller's Secret cache, which holds only referenced ones: a rebuild
    /// copies none.
    pub secrets: Arc<SecretMap>,
    /// Referenced Secrets that exist without the `turnpike.dev/api-key` label (not read).
    pub unlabelled_secrets: BTreeSet<ObjectKey>,
}

impl World {
    /// The ready endpoints of a Service port, or why there are none.
    pub fn endpoints(&self, service: &ServiceRef) -> Result<Vec<SocketAddr>, EndpointsError> {
        let key = ObjectKey::new(service.namespace.clone(), service.name.clone());
        let facts = self.services.get(&key).ok_or(EndpointsError::ServiceNotFound)?;
        let port = facts
            .ports
            .iter()
            .find(|p| p.port == service.port)
            .ok_or(EndpointsError::PortNotFound)?;
        Ok(port.endpoints.clone())
    }
}

/// Why a Service port has no endpoints to offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointsError {
    ServiceNotFound,
    PortNotFound,
}

/// An address helper for tests and ingest: `ip:port`.
pub fn socket(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}
