//! The syntax tree of a parsed template. Built once by [`super::parser`], walked per request by
//! [`super::eval`]; it owns no request data.

use super::value::Value;

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
