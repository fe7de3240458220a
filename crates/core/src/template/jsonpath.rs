//! JSONPath, the subset `$input.path` and `$input.json` take (Goessner's syntax, as Jayway
//! reads it): `$`, `.name`, `['name']`, `["name"]`, `[n]` (negative from the end), `[a:b]`,
//! `[n,m]`, `[*]`, `.*` and the deep scan `..name` / `..*`. Filter expressions (`[?(…)]`) and
//! script expressions are refused with a message, never half-evaluated.
//!
//! A path with no wildcard, deep scan, slice or union is *definite*: it selects at most one
//! value, and `$input.path` returns that value itself rather than a list.

use serde_json::Value as Json;

/// A document a path selects from: a `serde_json::Value`, or a template's own value parsed
/// from the payload (so a rendering parses the payload once, into what the template reads).
pub trait Node: Sized {
    /// The elements, when this is an array.
    fn items(&self) -> Option<&[Self]>;
    /// The members in key order, when this is an object.
    fn members(&self) -> Option<impl Iterator<Item = (&str, &Self)>>;
    /// The member `name`, when this is an object that has it.
    fn member(&self, name: &str) -> Option<&Self> {
        self.members()?.find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

impl Node for Json {
    fn items(&self) -> Option<&[Json]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    fn members(&self) -> Option<impl Iterator<Item = (&str, &Json)>> {
        match self {
            Json::Object(map) => Some(map.iter().map(|(k, v)| (k.as_str(), v))),
            _ => None,
        }
    }

    fn member(&self, name: &str) -> Option<&Json> {
        match self {
            Json::Object(map) => map.get(name),
            _ => None,
        }
    }
}

/// The longest path accepted: paths are written by API owners, not sent by clients.
pub const MAX_PATH: usize = 4096;

/// A parsed path.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

/// One step of a path.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Child(String),
    Index(i64),
    Wildcard,
    Slice(Option<i64>, Option<i64>),
    Union(Vec<Selector>),
    /// `..name` (or `..*` with `None`).
    Descendants(Option<String>),
}

/// A step of a definite path: a member name, or an index (negative from the end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key<'p> {
    Name(&'p str),
    Index(i64),
}

/// A member of a union: `['a','b']` or `[0,2]`.
#[derive(Clone, Debug, PartialEq)]
enum Selector {
    Name(String),
    Index(i64),
}

// === impl JsonPath ===

impl JsonPath {
    /// Parses a path; `$` may be omitted (`foo.bar` reads as `$.foo.bar`, as Jayway does).
    pub fn parse(src: &str) -> Result<JsonPath, String> {
        if src.len() > MAX_PATH {
            return Err(format!("a JSONPath is at most {MAX_PATH} bytes"));
        }
        let s = src.trim();
        let mut rest = match s.strip_prefix('$') {
            Some(r) => r,
            None if s.starts_with('[') || s.starts_with('.') => s,
            None => {
                // `foo.bar`: a relative path from the root.
                return JsonPath::parse(&format!("$.{s}"));
            }
        };
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("..") {
                if let Some(after) = after.strip_prefix('*') {
                    steps.push(Step::Descendants(None));
                    rest = after;
                } else if after.starts_with('[') {
                    steps.push(Step::Descendants(None));
                    rest = after;
                } else {
                    let (name, after) =
                        name(after).ok_or_else(|| format!("{src:?}: a name must follow '..'"))?;
                    steps.push(Step::Descendants(Some(name.to_string())));
                    rest = after;
                }
            } else if let Some(after) = rest.strip_prefix('.') {
                if let Some(after) = after.strip_prefix('*') {
                    steps.push(Step::Wildcard);
                    rest = after;
                } else {
                    let (name, after) =
                        name(after).ok_or_else(|| format!("{src:?}: a name must follow '.'"))?;
                    steps.push(Step::Child(name.to_string()));
                    rest = after;
                }
            } else if let Some(after) = rest.strip_prefix('[') {
                let (step, after) = bracket(after).map_err(|e| format!("{src:?}: {e}"))?;
                steps.push(step);
                rest = after;
            } else {
                return Err(format!(
                    "{src:?}: unexpected {:?}",
                    rest.chars().next().unwrap_or(' ')
                ));
            }
        }
        Ok(JsonPath { steps })
    }

    /// Whether the path is `$` itself: it selects the whole document.
    pub fn is_root(&self) -> bool {
        self.steps.is_empty()
    }

    /// Whether the path selects at most one value.
    pub fn is_definite(&self) -> bool {
        self.steps
            .iter()
            .all(|s| matches!(s, Step::Child(_) | Step::Index(_)))
    }

    /// The steps of a definite path ([`JsonPath::is_definite`]); `None` for another.
    pub fn keys(&self) -> Option<impl Iterator<Item = Key<'_>>> {
        self.is_definite().then(|| {
            self.steps.iter().filter_map(|s| match s {
                Step::Child(name) => Some(Key::Name(name)),
                Step::Index(i) => Some(Key::Index(*i)),
                _ => None,
            })
        })
    }

    /// The values the path selects, in document order.
    pub fn select<'j, J: Node>(&self, root: &'j J) -> Vec<&'j J> {
        let mut current = vec![root];
        for step in &self.steps {
            let mut next = Vec::new();
            for v in current {
                apply(step, v, &mut next);
            }
            current = next;
        }
        current
    }
}

/// A member name: letters, digits, `_`, `-`, `$` and non-ASCII, up to the next `.` or `[`.
fn name(s: &str) -> Option<(&str, &str)> {
    let end = s.find(['.', '[', ' ']).unwrap_or(s.len());
    (end > 0).then(|| (&s[..end], &s[end..]))
}

/// The inside of `[…]` and what follows the `]`.
fn bracket(s: &str) -> Result<(Step, &str), String> {
    let s = s.trim_start();
    if s.starts_with('?') || s.starts_with('(') {
        return Err("filter and script expressions are not supported".into());
    }
    if let Some(after) = s.strip_prefix('*') {
        let after = after
            .trim_start()
            .strip_prefix(']')
            .ok_or("expected ']' after '*'")?;
        return Ok((Step::Wildcard, after));
    }
    let mut selectors = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start();
        let (selector, after) = if let Some(q) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
            let body = &rest[1..];
            let close = body.find(q).ok_or("unclosed quoted name")?;
            (Selector::Name(body[..close].to_string()), &body[close + 1..])
        } else {
            let end = rest.find([',', ']']).ok_or("expected ']'")?;
            let text = rest[..end].trim();
            if let Some((a, b)) = text.split_once(':') {
                let bound = |t: &str| -> Result<Option<i64>, String> {
                    let t = t.trim();
                    if t.is_empty() {
                        Ok(None)
                    } else {
                        t.parse().map(Some).map_err(|_| format!("{t:?} is not an index"))
                    }
                };
                let (a, b) = (bound(a)?, bound(b.split(':').next().unwrap_or(""))?);
                let after = rest[end..]
                    .strip_prefix(']')
                    .ok_or("a slice is alone in its brackets")?;
                if !selectors.is_empty() {
                    return Err("a slice is alone in its brackets".into());
                }
                return Ok((Step::Slice(a, b), after));
            }
            let index: i64 = text
                .parse()
                .map_err(|_| format!("{text:?} is not an index or a quoted name"))?;
            (Selector::Index(index), &rest[end..])
        };
        selectors.push(selector);
        let after = after.trim_start();
        if let Some(after) = after.strip_prefix(',') {
            rest = after;
        } else if let Some(after) = after.strip_prefix(']') {
            let step = if selectors.len() == 1 {
                match selectors.remove(0) {
                    Selector::Name(n) => Step::Child(n),
                    Selector::Index(i) => Step::Index(i),
                }
            } else {
                Step::Union(selectors)
            };
            return Ok((step, after));
        } else {
            return Err("expected ',' or ']'".into());
        }
    }
}

fn index<J>(items: &[J], i: i64) -> Option<&J> {
    let len = i64::try_from(items.len()).ok()?;
    let i = if i < 0 { len + i } else { i };
    usize::try_from(i).ok().and_then(|i| items.get(i))
}

fn apply<'j, J: Node>(step: &Step, v: &'j J, out: &mut Vec<&'j J>) {
    match step {
        Step::Child(n) => out.extend(v.member(n)),
        Step::Index(i) => {
            if let Some(items) = v.items() {
                out.extend(index(items, *i));
            }
        }
        Step::Wildcard => {
            if let Some(items) = v.items() {
                out.extend(items);
            } else if let Some(members) = v.members() {
                out.extend(members.map(|(_, v)| v));
            }
        }
        Step::Slice(a, b) => {
            if let Some(items) = v.items() {
                let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
                let clamp = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                let from = clamp(a.unwrap_or(0));
                let to = clamp(b.unwrap_or(len));
                for i in from..to {
                    out.extend(index(items, i));
                }
            }
        }
        Step::Union(selectors) => {
            for s in selectors {
                match s {
                    Selector::Name(n) => out.extend(v.member(n)),
                    Selector::Index(i) => out.extend(v.items().and_then(|items| index(items, *i))),
                }
            }
        }
        Step::Descendants(name) => descend(name.as_deref(), v, out),
    }
}

/// Every descendant of `v` (named `name`, if given), parents before children. Iterative, so a
/// deeply nested document cannot exhaust the stack.
fn descend<'j, J: Node>(name: Option<&str>, v: &'j J, out: &mut Vec<&'j J>) {
    let mut stack = vec![v];
    while let Some(node) = stack.pop() {
        let is_object = node.items().is_none();
        let children: Vec<(&str, &'j J)> = match (node.items(), node.members()) {
            (Some(items), _) => items.iter().map(|v| ("", v)).collect(),
            (None, Some(members)) => members.collect(),
            (None, None) => Vec::new(),
        };
        for (key, child) in &children {
            match name {
                None => out.push(child),
                Some(n) if is_object && *key == n => out.push(child),
                Some(_) => {}
            }
        }
        stack.extend(children.iter().rev().map(|(_, c)| *c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(path: &str, doc: &Json) -> Vec<Json> {
        JsonPath::parse(path)
            .expect("path")
            .select(doc)
            .into_iter()
            .cloned()
            .collect()
    }

    #[test]
    fn goessner_store_examples() {
        let doc = json!({"store": {
            "book": [
                {"category": "reference", "author": "Nigel Rees", "price": 8.95},
                {"category": "fiction", "author": "Evelyn Waugh", "price": 12.99},
                {"category": "fiction", "author": "Herman Melville", "isbn": "0-553-21311-3", "price": 8.99}
            ],
            "bicycle": {"color": "red", "price": 19.95}
        }});
        assert_eq!(
            sel("$.store.book[*].author", &doc),
            vec![
                json!("Nigel Rees"),
                json!("Evelyn Waugh"),
                json!("Herman Melville")
            ]
        );
        assert_eq!(sel("$..author", &doc).len(), 3);
        assert_eq!(sel("$.store.*", &doc).len(), 2);
        assert_eq!(sel("$..price", &doc).len(), 4);
        assert_eq!(sel("$..book[2].author", &doc), vec![json!("Herman Melville")]);
        assert_eq!(sel("$..book[-1].author", &doc), vec![json!("Herman Melville")]);
        assert_eq!(sel("$..book[0,1].price", &doc), vec![json!(8.95), json!(12.99)]);
        assert_eq!(sel("$..book[:2].price", &doc), vec![json!(8.95), json!(12.99)]);
        assert_eq!(sel("$..book[1:].price", &doc), vec![json!(12.99), json!(8.99)]);
        assert_eq!(sel("$['store']['bicycle'][\"color\"]", &doc), vec![json!("red")]);
        assert_eq!(sel("$..isbn", &doc), vec![json!("0-553-21311-3")]);
        assert_eq!(sel("$", &doc), vec![doc.clone()]);
        assert_eq!(sel("store.bicycle.color", &doc), vec![json!("red")]);
        assert!(sel("$.store.missing", &doc).is_empty());
        assert!(sel("$.store.book[7]", &doc).is_empty());
    }

    #[test]
    fn definite_paths() {
        assert!(JsonPath::parse("$.a.b[0]['c']").expect("path").is_definite());
        for p in ["$..a", "$.a[*]", "$.a.*", "$.a[0,1]", "$.a[1:2]"] {
            assert!(!JsonPath::parse(p).expect("path").is_definite(), "{p}");
        }
    }

    #[test]
    fn refused_paths() {
        for p in [
            "$.a[?(@.b)]",
            "$.a[(@.length-1)]",
            "$.a[",
            "$.a['b",
            "$.",
            "$..",
            "$x",
            "$.a[b]",
        ] {
            assert!(JsonPath::parse(p).is_err(), "{p}");
        }
        assert!(JsonPath::parse(&"a".repeat(MAX_PATH + 1)).is_err());
    }
}
