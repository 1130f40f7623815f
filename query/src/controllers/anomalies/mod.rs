//! `/api/v1/anomalies`: stored anomalies, a page at a time.

pub mod list;
