//! HTTP handlers, one file per action. Each parses the request, calls the
//! domain, and maps the result; the work itself lives outside.

pub mod events;
pub mod health;
pub mod metrics;
