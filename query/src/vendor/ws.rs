//! The vendor's WebSocket protocol for stocks, at `<ws_prefix>/stocks`,
//! over the same [`Hub`] (queues, batching and slow-client policy) as
//! `/v1/stream`.
//!
//! On connect the server sends
//! `[{"ev":"status","status":"connected","message":"Connected Successfully"}]`.
//! The client authenticates with `{"action":"auth","params":"KEY"}` (the
//! keys and rate limits of the HTTP API; answered `auth_success`, or
//! `auth_failed` and the connection closes), then sends
//! `{"action":"subscribe","params":"T.AAPL,Q.AAPL,A.AAPL,AM.*"}` (or
//! `unsubscribe`), answered with one `success` status per subscription.
//! Events come as JSON arrays, with the vendor's field names:
//!
//! | ev | from | fields |
//! |---|---|---|
//! | `T` | raw trades (`md.trades.>`) | `sym`, `i` (trade id), `x` (exchange id, when known), `p`, `s`, `c` (numeric conditions), `t` (ms) |
//! | `Q` | raw quotes (`md.quotes.>`) | `sym`, `bp`, `bs`, `ap`, `as`, `t` (ms) |
//! | `A` | final 1 s bars | `sym`, `v`, `vw`, `o`, `c`, `h`, `l`, `z` (average trade size), `s`, `e` (window, ms) |
//! | `AM` | final 1 m bars | as `A` |

use axum::extract::ws::{Utf8Bytes, WebSocket};
use insite_schemas::{Bar, Finality, Interval, Quote, Symbol, Trade};
use serde::{Deserialize, Serialize};

use super::body::exchange_id;
use crate::stream::{Hub, Protocol, Reply, Subscriptions};
use crate::AppState;

/// The event types a client can subscribe to.
const EVENTS: [&str; 4] = ["T", "Q", "A", "AM"];

/// The hub topic of event `ev` of `sym` (`*`: every symbol).
fn topic(ev: &str, sym: &str) -> String {
    format!("vendor.{ev}.{sym}")
}

/// The metrics kind of event `ev`.
fn kind(ev: &str) -> &'static str {
    match ev {
        "T" => "vendor_trade",
        "Q" => "vendor_quote",
        "A" => "vendor_second",
        _ => "vendor_minute",
    }
}

/// Sends one event to the clients of its symbol's topic and of the
/// wildcard topic, encoding it only if any client is there.
fn publish<E: Serialize>(
    hub: &Hub,
    ev: &'static str,
    sym: &Symbol,
    event: impl FnOnce() -> E,
) -> usize {
    let one = topic(ev, sym.as_str());
    let all = topic(ev, "*");
    let (to_one, to_all) = (hub.has_subscribers(&one), hub.has_subscribers(&all));
    if !to_one && !to_all {
        return 0;
    }
    // Encoded once, shared by every client it goes to.
    let json: Utf8Bytes = serde_json::to_string(&[event()]).unwrap_or_default().into();
    let mut reached = 0;
    if to_one {
        reached += hub.publish(&one, kind(ev), json.clone());
    }
    if to_all {
        reached += hub.publish(&all, kind(ev), json);
    }
    reached
}

/// A trade event.
#[derive(Debug, Serialize)]
struct TradeEvent<'a> {
    ev: &'static str,
    sym: &'a str,
    i: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<u32>,
    p: f64,
    s: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    c: Vec<u32>,
    t: i64,
}

/// A quote event.
#[derive(Debug, Serialize)]
struct QuoteEvent<'a> {
    ev: &'static str,
    sym: &'a str,
    bp: f64,
    bs: u64,
    ap: f64,
    #[serde(rename = "as")]
    ask_size: u64,
    t: i64,
}

/// An aggregate (second or minute) event.
#[derive(Debug, Serialize)]
struct AggEvent<'a> {
    ev: &'static str,
    sym: &'a str,
    v: u64,
    vw: f64,
    o: f64,
    c: f64,
    h: f64,
    l: f64,
    z: u64,
    s: i64,
    e: i64,
}

/// Fans a trade out as a `T` event; returns the clients reached.
pub fn fan_out_trade(hub: &Hub, t: &Trade) -> usize {
    publish(hub, "T", &t.symbol, || TradeEvent {
        ev: "T",
        sym: t.symbol.as_str(),
        i: &t.trade_id,
        x: exchange_id(&t.exchange),
        p: t.price,
        s: t.size,
        c: t.conditions.iter().filter_map(|c| c.parse().ok()).collect(),
        t: t.ts,
    })
}

/// Fans a quote out as a `Q` event.
pub fn fan_out_quote(hub: &Hub, q: &Quote) -> usize {
    publish(hub, "Q", &q.symbol, || QuoteEvent {
        ev: "Q",
        sym: q.symbol.as_str(),
        bp: q.bid,
        bs: q.bid_size,
        ap: q.ask,
        ask_size: q.ask_size,
        t: q.ts,
    })
}

/// Fans a final 1 s bar out as an `A` event and a final 1 m bar as `AM`
/// (provisional bars and other intervals are not vendor events).
pub fn fan_out_bar(hub: &Hub, b: &Bar) -> usize {
    if b.finality != Finality::Final {
        return 0;
    }
    let ev = match b.interval {
        Interval::SECOND => "A",
        Interval::MINUTE => "AM",
        _ => return 0,
    };
    publish(hub, ev, &b.symbol, || AggEvent {
        ev,
        sym: b.symbol.as_str(),
        v: b.volume,
        vw: b.vwap,
        o: b.open,
        c: b.close,
        h: b.high,
        l: b.low,
        z: b.volume.checked_div(b.trades).unwrap_or(0),
        s: b.window_start,
        e: b.interval.window_end(b.window_start),
    })
}

/// A status message.
#[derive(Debug, Serialize)]
struct Status<'a> {
    ev: &'static str,
    status: &'a str,
    message: String,
}

fn status(status: &str, message: impl Into<String>) -> Status<'_> {
    Status {
        ev: "status",
        status,
        message: message.into(),
    }
}

fn frame(statuses: &[Status<'_>]) -> String {
    serde_json::to_string(statuses).unwrap_or_default()
}

/// A client's action.
#[derive(Debug, Deserialize)]
struct Action {
    action: String,
    #[serde(default)]
    params: String,
}

/// The vendor's protocol, for one client.
#[derive(Debug)]
pub struct VendorProtocol {
    /// Keys and limits.
    state: AppState,
    /// Whether the client has authenticated.
    authed: bool,
}

impl VendorProtocol {
    /// A client not yet authenticated.
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            authed: false,
        }
    }

    /// The hub topic of one subscription, `EV.SYM` or `EV.*`.
    fn topic_of(param: &str) -> Result<String, String> {
        let (ev, sym) = param
            .split_once('.')
            .ok_or_else(|| format!("{param:?} is not EV.SYMBOL (e.g. T.AAPL, AM.*)"))?;
        if !EVENTS.contains(&ev) {
            return Err(format!("{param:?}: {ev:?} is not one of T, Q, A, AM"));
        }
        if sym != "*" {
            Symbol::new(sym).map_err(|e| format!("{param:?}: {e}"))?;
        }
        Ok(topic(ev, sym))
    }

    fn subscriptions(&self, params: &str, subscribe: bool, subs: &mut Subscriptions<'_>) -> String {
        let mut out = Vec::new();
        for param in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match Self::topic_of(param) {
                Err(e) => out.push(status("error", e)),
                Ok(topic) if subscribe => {
                    if !subs.contains(&topic) && subs.len() >= subs.max() {
                        out.push(status(
                            "error",
                            format!("at most {} subscriptions per client", subs.max()),
                        ));
                    } else {
                        subs.add(topic);
                        out.push(status("success", format!("subscribed to: {param}")));
                    }
                }
                Ok(topic) => {
                    subs.remove(&topic);
                    out.push(status("success", format!("unsubscribed to: {param}")));
                }
            }
        }
        if out.is_empty() {
            out.push(status("error", "params: name at least one subscription"));
        }
        frame(&out)
    }
}

impl Protocol for VendorProtocol {
    fn greeting(&self) -> Option<String> {
        Some(frame(&[status("connected", "Connected Successfully")]))
    }

    fn handle(&mut self, text: &str, subs: &mut Subscriptions<'_>) -> Reply {
        let action = match serde_json::from_str::<Action>(text) {
            Ok(a) => a,
            Err(e) => {
                return Reply {
                    frames: vec![frame(&[status(
                        "error",
                        format!("not a valid action: {e}"),
                    )])],
                    close: None,
                }
            }
        };
        let reply = match action.action.as_str() {
            "auth" => match self.state.inner.limits.check(Some(action.params.trim())) {
                Ok(()) => {
                    self.authed = true;
                    frame(&[status("auth_success", "authenticated")])
                }
                Err(e) => {
                    return Reply {
                        frames: vec![frame(&[status("auth_failed", e.to_string())])],
                        close: Some((1008, "authentication failed".into())),
                    }
                }
            },
            "subscribe" | "unsubscribe" if !self.authed => frame(&[status(
                "error",
                "not authenticated: send {\"action\":\"auth\",\"params\":KEY} first",
            )]),
            "subscribe" => self.subscriptions(&action.params, true, subs),
            "unsubscribe" => self.subscriptions(&action.params, false, subs),
            other => frame(&[status(
                "error",
                format!("action: {other:?} is not auth, subscribe or unsubscribe"),
            )]),
        };
        Reply {
            frames: vec![reply],
            close: None,
        }
    }
}

/// Serves one client of the vendor's protocol.
pub async fn serve(state: AppState, socket: WebSocket) {
    let hub = state.inner.hub.clone();
    hub.serve(socket, VendorProtocol::new(state)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_name_topics() {
        assert_eq!(VendorProtocol::topic_of("T.AAPL").unwrap(), "vendor.T.AAPL");
        assert_eq!(VendorProtocol::topic_of("AM.*").unwrap(), "vendor.AM.*");
        assert_eq!(
            VendorProtocol::topic_of("Q.BRK.B").unwrap(),
            "vendor.Q.BRK.B"
        );
        for bad in ["T", "X.AAPL", "T.aapl", "AM."] {
            assert!(VendorProtocol::topic_of(bad).is_err(), "{bad}");
        }
    }
}
