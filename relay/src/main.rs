//! `wsmp-relay`: the SceneMultiplayer relay server (design/CLI.md).
//!
//! With no arguments it listens on `127.0.0.1:9080`; `--help` lists every flag.
#![forbid(unsafe_code)]

fn main() {
    let args = wsmp_relay::cli::parse_or_exit();
    let _logs = wsmp_relay::server::init_logging(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(wsmp_relay::server::run(args)) {
        // design/CLI.md: one line on stderr, exit 2 (a flag value that cannot be used).
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
