//! The kubeconfig written to the data directory: one cluster (the local CA and the real bound
//! address), one user (the bearer token), one context.

use std::{net::SocketAddr, path::Path};

use base64::Engine as _;
use serde_json::json;

use super::tls::{TlsError, write_private};

/// The name of the cluster, user and context in the kubeconfig.
pub const CONTEXT: &str = "turnpike-local";

/// Renders the kubeconfig YAML.
pub fn render(addr: SocketAddr, ca_pem: &str, token: &str) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": format!("https://{host}:{}", addr.port()), "certificate-authority-data": ca}}],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"}}],
        "current-context": CONTEXT,
        "preferences": {},
    });
    serde_yaml::to_string(&doc).unwrap_or_default()
}

/// Writes the kubeconfig atomically (write then rename), owner-readable only.
pub fn write(path: &Path, content: &str) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    write_private(&tmp, content)?;
    std::fs::rename(&tmp, path).map_err(|source| TlsError::Io {
        path: path.display().to_string(),
        source,
    })
}
