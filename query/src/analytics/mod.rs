//! What the analytics endpoints compute, as plain values and functions:
//! half-open UTC time ranges, bucket intervals from a fixed set, the bucket
//! plan of a time series (with its cap), zero-filling and quantiles of the
//! ingest-lag histogram. The SQL lives in
//! `crate::db`, the HTTP shapes in `controllers::analytics`, and the
//! parsing of query parameters in [`params`].

pub mod params;

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, Utc};

/// `[from, to)`, UTC, `from < to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// First instant inside.
    pub from: DateTime<Utc>,
    /// First instant after.
    pub to: DateTime<Utc>,
}

/// A range cut where the rollups can answer it, coarsest first: whole hours
/// `hours` from the hourly counts; the whole five-minute spans left on each
/// side (`[fives.0, hours.0)` and `[hours.1, fives.1)`) from those counts;
/// the whole minutes left (`[minutes.0, fives.0)` and `[fives.1,
/// minutes.1)`) from the per-minute counts; and the partial-minute edges
/// `[from, minutes.0)` and `[minutes.1, to)` from the events. A tier that
/// cannot be used collapses onto the next finer one's end, so every piece
/// is a pair of half-open ranges, some empty, and they never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Outer bounds of the whole minutes.
    pub minutes: (DateTime<Utc>, DateTime<Utc>),
    /// Outer bounds of the whole five-minute spans.
    pub fives: (DateTime<Utc>, DateTime<Utc>),
    /// Bounds of the whole hours.
    pub hours: (DateTime<Utc>, DateTime<Utc>),
}

impl TimeRange {
    /// Where the rollups can answer for the range when its counts go into
    /// buckets of `interval` (one bucket when `None`): a coarser tier only
    /// serves buckets it divides.
    pub fn split(&self, interval: Option<Interval>) -> Split {
        let serves = |tier_ms: i64| interval.is_none_or(|i| i.ms % tier_ms == 0);
        let whole = |step_ms: i64| (ceil(self.from, step_ms), floor(self.to, step_ms));
        let minutes = whole(MINUTE_MS);
        if minutes.0 >= minutes.1 {
            // No whole minute: everything is an edge, read from the events.
            let none = (self.to, self.to);
            return Split {
                minutes: none,
                fives: none,
                hours: none,
            };
        }
        let mut fives = whole(FIVE_MINUTES_MS);
        if !serves(FIVE_MINUTES_MS) || fives.0 >= fives.1 {
            fives = (minutes.1, minutes.1);
        }
        let mut hours = whole(HOUR_MS);
        if !serves(HOUR_MS) || hours.0 >= hours.1 || fives.0 == fives.1 {
            hours = (fives.1, fives.1);
        }
        Split {
            minutes,
            fives,
            hours,
        }
    }
}

/// What retention has removed: per kind of data, the instant from which
/// what is stored is whole (`None`: nothing was ever removed). Read from
/// the `retention` table, which retention writes before it removes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Horizons {
    /// Raw events.
    pub events: Option<DateTime<Utc>>,
    /// Anomalies.
    pub anomalies: Option<DateTime<Utc>>,
    /// Counts, the ingest-lag histogram and the users table.
    pub rollups: Option<DateTime<Utc>>,
}

/// `horizon` when data from `from` on asks for what is before it.
pub fn missing_before(
    horizon: Option<DateTime<Utc>>,
    from: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    horizon.filter(|h| from < *h)
}

impl TimeRange {
    /// The range event counts are taken over: this one, except that an
    /// edge whose raw events retention removed is widened to its whole
    /// minute, counted from the per-minute rollup (which is exact) instead
    /// of from events that are no longer there. The horizon is a UTC
    /// midnight, so an edge (less than a minute) is wholly before it or
    /// wholly after it.
    pub fn counted(&self, horizons: &Horizons) -> TimeRange {
        let removed = |t: DateTime<Utc>| horizons.events.is_some_and(|h| t < h);
        TimeRange {
            from: if removed(self.from) {
                floor(self.from, MINUTE_MS)
            } else {
                self.from
            },
            to: if removed(floor(self.to, MINUTE_MS)) {
                ceil(self.to, MINUTE_MS)
            } else {
                self.to
            },
        }
    }

    /// [`TimeRange::counted`] at the hour: the summary's users are known
    /// per hour once the window's first hour has no raw events.
    pub fn counted_by_hour(&self, horizons: &Horizons) -> TimeRange {
        match horizons.events {
            Some(h) if self.from < h => TimeRange {
                from: floor(self.from, HOUR_MS),
                to: self.to,
            },
            _ => *self,
        }
    }
}

const MINUTE_MS: i64 = 60_000;
const FIVE_MINUTES_MS: i64 = 300_000;
const HOUR_MS: i64 = 3_600_000;

/// The instant `t` rounded down to a multiple of `step_ms` since the epoch.
fn floor(t: DateTime<Utc>, step_ms: i64) -> DateTime<Utc> {
    // timestamp_millis drops sub-millisecond digits, rounding down.
    let floored = t.timestamp_millis().div_euclid(step_ms) * step_ms;
    DateTime::from_timestamp_millis(floored).unwrap_or(t)
}

/// The instant `t` rounded up to a multiple of `step_ms` since the epoch.
fn ceil(t: DateTime<Utc>, step_ms: i64) -> DateTime<Utc> {
    let down = floor(t, step_ms);
    if down == t {
        t
    } else {
        down + TimeDelta::milliseconds(step_ms)
    }
}

/// A bucket width from the fixed set the endpoints offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// Its name in `interval=`.
    pub name: &'static str,
    /// Its length in milliseconds.
    pub ms: i64,
}

/// Every interval, shortest first. Buckets start at multiples of the
/// interval since the Unix epoch, so days start at 00:00 UTC.
pub const INTERVALS: [Interval; 9] = [
    Interval::new("1m", 60_000),
    Interval::new("5m", 300_000),
    Interval::new("10m", 600_000),
    Interval::new("15m", 900_000),
    Interval::new("30m", 1_800_000),
    Interval::new("1h", 3_600_000),
    Interval::new("6h", 21_600_000),
    Interval::new("12h", 43_200_000),
    Interval::new("1d", 86_400_000),
];

/// Buckets the automatic interval aims to stay under.
pub const AUTO_BUCKETS: i64 = 200;

impl Interval {
    const fn new(name: &'static str, ms: i64) -> Self {
        Interval { name, ms }
    }

    /// The interval called `name`.
    pub fn named(name: &str) -> Option<Interval> {
        INTERVALS.iter().copied().find(|i| i.name == name)
    }

    /// The shortest interval at least `ms` long (a dashboard's
    /// `$__interval_ms` is a hint), or the longest there is.
    pub fn snapped(ms: i64) -> Interval {
        INTERVALS
            .iter()
            .copied()
            .find(|i| i.ms >= ms)
            .unwrap_or(INTERVALS[INTERVALS.len() - 1])
    }

    /// The shortest interval that cuts `range` into at most
    /// [`AUTO_BUCKETS`] buckets (or the longest there is).
    pub fn auto(range: &TimeRange) -> Interval {
        INTERVALS
            .iter()
            .copied()
            .find(|i| bucket_count(range, *i) <= AUTO_BUCKETS)
            .unwrap_or(INTERVALS[INTERVALS.len() - 1])
    }

    /// The interval in microseconds (`date_bin`'s stride, bound as an
    /// interval: a text bind cast per row cost more than the bucketing).
    pub fn micros(&self) -> i64 {
        self.ms * 1000
    }
}

fn bucket_count(range: &TimeRange, interval: Interval) -> i64 {
    let first = floor(range.from, interval.ms);
    let end = ceil(range.to, interval.ms);
    (end - first).num_milliseconds() / interval.ms
}

/// The buckets of a time series: those that overlap the range, the first
/// starting at or before `from`. Counts in the first and last buckets are
/// only of events inside the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    /// Start of the first bucket.
    pub first: DateTime<Utc>,
    /// Their width.
    pub interval: Interval,
    /// How many.
    pub count: usize,
}

/// The range needs more buckets than allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyBuckets {
    /// Buckets the request needs.
    pub needed: i64,
    /// The cap.
    pub max: usize,
}

impl Buckets {
    /// Plans the buckets of `range` at `interval`, refusing more than `max`.
    pub fn plan(
        range: &TimeRange,
        interval: Interval,
        max: usize,
    ) -> Result<Buckets, TooManyBuckets> {
        let needed = bucket_count(range, interval);
        if needed > max as i64 {
            return Err(TooManyBuckets { needed, max });
        }
        Ok(Buckets {
            first: floor(range.from, interval.ms),
            interval,
            count: needed as usize,
        })
    }

    /// Every bucket's start, in order.
    pub fn starts(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        (0..self.count as i64).map(|i| self.first + TimeDelta::milliseconds(i * self.interval.ms))
    }
}

/// One count of a series: bucket start, group (when grouped), count.
pub type Point = (DateTime<Utc>, Option<String>, i64);

/// Every bucket for every group, with 0 where `rows` has nothing, sorted by
/// time then group. Groups are those in `rows` plus `known` (the values a
/// filter asked for, so a filtered series shows even when it is empty);
/// ungrouped series have the one group `None`.
pub fn zero_fill(
    buckets: &Buckets,
    grouped: bool,
    known: &[String],
    rows: Vec<Point>,
) -> Vec<Point> {
    let mut groups: BTreeSet<Option<String>> = if grouped {
        known.iter().cloned().map(Some).collect()
    } else {
        BTreeSet::from([None])
    };
    let mut counts = HashMap::with_capacity(rows.len());
    for (start, group, count) in rows {
        groups.insert(group.clone());
        *counts.entry((start, group)).or_insert(0) += count;
    }
    let mut filled = Vec::with_capacity(buckets.count * groups.len());
    for start in buckets.starts() {
        for group in &groups {
            let count = counts.remove(&(start, group.clone())).unwrap_or(0);
            filled.push((start, group.clone(), count));
        }
    }
    filled
}

/// The `q` quantile (0 < q ≤ 1), in milliseconds, of an ingest-lag
/// histogram (see [`crate::db::Summary::lag`]): the bucket holding the
/// rank `q · total`, interpolated linearly inside it, so within a bucket's
/// width (19 %) of the exact value. `None` for an empty histogram.
pub fn lag_quantile(histogram: &[(u16, u64)], q: f64) -> Option<f64> {
    let total: u64 = histogram.iter().map(|&(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let bound = |k: u16| 2f64.powf(f64::from(k) / 4.0);
    let rank = q * total as f64;
    let mut below = 0u64;
    let mut sorted = histogram.to_vec();
    sorted.sort_unstable();
    for &(k, n) in &sorted {
        if n > 0 && (below + n) as f64 >= rank {
            let (lo, hi) = if k == 0 {
                (0.0, 1.0)
            } else {
                (bound(k - 1), bound(k))
            };
            let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
            return Some(lo + (hi - lo) * within);
        }
        below += n;
    }
    sorted.last().map(|&(k, _)| bound(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn range(from: &str, to: &str) -> TimeRange {
        TimeRange {
            from: at(from),
            to: at(to),
        }
    }

    fn pairs(s: Split) -> [(String, String); 3] {
        let hm = |(a, b): (DateTime<Utc>, DateTime<Utc>)| {
            (
                a.format("%H:%M:%S").to_string(),
                b.format("%H:%M:%S").to_string(),
            )
        };
        [hm(s.minutes), hm(s.fives), hm(s.hours)]
    }

    fn expect(pairs_: [(&str, &str); 3]) -> [(String, String); 3] {
        pairs_.map(|(a, b)| (a.to_owned(), b.to_owned()))
    }

    #[test]
    fn edges_whose_events_are_removed_widen_to_their_minute() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap_or_default();
        let range = TimeRange {
            from: t("2026-11-01T10:00:30.5Z"),
            to: t("2026-11-02T10:00:30.5Z"),
        };
        assert_eq!(range.counted(&Horizons::default()), range);
        let before_both = Horizons {
            events: Some(t("2026-11-03T00:00:00Z")),
            ..Horizons::default()
        };
        assert_eq!(
            range.counted(&before_both),
            TimeRange {
                from: t("2026-11-01T10:00:00Z"),
                to: t("2026-11-02T10:01:00Z"),
            }
        );
        let between = Horizons {
            events: Some(t("2026-11-02T00:00:00Z")),
            ..Horizons::default()
        };
        assert_eq!(
            range.counted(&between),
            TimeRange {
                from: t("2026-11-01T10:00:00Z"),
                to: range.to,
            }
        );
        assert_eq!(
            range.counted_by_hour(&between).from,
            t("2026-11-01T10:00:00Z")
        );
        assert_eq!(missing_before(between.events, range.from), between.events);
        assert_eq!(missing_before(between.events, range.to), None);
    }

    #[test]
    fn hours_then_five_minutes_then_minutes_then_events() {
        let r = range("2026-11-24T10:02:30.5Z", "2026-11-24T13:17:10Z");
        let one_bucket = r.split(None);
        assert_eq!(
            pairs(one_bucket),
            expect([
                ("10:03:00", "13:17:00"),
                ("10:05:00", "13:15:00"),
                ("11:00:00", "13:00:00")
            ])
        );
        // Hourly buckets: hours and five minutes both divide them.
        assert_eq!(r.split(Interval::named("1h")), one_bucket);
        // 10-minute buckets: five minutes, no hours.
        assert_eq!(
            pairs(r.split(Interval::named("10m"))),
            expect([
                ("10:03:00", "13:17:00"),
                ("10:05:00", "13:15:00"),
                ("13:15:00", "13:15:00")
            ])
        );
        // 1-minute buckets: minutes only.
        assert_eq!(
            pairs(r.split(Interval::named("1m"))),
            expect([
                ("10:03:00", "13:17:00"),
                ("13:17:00", "13:17:00"),
                ("13:17:00", "13:17:00")
            ])
        );
        let aligned = range("2026-11-24T10:00:00Z", "2026-11-24T11:00:00Z").split(None);
        assert_eq!(
            pairs(aligned),
            expect([
                ("10:00:00", "11:00:00"),
                ("10:00:00", "11:00:00"),
                ("10:00:00", "11:00:00")
            ])
        );
        // Less than a whole hour, or a whole five minutes: finer tiers only.
        let short = range("2026-11-24T10:10:00Z", "2026-11-24T11:05:00Z").split(None);
        assert_eq!(short.hours, (short.fives.1, short.fives.1));
        let shorter = range("2026-11-24T10:01:00Z", "2026-11-24T10:04:00Z").split(None);
        assert_eq!(
            pairs(shorter),
            expect([
                ("10:01:00", "10:04:00"),
                ("10:04:00", "10:04:00"),
                ("10:04:00", "10:04:00")
            ])
        );
        // Inside one minute, or across one boundary with no whole minute.
        for r in [
            range("2026-11-24T10:00:10Z", "2026-11-24T10:00:50Z"),
            range("2026-11-24T10:00:10Z", "2026-11-24T10:01:50Z"),
        ] {
            let split = r.split(None);
            assert_eq!([split.minutes, split.fives, split.hours], [(r.to, r.to); 3]);
        }
        // Sub-millisecond instants round outwards, never onto themselves.
        let nanos = range(
            "2026-11-24T10:00:00.000001Z",
            "2026-11-24T10:02:59.9999999Z",
        );
        assert_eq!(
            nanos.split(None).minutes,
            (at("2026-11-24T10:01:00Z"), at("2026-11-24T10:02:00Z"))
        );
    }

    #[test]
    fn intervals_snap_up_to_the_fixed_set() {
        assert_eq!(Interval::snapped(1).name, "1m");
        assert_eq!(Interval::snapped(60_000).name, "1m");
        assert_eq!(Interval::snapped(60_001).name, "5m");
        assert_eq!(Interval::snapped(20_000_000).name, "6h");
        assert_eq!(Interval::snapped(i64::MAX).name, "1d");
        assert_eq!(Interval::named("15m").map(|i| i.ms), Some(900_000));
        assert_eq!(Interval::named("2m"), None);
        assert_eq!(Interval::named("1h").unwrap().micros(), 3_600_000_000);
    }

    #[test]
    fn automatic_interval_keeps_a_chart_readable() {
        let hour = range("2026-11-24T10:00:00Z", "2026-11-24T11:00:00Z");
        assert_eq!(Interval::auto(&hour).name, "1m");
        let week = range("2026-11-17T00:00:00Z", "2026-11-24T00:00:00Z");
        // 7 days at 30m = 336 buckets, at 1h = 168.
        assert_eq!(Interval::auto(&week).name, "1h");
        let day = range("2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z");
        assert_eq!(Interval::auto(&day).name, "10m");
        let decade = range("2016-11-24T00:00:00Z", "2026-11-24T00:00:00Z");
        assert_eq!(Interval::auto(&decade).name, "1d");
    }

    #[test]
    fn buckets_cover_the_range_and_the_cap_holds() {
        let r = range("2026-11-24T10:02:00Z", "2026-11-24T10:17:00.001Z");
        let b = Buckets::plan(&r, Interval::named("5m").unwrap(), 100).unwrap();
        assert_eq!(b.first, at("2026-11-24T10:00:00Z"));
        assert_eq!(b.count, 4, "10:00, 10:05, 10:10, 10:15");
        assert_eq!(b.starts().last(), Some(at("2026-11-24T10:15:00Z")));
        let exact = range("2026-11-24T10:00:00Z", "2026-11-24T10:15:00Z");
        assert_eq!(
            Buckets::plan(&exact, Interval::named("5m").unwrap(), 3)
                .unwrap()
                .count,
            3
        );
        assert_eq!(
            Buckets::plan(&exact, Interval::named("1m").unwrap(), 14),
            Err(TooManyBuckets {
                needed: 15,
                max: 14
            })
        );
        let day = range("2026-11-24T13:00:00Z", "2026-11-25T01:00:00Z");
        let b = Buckets::plan(&day, Interval::named("1d").unwrap(), 10).unwrap();
        assert_eq!((b.first, b.count), (at("2026-11-24T00:00:00Z"), 2));
    }

    #[test]
    fn zero_fill_gives_every_bucket_every_group_in_order() {
        let r = range("2026-11-24T10:00:00Z", "2026-11-24T10:03:00Z");
        let b = Buckets::plan(&r, Interval::named("1m").unwrap(), 10).unwrap();
        let rows = vec![
            (at("2026-11-24T10:02:00Z"), Some("login".to_owned()), 4),
            (at("2026-11-24T10:00:00Z"), Some("purchase".to_owned()), 1),
        ];
        let filled = zero_fill(&b, true, &["view".to_owned()], rows);
        let shown: Vec<(String, &str, i64)> = filled
            .iter()
            .map(|(t, g, c)| (t.format("%M").to_string(), g.as_deref().unwrap(), *c))
            .collect();
        assert_eq!(shown.len(), 9);
        assert_eq!(shown[0], ("00".to_owned(), "login", 0));
        assert_eq!(shown[1], ("00".to_owned(), "purchase", 1));
        assert_eq!(shown[2], ("00".to_owned(), "view", 0));
        assert_eq!(shown[6], ("02".to_owned(), "login", 4));
        let ungrouped = zero_fill(&b, false, &[], vec![(at("2026-11-24T10:01:00Z"), None, 7)]);
        assert_eq!(
            ungrouped.iter().map(|p| p.2).collect::<Vec<_>>(),
            vec![0, 7, 0]
        );
        let empty = zero_fill(&b, true, &[], Vec::new());
        assert!(empty.is_empty(), "no groups known, no series");
    }

    #[test]
    fn lag_quantiles_come_from_the_bucket_holding_the_rank() {
        assert_eq!(lag_quantile(&[], 0.5), None);
        // 40 ms is in bucket 22: (2^(21/4), 2^(22/4)] = (38.05, 45.25].
        let k = (4.0 * 40f64.log2()).ceil() as u16;
        assert_eq!(k, 22);
        let p50 = lag_quantile(&[(k, 100)], 0.5).unwrap();
        assert!((38.0..=45.3).contains(&p50), "{p50}");
        assert!((p50 - 40.0).abs() / 40.0 < 0.19);
        // 90 events at ≤ 1 ms, 10 near 1 s: p50 is in the first bucket,
        // p95 in the second, whatever order the rows come in.
        let second = (4.0 * 1000f64.log2()).ceil() as u16;
        let h = [(second, 10), (0, 90)];
        assert!(lag_quantile(&h, 0.5).unwrap() <= 1.0);
        let p95 = lag_quantile(&h, 0.95).unwrap();
        assert!((1000.0 / 1.19..=1000.0 * 1.19).contains(&p95), "{p95}");
        assert_eq!(
            lag_quantile(&h, 1.0),
            Some(2f64.powf(f64::from(second) / 4.0))
        );
    }
}
