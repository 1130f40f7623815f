//! The PostgreSQL settings the worker and the operations commands share.

use super::{ConfigError, Env, SecretUrl, Var, var};

/// Where the worker and the operations commands look for PostgreSQL when
/// `DATABASE_URL` is unset: the local run's database.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/eventpipe";

/// `DATABASE_URL`.
pub const DATABASE_URL: Var = var(
    "DATABASE_URL",
    Some(DEFAULT_DATABASE_URL),
    "PostgreSQL connection URL (its password is never logged)",
);

/// [`DATABASE_URL`].
pub fn database_url<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<SecretUrl, ConfigError> {
    env.required(DATABASE_URL.name)
}
