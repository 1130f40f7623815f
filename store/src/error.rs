//! [`StoreError`], the one error of this crate: every failure sorted by
//! what the caller should do about it (retry later, or give the rows up).

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Why a write failed, sorted by what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is unreachable or failing; retry the same batch later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The data itself was refused; retrying cannot help.
    #[error("rows refused: {0}")]
    Refused(String),
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match &e {
            // Constraint and data errors are about the rows, not the server.
            DieselError::DatabaseError(
                DatabaseErrorKind::CheckViolation
                | DatabaseErrorKind::NotNullViolation
                | DatabaseErrorKind::ForeignKeyViolation,
                _,
            ) => StoreError::Refused(e.to_string()),
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
                if is_data_exception(info.message()) =>
            {
                StoreError::Refused(e.to_string())
            }
            _ => StoreError::Unavailable(e.to_string()),
        }
    }
}

/// PostgreSQL's class 22 ("data exception") messages that no retry fixes.
fn is_data_exception(message: &str) -> bool {
    [
        "invalid input syntax",
        "unsupported Unicode escape sequence",
        "invalid byte sequence",
        "value too long",
        "out of range",
    ]
    .iter()
    .any(|m| message.contains(m))
}
