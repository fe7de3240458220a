//! What calls do: `$input.*`, `$util.*`, and the Java methods templates in the wild call on
//! strings, lists and maps (`size()`, `get()`, `keySet()`, `replaceAll()`, `toLowerCase()`,
//! `substring()`, `contains()`…). An unknown method, or one called with the wrong arguments,
//! is `null`, as Velocity renders a call it cannot resolve; a method that would throw in Java
//! (an out-of-range `substring`, a bad pattern) fails the rendering.

use std::collections::HashMap;

use base64::Engine as _;

use super::{
    Limits, RenderError,
    jsonpath::{JsonPath, Key},
    tape,
    value::{Map, Value},
};

type Result<T, E = RenderError> = std::result::Result<T, E>;

/// Compiled patterns are kept at most this large (`regex`'s own bound on compiled size).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// What calls may read of the request, and the rendering's budget.
pub(super) struct Env<'r> {
    payload: &'r str,
    params: &'r Map,
    /// The payload parsed as JSON, on first use (once per rendering, however many
    /// `$input.path` and `$input.json` read it): a reference into its tape.
    json: Option<std::result::Result<Value, String>>,
    /// The payload built, for the paths that cannot walk the tape (wildcards, slices…).
    built: Option<Value>,
    regexes: HashMap<String, regex::Regex>,
    /// How many more steps the rendering may take ([`Limits::max_steps`]).
    steps_left: u64,
    pub limits: &'r Limits,
}

impl<'r> Env<'r> {
    pub fn new(payload: &'r str, params: &'r Map, limits: &'r Limits) -> Self {
        Env {
            payload,
            params,
            json: None,
            built: None,
            regexes: HashMap::new(),
            steps_left: limits.max_steps,
            limits,
        }
    }

    /// Counts one evaluation step.
    pub fn step(&mut self) -> Result<()> {
        self.steps(1)
    }

    /// Counts `n` evaluation steps.
    pub fn steps(&mut self, n: usize) -> Result<()> {
        match self.steps_left.checked_sub(n as u64) {
            Some(left) => {
                self.steps_left = left;
                Ok(())
            }
            None => Err(RenderError::Limit("the template ran more steps than allowed")),
        }
    }

    /// `$input.params(name)`'s value, if the request has one.
    pub fn param(&self, name: &str) -> Option<&'r str> {
        param(self.params, name)
    }

    /// Holds a string being built to the output bound.
    pub fn check_len(&self, len: usize) -> Result<()> {
        if len > self.limits.max_output {
            return Err(RenderError::Limit("a string is larger than the output allowed"));
        }
        Ok(())
    }

    /// The payload as JSON: an empty payload is `{}`, as in AWS.
    fn json(&mut self) -> Result<&Value> {
        let payload = self.payload;
        let parsed = self.json.get_or_insert_with(|| tape::parse(payload));
        parsed.as_ref().map_err(|e| RenderError::Payload(e.clone()))
    }

    /// The payload as JSON, built.
    fn built_json(&mut self) -> Result<&Value> {
        let built = match self.built.take() {
            Some(built) => built,
            None => self.json()?.clone().into_plain(),
        };
        Ok(self.built.insert(built))
    }

    fn regex(&mut self, pattern: &str) -> Result<&regex::Regex> {
        if !self.regexes.contains_key(pattern) {
            if self.regexes.len() >= 64 {
                self.regexes.clear();
            }
            let re = regex::RegexBuilder::new(pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| RenderError::Failed(format!("invalid regular expression {pattern:?}: {e}")))?;
            self.regexes.insert(pattern.to_string(), re);
        }
        self.regexes
            .get(pattern)
            .ok_or_else(|| RenderError::Failed("regular expression cache".into()))
    }
}

/// Whether a method changes its receiver (and so must reach the variable itself).
pub(super) fn is_mutator(name: &str) -> bool {
    matches!(
        name,
        "put" | "putAll" | "add" | "addAll" | "remove" | "clear" | "set"
    )
}

/// A property read on something other than a map: `$input.body`, `$list.empty`…
pub(super) fn property(receiver: &Value, name: &str, env: &mut Env<'_>) -> Result<Value> {
    Ok(match (receiver, name) {
        (Value::Input, "body") => Value::str(env.payload),
        (Value::Input, "params") => Value::Map(env.params.clone()),
        (Value::Str(s), "empty") => Value::Bool(s.is_empty()),
        (Value::List(l), "empty") => Value::Bool(l.is_empty()),
        (Value::Map(m), "empty") => Value::Bool(m.0.is_empty()),
        (Value::Str(_) | Value::List(_) | Value::Map(_), "class") => Value::Null,
        _ => Value::Null,
    })
}

/// A method call that does not change its receiver.
pub(super) fn call(receiver: &Value, name: &str, args: &[Value], env: &mut Env<'_>) -> Result<Value> {
    match receiver {
        Value::Input => input(name, args, env),
        Value::Util => util(name, args, env),
        Value::Str(s) => string(s, name, args, env),
        Value::List(items) => Ok(list(items, name, args)),
        Value::Map(m) => Ok(map(m, name, args)),
        Value::Null => Ok(Value::Null),
        other => Ok(match name {
            "toString" => Value::Str(other.to_text()),
            "equals" => Value::Bool(args.first().is_some_and(|a| a.loose_eq(other))),
            "intValue" | "longValue" => other.as_f64().map_or(Value::Null, |f| Value::Int(f as i64)),
            "doubleValue" | "floatValue" => other.as_f64().map_or(Value::Null, Value::Float),
            _ => Value::Null,
        }),
    }
}

/// A method call that may change its receiver (a variable's own map or list).
pub(super) fn mutate(receiver: &mut Value, name: &str, args: Vec<Value>, env: &mut Env<'_>) -> Result<Value> {
    let mut args = args.into_iter();
    let (a, b) = (args.next(), args.next());
    Ok(match (receiver, name, a, b) {
        (Value::Map(m), "put", Some(k), Some(v)) => m.insert(k.to_text(), v).unwrap_or_default(),
        (Value::Map(m), "putAll", Some(Value::Map(other)), None) => {
            for (k, v) in other.0 {
                m.insert(k, v);
            }
            Value::Null
        }
        (Value::Map(m), "remove", Some(k), None) => m.remove(&k.text()).unwrap_or_default(),
        (Value::Map(m), "clear", None, None) => {
            m.0.clear();
            Value::Null
        }
        (Value::List(l), "add", Some(v), None) => {
            env.check_len(l.len() + 1)?;
            l.push(v);
            Value::Bool(true)
        }
        (Value::List(l), "add", Some(i), Some(v)) => {
            let at = i
                .as_int()
                .and_then(|i| usize::try_from(i).ok())
                .filter(|i| *i <= l.len());
            let at =
                at.ok_or_else(|| RenderError::Failed("list index out of range in add(index, value)".into()))?;
            env.check_len(l.len() + 1)?;
            l.insert(at, v);
            Value::Null
        }
        (Value::List(l), "addAll", Some(Value::List(other)), None) => {
            env.check_len(l.len() + other.len())?;
            l.extend(other);
            Value::Bool(true)
        }
        (Value::List(l), "remove", Some(i), None) => {
            match i
                .as_int()
                .and_then(|i| usize::try_from(i).ok())
                .filter(|i| *i < l.len())
            {
                Some(at) => l.remove(at),
                None => Value::Null,
            }
        }
        (Value::List(l), "set", Some(i), Some(v)) => {
            match i
                .as_int()
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| l.get_mut(i))
            {
                Some(slot) => std::mem::replace(slot, v),
                None => {
                    return Err(RenderError::Failed(
                        "list index out of range in set(index, value)".into(),
                    ));
                }
            }
        }
        (Value::List(l), "clear", None, None) => {
            l.clear();
            Value::Null
        }
        _ => Value::Null,
    })
}

// === $input ===

fn input(name: &str, args: &[Value], env: &mut Env<'_>) -> Result<Value> {
    let arg = args.first().and_then(Value::as_str);
    match (name, arg) {
        ("json", Some(path)) => {
            let (found, _) = select(path, env)?;
            let mut out = String::new();
            match found {
                Some(v) => v.write_json(&mut out),
                None => out.push_str("null"),
            }
            env.check_len(out.len())?;
            Ok(Value::Str(out))
        }
        ("path", Some(path)) => Ok(select(path, env)?.0.unwrap_or_default()),
        ("params", None) if args.is_empty() => Ok(Value::Map(env.params.clone())),
        ("params", Some(name)) => Ok(Value::str(param(env.params, name).unwrap_or_default())),
        _ => Ok(Value::Null),
    }
}

/// What a JSONPath selects in the payload: the value of a definite path (or `None`), the list
/// of an indefinite one.
fn select(path: &str, env: &mut Env<'_>) -> Result<(Option<Value>, bool)> {
    let path = JsonPath::parse(path).map_err(RenderError::Failed)?;
    // A definite path (`$`, `$.a.b[0]`) is walked on the tape: what it reaches stays a
    // reference into the payload.
    if let Some(mut keys) = path.keys()
        && let Value::Json(root) = env.json()?
    {
        let mut node = root.node();
        let found = keys.try_fold((), |(), key| {
            node = match key {
                Key::Name(name) => node.member(name)?,
                Key::Index(i) => node.item(i)?,
            };
            Some(())
        });
        return Ok((found.map(|()| node.to_lazy()), true));
    }
    if path.is_root() {
        return Ok((Some(env.json()?.clone()), true));
    }
    let json = env.built_json()?;
    let found = path.select(json);
    Ok(if path.is_definite() {
        (found.first().map(|v| (*v).clone()), true)
    } else {
        (Some(Value::List(found.into_iter().cloned().collect())), false)
    })
}

/// `$input.params(name)`: the path, then the query string, then the headers (by any case).
fn param<'p>(params: &'p Map, name: &str) -> Option<&'p str> {
    let section = |s: &str| match params.get(s) {
        Some(Value::Map(m)) => Some(m),
        _ => None,
    };
    section("path")
        .and_then(|m| m.get(name))
        .or_else(|| section("querystring").and_then(|m| m.get(name)))
        .or_else(|| {
            section("header").and_then(|m| {
                m.0.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
        })
        .and_then(Value::as_str)
}

// === $util ===

fn util(name: &str, args: &[Value], env: &mut Env<'_>) -> Result<Value> {
    let Some(arg) = args.first() else {
        return Ok(Value::Null);
    };
    if arg.is_null() {
        return Ok(Value::Null);
    }
    let text = arg.text();
    let out = match name {
        "escapeJavaScript" => escape_javascript(&text),
        "urlEncode" => form_urlencoded::byte_serialize(text.as_bytes()).collect(),
        "urlDecode" => url_decode(&text)?,
        "base64Encode" => base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
        "base64Decode" => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim().as_bytes())
                .map_err(|e| RenderError::Failed(format!("$util.base64Decode: {e}")))?;
            String::from_utf8_lossy(&bytes).into_owned()
        }
        "parseJson" => {
            return tape::parse(&text).map_err(|e| RenderError::Failed(format!("$util.parseJson: {e}")));
        }
        _ => return Ok(Value::Null),
    };
    env.check_len(out.len())?;
    Ok(Value::Str(out))
}

/// Apache Commons Lang's `escapeJavaScript` (which AWS uses): quotes, backslash and `/`
/// escaped; control characters as `\b \f \n \r \t` or `\u00XX`; everything outside ASCII as
/// `\uXXXX` UTF-16 units.
pub fn escape_javascript(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    escape_javascript_into(s, &mut out);
    out
}

/// [`escape_javascript`], appended to `out`.
pub fn escape_javascript_into(s: &str, out: &mut String) {
    use std::fmt::Write as _;
    // Runs of characters written as they are go out in one piece.
    let mut plain = 0;
    for (at, c) in s.char_indices() {
        if !matches!(c, '\'' | '"' | '\\' | '/') && (' '..='~').contains(&c) {
            continue;
        }
        out.push_str(&s[plain..at]);
        plain = at + c.len_utf8();
        match c {
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c if (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04X}");
                }
            }
            c => out.push(c),
        }
    }
    out.push_str(&s[plain..]);
}

/// Java's `URLDecoder.decode(s, "UTF-8")`: `+` is a space, `%XX` a byte; a bad escape fails.
fn url_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| RenderError::Failed(format!("$util.urlDecode: bad escape at {i}")))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

// === strings, lists, maps ===

fn int_arg(args: &[Value], i: usize) -> Option<i64> {
    args.get(i).and_then(Value::as_int)
}

fn str_arg(args: &[Value], i: usize) -> Option<String> {
    args.get(i).filter(|v| !v.is_null()).map(Value::to_text)
}

/// A character index as a byte offset of `s`; `None` when out of range.
fn char_offset(s: &str, i: i64) -> Option<usize> {
    let i = usize::try_from(i).ok()?;
    if i == 0 {
        return Some(0);
    }
    s.char_indices().map(|(b, _)| b).chain([s.len()]).nth(i)
}

fn char_count(s: &str, byte: usize) -> i64 {
    i64::try_from(s[..byte].chars().count()).unwrap_or(i64::MAX)
}

/// A method called on a string.
pub(super) fn string(s: &str, name: &str, args: &[Value], env: &mut Env<'_>) -> Result<Value> {
    let arg0 = str_arg(args, 0);
    Ok(match (name, args.len()) {
        ("length" | "size", 0) => Value::Int(i64::try_from(s.chars().count()).unwrap_or(i64::MAX)),
        ("isEmpty", 0) => Value::Bool(s.is_empty()),
        ("toString" | "trim" | "strip", 0) if name == "toString" => Value::str(s),
        ("trim" | "strip", 0) => Value::str(s.trim()),
        // ASCII, the usual case, by the byte (what the Unicode mappings give it).
        ("toLowerCase", 0) if s.is_ascii() => Value::Str(s.to_ascii_lowercase()),
        ("toUpperCase", 0) if s.is_ascii() => Value::Str(s.to_ascii_uppercase()),
        ("toLowerCase", 0) => Value::Str(s.to_lowercase()),
        ("toUpperCase", 0) => Value::Str(s.to_uppercase()),
        ("contains", 1) => Value::Bool(arg0.is_some_and(|a| s.contains(a.as_str()))),
        ("startsWith", 1) => Value::Bool(arg0.is_some_and(|a| s.starts_with(a.as_str()))),
        ("endsWith", 1) => Value::Bool(arg0.is_some_and(|a| s.ends_with(a.as_str()))),
        ("equals", 1) => Value::Bool(args[0].as_str() == Some(s)),
        ("equalsIgnoreCase", 1) => Value::Bool(arg0.is_some_and(|a| a.to_lowercase() == s.to_lowercase())),
        ("indexOf", 1) => Value::Int(
            arg0.and_then(|a| s.find(a.as_str()))
                .map_or(-1, |b| char_count(s, b)),
        ),
        ("lastIndexOf", 1) => Value::Int(
            arg0.and_then(|a| s.rfind(a.as_str()))
                .map_or(-1, |b| char_count(s, b)),
        ),
        ("charAt", 1) => {
            let c = int_arg(args, 0)
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| s.chars().nth(i))
                .ok_or_else(|| RenderError::Failed("charAt: index out of range".into()))?;
            Value::Str(c.to_string())
        }
        ("substring", 1 | 2) => {
            let from = int_arg(args, 0).and_then(|i| char_offset(s, i));
            let to = if args.len() == 2 {
                int_arg(args, 1).and_then(|i| char_offset(s, i))
            } else {
                Some(s.len())
            };
            match (from, to) {
                (Some(a), Some(b)) if a <= b => Value::str(&s[a..b]),
                _ => return Err(RenderError::Failed("substring: index out of range".into())),
            }
        }
        ("concat", 1) => {
            let joined = format!("{s}{}", arg0.unwrap_or_default());
            env.check_len(joined.len())?;
            Value::Str(joined)
        }
        ("replace", 2) => match (arg0, str_arg(args, 1)) {
            (Some(a), Some(b)) if !a.is_empty() => {
                let replaced = s.replace(a.as_str(), &b);
                env.check_len(replaced.len())?;
                Value::Str(replaced)
            }
            _ => Value::str(s),
        },
        ("replaceAll" | "replaceFirst", 2) => match (arg0, str_arg(args, 1)) {
            (Some(pattern), Some(replacement)) => {
                let replacement = java_replacement(&replacement);
                let re = env.regex(&pattern)?;
                let replaced = if name == "replaceAll" {
                    re.replace_all(s, replacement.as_str()).into_owned()
                } else {
                    re.replace(s, replacement.as_str()).into_owned()
                };
                env.check_len(replaced.len())?;
                Value::Str(replaced)
            }
            _ => Value::Null,
        },
        ("matches", 1) => match arg0 {
            Some(pattern) => Value::Bool(env.regex(&format!("^(?:{pattern})$"))?.is_match(s)),
            None => Value::Null,
        },
        ("split", 1 | 2) => match arg0 {
            Some(pattern) => {
                let re = env.regex(&pattern)?;
                let mut parts: Vec<Value> = re.split(s).map(Value::str).collect();
                // Java drops trailing empty strings.
                while parts.last().is_some_and(|p| p.as_str() == Some("")) {
                    parts.pop();
                }
                Value::List(parts)
            }
            None => Value::Null,
        },
        _ => Value::Null,
    })
}

/// Java's replacement syntax (`$1`, `\$`) in `regex`'s (`${1}`, `$$`).
fn java_replacement(r: &str) -> String {
    let mut out = String::with_capacity(r.len() + 4);
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str("${");
                    out.push_str(&digits);
                    out.push('}');
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn list(items: &[Value], name: &str, args: &[Value]) -> Value {
    match (name, args.len()) {
        ("size", 0) => Value::Int(i64::try_from(items.len()).unwrap_or(i64::MAX)),
        ("isEmpty", 0) => Value::Bool(items.is_empty()),
        ("get", 1) => int_arg(args, 0)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| items.get(i))
            .cloned()
            .unwrap_or_default(),
        ("contains", 1) => Value::Bool(items.iter().any(|v| v.loose_eq(&args[0]))),
        ("indexOf", 1) => Value::Int(
            items
                .iter()
                .position(|v| v.loose_eq(&args[0]))
                .and_then(|i| i64::try_from(i).ok())
                .unwrap_or(-1),
        ),
        ("toString", 0) => Value::Str(Value::List(items.to_vec()).to_text()),
        _ => Value::Null,
    }
}

fn map(m: &Map, name: &str, args: &[Value]) -> Value {
    match (name, args.len()) {
        ("size", 0) => Value::Int(i64::try_from(m.0.len()).unwrap_or(i64::MAX)),
        ("isEmpty", 0) => Value::Bool(m.0.is_empty()),
        ("get", 1) => m.get(&args[0].text()).cloned().unwrap_or_default(),
        ("getOrDefault", 2) => m.get(&args[0].text()).cloned().unwrap_or_else(|| args[1].clone()),
        ("containsKey", 1) => Value::Bool(m.get(&args[0].text()).is_some()),
        ("containsValue", 1) => Value::Bool(m.0.iter().any(|(_, v)| v.loose_eq(&args[0]))),
        ("keySet", 0) => Value::List(m.0.iter().map(|(k, _)| Value::str(k)).collect()),
        ("values", 0) => Value::List(m.0.iter().map(|(_, v)| v.clone()).collect()),
        ("entrySet", 0) => Value::List(
            m.0.iter()
                .map(|(k, v)| {
                    Value::Map(Map(vec![
                        ("key".into(), Value::str(k)),
                        ("value".into(), v.clone()),
                    ]))
                })
                .collect(),
        ),
        ("toString", 0) => Value::Str(Value::Map(m.clone()).to_text()),
        _ => Value::Null,
    }
}
