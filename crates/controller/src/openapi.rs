//! `RestApi.spec.openApi`: the OpenAPI document a RestApi is imported from (AWS PutRestApi).
//!
//! The controller expands every such RestApi before anything else reads it: the document
//! (inline `body`, or a key of a ConfigMap labelled [`OPENAPI_CONFIG_MAP_LABEL`]) goes through
//! [`turnpike_openapi::import`], and the spec's own fields are laid over it (`mode: merge`,
//! the default) or must be empty (`mode: overwrite`: the document is the whole API, and a
//! spec that also says something would silently lose it, so it is refused). The expanded spec
//! then replaces the RestApi's in [`Objects`](crate::ingest::Objects), so conversion, Deployment
//! snapshots, digests and exports all see the imported definition, and conversion
//! (`turnpike_api::convert`) never depends on the OpenAPI crate.
//!
//! Every import warning is kept for the `OpenApiImported` condition, with its JSON pointer. A
//! document that cannot be imported (not OpenAPI, a missing ConfigMap or key, a mode the spec
//! does not fit) makes only that RestApi invalid (`Accepted=False` naming
//! `spec.openApi...`); its stages keep their Deployments' snapshots and other APIs are
//! untouched.
//!
//! ConfigMaps are watched like the API key Secrets: one label-selected watch per scope
//! (`labelSelector=turnpike.dev/openapi`), never every ConfigMap. A change to the ConfigMap
//! pokes a rebuild, and the new resourceVersion imports it again.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt as _;
use turnpike_api::{
    RestApi, RestApiSpec,
    v1alpha1::rest_api::{OpenApiMode, OpenApiSource},
};
use turnpike_core::{
    compile::OpenApiImport,
    model::{FieldPath, Invalid, ObjectKey, Reason},
};

/// The label a ConfigMap holding an OpenAPI document must carry (any value) for the
/// controller to see it.
pub const OPENAPI_CONFIG_MAP_LABEL: &str = "turnpike.dev/openapi";

/// What expanding one RestApi gave.
#[derive(Clone, Debug, PartialEq)]
pub struct Expansion {
    /// The expanded spec (without `openApi`), or `None` when the import failed.
    pub spec: Option<RestApiSpec>,
    /// The outcome, for the `OpenApiImported` condition.
    pub import: OpenApiImport,
    /// The resourceVersion of the ConfigMap read (empty for an inline document): a new one
    /// imports again.
    pub source_version: String,
    /// For a failed import: the field at fault (`spec.openApi...`) and why.
    failure: Option<(FieldPath, String)>,
}

impl Expansion {
    /// A failure at `spec.openApi.{field}` (`spec.openApi` when `field` is empty).
    fn failed(reason: Reason, field: &str, message: String, source_version: String) -> Self {
        let mut path = FieldPath::spec().field("openApi");
        if !field.is_empty() {
            path = path.field(field);
        }
        Expansion {
            spec: None,
            import: OpenApiImport::Failed {
                reason,
                message: format!("{path}: {message}"),
            },
            source_version,
            failure: Some((path, message)),
        }
    }

    /// The failure as a validation error at `spec.openApi`, if the import failed.
    pub fn invalid(&self) -> Option<Invalid> {
        match (&self.import, &self.failure) {
            (OpenApiImport::Failed { reason, .. }, Some((field, message))) => {
                Some(Invalid::new(field, *reason, message.clone()))
            }
            _ => None,
        }
    }
}

/// The ConfigMap `name` in `namespace` among the labelled ones.
fn config_map<'c>(config_maps: &'c [ConfigMap], namespace: &str, name: &str) -> Option<&'c ConfigMap> {
    config_maps
        .iter()
        .find(|c| c.name_any() == name && c.namespace().as_deref() == Some(namespace))
}

/// The resourceVersion of the ConfigMap `source` reads (empty for inline documents), so a
/// cache can tell when to import again without importing.
pub fn source_version(namespace: &str, source: &OpenApiSource, config_maps: &[ConfigMap]) -> String {
    source
        .config_map_key_ref
        .as_ref()
        .and_then(|r| config_map(config_maps, namespace, &r.name))
        .and_then(|c| c.resource_version())
        .unwrap_or_default()
}

/// Expands `spec` (which has `openApi`) of a RestApi in `namespace`, reading ConfigMaps from
/// the labelled ones.
pub fn expand(namespace: &str, spec: &RestApiSpec, config_maps: &[ConfigMap]) -> Option<Expansion> {
    let source = spec.open_api.as_ref()?;
    let version = source_version(namespace, source, config_maps);
    let text = match (&source.body, &source.config_map_key_ref) {
        (Some(body), None) => body.as_str(),
        (None, Some(r)) => {
            let Some(cm) = config_map(config_maps, namespace, &r.name) else {
                return Some(Expansion::failed(
                    Reason::ConfigMapNotFound,
                    "configMapKeyRef",
                    format!(
                        "ConfigMap {:?} not found (the controller sees only ConfigMaps labelled \
                         {OPENAPI_CONFIG_MAP_LABEL})",
                        r.name
                    ),
                    version,
                ));
            };
            match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                Some(text) => text.as_str(),
                None => {
                    return Some(Expansion::failed(
                        Reason::ConfigMapNotFound,
                        "configMapKeyRef.key",
                        format!("ConfigMap {:?} has no key {:?} in data", r.name, r.key),
                        version,
                    ));
                }
            }
        }
        _ => {
            return Some(Expansion::failed(
                Reason::InvalidOpenApi,
                "",
                "exactly one of body and configMapKeyRef".into(),
                version,
            ));
        }
    };
    let imported = match turnpike_openapi::import(text) {
        Ok(i) => i,
        Err(e) => {
            let field = if source.body.is_some() {
                "body"
            } else {
                "configMapKeyRef"
            };
            return Some(Expansion::failed(
                Reason::InvalidOpenApi,
                field,
                e.to_string(),
                version,
            ));
        }
    };
    let own = RestApiSpec {
        open_api: None,
        ..spec.clone()
    };
    let expanded = match source.mode.unwrap_or_default() {
        OpenApiMode::Merge => merge(imported.spec, own),
        OpenApiMode::Overwrite => {
            let set = set_fields(&own);
            if !set.is_empty() {
                return Some(Expansion::failed(
                    Reason::InvalidOpenApi,
                    "mode",
                    format!(
                        "overwrite takes the whole API from the document, but the spec also \
                         sets {}; remove them or use mode merge",
                        set.join(", ")
                    ),
                    version,
                ));
            }
            imported.spec
        }
    };
    Some(Expansion {
        spec: Some(expanded),
        import: OpenApiImport::Imported {
            warnings: imported
                .warnings
                .into_iter()
                .map(|w| (w.pointer, w.message))
                .collect(),
        },
        source_version: version,
        failure: None,
    })
}

/// The spec fields (`spec.resources`, ...) that say something.
fn set_fields(spec: &RestApiSpec) -> Vec<String> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(spec) else {
        return Vec::new();
    };
    fields
        .into_iter()
        .filter(|(_, v)| match v {
            serde_json::Value::Null => false,
            serde_json::Value::Object(m) => !m.is_empty(),
            serde_json::Value::Array(a) => !a.is_empty(),
            _ => true,
        })
        .map(|(k, _)| format!("spec.{k}"))
        .collect()
}

/// AWS's `mode=merge`: the document's definitions, with the spec's laid over them. A method
/// of the spec replaces the document's method of the same resource and verb; models,
/// validators, authorizers and gateway responses are replaced by name; settings the spec sets
/// win; binary media types are the union.
pub fn merge(mut base: RestApiSpec, over: RestApiSpec) -> RestApiSpec {
    // Destructured whole: a new field must say how it merges.
    let RestApiSpec {
        description,
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
        open_api: _,
    } = over;
    fn or<T>(over: Option<T>, base: &mut Option<T>) {
        if over.is_some() {
            *base = over;
        }
    }
    or(description, &mut base.description);
    or(endpoint_configuration, &mut base.endpoint_configuration);
    or(api_key_source, &mut base.api_key_source);
    or(policy, &mut base.policy);
    or(minimum_compression_size, &mut base.minimum_compression_size);
    or(cors, &mut base.cors);
    or(route_selection_expression, &mut base.route_selection_expression);
    for (path, methods) in resources {
        base.resources.entry(path).or_default().extend(methods);
    }
    base.models.extend(models);
    base.request_validators.extend(request_validators);
    base.gateway_responses.extend(gateway_responses);
    base.authorizers.extend(authorizers);
    base.routes.extend(routes);
    for t in binary_media_types {
        if !base.binary_media_types.contains(&t) {
            base.binary_media_types.push(t);
        }
    }
    if !protocol_type.is_rest() {
        base.protocol_type = protocol_type;
    }
    base.open_api = None;
    base
}

/// Imports again only what changed: expansions by RestApi uid, resourceVersion and source
/// ConfigMap resourceVersion; every pass keeps only the entries it used.
#[derive(Debug, Default)]
pub struct ImportCache {
    entries: HashMap<(String, String, String), Expansion>,
}

impl ImportCache {
    /// Expands every RestApi of `rest_apis` that has `spec.openApi`, in place; returns the
    /// outcomes by RestApi. A failed import leaves the spec as it was (its outcome makes the
    /// RestApi invalid).
    pub fn expand_all(
        &mut self,
        rest_apis: &mut [RestApi],
        config_maps: &[ConfigMap],
    ) -> BTreeMap<ObjectKey, Expansion> {
        let mut used = HashMap::new();
        let mut out = BTreeMap::new();
        for api in rest_apis.iter_mut() {
            let Some(source) = &api.spec.open_api else {
                continue;
            };
            let namespace = api.namespace().unwrap_or_default();
            let key = (
                api.uid().unwrap_or_default(),
                api.resource_version().unwrap_or_default(),
                source_version(&namespace, source, config_maps),
            );
            // Objects without a resourceVersion (read from files) are never cached.
            let cacheable = !key.1.is_empty();
            let expansion = match self.entries.remove(&key) {
                Some(e) if cacheable => e,
                _ => match expand(&namespace, &api.spec, config_maps) {
                    Some(e) => e,
                    None => continue,
                },
            };
            if let Some(spec) = &expansion.spec {
                api.spec = spec.clone();
            }
            out.insert(ObjectKey::new(namespace, api.name_any()), expansion.clone());
            if cacheable {
                used.insert(key, expansion);
            }
        }
        self.entries = used;
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use turnpike_api::v1alpha1::rest_api::{ConfigMapKeyRef, IntegrationSpec, IntegrationType, MethodSpec};

    use super::*;

    const DOC: &str = r#"
openapi: 3.0.1
info: {title: pets}
paths:
  /pets:
    get:
      x-amazon-apigateway-integration: {type: mock, requestTemplates: {application/json: '{"statusCode": 200}'}}
    post:
      x-amazon-apigateway-integration:
        type: mock
        credentials: arn:aws:iam::123:role/x
"#;

    fn mock() -> MethodSpec {
        MethodSpec {
            integration: IntegrationSpec {
                type_: IntegrationType::Mock,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn spec(mode: Option<OpenApiMode>) -> RestApiSpec {
        RestApiSpec {
            open_api: Some(OpenApiSource {
                body: Some(DOC.into()),
                config_map_key_ref: None,
                mode,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn merge_lays_the_spec_over_the_document() {
        let mut s = spec(None);
        s.resources
            .insert("/pets".into(), BTreeMap::from([("DELETE".to_string(), mock())]));
        s.resources
            .insert("/own".into(), BTreeMap::from([("GET".to_string(), mock())]));
        let e = expand("ns", &s, &[]).expect("has openApi");
        let out = e.spec.expect("imported");
        assert_eq!(out.open_api, None);
        let pets: Vec<&String> = out.resources["/pets"].keys().collect();
        assert_eq!(pets, ["DELETE", "GET", "POST"]);
        assert!(out.resources.contains_key("/own"));
        let OpenApiImport::Imported { warnings } = e.import else {
            panic!("imported")
        };
        assert!(
            warnings
                .iter()
                .any(|(p, _)| p == "/paths/~1pets/post/x-amazon-apigateway-integration/credentials"),
            "{warnings:?}"
        );
    }

    #[test]
    fn overwrite_refuses_a_spec_that_says_more() {
        let e = expand("ns", &spec(Some(OpenApiMode::Overwrite)), &[]).expect("openApi");
        assert!(e.spec.is_some());
        let mut s = spec(Some(OpenApiMode::Overwrite));
        s.resources
            .insert("/own".into(), BTreeMap::from([("GET".to_string(), mock())]));
        let e = expand("ns", &s, &[]).expect("openApi");
        assert_eq!(e.spec, None);
        let invalid = e.invalid().expect("invalid");
        assert_eq!(invalid.reason, Reason::InvalidOpenApi);
        assert!(invalid.message.contains("spec.resources"), "{}", invalid.message);
    }

    #[test]
    fn failures_name_their_reason() {
        let mut s = spec(None);
        s.open_api = Some(OpenApiSource {
            body: Some("{not: [json".into()),
            ..Default::default()
        });
        let e = expand("ns", &s, &[]).expect("openApi");
        assert_eq!(e.invalid().map(|i| i.reason), Some(Reason::InvalidOpenApi));

        s.open_api = Some(OpenApiSource {
            config_map_key_ref: Some(ConfigMapKeyRef {
                name: "doc".into(),
                key: "openapi.yaml".into(),
            }),
            ..Default::default()
        });
        let e = expand("ns", &s, &[]).expect("openApi");
        assert_eq!(e.invalid().map(|i| i.reason), Some(Reason::ConfigMapNotFound));

        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("doc".into());
        cm.metadata.namespace = Some("ns".into());
        cm.metadata.resource_version = Some("7".into());
        cm.data = Some(BTreeMap::from([("openapi.yaml".to_string(), DOC.to_string())]));
        let e = expand("ns", &s, std::slice::from_ref(&cm)).expect("openApi");
        assert!(e.spec.is_some());
        assert_eq!(e.source_version, "7");
        // Another namespace's ConfigMap is not read.
        let e = expand("other", &s, &[cm]).expect("openApi");
        assert_eq!(e.invalid().map(|i| i.reason), Some(Reason::ConfigMapNotFound));
    }
}
