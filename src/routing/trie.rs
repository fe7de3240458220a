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

#[derive(Debug, Default)]
struct Node {
    /// Literal children, sorted by segment for binary search.
    literals: Box<[(Box<str>, u32)]>,
    /// The `{param}` child.
    param: Option<u32>,
    /// The resource of a `{name+}` child (it always ends the template).
    greedy: Option<u32>,
    /// The resource that ends here.
    resource: Option<u32>,
}

/// The route index.
#[derive(Debug, Default)]
pub(crate) struct Trie {
    nodes: Box<[Node]>,
}

#[derive(Default)]
struct Builder {
    literals: BTreeMap<Box<str>, usize>,
    param: Option<usize>,
    greedy: Option<u32>,
    resource: Option<u32>,
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
            let index = u32::try_from(index).unwrap_or(u32::MAX);
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
        let nodes = nodes
            .into_iter()
            .map(|b| Node {
                literals: b.literals.into_iter().map(|(k, v)| (k, to_u32(v))).collect(),
                param: b.param.map(to_u32),
                greedy: b.greedy,
                resource: b.resource,
            })
            .collect();
        Ok(Trie { nodes })
    }

    /// Finds the resource of `path` (starting with `/`, no trailing `/` except the root) and
    /// pushes the values of its parameters, in template order.
    pub(crate) fn find<'p>(&self, path: &'p str, values: &mut Vec<&'p str>) -> Option<u32> {
        let rest = path.strip_prefix('/')?;
        if self.nodes.is_empty() {
            return None;
        }
        self.walk(0, rest, values)
    }

    fn walk<'p>(&self, at: u32, rest: &'p str, values: &mut Vec<&'p str>) -> Option<u32> {
        let node = &self.nodes[at as usize];
        if rest.is_empty() {
            return node.resource;
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
        if let Ok(i) = node.literals.binary_search_by(|(k, _)| k.as_ref().cmp(segment))
            && let Some(found) = self.walk(node.literals[i].1, tail, values)
        {
            return Some(found);
        }
        if let Some(child) = node.param {
            values.push(segment);
            if let Some(found) = self.walk(child, tail, values) {
                return Some(found);
            }
            values.pop();
        }
        node.greedy.inspect(|_| values.push(rest))
    }
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
