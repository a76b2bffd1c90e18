//! Path and query parameters of the `/v1` routes, parsed and validated
//! before any backend is asked: symbols against the ticker pattern,
//! intervals against those served, range bounds and spans, page sizes
//! against the configured limits. A bad one is [`ApiError::BadRequest`]
//! naming the parameter.

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use insite_schemas::time::{check_event_time, parse_date, MAX_EVENT_TS_MS, MIN_EVENT_TS_MS};
use insite_schemas::{Interval, InvalidValue, Symbol, TimestampMs};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::store::RangeRequest;
use crate::AppState;

/// Query parameters of range requests.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Most results in this page (default and maximum from config).
    pub limit: Option<String>,
}

/// Query parameters of the current bar.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IntervalParams {
    /// A served interval, e.g. `1m`.
    pub interval: Option<String>,
}

/// Query parameters of the trending list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrendingParams {
    /// A served interval, e.g. `1m`.
    pub interval: Option<String>,
    /// Top N (default 10).
    pub limit: Option<String>,
}

/// Query parameters of recent alerts.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertParams {
    /// Only this symbol's alerts.
    pub symbol: Option<String>,
    /// Most alerts (default 50).
    pub limit: Option<String>,
}

/// The query string's parameters, or 400 saying why they do not parse.
pub fn query_params<T: Default>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad("query", e.body_text()))
}

/// A ticker.
pub fn parse_symbol(raw: &str) -> Result<Symbol, ApiError> {
    Symbol::new(raw).map_err(|e| ApiError::bad("symbol", e.reason.clone()))
}

/// An interval the service serves (`None`: the parameter is missing).
pub fn parse_interval(state: &AppState, raw: Option<&str>) -> Result<Interval, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::bad("interval", "missing (e.g. interval=1m)"))?;
    let interval: Interval = raw
        .parse()
        .map_err(|e: InvalidValue| ApiError::bad("interval", e.reason.clone()))?;
    if state.inner.intervals.contains(&interval) {
        Ok(interval)
    } else {
        Err(ApiError::bad(
            "interval",
            format!(
                "{interval} is not served; served intervals: {}",
                state
                    .inner
                    .intervals
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }
}

/// A count within `1..=max` (`None`: `default`).
pub fn parse_limit(
    raw: Option<&str>,
    default: usize,
    max: usize,
    field: &'static str,
) -> Result<usize, ApiError> {
    let Some(raw) = raw else { return Ok(default) };
    let n: usize = raw
        .parse()
        .map_err(|_| ApiError::bad(field, format!("{raw:?} is not a positive integer")))?;
    if n == 0 || n > max {
        return Err(ApiError::bad(field, format!("{n} is outside 1..={max}")));
    }
    Ok(n)
}

/// A range bound: milliseconds since the epoch (12 or 13 digits, brought
/// within the event times insite accepts, 2000..2100), or a `YYYY-MM-DD`
/// date of 2000..2099 (UTC midnight; with `end_of_day`, the end of that
/// day, i.e. the next midnight).
pub fn parse_bound(
    field: &'static str,
    raw: &str,
    end_of_day: bool,
) -> Result<TimestampMs, ApiError> {
    if raw.bytes().all(|b| b.is_ascii_digit()) && !raw.is_empty() {
        if !(12..=13).contains(&raw.len()) {
            return Err(ApiError::bad(
                field,
                format!("{raw:?}: milliseconds since the epoch have 12 or 13 digits"),
            ));
        }
        let ms: i64 = raw
            .parse()
            .map_err(|_| ApiError::bad(field, format!("{raw:?} is not a number")))?;
        return Ok(ms.clamp(MIN_EVENT_TS_MS, MAX_EVENT_TS_MS));
    }
    let out_of_range = |e: InvalidValue| ApiError::bad(field, e.reason);
    let day = parse_date(raw).ok_or_else(|| {
        ApiError::bad(
            field,
            format!("{raw:?} is neither milliseconds since the epoch nor a YYYY-MM-DD date"),
        )
    })?;
    let midnight = day * 86_400_000;
    check_event_time(field, midnight).map_err(out_of_range)?;
    Ok((day + i64::from(end_of_day)) * 86_400_000)
}

/// A range request of `/v1/<kind>/{symbol}/range/{interval}/{from}/{to}?limit=`,
/// and the end the client asked for.
#[derive(Debug, Clone)]
pub struct Ranged {
    /// What to read: `from` rounded up to a window start; `to` no later
    /// than `limits.max_range_days` after it (the rest follows by
    /// `next_url`) and no earlier than `from` (an empty range).
    pub request: RangeRequest,
    /// The end asked for.
    pub end: TimestampMs,
}

/// The range request of `/v1/<kind>/{symbol}/range/{interval}/{from}/{to}?limit=`.
pub fn range_request(
    state: &AppState,
    symbol: &str,
    interval: &str,
    from: &str,
    to: &str,
    limit: Option<&str>,
) -> Result<Ranged, ApiError> {
    let limits = &state.inner.config.limits;
    let symbol = parse_symbol(symbol)?;
    let interval = parse_interval(state, Some(interval))?;
    let from = parse_bound("from", from, false)?;
    let end = parse_bound("to", to, true)?;
    let limit = parse_limit(limit, limits.default_page, limits.max_page, "limit")?;
    let max_span = i64::from(limits.max_range_days.max(1)) * 86_400_000;
    // Whole windows: the first one starting at or after `from`.
    let from = interval.window_start(from + interval.millis() - 1);
    let to = end.min(from.saturating_add(max_span)).max(from);
    Ok(Ranged {
        request: RangeRequest {
            symbol,
            interval,
            from,
            to,
            limit,
        },
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_millis() {
        assert_eq!(
            parse_bound("from", "2023-11-14", false).unwrap(),
            1_699_920_000_000
        );
        assert_eq!(
            parse_bound("to", "2023-11-14", true).unwrap(),
            1_700_006_400_000
        );
        assert_eq!(
            parse_bound("from", "2024-02-29", false).unwrap(),
            1_709_164_800_000
        );
        assert_eq!(
            parse_bound("from", "1700000000000", false).unwrap(),
            1_700_000_000_000
        );
        // Milliseconds are brought within 2000..2100.
        assert_eq!(
            parse_bound("from", "100000000000", false).unwrap(),
            MIN_EVENT_TS_MS
        );
        for bad in [
            "2023-02-29",
            "2023-13-01",
            "23-01-01",
            "yesterday",
            "12",
            "2023-1-01",
            "1999-12-31",
            "",
        ] {
            assert!(parse_bound("from", bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None, 5, 10, "limit").unwrap(), 5);
        assert_eq!(parse_limit(Some("10"), 5, 10, "limit").unwrap(), 10);
        for bad in ["0", "11", "-1", "x"] {
            assert!(parse_limit(Some(bad), 5, 10, "limit").is_err(), "{bad}");
        }
    }
}
