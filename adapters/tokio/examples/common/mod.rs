//! Shared command-line plumbing of the examples (../shared/design/CLI.md):
//! one-line errors with exit 2, `listening on` lines, signals.
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;

/// Parses arguments with clap; errors become one line on stderr and exit 2
/// (help and version print normally and exit 0).
pub(crate) fn parse<T: clap::Parser>() -> T {
    match T::try_parse() {
        Ok(args) => args,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                std::process::exit(0);
            }
            let text = e.to_string();
            let line = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments");
            eprintln!("{}", line.trim());
            std::process::exit(2);
        }
    }
}

/// Exits with a one-line error and status 2.
pub(crate) fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2);
}

/// Parses `HOST:PORT` (IPv4 `127.0.0.1:9080`, IPv6 `[::1]:9080`).
pub(crate) fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("invalid --listen address {s:?} (expected HOST:PORT)"))
}

/// Prints `listening on HOST:PORT`, flushed, to stdout.
pub(crate) fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}

/// Resolves when SIGINT or SIGTERM arrives.
pub(crate) async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Logs to stderr (RUST_LOG, default warn).
pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Loads `--tls-cert/--tls-key` when both are given.
pub(crate) fn server_tls(
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> Option<wsmp_tokio::TlsServerOptions> {
    match (cert, key) {
        (Some(c), Some(k)) => {
            Some(wsmp_tokio::TlsServerOptions::from_pem_files(c, k).unwrap_or_else(|e| fail(e)))
        }
        (None, None) => None,
        _ => fail("--tls-cert and --tls-key go together"),
    }
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
