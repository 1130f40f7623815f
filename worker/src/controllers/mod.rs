//! The worker's own HTTP handlers: readiness and metrics. The read API is
//! `eventpipe-query`'s; liveness is the shared handler.

pub mod health;
