//! A segment trie over a flat arena: the route index of a [`RouteSet`](super::RouteSet).
//!
//! AWS matches whole path segments: a literal segment beats `{param}`, which beats a greedy
//! `{proxy+}` (one or more segments), and a failed branch falls back to the next kind
//! (`/pets/mine/toys` reaches `/pets/{id}/toys` when `/pets/mine` has no `toys`). Nodes live in
//! one boxed slice and refer to each other by index, so a resource costs tens of bytes; a
//! byte-level radix router costs about ten times that per route.
//!
//! Matching recurses only along existing trie edges, so the depth is bounded by the deepest
//! template, never by the request path.

use std::collections::BTreeMap;

use crate::model::{PathTemplate, Segment};

/// Two templates claim the same route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} and {other} match the same requests")]
pub struct Conflict {
    pub path: String,
    pub other: String,
}

/// No child or resource.
const NONE: u32 = u32::MAX;

/// A node: its literal children are `lits[first..first + count]`, sorted by (hash, key).
#[derive(Debug, Clone, Copy)]
struct Node {
    first: u32,
    count: u32,
    /// The `{param}` child node.
    param: u32,
    /// The resource of a `{name+}` child (it always ends the template).
    greedy: u32,
    /// The resource that ends here.
    resource: u32,
}

/// A literal edge. Edges of a node are contiguous and carry a hash of their key, so a lookup
/// is a binary search over one small array and a single key comparison in the arena.
#[derive(Debug, Clone, Copy)]
struct Lit {
    hash: u32,
    child: u32,
    key_start: u32,
    key_len: u32,
}

/// The route index.
#[derive(Debug, Default)]
pub(crate) struct Trie {
    nodes: Box<[Node]>,
    lits: Box<[Lit]>,
    /// Every literal key, back to back.
    keys: Box<str>,
}

#[derive(Default)]
struct Builder {
    literals: BTreeMap<Box<str>, usize>,
    param: Option<usize>,
    greedy: Option<u32>,
    resource: Option<u32>,
}

/// FNV-1a: short segments, no seed needed (keys come from configuration; a request can only
/// make its own lookup walk a node's equal-hash run, which configuration bounds).
fn hash(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

impl Trie {
    /// Indexes `paths`; the value of a match is the path's position in the slice.
    pub(crate) fn build(paths: &[&PathTemplate]) -> Result<Self, Conflict> {
        let mut nodes = vec![Builder::default()];
        let conflict = |path: &PathTemplate, other: u32| Conflict {
            path: path.to_string(),
            other: paths[other as usize].to_string(),
        };
        for (index, path) in paths.iter().enumerate() {
            let index = to_u32(index);
            let mut at = 0;
            for segment in path.segments() {
                at = match segment {
                    Segment::Literal(s) => match nodes[at].literals.get(&**s) {
                        Some(&next) => next,
                        None => {
                            nodes.push(Builder::default());
                            let next = nodes.len() - 1;
                            nodes[at].literals.insert(s.clone(), next);
                            next
                        }
                    },
                    Segment::Param(_) => match nodes[at].param {
                        Some(next) => next,
                        None => {
                            nodes.push(Builder::default());
                            let next = nodes.len() - 1;
                            nodes[at].param = Some(next);
                            next
                        }
                    },
                    Segment::Greedy(_) => {
                        if let Some(other) = nodes[at].greedy {
                            return Err(conflict(path, other));
                        }
                        nodes[at].greedy = Some(index);
                        break;
                    }
                };
            }
            if !matches!(path.segments().last(), Some(Segment::Greedy(_))) {
                if let Some(other) = nodes[at].resource {
                    return Err(conflict(path, other));
                }
                nodes[at].resource = Some(index);
            }
        }

        let mut keys = String::new();
        let mut lits = Vec::new();
        let mut frozen = Vec::with_capacity(nodes.len());
        for b in nodes {
            let first = to_u32(lits.len());
            let mut edges: Vec<Lit> = b
                .literals
                .into_iter()
                .map(|(key, child)| {
                    let lit = Lit {
                        hash: hash(&key),
                        child: to_u32(child),
                        key_start: to_u32(keys.len()),
                        key_len: to_u32(key.len()),
                    };
                    keys.push_str(&key);
                    lit
                })
                .collect();
            edges.sort_by_key(|l| l.hash);
            let count = to_u32(edges.len());
            lits.extend(edges);
            frozen.push(Node {
                first,
                count,
                param: b.param.map_or(NONE, to_u32),
                greedy: b.greedy.unwrap_or(NONE),
                resource: b.resource.unwrap_or(NONE),
            });
        }
        Ok(Trie {
            nodes: frozen.into(),
            lits: lits.into(),
            keys: keys.into(),
        })
    }

    /// Finds the resource of `path` (starting with `/`) and pushes the values of its
    /// parameters, in template order.
    pub(crate) fn find<'p>(&self, path: &'p str, values: &mut impl Values<'p>) -> Option<u32> {
        let rest = path.strip_prefix('/')?;
        if self.nodes.is_empty() {
            return None;
        }
        self.walk(0, rest, values)
    }

    fn walk<'p>(&self, at: u32, rest: &'p str, values: &mut impl Values<'p>) -> Option<u32> {
        let node = self.nodes[at as usize];
        if rest.is_empty() {
            return some(node.resource);
        }
        let (segment, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if segment.is_empty() {
            // `//`: no template has an empty segment.
            return None;
        }
        // A trailing `/` (`a/`) leaves `tail` empty: literal and parameter routes ignore it, a
        // greedy parameter keeps it in its value.
        if let Some(child) = self.literal(node, segment)
            && let Some(found) = self.walk(child, tail, values)
        {
            return Some(found);
        }
        if node.param != NONE {
            values.push_value(segment);
            if let Some(found) = self.walk(node.param, tail, values) {
                return Some(found);
            }
            values.pop_value();
        }
        some(node.greedy).inspect(|_| values.push_value(rest))
    }

    /// The literal child of `node` for `segment`.
    fn literal(&self, node: Node, segment: &str) -> Option<u32> {
        let edges = self
            .lits
            .get(node.first as usize..(node.first + node.count) as usize)?;
        let h = hash(segment);
        let mut i = edges.partition_point(|l| l.hash < h);
        while let Some(l) = edges.get(i).filter(|l| l.hash == h) {
            let key = self
                .keys
                .get(l.key_start as usize..(l.key_start + l.key_len) as usize);
            if key == Some(segment) {
                return Some(l.child);
            }
            i += 1;
        }
        None
    }
}

/// Where matched parameter values go.
pub(crate) trait Values<'p> {
    fn push_value(&mut self, v: &'p str);
    fn pop_value(&mut self);
}

impl<'p> Values<'p> for Vec<&'p str> {
    fn push_value(&mut self, v: &'p str) {
        self.push(v);
    }
    fn pop_value(&mut self) {
        self.pop();
    }
}

impl<'p, const N: usize> Values<'p> for smallvec::SmallVec<[&'p str; N]> {
    fn push_value(&mut self, v: &'p str) {
        self.push(v);
    }
    fn pop_value(&mut self) {
        self.pop();
    }
}

fn some(i: u32) -> Option<u32> {
    (i != NONE).then_some(i)
}

fn to_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trie(paths: &[&str]) -> (Trie, Vec<PathTemplate>) {
        let templates: Vec<PathTemplate> = paths.iter().map(|p| PathTemplate::parse(p).expect(p)).collect();
        let refs: Vec<&PathTemplate> = templates.iter().collect();
        (Trie::build(&refs).expect("build"), templates)
    }

    fn find<'p>(t: &Trie, templates: &[PathTemplate], path: &'p str) -> Option<(String, Vec<&'p str>)> {
        let mut values = Vec::new();
        t.find(path, &mut values)
            .map(|i| (templates[i as usize].to_string(), values))
    }

    #[test]
    fn literal_beats_param_beats_greedy_with_backtracking() {
        let (t, p) = trie(&["/", "/pets/mine", "/pets/{id}", "/pets/{id}/toys", "/{proxy+}"]);
        assert_eq!(find(&t, &p, "/"), Some(("/".into(), vec![])));
        assert_eq!(find(&t, &p, "/pets/mine"), Some(("/pets/mine".into(), vec![])));
        assert_eq!(find(&t, &p, "/pets/7"), Some(("/pets/{id}".into(), vec!["7"])));
        assert_eq!(
            find(&t, &p, "/pets/mine/toys"),
            Some(("/pets/{id}/toys".into(), vec!["mine"]))
        );
        assert_eq!(find(&t, &p, "/pets"), Some(("/{proxy+}".into(), vec!["pets"])));
        assert_eq!(
            find(&t, &p, "/pets/7/food/bowl"),
            Some(("/{proxy+}".into(), vec!["pets/7/food/bowl"]))
        );
    }

    #[test]
    fn greedy_needs_at_least_one_segment_and_params_are_never_empty() {
        let (t, p) = trie(&["/files/{proxy+}", "/pets/{id}"]);
        assert_eq!(find(&t, &p, "/files"), None);
        assert_eq!(
            find(&t, &p, "/files/a"),
            Some(("/files/{proxy+}".into(), vec!["a"]))
        );
        assert_eq!(
            find(&t, &p, "/files/a/"),
            Some(("/files/{proxy+}".into(), vec!["a/"]))
        );
        assert_eq!(find(&t, &p, "/pets//"), None);
        assert_eq!(find(&t, &p, "/pets/"), None);
        assert_eq!(find(&t, &p, "//pets/1"), None);
        assert_eq!(find(&t, &p, "pets/1"), None);
    }

    #[test]
    fn duplicate_routes_conflict() {
        let templates: Vec<PathTemplate> = ["/a/{x}", "/a/{y}"]
            .iter()
            .map(|p| PathTemplate::parse(p).expect(p))
            .collect();
        let refs: Vec<&PathTemplate> = templates.iter().collect();
        assert_eq!(
            Trie::build(&refs).expect_err("conflict"),
            Conflict {
                path: "/a/{y}".into(),
                other: "/a/{x}".into()
            }
        );
    }

    #[test]
    fn an_empty_trie_matches_nothing() {
        let (t, p) = trie(&[]);
        assert_eq!(find(&t, &p, "/"), None);
    }
}
