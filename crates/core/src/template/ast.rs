//! The syntax tree of a parsed template. Built once by [`super::parser`], walked per request by
//! [`super::eval`]; it owns no request data.

use super::{
    tape::Name,
    value::{Map, Value},
};

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
        /// `var`'s slot.
        slot: usize,
        iterable: Expr,
        body: Block,
        /// The items may be lent rather than copied: `iterable` is a list in a variable reached
        /// by properties and indexes, a variable `body` never names, and `body` only reads
        /// `var` (see [`lendable`]). Each item is moved into `var` for its iteration and back.
        lend: bool,
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
    /// `root`'s slot in the rendering's variables ([`Names`]).
    pub slot: usize,
    pub chain: Vec<Accessor>,
    /// Where the chain's first call is, when that call changes its receiver (`$map.put(…)`):
    /// [`Reference::mutation_of`] the chain.
    pub mutation: Option<usize>,
    /// Every accessor is a property read (`$o.customer.name`): nothing to evaluate first.
    pub properties_only: bool,
    /// `$!name`: renders nothing rather than its source text when the value is undefined.
    pub quiet: bool,
    /// The reference as written, rendered when its variable is undefined (as Velocity does).
    pub source: Box<str>,
}

impl Reference {
    /// Where `chain`'s first call is, if it changes its receiver.
    pub fn mutation_of(chain: &[Accessor]) -> Option<usize> {
        chain
            .iter()
            .position(|a| matches!(a, Accessor::Call(..)))
            .filter(|k| matches!(&chain[*k], Accessor::Call(name, _) if super::methods::is_mutator(name)))
    }
}

/// One step of a reference.
#[derive(Clone, Debug, PartialEq)]
pub enum Accessor {
    /// `.name`: a map key (or a bean-style property such as `.size`, `.empty`).
    Property(Name),
    /// `[expr]`: a list index or a map key.
    Index(Expr),
    /// `.name(args…)`.
    Call(Box<str>, CallArgs),
}

/// A call's arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct CallArgs {
    pub exprs: Vec<Expr>,
    /// Their values when every one is a literal (`$input.path('$')`, `$input.params('id')`):
    /// lent to each call rather than evaluated and copied for it.
    pub literals: Option<Vec<Value>>,
}

impl CallArgs {
    pub fn new(exprs: Vec<Expr>) -> CallArgs {
        let literals = exprs
            .iter()
            .map(|e| match e {
                Expr::Literal(v) => Some(v.clone()),
                _ => None,
            })
            .collect();
        CallArgs { exprs, literals }
    }
}

impl std::ops::Deref for CallArgs {
    type Target = [Expr];

    fn deref(&self) -> &[Expr] {
        &self.exprs
    }
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

/// The variables a template names, each given a slot when parsed: a rendering keeps its
/// variables in a vector indexed by slot, not in a map by name. The evaluator's own variables
/// come first, at the fixed slots below.
#[derive(Clone, Debug, PartialEq)]
pub struct Names(Vec<Box<str>>);

impl Names {
    pub const INPUT: usize = 0;
    pub const UTIL: usize = 1;
    pub const CONTEXT: usize = 2;
    pub const STAGE_VARIABLES: usize = 3;
    pub const FOREACH: usize = 4;
    pub const VELOCITY_COUNT: usize = 5;

    /// The slot of `name`, given one if new.
    pub fn slot(&mut self, name: &str) -> usize {
        match self.0.iter().position(|n| **n == *name) {
            Some(at) => at,
            None => {
                self.0.push(name.into());
                self.0.len() - 1
            }
        }
    }

    /// How many slots there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl Default for Names {
    fn default() -> Self {
        Names(SPECIAL.map(Box::from).to_vec())
    }
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
        visit(block, &mut |seen| match seen {
            Seen::Read(r) | Seen::SetTarget(r) if &*r.root == root => match r.chain.first() {
                Some(Accessor::Property(key)) => reads.add(Some(key)),
                _ => reads.add(None),
            },
            Seen::LoopVar(var) if var == root => reads.add(None),
            _ => {}
        });
        reads
    }

    /// What a template (`block`) reads of `$input.params()`: the names it looks up with
    /// `$input.params('name')`, or all of it (the whole map, a section, a name computed
    /// at render time, or `$input` handed on).
    pub fn of_params(block: &[Node]) -> Reads {
        let mut reads = Reads::Nothing;
        visit(block, &mut |seen| match seen {
            Seen::Read(r) | Seen::SetTarget(r) if &*r.root == "input" => match r.chain.first() {
                Some(Accessor::Call(name, args)) if &**name == "params" => match &args[..] {
                    [Expr::Literal(Value::Str(key))] => reads.add(Some(key)),
                    _ => reads.add(None),
                },
                Some(Accessor::Call(name, _)) if matches!(&**name, "path" | "json" | "body") => {}
                Some(Accessor::Property(name)) if matches!(&**name, "path" | "json" | "body") => {}
                _ => reads.add(None),
            },
            Seen::LoopVar("input") => reads.add(None),
            _ => {}
        });
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

    /// The entries read: `None` when any may be.
    pub fn names(&self) -> Option<&[Box<str>]> {
        match self {
            Reads::Nothing => Some(&[]),
            Reads::Keys(keys) => Some(keys),
            Reads::All => None,
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

/// Whether `block` never changes the variable `root`: no `#set` of it or through it, no
/// mutating call on it, no `#foreach` over it as the loop variable.
pub fn untouched(block: &[Node], root: &str) -> bool {
    let mut untouched = true;
    visit(block, &mut |seen| match seen {
        Seen::SetTarget(r) if &*r.root == root => untouched = false,
        Seen::Read(r) if &*r.root == root && r.mutation.is_some() => untouched = false,
        Seen::LoopVar(var) if var == root => untouched = false,
        _ => {}
    });
    untouched
}

/// Whether `block` reads the variable `root` anywhere.
pub fn reads(block: &[Node], root: &str) -> bool {
    let mut read = false;
    visit(block, &mut |seen| {
        if let Seen::Read(r) = seen {
            read |= &*r.root == root;
        }
    });
    read
}

/// Whether `block` reads `$foreach` only as `$foreach.index`, `.count`, `.hasNext`, `.first`
/// or `.last` (each on its own), and never changes it: then a rendering need not build the
/// map, and reads the loop's state instead.
pub fn foreach_state_only(block: &[Node], keys: &[&str]) -> bool {
    let mut only = true;
    visit(block, &mut |seen| match seen {
        Seen::Read(r) if &*r.root == "foreach" => {
            only &= matches!(r.chain.as_slice(), [Accessor::Property(k)] if keys.contains(&&**k));
        }
        Seen::SetTarget(r) if &*r.root == "foreach" => only = false,
        Seen::LoopVar("foreach") => only = false,
        _ => {}
    });
    only
}

/// How a [`Reference`] appears in a template, for [`visit`].
#[derive(Clone, Copy, Debug)]
pub enum Seen<'a> {
    /// Read (written out, an argument, an iterable…), or called on.
    Read(&'a Reference),
    /// The target of `#set`.
    SetTarget(&'a Reference),
    /// The variable of a `#foreach`.
    LoopVar(&'a str),
}

/// Calls `f` for every reference and loop variable of `block`, nested ones included.
pub fn visit<'a>(block: &'a [Node], f: &mut impl FnMut(Seen<'a>)) {
    for node in block {
        match node {
            Node::Text(_) | Node::Break | Node::Stop => {}
            Node::Ref(r) => visit_reference(r, false, f),
            Node::Set { target, value } => {
                visit_reference(target, true, f);
                visit_expr(value, f);
            }
            Node::If { branches, otherwise } => {
                for (cond, body) in branches {
                    visit_expr(cond, f);
                    visit(body, f);
                }
                if let Some(body) = otherwise {
                    visit(body, f);
                }
            }
            Node::Foreach {
                var, iterable, body, ..
            } => {
                f(Seen::LoopVar(var));
                visit_expr(iterable, f);
                visit(body, f);
            }
        }
    }
}

fn visit_reference<'a>(r: &'a Reference, set: bool, f: &mut impl FnMut(Seen<'a>)) {
    f(if set { Seen::SetTarget(r) } else { Seen::Read(r) });
    for accessor in &r.chain {
        match accessor {
            Accessor::Property(_) => {}
            Accessor::Index(e) => visit_expr(e, f),
            Accessor::Call(_, args) => args.iter().for_each(|e| visit_expr(e, f)),
        }
    }
}

fn visit_expr<'a>(e: &'a Expr, f: &mut impl FnMut(Seen<'a>)) {
    match e {
        Expr::Literal(_) => {}
        Expr::Ref(r) => visit_reference(r, false, f),
        Expr::Interpolated(block) => visit(block, f),
        Expr::List(items) => items.iter().for_each(|e| visit_expr(e, f)),
        Expr::Map(entries) => {
            for (k, v) in entries {
                visit_expr(k, f);
                visit_expr(v, f);
            }
        }
        Expr::Range(a, b) | Expr::Binary(_, a, b) => {
            visit_expr(a, f);
            visit_expr(b, f);
        }
        Expr::Not(e) | Expr::Negate(e) => visit_expr(e, f),
    }
}

/// Variables the evaluator itself sets or reads besides the template's own, in the order of
/// their fixed slots ([`Names::INPUT`]…).
const SPECIAL: [&str; 6] = [
    "input",
    "util",
    "context",
    "stageVariables",
    "foreach",
    "velocityCount",
];

/// Whether `#foreach($var in iterable) body` may lend its items (see [`Node::Foreach`]): the
/// list is reached from an ordinary variable by properties and indexes only, `body` never
/// names that variable, and `body` never changes `var` (no `#set` of it or through it, no
/// mutating call on it, no inner `#foreach` over it). Moving an item out of the list and back
/// is then invisible to the template.
pub fn lendable(var: &str, iterable: &Expr, body: &[Node], is_mutator: impl Fn(&str) -> bool) -> bool {
    let Expr::Ref(r) = iterable else {
        return false;
    };
    if SPECIAL.contains(&var)
        || SPECIAL.contains(&&*r.root)
        || *r.root == *var
        || r.chain.iter().any(|a| matches!(a, Accessor::Call(..)))
    {
        return false;
    }
    let mut ok = true;
    visit(body, &mut |seen| match seen {
        Seen::Read(x) | Seen::SetTarget(x) if x.root == r.root => ok = false,
        Seen::LoopVar(v) if *v == *r.root || v == var => ok = false,
        Seen::SetTarget(x) if &*x.root == var => ok = false,
        Seen::Read(x)
            if &*x.root == var
                && x.chain
                    .iter()
                    .any(|a| matches!(a, Accessor::Call(name, _) if is_mutator(name))) =>
        {
            ok = false;
        }
        _ => {}
    });
    ok
}
