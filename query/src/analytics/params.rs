//! The analytics endpoints' query parameters: what each endpoint accepts
//! (the structs double as the OpenAPI parameter documentation) and their
//! parsing into checked requests. Every refusal names the parameter.
//!
//! Every parameter is optional text, so extraction itself never fails and
//! each value is judged here with a message a dashboard author can act on.
//! An empty value counts as absent (what a dashboard sends for "All"). An
//! unknown parameter is refused: a misspelt `group_by` would otherwise
//! draw the wrong chart without a word.

use chrono::{DateTime, TimeDelta, Utc};
use eventpipe_contract::validate::{
    SOURCE_MAX_CHARS, USER_ID_MAX_CHARS, check_event_type, check_text,
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Buckets, Interval, TimeRange};

/// A parameter the request got wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The parameter's name.
    pub parameter: &'static str,
    /// What is wrong with it.
    pub message: String,
}

pub(crate) fn refuse<T>(
    parameter: &'static str,
    message: impl Into<String>,
) -> Result<T, ParamError> {
    Err(ParamError {
        parameter,
        message: message.into(),
    })
}

/// The range used when a request gives no `from`.
pub const DEFAULT_SPAN: TimeDelta = TimeDelta::hours(24);
pub use crate::limits::{LATEST_EPOCH_MS, MAX_LIMIT, MAX_LIST};

/// `[from, to)` and the filters every event count takes.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CountsQuery {
    /// Start of the range, inclusive: epoch milliseconds or RFC 3339.
    /// Default: 24 hours before `to`.
    #[param(example = "1795434300000")]
    pub from: Option<String>,
    /// End of the range, exclusive: epoch milliseconds or RFC 3339; after
    /// `from`. Default: now.
    #[param(example = "2026-11-24T12:00:00Z")]
    pub to: Option<String>,
    /// Only these event types (comma-separated).
    #[serde(rename = "type")]
    #[param(rename = "type", example = "login,purchase")]
    pub event_type: Option<String>,
    /// Only these sources (comma-separated).
    #[param(example = "web")]
    pub source: Option<String>,
}

/// A time series of event counts.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TimeseriesQuery {
    /// Start of the range, inclusive: epoch milliseconds or RFC 3339.
    /// Default: 24 hours before `to`.
    pub from: Option<String>,
    /// End of the range, exclusive: epoch milliseconds or RFC 3339; after
    /// `from`. Default: now.
    pub to: Option<String>,
    /// Bucket width: 1m, 5m, 10m, 15m, 30m, 1h, 6h, 12h or 1d (not with
    /// `interval_ms`). Default: the shortest giving at most 200 buckets. A
    /// series has at most WORKER_ANALYTICS_MAX_BUCKETS buckets (10000).
    #[param(example = "5m")]
    pub interval: Option<String>,
    /// Bucket width in milliseconds (Grafana's `$__interval_ms`), snapped
    /// up to the nearest of the widths `interval` offers (not with
    /// `interval`).
    #[param(example = "60000")]
    pub interval_ms: Option<String>,
    /// One series per `type` or per `source`. Default: one series.
    #[param(example = "type")]
    pub group_by: Option<String>,
    /// Only these event types (comma-separated).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Only these sources (comma-separated).
    pub source: Option<String>,
}

/// The largest groups of event counts.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BreakdownQuery {
    /// Start of the range, inclusive: epoch milliseconds or RFC 3339.
    /// Default: 24 hours before `to`.
    pub from: Option<String>,
    /// End of the range, exclusive: epoch milliseconds or RFC 3339; after
    /// `from`. Default: now.
    pub to: Option<String>,
    /// Group by `type` (default) or `source`.
    #[param(example = "type")]
    pub by: Option<String>,
    /// Most groups to return, largest first: 1..=1000, default 10.
    #[param(example = "5")]
    pub limit: Option<String>,
    /// Only these event types (comma-separated).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Only these sources (comma-separated).
    pub source: Option<String>,
}

/// Anomalies counted.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AnomalyCountsQuery {
    /// Start of the range (of the triggering events' times), inclusive:
    /// epoch milliseconds or RFC 3339. Default: 24 hours before `to`.
    pub from: Option<String>,
    /// End of the range, exclusive: epoch milliseconds or RFC 3339; after
    /// `from`. Default: now.
    pub to: Option<String>,
    /// Only these rules (comma-separated).
    #[param(example = "high_value_purchase")]
    pub rule: Option<String>,
    /// Only these severities (comma-separated): low, medium, high.
    #[param(example = "high")]
    pub severity: Option<String>,
    /// Only this user's anomalies.
    #[param(example = "user-42")]
    pub user_id: Option<String>,
    /// Group by `rule`, `severity` or both (default).
    pub group_by: Option<String>,
}

/// A time series of anomaly counts.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AnomalySeriesQuery {
    /// Start of the range (of the triggering events' times), inclusive:
    /// epoch milliseconds or RFC 3339. Default: 24 hours before `to`.
    pub from: Option<String>,
    /// End of the range, exclusive: epoch milliseconds or RFC 3339; after
    /// `from`. Default: now.
    pub to: Option<String>,
    /// Only these rules (comma-separated).
    #[param(example = "high_value_purchase")]
    pub rule: Option<String>,
    /// Only these severities (comma-separated): low, medium, high.
    #[param(example = "high")]
    pub severity: Option<String>,
    /// Only this user's anomalies.
    #[param(example = "user-42")]
    pub user_id: Option<String>,
    /// One series per `rule` or `severity` (default: one series).
    pub group_by: Option<String>,
    /// Bucket width, as for event counts (not with `interval_ms`).
    pub interval: Option<String>,
    /// Bucket width in milliseconds, snapped up (not with `interval`).
    pub interval_ms: Option<String>,
}

/// The most recent anomalies.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecentAnomaliesQuery {
    /// Start of the range (of the triggering events' times), inclusive:
    /// epoch milliseconds or RFC 3339. Default: 24 hours before `to`.
    pub from: Option<String>,
    /// End of the range, exclusive: epoch milliseconds or RFC 3339; after
    /// `from`. Default: now.
    pub to: Option<String>,
    /// Only these rules (comma-separated).
    #[param(example = "high_value_purchase")]
    pub rule: Option<String>,
    /// Only these severities (comma-separated): low, medium, high.
    #[param(example = "high")]
    pub severity: Option<String>,
    /// Only this user's anomalies.
    #[param(example = "user-42")]
    pub user_id: Option<String>,
    /// Most anomalies to return, newest first: 1..=1000, default 100.
    pub limit: Option<String>,
}

/// Which event column a count is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKey {
    /// `type`.
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

/// Filters on event counts; empty lists filter nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Event types.
    pub types: Vec<String>,
    /// Sources.
    pub sources: Vec<String>,
}

/// Filters on anomalies; empty lists filter nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnomalyFilter {
    /// Rule names.
    pub rules: Vec<String>,
    /// Severities.
    pub severities: Vec<String>,
    /// One user.
    pub user_id: Option<String>,
}

/// A checked time-series request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series<K, F> {
    /// The range.
    pub range: TimeRange,
    /// Its buckets.
    pub buckets: Buckets,
    /// One series per value of this column, or one series.
    pub group: Option<K>,
    /// What to count.
    pub filter: F,
}

impl CountsQuery {
    /// The range and filter.
    pub fn parse(&self, now: DateTime<Utc>) -> Result<(TimeRange, EventFilter), ParamError> {
        Ok((
            range(self.from.as_deref(), self.to.as_deref(), now)?,
            event_filter(self.event_type.as_deref(), self.source.as_deref())?,
        ))
    }
}

impl TimeseriesQuery {
    /// The checked request, with at most `max_buckets` buckets.
    pub fn parse(
        &self,
        now: DateTime<Utc>,
        max_buckets: usize,
    ) -> Result<Series<EventKey, EventFilter>, ParamError> {
        let range = range(self.from.as_deref(), self.to.as_deref(), now)?;
        let group = choice(
            "group_by",
            self.group_by.as_deref(),
            &[("type", EventKey::Type), ("source", EventKey::Source)],
        )?;
        Ok(Series {
            buckets: buckets(
                &range,
                self.interval.as_deref(),
                self.interval_ms.as_deref(),
                max_buckets,
            )?,
            range,
            group,
            filter: event_filter(self.event_type.as_deref(), self.source.as_deref())?,
        })
    }
}

impl BreakdownQuery {
    /// Range, grouping column, row limit and filter.
    pub fn parse(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(TimeRange, EventKey, u32, EventFilter), ParamError> {
        let by = choice(
            "by",
            self.by.as_deref(),
            &[("type", EventKey::Type), ("source", EventKey::Source)],
        )?;
        Ok((
            range(self.from.as_deref(), self.to.as_deref(), now)?,
            by.unwrap_or(EventKey::Type),
            limit(self.limit.as_deref(), 10)?,
            event_filter(self.event_type.as_deref(), self.source.as_deref())?,
        ))
    }
}

impl AnomalyCountsQuery {
    /// The range, whether to group by rule and by severity, the filter.
    pub fn parse(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(TimeRange, bool, bool, AnomalyFilter), ParamError> {
        let (by_rule, by_severity) = choice(
            "group_by",
            self.group_by.as_deref(),
            &[
                ("rule", (true, false)),
                ("severity", (false, true)),
                ("rule,severity", (true, true)),
                ("severity,rule", (true, true)),
            ],
        )?
        .unwrap_or((true, true));
        Ok((
            range(self.from.as_deref(), self.to.as_deref(), now)?,
            by_rule,
            by_severity,
            anomaly_filter(
                self.rule.as_deref(),
                self.severity.as_deref(),
                self.user_id.as_deref(),
            )?,
        ))
    }
}

impl AnomalySeriesQuery {
    /// The checked request, with at most `max_buckets` buckets.
    pub fn parse(
        &self,
        now: DateTime<Utc>,
        max_buckets: usize,
    ) -> Result<Series<AnomalyKey, AnomalyFilter>, ParamError> {
        let range = range(self.from.as_deref(), self.to.as_deref(), now)?;
        let group = choice(
            "group_by",
            self.group_by.as_deref(),
            &[
                ("rule", AnomalyKey::Rule),
                ("severity", AnomalyKey::Severity),
            ],
        )?;
        Ok(Series {
            buckets: buckets(
                &range,
                self.interval.as_deref(),
                self.interval_ms.as_deref(),
                max_buckets,
            )?,
            range,
            group,
            filter: anomaly_filter(
                self.rule.as_deref(),
                self.severity.as_deref(),
                self.user_id.as_deref(),
            )?,
        })
    }
}

impl RecentAnomaliesQuery {
    /// The range, the row limit, the filter.
    pub fn parse(&self, now: DateTime<Utc>) -> Result<(TimeRange, u32, AnomalyFilter), ParamError> {
        Ok((
            range(self.from.as_deref(), self.to.as_deref(), now)?,
            limit(self.limit.as_deref(), 100)?,
            anomaly_filter(
                self.rule.as_deref(),
                self.severity.as_deref(),
                self.user_id.as_deref(),
            )?,
        ))
    }
}

/// Rules, severities and a user, each checked.
pub(crate) fn anomaly_filter(
    rule: Option<&str>,
    severity: Option<&str>,
    user: Option<&str>,
) -> Result<AnomalyFilter, ParamError> {
    Ok(AnomalyFilter {
        rules: list("rule", rule, |r| check_text(r, 128))?,
        severities: list("severity", severity, |s| {
            if ["low", "medium", "high"].contains(&s) {
                Ok(())
            } else {
                Err(format!("must be low, medium or high, got {s:?}"))
            }
        })?,
        user_id: user_id(user)?,
    })
}

/// One user id, checked as the contract checks it; `None` when absent.
pub(crate) fn user_id(value: Option<&str>) -> Result<Option<String>, ParamError> {
    present(value)
        .map(|u| {
            check_text(u, USER_ID_MAX_CHARS)
                .map(|()| u.to_owned())
                .or_else(|m| refuse("user_id", m))
        })
        .transpose()
}

/// `value` unless it is absent or empty. Not trimmed: `" 5"` is not a
/// number, and a user id may hold spaces.
pub(crate) fn present(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

/// An instant: epoch milliseconds (what Grafana's `${__from}` gives; 0 to
/// [`LATEST_EPOCH_MS`]) or any RFC 3339 time (events may be older than
/// 1970, and reading them back must be possible).
pub fn instant(parameter: &'static str, value: &str) -> Result<DateTime<Utc>, ParamError> {
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return match digits(value) {
            Some(ms) if ms <= LATEST_EPOCH_MS => DateTime::from_timestamp_millis(ms)
                .map_or_else(|| refuse(parameter, "out of range"), Ok),
            _ => refuse(
                parameter,
                format!(
                    "epoch milliseconds must be at most {LATEST_EPOCH_MS} (9999-12-31), got {value:?}"
                ),
            ),
        };
    }
    match DateTime::parse_from_rfc3339(value) {
        Ok(t) => Ok(t.to_utc()),
        Err(_) => refuse(
            parameter,
            format!(
                "must be epoch milliseconds or an RFC 3339 time such as 2026-11-24T12:00:00Z, got {value:?}"
            ),
        ),
    }
}

/// `[from, to)` with the defaults filled in.
pub fn range(
    from: Option<&str>,
    to: Option<&str>,
    now: DateTime<Utc>,
) -> Result<TimeRange, ParamError> {
    let to = present(to)
        .map(|v| instant("to", v))
        .transpose()?
        .unwrap_or(now);
    let from = match present(from) {
        Some(v) => instant("from", v)?,
        None => to - DEFAULT_SPAN,
    };
    if from >= to {
        return refuse(
            "to",
            format!(
                "must be after from (the range is [from, to)), got from={} to={}",
                eventpipe_contract::rfc3339::format(&from),
                eventpipe_contract::rfc3339::format(&to)
            ),
        );
    }
    Ok(TimeRange { from, to })
}

/// The buckets for `interval` or `interval_ms` (or the automatic width).
fn buckets(
    range: &TimeRange,
    interval: Option<&str>,
    interval_ms: Option<&str>,
    max: usize,
) -> Result<Buckets, ParamError> {
    let (chosen, parameter) = match (present(interval), present(interval_ms)) {
        (Some(_), Some(_)) => {
            return refuse("interval", "give interval or interval_ms, not both");
        }
        (Some(name), None) => (
            Interval::named(name).ok_or_else(|| ParamError {
                parameter: "interval",
                message: format!(
                    "must be one of {}, got {name:?}",
                    super::INTERVALS.map(|i| i.name).join(", ")
                ),
            })?,
            "interval",
        ),
        (None, Some(ms)) => match digits(ms) {
            Some(ms) if ms > 0 => (Interval::snapped(ms), "interval_ms"),
            _ => {
                return refuse(
                    "interval_ms",
                    format!("must be a positive integer, got {ms:?}"),
                );
            }
        },
        (None, None) => (Interval::auto(range), "from"),
    };
    Buckets::plan(range, chosen, max).or_else(|too_many| {
        refuse(
            parameter,
            format!(
                "{} buckets of {} would be needed; at most {} are returned: widen the interval or shorten the range",
                too_many.needed, chosen.name, too_many.max
            ),
        )
    })
}

/// One of `allowed`, by name.
fn choice<T: Copy>(
    parameter: &'static str,
    value: Option<&str>,
    allowed: &[(&str, T)],
) -> Result<Option<T>, ParamError> {
    let Some(value) = present(value) else {
        return Ok(None);
    };
    match allowed.iter().find(|(name, _)| *name == value) {
        Some((_, chosen)) => Ok(Some(*chosen)),
        None => refuse(
            parameter,
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

/// A row limit in 1..=[`MAX_LIMIT`].
pub(crate) fn limit(value: Option<&str>, default: u32) -> Result<u32, ParamError> {
    counted("limit", value, default, MAX_LIMIT)
}

/// An integer in 1..=`max`, `default` when absent.
pub(crate) fn counted(
    parameter: &'static str,
    value: Option<&str>,
    default: u32,
    max: u32,
) -> Result<u32, ParamError> {
    match present(value) {
        None => Ok(default),
        Some(v) => match digits(v).and_then(|n| u32::try_from(n).ok()) {
            Some(n) if (1..=max).contains(&n) => Ok(n),
            _ => refuse(
                parameter,
                format!("must be an integer from 1 to {max}, got {v:?}"),
            ),
        },
    }
}

/// `value` as a non-negative integer written in plain digits (no sign, no
/// spaces), if it is one that fits.
fn digits(value: &str) -> Option<i64> {
    value
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| value.parse().ok())
        .flatten()
}

/// A comma-separated list, each value checked; empty values are skipped
/// (`login,` is `login`, and an empty list means no filter, which is what
/// a dashboard's empty text box sends). Values are not trimmed.
fn list(
    parameter: &'static str,
    value: Option<&str>,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<Vec<String>, ParamError> {
    let Some(value) = present(value) else {
        return Ok(Vec::new());
    };
    // Counted as written, empty ones too, as the document's maxItems counts.
    let written = value.split(',').count();
    if written > MAX_LIST {
        return refuse(
            parameter,
            format!("at most {MAX_LIST} values, got {written}"),
        );
    }
    let items: Vec<String> = value
        .split(',')
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect();
    for item in &items {
        check(item).or_else(|m| refuse(parameter, m))?;
    }
    Ok(items)
}

pub(crate) fn event_filter(
    types: Option<&str>,
    sources: Option<&str>,
) -> Result<EventFilter, ParamError> {
    Ok(EventFilter {
        types: list("type", types, check_event_type)?,
        sources: list("source", sources, |s| check_text(s, SOURCE_MAX_CHARS))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn series(pairs: &[(&str, &str)]) -> Result<Series<EventKey, EventFilter>, ParamError> {
        let query: TimeseriesQuery =
            serde_urlencoded::from_str(&serde_urlencoded::to_string(pairs).unwrap()).unwrap();
        query.parse(now(), 10_000)
    }

    fn refused(result: Result<impl std::fmt::Debug, ParamError>) -> (&'static str, String) {
        let e = result.unwrap_err();
        (e.parameter, e.message)
    }

    #[test]
    fn times_are_epoch_ms_or_rfc3339_and_default_to_the_last_day() {
        let r = range(
            Some("1795518000000"),
            Some("2026-11-24T13:00:00+01:00"),
            now(),
        )
        .unwrap();
        assert_eq!(r.from, now() - TimeDelta::hours(1));
        assert_eq!(r.to, now());
        let r = range(None, Some(""), now()).unwrap();
        assert_eq!((r.from, r.to), (now() - DEFAULT_SPAN, now()));
        let (p, m) = refused(range(Some("yesterday"), None, now()));
        assert_eq!(p, "from");
        assert!(m.contains("\"yesterday\""), "{m}");
        assert_eq!(refused(range(Some("-5"), None, now())).0, "from");
        assert_eq!(
            refused(range(None, Some("99999999999999999"), now())).0,
            "to"
        );
        let (p, m) = refused(range(Some("1795435200000"), Some("1795435200000"), now()));
        assert_eq!(p, "to");
        assert!(m.contains("must be after from"), "{m}");
    }

    #[test]
    fn every_bad_parameter_is_named() {
        assert_eq!(refused(series(&[("interval", "2m")])).0, "interval");
        assert_eq!(
            refused(series(&[("interval", "1m"), ("interval_ms", "60000")])).0,
            "interval"
        );
        assert_eq!(refused(series(&[("interval_ms", "0")])).0, "interval_ms");
        assert_eq!(refused(series(&[("interval_ms", "1e3")])).0, "interval_ms");
        assert_eq!(refused(series(&[("group_by", "user")])).0, "group_by");
        assert_eq!(refused(series(&[("type", "Login")])).0, "type");
        let long = "x".repeat(65);
        assert_eq!(refused(series(&[("source", long.as_str())])).0, "source");
        let many = vec!["a"; 101].join(",");
        assert_eq!(refused(series(&[("type", many.as_str())])).0, "type");
    }

    #[test]
    fn the_bucket_cap_names_the_interval_that_caused_it() {
        let (p, m) = refused(series(&[
            ("from", "2016-01-01T00:00:00Z"),
            ("interval", "1m"),
        ]));
        assert_eq!(p, "interval");
        assert!(m.contains("at most 10000"), "{m}");
        let (p, _) = refused(series(&[
            ("from", "2016-01-01T00:00:00Z"),
            ("interval_ms", "1000"),
        ]));
        assert_eq!(p, "interval_ms");
        // The automatic width falls back to days, which fit.
        let s = series(&[("from", "2016-01-01T00:00:00Z")]).unwrap();
        assert_eq!(s.buckets.interval.name, "1d");
    }

    #[test]
    fn lists_filters_and_groups_parse() {
        let s = series(&[
            ("interval_ms", "30000"),
            ("group_by", "source"),
            ("type", "login,purchase"),
            ("source", ""),
        ])
        .unwrap();
        assert_eq!(s.buckets.interval.name, "1m");
        assert_eq!(s.group, Some(EventKey::Source));
        assert_eq!(s.filter.types, vec!["login", "purchase"]);
        assert!(s.filter.sources.is_empty());
        let severity = Some("high,urgent".to_owned());
        let counts = AnomalyCountsQuery {
            severity: severity.clone(),
            ..Default::default()
        };
        assert_eq!(refused(counts.parse(now())).0, "severity");
        let recent = RecentAnomaliesQuery {
            severity: Some("high".to_owned()),
            limit: Some("0".to_owned()),
            ..Default::default()
        };
        assert_eq!(refused(recent.parse(now())).0, "limit");
        let counts = AnomalyCountsQuery {
            severity: Some("high".to_owned()),
            group_by: Some("severity,rule".to_owned()),
            ..Default::default()
        };
        let (_, by_rule, by_severity, filter) = counts.parse(now()).unwrap();
        assert!(by_rule && by_severity);
        assert_eq!(filter.severities, vec!["high"]);
        // Spaces are not ignored: "severity, rule" is not a grouping.
        let spaced = AnomalyCountsQuery {
            group_by: Some("severity, rule".to_owned()),
            ..Default::default()
        };
        assert_eq!(refused(spaced.parse(now())).0, "group_by");
        let recent = RecentAnomaliesQuery {
            limit: Some("1000".to_owned()),
            ..Default::default()
        };
        assert_eq!(recent.parse(now()).unwrap().1, 1000);
        let series = AnomalySeriesQuery {
            group_by: Some("rule,severity".to_owned()),
            severity,
            ..Default::default()
        };
        assert_eq!(refused(series.parse(now(), 100)).0, "group_by");
    }

    #[test]
    fn values_are_taken_as_written() {
        // Not trimmed, no sign: what the document's integer says.
        for limit in [" 5", "5 ", "+5", "5.0"] {
            assert_eq!(
                refused(series(&[("interval_ms", limit)])).0,
                "interval_ms",
                "{limit:?}"
            );
            let recent = RecentAnomaliesQuery {
                limit: Some(limit.to_owned()),
                ..Default::default()
            };
            assert_eq!(refused(recent.parse(now())).0, "limit", "{limit:?}");
        }
        assert_eq!(refused(series(&[("group_by", " type")])).0, "group_by");
        assert_eq!(refused(series(&[("type", " login")])).0, "type");
        // Empty values in a list are skipped; the list is counted as written.
        let s = series(&[("type", "login,,purchase,")]).unwrap();
        assert_eq!(s.filter.types, vec!["login", "purchase"]);
        let commas = ",".repeat(MAX_LIST);
        assert_eq!(refused(series(&[("type", commas.as_str())])).0, "type");
        // Any RFC 3339 time, 1970 or not; epoch milliseconds up to 9999.
        let old = range(
            Some("1969-07-20T20:17:40Z"),
            Some("1969-07-21T00:00:00Z"),
            now(),
        )
        .unwrap();
        assert_eq!(old.from.timestamp(), -14_182_940);
        assert!(
            range(None, Some("0"), now()).is_ok(),
            "from defaults to a day before 1970"
        );
        assert_eq!(
            refused(range(Some("253402300800000"), None, now())).0,
            "from"
        );
    }
}
