//! [`ReadSide`]: what the read-side handlers share, and [`DeadLetters`],
//! what they ask of the broker.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::db::Analytics;

/// The read side's state: its queries and its settings.
pub struct ReadSide {
    /// The analytics queries, on connections of their own.
    pub analytics: Analytics,
    /// `WORKER_ANALYTICS_TOKEN`: when set, every route wants it as a bearer token.
    pub token: Option<String>,
    /// `WORKER_ANALYTICS_MAX_BUCKETS`: most buckets a time series may have.
    pub max_buckets: usize,
    /// What the DLQ holds, when the server can ask a broker.
    pub dead_letters: Option<Arc<dyn DeadLetters>>,
}

/// The dead-letter topic as the broker last described it: the worker
/// keeps the count fresh from its Kafka client, so the read side needs no
/// client of its own and never waits on the broker.
pub trait DeadLetters: Send + Sync {
    /// The DLQ topic's name.
    fn topic(&self) -> &str;
    /// How many messages the topic held (over all its partitions, what its
    /// retention has kept) and when the broker said so; `None` until it
    /// first answered.
    fn held(&self) -> Option<(u64, DateTime<Utc>)>;
}
