//! The layering as Cargo facts. Dependencies run `api → model → compile → routing ← proxy`:
//! the pure core and the proxy never reach Kubernetes, and the embedded API server uses none of
//! the product's crates. The rules are read from `cargo metadata` (the resolved graph, normal
//! dependencies only, followed transitively), so a forbidden edge fails here with the rule it
//! breaks, whichever Cargo.toml or transitive dependency brought it in.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::OnceLock,
};

use serde_json::Value;

/// One rule: `krate` must not depend, directly or transitively, on any of `forbidden`.
struct Rule {
    krate: &'static str,
    forbidden: &'static [&'static str],
    why: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        krate: "turnpike-core",
        forbidden: &[
            "kube",
            "kube-client",
            "kube-runtime",
            "k8s-openapi",
            "tokio",
            "hyper",
            "turnpike-api",
            "turnpike-telemetry",
            "turnpike-proxy",
            "turnpike-controller",
            "turnpike-apiserver",
        ],
        why: "the core (model, compile, routing) is pure: no Kubernetes, no async runtime, no HTTP \
              stack, and no other Turnpike crate",
    },
    Rule {
        krate: "turnpike-proxy",
        forbidden: &[
            "kube",
            "kube-client",
            "kube-runtime",
            "k8s-openapi",
            "turnpike-api",
            "turnpike-controller",
            "turnpike-apiserver",
        ],
        why: "the proxy reads only the routing table: what it needs from the cluster reaches it \
              through the table, the CertStore and NamespaceLookup",
    },
    Rule {
        krate: "turnpike-telemetry",
        forbidden: &[
            "kube",
            "kube-client",
            "kube-runtime",
            "k8s-openapi",
            "turnpike-api",
            "turnpike-proxy",
            "turnpike-controller",
            "turnpike-apiserver",
        ],
        why: "telemetry is shared by the proxy and the controller and depends only on the core",
    },
    Rule {
        krate: "turnpike-apiserver",
        forbidden: &[
            "turnpike-core",
            "turnpike-api",
            "turnpike-telemetry",
            "turnpike-proxy",
            "turnpike-controller",
        ],
        why: "the embedded API server is a reusable piece: it knows nothing of Turnpike, and the \
              controller reaches it only through a kubeconfig",
    },
    Rule {
        krate: "turnpike-api",
        forbidden: &["turnpike-proxy", "turnpike-controller", "turnpike-apiserver"],
        why: "the CRD types and their conversion depend only on the core",
    },
    Rule {
        krate: "turnpike-openapi",
        forbidden: &[
            "turnpike-telemetry",
            "turnpike-proxy",
            "turnpike-controller",
            "turnpike-apiserver",
        ],
        why: "OpenAPI import and export are pure document mappings over the CRD types, used by \
              the CLI, the controller and its admin export alike",
    },
    Rule {
        krate: "turnpike-controller",
        forbidden: &["turnpike-apiserver"],
        why: "the controller reaches the embedded API server only through a kubeconfig, as it \
              reaches a real cluster",
    },
];

/// The resolved graph for this machine's platform: package name → names of its normal
/// (non-dev, non-build) dependencies.
fn graph() -> &'static BTreeMap<String, BTreeSet<String>> {
    static GRAPH: OnceLock<BTreeMap<String, BTreeSet<String>>> = OnceLock::new();
    GRAPH.get_or_init(read_graph)
}

fn host_triple() -> String {
    let out = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    let text = String::from_utf8(out.stdout).expect("rustc -vV is UTF-8");
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

fn read_graph() -> BTreeMap<String, BTreeSet<String>> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--filter-platform",
        ])
        .arg(host_triple())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().expect("id"), p["name"].as_str().expect("name")))
        .collect();
    let mut graph = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve.nodes") {
        let name = names[node["id"].as_str().expect("node id")].to_owned();
        let deps: BTreeSet<String> = node["deps"]
            .as_array()
            .expect("deps")
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .expect("dep_kinds")
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| names[d["pkg"].as_str().expect("pkg")].to_owned())
            .collect();
        graph.entry(name).or_insert_with(BTreeSet::new).extend(deps);
    }
    graph
}

/// The path from `from` to `to` through normal dependencies, if there is one.
fn path(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![vec![from.to_owned()]];
    while let Some(trail) = stack.pop() {
        let last = trail.last().expect("non-empty trail");
        if last == to {
            return Some(trail);
        }
        if !seen.insert(last.clone()) {
            continue;
        }
        for dep in graph.get(last).into_iter().flatten() {
            let mut next = trail.clone();
            next.push(dep.clone());
            stack.push(next);
        }
    }
    None
}

#[test]
fn every_layer_depends_only_on_what_its_rule_allows() {
    let graph = graph();
    let mut broken = Vec::new();
    for rule in RULES {
        assert!(
            graph.contains_key(rule.krate),
            "{} is not in the workspace",
            rule.krate
        );
        for forbidden in rule.forbidden {
            if let Some(trail) = path(graph, rule.krate, forbidden) {
                broken.push(format!(
                    "{} must not depend on {forbidden} ({}): {}",
                    rule.krate,
                    rule.why,
                    trail.join(" → ")
                ));
            }
        }
    }
    assert!(broken.is_empty(), "layering rules broken:\n{}", broken.join("\n"));
}

#[test]
fn the_rules_can_see_a_forbidden_edge() {
    // The controller does reach Kubernetes; if this found no path, the graph walk would be
    // blind and every rule above would pass vacuously.
    let graph = graph();
    for k in ["kube", "k8s-openapi"] {
        assert!(
            path(graph, "turnpike-controller", k).is_some(),
            "controller → {k} not seen"
        );
    }
    assert!(path(graph, "turnpike-proxy", "turnpike-core").is_some());
}
