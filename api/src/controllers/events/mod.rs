//! The events resource.

pub mod ingest;
