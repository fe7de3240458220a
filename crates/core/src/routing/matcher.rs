//! The pure matcher: from (listener, Host, path, method) to what serves the request.

use std::sync::Arc;

use crate::model::{MethodDef, MethodKey};
use crate::routing::{ApiEntry, Listener, ResourceEntry, RouteSet, RoutingTable, StageEntry};

/// Why a request matched nothing. Every variant answers 403 Missing Authentication Token like
/// AWS, except [`Miss::PrivateApi`], which answers 403 Forbidden.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    /// No API with that id (or none served on this listener).
    Api,
    /// The API has no such stage.
    Stage,
    /// A PRIVATE API asked for on the public listener.
    PrivateApi,
    /// No resource matches the path.
    Resource,
    /// The resource has no such method (and no ANY).
    Method,
}

/// The API and stage of a request, and the path within the stage.
#[derive(Debug)]
pub struct Located<'t, 'r> {
    pub api: &'t Arc<ApiEntry>,
    pub stage: &'t Arc<StageEntry>,
    /// The resource path, starting with `/` (the stage prefix removed).
    pub path: &'r str,
}

/// A resource method and the path parameters.
#[derive(Debug)]
pub struct RouteMatch<'t, 'r> {
    pub resource: &'t ResourceEntry,
    pub method: MethodKey,
    pub entry: &'t Arc<MethodDef>,
    pub params: PathParams<'t, 'r>,
}

/// Path parameters in template order; values are as they appear in the path (still
/// percent-encoded). A greedy `{proxy+}` is named `proxy`. Up to four live inline, so a match
/// allocates nothing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PathParams<'t, 'r>(ParamValues<'t, 'r>);

type ParamValues<'t, 'r> = smallvec::SmallVec<[(&'t str, &'r str); 4]>;

impl<'t, 'r> PathParams<'t, 'r> {
    pub fn get(&self, name: &str) -> Option<&'r str> {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'t str, &'r str)> + '_ {
        self.0.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The path prefix of the local, DNS-free URL form.
pub const LOCAL_PATH_PREFIX: &str = "/restapis/";
const USER_REQUEST: &str = "_user_request_";

impl RoutingTable {
    /// Finds the API and stage of a request.
    ///
    /// Two URL forms are recognised: Host `{apiId}.execute-api.{region}.{baseDomain}` with the
    /// path `/{stage}/{resource path}`, and, with any Host, the path
    /// `/restapis/{apiId}/{stage}/_user_request_/{resource path}`.
    pub fn locate<'t, 'r>(
        &'t self,
        listener: Listener,
        host: Option<&str>,
        path: &'r str,
    ) -> Result<Located<'t, 'r>, Miss> {
        let (api_id, rest) = match path.strip_prefix(LOCAL_PATH_PREFIX) {
            Some(rest) => {
                let (id, rest) = split_segment(rest);
                (id, rest)
            }
            None => {
                let host = host.ok_or(Miss::Api)?;
                (self.api_id_of_host(host).ok_or(Miss::Api)?, path)
            }
        };
        let api = self.api(api_id).ok_or(Miss::Api)?;
        if !api.served_on(listener) {
            return Err(if listener == Listener::Public {
                Miss::PrivateApi
            } else {
                Miss::Api
            });
        }
        let rest = rest.strip_prefix('/').ok_or(Miss::Stage)?;
        let (stage_name, mut rest) = split_segment(rest);
        let stage = api.stages.get(stage_name).ok_or(Miss::Stage)?;
        if path.starts_with(LOCAL_PATH_PREFIX) {
            rest = rest
                .strip_prefix('/')
                .and_then(|r| r.strip_prefix(USER_REQUEST))
                .filter(|r| r.is_empty() || r.starts_with('/'))
                .ok_or(Miss::Resource)?;
        }
        Ok(Located {
            api,
            stage,
            path: if rest.is_empty() { "/" } else { rest },
        })
    }

    /// `{apiId}` of a Host `{apiId}.execute-api.{region}.{baseDomain}[:port]`.
    fn api_id_of_host<'h>(&self, host: &'h str) -> Option<&'h str> {
        let host = strip_port(host);
        let suffix = self.host_suffix();
        let cut = host.len().checked_sub(suffix.len())?;
        if !host.is_char_boundary(cut) || !host[cut..].eq_ignore_ascii_case(suffix) {
            return None;
        }
        let id = &host[..cut];
        (!id.is_empty() && !id.contains('.')).then_some(id)
    }

    /// Locates and matches with the primary variant of the stage.
    pub fn find<'t, 'r>(
        &'t self,
        listener: Listener,
        host: Option<&str>,
        path: &'r str,
        method: &http::Method,
    ) -> Result<(Located<'t, 'r>, RouteMatch<'t, 'r>), Miss> {
        let located = self.locate(listener, host, path)?;
        let matched = located.stage.primary.routes.find(located.path, method)?;
        Ok((located, matched))
    }
}

impl RouteSet {
    /// Matches a resource path and method. Literal segments beat `{param}`, which beats
    /// `{proxy+}`; an explicit method beats ANY. A trailing `/` is ignored, except by a greedy
    /// parameter, whose value keeps it.
    pub fn find<'t, 'r>(&'t self, path: &'r str, method: &http::Method) -> Result<RouteMatch<'t, 'r>, Miss> {
        let mut values = smallvec::SmallVec::<[&'r str; 4]>::new();
        let found = self.index().find(path, &mut values).ok_or(Miss::Resource)?;
        let resource = self.resource(found).ok_or(Miss::Resource)?;
        let (key, entry) = resource.method(method).ok_or(Miss::Method)?;
        let params = PathParams(resource.path.params().zip(values).collect());
        Ok(RouteMatch {
            resource,
            method: key,
            entry,
            params,
        })
    }
}

fn split_segment(s: &str) -> (&str, &str) {
    match s.find('/') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host;
    }
    match host.rfind(':') {
        Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
        _ => host,
    }
}

#[cfg(test)]
mod tests;
