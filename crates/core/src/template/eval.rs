//! The evaluator: walks a parsed template against one request and writes the output.
//!
//! Variables live in one flat scope, as in Velocity (a `#set` inside `#if` or `#foreach` is
//! seen after it); `#foreach` saves and restores its loop variable, `$foreach` and
//! `$velocityCount`. Following Velocity 1.7, which AWS runs, `#set` to a `null` value leaves
//! the variable as it was.
//!
//! Every node, reference step and call costs a step ([`Limits::max_steps`]); every write and
//! every string built is held to [`Limits::max_output`]; a `#foreach` stops after
//! [`Limits::max_iterations`] (Velocity's `maxloops`).

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{
    Limits, RenderError, Rendered, Request, Template,
    ast::{Accessor, BinOp, Block, Expr, Names, Node, Reference},
    methods::{self, Env},
    tape::{JsonItems, Name, NodeRef},
    value::{Map, Value},
};

type Result<T, E = RenderError> = std::result::Result<T, E>;

/// The variables of one rendering, by slot ([`Names`]): `None` for one never set. `$context`
/// is read where the request holds it when the template never changes it
/// ([`Template::context_untouched`]): a rendering copies nothing for it.
struct Vars<'r> {
    slots: Vec<Option<Value>>,
    context: Option<&'r Value>,
}

impl Vars<'_> {
    fn get(&self, slot: usize) -> Option<&Value> {
        match self.slots.get(slot)? {
            Some(v) => Some(v),
            None if slot == Names::CONTEXT => self.context,
            None => None,
        }
    }

    fn get_mut(&mut self, slot: usize) -> Option<&mut Value> {
        self.slots.get_mut(slot)?.as_mut()
    }

    fn contains_key(&self, slot: usize) -> bool {
        self.get(slot).is_some()
    }

    fn insert(&mut self, slot: usize, value: Value) {
        if let Some(v) = self.slots.get_mut(slot) {
            *v = Some(value);
        }
    }

    fn remove(&mut self, slot: usize) -> Option<Value> {
        self.slots.get_mut(slot)?.take()
    }
}

/// The evaluated arguments of one reference's accessors, one per accessor; empty (no
/// allocation) when every accessor is a property read, the common case.
type Args = Vec<Arg>;

/// The entries of `$foreach`, in order.
pub(super) const FOREACH_KEYS: [&str; 5] = ["index", "count", "hasNext", "first", "last"];

/// The largest list a range literal may build outside a `#foreach`.
const MAX_RANGE: i64 = 10_000;

/// How a block ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Stop,
}

/// Renders `body` for one request.
pub(super) fn render(template: &Template, request: Request<'_>, limits: &Limits) -> Result<Rendered> {
    let Request {
        body: payload,
        params,
        context,
        stage_variables,
    } = request;
    let mut vars = Vars {
        slots: vec![None; template.names.len()],
        context: None,
    };
    if template.context_untouched {
        vars.context = Some(context);
    } else {
        let copy = match context {
            Value::Map(m) => template.context.copy(m),
            _ => Map::default(),
        };
        vars.insert(Names::CONTEXT, Value::Map(copy));
    }
    vars.insert(
        Names::STAGE_VARIABLES,
        Value::Map(template.stage_variables.copy(stage_variables)),
    );
    vars.insert(Names::INPUT, Value::Input);
    vars.insert(Names::UTIL, Value::Util);
    let mut eval = Eval {
        vars,
        out: String::with_capacity(template.output_hint.capacity(payload, limits)),
        env: Env::new(payload, params, limits),
        foreach_untouched: template.foreach_untouched,
        loops: template.foreach_state_only.then_some(None),
        velocity_count: template.reads_velocity_count,
    };
    eval.block(&template.body)?;
    template.output_hint.record(eval.out.len());
    let context = match eval.vars.remove(Names::CONTEXT).map(Value::into_plain) {
        Some(Value::Map(m)) => m,
        _ => Map::default(),
    };
    Ok(Rendered {
        body: eval.out,
        context,
    })
}

/// The length of a template's last output, which sizes the next rendering's buffer: most
/// templates write about as much each time, and a buffer sized by the payload is mostly too
/// large (a larger allocation costs more) or too small (grown, and copied, on the way).
#[derive(Debug, Default)]
pub(super) struct OutputHint(AtomicUsize);

impl OutputHint {
    /// The buffer to start a rendering of `payload` with.
    pub(super) fn capacity(&self, payload: &str, limits: &Limits) -> usize {
        match self.0.load(Ordering::Relaxed) {
            // None yet: the payload's length, and some.
            0 => payload.len().min(limits.max_output) + 256,
            // A little room for an output that grows.
            last => last + last / 16 + 32,
        }
    }

    pub(super) fn record(&self, len: usize) {
        // Written only when it changes: renderings on other threads keep their cache line.
        if self.0.load(Ordering::Relaxed) != len {
            self.0.store(len, Ordering::Relaxed);
        }
    }
}

impl Clone for OutputHint {
    fn clone(&self) -> Self {
        OutputHint(AtomicUsize::new(self.0.load(Ordering::Relaxed)))
    }
}

struct Eval<'r> {
    vars: Vars<'r>,
    out: String,
    env: Env<'r>,
    /// The template never changes `$foreach` ([`Template::foreach_untouched`]): a five-entry
    /// map there is the one `#foreach` made, keys in place.
    foreach_untouched: bool,
    /// When the template reads `$foreach` only entry by entry
    /// ([`Template::foreach_state_only`]): the innermost running loop's state (`None` outside
    /// any loop), which those reads take in place of a `$foreach` map. An outer loop's state
    /// waits on the stack of [`Eval::iterate`], so no rendering allocates for it.
    loops: Option<Option<LoopState>>,
    /// The template reads `$velocityCount` ([`Template::reads_velocity_count`]): each
    /// `#foreach` sets it.
    velocity_count: bool,
}

/// Where a `#foreach` is: item `index` of `len`.
#[derive(Clone, Copy)]
struct LoopState {
    index: usize,
    len: usize,
}

/// The [`Name::head`] words of `$foreach`'s keys: a name of up to seven bytes is equal to one
/// of these exactly when its word is, so a key is told in one comparison, not by its text.
const HAS_NEXT: u64 = Name::short("hasNext");
const FIRST: u64 = Name::short("first");
const LAST: u64 = Name::short("last");
const INDEX: u64 = Name::short("index");
const COUNT: u64 = Name::short("count");

impl LoopState {
    /// `$foreach.hasNext`, `.first` and `.last` (the key's [`Name::head`]); `None` for
    /// another key.
    fn flag(self, key: u64) -> Option<bool> {
        match key {
            HAS_NEXT => Some(self.index + 1 < self.len),
            FIRST => Some(self.index == 0),
            LAST => Some(self.index + 1 == self.len),
            _ => None,
        }
    }

    /// Whether `$foreach.<key>` tests true in `#if`: [`LoopState::entry`]'s truth, without
    /// making it (its numbers are true, anything else `null`).
    fn holds(self, key: &Name) -> bool {
        loop_holds(self.index, self.len, key.head())
    }

    /// `$foreach.<key>` (the key's [`Name::head`]).
    fn entry(self, key: u64) -> Value {
        let count = i64::try_from(self.index).unwrap_or(i64::MAX).saturating_add(1);
        match (key, self.flag(key)) {
            (_, Some(flag)) => Value::Bool(flag),
            (INDEX, _) => Value::Int(count - 1),
            (COUNT, _) => Value::Int(count),
            _ => Value::Null,
        }
    }
}

/// Whether `$foreach.<key>` (the key's [`Name::head`]) tests true in `#if` at item `index` of
/// `len`.
pub(super) fn loop_holds(index: usize, len: usize, key: u64) -> bool {
    let state = LoopState { index, len };
    state.flag(key).unwrap_or(matches!(key, INDEX | COUNT))
}

/// A value read through a reference: borrowed from a variable while only reads happen.
enum Cur<'v> {
    Borrowed(&'v Value),
    /// A node of a JSON payload a variable holds ([`Value::Json`]).
    Node(NodeRef<'v>),
    Owned(Value),
}

impl<'v> Cur<'v> {
    /// A variable's value, or a part of one, borrowed: a JSON payload is held as its node, so
    /// the next step reads it in place.
    fn of(v: &'v Value) -> Cur<'v> {
        match v {
            Value::Json(j) => Cur::Node(j.node()),
            other => Cur::Borrowed(other),
        }
    }

    /// The value, for a method: a JSON node built ([`Value::into_plain`]).
    fn plain(&self) -> std::borrow::Cow<'_, Value> {
        use std::borrow::Cow;
        match self {
            Cur::Borrowed(Value::Json(j)) | Cur::Owned(Value::Json(j)) => Cow::Owned(j.to_value()),
            Cur::Borrowed(v) => Cow::Borrowed(v),
            Cur::Owned(v) => Cow::Borrowed(v),
            Cur::Node(n) => Cow::Owned(n.to_value()),
        }
    }

    /// The value to keep; a JSON node stays a reference into its payload.
    fn into_owned(self) -> Value {
        match self {
            Cur::Borrowed(v) => v.clone(),
            Cur::Node(n) => n.to_lazy(),
            Cur::Owned(v) => v,
        }
    }

    fn write_text(&self, out: &mut String) {
        match self {
            Cur::Borrowed(v) => v.write_text(out),
            Cur::Node(n) => n.write_text(out),
            Cur::Owned(v) => v.write_text(out),
        }
    }

    fn truthy(&self) -> bool {
        match self {
            Cur::Borrowed(v) => v.truthy(),
            Cur::Node(n) => n.truthy(),
            Cur::Owned(v) => v.truthy(),
        }
    }
}

/// The items of a `#foreach`.
enum Items<'a> {
    /// Its own copy.
    Owned(std::vec::IntoIter<Value>),
    /// A JSON array's items, read from the payload one by one.
    Json(JsonItems),
    /// A variable's list, `len` long, reached through `r` with `args`: each item is moved
    /// out for its iteration and back after it.
    Lent {
        r: &'a Reference,
        args: Args,
        len: usize,
    },
}

impl Items<'_> {
    fn len(&self) -> usize {
        match self {
            Items::Owned(items) => items.len(),
            Items::Json(items) => items.len(),
            Items::Lent { len, .. } => *len,
        }
    }

    /// Item `i` (items are taken in order).
    fn take(&mut self, vars: &mut Vars<'_>, i: usize) -> Option<Value> {
        match self {
            Items::Owned(items) => items.next(),
            Items::Json(items) => items.next(),
            Items::Lent { r, args, .. } => match place(vars, r.slot, &r.chain, args, Place::Lend) {
                Some(Value::List(items)) => items.get_mut(i).map(std::mem::take),
                _ => None,
            },
        }
    }

    /// Puts item `i`, which the loop variable `var` holds, back where it was lent from.
    fn give_back(&mut self, vars: &mut Vars<'_>, var: usize, i: usize) {
        if let Items::Lent { r, args, .. } = self
            && let Some(item) = vars.get_mut(var).map(std::mem::take)
            && let Some(Value::List(items)) = place(vars, r.slot, &r.chain, args, Place::Lend)
            && let Some(slot) = items.get_mut(i)
        {
            *slot = item;
        }
    }
}

/// The evaluated argument of one accessor: a call's arguments or an index.
enum Arg {
    None,
    Index(Value),
    Call(Vec<Value>),
}

// === impl Eval ===

impl Eval<'_> {
    fn write(&mut self, s: &str) -> Result<()> {
        if self.out.len() + s.len() > self.env.limits.max_output {
            return Err(RenderError::Limit("the output is larger than allowed"));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn block(&mut self, nodes: &[Node]) -> Result<Flow> {
        for node in nodes {
            self.env.step()?;
            match node {
                Node::Text(t) => self.write(t)?,
                Node::Ref(r) => {
                    // Written from where the value lives: no copy of it.
                    if r.properties_only && self.write_json_members(r)? {
                        continue;
                    }
                    if matches!(r.slot, Names::INPUT | Names::UTIL) && self.write_direct(r)? {
                        continue;
                    }
                    let found = if r.properties_only {
                        walk_properties(&self.vars, &mut self.env, self.loops, r)?
                    } else {
                        match self.prepare(r)? {
                            Some((args, start, owned)) => {
                                walk(&self.vars, &mut self.env, r, args, start, owned)?
                            }
                            None => None,
                        }
                    };
                    match found {
                        None if !r.quiet => self.out.push_str(&r.source),
                        None => {}
                        Some(v) => v.write_text(&mut self.out),
                    }
                    if self.out.len() > self.env.limits.max_output {
                        return Err(RenderError::Limit("the output is larger than allowed"));
                    }
                }
                Node::Set { target, value } => {
                    let v = self.expr_lazy(value)?;
                    self.set(target, v)?;
                }
                Node::If { branches, otherwise } => {
                    let mut taken = None;
                    for (cond, body) in branches {
                        if self.condition(cond)? {
                            taken = Some(body);
                            break;
                        }
                    }
                    if let Some(body) = taken.or(otherwise.as_ref()) {
                        let flow = self.block(body)?;
                        if flow != Flow::Normal {
                            return Ok(flow);
                        }
                    }
                }
                Node::Foreach {
                    slot,
                    iterable,
                    body,
                    lend,
                    ..
                } => {
                    if self.foreach(*slot, iterable, body, *lend)? == Flow::Stop {
                        return Ok(Flow::Stop);
                    }
                }
                Node::Break => return Ok(Flow::Break),
                Node::Stop => return Ok(Flow::Stop),
            }
        }
        Ok(Flow::Normal)
    }

    /// Writes a chain of properties read from a JSON payload (`$o.customer.name`, the common
    /// case) from the tape, as [`walk_properties`] reads it; `false` when the reference is no
    /// such chain (its variable holds something else, or a step is not on an object).
    fn write_json_members(&mut self, r: &Reference) -> Result<bool> {
        // `$foreach` read from the loop's state is no variable's value.
        if r.slot == Names::FOREACH && self.loops.is_some() {
            return Ok(false);
        }
        let Some(found) = self
            .vars
            .get(r.slot)
            .map(|root| json_chain(root, &mut self.env, &r.chain))
            .transpose()?
            .flatten()
        else {
            return Ok(false);
        };
        // A missing member reads as `null`, which writes nothing.
        if let Some(node) = found {
            node.write_text(&mut self.out);
            if self.out.len() > self.env.limits.max_output {
                return Err(RenderError::Limit("the output is larger than allowed"));
            }
        }
        Ok(true)
    }

    /// Writes the two calls templates make most, `$util.escapeJavaScript($ref)` and
    /// `$input.params('name')`, without their values made first; `false` when `r` is
    /// neither (or its variable holds something else than `$util` or `$input`).
    #[inline(never)]
    fn write_direct(&mut self, r: &Reference) -> Result<bool> {
        if r.mutation.is_some() {
            return Ok(false);
        }
        let [Accessor::Call(name, call)] = r.chain.as_slice() else {
            return Ok(false);
        };
        match (self.vars.get(r.slot), &**name, call.exprs.as_slice()) {
            (Some(Value::Util), "escapeJavaScript", [Expr::Ref(arg)]) => self.write_escaped(arg)?,
            (Some(Value::Input), "params", [_]) => {
                let Some([Value::Str(param)]) = call.literals.as_deref() else {
                    return Ok(false);
                };
                // The steps of the literal argument and of the call, as [`walk`] counts them.
                self.env.steps(2)?;
                if let Some(value) = self.env.param(param) {
                    self.out.push_str(value);
                }
                if self.out.len() > self.env.limits.max_output {
                    return Err(RenderError::Limit("the output is larger than allowed"));
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Writes `$util.escapeJavaScript(arg)` as [`walk`] would, counting the same steps and
    /// failing the same way, but escaped straight into the output: neither the argument's
    /// text nor the escaped string is made first.
    fn write_escaped(&mut self, arg: &Reference) -> Result<()> {
        // The argument's step (`expr`), then the call's (`walk`).
        self.env.step()?;
        let value = self.reference(arg)?.unwrap_or_default();
        self.env.step()?;
        if value.is_null() {
            return Ok(());
        }
        let start = self.out.len();
        match &value {
            Value::Str(s) => methods::escape_javascript_into(s, &mut self.out),
            Value::Json(j) if let Some(s) = j.node().as_plain_str() => {
                methods::escape_javascript_into(s, &mut self.out);
            }
            other => methods::escape_javascript_into(&other.clone().into_plain().to_text(), &mut self.out),
        }
        self.env.check_len(self.out.len() - start)?;
        if self.out.len() > self.env.limits.max_output {
            return Err(RenderError::Limit("the output is larger than allowed"));
        }
        Ok(())
    }

    fn foreach(&mut self, var: usize, iterable: &Expr, body: &Block, lend: bool) -> Result<Flow> {
        if lend && let Expr::Ref(r) = iterable {
            return self.foreach_lent(var, r, body);
        }
        let items = match iterable {
            // A range is walked, not built: `[1..1000000]` costs what the loop runs.
            Expr::Range(from, to) => {
                let (from, to) = (self.expr(from)?.as_int(), self.expr(to)?.as_int());
                match (from, to) {
                    (Some(a), Some(b)) => {
                        let n = self.env.limits.max_iterations as i64;
                        let step = if a <= b { 1 } else { -1 };
                        let len = (b - a).saturating_abs().saturating_add(1).min(n);
                        Items::Owned(
                            (0..len)
                                .map(|i| Value::Int(a + i * step))
                                .collect::<Vec<_>>()
                                .into_iter(),
                        )
                    }
                    _ => Items::Owned(Vec::new().into_iter()),
                }
            }
            other => items_of(self.expr_lazy(other)?),
        };
        self.iterate(var, items, body)
    }

    /// `#foreach` over a list lent by a variable (see `Node::Foreach::lend`): the variable's
    /// list when the reference reaches one, else what the reference reads, copied.
    fn foreach_lent(&mut self, var: usize, r: &Reference, body: &Block) -> Result<Flow> {
        // The steps the reference's evaluation counts, whichever way it goes.
        self.env.step()?;
        if !self.vars.contains_key(r.slot) {
            return self.iterate(var, Items::Owned(Vec::new().into_iter()), body);
        }
        let args = self.chain_args(&r.chain)?;
        let len = match place(&mut self.vars, r.slot, &r.chain, &args, Place::Lend) {
            Some(Value::List(items)) => Some(items.len()),
            _ => None,
        };
        let Some(len) = len else {
            let items = walk(&self.vars, &mut self.env, r, args, 0, None)?
                .map(Cur::into_owned)
                .unwrap_or_default();
            return self.iterate(var, items_of(items), body);
        };
        for _ in &r.chain {
            self.env.step()?;
        }
        self.iterate(var, Items::Lent { r, args, len }, body)
    }

    /// The loop of `#foreach`: each item in `var`, with `$foreach` and `$velocityCount`.
    fn iterate(&mut self, var: usize, mut items: Items<'_>, body: &Block) -> Result<Flow> {
        let saved: [(usize, Option<Value>); 3] = [
            (var, self.vars.remove(var)),
            (Names::FOREACH, self.vars.remove(Names::FOREACH)),
            (Names::VELOCITY_COUNT, self.vars.remove(Names::VELOCITY_COUNT)),
        ];
        let len = items.len().min(self.env.limits.max_iterations);
        // The enclosing loop's state, put back when this one ends.
        let outer = self
            .loops
            .as_mut()
            .map(|state| state.replace(LoopState { index: 0, len }));
        let mut flow = Flow::Normal;
        for i in 0..len {
            let taken = match (&mut items, self.vars.slots.get_mut(var)) {
                // A JSON array's item moves into the loop variable in place.
                (Items::Json(json), Some(slot)) => json.next_into(slot),
                (items, _) => match items.take(&mut self.vars, i) {
                    Some(item) => {
                        self.vars.insert(var, item);
                        true
                    }
                    None => false,
                },
            };
            if !taken {
                break;
            }
            self.env.step()?;
            let count = i64::try_from(i).unwrap_or(i64::MAX).saturating_add(1);
            if let Some(loops) = &mut self.loops {
                // `$foreach.*` is read from here: no map to keep.
                if let Some(state) = loops {
                    state.index = i;
                }
            } else {
                self.foreach_map(i, len);
            }
            if self.velocity_count {
                match self.vars.get_mut(Names::VELOCITY_COUNT) {
                    Some(slot) => set_scalar(slot, Value::Int(count)),
                    None => self.vars.insert(Names::VELOCITY_COUNT, Value::Int(count)),
                }
            }
            let ended = self.block(body)?;
            items.give_back(&mut self.vars, var, i);
            match ended {
                Flow::Normal => {}
                Flow::Break => break,
                Flow::Stop => {
                    flow = Flow::Stop;
                    break;
                }
            }
        }
        if let (Some(state), Some(outer)) = (&mut self.loops, outer) {
            *state = outer;
        }
        for (slot, value) in saved {
            match value {
                Some(v) => self.vars.insert(slot, v),
                None => drop(self.vars.remove(slot)),
            }
        }
        Ok(flow)
    }

    /// Sets `$foreach` for item `i` of `len`: the map the last iteration made, its values
    /// updated in place, or a new one.
    fn foreach_map(&mut self, i: usize, len: usize) {
        let state = FOREACH_KEYS.map(|key| LoopState { index: i, len }.entry(Name::short(key)));
        match self.vars.get_mut(Names::FOREACH) {
            // The last iteration's `$foreach`, as it made it: its values updated in place.
            Some(Value::Map(m))
                if m.0.len() == FOREACH_KEYS.len()
                    && (self.foreach_untouched
                        || m.0.iter().zip(FOREACH_KEYS).all(|((k, _), key)| k == key)) =>
            {
                for ((_, slot), value) in m.0.iter_mut().zip(state) {
                    set_scalar(slot, value);
                }
            }
            _ => {
                let map = Map(FOREACH_KEYS.iter().map(|k| k.to_string()).zip(state).collect());
                self.vars.insert(Names::FOREACH, Value::Map(map));
            }
        }
    }

    /// The arguments of a reference's accessors, evaluated before the chain is walked: none
    /// (no allocation) when every accessor is a property or a call whose arguments are
    /// literals, which [`walk`] lends from the tree.
    fn chain_args(&mut self, chain: &[Accessor]) -> Result<Args> {
        let mut literals = 0;
        let lent = chain.iter().all(|a| match a {
            Accessor::Property(_) => true,
            Accessor::Call(_, call) => {
                literals += call.exprs.len();
                call.literals.is_some()
            }
            Accessor::Index(_) => false,
        });
        if lent {
            // The steps their evaluation would count.
            self.env.steps(literals)?;
            return Ok(Args::new());
        }
        let mut args = Args::with_capacity(chain.len());
        for a in chain {
            args.push(match a {
                Accessor::Property(_) => Arg::None,
                Accessor::Index(e) => Arg::Index(self.expr(e)?),
                Accessor::Call(_, exprs) => {
                    let mut values = Vec::with_capacity(exprs.len());
                    for e in exprs.iter() {
                        values.push(self.expr(e)?);
                    }
                    Arg::Call(values)
                }
            });
        }
        Ok(args)
    }

    /// The value of a reference; `None` when its variable was never set.
    fn reference(&mut self, r: &Reference) -> Result<Option<Value>> {
        if r.properties_only {
            return Ok(walk_properties(&self.vars, &mut self.env, self.loops, r)?.map(Cur::into_owned));
        }
        let Some((args, start, owned)) = self.prepare(r)? else {
            return Ok(None);
        };
        Ok(walk(&self.vars, &mut self.env, r, args, start, owned)?.map(Cur::into_owned))
    }

    /// The first part of reading a reference: its arguments evaluated and, when the chain
    /// starts with a mutating call (`$map.put(…)`, `$list.add(…)`) on a variable's own value,
    /// that call made. `None` when the variable was never set; else the arguments, where the
    /// rest of the chain starts and the mutating call's result.
    fn prepare(&mut self, r: &Reference) -> Result<Option<(Args, usize, Option<Value>)>> {
        if !self.vars.contains_key(r.slot) {
            return Ok(None);
        }
        let mut args = self.chain_args(&r.chain)?;
        let mut start = 0;
        let mut owned = None;
        if let Some(k) = r.mutation {
            let Accessor::Call(name, _) = &r.chain[k] else {
                return Ok(None);
            };
            let Accessor::Call(_, call) = &r.chain[k] else {
                return Ok(None);
            };
            let call_args = match args.get_mut(k).map(|a| std::mem::replace(a, Arg::None)) {
                Some(Arg::Call(v)) => v,
                _ => call.literals.clone().unwrap_or_default(),
            };
            let path_args = args.get(..k).unwrap_or_default();
            let result = match place(&mut self.vars, r.slot, &r.chain[..k], path_args, Place::Change) {
                Some(target) => methods::mutate(target, name, call_args, &mut self.env)?,
                None => Value::Null,
            };
            owned = Some(result);
            start = k + 1;
        }
        Ok(Some((args, start, owned)))
    }

    /// `#set`: a variable, or a map entry or list element reached from one.
    fn set(&mut self, target: &Reference, value: Value) -> Result<()> {
        if value.is_null() {
            return Ok(());
        }
        let Some((last, path)) = target.chain.split_last() else {
            self.vars.insert(target.slot, value);
            return Ok(());
        };
        if target.chain.iter().any(|a| matches!(a, Accessor::Call(..))) {
            return Err(RenderError::Failed(format!(
                "#set({} = …): cannot set through a method call",
                target.source
            )));
        }
        let args = self.chain_args(&target.chain)?;
        let (last_arg, path_args) = args.split_last().unwrap_or((&Arg::None, &[]));
        let Some(parent) = place(&mut self.vars, target.slot, path, path_args, Place::Create) else {
            return Ok(());
        };
        match (last, last_arg, parent) {
            (Accessor::Property(name), _, Value::Map(m)) => {
                m.insert(name.to_string(), value);
            }
            (Accessor::Index(_), Arg::Index(Value::Str(k)), Value::Map(m)) => {
                m.insert(k.clone(), value);
            }
            (Accessor::Index(_), Arg::Index(i), Value::List(items)) => {
                if let Some(slot) = i
                    .as_int()
                    .and_then(|i| list_slot(items.len(), i))
                    .and_then(|i| items.get_mut(i))
                {
                    *slot = value;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether a condition (`#if`, `#elseif`) holds: a reference's value is tested where it
    /// lives.
    fn condition(&mut self, e: &Expr) -> Result<bool> {
        match e {
            // `#if($foreach.hasNext)`: the running loop's state, tested where it is.
            Expr::Ref(r)
                if r.slot == Names::FOREACH
                    && let Some(state) = self.loops
                    && let [Accessor::Property(key)] = r.chain.as_slice() =>
            {
                // The steps `expr_lazy` and the walk count.
                self.env.steps(2)?;
                Ok(state.is_some_and(|state| state.holds(key)))
            }
            Expr::Ref(r) if r.properties_only => {
                // The step `expr_lazy` counts.
                self.env.step()?;
                Ok(walk_properties(&self.vars, &mut self.env, self.loops, r)?.is_some_and(|c| c.truthy()))
            }
            other => Ok(self.expr_lazy(other)?.truthy()),
        }
    }

    /// An expression's value where a JSON node may stay one ([`Value::Json`]): what `#set`
    /// stores, `#if` tests and `#foreach` walks.
    fn expr_lazy(&mut self, e: &Expr) -> Result<Value> {
        match e {
            Expr::Ref(r) => {
                self.env.step()?;
                Ok(self.reference(r)?.unwrap_or_default())
            }
            other => self.expr(other),
        }
    }

    /// An expression's value, built: what operators and methods work on.
    fn expr(&mut self, e: &Expr) -> Result<Value> {
        self.env.step()?;
        Ok(match e {
            Expr::Literal(v) => v.clone(),
            Expr::Ref(r) => self.reference(r)?.unwrap_or_default().into_plain(),
            Expr::Interpolated(block) => {
                let outer = std::mem::take(&mut self.out);
                let result = self.block(block);
                let inner = std::mem::replace(&mut self.out, outer);
                result?;
                Value::Str(inner)
            }
            Expr::List(items) => {
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    values.push(self.expr(item)?);
                }
                Value::List(values)
            }
            Expr::Map(entries) => {
                let mut map = Map::default();
                for (k, v) in entries {
                    let k = self.expr(k)?.to_text();
                    let v = self.expr(v)?;
                    map.insert(k, v);
                }
                Value::Map(map)
            }
            Expr::Range(from, to) => {
                let (Some(a), Some(b)) = (self.expr(from)?.as_int(), self.expr(to)?.as_int()) else {
                    return Ok(Value::Null);
                };
                if (b - a).saturating_abs() >= MAX_RANGE {
                    return Err(RenderError::Limit("a range literal is larger than 10,000 items"));
                }
                let step = if a <= b { 1 } else { -1 };
                let len = (b - a).abs() + 1;
                Value::List((0..len).map(|i| Value::Int(a + i * step)).collect())
            }
            Expr::Not(e) => Value::Bool(!self.expr(e)?.truthy()),
            Expr::Negate(e) => match self.expr(e)? {
                Value::Int(i) => i.checked_neg().map_or(Value::Float(-(i as f64)), Value::Int),
                Value::Float(f) => Value::Float(-f),
                _ => Value::Null,
            },
            Expr::Binary(BinOp::And, a, b) => Value::Bool(self.expr(a)?.truthy() && self.expr(b)?.truthy()),
            Expr::Binary(BinOp::Or, a, b) => Value::Bool(self.expr(a)?.truthy() || self.expr(b)?.truthy()),
            Expr::Binary(op, a, b) => {
                let (a, b) = (self.expr(a)?, self.expr(b)?);
                self.binary(*op, a, b)?
            }
        })
    }

    fn binary(&mut self, op: BinOp, a: Value, b: Value) -> Result<Value> {
        use std::cmp::Ordering::{Equal, Greater, Less};
        Ok(match op {
            BinOp::Eq => Value::Bool(a.loose_eq(&b)),
            BinOp::Ne => Value::Bool(!a.loose_eq(&b)),
            BinOp::Lt => Value::Bool(a.compare(&b) == Some(Less)),
            BinOp::Le => Value::Bool(matches!(a.compare(&b), Some(Less | Equal))),
            BinOp::Gt => Value::Bool(a.compare(&b) == Some(Greater)),
            BinOp::Ge => Value::Bool(matches!(a.compare(&b), Some(Greater | Equal))),
            BinOp::Add if matches!(a, Value::Str(_)) || matches!(b, Value::Str(_)) => {
                if a.is_null() || b.is_null() {
                    return Ok(Value::Null);
                }
                let mut s = a.to_text();
                b.write_text(&mut s);
                self.env.check_len(s.len())?;
                Value::Str(s)
            }
            _ => arithmetic(op, &a, &b),
        })
    }
}

/// The rest of a reference's chain from `start`, read from the variables (borrowing while only
/// reads happen). `None` when its variable was never set.
fn walk<'v>(
    vars: &'v Vars<'_>,
    env: &mut Env<'_>,
    r: &Reference,
    args: Args,
    start: usize,
    owned: Option<Value>,
) -> Result<Option<Cur<'v>>> {
    let Some(root) = vars.get(r.slot) else {
        return Ok(None);
    };
    let mut cur = match owned {
        Some(v) => Cur::Owned(v),
        None => Cur::of(root),
    };
    // `args` is empty when every accessor is a property, else one per accessor.
    let mut args = args.into_iter();
    for (i, accessor) in r.chain.iter().enumerate() {
        let arg = args.next().unwrap_or(Arg::None);
        if i < start {
            continue;
        }
        env.step()?;
        cur = match (accessor, arg) {
            (Accessor::Property(name), _) => property(cur, name, env)?,
            (Accessor::Index(_), Arg::Index(key)) => match cur {
                Cur::Node(n) => json_index(n, &key).map_or(Cur::Owned(Value::Null), Cur::Node),
                Cur::Owned(Value::Json(j)) => {
                    Cur::Owned(json_index(j.node(), &key).map_or(Value::Null, NodeRef::to_lazy))
                }
                Cur::Borrowed(v) => index(v, &key).map_or(Cur::Owned(Value::Null), Cur::of),
                Cur::Owned(v) => Cur::Owned(index(&v, &key).cloned().unwrap_or_default()),
            },
            (Accessor::Call(name, call), arg) => {
                let values = match &arg {
                    Arg::Call(values) => values.as_slice(),
                    // Literals, lent ([`Eval::chain_args`]).
                    _ => call.literals.as_deref().unwrap_or_default(),
                };
                match cur {
                    // A string of the payload is read where it is, not copied first.
                    Cur::Node(n) if let Some(s) = n.as_plain_str() => {
                        Cur::Owned(methods::string(s, name, values, env)?)
                    }
                    cur => Cur::Owned(methods::call(&cur.plain(), name, values, env)?),
                }
            }
            _ => Cur::Owned(Value::Null),
        };
    }
    Ok(Some(cur))
}

/// The chain of a reference made of properties only (`$o.customer.name`, the common case):
/// [`walk`] without arguments to evaluate. `loops` holds the innermost running loop's state
/// when `$foreach` is read from it ([`Eval::loops`]).
fn walk_properties<'v>(
    vars: &'v Vars<'_>,
    env: &mut Env<'_>,
    loops: Option<Option<LoopState>>,
    r: &Reference,
) -> Result<Option<Cur<'v>>> {
    if r.slot == Names::FOREACH
        && let Some(state) = loops
        && let [Accessor::Property(key)] = r.chain.as_slice()
    {
        env.step()?;
        return Ok(state.map(|state| Cur::Owned(state.entry(key.head()))));
    }
    let Some(root) = vars.get(r.slot) else {
        return Ok(None);
    };
    if let Some(found) = json_chain(root, env, &r.chain)? {
        // Not `map_or`: its `null` would be made, and dropped, on every read.
        return Ok(Some(match found {
            Some(node) => Cur::Node(node),
            None => Cur::Owned(Value::Null),
        }));
    }
    let mut cur = Cur::of(root);
    for accessor in &r.chain {
        let Accessor::Property(name) = accessor else {
            return Ok(Some(Cur::Owned(Value::Null)));
        };
        env.step()?;
        cur = property(cur, name, env)?;
    }
    Ok(Some(cur))
}

/// A chain of properties read from a variable's value `root` when it is a JSON payload and
/// each step is on an object: looked up on the tape, the steps counted together
/// ([`json_members`]); `None` when the chain is no such read.
fn json_chain<'v>(
    root: &'v Value,
    env: &mut Env<'_>,
    chain: &[Accessor],
) -> Result<Option<Option<NodeRef<'v>>>> {
    let Value::Json(j) = root else {
        return Ok(None);
    };
    let Some(found) = json_members(j.node(), chain) else {
        return Ok(None);
    };
    env.steps(chain.len())?;
    Ok(Some(found))
}

/// A chain of properties read from JSON node `node` while each step is on an object: the
/// member it reaches (`Some(None)` for a missing one, which reads as `null`); `None` when a
/// step is on something else (a string's `.empty`…), for [`property`] to read.
fn json_members<'t>(mut node: NodeRef<'t>, chain: &[Accessor]) -> Option<Option<NodeRef<'t>>> {
    for accessor in chain {
        let Accessor::Property(name) = accessor else {
            return None;
        };
        if !node.is_object() {
            return None;
        }
        match node.member_named(name) {
            Some(found) => node = found,
            // What follows reads properties of `null`: `null` again.
            None => return Some(None),
        }
    }
    Some(Some(node))
}

/// `cur.name`: a map's or a JSON object's entry, else a bean-style property.
fn property<'v>(cur: Cur<'v>, name: &str, env: &mut Env<'_>) -> Result<Cur<'v>> {
    Ok(match cur {
        Cur::Borrowed(Value::Map(m)) => m.get(name).map_or(Cur::Owned(Value::Null), Cur::of),
        Cur::Node(n) => match n.member(name) {
            Some(found) => Cur::Node(found),
            None if n.is_object() => Cur::Owned(Value::Null),
            None => Cur::Owned(methods::property(&n.to_value(), name, env)?),
        },
        Cur::Owned(Value::Json(j)) if j.node().is_object() => {
            Cur::Owned(j.node().member(name).map_or(Value::Null, NodeRef::to_lazy))
        }
        Cur::Owned(Value::Map(mut m)) => Cur::Owned(m.remove(name).unwrap_or_default()),
        other => Cur::Owned(methods::property(&other.plain(), name, env)?),
    })
}

/// What `#foreach` walks of a value: a list's items, a map's values (a JSON array's items, a
/// JSON object's values in key order); nothing of anything else.
fn items_of(value: Value) -> Items<'static> {
    let items = match value {
        Value::List(items) => items,
        Value::Map(map) => map.0.into_iter().map(|(_, v)| v).collect(),
        // An array is read item by item; an object is built, for its values in key order.
        Value::Json(j) => match j.items() {
            Some(items) => return Items::Json(items),
            None => return items_of(j.to_value()),
        },
        _ => Vec::new(),
    };
    Items::Owned(items.into_iter())
}

/// Sets a `$foreach` entry or `$velocityCount`: a number or flag is written in place, where
/// an assignment would first drop the old value.
fn set_scalar(slot: &mut Value, value: Value) {
    match (slot, value) {
        (Value::Int(old), Value::Int(new)) => *old = new,
        (Value::Bool(old), Value::Bool(new)) => *old = new,
        (slot, value) => *slot = value,
    }
}

/// `+ - * / %` on numbers (integers stay integers until they overflow); `null` otherwise,
/// and for a division by zero.
fn arithmetic(op: BinOp, a: &Value, b: &Value) -> Value {
    if let (Value::Int(x), Value::Int(y)) = (a, b) {
        let exact = match op {
            BinOp::Add => x.checked_add(*y),
            BinOp::Sub => x.checked_sub(*y),
            BinOp::Mul => x.checked_mul(*y),
            BinOp::Div if *y == 0 => return Value::Null,
            BinOp::Div => x.checked_div(*y),
            BinOp::Rem if *y == 0 => return Value::Null,
            BinOp::Rem => x.checked_rem(*y),
            _ => None,
        };
        if let Some(v) = exact {
            return Value::Int(v);
        }
    }
    let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
        return Value::Null;
    };
    match op {
        BinOp::Add => Value::Float(x + y),
        BinOp::Sub => Value::Float(x - y),
        BinOp::Mul => Value::Float(x * y),
        BinOp::Div if y == 0.0 => Value::Null,
        BinOp::Div => Value::Float(x / y),
        BinOp::Rem if y == 0.0 => Value::Null,
        BinOp::Rem => Value::Float(x % y),
        _ => Value::Null,
    }
}

/// `node[key]`, as [`index`] reads a built value.
fn json_index<'t>(node: NodeRef<'t>, key: &Value) -> Option<NodeRef<'t>> {
    if node.is_array() {
        node.item(key.as_int()?)
    } else {
        node.member(&key.text())
    }
}

/// `value[key]`: a list element (negative counts from the end) or a map entry.
fn index<'v>(value: &'v Value, key: &Value) -> Option<&'v Value> {
    match value {
        Value::List(items) => key
            .as_int()
            .and_then(|i| list_slot(items.len(), i))
            .and_then(|i| items.get(i)),
        Value::Map(m) => m.get(&key.text()),
        _ => None,
    }
}

fn list_slot(len: usize, i: i64) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    usize::try_from(if i < 0 { len + i } else { i }).ok()
}

/// What [`place`] reaches a value for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// To lend its items to a `#foreach`: a JSON payload is not reached into.
    Lend,
    /// To change it: JSON on the way is built.
    Change,
    /// To set in it: JSON on the way is built, and missing map entries (and the variable)
    /// become empty maps.
    Create,
}

/// The value a chain of properties and indexes reaches from a variable, for changing it.
fn place<'v>(
    vars: &'v mut Vars<'_>,
    root: usize,
    chain: &[Accessor],
    args: &[Arg],
    to: Place,
) -> Option<&'v mut Value> {
    let create = to == Place::Create;
    if create && !vars.contains_key(root) {
        vars.insert(root, Value::Map(Map::default()));
    }
    let build = |v: &mut Value| {
        if to != Place::Lend
            && let Value::Json(j) = v
        {
            *v = j.to_value();
        }
    };
    let mut cur = vars.get_mut(root)?;
    for (accessor, arg) in chain.iter().zip(args.iter().chain(std::iter::repeat(&Arg::None))) {
        build(cur);
        cur = match (accessor, arg, cur) {
            (Accessor::Property(name), _, Value::Map(m)) => {
                if create && !matches!(m.get(name), Some(Value::Map(_) | Value::List(_))) {
                    m.child_map(name);
                }
                m.get_mut(name)?
            }
            (Accessor::Index(_), Arg::Index(Value::Str(k)), Value::Map(m)) => m.get_mut(k)?,
            (Accessor::Index(_), Arg::Index(i), Value::List(items)) => {
                let at = list_slot(items.len(), i.as_int()?)?;
                items.get_mut(at)?
            }
            _ => return None,
        };
    }
    build(cur);
    Some(cur)
}
