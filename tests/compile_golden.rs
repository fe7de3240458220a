//! Golden tests: `tests/golden/NAME.in.yaml` (cluster objects) compiles to
//! `tests/golden/NAME.out.yaml` (the routing table and every object's status).
//!
//! Regenerate with `UPDATE_GOLDEN=1 cargo test --test compile_golden` and review the diff.

use std::{collections::BTreeSet, path::Path};

use serde::Serialize;
use turnpike_api::conditions::reasons;
use turnpike_controller::ingest::{Objects, world};
use turnpike_controller::openapi::ImportCache;
use turnpike_core::compile::{CompileConfig, StatusUpdate, compile};
use turnpike_core::routing::Listener;
use turnpike_core::routing::RoutingTable;
use turnpike_core::routing::describe::TableDescription;

#[derive(Serialize)]
struct Golden {
    table: TableDescription,
    statuses: Vec<StatusUpdate>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    probes: Vec<String>,
}

/// A `kind: Probe` document asks the compiled table how requests match:
///
/// ```yaml
/// kind: Probe
/// api: shop/petstore            # the RestApi object; its id is filled in
/// listener: public              # or private; default public
/// requests: ["GET /prod/pets/1", "DELETE /prod/nothing"]
/// ```
#[derive(serde::Deserialize)]
struct Probe {
    api: String,
    #[serde(default)]
    listener: Option<String>,
    requests: Vec<String>,
}

/// A `kind: Harness` document sets how the case is run:
///
/// ```yaml
/// kind: Harness
/// recordSnapshots: false        # a follower's view: the leader has not recorded snapshots yet
/// ```
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Harness {
    #[serde(default = "yes")]
    record_snapshots: bool,
}

fn yes() -> bool {
    true
}

impl Default for Harness {
    fn default() -> Self {
        Harness {
            record_snapshots: true,
        }
    }
}

/// Splits probe and harness documents from cluster objects.
fn split_probes(yaml: &str) -> (String, Vec<Probe>, Harness) {
    let mut objects = String::new();
    let mut probes = Vec::new();
    let mut harness = Harness::default();
    for doc in yaml.split("\n---") {
        let value: serde_yaml::Value = serde_yaml::from_str(doc).unwrap_or(serde_yaml::Value::Null);
        let kind = value.get("kind").and_then(|k| k.as_str());
        if kind == Some("Probe") {
            probes.push(serde_yaml::from_value(value).expect("probe"));
        } else if kind == Some("Harness") {
            harness = serde_yaml::from_value(value).expect("harness");
        } else {
            objects.push_str(doc);
            objects.push_str("\n---");
        }
    }
    (objects, probes, harness)
}

fn run_probes(table: &RoutingTable, probes: &[Probe]) -> Vec<String> {
    let mut out = Vec::new();
    for probe in probes {
        let id = table
            .apis()
            .find(|a| a.object.to_string() == probe.api)
            .map_or_else(|| "missing".to_string(), |a| a.id.to_string());
        let listener = if probe.listener.as_deref() == Some("private") {
            Listener::Private
        } else {
            Listener::Public
        };
        let host = format!("{id}{}", table.hosts.host_suffix());
        for request in &probe.requests {
            let (method, path) = request.split_once(' ').expect("METHOD /path");
            let method = http::Method::from_bytes(method.as_bytes()).expect("method");
            let result = match table.find(listener, Some(&host), path, &method) {
                Ok((located, m)) => {
                    let params: Vec<String> = m.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    format!(
                        "stage {} resource {} method {} params [{}]",
                        located.stage.name,
                        m.resource.path,
                        m.method,
                        params.join(", ")
                    )
                }
                Err(miss) => format!("miss {miss:?}"),
            };
            out.push(format!("{request} -> {result}"));
        }
    }
    out
}

fn cases() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/golden")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".in.yaml"))
        .collect();
    cases.sort();
    cases
}

fn output_of(input: &Path) -> std::path::PathBuf {
    let name = input
        .file_name()
        .expect("file name")
        .to_string_lossy()
        .replace(".in.yaml", ".out.yaml");
    input.with_file_name(name)
}

fn render(input: &Path) -> String {
    let yaml = std::fs::read_to_string(input).expect("read input");
    let (objects, probes, harness) = split_probes(&yaml);
    let mut objects = Objects::from_yaml(&objects).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    // As every rebuild does first: RestApis with spec.openApi are imported.
    objects.expand_open_api(&mut ImportCache::default());
    if harness.record_snapshots {
        // As the leader does at a Deployment's first reconcile.
        objects.record_missing_snapshots();
    }
    let world = world(&objects);
    let compiled = compile(&world, &CompileConfig::default(), 1);
    let probes = run_probes(&compiled.table, &probes);
    let golden = Golden {
        table: compiled.table.describe(),
        statuses: compiled
            .statuses
            .iter()
            .map(|s| s.update().into_owned())
            .collect(),
        probes,
    };
    serde_yaml::to_string(&golden).expect("render")
}

#[test]
fn golden_files_match() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for input in cases() {
        let output = output_of(&input);
        let got = render(&input);
        if update {
            std::fs::write(&output, &got).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&output).unwrap_or_default();
        if got != want {
            failures.push(output.display().to_string());
            eprintln!(
                "--- {}\n{}",
                output.display(),
                pretty_assertions::StrComparison::new(&want, &got)
            );
        }
    }
    assert!(
        failures.is_empty(),
        "golden files differ: {failures:?}\nrun UPDATE_GOLDEN=1 cargo test --test compile_golden"
    );
}

#[test]
fn compiling_twice_gives_the_same_output() {
    for input in cases() {
        assert_eq!(
            render(&input),
            render(&input),
            "{} is not deterministic",
            input.display()
        );
    }
}

#[test]
fn there_are_at_least_thirty_cases() {
    assert!(cases().len() >= 30, "only {} golden cases", cases().len());
}

/// Every condition reason is produced by at least one golden case, so each has a pinned example.
#[test]
fn every_reason_has_a_golden_case() {
    let mut seen = BTreeSet::new();
    for input in cases() {
        let output = output_of(&input);
        let text = std::fs::read_to_string(&output).unwrap_or_default();
        for reason in reasons::ALL {
            if text.contains(&format!("reason: {reason}\n")) {
                seen.insert(*reason);
            }
        }
    }
    let missing: Vec<_> = reasons::ALL.iter().filter(|r| !seen.contains(*r)).collect();
    assert!(missing.is_empty(), "no golden case produces: {missing:?}");
}
