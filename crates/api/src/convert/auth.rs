//! `spec.authorizers`, the methods' authorization settings, and the function hosts of
//! authorizers and AWS_PROXY integrations.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use super::{is_dns_label, ra};
use turnpike_core::model::{
    AuthorizerDef, AuthorizerKind, DEFAULT_AUTHORIZER_TTL, Errors, FieldPath, FunctionHost, FunctionTarget,
    IdentitySource, JwtSettings, KeySource, MAX_AUTHORIZER_TTL_SECS, MAX_AUTHORIZERS, MethodAuth, Reason,
    ServiceRef, function_name,
};

/// The default identity source of TOKEN and JWT authorizers.
const DEFAULT_IDENTITY_SOURCE: &str = "method.request.header.Authorization";

/// Converts `spec.authorizers`; an invalid authorizer is reported and left out.
pub(super) fn authorizers(
    specs: &BTreeMap<String, ra::AuthorizerSpec>,
    namespace: &str,
    field: &FieldPath,
    errors: &mut Errors,
) -> BTreeMap<String, Arc<AuthorizerDef>> {
    if specs.len() > MAX_AUTHORIZERS {
        errors.push(
            field,
            Reason::InvalidAuthorizer,
            format!("{} authorizers; at most {MAX_AUTHORIZERS} per API", specs.len()),
        );
    }
    let mut out = BTreeMap::new();
    for (id, spec) in specs {
        let afield = field.key(id);
        let before = errors.len();
        if !is_authorizer_id(id) {
            errors.push(
                &afield,
                Reason::InvalidAuthorizer,
                "an authorizer id is 1 to 128 letters, digits, '-' or '_'",
            );
        }
        let def = authorizer(id, spec, namespace, &afield, errors);
        if errors.len() == before {
            out.insert(id.clone(), Arc::new(def));
        }
    }
    out
}

fn is_authorizer_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
}

fn authorizer(
    id: &str,
    spec: &ra::AuthorizerSpec,
    namespace: &str,
    field: &FieldPath,
    errors: &mut Errors,
) -> AuthorizerDef {
    let ra::AuthorizerSpec {
        type_,
        identity_source,
        identity_validation_expression,
        authorizer_result_ttl_in_seconds,
        authorizer_uri,
        function_host,
        jwt_configuration,
    } = spec;
    let kind = match type_ {
        ra::AuthorizerType::Token => AuthorizerKind::Token,
        ra::AuthorizerType::Request => AuthorizerKind::Request,
        ra::AuthorizerType::CognitoUserPools => AuthorizerKind::CognitoUserPools,
        ra::AuthorizerType::Jwt => AuthorizerKind::Jwt,
    };
    let ttl_secs = authorizer_result_ttl_in_seconds.unwrap_or(DEFAULT_AUTHORIZER_TTL.as_secs() as i64);
    let result_ttl = if (0..=MAX_AUTHORIZER_TTL_SECS).contains(&ttl_secs) {
        Duration::from_secs(ttl_secs.unsigned_abs())
    } else {
        errors.push(
            &field.field("authorizerResultTtlInSeconds"),
            Reason::InvalidAuthorizer,
            format!("{ttl_secs} is out of range: 0 to {MAX_AUTHORIZER_TTL_SECS} seconds"),
        );
        DEFAULT_AUTHORIZER_TTL
    };

    // Identity sources.
    let sfield = field.field("identitySource");
    let raw_sources = match (kind, identity_source.as_deref()) {
        (AuthorizerKind::Request, None) => "",
        (_, None) => DEFAULT_IDENTITY_SOURCE,
        (_, Some(s)) => s,
    };
    let mut identity_sources = Vec::new();
    for raw in raw_sources.split(',').filter(|s| !s.trim().is_empty()) {
        match IdentitySource::parse(raw) {
            Ok(s) if identity_sources.contains(&s) => {
                errors.push(
                    &sfield,
                    Reason::InvalidAuthorizer,
                    format!("{raw:?} is named twice"),
                );
            }
            Ok(s) => identity_sources.push(s),
            Err(e) => errors.push(&sfield, Reason::InvalidAuthorizer, e),
        }
    }
    match kind {
        AuthorizerKind::Request => {
            if identity_sources.is_empty() && !result_ttl.is_zero() {
                errors.push(
                    &sfield,
                    Reason::InvalidAuthorizer,
                    "required when results are cached (authorizerResultTtlInSeconds above 0): the cache is keyed by these values",
                );
            }
        }
        _ => {
            if !matches!(identity_sources.as_slice(), [IdentitySource::Header(_)]) {
                errors.push(
                    &sfield,
                    Reason::InvalidAuthorizer,
                    format!(
                        "a {} authorizer reads one header: method.request.header.NAME",
                        kind.as_str()
                    ),
                );
            }
        }
    }

    let vfield = field.field("identityValidationExpression");
    let identity_validation = match identity_validation_expression.as_deref() {
        None => None,
        Some(_) if kind != AuthorizerKind::Token => {
            errors.push(
                &vfield,
                Reason::InvalidAuthorizer,
                "only TOKEN authorizers have one",
            );
            None
        }
        Some(re) => match regex::RegexBuilder::new(&format!("^(?:{re})$"))
            .size_limit(1 << 20)
            .build()
        {
            Ok(re) => Some(re),
            Err(e) => {
                errors.push(
                    &vfield,
                    Reason::InvalidAuthorizer,
                    format!("not a regular expression: {e}"),
                );
                None
            }
        },
    };

    let (function, jwt) = if kind.is_jwt() {
        for (set, name) in [
            (authorizer_uri.is_some(), "authorizerUri"),
            (function_host.is_some(), "functionHost"),
        ] {
            if set {
                errors.push(
                    &field.field(name),
                    Reason::InvalidAuthorizer,
                    format!("a {} authorizer calls no function", kind.as_str()),
                );
            }
        }
        let jfield = field.field("jwtConfiguration");
        let jwt = match jwt_configuration {
            None => {
                errors.push(
                    &jfield,
                    Reason::InvalidAuthorizer,
                    format!("required for {} authorizers", kind.as_str()),
                );
                None
            }
            Some(j) => jwt_settings(kind, j, &jfield, errors),
        };
        (None, jwt)
    } else {
        if jwt_configuration.is_some() {
            errors.push(
                &field.field("jwtConfiguration"),
                Reason::InvalidAuthorizer,
                "only COGNITO_USER_POOLS and JWT authorizers verify tokens themselves",
            );
        }
        let function = function_target(
            authorizer_uri.as_deref(),
            "authorizerUri",
            function_host.as_ref(),
            namespace,
            field,
            Reason::InvalidAuthorizer,
            "required for TOKEN and REQUEST authorizers",
            errors,
        );
        (function, None)
    };

    AuthorizerDef {
        id: id.to_string(),
        kind,
        identity_sources: identity_sources.into(),
        identity_validation,
        result_ttl,
        function,
        jwt,
    }
}

fn jwt_settings(
    kind: AuthorizerKind,
    spec: &ra::JwtConfigurationSpec,
    field: &FieldPath,
    errors: &mut Errors,
) -> Option<JwtSettings> {
    let ra::JwtConfigurationSpec {
        issuer,
        audience,
        jwks_uri,
    } = spec;
    let mut ok = true;
    if !is_http_url(issuer) {
        errors.push(
            &field.field("issuer"),
            Reason::InvalidAuthorizer,
            format!("{issuer:?} is not an absolute http:// or https:// URL"),
        );
        ok = false;
    }
    if kind == AuthorizerKind::Jwt && audience.is_empty() {
        errors.push(
            &field.field("audience"),
            Reason::InvalidAuthorizer,
            "a JWT authorizer needs at least one audience",
        );
        ok = false;
    }
    for (i, a) in audience.iter().enumerate() {
        if a.is_empty() || a.len() > 512 {
            errors.push(
                &field.field("audience").index(i),
                Reason::InvalidAuthorizer,
                "an audience is 1 to 512 characters",
            );
            ok = false;
        }
    }
    let keys = match jwks_uri.as_deref() {
        None => KeySource::Discovery,
        Some(u) if is_http_url(u) => KeySource::JwksUri(u.to_string()),
        Some(u) => {
            errors.push(
                &field.field("jwksUri"),
                Reason::InvalidAuthorizer,
                format!("{u:?} is not an absolute http:// or https:// URL"),
            );
            ok = false;
            KeySource::Discovery
        }
    };
    ok.then(|| JwtSettings {
        issuer: issuer.clone(),
        audiences: audience.clone().into(),
        keys,
    })
}

fn is_http_url(s: &str) -> bool {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or_default();
        !host.is_empty() && !r.contains(char::is_whitespace) && !r.contains('#')
    })
}

/// The function of an authorizer or an AWS_PROXY integration: its name from `uri` (at
/// `field.uri_name`) and its host; both required, `missing` says for what.
#[allow(clippy::too_many_arguments)]
pub(super) fn function_target(
    uri: Option<&str>,
    uri_name: &str,
    host: Option<&ra::FunctionHostSpec>,
    namespace: &str,
    field: &FieldPath,
    reason: Reason,
    missing: &str,
    errors: &mut Errors,
) -> Option<FunctionTarget> {
    let ufield = field.field(uri_name);
    let name = match uri.filter(|u| !u.is_empty()) {
        None => {
            errors.push(&ufield, reason, missing);
            None
        }
        Some(uri) => function_name(uri)
            .map_err(|e| errors.push(&ufield, reason, e))
            .ok(),
    };
    let hfield = field.field("functionHost");
    let host = match host {
        None => {
            errors.push(&hfield, reason, missing);
            None
        }
        Some(h) => function_host_def(h, namespace, &hfield, reason, errors),
    };
    Some(FunctionTarget {
        host: host?,
        name: name?,
    })
}

/// A function host: exactly one of a base URL and a Service.
pub(super) fn function_host_def(
    spec: &ra::FunctionHostSpec,
    namespace: &str,
    field: &FieldPath,
    reason: Reason,
    errors: &mut Errors,
) -> Option<FunctionHost> {
    let ra::FunctionHostSpec { url, service_ref } = spec;
    match (url, service_ref) {
        (Some(url), None) => {
            let base = url.trim_end_matches('/');
            let path_free = base
                .split_once("://")
                .is_some_and(|(_, rest)| !rest.contains(['/', '?']));
            if is_http_url(url) && path_free {
                Some(FunctionHost::Url(base.to_string()))
            } else {
                errors.push(
                    &field.field("url"),
                    reason,
                    format!("{url:?} is not an http:// or https:// base URL (scheme, host and port only)"),
                );
                None
            }
        }
        (
            None,
            Some(ra::ServiceRef {
                name,
                namespace: ns,
                port,
            }),
        ) => {
            let sfield = field.field("serviceRef");
            let mut ok = true;
            if !is_dns_label(name) {
                errors.push(
                    &sfield.field("name"),
                    reason,
                    format!("{name:?} is not a valid Service name"),
                );
                ok = false;
            }
            if let Some(ns) = ns.as_deref().filter(|ns| !is_dns_label(ns)) {
                errors.push(
                    &sfield.field("namespace"),
                    reason,
                    format!("{ns:?} is not a valid namespace"),
                );
                ok = false;
            }
            let port = u16::try_from(*port).ok().filter(|p| *p > 0);
            if port.is_none() {
                errors.push(&sfield.field("port"), reason, "not a port (1-65535)");
            }
            match (ok, port) {
                (true, Some(port)) => Some(FunctionHost::Service(ServiceRef {
                    namespace: ns.clone().unwrap_or_else(|| namespace.to_string()),
                    name: name.clone(),
                    port,
                })),
                _ => None,
            }
        }
        _ => {
            errors.push(field, reason, "exactly one of url and serviceRef");
            None
        }
    }
}

/// A method's authorization: `authorizationType`, `authorizerId`, `authorizationScopes`.
/// An `authorizerId` the API does not declare is not an error here: the method is kept (it
/// answers 500) and compile reports `AuthorizerNotFound`, so the other methods serve.
pub(super) fn method_auth(
    authorization_type: Option<ra::AuthorizationType>,
    authorizer_id: Option<&str>,
    scopes: &[String],
    authorizers: &BTreeMap<String, Arc<AuthorizerDef>>,
    field: &FieldPath,
    errors: &mut Errors,
) -> MethodAuth {
    let ty = authorization_type.unwrap_or_default();
    let idfield = field.field("authorizerId");
    let wants: &[AuthorizerKind] = match ty {
        ra::AuthorizationType::None => {
            if authorizer_id.is_some() {
                errors.push(
                    &idfield,
                    Reason::InvalidAuthorizer,
                    "set authorizationType to use an authorizer",
                );
            }
            if !scopes.is_empty() {
                errors.push(
                    &field.field("authorizationScopes"),
                    Reason::InvalidAuthorizer,
                    "scopes need a COGNITO_USER_POOLS or JWT authorizer",
                );
            }
            return MethodAuth::None;
        }
        ra::AuthorizationType::Custom => &[AuthorizerKind::Token, AuthorizerKind::Request],
        ra::AuthorizationType::CognitoUserPools => &[AuthorizerKind::CognitoUserPools],
        ra::AuthorizationType::Jwt => &[AuthorizerKind::Jwt],
    };
    let Some(id) = authorizer_id else {
        errors.push(
            &idfield,
            Reason::InvalidAuthorizer,
            "required with this authorizationType",
        );
        return MethodAuth::None;
    };
    let Some(def) = authorizers.get(id) else {
        // Not declared (or invalid itself, which is reported at the authorizer).
        return MethodAuth::Missing(id.to_string());
    };
    if !wants.contains(&def.kind) {
        errors.push(
            &idfield,
            Reason::InvalidAuthorizer,
            format!(
                "authorizer {id:?} is {}, which this authorizationType does not use",
                def.kind.as_str()
            ),
        );
    }
    let sfield = field.field("authorizationScopes");
    if !scopes.is_empty() && !def.kind.is_jwt() {
        errors.push(
            &sfield,
            Reason::InvalidAuthorizer,
            "scopes need a COGNITO_USER_POOLS or JWT authorizer",
        );
    }
    for (i, s) in scopes.iter().enumerate() {
        if s.is_empty() || s.len() > 256 || s.contains(char::is_whitespace) {
            errors.push(
                &sfield.index(i),
                Reason::InvalidAuthorizer,
                "a scope is 1 to 256 characters without spaces",
            );
        }
    }
    MethodAuth::Authorizer {
        authorizer: Arc::clone(def),
        scopes: scopes.to_vec().into(),
    }
}
