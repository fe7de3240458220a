//! The samples in config/samples compile cleanly: every object Accepted with resolved refs.

use turnpike_controller::ingest::world_from_yaml;
use turnpike_core::compile::{CompileConfig, compile};

#[test]
fn samples_compile_with_every_object_ready() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/samples");
    let mut yaml = String::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("samples")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for f in files {
        yaml.push_str(&std::fs::read_to_string(f).expect("read"));
        yaml.push_str("\n---\n");
    }
    let world = world_from_yaml(&yaml).expect("samples parse");
    let compiled = compile(&world, &CompileConfig::default(), 1);
    let not_ready: Vec<_> = compiled.statuses.iter().filter(|s| !s.is_ready()).collect();
    assert!(not_ready.is_empty(), "{not_ready:#?}");
    assert_eq!(compiled.table.apis().count(), 1);
    assert_eq!(compiled.table.keys().count(), 1);
}
