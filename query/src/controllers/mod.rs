//! The read side's HTTP handlers, one module per resource.

pub mod analytics;
pub mod anomalies;
pub mod events;
pub mod summary;
pub mod users;
pub mod window;
