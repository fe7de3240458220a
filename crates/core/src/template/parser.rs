//! The parser: template text → [`Block`]. Hand-written recursive descent over the bytes.
//!
//! Velocity has no context-free token stream (a `(` is text in one place and an expression in
//! the next, `$` starts a reference only before a name), so scanning and parsing are one pass
//! with two modes: *text*, where only `$`, `#` and `\` are special, and *expression*, inside a
//! directive's parentheses or a method call's arguments.
//!
//! Whitespace follows Velocity's "lines" gobbling: a line holding only a directive (and
//! indentation) writes nothing, not even its newline, so templates can be indented freely.
//! Nesting is bounded ([`MAX_DEPTH`]), so a hostile template cannot exhaust the stack here or
//! in the evaluator, which recurses along the same tree.

use super::{
    ParseError,
    ast::{Accessor, BinOp, Block, CallArgs, Expr, Names, Node, Reference},
    tape::Name,
    value::Value,
};

/// How deeply directives, expressions and references may nest.
pub const MAX_DEPTH: usize = 64;

/// Parses a whole template.
pub fn parse(src: &str) -> Result<(Block, Names), ParseError> {
    let mut p = Parser {
        src,
        at: 0,
        depth: 0,
        names: Names::default(),
    };
    let (block, end) = p.block()?;
    match end {
        End::Eof => Ok((block, p.names)),
        End::Closed(at) => Err(p.error_at(at, "#end without an open #if or #foreach")),
        End::Else(at) | End::ElseIf(at, _) => Err(p.error_at(at, "#else or #elseif without an open #if")),
    }
}

/// What closed a block: the end of the input, `#end` (`Closed`), `#else` or `#elseif`.
enum End {
    Eof,
    Closed(usize),
    Else(usize),
    ElseIf(usize, Expr),
}

struct Parser<'s> {
    src: &'s str,
    at: usize,
    depth: usize,
    /// The variables named so far, each with its slot.
    names: Names,
}

type Result<T, E = ParseError> = std::result::Result<T, E>;

// === impl Parser: text mode ===

impl<'s> Parser<'s> {
    fn bytes(&self) -> &'s [u8] {
        self.src.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    fn peek_at(&self, n: usize) -> Option<u8> {
        self.bytes().get(self.at + n).copied()
    }

    fn rest(&self) -> &'s str {
        &self.src[self.at..]
    }

    fn error_at(&self, at: usize, message: impl Into<String>) -> ParseError {
        ParseError::at(self.src, at, message)
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        self.error_at(self.at, message)
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("nested more than {MAX_DEPTH} levels deep")));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Text and directives up to `#end`, `#else`, `#elseif` or the end of the input.
    fn block(&mut self) -> Result<(Block, End)> {
        self.enter()?;
        let mut nodes = Vec::new();
        let mut text = String::new();
        let end = loop {
            let Some(b) = self.peek() else { break End::Eof };
            match b {
                b'$' => match self.reference_here()? {
                    Some(r) => {
                        flush(&mut text, &mut nodes);
                        nodes.push(Node::Ref(r));
                    }
                    None => {
                        text.push('$');
                        self.at += 1;
                    }
                },
                b'\\' if matches!(self.peek_at(1), Some(b'$' | b'#')) => {
                    // `\$name` and `\#directive` are written as they are, without the backslash.
                    text.push(char::from(self.bytes()[self.at + 1]));
                    self.at += 2;
                }
                b'#' => {
                    if let Some(end) = self.hash(&mut text, &mut nodes)? {
                        break end;
                    }
                }
                _ => {
                    // Copy the run of plain text up to the next special byte.
                    let run = self
                        .rest()
                        .find(['$', '#', '\\'])
                        .map_or(self.rest().len(), |n| n.max(1));
                    text.push_str(&self.rest()[..run]);
                    self.at += run;
                }
            }
        };
        flush(&mut text, &mut nodes);
        self.leave();
        Ok((nodes, end))
    }

    /// At a `#`: a comment, a directive, or plain text. Returns the block's end if the
    /// directive closes it.
    fn hash(&mut self, text: &mut String, nodes: &mut Vec<Node>) -> Result<Option<End>> {
        let start = self.at;
        let rest = self.rest();
        if rest.starts_with("##") {
            let line_start = self.gobble_indent(start, text);
            let end = rest.find('\n').map_or(rest.len(), |n| n + 1);
            self.at += end;
            // A comment after text on a line keeps that line's newline.
            if !line_start && end > 0 && rest.as_bytes().get(end - 1) == Some(&b'\n') {
                text.push('\n');
            }
            return Ok(None);
        }
        if let Some(body) = rest.strip_prefix("#*") {
            let close = body
                .find("*#")
                .ok_or_else(|| self.error("#* comment without its closing *#"))?;
            let line_start = self.gobble_indent(start, text);
            self.at += 2 + close + 2;
            if line_start {
                self.gobble_line_end();
            }
            return Ok(None);
        }
        if let Some(body) = rest.strip_prefix("#[[") {
            let close = body
                .find("]]#")
                .ok_or_else(|| self.error("#[[ without its closing ]]#"))?;
            text.push_str(&body[..close]);
            self.at += 3 + close + 3;
            return Ok(None);
        }
        let (name, len) = directive_name(rest);
        let known = matches!(
            name,
            "set" | "if" | "elseif" | "else" | "end" | "foreach" | "break" | "stop"
        );
        if !known {
            if matches!(name, "macro" | "define" | "include" | "parse" | "evaluate") {
                return Err(self.error(format!("#{name} is not supported in mapping templates")));
            }
            text.push('#');
            self.at += 1;
            return Ok(None);
        }
        let line_start = at_line_start(self.src, start);
        self.at += len;
        let node_or_end = match name {
            "set" => {
                self.open_paren("#set")?;
                let target = self.expect_reference("#set needs a $reference to set")?;
                self.skip_ws();
                if self.peek() != Some(b'=') {
                    return Err(self.error("expected '=' in #set"));
                }
                self.at += 1;
                let value = self.expr()?;
                self.close_paren("#set")?;
                Ok(Node::Set { target, value })
            }
            "if" => {
                let cond = self.condition("#if")?;
                self.finish_line(line_start, start, text);
                let mut branches = Vec::new();
                let mut cond = cond;
                let otherwise = loop {
                    let (body, end) = self.block()?;
                    branches.push((cond, body));
                    match end {
                        End::ElseIf(_, c) => cond = c,
                        End::Else(_) => {
                            let (body, end) = self.block()?;
                            match end {
                                End::Closed(_) => break Some(body),
                                End::Eof => return Err(self.error_at(start, "#if without its #end")),
                                End::Else(at) | End::ElseIf(at, _) => {
                                    return Err(self.error_at(at, "#else or #elseif after #else"));
                                }
                            }
                        }
                        End::Closed(_) => break None,
                        End::Eof => return Err(self.error_at(start, "#if without its #end")),
                    }
                };
                flush(text, nodes);
                nodes.push(Node::If { branches, otherwise });
                return Ok(None);
            }
            "foreach" => {
                self.open_paren("#foreach")?;
                if self.peek() != Some(b'$') {
                    return Err(self.error("#foreach needs a $variable"));
                }
                self.at += 1;
                let var = self
                    .ident()
                    .ok_or_else(|| self.error("#foreach needs a $variable"))?;
                self.skip_ws();
                if !self.keyword("in") {
                    return Err(self.error("expected 'in' in #foreach"));
                }
                let iterable = self.expr()?;
                self.close_paren("#foreach")?;
                self.finish_line(line_start, start, text);
                let (body, end) = self.block()?;
                match end {
                    End::Closed(_) => {}
                    End::Eof => return Err(self.error_at(start, "#foreach without its #end")),
                    End::Else(at) | End::ElseIf(at, _) => {
                        return Err(self.error_at(at, "#else or #elseif inside #foreach, outside an #if"));
                    }
                }
                flush(text, nodes);
                let lend = super::ast::lendable(var, &iterable, &body, super::methods::is_mutator);
                nodes.push(Node::Foreach {
                    slot: self.names.slot(var),
                    var: var.into(),
                    iterable,
                    body,
                    lend,
                });
                return Ok(None);
            }
            "elseif" => {
                let cond = self.condition("#elseif")?;
                Err(End::ElseIf(start, cond))
            }
            "else" => Err(End::Else(start)),
            "end" => Err(End::Closed(start)),
            "break" => Ok(Node::Break),
            _ => Ok(Node::Stop),
        };
        self.finish_line(line_start, start, text);
        match node_or_end {
            Ok(node) => {
                flush(text, nodes);
                nodes.push(node);
                Ok(None)
            }
            Err(end) => Ok(Some(end)),
        }
    }

    /// After a directive: if it stood alone on its line, drop the line's indentation (already
    /// in `text`) and its end.
    fn finish_line(&mut self, line_start: bool, start: usize, text: &mut String) {
        if !line_start {
            return;
        }
        let rest = self.rest();
        let ws = rest.find(|c| c != ' ' && c != '\t').unwrap_or(rest.len());
        let after = &rest[ws..];
        if after.is_empty() || after.starts_with('\n') || after.starts_with("\r\n") {
            self.gobble_indent(start, text);
            self.gobble_line_end();
        }
    }

    /// If only indentation precedes `start` on its line, removes it from `text`. Returns
    /// whether `start` was at the start of its line.
    fn gobble_indent(&self, start: usize, text: &mut String) -> bool {
        if !at_line_start(self.src, start) {
            return false;
        }
        let indent = self.src[..start].len() - self.src[..start].trim_end_matches([' ', '\t']).len();
        if text.len() >= indent
            && text[text.len() - indent..]
                .bytes()
                .all(|b| b == b' ' || b == b'\t')
        {
            text.truncate(text.len() - indent);
        }
        true
    }

    /// Skips spaces and one line end.
    fn gobble_line_end(&mut self) {
        let rest = self.rest();
        let ws = rest.find(|c| c != ' ' && c != '\t').unwrap_or(rest.len());
        let after = &rest[ws..];
        self.at += ws
            + if after.starts_with("\r\n") {
                2
            } else {
                usize::from(after.starts_with('\n'))
            };
    }

    fn condition(&mut self, directive: &str) -> Result<Expr> {
        self.open_paren(directive)?;
        let cond = self.expr()?;
        self.close_paren(directive)?;
        Ok(cond)
    }

    fn open_paren(&mut self, directive: &str) -> Result<()> {
        self.skip_ws();
        if self.peek() != Some(b'(') {
            return Err(self.error(format!("expected '(' after {directive}")));
        }
        self.at += 1;
        self.skip_ws();
        Ok(())
    }

    fn close_paren(&mut self, directive: &str) -> Result<()> {
        self.skip_ws();
        if self.peek() != Some(b')') {
            return Err(self.error(format!("expected ')' to close {directive}")));
        }
        self.at += 1;
        Ok(())
    }
}

/// The directive name after `#` (also `#{name}`) and the length of what names it.
fn directive_name(rest: &str) -> (&str, usize) {
    let (braced, body) = match rest[1..].strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, &rest[1..]),
    };
    let len = body
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(body.len());
    let name = &body[..len];
    if braced {
        if body[len..].starts_with('}') {
            (name, 1 + 1 + len + 1)
        } else {
            ("", 1)
        }
    } else {
        // `#elseif` is one name; `#else` followed by other letters is not a directive.
        (name, 1 + len)
    }
}

/// Whether only spaces and tabs come before `at` on its line.
fn at_line_start(src: &str, at: usize) -> bool {
    let before = src[..at].trim_end_matches([' ', '\t']);
    before.is_empty() || before.ends_with('\n')
}

fn flush(text: &mut String, nodes: &mut Vec<Node>) {
    if !text.is_empty() {
        nodes.push(Node::Text(std::mem::take(text).into()));
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

// === impl Parser: references ===

impl<'s> Parser<'s> {
    fn ident(&mut self) -> Option<&'s str> {
        let start = self.at;
        if !self.peek().is_some_and(is_ident_start) {
            return None;
        }
        while self.peek().is_some_and(is_ident) {
            self.at += 1;
        }
        Some(&self.src[start..self.at])
    }

    /// A property or method name: an identifier that may also hold `-` between its
    /// characters (Velocity 1.7 allows it; `$context.responseOverride.header.X-Kind` needs it).
    fn property_name(&mut self) -> &'s str {
        let start = self.at;
        while self.peek().is_some_and(is_ident)
            || (self.peek() == Some(b'-') && self.peek_at(1).is_some_and(is_ident_start))
        {
            self.at += 1;
        }
        &self.src[start..self.at]
    }

    /// A reference at `$`, or `None` if the `$` starts none (then it is text).
    fn reference_here(&mut self) -> Result<Option<Reference>> {
        let start = self.at;
        let mut n = 1;
        let quiet = self.peek_at(n) == Some(b'!');
        n += usize::from(quiet);
        let braced = self.peek_at(n) == Some(b'{');
        n += usize::from(braced);
        if !self.peek_at(n).is_some_and(is_ident_start) {
            return Ok(None);
        }
        self.at += n;
        self.enter()?;
        let root = self.ident().unwrap_or_default();
        let mut chain = Vec::new();
        loop {
            match self.peek() {
                Some(b'.') if self.peek_at(1).is_some_and(is_ident_start) => {
                    self.at += 1;
                    let name = self.property_name();
                    if self.peek() == Some(b'(') {
                        self.at += 1;
                        let args = self.args(b')')?;
                        chain.push(Accessor::Call(name.into(), CallArgs::new(args)));
                    } else {
                        chain.push(Accessor::Property(Name::new(name)));
                    }
                }
                Some(b'[') => {
                    self.at += 1;
                    let index = self.expr()?;
                    self.skip_ws();
                    if self.peek() != Some(b']') {
                        return Err(self.error("expected ']'"));
                    }
                    self.at += 1;
                    chain.push(Accessor::Index(index));
                }
                _ => break,
            }
        }
        if braced {
            if self.peek() != Some(b'}') {
                return Err(self.error_at(start, "'${' without its closing '}'"));
            }
            self.at += 1;
        }
        self.leave();
        Ok(Some(Reference {
            slot: self.names.slot(root),
            root: root.into(),
            mutation: Reference::mutation_of(&chain),
            properties_only: chain.iter().all(|a| matches!(a, Accessor::Property(_))),
            chain,
            quiet,
            source: self.src[start..self.at].into(),
        }))
    }

    fn expect_reference(&mut self, message: &str) -> Result<Reference> {
        self.skip_ws();
        if self.peek() != Some(b'$') {
            return Err(self.error(message));
        }
        self.reference_here()?.ok_or_else(|| self.error(message))
    }

    /// Comma-separated expressions up to `close`.
    fn args(&mut self, close: u8) -> Result<Vec<Expr>> {
        let mut args = Vec::new();
        self.skip_ws();
        if self.peek() == Some(close) {
            self.at += 1;
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(c) if c == close => {
                    self.at += 1;
                    return Ok(args);
                }
                _ => return Err(self.error(format!("expected ',' or '{}'", char::from(close)))),
            }
        }
    }
}

// === impl Parser: expressions ===

impl<'s> Parser<'s> {
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    /// A word operator or keyword (`and`, `in`…) as a whole word.
    fn keyword(&mut self, word: &str) -> bool {
        let rest = self.rest();
        if rest.starts_with(word) && !rest.as_bytes().get(word.len()).is_some_and(|b| is_ident(*b)) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    fn symbol(&mut self, sym: &str) -> bool {
        if self.rest().starts_with(sym) {
            self.at += sym.len();
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<Expr> {
        self.enter()?;
        let e = self.or();
        self.leave();
        e
    }

    fn or(&mut self) -> Result<Expr> {
        let mut left = self.and()?;
        loop {
            self.skip_ws();
            if self.symbol("||") || self.keyword("or") {
                let right = self.and()?;
                left = Expr::Binary(BinOp::Or, Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn and(&mut self) -> Result<Expr> {
        let mut left = self.equality()?;
        loop {
            self.skip_ws();
            if self.symbol("&&") || self.keyword("and") {
                let right = self.equality()?;
                left = Expr::Binary(BinOp::And, Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn equality(&mut self) -> Result<Expr> {
        let mut left = self.relation()?;
        loop {
            self.skip_ws();
            let op = if self.symbol("==") || self.keyword("eq") {
                BinOp::Eq
            } else if self.symbol("!=") || self.keyword("ne") {
                BinOp::Ne
            } else {
                return Ok(left);
            };
            let right = self.relation()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn relation(&mut self) -> Result<Expr> {
        let mut left = self.additive()?;
        loop {
            self.skip_ws();
            let op = if self.symbol("<=") || self.keyword("le") {
                BinOp::Le
            } else if self.symbol(">=") || self.keyword("ge") {
                BinOp::Ge
            } else if self.symbol("<") || self.keyword("lt") {
                BinOp::Lt
            } else if self.symbol(">") || self.keyword("gt") {
                BinOp::Gt
            } else {
                return Ok(left);
            };
            let right = self.additive()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn additive(&mut self) -> Result<Expr> {
        let mut left = self.multiplicative()?;
        loop {
            self.skip_ws();
            let op = if self.symbol("+") {
                BinOp::Add
            } else if self.rest().starts_with('-') && !self.rest().starts_with("--") {
                self.at += 1;
                BinOp::Sub
            } else {
                return Ok(left);
            };
            let right = self.multiplicative()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn multiplicative(&mut self) -> Result<Expr> {
        let mut left = self.unary()?;
        loop {
            self.skip_ws();
            let op = if self.symbol("*") {
                BinOp::Mul
            } else if self.symbol("/") {
                BinOp::Div
            } else if self.symbol("%") {
                BinOp::Rem
            } else {
                return Ok(left);
            };
            let right = self.unary()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Expr> {
        self.skip_ws();
        self.enter()?;
        let e = if (self.peek() == Some(b'!') && self.peek_at(1) != Some(b'=')) || self.keyword("not") {
            if self.peek() == Some(b'!') {
                self.at += 1;
            }
            Expr::Not(Box::new(self.unary()?))
        } else if self.peek() == Some(b'-') {
            self.at += 1;
            match self.unary()? {
                Expr::Literal(Value::Int(i)) => Expr::Literal(Value::Int(i.wrapping_neg())),
                Expr::Literal(Value::Float(f)) => Expr::Literal(Value::Float(-f)),
                e => Expr::Negate(Box::new(e)),
            }
        } else {
            self.primary()?
        };
        self.leave();
        Ok(e)
    }

    fn primary(&mut self) -> Result<Expr> {
        self.skip_ws();
        let Some(b) = self.peek() else {
            return Err(self.error("expected an expression, found the end of the template"));
        };
        match b {
            b'(' => {
                self.at += 1;
                let e = self.expr()?;
                self.skip_ws();
                if self.peek() != Some(b')') {
                    return Err(self.error("expected ')'"));
                }
                self.at += 1;
                Ok(e)
            }
            b'$' => self
                .reference_here()?
                .map(Expr::Ref)
                .ok_or_else(|| self.error("expected a $reference")),
            b'\'' => {
                let body = &self.rest()[1..];
                let close = body.find('\'').ok_or_else(|| self.error("unclosed string"))?;
                self.at += close + 2;
                Ok(Expr::Literal(Value::str(&body[..close])))
            }
            b'"' => self.interpolated(),
            b'0'..=b'9' => self.number(),
            b'[' => {
                self.at += 1;
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.at += 1;
                    return Ok(Expr::List(Vec::new()));
                }
                let first = self.expr()?;
                self.skip_ws();
                if self.symbol("..") {
                    let last = self.expr()?;
                    self.skip_ws();
                    if self.peek() != Some(b']') {
                        return Err(self.error("expected ']' to close the range"));
                    }
                    self.at += 1;
                    return Ok(Expr::Range(Box::new(first), Box::new(last)));
                }
                let mut items = vec![first];
                loop {
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => {
                            self.at += 1;
                            items.push(self.expr()?);
                        }
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Expr::List(items));
                        }
                        _ => return Err(self.error("expected ',' or ']' in the list")),
                    }
                }
            }
            b'{' => {
                self.at += 1;
                let mut entries = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.at += 1;
                    return Ok(Expr::Map(entries));
                }
                loop {
                    let key = self.expr()?;
                    self.skip_ws();
                    if self.peek() != Some(b':') {
                        return Err(self.error("expected ':' in the map"));
                    }
                    self.at += 1;
                    let value = self.expr()?;
                    entries.push((key, value));
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return Ok(Expr::Map(entries));
                        }
                        _ => return Err(self.error("expected ',' or '}' in the map")),
                    }
                }
            }
            _ if self.keyword("true") => Ok(Expr::Literal(Value::Bool(true))),
            _ if self.keyword("false") => Ok(Expr::Literal(Value::Bool(false))),
            _ if self.keyword("null") => Ok(Expr::Literal(Value::Null)),
            _ => Err(self.error("expected an expression")),
        }
    }

    fn number(&mut self) -> Result<Expr> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let float = self.peek() == Some(b'.') && self.peek_at(1).is_some_and(|b| b.is_ascii_digit());
        if float {
            self.at += 1;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.at += 1;
            }
        }
        let text = &self.src[start..self.at];
        let value = if float {
            text.parse().map(Value::Float).ok()
        } else {
            text.parse().map(Value::Int).ok()
        };
        value
            .map(Expr::Literal)
            .ok_or_else(|| self.error_at(start, format!("{text} is not a number this engine holds")))
    }

    /// A double-quoted string: backslash escapes, then `$references` and directives inside.
    fn interpolated(&mut self) -> Result<Expr> {
        let start = self.at;
        self.at += 1;
        let mut content = String::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error_at(start, "unclosed string"));
            };
            match b {
                b'"' => {
                    self.at += 1;
                    break;
                }
                b'\\' => {
                    let escaped = match self.peek_at(1) {
                        Some(b'n') => "\n",
                        Some(b't') => "\t",
                        Some(b'r') => "\r",
                        Some(b'"') => "\"",
                        Some(b'\\') => "\\",
                        _ => "\\",
                    };
                    self.at += if escaped == "\\" && self.peek_at(1) != Some(b'\\') {
                        1
                    } else {
                        2
                    };
                    content.push_str(escaped);
                }
                _ => {
                    let rest = self.rest();
                    let run = rest.find(['"', '\\']).unwrap_or(rest.len());
                    content.push_str(&rest[..run]);
                    self.at += run;
                }
            }
        }
        if !content.contains(['$', '#']) {
            return Ok(Expr::Literal(Value::Str(content)));
        }
        let mut inner = Parser {
            src: &content,
            at: 0,
            depth: self.depth,
            names: std::mem::take(&mut self.names),
        };
        let parsed = inner.block();
        self.names = inner.names;
        let (block, end) =
            parsed.map_err(|e| self.error_at(start, format!("in this string: {}", e.message)))?;
        match end {
            End::Eof => Ok(Expr::Interpolated(block)),
            _ => Err(self.error_at(start, "in this string: unbalanced #else or #end")),
        }
    }
}
