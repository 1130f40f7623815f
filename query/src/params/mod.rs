//! Query parameters, each a type that reads its own text and states its
//! own OpenAPI schema ([`Param`]): an instant, a row limit, an hours
//! window, a bucket width, a grouping, a list of event types, sources,
//! rules or severities, a user id (a page cursor is `pages::Cursor`). The endpoints' query
//! structs (`analytics::params`, `pages`, `controllers::window`) declare
//! each field's type once (`#[param(value_type = …)]`), so the document
//! says exactly what the parser accepts and a client generated from it,
//! or a fuzzer, never sends a value the server refuses for its own sake.
//!
//! Every parameter is optional text, so extraction itself never fails and
//! each value is judged here with a message a dashboard author can act on.
//! An empty value counts as absent (what a dashboard sends for "All"); the
//! schemas allow it. What a schema cannot say (`from` before `to`,
//! `interval` or `interval_ms` but not both, the bucket cap) the
//! operations' descriptions say.

mod schema;
mod types;

pub use types::{
    AnomalyGroup, AnomalyGroups, AnomalyKey, EventGroup, EventKey, EventTypes, Hours, Instant,
    IntervalMs, IntervalName, Limit, Rules, Severities, Sources, UserId,
};

/// A parameter the request got wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The parameter's name.
    pub parameter: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// A refusal of `parameter`, saying why.
pub(crate) fn refuse<T>(
    parameter: &'static str,
    message: impl Into<String>,
) -> Result<T, ParamError> {
    Err(ParamError {
        parameter,
        message: message.into(),
    })
}

/// A query parameter's type: how its text is read, and (as a
/// [`utoipa::PartialSchema`]) what the OpenAPI document says it accepts.
pub trait Param: utoipa::PartialSchema {
    /// What the text is read as.
    type Value;
    /// Reads `value`, present and not empty, as parameter `name`.
    fn parse(name: &'static str, value: &str) -> Result<Self::Value, ParamError>;

    /// Reads `value` as parameter `name`; `None` when absent or empty.
    fn optional(
        name: &'static str,
        value: Option<&str>,
    ) -> Result<Option<Self::Value>, ParamError> {
        present(value).map(|v| Self::parse(name, v)).transpose()
    }
}

/// `value` unless it is absent or empty. Not trimmed: `" 5"` is not a
/// number, and a user id may hold spaces.
pub(crate) fn present(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

/// `value` as a non-negative integer written in plain digits (no sign, no
/// spaces), if it is one that fits.
pub(crate) fn digits(value: &str) -> Option<i64> {
    value
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| value.parse().ok())
        .flatten()
}
