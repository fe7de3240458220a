//! OpenAPI 2.0 / 3.0 → RestApi spec.
//!
//! The importer walks the document once. Every member it reads is either carried into the spec
//! or answered with a [`Warning`] at its pointer; members that only document the API
//! (`summary`, `tags`, `info.contact`, method `responses`, ...) are read and left out, as AWS
//! does.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use turnpike_api::{
    RestApiSpec,
    v1alpha1::rest_api::{
        ApiKeySource, AuthorizationType, AuthorizerSpec, AuthorizerType, CorsSpec, EndpointConfiguration,
        EndpointType, FunctionHostSpec, GatewayResponseSpec, IntegrationResponseSpec, IntegrationSpec,
        IntegrationType, JwtConfigurationSpec, MethodSpec, ModelSpec, PolicyRule, RequestValidatorSpec,
        ResourcePolicy, ServiceRef, TlsConfig,
    },
};

use crate::{
    FUNCTION_HOST_EXTENSION, JWKS_URI_EXTENSION, SERVICE_REF_EXTENSION, SOURCE_NAMESPACE_KEY,
    pointer::Pointer, schema::rewrite_refs,
};

/// The largest document imported: AWS's import limit (6 MB).
pub const MAX_DOCUMENT_BYTES: usize = 6 * 1024 * 1024;

/// Something in the document that the spec does not carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The JSON pointer (RFC 6901) of the member in the document, e.g.
    /// `/paths/~1pets/get/x-amazon-apigateway-integration/credentials`.
    pub pointer: String,
    /// What was left out, and why.
    pub message: String,
}

/// A document that cannot be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Over [`MAX_DOCUMENT_BYTES`].
    #[error("the document is {0} bytes; at most {MAX_DOCUMENT_BYTES} bytes are imported")]
    TooLarge(usize),
    /// Neither YAML nor JSON.
    #[error("the document is not YAML or JSON: {0}")]
    Syntax(String),
    /// YAML or JSON, but not an OpenAPI 2.0 or 3.0 document.
    #[error("not an OpenAPI document: {0}")]
    NotOpenApi(String),
}

/// The result of an import.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Imported {
    /// `info.title`, from which a RestApi name may be made.
    pub title: Option<String>,
    /// The RestApi spec.
    pub spec: RestApiSpec,
    /// What the spec does not carry, in document order.
    pub warnings: Vec<Warning>,
}

/// Imports an OpenAPI 2.0 (Swagger) or 3.0 document, YAML or JSON.
pub fn import(text: &str) -> Result<Imported, ImportError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(ImportError::TooLarge(text.len()));
    }
    // JSON is read by the JSON parser (exact errors, no YAML-isms); anything else as YAML.
    let doc: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| ImportError::Syntax(e.to_string()))?
    } else {
        serde_yaml::from_str(text).map_err(|e| ImportError::Syntax(e.to_string()))?
    };
    let Some(root) = doc.as_object() else {
        return Err(ImportError::NotOpenApi("the document is not an object".into()));
    };
    let version = match (root.get("swagger"), root.get("openapi")) {
        (Some(Value::String(v)), None) if v == "2.0" => Version::Swagger2,
        (None, Some(Value::String(v))) if v.starts_with("3.0") => Version::OpenApi3,
        (None, Some(Value::String(v))) if v.starts_with("3.") => {
            return Err(ImportError::NotOpenApi(format!(
                "openapi {v:?}: versions 2.0 (swagger) and 3.0 are imported"
            )));
        }
        _ => {
            return Err(ImportError::NotOpenApi(
                "no `swagger: \"2.0\"` or `openapi: \"3.0.x\"` member".into(),
            ));
        }
    };
    let mut importer = Importer {
        root,
        version,
        warnings: Vec::new(),
    };
    let (title, spec) = importer.document();
    Ok(Imported {
        title,
        spec,
        warnings: importer.warnings,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    Swagger2,
    OpenApi3,
}

/// HTTP methods as OpenAPI spells them, and as the spec does.
const METHODS: [(&str, &str); 8] = [
    ("get", "GET"),
    ("put", "PUT"),
    ("post", "POST"),
    ("delete", "DELETE"),
    ("options", "OPTIONS"),
    ("head", "HEAD"),
    ("patch", "PATCH"),
    ("x-amazon-apigateway-any-method", "ANY"),
];

/// Members that only document the API: read, and left out without a warning.
const DOCUMENTATION: [&str; 8] = [
    "summary",
    "description",
    "operationId",
    "tags",
    "externalDocs",
    "deprecated",
    "produces",
    "servers",
];

struct Importer<'a> {
    root: &'a Map<String, Value>,
    version: Version,
    warnings: Vec<Warning>,
}

// === impl Importer ===

impl<'a> Importer<'a> {
    fn warn(&mut self, at: &Pointer, message: impl Into<String>) {
        self.warnings.push(Warning {
            pointer: at.to_string(),
            message: message.into(),
        });
    }

    fn unsupported(&mut self, at: &Pointer, what: &str) {
        self.warn(at, format!("{what} is not supported; ignored"));
    }

    fn document(&mut self) -> (Option<String>, RestApiSpec) {
        let root = Pointer::default();
        let mut spec = RestApiSpec::default();
        let mut title = None;
        let mut default_validator = None;
        for (key, value) in self.root {
            let at = root.at(key);
            match key.as_str() {
                "swagger"
                | "openapi"
                | "host"
                | "basePath"
                | "schemes"
                | "consumes"
                | "produces"
                | "tags"
                | "externalDocs"
                | "servers"
                | "security"
                | "parameters"
                | "responses"
                | "x-amazon-apigateway-importexport-version" => {}
                // Read where paths refer to them.
                "securityDefinitions" => spec.authorizers = self.security_schemes(value, &at),
                "components" => self.components(value, &at, &mut spec),
                "definitions" => spec.models = self.models(value, &at),
                "info" => {
                    if let Some(info) = self.object(value, &at) {
                        title = info.get("title").and_then(Value::as_str).map(str::to_string);
                        spec.description = info
                            .get("description")
                            .and_then(Value::as_str)
                            .map(str::to_string);
                    }
                }
                "paths" => {}
                "x-amazon-apigateway-api-key-source" => {
                    spec.api_key_source = self.enumeration::<ApiKeySource>(value, &at);
                }
                "x-amazon-apigateway-binary-media-types" => {
                    spec.binary_media_types = self.strings(value, &at);
                }
                "x-amazon-apigateway-minimum-compression-size" => {
                    spec.minimum_compression_size = self.integer(value, &at);
                }
                "x-amazon-apigateway-endpoint-configuration" => {
                    spec.endpoint_configuration = self.endpoint_configuration(value, &at);
                }
                "x-amazon-apigateway-policy" => spec.policy = self.policy(value, &at),
                "x-amazon-apigateway-request-validators" => {
                    spec.request_validators = self.request_validators(value, &at);
                }
                "x-amazon-apigateway-request-validator" => default_validator = self.string(value, &at),
                "x-amazon-apigateway-gateway-responses" => {
                    spec.gateway_responses = self.gateway_responses(value, &at);
                }
                "x-amazon-apigateway-cors" => spec.cors = self.cors(value, &at),
                _ if key.starts_with("x-amazon-apigateway-") => {
                    self.unsupported(&at, &format!("the extension {key}"));
                }
                _ => self.unsupported(&at, &format!("the member {key:?}")),
            }
        }
        // Paths last: they refer to the security schemes and the default validator.
        if let Some(paths) = self.root.get("paths") {
            spec.resources = self.paths(paths, &root.at("paths"), default_validator.as_deref());
        }
        (title, spec)
    }

    // --- Scalars and plain collections ---

    fn object<'v>(&mut self, value: &'v Value, at: &Pointer) -> Option<&'v Map<String, Value>> {
        let object = value.as_object();
        if object.is_none() {
            self.warn(at, "expected an object; ignored");
        }
        object
    }

    fn string(&mut self, value: &Value, at: &Pointer) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.warn(at, "expected a string; ignored");
                None
            }
        }
    }

    /// A status code: YAML documents often write it as a number.
    fn status_code(&mut self, value: &Value, at: &Pointer) -> Option<String> {
        match value {
            Value::Number(n) => Some(n.to_string()),
            _ => self.string(value, at),
        }
    }

    fn integer(&mut self, value: &Value, at: &Pointer) -> Option<i64> {
        let n = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        if n.is_none() {
            self.warn(at, "expected an integer; ignored");
        }
        n
    }

    fn boolean(&mut self, value: &Value, at: &Pointer) -> Option<bool> {
        let b = value.as_bool();
        if b.is_none() {
            self.warn(at, "expected true or false; ignored");
        }
        b
    }

    /// A string or a list of strings.
    fn strings(&mut self, value: &Value, at: &Pointer) -> Vec<String> {
        match value {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| self.string(v, &at.at(i)))
                .collect(),
            _ => {
                self.warn(at, "expected a list of strings; ignored");
                Vec::new()
            }
        }
    }

    fn string_map(&mut self, value: &Value, at: &Pointer) -> BTreeMap<String, String> {
        let Some(object) = self.object(value, at) else {
            return BTreeMap::new();
        };
        object
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), self.string(v, &at.at(k))?)))
            .collect()
    }

    /// An AWS enumeration (`REGIONAL`, `when_no_match`, ...): case-insensitive, as AWS reads it.
    fn enumeration<T: DeserializeOwned>(&mut self, value: &Value, at: &Pointer) -> Option<T> {
        let s = self.string(value, at)?;
        let parsed = serde_json::from_value(Value::String(s.to_ascii_uppercase())).ok();
        if parsed.is_none() {
            self.warn(at, format!("{s:?} is not a supported value; ignored"));
        }
        parsed
    }

    fn bool_member(&mut self, object: &Map<String, Value>, key: &str, at: &Pointer) -> Option<bool> {
        object.get(key).and_then(|v| self.boolean(v, &at.at(key)))
    }

    /// Warns about every member of `object` not in `known`.
    fn only(&mut self, object: &Map<String, Value>, known: &[&str], at: &Pointer) {
        for key in object.keys().filter(|k| !known.contains(&k.as_str())) {
            self.unsupported(&at.at(key), &format!("the member {key:?}"));
        }
    }

    // --- API-wide settings ---

    fn endpoint_configuration(&mut self, value: &Value, at: &Pointer) -> Option<EndpointConfiguration> {
        let object = self.object(value, at)?;
        self.only(object, &["types"], at);
        let types_at = at.at("types");
        let types = match object.get("types") {
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| self.enumeration::<EndpointType>(v, &types_at.at(i)))
                .collect(),
            Some(other) => self
                .enumeration::<EndpointType>(other, &types_at)
                .into_iter()
                .collect(),
            None => Vec::new(),
        };
        (!types.is_empty()).then_some(EndpointConfiguration { types })
    }

    fn request_validators(&mut self, value: &Value, at: &Pointer) -> BTreeMap<String, RequestValidatorSpec> {
        let Some(object) = self.object(value, at) else {
            return BTreeMap::new();
        };
        let mut validators = BTreeMap::new();
        for (name, v) in object {
            let vat = at.at(name);
            let Some(o) = self.object(v, &vat) else { continue };
            self.only(o, &["validateRequestBody", "validateRequestParameters"], &vat);
            let spec = RequestValidatorSpec {
                validate_request_body: self.bool_member(o, "validateRequestBody", &vat).unwrap_or(false),
                validate_request_parameters: self
                    .bool_member(o, "validateRequestParameters", &vat)
                    .unwrap_or(false),
            };
            validators.insert(name.clone(), spec);
        }
        validators
    }

    fn gateway_responses(&mut self, value: &Value, at: &Pointer) -> BTreeMap<String, GatewayResponseSpec> {
        let Some(object) = self.object(value, at) else {
            return BTreeMap::new();
        };
        let mut responses = BTreeMap::new();
        for (kind, v) in object {
            let rat = at.at(kind);
            let Some(o) = self.object(v, &rat) else { continue };
            self.only(
                o,
                &["statusCode", "responseParameters", "responseTemplates"],
                &rat,
            );
            let mut spec = GatewayResponseSpec::default();
            if let Some(s) = o.get("statusCode") {
                spec.status_code = self.status_code(s, &rat.at("statusCode"));
            }
            if let Some(p) = o.get("responseParameters") {
                spec.response_parameters = self.string_map(p, &rat.at("responseParameters"));
            }
            if let Some(t) = o.get("responseTemplates") {
                spec.response_templates = self.string_map(t, &rat.at("responseTemplates"));
            }
            responses.insert(kind.clone(), spec);
        }
        responses
    }

    fn cors(&mut self, value: &Value, at: &Pointer) -> Option<CorsSpec> {
        let object = self.object(value, at)?;
        let mut cors = CorsSpec::default();
        for (key, v) in object {
            let kat = at.at(key);
            match key.as_str() {
                "allowOrigins" => cors.allow_origins = self.strings(v, &kat),
                "allowMethods" => cors.allow_methods = self.strings(v, &kat),
                "allowHeaders" => cors.allow_headers = self.strings(v, &kat),
                "exposeHeaders" => cors.expose_headers = self.strings(v, &kat),
                "maxAge" => cors.max_age = self.integer(v, &kat),
                "allowCredentials" => cors.allow_credentials = self.boolean(v, &kat),
                _ => self.unsupported(&kat, &format!("the member {key:?}")),
            }
        }
        Some(cors)
    }

    /// An IAM policy document. Each statement that allows or denies `execute-api:Invoke`
    /// becomes a rule: everyone (no condition), `IpAddress` on `aws:SourceIp`, or
    /// `StringEquals` on `turnpike:SourceNamespace`. The policy may be written as a JSON string.
    fn policy(&mut self, value: &Value, at: &Pointer) -> Option<ResourcePolicy> {
        let parsed;
        let value = match value {
            Value::String(s) => {
                parsed = serde_json::from_str::<Value>(s).ok();
                match &parsed {
                    Some(v) => v,
                    None => {
                        self.warn(at, "the policy is not a JSON document; ignored");
                        return None;
                    }
                }
            }
            v => v,
        };
        let object = self.object(value, at)?;
        self.only(object, &["Version", "Statement"], at);
        let sat = at.at("Statement");
        let statements: Vec<(Pointer, &Value)> = match object.get("Statement") {
            Some(Value::Array(items)) => items.iter().enumerate().map(|(i, s)| (sat.at(i), s)).collect(),
            Some(s) => vec![(sat, s)],
            None => Vec::new(),
        };
        let mut policy = ResourcePolicy::default();
        for (sat, statement) in statements {
            let Some(s) = self.object(statement, &sat) else {
                continue;
            };
            if let Some((allow, rule)) = self.policy_statement(s, &sat) {
                if allow {
                    policy.allow.push(rule)
                } else {
                    policy.deny.push(rule)
                }
            }
        }
        Some(policy)
    }

    fn policy_statement(&mut self, s: &Map<String, Value>, at: &Pointer) -> Option<(bool, PolicyRule)> {
        self.only(
            s,
            &["Sid", "Effect", "Principal", "Action", "Resource", "Condition"],
            at,
        );
        let allow = match s.get("Effect").and_then(Value::as_str) {
            Some("Allow") => true,
            Some("Deny") => false,
            _ => {
                self.warn(
                    &at.at("Effect"),
                    "Effect must be Allow or Deny; the statement is ignored",
                );
                return None;
            }
        };
        let actions = s
            .get("Action")
            .map(|a| self.strings(a, &at.at("Action")))
            .unwrap_or_default();
        if !actions
            .iter()
            .any(|a| matches!(a.as_str(), "*" | "execute-api:*" | "execute-api:Invoke"))
        {
            self.warn(
                &at.at("Action"),
                "only execute-api:Invoke is enforced; the statement is ignored",
            );
            return None;
        }
        match s.get("Principal") {
            None => {}
            Some(Value::String(p)) if p == "*" => {}
            Some(Value::Object(p)) if p.len() == 1 && p.get("AWS").and_then(Value::as_str) == Some("*") => {}
            Some(_) => self.warn(
                &at.at("Principal"),
                "principals other than \"*\" are not supported; the statement applies to every caller",
            ),
        }
        if let Some(resource) = s.get("Resource") {
            let resources = self.strings(resource, &at.at("Resource"));
            if resources
                .iter()
                .any(|r| !(r == "*" || r.ends_with("/*") && !r.contains("/*/")))
            {
                self.warn(
                    &at.at("Resource"),
                    "rules apply to the whole API; per-method resources are not supported",
                );
            }
        }
        let mut rule = PolicyRule::default();
        match s.get("Condition") {
            None => rule.source_cidrs = vec!["0.0.0.0/0".into(), "::/0".into()],
            Some(condition) => {
                let cat = at.at("Condition");
                let object = self.object(condition, &cat)?;
                for (operator, keys) in object {
                    let oat = cat.at(operator);
                    let Some(keys) = self.object(keys, &oat) else {
                        continue;
                    };
                    for (key, values) in keys {
                        let kat = oat.at(key);
                        match (operator.as_str(), key.as_str()) {
                            ("IpAddress", "aws:SourceIp") => rule.source_cidrs = self.strings(values, &kat),
                            ("StringEquals", SOURCE_NAMESPACE_KEY) => {
                                rule.source_namespaces = self.strings(values, &kat);
                            }
                            _ => {
                                self.warn(
                                    &kat,
                                    format!("the condition {operator} on {key} is not supported; the statement is ignored"),
                                );
                                return None;
                            }
                        }
                    }
                }
                if !rule.source_cidrs.is_empty() && !rule.source_namespaces.is_empty() {
                    self.warn(
                        &cat,
                        "a statement conditioned on both source addresses and namespaces is not supported; ignored",
                    );
                    return None;
                }
            }
        }
        Some((allow, rule))
    }

    // --- Models and security schemes ---

    fn components(&mut self, value: &Value, at: &Pointer, spec: &mut RestApiSpec) {
        let Some(object) = self.object(value, at) else {
            return;
        };
        for (key, v) in object {
            let kat = at.at(key);
            match key.as_str() {
                "schemas" => spec.models = self.models(v, &kat),
                "securitySchemes" => spec.authorizers = self.security_schemes(v, &kat),
                // Read where operations refer to them.
                "parameters" | "requestBodies" | "responses" | "headers" | "examples" => {}
                _ => self.unsupported(&kat, &format!("the component kind {key:?}")),
            }
        }
    }

    fn models(&mut self, value: &Value, at: &Pointer) -> BTreeMap<String, ModelSpec> {
        let Some(object) = self.object(value, at) else {
            return BTreeMap::new();
        };
        object
            .iter()
            .map(|(name, schema)| {
                let spec = ModelSpec {
                    content_type: None,
                    schema: model_refs(schema.clone(), self.version),
                    description: None,
                };
                (name.clone(), spec)
            })
            .collect()
    }

    /// Security schemes: an API key in the `x-api-key` header is `apiKeyRequired`; a scheme
    /// with `x-amazon-apigateway-authorizer` is an authorizer of the same id.
    fn security_schemes(&mut self, value: &Value, at: &Pointer) -> BTreeMap<String, AuthorizerSpec> {
        let mut authorizers = BTreeMap::new();
        let Some(object) = self.object(value, at) else {
            return authorizers;
        };
        for (name, scheme) in object {
            let sat = at.at(name);
            if is_api_key_scheme(scheme) {
                continue;
            }
            let Some(s) = self.object(scheme, &sat) else {
                continue;
            };
            for (key, _) in s.iter().filter(|(k, _)| k.starts_with("x-")) {
                if !matches!(
                    key.as_str(),
                    "x-amazon-apigateway-authtype" | "x-amazon-apigateway-authorizer"
                ) {
                    self.unsupported(&sat.at(key), &format!("the extension {key}"));
                }
            }
            match s.get("x-amazon-apigateway-authorizer") {
                Some(a) => {
                    if let Some(a) = self.authorizer(a, &sat.at("x-amazon-apigateway-authorizer")) {
                        authorizers.insert(name.clone(), a);
                    }
                }
                None => self.warn(
                    &sat,
                    "a security scheme without x-amazon-apigateway-authorizer (or an API key on x-api-key) is not supported; methods that require it are imported without it",
                ),
            }
        }
        authorizers
    }

    fn authorizer(&mut self, value: &Value, at: &Pointer) -> Option<AuthorizerSpec> {
        let object = self.object(value, at)?;
        let mut a = AuthorizerSpec::default();
        let mut provider_arns = Vec::new();
        let mut has_type = false;
        for (key, v) in object {
            let kat = at.at(key);
            match key.as_str() {
                "type" => {
                    a.type_ = self.enumeration(v, &kat)?;
                    has_type = true;
                }
                "authorizerUri" => a.authorizer_uri = self.string(v, &kat),
                "identitySource" => a.identity_source = self.string(v, &kat),
                "identityValidationExpression" => a.identity_validation_expression = self.string(v, &kat),
                "authorizerResultTtlInSeconds" => a.authorizer_result_ttl_in_seconds = self.integer(v, &kat),
                "providerARNs" => provider_arns = self.strings(v, &kat),
                "jwtConfiguration" => a.jwt_configuration = self.jwt_configuration(v, &kat),
                FUNCTION_HOST_EXTENSION => a.function_host = self.function_host(v, &kat),
                _ => self.unsupported(&kat, &format!("the authorizer member {key:?}")),
            }
        }
        if !has_type {
            self.warn(at, "the authorizer has no type; ignored");
            return None;
        }
        if matches!(a.type_, AuthorizerType::Token | AuthorizerType::Request) && a.function_host.is_none() {
            self.warn(
                at,
                "the function runs on a host speaking the Lambda Invoke API: set the authorizer's functionHost",
            );
        }
        if a.jwt_configuration.is_none()
            && let Some(issuer) = provider_arns.first().and_then(|arn| user_pool_issuer(arn))
        {
            a.jwt_configuration = Some(JwtConfigurationSpec {
                issuer,
                ..JwtConfigurationSpec::default()
            });
        }
        Some(a)
    }

    fn jwt_configuration(&mut self, value: &Value, at: &Pointer) -> Option<JwtConfigurationSpec> {
        let object = self.object(value, at)?;
        self.only(object, &["issuer", "audience", JWKS_URI_EXTENSION], at);
        let issuer = object
            .get("issuer")
            .and_then(|v| self.string(v, &at.at("issuer")));
        let Some(issuer) = issuer else {
            self.warn(at, "a jwtConfiguration needs an issuer; ignored");
            return None;
        };
        Some(JwtConfigurationSpec {
            issuer,
            audience: object
                .get("audience")
                .map(|v| self.strings(v, &at.at("audience")))
                .unwrap_or_default(),
            jwks_uri: object
                .get(JWKS_URI_EXTENSION)
                .and_then(|v| self.string(v, &at.at(JWKS_URI_EXTENSION))),
        })
    }

    fn function_host(&mut self, value: &Value, at: &Pointer) -> Option<FunctionHostSpec> {
        match serde_json::from_value::<FunctionHostSpec>(value.clone()) {
            Ok(h) => Some(h),
            Err(e) => {
                self.warn(at, format!("not a function host ({e}); ignored"));
                None
            }
        }
    }

    fn security_scheme(&self, name: &str) -> Option<&'a Value> {
        match self.version {
            Version::Swagger2 => self.root.get("securityDefinitions")?.get(name),
            Version::OpenApi3 => self.root.get("components")?.get("securitySchemes")?.get(name),
        }
    }

    /// Follows a local `$ref` (one level) to the component it names.
    fn resolve<'v>(&mut self, value: &'v Value, at: &Pointer) -> Option<&'v Value>
    where
        'a: 'v,
    {
        let Some(reference) = value.get("$ref") else {
            return Some(value);
        };
        let target = reference
            .as_str()
            .and_then(|r| r.strip_prefix("#/"))
            .and_then(|path| {
                let mut tokens = path.split('/').map(|t| t.replace("~1", "/").replace("~0", "~"));
                let mut node: &'a Value = self.root.get(&tokens.next()?)?;
                for token in tokens {
                    node = node.get(&token)?;
                }
                Some(node)
            });
        if target.is_none() {
            self.warn(
                &at.at("$ref"),
                "the reference does not resolve in this document; ignored",
            );
        }
        target
    }

    // --- Paths and operations ---

    fn paths(
        &mut self,
        value: &Value,
        at: &Pointer,
        default_validator: Option<&str>,
    ) -> BTreeMap<String, BTreeMap<String, MethodSpec>> {
        let mut resources = BTreeMap::new();
        let Some(paths) = self.object(value, at) else {
            return resources;
        };
        for (path, item) in paths {
            let pat = at.at(path);
            if path.starts_with("x-") {
                self.unsupported(&pat, &format!("the extension {path}"));
                continue;
            }
            let Some(item) = self.object(item, &pat) else {
                continue;
            };
            let shared = item.get("parameters");
            let mut methods = BTreeMap::new();
            for (key, operation) in item {
                let oat = pat.at(key);
                if let Some((_, method)) = METHODS.iter().find(|(k, _)| k == key) {
                    if let Some(spec) = self.operation(operation, &oat, shared, &pat, default_validator) {
                        methods.insert((*method).to_string(), spec);
                    }
                } else if !matches!(key.as_str(), "parameters" | "summary" | "description" | "servers") {
                    self.unsupported(&oat, &format!("the member {key:?}"));
                }
            }
            resources.insert(path.clone(), methods);
        }
        resources
    }

    fn operation(
        &mut self,
        value: &Value,
        at: &Pointer,
        shared: Option<&Value>,
        path_at: &Pointer,
        default_validator: Option<&str>,
    ) -> Option<MethodSpec> {
        let operation = self.object(value, at)?;
        let mut method = MethodSpec {
            request_validator_id: default_validator.map(str::to_string),
            ..MethodSpec::default()
        };
        let mut integration = None;
        for (key, v) in operation {
            let kat = at.at(key);
            match key.as_str() {
                "parameters" | "requestBody" | "security" | "consumes" | "responses" => {}
                "x-amazon-apigateway-integration" => integration = self.integration(v, &kat),
                "x-amazon-apigateway-request-validator" => method.request_validator_id = self.string(v, &kat),
                _ if DOCUMENTATION.contains(&key.as_str()) => {}
                _ if key.starts_with("x-amazon-apigateway-") => {
                    self.unsupported(&kat, &format!("the extension {key}"));
                }
                _ => self.unsupported(&kat, &format!("the member {key:?}")),
            }
        }
        // Path-level parameters first; the operation's own win (same name and location).
        if let Some(p) = shared {
            self.parameters(p, &path_at.at("parameters"), operation, &mut method);
        }
        if let Some(p) = operation.get("parameters") {
            self.parameters(p, &at.at("parameters"), operation, &mut method);
        }
        if let Some(body) = operation.get("requestBody") {
            self.request_body(body, &at.at("requestBody"), &mut method);
        }
        let (security, security_at) = match operation.get("security") {
            Some(s) => (Some(s), at.at("security")),
            None => (self.root.get("security"), Pointer::default().at("security")),
        };
        if let Some(security) = security {
            self.security(security, &security_at, &mut method);
        }
        match integration {
            Some(integration) => {
                method.integration = integration;
                Some(method)
            }
            None => {
                if !operation.contains_key("x-amazon-apigateway-integration") {
                    self.warn(
                        at,
                        "the operation has no x-amazon-apigateway-integration; it is not imported",
                    );
                }
                None
            }
        }
    }

    fn parameters(
        &mut self,
        value: &Value,
        at: &Pointer,
        operation: &Map<String, Value>,
        method: &mut MethodSpec,
    ) {
        let Some(items) = value.as_array() else {
            self.warn(at, "expected a list of parameters; ignored");
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let iat = at.at(i);
            let Some(parameter) = self.resolve(item, &iat) else {
                continue;
            };
            let Some(p) = self.object(parameter, &iat) else {
                continue;
            };
            let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
            let required = p.get("required").and_then(Value::as_bool).unwrap_or(false);
            let location = match p.get("in").and_then(Value::as_str) {
                Some("path") => "path",
                Some("query") => "querystring",
                Some("header") => "header",
                Some("body") if self.version == Version::Swagger2 => {
                    if let Some(schema) = p.get("schema") {
                        let types = consumes(operation, self.root);
                        self.body_schema(schema, &iat.at("schema"), &types, method);
                    }
                    continue;
                }
                other => {
                    self.warn(
                        &iat.at("in"),
                        format!(
                            "parameters in {:?} are not supported; ignored",
                            other.unwrap_or_default()
                        ),
                    );
                    continue;
                }
            };
            if name.is_empty() {
                self.warn(&iat.at("name"), "a parameter needs a name; ignored");
                continue;
            }
            method.request_parameters.insert(
                format!("method.request.{location}.{name}"),
                required || location == "path",
            );
        }
    }

    fn request_body(&mut self, value: &Value, at: &Pointer, method: &mut MethodSpec) {
        let Some(body) = self.resolve(value, at) else {
            return;
        };
        let Some(body) = self.object(body, at) else { return };
        let Some(content) = body.get("content").and_then(Value::as_object) else {
            return;
        };
        for (content_type, media) in content {
            let mat = at.at("content").at(content_type);
            if let Some(schema) = media.get("schema") {
                self.body_schema(
                    schema,
                    &mat.at("schema"),
                    std::slice::from_ref(content_type),
                    method,
                );
            }
        }
    }

    /// A body schema names a model by `$ref`; an inline schema has no model to name.
    fn body_schema(&mut self, schema: &Value, at: &Pointer, types: &[String], method: &mut MethodSpec) {
        let prefix = match self.version {
            Version::Swagger2 => "#/definitions/",
            Version::OpenApi3 => "#/components/schemas/",
        };
        match schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix(prefix))
        {
            Some(model) => {
                for t in types {
                    method.request_models.insert(t.clone(), model.to_string());
                }
            }
            None => self.warn(
                at,
                "an inline request body schema is not imported; name it in the models and $ref it",
            ),
        }
    }

    /// The API key scheme sets `apiKeyRequired`; an authorizer's scheme sets `authorizerId`,
    /// its `authorizationType` and the requirement's scopes.
    fn security(&mut self, value: &Value, at: &Pointer, method: &mut MethodSpec) {
        let Some(requirements) = value.as_array() else {
            self.warn(at, "expected a list of security requirements; ignored");
            return;
        };
        for (i, requirement) in requirements.iter().enumerate() {
            let Some(names) = self.object(requirement, &at.at(i)) else {
                continue;
            };
            for (name, scopes) in names {
                let nat = at.at(i).at(name);
                let Some(scheme) = self.security_scheme(name) else {
                    self.warn(&nat, "no security scheme has this name; ignored");
                    continue;
                };
                if is_api_key_scheme(scheme) {
                    method.api_key_required = Some(true);
                    continue;
                }
                let kind = scheme
                    .get("x-amazon-apigateway-authorizer")
                    .and_then(|a| a.get("type"))
                    .and_then(Value::as_str)
                    .and_then(|t| {
                        serde_json::from_value::<AuthorizerType>(t.to_ascii_uppercase().into()).ok()
                    });
                let Some(kind) = kind else {
                    // The scheme itself was warned about.
                    continue;
                };
                if let Some(other) = &method.authorizer_id {
                    self.warn(
                        &nat,
                        format!("a method has one authorizer; {other:?} is kept and this one ignored"),
                    );
                    continue;
                }
                method.authorizer_id = Some(name.clone());
                method.authorization_type = Some(match kind {
                    AuthorizerType::Token | AuthorizerType::Request => AuthorizationType::Custom,
                    AuthorizerType::CognitoUserPools => AuthorizationType::CognitoUserPools,
                    AuthorizerType::Jwt => AuthorizationType::Jwt,
                });
                method.authorization_scopes = self.strings(scopes, &nat);
            }
        }
    }

    // --- Integrations ---

    fn integration(&mut self, value: &Value, at: &Pointer) -> Option<IntegrationSpec> {
        let object = self.object(value, at)?;
        let mut spec = IntegrationSpec::default();
        let mut has_type = false;
        let mut connection_id = None;
        let mut responses = None;
        for (key, v) in object {
            let kat = at.at(key);
            match key.as_str() {
                "type" => {
                    let t = self.string(v, &kat)?;
                    spec.type_ = match t.to_ascii_lowercase().as_str() {
                        "http" => IntegrationType::Http,
                        "http_proxy" => IntegrationType::HttpProxy,
                        "mock" => IntegrationType::Mock,
                        "aws_proxy" => IntegrationType::AwsProxy,
                        _ => {
                            self.warn(
                                &kat,
                                format!("{t} integrations (AWS services) are not supported; the method is not imported"),
                            );
                            return None;
                        }
                    };
                    has_type = true;
                }
                "uri" => spec.uri = self.string(v, &kat),
                "httpMethod" => spec.http_method = self.string(v, &kat).map(|m| m.to_ascii_uppercase()),
                "connectionType" => spec.connection_type = self.enumeration(v, &kat),
                "connectionId" => connection_id = Some(kat),
                SERVICE_REF_EXTENSION => match serde_json::from_value::<ServiceRef>(v.clone()) {
                    Ok(r) => spec.service_ref = Some(r),
                    Err(e) => self.warn(&kat, format!("not a Service reference ({e}); ignored")),
                },
                FUNCTION_HOST_EXTENSION => spec.function_host = self.function_host(v, &kat),
                "requestParameters" => spec.request_parameters = self.string_map(v, &kat),
                "requestTemplates" => spec.request_templates = self.string_map(v, &kat),
                "passthroughBehavior" => spec.passthrough_behavior = self.enumeration(v, &kat),
                "timeoutInMillis" => spec.timeout_in_millis = self.integer(v, &kat),
                "contentHandling" => spec.content_handling = self.enumeration(v, &kat),
                "cacheKeyParameters" => spec.cache_key_parameters = self.strings(v, &kat),
                "cacheNamespace" => spec.cache_namespace = self.string(v, &kat),
                "tlsConfig" => {
                    if let Some(tls) = self.object(v, &kat) {
                        self.only(tls, &["insecureSkipVerification"], &kat);
                        let skip = self.bool_member(tls, "insecureSkipVerification", &kat);
                        spec.tls_config = Some(TlsConfig {
                            insecure_skip_verification: skip.unwrap_or(false),
                        });
                    }
                }
                "responses" => responses = Some((v, kat)),
                _ => self.unsupported(&kat, &format!("the integration member {key:?}")),
            }
        }
        if !has_type {
            self.warn(at, "the integration has no type; the method is not imported");
            return None;
        }
        if spec.type_ == IntegrationType::AwsProxy && spec.function_host.is_none() {
            self.warn(
                at,
                "the function runs on a host speaking the Lambda Invoke API: set integration.functionHost",
            );
        }
        if let Some(cat) = connection_id
            && spec.service_ref.is_none()
        {
            self.warn(
                &cat,
                "connectionId names an AWS VPC link; a private integration calls an in-cluster Service: set integration.serviceRef",
            );
        }
        if let Some((v, rat)) = responses {
            if matches!(spec.type_, IntegrationType::HttpProxy | IntegrationType::AwsProxy) {
                // AWS exports HTTP_PROXY methods with a `default` response it never uses.
                if v.as_object().is_some_and(|r| {
                    r.iter()
                        .any(|(k, r)| k != "default" || r.as_object().is_some_and(|o| o.len() > 1))
                }) {
                    self.warn(
                        &rat,
                        "HTTP_PROXY passes the backend's response through; integration responses are ignored",
                    );
                }
            } else {
                spec.integration_responses = self.integration_responses(v, &rat);
            }
        }
        Some(spec)
    }

    fn integration_responses(&mut self, value: &Value, at: &Pointer) -> Vec<IntegrationResponseSpec> {
        let Some(object) = self.object(value, at) else {
            return Vec::new();
        };
        let mut responses = Vec::new();
        for (pattern, v) in object {
            let rat = at.at(pattern);
            let Some(o) = self.object(v, &rat) else { continue };
            self.only(
                o,
                &[
                    "statusCode",
                    "responseParameters",
                    "responseTemplates",
                    "contentHandling",
                ],
                &rat,
            );
            let Some(status_code) = o
                .get("statusCode")
                .and_then(|s| self.status_code(s, &rat.at("statusCode")))
            else {
                self.warn(&rat, "an integration response needs a statusCode; ignored");
                continue;
            };
            let mut r = IntegrationResponseSpec {
                status_code,
                selection_pattern: (pattern != "default").then(|| pattern.clone()),
                ..IntegrationResponseSpec::default()
            };
            if let Some(p) = o.get("responseParameters") {
                r.response_parameters = self.string_map(p, &rat.at("responseParameters"));
            }
            if let Some(t) = o.get("responseTemplates") {
                r.response_templates = self.string_map(t, &rat.at("responseTemplates"));
            }
            if let Some(c) = o.get("contentHandling") {
                r.content_handling = self.enumeration(c, &rat.at("contentHandling"));
            }
            responses.push(r);
        }
        // The default response last: patterns are tried first.
        responses.sort_by_key(|r| r.selection_pattern.is_none());
        responses
    }
}

/// The request content types of an operation (2.0): its `consumes`, the document's, or JSON.
fn consumes(operation: &Map<String, Value>, root: &Map<String, Value>) -> Vec<String> {
    let list = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let own = list(operation.get("consumes"));
    if !own.is_empty() {
        return own;
    }
    let global = list(root.get("consumes"));
    if !global.is_empty() {
        return global;
    }
    vec!["application/json".to_string()]
}

/// The issuer of a Cognito user pool ARN (`arn:aws:cognito-idp:REGION:ACCOUNT:userpool/POOL`).
fn user_pool_issuer(arn: &str) -> Option<String> {
    let rest = arn.strip_prefix("arn:aws:cognito-idp:")?;
    let (region, rest) = rest.split_once(':')?;
    let pool = rest.split_once(":userpool/")?.1;
    (!region.is_empty() && !pool.is_empty())
        .then(|| format!("https://cognito-idp.{region}.amazonaws.com/{pool}"))
}

fn is_api_key_scheme(scheme: &Value) -> bool {
    scheme.get("type").and_then(Value::as_str) == Some("apiKey")
        && scheme.get("in").and_then(Value::as_str) == Some("header")
        && scheme
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.eq_ignore_ascii_case("x-api-key"))
        && scheme.get("x-amazon-apigateway-authorizer").is_none()
}

/// Rewrites a schema's references to other schemas of the document into the spec's
/// `#/models/NAME` form.
fn model_refs(schema: Value, version: Version) -> Value {
    let prefix = match version {
        Version::Swagger2 => "#/definitions/",
        Version::OpenApi3 => "#/components/schemas/",
    };
    rewrite_refs(schema, &|r: &str| {
        r.strip_prefix(prefix).map(|name| format!("#/models/{name}"))
    })
}
