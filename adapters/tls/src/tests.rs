#![allow(clippy::unwrap_used)]

use super::*;
use rcgen::{CertificateParams, KeyPair};

fn self_signed() -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn default_client_builds_with_sni() {
    let (config, name) = TlsClientOptions::client().build("example.com").unwrap();
    assert!(config.enable_sni);
    assert_eq!(name.to_str(), "example.com");
}

#[test]
fn ipv6_host_with_brackets() {
    let (_, name) = TlsClientOptions::client().build("[::1]").unwrap();
    assert!(matches!(name, ServerName::IpAddress(_)));
    let (_, name) = TlsClientOptions::client().build("127.0.0.1").unwrap();
    assert!(matches!(name, ServerName::IpAddress(_)));
}

#[test]
fn override_replaces_host() {
    let opts = TlsClientOptions::client().with_common_name_override("game.example");
    let (_, name) = opts.build("127.0.0.1").unwrap();
    assert_eq!(name.to_str(), "game.example");
    // spec §4: empty override = no override.
    let opts = TlsClientOptions::client().with_common_name_override("");
    let (_, name) = opts.build("host.example").unwrap();
    assert_eq!(name.to_str(), "host.example");
}

#[test]
fn invalid_host_name() {
    let err = TlsClientOptions::client().build("bad name!").unwrap_err();
    assert!(matches!(err, TlsError::InvalidServerName(_)), "{err}");
    assert!(err.to_string().contains("bad name!"));
}

#[test]
fn unsafe_mode_has_no_sni_and_accepts_any_host() {
    let opts = TlsClientOptions::dangerous_unverified();
    assert!(opts.is_unsafe());
    let (config, _) = opts.build("bad name!").unwrap();
    assert!(!config.enable_sni);
}

#[test]
fn trusted_ca_ok_and_config_cached() {
    let (cert, _) = self_signed();
    let opts = TlsClientOptions::client()
        .with_trusted_ca_pem(cert.as_bytes())
        .unwrap();
    let (a, _) = opts.build("localhost").unwrap();
    let (b, _) = opts.build("other").unwrap();
    assert!(Arc::ptr_eq(&a, &b));
}

#[test]
fn trusted_ca_without_certificate() {
    let err = TlsClientOptions::client()
        .with_trusted_ca_pem(b"hello, not pem")
        .unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate), "{err:?}");
    assert_eq!(err.to_string(), "no certificate found in PEM data");
    // A key is not a certificate.
    let (_, key) = self_signed();
    let err = TlsClientOptions::client()
        .with_trusted_ca_pem(key.as_bytes())
        .unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate), "{err:?}");
}

#[test]
fn trusted_ca_garbage_der() {
    let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let err = TlsClientOptions::client()
        .with_trusted_ca_pem(pem.as_bytes())
        .unwrap_err();
    assert!(matches!(err, TlsError::InvalidCa(_)), "{err:?}");
    assert!(err.to_string().starts_with("invalid CA certificate"));
}

#[test]
fn broken_base64_is_invalid_pem() {
    let pem = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    let err = parse_certificates(pem.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsError::InvalidPem(_)), "{err:?}");
}

#[test]
fn server_from_pem_ok() {
    let (cert, key) = self_signed();
    let opts = TlsServerOptions::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let _config = opts.config();
}

#[test]
fn server_errors() {
    let (cert, key) = self_signed();
    let err = TlsServerOptions::from_pem(b"", key.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate), "{err:?}");
    let err = TlsServerOptions::from_pem(cert.as_bytes(), cert.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsError::NoPrivateKey), "{err:?}");
    assert_eq!(err.to_string(), "no private key found in PEM data");
    // Key of another certificate.
    let (_, other_key) = self_signed();
    let err = TlsServerOptions::from_pem(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsError::BadKey(_)), "{err:?}");
    // Garbage key bytes.
    let bad = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    let err = TlsServerOptions::from_pem(cert.as_bytes(), bad.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsError::BadKey(_)), "{err:?}");
}

#[test]
fn missing_file() {
    let err = TlsServerOptions::from_pem_files(
        Path::new("/nonexistent/cert.pem"),
        Path::new("/nonexistent/key.pem"),
    )
    .unwrap_err();
    assert!(err
        .to_string()
        .starts_with("cannot read /nonexistent/cert.pem"));
}

#[cfg(feature = "testing")]
#[test]
fn generated_certs_load() {
    let c = testing::TestCerts::generate();
    TlsServerOptions::from_pem(c.server_chain_pem.as_bytes(), c.server_key_pem.as_bytes()).unwrap();
    TlsServerOptions::from_pem(c.expired_chain_pem.as_bytes(), c.expired_key_pem.as_bytes())
        .unwrap();
    TlsServerOptions::from_pem(
        c.other_host_chain_pem.as_bytes(),
        c.other_host_key_pem.as_bytes(),
    )
    .unwrap();
    TlsClientOptions::client()
        .with_trusted_ca_pem(c.ca_pem.as_bytes())
        .unwrap();
}

/// Full handshakes in memory: trusted CA ok, wrong host fails, expired fails, unsafe ok,
/// unsafe + CA ignores the host name but not the chain.
#[cfg(feature = "testing")]
#[test]
fn in_memory_handshakes() {
    fn handshake(
        client: &TlsClientOptions,
        host: &str,
        chain: &str,
        key: &str,
    ) -> Result<(), String> {
        let server = TlsServerOptions::from_pem(chain.as_bytes(), key.as_bytes()).unwrap();
        let (cc, name) = client.build(host).map_err(|e| e.to_string())?;
        let mut c = rustls::ClientConnection::new(cc, name).unwrap();
        let mut s = rustls::ServerConnection::new(server.config()).unwrap();
        for _ in 0..20 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).unwrap();
            }
            s.process_new_packets()
                .map_err(|e| format!("server: {e}"))?;
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).unwrap();
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
            }
            c.process_new_packets()
                .map_err(|e| format!("client: {e}"))?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
        }
        Err("no progress".into())
    }
    let certs = testing::TestCerts::generate();
    let trusted = TlsClientOptions::client()
        .with_trusted_ca_pem(certs.ca_pem.as_bytes())
        .unwrap();
    let (ok_chain, ok_key) = (&certs.server_chain_pem, &certs.server_key_pem);
    handshake(&trusted, "localhost", ok_chain, ok_key).unwrap();
    handshake(&trusted, "127.0.0.1", ok_chain, ok_key).unwrap();
    handshake(&trusted, "[::1]", ok_chain, ok_key).unwrap();
    let e = handshake(
        &trusted,
        "localhost",
        &certs.other_host_chain_pem,
        &certs.other_host_key_pem,
    )
    .unwrap_err();
    assert!(
        e.contains("not valid for name") || e.contains("NotValidForName"),
        "{e}"
    );
    handshake(
        &trusted.clone().with_common_name_override("other.example"),
        "127.0.0.1",
        &certs.other_host_chain_pem,
        &certs.other_host_key_pem,
    )
    .unwrap();
    let e = handshake(
        &trusted,
        "localhost",
        &certs.expired_chain_pem,
        &certs.expired_key_pem,
    )
    .unwrap_err();
    assert!(e.contains("expired") || e.contains("Expired"), "{e}");
    // Default roots do not know the test CA.
    assert!(handshake(&TlsClientOptions::client(), "localhost", ok_chain, ok_key).is_err());
    // Unsafe: anything goes.
    let unsafe_opts = TlsClientOptions::dangerous_unverified();
    handshake(
        &unsafe_opts,
        "localhost",
        &certs.expired_chain_pem,
        &certs.expired_key_pem,
    )
    .unwrap();
    handshake(
        &unsafe_opts,
        "localhost",
        &certs.other_host_chain_pem,
        &certs.other_host_key_pem,
    )
    .unwrap();
    // Unsafe with a chain: host name ignored, chain still verified.
    let unsafe_ca = TlsClientOptions::dangerous_unverified()
        .with_trusted_ca_pem(certs.ca_pem.as_bytes())
        .unwrap();
    handshake(
        &unsafe_ca,
        "localhost",
        &certs.other_host_chain_pem,
        &certs.other_host_key_pem,
    )
    .unwrap();
    let other_ca = testing::TestCerts::generate();
    let unsafe_other = TlsClientOptions::dangerous_unverified()
        .with_trusted_ca_pem(other_ca.ca_pem.as_bytes())
        .unwrap();
    assert!(handshake(&unsafe_other, "localhost", ok_chain, ok_key).is_err());
}

/// Certificate reload over real sockets: a new pair is served to new clients
/// while an established session goes on; a bad pair is refused and the
/// current one stays.
#[cfg(feature = "testing")]
#[test]
fn reload_over_real_sockets() {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    let dir = std::env::temp_dir().join(format!("wsmp-tls-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let first = testing::TestCerts::generate();
    let second = testing::TestCerts::generate();
    std::fs::write(&cert, &first.server_chain_pem).unwrap();
    std::fs::write(&key, &first.server_key_pem).unwrap();
    let (server, reloader) = TlsServerOptions::reloadable_from_pem_files(&cert, &key).unwrap();

    // A line echo server: one thread per connection, bounded by the test's lifetime.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = server.config();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(stream) = stream else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = BufReader::new(rustls::StreamOwned::new(conn, stream));
                let mut line = String::new();
                while tls.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if tls.get_mut().write_all(line.as_bytes()).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });

    type Client = BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>;
    let connect = |ca: &str| -> Result<Client, String> {
        let opts = TlsClientOptions::client()
            .with_trusted_ca_pem(ca.as_bytes())
            .unwrap();
        let (cc, name) = opts.build("localhost").unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut c = BufReader::new(rustls::StreamOwned::new(
            rustls::ClientConnection::new(cc, name).unwrap(),
            tcp,
        ));
        echo(&mut c, "hello")?;
        Ok(c)
    };
    fn echo(c: &mut Client, msg: &str) -> Result<(), String> {
        c.get_mut()
            .write_all(format!("{msg}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        c.read_line(&mut line).map_err(|e| e.to_string())?;
        if line == format!("{msg}\n") {
            Ok(())
        } else {
            Err(format!("echo {line:?}"))
        }
    }

    let mut old = connect(&first.ca_pem).expect("first pair served");
    assert!(
        connect(&second.ca_pem).is_err(),
        "second pair not yet served"
    );

    std::fs::write(&cert, &second.server_chain_pem).unwrap();
    std::fs::write(&key, &second.server_key_pem).unwrap();
    reloader.reload().expect("valid pair reloads");
    let mut new = connect(&second.ca_pem).expect("new clients see the new pair");
    assert!(connect(&first.ca_pem).is_err(), "old pair no longer served");
    echo(&mut old, "still here").expect("the old session goes on");

    // A bad pair: the certificate of one and the key of another.
    let third = testing::TestCerts::generate();
    std::fs::write(&cert, &third.server_chain_pem).unwrap();
    std::fs::write(&key, &second.server_key_pem).unwrap();
    let e = reloader.reload().expect_err("mismatched pair refused");
    assert!(matches!(e, TlsError::BadKey(_)), "{e}");
    // Garbage and a missing file are refused too.
    std::fs::write(&cert, "not pem").unwrap();
    assert!(reloader.reload().is_err());
    std::fs::remove_file(&key).unwrap();
    assert!(matches!(reloader.reload(), Err(TlsError::Io { .. })));
    connect(&second.ca_pem).expect("the second pair is still served");
    // Periodic checks: unchanged files are not reloaded, a changed bad pair is
    // reported once, a fixed pair is taken.
    std::fs::write(&cert, &second.server_chain_pem).unwrap();
    std::fs::write(&key, &second.server_key_pem).unwrap();
    assert!(
        reloader.reload_if_changed().unwrap(),
        "changed since the failed attempt"
    );
    assert!(!reloader.reload_if_changed().unwrap(), "unchanged");
    std::fs::write(&key, &third.server_key_pem).unwrap();
    assert!(reloader.reload_if_changed().is_err());
    assert!(
        !reloader.reload_if_changed().unwrap(),
        "the same bad pair is not retried"
    );
    std::fs::write(&cert, &third.server_chain_pem).unwrap();
    assert!(reloader.reload_if_changed().unwrap());
    connect(&third.ca_pem).expect("third pair served");
    echo(&mut new, "again").unwrap();
    echo(&mut old, "and again").unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
