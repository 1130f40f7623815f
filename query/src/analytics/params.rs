//! The analytics endpoints' query parameters: what each endpoint accepts
//! (the structs double as the OpenAPI parameter documentation, each
//! field's type declared once from [`crate::params`]) and their parsing
//! into checked requests. Every refusal names the parameter. An unknown
//! parameter is refused: a misspelt `group_by` would otherwise draw the
//! wrong chart without a word.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Buckets, Interval, Point, TimeRange, zero_fill};
use crate::params::{
    AnomalyGroup, AnomalyGroups, EventGroup, EventTypes, Instant, IntervalMs, IntervalName, Limit,
    Param, Rules, Severities, Sources, UserId, present, refuse,
};
pub use crate::params::{AnomalyKey, EventKey, ParamError};
/// The range used when a request gives no `from`.
pub const DEFAULT_SPAN: TimeDelta = TimeDelta::hours(24);
pub use crate::limits::{LATEST_EPOCH_MS, MAX_LIMIT, MAX_LIST};

/// Declares an event-count endpoint's query struct: the range (`from`,
/// `to`), its own fields, then the filters every event count takes
/// (`type`, `source`), in that order in the document.
macro_rules! event_query {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* pub $field:ident: Option<String>,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize, IntoParams)]
        #[serde(deny_unknown_fields)]
        #[into_params(parameter_in = Query)]
        pub struct $name {
            /// Start of the range, inclusive: epoch milliseconds or RFC 3339.
            /// Default: 24 hours before `to`.
            #[param(value_type = Option<Instant>, inline, example = "1795434300000")]
            pub from: Option<String>,
            /// End of the range, exclusive: epoch milliseconds or RFC 3339; after
            /// `from`. Default: now.
            #[param(value_type = Option<Instant>, inline, example = "2026-11-24T12:00:00Z")]
            pub to: Option<String>,
            $($(#[$field_meta])* pub $field: Option<String>,)*
            /// Only these event types (comma-separated).
            #[serde(rename = "type")]
            #[param(value_type = Option<EventTypes>, inline, style = Form, explode = false, rename = "type", example = "login,purchase")]
            pub event_type: Option<String>,
            /// Only these sources (comma-separated).
            #[param(value_type = Option<Sources>, inline, style = Form, explode = false, example = "web")]
            pub source: Option<String>,
        }

        impl $name {
            /// `[from, to)` with the defaults filled in.
            fn range(&self, now: DateTime<Utc>) -> Result<TimeRange, ParamError> {
                range(self.from.as_deref(), self.to.as_deref(), now)
            }

            /// Types and sources, each checked.
            fn filter(&self) -> Result<EventFilter, ParamError> {
                event_filter(self.event_type.as_deref(), self.source.as_deref())
            }
        }
    };
}

event_query! {
    /// `[from, to)` and the filters every event count takes.
    pub struct CountsQuery {}
}

event_query! {
    /// A time series of event counts.
    pub struct TimeseriesQuery {
        /// Bucket width: 1m, 5m, 10m, 15m, 30m, 1h, 6h, 12h or 1d (not with
        /// `interval_ms`). Default: the shortest giving at most 200 buckets. A
        /// series has at most WORKER_ANALYTICS_MAX_BUCKETS buckets (10000).
        #[param(value_type = Option<IntervalName>, inline, example = "5m")]
        pub interval: Option<String>,
        /// Bucket width in milliseconds (Grafana's `$__interval_ms`), snapped
        /// up to the nearest of the widths `interval` offers (not with
        /// `interval`).
        #[param(value_type = Option<IntervalMs>, inline, example = "60000")]
        pub interval_ms: Option<String>,
        /// One series per `type` or per `source`. Default: one series.
        #[param(value_type = Option<EventGroup>, inline, example = "type")]
        pub group_by: Option<String>,
    }
}

event_query! {
    /// The largest groups of event counts.
    pub struct BreakdownQuery {
        /// Group by `type` (default) or `source`.
        #[param(value_type = Option<EventGroup>, inline, example = "type")]
        pub by: Option<String>,
        /// Most groups to return, largest first: 1..=1000, default 10.
        #[param(value_type = Option<Limit>, inline, example = "5")]
        pub limit: Option<String>,
    }
}

/// Declares an anomaly endpoint's query struct: the range, the filters
/// every anomaly query takes ([`crate::params::anomaly_filter_query`]),
/// then its own fields.
macro_rules! anomaly_query {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($own:tt)*
        }
    ) => {
        crate::params::anomaly_filter_query! {
            $(#[$meta])*
            pub struct $name {
                /// Start of the range (of the triggering events' times), inclusive:
                /// epoch milliseconds or RFC 3339. Default: 24 hours before `to`.
                #[param(value_type = Option<Instant>, inline)]
                pub from: Option<String>,
                /// End of the range, exclusive: epoch milliseconds or RFC 3339; after
                /// `from`. Default: now.
                #[param(value_type = Option<Instant>, inline)]
                pub to: Option<String>,
                ..filters with user_id;
                $($own)*
            }
        }

        impl $name {
            /// `[from, to)` with the defaults filled in.
            fn range(&self, now: DateTime<Utc>) -> Result<TimeRange, ParamError> {
                range(self.from.as_deref(), self.to.as_deref(), now)
            }

            /// Rules, severities and a user, each checked.
            fn filter(&self) -> Result<AnomalyFilter, ParamError> {
                anomaly_filter(
                    self.rule.as_deref(),
                    self.severity.as_deref(),
                    self.user_id.as_deref(),
                )
            }
        }
    };
}

anomaly_query! {
    /// Anomalies counted.
    pub struct AnomalyCountsQuery {
        /// Group by `rule`, `severity` or both (default).
        #[param(value_type = Option<AnomalyGroups>, inline)]
        pub group_by: Option<String>,
    }
}

anomaly_query! {
    /// A time series of anomaly counts.
    pub struct AnomalySeriesQuery {
        /// One series per `rule` or `severity` (default: one series).
        #[param(value_type = Option<AnomalyGroup>, inline)]
        pub group_by: Option<String>,
        /// Bucket width, as for event counts (not with `interval_ms`).
        #[param(value_type = Option<IntervalName>, inline)]
        pub interval: Option<String>,
        /// Bucket width in milliseconds, snapped up (not with `interval`).
        #[param(value_type = Option<IntervalMs>, inline)]
        pub interval_ms: Option<String>,
    }
}

anomaly_query! {
    /// The most recent anomalies.
    pub struct RecentAnomaliesQuery {
        /// Most anomalies to return, newest first: 1..=1000, default 100.
        #[param(value_type = Option<Limit>, inline)]
        pub limit: Option<String>,
    }
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

/// The groups a filter names for a grouping: a series shows them even
/// where they counted nothing.
pub trait Named<K> {
    /// The values of `key` this filter asks for (empty: any).
    fn named(&self, key: K) -> &[String];
}

impl Named<EventKey> for EventFilter {
    fn named(&self, key: EventKey) -> &[String] {
        match key {
            EventKey::Type => &self.types,
            EventKey::Source => &self.sources,
        }
    }
}

impl Named<AnomalyKey> for AnomalyFilter {
    fn named(&self, key: AnomalyKey) -> &[String] {
        match key {
            AnomalyKey::Rule => &self.rules,
            AnomalyKey::Severity => &self.severities,
        }
    }
}

impl<K: Copy, F: Named<K>> Series<K, F> {
    /// `rows` with every bucket and every group present, in time order:
    /// the groups found and those the filter names, zero where nothing
    /// was counted.
    pub fn filled(&self, rows: Vec<Point>) -> Vec<Point> {
        let named = self.group.map_or(&[][..], |key| self.filter.named(key));
        zero_fill(&self.buckets, self.group.is_some(), named, rows)
    }
}

impl<K, F> Series<K, F> {
    /// The series over `range` in the buckets `interval` (`interval`,
    /// `interval_ms`) asks for, at most `max_buckets` of them, grouped by
    /// `group`, counting what `filter` checks.
    fn plan(
        range: TimeRange,
        (interval, interval_ms): (Option<&str>, Option<&str>),
        max_buckets: usize,
        group: Option<K>,
        filter: impl FnOnce() -> Result<F, ParamError>,
    ) -> Result<Self, ParamError> {
        // Checked in this order, so the first bad parameter is the one named.
        Ok(Series {
            buckets: buckets(&range, interval, interval_ms, max_buckets)?,
            range,
            group,
            filter: filter()?,
        })
    }
}

impl CountsQuery {
    /// The range and filter.
    pub fn parse(&self, now: DateTime<Utc>) -> Result<(TimeRange, EventFilter), ParamError> {
        Ok((self.range(now)?, self.filter()?))
    }
}

impl TimeseriesQuery {
    /// The checked request, with at most `max_buckets` buckets.
    pub fn parse(
        &self,
        now: DateTime<Utc>,
        max_buckets: usize,
    ) -> Result<Series<EventKey, EventFilter>, ParamError> {
        Series::plan(
            self.range(now)?,
            (self.interval.as_deref(), self.interval_ms.as_deref()),
            max_buckets,
            EventGroup::optional("group_by", self.group_by.as_deref())?,
            || self.filter(),
        )
    }
}

impl BreakdownQuery {
    /// Range, grouping column, row limit and filter.
    pub fn parse(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(TimeRange, EventKey, u32, EventFilter), ParamError> {
        let by = EventGroup::optional("by", self.by.as_deref())?;
        Ok((
            self.range(now)?,
            by.unwrap_or(EventKey::Type),
            Limit::optional("limit", self.limit.as_deref())?.unwrap_or(10),
            self.filter()?,
        ))
    }
}

impl AnomalyCountsQuery {
    /// The range, whether to group by rule and by severity, the filter.
    pub fn parse(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(TimeRange, bool, bool, AnomalyFilter), ParamError> {
        let (by_rule, by_severity) =
            AnomalyGroups::optional("group_by", self.group_by.as_deref())?.unwrap_or((true, true));
        Ok((self.range(now)?, by_rule, by_severity, self.filter()?))
    }
}

impl AnomalySeriesQuery {
    /// The checked request, with at most `max_buckets` buckets.
    pub fn parse(
        &self,
        now: DateTime<Utc>,
        max_buckets: usize,
    ) -> Result<Series<AnomalyKey, AnomalyFilter>, ParamError> {
        Series::plan(
            self.range(now)?,
            (self.interval.as_deref(), self.interval_ms.as_deref()),
            max_buckets,
            AnomalyGroup::optional("group_by", self.group_by.as_deref())?,
            || self.filter(),
        )
    }
}

impl RecentAnomaliesQuery {
    /// The range, the row limit, the filter.
    pub fn parse(&self, now: DateTime<Utc>) -> Result<(TimeRange, u32, AnomalyFilter), ParamError> {
        Ok((
            self.range(now)?,
            Limit::optional("limit", self.limit.as_deref())?.unwrap_or(100),
            self.filter()?,
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
        rules: Rules::optional("rule", rule)?.unwrap_or_default(),
        severities: Severities::optional("severity", severity)?.unwrap_or_default(),
        user_id: user_id(user)?,
    })
}

/// One user id, checked as the contract checks it; `None` when absent.
pub(crate) fn user_id(value: Option<&str>) -> Result<Option<String>, ParamError> {
    UserId::optional("user_id", value)
}

/// `[from, to)` with the defaults filled in.
pub fn range(
    from: Option<&str>,
    to: Option<&str>,
    now: DateTime<Utc>,
) -> Result<TimeRange, ParamError> {
    let to = present(to)
        .map(|v| Instant::parse("to", v))
        .transpose()?
        .unwrap_or(now);
    let from = match present(from) {
        Some(v) => Instant::parse("from", v)?,
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
        (Some(name), None) => (IntervalName::parse("interval", name)?, "interval"),
        (None, Some(ms)) => (
            Interval::snapped(IntervalMs::parse("interval_ms", ms)?),
            "interval_ms",
        ),
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

/// Types and sources, each checked.
pub(crate) fn event_filter(
    types: Option<&str>,
    sources: Option<&str>,
) -> Result<EventFilter, ParamError> {
    Ok(EventFilter {
        types: EventTypes::optional("type", types)?.unwrap_or_default(),
        sources: Sources::optional("source", sources)?.unwrap_or_default(),
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
