//! Straight-line renderings: the shape most mapping templates have (a payload read with
//! `#set($o = $input.path('$'))`, text with `$o.a.b` between, a `#foreach` over an array with
//! `#if($foreach.hasNext)`, a few `$context`, `$stageVariables`, `$input.params('name')` and
//! `$util.escapeJavaScript($o.a)`), lowered once, when the template is parsed, to a program
//! of a few operations that reads the payload's tape directly.
//!
//! The program takes the evaluator's own path through such a template without its generality:
//! variables hold payload nodes, not [`Value`]s; a reference is a variable and member names,
//! not a walk ready for a list, a map or a method at every step; text and the value after it
//! are one operation. Whatever it meets that it was not lowered for (a variable never set, a
//! step on something that is not a JSON object, a payload that is not JSON, a limit near)
//! makes it give up ([`Plan::run`] is `None`), and the evaluator renders the template from the
//! start: the program has no effect but its output, which is then dropped. So it needs to
//! agree with the evaluator only where it finishes, and there it writes what the evaluator
//! writes (the unit tests check every rendering both ways; the fuzz target `mapping_template`
//! holds the two to that).
//!
//! A template with anything else (`#set` of anything but `$input.path`, method calls but
//! `toUpperCase()` and `toLowerCase()` at the end of a payload read, `#break`, operators…) has
//! no program: the evaluator renders it.

use super::{
    Limits, Request,
    ast::{Accessor, Block, Expr, Names, Node, Reference},
    jsonpath::{JsonPath, Key},
    methods::{self, Env},
    tape::{self, Json, Name, NodeRef},
    value::{Map, Value},
};

/// A template lowered to operations ([`Plan::lower`]).
#[derive(Clone, Debug)]
pub(super) struct Plan {
    ops: Vec<Op>,
    /// It reads the payload as JSON (it has an [`Op::Set`]).
    reads_payload: bool,
}

/// The most variables a program has (a template with more has none): a run keeps them in an
/// array on the stack, numbered in the order the template names them ([`Var`]).
const MAX_VARS: usize = 16;

/// A variable of the program: its index among them, not the template's slot.
type Var = usize;

#[derive(Clone, Debug)]
enum Op {
    Text(Box<str>),
    /// `#set($var = $input.path('…'))` with a definite path: the node it reaches.
    Set {
        var: Var,
        path: Box<[PathKey]>,
    },
    /// Text, then a value: what most of a template is.
    Write {
        text: Box<str>,
        value: Piece,
    },
    /// `#foreach($var in $of.a.b)` over a JSON array.
    Foreach {
        var: Var,
        of: Var,
        chain: Box<[Name]>,
        body: Vec<Op>,
    },
    /// `#if`/`#elseif`/`#else`.
    If {
        branches: Vec<(Cond, Vec<Op>)>,
        otherwise: Vec<Op>,
    },
}

/// What a [`Op::Write`] writes after its text.
#[derive(Clone, Debug)]
enum Piece {
    /// `$var.a.b`, written as [`Then`] says.
    Read {
        var: Var,
        chain: Box<[Name]>,
        then: Then,
    },
    /// `$context.a…` or `$stageVariables.a…`.
    Entry { map: Scope, chain: Box<[Name]> },
    /// `$input.params('name')`.
    Param(Box<str>),
    /// `$input.body`.
    Body,
}

/// How a payload read is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    /// As it is.
    Text,
    /// `$util.escapeJavaScript(…)` of it.
    EscapeJavaScript,
    /// `….toUpperCase()` or `….toLowerCase()`: the method's name.
    Method(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Context,
    StageVariables,
}

#[derive(Clone, Debug)]
enum PathKey {
    Name(Name),
    Index(i64),
}

#[derive(Clone, Debug)]
enum Cond {
    /// `$foreach.<key>` of the innermost loop (the key's [`Name::head`]).
    Loop(u64),
    /// `$var.a.b`: there and neither `null` nor `false`.
    Truthy { var: Var, chain: Box<[Name]> },
}

/// Steps an operation is charged, beyond two per step of its chain: at least what the
/// evaluator counts for it (the text before it, the node, the reference, a call and its
/// literal argument), so a program that stays within [`Limits::max_steps`] stands for an
/// evaluation that does.
const OP_STEPS: u64 = 4;

/// What the program gives up on.
struct GiveUp;

type Run<T> = Result<T, GiveUp>;

/// The template's first slot of its own variables (before it, `$input`, `$util`…).
const FIRST_VARIABLE: usize = Names::VELOCITY_COUNT + 1;

// === impl Plan ===

impl Plan {
    /// The program of a template, or `None` when it has something the program does not do.
    /// `foreach_state_only` and `context_untouched` are the template's
    /// ([`super::Template`]): a program reads `$foreach` and `$context` as the evaluator
    /// reads them then.
    pub(super) fn lower(body: &Block, foreach_state_only: bool, context_untouched: bool) -> Option<Plan> {
        if !foreach_state_only || !context_untouched {
            return None;
        }
        let mut lower = Lower::default();
        let ops = lower.block(body, 0)?;
        Some(Plan {
            ops,
            reads_payload: lower.reads_payload,
        })
    }

    /// The output of the template for `request`, or `None` when the program gives up and the
    /// evaluator must render it. `capacity` sizes the output buffer.
    pub(super) fn run(&self, request: Request<'_>, limits: &Limits, capacity: usize) -> Option<String> {
        let json = if self.reads_payload {
            // The evaluator parses the payload the same way (`Env::json`); a payload that is
            // not a JSON object or array is left to it.
            match tape::parse(request.body) {
                Ok(Value::Json(json)) => Some(json),
                _ => return None,
            }
        } else {
            None
        };
        let context = match request.context {
            Value::Map(m) => m,
            _ => return None,
        };
        let mut runner = Runner {
            request,
            context,
            json: json.as_ref(),
            env: Env::new(request.body, request.params, limits),
            vars: [None; MAX_VARS],
            out: String::with_capacity(capacity),
            steps_left: limits.max_steps,
            max_output: limits.max_output,
            max_iterations: limits.max_iterations,
            innermost: None,
        };
        runner.ops(&self.ops).ok()?;
        Some(runner.out)
    }
}

/// The lowering of one template.
#[derive(Default)]
struct Lower {
    /// The template's slot of each program variable.
    vars: Vec<usize>,
    reads_payload: bool,
}

impl Lower {
    fn block(&mut self, nodes: &[Node], loops: usize) -> Option<Vec<Op>> {
        let mut ops: Vec<Op> = Vec::with_capacity(nodes.len());
        for node in nodes {
            let op = self.node(node, loops)?;
            // Text and the value after it are one operation.
            match (ops.last_mut(), op) {
                (Some(Op::Text(text)), Op::Write { text: none, value }) if none.is_empty() => {
                    let text = std::mem::take(text);
                    *ops.last_mut()? = Op::Write { text, value };
                }
                (_, op) => ops.push(op),
            }
        }
        Some(ops)
    }

    fn node(&mut self, node: &Node, loops: usize) -> Option<Op> {
        Some(match node {
            Node::Text(t) => Op::Text(t.clone()),
            Node::Ref(r) => Op::Write {
                text: Box::default(),
                value: self.piece(r)?,
            },
            Node::Set { target, value } => {
                let Expr::Ref(value) = value else { return None };
                if !target.chain.is_empty() || value.slot != Names::INPUT {
                    return None;
                }
                let path = JsonPath::parse(literal_call(value, "path")?).ok()?;
                let path = path
                    .keys()?
                    .map(|key| match key {
                        Key::Name(name) => PathKey::Name(Name::new(name)),
                        Key::Index(i) => PathKey::Index(i),
                    })
                    .collect();
                self.reads_payload = true;
                Op::Set {
                    var: self.var(target.slot)?,
                    path,
                }
            }
            Node::Foreach {
                slot,
                iterable: Expr::Ref(r),
                body,
                ..
            } => Op::Foreach {
                var: self.var(*slot)?,
                of: self.var(r.slot)?,
                chain: properties(r)?,
                body: self.block(body, loops + 1)?,
            },
            Node::If { branches, otherwise } => Op::If {
                branches: branches
                    .iter()
                    .map(|(cond, body)| Some((self.cond(cond, loops)?, self.block(body, loops)?)))
                    .collect::<Option<_>>()?,
                otherwise: match otherwise {
                    Some(body) => self.block(body, loops)?,
                    None => Vec::new(),
                },
            },
            Node::Foreach { .. } | Node::Break | Node::Stop => return None,
        })
    }

    /// The program variable of the template's variable `slot`; `None` for the evaluator's own
    /// (`$input`, `$context`…), or past [`MAX_VARS`].
    fn var(&mut self, slot: usize) -> Option<Var> {
        if slot < FIRST_VARIABLE {
            return None;
        }
        if let Some(var) = self.vars.iter().position(|s| *s == slot) {
            return Some(var);
        }
        if self.vars.len() == MAX_VARS {
            return None;
        }
        self.vars.push(slot);
        Some(self.vars.len() - 1)
    }

    /// A reference written out.
    fn piece(&mut self, r: &Reference) -> Option<Piece> {
        if r.mutation.is_some() {
            return None;
        }
        Some(match r.slot {
            Names::INPUT => match r.chain.as_slice() {
                [Accessor::Property(name)] if &**name == "body" => Piece::Body,
                _ => Piece::Param(literal_call(r, "params")?.into()),
            },
            Names::UTIL => {
                let [Accessor::Call(name, call)] = r.chain.as_slice() else {
                    return None;
                };
                let [Expr::Ref(arg)] = call.exprs.as_slice() else {
                    return None;
                };
                if &**name != "escapeJavaScript" {
                    return None;
                }
                Piece::Read {
                    var: self.var(arg.slot)?,
                    chain: properties(arg)?,
                    then: Then::EscapeJavaScript,
                }
            }
            Names::CONTEXT | Names::STAGE_VARIABLES if !r.chain.is_empty() => Piece::Entry {
                map: if r.slot == Names::CONTEXT {
                    Scope::Context
                } else {
                    Scope::StageVariables
                },
                chain: properties(r)?,
            },
            slot => match r.chain.split_last() {
                Some((Accessor::Call(name, call), path)) if call.exprs.is_empty() => {
                    let method = match &**name {
                        "toUpperCase" => "toUpperCase",
                        "toLowerCase" => "toLowerCase",
                        _ => return None,
                    };
                    Piece::Read {
                        var: self.var(slot)?,
                        chain: names(path)?,
                        then: Then::Method(method),
                    }
                }
                _ => Piece::Read {
                    var: self.var(slot)?,
                    chain: properties(r)?,
                    then: Then::Text,
                },
            },
        })
    }

    fn cond(&mut self, cond: &Expr, loops: usize) -> Option<Cond> {
        let Expr::Ref(r) = cond else { return None };
        if r.mutation.is_some() {
            return None;
        }
        match (r.slot, r.chain.as_slice()) {
            (Names::FOREACH, [Accessor::Property(key)])
                if loops > 0 && super::eval::FOREACH_KEYS.contains(&&**key) =>
            {
                Some(Cond::Loop(key.head()))
            }
            (slot, _) => Some(Cond::Truthy {
                var: self.var(slot)?,
                chain: properties(r)?,
            }),
        }
    }
}

/// The names of a chain of property reads; `None` if it has anything else.
fn properties(r: &Reference) -> Option<Box<[Name]>> {
    if !r.properties_only {
        return None;
    }
    names(&r.chain)
}

fn names(chain: &[Accessor]) -> Option<Box<[Name]>> {
    chain
        .iter()
        .map(|a| match a {
            Accessor::Property(name) => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// The string argument of `$r.<method>('literal')`, the reference's only accessor.
fn literal_call<'r>(r: &'r Reference, method: &str) -> Option<&'r str> {
    let [Accessor::Call(name, call)] = r.chain.as_slice() else {
        return None;
    };
    match call.literals.as_deref() {
        Some([Value::Str(arg)]) if &**name == method => Some(arg),
        _ => None,
    }
}

/// One run of a program.
struct Runner<'p, 'r> {
    request: Request<'r>,
    context: &'r Map,
    json: Option<&'p Json>,
    /// For the methods the program calls.
    env: Env<'r>,
    /// The variables' values: payload nodes.
    vars: [Option<NodeRef<'p>>; MAX_VARS],
    out: String,
    steps_left: u64,
    max_output: usize,
    max_iterations: usize,
    /// The innermost running loop's `(index, len)`; an outer one's waits on the stack of
    /// the [`Op::Foreach`] that runs it.
    innermost: Option<(usize, usize)>,
}

impl<'p> Runner<'p, '_> {
    fn ops(&mut self, ops: &[Op]) -> Run<()> {
        for op in ops {
            self.op(op)?;
            if self.out.len() > self.max_output {
                return Err(GiveUp);
            }
        }
        Ok(())
    }

    fn charge(&mut self, chain: usize) -> Run<()> {
        let steps = OP_STEPS + 2 * chain as u64;
        self.steps_left = self.steps_left.checked_sub(steps).ok_or(GiveUp)?;
        Ok(())
    }

    fn op(&mut self, op: &Op) -> Run<()> {
        match op {
            Op::Text(t) => {
                self.charge(0)?;
                self.out.push_str(t);
            }
            Op::Write { text, value } => {
                self.out.push_str(text);
                self.piece(value)?;
            }
            Op::Set { var, path } => {
                self.charge(path.len())?;
                let mut node = self.json.ok_or(GiveUp)?.node();
                let found = path.iter().try_fold((), |(), key| {
                    node = match key {
                        PathKey::Name(name) => node.member_named(name)?,
                        PathKey::Index(i) => node.item(*i)?,
                    };
                    Some(())
                });
                // A path that reaches nothing is `null`, and `#set` to `null` leaves the
                // variable as it was.
                if found.is_some() {
                    *self.var_mut(*var)? = Some(node);
                }
            }
            Op::Foreach { var, of, chain, body } => {
                self.charge(chain.len())?;
                let items = match self.read(*of, chain)? {
                    // A missing array has no items.
                    None => return Ok(()),
                    Some(items) if items.is_array() => items,
                    Some(_) => return Err(GiveUp),
                };
                let len = items.item_count().min(self.max_iterations);
                let saved = *self.var_mut(*var)?;
                let outer = self.innermost;
                for (i, item) in items.children().take(len).enumerate() {
                    self.charge(0)?;
                    self.innermost = Some((i, len));
                    *self.var_mut(*var)? = Some(item);
                    self.ops(body)?;
                }
                self.innermost = outer;
                *self.var_mut(*var)? = saved;
            }
            Op::If { branches, otherwise } => {
                for (cond, body) in branches {
                    if self.holds(cond)? {
                        return self.ops(body);
                    }
                }
                self.ops(otherwise)?;
            }
        }
        Ok(())
    }

    fn piece(&mut self, piece: &Piece) -> Run<()> {
        match piece {
            Piece::Read { var, chain, then } => {
                self.charge(chain.len())?;
                let Some(node) = self.read(*var, chain)? else {
                    // `null` writes nothing.
                    return Ok(());
                };
                match then {
                    Then::Text => node.write_text(&mut self.out),
                    Then::EscapeJavaScript => {
                        methods::escape_javascript_into(node.as_plain_str().ok_or(GiveUp)?, &mut self.out);
                    }
                    Then::Method(name) => {
                        let s = node.as_plain_str().ok_or(GiveUp)?;
                        methods::string(s, name, &[], &mut self.env)
                            .map_err(|_| GiveUp)?
                            .write_text(&mut self.out);
                    }
                }
            }
            Piece::Entry { map, chain } => {
                self.charge(chain.len())?;
                let mut map = match map {
                    Scope::Context => self.context,
                    Scope::StageVariables => self.request.stage_variables,
                };
                let Some((last, path)) = chain.split_last() else {
                    return Err(GiveUp);
                };
                for name in path {
                    map = match map.get(name) {
                        Some(Value::Map(m)) => m,
                        // A property of `null` is `null`.
                        None | Some(Value::Null) => return Ok(()),
                        Some(_) => return Err(GiveUp),
                    };
                }
                if let Some(value) = map.get(last) {
                    value.write_text(&mut self.out);
                }
            }
            Piece::Param(name) => {
                self.charge(0)?;
                if let Some(value) = self.env.param(name) {
                    self.out.push_str(value);
                }
            }
            Piece::Body => {
                self.charge(0)?;
                self.out.push_str(self.request.body);
            }
        }
        Ok(())
    }

    fn var_mut(&mut self, var: Var) -> Run<&mut Option<NodeRef<'p>>> {
        self.vars.get_mut(var).ok_or(GiveUp)
    }

    /// `$var.a.b…` on the payload: the node, `None` for `null` (a missing member). A variable
    /// the program never set, or a step on something other than an object, gives up.
    fn read(&self, var: Var, chain: &[Name]) -> Run<Option<NodeRef<'p>>> {
        let mut node = self.vars.get(var).copied().flatten().ok_or(GiveUp)?;
        for name in chain {
            if !node.is_object() {
                return Err(GiveUp);
            }
            match node.member_named(name) {
                Some(member) => node = member,
                None => return Ok(None),
            }
        }
        Ok(Some(node))
    }

    fn holds(&mut self, cond: &Cond) -> Run<bool> {
        match cond {
            Cond::Loop(key) => {
                self.charge(1)?;
                let (index, len) = self.innermost.ok_or(GiveUp)?;
                Ok(super::eval::loop_holds(index, len, *key))
            }
            Cond::Truthy { var, chain } => {
                self.charge(chain.len())?;
                Ok(self.read(*var, chain)?.is_some_and(|node| node.truthy()))
            }
        }
    }
}
