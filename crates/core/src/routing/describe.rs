//! A plain, ordered description of a routing table: what golden files pin and what operators
//! read when they ask what is being served.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{
    AccessLogFormat, Backend, EndpointType, HeaderSource, Integration, IntegrationKind, MethodSelector,
    QuotaPeriod, ValueSource,
};
use crate::routing::{RoutingTable, StageVariant};

/// The whole table.
#[derive(Debug, Serialize)]
pub struct TableDescription {
    pub apis: Vec<ApiDescription>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyDescription>,
    /// `namespace/name:port -> [ready endpoints]` of the Services private integrations call.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiDescription {
    pub id: String,
    pub object: String,
    pub host: String,
    pub endpoint_type: EndpointType,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy: Vec<String>,
    pub stages: Vec<StageDescription>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageDescription {
    pub name: String,
    pub object: String,
    pub deployment: VariantDescription,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryDescription>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub usage_plans: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryDescription {
    pub percent_traffic: f64,
    pub deployment: VariantDescription,
}

#[derive(Debug, Serialize)]
pub struct VariantDescription {
    pub id: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// `METHOD /path -> integration`, in resource order.
    pub routes: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyDescription {
    pub id: String,
    pub object: String,
    pub enabled: bool,
    pub usage_plans: Vec<String>,
}

impl RoutingTable {
    /// Describes the table in a deterministic order.
    pub fn describe(&self) -> TableDescription {
        let mut apis: Vec<ApiDescription> = self
            .apis()
            .map(|api| {
                let mut stages: Vec<StageDescription> = api
                    .stages
                    .values()
                    .map(|s| {
                        let mut settings = Vec::new();
                        if let Some(t) = s.throttle {
                            settings.push(format!("throttle {}/s burst {}", t.rate, t.burst));
                        }
                        for m in &s.method_settings {
                            let sel = selector(&m.selector);
                            if let Some(t) = m.throttle {
                                settings.push(format!("{sel}: throttle {}/s burst {}", t.rate, t.burst));
                            }
                            if let Some(on) = m.caching_enabled {
                                let on = if on { "on" } else { "off" };
                                settings.push(format!("{sel}: caching {on}"));
                            }
                            if let Some(ttl) = m.cache_ttl_seconds {
                                settings.push(format!("{sel}: cache ttl {ttl}s"));
                            }
                            if let Some(auth) = m.require_authorization_for_cache_control {
                                settings.push(format!("{sel}: cache control needs authorization {auth}"));
                            }
                            if let Some(strategy) = m.unauthorized_cache_control {
                                settings.push(format!("{sel}: unauthorized cache control {strategy:?}"));
                            }
                        }
                        if s.cache_enabled {
                            settings.push(format!("cache enabled, {} bytes", s.cache_budget));
                        }
                        if let Some(token) = &s.cache_flush {
                            settings.push(format!("cache flush token {token:?}"));
                        }
                        if let Some(f) = &s.access_log {
                            settings.push(match f {
                                AccessLogFormat::Clf => "access log CLF".to_string(),
                                AccessLogFormat::Json => "access log JSON".to_string(),
                                AccessLogFormat::Template(t) => format!("access log {t:?}"),
                            });
                        }
                        let mut usage_plans: Vec<String> = s
                            .plans
                            .values()
                            .map(|p| {
                                let mut d = p.object.to_string();
                                if let Some(t) = p.throttle {
                                    d.push_str(&format!(" throttle {}/s burst {}", t.rate, t.burst));
                                }
                                for (sel, t) in &p.method_throttles {
                                    d.push_str(&format!(
                                        " {}: throttle {}/s burst {}",
                                        selector(sel),
                                        t.rate,
                                        t.burst
                                    ));
                                }
                                if let Some(q) = p.quota {
                                    d.push_str(&format!(
                                        " quota {} per {} offset {}",
                                        q.limit,
                                        match q.period {
                                            QuotaPeriod::Day => "DAY",
                                            QuotaPeriod::Week => "WEEK",
                                            QuotaPeriod::Month => "MONTH",
                                        },
                                        q.offset
                                    ));
                                }
                                d
                            })
                            .collect();
                        usage_plans.sort();
                        StageDescription {
                            name: s.name.clone(),
                            object: s.object.to_string(),
                            deployment: variant(&s.primary),
                            canary: s.canary.as_ref().map(|c| CanaryDescription {
                                percent_traffic: c.percent,
                                deployment: variant(&c.variant),
                            }),
                            settings,
                            usage_plans,
                        }
                    })
                    .collect();
                stages.sort_by(|a, b| a.name.cmp(&b.name));
                let mut policy = Vec::new();
                for (verb, rules) in [("allow", &api.policy.allow), ("deny", &api.policy.deny)] {
                    for r in rules {
                        let cidrs: Vec<String> = r.source_cidrs.iter().map(ToString::to_string).collect();
                        policy.push(format!(
                            "{verb} cidrs={cidrs:?} namespaces={:?}",
                            r.source_namespaces
                        ));
                    }
                }
                ApiDescription {
                    id: api.id.to_string(),
                    object: api.object.to_string(),
                    host: self.hosts.api_host(&api.id),
                    endpoint_type: api.endpoint_type,
                    policy,
                    stages,
                }
            })
            .collect();
        apis.sort_by(|a, b| a.object.cmp(&b.object));
        let mut keys: Vec<KeyDescription> = self
            .keys()
            .map(|k| KeyDescription {
                id: k.id.to_string(),
                object: k.object.to_string(),
                enabled: k.enabled,
                usage_plans: k.plans.iter().map(ToString::to_string).collect(),
            })
            .collect();
        keys.sort_by(|a, b| a.object.cmp(&b.object));
        let mut services: Vec<String> = self
            .services()
            .map(|(s, endpoints)| {
                let endpoints: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
                format!(
                    "{}/{}:{} -> [{}]",
                    s.namespace,
                    s.name,
                    s.port,
                    endpoints.join(", ")
                )
            })
            .collect();
        services.sort();
        TableDescription { apis, keys, services }
    }
}

fn selector(s: &MethodSelector) -> String {
    match s {
        MethodSelector::All => "*/*".to_string(),
        MethodSelector::Method { path, method } => format!("{path}/{method}"),
    }
}

fn variant(v: &StageVariant) -> VariantDescription {
    let routes = v
        .routes
        .resources()
        .iter()
        .flat_map(|r| {
            r.methods.iter().map(move |(m, d)| {
                format!(
                    "{m} {} -> {}{}",
                    r.path,
                    integration(&d.integration, d.api_key_required),
                    auth(&d.auth)
                )
            })
        })
        .chain(v.routes.websocket().into_iter().flat_map(|w| {
            let selection = format!("WEBSOCKET selection={}", w.selection.as_str());
            std::iter::once(selection).chain(w.routes.values().map(|r| {
                format!(
                    "ROUTE {}{} -> {}",
                    r.key,
                    if r.two_way { " (two-way)" } else { "" },
                    integration(&r.method.integration, r.method.api_key_required)
                )
            }))
        }))
        .collect();
    VariantDescription {
        id: v.deployment_id.clone(),
        variables: (*v.variables).clone(),
        routes,
    }
}

/// ` auth=ID(KIND)` and ` scopes=a,b`, or ` auth=ID(MISSING)`; empty without an authorizer.
fn auth(auth: &crate::model::MethodAuth) -> String {
    use crate::model::MethodAuth;
    match auth {
        MethodAuth::None => String::new(),
        MethodAuth::Missing(id) => format!(" auth={id}(MISSING)"),
        MethodAuth::Authorizer { authorizer, scopes } => {
            let mut out = format!(" auth={}({})", authorizer.id, authorizer.kind.as_str());
            if !scopes.is_empty() {
                out.push_str(&format!(" scopes={}", scopes.join(",")));
            }
            out
        }
    }
}

fn integration(i: &Integration, key_required: bool) -> String {
    let kind = match i.kind {
        IntegrationKind::HttpProxy => "HTTP_PROXY",
        IntegrationKind::Http => "HTTP",
        IntegrationKind::Mock => "MOCK",
        IntegrationKind::AwsProxy => "AWS_PROXY",
    };
    let mut out = match &i.backend {
        // A MOCK integration's status comes from rendering its request template.
        Backend::None if i.request_templates.is_empty() => kind.to_string(),
        Backend::None => {
            let types: Vec<&str> = i.request_templates.iter().map(|(ct, _)| &**ct).collect();
            format!("{kind} request-templates={}", types.join(","))
        }
        Backend::Function(f) => match &f.host {
            crate::model::FunctionHost::Url(u) => format!("{kind} function={} host={u}", f.name),
            crate::model::FunctionHost::Service(s) => {
                format!(
                    "{kind} function={} service={}/{}:{}",
                    f.name, s.namespace, s.name, s.port
                )
            }
        },
        Backend::Url(u) => format!("{kind} {}", u.as_str()),
        Backend::Service { service, uri } => {
            format!(
                "{kind} service={}/{}:{} {}",
                service.namespace,
                service.name,
                service.port,
                uri.as_str()
            )
        }
    };
    if let Some(m) = &i.http_method {
        out.push_str(&format!(" method={m}"));
    }
    if i.timeout.as_millis() != 29_000 {
        out.push_str(&format!(" timeout={}ms", i.timeout.as_millis()));
    }
    for p in &i.cache_key_parameters {
        out.push_str(&format!(" cache-key={}.{}", p.location.as_str(), p.name));
    }
    if let Some(ns) = &i.cache_namespace {
        out.push_str(&format!(" cache-namespace={ns}"));
    }
    for p in &i.request_parameters {
        let source = match &p.source {
            ValueSource::Request(r) => format!("method.request.{}.{}", r.location.as_str(), r.name),
            ValueSource::StageVariable(n) => format!("stageVariables.{n}"),
            ValueSource::Static(v) => format!("'{v}'"),
            ValueSource::Authorizer(n) => format!("context.authorizer.{n}"),
        };
        out.push_str(&format!(
            " {}.{}<-{source}",
            p.target.location.as_str(),
            p.target.name
        ));
    }
    for r in &i.responses {
        let pattern = r.selection_pattern.as_ref().map_or("default".to_string(), |p| {
            // Show the pattern as written, without the anchors convert adds.
            let p = p.as_str();
            p.strip_prefix("^(?:")
                .and_then(|p| p.strip_suffix(")$"))
                .unwrap_or(p)
                .to_string()
        });
        let headers: Vec<String> = r
            .headers
            .iter()
            .map(|(n, s)| match s {
                HeaderSource::Backend(b) => format!("{n}<-{b}"),
                HeaderSource::Static(v) => format!("{n}='{v}'"),
            })
            .collect();
        out.push_str(&format!(
            " [{pattern} => {}{}]",
            r.status,
            if headers.is_empty() {
                String::new()
            } else {
                format!(" {}", headers.join(","))
            }
        ));
    }
    if i.insecure_skip_verify {
        out.push_str(" insecure");
    }
    if key_required {
        out.push_str(" (api key)");
    }
    out
}
