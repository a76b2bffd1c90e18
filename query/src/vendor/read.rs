//! Reading rolled-up buckets: granules of the stored interval from
//! ClickHouse, the newest bars from Redis while the range is still open
//! (not yet durable), then the roll-up ([`super::rollup`]).

use std::collections::BTreeMap;

use insite_schemas::{Interval, Symbol, TimestampMs};

use super::calendar::{Bucketing, Timespan};
use super::params::base_interval;
use super::rollup::{merge_newer, roll_up, Granule};
use crate::error::ApiError;
use crate::store::{Bars, Durability, GranuleQuery, RangeRequest, Symbols};
use crate::AppState;

/// What to read.
#[derive(Debug, Clone, Copy)]
pub struct Rolled<'a> {
    /// The symbols.
    pub symbols: Symbols<'a>,
    /// The buckets.
    pub bucketing: Bucketing,
    /// First bucket start, ms (a bucket start).
    pub from: TimestampMs,
    /// End of the last bucket (exclusive), ms.
    pub to: TimestampMs,
    /// Newest first (only matters with `limit`).
    pub desc: bool,
    /// For fixed-length buckets: at most this many per symbol are needed
    /// (ClickHouse then combines and limits them itself).
    pub limit: Option<usize>,
}

/// The buckets read, per symbol, oldest first.
#[derive(Debug)]
pub struct RolledAnswer {
    /// Buckets per symbol, oldest first.
    pub buckets: BTreeMap<Symbol, Vec<Granule>>,
    /// Granules read (the vendor's `queryCount`).
    pub granules: usize,
    /// Whether every bucket is final and durable.
    pub durability: Durability,
}

/// The stored interval of day buckets (the longest that divides an hour).
pub fn day_base(state: &AppState) -> Result<Interval, ApiError> {
    base_interval(&state.inner.intervals, day_bucketing())
}

/// One-day buckets.
pub fn day_bucketing() -> Bucketing {
    Bucketing {
        multiplier: 1,
        timespan: Timespan::Day,
    }
}

/// Whether every bucket of `r` is final and durable (the pipeline's
/// durable frontier is past the last stored bar it covers).
pub async fn durability(state: &AppState, r: &Rolled<'_>) -> Result<Durability, ApiError> {
    let base = base_interval(&state.inner.intervals, r.bucketing)?;
    // Durability does not depend on the symbol: any stands in.
    let probe = RangeRequest {
        symbol: match r.symbols {
            Symbols::One(s) => s.clone(),
            _ => Symbol::new("A").map_err(|e| ApiError::Internal(e.to_string()))?,
        },
        interval: base,
        from: r.from,
        to: r.to,
        limit: 1,
    };
    Ok(state.inner.store.durability::<Bars>(&probe).await)
}

/// Reads the buckets of `r`.
pub async fn rolled(state: &AppState, r: &Rolled<'_>) -> Result<RolledAnswer, ApiError> {
    let store = &state.inner.store;
    let base = base_interval(&state.inner.intervals, r.bucketing)?;
    let granule_ms = r.bucketing.granule_ms();
    let durability = durability(state, r).await?;
    let fixed = r.bucketing.fixed_ms().is_some();
    let rows = store
        .granules(&GranuleQuery {
            symbols: r.symbols,
            base,
            granule_ms,
            from: r.from,
            to: r.to,
            desc: r.desc,
            limit: if fixed {
                r.limit.map(|l| l.saturating_add(1))
            } else {
                None
            },
        })
        .await?;
    let granules = rows.len();
    let mut per_symbol: BTreeMap<Symbol, Vec<Granule>> = BTreeMap::new();
    for (symbol, g) in rows {
        per_symbol.entry(symbol).or_default().push(g);
    }
    for list in per_symbol.values_mut() {
        list.sort_by_key(|g| g.start);
    }
    if durability == Durability::Open {
        // The open end: bars Redis holds that ClickHouse may not yet.
        let symbols: Vec<Symbol> = match r.symbols {
            Symbols::One(s) => vec![s.clone()],
            Symbols::Some(list) => list.to_vec(),
            Symbols::All => per_symbol.keys().cloned().collect(),
        };
        let reads = symbols
            .iter()
            .map(|s| store.recent_bars(s, base, r.from, r.to));
        let recent = futures::future::try_join_all(reads).await?;
        for (symbol, bars) in symbols.into_iter().zip(recent) {
            if !bars.is_empty() {
                merge_newer(per_symbol.entry(symbol).or_default(), bars, granule_ms);
            }
        }
    }
    let buckets = per_symbol
        .into_iter()
        .map(|(s, g)| (s, roll_up(&g, r.bucketing)))
        .filter(|(_, b)| !b.is_empty())
        .collect();
    Ok(RolledAnswer {
        buckets,
        granules,
        durability,
    })
}
