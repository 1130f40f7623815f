//! [`ReadSide`]: what the read-side handlers share, and [`DeadLetters`],
//! what they ask of the broker.

use futures::future::BoxFuture;

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
    pub dead_letters: Option<Box<dyn DeadLetters>>,
}

/// The dead-letter topic as the broker sees it: the worker answers from
/// its Kafka client, so the read side needs none of its own.
pub trait DeadLetters: Send + Sync {
    /// The DLQ topic's name.
    fn topic(&self) -> &str;
    /// How many messages the topic holds now (over all its partitions,
    /// what its retention has kept), or why the broker could not say.
    fn held(&self) -> BoxFuture<'static, Result<u64, String>>;
}
