//! Per-key token buckets counting events (a batch of 100 costs 100), so a
//! key's limit means the same whether it sends singles or batches. The keys
//! are fixed at start-up, so the buckets are a fixed array indexed by
//! [`KeyId`]: no map to grow, nothing to evict. State is per replica.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::KeyId;
use crate::config::RateLimit;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The buckets of every key.
pub struct RateLimiter {
    limit: Option<RateLimit>,
    buckets: Vec<Mutex<Bucket>>,
}

impl RateLimiter {
    /// One full bucket per key; `None` disables limiting.
    pub fn new(limit: Option<RateLimit>, keys: usize) -> Self {
        let now = Instant::now();
        let full = limit.map_or(0.0, |l| l.burst);
        RateLimiter {
            limit,
            buckets: (0..keys)
                .map(|_| {
                    Mutex::new(Bucket {
                        tokens: full,
                        updated: now,
                    })
                })
                .collect(),
        }
    }

    /// Takes `events` tokens from `key`'s bucket, or says how long until
    /// they would be there.
    pub fn take(&self, key: KeyId, events: usize) -> Result<(), Duration> {
        self.take_at(key, events, Instant::now())
    }

    fn take_at(&self, key: KeyId, events: usize, now: Instant) -> Result<(), Duration> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let Some(bucket) = self.buckets.get(key.0) else {
            return Ok(());
        };
        let mut bucket = bucket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * limit.events_per_sec).min(limit.burst);
        bucket.updated = now;
        let wanted = events as f64;
        if wanted > limit.burst {
            // Could never fit: tell the client to split, via a full wait.
            return Err(Duration::from_secs_f64(limit.burst / limit.events_per_sec));
        }
        if bucket.tokens >= wanted {
            bucket.tokens -= wanted;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (wanted - bucket.tokens) / limit.events_per_sec,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter::new(
            Some(RateLimit {
                events_per_sec: rate,
                burst,
            }),
            2,
        )
    }

    #[test]
    fn burst_then_refill_at_the_rate() {
        let l = limiter(10.0, 20.0);
        let t0 = Instant::now();
        assert!(l.take_at(KeyId(0), 20, t0).is_ok());
        let wait = l.take_at(KeyId(0), 5, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        assert!(
            l.take_at(KeyId(0), 5, t0 + Duration::from_millis(500))
                .is_ok()
        );
        assert!(
            l.take_at(KeyId(0), 1, t0 + Duration::from_millis(500))
                .is_err()
        );
    }

    #[test]
    fn keys_have_separate_buckets() {
        let l = limiter(1.0, 3.0);
        let t0 = Instant::now();
        assert!(l.take_at(KeyId(0), 3, t0).is_ok());
        assert!(l.take_at(KeyId(0), 1, t0).is_err());
        assert!(l.take_at(KeyId(1), 3, t0).is_ok());
    }

    #[test]
    fn unlimited_when_off() {
        let l = RateLimiter::new(None, 1);
        assert!(l.take(KeyId(0), 1_000_000).is_ok());
    }
}
