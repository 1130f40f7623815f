//! The integration tests of the local pipeline and of what spans the
//! repository (the compose file, deploy files, the configuration reference,
//! the code's layout), in one binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bruno;
mod compose;
mod configuration;
mod layout;
mod ops;
mod postgres;
mod superset;
mod tracing;
