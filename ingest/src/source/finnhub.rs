//! A live trades connector speaking Finnhub's WebSocket protocol.
//!
//! The client sends `{"type":"subscribe","symbol":"AAPL"}` per symbol after
//! every (re)connect; the server sends
//! `{"type":"trade","data":[{"s":"AAPL","p":189.5,"t":1700000000000,"v":100,"c":["1","12"]}]}`
//! (symbol, price, epoch-ms time, volume, conditions), `{"type":"ping"}`,
//! and `{"type":"error","msg":"..."}`.
//!
//! Finnhub gives no trade id, so a trade's message id is a hash of its
//! content; identical trades within one frame get an occurrence suffix so
//! they are not taken for duplicates. A frame that is not valid JSON of this
//! shape, and a trade with a bad symbol, time, price or a size below one
//! share, is rejected to the dead-letter subject and counted; the connector
//! goes on. A dropped connection (or no frame for `idle_timeout`) makes it
//! reconnect with exponential backoff and subscribe again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use insite_schemas::{Symbol, Trade};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::{Backoff, Source, SourceItem, SourceStats};
use crate::error::IngestError;
use crate::event::Event;

/// Settings of the Finnhub trades connector.
#[derive(Debug, Clone, PartialEq)]
pub struct FinnhubConfig {
    /// WebSocket URL (`wss://ws.finnhub.io`).
    pub url: String,
    /// API token, appended as `?token=` (from config or env, never in code).
    pub token: Option<String>,
    /// Symbols to subscribe to.
    pub symbols: Vec<Symbol>,
    /// Reconnect backoff.
    pub backoff: Backoff,
    /// Most time to open a connection.
    pub connect_timeout: Duration,
    /// Reconnect when nothing arrives for this long.
    pub idle_timeout: Duration,
}

impl FinnhubConfig {
    /// Settings for `url` and `symbols` with default timeouts and backoff
    /// (0.25 s doubling to 30 s).
    pub fn new(url: impl Into<String>, symbols: Vec<Symbol>) -> Self {
        Self {
            url: url.into(),
            token: None,
            symbols,
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(30)),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The connector; see the module docs.
#[derive(Debug, Clone)]
pub struct FinnhubSource {
    /// Settings.
    config: FinnhubConfig,
}

impl FinnhubSource {
    /// A connector with `config`.
    pub fn new(config: FinnhubConfig) -> Self {
        Self { config }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Frame {
    Trade {
        data: Vec<serde_json::Value>,
    },
    Ping,
    Error {
        msg: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct RawTrade {
    s: String,
    p: f64,
    t: i64,
    v: f64,
    #[serde(default)]
    c: Option<Vec<serde_json::Value>>,
}

/// Turns one text frame into items: trades, and rejects for what is bad.
pub fn parse_frame(text: &str, origin: &str) -> Vec<SourceItem> {
    let reject = |raw: String, reason: String| SourceItem::Reject {
        raw: Bytes::from(raw),
        reason,
        kind: "bad_frame",
        origin: origin.to_owned(),
    };
    let frame: Frame = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => return vec![reject(text.to_owned(), format!("not a Finnhub frame: {e}"))],
    };
    let data = match frame {
        Frame::Trade { data } => data,
        Frame::Ping | Frame::Other => return Vec::new(),
        Frame::Error { msg } => {
            tracing::warn!(%msg, "Finnhub error frame");
            return Vec::new();
        }
    };
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut items = Vec::with_capacity(data.len());
    for value in data {
        let raw: RawTrade = match serde_json::from_value(value.clone()) {
            Ok(r) => r,
            Err(e) => {
                items.push(reject(value.to_string(), format!("bad trade: {e}")));
                continue;
            }
        };
        match to_trade(&raw, &mut seen) {
            Ok(trade) => items.push(SourceItem::Event(Event::Trade(trade))),
            Err(reason) => items.push(reject(value.to_string(), reason)),
        }
    }
    items
}

fn to_trade(raw: &RawTrade, seen: &mut HashMap<String, u32>) -> Result<Trade, String> {
    let symbol = Symbol::new(&raw.s).map_err(|e| e.to_string())?;
    if !(raw.v.is_finite() && raw.v >= 0.5) {
        return Err(format!("volume {} is below one share", raw.v));
    }
    let size = raw.v.round() as u64;
    let key = format!("{}|{}|{}|{}", raw.s, raw.t, raw.p, raw.v);
    let occurrence = seen.entry(key.clone()).or_insert(0);
    let trade_id = if *occurrence == 0 {
        String::new()
    } else {
        format!(
            "{}-{:08x}-{}",
            raw.t,
            xxhash_rust::xxh3::xxh3_64(key.as_bytes()) as u32,
            occurrence
        )
    };
    *occurrence += 1;
    let conditions = raw
        .c
        .iter()
        .flatten()
        .map(|c| match c {
            serde_json::Value::String(s) => s.as_str().into(),
            other => other.to_string().into(),
        })
        .collect();
    let trade = Trade {
        symbol,
        ts: raw.t,
        price: raw.p,
        size,
        exchange: "".into(),
        trade_id: trade_id.into(),
        conditions,
    };
    trade.validate().map_err(|e| e.to_string())?;
    Ok(trade)
}

impl FinnhubSource {
    fn url(&self) -> String {
        match &self.config.token {
            Some(token) if !token.is_empty() => {
                let sep = if self.config.url.contains('?') {
                    '&'
                } else {
                    '?'
                };
                format!("{}{sep}token={token}", self.config.url)
            }
            _ => self.config.url.clone(),
        }
    }

    /// One connection: subscribe, then read until it drops. Returns whether
    /// any frame arrived, or `None` when shutting down.
    async fn session(
        &self,
        out: &mpsc::Sender<SourceItem>,
        stats: &SourceStats,
        shutdown: &CancellationToken,
    ) -> Result<Option<bool>, String> {
        let connect = tokio_tungstenite::connect_async(self.url());
        let (mut ws, _) = tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            r = tokio::time::timeout(self.config.connect_timeout, connect) => r
                .map_err(|_| "connect timed out".to_owned())?
                .map_err(|e| format!("connect failed: {e}"))?,
        };
        SourceStats::add(&stats.connections, 1);
        tracing::info!(url = %self.config.url, "connected");
        for symbol in &self.config.symbols {
            let subscribe = serde_json::json!({"type": "subscribe", "symbol": symbol.as_str()});
            ws.send(Message::text(subscribe.to_string()))
                .await
                .map_err(|e| format!("subscribe failed: {e}"))?;
        }
        let mut received = false;
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => {
                    let _ = ws.close(None).await;
                    return Ok(None);
                }
                n = tokio::time::timeout(self.config.idle_timeout, ws.next()) => n,
            };
            let message = match next {
                Err(_) => return Err(format!("no frame for {:?}", self.config.idle_timeout)),
                Ok(None) => return Ok(Some(received)),
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "connection lost");
                    return Ok(Some(received));
                }
                Ok(Some(Ok(m))) => m,
            };
            let text = match message {
                Message::Text(t) => t.as_str().to_owned(),
                Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                Message::Close(_) => return Ok(Some(received)),
                _ => continue,
            };
            received = true;
            SourceStats::add(&stats.frames, 1);
            for item in parse_frame(&text, &self.config.url) {
                match &item {
                    SourceItem::Event(_) => SourceStats::add(&stats.events, 1),
                    SourceItem::Reject { .. } => SourceStats::add(&stats.rejected, 1),
                }
                if out.send(item).await.is_err() {
                    return Ok(None);
                }
            }
        }
    }
}

impl Source for FinnhubSource {
    fn name(&self) -> &'static str {
        "ws"
    }

    async fn run(
        self,
        out: mpsc::Sender<SourceItem>,
        stats: Arc<SourceStats>,
        shutdown: CancellationToken,
    ) -> Result<(), IngestError> {
        if self.config.symbols.is_empty() {
            return Err(IngestError::Config(
                "the WebSocket feed needs symbols".into(),
            ));
        }
        let mut backoff = self.config.backoff.clone();
        loop {
            match self.session(&out, &stats, &shutdown).await {
                Ok(None) => return Ok(()),
                Ok(Some(received)) => {
                    if received {
                        backoff.reset();
                    }
                    tracing::info!("connection closed, reconnecting");
                }
                Err(reason) => tracing::warn!(%reason, "connection failed"),
            }
            let delay = backoff.next_delay();
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(items: &[SourceItem]) -> Vec<&Trade> {
        items
            .iter()
            .filter_map(|i| match i {
                SourceItem::Event(Event::Trade(t)) => Some(t),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn parses_trades_and_rejects_bad_ones() {
        let frame = r#"{"type":"trade","data":[
            {"s":"AAPL","p":189.5,"t":1700000000000,"v":100,"c":["1","12"]},
            {"s":"AAPL","p":189.5,"t":1700000000000,"v":100,"c":null},
            {"s":"BINANCE:BTCUSDT","p":37000.1,"t":1700000000001,"v":0.01},
            {"s":"MSFT","p":"x","t":1,"v":1}
        ]}"#;
        let items = parse_frame(frame, "test");
        let trades = events(&items);
        assert_eq!(trades.len(), 2);
        assert_eq!(trades[0].conditions, vec!["1", "12"]);
        assert_ne!(
            insite_schemas::msgid::trade_msg_id(trades[0]),
            insite_schemas::msgid::trade_msg_id(trades[1]),
            "identical trades in one frame keep distinct ids"
        );
        assert_eq!(items.len() - trades.len(), 2);
    }

    #[test]
    fn control_frames_and_garbage() {
        assert!(parse_frame(r#"{"type":"ping"}"#, "t").is_empty());
        assert!(parse_frame(r#"{"type":"news","x":1}"#, "t").is_empty());
        assert!(parse_frame(r#"{"type":"error","msg":"bad token"}"#, "t").is_empty());
        let garbage = parse_frame("\u{0}not json", "t");
        assert!(matches!(
            garbage.as_slice(),
            [SourceItem::Reject {
                kind: "bad_frame",
                ..
            }]
        ));
    }
}
