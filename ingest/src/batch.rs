//! Deterministic batching: one symbol's trades or quotes (or one source's
//! posts) per message, cut by count and by slices of event time.
//!
//! The batcher keeps a clock, the largest event time seen. When the clock
//! enters a new slice of [`BatchConfig::slice_ms`], every open batch is
//! closed; a batch is also closed when it reaches
//! [`BatchConfig::max_events`]. Both rules depend only on the events and
//! their order, never on the wall clock, so the same input (a seed, a file)
//! gives the same batches and the same batch ids on every run, and a
//! republished run is dropped by JetStream's duplicate window.
//!
//! The latency cost: an event waits for at most one slice of event time (in
//! a paced run, about that much wall time) or until its batch fills. With
//! `max_events` of 1 every event goes out on its own.

use std::collections::HashMap;

use insite_schemas::config::StreamsConfig;
use insite_schemas::{EncodeError, Post, Quote, SourceName, Symbol, TimestampMs, Trade};

use crate::event::{self, Event, OutMessage};

/// How events are grouped into messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most trades or quotes in one message (1: no batching).
    pub max_events: usize,
    /// Most posts in one message (1, the default: posts go out one by one,
    /// so a repeated post id is dropped by JetStream itself).
    pub max_posts: usize,
    /// Length of the event-time slice after which open batches close, in ms.
    pub slice_ms: i64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_events: 16,
            max_posts: 1,
            slice_ms: 100,
        }
    }
}

impl BatchConfig {
    /// The batching of a file read as fast as possible: up to 1024 events
    /// of one symbol per message, cut every second of event time (half the
    /// default allowed lateness, so that no event turns late because its
    /// batch went out after a later one).
    pub fn for_files() -> Self {
        Self {
            max_events: 1024,
            max_posts: 1,
            slice_ms: 1_000,
        }
    }
}

/// Open batches of one kind, keyed, closed in the order they were opened.
#[derive(Debug)]
struct Lane<K, T> {
    /// Key to index in `open`.
    slots: HashMap<K, usize, xxhash_rust::xxh3::Xxh3DefaultBuilder>,
    /// Open batches with their key.
    open: Vec<(K, Vec<T>)>,
    /// The capacity a new batch starts with: the length of the longest
    /// batch of the last slice (batches of one kind are about that long
    /// from one slice to the next), never more than the limit.
    start_capacity: usize,
    /// The longest batch of the current slice so far.
    longest: usize,
}

impl<K: std::hash::Hash + Eq + Clone, T> Lane<K, T> {
    fn new() -> Self {
        Self {
            slots: HashMap::default(),
            open: Vec::new(),
            start_capacity: 0,
            longest: 0,
        }
    }

    /// Adds `value`; returns the batch if it is now full.
    ///
    /// A new batch is sized by the last slice's batches, not by the limit:
    /// a batch of 1,024 trades reserved for the dozen a time-sorted
    /// multi-symbol file puts in one slice costs 120 KiB of fresh memory
    /// per message, whose page faults once dominated `insite backfill`.
    fn push(&mut self, key: &K, value: T, max: usize) -> Option<Vec<T>> {
        let capacity = self.start_capacity.clamp(1, max);
        let index = match self.slots.get(key) {
            Some(&i) => i,
            None => {
                self.open.push((key.clone(), Vec::with_capacity(capacity)));
                self.slots.insert(key.clone(), self.open.len() - 1);
                self.open.len() - 1
            }
        };
        let batch = &mut self.open[index].1;
        batch.push(value);
        self.longest = self.longest.max(batch.len());
        (batch.len() >= max).then(|| std::mem::replace(batch, Vec::with_capacity(capacity)))
    }

    /// Every open, non-empty batch, oldest first.
    fn drain(&mut self) -> impl Iterator<Item = Vec<T>> + '_ {
        self.slots.clear();
        self.start_capacity = std::mem::take(&mut self.longest);
        self.open
            .drain(..)
            .map(|(_, b)| b)
            .filter(|b| !b.is_empty())
    }
}

/// A complete group of events, before it is encoded into a message: one
/// symbol's trades or quotes, one source's posts, or one event on its own.
///
/// The publisher encodes it ([`EventBatch::encode`]); a bounded run of the
/// pipeline over files (`insite backfill`) takes the events as they are, so
/// that both see exactly the same messages.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBatch {
    /// One symbol's trades.
    Trades(Vec<Trade>),
    /// One symbol's quotes.
    Quotes(Vec<Quote>),
    /// One source's posts.
    Posts(Vec<Post>),
    /// One event, sent on its own (batch size 1).
    Single(Event),
}

impl EventBatch {
    /// Number of events.
    pub fn len(&self) -> usize {
        match self {
            Self::Trades(v) => v.len(),
            Self::Quotes(v) => v.len(),
            Self::Posts(v) => v.len(),
            Self::Single(_) => 1,
        }
    }

    /// Whether it holds no events.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The message it is published as (`None` for an empty batch).
    pub fn encode(self, streams: &StreamsConfig) -> Result<Option<OutMessage>, EncodeError> {
        match self {
            Self::Trades(v) => event::trade_batch(v, streams),
            Self::Quotes(v) => event::quote_batch(v, streams),
            Self::Posts(v) => event::post_batch(v, streams),
            Self::Single(e) => event::single(&e, streams).map(Some),
        }
    }
}

/// Groups events into messages; see the module docs.
#[derive(Debug)]
pub struct Batcher {
    /// Settings.
    config: BatchConfig,
    /// Stream settings (subject prefix).
    streams: StreamsConfig,
    /// Open trade batches by symbol.
    trades: Lane<Symbol, Trade>,
    /// Open quote batches by symbol.
    quotes: Lane<Symbol, Quote>,
    /// Open post batches by source.
    posts: Lane<SourceName, Post>,
    /// The largest event time seen.
    clock: TimestampMs,
    /// The slice `clock` is in.
    slice: i64,
    /// Batches completed by the current call, before encoding.
    done: Vec<EventBatch>,
}

impl Batcher {
    /// A batcher publishing under `streams`' subject prefix.
    pub fn new(config: BatchConfig, streams: StreamsConfig) -> Self {
        let config = BatchConfig {
            max_events: config.max_events.max(1),
            max_posts: config.max_posts.max(1),
            slice_ms: config.slice_ms.max(1),
        };
        Self {
            config,
            streams,
            trades: Lane::new(),
            quotes: Lane::new(),
            posts: Lane::new(),
            clock: TimestampMs::MIN,
            slice: i64::MIN,
            done: Vec::new(),
        }
    }

    /// Encodes the batches completed so far onto `out`.
    fn encode_done(&mut self, out: &mut Vec<OutMessage>) -> Result<(), EncodeError> {
        for batch in self.done.drain(..) {
            out.extend(batch.encode(&self.streams)?);
        }
        Ok(())
    }

    /// Moves the clock to `ts` (if later), closing every open batch when a
    /// new slice starts.
    pub fn advance_to(
        &mut self,
        ts: TimestampMs,
        out: &mut Vec<OutMessage>,
    ) -> Result<(), EncodeError> {
        let mut done = std::mem::take(&mut self.done);
        self.advance_batches(ts, &mut done);
        self.done = done;
        self.encode_done(out)
    }

    /// [`Batcher::advance_to`], with the completed batches left unencoded.
    pub fn advance_batches(&mut self, ts: TimestampMs, out: &mut Vec<EventBatch>) {
        if ts <= self.clock {
            return;
        }
        self.clock = ts;
        let slice = ts.div_euclid(self.config.slice_ms);
        if slice != self.slice {
            self.slice = slice;
            self.close_batches(out);
        }
    }

    /// Adds one event, appending any message that is now complete to `out`.
    pub fn push(&mut self, event: Event, out: &mut Vec<OutMessage>) -> Result<(), EncodeError> {
        let mut done = std::mem::take(&mut self.done);
        self.push_batches(event, &mut done);
        self.done = done;
        self.encode_done(out)
    }

    /// [`Batcher::push`], with the completed batches left unencoded.
    pub fn push_batches(&mut self, event: Event, out: &mut Vec<EventBatch>) {
        self.advance_batches(event.ts(), out);
        match event {
            Event::Trade(t) if self.config.max_events > 1 => {
                let key = t.symbol.clone();
                if let Some(full) = self.trades.push(&key, t, self.config.max_events) {
                    out.push(EventBatch::Trades(full));
                }
            }
            Event::Quote(q) if self.config.max_events > 1 => {
                let key = q.symbol.clone();
                if let Some(full) = self.quotes.push(&key, q, self.config.max_events) {
                    out.push(EventBatch::Quotes(full));
                }
            }
            Event::Post(p) if self.config.max_posts > 1 => {
                let key = p.source.clone();
                if let Some(full) = self.posts.push(&key, p, self.config.max_posts) {
                    out.push(EventBatch::Posts(full));
                }
            }
            single => out.push(EventBatch::Single(single)),
        }
    }

    /// Closes every open batch (at the end of input or on shutdown).
    pub fn close_all(&mut self, out: &mut Vec<OutMessage>) -> Result<(), EncodeError> {
        let mut done = std::mem::take(&mut self.done);
        self.close_batches(&mut done);
        self.done = done;
        self.encode_done(out)
    }

    /// [`Batcher::close_all`], with the batches left unencoded.
    pub fn close_batches(&mut self, out: &mut Vec<EventBatch>) {
        out.extend(self.trades.drain().map(EventBatch::Trades));
        out.extend(self.quotes.drain().map(EventBatch::Quotes));
        out.extend(self.posts.drain().map(EventBatch::Posts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use insite_schemas::wire::decode_inbound;
    use insite_schemas::Inbound;

    fn trade(sym: &str, ts: i64, n: u64) -> Event {
        Event::Trade(Trade {
            symbol: Symbol::new(sym).unwrap(),
            ts,
            price: 10.0,
            size: n,
            exchange: "".into(),
            trade_id: n.to_string().into(),
            conditions: vec![],
        })
    }

    fn run(events: &[Event], config: BatchConfig) -> Vec<OutMessage> {
        let mut b = Batcher::new(config, StreamsConfig::default());
        let mut out = Vec::new();
        for e in events {
            b.push(e.clone(), &mut out).unwrap();
        }
        b.close_all(&mut out).unwrap();
        out
    }

    #[test]
    fn cuts_by_count_and_slice_per_symbol() {
        let t0 = 1_700_000_000_000;
        let events = vec![
            trade("A", t0, 1),
            trade("B", t0 + 1, 2),
            trade("A", t0 + 2, 3),
            trade("A", t0 + 3, 4),   // A full (3)
            trade("A", t0 + 150, 5), // new slice: B closes
            trade("B", t0 + 160, 6),
        ];
        let config = BatchConfig {
            max_events: 3,
            slice_ms: 100,
            ..BatchConfig::default()
        };
        let out = run(&events, config.clone());
        let sizes: Vec<(String, u32)> = out.iter().map(|m| (m.subject.clone(), m.events)).collect();
        assert_eq!(
            sizes,
            vec![
                ("md.trades.A".to_owned(), 3),
                ("md.trades.B".to_owned(), 1),
                ("md.trades.A".to_owned(), 1),
                ("md.trades.B".to_owned(), 1),
            ]
        );
        // Every event comes out exactly once, in order per symbol.
        let mut sizes_seen = Vec::new();
        for m in &out {
            let Inbound::Trades(ts) =
                decode_inbound(Some(&m.schema.to_string()), &m.payload).unwrap()
            else {
                panic!("not trades")
            };
            sizes_seen.extend(ts.iter().map(|t| t.size));
        }
        sizes_seen.sort_unstable();
        assert_eq!(sizes_seen, vec![1, 2, 3, 4, 5, 6]);
        // Deterministic: same input, same ids.
        let again = run(&events, config);
        assert_eq!(
            out.iter().map(|m| &m.msg_id).collect::<Vec<_>>(),
            again.iter().map(|m| &m.msg_id).collect::<Vec<_>>()
        );
    }

    #[test]
    fn batch_size_one_sends_single_events() {
        let out = run(
            &[trade("A", 1_700_000_000_000, 1)],
            BatchConfig {
                max_events: 1,
                ..BatchConfig::default()
            },
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].schema.to_string(), "trade.v1");
        assert_eq!(out[0].msg_id, "t:A::1");
    }
}
