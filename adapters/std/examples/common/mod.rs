//! Argument parsing and signal handling shared by the example programs (CLI.md contract).
#![allow(dead_code)]

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Prints a one-line error and exits with status 2 (bad arguments, CLI.md).
pub(crate) fn usage_error(program: &str, message: &str) -> ! {
    eprintln!("{program}: {message}");
    std::process::exit(2)
}

/// `--name value` / `--name=value` pairs and bare `--flag`s, in order.
pub(crate) struct Args {
    program: &'static str,
    items: Vec<(String, Option<String>)>,
}

impl Args {
    /// Parses the process arguments; `flags` are the options that take no value.
    pub(crate) fn parse(program: &'static str, with_value: &[&str], flags: &[&str]) -> Args {
        let mut items = Vec::new();
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            if arg == "-h" || arg == "--help" {
                let mut all: Vec<String> =
                    with_value.iter().map(|n| format!("--{n} VALUE")).collect();
                all.extend(flags.iter().map(|n| format!("--{n}")));
                println!("usage: {program} {}", all.join(" "));
                std::process::exit(0);
            }
            let Some(name) = arg.strip_prefix("--") else {
                usage_error(program, &format!("unexpected argument {arg:?}"));
            };
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (name.to_string(), None),
            };
            if flags.contains(&name.as_str()) {
                if inline.is_some() {
                    usage_error(program, &format!("--{name} takes no value"));
                }
                items.push((name, None));
            } else if with_value.contains(&name.as_str()) {
                let value = match inline {
                    Some(v) => v,
                    None => it.next().unwrap_or_else(|| {
                        usage_error(program, &format!("--{name} needs a value"))
                    }),
                };
                items.push((name, Some(value)));
            } else {
                usage_error(program, &format!("unknown option --{name}"));
            }
        }
        Args { program, items }
    }

    /// Every value given for `name`.
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.items
            .iter()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, v)| v.clone())
            .collect()
    }

    /// The last value given for `name`.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.all(name).pop()
    }

    /// True when the flag was given.
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.items.iter().any(|(n, _)| n == name)
    }

    /// Fails with exit 2.
    pub(crate) fn fail(&self, message: &str) -> ! {
        usage_error(self.program, message)
    }

    /// Parses a value with `FromStr`, failing with exit 2.
    pub(crate) fn parse_value<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        match self.get(name) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| self.fail(&format!("invalid value {v:?} for --{name}"))),
        }
    }

    /// `--listen HOST:PORT` values (default `127.0.0.1:9080`).
    pub(crate) fn listen_addrs(&self) -> Vec<SocketAddr> {
        let given = self.all("listen");
        if given.is_empty() {
            return vec![SocketAddr::from(([127, 0, 0, 1], 9080))];
        }
        given
            .iter()
            .map(|s| {
                s.parse::<SocketAddr>()
                    .ok()
                    .or_else(|| s.to_socket_addrs().ok().and_then(|mut a| a.next()))
                    .unwrap_or_else(|| self.fail(&format!("invalid --listen address {s:?}")))
            })
            .collect()
    }

    /// `--tls-cert PEM --tls-key PEM` (both or neither).
    pub(crate) fn server_tls(&self) -> Option<wsmp_std::TlsServerOptions> {
        match (self.get("tls-cert"), self.get("tls-key")) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(
                wsmp_std::TlsServerOptions::from_pem_files(cert.as_ref(), key.as_ref())
                    .unwrap_or_else(|e| self.fail(&e.to_string())),
            ),
            _ => self.fail("--tls-cert and --tls-key go together"),
        }
    }
}

/// A flag set by SIGINT or SIGTERM.
pub(crate) fn termination_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, flag.clone()) {
            eprintln!("cannot install a signal handler: {e}");
        }
    }
    flag
}

/// True once a termination signal arrived.
pub(crate) fn terminated(flag: &AtomicBool) -> bool {
    flag.load(Ordering::Relaxed)
}

/// Prints one line to stdout and flushes it.
pub(crate) fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}
