//! The run's configuration: command-line flags (most with an environment
//! fallback), an optional scenario file (TOML or JSON, the same settings
//! in camelCase, as in k6's options), and defaults, in that order of
//! precedence. Everything is checked before anything runs; a problem is
//! an [`InvalidConfig`] naming the setting (exit code 104).
//!
//! [`options`] holds the settings as given, [`defaults`] every default
//! (also shown by `--help`), [`check`] resolves them into a [`Config`].

mod check;
pub mod defaults;
mod invalid;
mod options;

pub use check::{Audit, Config, Executor};
pub use invalid::InvalidConfig;
pub use options::{Options, Stages, ThresholdSpec};
