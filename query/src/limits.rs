//! The read side's bounds, in one place: what the parameter parsers
//! enforce and what the OpenAPI schemas ([`crate::schemas`]) state.

/// Most values in one comma-separated filter.
pub const MAX_LIST: usize = 100;
/// Most rows of a page, a breakdown or the recent anomalies.
pub const MAX_LIMIT: u32 = 1000;
/// The latest instant an epoch-milliseconds parameter may name:
/// 9999-12-31T23:59:59.999Z, the last RFC 3339 can write.
pub const LATEST_EPOCH_MS: i64 = 253_402_300_799_999;
/// Longest `hours` window (a year).
pub const MAX_HOURS: u32 = 8760;
