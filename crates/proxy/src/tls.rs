//! TLS for the listeners: a certificate store that resolves by SNI and takes certificates at
//! runtime, and the rustls server configuration (TLS 1.2+, ALPN h2 and http/1.1).

use std::{collections::HashMap, fmt, path::Path, sync::Arc};

use arc_swap::ArcSwap;
use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no certificate in the PEM chain")]
    NoCertificate,
    #[error("PEM: {0}")]
    Pem(#[from] rustls::pki_types::pem::Error),
    #[error("unusable private key: {0}")]
    Key(#[from] rustls::Error),
    #[error("generating a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Server certificates by host name, plus a default. Resolution of an SNI name: an exact host,
/// then a wildcard `*.{parent}`, then the default; no SNI gets the default. Reads are lock-free
/// (one `ArcSwap`); writes copy the map, which is fine at the rate Secrets change.
pub struct CertStore {
    provider: Arc<CryptoProvider>,
    inner: ArcSwap<Certs>,
}

#[derive(Default)]
struct Certs {
    by_host: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let certs = self.inner.load();
        f.debug_struct("CertStore")
            .field("hosts", &certs.by_host.keys().collect::<Vec<_>>())
            .field("default", &certs.default.is_some())
            .finish()
    }
}

// === impl CertStore ===

impl CertStore {
    /// An empty store (handshakes fail until a certificate is set).
    pub fn new() -> Self {
        CertStore {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            inner: ArcSwap::from_pointee(Certs::default()),
        }
    }

    /// Parses a PEM chain and key into a servable certificate.
    pub fn parse(&self, chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, CertError> {
        let chain = CertificateDer::pem_slice_iter(chain_pem).collect::<Result<Vec<_>, _>>()?;
        if chain.is_empty() {
            return Err(CertError::NoCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)?;
        let key = self.provider.key_provider.load_private_key(key)?;
        Ok(Arc::new(CertifiedKey::new(chain, key)))
    }

    /// Serves `chain_pem`/`key_pem` for `hosts` (exact names or `*.suffix` wildcards, case
    /// insensitive), replacing what those hosts had. The controller calls this with the PEM of
    /// a Kubernetes TLS Secret.
    pub fn set<S: AsRef<str>>(&self, hosts: &[S], chain_pem: &[u8], key_pem: &[u8]) -> Result<(), CertError> {
        let cert = self.parse(chain_pem, key_pem)?;
        self.update(|c| {
            for h in hosts {
                c.by_host.insert(h.as_ref().to_ascii_lowercase(), cert.clone());
            }
        });
        Ok(())
    }

    /// Stops serving a certificate for `hosts`.
    pub fn remove<S: AsRef<str>>(&self, hosts: &[S]) {
        self.update(|c| {
            for h in hosts {
                c.by_host.remove(&h.as_ref().to_ascii_lowercase());
            }
        });
    }

    /// The certificate for clients without SNI or with an unknown name.
    pub fn set_default(&self, chain_pem: &[u8], key_pem: &[u8]) -> Result<(), CertError> {
        let cert = self.parse(chain_pem, key_pem)?;
        self.update(|c| c.default = Some(cert.clone()));
        Ok(())
    }

    /// Loads the default certificate from PEM files.
    pub fn load_default_files(&self, chain: &Path, key: &Path) -> Result<(), CertError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| CertError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        self.set_default(&read(chain)?, &read(key)?)
    }

    /// Generates a self-signed default certificate for `names` (used when none is
    /// configured). Returns the certificate PEM so tests can trust it.
    pub fn generate_default(&self, names: Vec<String>) -> Result<String, CertError> {
        let generated = rcgen::generate_simple_self_signed(names)?;
        let pem = generated.cert.pem();
        self.set_default(pem.as_bytes(), generated.signing_key.serialize_pem().as_bytes())?;
        Ok(pem)
    }

    /// Whether a default certificate is set.
    pub fn has_default(&self) -> bool {
        self.inner.load().default.is_some()
    }

    fn update(&self, f: impl Fn(&mut Certs)) {
        self.inner.rcu(|cur| {
            let mut next = Certs {
                by_host: cur.by_host.clone(),
                default: cur.default.clone(),
            };
            f(&mut next);
            next
        });
    }

    fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let certs = self.inner.load();
        if let Some(name) = sni {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if let Some(c) = certs.by_host.get(&name) {
                return Some(c.clone());
            }
            if let Some((_, parent)) = name.split_once('.')
                && let Some(c) = certs.by_host.get(&format!("*.{parent}"))
            {
                return Some(c.clone());
            }
        }
        certs.default.clone()
    }
}

impl Default for CertStore {
    fn default() -> Self {
        Self::new()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.lookup(hello.server_name())
    }
}

/// The server configuration of the TLS listeners: TLS 1.2 and 1.3, ALPN h2 then http/1.1,
/// certificates from `certs`.
pub fn server_config(certs: Arc<CertStore>) -> Result<ServerConfig, rustls::Error> {
    let provider = certs.provider.clone();
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_exact_then_wildcard_then_default() {
        let store = CertStore::new();
        assert!(store.lookup(Some("a.example.com")).is_none());
        store.generate_default(vec!["localhost".into()]).expect("default");
        let default = store.lookup(None).expect("default");
        let g = rcgen::generate_simple_self_signed(vec!["*.example.com".into()]).expect("gen");
        store
            .set(
                &["*.example.com"],
                g.cert.pem().as_bytes(),
                g.signing_key.serialize_pem().as_bytes(),
            )
            .expect("set");
        let wild = store.lookup(Some("A.Example.com")).expect("wildcard");
        assert!(!Arc::ptr_eq(&wild, &default));
        assert!(Arc::ptr_eq(
            &store.lookup(Some("other.org")).expect("d"),
            &default
        ));
        store.remove(&["*.example.com"]);
        assert!(Arc::ptr_eq(
            &store.lookup(Some("a.example.com")).expect("d"),
            &default
        ));
        assert!(store.set(&["x"], b"garbage", b"garbage").is_err());
    }
}
