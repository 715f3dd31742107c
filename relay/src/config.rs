//! Configuration layers of `wsmp-relay` (design/CLI.md): command-line flags,
//! `WSMP_RELAY_<FLAG>` environment variables and a TOML `--config FILE`,
//! merged with the precedence flags > env > file > built-in defaults.
//!
//! The flags' clap definitions ([`crate::cli::Args`]) are the single
//! source of names, value checks and defaults: each value from the
//! environment or the file is checked by the same clap parser as the flag
//! (so a bad value gives the same one-line `error: …` and exit 2, naming
//! its source), then the winning values of every flag are parsed once more
//! as one command line. A flag takes all its values from one layer: a
//! repeatable flag (`--listen`) given by a layer replaces the lower layers'
//! values and the default.
//!
//! - Environment: `WSMP_RELAY_` + the flag name in upper case with `-` → `_`
//!   ([`env_var_name`]). Repeatable flags take a comma-separated list;
//!   on/off flags take `true/false`, `1/0`, `yes/no`, `on/off`. An empty
//!   variable counts as unset. An unknown `WSMP_RELAY_*` variable is an
//!   error (a typo must not pass silently). `WSMP_RELAY_CONFIG` names the
//!   config file when `--config` is not given.
//! - File: a TOML table whose keys are flag names without `--`
//!   (`room-max-peers = 8`, `listen = ["0.0.0.0:9080"]`, `no-stats = true`);
//!   numbers may be written as numbers or strings. Relative paths in it are
//!   relative to the working directory, as on the command line. Unknown
//!   keys are errors.
//!
//! After merging: `--admin-listen` gets its default (127.0.0.1:9081, or
//! 127.0.0.1:0 when some layer gave `--listen`), and `--auth-token-file` is
//! read into the token (one trailing newline stripped); of `--auth-token`
//! and `--auth-token-file` the one from the higher layer wins, both in one
//! layer is an error. `--print-config` then returns the effective
//! configuration as TOML with exit code 0.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::{AdminListen, Args, CliError};

/// Prefix of the environment variables.
pub const ENV_PREFIX: &str = "WSMP_RELAY_";

/// Flags whose values are secrets: never printed by `--print-config`.
pub const SECRET_FLAGS: &[&str] = &["auth-token"];

/// Flags that only the command line can give (`config` also from `WSMP_RELAY_CONFIG`).
const COMMAND_LINE_ONLY: &[&str] = &["help", "version", "config", "print-config"];

/// The environment variable of a flag (`room-max-peers` → `WSMP_RELAY_ROOM_MAX_PEERS`).
pub fn env_var_name(flag: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        flag.to_ascii_uppercase().replace('-', "_")
    )
}

/// Where a setting came from; lower ranks win.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Flag,
    Env(String),
    File(PathBuf, String),
}

impl Source {
    fn rank(&self) -> u8 {
        match self {
            Source::Flag => 0,
            Source::Env(_) => 1,
            Source::File(..) => 2,
        }
    }

    /// How an error names it: `WSMP_RELAY_X` or `FILE: key`.
    fn name(&self, long: &str) -> String {
        match self {
            Source::Flag => format!("--{long}"),
            Source::Env(var) => var.clone(),
            Source::File(path, key) => format!("{}: {key}", path.display()),
        }
    }
}

/// One layer's values for one flag (for on/off flags: `["true"]` or `["false"]`).
#[derive(Debug, Clone)]
struct Setting {
    source: Source,
    values: Vec<String>,
}

fn error(message: impl std::fmt::Display) -> CliError {
    CliError {
        message: format!("error: {message}"),
        exit_code: 2,
    }
}

/// One line from a clap error: the value parser's own message when there is
/// one, else clap's first line without its `error: ` prefix.
fn clap_message(e: &clap::Error) -> String {
    if let Some(src) = std::error::Error::source(e) {
        return src.to_string();
    }
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or("bad value");
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

fn configurable(arg: &Arg) -> Option<&str> {
    let long = arg.get_long()?;
    (!COMMAND_LINE_ONLY.contains(&long)).then_some(long)
}

fn is_switch(arg: &Arg) -> bool {
    !arg.get_action().takes_values()
}

fn is_repeatable(arg: &Arg) -> bool {
    matches!(arg.get_action(), clap::ArgAction::Append)
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The command-line words that give `values` to `arg`.
fn words(arg: &Arg, long: &str, values: &[String]) -> Vec<OsString> {
    if is_switch(arg) {
        let on = values.iter().any(|v| v == "true");
        return if on {
            vec![format!("--{long}").into()]
        } else {
            vec![]
        };
    }
    // `--flag=value` keeps values that start with `-` values.
    values
        .iter()
        .map(|v| format!("--{long}={v}").into())
        .collect()
}

/// Checks one layer's values for one flag with the flag's own parser.
fn check(cmd: &clap::Command, arg: &Arg, long: &str, setting: &Setting) -> Result<(), CliError> {
    let argv =
        std::iter::once(OsString::from("wsmp-relay")).chain(words(arg, long, &setting.values));
    cmd.clone()
        .try_get_matches_from(argv)
        .map(|_| ())
        .map_err(|e| {
            error(format!(
                "{}: {}",
                setting.source.name(long),
                clap_message(&e)
            ))
        })
}

/// Reads the environment layer from `env` (every variable of the process).
fn env_layer(
    cmd: &clap::Command,
    env: &[(OsString, OsString)],
) -> Result<BTreeMap<String, Setting>, CliError> {
    let mut out = BTreeMap::new();
    for (k, v) in env {
        let Some(k) = k.to_str() else { continue };
        if !k.starts_with(ENV_PREFIX) || k == env_var_name("config") {
            continue;
        }
        let arg = cmd
            .get_arguments()
            .find(|a| configurable(a).is_some_and(|l| env_var_name(l) == k));
        let Some(arg) = arg else {
            return Err(error(format!("{k}: unknown setting (no such flag)")));
        };
        let long = arg.get_long().unwrap_or_default().to_string();
        let Some(v) = v.to_str() else {
            return Err(error(format!("{k}: not valid UTF-8")));
        };
        if v.is_empty() {
            continue;
        }
        let values = if is_switch(arg) {
            match parse_bool(v) {
                Some(b) => vec![b.to_string()],
                None => {
                    return Err(error(format!(
                        "{k}: `{v}` is not true/false, 1/0, yes/no or on/off"
                    )))
                }
            }
        } else if is_repeatable(arg) {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        } else {
            vec![v.to_string()]
        };
        out.insert(
            long,
            Setting {
                source: Source::Env(k.to_string()),
                values,
            },
        );
    }
    Ok(out)
}

fn toml_scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads the file layer.
fn file_layer(cmd: &clap::Command, path: &Path) -> Result<BTreeMap<String, Setting>, CliError> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| error(format!("{name}: {e}")))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        match line {
            Some(l) => error(format!("{name}: line {l}: {}", e.message().trim())),
            None => error(format!("{name}: {}", e.message().trim())),
        }
    })?;
    let mut out = BTreeMap::new();
    for (key, value) in table {
        let arg = cmd
            .get_arguments()
            .find(|a| configurable(a) == Some(key.as_str()));
        let Some(arg) = arg else {
            return Err(error(format!("{name}: unknown key `{key}`")));
        };
        let source = Source::File(path.to_path_buf(), key.clone());
        let values = match &value {
            toml::Value::Array(items) => {
                if !is_repeatable(arg) {
                    return Err(error(format!("{name}: {key}: takes one value, not a list")));
                }
                items
                    .iter()
                    .map(toml_scalar)
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| error(format!("{name}: {key}: list of plain values expected")))?
            }
            toml::Value::Boolean(b) if is_switch(arg) => vec![b.to_string()],
            _ if is_switch(arg) => {
                return Err(error(format!("{name}: {key}: true or false expected")));
            }
            other => vec![toml_scalar(other)
                .ok_or_else(|| error(format!("{name}: {key}: plain value expected")))?],
        };
        out.insert(key, Setting { source, values });
    }
    Ok(out)
}

fn parse_cli<I, T>(cmd: &clap::Command, argv: I) -> Result<ArgMatches, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    cmd.clone().try_get_matches_from(argv).map_err(|e| {
        let exit_code = e.exit_code();
        let rendered = e.render().to_string();
        let message = if exit_code == 0 {
            rendered
        } else {
            rendered
                .lines()
                .next()
                .unwrap_or("error: bad arguments")
                .to_string()
        };
        CliError { message, exit_code }
    })
}

fn raw_strings(m: &ArgMatches, id: &str) -> Vec<String> {
    m.get_raw(id)
        .map(|vals| {
            vals.map(|v: &OsStr| v.to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Merges every layer into [`Args`]: `argv` (first item = program name),
/// `env` (the process's variables; pass `&[]` for none) and the file of
/// `--config` / `WSMP_RELAY_CONFIG`.
///
/// `Err` with exit code 0 carries the text to print for `--help`,
/// `--version` and `--print-config`; exit code 2 one line `error: …`.
pub fn load<I, T>(argv: I, env: &[(OsString, OsString)]) -> Result<Args, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cmd = Args::command();
    let cli = parse_cli(&cmd, argv)?;
    let config_path: Option<PathBuf> = cli.get_one::<PathBuf>("config").cloned().or_else(|| {
        env.iter()
            .find(|(k, v)| k.to_str() == Some(&env_var_name("config")) && !v.is_empty())
            .map(|(_, v)| PathBuf::from(v))
    });
    let env_settings = env_layer(&cmd, env)?;
    let file_settings = match &config_path {
        Some(p) => file_layer(&cmd, p)?,
        None => BTreeMap::new(),
    };

    // Pick each flag's layer, check lower layers' values with the flag's parser.
    let mut chosen: BTreeMap<String, Setting> = BTreeMap::new();
    let mut final_argv: Vec<OsString> = vec!["wsmp-relay".into()];
    for arg in cmd.get_arguments() {
        let Some(long) = configurable(arg) else {
            continue;
        };
        let id = arg.get_id().as_str();
        let setting = if cli.value_source(id) == Some(ValueSource::CommandLine) {
            Some(Setting {
                source: Source::Flag,
                values: if is_switch(arg) {
                    vec![cli.get_flag(id).to_string()]
                } else {
                    raw_strings(&cli, id)
                },
            })
        } else {
            env_settings
                .get(long)
                .or_else(|| file_settings.get(long))
                .cloned()
        };
        if let Some(setting) = setting {
            if setting.source != Source::Flag {
                check(&cmd, arg, long, &setting)?;
            }
            final_argv.extend(words(arg, long, &setting.values));
            chosen.insert(long.to_string(), setting);
        }
    }
    if cli.get_flag("print_config") {
        final_argv.push("--print-config".into());
    }
    let merged = parse_cli(&cmd, &final_argv)?;
    let mut args = Args::from_arg_matches(&merged).map_err(|e| error(clap_message(&e)))?;
    args.config = config_path;
    args.validate().map_err(error)?;

    // design/CLI.md: the admin default depends on whether --listen was given by any layer.
    if args.admin_listen.is_none() {
        let default = if chosen.contains_key("listen") {
            crate::cli::DEFAULT_ADMIN_ADDR_WITH_LISTEN
        } else {
            crate::cli::DEFAULT_ADMIN_ADDR
        };
        args.admin_listen = Some(default.parse().map_err(error)?);
    }
    resolve_auth_token(&mut args, &chosen)?;

    if args.print_config {
        return Err(CliError {
            message: effective_toml(&cmd, &merged, &args),
            exit_code: 0,
        });
    }
    Ok(args)
}

/// `--auth-token` against `--auth-token-file`: the higher layer wins; the
/// file is read here (as written, one trailing newline stripped).
fn resolve_auth_token(args: &mut Args, chosen: &BTreeMap<String, Setting>) -> Result<(), CliError> {
    let token = chosen.get("auth-token").map(|s| s.source.rank());
    let file = chosen.get("auth-token-file").map(|s| s.source.rank());
    match (token, file) {
        (Some(t), Some(f)) if t == f => {
            return Err(error(
                "--auth-token and --auth-token-file cannot both be given (in the same layer)",
            ))
        }
        (Some(t), Some(f)) if t < f => {
            args.auth_token_file = None;
            return Ok(());
        }
        _ => {}
    }
    let Some(path) = args.auth_token_file.clone() else {
        return Ok(());
    };
    let bytes = std::fs::read(&path)
        .map_err(|e| error(format!("--auth-token-file {}: {e}", path.display())))?;
    let bytes = crate::jwt::strip_one_newline(&bytes);
    let token = String::from_utf8(bytes.to_vec()).map_err(|_| {
        error(format!(
            "--auth-token-file {}: not valid UTF-8",
            path.display()
        ))
    })?;
    if token.is_empty() {
        return Err(error(format!(
            "--auth-token-file {}: the file is empty",
            path.display()
        )));
    }
    args.auth_token = Some(token);
    Ok(())
}

/// A raw value as the TOML type a reader expects: integers and decimals as
/// numbers, the rest as strings.
fn toml_value(raw: &str) -> toml::Value {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = raw.strip_prefix('-').unwrap_or(raw);
    if digits(unsigned) {
        if let Ok(i) = raw.parse::<i64>() {
            return toml::Value::Integer(i);
        }
    }
    if let Some((a, b)) = unsigned.split_once('.') {
        if digits(a) && digits(b) {
            if let Ok(f) = raw.parse::<f64>() {
                return toml::Value::Float(f);
            }
        }
    }
    toml::Value::String(raw.to_string())
}

/// The effective configuration as a TOML document that `--config` accepts
/// back: every flag with its value (defaults included; unset optional flags
/// omitted), secrets replaced by a comment.
fn effective_toml(cmd: &clap::Command, merged: &ArgMatches, args: &Args) -> String {
    let mut table = toml::Table::new();
    let mut redacted = Vec::new();
    for arg in cmd.get_arguments() {
        let Some(long) = configurable(arg) else {
            continue;
        };
        let id = arg.get_id().as_str();
        let value = if is_switch(arg) {
            Some(toml::Value::Boolean(merged.get_flag(id)))
        } else if long == "admin-listen" {
            args.admin_listen
                .map(|a: AdminListen| toml::Value::String(a.to_string()))
        } else if long == "auth-token" {
            if args.auth_token.is_some() && args.auth_token_file.is_none() {
                redacted.push(long);
            }
            None
        } else if long == "auth-token-file" {
            args.auth_token_file
                .as_ref()
                .map(|p| toml::Value::String(p.display().to_string()))
        } else {
            let raw = raw_strings(merged, id);
            if is_repeatable(arg) {
                Some(toml::Value::Array(
                    raw.into_iter().map(toml::Value::String).collect(),
                ))
            } else {
                raw.first().map(|r| toml_value(r))
            }
        };
        if let Some(v) = value {
            table.insert(long.to_string(), v);
        }
    }
    let mut out = String::from(
        "# wsmp-relay effective configuration (flags > WSMP_RELAY_* > --config file > defaults)\n",
    );
    for r in redacted {
        out.push_str(&format!("# {r} = (set, redacted)\n"));
    }
    out.push_str(&toml::to_string(&table).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::time::Duration;

    fn tmp(name: &str, body: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wsmp-relay-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let p = dir.join(name);
        std::fs::write(&p, body).expect("write");
        p
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        vars.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn load_with(args: &[&str], vars: &[(&str, &str)]) -> Result<Args, CliError> {
        load(
            std::iter::once("wsmp-relay").chain(args.iter().copied()),
            &env(vars),
        )
    }

    fn err(args: &[&str], vars: &[(&str, &str)]) -> String {
        let e = load_with(args, vars).expect_err("should fail");
        assert_eq!(e.exit_code, 2, "{}", e.message);
        assert!(!e.message.contains('\n'), "one line: {:?}", e.message);
        assert!(e.message.starts_with("error: "), "{:?}", e.message);
        e.message
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn env_var_names() {
        assert_eq!(env_var_name("room-max-peers"), "WSMP_RELAY_ROOM_MAX_PEERS");
        assert_eq!(env_var_name("listen"), "WSMP_RELAY_LISTEN");
    }

    #[test]
    fn precedence_flags_env_file_defaults() {
        let file = tmp(
            "prec.toml",
            "room-max-peers = 5\nmax-peers = 50\nheartbeat-interval = 1.5\nlisten = [\"127.0.0.1:7001\", \"127.0.0.1:7002\"]\nno-stats = true\n",
        );
        let f = file.to_str().expect("utf-8");
        // File alone.
        let a = load_with(&["--config", f], &[]).expect("ok");
        assert_eq!((a.room_max_peers, a.max_peers), (5, 50));
        assert_eq!(a.heartbeat_interval, Duration::from_millis(1500));
        assert_eq!(
            a.listen,
            vec![addr("127.0.0.1:7001"), addr("127.0.0.1:7002")]
        );
        assert!(a.no_stats);
        // Defaults where nobody said anything.
        assert_eq!(a.max_queued_packets, 4096);
        // Env over file (also a repeatable flag, replacing the whole list; a switch turned off).
        let a = load_with(
            &["--config", f],
            &[
                ("WSMP_RELAY_ROOM_MAX_PEERS", "6"),
                ("WSMP_RELAY_LISTEN", "127.0.0.1:7003"),
                ("WSMP_RELAY_NO_STATS", "false"),
            ],
        )
        .expect("ok");
        assert_eq!((a.room_max_peers, a.max_peers), (6, 50));
        assert_eq!(a.listen, vec![addr("127.0.0.1:7003")]);
        assert!(!a.no_stats);
        // Flags over env over file.
        let a = load_with(
            &[
                "--config",
                f,
                "--room-max-peers",
                "7",
                "--listen",
                "127.0.0.1:7004",
            ],
            &[
                ("WSMP_RELAY_ROOM_MAX_PEERS", "6"),
                ("WSMP_RELAY_LISTEN", "127.0.0.1:7003"),
            ],
        )
        .expect("ok");
        assert_eq!(a.room_max_peers, 7);
        assert_eq!(a.listen, vec![addr("127.0.0.1:7004")]);
        // The config file may come from the environment.
        let a = load_with(&[], &[("WSMP_RELAY_CONFIG", f)]).expect("ok");
        assert_eq!(a.room_max_peers, 5);
        assert_eq!(a.config.as_deref(), Some(file.as_path()));
        // Env lists are comma-separated.
        let a = load_with(
            &[],
            &[
                ("WSMP_RELAY_SUPPORTED_PROTOCOL", "a, b,,c"),
                ("WSMP_RELAY_TRUSTED_PROXY", "10.0.0.0/8,::1"),
            ],
        )
        .expect("ok");
        assert_eq!(a.supported_protocols, vec!["a", "b", "c"]);
        assert_eq!(a.trusted_proxies.len(), 2);
        // Empty = unset.
        let a = load_with(&[], &[("WSMP_RELAY_ROOM_MAX_PEERS", "")]).expect("ok");
        assert_eq!(a.room_max_peers, 64);
        // Other variables are not ours.
        load_with(&[], &[("PATH", "/bin"), ("WSMP_RELAYX", "1")]).expect("ok");
    }

    #[test]
    fn admin_listen_default_follows_listen_from_any_layer() {
        let a = load_with(&[], &[]).expect("ok");
        assert_eq!(a.admin_addr(), Some(addr("127.0.0.1:9081")));
        let a = load_with(&["--listen", "127.0.0.1:0"], &[]).expect("ok");
        assert_eq!(a.admin_addr(), Some(addr("127.0.0.1:0")));
        let a = load_with(&[], &[("WSMP_RELAY_LISTEN", "127.0.0.1:0")]).expect("ok");
        assert_eq!(a.admin_addr(), Some(addr("127.0.0.1:0")));
        let f = tmp("listen.toml", "listen = \"127.0.0.1:0\"\n");
        let a = load_with(&["--config", f.to_str().expect("utf-8")], &[]).expect("ok");
        assert_eq!(a.admin_addr(), Some(addr("127.0.0.1:0")));
        let a = load_with(&["--admin-listen", "off"], &[]).expect("ok");
        assert_eq!(a.admin_addr(), None);
        let a = load_with(
            &["--listen", "127.0.0.1:0"],
            &[("WSMP_RELAY_ADMIN_LISTEN", "[::1]:9999")],
        )
        .expect("ok");
        assert_eq!(a.admin_addr(), Some(addr("[::1]:9999")));
    }

    #[test]
    fn bad_values_name_their_source() {
        let m = err(&[], &[("WSMP_RELAY_ROOM_MAX_PEERS", "many")]);
        assert!(m.starts_with("error: WSMP_RELAY_ROOM_MAX_PEERS: "), "{m}");
        assert!(m.contains("not a whole number"), "{m}");
        let m = err(&[], &[("WSMP_RELAY_NO_STATS", "maybe")]);
        assert!(m.starts_with("error: WSMP_RELAY_NO_STATS: "), "{m}");
        let m = err(&[], &[("WSMP_RELAY_ROOM_MAXPEERS", "3")]);
        assert!(m.contains("unknown setting"), "{m}");
        let m = err(&[], &[("WSMP_RELAY_PRINT_CONFIG", "1")]);
        assert!(m.contains("unknown setting"), "{m}");
        let m = err(&[], &[("WSMP_RELAY_LOG_FORMAT", "xml")]);
        assert!(m.starts_with("error: WSMP_RELAY_LOG_FORMAT: "), "{m}");
        let m = err(&[], &[("WSMP_RELAY_LISTEN", "127.0.0.1:1,nowhere")]);
        assert!(m.starts_with("error: WSMP_RELAY_LISTEN: "), "{m}");

        let f = tmp("bad1.toml", "room-max-peers = \"lots\"\n");
        let fs = f.to_str().expect("utf-8");
        let m = err(&["--config", fs], &[]);
        assert!(
            m.starts_with(&format!("error: {fs}: room-max-peers: ")),
            "{m}"
        );
        let f = tmp("bad2.toml", "room-max-peer = 3\n");
        assert!(err(&["--config", f.to_str().expect("utf-8")], &[])
            .contains("unknown key `room-max-peer`"));
        let f = tmp("bad3.toml", "max-peers = [1, 2]\n");
        assert!(err(&["--config", f.to_str().expect("utf-8")], &[]).contains("takes one value"));
        let f = tmp("bad4.toml", "no-stats = \"yes\"\n");
        assert!(err(&["--config", f.to_str().expect("utf-8")], &[]).contains("true or false"));
        let f = tmp("bad5.toml", "a = [\n");
        let m = err(&["--config", f.to_str().expect("utf-8")], &[]);
        assert!(m.contains("line "), "{m}");
        let f = tmp("bad6.toml", "config = \"x.toml\"\n");
        assert!(err(&["--config", f.to_str().expect("utf-8")], &[]).contains("unknown key"));
        assert!(
            err(&["--config", "/nonexistent/wsmp.toml"], &[]).contains("/nonexistent/wsmp.toml")
        );
        // A bad file value is reported even when env/flags would not override it… only
        // when it is the winning layer: an overridden bad value does not matter.
        let f = tmp("bad7.toml", "room-max-peers = \"lots\"\n");
        load_with(
            &[
                "--config",
                f.to_str().expect("utf-8"),
                "--room-max-peers",
                "3",
            ],
            &[],
        )
        .expect("the file's value lost");
        // Cross-flag checks still apply to merged values.
        let m = err(
            &[],
            &[
                ("WSMP_RELAY_MAX_PEERS", "5"),
                ("WSMP_RELAY_ROOM_MAX_PEERS", "6"),
            ],
        );
        assert!(m.contains("must not exceed"), "{m}");
    }

    #[test]
    fn auth_token_file() {
        let f = tmp("token", "s3cret\n");
        let fs = f.to_str().expect("utf-8");
        let a = load_with(&["--auth-token-file", fs], &[]).expect("ok");
        assert_eq!(a.auth_token.as_deref(), Some("s3cret"));
        let f2 = tmp("token2", "two\nlines\n\n");
        let a = load_with(&["--auth-token-file", f2.to_str().expect("utf-8")], &[]).expect("ok");
        assert_eq!(
            a.auth_token.as_deref(),
            Some("two\nlines\n"),
            "one newline stripped"
        );
        // Higher layer wins between the two forms.
        let a = load_with(
            &["--auth-token", "flag"],
            &[("WSMP_RELAY_AUTH_TOKEN_FILE", fs)],
        )
        .expect("ok");
        assert_eq!(a.auth_token.as_deref(), Some("flag"));
        let a = load_with(
            &["--auth-token-file", fs],
            &[("WSMP_RELAY_AUTH_TOKEN", "env")],
        )
        .expect("ok");
        assert_eq!(a.auth_token.as_deref(), Some("s3cret"));
        let a = load_with(&[], &[("WSMP_RELAY_AUTH_TOKEN", "env")]).expect("ok");
        assert_eq!(a.auth_token.as_deref(), Some("env"));
        assert!(err(&["--auth-token", "a", "--auth-token-file", fs], &[]).contains("cannot both"));
        assert!(err(&["--auth-token-file", "/nonexistent/t"], &[]).contains("/nonexistent/t"));
        let empty = tmp("empty", "\n");
        assert!(err(&["--auth-token-file", empty.to_str().expect("utf-8")], &[]).contains("empty"));
    }

    #[test]
    fn print_config_round_trips_and_redacts() {
        let tok = tmp("tok", "file-secret\n");
        let e = load_with(
            &[
                "--print-config",
                "--listen",
                "127.0.0.1:0",
                "--room-max-peers",
                "9",
                "--handshake-timeout",
                "1.5",
                "--trusted-proxy",
                "10.0.0.0/8",
                "--path-prefix",
                "/game",
                "--any-path-room",
                "path",
            ],
            &[
                ("WSMP_RELAY_AUTH_TOKEN", "top-secret"),
                ("WSMP_RELAY_NO_STATS", "1"),
            ],
        )
        .expect_err("print-config exits");
        assert_eq!(e.exit_code, 0);
        let text = e.message;
        assert!(!text.contains("top-secret"), "{text}");
        assert!(text.contains("# auth-token = (set, redacted)"), "{text}");
        assert!(text.contains("room-max-peers = 9"), "{text}");
        assert!(text.contains("handshake-timeout = 1.5"), "{text}");
        assert!(text.contains("admin-listen = \"127.0.0.1:0\""), "{text}");
        assert!(text.contains("no-stats = true"), "{text}");
        assert!(text.contains("max-queued-packets = 4096"), "{text}");
        assert!(!text.contains("print-config"), "{text}");
        // The output is a config file that gives the same settings (less the secret).
        let back = tmp("printed.toml", &text);
        let a = load_with(&["--config", back.to_str().expect("utf-8")], &[]).expect("reads back");
        let orig = load_with(
            &[
                "--listen",
                "127.0.0.1:0",
                "--room-max-peers",
                "9",
                "--handshake-timeout",
                "1.5",
                "--trusted-proxy",
                "10.0.0.0/8",
                "--path-prefix",
                "/game",
                "--any-path-room",
                "path",
                "--no-stats",
            ],
            &[],
        )
        .expect("ok");
        let mut a = a;
        a.config = None;
        assert_eq!(a, orig);
        // A token file's path is shown, its content never.
        let e = load_with(
            &[
                "--print-config",
                "--auth-token-file",
                tok.to_str().expect("utf-8"),
            ],
            &[],
        )
        .expect_err("exits");
        assert!(e.message.contains("auth-token-file = "), "{}", e.message);
        assert!(!e.message.contains("file-secret"), "{}", e.message);
    }
}
