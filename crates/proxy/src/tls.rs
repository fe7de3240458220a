//! TLS for the listeners: a certificate store that resolves by SNI and takes certificates at
//! runtime, and the rustls server configuration (TLS 1.2+, ALPN h2 and http/1.1).

use std::{
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use arc_swap::ArcSwap;
use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio_util::sync::CancellationToken;

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
        // Checks that the key belongs to the leaf certificate, so a pair caught between two
        // writes of a rotation is refused instead of served.
        Ok(Arc::new(CertifiedKey::from_der(chain, key, &self.provider)?))
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
        let (chain, key) = read_pair(chain, key)?;
        self.set_default(&chain, &key)
    }

    /// Keeps the default certificate in step with its PEM files until `stop`: every
    /// `interval` the files are read again and, when their bytes changed, served from the next
    /// handshake on. This is how a mounted Kubernetes TLS Secret rotates (cert-manager renews
    /// it, the kubelet swaps the files) without a restart. A pair that cannot be read or parsed
    /// (e.g. caught between the two writes) is logged and the current certificate stays.
    pub async fn watch_default_files(
        self: Arc<Self>,
        chain: PathBuf,
        key: PathBuf,
        interval: Duration,
        stop: CancellationToken,
    ) {
        let mut served = read_pair(&chain, &key).ok();
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let pair = match read_pair(&chain, &key) {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "reading the TLS certificate files; keeping the current certificate");
                    continue;
                }
            };
            if served.as_ref() == Some(&pair) {
                continue;
            }
            match self.set_default(&pair.0, &pair.1) {
                Ok(()) => {
                    tracing::info!(chain = %chain.display(), "TLS certificate reloaded");
                    served = Some(pair);
                }
                Err(error) => {
                    tracing::warn!(%error, "the new TLS certificate files are unusable; keeping the current certificate")
                }
            }
        }
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

/// Reads a PEM chain and key file.
fn read_pair(chain: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), CertError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| CertError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    Ok((read(chain)?, read(key)?))
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

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let store = CertStore::new();
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).expect("gen");
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).expect("gen");
        let key_b = b.signing_key.serialize_pem();
        assert!(matches!(
            store.set_default(a.cert.pem().as_bytes(), key_b.as_bytes()),
            Err(CertError::Key(_))
        ));
        assert!(!store.has_default());
        store
            .set_default(b.cert.pem().as_bytes(), key_b.as_bytes())
            .expect("a matching pair");
    }
}
