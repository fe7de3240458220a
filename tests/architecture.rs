//! The dependency line: `api → model → compile → routing ← proxy`. The domain, compile,
//! routing and proxy modules never mention Kubernetes types, so they can be tested and reasoned
//! about without a cluster.

use std::path::Path;

const KUBE_FREE: [&str; 4] = ["src/model", "src/compile", "src/routing", "src/proxy"];
const FORBIDDEN: [&str; 3] = ["kube::", "k8s_openapi", "kube_runtime"];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn domain_compile_routing_and_proxy_never_import_kubernetes_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut offenders = Vec::new();
    for dir in KUBE_FREE {
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read source");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                if FORBIDDEN.iter().any(|f| code.contains(f)) {
                    offenders.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "Kubernetes types outside api/ingest/controller:\n{}",
        offenders.join("\n")
    );
}
