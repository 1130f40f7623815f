//! [`ReadSide`]: what the read-side handlers share.

use crate::db::Analytics;

/// The read side's state: its queries and its settings.
pub struct ReadSide {
    /// The analytics queries, on connections of their own.
    pub analytics: Analytics,
    /// `WORKER_ANALYTICS_TOKEN`: when set, every route wants it as a bearer token.
    pub token: Option<String>,
    /// `WORKER_ANALYTICS_MAX_BUCKETS`: most buckets a time series may have.
    pub max_buckets: usize,
}
