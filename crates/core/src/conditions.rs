//! Condition types and reasons: a closed set, PascalCase, shared by every kind.
//!
//! Every object gets `Accepted` (its spec is valid), `ResolvedRefs` (every object it names
//! exists and fits) and `Ready` (it is in the published routing table). Reasons are the only
//! strings a condition may carry in `reason`; messages name the object and the field path.

/// Condition types.
pub mod types {
    /// The spec passed validation.
    pub const ACCEPTED: &str = "Accepted";
    /// Every reference resolved.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// The object serves (or, for plans and keys, is enforced) in the published routing table.
    pub const READY: &str = "Ready";
    /// A RestApi with `spec.openApi`: whether the document was imported, and every member of
    /// it the spec does not carry, by JSON pointer.
    pub const OPEN_API_IMPORTED: &str = "OpenApiImported";
}

/// Condition reasons.
pub mod reasons {
    // --- positive
    pub const ACCEPTED: &str = "Accepted";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    pub const READY: &str = "Ready";

    // --- Accepted=False: one per model validation failure (see model::Reason)
    pub const INVALID_PATH: &str = "InvalidPath";
    pub const INVALID_METHOD: &str = "InvalidMethod";
    pub const INVALID_INTEGRATION: &str = "InvalidIntegration";
    pub const INVALID_PARAMETER_MAPPING: &str = "InvalidParameterMapping";
    pub const INVALID_STAGE_NAME: &str = "InvalidStageName";
    pub const INVALID_STAGE_VARIABLE: &str = "InvalidStageVariable";
    pub const INVALID_THROTTLE: &str = "InvalidThrottle";
    pub const INVALID_QUOTA: &str = "InvalidQuota";
    pub const INVALID_CANARY: &str = "InvalidCanary";
    pub const INVALID_API_KEY: &str = "InvalidApiKey";
    pub const INVALID_POLICY: &str = "InvalidPolicy";
    pub const INVALID_ENDPOINT_CONFIGURATION: &str = "InvalidEndpointConfiguration";
    pub const INVALID_REFERENCE: &str = "InvalidReference";
    pub const INVALID_MODEL: &str = "InvalidModel";
    pub const INVALID_GATEWAY_RESPONSE: &str = "InvalidGatewayResponse";
    pub const INVALID_CORS: &str = "InvalidCors";
    pub const INVALID_CACHE_SETTINGS: &str = "InvalidCacheSettings";
    pub const INVALID_AUTHORIZER: &str = "InvalidAuthorizer";
    pub const INVALID_KEY_SELECTOR: &str = "InvalidKeySelector";
    pub const ROUTE_CONFLICT: &str = "RouteConflict";
    /// A mapping template does not parse (the message gives its line and column).
    pub const INVALID_MAPPING_TEMPLATE: &str = "InvalidMappingTemplate";
    pub const INVALID_ROUTE: &str = "InvalidRoute";
    pub const STAGE_CONFLICT: &str = "StageConflict";
    /// `spec.openApi` cannot be imported (also the reason of `OpenApiImported=False`).
    pub const INVALID_OPEN_API: &str = "InvalidOpenApi";
    /// `spec.openApi.configMapKeyRef` names a ConfigMap or key that is not there, or a
    /// ConfigMap without the `turnpike.dev/openapi` label.
    pub const CONFIG_MAP_NOT_FOUND: &str = "ConfigMapNotFound";

    // --- OpenApiImported=True
    /// The whole document was carried into the spec.
    pub const IMPORTED: &str = "Imported";
    /// Imported; the message lists what was left out, by JSON pointer.
    pub const IMPORTED_WITH_WARNINGS: &str = "ImportedWithWarnings";

    // --- ResolvedRefs=False
    pub const REST_API_NOT_FOUND: &str = "RestApiNotFound";
    pub const REST_API_INVALID: &str = "RestApiInvalid";
    pub const DEPLOYMENT_NOT_FOUND: &str = "DeploymentNotFound";
    pub const DEPLOYMENT_API_MISMATCH: &str = "DeploymentApiMismatch";
    pub const DEPLOYMENT_NOT_READY: &str = "DeploymentNotReady";
    pub const SNAPSHOT_PENDING: &str = "SnapshotPending";
    pub const SNAPSHOT_INVALID: &str = "SnapshotInvalid";
    pub const STAGE_NOT_FOUND: &str = "StageNotFound";
    pub const SERVICE_NOT_FOUND: &str = "ServiceNotFound";
    pub const SERVICE_PORT_NOT_FOUND: &str = "ServicePortNotFound";
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    pub const SECRET_KEY_NOT_FOUND: &str = "SecretKeyNotFound";
    /// The referenced Secret exists but lacks the `turnpike.dev/api-key` label, so the
    /// controller does not read it.
    pub const SECRET_NOT_LABELLED: &str = "SecretNotLabelled";
    pub const USAGE_PLAN_NOT_FOUND: &str = "UsagePlanNotFound";
    /// A method names an authorizer the API does not declare; that method answers 500, the
    /// others serve.
    pub const AUTHORIZER_NOT_FOUND: &str = "AuthorizerNotFound";
    pub const DUPLICATE_API_KEY: &str = "DuplicateApiKey";
    /// A private integration's Service port has no ready endpoint. The object stays in the
    /// table (its other routes serve), so `Ready` is unaffected.
    pub const NO_READY_ENDPOINTS: &str = "NoReadyEndpoints";

    // --- Ready=False, when the cause is elsewhere
    pub const NOT_ACCEPTED: &str = "NotAccepted";
    pub const REFS_NOT_RESOLVED: &str = "RefsNotResolved";
    pub const DISABLED: &str = "Disabled";

    /// Every reason, for tests that check each one is reachable.
    pub const ALL: &[&str] = &[
        ACCEPTED,
        RESOLVED_REFS,
        READY,
        INVALID_PATH,
        INVALID_METHOD,
        INVALID_INTEGRATION,
        INVALID_PARAMETER_MAPPING,
        INVALID_STAGE_NAME,
        INVALID_STAGE_VARIABLE,
        INVALID_THROTTLE,
        INVALID_QUOTA,
        INVALID_CANARY,
        INVALID_API_KEY,
        INVALID_POLICY,
        INVALID_ENDPOINT_CONFIGURATION,
        INVALID_REFERENCE,
        INVALID_MODEL,
        INVALID_GATEWAY_RESPONSE,
        INVALID_CORS,
        INVALID_CACHE_SETTINGS,
        INVALID_AUTHORIZER,
        INVALID_KEY_SELECTOR,
        ROUTE_CONFLICT,
        INVALID_MAPPING_TEMPLATE,
        INVALID_ROUTE,
        STAGE_CONFLICT,
        INVALID_OPEN_API,
        CONFIG_MAP_NOT_FOUND,
        IMPORTED,
        IMPORTED_WITH_WARNINGS,
        REST_API_NOT_FOUND,
        REST_API_INVALID,
        DEPLOYMENT_NOT_FOUND,
        DEPLOYMENT_API_MISMATCH,
        DEPLOYMENT_NOT_READY,
        SNAPSHOT_PENDING,
        SNAPSHOT_INVALID,
        STAGE_NOT_FOUND,
        SERVICE_NOT_FOUND,
        SERVICE_PORT_NOT_FOUND,
        SECRET_NOT_FOUND,
        SECRET_KEY_NOT_FOUND,
        SECRET_NOT_LABELLED,
        USAGE_PLAN_NOT_FOUND,
        AUTHORIZER_NOT_FOUND,
        DUPLICATE_API_KEY,
        NOT_ACCEPTED,
        REFS_NOT_RESOLVED,
        NO_READY_ENDPOINTS,
        DISABLED,
    ];
}

/// A condition as compile decides it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Cond {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Cond {
    pub fn ok(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Cond {
            type_,
            status: true,
            reason,
            message: message.into(),
        }
    }

    pub fn fail(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Cond {
            type_,
            status: false,
            reason,
            message: message.into(),
        }
    }
}
