//! Test certificates made at run time with rcgen (feature `testing`).
//!
//! ```
//! let certs = wsmp_tls::testing::TestCerts::generate();
//! let server = wsmp_tls::TlsServerOptions::from_pem(
//!     certs.server_chain_pem.as_bytes(),
//!     certs.server_key_pem.as_bytes(),
//! ).unwrap();
//! let client = wsmp_tls::TlsClientOptions::client()
//!     .with_trusted_ca_pem(certs.ca_pem.as_bytes())
//!     .unwrap();
//! # let _ = (server, client);
//! ```

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// A CA and three server certificates signed by it, all PEM.
#[derive(Clone, Debug)]
pub struct TestCerts {
    /// The CA certificate (trust this one).
    pub ca_pem: String,
    /// Leaf for `localhost`, `127.0.0.1` and `::1`, followed by the CA certificate.
    pub server_chain_pem: String,
    /// Private key of that leaf (PKCS#8).
    pub server_key_pem: String,
    /// Leaf for `localhost`/127.0.0.1/::1 that expired in 2020, followed by the CA.
    pub expired_chain_pem: String,
    /// Private key of the expired leaf.
    pub expired_key_pem: String,
    /// Leaf for `other.example` only (wrong host name for 127.0.0.1), followed by the CA.
    pub other_host_chain_pem: String,
    /// Private key of the other-host leaf.
    pub other_host_key_pem: String,
}

/// Errors from rcgen are not expected with these fixed parameters; they panic (test code).
fn leaf(names: &[&str], expired: bool, issuer: &CertifiedIssuer<'_, KeyPair>) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_string()).collect::<Vec<_>>())
            .expect("valid subject alt names");
    params
        .distinguished_name
        .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
    if expired {
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    }
    let key = KeyPair::generate().expect("key generation");
    let cert = params.signed_by(&key, issuer).expect("signing");
    (
        format!("{}{}", cert.pem(), issuer.pem()),
        key.serialize_pem(),
    )
}

impl TestCerts {
    /// Generates a fresh CA and the three leaves (ECDSA P-256).
    ///
    /// # Panics
    /// If rcgen fails, which it does not with these fixed parameters (test helper).
    pub fn generate() -> TestCerts {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("empty SAN list");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "wsmp test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("key generation");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("self-signed CA");
        let local = ["localhost", "127.0.0.1", "::1"];
        let (server_chain_pem, server_key_pem) = leaf(&local, false, &ca);
        let (expired_chain_pem, expired_key_pem) = leaf(&local, true, &ca);
        let (other_host_chain_pem, other_host_key_pem) = leaf(&["other.example"], false, &ca);
        TestCerts {
            ca_pem: ca.pem(),
            server_chain_pem,
            server_key_pem,
            expired_chain_pem,
            expired_key_pem,
            other_host_chain_pem,
            other_host_key_pem,
        }
    }

    /// Writes `ca.pem`, `server.pem`, `server.key`, `expired.pem`, `expired.key`, `other.pem`,
    /// `other.key` into `dir` (for driving example programs from tests).
    pub fn write_to(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (name, body) in [
            ("ca.pem", &self.ca_pem),
            ("server.pem", &self.server_chain_pem),
            ("server.key", &self.server_key_pem),
            ("expired.pem", &self.expired_chain_pem),
            ("expired.key", &self.expired_key_pem),
            ("other.pem", &self.other_host_chain_pem),
            ("other.key", &self.other_host_key_pem),
        ] {
            std::fs::write(dir.join(name), body)?;
        }
        Ok(())
    }
}
