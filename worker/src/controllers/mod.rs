//! The worker's HTTP handlers, one module per resource: operations
//! (health, readiness, metrics) and the analytics read API.

pub mod analytics;
pub mod health;
