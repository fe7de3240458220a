//! Request validation: models (JSON Schema draft 4, as AWS models), compiled once when the
//! RestApi is converted, and the per-method settings a request validator turns on.
//!
//! A model's schema may reference another model of the same API, in AWS's form
//! `https://apigateway.amazonaws.com/restapis/{apiId}/models/{name}` (any api id: a definition
//! cannot know its own) or the short form `#/models/{name}`. Both are rewritten to one
//! internal URI per model before compiling, and every model of the API is registered under
//! its URI, so references resolve without any I/O; a reference to anything else is refused
//! when the model is compiled. References inside one schema (`#/definitions/x`) work as usual.
//!
//! Compiled validators live in the model ([`MethodDef`](super::MethodDef) holds them through
//! [`BodyValidation`]), so the routing table carries them and a request only runs one.
//! `jsonschema` is a pure crate (no I/O with its default features off), which is why it may
//! sit in the core.

mod fast;

use std::{collections::BTreeMap, fmt, sync::Arc};

use serde_json::Value;

/// The prefix of AWS's model URIs (`…/restapis/{apiId}/models/{name}`).
const AWS_MODEL_PREFIX: &str = "https://apigateway.amazonaws.com/restapis/";
/// The short form of a model reference.
const SHORT_PREFIX: &str = "#/models/";
/// Where each model is registered for reference resolution.
const INTERNAL_BASE: &str = "https://models.turnpike.invalid/";

/// The `$default` key of `requestModels`: the model for content types without their own.
pub const DEFAULT_CONTENT_TYPE: &str = "$default";

/// A model name: letters and digits, as AWS allows.
pub fn is_model_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A compiled model. Two models are equal when their names and schemas are.
#[derive(Clone)]
pub struct Model {
    name: Box<str>,
    schema: Value,
    validator: Arc<jsonschema::Validator>,
    /// The one-pass check of bodies the schema accepts; `None` when the schema is beyond it.
    fast: Option<Arc<fast::Plan>>,
}

impl PartialEq for Model {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.schema == other.schema
    }
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Why a body failed validation: the schema's complaint, without the body's values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyInvalid(pub String);

// === impl Model ===

impl Model {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Validates a request body. An empty body is validated as JSON `null`; a body that is not
    /// JSON fails. The error lists every schema failure as `[/path: keyword …, …]` (AWS's
    /// `$context.error.validationErrorString` is such a bracketed list): instance paths and
    /// schema keywords only, never a value of the body.
    ///
    /// A body the model's fast path accepts is valid without being parsed into a `Value`;
    /// every other body (and every invalid one) takes the full parse and validation below.
    pub fn validate(&self, body: &[u8]) -> Result<(), BodyInvalid> {
        let blank = body.iter().all(u8::is_ascii_whitespace);
        if !blank && self.fast.as_ref().is_some_and(|plan| plan.accepts(body)) {
            return Ok(());
        }
        self.validate_fully(body, blank)
    }

    /// Whether the model has a fast path (for tests and benchmarks).
    #[doc(hidden)]
    pub fn has_fast_path(&self) -> bool {
        self.fast.is_some()
    }

    /// Whether the fast path alone accepts the body (for tests, fuzzing and benchmarks).
    #[doc(hidden)]
    pub fn fast_path_accepts(&self, body: &[u8]) -> bool {
        !body.iter().all(u8::is_ascii_whitespace) && self.fast.as_ref().is_some_and(|plan| plan.accepts(body))
    }

    /// The slow path alone: `serde_json`, then the model's validator (for tests, fuzzing and
    /// benchmarks; [`validate`](Self::validate) is the same answer).
    #[doc(hidden)]
    pub fn validate_slowly(&self, body: &[u8]) -> Result<(), BodyInvalid> {
        self.validate_fully(body, body.iter().all(u8::is_ascii_whitespace))
    }

    fn validate_fully(&self, body: &[u8], blank: bool) -> Result<(), BodyInvalid> {
        let instance: Value = if blank {
            Value::Null
        } else {
            serde_json::from_slice(body).map_err(|e| {
                BodyInvalid(format!(
                    "[Invalid JSON at line {} column {}: {}]",
                    e.line(),
                    e.column(),
                    json_error_kind(&e)
                ))
            })?
        };
        if self.validator.is_valid(&instance) {
            return Ok(());
        }
        let mut out = String::from("[");
        for (i, error) in self.validator.iter_errors(&instance).take(10).enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            describe(&mut out, &error);
        }
        out.push(']');
        Err(BodyInvalid(out))
    }
}

fn json_error_kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "invalid data",
        serde_json::error::Category::Io => "read error",
    }
}

/// `"/price: type"`, `"/: required property \"name\""`: where, and which keyword of the schema
/// failed (from the schema path), never the offending value.
fn describe(out: &mut String, error: &jsonschema::ValidationError<'_>) {
    let at = error.instance_path().to_string();
    out.push_str(if at.is_empty() { "/" } else { &at });
    out.push_str(": ");
    let schema_path = error.schema_path().to_string();
    let keyword = schema_path
        .rsplit('/')
        .find(|s| s.parse::<usize>().is_err())
        .unwrap_or("schema");
    if let jsonschema::error::ValidationErrorKind::Required { property } = error.kind() {
        out.push_str("required property ");
        out.push_str(&property.to_string());
        out.push_str(" is missing");
        return;
    }
    out.push_str("fails \"");
    out.push_str(keyword);
    out.push_str("\" (schema ");
    out.push_str(if schema_path.is_empty() { "/" } else { &schema_path });
    out.push(')');
}

/// Compiles the models of an API. Each result is the model or what is wrong with its schema
/// (a message without the field path); a model that references a missing one fails too.
pub fn compile_models(schemas: &BTreeMap<String, Value>) -> BTreeMap<String, Result<Arc<Model>, String>> {
    // Rewrite every schema's model references first: each compiled model needs all of them.
    let mut rewritten: BTreeMap<&str, Result<Value, String>> = BTreeMap::new();
    for (name, schema) in schemas {
        let parsed = match schema {
            Value::String(text) => serde_json::from_str::<Value>(text)
                .map_err(|e| format!("the schema is a string that is not JSON: {e}")),
            other => Ok(other.clone()),
        };
        let result = parsed.and_then(|mut v| {
            if !(v.is_object() || v.is_boolean()) {
                return Err("a schema is a JSON object".to_string());
            }
            rewrite_refs(&mut v, schemas)?;
            Ok(v)
        });
        rewritten.insert(name, result);
    }
    let resources: Vec<(String, Value)> = rewritten
        .iter()
        .filter_map(|(name, r)| {
            r.as_ref()
                .ok()
                .map(|v| (format!("{INTERNAL_BASE}{name}"), v.clone()))
        })
        .collect();
    let compiled_models: BTreeMap<&str, &Value> = rewritten
        .iter()
        .filter_map(|(name, r)| Some((*name, r.as_ref().ok()?)))
        .collect();
    rewritten
        .iter()
        .map(|(&name, result)| {
            let compiled = result.as_ref().map_err(Clone::clone).and_then(|schema| {
                let mut opts = options(jsonschema::Draft::Draft4);
                for (uri, contents) in &resources {
                    if uri.strip_prefix(INTERNAL_BASE) != Some(name) {
                        opts = opts.with_resource(uri.as_str(), resource(contents));
                    }
                }
                let mut root = schema.clone();
                if let Value::Object(m) = &mut root {
                    m.insert("id".into(), Value::String(format!("{INTERNAL_BASE}{name}")));
                }
                let validator = opts
                    .build(&root)
                    .map_err(|e| format!("not a valid JSON Schema (draft 4): {e}"))?;
                let fast = fast::Plan::build(name, &root, &compiled_models, INTERNAL_BASE, &options);
                Ok(Arc::new(Model {
                    name: name.into(),
                    schema: schema.clone(),
                    validator: Arc::new(validator),
                    fast: fast.map(Arc::new),
                }))
            });
            (name.to_string(), compiled)
        })
        .collect()
}

/// A model as another model's reference reaches it: draft 4, as every model, unless its
/// `$schema` names another draft.
fn resource(contents: &Value) -> jsonschema::Resource {
    match jsonschema::Draft::Draft4.detect(contents) {
        jsonschema::Draft::Unknown => jsonschema::Resource::from_contents(contents.clone()),
        draft => draft.create_resource(contents.clone()),
    }
}

/// The options every model (and every part of one the fast path compiles) is compiled with.
/// `pattern`s run on the `regex` crate (linear time): a model's pattern must not let a request
/// body make the gateway backtrack for ever.
fn options(draft: jsonschema::Draft) -> jsonschema::ValidationOptions {
    jsonschema::options()
        .with_draft(draft)
        .with_pattern_options(jsonschema::PatternOptions::regex())
}

/// Rewrites `$ref`s to models (both forms) to their internal URIs; fails on a reference to a
/// model that does not exist or to anything outside the API.
fn rewrite_refs(v: &mut Value, models: &BTreeMap<String, Value>) -> Result<(), String> {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                if let Some(name) = model_ref(r) {
                    if !models.contains_key(name) {
                        return Err(format!("$ref {r:?}: there is no model {name:?} in spec.models"));
                    }
                    *r = format!("{INTERNAL_BASE}{name}");
                } else if !r.starts_with('#') {
                    return Err(format!(
                        "$ref {r:?}: only references within the schema (#/…) and to models of this API (#/models/NAME or {AWS_MODEL_PREFIX}API_ID/models/NAME) are allowed"
                    ));
                }
            }
            for child in m.values_mut() {
                rewrite_refs(child, models)?;
            }
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(|i| rewrite_refs(i, models)),
        _ => Ok(()),
    }
}

/// The model a reference names, in either form.
fn model_ref(r: &str) -> Option<&str> {
    if let Some(name) = r.strip_prefix(SHORT_PREFIX) {
        return Some(name);
    }
    let rest = r.strip_prefix(AWS_MODEL_PREFIX)?;
    let (_api, name) = rest.split_once("/models/")?;
    Some(name)
}

/// What a method's request validator checks, with the models resolved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestValidation {
    /// Check the required request parameters.
    pub parameters: bool,
    /// Validate the body against the model for its content type; `None` when the validator
    /// does not validate bodies or the method has no models.
    pub body: Option<BodyValidation>,
}

/// The models of a method by content type (lower-case media type, without parameters).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BodyValidation {
    pub by_content_type: Vec<(String, Arc<Model>)>,
    /// The `$default` model.
    pub default: Option<Arc<Model>>,
}

impl BodyValidation {
    /// The model for a request's Content-Type header (its media type, case-insensitive), else
    /// the `$default` model.
    pub fn model_for(&self, content_type: Option<&str>) -> Option<&Model> {
        let media = content_type
            .map(|ct| ct.split(';').next().unwrap_or_default().trim())
            .unwrap_or_default();
        self.by_content_type
            .iter()
            .find(|(ct, _)| ct.eq_ignore_ascii_case(media))
            .map(|(_, m)| &**m)
            .or(self.default.as_deref())
    }
}

// === Binary media types and content handling ===

/// How a payload is converted between text and binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContentHandling {
    ConvertToBinary,
    ConvertToText,
}

/// The API's binary media types: `type/subtype`, `type/*` or `*/*`, lower-case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BinaryMediaTypes(pub Vec<String>);

impl BinaryMediaTypes {
    /// Whether a media type (a Content-Type value or one Accept entry, parameters allowed) is
    /// binary for this API.
    pub fn matches(&self, media_type: &str) -> bool {
        if self.0.is_empty() {
            return false;
        }
        let media = media_type.split(';').next().unwrap_or_default().trim();
        let (ty, sub) = media.split_once('/').unwrap_or((media, ""));
        self.0.iter().any(|pattern| {
            let (pty, psub) = pattern.split_once('/').unwrap_or((pattern, ""));
            (pty == "*" || pty.eq_ignore_ascii_case(ty)) && (psub == "*" || psub.eq_ignore_ascii_case(sub))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Whether a binary media type pattern is well-formed: `type/subtype`, `type/*` or `*/*`.
pub fn is_media_range(s: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&b))
    };
    match s.split_once('/') {
        Some((ty, sub)) => token(ty) && token(sub) && (ty != "*" || sub == "*"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn models(pairs: &[(&str, Value)]) -> BTreeMap<String, Result<Arc<Model>, String>> {
        compile_models(&pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    #[test]
    fn references_between_models_in_both_forms() {
        let compiled = models(&[
            (
                "Order",
                json!({"type": "object", "required": ["pet"], "properties": {
                    "pet": {"$ref": "https://apigateway.amazonaws.com/restapis/abc/models/Pet"},
                    "also": {"$ref": "#/models/Pet"}}}),
            ),
            ("Pet", json!({"type": "object", "required": ["name"]})),
        ]);
        let order = compiled["Order"].as_ref().expect("compiles");
        assert_eq!(order.validate(br#"{"pet": {"name": "x"}}"#), Ok(()));
        let err = order.validate(br#"{"pet": {}}"#).expect_err("nested required");
        assert!(
            err.0.contains("/pet: required property \"name\" is missing"),
            "{err:?}"
        );
        assert!(order.validate(br#"{"pet": {"name": 1}, "also": 3}"#).is_err());
    }

    #[test]
    fn a_missing_model_or_a_foreign_reference_fails_to_compile() {
        let compiled = models(&[
            ("A", json!({"$ref": "#/models/Nope"})),
            ("B", json!({"$ref": "https://example.com/schema.json"})),
            ("C", json!({"type": 12})),
            ("D", json!("{\"type\": \"string\"}")),
        ]);
        assert!(
            compiled["A"]
                .as_ref()
                .expect_err("dangling")
                .contains("no model \"Nope\"")
        );
        assert!(
            compiled["B"]
                .as_ref()
                .expect_err("foreign")
                .contains("only references")
        );
        assert!(
            compiled["C"]
                .as_ref()
                .expect_err("invalid")
                .contains("not a valid JSON Schema")
        );
        assert!(
            compiled["D"]
                .as_ref()
                .expect("a schema as text")
                .validate(b"\"s\"")
                .is_ok()
        );
    }

    #[test]
    fn errors_name_paths_and_keywords_never_values() {
        let compiled = models(&[(
            "M",
            json!({"type": "object", "properties": {"secret": {"type": "integer"}}}),
        )]);
        let m = compiled["M"].as_ref().expect("compiles");
        let err = m.validate(br#"{"secret": "hunter2"}"#).expect_err("wrong type");
        assert_eq!(
            err.0,
            "[/secret: fails \"type\" (schema /properties/secret/type)]"
        );
        let err = m.validate(b"{hunter2").expect_err("not JSON");
        assert!(
            !err.0.contains("hunter2") && err.0.starts_with("[Invalid JSON"),
            "{err:?}"
        );
    }

    #[test]
    fn binary_media_types_match_wildcards() {
        let t = BinaryMediaTypes(vec!["image/*".into(), "application/octet-stream".into()]);
        assert!(t.matches("image/png"));
        assert!(t.matches("Application/Octet-Stream; q=0.9"));
        assert!(!t.matches("application/json"));
        assert!(BinaryMediaTypes(vec!["*/*".into()]).matches("text/plain"));
        assert!(!BinaryMediaTypes::default().matches("image/png"));
        assert!(is_media_range("image/*") && is_media_range("*/*") && !is_media_range("*/png"));
    }
}
