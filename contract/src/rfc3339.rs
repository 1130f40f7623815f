//! Writes UTC instants as RFC 3339 text, byte for byte as chrono's
//! `to_rfc3339_opts(SecondsFormat::AutoSi, true)` does, without going
//! through `core::fmt`: every event carries two instants, and formatting
//! them was a measurable share of the API's hot path.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serializer;

/// `2026-11-23T13:45:00Z`, with `.123`, `.123456` or `.123456789` when the
/// sub-second part needs them. Years outside 0..=9999 fall back to chrono.
pub fn format(t: &DateTime<Utc>) -> String {
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    }
    // chrono carries a leap second as nanos >= 1e9 on second 59.
    let (leap, nanos) = match t.nanosecond() {
        n if n >= 1_000_000_000 => (1, n - 1_000_000_000),
        n => (0, n),
    };
    let mut text = String::with_capacity(32);
    let mut put = |value: u32, width: u32, then: Option<char>| {
        for i in (0..width).rev() {
            text.push(char::from(b'0' + ((value / 10u32.pow(i)) % 10) as u8));
        }
        text.extend(then);
    };
    put(year as u32, 4, Some('-'));
    put(t.month(), 2, Some('-'));
    put(t.day(), 2, Some('T'));
    put(t.hour(), 2, Some(':'));
    put(t.minute(), 2, Some(':'));
    match nanos {
        0 => put(t.second() + leap, 2, None),
        n if n % 1_000_000 == 0 => {
            put(t.second() + leap, 2, Some('.'));
            put(n / 1_000_000, 3, None);
        }
        n if n % 1_000 == 0 => {
            put(t.second() + leap, 2, Some('.'));
            put(n / 1_000, 6, None);
        }
        n => {
            put(t.second() + leap, 2, Some('.'));
            put(n, 9, None);
        }
    }
    text.push('Z');
    text
}

/// `serialize_with` adapter for [`format`].
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(t))
}

#[cfg(test)]
mod tests {
    use chrono::SecondsFormat;

    use super::*;

    #[test]
    fn matches_chrono_for_every_precision() {
        let seeds = [
            0_i64,
            1,
            999,
            1_700_000_000_123,
            1_795_441_500_000,
            253_402_300_799_999,
        ];
        let nanos = [
            0_u32,
            5,
            1_000,
            123_000,
            1_000_000,
            123_456_789,
            999_999_999,
        ];
        for ms in seeds {
            for extra in nanos {
                let base = DateTime::from_timestamp_millis(ms).unwrap();
                let t = DateTime::from_timestamp(base.timestamp(), extra).unwrap();
                assert_eq!(
                    format(&t),
                    t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                    "{ms} {extra}"
                );
            }
        }
    }

    #[test]
    fn walks_a_range_of_days_like_chrono() {
        let mut t = DateTime::from_timestamp(-62_135_596_800, 0).unwrap(); // 0001-01-01
        let step =
            chrono::Duration::seconds(86_400 * 37 + 3_723) + chrono::Duration::microseconds(17);
        for _ in 0..20_000 {
            assert_eq!(format(&t), t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            t += step;
        }
    }
}
