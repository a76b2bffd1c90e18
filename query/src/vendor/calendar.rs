//! The vendor's time buckets: a `multiplier` and a `timespan` (second ..
//! year) name a bucket size, and [`Bucketing`] says which bucket a time
//! falls in and where the next one starts.
//!
//! - `second`, `minute` and `hour` buckets are fixed lengths, aligned to
//!   multiples of their length since the Unix epoch (UTC). A whole number
//!   of hours is also aligned to New York time, whose offset from UTC is
//!   always a whole number of hours.
//! - `day`, `week`, `month`, `quarter` and `year` buckets are calendar
//!   periods of the exchange's calendar in `America/New_York`: a day starts
//!   at local midnight (04:00 or 05:00 UTC, daylight saving time included,
//!   from the time zone database that [`jiff`] bundles), a week on Sunday,
//!   a month on its first day, a quarter in January, April, July or
//!   October, a year on January 1. A multiplier of more than one counts
//!   periods since 1970 (days since 1970-01-01, weeks since the Sunday
//!   before it, months since January 1970), so a bucket never depends on
//!   the request's `from` and pages of one range line up.
//!
//! Every calendar bucket starts on a whole UTC hour, so buckets can be
//! rolled up from hourly (or finer) epoch-aligned granules
//! ([`Bucketing::granule_ms`]).

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use insite_schemas::time::days_from_civil;
use insite_schemas::TimestampMs;
use jiff::tz::TimeZone;

use crate::error::ApiError;

/// Milliseconds in an hour.
const HOUR_MS: i64 = 3_600_000;

/// A bucket unit, as the vendor names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timespan {
    /// One second.
    Second,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One New York calendar day.
    Day,
    /// One week, Sunday to Saturday.
    Week,
    /// One calendar month.
    Month,
    /// Three calendar months from January, April, July or October.
    Quarter,
    /// One calendar year.
    Year,
}

impl Timespan {
    /// Every timespan, in order.
    pub const ALL: [Timespan; 8] = [
        Self::Second,
        Self::Minute,
        Self::Hour,
        Self::Day,
        Self::Week,
        Self::Month,
        Self::Quarter,
        Self::Year,
    ];

    /// The vendor's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Quarter => "quarter",
            Self::Year => "year",
        }
    }

    /// The fixed length of a sub-day unit, in ms (`None`: a calendar unit).
    fn fixed_ms(self) -> Option<i64> {
        match self {
            Self::Second => Some(1_000),
            Self::Minute => Some(60_000),
            Self::Hour => Some(HOUR_MS),
            _ => None,
        }
    }
}

impl fmt::Display for Timespan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Timespan {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, ApiError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                ApiError::bad(
                    "timespan",
                    format!(
                        "{s:?} is not one of second, minute, hour, day, week, month, quarter, year"
                    ),
                )
            })
    }
}

/// The exchange's time zone, `America/New_York`, from the bundled time
/// zone database (loaded once).
pub fn new_york() -> &'static TimeZone {
    static TZ: OnceLock<TimeZone> = OnceLock::new();
    TZ.get_or_init(|| {
        // The bundled database always holds it; UTC only if a build ever
        // ships without it (then days would be UTC days, not a crash).
        TimeZone::get("America/New_York").unwrap_or(TimeZone::UTC)
    })
}

/// A civil date: year, month (1..=12), day (1..=31).
pub type Civil = (i64, i64, i64);

/// The civil date of `days` since 1970-01-01 (the inverse of
/// [`days_from_civil`], Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> Civil {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of the New York calendar day holding `ts`.
pub fn ny_day(ts: TimestampMs) -> i64 {
    let offset_s = jiff::Timestamp::from_millisecond(ts)
        .map(|t| i64::from(new_york().to_offset(t).seconds()))
        .unwrap_or(0);
    (ts + offset_s * 1_000).div_euclid(86_400_000)
}

/// The UTC time (ms) of midnight in New York at the start of day `days`
/// (since 1970-01-01).
pub fn ny_midnight(days: i64) -> TimestampMs {
    let (y, m, d) = civil_from_days(days);
    let utc_midnight = days * 86_400_000;
    let local = i16::try_from(y)
        .ok()
        .zip(i8::try_from(m).ok())
        .zip(i8::try_from(d).ok())
        .and_then(|((y, m), d)| jiff::civil::Date::new(y, m, d).ok())
        .and_then(|date| date.to_zoned_datetime(new_york().clone()).ok());
    match local {
        Some(z) => z.timestamp().as_millisecond(),
        None => utc_midnight,
    }
}

/// How times fall into the buckets of `multiplier` × `timespan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucketing {
    /// Units per bucket (at least 1).
    pub multiplier: u32,
    /// The unit.
    pub timespan: Timespan,
}

impl Bucketing {
    /// Buckets of `multiplier` (1..=`max`) × `timespan`.
    pub fn new(multiplier: u32, timespan: Timespan) -> Result<Self, ApiError> {
        if multiplier == 0 {
            return Err(ApiError::bad("multiplier", "must be at least 1"));
        }
        // A bucket of up to ten years of seconds fits every unit in i64 ms.
        if multiplier > 100_000 {
            return Err(ApiError::bad("multiplier", "must be at most 100000"));
        }
        Ok(Self {
            multiplier,
            timespan,
        })
    }

    /// The fixed length of a sub-day bucket, in ms (`None`: calendar).
    pub fn fixed_ms(self) -> Option<i64> {
        self.timespan
            .fixed_ms()
            .map(|unit| unit * i64::from(self.multiplier))
    }

    /// The epoch-aligned granule (ms) that every bucket is made of: the
    /// bucket itself for a fixed length, an hour for calendar buckets.
    pub fn granule_ms(self) -> i64 {
        self.fixed_ms().unwrap_or(HOUR_MS)
    }

    /// The start of the bucket holding `ts`.
    pub fn start(self, ts: TimestampMs) -> TimestampMs {
        if let Some(size) = self.fixed_ms() {
            return ts - ts.rem_euclid(size);
        }
        let n = i64::from(self.multiplier);
        let day = ny_day(ts);
        match self.timespan {
            Timespan::Week => {
                // 1970-01-01 was a Thursday; week 0 starts on the Sunday
                // before it (day -4).
                let week = (day + 4).div_euclid(7);
                ny_midnight((week - week.rem_euclid(n)) * 7 - 4)
            }
            Timespan::Month | Timespan::Quarter | Timespan::Year => {
                let (y, m, _) = civil_from_days(day);
                let months = y * 12 + (m - 1);
                let span = n * self.months_per_unit();
                let first = months - (months - 1970 * 12).rem_euclid(span);
                ny_midnight(days_from_civil(
                    first.div_euclid(12),
                    first.rem_euclid(12) + 1,
                    1,
                ))
            }
            _ => ny_midnight(day - day.rem_euclid(n)),
        }
    }

    /// The start of the bucket after the one starting at `start`.
    pub fn next(self, start: TimestampMs) -> TimestampMs {
        if let Some(size) = self.fixed_ms() {
            return start + size;
        }
        let n = i64::from(self.multiplier);
        let day = ny_day(start);
        match self.timespan {
            Timespan::Week => ny_midnight(day + 7 * n),
            Timespan::Month | Timespan::Quarter | Timespan::Year => {
                let (y, m, _) = civil_from_days(day);
                let months = y * 12 + (m - 1) + n * self.months_per_unit();
                ny_midnight(days_from_civil(
                    months.div_euclid(12),
                    months.rem_euclid(12) + 1,
                    1,
                ))
            }
            _ => ny_midnight(day + n),
        }
    }

    /// Months in one unit of a month-based timespan.
    fn months_per_unit(self) -> i64 {
        match self.timespan {
            Timespan::Quarter => 3,
            Timespan::Year => 12,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2024-03-10 (US daylight saving time starts at 02:00 local).
    const SPRING: i64 = 19_792;
    /// 2024-11-03 (daylight saving time ends at 02:00 local).
    const FALL: i64 = 20_030;

    fn ms(y: i64, m: i64, d: i64, h: i64) -> i64 {
        days_from_civil(y, m, d) * 86_400_000 + h * HOUR_MS
    }

    #[test]
    fn new_york_days_start_at_local_midnight_across_dst() {
        // Standard time: UTC-5; daylight time: UTC-4.
        assert_eq!(
            ny_midnight(days_from_civil(2024, 1, 15)),
            ms(2024, 1, 15, 5)
        );
        assert_eq!(ny_midnight(days_from_civil(2024, 7, 4)), ms(2024, 7, 4, 4));
        // The two changeover days are 23 and 25 hours long.
        assert_eq!(ny_midnight(SPRING + 1) - ny_midnight(SPRING), 23 * HOUR_MS);
        assert_eq!(ny_midnight(FALL + 1) - ny_midnight(FALL), 25 * HOUR_MS);
        assert_eq!(ny_day(ms(2024, 7, 4, 3)), days_from_civil(2024, 7, 3));
        assert_eq!(ny_day(ms(2024, 7, 4, 4)), days_from_civil(2024, 7, 4));
    }

    #[test]
    fn calendar_buckets() {
        let b = |n, t| Bucketing::new(n, t).unwrap();
        let t = ms(2024, 5, 15, 14); // Wednesday 2024-05-15, 10:00 New York
        assert_eq!(b(1, Timespan::Day).start(t), ms(2024, 5, 15, 4));
        assert_eq!(b(1, Timespan::Week).start(t), ms(2024, 5, 12, 4));
        assert_eq!(b(1, Timespan::Month).start(t), ms(2024, 5, 1, 4));
        assert_eq!(b(1, Timespan::Quarter).start(t), ms(2024, 4, 1, 4));
        assert_eq!(b(1, Timespan::Year).start(t), ms(2024, 1, 1, 5));
        assert_eq!(
            b(1, Timespan::Year).next(ms(2024, 1, 1, 5)),
            ms(2025, 1, 1, 5)
        );
        assert_eq!(b(2, Timespan::Month).start(t), ms(2024, 5, 1, 4));
        assert_eq!(
            b(1, Timespan::Quarter).next(ms(2024, 4, 1, 4)),
            ms(2024, 7, 1, 4)
        );
        assert_eq!(b(5, Timespan::Minute).start(t + 299_999), t);
        assert!(Bucketing::new(0, Timespan::Day).is_err());
        assert!("fortnight".parse::<Timespan>().is_err());
        assert_eq!("quarter".parse::<Timespan>().unwrap(), Timespan::Quarter);
    }

    proptest! {
        #[test]
        fn civil_days_round_trip(days in -30_000i64..60_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        /// Every time lies in exactly one bucket: its start is at or before
        /// it, the next start after it, buckets start on whole UTC hours
        /// (calendar ones on a New York midnight), and the start of a start
        /// is itself.
        #[test]
        fn every_time_in_one_bucket(
            ts in 946_684_800_000i64..4_102_444_800_000,
            n in 1u32..5,
            unit in 0usize..8,
        ) {
            let b = Bucketing::new(n, Timespan::ALL[unit]).unwrap();
            let start = b.start(ts);
            let next = b.next(start);
            prop_assert!(start <= ts && ts < next, "{start} {ts} {next}");
            prop_assert_eq!(b.start(start), start);
            prop_assert_eq!(b.start(next), next);
            if b.fixed_ms().is_none() {
                prop_assert_eq!(start.rem_euclid(HOUR_MS), 0);
                prop_assert_eq!(ny_midnight(ny_day(start)), start);
                let local = jiff::Timestamp::from_millisecond(start)
                    .unwrap()
                    .to_zoned_datetime(new_york().clone());
                prop_assert_eq!((local.hour(), local.minute()), (0, 0));
            }
        }

        /// A New York day is 23, 24 or 25 hours, and `ny_day` agrees with
        /// the time zone database's local date.
        #[test]
        fn new_york_days(ts in 946_684_800_000i64..4_102_444_800_000) {
            let day = ny_day(ts);
            let len = ny_midnight(day + 1) - ny_midnight(day);
            prop_assert!([23, 24, 25].contains(&(len / HOUR_MS)) && len % HOUR_MS == 0);
            let local = jiff::Timestamp::from_millisecond(ts)
                .unwrap()
                .to_zoned_datetime(new_york().clone());
            let (y, m, d) = civil_from_days(day);
            prop_assert_eq!(
                (y, m, d),
                (i64::from(local.year()), i64::from(local.month()), i64::from(local.day()))
            );
        }
    }
}
