//! The examples in config/examples compile cleanly: every object Accepted with resolved refs,
//! given the petstore Service they call (as `turnpike local --examples` writes it, or
//! config/backend/petstore.yaml in a cluster, with a ready endpoint).

use turnpike_controller::ingest::world_from_yaml;
use turnpike_core::compile::{CompileConfig, compile};

/// The Service `petstore` with one ready endpoint, as the endpoints controller would write it.
const PETSTORE_SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: petstore, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: petstore-abcde
  namespace: default
  labels: {kubernetes.io/service-name: petstore}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]
"#;

fn read_dir_yaml(dir: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("examples")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut yaml = String::new();
    for f in files {
        yaml.push_str(&std::fs::read_to_string(f).expect("read"));
        yaml.push_str("\n---\n");
    }
    yaml
}

#[test]
fn examples_compile_with_every_object_ready() {
    let yaml = read_dir_yaml("config/examples") + PETSTORE_SERVICE;
    let world = world_from_yaml(&yaml).expect("examples parse");
    let compiled = compile(&world, &CompileConfig::default(), 1);
    let not_ready: Vec<_> = compiled.statuses.iter().filter(|s| !s.is_ready()).collect();
    assert!(not_ready.is_empty(), "{not_ready:#?}");
    let unresolved: Vec<_> = compiled
        .statuses
        .iter()
        .filter(|s| s.condition("ResolvedRefs").is_some_and(|c| !c.status))
        .collect();
    assert!(unresolved.is_empty(), "{unresolved:#?}");
    // petstore, hello (MOCK), shop (canary), partners (usage plan), ledger (PRIVATE), orders
    // (request validation), cors-shop (CORS), clock (stage cache), quotes (shared cache),
    // guarded (authorizers), soap-pets (mapping templates in front of a SOAP backend), chat
    // (WebSocket), answers (gateway responses), pets-openapi (imported from spec.openApi).
    assert_eq!(compiled.table.apis().count(), 14);
    assert_eq!(compiled.table.keys().count(), 3);
}
