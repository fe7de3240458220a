//! What `turnpike local` does through the API at start, as kubectl would: install the CRDs
//! (server-side apply, then wait for `Established`) and apply manifests (`-f`), each document
//! resolved through discovery and applied server-side.

use std::{path::Path, time::Duration};

use anyhow::Context as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, ResourceExt as _,
    api::{DynamicObject, GroupVersionKind, Patch, PatchParams},
    discovery::{Discovery, Scope},
};
use serde::Deserialize as _;
use tracing::info;

/// The field manager of `turnpike local`'s own applies (not the controller's).
const APPLY_MANAGER: &str = "turnpike-local";

/// Applies every Turnpike CRD and waits (at most 30 s) until each is Established.
pub async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply(APPLY_MANAGER).force();
    for crd in crate::api::crds() {
        let name = crd.name_any();
        api.patch(&name, &pp, &Patch::Apply(&crd))
            .await
            .with_context(|| format!("applying CRD {name}"))?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for crd in crate::api::crds() {
        let name = crd.name_any();
        loop {
            let current = api
                .get(&name)
                .await
                .with_context(|| format!("reading CRD {name}"))?;
            let established = current
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
            if established {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "CRD {name} not Established after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    info!("CRDs installed");
    Ok(())
}

/// Reads YAML files (a directory: its `*.yaml`/`*.yml` files, sorted) into documents.
pub fn read_manifests(paths: &[impl AsRef<Path>]) -> anyhow::Result<Vec<DynamicObject>> {
    let mut files = Vec::new();
    for p in paths {
        let p = p.as_ref();
        if p.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(p.to_path_buf());
        }
    }
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value =
                serde_yaml::Value::deserialize(doc).with_context(|| format!("parsing {}", f.display()))?;
            if value.is_null() {
                continue;
            }
            let obj: DynamicObject = serde_yaml::from_value(value)
                .with_context(|| format!("reading an object in {}", f.display()))?;
            out.push(obj);
        }
    }
    Ok(out)
}

/// Applies objects server-side; namespaced objects without a namespace go to `default`.
pub async fn apply_objects(client: &Client, objects: &[DynamicObject]) -> anyhow::Result<()> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .context("API discovery")?;
    let pp = PatchParams::apply(APPLY_MANAGER).force();
    for obj in objects {
        let types = obj.types.as_ref().context("an object without apiVersion/kind")?;
        let gvk = GroupVersionKind::try_from(types).context("apiVersion")?;
        let (ar, caps) = discovery
            .resolve_gvk(&gvk)
            .with_context(|| format!("the server does not serve {}/{}", types.api_version, types.kind))?;
        let name = obj.name_any();
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                obj.namespace().as_deref().unwrap_or("default"),
                &ar,
            ),
            Scope::Cluster => Api::all_with(client.clone(), &ar),
        };
        api.patch(&name, &pp, &Patch::Apply(obj))
            .await
            .with_context(|| format!("applying {} {name}", types.kind))?;
        info!(kind = %types.kind, %name, "applied");
    }
    Ok(())
}
