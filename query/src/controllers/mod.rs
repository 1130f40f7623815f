//! The read side's HTTP handlers, one module per resource.

pub mod analytics;
pub mod anomalies;
pub mod events;
pub mod users;
