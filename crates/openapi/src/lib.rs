//! OpenAPI documents with the `x-amazon-apigateway-*` extensions, to and from a RestApi spec.
//!
//! Teams leaving AWS have their APIs as OpenAPI exports (AWS GetExport, `oas30` or `swagger`,
//! with `extensions=integrations,authorizers,apigateway`). [`import`] turns such a document, as
//! it is, into a [`RestApiSpec`]; [`export`] gives a RestApi back in AWS's export shape.
//!
//! Import never drops anything silently: every extension, key or construct it cannot carry into
//! the spec becomes a [`Warning`] naming its JSON pointer (RFC 6901) in the document. A
//! document that is not OpenAPI at all (not YAML or JSON, no `swagger: "2.0"` or
//! `openapi: 3.x`, over the size limit) is an [`ImportError`].
//!
//! Pure: no I/O and no Kubernetes client; the CLI (`turnpike openapi`), the controller
//! (`spec.openApi`) and the admin export endpoint call it.
//!
//! Mapping, both ways:
//!
//! | OpenAPI | RestApi spec |
//! |---|---|
//! | `info.description` | `description` |
//! | `paths./p.{get,...}` / `x-amazon-apigateway-any-method` | `resources["/p"].{GET,...,ANY}` |
//! | path/query/header `parameters` (`required`) | `requestParameters["method.request.{path,querystring,header}.N"]` |
//! | body parameter / `requestBody` schema `$ref` | `requestModels[contentType]` |
//! | `security` naming an `apiKey` scheme on header `x-api-key` | `apiKeyRequired: true` |
//! | `definitions` / `components.schemas` | `models` (`$ref`s rewritten to `#/models/NAME`) |
//! | `x-amazon-apigateway-integration` | `integration` (`responses` → `integrationResponses`) |
//! | security schemes with `x-amazon-apigateway-authorizer` | `authorizers` |
//! | `security` naming an authorizer's scheme, with scopes | `authorizerId`, `authorizationType`, `authorizationScopes` |
//! | `x-amazon-apigateway-request-validator(s)` | `requestValidatorId`, `requestValidators` |
//! | `x-amazon-apigateway-api-key-source`, `-binary-media-types`, `-minimum-compression-size`, `-gateway-responses`, `-cors` | the field of the same name |
//! | `x-amazon-apigateway-endpoint-configuration.types` | `endpointConfiguration.types` |
//! | `x-amazon-apigateway-policy` (`aws:SourceIp` conditions) | `policy` allow/deny rules |
//!
//! What AWS cannot say, Turnpike writes as its own extensions: an integration's in-cluster
//! Service (`x-turnpike-service-ref` inside the integration), the host running a function
//! (`x-turnpike-function-host` inside the integration or authorizer), a JWKS URL
//! (`x-turnpike-jwks-uri` inside `jwtConfiguration`) and a policy rule's namespaces
//! (the condition key `turnpike:SourceNamespace`).

mod export;
mod import;
mod pointer;
mod schema;

pub use export::{ExportError, ExportOptions, ExportType, Extensions, export};
pub use import::{ImportError, Imported, MAX_DOCUMENT_BYTES, Warning, import};
pub use turnpike_api::RestApiSpec;

/// The extension inside `x-amazon-apigateway-integration` that names a private integration's
/// Service: `{name, namespace?, port}`.
pub const SERVICE_REF_EXTENSION: &str = "x-turnpike-service-ref";
/// The extension inside `x-amazon-apigateway-integration` (AWS_PROXY) or
/// `x-amazon-apigateway-authorizer` (TOKEN, REQUEST) that names the host running the function:
/// `{url}` or `{serviceRef: {name, namespace?, port}}`.
pub const FUNCTION_HOST_EXTENSION: &str = "x-turnpike-function-host";
/// The extension inside an authorizer's `jwtConfiguration` with its JWKS URL.
pub const JWKS_URI_EXTENSION: &str = "x-turnpike-jwks-uri";
/// The IAM condition key (under `StringEquals`) of a policy rule's source namespaces.
pub const SOURCE_NAMESPACE_KEY: &str = "turnpike:SourceNamespace";
