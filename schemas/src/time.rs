//! Event time and window intervals.
//!
//! Every timestamp in insite is event time in UTC as integer **milliseconds**
//! since the Unix epoch ([`TimestampMs`]); one unit everywhere, on the wire,
//! in ClickHouse (`*_ms UInt64` beside a `DateTime`) and in Redis.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::InvalidValue;

/// Milliseconds since the Unix epoch, UTC.
pub type TimestampMs = i64;

/// The earliest event time accepted: 2000-01-01T00:00:00Z.
pub const MIN_EVENT_TS_MS: TimestampMs = 946_684_800_000;

/// The latest event time accepted: 2100-01-01T00:00:00Z. ClickHouse's
/// `DateTime` ends in 2106, so later values could not be stored.
pub const MAX_EVENT_TS_MS: TimestampMs = 4_102_444_800_000;

/// Checks that `ts` is a plausible event time.
pub fn check_event_time(field: &'static str, ts: TimestampMs) -> Result<(), InvalidValue> {
    if (MIN_EVENT_TS_MS..MAX_EVENT_TS_MS).contains(&ts) {
        Ok(())
    } else {
        Err(InvalidValue::new(
            field,
            format!("{ts} ms is outside 2000-01-01..2100-01-01 (event time is milliseconds since the epoch)"),
        ))
    }
}

/// Milliseconds since the epoch, now, by the wall clock. The only place in
/// insite that reads it for a timestamp; event time never comes from here.
pub fn now_ms() -> TimestampMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `ts` as RFC 3339 in UTC with milliseconds (`2023-11-14T22:13:20.000Z`),
/// for messages to people; `None` outside what a date can hold.
///
/// ```
/// use insite_schemas::time::format_time;
/// assert_eq!(format_time(1_700_000_000_123).as_deref(), Some("2023-11-14T22:13:20.123Z"));
/// ```
pub fn format_time(ts: TimestampMs) -> Option<String> {
    let nanos = i128::from(ts).checked_mul(1_000_000)?;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    let (date, clock) = (at.date(), at.time());
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        date.year(),
        u8::from(date.month()),
        date.day(),
        clock.hour(),
        clock.minute(),
        clock.second(),
        clock.millisecond()
    ))
}

/// Parses a point in time given by a user: integer milliseconds since the
/// epoch, an RFC 3339 time (`2026-12-01T09:30:00Z`, `...-05:00`), or a
/// `YYYY-MM-DD` date, meaning UTC midnight at its start. The one time
/// parser of every command, file reader and API route.
///
/// ```
/// use insite_schemas::time::parse_time;
/// assert_eq!(parse_time("1700000000000").unwrap(), 1_700_000_000_000);
/// assert_eq!(parse_time("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000_000);
/// assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000);
/// assert!(parse_time("yesterday").is_err());
/// ```
pub fn parse_time(text: &str) -> Result<TimestampMs, InvalidValue> {
    parse_time_as(text, false)
}

/// As [`parse_time`], but a bare date means the *end* of that day (the next
/// UTC midnight): the natural reading of a range's `to`.
pub fn parse_time_end(text: &str) -> Result<TimestampMs, InvalidValue> {
    parse_time_as(text, true)
}

fn parse_time_as(text: &str, date_is_end: bool) -> Result<TimestampMs, InvalidValue> {
    let text = text.trim();
    let bad = |why: String| InvalidValue::new("time", why);
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| bad(format!("{text:?} is out of range")));
    }
    if let Some(day) = parse_date(text) {
        return Ok((day + i64::from(date_is_end)) * 86_400_000);
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
        .map_err(|_| {
            bad(format!(
                "{text:?} is neither milliseconds since the epoch, an RFC 3339 time nor a YYYY-MM-DD date"
            ))
        })
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date, if `text` is a valid one.
pub fn parse_date(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (y, m, d) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days_in_month)
        .contains(&d)
        .then(|| days_from_civil(y, m, d))
}

/// Days since 1970-01-01 of the proleptic Gregorian date `y-m-d`
/// (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The length of a tumbling window (or the size/slide of a sliding one), in
/// whole seconds. Written as `1s`, `1m`, `5m`, `1h`, `1d` (or any count of
/// those units, e.g. `15s`, `90m`) in subjects, config and the API.
///
/// ```
/// use insite_schemas::Interval;
/// let five: Interval = "5m".parse().unwrap();
/// assert_eq!(five.seconds(), 300);
/// assert_eq!(five.to_string(), "5m");
/// assert_eq!(five.window_start(1_700_000_123_456), 1_700_000_100_000);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval(u32);

impl Interval {
    /// One second.
    pub const SECOND: Interval = Interval(1);
    /// One minute.
    pub const MINUTE: Interval = Interval(60);
    /// Five minutes.
    pub const FIVE_MINUTES: Interval = Interval(300);
    /// One hour.
    pub const HOUR: Interval = Interval(3_600);
    /// One day.
    pub const DAY: Interval = Interval(86_400);

    /// An interval of `seconds` seconds (at least 1, at most 366 days).
    pub fn from_seconds(seconds: u32) -> Result<Self, InvalidValue> {
        if (1..=366 * 86_400).contains(&seconds) {
            Ok(Self(seconds))
        } else {
            Err(InvalidValue::new(
                "interval",
                format!("{seconds} s is outside 1 s..366 d"),
            ))
        }
    }

    /// The length in seconds.
    pub fn seconds(self) -> u32 {
        self.0
    }

    /// The length in milliseconds.
    pub fn millis(self) -> i64 {
        i64::from(self.0) * 1_000
    }

    /// The start of the epoch-aligned window holding `ts`.
    pub fn window_start(self, ts: TimestampMs) -> TimestampMs {
        ts - ts.rem_euclid(self.millis())
    }

    /// The (exclusive) end of the window starting at `window_start`.
    pub fn window_end(self, window_start: TimestampMs) -> TimestampMs {
        window_start + self.millis()
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s.is_multiple_of(86_400) {
            write!(f, "{}d", s / 86_400)
        } else if s.is_multiple_of(3_600) {
            write!(f, "{}h", s / 3_600)
        } else if s.is_multiple_of(60) {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Interval({self})")
    }
}

impl FromStr for Interval {
    type Err = InvalidValue;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            InvalidValue::new(
                "interval",
                format!("{text:?} is not a count followed by s, m, h or d (e.g. 1s, 5m, 1h)"),
            )
        };
        let split = text.len().checked_sub(1).ok_or_else(bad)?;
        if !text.is_char_boundary(split) {
            return Err(bad());
        }
        let (count, unit) = text.split_at(split);
        let count: u32 = count.parse().map_err(|_| bad())?;
        let unit_seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        Self::from_seconds(count.checked_mul(unit_seconds).ok_or_else(bad)?)
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Interval::from_seconds(u32::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, secs) in [
            ("1s", 1),
            ("15s", 15),
            ("1m", 60),
            ("5m", 300),
            ("1h", 3600),
            ("1d", 86400),
        ] {
            let i: Interval = text.parse().unwrap();
            assert_eq!(i.seconds(), secs);
            assert_eq!(i.to_string(), text);
        }
        assert_eq!("90s".parse::<Interval>().unwrap().to_string(), "90s");
        assert_eq!("120s".parse::<Interval>().unwrap().to_string(), "2m");
    }

    #[test]
    fn rejects_bad_intervals() {
        for bad in ["", "m", "0s", "5", "5x", "-1m", "1 m", "999999999d", "é"] {
            assert!(bad.parse::<Interval>().is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_every_time_form() {
        assert_eq!(parse_time("0").unwrap(), 0);
        assert_eq!(parse_time("2024-02-29").unwrap(), 19_782 * 86_400_000);
        assert_eq!(parse_time_end("2024-02-29").unwrap(), 19_783 * 86_400_000);
        assert_eq!(
            parse_time("2024-02-29T05:00:00.250-05:00").unwrap(),
            19_782 * 86_400_000 + 10 * 3_600_000 + 250
        );
        assert_eq!(parse_time_end("17").unwrap(), 17);
        for bad in [
            "",
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "+5",
            "12:00",
            "1e9",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn windows_align_to_epoch_even_before_it() {
        let m = Interval::MINUTE;
        assert_eq!(m.window_start(60_000), 60_000);
        assert_eq!(m.window_start(119_999), 60_000);
        assert_eq!(m.window_start(-1), -60_000);
        assert_eq!(m.window_end(60_000), 120_000);
    }
}
