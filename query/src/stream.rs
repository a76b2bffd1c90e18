//! WebSocket push at `/v1/stream`, fed from NATS.
//!
//! One core NATS subscription per instance (`insite.>` and, when enabled,
//! `md.quotes.>`, under the configured subject prefix) feeds a [`Hub`],
//! which encodes each result to JSON once and fans it out to the clients
//! subscribed to its topic. `insite.>` takes in both subject trees of the
//! results: the final ones (`insite.bars.1m.AAPL`, stored in DERIVED) and
//! the live ones carrying provisional results (`insite.live.bars.1m.AAPL`,
//! core NATS only, never stored). A live result goes to the topic of its
//! final subject, so a client subscribed to `bars.1m` for `AAPL` sees the
//! current candle move and then its final version, each with its
//! `finality`. Every client has a bounded queue; a client whose
//! queue is full is dropped at once with close code 1008 and a reason, so a
//! slow reader never stalls the feed or the other clients.
//!
//! ## Protocol
//! Client to server (text frames, JSON):
//! ```json
//! {"op": "subscribe", "symbols": ["AAPL"], "kinds": ["bars.1m", "sentiment.1m", "quotes", "alerts"]}
//! {"op": "subscribe", "kinds": ["trending.1m", "alerts"]}
//! {"op": "unsubscribe", "symbols": ["AAPL"], "kinds": ["quotes"]}
//! ```
//! Kinds: `bars.<iv>`, `sentiment.<iv>`, `quotes` and `alerts` per symbol;
//! `trending.<iv>` and `alerts` without symbols (all symbols' alerts).
//! Server to client: `{"type": "subscribed", "topics": [...]}` after each
//! op, `{"type": "error", "error": "..."}` for a bad op, and results as
//! `{"type": "bar" | "sentiment" | "trending" | "alert" | "quote", "data": {...}}`
//! where `data` is the JSON of the schema type.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{SinkExt, StreamExt};
use insite_schemas::config::StreamsConfig;
use insite_schemas::subjects::{self, Subject};
use insite_schemas::wire::{self, Inbound};
use insite_schemas::{Alert, Bar, DecodeError, Interval, SentimentWindow, Symbol, Trending};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::StreamConfig;
use crate::store::HotState;

/// Topic of all symbols' alerts.
const ALL_ALERTS: &str = "alerts.*";

/// A message in a client's queue, with when the hub got it: the one
/// encoding of the message, shared by every client it goes to (a clone is
/// a reference count, not a copy).
type Queued = (Utf8Bytes, Instant);

/// Most queued messages written to a client before one flush.
const MAX_BATCH: usize = 64;

/// The close code sent to a dropped slow client (policy violation).
pub const SLOW_CLIENT_CLOSE_CODE: u16 = 1008;

/// Why a NATS message could not be fanned out (bad data: dead-lettered).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    /// The subject is not an insite subject.
    #[error("{0}")]
    Subject(#[from] insite_schemas::InvalidValue),
    /// The payload does not decode.
    #[error("{0}")]
    Decode(#[from] DecodeError),
}

/// A registered client, as the hub sees it.
#[derive(Debug)]
struct ClientHandle {
    /// Its queue.
    tx: mpsc::Sender<Queued>,
    /// Cancelled (with `reason` set) to drop the client.
    kill: CancellationToken,
    /// Why it was dropped.
    reason: Arc<std::sync::OnceLock<String>>,
}

/// Fans results out to subscribed clients.
#[derive(Debug)]
pub struct Hub {
    /// Topic → client id → client.
    topics: RwLock<HashMap<String, HashMap<u64, Arc<ClientHandle>>>>,
    /// Next client id.
    next_id: AtomicU64,
    /// Clients connected now.
    clients: AtomicU64,
    /// Settings.
    config: StreamConfig,
    /// Intervals clients may subscribe to.
    intervals: Vec<Interval>,
    /// Cancelled at shutdown: every client closes.
    shutdown: CancellationToken,
    /// Whether the NATS feed's subscriptions are in place.
    feed_ready: std::sync::atomic::AtomicBool,
    /// `insite_query_ws_delivery_seconds`, looked up once (not per write).
    delivery: metrics::Histogram,
    /// The latest state in memory, which takes the bars of the feed.
    hot: Option<Arc<HotState>>,
}

/// A message from a client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientOp {
    /// `subscribe` or `unsubscribe`.
    op: String,
    /// Symbols (for per-symbol kinds).
    #[serde(default)]
    symbols: Vec<String>,
    /// Kinds.
    #[serde(default)]
    kinds: Vec<String>,
}

/// A message to a client.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerMsg<'a> {
    /// The client's topics after an op.
    Subscribed { topics: Vec<&'a str> },
    /// A refused op.
    Error { error: String },
}

/// A result to fan out.
#[derive(Serialize)]
struct Push<'a, T> {
    #[serde(rename = "type")]
    kind: &'static str,
    data: &'a T,
}

/// What a protocol answers to one client frame.
#[derive(Debug, Default)]
pub struct Reply {
    /// Text frames to send, in order.
    pub frames: Vec<String>,
    /// Close the connection after them, with this code and reason.
    pub close: Option<(u16, String)>,
}

/// A WebSocket protocol spoken over the hub: what it sends on connect,
/// and how it answers a client's text frame (changing the client's
/// subscriptions). The queueing, batching and slow-client policy are the
/// hub's, the same for every protocol.
pub trait Protocol: Send {
    /// The frame sent when the client connects, if any.
    fn greeting(&self) -> Option<String> {
        None
    }
    /// The answer to one text frame.
    fn handle(&mut self, text: &str, subs: &mut Subscriptions<'_>) -> Reply;
}

/// One client's subscriptions, as a [`Protocol`] changes them.
#[derive(Debug)]
pub struct Subscriptions<'a> {
    /// The hub.
    hub: &'a Hub,
    /// The client's id.
    id: u64,
    /// The client.
    handle: &'a Arc<ClientHandle>,
    /// Its topics.
    mine: &'a mut HashSet<String>,
}

impl Subscriptions<'_> {
    /// Whether the client has `topic`.
    pub fn contains(&self, topic: &str) -> bool {
        self.mine.contains(topic)
    }

    /// How many topics the client has.
    pub fn len(&self) -> usize {
        self.mine.len()
    }

    /// Whether the client has no topics.
    pub fn is_empty(&self) -> bool {
        self.mine.is_empty()
    }

    /// Most topics a client may have.
    pub fn max(&self) -> usize {
        self.hub.config.max_subscriptions
    }

    /// Subscribes the client to `topic` (a no-op if it has it).
    pub fn add(&mut self, topic: String) {
        if !self.mine.contains(&topic) {
            self.hub.subscribe(&topic, self.id, self.handle);
            self.mine.insert(topic);
        }
    }

    /// Unsubscribes the client from `topic`; whether it had it.
    pub fn remove(&mut self, topic: &str) -> bool {
        let had = self.mine.remove(topic);
        if had {
            self.hub.unsubscribe(topic, self.id);
        }
        had
    }
}

/// insite's own protocol (`/v1/stream`, see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct V1Protocol;

impl Protocol for V1Protocol {
    fn handle(&mut self, text: &str, subs: &mut Subscriptions<'_>) -> Reply {
        let hub = subs.hub;
        Reply {
            frames: vec![hub.handle_op(text, subs)],
            close: None,
        }
    }
}

impl Hub {
    /// A hub serving `intervals`.
    pub fn new(config: StreamConfig, intervals: Vec<Interval>) -> Self {
        Self {
            topics: RwLock::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            clients: AtomicU64::new(0),
            config,
            intervals,
            shutdown: CancellationToken::new(),
            feed_ready: std::sync::atomic::AtomicBool::new(false),
            delivery: metrics::histogram!("insite_query_ws_delivery_seconds"),
            hot: None,
        }
    }

    /// This hub, also handing every bar of its feed to `hot`.
    pub fn with_hot(mut self, hot: Arc<HotState>) -> Self {
        self.hot = Some(hot);
        self
    }

    /// Whether the NATS feed is subscribed (results published from now on
    /// reach subscribed clients).
    pub fn feed_ready(&self) -> bool {
        self.feed_ready.load(Ordering::Acquire)
    }

    /// Clients connected now.
    pub fn clients(&self) -> u64 {
        self.clients.load(Ordering::Relaxed)
    }

    /// Closes every client (at shutdown).
    pub fn close_all(&self) {
        self.shutdown.cancel();
    }

    /// Parses one client text frame into its op (`subscribe`,
    /// `unsubscribe`, or whatever else the client sent) and the topics it
    /// names, or the error sent back to the client.
    pub fn parse_op(&self, text: &str) -> Result<(Vec<String>, String), String> {
        serde_json::from_str::<ClientOp>(text)
            .map_err(|e| format!("not a valid op: {e}"))
            .and_then(|op| Ok((self.topics_of(&op)?, op.op)))
    }

    /// Topics named by an op, validated.
    fn topics_of(&self, op: &ClientOp) -> Result<Vec<String>, String> {
        if op.kinds.is_empty() {
            return Err("kinds: name at least one kind".into());
        }
        let symbols = op
            .symbols
            .iter()
            .map(|s| Symbol::new(s).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut topics = Vec::new();
        for kind in &op.kinds {
            let (name, interval) = match kind.split_once('.') {
                Some((name, iv)) => {
                    let iv: Interval = iv.parse().map_err(|e| format!("kinds: {e}"))?;
                    if !self.intervals.contains(&iv) {
                        return Err(format!("kinds: interval {iv} is not served"));
                    }
                    (name, Some(iv))
                }
                None => (kind.as_str(), None),
            };
            match (name, interval) {
                ("trending", Some(iv)) => topics.push(subjects::trending(iv)),
                ("alerts", None) if symbols.is_empty() => topics.push(ALL_ALERTS.to_owned()),
                ("bars" | "sentiment", Some(_)) | ("quotes" | "alerts", None)
                    if symbols.is_empty() =>
                {
                    return Err(format!("symbols: kind {kind:?} needs at least one symbol"));
                }
                ("bars", Some(iv)) => topics.extend(symbols.iter().map(|s| subjects::bars(iv, s))),
                ("sentiment", Some(iv)) => {
                    topics.extend(symbols.iter().map(|s| subjects::sentiment(iv, s)));
                }
                ("quotes", None) => topics.extend(symbols.iter().map(subjects::quotes)),
                ("alerts", None) => topics.extend(symbols.iter().map(subjects::alerts)),
                _ => {
                    return Err(format!(
                        "kinds: {kind:?} is not one of bars.<iv>, sentiment.<iv>, trending.<iv>, quotes, alerts"
                    ))
                }
            }
        }
        Ok(topics)
    }

    fn subscribe(&self, topic: &str, id: u64, client: &Arc<ClientHandle>) {
        if let Ok(mut topics) = self.topics.write() {
            topics
                .entry(topic.to_owned())
                .or_default()
                .insert(id, client.clone());
        }
    }

    fn unsubscribe(&self, topic: &str, id: u64) {
        if let Ok(mut topics) = self.topics.write() {
            if let Some(clients) = topics.get_mut(topic) {
                clients.remove(&id);
                if clients.is_empty() {
                    topics.remove(topic);
                }
            }
        }
    }

    /// Sends `json` to every client of `topic`; drops clients whose queue
    /// is full. Returns the number of clients reached.
    pub fn publish(&self, topic: &str, kind: &'static str, json: Utf8Bytes) -> usize {
        let mut reached = 0;
        let mut slow = Vec::new();
        let now = Instant::now();
        if let Ok(topics) = self.topics.read() {
            let Some(clients) = topics.get(topic) else {
                return 0;
            };
            for (id, client) in clients {
                match client.tx.try_send((json.clone(), now)) {
                    Ok(()) => reached += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => slow.push((*id, client.clone())),
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
        for (id, client) in slow {
            let _ = client.reason.set(format!(
                "slow consumer: {} messages queued",
                self.config.client_queue
            ));
            if !client.kill.is_cancelled() {
                client.kill.cancel();
                metrics::counter!("insite_query_ws_dropped_slow_total").increment(1);
                tracing::info!(client = id, "dropped a slow WebSocket client");
            }
        }
        metrics::counter!("insite_query_ws_messages_total", "kind" => kind)
            .increment(reached as u64);
        reached
    }

    /// Serves one WebSocket client of insite's own protocol (`/v1/stream`)
    /// until it leaves, is dropped or the service shuts down.
    pub async fn serve_client(self: Arc<Self>, socket: WebSocket) {
        self.serve(socket, V1Protocol).await;
    }

    /// Serves one WebSocket client speaking `protocol` until it leaves, is
    /// dropped (a full queue: close code 1008), is closed by the protocol,
    /// or the service shuts down.
    pub async fn serve<P: Protocol>(self: Arc<Self>, socket: WebSocket, mut protocol: P) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.clients.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("insite_query_ws_clients").increment(1.0);
        let (tx, mut rx) = mpsc::channel(self.config.client_queue.max(1));
        let handle = Arc::new(ClientHandle {
            tx,
            kill: self.shutdown.child_token(),
            reason: Arc::new(std::sync::OnceLock::new()),
        });
        let mut mine: HashSet<String> = HashSet::new();
        let (mut sink, mut stream) = socket.split();
        let kill = handle.kill.clone();
        // One registration with the token for the client's whole life, not
        // one per message.
        let killed = kill.cancelled();
        tokio::pin!(killed);
        let mut closing: Option<(u16, String)> = None;
        if let Some(greeting) = protocol.greeting() {
            if sink.send(Message::Text(greeting.into())).await.is_err() {
                closing = Some((1000, String::new()));
            }
        }
        while closing.is_none() {
            tokio::select! {
                biased;
                () = &mut killed => break,
                queued = rx.recv() => {
                    let Some((json, at)) = queued else { break };
                    // Whatever else is queued goes out with it, in one flush.
                    let send = async {
                        sink.feed(Message::Text(json)).await?;
                        for _ in 1..MAX_BATCH {
                            let Ok((more, _)) = rx.try_recv() else { break };
                            sink.feed(Message::Text(more)).await?;
                        }
                        sink.flush().await
                    };
                    tokio::select! {
                        () = &mut killed => break,
                        sent = send => if sent.is_err() { break },
                    }
                    // From the hub's hand-over to the socket, for the
                    // oldest message of the batch.
                    self.delivery.record(at.elapsed().as_secs_f64());
                }
                incoming = stream.next() => {
                    let reply = match incoming {
                        Some(Ok(Message::Text(text))) => {
                            let mut subs = Subscriptions { hub: &self, id, handle: &handle, mine: &mut mine };
                            protocol.handle(&text, &mut subs)
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                        Some(Ok(_)) => continue,
                    };
                    let send = async {
                        for frame in reply.frames {
                            sink.feed(Message::Text(frame.into())).await?;
                        }
                        sink.flush().await
                    };
                    tokio::select! {
                        () = &mut killed => break,
                        sent = send => if sent.is_err() { break },
                    }
                    closing = reply.close;
                }
            }
        }
        for topic in &mine {
            self.unsubscribe(topic, id);
        }
        self.clients.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("insite_query_ws_clients").decrement(1.0);
        let close = if kill.is_cancelled() {
            let reason = handle
                .reason
                .get()
                .cloned()
                .unwrap_or_else(|| "server shutting down".to_owned());
            let code = if handle.reason.get().is_some() {
                SLOW_CLIENT_CLOSE_CODE
            } else {
                1001
            };
            Some((code, reason))
        } else {
            closing
        };
        if let Some((code, reason)) = close {
            let close = sink.send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })));
            let _ =
                tokio::time::timeout(Duration::from_millis(self.config.close_timeout_ms), close)
                    .await;
        }
    }

    /// Whether any client is subscribed to `topic`.
    pub fn has_subscribers(&self, topic: &str) -> bool {
        self.topics
            .read()
            .map(|topics| topics.contains_key(topic))
            .unwrap_or(false)
    }

    /// Answers one op of insite's own protocol.
    fn handle_op(&self, text: &str, subs: &mut Subscriptions<'_>) -> String {
        let reply = match self.parse_op(text) {
            Ok((topics, op)) if op == "subscribe" => {
                let new: Vec<_> = topics.into_iter().filter(|t| !subs.contains(t)).collect();
                if subs.len() + new.len() > self.config.max_subscriptions {
                    ServerMsg::Error {
                        error: format!(
                            "at most {} subscriptions per client",
                            self.config.max_subscriptions
                        ),
                    }
                } else {
                    for topic in new {
                        subs.add(topic);
                    }
                    return subscribed(subs.mine);
                }
            }
            Ok((topics, op)) if op == "unsubscribe" => {
                for topic in topics {
                    subs.remove(&topic);
                }
                return subscribed(subs.mine);
            }
            Ok((_, op)) => ServerMsg::Error {
                error: format!("op: {op:?} is not subscribe or unsubscribe"),
            },
            Err(error) => ServerMsg::Error { error },
        };
        serde_json::to_string(&reply).unwrap_or_default()
    }

    /// Decodes one NATS message (subject without prefix, final or live) and
    /// fans it out to the topic of its final subject.
    pub fn dispatch(
        &self,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: &[u8],
    ) -> Result<usize, FeedError> {
        let schema = headers
            .and_then(|h| h.get(wire::SCHEMA_HEADER))
            .map(|v| v.as_str());
        // A provisional result on `insite.live.…` goes to its final topic.
        let live = subjects::live_to_final(subject);
        let topic = live.as_deref().unwrap_or(subject);
        let parsed = subjects::parse(topic)?;
        if live.is_some()
            && !matches!(
                parsed,
                Subject::Bars(..) | Subject::Sentiment(..) | Subject::Trending(..)
            )
        {
            return Err(FeedError::Subject(insite_schemas::InvalidValue::new(
                "subject",
                format!("{subject:?} is not a live insite subject"),
            )));
        }
        let subject = topic;
        let reached = match parsed {
            Subject::Bars(..) => {
                let bar: Bar = wire::decode_result(schema, payload)?;
                metrics::counter!("insite_query_feed_messages_total", "kind" => "bar").increment(1);
                if let Some(hot) = &self.hot {
                    hot.offer_bar(&bar);
                }
                crate::vendor::ws::fan_out_bar(self, &bar)
                    + self.publish(subject, "bar", encode_push("bar", &bar))
            }
            Subject::Sentiment(..) => {
                let s: SentimentWindow = wire::decode_result(schema, payload)?;
                metrics::counter!("insite_query_feed_messages_total", "kind" => "sentiment")
                    .increment(1);
                self.publish(subject, "sentiment", encode_push("sentiment", &s))
            }
            Subject::Trending(..) => {
                let t: Trending = wire::decode_result(schema, payload)?;
                metrics::counter!("insite_query_feed_messages_total", "kind" => "trending")
                    .increment(1);
                self.publish(subject, "trending", encode_push("trending", &t))
            }
            Subject::Alerts(..) => {
                let a: Alert = wire::decode_result(schema, payload)?;
                metrics::counter!("insite_query_feed_messages_total", "kind" => "alert")
                    .increment(1);
                let json = encode_push("alert", &a);
                self.publish(subject, "alert", json.clone())
                    + self.publish(ALL_ALERTS, "alert", json)
            }
            Subject::Quotes(..) => {
                let Inbound::Quotes(quotes) = wire::decode_inbound(schema, payload)? else {
                    return Err(FeedError::Decode(DecodeError::UnexpectedSchema {
                        schema: schema.unwrap_or_default().to_owned(),
                        expected: "quote",
                    }));
                };
                metrics::counter!("insite_query_feed_messages_total", "kind" => "quote")
                    .increment(quotes.len() as u64);
                quotes
                    .iter()
                    .map(|q| {
                        crate::vendor::ws::fan_out_quote(self, q)
                            + self.publish(subject, "quote", encode_push("quote", q))
                    })
                    .sum()
            }
            // Trades go to the vendor protocol's clients only.
            Subject::Trades(..) => {
                let Inbound::Trades(trades) = wire::decode_inbound(schema, payload)? else {
                    return Err(FeedError::Decode(DecodeError::UnexpectedSchema {
                        schema: schema.unwrap_or_default().to_owned(),
                        expected: "trade",
                    }));
                };
                metrics::counter!("insite_query_feed_messages_total", "kind" => "trade")
                    .increment(trades.len() as u64);
                trades
                    .iter()
                    .map(|t| crate::vendor::ws::fan_out_trade(self, t))
                    .sum()
            }
            // Not something clients can subscribe to.
            _ => 0,
        };
        Ok(reached)
    }
}

fn subscribed(mine: &HashSet<String>) -> String {
    let mut topics: Vec<&str> = mine.iter().map(String::as_str).collect();
    topics.sort_unstable();
    serde_json::to_string(&ServerMsg::Subscribed { topics }).unwrap_or_default()
}

/// Encodes a result once, for every client it goes to.
fn encode_push<T: Serialize>(kind: &'static str, data: &T) -> Utf8Bytes {
    serde_json::to_string(&Push { kind, data })
        .unwrap_or_default()
        .into()
}

/// Feeds the hub from NATS until `shutdown`: one subscription to the
/// prefixed `insite.>` (final results and, under `insite.live.>`,
/// provisional ones), and when asked `md.quotes.>` and `md.trades.>` (for
/// the vendor protocol's `T` events), fanned out in memory.
/// Undecodable messages are counted and sent to `insite.dlq.query`.
pub async fn feed(
    hub: Arc<Hub>,
    client: async_nats::Client,
    streams: StreamsConfig,
    quotes: bool,
    trades: bool,
    shutdown: CancellationToken,
) -> Result<(), async_nats::SubscribeError> {
    let mut subs = vec![client.subscribe(streams.subject("insite.>")).await?];
    if quotes {
        subs.push(client.subscribe(streams.subject("md.quotes.>")).await?);
    }
    if trades {
        subs.push(client.subscribe(streams.subject("md.trades.>")).await?);
    }
    // The subscriptions are sent. (async-nats's `flush` writes the buffer
    // out without a round trip, so the server may register them a moment
    // after `feed_ready`; the query user may publish nowhere that answers.)
    if let Err(e) = client.flush().await {
        tracing::warn!(error = %e, "flushing the NATS subscriptions");
    }
    hub.feed_ready.store(true, Ordering::Release);
    let mut merged = futures::stream::select_all(subs);
    let dlq = streams.subject(&subjects::dlq("query"));
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => break,
            m = merged.next() => match m { Some(m) => m, None => break },
        };
        let Some(subject) = streams.strip_prefix(message.subject.as_str()) else {
            continue;
        };
        if subject.starts_with("insite.dlq.") {
            continue;
        }
        if let Err(e) = hub.dispatch(subject, message.headers.as_ref(), &message.payload) {
            metrics::counter!("insite_query_feed_errors_total").increment(1);
            tracing::warn!(subject, error = %e, "undecodable message; sent to the dead-letter subject");
            let mut headers = message.headers.clone().unwrap_or_default();
            headers.insert(wire::DLQ_REASON_HEADER, e.to_string().as_str());
            headers.insert(wire::DLQ_SUBJECT_HEADER, subject);
            headers.insert(wire::DLQ_STAGE_HEADER, "query");
            let _ = client
                .publish_with_headers(dlq.clone(), headers, message.payload.clone())
                .await;
        }
    }
    hub.feed_ready.store(false, Ordering::Release);
    hub.close_all();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Hub {
        Hub::new(
            StreamConfig {
                client_queue: 2,
                ..StreamConfig::default()
            },
            vec![Interval::MINUTE],
        )
    }

    fn op(json: &str) -> ClientOp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn ops_name_topics() {
        let hub = hub();
        let topics = hub
            .topics_of(&op(
                r#"{"op":"subscribe","symbols":["AAPL","BRK.B"],"kinds":["bars.1m","quotes"]}"#,
            ))
            .unwrap();
        assert_eq!(
            topics,
            [
                "insite.bars.1m.AAPL",
                "insite.bars.1m.BRK_B",
                "md.quotes.AAPL",
                "md.quotes.BRK_B"
            ]
        );
        let topics = hub
            .topics_of(&op(
                r#"{"op":"subscribe","kinds":["trending.1m","alerts"]}"#,
            ))
            .unwrap();
        assert_eq!(topics, ["insite.trending.1m", ALL_ALERTS]);
    }

    #[test]
    fn bad_ops_say_what_is_wrong() {
        let hub = hub();
        for (json, needle) in [
            (
                r#"{"op":"subscribe","symbols":["aapl"],"kinds":["quotes"]}"#,
                "symbol",
            ),
            (
                r#"{"op":"subscribe","symbols":["A"],"kinds":["bars.5m"]}"#,
                "not served",
            ),
            (
                r#"{"op":"subscribe","kinds":["bars.1m"]}"#,
                "needs at least one symbol",
            ),
            (
                r#"{"op":"subscribe","symbols":["A"],"kinds":["bogus"]}"#,
                "is not one of",
            ),
            (
                r#"{"op":"subscribe","symbols":["A"],"kinds":[]}"#,
                "at least one kind",
            ),
        ] {
            let err = hub.topics_of(&op(json)).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[tokio::test]
    async fn live_results_reach_the_final_topic() {
        let hub = hub();
        let (tx, mut rx) = mpsc::channel(4);
        let client = Arc::new(ClientHandle {
            tx,
            kill: CancellationToken::new(),
            reason: Arc::default(),
        });
        hub.subscribe("insite.bars.1m.BRK_B", 1, &client);
        let mut bar = Bar {
            symbol: Symbol::new("BRK.B").unwrap(),
            interval: Interval::MINUTE,
            window_start: 60_000,
            open: 10.0,
            high: 11.0,
            low: 10.0,
            close: 10.0,
            volume: 5,
            vwap: 10.2,
            trades: 2,
            finality: insite_schemas::Finality::Provisional,
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            wire::SCHEMA_HEADER,
            wire::schema_of::<Bar>().to_string().as_str(),
        );
        for (subject, close) in [
            ("insite.live.bars.1m.BRK_B", 10.5),
            ("insite.bars.1m.BRK_B", 11.0),
        ] {
            bar.close = close;
            let payload = wire::encode(&bar).unwrap();
            assert_eq!(hub.dispatch(subject, Some(&headers), &payload).unwrap(), 1);
            let (json, _) = rx.recv().await.unwrap();
            assert!(json.contains(&format!("\"close\":{close}")), "{json}");
        }
        // Alerts and quotes have no live subjects.
        for bad in [
            "insite.live.alerts.AAPL",
            "insite.live.dlq.x",
            "insite.live.x",
        ] {
            assert!(hub.dispatch(bad, Some(&headers), &[]).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_only_that_client() {
        let hub = hub();
        let (fast_tx, mut fast_rx) = mpsc::channel(2);
        let (slow_tx, _slow_rx) = mpsc::channel(2);
        let fast = Arc::new(ClientHandle {
            tx: fast_tx,
            kill: CancellationToken::new(),
            reason: Arc::default(),
        });
        let slow = Arc::new(ClientHandle {
            tx: slow_tx,
            kill: CancellationToken::new(),
            reason: Arc::default(),
        });
        hub.subscribe("t", 1, &fast);
        hub.subscribe("t", 2, &slow);
        for i in 0..5 {
            hub.publish("t", "bar", Utf8Bytes::from(i.to_string()));
            // The fast client keeps up.
            assert_eq!(fast_rx.recv().await.unwrap().0.as_str(), i.to_string());
        }
        assert!(!fast.kill.is_cancelled());
        assert!(slow.kill.is_cancelled());
        assert!(slow.reason.get().unwrap().contains("slow consumer"));
    }
}
