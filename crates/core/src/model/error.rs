//! Validation errors: a field path, a reason from a closed set and a message.

use std::fmt;

use crate::conditions::reasons;

/// Why a spec was rejected. Each reason is a condition reason (`Accepted=False`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    InvalidPath,
    InvalidMethod,
    InvalidIntegration,
    InvalidParameterMapping,
    InvalidStageName,
    InvalidStageVariable,
    InvalidThrottle,
    InvalidQuota,
    InvalidCanary,
    InvalidApiKey,
    InvalidPolicy,
    InvalidEndpointConfiguration,
    InvalidReference,
    /// A model's schema is not a valid JSON Schema (draft 4), or references what is not there.
    InvalidModel,
    InvalidGatewayResponse,
    InvalidCors,
    /// A stage cache setting or a cache key parameter is malformed or out of range.
    InvalidCacheSettings,
    /// An authorizer, or a method's authorization settings, is malformed.
    InvalidAuthorizer,
    /// Two resources of one API that are each well-formed but cannot both be routed.
    RouteConflict,
    /// A request or response mapping template does not parse.
    InvalidMappingTemplate,
    /// A WebSocket route, route key or route selection expression is malformed, or the
    /// protocol's fields are mixed (routes on a REST API, resources on a WEBSOCKET one).
    InvalidRoute,
    /// `spec.openApi` cannot be imported: the document is not OpenAPI 2.0 or 3.0, or the spec
    /// around it does not fit its mode.
    InvalidOpenApi,
    /// A UsagePlan's `apiKeySelector` has a malformed label, operator or value list.
    InvalidKeySelector,
    /// `spec.openApi.configMapKeyRef` names a ConfigMap (or key) the controller does not see.
    ConfigMapNotFound,
}

impl Reason {
    /// The PascalCase condition reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidPath => reasons::INVALID_PATH,
            Reason::InvalidMethod => reasons::INVALID_METHOD,
            Reason::InvalidIntegration => reasons::INVALID_INTEGRATION,
            Reason::InvalidParameterMapping => reasons::INVALID_PARAMETER_MAPPING,
            Reason::InvalidStageName => reasons::INVALID_STAGE_NAME,
            Reason::InvalidStageVariable => reasons::INVALID_STAGE_VARIABLE,
            Reason::InvalidThrottle => reasons::INVALID_THROTTLE,
            Reason::InvalidQuota => reasons::INVALID_QUOTA,
            Reason::InvalidCanary => reasons::INVALID_CANARY,
            Reason::InvalidApiKey => reasons::INVALID_API_KEY,
            Reason::InvalidPolicy => reasons::INVALID_POLICY,
            Reason::InvalidEndpointConfiguration => reasons::INVALID_ENDPOINT_CONFIGURATION,
            Reason::InvalidReference => reasons::INVALID_REFERENCE,
            Reason::InvalidModel => reasons::INVALID_MODEL,
            Reason::InvalidGatewayResponse => reasons::INVALID_GATEWAY_RESPONSE,
            Reason::InvalidCors => reasons::INVALID_CORS,
            Reason::InvalidCacheSettings => reasons::INVALID_CACHE_SETTINGS,
            Reason::InvalidAuthorizer => reasons::INVALID_AUTHORIZER,
            Reason::RouteConflict => reasons::ROUTE_CONFLICT,
            Reason::InvalidMappingTemplate => reasons::INVALID_MAPPING_TEMPLATE,
            Reason::InvalidRoute => reasons::INVALID_ROUTE,
            Reason::InvalidOpenApi => reasons::INVALID_OPEN_API,
            Reason::ConfigMapNotFound => reasons::CONFIG_MAP_NOT_FOUND,
            Reason::InvalidKeySelector => reasons::INVALID_KEY_SELECTOR,
        }
    }
}

/// A path to a field of an object, rendered the way users write it:
/// `spec.resources["/pets/{id}"].GET.integration.uri`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(String);

impl FieldPath {
    /// The path of the spec.
    pub fn spec() -> Self {
        FieldPath("spec".to_string())
    }

    /// `self.name`.
    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(name.to_string())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    /// `self["key"]`, for map keys that need quoting (paths, variable names).
    pub fn key(&self, key: &str) -> Self {
        FieldPath(format!("{}[{key:?}]", self.0))
    }

    /// `self[i]`.
    pub fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{i}]", self.0))
    }

    /// The rendered path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validation failure at one field.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// Where.
    pub field: FieldPath,
    /// Why, from a closed set.
    pub reason: Reason,
    /// What is wrong, for people.
    pub message: String,
}

impl Invalid {
    /// A failure at `field`.
    pub fn new(field: &FieldPath, reason: Reason, message: impl Into<String>) -> Self {
        Invalid {
            field: field.clone(),
            reason,
            message: message.into(),
        }
    }
}

/// Collects every failure of a spec, so a user sees them all at once.
#[derive(Debug, Default)]
pub struct Errors(Vec<Invalid>);

impl Errors {
    pub fn push(&mut self, field: &FieldPath, reason: Reason, message: impl Into<String>) {
        self.0.push(Invalid::new(field, reason, message));
    }

    pub fn extend(&mut self, other: Vec<Invalid>) {
        self.0.extend(other);
    }

    /// How many failures so far.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The failures collected so far (at least one must have been pushed).
    pub fn finish_err<T>(self) -> Result<T, Vec<Invalid>> {
        Err(self.0)
    }

    /// `Ok(value)` when nothing failed.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<Invalid>> {
        if self.0.is_empty() { Ok(value) } else { Err(self.0) }
    }
}
