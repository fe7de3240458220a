//! RestApi spec → OpenAPI 3.0 (`oas30`) or 2.0 (`swagger`), in the shape of AWS GetExport.

use std::{collections::BTreeMap, fmt, str::FromStr};

use serde::Serialize;
use serde_json::{Map, Value, json};
use turnpike_api::{
    RestApiSpec,
    v1alpha1::rest_api::{
        AuthorizerSpec, AuthorizerType, IntegrationSpec, IntegrationType, MethodSpec, PolicyRule,
        ProtocolType, ResourcePolicy,
    },
};

use crate::{
    FUNCTION_HOST_EXTENSION, JWKS_URI_EXTENSION, SERVICE_REF_EXTENSION, SOURCE_NAMESPACE_KEY,
    schema::rewrite_refs,
};

/// A RestApi that OpenAPI cannot describe.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A WEBSOCKET API has routes, not paths: AWS exports those only as OpenAPI 3.0 with
    /// integrations on routes, which Turnpike does not write.
    #[error("a WEBSOCKET API has routes, not resources: it has no OpenAPI export")]
    WebSocket,
}

/// The document type, as AWS GetExport names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportType {
    /// OpenAPI 3.0.1.
    Oas30,
    /// Swagger (OpenAPI 2.0).
    Swagger,
}

impl FromStr for ExportType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "oas30" => Ok(ExportType::Oas30),
            "swagger" => Ok(ExportType::Swagger),
            other => Err(format!("export type {other:?}: oas30 or swagger")),
        }
    }
}

impl fmt::Display for ExportType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExportType::Oas30 => "oas30",
            ExportType::Swagger => "swagger",
        })
    }
}

/// Which extensions an export carries: AWS's `extensions` parameter
/// (`integrations`, `authorizers`, `apigateway`, comma-separated).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    /// `x-amazon-apigateway-integration` on each operation.
    pub integrations: bool,
    /// `x-amazon-apigateway-authorizer` on the security schemes of `spec.authorizers`.
    pub authorizers: bool,
    /// Every `x-amazon-apigateway-*` extension, integrations included.
    pub apigateway: bool,
}

impl FromStr for Extensions {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut e = Extensions::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item {
                "integrations" => e.integrations = true,
                "authorizers" => e.authorizers = true,
                "apigateway" => e.apigateway = true,
                other => {
                    return Err(format!(
                        "extension {other:?}: integrations, authorizers or apigateway"
                    ));
                }
            }
        }
        Ok(e)
    }
}

/// What an export says about where the API is served.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// The document type.
    pub kind: ExportType,
    /// The extensions included.
    pub extensions: Extensions,
    /// `info.title`: the API's name.
    pub title: String,
    /// `info.version`: AWS writes the deployment's creation time.
    pub version: String,
    /// The API's host name, e.g. `abc123defg.execute-api.local.turnpike.dev`.
    pub host: Option<String>,
    /// The stage, the document's base path.
    pub stage: Option<String>,
}

/// Exports a RestApi spec as an OpenAPI document. A WEBSOCKET API is refused.
pub fn export(spec: &RestApiSpec, options: &ExportOptions) -> Result<Value, ExportError> {
    if spec.protocol_type == ProtocolType::Websocket {
        return Err(ExportError::WebSocket);
    }
    let oas3 = options.kind == ExportType::Oas30;
    let aws = options.extensions.apigateway;
    let with_integrations = aws || options.extensions.integrations;
    let mut doc = Map::new();
    let mut info = Map::new();
    if let Some(d) = &spec.description {
        info.insert("description".into(), d.clone().into());
    }
    info.insert("version".into(), options.version.clone().into());
    info.insert("title".into(), options.title.clone().into());
    if oas3 {
        doc.insert("openapi".into(), "3.0.1".into());
        doc.insert("info".into(), info.into());
        if let Some(host) = &options.host {
            doc.insert(
                "servers".into(),
                json!([{
                    "url": format!("https://{host}/{{basePath}}"),
                    "variables": {"basePath": {"default": options.stage.clone().unwrap_or_default()}},
                }]),
            );
        }
    } else {
        doc.insert("swagger".into(), "2.0".into());
        doc.insert("info".into(), info.into());
        if let Some(host) = &options.host {
            doc.insert("host".into(), host.clone().into());
        }
        if let Some(stage) = &options.stage {
            doc.insert("basePath".into(), format!("/{stage}").into());
        }
        doc.insert("schemes".into(), json!(["https"]));
    }

    let mut paths = Map::new();
    let mut api_key = false;
    for (path, methods) in &spec.resources {
        let mut item = Map::new();
        for (method, m) in methods {
            api_key |= m.api_key_required == Some(true);
            let key = if method == "ANY" {
                "x-amazon-apigateway-any-method".to_string()
            } else {
                method.to_ascii_lowercase()
            };
            item.insert(key, operation(path, m, oas3, aws, with_integrations));
        }
        paths.insert(path.clone(), item.into());
    }
    doc.insert("paths".into(), paths.into());

    let mut schemes = Map::new();
    if api_key {
        schemes.insert(
            "api_key".into(),
            json!({"type": "apiKey", "name": "x-api-key", "in": "header"}),
        );
    }
    let with_authorizers = aws || options.extensions.authorizers;
    for (id, a) in &spec.authorizers {
        schemes.insert(id.clone(), security_scheme(a, with_authorizers));
    }
    let schemes = (!schemes.is_empty()).then(|| Value::from(schemes));
    let models: Map<String, Value> = spec
        .models
        .iter()
        .map(|(name, model)| (name.clone(), schema_refs(model_schema(&model.schema), oas3)))
        .collect();
    if oas3 {
        let mut components = Map::new();
        if !models.is_empty() {
            components.insert("schemas".into(), models.into());
        }
        if let Some(s) = schemes {
            components.insert("securitySchemes".into(), s);
        }
        doc.insert("components".into(), components.into());
    } else {
        if let Some(s) = schemes {
            doc.insert("securityDefinitions".into(), s);
        }
        if !models.is_empty() {
            doc.insert("definitions".into(), models.into());
        }
    }

    if aws {
        let mut ext = |name: &str, value: Value| {
            doc.insert(format!("x-amazon-apigateway-{name}"), value);
        };
        if let Some(source) = spec.api_key_source {
            ext("api-key-source", to_json(source));
        }
        if !spec.binary_media_types.is_empty() {
            ext("binary-media-types", to_json(&spec.binary_media_types));
        }
        if let Some(size) = spec.minimum_compression_size {
            ext("minimum-compression-size", size.into());
        }
        if let Some(e) = &spec.endpoint_configuration {
            ext("endpoint-configuration", to_json(e));
        }
        if let Some(policy) = &spec.policy {
            ext("policy", policy_document(policy));
        }
        if !spec.request_validators.is_empty() {
            ext("request-validators", to_json(&spec.request_validators));
        }
        if !spec.gateway_responses.is_empty() {
            ext("gateway-responses", to_json(&spec.gateway_responses));
        }
        if let Some(cors) = &spec.cors {
            ext("cors", to_json(cors));
        }
    }
    Ok(doc.into())
}

/// An authorizer as AWS exports it: an `apiKey` scheme on the identity's header, with
/// `x-amazon-apigateway-authtype` and `x-amazon-apigateway-authorizer` when authorizers are
/// exported.
fn security_scheme(a: &AuthorizerSpec, with_authorizer: bool) -> Value {
    let AuthorizerSpec {
        type_,
        identity_source,
        identity_validation_expression,
        authorizer_result_ttl_in_seconds,
        authorizer_uri,
        function_host,
        jwt_configuration,
    } = a;
    let header = identity_source
        .as_deref()
        .and_then(|s| s.trim().strip_prefix("method.request.header."))
        .filter(|h| !h.contains(','));
    let header = match type_ {
        AuthorizerType::Request => header.unwrap_or("Unused"),
        _ => header.unwrap_or("Authorization"),
    };
    let auth_type = match type_ {
        AuthorizerType::Token | AuthorizerType::Request => "custom",
        AuthorizerType::CognitoUserPools => "cognito_user_pools",
        AuthorizerType::Jwt => "jwt",
    };
    let mut scheme = Map::new();
    scheme.insert("type".into(), "apiKey".into());
    scheme.insert("name".into(), header.into());
    scheme.insert("in".into(), "header".into());
    if !with_authorizer {
        return scheme.into();
    }
    scheme.insert("x-amazon-apigateway-authtype".into(), auth_type.into());
    let mut authorizer = Map::new();
    authorizer.insert("type".into(), lowercase(type_));
    if let Some(u) = authorizer_uri {
        authorizer.insert("authorizerUri".into(), lambda_uri(u).into());
    }
    if let Some(h) = function_host {
        authorizer.insert(FUNCTION_HOST_EXTENSION.into(), to_json(h));
    }
    if let Some(s) = identity_source {
        authorizer.insert("identitySource".into(), s.clone().into());
    }
    if let Some(e) = identity_validation_expression {
        authorizer.insert("identityValidationExpression".into(), e.clone().into());
    }
    if let Some(t) = authorizer_result_ttl_in_seconds {
        authorizer.insert("authorizerResultTtlInSeconds".into(), (*t).into());
    }
    if let Some(jwt) = jwt_configuration {
        let mut c = Map::new();
        c.insert("issuer".into(), jwt.issuer.clone().into());
        if !jwt.audience.is_empty() {
            c.insert("audience".into(), to_json(&jwt.audience));
        }
        if let Some(j) = &jwt.jwks_uri {
            c.insert(JWKS_URI_EXTENSION.into(), j.clone().into());
        }
        if *type_ == AuthorizerType::CognitoUserPools
            && let Some(arn) = user_pool_arn(&jwt.issuer)
        {
            authorizer.insert("providerARNs".into(), json!([arn]));
        }
        authorizer.insert("jwtConfiguration".into(), c.into());
    }
    scheme.insert("x-amazon-apigateway-authorizer".into(), authorizer.into());
    scheme.into()
}

/// A function as AWS writes it in `uri` and `authorizerUri`: a Lambda function ARN
/// (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`) becomes
/// `arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/ARN/invocations`. That form
/// is kept; a bare function name has no region to write and is kept as it is.
fn lambda_uri(uri: &str) -> String {
    let region = uri
        .strip_prefix("arn:aws:lambda:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(region, _)| region)
        .filter(|r| !r.is_empty());
    match region {
        Some(region) => {
            format!("arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{uri}/invocations")
        }
        None => uri.to_string(),
    }
}

/// The user pool ARN of a Cognito issuer (`https://cognito-idp.REGION.amazonaws.com/POOL`);
/// AWS's ARN has an account, which the issuer lacks: it is left empty.
fn user_pool_arn(issuer: &str) -> Option<String> {
    let rest = issuer.strip_prefix("https://cognito-idp.")?;
    let (region, pool) = rest.split_once(".amazonaws.com/")?;
    (!region.is_empty() && !pool.is_empty() && !pool.contains('/'))
        .then(|| format!("arn:aws:cognito-idp:{region}::userpool/{pool}"))
}

fn to_json(value: impl Serialize) -> Value {
    // The spec types are plain data with string keys: they always serialize.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// An enumeration as AWS exports it: lowercase (`http_proxy`, `when_no_match`).
fn lowercase(value: impl Serialize) -> Value {
    match to_json(value) {
        Value::String(s) => s.to_ascii_lowercase().into(),
        other => other,
    }
}

fn operation(path: &str, m: &MethodSpec, oas3: bool, aws: bool, with_integration: bool) -> Value {
    let mut op = Map::new();
    let mut parameters: BTreeMap<(&str, String), bool> = BTreeMap::new();
    // A path template's parameters are always declared (OpenAPI requires them).
    for segment in path.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            parameters.insert(("path", name.trim_end_matches('+').to_string()), true);
        }
    }
    for (key, required) in &m.request_parameters {
        let Some(rest) = key.strip_prefix("method.request.") else {
            continue;
        };
        let Some((location, name)) = rest.split_once('.') else {
            continue;
        };
        let location = match location {
            "path" => "path",
            "querystring" => "query",
            "header" => "header",
            _ => continue,
        };
        *parameters.entry((location, name.to_string())).or_default() |= *required || location == "path";
    }
    let mut list: Vec<Value> = parameters
        .into_iter()
        .map(|((location, name), required)| {
            if oas3 {
                json!({"name": name, "in": location, "required": required, "schema": {"type": "string"}})
            } else {
                json!({"name": name, "in": location, "required": required, "type": "string"})
            }
        })
        .collect();
    if !m.request_models.is_empty() {
        if oas3 {
            let content: Map<String, Value> = m
                .request_models
                .iter()
                .map(|(t, model)| {
                    (
                        t.clone(),
                        json!({"schema": {"$ref": format!("#/components/schemas/{model}")}}),
                    )
                })
                .collect();
            op.insert(
                "requestBody".into(),
                json!({"content": content, "required": true}),
            );
        } else {
            // Swagger has one body parameter: the first model, for every content type.
            op.insert(
                "consumes".into(),
                to_json(m.request_models.keys().collect::<Vec<_>>()),
            );
            if let Some(model) = m.request_models.values().next() {
                list.push(json!({
                    "in": "body",
                    "name": model,
                    "required": true,
                    "schema": {"$ref": format!("#/definitions/{model}")},
                }));
            }
        }
    }
    if !list.is_empty() {
        op.insert("parameters".into(), list.into());
    }
    op.insert("responses".into(), method_responses(&m.integration, oas3));
    // One requirement: the API key and the authorizer both apply.
    let mut requirement = Map::new();
    if m.api_key_required == Some(true) {
        requirement.insert("api_key".into(), json!([]));
    }
    if let Some(id) = &m.authorizer_id {
        requirement.insert(id.clone(), to_json(&m.authorization_scopes));
    }
    if !requirement.is_empty() {
        op.insert("security".into(), json!([requirement]));
    }
    if aws && let Some(v) = &m.request_validator_id {
        op.insert("x-amazon-apigateway-request-validator".into(), v.clone().into());
    }
    if with_integration {
        op.insert(
            "x-amazon-apigateway-integration".into(),
            integration(&m.integration),
        );
    }
    op.into()
}

/// Method responses: one per integration response status, with the headers it sets.
fn method_responses(integration: &IntegrationSpec, oas3: bool) -> Value {
    let mut responses = Map::new();
    for r in &integration.integration_responses {
        let mut response = Map::new();
        response.insert("description".into(), format!("{} response", r.status_code).into());
        let headers: Map<String, Value> = r
            .response_parameters
            .keys()
            .filter_map(|k| k.strip_prefix("method.response.header."))
            .map(|h| {
                let schema = if oas3 {
                    json!({"schema": {"type": "string"}})
                } else {
                    json!({"type": "string"})
                };
                (h.to_string(), schema)
            })
            .collect();
        if !headers.is_empty() {
            response.insert("headers".into(), headers.into());
        }
        responses.insert(r.status_code.clone(), response.into());
    }
    if responses.is_empty() {
        responses.insert("200".into(), json!({"description": "200 response"}));
    }
    responses.into()
}

fn integration(spec: &IntegrationSpec) -> Value {
    let IntegrationSpec {
        type_,
        uri,
        function_host,
        http_method,
        connection_type,
        service_ref,
        timeout_in_millis,
        request_parameters,
        request_templates,
        passthrough_behavior,
        integration_responses,
        tls_config,
        content_handling,
        cache_key_parameters,
        cache_namespace,
    } = spec;
    let mut i = Map::new();
    i.insert("type".into(), lowercase(type_));
    if let Some(u) = uri {
        let u = match type_ {
            IntegrationType::AwsProxy => lambda_uri(u),
            _ => u.clone(),
        };
        i.insert("uri".into(), u.into());
    }
    if let Some(m) = http_method {
        i.insert("httpMethod".into(), m.clone().into());
    }
    if let Some(c) = connection_type {
        i.insert("connectionType".into(), to_json(c));
    }
    if let Some(s) = service_ref {
        i.insert(SERVICE_REF_EXTENSION.into(), to_json(s));
    }
    if let Some(h) = function_host {
        i.insert(FUNCTION_HOST_EXTENSION.into(), to_json(h));
    }
    if !request_parameters.is_empty() {
        i.insert("requestParameters".into(), to_json(request_parameters));
    }
    if !request_templates.is_empty() {
        i.insert("requestTemplates".into(), to_json(request_templates));
    }
    if let Some(p) = passthrough_behavior {
        i.insert("passthroughBehavior".into(), lowercase(p));
    }
    if let Some(t) = timeout_in_millis {
        i.insert("timeoutInMillis".into(), (*t).into());
    }
    if let Some(c) = content_handling {
        i.insert("contentHandling".into(), to_json(c));
    }
    if !cache_key_parameters.is_empty() {
        i.insert("cacheKeyParameters".into(), to_json(cache_key_parameters));
    }
    if let Some(n) = cache_namespace {
        i.insert("cacheNamespace".into(), n.clone().into());
    }
    if let Some(t) = tls_config {
        i.insert("tlsConfig".into(), to_json(t));
    }
    if !integration_responses.is_empty() {
        let responses: Map<String, Value> = integration_responses
            .iter()
            .map(|r| {
                let key = r.selection_pattern.clone().unwrap_or_else(|| "default".into());
                let mut v = Map::new();
                v.insert("statusCode".into(), r.status_code.clone().into());
                if !r.response_parameters.is_empty() {
                    v.insert("responseParameters".into(), to_json(&r.response_parameters));
                }
                if !r.response_templates.is_empty() {
                    v.insert("responseTemplates".into(), to_json(&r.response_templates));
                }
                if let Some(c) = r.content_handling {
                    v.insert("contentHandling".into(), to_json(c));
                }
                (key, v.into())
            })
            .collect();
        i.insert("responses".into(), responses.into());
    }
    i.into()
}

/// The resource policy as the IAM policy document AWS keeps: a statement per rule and kind of
/// source; a rule for every address is a statement without a condition.
fn policy_document(policy: &ResourcePolicy) -> Value {
    let mut statements = Vec::new();
    let mut push = |effect: &str, rule: &PolicyRule| {
        let base = json!({"Effect": effect, "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*"});
        let everyone = rule.source_cidrs.len() == 2
            && rule.source_cidrs.iter().any(|c| c == "0.0.0.0/0")
            && rule.source_cidrs.iter().any(|c| c == "::/0");
        let mut conditions = Vec::new();
        if everyone {
            conditions.push(None);
        } else if !rule.source_cidrs.is_empty() {
            conditions.push(Some(json!({"IpAddress": {"aws:SourceIp": rule.source_cidrs}})));
        }
        if !rule.source_namespaces.is_empty() {
            conditions.push(Some(
                json!({"StringEquals": {SOURCE_NAMESPACE_KEY: rule.source_namespaces}}),
            ));
        }
        for condition in conditions {
            let mut s = base.clone();
            if let (Some(c), Some(o)) = (condition, s.as_object_mut()) {
                o.insert("Condition".into(), c);
            }
            statements.push(s);
        }
    };
    policy.allow.iter().for_each(|r| push("Allow", r));
    policy.deny.iter().for_each(|r| push("Deny", r));
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// A model's schema as an object (the spec also takes it as a JSON string).
fn model_schema(schema: &Value) -> Value {
    match schema {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| schema.clone()),
        other => other.clone(),
    }
}

/// Rewrites `#/models/NAME` references (and AWS's model URLs) into the document's own.
fn schema_refs(schema: Value, oas3: bool) -> Value {
    let prefix = if oas3 {
        "#/components/schemas/"
    } else {
        "#/definitions/"
    };
    rewrite_refs(schema, &|r: &str| {
        let name = r.strip_prefix("#/models/").or_else(|| {
            r.strip_prefix("https://apigateway.amazonaws.com/restapis/")
                .and_then(|rest| rest.split_once("/models/"))
                .map(|(_, name)| name)
        });
        name.map(|name| format!("{prefix}{name}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_arns_are_written_in_the_apigateway_form() {
        let arn = "arn:aws:lambda:eu-west-1:123456789012:function:pets";
        assert_eq!(
            lambda_uri(arn),
            format!("arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/{arn}/invocations")
        );
        let aws = format!("arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/{arn}/invocations");
        assert_eq!(lambda_uri(&aws), aws);
        assert_eq!(lambda_uri("pets"), "pets");
        assert_eq!(lambda_uri("arn:aws:lambda::x"), "arn:aws:lambda::x");
    }

    #[test]
    fn cognito_issuers_become_user_pool_arns() {
        assert_eq!(
            user_pool_arn("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc").as_deref(),
            Some("arn:aws:cognito-idp:us-east-1::userpool/us-east-1_abc")
        );
        assert_eq!(user_pool_arn("https://issuer.example"), None);
    }
}
