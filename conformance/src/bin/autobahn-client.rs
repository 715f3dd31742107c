//! `autobahn-client --adapter tokio|std --url URL --agent NAME [--ca PEM]`:
//! runs every case of an Autobahn fuzzingserver at URL (`/getCaseCount`,
//! `/runCase?case=i&agent=NAME`, then `/updateReports?agent=NAME`), echoing
//! every message. Exit 0 when the run completed (the verdict is in the
//! report), non-zero when it could not run.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use wsmp_conformance::{config, fail, parse_args, Adapter};

#[derive(Parser)]
#[command(about = "Autobahn fuzzingserver client on a wsmp adapter")]
struct Args {
    /// Adapter under test.
    #[arg(long, value_enum)]
    adapter: Adapter,
    /// Base URL of the fuzzingserver (ws:// or wss://).
    #[arg(long)]
    url: String,
    /// Agent name in the report.
    #[arg(long)]
    agent: String,
    /// Trust this CA (PEM) for wss://.
    #[arg(long)]
    ca: Option<PathBuf>,
}

fn join(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

fn main() {
    let args: Args = parse_args();
    let ca = args
        .ca
        .as_ref()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| fail(format!("{}: {e}", p.display()))));
    let tls = match &ca {
        Some(pem) => wsmp_tokio::TlsClientOptions::client()
            .with_trusted_ca_pem(pem)
            .unwrap_or_else(|e| fail(e)),
        None => wsmp_tokio::TlsClientOptions::client(),
    };
    let result = match args.adapter {
        Adapter::Tokio => {
            let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| fail(e));
            runtime.block_on(run_tokio(&args, tls))
        }
        Adapter::Std => run_std(&args, tls),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run_tokio(args: &Args, tls: wsmp_tokio::TlsClientOptions) -> Result<(), String> {
    let options = |timeout: u64| wsmp_tokio::ClientOptions {
        config: wsmp_core::Config {
            handshake_timeout: Duration::from_secs(timeout),
            ..config()
        },
        tls: Some(tls.clone()),
        ..Default::default()
    };
    let mut ws = wsmp_tokio::connect(&join(&args.url, "/getCaseCount"), options(10))
        .await
        .map_err(|e| format!("getCaseCount: {e}"))?;
    let count: u32 = match ws.recv().await {
        Some(m) => String::from_utf8_lossy(m.as_bytes())
            .trim()
            .parse()
            .map_err(|e| format!("case count: {e}"))?,
        None => return Err("no case count".into()),
    };
    while ws.recv().await.is_some() {}
    for case in 1..=count {
        let url = join(
            &args.url,
            &format!("/runCase?case={case}&agent={}", args.agent),
        );
        let Ok(mut ws) = wsmp_tokio::connect(&url, options(10)).await else {
            continue;
        };
        while let Some(message) = ws.recv().await {
            if ws.send(message).await.is_err() {
                break;
            }
        }
    }
    let url = join(&args.url, &format!("/updateReports?agent={}", args.agent));
    let mut ws = wsmp_tokio::connect(&url, options(300))
        .await
        .map_err(|e| format!("updateReports: {e}"))?;
    while ws.recv().await.is_some() {}
    eprintln!("ran {count} cases");
    Ok(())
}

fn run_std(args: &Args, tls: wsmp_tokio::TlsClientOptions) -> Result<(), String> {
    let options = |timeout: u64| wsmp_std::ClientOptions {
        config: wsmp_core::Config {
            handshake_timeout: Duration::from_secs(timeout),
            ..config()
        },
        tls: tls.clone(),
        read_timeout: None,
        write_timeout: None,
    };
    let mut ws = wsmp_std::connect(&join(&args.url, "/getCaseCount"), options(10))
        .map_err(|e| format!("getCaseCount: {e}"))?;
    let count: u32 = match ws.recv() {
        Ok(m) => String::from_utf8_lossy(&m.data)
            .trim()
            .parse()
            .map_err(|e| format!("case count: {e}"))?,
        Err(e) => return Err(format!("case count: {e}")),
    };
    while ws.recv().is_ok() {}
    for case in 1..=count {
        let url = join(
            &args.url,
            &format!("/runCase?case={case}&agent={}", args.agent),
        );
        let Ok(mut ws) = wsmp_std::connect(&url, options(10)) else {
            continue;
        };
        while let Ok(message) = ws.recv() {
            if ws.send(message).is_err() {
                break;
            }
        }
    }
    let url = join(&args.url, &format!("/updateReports?agent={}", args.agent));
    let mut ws =
        wsmp_std::connect(&url, options(300)).map_err(|e| format!("updateReports: {e}"))?;
    while ws.recv().is_ok() {}
    eprintln!("ran {count} cases");
    Ok(())
}
