//! [`FieldError`]: what the validation of an event (its top-level fields,
//! `validate`, and its payload, `payload`) reports, in one place
//! both import.

use serde::Serialize;
use utoipa::ToSchema;

/// One thing wrong with an event: where (a JSON pointer into the event) and
/// what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON pointer (RFC 6901) to the offending field, relative to the event;
    /// `""` is the event itself.
    #[schema(example = "/payload/amount")]
    pub pointer: String,
    /// What is wrong, in words.
    #[schema(example = "must be a number >= 0, got -5")]
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}
