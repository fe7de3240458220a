//! From CRD types to the validated model: every AWS constraint is checked here, once.
//!
//! Converters destructure the CRD structs exhaustively, so adding a field to a CRD stops the
//! build until the field is handled here.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use ipnet::IpNet;

use crate::{
    self as api,
    v1alpha1::{rest_api as ra, stage as st, usage_plan as up},
};
use turnpike_core::model::{
    AccessLogFormat, ApiKeyDef, ApiKeySource, Backend, BinaryMediaTypes, BodyValidation, CacheSize,
    CanaryDef, ContentHandling, ContextVar, Cors, DEFAULT_CONTENT_TYPE, DeploymentDef, EndpointType, Errors,
    FieldPath, GatewayResponseDef, GatewayResponses, HeaderSource, Integration, IntegrationKind,
    IntegrationResponse, Invalid, KeySelector, KeyValueSource, Labels, MappingTemplates, MethodDef,
    MethodKey, MethodSelector, MethodSettings, Model, OriginPattern, ParamLocation, ParamRef,
    ParameterMapping, PassthroughBehavior, PathTemplate, PlanStage, PolicyRule, Quota, QuotaPeriod, Reason,
    RequestValidation, Requirement, Resource, ResourcePolicy, ResponseType, ResponseValue, RestApiDef,
    RouteSelection, Segment, SelectorOp, ServiceRef, StageDef, StageName, StageSource, Throttle,
    UnauthorizedCacheControl, UriTemplate, UsagePlanDef, ValueSource, WebSocketDef, WebSocketRoute,
    compile_models, is_media_range, is_model_name, is_stage_variable_name, websocket,
};
use turnpike_core::template::Template as MappingTemplate;

/// The default integration timeout, as in AWS.
pub const DEFAULT_TIMEOUT_MS: i64 = 29_000;
/// The longest integration timeout of an EDGE API.
pub const EDGE_MAX_TIMEOUT_MS: i64 = 29_000;
/// The longest integration timeout of REGIONAL and PRIVATE APIs.
pub const MAX_TIMEOUT_MS: i64 = 300_000;
/// At most this many stage variables.
pub const MAX_STAGE_VARIABLES: usize = 100;
/// At most this many usage plans per key.
pub const MAX_PLANS_PER_KEY: usize = 10;
/// The largest `minimumCompressionSize`, as in AWS (10 MiB).
pub const MAX_MINIMUM_COMPRESSION_SIZE: i64 = 10 * 1024 * 1024;

// === RestApi ===

/// Validates a RestApi spec. `namespace` is the RestApi's; Services without a namespace are
/// looked up there.
pub fn rest_api(namespace: &str, spec: &api::RestApiSpec) -> Result<RestApiDef, Vec<Invalid>> {
    let api::RestApiSpec {
        description: _,
        endpoint_configuration,
        api_key_source,
        policy,
        resources,
        models,
        request_validators,
        binary_media_types,
        minimum_compression_size,
        gateway_responses,
        cors,
        authorizers,
        protocol_type,
        route_selection_expression,
        routes,
        // Imported by the controller before conversion (`spec.openApi` is expanded into the
        // other fields); a spec that still holds it converts as if it did not.
        open_api: _,
    } = spec;
    let root = FieldPath::spec();
    let mut errors = Errors::default();
    let authorizers = auth::authorizers(authorizers, namespace, &root.field("authorizers"), &mut errors);
    let body_models = api_models(models, &root.field("models"), &mut errors);
    let validators = api_validators(request_validators, &root.field("requestValidators"), &mut errors);
    let refs = ApiRefs {
        models: &body_models,
        validators: &validators,
        authorizers: &authorizers,
    };
    let binary_media_types = media_types(binary_media_types, &root.field("binaryMediaTypes"), &mut errors);
    let minimum_compression_size = minimum_compression_size.and_then(|n| {
        if (0..=MAX_MINIMUM_COMPRESSION_SIZE).contains(&n) {
            u64::try_from(n).ok()
        } else {
            errors.push(
                &root.field("minimumCompressionSize"),
                Reason::InvalidIntegration,
                format!("{n} is out of range: 0 to {MAX_MINIMUM_COMPRESSION_SIZE} bytes"),
            );
            None
        }
    });

    let endpoint_type = match endpoint_configuration {
        None => EndpointType::Edge,
        Some(ra::EndpointConfiguration { types }) => match types.as_slice() {
            [t] => match t {
                ra::EndpointType::Edge => EndpointType::Edge,
                ra::EndpointType::Regional => EndpointType::Regional,
                ra::EndpointType::Private => EndpointType::Private,
            },
            _ => {
                errors.push(
                    &root.field("endpointConfiguration").field("types"),
                    Reason::InvalidEndpointConfiguration,
                    format!("must name exactly one endpoint type, has {}", types.len()),
                );
                EndpointType::Edge
            }
        },
    };
    let api_key_source = match api_key_source {
        None | Some(ra::ApiKeySource::Header) => ApiKeySource::Header,
        Some(ra::ApiKeySource::Authorizer) => ApiKeySource::Authorizer,
    };
    let policy = match policy {
        None => ResourcePolicy::default(),
        Some(p) => resource_policy(p, &root.field("policy"), &mut errors),
    };

    let resources_path = root.field("resources");
    let mut out = Vec::with_capacity(resources.len());
    for (raw_path, methods) in resources {
        let field = resources_path.key(raw_path);
        let path = match PathTemplate::parse(raw_path) {
            Ok(p) => p,
            Err(e) => {
                errors.push(&field, Reason::InvalidPath, e);
                continue;
            }
        };
        if methods.is_empty() {
            errors.push(
                &field,
                Reason::InvalidMethod,
                "a resource needs at least one method",
            );
        }
        let mut converted = BTreeMap::new();
        for (name, method) in methods {
            let mfield = field.field(name);
            let Some(key) = MethodKey::parse(name) else {
                errors.push(
                    &mfield,
                    Reason::InvalidMethod,
                    format!(
                        "unknown method {name:?}; one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, ANY"
                    ),
                );
                continue;
            };
            match method_def(method, &path, endpoint_type, namespace, &refs, &mfield) {
                Ok(def) => {
                    converted.insert(key, std::sync::Arc::new(def));
                }
                Err(e) => errors.extend(e),
            }
        }
        out.push(Resource {
            path,
            methods: converted,
        });
    }
    check_siblings(&out, &resources_path, &mut errors);
    out.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
    let gateway_responses =
        gateway_responses_def(gateway_responses, &root.field("gatewayResponses"), &mut errors);
    let cors = cors
        .as_ref()
        .map(|c| cors_def(c, &root.field("cors"), &mut errors));
    let websocket = websocket_def(
        *protocol_type,
        route_selection_expression.as_deref(),
        routes,
        !resources.is_empty(),
        (endpoint_type, namespace, &refs),
        &root,
        &mut errors,
    );
    errors.finish(RestApiDef {
        endpoint_type,
        api_key_source,
        policy,
        resources: out,
        binary_media_types,
        minimum_compression_size,
        gateway_responses,
        cors,
        authorizers,
        websocket,
    })
}

/// The WebSocket part of an API: `None` for a REST API (which must then have no routes). A
/// route is a method on `/` as far as its integration is concerned: it has no path
/// parameters.
fn websocket_def(
    protocol: ra::ProtocolType,
    selection: Option<&str>,
    routes: &BTreeMap<String, ra::RouteSpec>,
    has_resources: bool,
    (endpoint_type, namespace, refs): (EndpointType, &str, &ApiRefs<'_>),
    root: &FieldPath,
    errors: &mut Errors,
) -> Option<WebSocketDef> {
    let selection_field = root.field("routeSelectionExpression");
    let routes_field = root.field("routes");
    if protocol == ra::ProtocolType::Rest {
        if selection.is_some() {
            errors.push(
                &selection_field,
                Reason::InvalidRoute,
                "only for protocolType WEBSOCKET",
            );
        }
        if !routes.is_empty() {
            errors.push(
                &routes_field,
                Reason::InvalidRoute,
                "only for protocolType WEBSOCKET",
            );
        }
        return None;
    }
    if has_resources {
        errors.push(
            &root.field("resources"),
            Reason::InvalidRoute,
            "a WEBSOCKET API has routes, not resources",
        );
    }
    let selection = match selection.map(RouteSelection::parse) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            errors.push(&selection_field, Reason::InvalidRoute, e);
            None
        }
        None => {
            errors.push(
                &selection_field,
                Reason::InvalidRoute,
                "a WEBSOCKET API needs one, e.g. $request.body.action",
            );
            None
        }
    };
    let root_path = PathTemplate::parse("/").ok()?;
    let mut out = BTreeMap::new();
    for (key, route) in routes {
        let field = routes_field.key(key);
        if !websocket::is_route_key(key) {
            errors.push(
                &field,
                Reason::InvalidRoute,
                format!(
                    "{key:?} is not a route key: $connect, $disconnect, $default, or 1 to {} printable ASCII characters not starting with '$'",
                    websocket::MAX_ROUTE_KEY_LEN
                ),
            );
            continue;
        }
        let ra::RouteSpec {
            api_key_required,
            route_response_selection_expression,
            authorization_type,
            authorizer_id,
            authorization_scopes,
            integration,
        } = route;
        let lifecycle = key == websocket::CONNECT || key == websocket::DISCONNECT;
        let authorized = authorization_type.is_some_and(|t| t != ra::AuthorizationType::None)
            || authorizer_id.is_some()
            || !authorization_scopes.is_empty();
        if authorized && key != websocket::CONNECT {
            errors.push(
                &field.field("authorizationType"),
                Reason::InvalidRoute,
                "authorizers run on $connect only",
            );
        }
        if api_key_required == &Some(true) && key != websocket::CONNECT {
            errors.push(
                &field.field("apiKeyRequired"),
                Reason::InvalidRoute,
                "API keys are checked on $connect only",
            );
        }
        let two_way = match route_response_selection_expression.as_deref() {
            None => false,
            Some(_) if lifecycle => {
                errors.push(
                    &field.field("routeResponseSelectionExpression"),
                    Reason::InvalidRoute,
                    format!("{key} has no route response"),
                );
                false
            }
            Some(websocket::DEFAULT) => true,
            Some(other) => {
                errors.push(
                    &field.field("routeResponseSelectionExpression"),
                    Reason::InvalidRoute,
                    format!("{other:?}: the only route response selection expression is $default"),
                );
                false
            }
        };
        let method = ra::MethodSpec {
            api_key_required: *api_key_required,
            integration: integration.clone(),
            authorization_type: authorization_type.filter(|_| key == websocket::CONNECT),
            authorizer_id: authorizer_id.clone().filter(|_| key == websocket::CONNECT),
            authorization_scopes: if key == websocket::CONNECT {
                authorization_scopes.clone()
            } else {
                Vec::new()
            },
            ..Default::default()
        };
        match method_def(&method, &root_path, endpoint_type, namespace, refs, &field) {
            Ok(def) => {
                out.insert(
                    key.clone(),
                    std::sync::Arc::new(WebSocketRoute {
                        key: key.clone(),
                        method: std::sync::Arc::new(def),
                        two_way,
                    }),
                );
            }
            Err(e) => errors.extend(e),
        }
    }
    Some(WebSocketDef {
        selection: selection?,
        routes: out,
    })
}

/// The compiled models and the validators of an API, for its methods to refer to. A model
/// that failed to compile is absent; its failure is reported at the model.
struct ApiRefs<'s> {
    models: &'s BTreeMap<String, std::sync::Arc<Model>>,
    validators: &'s BTreeMap<String, (bool, bool)>,
    authorizers: &'s BTreeMap<String, std::sync::Arc<turnpike_core::model::AuthorizerDef>>,
}

/// Compiles `spec.models`; a bad name, an invalid schema or a reference to a missing model is
/// an `InvalidModel` at the model's `schema`.
fn api_models(
    models: &BTreeMap<String, ra::ModelSpec>,
    field: &FieldPath,
    errors: &mut Errors,
) -> BTreeMap<String, std::sync::Arc<Model>> {
    let mut schemas = BTreeMap::new();
    for (name, spec) in models {
        let ra::ModelSpec {
            content_type: _,
            schema,
            description: _,
        } = spec;
        if is_model_name(name) {
            schemas.insert(name.clone(), schema.clone());
        } else {
            errors.push(
                &field.key(name),
                Reason::InvalidModel,
                "a model name is letters and digits (at most 128)",
            );
        }
    }
    compile_models(&schemas)
        .into_iter()
        .filter_map(|(name, compiled)| match compiled {
            Ok(model) => Some((name, model)),
            Err(e) => {
                errors.push(&field.key(&name).field("schema"), Reason::InvalidModel, e);
                None
            }
        })
        .collect()
}

/// `spec.requestValidators`: name → (validate body, validate parameters).
fn api_validators(
    validators: &BTreeMap<String, ra::RequestValidatorSpec>,
    field: &FieldPath,
    errors: &mut Errors,
) -> BTreeMap<String, (bool, bool)> {
    validators
        .iter()
        .filter_map(|(name, spec)| {
            let ra::RequestValidatorSpec {
                validate_request_body,
                validate_request_parameters,
            } = spec;
            if name.is_empty() || name.len() > 128 {
                errors.push(
                    &field.key(name),
                    Reason::InvalidReference,
                    "a validator name is 1 to 128 characters",
                );
                return None;
            }
            Some((
                name.clone(),
                (*validate_request_body, *validate_request_parameters),
            ))
        })
        .collect()
}

/// `spec.binaryMediaTypes`: `type/subtype`, `type/*` or `*/*`, lower-cased.
fn media_types(types: &[String], field: &FieldPath, errors: &mut Errors) -> BinaryMediaTypes {
    let mut out = Vec::with_capacity(types.len());
    for (i, t) in types.iter().enumerate() {
        // AWS stores `/` in a media type as `~1` (a JSON pointer escape); accept both.
        let t = t.replace("~1", "/").to_ascii_lowercase();
        if is_media_range(&t) {
            out.push(t);
        } else {
            errors.push(
                &field.index(i),
                Reason::InvalidIntegration,
                format!("{t:?} is not a media type (type/subtype, type/* or */*)"),
            );
        }
    }
    BinaryMediaTypes(out)
}

fn content_handling(spec: Option<ra::ContentHandling>) -> Option<ContentHandling> {
    spec.map(|c| match c {
        ra::ContentHandling::ConvertToBinary => ContentHandling::ConvertToBinary,
        ra::ContentHandling::ConvertToText => ContentHandling::ConvertToText,
    })
}

/// A method's request validation: its validator (which must exist) and, when that validates
/// bodies, its request models (each must exist and have compiled).
fn method_validation(
    validator: Option<&String>,
    request_models: &BTreeMap<String, String>,
    refs: &ApiRefs<'_>,
    field: &FieldPath,
    errors: &mut Errors,
) -> Option<RequestValidation> {
    let mut by_content_type = Vec::new();
    let mut default = None;
    for (content_type, name) in request_models {
        let mfield = field.field("requestModels").key(content_type);
        let Some(model) = refs.models.get(name) else {
            errors.push(
                &mfield,
                Reason::InvalidReference,
                format!("no valid model {name:?} in spec.models"),
            );
            continue;
        };
        if content_type == DEFAULT_CONTENT_TYPE {
            default = Some(model.clone());
        } else if content_type.contains('/') {
            by_content_type.push((content_type.to_ascii_lowercase(), model.clone()));
        } else {
            errors.push(
                &mfield,
                Reason::InvalidReference,
                "keys are content types (application/json) or $default",
            );
        }
    }
    let name = validator?;
    let Some(&(body, parameters)) = refs.validators.get(name) else {
        errors.push(
            &field.field("requestValidatorId"),
            Reason::InvalidReference,
            format!("no validator {name:?} in spec.requestValidators"),
        );
        return None;
    };
    let has_models = !by_content_type.is_empty() || default.is_some();
    Some(RequestValidation {
        parameters,
        body: (body && has_models).then_some(BodyValidation {
            by_content_type,
            default,
        }),
    })
}

// === gateway responses and CORS ===

fn gateway_responses_def(
    specs: &BTreeMap<String, ra::GatewayResponseSpec>,
    field: &FieldPath,
    errors: &mut Errors,
) -> GatewayResponses {
    let mut out = Vec::with_capacity(specs.len());
    for (name, spec) in specs {
        let field = field.key(name);
        let Some(t) = ResponseType::parse(name) else {
            let names: Vec<&str> = ResponseType::ALL.iter().map(|t| t.as_str()).collect();
            errors.push(
                &field,
                Reason::InvalidGatewayResponse,
                format!("unknown response type {name:?}; one of {}", names.join(", ")),
            );
            continue;
        };
        let ra::GatewayResponseSpec {
            status_code,
            response_parameters,
            response_templates,
        } = spec;
        let status = status_code.as_deref().and_then(|code| match code.parse::<u16>() {
            Ok(s) if (100..=599).contains(&s) => Some(s),
            _ => {
                errors.push(
                    &field.field("statusCode"),
                    Reason::InvalidGatewayResponse,
                    format!("{code:?} is not an HTTP status code"),
                );
                None
            }
        });
        let mut headers = Vec::new();
        for (target, source) in response_parameters {
            let pfield = field.field("responseParameters").key(target);
            let Some(header) = target
                .strip_prefix("gatewayresponse.header.")
                .filter(|n| is_header_name(n))
            else {
                errors.push(
                    &pfield,
                    Reason::InvalidGatewayResponse,
                    "keys are gatewayresponse.header.NAME",
                );
                continue;
            };
            match response_value(source) {
                Ok(v) => headers.push((header.to_ascii_lowercase(), v)),
                Err(e) => errors.push(&pfield, Reason::InvalidGatewayResponse, e),
            }
        }
        let mut templates = Vec::new();
        for (content_type, raw) in response_templates {
            let tfield = field.field("responseTemplates").key(content_type);
            if !content_type.contains('/') || http::HeaderValue::from_str(content_type).is_err() {
                errors.push(
                    &tfield,
                    Reason::InvalidGatewayResponse,
                    format!("{content_type:?} is not a content type like application/json"),
                );
                continue;
            }
            // The mapping-template language, parsed once here; an error names its line and
            // column, as an integration template's does.
            match MappingTemplate::parse(raw) {
                Ok(t) => templates.push((content_type.clone(), t)),
                Err(e) => errors.push(&tfield, Reason::InvalidMappingTemplate, e.to_string()),
            }
        }
        out.push((
            t,
            GatewayResponseDef {
                status,
                headers,
                templates,
            },
        ));
    }
    GatewayResponses::new(out)
}

/// A gateway response header value: `'static'`, `method.request.*`, `context.*` or
/// `stageVariables.*`.
fn response_value(s: &str) -> Result<ResponseValue, String> {
    if let Some(v) = static_value(s) {
        return Ok(ResponseValue::Static(v.to_string()));
    }
    if let Some(name) = s.strip_prefix("context.") {
        return ContextVar::parse(name)
            .map(ResponseValue::Context)
            .ok_or_else(|| {
                format!(
                    "unknown variable context.{name}; one of context.{{{}}}",
                    ContextVar::names()
                )
            });
    }
    if s.starts_with("method.request.") {
        return param_ref(s, "method.request.").map(ResponseValue::Request);
    }
    match value_source(s) {
        Ok(ValueSource::StageVariable(n)) => Ok(ResponseValue::StageVariable(n)),
        _ => Err(format!(
            "{s:?}: values are a 'quoted' static value, method.request.{{path|querystring|header}}.NAME, context.NAME or stageVariables.NAME"
        )),
    }
}

fn cors_def(spec: &ra::CorsSpec, field: &FieldPath, errors: &mut Errors) -> Cors {
    let ra::CorsSpec {
        allow_origins,
        allow_methods,
        allow_headers,
        expose_headers,
        max_age,
        allow_credentials,
    } = spec;
    let allow_credentials = allow_credentials.unwrap_or(false);
    let ofield = field.field("allowOrigins");
    if allow_origins.is_empty() {
        errors.push(
            &ofield,
            Reason::InvalidCors,
            "name at least one origin (or \"*\")",
        );
    }
    let mut origins = Vec::new();
    for (i, raw) in allow_origins.iter().enumerate() {
        match OriginPattern::parse(raw) {
            Ok(OriginPattern::Any) if allow_credentials => errors.push(
                &ofield.index(i),
                Reason::InvalidCors,
                "\"*\" cannot be combined with allowCredentials: browsers refuse it; list the origins",
            ),
            Ok(p) => origins.push(p),
            Err(e) => errors.push(&ofield.index(i), Reason::InvalidCors, e),
        }
    }
    let mut methods = Vec::new();
    for (i, m) in allow_methods.iter().enumerate() {
        if m == "*" || MethodKey::parse(m).is_some_and(|k| k != MethodKey::Any) {
            methods.push(m.clone());
        } else {
            errors.push(
                &field.field("allowMethods").index(i),
                Reason::InvalidCors,
                format!("unknown method {m:?}; one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or *"),
            );
        }
    }
    let headers = |list: &[String], name: &str, star: bool, errors: &mut Errors| -> Vec<String> {
        let mut out = Vec::new();
        for (i, h) in list.iter().enumerate() {
            if (star && h == "*") || (is_header_name(h) && h != "*") {
                out.push(h.to_ascii_lowercase());
            } else {
                errors.push(
                    &field.field(name).index(i),
                    Reason::InvalidCors,
                    format!("{h:?} is not a header name"),
                );
            }
        }
        out
    };
    let allow_headers = headers(allow_headers, "allowHeaders", true, errors);
    let expose_headers = headers(expose_headers, "exposeHeaders", false, errors);
    let max_age = max_age.and_then(|s| match u64::try_from(s) {
        Ok(s) if s <= 86_400 => Some(Duration::from_secs(s)),
        _ => {
            errors.push(
                &field.field("maxAge"),
                Reason::InvalidCors,
                format!("{s} is out of range: 0 to 86400 seconds"),
            );
            None
        }
    });
    Cors {
        allow_origins: origins,
        allow_methods: methods,
        allow_headers,
        expose_headers,
        max_age,
        allow_credentials,
    }
}

/// AWS allows one variable child per resource: `/pets/{id}` and `/pets/{petId}/toys` clash.
/// Each template is well-formed on its own, so this is a `RouteConflict`, not an `InvalidPath`.
fn check_siblings(resources: &[Resource], field: &FieldPath, errors: &mut Errors) {
    // (parent literal prefix) -> (variable segment as written, first path that used it)
    let mut seen: BTreeMap<String, (String, String)> = BTreeMap::new();
    for resource in resources {
        let mut prefix = String::new();
        for segment in resource.path.segments() {
            let written = match segment {
                Segment::Literal(s) => {
                    prefix.push('/');
                    prefix.push_str(s);
                    continue;
                }
                Segment::Param(n) => format!("{{{n}}}"),
                Segment::Greedy(n) => format!("{{{n}+}}"),
            };
            match seen.get(&prefix) {
                Some((other, first)) if *other != written => {
                    errors.push(
                        &field.key(resource.path.as_str()),
                        Reason::RouteConflict,
                        format!(
                            "a sibling ({other}, in {first:?}) already has a variable path part at {:?}; only one is allowed",
                            if prefix.is_empty() { "/" } else { &prefix }
                        ),
                    );
                    break;
                }
                Some(_) => {}
                None => {
                    seen.insert(
                        prefix.clone(),
                        (written.clone(), resource.path.as_str().to_string()),
                    );
                }
            }
            prefix.push('/');
            prefix.push_str(&written);
        }
    }
}

fn method_def(
    spec: &ra::MethodSpec,
    path: &PathTemplate,
    endpoint_type: EndpointType,
    namespace: &str,
    refs: &ApiRefs<'_>,
    field: &FieldPath,
) -> Result<MethodDef, Vec<Invalid>> {
    let ra::MethodSpec {
        api_key_required,
        request_parameters,
        request_validator_id,
        request_models,
        authorization_type,
        authorizer_id,
        authorization_scopes,
        integration,
    } = spec;
    let mut errors = Errors::default();
    let auth = auth::method_auth(
        *authorization_type,
        authorizer_id.as_deref(),
        authorization_scopes,
        refs.authorizers,
        field,
        &mut errors,
    );
    let validation = method_validation(
        request_validator_id.as_ref(),
        request_models,
        refs,
        field,
        &mut errors,
    );
    let mut required = Vec::new();
    for (name, is_required) in request_parameters {
        let pfield = field.field("requestParameters").key(name);
        match param_ref(name, "method.request.") {
            Ok(p) => {
                if p.location == ParamLocation::Path && !path.params().any(|n| n == p.name) {
                    errors.push(
                        &pfield,
                        Reason::InvalidParameterMapping,
                        format!("{{{}}} is not a parameter of {path}", p.name),
                    );
                } else if *is_required {
                    required.push(p);
                }
            }
            Err(e) => errors.push(&pfield, Reason::InvalidParameterMapping, e),
        }
    }
    match integration_def(
        integration,
        path,
        endpoint_type,
        namespace,
        &field.field("integration"),
    ) {
        Ok(integration) => errors.finish(MethodDef {
            api_key_required: api_key_required.unwrap_or(false),
            auth,
            required_parameters: required.into(),
            validation,
            integration,
        }),
        Err(e) => {
            errors.extend(e);
            errors.finish_err()
        }
    }
}

fn integration_def(
    spec: &ra::IntegrationSpec,
    path: &PathTemplate,
    endpoint_type: EndpointType,
    namespace: &str,
    field: &FieldPath,
) -> Result<Integration, Vec<Invalid>> {
    let ra::IntegrationSpec {
        type_,
        uri,
        http_method,
        connection_type,
        service_ref,
        timeout_in_millis,
        request_parameters,
        request_templates,
        passthrough_behavior,
        integration_responses,
        tls_config,
        content_handling: request_content_handling,
        cache_key_parameters,
        cache_namespace,
        function_host,
    } = spec;
    let mut errors = Errors::default();
    let cache_key_parameters = cache_key_params(
        cache_key_parameters,
        &field.field("cacheKeyParameters"),
        &mut errors,
    );
    if let Some(ns) = cache_namespace.as_deref()
        && (ns.is_empty() || ns.len() > 128)
    {
        errors.push(
            &field.field("cacheNamespace"),
            Reason::InvalidCacheSettings,
            "must be 1 to 128 characters",
        );
    }
    let own_namespace = namespace;
    let kind = match type_ {
        ra::IntegrationType::HttpProxy => IntegrationKind::HttpProxy,
        ra::IntegrationType::Http => IntegrationKind::Http,
        ra::IntegrationType::Mock => IntegrationKind::Mock,
        ra::IntegrationType::AwsProxy => IntegrationKind::AwsProxy,
    };
    if kind != IntegrationKind::AwsProxy && function_host.is_some() {
        errors.push(
            &field.field("functionHost"),
            Reason::InvalidIntegration,
            "only AWS_PROXY integrations call a function",
        );
    }

    // The backend.
    let vpc_link = matches!(connection_type, Some(ra::ConnectionType::VpcLink));
    let uri_field = field.field("uri");
    let template = |raw: &str, errors: &mut Errors| -> Option<UriTemplate> {
        let t = UriTemplate::parse(raw)
            .map_err(|e| errors.push(&uri_field, Reason::InvalidIntegration, e))
            .ok()?;
        // HTTP_PROXY fills `{name}` from the resource's path parameters; HTTP, as in AWS, from
        // its `integration.request.path.NAME` mappings.
        let (names, source): (Vec<&str>, String) = if kind == IntegrationKind::Http {
            let mapped = request_parameters
                .keys()
                .filter_map(|k| k.strip_prefix("integration.request.path."))
                .collect();
            (mapped, "an integration.request.path mapping".to_string())
        } else {
            (path.params().collect(), format!("a path parameter of {path}"))
        };
        for part in t.parts() {
            if let turnpike_core::model::UriPart::PathParam(n) = part
                && !names.contains(&&**n)
            {
                errors.push(
                    &uri_field,
                    Reason::InvalidIntegration,
                    format!("references {{{n}}}, which is not {source}"),
                );
                return None;
            }
        }
        Some(t)
    };
    let backend = match (kind, vpc_link) {
        (IntegrationKind::AwsProxy, _) => {
            if service_ref.is_some() || connection_type.is_some() {
                errors.push(
                    &field.field("serviceRef"),
                    Reason::InvalidIntegration,
                    "an AWS_PROXY integration reaches its function through functionHost (a url or a serviceRef)",
                );
            }
            auth::function_target(
                uri.as_deref(),
                "uri",
                function_host.as_ref(),
                own_namespace,
                field,
                Reason::InvalidIntegration,
                "required for AWS_PROXY integrations",
                &mut errors,
            )
            .map_or(Backend::None, Backend::Function)
        }
        (IntegrationKind::Mock, _) => {
            if service_ref.is_some() {
                errors.push(
                    &field.field("serviceRef"),
                    Reason::InvalidIntegration,
                    "a MOCK integration has no backend",
                );
            }
            Backend::None
        }
        (_, false) => {
            if service_ref.is_some() {
                errors.push(
                    &field.field("serviceRef"),
                    Reason::InvalidIntegration,
                    "serviceRef requires connectionType VPC_LINK",
                );
            }
            match uri.as_deref() {
                None | Some("") => {
                    errors.push(
                        &uri_field,
                        Reason::InvalidIntegration,
                        "required for HTTP and HTTP_PROXY integrations",
                    );
                    Backend::None
                }
                Some(raw) => match template(raw, &mut errors) {
                    Some(t) if is_absolute_http(&t) => Backend::Url(t),
                    Some(_) => {
                        errors.push(
                            &uri_field,
                            Reason::InvalidIntegration,
                            format!("{raw:?} is not an absolute http:// or https:// URL"),
                        );
                        Backend::None
                    }
                    None => Backend::None,
                },
            }
        }
        (_, true) => {
            let sfield = field.field("serviceRef");
            let service = match service_ref {
                None => {
                    errors.push(
                        &sfield,
                        Reason::InvalidIntegration,
                        "required when connectionType is VPC_LINK",
                    );
                    None
                }
                Some(ra::ServiceRef {
                    name,
                    namespace,
                    port,
                }) => {
                    if !is_dns_label(name) {
                        errors.push(
                            &sfield.field("name"),
                            Reason::InvalidIntegration,
                            format!("{name:?} is not a valid Service name"),
                        );
                    }
                    if let Some(ns) = namespace.as_deref().filter(|ns| !is_dns_label(ns)) {
                        errors.push(
                            &sfield.field("namespace"),
                            Reason::InvalidIntegration,
                            format!("{ns:?} is not a valid namespace"),
                        );
                    }
                    match u16::try_from(*port).ok().filter(|p| *p > 0) {
                        Some(port) => Some((name.clone(), namespace.clone(), port)),
                        None => {
                            errors.push(
                                &sfield.field("port"),
                                Reason::InvalidIntegration,
                                format!("{port} is not a port (1-65535)"),
                            );
                            None
                        }
                    }
                }
            };
            let raw = uri.as_deref().unwrap_or("/");
            let uri_t = template(raw, &mut errors);
            if let Some(t) = &uri_t
                && !(t.as_str().starts_with('/') || is_absolute_http(t))
            {
                errors.push(
                        &uri_field,
                        Reason::InvalidIntegration,
                        format!("{raw:?}: with VPC_LINK, uri is a path (\"/pets/{{id}}\") or an http(s) URL whose host is replaced by the Service"),
                    );
            }
            match (service, uri_t) {
                (Some((name, namespace, port)), Some(uri)) => Backend::Service {
                    service: ServiceRef {
                        namespace: namespace.unwrap_or_else(|| own_namespace.to_string()),
                        name,
                        port,
                    },
                    uri,
                },
                _ => Backend::None,
            }
        }
    };

    let http_method = match http_method.as_deref() {
        None | Some("ANY") => None,
        Some(m) => match MethodKey::parse(m) {
            Some(k) => http::Method::from_bytes(k.as_str().as_bytes()).ok(),
            None => {
                errors.push(
                    &field.field("httpMethod"),
                    Reason::InvalidIntegration,
                    format!("unknown method {m:?}"),
                );
                None
            }
        },
    };

    let max = if endpoint_type == EndpointType::Edge {
        EDGE_MAX_TIMEOUT_MS
    } else {
        MAX_TIMEOUT_MS
    };
    let timeout_ms = timeout_in_millis.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(50..=max).contains(&timeout_ms) {
        errors.push(
            &field.field("timeoutInMillis"),
            Reason::InvalidIntegration,
            format!(
                "{timeout_ms} is out of range: 50 to {max} for {} APIs",
                match endpoint_type {
                    EndpointType::Edge => "EDGE",
                    EndpointType::Regional => "REGIONAL",
                    EndpointType::Private => "PRIVATE",
                }
            ),
        );
    }

    let mut mappings = Vec::new();
    for (target, source) in request_parameters {
        let pfield = field.field("requestParameters").key(target);
        let target = match param_ref(target, "integration.request.") {
            Ok(t) => t,
            Err(e) => {
                errors.push(&pfield, Reason::InvalidParameterMapping, e);
                continue;
            }
        };
        let source = match value_source(source) {
            Ok(ValueSource::Request(p))
                if p.location == ParamLocation::Path && !path.params().any(|n| n == p.name) =>
            {
                errors.push(
                    &pfield,
                    Reason::InvalidParameterMapping,
                    format!("{{{}}} is not a parameter of {path}", p.name),
                );
                continue;
            }
            Ok(s) => s,
            Err(e) => {
                errors.push(&pfield, Reason::InvalidParameterMapping, e);
                continue;
            }
        };
        mappings.push(ParameterMapping { target, source });
    }

    // MOCK integrations render their request template too: its output is the JSON whose
    // `statusCode` selects the integration response, as in AWS.
    let request_templates = if matches!(kind, IntegrationKind::Http | IntegrationKind::Mock) {
        mapping_templates(request_templates, &field.field("requestTemplates"), &mut errors)
    } else {
        Box::default()
    };
    let passthrough_behavior = match passthrough_behavior {
        None | Some(ra::PassthroughBehavior::WhenNoMatch) => PassthroughBehavior::WhenNoMatch,
        Some(ra::PassthroughBehavior::WhenNoTemplates) => PassthroughBehavior::WhenNoTemplates,
        Some(ra::PassthroughBehavior::Never) => PassthroughBehavior::Never,
    };

    let rfield = field.field("integrationResponses");
    if matches!(kind, IntegrationKind::HttpProxy | IntegrationKind::AwsProxy)
        && !integration_responses.is_empty()
    {
        errors.push(
            &rfield,
            Reason::InvalidIntegration,
            "HTTP_PROXY passes the backend response through; integrationResponses apply to HTTP and MOCK",
        );
    }
    let mut responses = Vec::new();
    for (i, r) in integration_responses.iter().enumerate() {
        match integration_response(r, &rfield.index(i)) {
            Ok(r) => responses.push(r),
            Err(e) => errors.extend(e),
        }
    }
    if responses.iter().filter(|r| r.selection_pattern.is_none()).count() > 1 {
        errors.push(
            &rfield,
            Reason::InvalidIntegration,
            "at most one integration response may omit selectionPattern",
        );
    }
    // Patterned responses are tried in order, the default last.
    responses.sort_by_key(|r| r.selection_pattern.is_none());

    errors.finish(Integration {
        kind,
        backend,
        http_method,
        timeout: Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(29_000)),
        request_parameters: mappings.into(),
        responses: responses.into(),
        insecure_skip_verify: tls_config.as_ref().is_some_and(|t| t.insecure_skip_verification),
        content_handling: content_handling(*request_content_handling),
        cache_key_parameters,
        cache_namespace: cache_namespace.clone(),
        request_templates,
        passthrough_behavior,
    })
}

/// Mapping templates by content type, parsed once; a template that does not parse is an
/// error at `field["content/type"]` with its line and column.
fn mapping_templates(
    raw: &BTreeMap<String, String>,
    field: &FieldPath,
    errors: &mut Errors,
) -> MappingTemplates {
    let mut out: Vec<(Box<str>, MappingTemplate)> = Vec::with_capacity(raw.len());
    for (content_type, source) in raw {
        let tfield = field.key(content_type);
        let media = turnpike_core::model::media_type(content_type).to_ascii_lowercase();
        if media.is_empty() || !media.contains('/') {
            errors.push(
                &tfield,
                Reason::InvalidMappingTemplate,
                "the key is a content type such as application/json",
            );
            continue;
        }
        match MappingTemplate::parse(source) {
            Ok(t) => out.push((media.into(), t)),
            Err(e) => errors.push(&tfield, Reason::InvalidMappingTemplate, e.to_string()),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into()
}

/// `cacheKeyParameters`: `method.request.{path|querystring|header}.NAME`, and the multi-value
/// forms of query strings and headers (every value is in the key either way).
fn cache_key_params(raw: &[String], field: &FieldPath, errors: &mut Errors) -> Box<[ParamRef]> {
    let mut out: Vec<ParamRef> = Vec::with_capacity(raw.len());
    for (i, p) in raw.iter().enumerate() {
        let single = p
            .replacen(
                "method.request.multivaluequerystring.",
                "method.request.querystring.",
                1,
            )
            .replacen("method.request.multivalueheader.", "method.request.header.", 1);
        match param_ref(&single, "method.request.") {
            Ok(r) if !out.contains(&r) => out.push(r),
            Ok(_) => {}
            Err(e) => errors.push(&field.index(i), Reason::InvalidCacheSettings, e),
        }
    }
    out.sort();
    out.into()
}

fn is_absolute_http(t: &UriTemplate) -> bool {
    let prefix = t.literal_prefix();
    let rest = prefix
        .strip_prefix("https://")
        .or_else(|| prefix.strip_prefix("http://"));
    match rest {
        Some(authority) => {
            !authority.is_empty()
                || matches!(
                    t.parts().get(1),
                    Some(turnpike_core::model::UriPart::StageVariable(_))
                )
        }
        // The whole URL may come from a stage variable, as in `${stageVariables.url}/pets`.
        None => {
            prefix.is_empty()
                && matches!(
                    t.parts().first(),
                    Some(turnpike_core::model::UriPart::StageVariable(_))
                )
        }
    }
}

fn integration_response(
    spec: &ra::IntegrationResponseSpec,
    field: &FieldPath,
) -> Result<IntegrationResponse, Vec<Invalid>> {
    let ra::IntegrationResponseSpec {
        status_code,
        selection_pattern,
        response_parameters,
        response_templates,
        content_handling: response_content_handling,
    } = spec;
    let mut errors = Errors::default();
    let status = match status_code.parse::<u16>() {
        Ok(s) if (100..=599).contains(&s) => s,
        _ => {
            errors.push(
                &field.field("statusCode"),
                Reason::InvalidIntegration,
                format!("{status_code:?} is not an HTTP status code"),
            );
            500
        }
    };
    let selection_pattern = match selection_pattern.as_deref() {
        None | Some("") => None,
        Some(p) => match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(re) => Some(re),
            Err(e) => {
                errors.push(
                    &field.field("selectionPattern"),
                    Reason::InvalidIntegration,
                    format!("not a regular expression: {e}"),
                );
                None
            }
        },
    };
    let mut headers = Vec::new();
    for (target, source) in response_parameters {
        let pfield = field.field("responseParameters").key(target);
        let Some(name) = target
            .strip_prefix("method.response.header.")
            .filter(|n| is_header_name(n))
        else {
            errors.push(
                &pfield,
                Reason::InvalidParameterMapping,
                "keys are method.response.header.NAME",
            );
            continue;
        };
        let source = if let Some(v) = static_value(source) {
            HeaderSource::Static(v.to_string())
        } else if let Some(h) = source
            .strip_prefix("integration.response.header.")
            .filter(|n| is_header_name(n))
        {
            HeaderSource::Backend(h.to_ascii_lowercase())
        } else {
            errors.push(
                &pfield,
                Reason::InvalidParameterMapping,
                format!("{source:?}: values are integration.response.header.NAME or a 'quoted' static value"),
            );
            continue;
        };
        headers.push((name.to_ascii_lowercase(), source));
    }
    let templates = mapping_templates(response_templates, &field.field("responseTemplates"), &mut errors);
    errors.finish(IntegrationResponse {
        status,
        selection_pattern,
        headers,
        templates,
        content_handling: content_handling(*response_content_handling),
    })
}

/// `{prefix}{path|querystring|header}.NAME`.
fn param_ref(s: &str, prefix: &str) -> Result<ParamRef, String> {
    let rest = s
        .strip_prefix(prefix)
        .ok_or_else(|| format!("{s:?} must look like {prefix}{{path|querystring|header}}.NAME"))?;
    let (location, name) = rest
        .split_once('.')
        .ok_or_else(|| format!("{s:?} has no parameter name"))?;
    let location = match location {
        "path" => ParamLocation::Path,
        "querystring" => ParamLocation::Querystring,
        "header" => ParamLocation::Header,
        other => {
            return Err(format!(
                "unknown location {other:?}; one of path, querystring, header"
            ));
        }
    };
    let ok = match location {
        ParamLocation::Header => is_header_name(name),
        _ => !name.is_empty() && name.len() <= 128 && !name.contains(['/', '?', '#', '&', '=']),
    };
    if !ok {
        return Err(format!(
            "{name:?} is not a valid {} parameter name",
            location.as_str()
        ));
    }
    let name = if location == ParamLocation::Header {
        name.to_ascii_lowercase()
    } else {
        name.to_string()
    };
    Ok(ParamRef { location, name })
}

fn value_source(s: &str) -> Result<ValueSource, String> {
    if let Some(v) = static_value(s) {
        return Ok(ValueSource::Static(v.to_string()));
    }
    if let Some(name) = s.strip_prefix("stageVariables.") {
        return if is_stage_variable_name(name) {
            Ok(ValueSource::StageVariable(name.to_string()))
        } else {
            Err(format!("invalid stage variable name {name:?}"))
        };
    }
    if let Some(name) = s.strip_prefix("context.authorizer.") {
        let valid = !name.is_empty()
            && name.len() <= 256
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        return if valid {
            Ok(ValueSource::Authorizer(name.to_string()))
        } else {
            Err(format!("invalid authorizer value name {name:?}"))
        };
    }
    param_ref(s, "method.request.")
        .map(ValueSource::Request)
        .map_err(|_| format!("{s:?}: values are method.request.{{path|querystring|header}}.NAME, stageVariables.NAME, context.authorizer.NAME or a 'quoted' static value"))
}

fn static_value(s: &str) -> Option<&str> {
    s.strip_prefix('\'').and_then(|v| v.strip_suffix('\''))
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// RFC 1123 label (namespaces, Service names).
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn resource_policy(spec: &ra::ResourcePolicy, field: &FieldPath, errors: &mut Errors) -> ResourcePolicy {
    let ra::ResourcePolicy { allow, deny } = spec;
    let rules = |list: &[ra::PolicyRule], name: &str, errors: &mut Errors| -> Vec<PolicyRule> {
        list.iter()
            .enumerate()
            .map(
                |(
                    i,
                    ra::PolicyRule {
                        source_cidrs,
                        source_namespaces,
                    },
                )| {
                    let rfield = field.field(name).index(i);
                    if source_cidrs.is_empty() && source_namespaces.is_empty() {
                        errors.push(
                            &rfield,
                            Reason::InvalidPolicy,
                            "a rule needs sourceCidrs or sourceNamespaces",
                        );
                    }
                    let mut cidrs = Vec::new();
                    for (j, c) in source_cidrs.iter().enumerate() {
                        let parsed = c
                            .parse::<IpNet>()
                            .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from));
                        match parsed {
                            Ok(net) => cidrs.push(net),
                            Err(_) => errors.push(
                                &rfield.field("sourceCidrs").index(j),
                                Reason::InvalidPolicy,
                                format!("{c:?} is not a CIDR (10.0.0.0/8) or an IP address"),
                            ),
                        }
                    }
                    for (j, ns) in source_namespaces.iter().enumerate() {
                        if !is_dns_label(ns) {
                            errors.push(
                                &rfield.field("sourceNamespaces").index(j),
                                Reason::InvalidPolicy,
                                format!("{ns:?} is not a namespace name"),
                            );
                        }
                    }
                    PolicyRule {
                        source_cidrs: cidrs,
                        source_namespaces: source_namespaces.clone(),
                    }
                },
            )
            .collect()
    };
    ResourcePolicy {
        allow: rules(allow, "allow", errors),
        deny: rules(deny, "deny", errors),
    }
}

// === Deployment ===

/// Validates a Deployment spec.
pub fn deployment(spec: &api::DeploymentSpec) -> Result<DeploymentDef, Vec<Invalid>> {
    let api::DeploymentSpec {
        rest_api_ref,
        description: _,
    } = spec;
    let mut errors = Errors::default();
    check_ref(rest_api_ref, &FieldPath::spec().field("restApiRef"), &mut errors);
    errors.finish(DeploymentDef {
        rest_api: rest_api_ref.name.clone(),
    })
}

fn check_ref(r: &api::LocalRef, field: &FieldPath, errors: &mut Errors) {
    if r.name.is_empty() {
        errors.push(
            &field.field("name"),
            Reason::InvalidReference,
            "must not be empty",
        );
    }
}

// === Stage ===

/// Validates a Stage spec.
pub fn stage(spec: &api::StageSpec) -> Result<StageDef, Vec<Invalid>> {
    let api::StageSpec {
        rest_api_ref,
        stage_name,
        description: _,
        deployment_ref,
        auto_deploy,
        variables,
        throttle,
        method_settings,
        cache_cluster_enabled,
        cache_cluster_size,
        canary_settings,
        access_log_settings,
    } = spec;
    let root = FieldPath::spec();
    let mut errors = Errors::default();
    check_ref(rest_api_ref, &root.field("restApiRef"), &mut errors);
    let name = StageName::parse(stage_name).unwrap_or_else(|e| {
        errors.push(
            &root.field("stageName"),
            Reason::InvalidStageName,
            format!("{stage_name:?} {e}"),
        );
        StageName::parse("invalid").unwrap_or_else(|_| unreachable!())
    });
    let source = match (deployment_ref, auto_deploy.unwrap_or(false)) {
        (Some(d), false) => {
            check_ref(d, &root.field("deploymentRef"), &mut errors);
            StageSource::Deployment(d.name.clone())
        }
        (None, true) => StageSource::Live,
        (Some(_), true) => {
            errors.push(
                &root.field("deploymentRef"),
                Reason::InvalidReference,
                "must be omitted when autoDeploy is true",
            );
            StageSource::Live
        }
        (None, false) => {
            errors.push(
                &root.field("deploymentRef"),
                Reason::InvalidReference,
                "required unless autoDeploy is true",
            );
            StageSource::Live
        }
    };
    check_variables(variables, &root.field("variables"), &mut errors);
    let throttle = throttle
        .as_ref()
        .and_then(|t| throttle_def(t, &root.field("throttle"), THROTTLE_FIELDS, &mut errors));

    let mut settings = Vec::new();
    for (key, s) in method_settings {
        let field = root.field("methodSettings").key(key);
        let selector = match MethodSelector::parse(key) {
            Ok(s) => s,
            Err(e) => {
                errors.push(&field, Reason::InvalidThrottle, e);
                continue;
            }
        };
        let st::MethodSetting {
            throttling_rate_limit,
            throttling_burst_limit,
            caching_enabled,
            cache_ttl_in_seconds,
            cache_data_encrypted,
            require_authorization_for_cache_control,
            unauthorized_cache_control_header_strategy,
        } = s;
        let throttle = if throttling_rate_limit.is_some() || throttling_burst_limit.is_some() {
            let t = api::ThrottleSettings {
                rate_limit: *throttling_rate_limit,
                burst_limit: *throttling_burst_limit,
            };
            throttle_def(&t, &field, METHOD_SETTING_FIELDS, &mut errors)
        } else {
            None
        };
        let ttl = match cache_ttl_in_seconds {
            None => None,
            Some(t) if (0..=3600).contains(t) => u32::try_from(*t).ok(),
            Some(t) => {
                errors.push(
                    &field.field("cacheTtlInSeconds"),
                    Reason::InvalidCacheSettings,
                    format!("{t} is out of range: 0 to 3600"),
                );
                None
            }
        };
        let strategy = unauthorized_cache_control_header_strategy.as_deref().and_then(|raw| {
            let parsed = UnauthorizedCacheControl::parse(raw);
            if parsed.is_none() {
                errors.push(
                    &field.field("unauthorizedCacheControlHeaderStrategy"),
                    Reason::InvalidCacheSettings,
                    format!(
                        "{raw:?}: one of FAIL_WITH_403, SUCCEED_WITH_RESPONSE_HEADER, SUCCEED_WITHOUT_RESPONSE_HEADER"
                    ),
                );
            }
            parsed
        });
        settings.push(MethodSettings {
            selector,
            throttle,
            caching_enabled: *caching_enabled,
            cache_ttl_seconds: ttl,
            cache_data_encrypted: *cache_data_encrypted,
            require_authorization_for_cache_control: *require_authorization_for_cache_control,
            unauthorized_cache_control: strategy,
        });
    }

    // Most specific first: a method's own entry before `*/*`, whatever their key order.
    settings.sort_by_key(|s| s.selector == MethodSelector::All);

    let cache_size = match cache_cluster_size.as_deref() {
        None => CacheSize::default(),
        Some(raw) => CacheSize::parse(raw).unwrap_or_else(|| {
            errors.push(
                &root.field("cacheClusterSize"),
                Reason::InvalidCacheSettings,
                format!("{raw:?}: one of 0.5, 1.6, 6.1, 13.5, 28.4, 58.2, 118, 237 (GB)"),
            );
            CacheSize::default()
        }),
    };

    let canary = canary_settings.as_ref().map(|c| {
        let st::CanarySettings {
            deployment_ref,
            percent_traffic,
            stage_variable_overrides,
            use_stage_cache,
        } = c;
        let field = root.field("canarySettings");
        if !(0.0..=100.0).contains(percent_traffic) {
            errors.push(
                &field.field("percentTraffic"),
                Reason::InvalidCanary,
                format!("{percent_traffic} is out of range: 0.0 to 100.0"),
            );
        }
        if let Some(d) = deployment_ref {
            check_ref(d, &field.field("deploymentRef"), &mut errors);
        }
        check_variables(
            stage_variable_overrides,
            &field.field("stageVariableOverrides"),
            &mut errors,
        );
        CanaryDef {
            deployment: deployment_ref.as_ref().map(|d| d.name.clone()),
            percent: percent_traffic.clamp(0.0, 100.0),
            variable_overrides: stage_variable_overrides.clone(),
            use_stage_cache: use_stage_cache.unwrap_or(false),
        }
    });

    let access_log = access_log_settings.as_ref().and_then(|st::AccessLogSettings { format }| {
        let format = format.as_deref()?;
        match format {
            "CLF" => Some(AccessLogFormat::Clf),
            "JSON" => Some(AccessLogFormat::Json),
            t if t.contains("$context.requestId") || t.contains("$context.extendedRequestId") => {
                Some(AccessLogFormat::Template(t.to_string()))
            }
            _ => {
                errors.push(
                    &root.field("accessLogSettings").field("format"),
                    Reason::InvalidStageVariable,
                    "a custom format must include $context.requestId or $context.extendedRequestId (or use CLF or JSON)",
                );
                None
            }
        }
    });

    errors.finish(StageDef {
        rest_api: rest_api_ref.name.clone(),
        name,
        source,
        variables: variables.clone(),
        throttle,
        method_settings: settings,
        cache_enabled: cache_cluster_enabled.unwrap_or(false),
        cache_size,
        // From the object's annotations, which the spec does not carry (see `ingest`).
        cache_flush: None,
        canary,
        access_log,
    })
}

/// Stage variables: at most 100; names `[A-Za-z0-9_]{1,64}`; values `[A-Za-z0-9-._~:/?#&=,]`
/// up to 512 characters (AWS).
fn check_variables(vars: &BTreeMap<String, String>, field: &FieldPath, errors: &mut Errors) {
    if vars.len() > MAX_STAGE_VARIABLES {
        errors.push(
            field,
            Reason::InvalidStageVariable,
            format!("{} variables; at most {MAX_STAGE_VARIABLES}", vars.len()),
        );
    }
    for (name, value) in vars {
        let vfield = field.key(name);
        if !is_stage_variable_name(name) {
            errors.push(
                &vfield,
                Reason::InvalidStageVariable,
                "names are letters, digits and '_', at most 64 characters",
            );
        }
        if value.len() > 512 {
            errors.push(
                &vfield,
                Reason::InvalidStageVariable,
                format!("the value has {} characters; at most 512", value.len()),
            );
        } else if let Some(c) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-._~:/?#&=,".contains(*c)))
        {
            errors.push(
                &vfield,
                Reason::InvalidStageVariable,
                format!("the value has the character {c:?}; allowed are letters, digits and -._~:/?#&=,"),
            );
        }
    }
}

/// The names of the rate and burst fields of a `throttle` (`ThrottleSettings`).
const THROTTLE_FIELDS: [&str; 2] = ["rateLimit", "burstLimit"];
/// The names of the rate and burst fields of a stage's `methodSettings` entry.
const METHOD_SETTING_FIELDS: [&str; 2] = ["throttlingRateLimit", "throttlingBurstLimit"];

/// Validates a throttle; `names` are the rate and burst field names as the user wrote them.
fn throttle_def(
    t: &api::ThrottleSettings,
    field: &FieldPath,
    [rate_field, burst_field]: [&str; 2],
    errors: &mut Errors,
) -> Option<Throttle> {
    let api::ThrottleSettings {
        rate_limit,
        burst_limit,
    } = t;
    let rate = rate_limit.unwrap_or(0.0);
    let burst = burst_limit.unwrap_or(0);
    let mut ok = true;
    if !rate.is_finite() || rate < 0.0 {
        errors.push(
            &field.field(rate_field),
            Reason::InvalidThrottle,
            format!("{rate} must be a number >= 0"),
        );
        ok = false;
    }
    if burst < 0 {
        errors.push(
            &field.field(burst_field),
            Reason::InvalidThrottle,
            format!("{burst} must be >= 0"),
        );
        ok = false;
    }
    if ok && rate > 0.0 && burst == 0 {
        errors.push(
            &field.field(burst_field),
            Reason::InvalidThrottle,
            format!("must be > 0 when {rate_field} is set, or no request is ever admitted"),
        );
        ok = false;
    }
    ok.then(|| Throttle {
        rate,
        burst: u64::try_from(burst).unwrap_or(0),
    })
}

// === UsagePlan and ApiKey ===

/// Validates a UsagePlan spec.
pub fn usage_plan(spec: &api::UsagePlanSpec) -> Result<UsagePlanDef, Vec<Invalid>> {
    let api::UsagePlanSpec {
        description: _,
        api_stages,
        throttle,
        quota,
        api_key_selector,
    } = spec;
    let root = FieldPath::spec();
    let mut errors = Errors::default();
    let mut stages: Vec<PlanStage> = Vec::new();
    for (
        i,
        up::ApiStage {
            rest_api_ref,
            stage,
            throttle,
        },
    ) in api_stages.iter().enumerate()
    {
        let field = root.field("apiStages").index(i);
        check_ref(rest_api_ref, &field.field("restApiRef"), &mut errors);
        if let Err(e) = StageName::parse(stage) {
            errors.push(
                &field.field("stage"),
                Reason::InvalidStageName,
                format!("{stage:?} {e}"),
            );
        }
        if stages
            .iter()
            .any(|s| s.rest_api == rest_api_ref.name && s.stage == *stage)
        {
            errors.push(
                &field,
                Reason::InvalidReference,
                format!("{}/{stage} is listed twice", rest_api_ref.name),
            );
        }
        let mut method_throttles = Vec::new();
        for (key, t) in throttle {
            let tfield = field.field("throttle").key(key);
            match MethodSelector::parse(key) {
                Ok(sel) => {
                    if let Some(t) = throttle_def(t, &tfield, THROTTLE_FIELDS, &mut errors) {
                        method_throttles.push((sel, t));
                    }
                }
                Err(e) => errors.push(&tfield, Reason::InvalidThrottle, e),
            }
        }
        stages.push(PlanStage {
            rest_api: rest_api_ref.name.clone(),
            stage: stage.clone(),
            method_throttles,
        });
    }
    let throttle = throttle
        .as_ref()
        .and_then(|t| throttle_def(t, &root.field("throttle"), THROTTLE_FIELDS, &mut errors));
    let quota = quota.as_ref().and_then(
        |up::QuotaSettings {
             limit,
             period,
             offset,
         }| {
            let field = root.field("quota");
            if *limit < 0 {
                errors.push(
                    &field.field("limit"),
                    Reason::InvalidQuota,
                    format!("{limit} must be >= 0"),
                );
                return None;
            }
            if *offset < 0 || (*offset > 0 && offset >= limit) {
                errors.push(
                    &field.field("offset"),
                    Reason::InvalidQuota,
                    format!("{offset} must be >= 0 and less than limit ({limit})"),
                );
                return None;
            }
            let period = match period {
                up::QuotaPeriod::Day => QuotaPeriod::Day,
                up::QuotaPeriod::Week => QuotaPeriod::Week,
                up::QuotaPeriod::Month => QuotaPeriod::Month,
            };
            Some(Quota {
                limit: u64::try_from(*limit).ok()?,
                period,
                offset: u64::try_from(*offset).ok()?,
            })
        },
    );
    let key_selector = api_key_selector
        .as_ref()
        .map(|s| key_selector(s, &root.field("apiKeySelector"), &mut errors));
    errors.finish(UsagePlanDef {
        stages,
        throttle,
        quota,
        key_selector,
    })
}

/// A UsagePlan's `apiKeySelector`, with Kubernetes' rules for operators, values and label
/// syntax.
fn key_selector(s: &up::ApiKeySelector, field: &FieldPath, errors: &mut Errors) -> KeySelector {
    let mut requirements = Vec::new();
    for (k, v) in &s.match_labels {
        let f = field.field("matchLabels").key(k);
        check_label(k, v, &f, errors);
        requirements.push(Requirement {
            key: k.clone(),
            op: SelectorOp::In(vec![v.clone()]),
        });
    }
    for (i, r) in s.match_expressions.iter().enumerate() {
        let f = field.field("matchExpressions").index(i);
        if let Err(e) = label_key(&r.key) {
            errors.push(
                &f.field("key"),
                Reason::InvalidKeySelector,
                format!("{:?} {e}", r.key),
            );
        }
        for (j, v) in r.values.iter().enumerate() {
            if let Err(e) = label_value(v) {
                errors.push(
                    &f.field("values").index(j),
                    Reason::InvalidKeySelector,
                    format!("{v:?} {e}"),
                );
            }
        }
        let set = matches!(r.operator, up::SelectorOperator::In | up::SelectorOperator::NotIn);
        if set == r.values.is_empty() {
            let want = if set { "at least one value" } else { "no values" };
            errors.push(
                &f.field("values"),
                Reason::InvalidKeySelector,
                format!("operator {:?} takes {want}", r.operator),
            );
        }
        let op = match r.operator {
            up::SelectorOperator::In => SelectorOp::In(r.values.clone()),
            up::SelectorOperator::NotIn => SelectorOp::NotIn(r.values.clone()),
            up::SelectorOperator::Exists => SelectorOp::Exists,
            up::SelectorOperator::DoesNotExist => SelectorOp::DoesNotExist,
        };
        requirements.push(Requirement {
            key: r.key.clone(),
            op,
        });
    }
    KeySelector { requirements }
}

fn check_label(key: &str, value: &str, field: &FieldPath, errors: &mut Errors) {
    if let Err(e) = label_key(key) {
        errors.push(field, Reason::InvalidKeySelector, format!("key {key:?} {e}"));
    }
    if let Err(e) = label_value(value) {
        errors.push(field, Reason::InvalidKeySelector, format!("value {value:?} {e}"));
    }
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name (Kubernetes' syntax).
fn label_key(key: &str) -> Result<(), &'static str> {
    let name = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            let ok = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            if !ok {
                return Err("has a prefix that is not a DNS subdomain");
            }
            name
        }
        None => key,
    };
    if name.is_empty() {
        return Err("has an empty name");
    }
    label_value(name)
}

/// A label value: at most 63 alphanumerics, `-`, `_` or `.`, starting and ending with an
/// alphanumeric (or empty).
fn label_value(v: &str) -> Result<(), &'static str> {
    let edge = |b: Option<&u8>| b.is_none_or(u8::is_ascii_alphanumeric);
    if v.len() > 63
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        || !edge(v.as_bytes().first())
        || !edge(v.as_bytes().last())
    {
        return Err("is not a label: at most 63 alphanumerics, '-', '_' or '.', alphanumeric at each end");
    }
    Ok(())
}

/// The name of the Secret an ApiKey without `valueFrom` gets its generated value in.
pub fn generated_key_secret(api_key_name: &str) -> String {
    format!("{api_key_name}-apikey")
}

/// Validates an ApiKey spec. `name` is the object's name; the labels (which `apiKeySelector`s
/// match) are the caller's to fill in from the object's metadata.
pub fn api_key(name: &str, spec: &api::ApiKeySpec) -> Result<ApiKeyDef, Vec<Invalid>> {
    let api::ApiKeySpec {
        enabled,
        customer_id,
        description: _,
        value_from,
        usage_plan_refs,
    } = spec;
    let root = FieldPath::spec();
    let mut errors = Errors::default();
    let value = match value_from {
        Some(api::v1alpha1::api_key::ApiKeyValueSource { secret_key_ref }) => {
            let field = root.field("valueFrom").field("secretKeyRef");
            if secret_key_ref.name.is_empty() {
                errors.push(&field.field("name"), Reason::InvalidApiKey, "must not be empty");
            }
            if secret_key_ref.key.is_empty() {
                errors.push(&field.field("key"), Reason::InvalidApiKey, "must not be empty");
            }
            KeyValueSource::Secret {
                name: Arc::from(secret_key_ref.name.as_str()),
                key: Box::from(secret_key_ref.key.as_str()),
            }
        }
        None => KeyValueSource::Generated {
            secret: Arc::from(generated_key_secret(name)),
        },
    };
    let field = root.field("usagePlanRefs");
    if usage_plan_refs.len() > MAX_PLANS_PER_KEY {
        errors.push(
            &field,
            Reason::InvalidApiKey,
            format!(
                "{} usage plans; a key may be in at most {MAX_PLANS_PER_KEY}",
                usage_plan_refs.len()
            ),
        );
    }
    // Sized exactly: 10,000 keys of one plan each would otherwise hold room for four.
    let mut plans: Vec<String> = Vec::with_capacity(usage_plan_refs.len());
    for (i, r) in usage_plan_refs.iter().enumerate() {
        check_ref(r, &field.index(i), &mut errors);
        if plans.contains(&r.name) {
            errors.push(
                &field.index(i),
                Reason::InvalidReference,
                format!("usage plan {:?} is listed twice", r.name),
            );
        }
        plans.push(r.name.clone());
    }
    errors.finish(ApiKeyDef {
        enabled: *enabled,
        customer_id: customer_id.as_deref().map(Arc::from),
        value,
        usage_plans: plans.into_iter().map(String::into_boxed_str).collect(),
        labels: Labels::default(),
    })
}

mod auth;

#[cfg(test)]
mod tests;
