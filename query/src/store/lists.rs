//! Lists: the current trending list of an interval (Redis, else
//! ClickHouse's newest window, written back) and recent alerts (Redis's
//! lists, else ClickHouse `alerts`).

use clickhouse::Row;
use insite_schemas::{Alert, Finality, Interval, Symbol, Trending, TrendingEntry};
use insite_sinks::clickhouse::rows::AlertRow;
use serde::Deserialize;

use super::statements;
use super::stored::{self, decode_json, sql_count};
use super::timed::timed;
use super::{Source, Store};
use crate::error::ApiError;

impl Store {
    /// The current trending list of an interval, at most `limit` entries.
    pub async fn trending(
        &self,
        interval: Interval,
        limit: usize,
    ) -> Result<Option<(Trending, Source)>, ApiError> {
        let key = self.keys.trending(interval);
        let Some((json, source)) = self
            .read_through(&key, self.trending_from_clickhouse(interval))
            .await?
        else {
            return Ok(None);
        };
        let mut t: Trending = decode_json("trending", &json)?;
        t.entries.truncate(limit);
        Ok(Some((t, source)))
    }

    /// ClickHouse's newest trending list of an interval.
    pub(super) async fn trending_from_clickhouse(
        &self,
        interval: Interval,
    ) -> Result<Option<Trending>, ApiError> {
        #[derive(Row, Deserialize)]
        struct Entry {
            window_start_ms: u64,
            symbol: String,
            mentions: u64,
            zscore: f64,
        }
        let sql = statements::TRENDING_LATEST;
        let query = self
            .clickhouse
            .query(sql)
            .bind(interval.seconds())
            .bind(interval.seconds())
            .fetch_all();
        let rows: Vec<Entry> = timed(self.slow_query, sql, query).await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let window_start = stored::ms(first.window_start_ms);
        let entries = rows
            .into_iter()
            .map(|e| {
                Ok(TrendingEntry {
                    symbol: stored::symbol(&e.symbol)?,
                    mentions: e.mentions,
                    zscore: e.zscore,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(Some(Trending {
            interval,
            window_start,
            entries,
            finality: Finality::Final,
        }))
    }

    /// Recent alerts, newest first: of one symbol, or of all.
    pub async fn alerts(
        &self,
        symbol: Option<&Symbol>,
        limit: usize,
    ) -> Result<(Vec<Alert>, Source), ApiError> {
        let key = match symbol {
            Some(s) => self.keys.alerts(s),
            None => self.keys.recent_alerts(),
        };
        let mut conn = self.redis.get();
        let stop = isize::try_from(limit)
            .unwrap_or(isize::MAX)
            .saturating_sub(1);
        let listed: Vec<String> = redis::cmd("LRANGE")
            .arg(&key)
            .arg(0)
            .arg(stop)
            .query_async(&mut conn)
            .await?;
        if !listed.is_empty() {
            let alerts = listed
                .iter()
                .map(|json| decode_json("alert", json))
                .collect::<Result<Vec<Alert>, _>>()?;
            return Ok((alerts, Source::Redis));
        }
        let limit = sql_count(limit);
        let rows: Vec<AlertRow> = match symbol {
            Some(s) => {
                let sql = statements::ALERTS_OF_SYMBOL;
                let query = self
                    .clickhouse
                    .query(sql)
                    .bind(s.as_str())
                    .bind(limit)
                    .fetch_all();
                timed(self.slow_query, sql, query).await?
            }
            None => {
                let sql = statements::ALERTS_ALL;
                let query = self.clickhouse.query(sql).bind(limit).fetch_all();
                timed(self.slow_query, sql, query).await?
            }
        };
        let alerts = rows
            .into_iter()
            .map(stored::alert)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((alerts, Source::ClickHouse))
    }
}
