//! `turnpike local --apply`: server-side applies manifest files through the API, the way
//! `kubectl apply --server-side -f` would (CRDs first, discovery refreshed when a new kind
//! appears).

use std::path::{Path, PathBuf};

use kube::{
    api::{Api, DynamicObject, Patch, PatchParams, PostParams},
    core::GroupVersionKind,
    discovery::{Discovery, Scope},
};
use serde::Deserialize as _;

/// The field manager of start-up applies.
pub const FIELD_MANAGER: &str = "turnpike-local";

/// Failure reading or applying manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A document is not YAML/JSON, or not an object with apiVersion, kind and name.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The server refused or was unreachable.
    #[error("{kind} {name}: {source}")]
    Api {
        /// The kind.
        kind: String,
        /// The object name.
        name: String,
        /// The error.
        source: kube::Error,
    },
    /// Discovery failed.
    #[error("discovery: {0}")]
    Discovery(kube::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ManifestError + '_ {
    move |source| ManifestError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Every YAML/JSON document of the given files and directories (directories: their `.yaml`,
/// `.yml` and `.json` files in name order), CRDs first, each with the file it came from.
pub fn read(paths: &[PathBuf]) -> Result<Vec<(PathBuf, serde_json::Value)>, ManifestError> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(io(p))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.extension()
                        .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
                })
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(p.clone());
        }
    }
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(io(&f))?;
        docs.extend(read_str(&f, &text)?);
    }
    docs.sort_by_key(|(_, d)| d["kind"] != "CustomResourceDefinition");
    Ok(docs)
}

/// Every YAML/JSON object document of `text`, each with `path` (the name errors give).
pub fn read_str(path: &Path, text: &str) -> Result<Vec<(PathBuf, serde_json::Value)>, ManifestError> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v = serde_json::Value::deserialize(doc).map_err(|e| ManifestError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        if v.is_object() {
            docs.push((path.to_path_buf(), v));
        }
    }
    Ok(docs)
}

/// What [`apply_docs`] does with an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyMode {
    /// Server-side apply, forcing conflicts: the files win (`kubectl apply --server-side
    /// --force-conflicts`).
    Apply,
    /// Create the objects that do not exist and leave the others as they are: edits made since
    /// (e.g. with kubectl) survive a restart.
    CreateMissing,
}

/// Reads and server-side applies every manifest (force, field manager [`FIELD_MANAGER`]).
pub async fn apply(client: kube::Client, paths: &[PathBuf]) -> Result<(), ManifestError> {
    apply_docs(client, read(paths)?, ApplyMode::Apply).await
}

/// Applies documents as [`read`] returns them (CRDs first), each as `mode` says.
pub async fn apply_docs(
    client: kube::Client,
    docs: Vec<(PathBuf, serde_json::Value)>,
    mode: ApplyMode,
) -> Result<(), ManifestError> {
    let mut discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(ManifestError::Discovery)?;
    for (path, doc) in docs {
        let invalid = |message: String| ManifestError::Invalid {
            path: path.display().to_string(),
            message,
        };
        let obj: DynamicObject = serde_json::from_value(doc).map_err(|e| invalid(e.to_string()))?;
        let types = obj
            .types
            .clone()
            .ok_or_else(|| invalid("a document without apiVersion/kind".into()))?;
        let gvk = GroupVersionKind::try_from(&types).map_err(|e| invalid(e.to_string()))?;
        let name = obj
            .metadata
            .name
            .clone()
            .ok_or_else(|| invalid("a document without metadata.name".into()))?;
        let found = match discovery.resolve_gvk(&gvk) {
            Some(found) => Some(found),
            None => {
                // A CRD applied just before: refresh discovery once.
                discovery = Discovery::new(client.clone())
                    .run()
                    .await
                    .map_err(ManifestError::Discovery)?;
                discovery.resolve_gvk(&gvk)
            }
        };
        let (ar, caps) =
            found.ok_or_else(|| invalid(format!("unknown kind {}/{}", types.api_version, types.kind)))?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                obj.metadata.namespace.as_deref().unwrap_or("default"),
                &ar,
            ),
            Scope::Cluster => Api::all_with(client.clone(), &ar),
        };
        let api_err = |source| ManifestError::Api {
            kind: gvk.kind.clone(),
            name: name.clone(),
            source,
        };
        match mode {
            ApplyMode::Apply => {
                api.patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&obj),
                )
                .await
                .map_err(api_err)?;
                tracing::info!(kind = %gvk.kind, %name, "applied");
            }
            ApplyMode::CreateMissing => {
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PostParams::default()
                };
                match api.create(&params, &obj).await {
                    Ok(_) => tracing::info!(kind = %gvk.kind, %name, "created"),
                    Err(kube::Error::Api(s)) if s.is_already_exists() => {
                        tracing::debug!(kind = %gvk.kind, %name, "exists; left as it is");
                    }
                    Err(e) => return Err(api_err(e)),
                }
            }
        }
    }
    Ok(())
}
