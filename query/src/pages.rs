//! Lists read page by page, newest first, with keyset pagination: a page
//! ends with a [`Cursor`], the sort key of its last row, and the next page
//! is the rows strictly after that key. The key, `(event time, id)`, never
//! changes once a row is stored, so walking every page returns each row
//! that existed when the walk began exactly once, however many rows arrive
//! meanwhile, and page 1,000 costs what page 1 costs (an index range scan
//! from the key, not an offset).
//!
//! Cursors are opaque to clients: hex of the key's 24 bytes behind a
//! version letter, refused with a 400 naming `cursor` when they are not
//! one this server issued.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::analytics::params::{AnomalyFilter, EventFilter, anomaly_filter, event_filter, user_id};
use crate::params::{
    EventTypes, Instant, Limit, Param, ParamError, Sources, UserId, present, refuse,
};

/// Rows per page unless `limit` says otherwise.
pub const DEFAULT_PAGE: u32 = 100;

/// Where the previous page ended: the sort key of its last row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The row's event time.
    pub time: DateTime<Utc>,
    /// The row's id, breaking ties between rows of the same time.
    pub id: Uuid,
}

impl Cursor {
    /// The cursor's text, as `next_cursor` gives it.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(24);
        bytes.extend_from_slice(&self.time.timestamp_micros().to_be_bytes());
        bytes.extend_from_slice(self.id.as_bytes());
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("v{hex}")
    }

    /// A cursor this server issued, or a 400 naming `cursor`.
    pub fn decode(text: &str) -> Result<Self, ParamError> {
        let bad = || {
            refuse(
                "cursor",
                "is not a cursor this server issued: pass a page's next_cursor as it is",
            )
        };
        // Lower-case hex only, as `encode` writes it.
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let Some(hex) = text.strip_prefix('v').filter(|h| h.len() == 48) else {
            return bad();
        };
        let mut bytes = [0_u8; 24];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            match (nibble(pair[0]), nibble(pair[1])) {
                (Some(high), Some(low)) => *byte = high << 4 | low,
                _ => return bad(),
            }
        }
        let (micros, id) = bytes.split_at(8);
        let micros = i64::from_be_bytes(micros.try_into().unwrap_or_default());
        // Any key is a place in the order: one beyond the times PostgreSQL
        // and RFC 3339 hold (years 0 to 9999) is the same place as that end.
        let micros = micros.clamp(EARLIEST_MICROS, LATEST_MICROS);
        match (
            DateTime::from_timestamp_micros(micros),
            Uuid::from_slice(id),
        ) {
            (Some(time), Ok(id)) => Ok(Cursor { time, id }),
            _ => bad(),
        }
    }
}

/// `cursor`: a page's `next_cursor`, or empty.
impl utoipa::PartialSchema for Cursor {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some("^(v[0-9a-f]{48})?$"))
            .into()
    }
}

impl utoipa::ToSchema for Cursor {}

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z, in microseconds.
const EARLIEST_MICROS: i64 = -62_167_219_200_000_000;
const LATEST_MICROS: i64 = 253_402_300_799_999_999;

/// Cuts `rows`, fetched with one extra, to `limit`; returns the cursor
/// after the last row kept when the extra one says another page follows.
pub fn cut<T>(rows: &mut Vec<T>, limit: u32, key: impl Fn(&T) -> Cursor) -> Option<String> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    rows.last().filter(|_| more).map(|last| key(last).encode())
}

/// `GET /api/v1/events`: filters, page size and where to continue.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only this user's events.
    #[param(value_type = Option<UserId>, inline, example = "user-42")]
    pub user_id: Option<String>,
    /// Only these event types (comma-separated).
    #[serde(rename = "type")]
    #[param(value_type = Option<EventTypes>, inline, style = Form, explode = false, rename = "type", example = "login,purchase")]
    pub event_type: Option<String>,
    /// Only these sources (comma-separated).
    #[param(value_type = Option<Sources>, inline, style = Form, explode = false, example = "web")]
    pub source: Option<String>,
    /// Only events at or after this time: epoch milliseconds or RFC 3339.
    /// Default: no lower bound.
    #[param(value_type = Option<Instant>, inline, example = "1795434300000")]
    pub from: Option<String>,
    /// Only events before this time: epoch milliseconds or RFC 3339; after
    /// `from` when both are given. Default: no upper bound.
    #[param(value_type = Option<Instant>, inline, example = "2026-11-24T12:00:00Z")]
    pub to: Option<String>,
    /// Events per page: 1 to 1000, default 100.
    #[param(value_type = Option<Limit>, inline, example = "100")]
    pub limit: Option<String>,
    /// Where to continue: the previous page's `next_cursor`, as it is.
    #[param(value_type = Option<Cursor>, inline)]
    pub cursor: Option<String>,
}

/// A checked events request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsPage {
    /// One user, if given.
    pub user_id: Option<String>,
    /// Types and sources.
    pub filter: EventFilter,
    /// `[from, to)`; either end open.
    pub from: Option<DateTime<Utc>>,
    /// See `from`.
    pub to: Option<DateTime<Utc>>,
    /// Rows per page.
    pub limit: u32,
    /// Continue after this key.
    pub after: Option<Cursor>,
}

impl EventsQuery {
    /// The checked request.
    pub fn parse(&self) -> Result<EventsPage, ParamError> {
        let user_id = user_id(self.user_id.as_deref())?;
        let (from, to) = open_range(self.from.as_deref(), self.to.as_deref())?;
        let filter = event_filter(self.event_type.as_deref(), self.source.as_deref())?;
        let (limit, after) = page(self.limit.as_deref(), self.cursor.as_deref())?;
        Ok(EventsPage {
            user_id,
            filter,
            from,
            to,
            limit,
            after,
        })
    }
}

/// A bound of a range that may be open.
type Bound = Option<DateTime<Utc>>;

/// `[from, to)` with either end open.
fn open_range(from: Option<&str>, to: Option<&str>) -> Result<(Bound, Bound), ParamError> {
    let from = Instant::optional("from", from)?;
    let to = Instant::optional("to", to)?;
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return refuse("to", "must be after from (the range is [from, to))");
    }
    Ok((from, to))
}

fn cursor(value: Option<&str>) -> Result<Option<Cursor>, ParamError> {
    present(value).map(Cursor::decode).transpose()
}

/// Rows per page (`limit`) and where to continue (`cursor`), checked.
fn page(limit: Option<&str>, after: Option<&str>) -> Result<(u32, Option<Cursor>), ParamError> {
    Ok((
        Limit::optional("limit", limit)?.unwrap_or(DEFAULT_PAGE),
        cursor(after)?,
    ))
}

/// Declares an anomaly list's query struct: the filters
/// ([`crate::params::anomaly_filter_query`]; the list of all anomalies
/// takes a user, a user's list has the user in its path), then the range,
/// page size and cursor.
macro_rules! anomaly_page_query {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $($with:tt)* }
    ) => {
        crate::params::anomaly_filter_query! {
            $(#[$meta])*
            pub struct $name {
                ..filters $($with)*;
                /// Only anomalies whose event is at or after this time: epoch
                /// milliseconds or RFC 3339. Default: no lower bound.
                #[param(value_type = Option<Instant>, inline)]
                pub from: Option<String>,
                /// Only anomalies whose event is before this time; after `from` when
                /// both are given. Default: no upper bound.
                #[param(value_type = Option<Instant>, inline)]
                pub to: Option<String>,
                /// Anomalies per page: 1 to 1000, default 100.
                #[param(value_type = Option<Limit>, inline)]
                pub limit: Option<String>,
                /// Where to continue: the previous page's `next_cursor`, as it is.
                #[param(value_type = Option<Cursor>, inline)]
                pub cursor: Option<String>,
            }
        }
    };
}

anomaly_page_query! {
    /// `GET /api/v1/anomalies`: filters, page size and where to continue.
    pub struct AnomalyListQuery { with user_id }
}

anomaly_page_query! {
    /// `GET /api/v1/users/{user_id}/anomalies`: the anomalies list's
    /// parameters but the user, who is in the path.
    pub struct UserAnomalyQuery {}
}

impl UserAnomalyQuery {
    /// The checked request for `user`'s anomalies.
    pub fn parse(self, user: String) -> Result<AnomaliesPage, ParamError> {
        AnomalyListQuery {
            rule: self.rule,
            severity: self.severity,
            user_id: Some(user),
            from: self.from,
            to: self.to,
            limit: self.limit,
            cursor: self.cursor,
        }
        .parse()
    }
}

/// A checked anomalies request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnomaliesPage {
    /// Rules, severities, user.
    pub filter: AnomalyFilter,
    /// `[from, to)` on the triggering event's time; either end open.
    pub from: Option<DateTime<Utc>>,
    /// See `from`.
    pub to: Option<DateTime<Utc>>,
    /// Rows per page.
    pub limit: u32,
    /// Continue after this key (event time, anomaly id).
    pub after: Option<Cursor>,
}

impl AnomalyListQuery {
    /// The checked request.
    pub fn parse(&self) -> Result<AnomaliesPage, ParamError> {
        let (from, to) = open_range(self.from.as_deref(), self.to.as_deref())?;
        let filter = anomaly_filter(
            self.rule.as_deref(),
            self.severity.as_deref(),
            self.user_id.as_deref(),
        )?;
        let (limit, after) = page(self.limit.as_deref(), self.cursor.as_deref())?;
        Ok(AnomaliesPage {
            filter,
            from,
            to,
            limit,
            after,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_cursor_round_trips_and_anything_else_is_refused() {
        let cursor = Cursor {
            time: DateTime::from_timestamp_micros(1_795_434_300_123_456).unwrap(),
            id: Uuid::from_u128(0x0193_a5c2_7e1a_7b3c_9f00_2b1d_4c5e_6f70),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        for bad in [
            "",
            "v",
            "x0000",
            &cursor.encode()[1..],
            &format!("{}0", cursor.encode()),
        ] {
            assert_eq!(
                Cursor::decode(bad).unwrap_err().parameter,
                "cursor",
                "{bad:?}"
            );
        }
        let mut wrong = cursor.encode();
        wrong.replace_range(5..6, "g");
        assert_eq!(Cursor::decode(&wrong).unwrap_err().parameter, "cursor");
        // Lower-case only, as the document's pattern says.
        let upper = format!("v{}", cursor.encode()[1..].to_uppercase());
        assert_eq!(Cursor::decode(&upper).unwrap_err().parameter, "cursor");
        // A well-formed key beyond the years PostgreSQL holds is that end.
        let far = format!("v7fffffffffffffff{}", &cursor.encode()[17..]);
        assert_eq!(
            Cursor::decode(&far).unwrap().time,
            DateTime::from_timestamp_micros(LATEST_MICROS).unwrap()
        );
    }

    fn query(pairs: &[(&str, &str)]) -> Result<EventsPage, ParamError> {
        let q: EventsQuery =
            serde_urlencoded::from_str(&serde_urlencoded::to_string(pairs).unwrap()).unwrap();
        q.parse()
    }

    #[test]
    fn parameters_are_checked_and_named() {
        let page = query(&[]).unwrap();
        assert_eq!(
            (page.limit, page.from, page.to, page.after),
            (100, None, None, None)
        );
        let page = query(&[
            ("user_id", "a b/ü"),
            ("type", "login,purchase"),
            ("limit", "7"),
        ])
        .unwrap();
        assert_eq!(page.user_id.as_deref(), Some("a b/ü"));
        assert_eq!(page.filter.types, ["login", "purchase"]);
        assert_eq!(page.limit, 7);
        for (pairs, parameter) in [
            (vec![("limit", "0")], "limit"),
            (vec![("limit", "1001")], "limit"),
            (vec![("limit", "x")], "limit"),
            (vec![("type", "Login")], "type"),
            (vec![("from", "yesterday")], "from"),
            (vec![("from", "2000"), ("to", "1000")], "to"),
            (vec![("cursor", "abc")], "cursor"),
        ] {
            assert_eq!(query(&pairs).unwrap_err().parameter, parameter, "{pairs:?}");
        }
    }
}
