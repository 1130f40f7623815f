//! Controls for sample traffic that never stops (`--forever --control
//! ADDR`), as the earlier systems' emitters had: an HTTP server that
//! changes the rate while the generator runs and fires bursts, and says
//! what it is doing.
//!
//! - `GET /`: the settings (events per second, mix, batch sizes, users,
//!   bursts under way) and the totals since start, as JSON;
//! - `PUT /rate` with `{"rate": N}`: N events per second from now on (0
//!   pauses);
//! - `POST /burst` with `{"events": N, "over": "5s"}`: N events more,
//!   spread over that long, on top of the rate;
//! - `GET /health`: 200 while it runs;
//! - `GET /metrics`: Prometheus text, names starting `eventpipe_load_`.
//!
//! A bad body gets 400 `application/problem+json` naming the field (a JSON
//! pointer). The rate is in events, as the API counts them; the generator
//! sends requests, so it paces them at the rate over the mean batch size
//! ([`LiveSchedule`]), reading the rate again at least every 100 ms.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::ledger::{ACCEPTED, REJECTED};

/// The most events per second the controls take.
pub const MAX_RATE: f64 = 10_000_000.0;
/// The longest a burst may be spread over.
pub const MAX_BURST_OVER: Duration = Duration::from_secs(3600);
/// The most events one burst may add.
pub const MAX_BURST_EVENTS: u64 = 100_000_000;
/// How long the pacer waits at most before reading the rate again.
const REREAD: Duration = Duration::from_millis(100);
/// The largest body a control request may have.
const MAX_BODY: usize = 4096;

/// A burst under way: `rate` more events per second until `until`.
#[derive(Debug, Clone, Copy)]
struct Burst {
    until: Instant,
    rate: f64,
}

/// The live settings and the totals, shared by the pacer, the VUs and the
/// control server.
#[derive(Debug)]
pub struct Control {
    /// Events per second, as `f64` bits.
    rate: AtomicU64,
    bursts: Mutex<Vec<Burst>>,
    /// Events per request, on average (the batch sizes' mean).
    mean_batch: f64,
    /// The mix, batch sizes and users, for `GET /`.
    described: Value,
    sent: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    unknown: AtomicU64,
}

impl Control {
    /// Controls starting at `rate` events per second, for bodies of
    /// `mean_batch` events on average, described by `described`.
    pub fn new(rate: f64, mean_batch: f64, described: Value) -> Self {
        Control {
            rate: AtomicU64::new(rate.to_bits()),
            bursts: Mutex::default(),
            mean_batch: mean_batch.max(1.0),
            described,
            sent: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
        }
    }

    /// The base rate, in events per second.
    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate.load(Ordering::Relaxed))
    }

    fn set_rate(&self, rate: f64) {
        self.rate.store(rate.to_bits(), Ordering::Relaxed);
    }

    /// Events per second at `now`: the rate and every burst under way.
    pub fn events_per_sec(&self, now: Instant) -> f64 {
        let mut bursts = self.bursts.lock().unwrap_or_else(PoisonError::into_inner);
        bursts.retain(|b| b.until > now);
        self.rate() + bursts.iter().map(|b| b.rate).sum::<f64>()
    }

    /// `events` more, spread over `over` from now.
    fn burst(&self, events: u64, over: Duration) {
        self.bursts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Burst {
                until: Instant::now() + over,
                rate: events as f64 / over.as_secs_f64(),
            });
    }

    /// Counts a request of `events` events and its outcome (a ledger flag).
    pub fn count(&self, events: u64, outcome: u8) {
        self.sent.fetch_add(events, Ordering::Relaxed);
        let counter = match outcome {
            ACCEPTED => &self.accepted,
            REJECTED => &self.rejected,
            _ => &self.unknown,
        };
        counter.fetch_add(events, Ordering::Relaxed);
    }

    fn settings(&self) -> Value {
        let now = Instant::now();
        let bursts: Vec<Value> = {
            let mut bursts = self.bursts.lock().unwrap_or_else(PoisonError::into_inner);
            bursts.retain(|b| b.until > now);
            bursts
                .iter()
                .map(|b| {
                    let left = b.until - now;
                    json!({
                        "events_per_sec": b.rate,
                        "events_left": (b.rate * left.as_secs_f64()).round() as u64,
                        "ends_in": crate::duration::format(left),
                    })
                })
                .collect()
        };
        let mut settings = json!({
            "rate": self.rate(),
            "events_per_sec_now": self.events_per_sec(now),
            "requests_per_sec_now": self.events_per_sec(now) / self.mean_batch,
            "mean_batch": self.mean_batch,
            "bursts": bursts,
            "totals": {
                "sent": self.sent.load(Ordering::Relaxed),
                "accepted": self.accepted.load(Ordering::Relaxed),
                "rejected": self.rejected.load(Ordering::Relaxed),
                "outcome_unknown": self.unknown.load(Ordering::Relaxed),
            },
        });
        if let (Some(settings), Some(described)) =
            (settings.as_object_mut(), self.described.as_object())
        {
            settings.extend(described.clone());
        }
        settings
    }

    fn metrics(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, value: String| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        };
        family(
            "eventpipe_load_events_sent_total",
            "counter",
            "Events sent",
            self.sent.load(Ordering::Relaxed).to_string(),
        );
        family(
            "eventpipe_load_events_accepted_total",
            "counter",
            "Events the API accepted (202)",
            self.accepted.load(Ordering::Relaxed).to_string(),
        );
        family(
            "eventpipe_load_events_rejected_total",
            "counter",
            "Events the API refused with a 4xx",
            self.rejected.load(Ordering::Relaxed).to_string(),
        );
        family(
            "eventpipe_load_events_outcome_unknown_total",
            "counter",
            "Events answered 5xx or not at all",
            self.unknown.load(Ordering::Relaxed).to_string(),
        );
        family(
            "eventpipe_load_rate_events_per_second",
            "gauge",
            "Events per second asked for now: the rate and the bursts under way",
            self.events_per_sec(Instant::now()).to_string(),
        );
        out
    }

    /// Serves the controls on `listener` until the process ends.
    pub fn serve(self: Arc<Self>, listener: TcpListener) {
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let control = self.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let control = control.clone();
                        async move { Ok::<_, Infallible>(control.answer(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        match (method, path.as_str()) {
            (Method::GET, "/") => json_answer(StatusCode::OK, &self.settings()),
            (Method::GET, "/health") => json_answer(StatusCode::OK, &json!({"status": "ok"})),
            (Method::GET, "/metrics") => {
                let mut response = Response::new(Full::new(Bytes::from(self.metrics())));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            (Method::PUT, "/rate") => match body(request).await.and_then(|b| rate(&b)) {
                Ok(rate) => {
                    self.set_rate(rate);
                    json_answer(StatusCode::OK, &self.settings())
                }
                Err(bad) => bad.into_response(),
            },
            (Method::POST, "/burst") => match body(request).await.and_then(|b| burst(&b)) {
                Ok((events, over)) => {
                    self.burst(events, over);
                    json_answer(StatusCode::ACCEPTED, &self.settings())
                }
                Err(bad) => bad.into_response(),
            },
            (_, "/" | "/health" | "/metrics" | "/rate" | "/burst") => Bad {
                status: StatusCode::METHOD_NOT_ALLOWED,
                pointer: None,
                detail: format!(
                    "{path} takes {}",
                    match path.as_str() {
                        "/rate" => "PUT",
                        "/burst" => "POST",
                        _ => "GET",
                    }
                ),
            }
            .into_response(),
            _ => Bad {
                status: StatusCode::NOT_FOUND,
                pointer: None,
                detail: format!(
                    "no control at {path}: GET /, PUT /rate, POST /burst, GET /health, GET /metrics"
                ),
            }
            .into_response(),
        }
    }
}

/// A refused control request.
#[derive(Debug)]
struct Bad {
    status: StatusCode,
    /// The field at fault, as a JSON pointer.
    pointer: Option<&'static str>,
    detail: String,
}

impl Bad {
    fn field(pointer: &'static str, detail: impl Into<String>) -> Self {
        Bad {
            status: StatusCode::BAD_REQUEST,
            pointer: Some(pointer),
            detail: detail.into(),
        }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut problem = json!({
            "type": "urn:eventpipe:problem:bad-control",
            "title": "Bad control request",
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let (Some(pointer), Some(problem)) = (self.pointer, problem.as_object_mut()) {
            problem.insert("pointer".to_owned(), Value::from(pointer));
        }
        let mut response = json_answer(self.status, &problem);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

fn json_answer(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The request's body as a JSON object.
async fn body(request: Request<Incoming>) -> Result<serde_json::Map<String, Value>, Bad> {
    let bytes = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| {
            Bad::field(
                "",
                format!("the body must be JSON of at most {MAX_BODY} bytes"),
            )
        })?
        .to_bytes();
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(Bad::field("", "the body must be a JSON object")),
        Err(e) => Err(Bad::field("", format!("the body is not JSON: {e}"))),
    }
}

/// `{"rate": N}`: N events per second, 0 to [`MAX_RATE`].
fn rate(body: &serde_json::Map<String, Value>) -> Result<f64, Bad> {
    only(body, &["rate"])?;
    let rate = body
        .get("rate")
        .ok_or_else(|| Bad::field("/rate", "rate is required: events per second"))?;
    match rate.as_f64() {
        Some(r) if (0.0..=MAX_RATE).contains(&r) => Ok(r),
        _ => Err(Bad::field(
            "/rate",
            format!("rate must be a number of events per second from 0 to {MAX_RATE}, got {rate}"),
        )),
    }
}

/// `{"events": N, "over": "5s"}`.
fn burst(body: &serde_json::Map<String, Value>) -> Result<(u64, Duration), Bad> {
    only(body, &["events", "over"])?;
    let events = body
        .get("events")
        .ok_or_else(|| Bad::field("/events", "events is required: how many events to add"))?;
    let events = match events.as_u64() {
        Some(n) if (1..=MAX_BURST_EVENTS).contains(&n) => n,
        _ => {
            return Err(Bad::field(
                "/events",
                format!("events must be a whole number from 1 to {MAX_BURST_EVENTS}, got {events}"),
            ));
        }
    };
    let over = match body.get("over") {
        None => Duration::from_secs(1),
        Some(Value::String(text)) => {
            crate::duration::parse(text).map_err(|e| Bad::field("/over", format!("over: {e}")))?
        }
        Some(other) => {
            return Err(Bad::field(
                "/over",
                format!("over must be a duration such as \"5s\", got {other}"),
            ));
        }
    };
    if over.is_zero() || over > MAX_BURST_OVER {
        return Err(Bad::field(
            "/over",
            format!(
                "over must be longer than 0 and at most {}",
                crate::duration::format(MAX_BURST_OVER)
            ),
        ));
    }
    Ok((events, over))
}

/// Refuses fields other than `known`.
fn only(body: &serde_json::Map<String, Value>, known: &[&str]) -> Result<(), Bad> {
    match body.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(Bad::field(
            "",
            format!(
                "unknown field {unknown:?}; this control takes {}",
                known.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// Start times paced by [`Control`]'s rate, read again at least every
/// 100 ms, for `duration` (a round of `--forever`) or until `stop`.
#[derive(Debug)]
pub struct LiveSchedule {
    control: Arc<Control>,
    duration: Duration,
    stop: Arc<AtomicBool>,
    origin: Option<Instant>,
    /// Seconds from the origin of the last start.
    last: f64,
}

impl LiveSchedule {
    /// A schedule following `control` for `duration`.
    pub fn new(control: Arc<Control>, duration: Duration, stop: Arc<AtomicBool>) -> Self {
        LiveSchedule {
            control,
            duration,
            stop,
            origin: None,
            last: 0.0,
        }
    }
}

impl Iterator for LiveSchedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let origin = *self.origin.get_or_insert_with(Instant::now);
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            let now = Instant::now();
            let elapsed = now.duration_since(origin).as_secs_f64();
            if elapsed >= self.duration.as_secs_f64() {
                return None;
            }
            let requests = self.control.events_per_sec(now) / self.control.mean_batch;
            if requests <= 0.0 {
                // Paused: start again from now when the rate comes back.
                self.last = elapsed;
                std::thread::sleep(REREAD);
                continue;
            }
            // Not more than a second of catching up after a pause or a
            // lower rate: the schedule follows the rate asked for now.
            let next = (self.last + 1.0 / requests).max(elapsed - 1.0);
            if next - elapsed > REREAD.as_secs_f64() {
                std::thread::sleep(REREAD);
                continue;
            }
            self.last = next;
            return Some(Duration::from_secs_f64(next.max(0.0)));
        }
    }
}
