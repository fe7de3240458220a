//! The validated definition of a RestApi: resources, methods and integrations.

use std::{collections::BTreeMap, fmt, net::IpAddr, sync::Arc, time::Duration};

use ipnet::IpNet;

/// Where an API is served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EndpointType {
    /// Public listener, with edge behaviours. The AWS default.
    #[default]
    Edge,
    /// Public listener.
    Regional,
    /// Private listener only, behind the resource policy.
    Private,
}

/// Where API keys come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ApiKeySource {
    #[default]
    Header,
    Authorizer,
}

/// The validated definition of a RestApi. Immutable once built; a Deployment snapshot holds one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RestApiDef {
    pub endpoint_type: EndpointType,
    pub api_key_source: ApiKeySource,
    pub policy: ResourcePolicy,
    /// Resources sorted by path.
    pub resources: Vec<Resource>,
    /// Media types whose payloads are binary (for `contentHandling`).
    pub binary_media_types: super::BinaryMediaTypes,
    /// Responses of at least this many bytes are compressed when the client accepts it;
    /// `None`: never.
    pub minimum_compression_size: Option<u64>,
    /// Customized gateway responses (`spec.gatewayResponses`).
    pub gateway_responses: crate::model::GatewayResponses,
    /// Declarative CORS (`spec.cors`).
    pub cors: Option<crate::model::Cors>,
    /// The authorizers (`spec.authorizers`), by id; methods hold their own `Arc`.
    pub authorizers: std::collections::BTreeMap<String, Arc<super::AuthorizerDef>>,
    /// `protocolType: WEBSOCKET`: the selection expression and the routes (then `resources`
    /// is empty).
    pub websocket: Option<super::WebSocketDef>,
}

impl RestApiDef {
    /// The number of (resource, method) pairs.
    pub fn route_count(&self) -> usize {
        self.resources.iter().map(|r| r.methods.len()).sum::<usize>()
            + self.websocket.as_ref().map_or(0, |w| w.routes.len())
    }

    /// Every method and WebSocket route: its field path (`spec.resources["/pets"].GET`,
    /// `spec.routes["$connect"]`), what it serves (`requests to GET /pets`), and its
    /// definition.
    pub fn methods(&self) -> impl Iterator<Item = (String, String, &MethodDef)> {
        let methods = self.resources.iter().flat_map(|r| {
            r.methods.iter().map(move |(key, m)| {
                (
                    format!("spec.resources[{:?}].{key}", r.path.as_str()),
                    format!("requests to {key} {}", r.path.as_str()),
                    &**m,
                )
            })
        });
        let routes = self.websocket.iter().flat_map(|w| {
            w.routes.iter().map(|(key, r)| {
                (
                    format!("spec.routes[{key:?}]"),
                    format!("the route {key}"),
                    &*r.method,
                )
            })
        });
        methods.chain(routes)
    }
}

/// A resource: a path template and its methods.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub path: PathTemplate,
    /// Methods; an explicit method sorts before ANY.
    pub methods: BTreeMap<MethodKey, Arc<MethodDef>>,
}

// === PathTemplate ===

/// A validated path template: `/`, `/pets`, `/pets/{id}`, `/files/{proxy+}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathTemplate {
    // Boxed slices, not Vecs: templates live as long as the routing table, once per route.
    raw: Box<str>,
    segments: Box<[Segment]>,
}

/// One segment of a path template.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Segment {
    Literal(Box<str>),
    Param(Box<str>),
    /// `{name+}`: one or more segments; only last.
    Greedy(Box<str>),
}

impl PathTemplate {
    /// Parses and validates a template. The error is a message without the field path.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if !raw.starts_with('/') {
            return Err("must start with '/'".into());
        }
        if raw.len() > 1 && raw.ends_with('/') {
            return Err("must not end with '/'".into());
        }
        let mut segments = Vec::new();
        let parts: Vec<&str> = if raw == "/" {
            Vec::new()
        } else {
            raw[1..].split('/').collect()
        };
        for (i, part) in parts.iter().enumerate() {
            if part.is_empty() {
                return Err("must not contain an empty segment ('//')".into());
            }
            let segment = if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                let (name, greedy) = match inner.strip_suffix('+') {
                    Some(name) => (name, true),
                    None => (inner, false),
                };
                if !is_param_name(name) {
                    return Err(format!(
                        "{part:?}: a parameter name is letters, digits and '_', not starting with a digit"
                    ));
                }
                if greedy {
                    if i + 1 != parts.len() {
                        return Err(format!("greedy parameter {part:?} must be the last segment"));
                    }
                    Segment::Greedy(name.into())
                } else {
                    Segment::Param(name.into())
                }
            } else {
                if let Some(bad) = part.chars().find(|c| !is_literal_char(*c)) {
                    return Err(format!(
                        "segment {part:?} has the character {bad:?}; literal segments are letters, digits and -._~:@!$&'()*,;= (braces only around a whole-segment parameter)"
                    ));
                }
                Segment::Literal((*part).into())
            };
            if let Segment::Param(name) | Segment::Greedy(name) = &segment
                && segments
                    .iter()
                    .any(|s| matches!(s, Segment::Param(n) | Segment::Greedy(n) if n == name))
            {
                return Err(format!("parameter {{{name}}} appears twice"));
            }
            segments.push(segment);
        }
        Ok(PathTemplate {
            raw: raw.into(),
            segments: segments.into_boxed_slice(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The names of the parameters, in order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) | Segment::Greedy(n) => Some(&**n),
            Segment::Literal(_) => None,
        })
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn is_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

fn is_literal_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:@!$&'()*,;=".contains(c)
}

// === MethodKey ===

/// An HTTP method of a resource, or ANY. Ordered so explicit methods come before ANY.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MethodKey {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
    Any,
}

impl MethodKey {
    /// Every explicit method.
    pub const EXPLICIT: [MethodKey; 7] = [
        MethodKey::Get,
        MethodKey::Post,
        MethodKey::Put,
        MethodKey::Patch,
        MethodKey::Delete,
        MethodKey::Head,
        MethodKey::Options,
    ];

    /// Parses an upper-case method name as AWS spells it.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "GET" => MethodKey::Get,
            "POST" => MethodKey::Post,
            "PUT" => MethodKey::Put,
            "PATCH" => MethodKey::Patch,
            "DELETE" => MethodKey::Delete,
            "HEAD" => MethodKey::Head,
            "OPTIONS" => MethodKey::Options,
            "ANY" => MethodKey::Any,
            _ => return None,
        })
    }

    /// The method of a request, if it is one a resource can declare.
    pub fn of_request(method: &http::Method) -> Option<Self> {
        Some(match *method {
            http::Method::GET => MethodKey::Get,
            http::Method::POST => MethodKey::Post,
            http::Method::PUT => MethodKey::Put,
            http::Method::PATCH => MethodKey::Patch,
            http::Method::DELETE => MethodKey::Delete,
            http::Method::HEAD => MethodKey::Head,
            http::Method::OPTIONS => MethodKey::Options,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MethodKey::Get => "GET",
            MethodKey::Post => "POST",
            MethodKey::Put => "PUT",
            MethodKey::Patch => "PATCH",
            MethodKey::Delete => "DELETE",
            MethodKey::Head => "HEAD",
            MethodKey::Options => "OPTIONS",
            MethodKey::Any => "ANY",
        }
    }
}

impl fmt::Display for MethodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === MethodDef and Integration ===

/// A method of a resource.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodDef {
    pub api_key_required: bool,
    /// The method's authorizer (`authorizationType`, `authorizerId`, `authorizationScopes`).
    pub auth: super::MethodAuth,
    /// Request parameters the caller must send (else 400 BAD_REQUEST_PARAMETERS), checked
    /// when the method's request validator says so.
    pub required_parameters: Box<[ParamRef]>,
    /// What the method's request validator checks; `None` without a validator.
    pub validation: Option<super::RequestValidation>,
    pub integration: Integration,
}

/// A request parameter: where it is and its name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParamRef {
    pub location: ParamLocation,
    pub name: String,
}

/// Where a request parameter lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamLocation {
    Path,
    Querystring,
    Header,
}

impl ParamLocation {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamLocation::Path => "path",
            ParamLocation::Querystring => "querystring",
            ParamLocation::Header => "header",
        }
    }
}

/// How a method reaches its backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IntegrationKind {
    HttpProxy,
    Http,
    Mock,
    /// A Lambda proxy integration (`Backend::Function`).
    AwsProxy,
}

/// A validated integration.
#[derive(Clone, Debug, PartialEq)]
pub struct Integration {
    pub kind: IntegrationKind,
    pub backend: Backend,
    /// The method sent upstream; `None` keeps the request's.
    pub http_method: Option<http::Method>,
    pub timeout: Duration,
    /// `integration.request.*` ← source, for HTTP integrations.
    pub request_parameters: Box<[ParameterMapping]>,
    /// For HTTP and MOCK integrations; the default response (no pattern) last.
    pub responses: Box<[IntegrationResponse]>,
    pub insecure_skip_verify: bool,
    /// How an HTTP integration converts the request payload.
    pub content_handling: Option<super::ContentHandling>,
    /// The request parameters in the stage cache key (besides the path).
    pub cache_key_parameters: Box<[ParamRef]>,
    /// Methods of one namespace share cache entries; `None` is the method's resource.
    pub cache_namespace: Option<String>,
    /// Request body templates of an HTTP or MOCK integration, by content type (lower case,
    /// sorted). A MOCK integration's renders the JSON whose `statusCode` selects its
    /// integration response (200 without a template).
    pub request_templates: MappingTemplates,
    /// What an HTTP integration does with a payload no request template is for.
    pub passthrough_behavior: PassthroughBehavior,
}

/// Mapping templates by content type: lower-case media types without parameters, sorted.
pub type MappingTemplates = Box<[(Box<str>, crate::template::Template)]>;

/// The template for a content type, as AWS selects it: the exact type (parameters and case
/// ignored); with no content type, `application/json`.
pub fn find_template<'t>(
    templates: &'t [(Box<str>, crate::template::Template)],
    content_type: Option<&str>,
) -> Option<(&'t str, &'t crate::template::Template)> {
    let wanted = media_type(content_type.unwrap_or("application/json"));
    templates
        .iter()
        .find(|(ct, _)| ct.eq_ignore_ascii_case(wanted))
        .map(|(ct, t)| (&**ct, t))
}

/// The media type of a Content-Type or Accept value, without parameters.
pub fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or_default().trim()
}

/// What an HTTP integration does with a request whose Content-Type has no request template
/// (`passthroughBehavior`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PassthroughBehavior {
    /// Pass the payload through when no template matches its content type (the default).
    #[default]
    WhenNoMatch,
    /// Pass it through only when the integration has no templates at all; otherwise 415.
    WhenNoTemplates,
    /// Never pass it through: 415 without a matching template.
    Never,
}

/// What to do with a request payload: transform it with a template, pass it through, or
/// refuse it with 415 Unsupported Media Type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RequestMapping<'t> {
    /// The template and the content type it is for.
    Template(&'t str, &'t crate::template::Template),
    Passthrough,
    Unsupported,
}

impl Integration {
    /// AWS's request template selection for a payload of `content_type`.
    pub fn request_mapping(&self, content_type: Option<&str>) -> RequestMapping<'_> {
        if let Some((ct, t)) = find_template(&self.request_templates, content_type) {
            return RequestMapping::Template(ct, t);
        }
        match self.passthrough_behavior {
            PassthroughBehavior::WhenNoMatch => RequestMapping::Passthrough,
            PassthroughBehavior::WhenNoTemplates if self.request_templates.is_empty() => {
                RequestMapping::Passthrough
            }
            PassthroughBehavior::WhenNoTemplates | PassthroughBehavior::Never => RequestMapping::Unsupported,
        }
    }
}

/// The backend of an integration.
#[derive(Clone, Debug, PartialEq)]
pub enum Backend {
    /// No backend (MOCK).
    None,
    /// An absolute http(s) URL.
    Url(UriTemplate),
    /// An in-cluster Service (connectionType VPC_LINK); `uri` supplies scheme, path and query.
    Service { service: ServiceRef, uri: UriTemplate },
    /// A function behind the Lambda Invoke API (AWS_PROXY).
    Function(super::FunctionTarget),
}

/// A Service and port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    pub port: u16,
}

/// A backend URI with `{param}` and `${stageVariables.x}` placeholders.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UriTemplate {
    raw: Box<str>,
    parts: Box<[UriPart]>,
}

/// A piece of a [`UriTemplate`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UriPart {
    Literal(Box<str>),
    /// `{name}` (a path parameter of the resource; `{proxy}` for `{proxy+}`).
    PathParam(Box<str>),
    /// `${stageVariables.name}`.
    StageVariable(Box<str>),
}

impl UriTemplate {
    /// Splits a template into parts; the error is a message without the field path.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal_start = 0;
        let mut at = 0;
        while at < raw.len() {
            let rest = &raw[at..];
            let (part, len) = if let Some(after) = rest.strip_prefix("${") {
                let end = after.find('}').ok_or("unclosed '${'")?;
                let name = after[..end].strip_prefix("stageVariables.").ok_or_else(|| {
                    format!(
                        "unknown variable ${{{}}}: only ${{stageVariables.NAME}}",
                        &after[..end]
                    )
                })?;
                if !is_stage_variable_name(name) {
                    return Err(format!("invalid stage variable name {name:?}"));
                }
                (UriPart::StageVariable(name.into()), end + 3)
            } else if let Some(after) = rest.strip_prefix('{') {
                let end = after.find('}').ok_or("unclosed '{'")?;
                let name = &after[..end];
                if !is_param_name(name) {
                    return Err(format!("invalid path parameter reference {{{name}}}"));
                }
                (UriPart::PathParam(name.into()), end + 2)
            } else {
                at += rest.chars().next().map_or(1, char::len_utf8);
                continue;
            };
            if literal_start < at {
                parts.push(UriPart::Literal(raw[literal_start..at].into()));
            }
            parts.push(part);
            at += len;
            literal_start = at;
        }
        if literal_start < raw.len() {
            parts.push(UriPart::Literal(raw[literal_start..].into()));
        }
        Ok(UriTemplate {
            raw: raw.into(),
            parts: parts.into_boxed_slice(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn parts(&self) -> &[UriPart] {
        &self.parts
    }

    /// Renders the template. `param` and `variable` give the value of a placeholder; a
    /// placeholder without a value renders empty, as in AWS.
    pub fn render<'a>(
        &self,
        mut param: impl FnMut(&str) -> Option<&'a str>,
        mut variable: impl FnMut(&str) -> Option<&'a str>,
    ) -> String {
        let mut out = String::with_capacity(self.raw.len() + 16);
        for part in &*self.parts {
            match part {
                UriPart::Literal(s) => out.push_str(s),
                UriPart::PathParam(n) => out.push_str(param(n).unwrap_or_default()),
                UriPart::StageVariable(n) => out.push_str(variable(n).unwrap_or_default()),
            }
        }
        out
    }

    /// The literal text before the first placeholder.
    pub fn literal_prefix(&self) -> &str {
        match self.parts.first() {
            Some(UriPart::Literal(s)) => s,
            _ => "",
        }
    }
}

/// A stage variable name: letters, digits and `_`, at most 64 characters.
pub fn is_stage_variable_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A request parameter mapping of an HTTP integration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ParameterMapping {
    /// `integration.request.{location}.{name}`.
    pub target: ParamRef,
    pub source: ValueSource,
}

/// Where a mapped value comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ValueSource {
    /// `method.request.{location}.{name}`.
    Request(ParamRef),
    /// `stageVariables.{name}`.
    StageVariable(String),
    /// `'static value'`.
    Static(String),
    /// `context.authorizer.NAME`: `principalId`, `claims.CLAIM` of a JWT authorizer, or a
    /// key of a function authorizer's `context`. Absent without an authorizer.
    Authorizer(String),
}

/// Maps a backend status to a method response.
#[derive(Clone, Debug)]
pub struct IntegrationResponse {
    pub status: u16,
    /// Matched against the backend status code, anchored; `None` is the default response.
    pub selection_pattern: Option<regex::Regex>,
    /// `method.response.header.{name}` ← `integration.response.header.{name}` or a static value.
    pub headers: Vec<(String, HeaderSource)>,
    /// Body templates by content type; none passes the backend body through.
    pub templates: MappingTemplates,
    /// How a backend body passed through is converted.
    pub content_handling: Option<super::ContentHandling>,
}

impl PartialEq for IntegrationResponse {
    fn eq(&self, other: &Self) -> bool {
        self.status == other.status
            && self.selection_pattern.as_ref().map(regex::Regex::as_str)
                == other.selection_pattern.as_ref().map(regex::Regex::as_str)
            && self.headers == other.headers
            && self.templates == other.templates
            && self.content_handling == other.content_handling
    }
}

impl IntegrationResponse {
    /// The response template for a client that accepts `accept`: the first type of Accept
    /// that has a template, else `application/json`'s, else the first template.
    pub fn template_for(&self, accept: Option<&str>) -> Option<(&str, &crate::template::Template)> {
        let wanted = accept
            .into_iter()
            .flat_map(|a| a.split(','))
            .find_map(|t| find_template(&self.templates, Some(t)));
        wanted
            .or_else(|| find_template(&self.templates, None))
            .or_else(|| self.templates.first().map(|(ct, t)| (&**ct, t)))
    }

    /// Whether this response's pattern selects `status` (the default response selects all).
    pub fn selects(&self, status: u16) -> bool {
        match &self.selection_pattern {
            None => true,
            Some(re) => re.is_match(&status.to_string()),
        }
    }
}

/// Where a response header value comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HeaderSource {
    /// `integration.response.header.{name}`.
    Backend(String),
    /// `'static value'`.
    Static(String),
}

// === ResourcePolicy ===

/// Who may invoke an API. For PRIVATE APIs, a caller no allow rule matches is denied; a deny
/// rule always wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourcePolicy {
    pub allow: Vec<PolicyRule>,
    pub deny: Vec<PolicyRule>,
}

/// A rule: the caller's address is in one of the CIDRs, or its pod is in one of the namespaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyRule {
    pub source_cidrs: Vec<IpNet>,
    pub source_namespaces: Vec<String>,
}

impl PolicyRule {
    /// Whether the rule matches a caller; `namespace` is the caller pod's namespace, if known.
    pub fn matches(&self, ip: IpAddr, namespace: Option<&str>) -> bool {
        self.source_cidrs.iter().any(|net| net.contains(&ip))
            || namespace.is_some_and(|ns| self.source_namespaces.iter().any(|n| n == ns))
    }
}

impl ResourcePolicy {
    /// Whether the policy says anything at all.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Evaluates the policy for a caller. `default_allow` is the answer when no rule matches
    /// (false for PRIVATE APIs, true otherwise).
    pub fn allows(&self, ip: IpAddr, namespace: Option<&str>, default_allow: bool) -> bool {
        if self.deny.iter().any(|r| r.matches(ip, namespace)) {
            return false;
        }
        if self.allow.iter().any(|r| r.matches(ip, namespace)) {
            return true;
        }
        default_allow && self.allow.is_empty()
    }
}

#[cfg(test)]
mod tests;
