//! Mapping templates on the data plane: what a template sees of a request (`$input.params()`,
//! `$context`, `$stageVariables`) and the rendering of request and response templates for
//! HTTP and MOCK integrations. The templates themselves were parsed when the routing table
//! was compiled ([`turnpike_core::template`]); here they only run.

use std::borrow::Cow;

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
    context: Map,
    stage_variables: Map,
}

impl TemplateScope {
    /// The scope of the request `parts` (before the integration takes its headers).
    pub fn new(ctx: &RequestCtx<'_>, parts: &Parts) -> Self {
        let path: Vec<(Cow<'_, str>, Cow<'_, str>)> = ctx
            .params
            .iter()
            .map(|(k, v)| (Cow::Borrowed(k), percent_decode_str(v).decode_utf8_lossy()))
            .collect();
        let mut query = Map::default();
        if let Some(q) = parts.uri.query() {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                // The last value of a repeated name wins, as in AWS's single-value map.
                query.insert(k.into_owned(), Value::Str(v.into_owned()));
            }
        }
        let mut headers = Map::default();
        for (name, value) in &parts.headers {
            if let Ok(v) = value.to_str() {
                headers.insert(name.as_str().to_string(), Value::str(v));
            }
        }
        let params = Map(vec![
            (
                "path".into(),
                Value::Map(Map(path
                    .into_iter()
                    .map(|(k, v)| (k.into_owned(), Value::Str(v.into_owned())))
                    .collect())),
            ),
            ("querystring".into(), Value::Map(query)),
            ("header".into(), Value::Map(headers)),
        ]);
        TemplateScope {
            params,
            context: context_map(ctx, parts),
            stage_variables: ctx
                .variant
                .map(|v| Map::of_strings(v.variables.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
                .unwrap_or_default(),
        }
    }

    /// Renders `template` over `payload`.
    pub fn render(
        &self,
        template: &Template,
        payload: &[u8],
        limits: &Limits,
    ) -> Result<Rendered, RenderError> {
        let body = String::from_utf8_lossy(payload);
        template.render(
            Request {
                body: &body,
                params: self.params.clone(),
                context: self.context.clone(),
                stage_variables: self.stage_variables.clone(),
            },
            limits,
        )
    }
}

/// `$context` of a mapping template: the variables gateway responses and access logs know
/// (but `error.*`), nested by their dots (`identity.sourceIp`).
fn context_map(ctx: &RequestCtx<'_>, parts: &Parts) -> Map {
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
    let mut map = Map::default();
    for (var, name) in ContextVar::ALL {
        if name.starts_with("error.") {
            continue;
        }
        let mut value = String::new();
        write_context(var, "", ResponseType::Default5xx, ctx, &request, &mut value);
        match name.split_once('.') {
            Some((parent, child)) => {
                map.child_map(parent).insert(child.to_string(), Value::Str(value));
            }
            None => {
                map.insert(name.to_string(), Value::Str(value));
            }
        }
    }
    map
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
