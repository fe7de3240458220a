//! The syntax tree of a parsed template. Built once by [`super::parser`], walked per request by
//! [`super::eval`]; it owns no request data.

use super::value::{Map, Value};

/// A sequence of nodes: a template body, a branch of `#if`, the body of `#foreach`.
pub type Block = Vec<Node>;

/// One piece of a template.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// Literal text, written out as it is.
    Text(Box<str>),
    /// `$name…`, `${name…}` or `$!name…`: rendered as its value's text.
    Ref(Reference),
    /// `#set($target = value)`.
    Set { target: Reference, value: Expr },
    /// `#if (…) … #elseif (…) … #else … #end`: the first branch whose condition holds.
    If {
        branches: Vec<(Expr, Block)>,
        otherwise: Option<Block>,
    },
    /// `#foreach($var in iterable) … #end`.
    Foreach {
        var: Box<str>,
        iterable: Expr,
        body: Block,
    },
    /// `#break`: leaves the innermost `#foreach`.
    Break,
    /// `#stop`: ends the rendering; what was written so far is the output.
    Stop,
}

/// A reference: a variable and a chain of property reads, index reads and method calls.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    pub root: Box<str>,
    pub chain: Vec<Accessor>,
    /// `$!name`: renders nothing rather than its source text when the value is undefined.
    pub quiet: bool,
    /// The reference as written, rendered when its variable is undefined (as Velocity does).
    pub source: Box<str>,
}

/// One step of a reference.
#[derive(Clone, Debug, PartialEq)]
pub enum Accessor {
    /// `.name`: a map key (or a bean-style property such as `.size`, `.empty`).
    Property(Box<str>),
    /// `[expr]`: a list index or a map key.
    Index(Expr),
    /// `.name(args…)`.
    Call(Box<str>, Vec<Expr>),
}

/// An expression inside a directive or a method call.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Literal(Value),
    Ref(Reference),
    /// A double-quoted string: its `$references` and directives are rendered.
    Interpolated(Block),
    List(Vec<Expr>),
    Map(Vec<(Expr, Expr)>),
    /// `[from..to]`, both ends included, counting down when `from > to`.
    Range(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Negate(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// Which entries of a map variable (`$context`, `$stageVariables`) a template can read or
/// change: found once, when the template is parsed, so a rendering copies only those.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Reads {
    /// The variable is never mentioned.
    #[default]
    Nothing,
    /// Only through `$root.key…` with these keys.
    Keys(Vec<Box<str>>),
    /// Any other way (`$root`, `$root[…]`, `$root.keySet()`, `#set($root = …)`…): all of it.
    All,
}

impl Reads {
    /// What a template (`block`) reads of the variable `root`.
    pub fn of(block: &[Node], root: &str) -> Reads {
        let mut reads = Reads::Nothing;
        reads.block(block, root);
        reads
    }

    fn add(&mut self, key: Option<&str>) {
        match (key, &mut *self) {
            (_, Reads::All) => {}
            (None, _) => *self = Reads::All,
            (Some(k), Reads::Keys(keys)) => {
                if !keys.iter().any(|have| &**have == k) {
                    keys.push(k.into());
                }
            }
            (Some(k), Reads::Nothing) => *self = Reads::Keys(vec![k.into()]),
        }
    }

    fn block(&mut self, block: &[Node], root: &str) {
        for node in block {
            match node {
                Node::Text(_) | Node::Break | Node::Stop => {}
                Node::Ref(r) => self.reference(r, root),
                Node::Set { target, value } => {
                    self.reference(target, root);
                    self.expr(value, root);
                }
                Node::If { branches, otherwise } => {
                    for (cond, body) in branches {
                        self.expr(cond, root);
                        self.block(body, root);
                    }
                    if let Some(body) = otherwise {
                        self.block(body, root);
                    }
                }
                Node::Foreach { var, iterable, body } => {
                    if &**var == root {
                        self.add(None);
                    }
                    self.expr(iterable, root);
                    self.block(body, root);
                }
            }
        }
    }

    fn reference(&mut self, r: &Reference, root: &str) {
        if &*r.root == root {
            match r.chain.first() {
                Some(Accessor::Property(key)) => self.add(Some(key)),
                _ => self.add(None),
            }
        }
        for accessor in &r.chain {
            match accessor {
                Accessor::Property(_) => {}
                Accessor::Index(e) => self.expr(e, root),
                Accessor::Call(_, args) => {
                    for e in args {
                        self.expr(e, root);
                    }
                }
            }
        }
    }

    fn expr(&mut self, e: &Expr, root: &str) {
        match e {
            Expr::Literal(_) => {}
            Expr::Ref(r) => self.reference(r, root),
            Expr::Interpolated(block) => self.block(block, root),
            Expr::List(items) => items.iter().for_each(|e| self.expr(e, root)),
            Expr::Map(entries) => {
                for (k, v) in entries {
                    self.expr(k, root);
                    self.expr(v, root);
                }
            }
            Expr::Range(a, b) | Expr::Binary(_, a, b) => {
                self.expr(a, root);
                self.expr(b, root);
            }
            Expr::Not(e) | Expr::Negate(e) => self.expr(e, root),
        }
    }

    /// The entries of `map` the template may read, copied.
    pub fn copy(&self, map: &Map) -> Map {
        match self {
            Reads::Nothing => Map::default(),
            Reads::Keys(keys) => Map(map
                .0
                .iter()
                .filter(|(k, _)| keys.iter().any(|key| **key == **k))
                .cloned()
                .collect()),
            Reads::All => map.clone(),
        }
    }
}
