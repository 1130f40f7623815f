//! What the generator sends: a weighted mix of event types with payloads
//! shaped like real traffic (failed logins, a tail of large purchases, 5xx
//! API calls, heart-rate spikes), spread over a number of users, in single
//! or batched requests, with a share of invalid events and of retried ids.
//!
//! JSON is built only before the test: [`Templates`] renders a pool of
//! request bodies with fixed-width placeholders for the event id, the user
//! and the timestamp, and [`Bodies`] copies one per request and writes fresh
//! values into those slots.

use std::str::FromStr;

use serde_json::{Value, json};

use crate::random::Rng;

/// The event types the generator knows: the contract's known types.
pub use eventpipe_contract::KNOWN_TYPES as EVENT_TYPES;

/// Placeholders, each as wide as what replaces it.
const ID_SLOT: &str = "00000000-0000-0000-0000-000000000000";
const USER_SLOT: &str = "user-#######";
const TIME_SLOT: &str = "2000-01-01T00:00:00.000Z";
/// Users are numbered in seven digits.
pub const MAX_USERS: u64 = 10_000_000;

/// Event types with weights: `login=30,purchase=20,...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix(pub Vec<(&'static str, u32)>);

impl std::fmt::Display for Mix {
    /// `type=weight,...`, as the flag takes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mix: Vec<String> = self.0.iter().map(|(t, w)| format!("{t}={w}")).collect();
        f.write_str(&mix.join(","))
    }
}

impl Default for Mix {
    fn default() -> Self {
        Mix(vec![
            ("login", 25),
            ("purchase", 15),
            ("api_call", 30),
            ("heartbeat", 20),
            ("click", 7),
            ("file_access", 3),
        ])
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut mix = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let name = EVENT_TYPES
                .iter()
                .find(|t| **t == name.trim())
                .ok_or_else(|| {
                    format!(
                        "unknown event type {name:?} (known: {})",
                        EVENT_TYPES.join(", ")
                    )
                })?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("weight of {name} must be a whole number, got {weight:?}"))?;
            mix.push((*name, weight));
        }
        if mix.iter().all(|(_, w)| *w == 0) {
            return Err("needs at least one type with a positive weight".to_owned());
        }
        Ok(Mix(mix))
    }
}

/// Events per request with weights: `1` (single events), `100`, or
/// `1:20,100:70,1000:10`. A size of 1 sends the event as a bare object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSizes(pub Vec<(u32, u32)>);

impl FromStr for BatchSizes {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut sizes = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (size, weight) = part.split_once(':').unwrap_or((part, "1"));
            let size: u32 = size
                .trim()
                .parse()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| format!("batch size {size:?} must be a whole number ≥ 1"))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("weight of batch size {size} must be a whole number"))?;
            sizes.push((size, weight));
        }
        if sizes.iter().all(|(_, w)| *w == 0) {
            return Err("needs at least one size with a positive weight".to_owned());
        }
        Ok(BatchSizes(sizes))
    }
}

impl std::fmt::Display for BatchSizes {
    /// `size:weight,...`, as the flag takes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sizes: Vec<String> = self.0.iter().map(|(s, w)| format!("{s}:{w}")).collect();
        f.write_str(&sizes.join(","))
    }
}

impl BatchSizes {
    /// The largest size.
    pub fn max(&self) -> u32 {
        self.0.iter().map(|(s, _)| *s).max().unwrap_or(1)
    }

    /// The mean size, by weight.
    pub fn mean(&self) -> f64 {
        let total: f64 = self.0.iter().map(|(_, w)| f64::from(*w)).sum();
        self.0
            .iter()
            .map(|(s, w)| f64::from(*s) * f64::from(*w))
            .sum::<f64>()
            / total
    }
}

/// Everything that shapes the bodies.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Event types and weights.
    pub mix: Mix,
    /// Distinct users events are spread over.
    pub users: u64,
    /// Events per request.
    pub batch: BatchSizes,
    /// Share of events made invalid (their whole request expects 422).
    pub invalid_fraction: f64,
    /// Share of events that reuse an id the API already accepted.
    pub duplicate_fraction: f64,
    /// Seed for every random choice.
    pub seed: u64,
}

impl Default for Shape {
    /// Single events of the default mix over 1000 users, all valid, no
    /// retries.
    fn default() -> Self {
        Shape {
            mix: Mix::default(),
            users: 1000,
            batch: BatchSizes(vec![(1, 1)]),
            invalid_fraction: 0.0,
            duplicate_fraction: 0.0,
            seed: 1,
        }
    }
}

// Scenario files (TOML) spell a mix and batch sizes as the flags do.
macro_rules! deserialize_from_str {
    ($($t:ty),*) => {$(
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <String as serde::Deserialize>::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
deserialize_from_str!(Mix, BatchSizes);

/// One pre-rendered request body and where its slots are.
#[derive(Debug, Clone)]
pub struct Template {
    /// The body with placeholders.
    pub body: Vec<u8>,
    /// Byte offsets of each event's id.
    pub ids: Vec<usize>,
    /// Byte offsets of each event's user.
    pub users: Vec<usize>,
    /// Byte offsets of each event's timestamp.
    pub times: Vec<usize>,
    /// Whether every event in it is valid (so 202 is expected, else 422).
    pub valid: bool,
}

impl Template {
    /// A copy of the body with its slots filled: each event id by
    /// `write_id` (36 bytes, a UUID's text), each user drawn from `users`
    /// users, each timestamp `now` (RFC 3339, 24 bytes).
    pub fn render(
        &self,
        rng: &mut Rng,
        users: u64,
        now: &[u8; 24],
        mut write_id: impl FnMut(&mut Rng, &mut [u8]),
    ) -> Vec<u8> {
        let mut body = self.body.clone();
        for &at in &self.ids {
            write_id(rng, &mut body[at..at + 36]);
        }
        for &at in &self.users {
            write_user(rng.below(users), &mut body[at..at + 12]);
        }
        for &at in &self.times {
            body[at..at + 24].copy_from_slice(now);
        }
        body
    }
}

/// The pool of bodies requests are made from.
#[derive(Debug, Clone)]
pub struct Templates {
    /// The bodies.
    pub list: Vec<Template>,
}

/// Rendered bodies stop growing the pool past this many bytes.
const POOL_BYTES: usize = 64 << 20;
/// Bodies in the pool at most.
const POOL_SIZE: usize = 1024;

impl Templates {
    /// Renders the pool for `shape`.
    pub fn build(shape: &Shape) -> Self {
        let mut rng = Rng::new(shape.seed);
        let weights: Vec<u32> = shape.mix.0.iter().map(|(_, w)| *w).collect();
        let sizes: Vec<u32> = shape.batch.0.iter().map(|(_, w)| *w).collect();
        let mut list = Vec::new();
        let mut bytes = 0;
        while list.len() < POOL_SIZE && (bytes < POOL_BYTES || list.len() < 16) {
            let size = shape.batch.0[rng.weighted(&sizes)].0;
            let mut valid = true;
            let events: Vec<Value> = (0..size)
                .map(|_| {
                    let kind = shape.mix.0[rng.weighted(&weights)].0;
                    let mut event = event(kind, &mut rng);
                    if rng.chance(shape.invalid_fraction) {
                        spoil(&mut event, &mut rng);
                        valid = false;
                    }
                    event
                })
                .collect();
            let body = match &events[..] {
                [one] => one.to_string(),
                many => Value::from(many.to_vec()).to_string(),
            };
            bytes += body.len();
            list.push(Template {
                ids: offsets(&body, ID_SLOT),
                users: offsets(&body, USER_SLOT),
                times: offsets(&body, TIME_SLOT),
                body: body.into_bytes(),
                valid,
            });
        }
        Templates { list }
    }
}

fn offsets(body: &str, slot: &str) -> Vec<usize> {
    body.match_indices(slot).map(|(at, _)| at).collect()
}

/// One event of `kind` with a realistic payload.
fn event(kind: &'static str, rng: &mut Rng) -> Value {
    let (source, payload) = match kind {
        "login" => (
            *rng.pick(&["web", "ios", "android"]),
            json!({
                "success": !rng.chance(0.08),
                "location": *rng.pick(&["Berlin, DE", "Paris, FR", "Austin, US", "Lagos, NG", "Pune, IN", "Osaka, JP", "São Paulo, BR"]),
                "ip_address": format!("{}.{}", rng.pick(&["203.0.113", "198.51.100", "192.0.2"]), 1 + rng.below(254)),
                "login_method": *rng.pick(&["password", "password", "sso", "passkey", "magic_link"]),
            }),
        ),
        "purchase" => {
            // Most baskets are small; about 2% are above 1000.
            let amount = if rng.chance(0.02) {
                rng.between(1000.0, 8000.0)
            } else {
                rng.normal(3.6, 0.9).exp().min(999.0)
            };
            (
                *rng.pick(&["web", "ios", "android"]),
                json!({
                    "amount": (amount * 100.0).round() / 100.0,
                    "currency": *rng.pick(&["USD", "USD", "EUR", "EUR", "GBP", "JPY", "INR", "BRL"]),
                    "product_id": format!("sku-{:05}", rng.below(20_000)),
                    "quantity": 1 + rng.below(3),
                }),
            )
        }
        "api_call" => {
            let status = if rng.chance(0.02) {
                *rng.pick(&[500, 502, 503, 504])
            } else if rng.chance(0.04) {
                *rng.pick(&[400, 401, 404, 409, 429])
            } else {
                *rng.pick(&[200, 200, 200, 201, 204])
            };
            let slow = if status >= 500 { 8.0 } else { 1.0 };
            (
                "server",
                json!({
                    "status_code": status,
                    "endpoint": *rng.pick(&["/v1/orders", "/v1/orders/{id}", "/v1/cart", "/v1/search", "/v1/profile"]),
                    "method": *rng.pick(&["GET", "GET", "GET", "POST", "PUT", "DELETE"]),
                    "response_time_ms": (rng.normal(3.4, 0.6).exp() * slow).round() as i64,
                }),
            )
        }
        "heartbeat" => {
            // Resting rates, with rare spikes and rare lows.
            let rate = if rng.chance(0.01) {
                rng.between(150.0, 210.0)
            } else if rng.chance(0.005) {
                rng.between(28.0, 40.0)
            } else {
                rng.normal(72.0, 9.0).clamp(45.0, 120.0)
            };
            (
                "wearable",
                json!({ "heart_rate": rate.round() as i64, "device_id": format!("dev-{:04}", rng.below(5000)) }),
            )
        }
        "click" => (
            *rng.pick(&["web", "ios", "android"]),
            json!({
                "element": *rng.pick(&["buy-button", "nav-home", "search", "banner", "add-to-cart"]),
                "page": *rng.pick(&["/", "/product", "/cart", "/checkout", "/search"]),
            }),
        ),
        _ => (
            "server",
            json!({
                "file_path": format!("/srv/share/{}/{:04}.pdf", rng.pick(&["finance", "hr", "eng"]), rng.below(10_000)),
                "action": *rng.pick(&["read", "read", "read", "write", "delete"]),
                "bytes": rng.below(50_000_000),
            }),
        ),
    };
    json!({
        "event_id": ID_SLOT,
        "user_id": USER_SLOT,
        "type": kind,
        "timestamp": TIME_SLOT,
        "source": source,
        "payload": payload,
    })
}

/// Makes `event` invalid in one of the ways clients get wrong, keeping its
/// id so the audit can check it was not stored.
fn spoil(event: &mut Value, rng: &mut Rng) {
    let Some(fields) = event.as_object_mut() else {
        return;
    };
    match rng.below(4) {
        0 => {
            fields.insert("type".to_owned(), json!(42));
        }
        1 => {
            fields.insert("payload".to_owned(), json!("not an object"));
        }
        2 => {
            fields.insert("type".to_owned(), json!("heartbeat"));
            fields.insert("payload".to_owned(), json!({ "heart_rate": 900 }));
        }
        _ => {
            fields.insert("type".to_owned(), json!("purchase"));
            fields.insert(
                "payload".to_owned(),
                json!({ "amount": -5, "currency": "EUR" }),
            );
        }
    }
}

/// Writes the user slot: `user-0001234`.
pub fn write_user(user: u64, out: &mut [u8]) {
    out[..5].copy_from_slice(b"user-");
    let mut n = user % MAX_USERS;
    for digit in out[5..12].iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(invalid: f64) -> Shape {
        Shape {
            mix: Mix::default(),
            users: 100,
            batch: "1:1,10:1".parse().unwrap(),
            invalid_fraction: invalid,
            duplicate_fraction: 0.0,
            seed: 1,
        }
    }

    #[test]
    fn every_event_has_its_three_slots() {
        let templates = Templates::build(&shape(0.0));
        assert_eq!(templates.list.len(), POOL_SIZE);
        for t in &templates.list {
            assert_eq!(t.ids.len(), t.users.len());
            assert_eq!(t.ids.len(), t.times.len());
            assert!(t.valid);
            let parsed: Value = serde_json::from_slice(&t.body).unwrap();
            let count = parsed.as_array().map_or(1, Vec::len);
            assert_eq!(count, t.ids.len());
        }
    }

    #[test]
    fn invalid_events_make_their_request_invalid() {
        let templates = Templates::build(&shape(0.2));
        let invalid = templates.list.iter().filter(|t| !t.valid).count();
        assert!(invalid > 100 && invalid < POOL_SIZE, "{invalid}");
    }

    #[test]
    fn mixes_and_sizes_parse_or_say_why_not() {
        assert_eq!(
            "login=3, purchase=1".parse::<Mix>().unwrap().0,
            vec![("login", 3), ("purchase", 1)]
        );
        assert!(
            "login=3,teleport=1"
                .parse::<Mix>()
                .unwrap_err()
                .contains("teleport")
        );
        assert!("login=0".parse::<Mix>().is_err());
        assert_eq!("1:20,100:80".parse::<BatchSizes>().unwrap().max(), 100);
        assert!("0".parse::<BatchSizes>().is_err());
        assert!((("1:1,3:1".parse::<BatchSizes>().unwrap().mean()) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn users_are_seven_digits() {
        let mut out = *b"user-#######";
        write_user(42, &mut out);
        assert_eq!(&out, b"user-0000042");
    }
}
