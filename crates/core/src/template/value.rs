//! The values a template computes with: the Java objects Velocity would see (strings, numbers,
//! lists, ordered maps), rendered as Java renders them (`{a=1, b=2}`, `[1, 2]`, `1.0`).

use std::fmt::Write as _;

/// A template value.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// Java's `null`: an undefined key, a missing JSON field, a failed method call.
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Map(Map),
    /// `$input`: the request (or backend response) payload and the method request parameters.
    Input,
    /// `$util`: the helper functions.
    Util,
    /// A string, array or object of a parsed JSON payload, not yet built ([`super::tape`]):
    /// what `$input.path` returns, read and written in place. Anything that changes it or
    /// hands it to a method gets it built first ([`Value::into_plain`]).
    Json(super::tape::Json),
}

/// An insertion-ordered map (Java's `LinkedHashMap`, as JSON objects come out of `parseJson`).
/// Lookups are linear: template maps are small.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Map(pub Vec<(String, Value)>);

// === impl Map ===

impl Map {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key`, keeping its place if present; returns the previous value.
    pub fn insert(&mut self, key: String, value: Value) -> Option<Value> {
        match self.get_mut(&key) {
            Some(slot) => Some(std::mem::replace(slot, value)),
            None => {
                self.0.push((key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let at = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(at).1)
    }

    /// The entry for `key`, inserted as an empty map if absent or not a map.
    pub fn child_map(&mut self, key: &str) -> &mut Map {
        let at = match self.0.iter().position(|(k, _)| k == key) {
            Some(at) => at,
            None => {
                self.0.push((key.to_string(), Value::Map(Map::default())));
                self.0.len() - 1
            }
        };
        let slot = &mut self.0[at].1;
        if !matches!(slot, Value::Map(_)) {
            *slot = Value::Map(Map::default());
        }
        match slot {
            Value::Map(m) => m,
            _ => unreachable!("just made a map"),
        }
    }

    /// A map of string values.
    pub fn of_strings<'s>(pairs: impl IntoIterator<Item = (&'s str, &'s str)>) -> Map {
        Map(pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::Str(v.to_string())))
            .collect())
    }
}

// === impl Value ===

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value with every [`Value::Json`] in it built: what methods, operators and
    /// changes work on.
    pub fn into_plain(self) -> Value {
        match self {
            Value::Json(j) => j.to_value(),
            Value::List(items) if items.iter().any(Value::has_json) => {
                Value::List(items.into_iter().map(Value::into_plain).collect())
            }
            Value::Map(m) if m.0.iter().any(|(_, v)| v.has_json()) => {
                Value::Map(Map(m.0.into_iter().map(|(k, v)| (k, v.into_plain())).collect()))
            }
            other => other,
        }
    }

    fn has_json(&self) -> bool {
        match self {
            Value::Json(_) => true,
            Value::List(items) => items.iter().any(Value::has_json),
            Value::Map(m) => m.0.iter().any(|(_, v)| v.has_json()),
            _ => false,
        }
    }

    /// Velocity's truth: `null` and `false` are false, everything else is true.
    pub fn truthy(&self) -> bool {
        !matches!(self, Value::Null | Value::Bool(false))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An integer argument (a whole float counts).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// [`Value::to_text`], borrowed when the value is a string: what reads the text without
    /// keeping it take.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Value::Str(s) => std::borrow::Cow::Borrowed(s),
            other => std::borrow::Cow::Owned(other.to_text()),
        }
    }

    /// The value as Java's `toString()` would write it; `null` is empty.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out);
        out
    }

    /// Appends [`Value::to_text`] to `out`.
    pub fn write_text(&self, out: &mut String) {
        match self {
            Value::Null => {}
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
            Value::Float(f) => write_double(*f, out),
            Value::Str(s) => out.push_str(s),
            Value::Json(j) => j.node().write_text(out),
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_nested(out);
                }
                out.push(']');
            }
            Value::Map(map) => {
                out.push('{');
                for (i, (k, v)) in map.0.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(k);
                    out.push('=');
                    v.write_nested(out);
                }
                out.push('}');
            }
            Value::Input => out.push_str("$input"),
            Value::Util => out.push_str("$util"),
        }
    }

    /// Inside a list or map, Java writes `null` as `null`.
    fn write_nested(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            other => other.write_text(out),
        }
    }

    /// A JSON document as a value: objects keep their key order, integers that fit are `Int`.
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(items) => Value::List(items.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(map) => Value::Map(Map(map
                .iter()
                .map(|(k, v)| (k.clone(), Value::from_json(v)))
                .collect())),
        }
    }

    /// The value as compact JSON (for `$input.json`): strings quoted and escaped.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::Json(j) => j.to_value().write_json(out),
            Value::Null | Value::Input | Value::Util => out.push_str("null"),
            Value::Bool(_) | Value::Int(_) => self.write_text(out),
            Value::Float(f) if f.is_finite() => {
                let _ = write!(out, "{f}");
            }
            Value::Float(_) => out.push_str("null"),
            Value::Str(s) => write_json_string(s, out),
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            Value::Map(map) => {
                out.push('{');
                for (i, (k, v)) in map.0.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(k, out);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }

    /// Velocity's `==`: numbers by value, same kinds by value, other kinds by their text.
    pub fn loose_eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Json(_), _) | (_, Value::Json(_)) => {
                self.clone().into_plain().loose_eq(&other.clone().into_plain())
            }
            (Value::Null, Value::Null) => true,
            (Value::Null, _) | (_, Value::Null) => false,
            (a, b) if a.as_f64().is_some() && b.as_f64().is_some() => match (a, b) {
                (Value::Int(x), Value::Int(y)) => x == y,
                _ => a.as_f64() == b.as_f64(),
            },
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::List(a), Value::List(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.loose_eq(y))
            }
            (Value::Map(a), Value::Map(b)) => a == b,
            (a, b) => a.text() == b.text(),
        }
    }

    /// Ordering for `<`, `>`…: numbers, or strings; anything else does not compare.
    pub fn compare(&self, other: &Value) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Value::Json(_), _) | (_, Value::Json(_)) => {
                self.clone().into_plain().compare(&other.clone().into_plain())
            }
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
            (a, b) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        }
    }
}

/// Java's `Double.toString` for the common cases: `1.0`, `0.5`, `1.0E21`.
pub(super) fn write_double(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
    } else if f.fract() == 0.0 && f.abs() < 1.0e7 {
        let _ = write!(out, "{f:.1}");
    } else if (1.0e-3..1.0e7).contains(&f.abs()) {
        let _ = write!(out, "{f}");
    } else {
        let s = format!("{f:e}");
        // Rust writes `1e21`, Java `1.0E21`.
        match s.split_once('e') {
            Some((m, e)) if m.contains('.') => {
                let _ = write!(out, "{m}E{e}");
            }
            Some((m, e)) => {
                let _ = write!(out, "{m}.0E{e}");
            }
            None => out.push_str(&s),
        }
    }
}

/// A JSON string literal.
pub fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// === JSON into values ===

impl Value {
    /// Parses JSON text straight into a value: the same value as
    /// `Value::from_json(&serde_json::from_str(text)?)` (objects' keys in `serde_json`'s sorted
    /// order, a repeated key's last value), without building the `serde_json::Value` first.
    pub fn parse_json(text: &str) -> Result<Value, serde_json::Error> {
        serde_json::from_str::<JsonValue>(text).map(|v| v.0)
    }
}

/// [`Value`] read from JSON (see [`Value::parse_json`]).
struct JsonValue(Value);

impl<'de> serde::Deserialize<'de> for JsonValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor).map(JsonValue)
    }
}

struct JsonVisitor;

impl<'de> serde::de::Visitor<'de> for JsonVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(i64::try_from(u).map_or(Value::Float(u as f64), Value::Int))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::Str(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::Str(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::Deserialize::deserialize(d).map(|v: JsonValue| v.0)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(JsonValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut entries: Vec<(String, Value)> = Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
        while let Some((k, JsonValue(v))) = access.next_entry::<String, JsonValue>()? {
            entries.push((k, v));
        }
        sort_members(&mut entries);
        Ok(Value::Map(Map(entries)))
    }
}

/// An object's members as `serde_json::Map` (a `BTreeMap`) keeps them: keys sorted, a repeated
/// key keeping its last value.
pub(super) fn sort_members(entries: &mut Vec<(String, Value)>) {
    if !entries.is_sorted_by(|a, b| a.0 < b.0) {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                earlier.1 = std::mem::take(&mut later.1);
                true
            } else {
                false
            }
        });
    }
}

impl super::jsonpath::Node for Value {
    fn items(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    fn members(&self) -> Option<impl Iterator<Item = (&str, &Value)>> {
        match self {
            Value::Map(m) => Some(m.0.iter().map(|(k, v)| (k.as_str(), v))),
            _ => None,
        }
    }
}
