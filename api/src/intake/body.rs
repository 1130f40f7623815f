//! From request body to validated events: media type and content encoding,
//! gzip with a cap on the decompressed size, JSON (one event or an array)
//! and NDJSON framing, the size and count limits, and validation of every
//! event. Each step fails with its own status and a message naming what was
//! wrong (docs/API.md lists them: 400, 413, 415, 422).

use std::borrow::Cow;
use std::io::Read;

use axum::http::{HeaderMap, header};
use chrono::{DateTime, Utc};
use eventpipe_contract::{EventRecord, Rules, validate_event};
use flate2::read::MultiGzDecoder;
use serde_json::value::RawValue;

use crate::config::Limits;
use crate::error::{AppError, EventError, bad_request, too_large, unsupported_media_type};

/// How the events in a body are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`: one event object or an array of them.
    Json,
    /// `application/x-ndjson`: one event object per line.
    NdJson,
}

/// The framing named by `Content-Type`.
pub fn format_of(headers: &HeaderMap) -> Result<Format, AppError> {
    const EXPECTED: &str = "send Content-Type: application/json (an event or an array of events) or application/x-ndjson (one event per line)";
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(unsupported_media_type(format!(
            "missing Content-Type; {EXPECTED}"
        )));
    };
    let value = value.to_str().unwrap_or("").to_ascii_lowercase();
    let mut parts = value.split(';').map(str::trim);
    let format = match parts.next().unwrap_or("") {
        "application/json" => Format::Json,
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Format::NdJson,
        other => {
            return Err(unsupported_media_type(format!(
                "Content-Type {other:?} is not supported; {EXPECTED}"
            )));
        }
    };
    for param in parts {
        if let Some(charset) = param.strip_prefix("charset=")
            && !charset.trim_matches('"').eq_ignore_ascii_case("utf-8")
        {
            return Err(unsupported_media_type(format!(
                "charset {charset} is not supported; bodies must be UTF-8"
            )));
        }
    }
    Ok(format)
}

/// The body with its `Content-Encoding` undone.
pub fn decode<'a>(
    headers: &HeaderMap,
    body: &'a [u8],
    limits: &Limits,
) -> Result<Cow<'a, [u8]>, AppError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("" | "identity") => Ok(Cow::Borrowed(body)),
        Some("gzip" | "x-gzip") => {
            let cap = limits.max_decompressed_bytes;
            let mut out = Vec::with_capacity((body.len() * 4).min(cap));
            MultiGzDecoder::new(body)
                .take(cap as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| bad_request(format!("body is not valid gzip: {e}")))?;
            if out.len() > cap {
                return Err(too_large(format!(
                    "gzip body decompresses to more than {cap} bytes, the limit"
                )));
            }
            Ok(Cow::Owned(out))
        }
        Some(other) => Err(unsupported_media_type(format!(
            "Content-Encoding {other:?} is not supported; use gzip or none"
        ))),
    }
}

/// The body as text.
pub fn text(body: &[u8]) -> Result<&str, AppError> {
    std::str::from_utf8(body).map_err(|e| {
        bad_request(format!(
            "body is not valid UTF-8 (bad byte at offset {})",
            e.valid_up_to()
        ))
    })
}

/// Splits a body into its events, unparsed, enforcing the count and
/// per-event size limits.
pub fn split<'a>(
    format: Format,
    text: &'a str,
    limits: &Limits,
) -> Result<Vec<&'a RawValue>, AppError> {
    let events = match format {
        Format::Json => split_json(text)?,
        Format::NdJson => split_ndjson(text, limits.max_batch_events)?,
    };
    if events.is_empty() {
        return Err(AppError::Invalid(vec![EventError {
            index: 0,
            pointer: String::new(),
            message: "the request holds no events; send at least one".to_owned(),
        }]));
    }
    if events.len() > limits.max_batch_events {
        return Err(too_large(format!(
            "the request holds {} events; at most {} are accepted per request",
            events.len(),
            limits.max_batch_events
        )));
    }
    if let Some((index, event)) = events
        .iter()
        .enumerate()
        .find(|(_, e)| e.get().len() > limits.max_event_bytes)
    {
        return Err(too_large(format!(
            "event {index} is {} bytes; at most {} bytes are accepted per event",
            event.get().len(),
            limits.max_event_bytes
        )));
    }
    Ok(events)
}

fn split_json(text: &str) -> Result<Vec<&RawValue>, AppError> {
    let malformed = |e: serde_json::Error| bad_request(format!("malformed JSON: {e}"));
    match text.trim_start().as_bytes().first() {
        None => Err(bad_request(
            "the body is empty; send an event object or an array of events",
        )),
        Some(b'[') => serde_json::from_str(text).map_err(malformed),
        Some(b'{') => serde_json::from_str(text)
            .map(|one| vec![one])
            .map_err(malformed),
        Some(_) => {
            let value: &RawValue = serde_json::from_str(text).map_err(malformed)?;
            Err(AppError::Invalid(vec![EventError {
                index: 0,
                pointer: String::new(),
                message: format!(
                    "the body must be an event object or an array of events, not {}",
                    value.get().chars().next().map_or("empty", json_kind)
                ),
            }]))
        }
    }
}

fn json_kind(first: char) -> &'static str {
    match first {
        '"' => "a string",
        't' | 'f' => "a boolean",
        'n' => "null",
        _ => "a number",
    }
}

fn split_ndjson(text: &str, max_events: usize) -> Result<Vec<&RawValue>, AppError> {
    let mut events = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let event: &RawValue = serde_json::from_str(line)
            .map_err(|e| bad_request(format!("malformed JSON on line {}: {e}", n + 1)))?;
        events.push(event);
        // Stop early: a huge body need not be parsed to be refused.
        if events.len() > max_events {
            return Err(too_large(format!(
                "the request holds more than {max_events} events; at most {max_events} are accepted per request"
            )));
        }
    }
    Ok(events)
}

/// Validates every event; all-or-nothing, listing every error on failure.
pub fn validate<'a>(
    events: &[&'a RawValue],
    received_at: DateTime<Utc>,
    rules: &Rules,
) -> Result<Vec<EventRecord<'a>>, AppError> {
    let mut records = Vec::with_capacity(events.len());
    let mut errors = Vec::new();
    for (index, raw) in events.iter().enumerate() {
        match validate_event(raw, received_at, rules) {
            Ok(record) => records.push(record),
            Err(found) => errors.extend(found.into_iter().map(|e| EventError::at(index, e))),
        }
    }
    if errors.is_empty() {
        Ok(records)
    } else {
        Err(AppError::Invalid(errors))
    }
}

#[cfg(test)]
mod tests;
