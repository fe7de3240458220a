//! Mapping templates on the data plane: what a template sees of a request (`$input.params()`,
//! `$context`, `$stageVariables`) and the rendering of request and response templates for
//! HTTP and MOCK integrations, and of gateway response templates. The templates themselves were
//! parsed when the routing table was compiled ([`turnpike_core::template`]); here they only
//! run.

use http::{header, request::Parts};
use percent_encoding::percent_decode_str;
use turnpike_core::{
    model::{ContextVar, ResponseType},
    template::{Limits, Map, RenderError, Rendered, Request, Template, Value},
};

use crate::{
    ctx::RequestCtx,
    error::{Reject, RequestView, write_context},
};

/// What every template of one request reads besides the payload: the method request's
/// parameters, `$context` and `$stageVariables`. Built once per request that runs a template.
pub struct TemplateScope {
    params: Map,
    /// A map.
    context: Value,
    stage_variables: Map,
}

impl TemplateScope {
    /// The scope of the request `parts` (before the integration takes its headers) for
    /// `templates`: its `$context` holds the entries they may read.
    pub fn new<'t>(
        ctx: &RequestCtx<'_>,
        parts: &Parts,
        templates: impl Iterator<Item = &'t Template>,
    ) -> Self {
        let request = RequestView {
            headers: Some(&parts.headers),
            query: parts.uri.query(),
            method: Some(parts.method.as_str()),
            path: Some(parts.uri.path()),
            protocol: crate::service::protocol(parts.version),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
        };
        // The `$context` variables and parameters the templates name, gathered once: a
        // template usually names one or two of each.
        let (mut context, mut names) = (ContextWanted::NONE, Some(Vec::new()));
        for t in templates {
            context.add(t);
            gather(&mut names, t.param_reads());
        }
        TemplateScope {
            params: params_map(ctx, &request, Wanted::of(names.as_deref())),
            context: Value::Map(context_map(ctx, &request, context)),
            stage_variables: stage_variables_map(ctx),
        }
    }

    /// Renders `template` over `payload`.
    pub fn render(
        &self,
        template: &Template,
        payload: &[u8],
        limits: &Limits,
    ) -> Result<Rendered, RenderError> {
        // UTF-8 is checked at SIMD speed; only a payload that is not pays for the repair.
        let body = match std::str::from_utf8(payload) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(payload),
        };
        template.render(
            Request {
                body: &body,
                params: &self.params,
                context: &self.context,
                stage_variables: &self.stage_variables,
            },
            limits,
        )
    }
}

/// `$stageVariables`: the stage's, or its canary's.
fn stage_variables_map(ctx: &RequestCtx<'_>) -> Map {
    ctx.variant
        .map(|v| Map::of_strings(v.variables.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
        .unwrap_or_default()
}

/// `$input.params()`: the path parameters (decoded), the query string (the last value of a
/// repeated name wins, as in AWS's single-value map) and the headers; of these, the ones
/// `wanted` names (compared without case: header names have none, and a superset does no
/// harm).
fn params_map(ctx: &RequestCtx<'_>, request: &RequestView<'_>, wanted: Wanted<'_>) -> Map {
    let path: Map = Map(ctx
        .params
        .iter()
        .filter(|(k, _)| wanted.has_ignoring_case(k))
        .map(|(k, v)| {
            (
                k.to_string(),
                Value::Str(percent_decode_str(v).decode_utf8_lossy().into_owned()),
            )
        })
        .collect());
    let mut query = Map::default();
    if let Some(q) = request.query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            if wanted.has_ignoring_case(&k) {
                wanted.size(&mut query);
                query.insert(k.into_owned(), Value::Str(v.into_owned()));
            }
        }
    }
    let mut headers = Map::default();
    for (name, value) in request.headers.into_iter().flatten() {
        if !wanted.has_ignoring_case(name.as_str()) {
            continue;
        }
        if let Ok(v) = value.to_str() {
            wanted.size(&mut headers);
            headers.insert(name.as_str().to_string(), Value::str(v));
        }
    }
    Map(vec![
        ("path".into(), Value::Map(path)),
        ("querystring".into(), Value::Map(query)),
        ("header".into(), Value::Map(headers)),
    ])
}

/// Adds a template's reads (`None`: it may read any name) to the names `into` gathers
/// (`None`: every name).
fn gather<'t>(into: &mut Option<Vec<&'t str>>, reads: Option<&'t [Box<str>]>) {
    match (into.as_mut(), reads) {
        (Some(names), Some(reads)) => names.extend(reads.iter().map(|k| &**k)),
        _ => *into = None,
    }
}

/// Which parameters a scope holds: every one, or those listed (what the templates name:
/// [`Template::param_reads`]).
#[derive(Clone, Copy)]
enum Wanted<'a> {
    All,
    Only(&'a [&'a str]),
}

impl<'a> Wanted<'a> {
    /// `names`, or every one for `None`.
    fn of(names: Option<&'a [&'a str]>) -> Self {
        names.map_or(Wanted::All, Wanted::Only)
    }

    /// Gives `map` room for the entries wanted, when it has none yet: its first entry is one
    /// allocation of that size rather than a vector grown from nothing (a slower path), and a
    /// map nothing is wanted for stays unallocated.
    fn size(self, map: &mut Map) {
        if map.0.capacity() == 0 {
            map.0 = Vec::with_capacity(match self {
                Wanted::All => 8,
                Wanted::Only(names) => names.len(),
            });
        }
    }

    fn has_ignoring_case(self, name: &str) -> bool {
        match self {
            Wanted::All => true,
            Wanted::Only(names) => names.iter().any(|n| n.eq_ignore_ascii_case(name)),
        }
    }
}

/// The `$context` a set of templates may read: the variables ([`Template::context_vars`]:
/// `None` for every one) and whether `authorizer`.
#[derive(Clone, Copy)]
struct ContextWanted {
    vars: Option<u32>,
    authorizer: bool,
}

impl ContextWanted {
    const NONE: ContextWanted = ContextWanted {
        vars: Some(0),
        authorizer: false,
    };

    /// What `template` reads, too.
    fn add(&mut self, template: &Template) {
        self.vars = self.vars.zip(template.context_vars()).map(|(a, b)| a | b);
        self.authorizer |= template.reads_authorizer();
    }
}

/// `$context` of a mapping template: the variables gateway responses and access logs know
/// (but `error.*`), nested by their dots (`identity.sourceIp`), and `authorizer` when the
/// method's authorizer ran; of these, those `wanted` (a template reads only what it names,
/// and some values cost a clock read or a formatting).
fn context_map(ctx: &RequestCtx<'_>, request: &RequestView<'_>, wanted: ContextWanted) -> Map {
    // Every variable but `error.*` for a template that may read any (a template's own mask
    // never holds those: `Template::context_vars`).
    let mask = wanted.vars.unwrap_or(ContextVar::EVERY & !ContextVar::ERRORS);
    // Room for each variable wanted: the first entry is one allocation of that size.
    let mut map = Map(Vec::with_capacity(mask.count_ones() as usize));
    for (var, name) in ContextVar::of_mask(mask) {
        // Room for the usual values (ids are 36 bytes): written without growing.
        let mut value = String::with_capacity(48);
        write_context(var, "", ResponseType::Default5xx, ctx, request, &mut value);
        match name.split_once('.') {
            Some((parent, child)) => {
                map.child_map(parent).insert(child.to_string(), Value::Str(value));
            }
            None => {
                map.insert(name.to_string(), Value::Str(value));
            }
        }
    }
    if !wanted.authorizer {
        return map;
    }
    if let Some(authorizer) = authorizer_map(ctx) {
        map.insert("authorizer".into(), Value::Map(authorizer));
    }
    map
}

/// `$context.authorizer`: `principalId`, a function's context keys or a token's `claims`, and
/// `error` (why the authorizer refused or failed). `None` when no authorizer ran.
fn authorizer_map(ctx: &RequestCtx<'_>) -> Option<Map> {
    if ctx.identity.is_none() && ctx.authorizer_error.is_none() {
        return None;
    }
    let mut map = match ctx
        .identity
        .as_ref()
        .map(|i| Value::from_json(&i.to_event_json()))
    {
        Some(Value::Map(m)) => m,
        _ => Map::default(),
    };
    if let Some(principal) = ctx.identity.as_ref().and_then(|i| i.principal_id())
        && map.get("principalId").is_none()
    {
        map.insert("principalId".into(), Value::str(principal));
    }
    if let Some(error) = &ctx.authorizer_error {
        map.insert("error".into(), Value::str(error.as_str()));
    }
    Some(map)
}

/// What a gateway response template reads of the rejection: `$context.error.*`.
pub struct ErrorFacts<'e> {
    pub message: &'e str,
    pub response_type: ResponseType,
    /// The schema's complaint about the body (`validationErrorString`), else empty.
    pub validation_error: &'e str,
}

/// Renders a gateway response's body template: the request's `$context` (with `error.*`),
/// `$stageVariables` and `$input.params()`, over an empty payload.
pub fn gateway_response(
    template: &Template,
    ctx: &RequestCtx<'_>,
    request: &RequestView<'_>,
    error: &ErrorFacts<'_>,
) -> Result<String, RenderError> {
    let mut wanted = ContextWanted::NONE;
    wanted.add(template);
    let mut names = Some(Vec::new());
    gather(&mut names, template.param_reads());
    let params = params_map(ctx, request, Wanted::of(names.as_deref()));
    let mut context = context_map(ctx, request, wanted);
    let stage_variables = stage_variables_map(ctx);
    let quoted = serde_json::to_string(error.message).unwrap_or_else(|_| "\"\"".into());
    let errors = context.child_map("error");
    errors.insert("message".into(), Value::str(error.message));
    errors.insert("messageString".into(), Value::Str(quoted));
    errors.insert("responseType".into(), Value::str(error.response_type.as_str()));
    errors.insert("validationErrorString".into(), Value::str(error.validation_error));
    let rendered = template.render(
        Request {
            body: "",
            params: &params,
            context: &Value::Map(context),
            stage_variables: &stage_variables,
        },
        // AWS's limits, not the payload limit: the answer is the API's own text, not a
        // client's payload.
        &Limits::default(),
    )?;
    Ok(rendered.body)
}

/// The limits of one rendering: AWS's, with the output held to the payload limit.
pub fn limits(ctx: &RequestCtx<'_>) -> Limits {
    Limits {
        max_output: usize::try_from(ctx.shared.config.limits.max_body_bytes).unwrap_or(usize::MAX),
        ..Limits::default()
    }
}

/// A request template's failure as the client sees it: a payload that is not JSON is a bad
/// request body; anything else is the API's configuration, answered 500 like AWS.
pub fn request_failure(e: RenderError) -> Reject {
    match e {
        RenderError::Payload(error) => Reject::InvalidBody { error },
        other => Reject::ApiConfiguration(format!("request template: {other}").into()),
    }
}

/// A response template's failure: always the API's configuration.
pub fn response_failure(e: RenderError) -> Reject {
    Reject::ApiConfiguration(format!("response template: {e}").into())
}
