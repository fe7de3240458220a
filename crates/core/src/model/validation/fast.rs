//! The fast path of body validation: a body the schema accepts is checked in one pass over its
//! bytes, without building a `serde_json::Value` of it.
//!
//! A [`Plan`] is compiled with the model. Objects (`type: object` with `properties` and
//! `required`), arrays (`type: array` with one `items` schema and item bounds), bare `type`
//! checks, numbers with bounds, strings with length bounds (their `pattern` run by
//! `jsonschema` on the decoded string) and references (to another model or `#/…` inside one)
//! are walked here; any other
//! subschema without references is compiled on its own by `jsonschema` (same draft, same
//! options as the model) and checks the value at its place, which is the only part of the body
//! turned into a `Value`. A subschema the plan cannot express exactly becomes [`Node::Bail`].
//!
//! The plan only ever says "valid for sure": anything else (a failure, a duplicate key the
//! schema looks at, a string escape it cannot decode cheaply, deep nesting, a `Bail`) sends the
//! body down the slow path ([`Model::validate`](super::Model::validate): `serde_json` then the
//! model's validator), which decides and words the error exactly as before. The scanner is
//! therefore stricter than `serde_json`, never laxer: it accepts only RFC 8259 JSON with valid
//! UTF-8 strings, numbers `serde_json` parses to finite values, and nesting well within its
//! recursion limit.

use std::collections::HashMap;

use jsonschema::Draft;
use serde_json::{Map, Value};

/// Containers deeper than this go to the slow path (`serde_json` stops at 128).
const MAX_DEPTH: usize = 64;
/// Subschemas per plan; a larger schema gets no plan (its bodies take the slow path).
const MAX_NODES: usize = 512;
/// Names an object node tracks (properties ∪ required): one bit each.
const MAX_NAMES: usize = 64;

/// Keywords with no effect on validation, allowed beside structural ones.
const ANNOTATIONS: &[&str] = &["title", "description", "default", "examples", "$comment"];
/// Keys that change how references resolve: a subschema holding one anywhere is not compiled
/// on its own.
const REFERENCING: &[&str] = &[
    "$ref",
    "id",
    "$id",
    "$schema",
    "$anchor",
    "$dynamicRef",
    "$dynamicAnchor",
    "$recursiveRef",
    "$recursiveAnchor",
];

/// A model's compiled fast path.
pub(super) struct Plan {
    nodes: Vec<Node>,
}

/// JSON kinds of a `type` check, one bit each.
const OBJECT: u8 = 1;
const ARRAY: u8 = 2;
const STRING: u8 = 4;
const NUMBER: u8 = 8;
const BOOLEAN: u8 = 16;
const NULL: u8 = 32;

enum Node {
    /// Any value (an empty schema, or annotations only).
    Any,
    /// `type` alone (without `integer`): the value's kind is one of these.
    Kinds(u8),
    /// `type: object` with `properties` and `required`: names sorted, each with its schema
    /// (a node index) when it has one, and whether it is required.
    Object(Vec<Name>),
    /// `type: array`, one `items` schema, `minItems`, `maxItems`.
    Array { items: usize, min: u64, max: u64 },
    /// Any other subschema free of references, compiled on its own: the value is built and
    /// checked by it.
    Leaf(Box<jsonschema::Validator>),
    /// `type: number` or `integer` with bounds: the literal's value, read without
    /// `serde_json` when that is exact, against each bound.
    Number { integer: bool, bounds: Box<[Bound]> },
    /// `type: string` with `minLength`, `maxLength` (in characters) and a `pattern`, checked
    /// by a validator of the pattern alone.
    Text {
        min: u64,
        max: u64,
        pattern: Option<Box<jsonschema::Validator>>,
    },
    /// A reference: the node it resolves to.
    Ref(usize),
    /// What the plan cannot express: a value here takes the slow path.
    Bail,
}

/// A number's bound: the value must compare with `limit` as `cmp` says. Limits are exact
/// `f64`s (integers beyond 2^53 are left to `jsonschema`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bound {
    cmp: Cmp,
    limit: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cmp {
    Ge,
    Gt,
    Le,
    Lt,
}

impl Bound {
    fn holds(self, v: f64) -> bool {
        match self.cmp {
            Cmp::Ge => v >= self.limit,
            Cmp::Gt => v > self.limit,
            Cmp::Le => v <= self.limit,
            Cmp::Lt => v < self.limit,
        }
    }
}

struct Name {
    name: Box<str>,
    node: Option<usize>,
    required: bool,
}

// === Building ===

/// The documents references reach: the model being compiled first, then the API's other
/// models (by name) as they are referenced.
struct Builder<'s> {
    root_name: &'s str,
    root: &'s Value,
    models: &'s std::collections::BTreeMap<&'s str, &'s Value>,
    options: &'s dyn Fn(Draft) -> jsonschema::ValidationOptions,
    internal_base: &'s str,
    nodes: Vec<Node>,
    /// Node index of each (document, JSON pointer) already built: references may cycle.
    built: HashMap<(String, String), usize>,
}

/// The document a subschema lives in: its model's name, contents and draft.
#[derive(Clone, Copy)]
struct Doc<'s> {
    name: &'s str,
    contents: &'s Value,
    draft: Draft,
}

impl Plan {
    /// The plan of the model `root_name` (its schema as compiled, `root`), whose references
    /// to the API's other `models` were rewritten to `internal_base` + name. `options` gives
    /// the validation options the model itself was compiled with, for a draft. `None` when
    /// the whole model is beyond the plan.
    pub(super) fn build(
        root_name: &str,
        root: &Value,
        models: &std::collections::BTreeMap<&str, &Value>,
        internal_base: &str,
        options: &dyn Fn(Draft) -> jsonschema::ValidationOptions,
    ) -> Option<Plan> {
        let mut b = Builder {
            root_name,
            root,
            models,
            options,
            internal_base,
            nodes: Vec::new(),
            built: HashMap::new(),
        };
        let doc = Doc {
            name: root_name,
            contents: root,
            draft: Draft::Draft4,
        };
        let root = b.node(doc, "", 0)?;
        if matches!(b.nodes[root], Node::Bail) {
            return None;
        }
        debug_assert_eq!(root, 0);
        Some(Plan { nodes: b.nodes })
    }
}

impl<'s> Builder<'s> {
    /// The node of the subschema at `pointer` in `doc`; `None` when the plan grows too large.
    fn node(&mut self, doc: Doc<'s>, pointer: &str, depth: usize) -> Option<usize> {
        let key = (doc.name.to_string(), pointer.to_string());
        if let Some(&i) = self.built.get(&key) {
            return Some(i);
        }
        if self.nodes.len() >= MAX_NODES {
            return None;
        }
        let index = self.nodes.len();
        self.nodes.push(Node::Bail);
        if depth > MAX_DEPTH {
            return Some(index);
        }
        self.built.insert(key, index);
        let node = match doc.contents.pointer(pointer) {
            Some(schema) => self.compile(doc, pointer, schema, depth)?,
            None => Node::Bail,
        };
        self.nodes[index] = node;
        Some(index)
    }

    fn compile(&mut self, doc: Doc<'s>, pointer: &str, schema: &'s Value, depth: usize) -> Option<Node> {
        let at_root = pointer.is_empty();
        let map = match schema {
            Value::Object(m) => m,
            Value::Bool(true) if doc.draft != Draft::Draft4 => return Some(Node::Any),
            _ => return Some(self.leaf(doc, schema, at_root)),
        };
        if let Some(r) = map.get("$ref") {
            let legacy = matches!(doc.draft, Draft::Draft4 | Draft::Draft6 | Draft::Draft7);
            let siblings_ignored = legacy
                || map
                    .keys()
                    .all(|k| k == "$ref" || ANNOTATIONS.contains(&k.as_str()));
            let Value::String(r) = r else {
                return Some(Node::Bail);
            };
            if !siblings_ignored || (!at_root && has_id(map)) {
                return Some(Node::Bail);
            }
            return self.reference(doc, r, depth);
        }
        // Keys that matter only at a document's root: its draft, base URI and the definitions
        // references reach (a reference is followed where it is).
        let is_meta = |k: &str| {
            at_root
                && (matches!(k, "$schema" | "definitions" | "$defs")
                    || (doc.name == self.root_name && k == "id"))
        };
        let keys = || {
            map.keys()
                .map(String::as_str)
                .filter(|k| !ANNOTATIONS.contains(k) && !is_meta(k))
        };
        if keys().next().is_none() {
            return Some(Node::Any);
        }
        let structural = |allowed: &[&str]| keys().all(|k| allowed.contains(&k));
        match map.get("type") {
            Some(Value::String(t)) if t == "object" && structural(&["type", "properties", "required"]) => {
                return self.object(doc, pointer, map, depth);
            }
            Some(Value::String(t))
                if t == "array" && structural(&["type", "items", "minItems", "maxItems"]) =>
            {
                if let Some(node) = self.array(doc, pointer, map, depth)? {
                    return Some(node);
                }
            }
            Some(Value::String(t))
                if (t == "number" || t == "integer")
                    && structural(&[
                        "type",
                        "minimum",
                        "maximum",
                        "exclusiveMinimum",
                        "exclusiveMaximum",
                    ]) =>
            {
                if let Some(bounds) = bounds(doc.draft, map) {
                    return Some(Node::Number {
                        integer: t == "integer",
                        bounds,
                    });
                }
            }
            Some(Value::String(t))
                if t == "string" && structural(&["type", "minLength", "maxLength", "pattern"]) =>
            {
                if let Some(node) = self.text(doc, map) {
                    return Some(node);
                }
            }
            Some(t) if structural(&["type"]) => {
                if let Some(kinds) = kinds(t) {
                    return Some(Node::Kinds(kinds));
                }
            }
            _ => {}
        }
        Some(self.leaf(doc, schema, at_root))
    }

    /// A reference: to a model of the API, or a JSON pointer inside the current document.
    fn reference(&mut self, doc: Doc<'s>, r: &str, depth: usize) -> Option<Node> {
        let (target, pointer) = if let Some(fragment) = r.strip_prefix('#') {
            (doc, fragment)
        } else if let Some(name) = r.strip_prefix(self.internal_base) {
            if name.contains('#') {
                return Some(Node::Bail);
            }
            let target = if name == self.root_name {
                Doc {
                    name: self.root_name,
                    contents: self.root,
                    draft: Draft::Draft4,
                }
            } else {
                let Some(&contents) = self.models.get(name) else {
                    return Some(Node::Bail);
                };
                let draft = Draft::Draft4.detect(contents);
                if draft == Draft::Unknown || contents.as_object().is_some_and(has_id) {
                    return Some(Node::Bail);
                }
                Doc {
                    name: self.models.get_key_value(name)?.0,
                    contents,
                    draft,
                }
            };
            (target, "")
        } else {
            return Some(Node::Bail);
        };
        if !(pointer.is_empty() || pointer.starts_with('/')) || pointer.contains('%') {
            return Some(Node::Bail);
        }
        Some(Node::Ref(self.node(target, pointer, depth + 1)?))
    }

    fn object(
        &mut self,
        doc: Doc<'s>,
        pointer: &str,
        map: &'s Map<String, Value>,
        depth: usize,
    ) -> Option<Node> {
        let mut names: Vec<Name> = Vec::new();
        if let Some(props) = map.get("properties") {
            let Value::Object(props) = props else {
                return Some(Node::Bail);
            };
            for key in props.keys() {
                let child = format!("{pointer}/properties/{}", escape_pointer(key));
                let node = self.node(doc, &child, depth + 1)?;
                names.push(Name {
                    name: key.as_str().into(),
                    node: Some(node),
                    required: false,
                });
            }
        }
        if let Some(required) = map.get("required") {
            let Value::Array(required) = required else {
                return Some(Node::Bail);
            };
            for r in required {
                let Value::String(r) = r else {
                    return Some(Node::Bail);
                };
                match names.iter_mut().find(|n| *n.name == **r) {
                    Some(n) => n.required = true,
                    None => names.push(Name {
                        name: r.as_str().into(),
                        node: None,
                        required: true,
                    }),
                }
            }
        }
        if names.len() > MAX_NAMES {
            return Some(Node::Bail);
        }
        names.sort_by(|a, b| a.name.cmp(&b.name));
        Some(Node::Object(names))
    }

    /// `None` when the array schema is beyond the structural form (a leaf then).
    fn array(
        &mut self,
        doc: Doc<'s>,
        pointer: &str,
        map: &'s Map<String, Value>,
        depth: usize,
    ) -> Option<Option<Node>> {
        let bound = |k: &str, default: u64| match map.get(k) {
            None => Some(default),
            Some(v) => v.as_u64(),
        };
        let (Some(min), Some(max)) = (bound("minItems", 0), bound("maxItems", u64::MAX)) else {
            return Some(None);
        };
        let items = match map.get("items") {
            None => {
                let i = self.nodes.len();
                if i >= MAX_NODES {
                    return None;
                }
                self.nodes.push(Node::Any);
                i
            }
            Some(Value::Object(_) | Value::Bool(_)) => {
                self.node(doc, &format!("{pointer}/items"), depth + 1)?
            }
            Some(_) => return Some(None),
        };
        Some(Some(Node::Array { items, min, max }))
    }

    /// `type: string` with length bounds and a pattern; `None` for anything unusual (then a
    /// leaf).
    fn text(&self, doc: Doc<'s>, map: &Map<String, Value>) -> Option<Node> {
        let length = |k: &str, default: u64| match map.get(k) {
            None => Some(default),
            Some(v) => v.as_u64(),
        };
        let pattern = match map.get("pattern") {
            None => None,
            Some(p @ Value::String(_)) => {
                let only = Value::Object(Map::from_iter([("pattern".to_string(), p.clone())]));
                Some(Box::new((self.options)(doc.draft).build(&only).ok()?))
            }
            Some(_) => return None,
        };
        Some(Node::Text {
            min: length("minLength", 0)?,
            max: length("maxLength", u64::MAX)?,
            pattern,
        })
    }

    /// A subschema compiled on its own, when nothing in it depends on where it sits.
    fn leaf(&self, doc: Doc<'s>, schema: &Value, at_root: bool) -> Node {
        if (at_root && doc.name == self.root_name) || references(schema) {
            // The model's own root as a leaf would be the slow path, parsed twice.
            return Node::Bail;
        }
        match (self.options)(doc.draft).build(schema) {
            Ok(v) => Node::Leaf(Box::new(v)),
            Err(_) => Node::Bail,
        }
    }
}

/// The bounds of a number schema, as its draft reads them: `exclusiveMinimum: true` turns
/// draft 4's `minimum` strict; later drafts give `exclusiveMinimum` its own limit. `None` for
/// anything else (a limit that is not an exact `f64`, a keyword of the other draft's form).
fn bounds(draft: Draft, map: &Map<String, Value>) -> Option<Box<[Bound]>> {
    let limit = |v: &Value| -> Option<f64> {
        const EXACT: u64 = 1 << 53;
        let n = v.as_number()?;
        if let Some(u) = n.as_u64() {
            (u <= EXACT).then_some(u as f64)
        } else if let Some(i) = n.as_i64() {
            (i.unsigned_abs() <= EXACT).then_some(i as f64)
        } else {
            n.as_f64()
        }
    };
    let mut out = Vec::new();
    for (key, exclusive_key, plain, strict) in [
        ("minimum", "exclusiveMinimum", Cmp::Ge, Cmp::Gt),
        ("maximum", "exclusiveMaximum", Cmp::Le, Cmp::Lt),
    ] {
        let exclusive = map.get(exclusive_key);
        if draft == Draft::Draft4 {
            let strict_too = match exclusive {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return None,
            };
            match map.get(key) {
                Some(v) => out.push(Bound {
                    cmp: if strict_too { strict } else { plain },
                    limit: limit(v)?,
                }),
                None if exclusive.is_some() => return None,
                None => {}
            }
        } else {
            if let Some(v) = map.get(key) {
                out.push(Bound {
                    cmp: plain,
                    limit: limit(v)?,
                });
            }
            if let Some(v) = exclusive {
                out.push(Bound {
                    cmp: strict,
                    limit: limit(v)?,
                });
            }
        }
    }
    Some(out.into_boxed_slice())
}

/// The value of a number literal (already scanned) when it is exactly what `serde_json` reads:
/// at most 15 significant digits and 22 decimals, no exponent, so that it is one correctly
/// rounded division (as `serde_json` computes it, or any correct parser). With `integer`, only
/// literals without a fraction (what `jsonschema` counts as integers without doubt). `None`
/// leaves the value to the slow path.
fn literal_value(lit: &[u8], integer: bool) -> Option<f64> {
    /// Powers of ten an `f64` holds exactly.
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
        1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    let (negative, digits) = match lit.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, lit),
    };
    let mut mantissa: u64 = 0;
    let mut significant = 0;
    let mut decimals = 0usize;
    let mut fraction = false;
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(c - b'0');
                if mantissa != 0 {
                    significant += 1;
                }
                if significant > 15 {
                    return None;
                }
                decimals += usize::from(fraction);
            }
            b'.' if !fraction && !integer => fraction = true,
            _ => return None,
        }
    }
    let v = mantissa as f64 / *POW10.get(decimals)?;
    Some(if negative { -v } else { v })
}

fn has_id(map: &Map<String, Value>) -> bool {
    map.contains_key("id") || map.contains_key("$id")
}

/// Whether a schema holds a key that takes part in reference resolution, anywhere.
fn references(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| REFERENCING.contains(&k.as_str()) || references(v)),
        Value::Array(items) => items.iter().any(references),
        _ => false,
    }
}

/// The kinds of a `type` value, unless it names `integer` (or anything unknown).
fn kinds(t: &Value) -> Option<u8> {
    let one = |t: &Value| match t.as_str()? {
        "object" => Some(OBJECT),
        "array" => Some(ARRAY),
        "string" => Some(STRING),
        "number" => Some(NUMBER),
        "boolean" => Some(BOOLEAN),
        "null" => Some(NULL),
        _ => None,
    };
    match t {
        Value::Array(ts) => ts.iter().try_fold(0, |acc, t| Some(acc | one(t)?)),
        t => one(t),
    }
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

// === Checking ===

impl Plan {
    /// Whether the body is valid for sure; `false` means "ask the slow path", which decides.
    /// The body is not all whitespace (that one is `null`, decided by the caller).
    pub(super) fn accepts(&self, body: &[u8]) -> bool {
        // UTF-8 once for the whole body (strings are then slices of valid text): at least as
        // strict as `serde_json`, which refuses invalid UTF-8 in strings and anything
        // non-ASCII outside them.
        let Ok(text) = std::str::from_utf8(body) else {
            return false;
        };
        let mut s = Scanner {
            b: body,
            text,
            i: 0,
            scratch: String::new(),
        };
        s.ws();
        if !self.value(&mut s, 0, 0) {
            return false;
        }
        s.ws();
        s.i == body.len()
    }

    fn value(&self, s: &mut Scanner<'_>, mut node: usize, depth: usize) -> bool {
        let mut hops = 0;
        while let Some(Node::Ref(next)) = self.nodes.get(node) {
            node = *next;
            hops += 1;
            if hops > MAX_NODES {
                return false;
            }
        }
        let Some(&c) = s.b.get(s.i) else {
            return false;
        };
        match self.nodes.get(node) {
            Some(Node::Any) => s.skip_value(depth),
            Some(Node::Kinds(k)) => kind_of(c) & k != 0 && s.skip_value(depth),
            Some(Node::Object(names)) => c == b'{' && self.object(s, names, depth),
            Some(Node::Array { items, min, max }) => c == b'[' && self.array(s, *items, (*min, *max), depth),
            Some(Node::Number { integer, bounds }) => {
                let start = s.i;
                if kind_of(c) != NUMBER || !s.number() {
                    return false;
                }
                literal_value(&s.b[start..s.i], *integer).is_some_and(|v| bounds.iter().all(|b| b.holds(v)))
            }
            Some(Node::Text { min, max, pattern }) => {
                let Some((start, end, escaped)) = (c == b'"').then(|| s.string()).flatten() else {
                    return false;
                };
                let text = if escaped {
                    s.scratch.clear();
                    if unescape(&s.b[start..end], &mut s.scratch).is_none() {
                        return false;
                    }
                    s.scratch.as_str()
                } else {
                    // Between two quotes: on character boundaries.
                    match s.text.get(start..end) {
                        Some(t) => t,
                        None => return false,
                    }
                };
                let chars = text.chars().count() as u64;
                chars >= *min
                    && chars <= *max
                    && pattern
                        .as_ref()
                        .is_none_or(|p| p.is_valid(&Value::String(text.to_owned())))
            }
            Some(Node::Leaf(validator)) => {
                let start = s.i;
                if !s.skip_value(depth) {
                    return false;
                }
                // Built by `serde_json` itself: the leaf sees exactly the value the slow
                // path would.
                match serde_json::from_slice::<Value>(&s.b[start..s.i]) {
                    Ok(v) => validator.is_valid(&v),
                    Err(_) => false,
                }
            }
            Some(Node::Ref(_) | Node::Bail) | None => false,
        }
    }

    fn object(&self, s: &mut Scanner<'_>, names: &[Name], depth: usize) -> bool {
        if depth >= MAX_DEPTH {
            return false;
        }
        s.i += 1;
        s.ws();
        let mut seen: u64 = 0;
        if s.eat(b'}') {
            return names.iter().all(|n| !n.required);
        }
        loop {
            let Some(found) = s.key(names) else {
                return false;
            };
            s.ws();
            if !s.eat(b':') {
                return false;
            }
            s.ws();
            let ok = match found {
                Some(i) => {
                    let bit = 1u64 << i;
                    if seen & bit != 0 {
                        // A duplicate the schema looks at: `serde_json` keeps the last one.
                        return false;
                    }
                    seen |= bit;
                    match names[i].node {
                        Some(n) => self.value(s, n, depth + 1),
                        None => s.skip_value(depth + 1),
                    }
                }
                None => s.skip_value(depth + 1),
            };
            if !ok {
                return false;
            }
            match s.after_element(b'}') {
                Some(true) => continue,
                Some(false) => break,
                None => return false,
            }
        }
        names
            .iter()
            .enumerate()
            .all(|(i, n)| !n.required || seen & (1u64 << i) != 0)
    }

    fn array(&self, s: &mut Scanner<'_>, items: usize, (min, max): (u64, u64), depth: usize) -> bool {
        if depth >= MAX_DEPTH {
            return false;
        }
        s.i += 1;
        s.ws();
        let mut count: u64 = 0;
        if !s.eat(b']') {
            loop {
                if !self.value(s, items, depth + 1) {
                    return false;
                }
                count += 1;
                match s.after_element(b']') {
                    Some(true) => continue,
                    Some(false) => break,
                    None => return false,
                }
            }
        }
        count >= min && count <= max
    }
}

fn kind_of(c: u8) -> u8 {
    match c {
        b'{' => OBJECT,
        b'[' => ARRAY,
        b'"' => STRING,
        b'-' | b'0'..=b'9' => NUMBER,
        b't' | b'f' => BOOLEAN,
        b'n' => NULL,
        _ => 0,
    }
}

/// A strict JSON scanner over the body: every method answers `false`/`None` on anything
/// `serde_json` might treat differently.
struct Scanner<'b> {
    b: &'b [u8],
    /// The same bytes as text (checked once).
    text: &'b str,
    i: usize,
    /// A decoded key with escapes.
    scratch: String,
}

impl Scanner<'_> {
    /// JSON whitespace (RFC 8259, as `serde_json`).
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// After a container's element: `Some(true)` at a comma (another element follows),
    /// `Some(false)` at the container's end, `None` otherwise.
    fn after_element(&mut self, close: u8) -> Option<bool> {
        self.ws();
        if self.eat(b',') {
            self.ws();
            Some(true)
        } else if self.eat(close) {
            Some(false)
        } else {
            None
        }
    }

    fn skip_value(&mut self, depth: usize) -> bool {
        let Some(&c) = self.b.get(self.i) else {
            return false;
        };
        match c {
            b'{' | b'[' => {
                if depth >= MAX_DEPTH {
                    return false;
                }
                let close = if c == b'{' { b'}' } else { b']' };
                self.i += 1;
                self.ws();
                if self.eat(close) {
                    return true;
                }
                loop {
                    if close == b'}' {
                        if self.string().is_none() {
                            return false;
                        }
                        self.ws();
                        if !self.eat(b':') {
                            return false;
                        }
                        self.ws();
                    }
                    if !self.skip_value(depth + 1) {
                        return false;
                    }
                    match self.after_element(close) {
                        Some(true) => continue,
                        Some(false) => return true,
                        None => return false,
                    }
                }
            }
            b'"' => self.string().is_some(),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => false,
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    /// A number as RFC 8259 writes it, and one `serde_json` parses to a finite value.
    fn number(&mut self) -> bool {
        let start = self.i;
        self.eat(b'-');
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return false,
        }
        let mut plain = true;
        if self.eat(b'.') {
            plain = false;
            if !self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                return false;
            }
            self.digits();
        }
        let exponent = self.eat(b'e') || self.eat(b'E');
        if exponent {
            plain = false;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if !self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                return false;
            }
            self.digits();
        }
        // Up to 18 digits is always an i64 or u64, and without an exponent a literal of fewer
        // than 300 characters is a finite f64; anything else may overflow an f64, which
        // `serde_json` refuses: let it parse the literal.
        let len = self.i - start;
        (plain && len <= 18)
            || (!exponent && len < 300)
            || serde_json::from_slice::<serde_json::Number>(&self.b[start..self.i]).is_ok()
    }

    fn digits(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
    }

    /// A string at `"`: its raw contents (between the quotes) and whether they hold escapes.
    /// `None` on a control character, a bad escape, a `\u` surrogate (left to `serde_json`)
    /// or invalid UTF-8.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.i;
        let mut escaped = false;
        loop {
            // Jump to the next quote or backslash; what lies between holds no control
            // character (checked without a branch per byte).
            let rest = self.b.get(self.i..)?;
            let n = memchr::memchr2(b'"', b'\\', rest)?;
            if rest[..n].iter().fold(false, |bad, &c| bad | (c < 0x20)) {
                return None;
            }
            self.i += n;
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    match *self.b.get(self.i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                        b'u' => {
                            let code = hex4(self.b.get(self.i + 2..self.i + 6)?)?;
                            if (0xD800..=0xDFFF).contains(&code) {
                                return None;
                            }
                            self.i += 6;
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        let end = self.i;
        self.i += 1;
        Some((start, end, escaped))
    }

    /// An object key at `"`: the index of its name in `names` (sorted), if there.
    fn key(&mut self, names: &[Name]) -> Option<Option<usize>> {
        let (start, end, escaped) = self.string()?;
        let raw = &self.b[start..end];
        let key: &[u8] = if escaped {
            self.scratch.clear();
            unescape(raw, &mut self.scratch)?;
            self.scratch.as_bytes()
        } else {
            raw
        };
        // Objects have few properties: compare lengths first, then bytes.
        Some(
            names
                .iter()
                .position(|n| n.name.len() == key.len() && n.name.as_bytes() == key),
        )
    }
}

fn hex4(h: &[u8]) -> Option<u32> {
    h.iter()
        .try_fold(0u32, |acc, &c| Some(acc * 16 + char::from(c).to_digit(16)?))
}

/// Decodes a string's escapes (already checked by [`Scanner::string`]).
fn unescape(raw: &[u8], out: &mut String) -> Option<()> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let rest = chars.as_str();
                let code = hex4(rest.get(..4)?.as_bytes())?;
                chars = rest.get(4..)?.chars();
                char::from_u32(code)?
            }
            _ => return None,
        });
    }
    Some(())
}

#[cfg(test)]
#[path = "../../../../../benches/support/order_model.rs"]
mod order_model;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::super::{Model, compile_models};

    fn compile(pairs: &[(&str, Value)]) -> BTreeMap<String, Model> {
        compile_models(&pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
            .into_iter()
            .map(|(k, m)| {
                let m = (*m.unwrap_or_else(|e| panic!("{k}: {e}"))).clone();
                (k, m)
            })
            .collect()
    }

    /// The model of `benches/proxy/validation.sh`.
    fn order() -> BTreeMap<String, Model> {
        compile_models(&super::order_model::models())
            .into_iter()
            .map(|(k, m)| (k, (*m.expect("compiles")).clone()))
            .collect()
    }

    /// The answer is the slow path's, and the fast path never accepts what it refuses.
    fn agree(m: &Model, body: &[u8]) -> bool {
        let slow = m.validate_slowly(body);
        assert_eq!(m.validate(body), slow, "{}", String::from_utf8_lossy(body));
        let fast = m.fast_path_accepts(body);
        assert!(
            !fast || slow.is_ok(),
            "fast path accepted {}",
            String::from_utf8_lossy(body)
        );
        fast
    }

    const ITEM: &str = r#"{"sku":"a","qty":2,"price":1.5}"#;

    fn body(fields: &str) -> Vec<u8> {
        format!(
            r#"{{"id":"o-1","customer":{{"name":"Ann","email":"a@b"}},"items":[{ITEM}],"total":3{fields}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn valid_bodies_take_the_fast_path() {
        let models = order();
        let m = &models["Order"];
        assert!(m.has_fast_path());
        for b in [
            body(""),
            body(r#","note":"x""#),
            body(r#","extra":{"deep":[1,2,{"x":null}],"t":true,"f":false},"more":-0.5e-3"#),
            body(r#","note":"esc \" \\ \/ \b \f \n \r \t \u00e9 é""#),
            body(r#","n\u006fte":"the key has an escape""#),
            format!(" \r\n\t{}\n ", String::from_utf8(body("")).unwrap()).into_bytes(),
        ] {
            assert!(agree(m, &b), "{}", String::from_utf8_lossy(&b));
        }
    }

    #[test]
    fn invalid_bodies_get_the_slow_paths_exact_error() {
        let models = order();
        let m = &models["Order"];
        for b in [
            br#"{"id":"UPPER"}"#.to_vec(),
            body(r#","note":5"#),
            body(r#","n\u006fte":5"#),
            br#"{"id":"o","customer":{"name":"A","email":"a@b"},"items":[],"total":1}"#.to_vec(),
            br#"{"id":"o","customer":{"name":"A","email":"a@b"},"items":[{"sku":"a","qty":0,"price":1}],"total":1}"#.to_vec(),
            br#"{"id":"o","customer":{"name":"A","email":"a@b"},"items":[{"sku":"a","qty":1,"price":1}],"total":-1}"#.to_vec(),
            br#"{"id":"o","customer":{"name":"A"},"items":[{"sku":"a","qty":1,"price":1}],"total":1}"#.to_vec(),
            b"[]".to_vec(),
            b"null".to_vec(),
        ] {
            assert!(!agree(m, &b));
            assert!(m.validate(&b).is_err());
        }
    }

    /// JSON `serde_json` refuses, or that the scanner leaves to it: never accepted by the fast
    /// path, answered by the slow path.
    #[test]
    fn strictness_is_serde_jsons() {
        let models = order();
        let m = &models["Order"];
        let ok = String::from_utf8(body("")).unwrap();
        let cases: Vec<Vec<u8>> = vec![
            body(r#","note":"a","#),
            body(r#","x":01"#),
            body(r#","x":1."#),
            body(r#","x":.5"#),
            body(r#","x":+1"#),
            body(r#","x":1e"#),
            body(r#","x":1e400"#),
            body(r#","x":-"#),
            body(r#","x":tru"#),
            body(r#","x":[1,]"#),
            body(r#","x":{"a":1,}"#),
            body(r#","x":{a:1}"#),
            body(r#","x":{i:":1}"#),
            body(r#","x":{"a":1,b":2}"#),
            body(r#","x":{"a":{i:":[1]}}"#),
            body(r#","x":'a'"#),
            body(r#","x":"\x""#),
            body(r#","x":"\u12""#),
            body(r#","x":"\ud83d\ude00""#),
            body(r#","x":"\udc00""#),
            body(","),
            format!("{ok} x").into_bytes(),
            format!("{ok}{{}}").into_bytes(),
            format!("\u{c}{ok}").into_bytes(),
            format!("\u{feff}{ok}").into_bytes(),
            [&body("")[..body("").len() - 1], b",\"x\":\"\xff\"}"].concat(),
            [&body("")[..body("").len() - 1], b",\"x\":\"\x01\"}"].concat(),
            [&body("")[..body("").len() - 1], b",\"x\":\"\xed\xa0\x80\"}"].concat(),
            // Control characters and unterminated strings, short and long.
            [
                &body("")[..body("").len() - 1],
                b",\"x\":\"0123456789abcde\x01\"}",
            ]
            .concat(),
            [
                &body("")[..body("").len() - 1],
                b",\"x\":\"0123456789abcdef\x01\"}",
            ]
            .concat(),
            [
                &body("")[..body("").len() - 1],
                b",\"x\":\"0123456789abcdefghijklm\nn\"}",
            ]
            .concat(),
            b"{\"id\":\"0123456789abcdef".to_vec(),
            b"{\"id\":\"0123456789abcdefghi".to_vec(),
            b"{\"id\":\"0123".to_vec(),
            // Nesting the scanner leaves to serde_json (which refuses beyond 128).
            body(&format!(r#","x":{}{}"#, "[".repeat(100), "]".repeat(100))),
            body(&format!(r#","x":{}{}"#, "[".repeat(200), "]".repeat(200))),
            // Duplicate keys the schema looks at: serde_json keeps the last.
            body(r#","total":"no""#),
            body(r#","id":"UPPER""#),
        ];
        for b in &cases {
            assert!(!agree(m, b), "{}", String::from_utf8_lossy(b));
        }
        // Strings of every length up to 39, with escapes on either side.
        for n in 0..40 {
            let text = "y".repeat(n);
            assert!(agree(m, &body(&format!(r#","note":"{text}""#))), "{n}");
            assert!(agree(m, &body(&format!(r#","x":"{text}\"\u00e9{text}""#))), "{n}");
        }
        // A duplicate the schema ignores is as good as one.
        assert!(agree(m, &body(r#","x":1,"x":"two""#)));
        // Big numbers are parsed by serde_json: finite ones are fine.
        assert!(agree(
            m,
            &body(r#","x":123456789012345678901234567890,"y":1e300"#)
        ));
        // Blank bodies are `null` (and form feed counts as blank there, as before).
        for b in [&b""[..], b"  ", b"\x0c"] {
            assert!(!agree(m, b));
        }
    }

    #[test]
    fn referenced_models_are_draft_4_as_models_are() {
        // `Item` is draft 4 both on its own and where `Order` references it: `integer`
        // refuses 1.0 in both places.
        let models = order();
        let item_as_float = br#"{"id":"o","customer":{"name":"A","email":"a@b"},"items":[{"sku":"a","qty":1.0,"price":1}],"total":1}"#;
        assert!(!agree(&models["Order"], item_as_float));
        assert!(models["Order"].validate(item_as_float).is_err());
        assert!(!agree(&models["Item"], br#"{"sku":"a","qty":1.0,"price":1}"#));
        assert!(
            models["Item"]
                .validate(br#"{"sku":"a","qty":1.0,"price":1}"#)
                .is_err()
        );
        assert!(agree(&models["Item"], br#"{"sku":"a","qty":1,"price":1}"#));
    }

    #[test]
    fn references_inside_a_schema_and_what_the_plan_cannot_express() {
        let models = compile(&[(
            "M",
            json!({
                "$schema": "http://json-schema.org/draft-04/schema#",
                "type": "object",
                "title": "M",
                "definitions": {"pos": {"type": "integer", "minimum": 0}},
                "required": ["a"],
                "properties": {
                    "a": {"$ref": "#/definitions/pos", "description": "ignored siblings in draft 4", "minimum": 100},
                    "b": {"anyOf": [{"type": "string"}, {"type": "object", "properties": {"c": {"$ref": "#/definitions/pos"}}}]},
                    "c": {"type": ["string", "null"]},
                    "d": {"type": "array", "items": [{"type": "string"}]},
                    "e": {"type": "object", "additionalProperties": false, "properties": {"x": {}}},
                    "self": {"$ref": "#/models/M"}
                }
            }),
        )]);
        let m = &models["M"];
        assert!(m.has_fast_path());
        assert!(agree(m, br#"{"a":5}"#));
        assert!(!agree(m, br#"{"a":-1}"#));
        assert!(agree(m, br#"{"a":5,"c":null}"#));
        assert!(agree(m, br#"{"a":5,"c":"s"}"#));
        assert!(!agree(m, br#"{"a":5,"c":1}"#));
        // `b` holds a reference in an `anyOf`: the plan cannot check it, the slow path does.
        assert!(!agree(m, br#"{"a":5,"b":"s"}"#));
        assert!(m.validate(br#"{"a":5,"b":"s"}"#).is_ok());
        // Tuple items and additionalProperties are leaves, checked by their own validators.
        assert!(agree(m, br#"{"a":5,"d":["s",1],"e":{"x":[1]}}"#));
        assert!(!agree(m, br#"{"a":5,"d":[1]}"#));
        assert!(!agree(m, br#"{"a":5,"e":{"y":1}}"#));
        // A model referencing itself.
        assert!(agree(m, br#"{"a":5,"self":{"a":1,"self":{"a":2}}}"#));
        assert!(!agree(m, br#"{"a":5,"self":{"a":-1}}"#));
    }

    #[test]
    fn a_referenced_model_may_be_a_leaf() {
        let models = compile(&[
            (
                "Bag",
                json!({"type": "object", "properties": {
                    "tag": {"$ref": "#/models/Tag"},
                    "open": {"$ref": "#/models/Open"}
                }}),
            ),
            ("Tag", json!({"type": "string", "enum": ["a", "b"]})),
            ("Open", json!({"description": "anything"})),
        ]);
        let m = &models["Bag"];
        assert!(m.has_fast_path());
        assert!(agree(m, br#"{"tag":"a","open":[1,{"x":2}]}"#));
        assert!(!agree(m, br#"{"tag":"c"}"#));
        assert!(!agree(m, br#"{"tag":1,"open":null}"#));
    }

    #[test]
    fn numbers_are_read_and_bounded_without_serde_json_when_exact() {
        use super::{Bound, Cmp, bounds, literal_value};
        assert_eq!(literal_value(b"12", true), Some(12.0));
        assert_eq!(literal_value(b"-0", true), Some(0.0));
        assert_eq!(literal_value(b"1234.5", false), Some(1234.5));
        assert_eq!(literal_value(b"0.000123", false), Some(0.000123));
        assert_eq!(literal_value(b"-0.1", false), Some(-0.1));
        assert_eq!(
            literal_value(b"123456789012345", true),
            Some(123_456_789_012_345.0)
        );
        // What only serde_json reads exactly, and what `integer` leaves to jsonschema.
        for (lit, integer) in [
            (&b"1234567890123456"[..], true),
            (b"0.12345678901234567", false),
            (b"1e3", false),
            (b"1.5", true),
            (b"1.0", true),
            (b"0.00000000000000000000001", false),
        ] {
            assert_eq!(
                literal_value(lit, integer),
                None,
                "{}",
                String::from_utf8_lossy(lit)
            );
        }
        let b = |m: Value, d| bounds(d, m.as_object().expect("object"));
        let ge = |limit| Bound { cmp: Cmp::Ge, limit };
        let gt = |limit| Bound { cmp: Cmp::Gt, limit };
        let lt = |limit| Bound { cmp: Cmp::Lt, limit };
        use jsonschema::Draft::{Draft4, Draft7};
        assert_eq!(b(json!({"minimum": 1}), Draft4).as_deref(), Some(&[ge(1.0)][..]));
        assert_eq!(
            b(
                json!({"minimum": 0, "exclusiveMinimum": true, "maximum": 2.5, "exclusiveMaximum": true}),
                Draft4
            )
            .as_deref(),
            Some(&[gt(0.0), lt(2.5)][..])
        );
        assert_eq!(
            b(json!({"minimum": 0, "exclusiveMinimum": 1}), Draft7).as_deref(),
            Some(&[ge(0.0), gt(1.0)][..])
        );
        // The other draft's form, and a limit beyond an exact f64: left to jsonschema.
        assert_eq!(b(json!({"exclusiveMinimum": 1}), Draft4), None);
        assert_eq!(b(json!({"exclusiveMinimum": true}), Draft4), None);
        assert_eq!(b(json!({"minimum": 1, "exclusiveMinimum": true}), Draft7), None);
        assert_eq!(b(json!({"minimum": 9_007_199_254_740_993u64}), Draft4), None);
    }

    #[test]
    fn bounded_numbers_agree_with_the_slow_path() {
        let models = compile(&[(
            "N",
            json!({"type": "object", "properties": {
                "qty": {"type": "integer", "minimum": 1, "maximum": 10},
                "price": {"type": "number", "minimum": 0, "exclusiveMinimum": true},
                "big": {"type": "integer", "minimum": 9_007_199_254_740_993u64}
            }}),
        )]);
        let n = &models["N"];
        for (body, fast) in [
            (&br#"{"qty":1,"price":0.01}"#[..], true),
            (br#"{"qty":10,"price":1234.5}"#, true),
            (br#"{"qty":-0,"price":1}"#, false),
            (br#"{"qty":11}"#, false),
            (br#"{"price":0}"#, false),
            (br#"{"price":-0.0}"#, false),
            (br#"{"price":"1"}"#, false),
            // Left to the slow path (serde_json and jsonschema).
            (br#"{"qty":1.0}"#, false),
            (br#"{"qty":5e0}"#, false),
            (br#"{"price":1234567890.1234567}"#, false),
            // A limit beyond an exact f64: checked by jsonschema (a leaf).
            (br#"{"big":9007199254740993}"#, true),
            (br#"{"big":9007199254740992}"#, false),
        ] {
            assert_eq!(agree(n, body), fast, "{}", String::from_utf8_lossy(body));
        }
        // Draft 4 (a model's own): 1.0 is not an integer.
        assert!(n.validate(br#"{"qty":1.0}"#).is_err());
        assert!(n.validate(br#"{"big":9007199254740993}"#).is_ok());
        assert!(n.validate(br#"{"big":9007199254740992}"#).is_err());
        // A model referenced under its own draft: draft 7's numeric `exclusiveMaximum` (a
        // draft 4 model of its own, it does not compile).
        let schemas = BTreeMap::from([
            (
                "Later".to_string(),
                json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "number", "exclusiveMaximum": 1.5}),
            ),
            (
                "L".to_string(),
                json!({"type": "object", "properties": {"x": {"$ref": "#/models/Later"}}}),
            ),
        ]);
        let compiled = compile_models(&schemas);
        let Some(Ok(l)) = compiled.get("L") else {
            panic!("L compiles");
        };
        assert!(l.has_fast_path());
        assert!(agree(l, br#"{"x":1.49}"#));
        assert!(!agree(l, br#"{"x":1.5}"#));
    }

    #[test]
    fn bounded_strings_count_characters_and_run_their_pattern() {
        let models = compile(&[(
            "S",
            json!({"type": "object", "properties": {
                "code": {"type": "string", "minLength": 2, "maxLength": 3, "pattern": "^[a-zé]+$"}
            }}),
        )]);
        let m = &models["S"];
        for (body, fast) in [
            (r#"{"code":"ab"}"#, true),
            (r#"{"code":"éé"}"#, true),
            (r#"{"code":"\u00e9\u00e9é"}"#, true),
            (r#"{"code":"a"}"#, false),
            (r#"{"code":"abcd"}"#, false),
            (r#"{"code":"AB"}"#, false),
            (r#"{"code":"a\nb"}"#, false),
            (r#"{"code":"\ud83d\ude00a"}"#, false),
            (r#"{"code":12}"#, false),
        ] {
            assert_eq!(agree(m, body.as_bytes()), fast, "{body}");
        }
    }

    #[test]
    fn a_root_the_plan_cannot_express_has_no_fast_path() {
        let models = compile(&[
            ("A", json!({"anyOf": [{"type": "string"}, {"type": "object"}]})),
            ("B", json!({"type": "object", "minProperties": 1})),
        ]);
        for m in models.values() {
            assert!(!m.has_fast_path());
            assert_eq!(m.validate(b"{}"), m.validate_slowly(b"{}"));
        }
    }
}
