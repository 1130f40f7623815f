//! Payload checks for the known event types. Each known type lists the
//! payload fields it gives meaning to and the rule each must satisfy when
//! present; other fields pass through untouched, and unknown types accept any
//! object (unless strict mode rejects the type itself).

use std::net::IpAddr;

use serde_json::value::RawValue;

use crate::currency::is_iso4217;
use crate::field_error::FieldError;
use crate::object::{self, kind, pointer_token};

/// Event types whose payload fields are checked, in the order the docs list them.
pub const KNOWN_TYPES: [&str; 6] = [
    "login",
    "purchase",
    "api_call",
    "heartbeat",
    "click",
    "file_access",
];

/// Lowest and highest heart rate (beats per minute) a sensor can report;
/// anything outside is a broken reading, not an anomaly.
pub(crate) const HEART_RATE_RANGE: (f64, f64) = (0.0, 300.0);

/// The rule one payload field must satisfy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rule {
    Bool,
    Text,
    IpAddress,
    Currency,
    NonNegative,
    StatusCode,
    HttpMethod,
    HeartRate,
}

/// The checked fields of each known type, in [`KNOWN_TYPES`] order (the
/// OpenAPI schema in `crate::schema` is built from this table too).
pub(crate) const FIELDS_BY_TYPE: [(&str, &[(&str, Rule)]); 6] = {
    use Rule::*;
    [
        (
            "login",
            &[
                ("success", Bool),
                ("location", Text),
                ("ip_address", IpAddress),
                ("login_method", Text),
            ],
        ),
        (
            "purchase",
            &[
                ("amount", NonNegative),
                ("currency", Currency),
                ("product_id", Text),
                ("payment_method", Text),
            ],
        ),
        (
            "api_call",
            &[
                ("status_code", StatusCode),
                ("endpoint", Text),
                ("method", HttpMethod),
                ("response_time_ms", NonNegative),
            ],
        ),
        ("heartbeat", &[("heart_rate", HeartRate)]),
        ("click", &[("element", Text), ("page", Text)]),
        ("file_access", &[("file_path", Text), ("action", Text)]),
    ]
};

/// The checked fields of `event_type`, if it is a known type.
fn fields_of(event_type: &str) -> Option<&'static [(&'static str, Rule)]> {
    FIELDS_BY_TYPE
        .iter()
        .find(|(name, _)| *name == event_type)
        .map(|(_, fields)| *fields)
}

/// True when `event_type` is one of [`KNOWN_TYPES`].
pub(crate) fn is_known(event_type: &str) -> bool {
    fields_of(event_type).is_some()
}

/// Checks the payload fields `event_type` gives meaning to, appending one
/// error per offending field. `payload` must already be known to be an object.
pub(crate) fn check(event_type: &str, payload: &RawValue, errors: &mut Vec<FieldError>) {
    let Some(rules) = fields_of(event_type) else {
        return;
    };
    let Some(members) = object::members(payload) else {
        return;
    };
    for (name, value) in &members.0 {
        let Some((_, rule)) = rules.iter().find(|(field, _)| field == name) else {
            continue;
        };
        if object::is_null(value) {
            continue;
        }
        if let Err(message) = check_value(*rule, value) {
            errors.push(FieldError::new(
                format!("/payload/{}", pointer_token(name)),
                message,
            ));
        }
    }
}

fn check_value(rule: Rule, value: &RawValue) -> Result<(), String> {
    let got = || format!("got {}", kind(value));
    match rule {
        Rule::Bool => match value.get() {
            "true" | "false" => Ok(()),
            _ => Err(format!("must be a boolean ({})", got())),
        },
        Rule::Text => object::text(value)
            .map(drop)
            .ok_or_else(|| format!("must be a string ({})", got())),
        Rule::IpAddress => match object::text(value) {
            Some(s) if s.parse::<IpAddr>().is_ok() => Ok(()),
            Some(s) => Err(format!("must be an IPv4 or IPv6 address, got {s:?}")),
            None => Err(format!(
                "must be a string holding an IP address ({})",
                got()
            )),
        },
        Rule::Currency => match object::text(value) {
            Some(s) if is_iso4217(&s) => Ok(()),
            Some(s) => Err(format!(
                "must be an ISO 4217 currency code such as \"USD\", got {s:?}"
            )),
            None => Err(format!(
                "must be an ISO 4217 currency code string ({})",
                got()
            )),
        },
        Rule::NonNegative => match number(value) {
            Some(n) if n >= 0.0 => Ok(()),
            Some(n) => Err(format!("must be a number >= 0, got {n}")),
            None => Err(format!("must be a number >= 0 ({})", got())),
        },
        Rule::StatusCode => match value.get().parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => Ok(()),
            _ => Err(format!(
                "must be an integer HTTP status code from 100 to 599, got {}",
                value.get()
            )),
        },
        Rule::HttpMethod => match object::text(value) {
            Some(s) if is_http_method(&s) => Ok(()),
            _ => Err(format!(
                "must be an upper-case HTTP method such as \"GET\", got {}",
                value.get()
            )),
        },
        Rule::HeartRate => {
            let (low, high) = HEART_RATE_RANGE;
            match number(value) {
                Some(n) if (low..=high).contains(&n) => Ok(()),
                Some(n) => Err(format!(
                    "must be a heart rate from {low} to {high} beats per minute, got {n}"
                )),
                None => Err(format!("must be a number of beats per minute ({})", got())),
            }
        }
    }
}

/// The value of a JSON number, `None` for any other type.
fn number(value: &RawValue) -> Option<f64> {
    match value.get().as_bytes().first() {
        Some(b'-' | b'0'..=b'9') => value.get().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

/// An HTTP method token as RFC 9110 spells the registered ones: upper-case
/// letters only, so `get` and `GE T` are caught as typos.
fn is_http_method(s: &str) -> bool {
    (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(event_type: &str, payload: &str) -> Vec<(String, String)> {
        let raw: &RawValue = serde_json::from_str(payload).unwrap();
        let mut out = Vec::new();
        check(event_type, raw, &mut out);
        out.into_iter().map(|e| (e.pointer, e.message)).collect()
    }

    #[test]
    fn valid_known_payloads_pass() {
        let ok = [
            (
                "login",
                r#"{"success": false, "location": "US", "ip_address": "192.168.1.100", "login_method": "password"}"#,
            ),
            ("login", r#"{"ip_address": "::1"}"#),
            (
                "purchase",
                r#"{"amount": 99.99, "currency": "USD", "extra": [1]}"#,
            ),
            ("purchase", r#"{"amount": 0}"#),
            (
                "api_call",
                r#"{"status_code": 503, "endpoint": "/x", "method": "GET", "response_time_ms": 45}"#,
            ),
            ("heartbeat", r#"{"heart_rate": 72.5}"#),
            ("click", r#"{"element": "buy", "page": "/cart"}"#),
            (
                "file_access",
                r#"{"file_path": "/etc/passwd", "action": "read"}"#,
            ),
            ("custom.type", r#"{"anything": {"goes": true}}"#),
            ("login", r#"{"success": null}"#),
        ];
        for (t, p) in ok {
            assert_eq!(errors(t, p), vec![], "{t} {p}");
        }
    }

    #[test]
    fn each_wrong_field_is_named() {
        let cases = [
            (
                "login",
                r#"{"success": "yes"}"#,
                "/payload/success",
                "must be a boolean (got a string)",
            ),
            (
                "login",
                r#"{"ip_address": "999.1.1.1"}"#,
                "/payload/ip_address",
                "IPv4 or IPv6",
            ),
            (
                "login",
                r#"{"location": 7}"#,
                "/payload/location",
                "must be a string (got a number)",
            ),
            (
                "purchase",
                r#"{"amount": -1}"#,
                "/payload/amount",
                "must be a number >= 0, got -1",
            ),
            (
                "purchase",
                r#"{"amount": "12"}"#,
                "/payload/amount",
                "got a string",
            ),
            (
                "purchase",
                r#"{"currency": "usd"}"#,
                "/payload/currency",
                "ISO 4217",
            ),
            (
                "purchase",
                r#"{"currency": "ABC"}"#,
                "/payload/currency",
                "ISO 4217",
            ),
            (
                "api_call",
                r#"{"status_code": 99}"#,
                "/payload/status_code",
                "100 to 599, got 99",
            ),
            (
                "api_call",
                r#"{"status_code": 200.5}"#,
                "/payload/status_code",
                "100 to 599",
            ),
            (
                "api_call",
                r#"{"status_code": 600}"#,
                "/payload/status_code",
                "100 to 599",
            ),
            (
                "api_call",
                r#"{"method": "get"}"#,
                "/payload/method",
                "HTTP method",
            ),
            (
                "api_call",
                r#"{"response_time_ms": -0.5}"#,
                "/payload/response_time_ms",
                ">= 0",
            ),
            (
                "heartbeat",
                r#"{"heart_rate": "72"}"#,
                "/payload/heart_rate",
                "beats per minute",
            ),
            (
                "heartbeat",
                r#"{"heart_rate": 301}"#,
                "/payload/heart_rate",
                "0 to 300",
            ),
        ];
        for (t, p, pointer, message) in cases {
            let got = errors(t, p);
            assert_eq!(got.len(), 1, "{t} {p}: {got:?}");
            assert_eq!(got[0].0, pointer);
            assert!(got[0].1.contains(message), "{t} {p}: {}", got[0].1);
        }
    }

    #[test]
    fn every_bad_field_is_reported_not_just_the_first() {
        let got = errors("purchase", r#"{"amount": -5, "currency": 1}"#);
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn known_types_all_have_rules() {
        assert!(KNOWN_TYPES.iter().all(|t| is_known(t)));
        assert!(!is_known("signup"));
    }
}
