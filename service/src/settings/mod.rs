//! Settings from environment variables. A service declares its variables
//! once, as a [`Var`] list: `--help` prints that list and [`Env`] refuses to
//! read a variable missing from it, so the two cannot drift apart. Every
//! error names the variable at fault. The variables several services read
//! are declared once, in [`kafka`] and [`database`]; values that must not be
//! logged are a [`Secret`] or a [`SecretUrl`].

pub mod database;
pub mod kafka;
mod secret;

pub use secret::{Secret, SecretUrl, redact_url};

use std::fmt;
use std::str::FromStr;

/// One environment variable a service reads.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    /// Its name.
    pub name: &'static str,
    /// The value used when it is unset (`None`: required or off).
    pub default: Option<&'static str>,
    /// What it sets.
    pub doc: &'static str,
}

/// Declares a [`Var`].
pub const fn var(name: &'static str, default: Option<&'static str>, doc: &'static str) -> Var {
    Var { name, default, doc }
}

/// A variable that is missing or holds a value the service cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The variable at fault.
    pub var: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    /// An error about `var`.
    pub fn new(var: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            var,
            message: message.into(),
        }
    }
}

/// Reads a service's variables through a lookup function, so tests and the
/// local launcher can configure a service without touching the process
/// environment.
pub struct Env<F> {
    vars: &'static [Var],
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// Reads `vars` through `lookup` (a variable's value if set).
    pub fn new(vars: &'static [Var], lookup: F) -> Self {
        Env { vars, lookup }
    }

    /// The value set, or the default; blank counts as unset.
    pub fn raw(&self, name: &'static str) -> Option<String> {
        let known = self.vars.iter().find(|v| v.name == name);
        debug_assert!(known.is_some(), "{name} is missing from the variable list");
        (self.lookup)(name)
            .filter(|v| !v.trim().is_empty())
            .or_else(|| known.and_then(|v| v.default).map(str::to_owned))
    }

    /// The parsed value, if set or defaulted.
    pub fn optional<T: FromStr>(&self, name: &'static str) -> Result<Option<T>, ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.raw(name)
            .map(|value| {
                value
                    .trim()
                    .parse()
                    .map_err(|e| ConfigError::new(name, format!("cannot use {value:?}: {e}")))
            })
            .transpose()
    }

    /// The parsed value; an error when neither set nor defaulted.
    pub fn required<T: FromStr>(&self, name: &'static str) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.optional(name)?
            .ok_or_else(|| ConfigError::new(name, "is required but not set"))
    }

    /// A required number that must be greater than zero.
    pub fn positive<T>(&self, name: &'static str) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Default,
        T::Err: fmt::Display,
    {
        let value: T = self.required(name)?;
        if value <= T::default() {
            return Err(ConfigError::new(name, "must be greater than 0"));
        }
        Ok(value)
    }

    /// An optional number that must be greater than zero when set.
    pub fn optional_positive<T>(&self, name: &'static str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr + PartialOrd + Default,
        T::Err: fmt::Display,
    {
        match self.optional::<T>(name)? {
            Some(value) if value <= T::default() => Err(ConfigError::new(
                name,
                "must be greater than 0 (unset it for none)",
            )),
            value => Ok(value),
        }
    }

    /// `key=value;key=value` pairs (empty when unset).
    pub fn key_values(&self, name: &'static str) -> Result<Vec<(String, String)>, ConfigError> {
        let Some(text) = self.raw(name) else {
            return Ok(Vec::new());
        };
        text.split(';')
            .filter(|pair| !pair.trim().is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    Ok((k.trim().to_owned(), v.trim().to_owned()))
                }
                _ => Err(ConfigError::new(
                    name,
                    format!(
                        "expected key=value pairs separated by ';', got {:?}",
                        pair.split('=').next().unwrap_or("")
                    ),
                )),
            })
            .collect()
    }
}

/// The column `--help` prints variables' descriptions at: the longest
/// name (`KAFKA_REBUILD_AFTER_REFUSED_SENDS`) and a space; a longer name
/// moves the column for its list.
pub const HELP_NAME_WIDTH: usize = 34;

/// `vars` as `--help` prints them.
pub fn help(vars: &[Var]) -> String {
    let mut out = String::from("Environment variables (default in brackets):\n");
    let width = vars
        .iter()
        .map(|v| v.name.len() + 1)
        .fold(HELP_NAME_WIDTH, usize::max);
    for v in vars {
        let default = v.default.map(|d| format!(" [{d}]")).unwrap_or_default();
        out.push_str(&format!("  {:<width$}{}{}\n", v.name, v.doc, default));
    }
    out
}

/// Writes `text` to standard output. A reader that went away
/// (`eventpipe --help | head`) ends the output quietly, where `print!`
/// would panic.
pub fn print_out(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// `RUST_LOG`, read by [`crate::init_tracing`]; every service lists it.
pub const RUST_LOG_VAR: Var = var(
    "RUST_LOG",
    Some("info"),
    "log filter, e.g. info,eventpipe=debug",
);
/// `LOG_FORMAT`, read by [`crate::init_tracing`]; every service lists it.
pub const LOG_FORMAT_VAR: Var = var("LOG_FORMAT", Some("text"), "text or json");

#[cfg(test)]
mod tests {
    use super::*;

    const VARS: &[Var] = &[
        var("A_NUMBER", Some("3"), "a number"),
        var("A_LIST", None, "pairs"),
        var("A_NAME", None, "required"),
    ];

    fn env(pairs: &'static [(&'static str, &'static str)]) -> Env<impl Fn(&str) -> Option<String>> {
        Env::new(VARS, move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn help_keeps_a_space_after_every_name() {
        let long = "A_NAME_LONGER_THAN_THE_HELP_COLUMN_IS";
        let text = help(&[
            var(long, Some("1"), "what it does"),
            var("A_NUMBER", Some("3"), "a number"),
        ]);
        assert!(
            text.contains(&format!("  {long} what it does [1]\n")),
            "{text}"
        );
        let column = long.len() + 3;
        assert_eq!(
            text.lines().nth(2).unwrap().find("a number"),
            Some(column),
            "{text}"
        );
        let short = help(VARS);
        assert_eq!(
            short.lines().nth(1).unwrap().find("a number"),
            Some(HELP_NAME_WIDTH + 2),
            "{short}"
        );
    }

    #[test]
    fn defaults_blanks_and_errors() {
        let e = env(&[("A_NUMBER", " "), ("A_LIST", "x=1; y = 2 ;")]);
        assert_eq!(e.required::<u32>("A_NUMBER").unwrap(), 3);
        assert_eq!(
            e.key_values("A_LIST").unwrap(),
            vec![("x".into(), "1".into()), ("y".into(), "2".into())]
        );
        assert_eq!(
            e.required::<String>("A_NAME").unwrap_err().to_string(),
            "A_NAME: is required but not set"
        );
        let bad = env(&[("A_NUMBER", "0"), ("A_LIST", "novalue")]);
        assert_eq!(bad.positive::<u32>("A_NUMBER").unwrap_err().var, "A_NUMBER");
        assert_eq!(bad.key_values("A_LIST").unwrap_err().var, "A_LIST");
        let text = env(&[("A_NUMBER", "x")])
            .required::<u32>("A_NUMBER")
            .unwrap_err()
            .to_string();
        assert!(text.starts_with("A_NUMBER: cannot use \"x\""), "{text}");
    }

    #[test]
    fn help_lists_every_variable() {
        let text = help(VARS);
        assert!(VARS.iter().all(|v| text.contains(v.name)));
        assert!(text.contains("[3]"));
    }
}
