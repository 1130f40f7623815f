//! The events resource.

pub mod docs;
pub mod ingest;
