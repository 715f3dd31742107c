//! Drivers for Autobahn|Testsuite (see `conformance/README.md`): the
//! `echo-server` and `autobahn-client` binaries, on either adapter.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use wsmp_core::{Config, DeflateConfig};

/// The adapter under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Adapter {
    /// `wsmp-tokio`.
    Tokio,
    /// `wsmp-std` (blocking, a thread per connection).
    Std,
}

/// The configuration under test: 64 MiB messages (Autobahn 9.* sends up
/// to 16 MiB, in up to 65,536 fragments), one unread message at a time
/// so input is processed strictly in order (an error after a valid message
/// is acted on only after that message is echoed), and permessage-deflate
/// with its default parameters (RFC 7692; Autobahn 12.* and 13.* offer it,
/// the other cases never do, so they run uncompressed).
pub fn config() -> Config {
    Config {
        inbound_buffer_size: 64 << 20,
        outbound_buffer_size: 64 << 20,
        max_queued_packets: 1,
        permessage_deflate: Some(DeflateConfig::default()),
        ..Config::default()
    }
}

/// Parses arguments; errors are one line on stderr and exit status 2.
pub fn parse_args<T: clap::Parser>() -> T {
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
pub fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2);
}
