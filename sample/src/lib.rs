//! Realistic events for eventpipe, made fast: [`mix`] says what traffic
//! looks like (a weighted mix of the contract's event types with payloads
//! shaped like real ones, users, batch sizes, a share of invalid events)
//! and renders it once into request-body templates with fixed-width slots;
//! filling a slot is a copy, so the load generator can make bodies at the
//! rate it sends them. [`random`] is the seeded generator behind every
//! choice and [`clock`] writes the time slot. [`bodies`] makes ready-made
//! bodies for benchmarks and tests.

pub mod clock;
pub mod mix;
pub mod random;

use mix::{Shape, Templates};
use random::Rng;

/// `n` request bodies shaped by `shape`, each event with a fresh UUIDv7
/// (time-ordered, as the API assigns when a client sends none), a user
/// drawn from `shape.users` and the current time.
pub fn bodies(shape: &Shape, n: usize) -> Vec<Vec<u8>> {
    let templates = Templates::build(shape);
    let mut rng = Rng::new(shape.seed ^ 0x5A3F_1E00);
    let now = clock::now();
    (0..n)
        .map(|_| {
            let template = &templates.list[rng.below(templates.list.len() as u64) as usize];
            template.render(&mut rng, shape.users, &now, |_, slot| {
                let id = uuid::Uuid::now_v7();
                let mut text = uuid::Uuid::encode_buffer();
                slot.copy_from_slice(id.hyphenated().encode_lower(&mut text).as_bytes());
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn bodies_are_valid_events_with_distinct_ids() {
        let bodies = bodies(&Shape::default(), 200);
        let mut ids = std::collections::HashSet::new();
        for body in &bodies {
            let event: serde_json::Value = serde_json::from_slice(body).unwrap();
            let id: uuid::Uuid = event["event_id"].as_str().unwrap().parse().unwrap();
            assert_eq!(id.get_version_num(), 7);
            assert!(ids.insert(id), "{id} twice");
            assert!(event["user_id"].as_str().unwrap().starts_with("user-"));
            assert!(mix::EVENT_TYPES.contains(&event["type"].as_str().unwrap()));
        }
    }
}
