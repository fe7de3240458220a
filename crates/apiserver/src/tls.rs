//! The local certificate authority and the serving certificate, generated with rcgen on first
//! start and kept in the data directory so restarts (and kubeconfigs) keep working.

use std::{fs, net::IpAddr, path::Path, sync::Arc};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject},
};

/// Failure creating or loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// rcgen failed.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused the material.
    #[error("tls config: {0}")]
    Rustls(#[from] rustls::Error),
    /// A PEM file did not parse.
    #[error("pem: {0}")]
    Pem(#[from] rustls::pki_types::pem::Error),
}

/// The CA (PEM, for kubeconfigs) and the rustls server config.
pub struct Tls {
    /// The CA certificate in PEM, written into the kubeconfig.
    pub ca_pem: String,
    /// The server configuration.
    pub config: Arc<ServerConfig>,
}

fn read(path: &Path) -> Result<Option<String>, TlsError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Writes a file readable by the owner only (keys and tokens).
pub fn write_private(path: &Path, content: &str) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.display().to_string(),
        source,
    };
    fs::write(path, content).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "turnpike-local-ca");
    dn.push(DnType::OrganizationName, "turnpike");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    params
}

/// Loads or creates the CA and a serving certificate for `localhost`, loopback and `bind_ip`.
pub fn load_or_create(dir: &Path, bind_ip: IpAddr) -> Result<Tls, TlsError> {
    let ca_key_path = dir.join("ca.key");
    let ca_crt_path = dir.join("ca.crt");
    let (ca_key, ca_pem) = match (read(&ca_key_path)?, read(&ca_crt_path)?) {
        (Some(k), Some(c)) => (KeyPair::from_pem(&k)?, c),
        _ => {
            let key = KeyPair::generate()?;
            let cert = ca_params().self_signed(&key)?;
            write_private(&ca_key_path, &key.serialize_pem())?;
            write_private(&ca_crt_path, &cert.pem())?;
            (key, cert.pem())
        }
    };
    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if !bind_ip.is_unspecified() && !sans.contains(&bind_ip.to_string()) {
        sans.push(bind_ip.to_string());
    }
    let sans_line = sans.join(",");
    let key_path = dir.join("server.key");
    let crt_path = dir.join("server.crt");
    let sans_path = dir.join("server.sans");
    let (key_pem, crt_pem) = match (read(&key_path)?, read(&crt_path)?, read(&sans_path)?) {
        (Some(k), Some(c), Some(s)) if s.trim() == sans_line => (k, c),
        _ => {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, "turnpike-apiserver");
            params.distinguished_name = dn;
            params.subject_alt_names = sans
                .iter()
                .map(|s| match s.parse::<IpAddr>() {
                    Ok(ip) => Ok(SanType::IpAddress(ip)),
                    Err(_) => s.clone().try_into().map(SanType::DnsName),
                })
                .collect::<Result<_, _>>()?;
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.use_authority_key_identifier_extension = true;
            params.not_before = rcgen::date_time_ymd(2025, 1, 1);
            params.not_after = rcgen::date_time_ymd(2035, 1, 1);
            let issuer = Issuer::new(ca_params(), &ca_key);
            let cert = params.signed_by(&key, &issuer)?;
            write_private(&key_path, &key.serialize_pem())?;
            write_private(&crt_path, &cert.pem())?;
            write_private(&sans_path, &sans_line)?;
            (key.serialize_pem(), cert.pem())
        }
    };
    let chain = vec![CertificateDer::from_pem_slice(crt_pem.as_bytes())?];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes())?);
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        ca_pem,
        config: Arc::new(config),
    })
}
