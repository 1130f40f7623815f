//! A configuration problem, naming the setting (exit code 104).

/// A configuration problem, naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct InvalidConfig(pub String);

pub(crate) fn invalid(message: impl Into<String>) -> InvalidConfig {
    InvalidConfig(message.into())
}
