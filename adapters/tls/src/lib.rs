//! # wsmp-tls
//!
//! The rustls configuration shared by the wsmp adapters (`wsmp-tokio`, `wsmp-std`), with the
//! semantics of the engine's `TLSOptions` (spec/websocket-peer.md §4):
//!
//! | engine | here | effect |
//! | --- | --- | --- |
//! | `TLSOptions.client()` | [`TlsClientOptions::client`] | verify against the default roots (webpki-roots), host name = URL host, sent as SNI |
//! | `TLSOptions.client(chain)` | [`TlsClientOptions::with_trusted_ca_pem`] | verify against only these CAs |
//! | `TLSOptions.client(_, name)` | [`TlsClientOptions::with_common_name_override`] | this name is checked and sent as SNI |
//! | `TLSOptions.client_unsafe()` | [`TlsClientOptions::dangerous_unverified`] | no verification at all, no SNI |
//! | `TLSOptions.client_unsafe(chain)` | `dangerous_unverified().with_trusted_ca_pem(..)` | chain verified, host name not checked, no SNI |
//! | `TLSOptions.server(key, cert)` | [`TlsServerOptions::from_pem`] | presents the chain with the key; no client certificates |
//!
//! The crypto backend is rustls' `ring` provider: it builds with a plain C compiler (no cmake,
//! no Go, no NASM as aws-lc-rs needs), which keeps every machine and CI able to build it, and
//! it is the backend tokio-rustls users already get with `default-features = false, ring`.
//!
//! ```
//! use wsmp_tls::TlsClientOptions;
//! let (config, name) = TlsClientOptions::client().build("example.com").unwrap();
//! assert!(config.enable_sni);
//! assert_eq!(name.to_str(), "example.com");
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

#[cfg(feature = "testing")]
pub mod testing;

pub use rustls;

/// Why a TLS configuration could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// The PEM data held no `CERTIFICATE` block.
    NoCertificate,
    /// The PEM data held no private key block.
    NoPrivateKey,
    /// The PEM data could not be parsed.
    InvalidPem(String),
    /// A CA certificate was rejected as a trust anchor.
    InvalidCa(String),
    /// The private key (or the certificate/key pair) was rejected.
    BadKey(String),
    /// The host name (URL host or common-name override) is neither a DNS name nor an IP address.
    InvalidServerName(String),
    /// A file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// Any other rustls error while building a configuration.
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::NoCertificate => f.write_str("no certificate found in PEM data"),
            TlsError::NoPrivateKey => f.write_str("no private key found in PEM data"),
            TlsError::InvalidPem(e) => write!(f, "invalid PEM data: {e}"),
            TlsError::InvalidCa(e) => write!(f, "invalid CA certificate: {e}"),
            TlsError::BadKey(e) => write!(f, "bad private key: {e}"),
            TlsError::InvalidServerName(n) => write!(f, "invalid TLS server name {n:?}"),
            TlsError::Io { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            TlsError::Rustls(e) => write!(f, "TLS configuration error: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Io { error, .. } => Some(error),
            TlsError::Rustls(e) => Some(e),
            _ => None,
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn pem_error(e: rustls::pki_types::pem::Error) -> TlsError {
    match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoCertificate,
        other => TlsError::InvalidPem(format!("{other:?}")),
    }
}

/// Parses every `CERTIFICATE` block of `pem`; at least one is required.
pub fn parse_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

/// Parses the first private key (PKCS#8, PKCS#1 or SEC1) of `pem`.
pub fn parse_private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey,
        other => TlsError::InvalidPem(format!("{other:?}")),
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Io {
        path: path.to_path_buf(),
        error,
    })
}

/// Parses a URL host (or override) as a server name; IPv6 literals may keep their brackets.
fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(bare.to_string()).map_err(|_| TlsError::InvalidServerName(host.into()))
}

/// Client-side TLS options (engine `TLSOptions.client` / `client_unsafe`, spec §4).
#[derive(Clone, Debug)]
pub struct TlsClientOptions {
    /// Trusted CAs; `None` = the default roots (webpki-roots).
    trusted: Option<Arc<RootCertStore>>,
    common_name_override: Option<String>,
    unsafe_mode: bool,
    config: OnceLock<Arc<rustls::ClientConfig>>,
}

impl Default for TlsClientOptions {
    fn default() -> Self {
        TlsClientOptions::client()
    }
}

impl TlsClientOptions {
    /// Verify the server against the default roots (webpki-roots); the name checked and sent as
    /// SNI is the URL host (spec §4 `TLSOptions.client()`, the default for `wss://`).
    pub fn client() -> Self {
        TlsClientOptions {
            trusted: None,
            common_name_override: None,
            unsafe_mode: false,
            config: OnceLock::new(),
        }
    }

    /// Trust only the CA certificates in `pem` (one or more `CERTIFICATE` blocks).
    ///
    /// In unsafe mode the chain is still verified against them, but the host name is not
    /// checked (spec §4 `TLSOptions.client_unsafe(chain)`).
    pub fn with_trusted_ca_pem(mut self, pem: &[u8]) -> Result<Self, TlsError> {
        let mut store = RootCertStore::empty();
        for cert in parse_certificates(pem)? {
            store
                .add(cert)
                .map_err(|e| TlsError::InvalidCa(e.to_string()))?;
        }
        self.trusted = Some(Arc::new(store));
        self.config = OnceLock::new();
        Ok(self)
    }

    /// [`with_trusted_ca_pem`](Self::with_trusted_ca_pem) reading a file.
    pub fn with_trusted_ca_file(self, path: &Path) -> Result<Self, TlsError> {
        let pem = read_file(path)?;
        self.with_trusted_ca_pem(&pem)
    }

    /// Check this name instead of the URL host, and send it as SNI (spec §4: one mbedTLS call
    /// sets both). An empty name means "no override", as in the engine.
    pub fn with_common_name_override(mut self, name: &str) -> Self {
        self.common_name_override = if name.is_empty() {
            None
        } else {
            Some(name.to_string())
        };
        self
    }

    /// `TLSOptions.client_unsafe()`: **no certificate verification at all** and no SNI
    /// (spec §4). Anyone on the path can impersonate the server; for tests and development only.
    pub fn dangerous_unverified() -> Self {
        TlsClientOptions {
            trusted: None,
            common_name_override: None,
            unsafe_mode: true,
            config: OnceLock::new(),
        }
    }

    /// True for options made by [`dangerous_unverified`](Self::dangerous_unverified).
    pub fn is_unsafe(&self) -> bool {
        self.unsafe_mode
    }

    /// The rustls configuration and the server name for a connection to `url_host`
    /// (the URL's host; IPv6 literals with or without brackets).
    pub fn build(
        &self,
        url_host: &str,
    ) -> Result<(Arc<rustls::ClientConfig>, ServerName<'static>), TlsError> {
        let name = if self.unsafe_mode {
            // spec/websocket-peer.md §4: unsafe mode sets no host name; rustls still wants one
            // for its session cache, SNI is disabled in the config.
            server_name(url_host).unwrap_or_else(|_| {
                ServerName::from(std::net::IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED))
            })
        } else {
            server_name(self.common_name_override.as_deref().unwrap_or(url_host))?
        };
        if let Some(config) = self.config.get() {
            return Ok((config.clone(), name));
        }
        let config = Arc::new(self.make_config()?);
        Ok((self.config.get_or_init(|| config).clone(), name))
    }

    fn make_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Rustls)?;
        let roots = match &self.trusted {
            Some(store) => store.clone(),
            None => Arc::new(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }),
        };
        let mut config = if self.unsafe_mode {
            let inner = match &self.trusted {
                Some(_) => Some(
                    WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                        .build()
                        .map_err(|e| TlsError::InvalidCa(e.to_string()))?,
                ),
                None => None,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(UnsafeVerifier { inner, provider }))
                .with_no_client_auth()
        } else {
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        // spec/websocket-peer.md §4: no host name (hence no SNI) in unsafe mode.
        config.enable_sni = !self.unsafe_mode;
        Ok(config)
    }
}

/// Verifier of `client_unsafe`: with a chain, verify it but ignore the host name; without,
/// accept anything (handshake signatures are still checked so the session keys are sound).
#[derive(Debug)]
struct UnsafeVerifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for UnsafeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(inner) = &self.inner else {
            return Ok(ServerCertVerified::assertion());
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Server-side TLS options (engine `TLSOptions.server(key, certificate)`, spec §4).
#[derive(Clone, Debug)]
pub struct TlsServerOptions {
    config: Arc<rustls::ServerConfig>,
}

impl TlsServerOptions {
    /// A certificate chain (leaf first) and its private key, both PEM. Client certificates are
    /// not requested (spec §4).
    pub fn from_pem(cert_chain_pem: &[u8], private_key_pem: &[u8]) -> Result<Self, TlsError> {
        let chain = parse_certificates(cert_chain_pem)?;
        let key = parse_private_key(private_key_pem)?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Rustls)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::BadKey(e.to_string()))?;
        Ok(TlsServerOptions {
            config: Arc::new(config),
        })
    }

    /// [`from_pem`](Self::from_pem) reading two files (they may be the same file).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let cert_pem = read_file(cert)?;
        let key_pem = read_file(key)?;
        TlsServerOptions::from_pem(&cert_pem, &key_pem)
    }

    /// The rustls server configuration.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }

    /// Server options whose certificate and key can be replaced while the
    /// server runs: each new TLS handshake gets the pair current at that
    /// moment; established sessions keep theirs. The returned
    /// [`CertReloader`] re-reads the two files.
    pub fn reloadable_from_pem_files(
        cert: &Path,
        key: &Path,
    ) -> Result<(Self, CertReloader), TlsError> {
        let (cert_pem, key_pem) = (read_file(cert)?, read_file(key)?);
        let current = certified_key_from_pem(&cert_pem, &key_pem)?;
        let resolver = Arc::new(ReloadableCert {
            current: RwLock::new(Arc::new(current)),
        });
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Rustls)?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        Ok((
            TlsServerOptions {
                config: Arc::new(config),
            },
            CertReloader {
                resolver,
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                last_seen: Arc::new(std::sync::Mutex::new((cert_pem, key_pem))),
            },
        ))
    }
}

/// A certificate chain and key from PEM bytes, checked to belong together.
pub fn certified_key_from_pem(
    cert_chain_pem: &[u8],
    private_key_pem: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let chain = parse_certificates(cert_chain_pem)?;
    let key = parse_private_key(private_key_pem)?;
    // rustls: parses the key with the provider and compares its public key
    // with the leaf's SubjectPublicKeyInfo (InconsistentKeys on mismatch).
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::BadKey(e.to_string()))
}

/// The server certificate of a reloadable configuration: a rustls
/// [`ResolvesServerCert`] answering every handshake with the current pair.
#[derive(Debug)]
struct ReloadableCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// Replaces the certificate of options made by
/// [`TlsServerOptions::reloadable_from_pem_files`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CertReloader {
    resolver: Arc<ReloadableCert>,
    cert: PathBuf,
    key: PathBuf,
    /// The file contents of the last attempt (successful or not).
    last_seen: Arc<std::sync::Mutex<(Vec<u8>, Vec<u8>)>>,
}

impl CertReloader {
    /// Re-reads the certificate and key files. A valid pair replaces the
    /// current one for new handshakes; anything else (unreadable file, bad
    /// PEM, key not matching the certificate) is returned as an error and
    /// the current pair stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.reload_inner(true).map(|_| ())
    }

    /// As [`reload`](Self::reload), but only when the files' contents
    /// differ from the last attempt: `Ok(false)` when unchanged (for
    /// periodic checks, which then neither swap nor report the same bad
    /// pair again).
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        self.reload_inner(false)
    }

    fn reload_inner(&self, always: bool) -> Result<bool, TlsError> {
        let (cert_pem, key_pem) = (read_file(&self.cert)?, read_file(&self.key)?);
        {
            let mut last = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
            if !always && last.0 == cert_pem && last.1 == key_pem {
                return Ok(false);
            }
            *last = (cert_pem.clone(), key_pem.clone());
        }
        let new = certified_key_from_pem(&cert_pem, &key_pem)?;
        self.replace(new);
        Ok(true)
    }

    /// Installs `pair` for new handshakes.
    pub fn replace(&self, pair: CertifiedKey) {
        *self
            .resolver
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(pair);
    }

    /// The end-entity certificate served to new handshakes (DER).
    pub fn current_leaf(&self) -> Option<CertificateDer<'static>> {
        let current = self
            .resolver
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        current.cert.first().cloned()
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// The key file.
    pub fn key_path(&self) -> &Path {
        &self.key
    }
}

#[cfg(test)]
mod tests;
