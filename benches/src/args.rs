//! Tiny `--flag value` parser shared by the load tools (no clap: keeps the tools quick to build).

use std::collections::HashMap;

/// Parsed `--name value` pairs and bare `--switch`es.
#[derive(Debug, Default)]
pub struct Args {
    values: HashMap<String, String>,
    switches: Vec<String>,
}

impl Args {
    /// Parses `args`; `switches` names the flags that take no value. Every other `--name`
    /// takes the next argument (or `--name=value`).
    pub fn parse<I: IntoIterator<Item = String>>(
        args: I,
        switches: &[&str],
    ) -> Result<Self, String> {
        let mut out = Args::default();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument {a:?}"));
            };
            if let Some((n, v)) = name.split_once('=') {
                out.values.insert(n.to_owned(), v.to_owned());
            } else if switches.contains(&name) {
                out.switches.push(name.to_owned());
            } else {
                let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                out.values.insert(name.to_owned(), v);
            }
        }
        Ok(out)
    }

    /// Whether a switch was given.
    pub fn flag(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    /// A value parsed as `T`, or `default` when absent.
    pub fn get<T: std::str::FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        match self.values.remove(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("bad value {v:?} for --{name}")),
        }
    }

    /// An optional value parsed as `T`.
    pub fn opt<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>, String> {
        match self.values.remove(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("bad value {v:?} for --{name}")),
        }
    }

    /// Errors if any value was not consumed by `get`/`opt` (an unknown flag).
    pub fn finish(self) -> Result<(), String> {
        match self.values.keys().next() {
            Some(k) => Err(format!("unknown flag --{k}")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let v = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let mut a = Args::parse(v("--n 5 --json --x=1.5"), &["json"]).unwrap();
        assert!(a.flag("json"));
        assert_eq!(a.get("n", 0u32).unwrap(), 5);
        assert_eq!(a.get("x", 0.0f64).unwrap(), 1.5);
        assert_eq!(a.get("absent", 7u8).unwrap(), 7);
        assert_eq!(a.opt::<u32>("pid").unwrap(), None);
        a.finish().unwrap();
        let mut b = Args::parse(v("--n zz --bogus 1"), &[]).unwrap();
        assert!(b.get("n", 0u32).is_err());
        assert!(b.finish().is_err());
        assert!(Args::parse(v("--n"), &[]).is_err());
        assert!(Args::parse(v("stray"), &[]).is_err());
    }
}
