//! Authorizers: who may call a method, decided before the API key and the integration.
//!
//! Four kinds, as AWS has them: TOKEN and REQUEST call a function (a Lambda authorizer) that
//! answers with an IAM policy; COGNITO_USER_POOLS and JWT verify a JSON Web Token against an
//! OIDC issuer's keys. A method names one in `authorizerId`; the proxy runs it.

use std::{sync::Arc, time::Duration};

use super::ServiceRef;

/// The default `authorizerResultTtlInSeconds`, as in AWS.
pub const DEFAULT_AUTHORIZER_TTL: Duration = Duration::from_secs(300);
/// The longest `authorizerResultTtlInSeconds`, as in AWS.
pub const MAX_AUTHORIZER_TTL_SECS: i64 = 3600;
/// How long a function authorizer may take before its answer counts as a failure (AWS: 10 s).
pub const AUTHORIZER_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many authorizers per API, as in AWS.
pub const MAX_AUTHORIZERS: usize = 10;

/// What kind of authorizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthorizerKind {
    /// A function gets the bearer token (one header).
    Token,
    /// A function gets the request's headers, query, path parameters and stage variables.
    Request,
    /// A Cognito-style user pool: a JWT from the issuer; `aud` or `client_id` checked.
    CognitoUserPools,
    /// A JWT from any OIDC issuer.
    Jwt,
}

impl AuthorizerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorizerKind::Token => "TOKEN",
            AuthorizerKind::Request => "REQUEST",
            AuthorizerKind::CognitoUserPools => "COGNITO_USER_POOLS",
            AuthorizerKind::Jwt => "JWT",
        }
    }

    /// Whether the authorizer verifies a token itself (no function).
    pub fn is_jwt(self) -> bool {
        matches!(self, AuthorizerKind::CognitoUserPools | AuthorizerKind::Jwt)
    }
}

/// Where an identity value comes from (`identitySource`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IdentitySource {
    /// `method.request.header.NAME` (lower-cased).
    Header(String),
    /// `method.request.querystring.NAME`.
    Query(String),
    /// `stageVariables.NAME`.
    StageVariable(String),
    /// `context.NAME` (`$context` variables the gateway knows before the authorizer:
    /// `httpMethod`, `resourcePath`, `stage`, `apiId`, `requestId`, `identity.sourceIp`, …).
    Context(String),
}

impl IdentitySource {
    /// Parses one source as AWS writes it; the error is a message without the field path.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let (source, name) = if let Some(n) = raw.strip_prefix("method.request.header.") {
            (IdentitySource::Header(n.to_ascii_lowercase()), n)
        } else if let Some(n) = raw.strip_prefix("method.request.querystring.") {
            (IdentitySource::Query(n.to_string()), n)
        } else if let Some(n) = raw.strip_prefix("stageVariables.") {
            (IdentitySource::StageVariable(n.to_string()), n)
        } else if let Some(n) = raw.strip_prefix("context.") {
            (IdentitySource::Context(n.to_string()), n)
        } else {
            return Err(format!(
                "{raw:?}: an identity source is method.request.header.NAME, method.request.querystring.NAME, stageVariables.NAME or context.NAME"
            ));
        };
        let valid = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if valid {
            Ok(source)
        } else {
            Err(format!(
                "{raw:?}: the name must be 1 to 128 letters, digits, '-', '_' or '.'"
            ))
        }
    }
}

/// The function a TOKEN or REQUEST authorizer (or an AWS_PROXY integration) invokes: a host
/// that speaks the Lambda Invoke API, and the function name (or ARN) it is invoked by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FunctionTarget {
    pub host: FunctionHost,
    /// The `FunctionName` of `POST /2015-03-31/functions/{FunctionName}/invocations`.
    pub name: String,
}

/// Where the function host is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FunctionHost {
    /// An absolute http(s) base URL (no path beyond `/`).
    Url(String),
    /// An in-cluster Service port.
    Service(ServiceRef),
}

impl FunctionTarget {
    /// The Invoke API path of this function.
    pub fn invocation_path(&self) -> String {
        let mut out = String::from("/2015-03-31/functions/");
        for b in self.name.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.:".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out.push_str("/invocations");
        out
    }
}

/// The function name of an AWS integration or authorizer URI:
/// `arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{functionArn}/invocations`
/// gives `{functionArn}`; a function ARN (`arn:aws:lambda:…:function:NAME`) or a plain name
/// is taken as written. The error is a message without the field path.
pub fn function_name(uri: &str) -> Result<String, String> {
    let name = if let Some(rest) = uri.strip_prefix("arn:") {
        let mut parts = rest.splitn(5, ':');
        let (partition, service, _region, _account) =
            (parts.next(), parts.next(), parts.next(), parts.next());
        match (partition, service, parts.next()) {
            (Some(_), Some("apigateway"), Some(resource)) => resource
                .strip_prefix("path/2015-03-31/functions/")
                .and_then(|r| r.strip_suffix("/invocations"))
                .ok_or_else(|| {
                    format!(
                        "{uri:?}: an API Gateway ARN must be arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/FUNCTION/invocations"
                    )
                })?,
            (Some(_), Some("lambda"), Some(_)) => uri,
            _ => return Err(format!("{uri:?}: not an apigateway or lambda ARN")),
        }
    } else {
        uri
    };
    let valid = !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:$".contains(&b));
    if valid {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{uri:?}: the function name must be 1 to 256 letters, digits, '-', '_', '.', ':' or '$'"
        ))
    }
}

/// Where a JWT authorizer gets its signing keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// A JWKS document at this URL.
    JwksUri(String),
    /// The `jwks_uri` of `{issuer}/.well-known/openid-configuration`.
    Discovery,
}

/// The issuer and audiences of a JWT or COGNITO_USER_POOLS authorizer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JwtSettings {
    /// The exact `iss` a token must carry.
    pub issuer: String,
    /// A token's `aud` (or, for access tokens, `client_id`) must be one of these; empty for a
    /// user pool authorizer that accepts any client of the pool.
    pub audiences: Box<[String]>,
    pub keys: KeySource,
}

impl JwtSettings {
    /// The URL the keys (or the discovery document) are fetched from.
    pub fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }
}

/// A validated authorizer.
#[derive(Clone, Debug)]
pub struct AuthorizerDef {
    /// The key in `spec.authorizers` (the `authorizerId` methods use).
    pub id: String,
    pub kind: AuthorizerKind,
    /// Where the identity comes from; all must be present (else 401 without calling anything).
    pub identity_sources: Box<[IdentitySource]>,
    /// For TOKEN: the token must match (whole) or the answer is 401 without calling the
    /// function.
    pub identity_validation: Option<regex::Regex>,
    /// How long a function's answer is reused for the same identity; zero: not cached.
    pub result_ttl: Duration,
    /// For TOKEN and REQUEST.
    pub function: Option<FunctionTarget>,
    /// For JWT and COGNITO_USER_POOLS.
    pub jwt: Option<JwtSettings>,
}

impl PartialEq for AuthorizerDef {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.kind == other.kind
            && self.identity_sources == other.identity_sources
            && self.identity_validation.as_ref().map(regex::Regex::as_str)
                == other.identity_validation.as_ref().map(regex::Regex::as_str)
            && self.result_ttl == other.result_ttl
            && self.function == other.function
            && self.jwt == other.jwt
    }
}

/// How a method is authorized.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum MethodAuth {
    /// `authorizationType: NONE`.
    #[default]
    None,
    /// A CUSTOM, COGNITO_USER_POOLS or JWT authorizer, with the method's
    /// `authorizationScopes` (JWT kinds: the token's `scope` must hold one of them).
    Authorizer {
        authorizer: Arc<AuthorizerDef>,
        scopes: Box<[String]>,
    },
    /// The method names an authorizer the API does not have. The method answers 500
    /// (AUTHORIZER_CONFIGURATION_ERROR) and the RestApi says why; other methods serve.
    Missing(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_sources_parse_as_aws_writes_them() {
        assert_eq!(
            IdentitySource::parse("method.request.header.Authorization"),
            Ok(IdentitySource::Header("authorization".into()))
        );
        assert_eq!(
            IdentitySource::parse(" method.request.querystring.token"),
            Ok(IdentitySource::Query("token".into()))
        );
        assert_eq!(
            IdentitySource::parse("stageVariables.tenant"),
            Ok(IdentitySource::StageVariable("tenant".into()))
        );
        assert_eq!(
            IdentitySource::parse("context.identity.sourceIp"),
            Ok(IdentitySource::Context("identity.sourceIp".into()))
        );
        assert!(IdentitySource::parse("method.request.body.x").is_err());
        assert!(IdentitySource::parse("method.request.header.").is_err());
        assert!(IdentitySource::parse("method.request.header.a b").is_err());
    }

    #[test]
    fn function_names_come_from_aws_uris() {
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:auth";
        assert_eq!(
            function_name(&format!(
                "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{arn}/invocations"
            )),
            Ok(arn.to_string())
        );
        assert_eq!(function_name(arn), Ok(arn.to_string()));
        assert_eq!(function_name("auth"), Ok("auth".to_string()));
        assert!(function_name("arn:aws:apigateway:us-east-1:lambda:path/other").is_err());
        assert!(function_name("arn:aws:s3:::bucket").is_err());
        assert!(function_name("").is_err());
        assert!(function_name("a/b").is_err());
        let target = FunctionTarget {
            host: FunctionHost::Url("http://127.0.0.1:9000".into()),
            name: arn.into(),
        };
        assert_eq!(
            target.invocation_path(),
            format!("/2015-03-31/functions/{arn}/invocations")
        );
    }
}
