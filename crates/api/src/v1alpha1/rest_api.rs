//! RestApi: the API definition (resources, methods, integrations).

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Conditions;

/// A REST API: path templates, the methods on each, and the integration each method calls.
///
/// A RestApi is never served directly: a Deployment snapshots it, and a Stage serves a
/// Deployment (or, with `autoDeploy`, the live definition).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "turnpike.dev",
    version = "v1alpha1",
    kind = "RestApi",
    doc = "A REST API: resources (path templates), their methods, and the integration each method calls. Served through Deployments and Stages.",
    plural = "restapis",
    namespaced,
    status = "RestApiStatus",
    shortname = "rapi",
    category = "turnpike",
    printcolumn = r#"{"name":"API-ID","type":"string","jsonPath":".status.apiId"}"#,
    printcolumn = r#"{"name":"TYPE","type":"string","jsonPath":".spec.endpointConfiguration.types[0]"}"#,
    printcolumn = r#"{"name":"PROTOCOL","type":"string","jsonPath":".spec.protocolType"}"#,
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RestApiSpec {
    /// Free-form description of the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,

    /// Where the API is served. EDGE (the default) and REGIONAL APIs are served on the public
    /// listener; PRIVATE APIs only on the private listener, inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_configuration: Option<EndpointConfiguration>,

    /// Where API keys are read from: HEADER (`x-api-key`, the default) or AUTHORIZER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_source: Option<ApiKeySource>,

    /// The resource policy: who may invoke the API. A PRIVATE API denies every caller that no
    /// `allow` rule matches; an explicit `deny` rule always wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<ResourcePolicy>,

    /// The resources of the API, keyed by path template: literal segments, `{param}` segments
    /// and a greedy `{proxy+}` as the last segment, e.g. `/pets/{id}` or `/files/{proxy+}`.
    /// Each resource maps HTTP methods (GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or ANY)
    /// to their method settings.
    #[serde(default)]
    pub resources: BTreeMap<String, BTreeMap<String, MethodSpec>>,

    /// Models: JSON Schema (draft 4) documents that describe request bodies, keyed by model
    /// name (letters and digits). A model's schema may reference another model of the API
    /// with `{"$ref": "#/models/NAME"}` or, as AWS writes it,
    /// `{"$ref": "https://apigateway.amazonaws.com/restapis/API_ID/models/NAME"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, ModelSpec>,

    /// Request validators, keyed by name; a method names one in `requestValidatorId`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_validators: BTreeMap<String, RequestValidatorSpec>,

    /// Media types treated as binary, e.g. `image/png`, `image/*` or `*/*`. They decide which
    /// payloads `contentHandling` converts (base64) for HTTP integrations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binary_media_types: Vec<String>,

    /// Compress responses of at least this many bytes (0 to 10485760) with gzip or deflate
    /// when the client's Accept-Encoding allows; unset turns compression off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10485760))]
    pub minimum_compression_size: Option<i64>,

    /// Customized gateway responses: the answers the gateway gives itself, keyed by AWS
    /// response type (DEFAULT_4XX, DEFAULT_5XX, MISSING_AUTHENTICATION_TOKEN, INVALID_API_KEY,
    /// THROTTLED, QUOTA_EXCEEDED, ACCESS_DENIED, BAD_REQUEST_PARAMETERS, BAD_REQUEST_BODY,
    /// INTEGRATION_FAILURE, INTEGRATION_TIMEOUT, REQUEST_TOO_LARGE, RESOURCE_NOT_FOUND,
    /// API_CONFIGURATION_ERROR, UNSUPPORTED_MEDIA_TYPE; UNAUTHORIZED, AUTHORIZER_FAILURE,
    /// AUTHORIZER_CONFIGURATION_ERROR, EXPIRED_TOKEN, INVALID_SIGNATURE and WAF_FILTERED are
    /// accepted and take effect when those features exist). An answer uses its own type's
    /// customization, else DEFAULT_4XX or DEFAULT_5XX, else the built-in AWS answer. Answers
    /// given before the API is known (unknown API or stage, malformed requests, size limits
    /// checked on the head) are always the built-in ones. Applied from the live RestApi, like
    /// the endpoint type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gateway_responses: BTreeMap<String, GatewayResponseSpec>,

    /// Declarative CORS, as AWS HTTP APIs have it: the gateway answers preflights (OPTIONS with
    /// `Origin` and `Access-Control-Request-Method`) itself, without calling any integration,
    /// and adds `Access-Control-Allow-Origin`, `Access-Control-Expose-Headers` and
    /// `Vary: Origin` to every answer of the API, its own 4XX/5XX included. Without it, CORS is
    /// done the REST API way: an OPTIONS method with a MOCK integration whose integration
    /// response sets `method.response.header.Access-Control-Allow-*`. Applied from the live
    /// RestApi, like the endpoint type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsSpec>,

    /// Authorizers, keyed by id (1 to 128 letters, digits, '-' or '_'; at most 10): methods
    /// name one in `authorizerId`. TOKEN and REQUEST call a function speaking the Lambda
    /// Invoke API that answers with an IAM policy; COGNITO_USER_POOLS and JWT verify a JSON
    /// Web Token against an OIDC issuer's keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub authorizers: BTreeMap<String, AuthorizerSpec>,

    /// REST (the default): `resources` and their methods answer HTTP requests. WEBSOCKET: the
    /// stage URL accepts WebSocket connections; `$connect` runs at the upgrade, every message
    /// goes to the route `routeSelectionExpression` selects (else `$default`), `$disconnect`
    /// runs when the socket closes, and backends push to clients through the `@connections`
    /// API on the private listener. A WEBSOCKET API has `routes` and no `resources`.
    #[serde(default, skip_serializing_if = "ProtocolType::is_rest")]
    pub protocol_type: ProtocolType,

    /// WEBSOCKET only: what selects a message's route, `$request.body.NAME` (a dotted path
    /// into the JSON message, e.g. `$request.body.action` or `$request.body.meta.type`). A
    /// message that is not JSON, or whose value there is not a string, a number or a boolean
    /// with a route of that key, goes to `$default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_selection_expression: Option<String>,

    /// WEBSOCKET only: routes keyed `$connect`, `$disconnect`, `$default` or a custom route
    /// key (the value the selection expression yields, e.g. `sendmessage`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<String, RouteSpec>,

    /// An OpenAPI 2.0 (Swagger) or 3.0 document, YAML or JSON, with the
    /// `x-amazon-apigateway-*` extensions (an AWS export as it is), that the controller imports
    /// into this spec (AWS PutRestApi). `mode: merge` (the default) takes the document's
    /// definitions first, then this spec's resources, methods, models, authorizers and
    /// settings override or extend them; `mode: overwrite` makes the document the whole API,
    /// and the other fields of the spec must then be empty. What the import cannot carry is
    /// listed, with its JSON pointer, in the `OpenApiImported` condition. A Deployment records
    /// the imported definition, so later edits of the document reach only autoDeploy stages
    /// and new Deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_api: Option<OpenApiSource>,
}

/// Where an OpenAPI document to import is: inline, or a key of a ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenApiSource {
    /// The document itself (at most 6 MB, AWS's import limit). Exactly one of `body` and
    /// `configMapKeyRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,

    /// A key of a ConfigMap in the RestApi's namespace holding the document. The ConfigMap
    /// must carry the label `turnpike.dev/openapi` (any value): the controller watches only
    /// those. A change of the ConfigMap is imported again at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<ConfigMapKeyRef>,

    /// `merge` (the default) or `overwrite`, as AWS PutRestApi's `mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<OpenApiMode>,
}

/// A key of a ConfigMap in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// The ConfigMap's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key in its `data`.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// How an imported document and the spec combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OpenApiMode {
    /// The document's definitions, then the spec's on top (the spec wins per resource method,
    /// model, validator, authorizer, gateway response and setting).
    #[default]
    Merge,
    /// The document is the whole API; the spec's other fields must be empty.
    Overwrite,
}

/// An authorizer (AWS's Authorizer fields, plus JWT for any OIDC issuer).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerSpec {
    /// TOKEN, REQUEST, COGNITO_USER_POOLS or JWT.
    #[serde(rename = "type")]
    pub type_: AuthorizerType,

    /// Where the identity comes from. TOKEN, COGNITO_USER_POOLS and JWT: one
    /// `method.request.header.NAME` (default `method.request.header.Authorization`). REQUEST:
    /// comma-separated `method.request.header.NAME`, `method.request.querystring.NAME`,
    /// `stageVariables.NAME` or `context.NAME` (required when results are cached). A request
    /// missing any of them is answered 401 without calling the authorizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_source: Option<String>,

    /// TOKEN only: a regular expression the whole token must match, else 401 without calling
    /// the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_validation_expression: Option<String>,

    /// How long a TOKEN or REQUEST function's answer is reused for the same identity source
    /// values, in seconds: 0 (never) to 3600; default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub authorizer_result_ttl_in_seconds: Option<i64>,

    /// TOKEN and REQUEST: the function, as AWS writes it
    /// (`arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/FUNCTION_ARN/invocations`),
    /// a function ARN, or a function name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizer_uri: Option<String>,

    /// TOKEN and REQUEST: the host that runs the function (Lambda Invoke API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_host: Option<FunctionHostSpec>,

    /// COGNITO_USER_POOLS and JWT: the issuer and audiences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_configuration: Option<JwtConfigurationSpec>,
}

/// An authorizer type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthorizerType {
    /// A function gets the bearer token.
    #[default]
    Token,
    /// A function gets the request's headers, query, path parameters and stage variables.
    Request,
    /// A Cognito-style user pool: a JWT of the issuer, `aud` or `client_id` checked.
    CognitoUserPools,
    /// A JWT of any OIDC issuer.
    Jwt,
}

/// A host that runs functions through the Lambda Invoke API
/// (`POST /2015-03-31/functions/NAME/invocations`): the AWS Lambda Runtime Interface
/// Emulator, LocalStack, or a Knative/OpenFaaS adapter. Exactly one of `url` and `serviceRef`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunctionHostSpec {
    /// The host's base URL, e.g. `http://lambda.functions:8080`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// An in-cluster Service port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_ref: Option<ServiceRef>,
}

/// The issuer and audiences of a JWT or COGNITO_USER_POOLS authorizer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtConfigurationSpec {
    /// The issuer URL: a token's `iss` must equal it. Without `jwksUri`, the keys come from
    /// `ISSUER/.well-known/openid-configuration`.
    pub issuer: String,
    /// Accepted audiences: a token's `aud` (or an access token's `client_id`) must be one of
    /// them. Required for JWT; for COGNITO_USER_POOLS, empty accepts any client of the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audience: Vec<String>,
    /// The JWKS URL, when it is not the issuer's discovered `jwks_uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
}

/// How a method is authorized.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthorizationType {
    /// Open to any caller (API keys and the resource policy still apply).
    #[default]
    None,
    /// A TOKEN or REQUEST authorizer.
    Custom,
    /// A COGNITO_USER_POOLS authorizer.
    CognitoUserPools,
    /// A JWT authorizer.
    Jwt,
}

/// Whether an API serves HTTP requests or WebSocket connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ProtocolType {
    /// Resources and methods (the default).
    #[default]
    Rest,
    /// Routes over WebSocket connections.
    Websocket,
}

impl ProtocolType {
    /// Whether this is the default, REST.
    pub fn is_rest(&self) -> bool {
        *self == ProtocolType::Rest
    }
}

/// A route of a WEBSOCKET API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    /// `$connect` only: callers must present an API key (`x-api-key` on the upgrade request)
    /// that belongs to a usage plan of the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_required: Option<bool>,

    /// `$default` makes the route two-way: the integration's answer is sent back to the
    /// client as a message. Without it the answer is dropped (the backend pushes through
    /// `@connections` instead). Not on `$connect` and `$disconnect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_response_selection_expression: Option<String>,

    /// `$connect` only: NONE (the default), CUSTOM (a REQUEST authorizer, its identity from
    /// the upgrade request's headers or query string) or JWT. A refusal refuses the upgrade
    /// (401 or 403), and the authorizer's context reaches every event of the connection as
    /// `requestContext.authorizer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_type: Option<AuthorizationType>,

    /// `$connect` only: the authorizer (a key of `spec.authorizers`) for CUSTOM and JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizer_id: Option<String>,

    /// `$connect` with JWT only: the token's `scope` claim must hold at least one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_scopes: Vec<String>,

    /// The backend the route calls (HTTP_PROXY, HTTP, MOCK, or an in-cluster Service with
    /// connectionType VPC_LINK). HTTP and HTTP_PROXY backends get a POST whose body is the
    /// AWS event (`requestContext.connectionId`, `routeKey`, `eventType`, `body`, ...) and
    /// whose `connectionId` header names the connection.
    pub integration: IntegrationSpec,
}

/// A model: the schema of a payload.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// The content type the model describes, e.g. `application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// A JSON Schema draft 4 document, as a JSON string or as a YAML/JSON object.
    #[schemars(schema_with = "crate::shared::any_json")]
    pub schema: serde_json::Value,
    /// Free-form description of the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A request validator: what it checks before a request reaches the integration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestValidatorSpec {
    /// Validate the body against the method's `requestModels` (400 "Invalid request body").
    #[serde(default)]
    pub validate_request_body: bool,
    /// Check the method's required `requestParameters` (400 "Missing required request
    /// parameters").
    #[serde(default)]
    pub validate_request_parameters: bool,
}

/// How a payload's encoding is converted between text and binary (base64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContentHandling {
    /// A text payload is base64-decoded into binary; a binary one passes unchanged.
    ConvertToBinary,
    /// A binary payload is base64-encoded into text; a text one passes unchanged.
    ConvertToText,
}

/// A customized gateway response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayResponseSpec {
    /// The status code of the answer, e.g. `"404"`; defaults to the type's own status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[1-5]\d\d$"))]
    pub status_code: Option<String>,
    /// Response headers, keyed `gatewayresponse.header.NAME`, with values a static
    /// `'quoted value'`, `method.request.{path|querystring|header}.NAME`, `context.NAME`
    /// (e.g. `context.requestId`) or `stageVariables.NAME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub response_parameters: BTreeMap<String, String>,
    /// Bodies keyed by content type. A template may use `$context.error.message`,
    /// `$context.error.messageString` (the message as a quoted JSON string),
    /// `$context.error.responseType`, `$context.requestId` and the other `$context` values of
    /// the access log, and `$stageVariables.NAME`. Without templates the built-in body stays,
    /// `{"message":$context.error.messageString}` in most cases.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub response_templates: BTreeMap<String, String>,
}

/// Declarative CORS settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CorsSpec {
    /// Allowed origins: exact (`https://app.example.com`, `http://127.0.0.1:3000`), wildcard
    /// subdomains (`https://*.example.com`: any subdomain, not the domain itself) or `*` (any
    /// origin; not with allowCredentials).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for (GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS), or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Request headers a preflight may ask for, or `*` (echoes what the browser asks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Response headers the browser lets the page read (`Access-Control-Expose-Headers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight answer, in seconds (`Access-Control-Max-Age`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub max_age: Option<i64>,
    /// Whether the browser may send cookies and credentials (`Access-Control-Allow-Credentials:
    /// true`); then the origin is echoed, and `*` is refused in allowOrigins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
}

/// The endpoint configuration of an API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointConfiguration {
    /// Endpoint types; exactly one of EDGE, REGIONAL or PRIVATE.
    #[schemars(length(min = 1, max = 1))]
    pub types: Vec<EndpointType>,
}

/// An endpoint type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum EndpointType {
    /// Public listener, with edge behaviours (`Via`, `X-Cache`).
    Edge,
    /// Public listener, headers passed as they are.
    Regional,
    /// Private listener only, behind the resource policy.
    Private,
}

/// Where API keys are read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ApiKeySource {
    /// The `x-api-key` request header.
    Header,
    /// The usage identifier an authorizer returns.
    Authorizer,
}

/// A resource policy: allow and deny rules on the caller's source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePolicy {
    /// Callers matched by any of these rules may invoke the API.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<PolicyRule>,
    /// Callers matched by any of these rules are denied, whatever `allow` says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<PolicyRule>,
}

/// A policy rule matches a caller whose source address is in one of `sourceCidrs` or whose pod
/// runs in one of `sourceNamespaces`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// Source address ranges in CIDR notation, e.g. `10.0.0.0/8` or `fd00::/8`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_cidrs: Vec<String>,
    /// Namespaces whose pods may call, identified by the pod IP of the connection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_namespaces: Vec<String>,
}

/// A method on a resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MethodSpec {
    /// Whether callers must send an API key that belongs to a usage plan of the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_required: Option<bool>,

    /// Method request parameters and whether each is required, keyed
    /// `method.request.{path|querystring|header}.NAME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_parameters: BTreeMap<String, bool>,

    /// The request validator (a key of `spec.requestValidators`) that checks this method's
    /// requests. Without one, neither the body nor the required parameters are checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_validator_id: Option<String>,

    /// The model (a key of `spec.models`) a request body must match, keyed by content type;
    /// `$default` is used for a content type that has no entry of its own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_models: BTreeMap<String, String>,

    /// NONE (the default), CUSTOM (a TOKEN or REQUEST authorizer), COGNITO_USER_POOLS or JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_type: Option<AuthorizationType>,

    /// The authorizer (a key of `spec.authorizers`) for CUSTOM, COGNITO_USER_POOLS and JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizer_id: Option<String>,

    /// COGNITO_USER_POOLS and JWT: the token's `scope` claim must hold at least one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_scopes: Vec<String>,

    /// The backend the method calls.
    pub integration: IntegrationSpec,
}

/// The integration of a method: where a request goes and how it is shaped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationSpec {
    /// HTTP_PROXY passes the whole request and response through; HTTP maps parameters and
    /// responses; MOCK answers without a backend.
    #[serde(rename = "type")]
    pub type_: IntegrationType,

    /// The backend URL for HTTP and HTTP_PROXY, e.g. `https://backend.example/pets/{id}`.
    /// May reference path parameters (`{id}`, `{proxy}`) and stage variables
    /// (`${stageVariables.host}`). With connectionType VPC_LINK, the scheme, path and query are
    /// used and the authority comes from the Service in `serviceRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,

    /// AWS_PROXY: the host that runs the function (Lambda Invoke API); `uri` names the
    /// function as AWS writes it
    /// (`arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/FUNCTION_ARN/invocations`),
    /// or a function ARN or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_host: Option<FunctionHostSpec>,

    /// The method sent to the backend; defaults to the request's method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_method: Option<String>,

    /// INTERNET (the default) calls `uri`; VPC_LINK calls the ready endpoints of the Service
    /// named in `serviceRef` (a private integration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_type: Option<ConnectionType>,

    /// The in-cluster Service of a private integration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_ref: Option<ServiceRef>,

    /// How long the gateway waits for the backend, in milliseconds: 50 to 29000 (the default)
    /// for EDGE APIs, up to 300000 for REGIONAL and PRIVATE APIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 50, max = 300000))]
    pub timeout_in_millis: Option<i64>,

    /// Request parameter mappings for HTTP integrations, keyed
    /// `integration.request.{path|querystring|header}.NAME`, with values
    /// `method.request.{path|querystring|header}.NAME`, `stageVariables.NAME` or a static
    /// `'quoted value'`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_parameters: BTreeMap<String, String>,

    /// Request templates keyed by content type. For HTTP integrations, mapping templates in
    /// the Velocity subset AWS runs (`$input.json('$.name')`, `$input.params('id')`,
    /// `#foreach`…): the one for the request's Content-Type (`application/json` when it has
    /// none) becomes the backend request body. At most 300 KB each. For MOCK integrations, the
    /// same selection and language: the rendered template is JSON whose `statusCode` selects
    /// the integration response (`{"statusCode": 200}`, or
    /// `#if($input.params('scope') == "internal"){"statusCode": 200}#else{"statusCode": 403}#end`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_templates: BTreeMap<String, String>,

    /// What an HTTP integration does with a request whose Content-Type has no request
    /// template: WHEN_NO_MATCH (the default) passes it through; WHEN_NO_TEMPLATES passes it
    /// through only if there are no request templates at all; NEVER answers 415. A refused
    /// request gets `415 {"message": "Unsupported Media Type"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passthrough_behavior: Option<PassthroughBehavior>,

    /// How backend (or mock) responses become method responses, for HTTP and MOCK integrations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub integration_responses: Vec<IntegrationResponseSpec>,

    /// TLS settings for HTTPS backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,

    /// How the request payload is converted for an HTTP integration (whether it is binary is
    /// decided by its Content-Type and `spec.binaryMediaTypes`). HTTP_PROXY passes payloads
    /// through unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_handling: Option<ContentHandling>,

    /// The request parameters that are part of the stage cache key, besides the path:
    /// `method.request.querystring.NAME`, `method.request.multivaluequerystring.NAME`,
    /// `method.request.header.NAME`, `method.request.multivalueheader.NAME` or
    /// `method.request.path.NAME`. Query strings and headers not named here do not
    /// split the cache.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_key_parameters: Vec<String>,

    /// Methods with the same cache namespace share cache entries (for the same path and key
    /// parameters); the default is the method's own resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_namespace: Option<String>,
}

/// An integration type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IntegrationType {
    /// Pass the request and response through, streamed.
    #[default]
    HttpProxy,
    /// Map request parameters and responses.
    Http,
    /// Answer from the configuration alone.
    Mock,
    /// A Lambda proxy integration: the request becomes AWS's proxy event (payload format
    /// 1.0), POSTed to `functionHost`'s Lambda Invoke API for the function named in `uri`;
    /// the function's `{statusCode, headers, multiValueHeaders, body, isBase64Encoded}` is the
    /// answer.
    AwsProxy,
}

/// What an HTTP integration does with a payload no request template is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PassthroughBehavior {
    /// Pass it through when no template matches its content type.
    WhenNoMatch,
    /// Pass it through only when there are no request templates.
    WhenNoTemplates,
    /// Refuse it (415).
    Never,
}

/// How the integration reaches its backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectionType {
    /// The URL in `uri`.
    Internet,
    /// The ready endpoints of an in-cluster Service.
    VpcLink,
}

/// A Service of a private integration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRef {
    /// Name of the Service.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Namespace of the Service; defaults to the RestApi's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Service port to call.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

/// A mapping from a backend response to a method response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationResponseSpec {
    /// The method response status code, e.g. `200`.
    #[schemars(regex(pattern = r"^[1-5]\d\d$"))]
    pub status_code: String,
    /// A regular expression matched against the backend status code; the response without a
    /// pattern is the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection_pattern: Option<String>,
    /// Response headers, keyed `method.response.header.NAME`, with values
    /// `integration.response.header.NAME` or a static `'quoted value'`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub response_parameters: BTreeMap<String, String>,
    /// Response bodies keyed by content type: mapping templates over the backend's payload
    /// (`$input.path('$.items')`…), chosen by the client's Accept header (else
    /// `application/json`, else the first). A template may set
    /// `$context.responseOverride.status` and `$context.responseOverride.header.NAME`.
    /// An empty map passes the backend body through.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub response_templates: BTreeMap<String, String>,
    /// How the backend's body is converted (whether it is binary is decided by its
    /// Content-Type, and what the client wants by the first type of its Accept header, against
    /// `spec.binaryMediaTypes`). Applies to a body passed through, not to a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_handling: Option<ContentHandling>,
}

/// TLS settings towards a backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsConfig {
    /// Accept any backend certificate. For tests only.
    #[serde(default)]
    pub insecure_skip_verification: bool,
}

/// The observed state of a RestApi.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestApiStatus {
    /// The API id: 10 lowercase alphanumerics, stable for the life of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_id: Option<String>,
    /// Conditions: Accepted, ResolvedRefs, Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
}
