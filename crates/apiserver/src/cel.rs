//! A small evaluator for the subset of CEL our CRDs' `x-kubernetes-validations` use: field
//! selection on `self`/`oldSelf`, `has()`, `size()`, literals, `!`, `&&`, `||`, comparisons
//! and `in` on lists. Anything outside the subset is an evaluation error, reported as the
//! rule failing with a message that says so (never silently accepted).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    Str(String),
    Op(&'static str),
}

#[derive(Debug, Clone)]
enum Expr {
    Lit(Value),
    Var(String),
    Field(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    Has(Box<Expr>),
    Call(String, Vec<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Bin(&'static str, Box<Expr>, Box<Expr>),
}

/// The variables of a rule.
pub struct Scope<'a> {
    /// `self`.
    pub this: &'a Value,
    /// `oldSelf`, for transition rules on updates.
    pub old: Option<&'a Value>,
}

/// Whether a rule mentions `oldSelf` (a transition rule, skipped on create).
pub fn is_transition_rule(rule: &str) -> bool {
    rule.contains("oldSelf")
}

/// Evaluates `rule`; `Ok(true)` when it holds.
pub fn eval_rule(rule: &str, scope: &Scope<'_>) -> Result<bool, String> {
    let toks = lex(rule)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err(format!("unsupported CEL syntax at token {}", p.pos));
    }
    match eval(&e, scope)? {
        Value::Bool(b) => Ok(b),
        other => Err(format!("rule did not evaluate to a bool: {other}")),
    }
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    const OPS: &[&str] = &[
        "&&", "||", "==", "!=", "<=", ">=", "<", ">", "!", "(", ")", ".", ",", "[", "]", "-", "+",
    ];
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let st = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(b[st..i].iter().collect()));
        } else if c.is_ascii_digit() {
            let st = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == '.') {
                i += 1;
            }
            let text: String = b[st..i].iter().collect();
            out.push(Tok::Num(text.parse().map_err(|_| format!("bad number {text}"))?));
        } else if c == '"' || c == '\'' {
            let q = c;
            i += 1;
            let mut text = String::new();
            while i < b.len() && b[i] != q {
                if b[i] == '\\' && i + 1 < b.len() {
                    i += 1;
                }
                text.push(b[i]);
                i += 1;
            }
            i += 1;
            out.push(Tok::Str(text));
        } else if let Some(op) = OPS
            .iter()
            .find(|op| b[i..].iter().take(op.len()).copied().eq(op.chars()))
        {
            out.push(Tok::Op(op));
            i += op.len();
        } else {
            return Err(format!("unsupported character {c:?} in CEL rule"));
        }
    }
    Ok(out)
}

/// How deep a rule may nest: parentheses, lists, calls, `!`/`-` and chains of binary
/// operators or field selections together. Parsing, evaluating and dropping an expression
/// recurse that deep on the server's stack, so a rule such as 10,000 `(` or `1+1+...` must be
/// refused, not overflow it (Kubernetes' CEL parser stops at 250 levels; our CRDs use 3).
const MAX_DEPTH: usize = 100;

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    /// The nesting of the expression being built (see [`MAX_DEPTH`]).
    depth: usize,
}

impl Parser {
    /// One level deeper; an error beyond [`MAX_DEPTH`]. Callers restore `depth` on success.
    fn deeper(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("rule nested deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }
    fn peek_op(&self, op: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Op(o)) if *o == op)
    }
    fn eat(&mut self, op: &str) -> bool {
        if self.peek_op(op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, op: &str) -> Result<(), String> {
        if self.eat(op) {
            Ok(())
        } else {
            Err(format!("expected {op}"))
        }
    }
    fn or(&mut self) -> Result<Expr, String> {
        let depth = self.depth;
        self.deeper()?;
        let mut l = self.and()?;
        while self.eat("||") {
            self.deeper()?;
            l = Expr::Bin("||", Box::new(l), Box::new(self.and()?));
        }
        self.depth = depth;
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let depth = self.depth;
        let mut l = self.cmp()?;
        while self.eat("&&") {
            self.deeper()?;
            l = Expr::Bin("&&", Box::new(l), Box::new(self.cmp()?));
        }
        self.depth = depth;
        Ok(l)
    }
    fn cmp(&mut self) -> Result<Expr, String> {
        let l = self.add()?;
        for op in ["==", "!=", "<=", ">=", "<", ">"] {
            if self.eat(op) {
                return Ok(Expr::Bin(op, Box::new(l), Box::new(self.add()?)));
            }
        }
        if matches!(self.toks.get(self.pos), Some(Tok::Ident(i)) if i == "in") {
            self.pos += 1;
            return Ok(Expr::Bin("in", Box::new(l), Box::new(self.add()?)));
        }
        Ok(l)
    }
    fn add(&mut self) -> Result<Expr, String> {
        let depth = self.depth;
        let mut l = self.unary()?;
        loop {
            if self.eat("+") {
                self.deeper()?;
                l = Expr::Bin("+", Box::new(l), Box::new(self.unary()?));
            } else if self.eat("-") {
                self.deeper()?;
                l = Expr::Bin("-", Box::new(l), Box::new(self.unary()?));
            } else {
                self.depth = depth;
                return Ok(l);
            }
        }
    }
    fn unary(&mut self) -> Result<Expr, String> {
        let depth = self.depth;
        let e = if self.eat("!") {
            self.deeper()?;
            Expr::Not(Box::new(self.unary()?))
        } else if self.eat("-") {
            self.deeper()?;
            Expr::Neg(Box::new(self.unary()?))
        } else {
            self.postfix()?
        };
        self.depth = depth;
        Ok(e)
    }
    fn postfix(&mut self) -> Result<Expr, String> {
        let depth = self.depth;
        let mut e = self.primary()?;
        loop {
            self.deeper()?;
            if self.eat(".") {
                match self.toks.get(self.pos).cloned() {
                    Some(Tok::Ident(f)) => {
                        self.pos += 1;
                        e = Expr::Field(Box::new(e), f);
                    }
                    _ => return Err("expected field name".into()),
                }
            } else if self.eat("[") {
                let idx = self.or()?;
                self.expect("]")?;
                e = Expr::Index(Box::new(e), Box::new(idx));
            } else {
                self.depth = depth;
                return Ok(e);
            }
        }
    }
    fn primary(&mut self) -> Result<Expr, String> {
        let tok = self.toks.get(self.pos).cloned().ok_or("unexpected end of rule")?;
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok(Expr::Lit(serde_json::json!(n))),
            Tok::Str(s) => Ok(Expr::Lit(Value::String(s))),
            Tok::Op("(") => {
                let e = self.or()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Op("[") => {
                let mut items = Vec::new();
                if !self.eat("]") {
                    loop {
                        items.push(self.or()?);
                        if self.eat("]") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                Ok(Expr::Call("__list".into(), items))
            }
            Tok::Ident(id) => match id.as_str() {
                "true" => Ok(Expr::Lit(Value::Bool(true))),
                "false" => Ok(Expr::Lit(Value::Bool(false))),
                "null" => Ok(Expr::Lit(Value::Null)),
                "has" => {
                    self.expect("(")?;
                    let e = self.or()?;
                    self.expect(")")?;
                    Ok(Expr::Has(Box::new(e)))
                }
                _ if self.peek_op("(") => {
                    self.pos += 1;
                    let mut args = Vec::new();
                    if !self.eat(")") {
                        loop {
                            args.push(self.or()?);
                            if self.eat(")") {
                                break;
                            }
                            self.expect(",")?;
                        }
                    }
                    Ok(Expr::Call(id, args))
                }
                _ => Ok(Expr::Var(id)),
            },
            Tok::Op(o) => Err(format!("unexpected {o}")),
        }
    }
}

fn truthy(v: &Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("no such overload: expected bool, got {v}"))
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn eval(e: &Expr, s: &Scope<'_>) -> Result<Value, String> {
    Ok(match e {
        Expr::Lit(v) => v.clone(),
        Expr::Var(name) => match name.as_str() {
            "self" => s.this.clone(),
            "oldSelf" => s.old.cloned().ok_or("oldSelf is not available")?,
            other => return Err(format!("undeclared reference to '{other}'")),
        },
        Expr::Field(base, f) => {
            let b = eval(base, s)?;
            b.get(f).cloned().ok_or_else(|| format!("no such key: {f}"))?
        }
        Expr::Index(base, idx) => {
            let b = eval(base, s)?;
            let i = eval(idx, s)?;
            match (&b, &i) {
                (Value::Array(a), Value::Number(n)) => a
                    .get(n.as_f64().unwrap_or(-1.0) as usize)
                    .cloned()
                    .ok_or("index out of range")?,
                (Value::Object(m), Value::String(k)) => {
                    m.get(k).cloned().ok_or_else(|| format!("no such key: {k}"))?
                }
                _ => return Err("invalid index".into()),
            }
        }
        Expr::Has(inner) => match &**inner {
            Expr::Field(base, f) => {
                let b = eval(base, s)?;
                Value::Bool(b.get(f).is_some_and(|v| !v.is_null()))
            }
            _ => return Err("has() needs a field selection".into()),
        },
        Expr::Call(name, args) => {
            let vals = args.iter().map(|a| eval(a, s)).collect::<Result<Vec<_>, _>>()?;
            match (name.as_str(), vals.as_slice()) {
                ("__list", _) => Value::Array(vals),
                ("size", [Value::String(x)]) => serde_json::json!(x.chars().count()),
                ("size", [Value::Array(x)]) => serde_json::json!(x.len()),
                ("size", [Value::Object(x)]) => serde_json::json!(x.len()),
                (f, _) => return Err(format!("unsupported function {f}")),
            }
        }
        Expr::Not(inner) => Value::Bool(!truthy(&eval(inner, s)?)?),
        Expr::Neg(inner) => serde_json::json!(-num(&eval(inner, s)?).ok_or("negation of a non-number")?),
        Expr::Bin(op, l, r) => {
            // && and || short-circuit (CEL also absorbs errors, which this subset does not need).
            if *op == "||" {
                return Ok(Value::Bool(truthy(&eval(l, s)?)? || truthy(&eval(r, s)?)?));
            }
            if *op == "&&" {
                return Ok(Value::Bool(truthy(&eval(l, s)?)? && truthy(&eval(r, s)?)?));
            }
            let (a, b) = (eval(l, s)?, eval(r, s)?);
            match *op {
                "==" => Value::Bool(equal(&a, &b)),
                "!=" => Value::Bool(!equal(&a, &b)),
                "in" => Value::Bool(b.as_array().is_some_and(|arr| arr.iter().any(|x| equal(x, &a)))),
                "+" | "-" => {
                    let (x, y) = (
                        num(&a).ok_or("arithmetic on a non-number")?,
                        num(&b).ok_or("arithmetic")?,
                    );
                    serde_json::json!(if *op == "+" { x + y } else { x - y })
                }
                cmp => {
                    let ord = match (&a, &b) {
                        (Value::String(x), Value::String(y)) => x.partial_cmp(y),
                        _ => num(&a).zip(num(&b)).and_then(|(x, y)| x.partial_cmp(&y)),
                    }
                    .ok_or("no such overload for comparison")?;
                    Value::Bool(match cmp {
                        "<" => ord.is_lt(),
                        "<=" => ord.is_le(),
                        ">" => ord.is_gt(),
                        _ => ord.is_ge(),
                    })
                }
            }
        }
    })
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn our_crd_rules() {
        let rule = "has(self.deploymentRef) || (has(self.autoDeploy) && self.autoDeploy)";
        let s = json!({"autoDeploy": true});
        assert_eq!(eval_rule(rule, &Scope { this: &s, old: None }), Ok(true));
        let s = json!({"autoDeploy": false});
        assert_eq!(eval_rule(rule, &Scope { this: &s, old: None }), Ok(false));
        let s = json!({"deploymentRef": {"name": "a"}});
        assert_eq!(eval_rule(rule, &Scope { this: &s, old: None }), Ok(true));
        let (a, b) = (json!({"name": "a"}), json!({"name": "b"}));
        assert_eq!(
            eval_rule(
                "self == oldSelf",
                &Scope {
                    this: &a,
                    old: Some(&b)
                }
            ),
            Ok(false)
        );
        assert_eq!(
            eval_rule(
                "self == oldSelf",
                &Scope {
                    this: &a,
                    old: Some(&a)
                }
            ),
            Ok(true)
        );
        let n = json!({"x": 5});
        assert_eq!(
            eval_rule("self.x <= 10 && size('ab') == 2", &Scope { this: &n, old: None }),
            Ok(true)
        );
    }

    #[test]
    fn deep_rules_are_refused_not_overflowing_the_stack() {
        let this = serde_json::json!({"a": 1});
        let scope = Scope {
            this: &this,
            old: None,
        };
        for rule in [
            format!("{}true{}", "(".repeat(20_000), ")".repeat(20_000)),
            format!("{}true", "!".repeat(20_000)),
            format!("1{} == 1", "+1".repeat(20_000)),
            format!("self{}", ".a".repeat(20_000)),
            format!("{}1{}", "[".repeat(20_000), "]".repeat(20_000)),
        ] {
            let err = eval_rule(&rule, &scope).expect_err("too deep");
            assert!(err.contains("nested deeper"), "{err}");
        }
        // Rules as deep as real ones still evaluate.
        assert_eq!(
            eval_rule("((self.a + 1 - 1 == 1) && !!true) || false", &scope),
            Ok(true)
        );
    }
}
