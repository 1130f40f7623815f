//! The integration tests of the local pipeline and of what spans the
//! repository (the compose file, deploy files, the configuration reference,
//! the code's layout), in one binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backlog;
mod bruno;
mod compose;
mod configuration;
mod kubernetes;
mod layout;
mod ops;
mod postgres;
mod superset;
mod tracing;

/// A loopback port nothing listens on (for a moment).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
