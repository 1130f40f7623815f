//! The parameter types: each reads its text ([`Param::parse`]) and states
//! its schema ([`utoipa::PartialSchema`]), side by side, so the two cannot
//! drift apart.

use chrono::{DateTime, Utc};
use eventpipe_contract::schema::{EVENT_TYPE, NO_CONTROL};
use eventpipe_contract::validate::{
    SOURCE_MAX_CHARS, USER_ID_MAX_CHARS, check_event_type, check_text,
};
use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};

use super::param::{Param, ParamError, digits, refuse};
use super::schema::{empty, integer, list, list_text, one_of, text};
use crate::analytics::{INTERVALS, Interval};
use crate::limits::{LATEST_EPOCH_MS, MAX_HOURS, MAX_LIMIT, MAX_LIST};

/// A parameter type's schema, and the name utoipa knows it by.
macro_rules! schema {
    ($type:ty, $schema:expr) => {
        impl utoipa::PartialSchema for $type {
            fn schema() -> RefOr<Schema> {
                RefOr::T($schema)
            }
        }
        impl utoipa::ToSchema for $type {}
    };
}

/// `from`, `to`: epoch milliseconds (what Grafana's `${__from}` gives; 0 to
/// [`LATEST_EPOCH_MS`]) or any RFC 3339 time (events may be older than
/// 1970, and reading them back must be possible).
pub struct Instant;

impl Param for Instant {
    type Value = DateTime<Utc>;

    fn parse(name: &'static str, value: &str) -> Result<DateTime<Utc>, ParamError> {
        if value.bytes().all(|b| b.is_ascii_digit()) {
            return match digits(value) {
                Some(ms) if ms <= LATEST_EPOCH_MS => DateTime::from_timestamp_millis(ms)
                    .map_or_else(|| refuse(name, "out of range"), Ok),
                _ => refuse(
                    name,
                    format!(
                        "epoch milliseconds must be at most {LATEST_EPOCH_MS} (9999-12-31), got {value:?}"
                    ),
                ),
            };
        }
        match DateTime::parse_from_rfc3339(value) {
            Ok(t) => Ok(t.to_utc()),
            Err(_) => refuse(
                name,
                format!(
                    "must be epoch milliseconds or an RFC 3339 time such as 2026-11-24T12:00:00Z, got {value:?}"
                ),
            ),
        }
    }
}

schema!(
    Instant,
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0))
                .maximum(Some(LATEST_EPOCH_MS)),
        )
        .item(text().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))))
        .item(empty())
        .into()
);

/// An integer from 1 to `MAX`, written in plain digits.
pub struct Counted<const MAX: u32>;

/// `limit`: rows, 1 to [`MAX_LIMIT`].
pub type Limit = Counted<MAX_LIMIT>;

/// `hours`: a window before now, 1 to [`MAX_HOURS`].
pub type Hours = Counted<MAX_HOURS>;

impl<const MAX: u32> Param for Counted<MAX> {
    type Value = u32;

    fn parse(name: &'static str, value: &str) -> Result<u32, ParamError> {
        match digits(value).and_then(|n| u32::try_from(n).ok()) {
            Some(n) if (1..=MAX).contains(&n) => Ok(n),
            _ => refuse(
                name,
                format!("must be an integer from 1 to {MAX}, got {value:?}"),
            ),
        }
    }
}

impl<const MAX: u32> utoipa::PartialSchema for Counted<MAX> {
    fn schema() -> RefOr<Schema> {
        RefOr::T(integer(1, i64::from(MAX)))
    }
}

impl<const MAX: u32> utoipa::ToSchema for Counted<MAX> {}

/// `interval`: one of the bucket widths ([`INTERVALS`]).
pub struct IntervalName;

impl Param for IntervalName {
    type Value = Interval;

    fn parse(name: &'static str, value: &str) -> Result<Interval, ParamError> {
        Interval::named(value).ok_or_else(|| ParamError {
            parameter: name,
            message: format!(
                "must be one of {}, got {value:?}",
                INTERVALS.map(|i| i.name).join(", ")
            ),
        })
    }
}

schema!(IntervalName, one_of(&INTERVALS.map(|i| i.name)));

/// `interval_ms`: a positive number of milliseconds.
pub struct IntervalMs;

impl Param for IntervalMs {
    type Value = i64;

    fn parse(name: &'static str, value: &str) -> Result<i64, ParamError> {
        match digits(value) {
            Some(ms) if ms > 0 => Ok(ms),
            _ => refuse(name, format!("must be a positive integer, got {value:?}")),
        }
    }
}

schema!(IntervalMs, integer(1, i64::MAX));

/// One of `allowed`, by name.
fn choice<T: Copy>(
    name: &'static str,
    value: &str,
    allowed: &[(&str, T)],
) -> Result<T, ParamError> {
    match allowed.iter().find(|(n, _)| *n == value) {
        Some((_, chosen)) => Ok(*chosen),
        None => refuse(
            name,
            format!(
                "must be one of {}, got {value:?}",
                allowed
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    }
}

/// Which event column a count is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKey {
    /// `event_type`.
    Type,
    /// `source`.
    Source,
}

/// Which anomaly column a count is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnomalyKey {
    /// `rule`.
    Rule,
    /// `severity`.
    Severity,
}

/// `group_by` or `by` of event counts: `type` or `source`.
pub struct EventGroup;

const EVENT_GROUPS: [(&str, EventKey); 2] =
    [("type", EventKey::Type), ("source", EventKey::Source)];

impl Param for EventGroup {
    type Value = EventKey;

    fn parse(name: &'static str, value: &str) -> Result<EventKey, ParamError> {
        choice(name, value, &EVENT_GROUPS)
    }
}

schema!(EventGroup, one_of(&EVENT_GROUPS.map(|(n, _)| n)));

/// `group_by` of anomaly counts: by rule, by severity, or both (whether
/// each).
pub struct AnomalyGroups;

const ANOMALY_GROUPINGS: [(&str, (bool, bool)); 4] = [
    ("rule", (true, false)),
    ("severity", (false, true)),
    ("rule,severity", (true, true)),
    ("severity,rule", (true, true)),
];

impl Param for AnomalyGroups {
    type Value = (bool, bool);

    fn parse(name: &'static str, value: &str) -> Result<(bool, bool), ParamError> {
        choice(name, value, &ANOMALY_GROUPINGS)
    }
}

schema!(AnomalyGroups, one_of(&ANOMALY_GROUPINGS.map(|(n, _)| n)));

/// `group_by` of an anomaly time series: `rule` or `severity`.
pub struct AnomalyGroup;

const ANOMALY_GROUPS: [(&str, AnomalyKey); 2] = [
    ("rule", AnomalyKey::Rule),
    ("severity", AnomalyKey::Severity),
];

impl Param for AnomalyGroup {
    type Value = AnomalyKey;

    fn parse(name: &'static str, value: &str) -> Result<AnomalyKey, ParamError> {
        choice(name, value, &ANOMALY_GROUPS)
    }
}

schema!(AnomalyGroup, one_of(&ANOMALY_GROUPS.map(|(n, _)| n)));

/// A comma-separated list, each value checked; empty values are skipped
/// (`login,` is `login`, and an empty list means no filter, which is what
/// a dashboard's empty text box sends). Values are not trimmed.
fn items(
    name: &'static str,
    value: &str,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<Vec<String>, ParamError> {
    // Counted as written, empty ones too, as the document's maxItems counts.
    let written = value.split(',').count();
    if written > MAX_LIST {
        return refuse(name, format!("at most {MAX_LIST} values, got {written}"));
    }
    let items: Vec<String> = value
        .split(',')
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect();
    for item in &items {
        check(item).or_else(|m| refuse(name, m))?;
    }
    Ok(items)
}

/// `type`: event types, as the contract writes them.
pub struct EventTypes;

impl Param for EventTypes {
    type Value = Vec<String>;

    fn parse(name: &'static str, value: &str) -> Result<Vec<String>, ParamError> {
        items(name, value, check_event_type)
    }
}

schema!(
    EventTypes,
    list(text().pattern(Some(format!("^({EVENT_TYPE})?$"))))
);

/// `source`: sources.
pub struct Sources;

impl Param for Sources {
    type Value = Vec<String>;

    fn parse(name: &'static str, value: &str) -> Result<Vec<String>, ParamError> {
        items(name, value, |s| check_text(s, SOURCE_MAX_CHARS))
    }
}

schema!(Sources, list(list_text(SOURCE_MAX_CHARS)));

/// The longest rule name a filter takes.
const RULE_MAX_CHARS: usize = 128;

/// `rule`: rule names.
pub struct Rules;

impl Param for Rules {
    type Value = Vec<String>;

    fn parse(name: &'static str, value: &str) -> Result<Vec<String>, ParamError> {
        items(name, value, |r| check_text(r, RULE_MAX_CHARS))
    }
}

schema!(Rules, list(list_text(RULE_MAX_CHARS)));

/// `severity`: low, medium, high.
pub struct Severities;

impl Param for Severities {
    type Value = Vec<String>;

    fn parse(name: &'static str, value: &str) -> Result<Vec<String>, ParamError> {
        items(name, value, |s| {
            if ["low", "medium", "high"].contains(&s) {
                Ok(())
            } else {
                Err(format!("must be low, medium or high, got {s:?}"))
            }
        })
    }
}

schema!(
    Severities,
    list(text().enum_values(Some(["low", "medium", "high", ""])))
);

/// `user_id`: one user id, checked as the contract checks it (up to 128
/// characters, no control character); empty for any user.
pub struct UserId;

impl Param for UserId {
    type Value = String;

    fn parse(name: &'static str, value: &str) -> Result<String, ParamError> {
        check_text(value, USER_ID_MAX_CHARS)
            .map(|()| value.to_owned())
            .or_else(|m| refuse(name, m))
    }
}

schema!(
    UserId,
    text()
        .pattern(Some(format!("^[^{NO_CONTROL}]{{0,{USER_ID_MAX_CHARS}}}$")))
        .into()
);

/// The `{user_id}` of a `/api/v1/users/{user_id}/…` route: percent-encoded
/// in the path, checked as [`UserId`] checks it.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserPath {
    /// The user, percent-encoded: 1 to 128 characters, none a control character
    #[param(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    pub user_id: String,
}
