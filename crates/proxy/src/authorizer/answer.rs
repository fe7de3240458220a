//! A Lambda authorizer's answer: `principalId`, `policyDocument`, `context`,
//! `usageIdentifierKey`; and the policy evaluated against a method ARN as AWS does (an
//! explicit Deny wins, then an Allow, else an implicit deny).

use serde_json::Value;

/// The most statements read from one answer; an answer with more is malformed.
const MAX_STATEMENTS: usize = 1000;
/// The most resources of one statement.
const MAX_RESOURCES: usize = 1000;
/// The longest resource pattern (AWS: a method ARN is at most 1600 bytes).
const MAX_PATTERN: usize = 1600;

/// A parsed authorizer answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub principal_id: String,
    pub statements: Vec<Statement>,
    /// `context`: string, number and boolean values, rendered as text for `$context.authorizer.KEY`.
    pub context: Vec<(String, ContextValue)>,
    pub usage_identifier_key: Option<String>,
}

/// A value of the answer's `context`.
#[derive(Clone, Debug, PartialEq)]
pub enum ContextValue {
    String(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl ContextValue {
    /// The value as text (`$context.authorizer.KEY`, parameter mappings).
    pub fn to_text(&self) -> String {
        match self {
            ContextValue::String(s) => s.clone(),
            ContextValue::Number(n) => n.to_string(),
            ContextValue::Bool(b) => b.to_string(),
        }
    }

    /// The value as JSON (the `requestContext.authorizer` of a Lambda proxy event).
    pub fn to_json(&self) -> Value {
        match self {
            ContextValue::String(s) => Value::String(s.clone()),
            ContextValue::Number(n) => Value::Number(n.clone()),
            ContextValue::Bool(b) => Value::Bool(*b),
        }
    }
}

/// One statement that can apply to `execute-api:Invoke`.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub allow: bool,
    /// Resource patterns (`*` any run of characters, `?` one character).
    pub resources: Vec<String>,
}

/// What the policy says about a method ARN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// A Deny statement matches.
    ExplicitDeny,
    /// No statement allows.
    ImplicitDeny,
}

/// Why an answer is malformed (AWS: AuthorizerConfigurationException, 500).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed authorizer answer: {0}")]
pub struct Malformed(pub String);

fn bad(msg: impl Into<String>) -> Malformed {
    Malformed(msg.into())
}

// === impl Answer ===

impl Answer {
    /// Parses the function's JSON answer, strictly: `principalId` (a string) and a
    /// `policyDocument` with `Statement`s are required.
    pub fn parse(bytes: &[u8]) -> Result<Answer, Malformed> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| bad("not a JSON object"))?;
        let principal_id = match obj.get("principalId") {
            Some(Value::String(s)) => s.clone(),
            // AWS accepts a number and uses its text.
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(bad("principalId is missing or not a string")),
        };
        let doc = obj
            .get("policyDocument")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("policyDocument is missing or not an object"))?;
        let statements = doc
            .get("Statement")
            .ok_or_else(|| bad("policyDocument has no Statement"))?;
        let statements: Vec<&Value> = match statements {
            Value::Array(a) => a.iter().collect(),
            Value::Object(_) => vec![statements],
            _ => return Err(bad("Statement is not an object or a list")),
        };
        if statements.len() > MAX_STATEMENTS {
            return Err(bad("too many statements"));
        }
        let mut out = Vec::with_capacity(statements.len());
        for s in statements {
            if let Some(s) = statement(s)? {
                out.push(s);
            }
        }
        let context = match obj.get("context") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(m)) => {
                let mut ctx = Vec::with_capacity(m.len());
                for (k, v) in m {
                    let value = match v {
                        Value::String(s) => ContextValue::String(s.clone()),
                        Value::Number(n) => ContextValue::Number(n.clone()),
                        Value::Bool(b) => ContextValue::Bool(*b),
                        // AWS refuses objects and arrays in the context.
                        _ => {
                            return Err(bad(format!(
                                "context value {k:?} is not a string, number or boolean"
                            )));
                        }
                    };
                    ctx.push((k.clone(), value));
                }
                ctx
            }
            Some(_) => return Err(bad("context is not an object")),
        };
        let usage_identifier_key = match obj.get("usageIdentifierKey") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(bad("usageIdentifierKey is not a string")),
        };
        Ok(Answer {
            principal_id,
            statements: out,
            context,
            usage_identifier_key,
        })
    }

    /// Evaluates the policy for a method ARN.
    pub fn evaluate(&self, method_arn: &str) -> Verdict {
        let matches = |s: &&Statement| s.resources.iter().any(|p| wildcard_match(p, method_arn));
        if self.statements.iter().filter(|s| !s.allow).any(|s| matches(&s)) {
            Verdict::ExplicitDeny
        } else if self.statements.iter().filter(|s| s.allow).any(|s| matches(&s)) {
            Verdict::Allow
        } else {
            Verdict::ImplicitDeny
        }
    }

    /// A context value, by key.
    pub fn context_value(&self, key: &str) -> Option<&ContextValue> {
        self.context.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// A statement, or `None` when its actions do not cover `execute-api:Invoke`.
fn statement(v: &Value) -> Result<Option<Statement>, Malformed> {
    let obj = v.as_object().ok_or_else(|| bad("a statement is not an object"))?;
    let allow = match obj.get("Effect").and_then(Value::as_str) {
        Some(e) if e.eq_ignore_ascii_case("Allow") => true,
        Some(e) if e.eq_ignore_ascii_case("Deny") => false,
        _ => return Err(bad("a statement's Effect is not Allow or Deny")),
    };
    let actions = strings(obj.get("Action"), "Action")?;
    let resources = strings(obj.get("Resource"), "Resource")?;
    if resources.len() > MAX_RESOURCES || resources.iter().any(|r| r.len() > MAX_PATTERN) {
        return Err(bad("a statement's Resource is too large"));
    }
    let invokes = actions
        .iter()
        .any(|a| wildcard_match(&a.to_ascii_lowercase(), "execute-api:invoke"));
    Ok(invokes.then_some(Statement { allow, resources }))
}

/// A string or a list of strings.
fn strings(v: Option<&Value>, name: &str) -> Result<Vec<String>, Malformed> {
    match v {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("a statement's {name} holds a non-string")))
            })
            .collect(),
        _ => Err(bad(format!(
            "a statement's {name} is missing or not a string or list"
        ))),
    }
}

/// IAM wildcard matching: `*` matches any run of characters (`/` included), `?` exactly one.
/// Iterative with one backtrack point, so linear-ish and never recursive.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:execute-api:us-east-1:000000000000:abc123/prod/GET/pets/1";

    fn answer(statements: &str) -> Answer {
        Answer::parse(
            format!(r#"{{"principalId":"u1","policyDocument":{{"Version":"2012-10-17","Statement":{statements}}}}}"#)
                .as_bytes(),
        )
        .expect("parses")
    }

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(wildcard_match("*", ARN));
        assert!(wildcard_match(ARN, ARN));
        assert!(wildcard_match("arn:aws:execute-api:*:*:abc123/prod/GET/*", ARN));
        assert!(wildcard_match(
            "arn:aws:execute-api:us-east-1:000000000000:abc123/*/GET/pets/?",
            ARN
        ));
        assert!(!wildcard_match(
            "arn:aws:execute-api:us-east-1:000000000000:abc123/*/GET/pets/??",
            ARN
        ));
        assert!(!wildcard_match("arn:aws:execute-api:*:*:abc123/prod/POST/*", ARN));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
        assert!(wildcard_match("", ""));
        assert!(!wildcard_match("", "a"));
        assert!(wildcard_match("**", ""));
    }

    #[test]
    fn an_explicit_deny_wins() {
        let a = answer(
            r#"[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"*"},
                {"Action":["execute-api:Invoke"],"Effect":"Deny","Resource":["arn:aws:execute-api:*:*:abc123/prod/GET/pets/*"]}]"#,
        );
        assert_eq!(a.evaluate(ARN), Verdict::ExplicitDeny);
        assert_eq!(
            a.evaluate("arn:aws:execute-api:us-east-1:000000000000:abc123/prod/GET/cats"),
            Verdict::Allow
        );
    }

    #[test]
    fn nothing_allowing_is_an_implicit_deny() {
        let a = answer(
            r#"{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"arn:aws:execute-api:*:*:other/*"}"#,
        );
        assert_eq!(a.evaluate(ARN), Verdict::ImplicitDeny);
        // Statements about other actions do not count.
        let a = answer(r#"{"Action":"s3:GetObject","Effect":"Allow","Resource":"*"}"#);
        assert_eq!(a.evaluate(ARN), Verdict::ImplicitDeny);
        let a = answer(r#"{"Action":"execute-api:*","Effect":"Allow","Resource":"*"}"#);
        assert_eq!(a.evaluate(ARN), Verdict::Allow);
    }

    #[test]
    fn context_and_usage_key_are_read() {
        let a = Answer::parse(
            br#"{"principalId":"u1","policyDocument":{"Statement":[]},
                 "context":{"tenant":"acme","level":3,"admin":false,"ratio":0.5},"usageIdentifierKey":"k123"}"#,
        )
        .expect("parses");
        assert_eq!(
            a.context_value("tenant").map(ContextValue::to_text),
            Some("acme".into())
        );
        assert_eq!(
            a.context_value("level").map(ContextValue::to_text),
            Some("3".into())
        );
        assert_eq!(
            a.context_value("admin").map(ContextValue::to_text),
            Some("false".into())
        );
        assert_eq!(
            a.context_value("ratio").map(ContextValue::to_text),
            Some("0.5".into())
        );
        assert_eq!(a.usage_identifier_key.as_deref(), Some("k123"));
    }

    #[test]
    fn malformed_answers_are_refused() {
        for body in [
            &b"not json"[..],
            b"[]",
            br#"{"policyDocument":{"Statement":[]}}"#,
            br#"{"principalId":"u","policyDocument":{}}"#,
            br#"{"principalId":"u","policyDocument":{"Statement":"x"}}"#,
            br#"{"principalId":"u","policyDocument":{"Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}}"#,
            br#"{"principalId":"u","policyDocument":{"Statement":[{"Effect":"Allow","Resource":"*"}]}}"#,
            br#"{"principalId":"u","policyDocument":{"Statement":[{"Effect":"Allow","Action":"*","Resource":[1]}]}}"#,
            br#"{"principalId":"u","policyDocument":{"Statement":[]},"context":{"o":{"a":1}}}"#,
            br#"{"principalId":"u","policyDocument":{"Statement":[]},"usageIdentifierKey":5}"#,
        ] {
            assert!(Answer::parse(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
