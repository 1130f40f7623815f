//! What every parameter type shares: the [`Param`] trait, the error
//! naming the parameter, and reading text as absent or as digits.

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
pub(super) fn digits(value: &str) -> Option<i64> {
    value
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| value.parse().ok())
        .flatten()
}
