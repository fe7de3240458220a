//! Mapping templates: the subset of the Velocity Template Language (VTL) AWS API Gateway runs
//! on request and response payloads.
//!
//! ```text
//! template text ─► parser (once, at compile time) ─► ast::Block ─► eval (per request) ─► Rendered
//!                                                              ▲
//!                      Request: payload, parameters, $context, $stageVariables
//! ```
//!
//! - [`parser`]: text → syntax tree; errors carry the line and column ([`ParseError`]).
//! - [`ast`]: the tree; it holds no request data and is shared by every request.
//! - [`eval`]: walks the tree against one [`Request`], within [`Limits`].
//! - [`plan`]: the tree of a template of the common shape lowered to a few operations on the
//!   payload's tape, which render it faster, or give up and leave it to [`eval`].
//! - [`methods`]: what `$input`, `$util` and method calls on strings, lists and maps do.
//! - [`jsonpath`]: the JSONPath of `$input.path` and `$input.json`.
//! - [`tape`]: JSON payloads indexed once and read in place, built into values only where a
//!   template changes them or hands them to a method.
//! - [`value`]: the values (Java's, as Velocity sees them) and how they print.
//!
//! The language: `$ref`, `${ref}`, `$!ref`, property, index and method chains; `#set`, `#if` /
//! `#elseif` / `#else`, `#foreach` (with `$foreach.index`, `.count`, `.hasNext`, `.first`,
//! `.last` and `$velocityCount`), `#break`, `#stop`, `##` and `#* *#` comments, `#[[ ]]#`
//! unparsed text; literals (strings, numbers, booleans, lists, maps, ranges) and operators.
//! `#macro`, `#parse`, `#include`, `#define` and `#evaluate` are refused when parsed.
//!
//! Differences from Apache Velocity worth knowing: a `null` value renders as nothing (AWS
//! renders a missing `$context` field or JSON member empty), while a reference to a variable
//! that was never set renders as written (Velocity's behaviour, so typos show); string indexes
//! count characters, not UTF-16 units; regular expressions (`replaceAll`, `matches`, `split`)
//! use the `regex` crate's syntax, which agrees with Java's for the common cases.
//!
//! Nothing here panics on a template or a payload: every loop is bounded by [`Limits`], nesting
//! by [`parser::MAX_DEPTH`], and a failure is a [`RenderError`].

mod ast;
mod eval;
pub mod jsonpath;
mod methods;
mod parser;
mod plan;
pub mod tape;
mod value;

use std::fmt;

use crate::model::ContextVar;

pub use value::{Map, Value};

/// AWS's limit on a mapping template's size.
pub const MAX_TEMPLATE_BYTES: usize = 300 * 1024;

/// A parsed mapping template. Cheap to share; rendering borrows it.
#[derive(Clone, Debug)]
pub struct Template {
    source: Box<str>,
    body: ast::Block,
    /// The slots of its variables.
    names: ast::Names,
    /// What the template reads of `$context` and of `$stageVariables`: a rendering copies
    /// only that into its variables.
    context: ast::Reads,
    stage_variables: ast::Reads,
    /// The `$context` variables it may read, as [`ContextVar::mask_under`] bits (`error.*`
    /// aside: only a gateway response has them); `None` when it may read any.
    context_vars: Option<u32>,
    /// It may read `$context.authorizer`.
    reads_authorizer: bool,
    /// The names it looks up in `$input.params()`: a caller need put only those in.
    params: ast::Reads,
    /// No `#set`, mutating call or loop changes `$foreach` itself.
    foreach_untouched: bool,
    /// Likewise for `$context`: a rendering reads the request's in place.
    context_untouched: bool,
    /// `$foreach` is read only entry by entry ([`ast::foreach_state_only`]).
    foreach_state_only: bool,
    /// `$velocityCount` is read somewhere: else a `#foreach` need not keep it.
    reads_velocity_count: bool,
    /// How long its last output was.
    output_hint: eval::OutputHint,
    /// Its program, when it has the shape one is made for.
    plan: Option<plan::Plan>,
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// Why a template does not parse: where, and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

impl ParseError {
    /// An error at byte offset `at` of `src`.
    pub(crate) fn at(src: &str, at: usize, message: impl Into<String>) -> ParseError {
        let at = at.min(src.len());
        let before = src.get(..at).unwrap_or(src);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |n| n + 1);
        let column = before[line_start..].chars().count() + 1;
        ParseError {
            line,
            column,
            message: message.into(),
        }
    }
}

/// Why a rendering failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The payload read as JSON (`$input.json`, `$input.path`) is not JSON.
    #[error("could not parse payload into json: {0}")]
    Payload(String),
    /// A bound of [`Limits`] was reached.
    #[error("template limit reached: {0}")]
    Limit(&'static str),
    /// A function or method failed (`$util.base64Decode` of text that is not base64, a bad
    /// JSONPath, a regular expression that does not compile…).
    #[error("{0}")]
    Failed(String),
}

/// How far one rendering may go. The step bound stands in for a time bound: each node,
/// reference step and method call counts one, so a rendering's time is bounded by the
/// template, not the clock (the core has no clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Iterations of one `#foreach` (AWS: 1,000).
    pub max_iterations: usize,
    /// Bytes of output, and of any string built on the way.
    pub max_output: usize,
    /// Evaluation steps.
    pub max_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_iterations: 1_000,
            max_output: 10 * 1024 * 1024,
            max_steps: 1_000_000,
        }
    }
}

/// What a template renders against.
#[derive(Clone, Copy, Debug)]
pub struct Request<'r> {
    /// The payload: the method request's body in a request template, the backend's in a
    /// response template.
    pub body: &'r str,
    /// The method request parameters: maps `path`, `querystring` and `header`.
    pub params: &'r Map,
    /// `$context`, a map. Borrowed: a template that never changes it reads it in place;
    /// one that does starts from a copy of the entries it reads.
    pub context: &'r Value,
    /// `$stageVariables`, likewise.
    pub stage_variables: &'r Map,
}

impl Request<'_> {
    /// The parameter maps from name/value pairs.
    pub fn params_of<'p>(
        path: impl IntoIterator<Item = (&'p str, &'p str)>,
        querystring: impl IntoIterator<Item = (&'p str, &'p str)>,
        header: impl IntoIterator<Item = (&'p str, &'p str)>,
    ) -> Map {
        Map(vec![
            ("path".into(), Value::Map(Map::of_strings(path))),
            ("querystring".into(), Value::Map(Map::of_strings(querystring))),
            ("header".into(), Value::Map(Map::of_strings(header))),
        ])
    }
}

/// The result of a rendering.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    pub body: String,
    /// `$context` as the template left it when it changes it (`responseOverride` is read
    /// from it): the entries of [`Request::context`] the template reads, and what it set.
    /// Empty when the template only reads `$context` (it is the request's, unchanged).
    pub context: Map,
}

impl Rendered {
    /// `$context.responseOverride.status`, if the template set a valid status code.
    pub fn status_override(&self) -> Option<u16> {
        let status = self.response_override()?.get("status")?.as_int()?;
        u16::try_from(status).ok().filter(|s| (100..=599).contains(s))
    }

    /// `$context.responseOverride.header.NAME`, in the order set.
    pub fn header_overrides(&self) -> Vec<(String, String)> {
        match self.response_override().and_then(|o| o.get("header")) {
            Some(Value::Map(h)) => h.0.iter().map(|(k, v)| (k.clone(), v.to_text())).collect(),
            _ => Vec::new(),
        }
    }

    fn response_override(&self) -> Option<&Map> {
        match self.context.get("responseOverride")? {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
}

// === impl Template ===

impl Template {
    /// Parses a template (at most [`MAX_TEMPLATE_BYTES`]).
    pub fn parse(source: &str) -> Result<Template, ParseError> {
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(ParseError {
                line: 1,
                column: 1,
                message: format!(
                    "a mapping template is at most {MAX_TEMPLATE_BYTES} bytes (300 KB); this one is {}",
                    source.len()
                ),
            });
        }
        let (body, names) = parser::parse(source)?;
        let context = ast::Reads::of(&body, "context");
        let context_vars = context.names().map(|keys| {
            keys.iter()
                .fold(0, |mask, key| mask | ContextVar::mask_under(key))
                & !ContextVar::ERRORS
        });
        let reads_authorizer = context
            .names()
            .is_none_or(|keys| keys.iter().any(|k| &**k == "authorizer"));
        let foreach_state_only = ast::foreach_state_only(&body, &eval::FOREACH_KEYS);
        let context_untouched = ast::untouched(&body, "context");
        Ok(Template {
            plan: plan::Plan::lower(&body, foreach_state_only, context_untouched),
            source: source.into(),
            context_vars,
            reads_authorizer,
            context,
            stage_variables: ast::Reads::of(&body, "stageVariables"),
            params: ast::Reads::of_params(&body),
            foreach_untouched: ast::untouched(&body, "foreach"),
            context_untouched,
            foreach_state_only,
            reads_velocity_count: ast::reads(&body, "velocityCount"),
            output_hint: eval::OutputHint::default(),
            body,
            names,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The `$context` variables a rendering may read, as bits of their index in
    /// [`ContextVar::ALL`] (`error.*` never among them); `None` when it may read any. A caller
    /// building [`Request::context`] need put in only those, and `authorizer` when
    /// [`Template::reads_authorizer`].
    pub fn context_vars(&self) -> Option<u32> {
        self.context_vars
    }

    /// Whether a rendering may read `$context.authorizer`.
    pub fn reads_authorizer(&self) -> bool {
        self.reads_authorizer
    }

    /// The names a rendering may look up in `$input.params()` (with `$input.params('name')`,
    /// in the path, then the query string, then the headers): `None` when it may read any.
    /// A caller building [`Request::params`] need put in only those.
    pub fn param_reads(&self) -> Option<&[Box<str>]> {
        self.params.names()
    }

    /// Renders the template for one request.
    pub fn render(&self, request: Request<'_>, limits: &Limits) -> Result<Rendered, RenderError> {
        if let Some(plan) = &self.plan
            && let Some(body) = plan.run(request, limits, self.output_hint.capacity(request.body, limits))
        {
            self.output_hint.record(body.len());
            return Ok(Rendered {
                body,
                // A template with a program never changes `$context`.
                context: Map::default(),
            });
        }
        eval::render(self, request, limits)
    }

    /// Renders the template with the evaluator alone, never its program: what
    /// [`Template::render`] must agree with (tests and the fuzz targets compare them).
    #[doc(hidden)]
    pub fn render_evaluated(&self, request: Request<'_>, limits: &Limits) -> Result<Rendered, RenderError> {
        eval::render(self, request, limits)
    }

    /// Whether the template has a program ([`plan`]): the common shape, rendered without the
    /// evaluator unless the request has something the program gives up on.
    #[doc(hidden)]
    pub fn has_plan(&self) -> bool {
        self.plan.is_some()
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests;
