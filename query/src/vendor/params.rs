//! Parameters of the vendor-compatible routes, parsed and validated as the
//! vendor documents them: `from`/`to` as `YYYY-MM-DD` (a New York calendar
//! day) or milliseconds since the epoch, `adjusted` as `true`/`false`,
//! `sort` as `asc`/`desc`, `limit` within `1..=max_page`. Unknown query
//! parameters are ignored, as the vendor ignores them.

use axum::http::{header, HeaderMap};
use insite_schemas::time::{check_event_time, parse_date, MAX_EVENT_TS_MS, MIN_EVENT_TS_MS};
use insite_schemas::{Interval, TimestampMs};
use serde::Deserialize;
use utoipa::IntoParams;

use super::calendar::{ny_day, ny_midnight, Bucketing};
use crate::error::ApiError;

/// Query parameters of the aggregates routes.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AggsParams {
    /// `true` (default) or `false`. insite serves prices as traded, so the
    /// answer's `adjusted` is always `false`.
    #[param(pattern = "^(true|false)$")]
    pub adjusted: Option<String>,
    /// `asc` (default, oldest first) or `desc`.
    #[param(pattern = "^(asc|desc)$")]
    pub sort: Option<String>,
    /// Results per page (default and maximum from `[query.limits]`: 5000
    /// and 50000).
    #[param(pattern = "^[0-9]{1,9}$")]
    pub limit: Option<String>,
}

/// Query parameters of routes that only take `adjusted`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdjustedParams {
    /// `true` (default) or `false`; prices are always as traded.
    #[param(pattern = "^(true|false)$")]
    pub adjusted: Option<String>,
}

/// Query parameters of the all-tickers snapshot.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TickersParams {
    /// Comma-separated tickers (default: every ticker with bars on the
    /// newest day).
    #[param(pattern = "^[A-Z0-9.\\-]{1,12}(,[A-Z0-9.\\-]{1,12})*$")]
    pub tickers: Option<String>,
}

/// `adjusted`: `true`, `false` or absent.
pub fn parse_adjusted(raw: Option<&str>) -> Result<bool, ApiError> {
    match raw {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ApiError::bad(
            "adjusted",
            format!("{other:?} is not true or false"),
        )),
    }
}

/// `sort`: whether newest first.
pub fn parse_desc(raw: Option<&str>) -> Result<bool, ApiError> {
    match raw {
        None | Some("asc") => Ok(false),
        Some("desc") => Ok(true),
        Some(other) => Err(ApiError::bad(
            "sort",
            format!("{other:?} is not asc or desc"),
        )),
    }
}

/// `multiplier`: a positive integer.
pub fn parse_multiplier(raw: &str) -> Result<u32, ApiError> {
    raw.parse::<u32>()
        .map_err(|_| ApiError::bad("multiplier", format!("{raw:?} is not a positive integer")))
}

/// A New York calendar day `YYYY-MM-DD`, as days since 1970-01-01.
pub fn parse_day(field: &'static str, raw: &str) -> Result<i64, ApiError> {
    let day = parse_date(raw)
        .ok_or_else(|| ApiError::bad(field, format!("{raw:?} is not a YYYY-MM-DD date")))?;
    let first = ny_day(MIN_EVENT_TS_MS);
    let last = ny_day(MAX_EVENT_TS_MS - 1);
    if (first..=last).contains(&day) {
        Ok(day)
    } else {
        Err(ApiError::bad(field, format!("{raw} is outside 2000..2099")))
    }
}

/// A range bound: milliseconds since the epoch (12 or 13 digits, brought
/// within 2000..2100), or a `YYYY-MM-DD` New York day of 2000..2099 (its
/// midnight; with `end_of_day`, its last millisecond, since the vendor's
/// `to` is inclusive).
pub fn parse_bound(
    field: &'static str,
    raw: &str,
    end_of_day: bool,
) -> Result<TimestampMs, ApiError> {
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        if !(12..=13).contains(&raw.len()) {
            return Err(ApiError::bad(
                field,
                format!("{raw:?}: milliseconds since the epoch have 12 or 13 digits"),
            ));
        }
        let ms: i64 = raw
            .parse()
            .map_err(|_| ApiError::bad(field, format!("{raw:?} is not a number")))?;
        return Ok(ms.clamp(MIN_EVENT_TS_MS, MAX_EVENT_TS_MS - 1));
    }
    let day = parse_date(raw).ok_or_else(|| {
        ApiError::bad(
            field,
            format!("{raw:?} is neither milliseconds since the epoch nor a YYYY-MM-DD date"),
        )
    })?;
    check_event_time(field, day * 86_400_000).map_err(|e| ApiError::bad(field, e.reason))?;
    Ok(if end_of_day {
        ny_midnight(day + 1) - 1
    } else {
        ny_midnight(day)
    })
}

/// The served interval that bars of `bucketing` are rolled up from: the
/// longest one that divides its granule.
pub fn base_interval(served: &[Interval], bucketing: Bucketing) -> Result<Interval, ApiError> {
    let granule = bucketing.granule_ms();
    served
        .iter()
        .copied()
        .filter(|iv| granule % iv.millis() == 0)
        .max()
        .ok_or_else(|| {
            ApiError::bad(
                "multiplier",
                format!(
                    "{} {} is not a whole number of a stored interval ({})",
                    bucketing.multiplier,
                    bucketing.timespan,
                    served
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
}

/// The scheme and host the client used, for absolute `next_url`s
/// (`X-Forwarded-Proto`/`X-Forwarded-Host` from a proxy, else `Host`).
pub fn base_url(headers: &HeaderMap) -> String {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic()))
    };
    let scheme = match get("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    let host = get("x-forwarded-host")
        .or_else(|| get(header::HOST.as_str()))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_new_york_days_or_millis() {
        // 2023-11-14 in New York: 05:00 UTC to 05:00 UTC the next day.
        assert_eq!(
            parse_bound("from", "2023-11-14", false).unwrap(),
            1_699_938_000_000
        );
        assert_eq!(
            parse_bound("to", "2023-11-14", true).unwrap(),
            1_700_024_400_000 - 1
        );
        assert_eq!(
            parse_bound("from", "1700000000000", false).unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_bound("from", "100000000000", false).unwrap(),
            MIN_EVENT_TS_MS
        );
        for bad in ["2023-02-30", "x", "12", "1999-12-31", ""] {
            assert!(parse_bound("from", bad, false).is_err(), "{bad}");
        }
        assert!(parse_adjusted(Some("yes")).is_err());
        assert!(parse_desc(Some("desc")).unwrap());
        assert!(parse_multiplier("-1").is_err());
    }
}
