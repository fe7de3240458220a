//! JSON payloads as templates read them: the text checked and indexed once into a flat list of
//! nodes (a tape), with no value built. `$input.path('$')` hands out a reference into the tape
//! ([`Json`]); reading `$o.items[0].sku` walks it; writing a string or a number copies it from
//! the payload's text. Only what a template changes, or passes to a method, is built into a
//! [`Value`] ([`Json::to_value`]): the same value [`Value::parse_json`] gives (objects' keys
//! sorted, a repeated key's last value), so the laziness cannot be seen.
//!
//! Written here rather than taken from a crate: JSON crates either build an owned tree
//! (`serde_json`, the cost this avoids: an allocation per string, array and object) or borrow
//! the input for a lifetime (`simd-json`, `jiter`), and a template's values live in variables
//! that cannot carry one. The tape owns its text and its nodes are offsets into it, so a
//! reference into it is an `Arc` and an index. The grammar is RFC 8259's, as strict as
//! `serde_json` (the fuzz target `template_tape` holds the two to the same answers); a text
//! the tape refuses is handed to `serde_json` for its error message.

use std::{cell::Cell, fmt, sync::Arc};

use super::value::{Map, Value, write_double};

/// How deep arrays and objects may nest (`serde_json`'s bound).
const MAX_DEPTH: usize = 128;

/// A parsed JSON text.
pub struct Tape {
    text: String,
    nodes: Vec<Node>,
}

/// The buffers of the last tape dropped on a thread, which the next tape built there takes:
/// a rendering reads one or two payloads, and their text and nodes were two allocations each,
/// mostly above the allocator's small sizes (its slow path).
#[derive(Default)]
struct Spare {
    text: String,
    nodes: Vec<Node>,
}

thread_local! {
    static SPARE: Cell<Spare> = const {
        Cell::new(Spare {
            text: String::new(),
            nodes: Vec::new(),
        })
    };
}

/// The largest buffers kept for the next tape (about 160 KiB of nodes, 64 KiB of text): a
/// thread holds no more than that for a payload it is done with.
const MAX_SPARE_NODES: usize = 4096;
const MAX_SPARE_TEXT: usize = 64 * 1024;

impl Spare {
    /// This thread's spare buffers (empty ones if it has none).
    fn take() -> Spare {
        SPARE.try_with(Cell::take).unwrap_or_default()
    }

    /// Keeps the buffers, emptied, for the next tape; too large ones are freed.
    fn keep(mut self) {
        if self.nodes.capacity() > MAX_SPARE_NODES {
            self.nodes = Vec::new();
        }
        if self.text.capacity() > MAX_SPARE_TEXT {
            self.text = String::new();
        }
        self.nodes.clear();
        self.text.clear();
        // A thread being torn down keeps nothing.
        let _ = SPARE.try_with(|spare| spare.set(self));
    }
}

impl Drop for Tape {
    fn drop(&mut self) {
        Spare {
            text: std::mem::take(&mut self.text),
            nodes: std::mem::take(&mut self.nodes),
        }
        .keep();
    }
}

/// One JSON value. A container's children follow it, up to `next`; an object's children are
/// its members' values, each holding its key.
#[derive(Clone, Copy, Debug)]
struct Node {
    kind: Kind,
    /// A member's key, when the node is an object's member ([`Key::NONE`] otherwise).
    key: Key,
    /// A string's text between its quotes; a number's text; a container's `[` or `{`.
    start: u32,
    end: u32,
    /// The index of the node after this one's subtree.
    next: u32,
    /// An `Int`'s value, a `Float`'s bits; an object's last member's index (its own when it
    /// is empty).
    num: u64,
}

/// An object member's key: its text between the quotes.
#[derive(Clone, Copy, Debug)]
struct Key {
    start: u32,
    end: u32,
    /// The text has escapes: its value is not its text.
    escaped: bool,
    /// The index of the member before this one in its object; the object's, for the first.
    /// Members are looked up from the last one back: the first match is the value of a
    /// repeated key (the last, as `serde_json` reads it).
    prev: u32,
}

impl Key {
    const NONE: Key = Key {
        start: 0,
        end: 0,
        escaped: false,
        prev: 0,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Null,
    False,
    True,
    Int,
    Float,
    /// A float whose JSON text is the text Java writes for it ([`is_java_double`]).
    Decimal,
    /// A string with no escape: its text is its value.
    Str,
    /// A string with escapes.
    EscStr,
    Array,
    Object,
}

/// A string, array or object inside a [`Tape`]: a [`Value::Json`]. (Scalars other than strings
/// are read into their [`Value`] at once: they cost nothing to hold.)
#[derive(Clone)]
pub struct Json {
    tape: Arc<Tape>,
    at: u32,
}

/// An object member's name as a template looks it up: its text and its first eight bytes as
/// one word (zero-padded), so that most keys are told apart, or matched, in one comparison.
#[derive(Clone, PartialEq, Eq)]
pub struct Name {
    text: Box<str>,
    head: u64,
}

impl Name {
    pub fn new(text: &str) -> Name {
        Name {
            head: head_of(text.as_bytes()),
            text: text.into(),
        }
    }

    /// Its first eight bytes as one word, zero-padded: for a name of at most seven bytes (no
    /// name holds a zero byte), the name itself ([`Name::short`]).
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The [`Name::head`] of `text`, a name of at most seven bytes: equal to a name's head
    /// exactly when the name is `text`.
    pub const fn short(text: &str) -> u64 {
        let b = text.as_bytes();
        assert!(b.len() < 8, "a short name has at most seven bytes");
        let mut word = 0;
        let mut i = 0;
        while i < b.len() {
            word |= (b[i] as u64) << (8 * i);
            i += 1;
        }
        word
    }
}

impl std::ops::Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

/// The first eight bytes of `b` (fewer when it is shorter) as a little-endian word, the rest
/// zero.
fn head_of(b: &[u8]) -> u64 {
    b.iter()
        .take(8)
        .enumerate()
        .fold(0, |w, (i, &c)| w | (u64::from(c) << (8 * i)))
}

/// A node of a tape, borrowed: what a reference's walk holds between steps.
#[derive(Clone, Copy)]
pub struct NodeRef<'t> {
    tape: &'t Arc<Tape>,
    at: u32,
}

/// Parses `text` (an empty or blank text is `{}`, as AWS reads an empty payload); the error is
/// `serde_json`'s message.
pub fn parse(text: &str) -> Result<Value, String> {
    if text.trim_ascii().is_empty() {
        return Ok(Value::Map(Map::default()));
    }
    match read(text) {
        Some(value) => Ok(value),
        // Refused: `serde_json` says why (and, were the two to disagree, its value stands).
        None => Value::parse_json(text).map_err(|e| e.to_string()),
    }
}

/// The tape alone: `text`'s value, or `None` if it is not one JSON value (with whitespace
/// around).
pub fn read(text: &str) -> Option<Value> {
    let tape = Tape::parse(text)?;
    Some(
        NodeRef {
            tape: &Arc::new(tape),
            at: 0,
        }
        .to_lazy(),
    )
}

// === impl Tape ===

impl Tape {
    /// The tape of `text`, or `None` if it is not one JSON value (with whitespace around).
    fn parse(text: &str) -> Option<Tape> {
        let len = u32::try_from(text.len()).ok()?;
        let Spare {
            text: mut copy,
            mut nodes,
        } = Spare::take();
        nodes.reserve(text.len() / 8 + 4);
        let mut p = Parser {
            bytes: text.as_bytes(),
            pos: 0,
            nodes,
        };
        let parsed = p.value(MAX_DEPTH, Key::NONE).and_then(|()| {
            p.skip_ws();
            (p.pos == len as usize).then_some(())
        });
        if parsed.is_none() {
            Spare {
                text: copy,
                nodes: p.nodes,
            }
            .keep();
            return None;
        }
        copy.push_str(text);
        Some(Tape {
            text: copy,
            nodes: p.nodes,
        })
    }

    fn node(&self, at: u32) -> Option<&Node> {
        self.nodes.get(at as usize)
    }

    fn raw(&self, node: &Node) -> &str {
        self.text
            .get(node.start as usize..node.end as usize)
            .unwrap_or_default()
    }

    /// Whether `key` is `name`.
    fn key_is(&self, key: Key, name: &str) -> bool {
        if !key.escaped {
            // Lengths first: most keys differ there.
            if key.end.wrapping_sub(key.start) as usize != name.len() {
                return false;
            }
            let Some(raw) = self.text.as_bytes().get(key.start as usize..key.end as usize) else {
                return false;
            };
            // Keys are short: compared in place rather than through a `memcmp` call.
            return raw.iter().zip(name.as_bytes()).all(|(a, b)| a == b);
        }
        let mut s = String::new();
        self.write_key(key, &mut s);
        s == name
    }

    /// Whether `key` is `name`, whose first eight bytes are `head` ([`head_of`]): a key with
    /// no escape and of `name`'s length is read as one word, masked to that length, and
    /// compared with `head`; only a longer one compares its tail.
    #[inline(always)]
    fn key_matches(&self, key: &Key, name: &str, head: u64) -> bool {
        let len = key.end.wrapping_sub(key.start) as usize;
        if key.escaped {
            return self.key_is_cold(*key, name);
        }
        if len != name.len() {
            return false;
        }
        let text = self.text.as_bytes();
        let start = key.start as usize;
        // A key is followed by at least `":` and a value: the word is mostly within the text.
        let Some(word) = text.get(start..start + 8) else {
            return self.key_is_cold(*key, name);
        };
        let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
        let mask = if len >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * len)) - 1
        };
        word & mask == head && (len <= 8 || text.get(start + 8..start + len) == name.as_bytes().get(8..))
    }

    /// [`Tape::key_is`] out of the lookup's loop: for escaped keys and the text's last bytes.
    #[cold]
    #[inline(never)]
    fn key_is_cold(&self, key: Key, name: &str) -> bool {
        self.key_is(key, name)
    }

    /// A key's value, appended to `out`.
    fn write_key(&self, key: Key, out: &mut String) {
        self.write_string(key.start, key.end, key.escaped, out);
    }

    /// A string node's value, appended to `out`.
    fn write_str(&self, node: &Node, out: &mut String) {
        self.write_string(node.start, node.end, node.kind == Kind::EscStr, out);
    }

    /// The value of the string whose text (between its quotes) runs from `start` to `end`.
    #[inline(always)]
    fn write_string(&self, start: u32, end: u32, escaped: bool, out: &mut String) {
        let raw = self.text.get(start as usize..end as usize).unwrap_or_default();
        if escaped {
            unescape(raw, out);
        } else {
            out.push_str(raw);
        }
    }
}

struct Parser<'b> {
    bytes: &'b [u8],
    pos: usize,
    nodes: Vec<Node>,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    #[inline(always)]
    fn push(&mut self, kind: Kind, key: Key, start: usize, end: usize, num: u64) -> usize {
        let at = self.nodes.len();
        self.nodes.push(Node {
            kind,
            key,
            // Positions and counts fit: `Tape::parse` refuses a text longer than `u32::MAX`.
            start: start as u32,
            end: end as u32,
            next: (at + 1) as u32,
            num,
        });
        at
    }

    /// One value (whitespace before it skipped), `depth` levels of nesting left; `key` is its
    /// key in an object.
    ///
    /// Inlined where it is called: only a container costs a call (and recursion).
    #[inline(always)]
    fn value(&mut self, depth: usize, key: Key) -> Option<()> {
        self.skip_ws();
        let start = self.pos;
        match *self.bytes.get(start)? {
            b'"' => {
                let (start, end, escaped) = self.string()?;
                let kind = if escaped { Kind::EscStr } else { Kind::Str };
                self.push(kind, key, start, end, 0);
                Some(())
            }
            b'[' | b'{' => self.container(depth, key),
            b't' => self.literal(b"true", Kind::True, key),
            b'f' => self.literal(b"false", Kind::False, key),
            b'n' => self.literal(b"null", Kind::Null, key),
            b'-' | b'0'..=b'9' => self.number(key),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8], kind: Kind, key: Key) -> Option<()> {
        let start = self.pos;
        if !self.bytes[start..].starts_with(word) {
            return None;
        }
        self.pos += word.len();
        self.push(kind, key, start, self.pos, 0);
        Some(())
    }

    #[inline(never)]
    fn container(&mut self, depth: usize, key: Key) -> Option<()> {
        let depth = depth.checked_sub(1).filter(|d| *d > 0)?;
        let start = self.pos;
        let object = self.bytes[start] == b'{';
        let close = if object { b'}' } else { b']' };
        let at = self.push(
            if object { Kind::Object } else { Kind::Array },
            key,
            start,
            start + 1,
            0,
        );
        self.pos += 1;
        self.skip_ws();
        // An object's last member so far: the next one's `prev`.
        let mut last = at;
        if self.bytes.get(self.pos) == Some(&close) {
            self.pos += 1;
        } else {
            loop {
                let mut key = Key::NONE;
                if object {
                    self.skip_ws();
                    if self.bytes.get(self.pos) != Some(&b'"') {
                        return None;
                    }
                    let (start, end, escaped) = self.string()?;
                    // Positions fit: `Tape::parse` refuses a text longer than `u32::MAX`.
                    key = Key {
                        start: start as u32,
                        end: end as u32,
                        escaped,
                        prev: last as u32,
                    };
                    last = self.nodes.len();
                    self.skip_ws();
                    if self.bytes.get(self.pos) != Some(&b':') {
                        return None;
                    }
                    self.pos += 1;
                }
                self.value(depth, key)?;
                self.skip_ws();
                match self.bytes.get(self.pos) {
                    Some(b',') => self.pos += 1,
                    Some(b) if *b == close => {
                        self.pos += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        let next = u32::try_from(self.nodes.len()).ok()?;
        self.nodes[at].next = next;
        self.nodes[at].end = u32::try_from(self.pos).ok()?;
        self.nodes[at].num = last as u64;
        Some(())
    }

    /// A string, `pos` at its opening quote: where its text starts and ends, and whether it
    /// has escapes.
    #[inline(always)]
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        let b = self.bytes;
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            // Short strings (keys, most values) end within a few bytes, found eight bytes at a
            // time ([`stops_in`]), then by a plain loop over a table. Longer ones are skipped
            // in bulk to the next quote or backslash and checked for control characters
            // (RFC 8259 §7) in one vectorised pass.
            let short_end = b.len().min(i + 24);
            while let Some(word) = b.get(i..i + 8).filter(|_| i + 8 <= short_end) {
                let stops = stops_in(u64::from_le_bytes(word.try_into().unwrap_or([b'"'; 8])));
                if stops != 0 {
                    // The first stop: the table loop below ends on it at once.
                    i += (stops.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            while i < short_end && !STOPS_STRING[usize::from(b[i])] {
                i += 1;
            }
            if i == short_end {
                let rest = b.get(i..)?;
                let n = memchr::memchr2(b'"', b'\\', rest)?;
                if rest[..n].iter().fold(false, |bad, &c| bad | (c < 0x20)) {
                    return None;
                }
                i += n;
            }
            if b[i] < 0x20 {
                return None;
            }
            if b[i] == b'"' {
                break;
            }
            escaped = true;
            i = escape(b, i + 1)?;
        }
        self.pos = i + 1;
        Some((start, i, escaped))
    }

    /// A number, as RFC 8259 writes them: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self, key: Key) -> Option<()> {
        let b = self.bytes;
        let start = self.pos;
        let negative = b[start] == b'-';
        let int_start = start + usize::from(negative);
        let mut i = int_start;
        // The digits' values are added up as they are scanned (wrapping past 18 digits, where
        // they are not used: the text is parsed instead).
        let mut int_value = 0;
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => i = digits_value(b, i, &mut int_value),
            _ => return None,
        }
        let int = &b[int_start..i];
        let mut frac: &[u8] = &[];
        let mut frac_value = 0;
        if b.get(i) == Some(&b'.') {
            let end = digits_value(b, i + 1, &mut frac_value);
            if end == i + 1 {
                return None;
            }
            frac = &b[i + 1..end];
            i = end;
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            let n = digits(b, i);
            if n == 0 {
                return None;
            }
            i += n;
            exponent = true;
        }
        self.pos = i;
        // ASCII by construction.
        let text = || std::str::from_utf8(&b[start..i]).ok();
        let (kind, num) = if frac.is_empty() && !exponent {
            // Up to 18 digits always fit an i64: added up here rather than parsed again.
            let exact = if int.len() <= 18 {
                Some(int_value)
            } else {
                text()?.parse::<i64>().ok()
            };
            match exact {
                // `-0` is a float, as `serde_json` reads it.
                Some(0) if negative => (Kind::Float, (-0.0f64).to_bits()),
                Some(n) if int.len() <= 18 => (Kind::Int, (if negative { -n } else { n }) as u64),
                Some(n) => (Kind::Int, n as u64),
                None => (
                    Kind::Float,
                    text()?.parse::<f64>().ok().filter(|f| f.is_finite())?.to_bits(),
                ),
            }
        } else {
            // Clinger's fast path: up to 15 digits are exact in a double, and so is 10ⁿ for
            // n ≤ 22, so one division rounds correctly. Longer numbers and exponents are
            // parsed in full.
            let f = if !exponent && int.len() + frac.len() <= 15 {
                let m = int_value * POW10_I64[frac.len()] + frac_value;
                let f = m as f64 / POW10[frac.len()];
                if negative { -f } else { f }
            } else {
                text()?.parse::<f64>().ok().filter(|f| f.is_finite())?
            };
            let kind = if !exponent && is_java_double(int, frac) {
                Kind::Decimal
            } else {
                Kind::Float
            };
            (kind, f.to_bits())
        };
        self.push(kind, key, start, i, num);
        Some(())
    }
}

/// Powers of ten exact in a double (up to the fast path's 15 digits).
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];
const POW10_I64: [i64; 16] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
];

/// Scans the decimal digits from `from`, adding their value to `value` (wrapping: exact up
/// to 18 digits); returns where they end.
fn digits_value(b: &[u8], from: usize, value: &mut i64) -> usize {
    let mut i = from;
    while let Some(&d @ b'0'..=b'9') = b.get(i) {
        *value = value.wrapping_mul(10).wrapping_add(i64::from(d - b'0'));
        i += 1;
    }
    i
}

/// The bytes of `word` (eight bytes of a string, little-endian) that end a run of plain
/// characters ([`STOPS_STRING`]), each marked by its top bit: the lowest mark is exact (a
/// higher one may be a borrow's echo, never read). Bytes of UTF-8 sequences (0x80 and up) are
/// never marked.
fn stops_in(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const TOPS: u64 = 0x8080_8080_8080_8080;
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & TOPS;
    let quote = zero_in(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & TOPS;
    quote | backslash | control
}

/// The bytes that end a run of plain characters in a string: `"`, `\` and control characters.
const STOPS_STRING: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

fn digits(b: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(b'0'..=b'9') = b.get(i) {
        i += 1;
    }
    i - from
}

/// Checks the escape after a `\` at `i`; returns where the string goes on.
fn escape(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(i + 1),
        b'u' => {
            let unit = hex4(b, i + 1)?;
            match unit {
                // A leading surrogate must be followed by a trailing one.
                0xD800..=0xDBFF => {
                    if b.get(i + 5..i + 7)? != b"\\u" {
                        return None;
                    }
                    let low = hex4(b, i + 7)?;
                    (0xDC00..=0xDFFF).contains(&low).then_some(i + 11)
                }
                0xDC00..=0xDFFF => None,
                _ => Some(i + 5),
            }
        }
        _ => None,
    }
}

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let hex = std::str::from_utf8(b.get(at..at + 4)?).ok()?;
    if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// Appends the value of a string's text `raw`, which [`escape`] checked.
fn unescape(raw: &str, out: &mut String) {
    let mut rest = raw;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let b = rest.as_bytes();
        let mut used = 2;
        let c = match b.get(at + 1) {
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let unit = hex4(b, at + 2).unwrap_or(0xFFFD);
                used = 6;
                if (0xD800..=0xDBFF).contains(&unit) {
                    let low = hex4(b, at + 8).unwrap_or(0xDC00);
                    used = 12;
                    char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF))
                        .unwrap_or('\u{FFFD}')
                } else {
                    char::from_u32(unit).unwrap_or('\u{FFFD}')
                }
            }
            Some(&other) => char::from(other),
            None => break,
        };
        out.push(c);
        rest = rest.get(at + used..).unwrap_or_default();
    }
    out.push_str(rest);
}

// === impl NodeRef ===

impl<'t> NodeRef<'t> {
    fn node(&self) -> Option<&'t Node> {
        self.tape.node(self.at)
    }

    /// The node as a value to hold: scalars other than strings read at once, the rest a
    /// reference into the tape.
    pub fn to_lazy(self) -> Value {
        let Some(node) = self.node() else {
            return Value::Null;
        };
        match node.kind {
            Kind::Null => Value::Null,
            Kind::False => Value::Bool(false),
            Kind::True => Value::Bool(true),
            Kind::Int => Value::Int(node.num as i64),
            Kind::Float | Kind::Decimal => Value::Float(f64::from_bits(node.num)),
            Kind::Str | Kind::EscStr | Kind::Array | Kind::Object => Value::Json(Json {
                tape: Arc::clone(self.tape),
                at: self.at,
            }),
        }
    }

    /// The node built into a value (what `serde_json` would have given).
    pub fn to_value(self) -> Value {
        let Some(node) = self.node() else {
            return Value::Null;
        };
        match node.kind {
            Kind::Str | Kind::EscStr => {
                let mut s = String::with_capacity(node.end.saturating_sub(node.start) as usize);
                self.tape.write_str(node, &mut s);
                Value::Str(s)
            }
            Kind::Array => Value::List(self.children().map(NodeRef::to_value).collect()),
            Kind::Object => {
                let mut entries: Vec<(String, Value)> = self
                    .children()
                    .map(|v| {
                        let mut key = String::new();
                        if let Some(child) = v.node() {
                            self.tape.write_key(child.key, &mut key);
                        }
                        (key, v.to_value())
                    })
                    .collect();
                super::value::sort_members(&mut entries);
                Value::Map(Map(entries))
            }
            _ => self.to_lazy(),
        }
    }

    /// Whether the value tests true in `#if`: all but `null` and `false`.
    pub fn truthy(&self) -> bool {
        self.node()
            .is_some_and(|n| !matches!(n.kind, Kind::Null | Kind::False))
    }

    /// A string's value when it has no escape, read in place; `None` for anything else.
    pub fn as_plain_str(&self) -> Option<&'t str> {
        let node = self.node()?;
        (node.kind == Kind::Str).then(|| self.tape.raw(node))
    }

    pub fn is_object(&self) -> bool {
        self.node().is_some_and(|n| n.kind == Kind::Object)
    }

    pub fn is_array(&self) -> bool {
        self.node().is_some_and(|n| n.kind == Kind::Array)
    }

    /// A container's children (an array's items; an object's member values, each holding its
    /// key).
    pub fn children(self) -> impl Iterator<Item = NodeRef<'t>> {
        let end = self.node().map_or(self.at, |n| n.next);
        let mut at = self.at + 1;
        std::iter::from_fn(move || {
            if at >= end {
                return None;
            }
            let child = NodeRef { tape: self.tape, at };
            at = child.node().map_or(end, |n| n.next);
            Some(child)
        })
    }

    /// An object's member `name` (the last, if repeated); `None` if absent or not an object.
    pub fn member(self, name: &str) -> Option<NodeRef<'t>> {
        self.member_with(name, head_of(name.as_bytes()))
    }

    /// [`NodeRef::member`] of a name made ready for lookups.
    pub fn member_named(self, name: &Name) -> Option<NodeRef<'t>> {
        self.member_with(&name.text, name.head)
    }

    /// Looked up from the last member back: the first key that matches is the value.
    #[inline(always)]
    fn member_with(self, name: &str, head: u64) -> Option<NodeRef<'t>> {
        let tape = &**self.tape;
        let node = tape.nodes.get(self.at as usize)?;
        if node.kind != Kind::Object {
            return None;
        }
        // Children come after their container: each step goes down, and ends.
        let mut at = node.num as u32;
        while at > self.at {
            let child = tape.nodes.get(at as usize)?;
            if tape.key_matches(&child.key, name, head) {
                return Some(NodeRef { tape: self.tape, at });
            }
            at = child.key.prev;
        }
        None
    }

    /// An array's item `i` (negative counts from the end); `None` if out of range or not an
    /// array.
    pub fn item(self, i: i64) -> Option<NodeRef<'t>> {
        if !self.is_array() {
            return None;
        }
        let i = if i < 0 {
            let len = i64::try_from(self.item_count()).ok()?;
            usize::try_from(len + i).ok()?
        } else {
            usize::try_from(i).ok()?
        };
        self.children().nth(i)
    }

    /// How many items an array has (children a container has).
    pub fn item_count(self) -> usize {
        self.children().count()
    }

    /// Appends the node's text as a template writes it (Java's `toString()`).
    pub fn write_text(self, out: &mut String) {
        let Some(node) = self.node() else { return };
        match node.kind {
            Kind::Null => {}
            Kind::False => out.push_str("false"),
            Kind::True => out.push_str("true"),
            // JSON writes an integer as Java does.
            Kind::Int => out.push_str(self.tape.raw(node)),
            // Java writes this double as JSON did.
            Kind::Decimal => out.push_str(self.tape.raw(node)),
            Kind::Float => write_double(f64::from_bits(node.num), out),
            Kind::Str | Kind::EscStr => self.tape.write_str(node, out),
            Kind::Array | Kind::Object => self.to_value().write_text(out),
        }
    }
}

/// Whether a JSON number with integer digits `int` and fraction digits `frac` (no exponent)
/// is written as Java's `Double.toString` writes its value: plain decimal notation (Java's
/// from 10⁻³ to 10⁷), a fraction without trailing zeros (or just `.0`), and at most 15
/// significant digits, so that no shorter text reads back as the same double.
fn is_java_double(int: &[u8], frac: &[u8]) -> bool {
    if frac.is_empty() || int.len() > 7 {
        return false;
    }
    if frac == b"0" {
        return true;
    }
    if frac.last() == Some(&b'0') {
        return false;
    }
    let significant = if int == b"0" {
        let zeros = frac.iter().take_while(|c| **c == b'0').count();
        // 0.001 is the smallest number Java writes plainly.
        if zeros > 2 {
            return false;
        }
        frac.len() - zeros
    } else {
        int.len() + frac.len()
    };
    significant <= 15
}

// === impl Json ===

impl Json {
    pub fn node(&self) -> NodeRef<'_> {
        NodeRef {
            tape: &self.tape,
            at: self.at,
        }
    }

    pub fn to_value(&self) -> Value {
        self.node().to_value()
    }

    /// An array's items one by one, as [`NodeRef::to_lazy`] holds them; `None` if this is no
    /// array.
    pub fn items(&self) -> Option<JsonItems> {
        let node = self.node();
        if !node.is_array() {
            return None;
        }
        Some(JsonItems {
            len: node.item_count(),
            at: self.at + 1,
            array: self.clone(),
        })
    }
}

/// The items of a JSON array ([`Json::items`]).
pub struct JsonItems {
    array: Json,
    /// The next item's node.
    at: u32,
    /// How many are left.
    len: usize,
}

impl JsonItems {
    /// The next item's node and kind, the items moved past it; `None` when there is none.
    fn advance(&mut self) -> Option<(u32, Kind)> {
        let at = self.at;
        let node = self.array.tape.node(at)?;
        self.len = self.len.checked_sub(1)?;
        self.at = node.next;
        Some((at, node.kind))
    }

    /// The next item, put in `slot`: where the slot holds a string, array or object of the
    /// same payload (the last item), that value is moved to the next item in place, so a loop
    /// over an array of objects neither counts references nor drops a value per item; else
    /// as [`Iterator::next`] gives it. `false` when there is no next item.
    pub fn next_into(&mut self, slot: &mut Option<Value>) -> bool {
        let Some((at, kind)) = self.advance() else {
            return false;
        };
        match (kind, slot.as_mut()) {
            (Kind::Str | Kind::EscStr | Kind::Array | Kind::Object, Some(Value::Json(held)))
                if Arc::ptr_eq(&held.tape, &self.array.tape) =>
            {
                held.at = at;
            }
            _ => {
                *slot = Some(
                    NodeRef {
                        tape: &self.array.tape,
                        at,
                    }
                    .to_lazy(),
                );
            }
        }
        true
    }
}

impl Iterator for JsonItems {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        let (at, _) = self.advance()?;
        Some(
            NodeRef {
                tape: &self.array.tape,
                at,
            }
            .to_lazy(),
        )
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len, Some(self.len))
    }
}

impl ExactSizeIterator for JsonItems {}

impl PartialEq for Json {
    fn eq(&self, other: &Json) -> bool {
        self.to_value() == other.to_value()
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A container's text runs from its bracket to its closing one; a string's, between
        // its quotes.
        let text = self.tape.node(self.at).map_or("", |n| self.tape.raw(n));
        write!(f, "Json({text})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(text: &str) {
        let lazy = parse(text).map(|v| v.into_plain());
        let eager = Value::parse_json(text).map_err(|e| e.to_string());
        assert_eq!(lazy, eager, "{text}");
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            "{}",
            "[]",
            " [1, -2, 3.5, -0, 0.0, 1e3, 1E-2, 12345678901234567890, -9223372036854775808] ",
            r#"{"b": 1, "a": [true, false, null], "b": 2}"#,
            r#"{"s": "plain", "e": "q\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "k\u0041": 1}"#,
            r#"[[[[]]], {"x": {"y": {}}}]"#,
            "\"top\"",
            "7",
        ] {
            same(text);
        }
    }

    #[test]
    fn refuses_what_serde_json_refuses_with_its_message() {
        for text in [
            "{",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "1.",
            "-",
            "1e",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"a\nb\"",
            "[1] 2",
            "tru",
            "nul",
            "1e999",
            "{1: 2}",
            "\"\\ud800\\u0041\"",
        ] {
            assert!(Tape::parse(text).is_none(), "{text}");
            same(text);
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse(&deep).is_err());
        same(&("[".repeat(127) + &"]".repeat(127)));
        same(&("[".repeat(128) + &"]".repeat(128)));
    }

    #[test]
    fn numbers_of_every_length_read_as_serde_json_reads_them() {
        // Digits added up while scanned: exact up to 18, parsed from the text beyond. (Past
        // 15 significant digits with a fraction or an exponent, or past 19 digits, `serde_json`
        // without its `float_roundtrip` feature may round a last bit differently from the
        // standard library: not compared here.)
        let digits = "9876543210987654321";
        for n in 1..=digits.len() {
            let int = &digits[..n];
            for frac in [
                "",
                ".5",
                ".05",
                ".1234567",
                ".000000000000000001",
                ".123456789012345678",
            ] {
                for exp in ["", "e3", "E-2"] {
                    if (!frac.is_empty() || !exp.is_empty()) && n + frac.len().saturating_sub(1) > 15 {
                        continue;
                    }
                    for sign in ["", "-"] {
                        same(&format!("{sign}{int}{frac}{exp}"));
                        same(&format!("[{sign}0{frac}{exp}, {sign}{int}{frac}{exp}]"));
                    }
                }
            }
        }
        for text in [
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "-0",
            "-0.0",
        ] {
            same(text);
        }
    }

    #[test]
    fn tapes_built_one_after_another_reuse_buffers_and_read_alike() {
        // Each tape takes the buffers the last one left, larger or smaller than it needs, and
        // one refused halfway leaves them for the next.
        let big = format!("[{}]", vec![r#"{"k":"v","n":1.5}"#; 300].join(","));
        let huge = format!("[{}]", vec!["1"; 3 * MAX_SPARE_NODES].join(","));
        for text in [
            big.as_str(),
            r#"{"a":[1,2,{"b":"c"}]}"#,
            "[1,2,",
            "7",
            &huge,
            r#"{"x":"y\n"}"#,
            "{",
            big.as_str(),
        ] {
            same(text);
            same(text);
        }
        let first = parse(&big).unwrap();
        let second = parse(r#"{"a":1}"#).unwrap();
        assert_eq!(first.clone().into_plain(), Value::parse_json(&big).unwrap());
        assert_eq!(second.into_plain(), Value::parse_json(r#"{"a":1}"#).unwrap());
        drop(first);
        assert_eq!(
            parse("[true]").unwrap().into_plain(),
            Value::parse_json("[true]").unwrap()
        );
    }

    /// Each of `good` reads as serde_json reads it; each of `bad` is refused, as serde_json
    /// refuses it.
    fn strings_agree(good: [String; 2], bad: &[String]) {
        for text in &good {
            same(text);
        }
        for text in bad {
            assert!(read(text).is_none(), "{text:?}");
            same(text);
        }
    }

    #[test]
    fn strings_short_and_long_end_where_serde_json_ends_them() {
        // The first bytes are scanned one by one, the rest in bulk: both ways, around the seam.
        for n in [0, 1, 23, 24, 25, 60] {
            let plain = "x".repeat(n);
            strings_agree(
                [
                    format!("[\"{plain}\"]"),
                    format!("[\"{plain}\\n{plain}\", \"{plain}\"]"),
                ],
                &[
                    format!("[\"{plain}\u{1}\"]"),
                    format!("[\"{plain}\\n{plain}\n\"]"),
                    format!("[\"{plain}"),
                ],
            );
        }
    }

    #[test]
    fn strings_end_where_serde_json_ends_them_at_every_offset_in_a_word() {
        for n in 0..40 {
            let plain: String = "ab\u{e9}\u{7f}".chars().cycle().take(n).collect();
            strings_agree(
                [
                    format!("[\"{plain}\"]"),
                    format!("{{\"{plain}\": \"{plain}\\\"{plain}\"}}"),
                ],
                &[
                    format!("[\"{plain}\u{1f}\"]"),
                    format!("[\"{plain}\u{0}{plain}\"]"),
                    format!("[\"{plain}"),
                    format!("\"{plain}"),
                ],
            );
        }
    }

    #[test]
    fn members_are_found_by_word_and_the_last_of_a_repeated_key_wins() {
        let text = r#"{"id": 1, "sku": 2, "skv": 3, "customer": 4, "customerId": 5, "x": {}, "e\u0069": 6,
            "sku": 7, "nested": {"a": {"b": 8}, "c": 9}, "abcdefghijk": 10, "abcdefghijl": 11, "z":12}"#;
        let doc = parse(text).unwrap();
        let Value::Json(j) = &doc else { panic!("{doc:?}") };
        let root = j.node();
        let int = |n: Option<NodeRef<'_>>| match n.map(NodeRef::to_lazy) {
            Some(Value::Int(i)) => Some(i),
            other => panic!("{other:?}"),
        };
        let named = |name: &str| root.member_named(&Name::new(name));
        assert_eq!(int(named("id")), Some(1));
        assert_eq!(int(named("sku")), Some(7), "the last `sku` wins");
        assert_eq!(int(named("skv")), Some(3));
        assert_eq!(int(named("customer")), Some(4), "eight bytes: the word alone");
        assert_eq!(
            int(named("customerId")),
            Some(5),
            "longer: the word, then the tail"
        );
        assert_eq!(int(named("abcdefghijk")), Some(10));
        assert_eq!(int(named("abcdefghijl")), Some(11));
        assert_eq!(
            int(named("ei")),
            Some(6),
            "an escaped key is compared by its value"
        );
        assert_eq!(int(named("z")), Some(12), "a key near the end of the text");
        for missing in [
            "",
            "s",
            "sk",
            "skw",
            "customeR",
            "customerI",
            "abcdefghijm",
            "e\\u0069",
        ] {
            assert!(named(missing).is_none(), "{missing}");
        }
        assert!(named("x").unwrap().member("a").is_none(), "an empty object");
        let nested = named("nested").unwrap();
        assert_eq!(int(nested.member("a").and_then(|a| a.member("b"))), Some(8));
        assert_eq!(int(nested.member("c")), Some(9));
        assert!(nested.member("b").is_none(), "a grandchild is no member");
        // The same answers by `member`, and from `serde_json`'s value.
        let Value::Map(built) = Value::parse_json(text).unwrap() else {
            panic!()
        };
        for (key, value) in &built.0 {
            assert_eq!(
                root.member(key).map(NodeRef::to_value).as_ref(),
                Some(value),
                "{key}"
            );
        }
    }

    #[test]
    fn members_items_and_text() {
        let doc = parse(r#"{"a": {"b": [10, "x\ty", 2.50, 0.5, 1e2]}, "a": {"b": [1]}, "c": "d"}"#).unwrap();
        let Value::Json(j) = &doc else { panic!("{doc:?}") };
        let root = j.node();
        assert!(root.member("missing").is_none());
        let b = root.member("a").and_then(|a| a.member("b")).unwrap();
        assert_eq!(b.item_count(), 1, "the last `a` wins");
        let doc = parse(r#"{"b": [10, "x\ty", 2.50, 0.5, 1e2, -0.001, 0.0001, 12345678.5]}"#).unwrap();
        let Value::Json(j) = &doc else { panic!() };
        let b = j.node().member("b").unwrap();
        let texts: Vec<String> = (0..8)
            .map(|i| {
                let mut s = String::new();
                b.item(i).unwrap().write_text(&mut s);
                s
            })
            .collect();
        assert_eq!(
            texts,
            [
                "10",
                "x\ty",
                "2.5",
                "0.5",
                "100.0",
                "-0.001",
                "1.0E-4",
                "1.23456785E7"
            ]
        );
        assert!(b.item(8).is_none());
        let mut last = String::new();
        b.item(-1).unwrap().write_text(&mut last);
        assert_eq!(last, "1.23456785E7");
    }

    #[test]
    fn java_doubles_written_from_the_text_agree_with_the_value() {
        for raw in [
            "0.5",
            "1.0",
            "1.00",
            "1.50",
            "0.001",
            "0.0001",
            "1234567.5",
            "12345678.5",
            "0.0",
            "-0.0",
            "3.141592653589793",
            "0.1234567890123456",
            "9999999.9",
            "-2.25",
            "0.010",
            "1e2",
            "123456789012345.6",
        ] {
            let mut slow = String::new();
            write_double(raw.parse().unwrap(), &mut slow);
            let mut fast = String::new();
            NodeRef {
                tape: &Arc::new(Tape::parse(raw).unwrap()),
                at: 0,
            }
            .write_text(&mut fast);
            assert_eq!(fast, slow, "{raw}");
            // The fast path reads the same double as a full parse.
            assert_eq!(read(raw), Some(Value::Float(raw.parse().unwrap())), "{raw}");
        }
    }
}
