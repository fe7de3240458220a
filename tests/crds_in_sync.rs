//! `crds/` (and the chart's copy in `charts/turnpike/crds/`) is generated from the Rust types:
//! one file per kind, equal to what `turnpike crds` prints. Regenerate with
//! `UPDATE_CRDS=1 cargo test --test crds_in_sync`.

use std::path::Path;

use turnpike_api as api;

#[test]
fn crds_directory_matches_the_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let update = std::env::var_os("UPDATE_CRDS").is_some();
    let mut stale = Vec::new();
    for dir in [root.join("crds"), root.join("charts/turnpike/crds")] {
        for crd in api::crds() {
            let kind = crd.spec.names.kind.to_lowercase();
            let path = dir.join(format!("{kind}.yaml"));
            let want = api::crds_yaml(std::slice::from_ref(&crd)).expect("render");
            if update {
                std::fs::write(&path, &want).expect("write");
                continue;
            }
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            if have != want {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale CRD files {stale:?}: run UPDATE_CRDS=1 cargo test --test crds_in_sync"
    );
}

#[test]
fn turnpike_crds_prints_every_kind_in_the_turnpike_category() {
    let crds = api::crds();
    let kinds: Vec<_> = crds.iter().map(|c| c.spec.names.kind.as_str()).collect();
    assert_eq!(kinds, ["RestApi", "Deployment", "Stage", "UsagePlan", "ApiKey"]);
    for crd in &crds {
        assert_eq!(crd.spec.group, api::GROUP);
        assert_eq!(crd.spec.scope, "Namespaced");
        let names = &crd.spec.names;
        assert!(
            names
                .categories
                .as_deref()
                .unwrap_or_default()
                .contains(&"turnpike".to_string())
        );
        assert!(
            !names.short_names.as_deref().unwrap_or_default().is_empty(),
            "{} has no short name",
            names.kind
        );
        let version = &crd.spec.versions[0];
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        let columns = version.additional_printer_columns.as_deref().unwrap_or_default();
        assert!(
            columns.iter().any(|c| c.name == "READY"),
            "{} has no READY column",
            names.kind
        );
    }
}
