//! A seeded market and social simulator, and the feed that publishes it.
//!
//! [`Simulator`] is an iterator of [`Event`]s that depends only on its
//! [`SyntheticConfig`]: the same seed and start give the same events, ids
//! and (through the deterministic [`Batcher`]) the same messages, so a
//! re-run is dropped by JetStream's duplicate window.
//!
//! - Market: `symbols` tickers (the well-known ones first), each with its own
//!   volatility and spread; prices follow geometric Brownian motion with
//!   jumps; market events arrive as a Poisson process at `rate` events per
//!   second of event time, modulated by a U-shaped intraday curve (busy at the
//!   open and the close of a 6.5 h session), spread over symbols by a
//!   Zipf-like activity weight; `quote_share` of them are quotes, the rest
//!   trades at the bid, the ask or the midpoint.
//! - Social: posts at `posts_per_s` with cashtags, by authors with Pareto
//!   follower counts, sources `x`, `reddit` and `stocktwits`, their
//!   sentiment leaning with the symbol's recent move; `duplicate_share` of
//!   posts repeat an earlier post verbatim (same id).
//! - Time: event time starts at `start_ms`; with `jitter_ms` each event is
//!   delivered up to that late, so arrival is out of order within the bound.

mod market;
pub mod social;

use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use async_nats::jetstream;
use insite_schemas::config::StreamsConfig;
use insite_schemas::{SourceName, Symbol, TimestampMs};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::weighted::WeightedAliasIndex;
use rand_distr::{Distribution, Exp1};
use tokio_util::sync::CancellationToken;

use crate::batch::{BatchConfig, Batcher};
use crate::error::IngestError;
use crate::event::{Event, OutMessage};
use crate::publisher::{IngestReport, Publisher, PublisherConfig};
use market::SymbolState;
use social::Author;

/// Settings of the simulator and its feed.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticConfig {
    /// The seed: same seed and start, same events.
    pub seed: u64,
    /// Number of symbols (ignored when `symbol_list` is given).
    pub symbols: usize,
    /// Explicit symbols to simulate.
    pub symbol_list: Vec<Symbol>,
    /// Market events (trades and quotes) per second of event time.
    pub rate: f64,
    /// Publish as fast as possible instead of at `rate` in wall time (event
    /// time still advances at `rate`).
    pub max_speed: bool,
    /// When paced: run on the wall clock, an event going out as the clock
    /// reaches its event time (a live feed: the default, whose `start_ms`
    /// is now), rather than at its event-time offset from the moment the
    /// first event went out (a feed of past times, `--start`). On the wall
    /// clock the time spent starting up (connecting, creating streams) is
    /// caught up at once instead of aging every event by it.
    pub wall_clock: bool,
    /// Stop after this much event time.
    pub duration: Option<Duration>,
    /// Stop after this many events (market events and posts).
    pub count: Option<u64>,
    /// Event time of the first event, ms since the epoch.
    pub start_ms: TimestampMs,
    /// Share of market events that are quotes.
    pub quote_share: f64,
    /// Posts per second of event time.
    pub posts_per_s: f64,
    /// Share of posts that repeat an earlier post (same id).
    pub duplicate_share: f64,
    /// Largest delivery delay, so events arrive out of order within it.
    pub jitter_ms: u64,
    /// Number of distinct post authors.
    pub authors: usize,
    /// Batching.
    pub batch: BatchConfig,
    /// Publishing.
    pub publisher: PublisherConfig,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            symbols: 50,
            symbol_list: Vec::new(),
            rate: 1_000.0,
            max_speed: false,
            wall_clock: true,
            duration: None,
            count: None,
            start_ms: insite_schemas::time::now_ms(),
            quote_share: 0.5,
            posts_per_s: 20.0,
            duplicate_share: 0.02,
            jitter_ms: 0,
            authors: 2_000,
            batch: BatchConfig::default(),
            publisher: PublisherConfig::default(),
        }
    }
}

impl SyntheticConfig {
    fn check(&self) -> Result<(), IngestError> {
        let bad = |what: &str| Err(IngestError::Config(what.to_owned()));
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return bad("rate must be a positive number of events per second");
        }
        if !(self.posts_per_s.is_finite() && self.posts_per_s >= 0.0) {
            return bad("posts_per_s must be zero or positive");
        }
        if !(0.0..=1.0).contains(&self.quote_share) || !(0.0..=1.0).contains(&self.duplicate_share)
        {
            return bad("quote_share and duplicate_share must be within 0..=1");
        }
        if self.symbol_list.is_empty() && self.symbols == 0 {
            return bad("at least one symbol is needed");
        }
        if self.symbols > 100_000 {
            return bad("at most 100,000 symbols");
        }
        Ok(())
    }
}

/// An event waiting in the jitter buffer, ordered by delivery time.
#[derive(Debug)]
struct Delayed {
    /// When it is delivered (event time plus its delay).
    due: TimestampMs,
    /// Generation order, to break ties deterministically.
    seq: u64,
    /// The event.
    event: Event,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Reversed: BinaryHeap is a max-heap, the earliest due comes first.
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// The simulator: an iterator of events; see the module docs.
#[derive(Debug)]
pub struct Simulator {
    /// Settings.
    config: SyntheticConfig,
    /// The one random source.
    rng: ChaCha8Rng,
    /// Per-symbol state.
    symbols: Vec<SymbolState>,
    /// Activity weights of the symbols.
    activity: WeightedAliasIndex<f64>,
    /// Post authors.
    authors: Vec<Author>,
    /// The three post sources.
    sources: [SourceName; 3],
    /// A tag of the run (from seed and start) in every id.
    run_tag: String,
    /// Event time of the next market event, ms (fractional).
    next_market: f64,
    /// Event time of the next post, ms (fractional).
    next_post: f64,
    /// Events generated.
    generated: u64,
    /// Trades generated (for trade ids).
    trades: u64,
    /// Posts generated (for post ids).
    posts: u64,
    /// Recent posts, to repeat some.
    recent_posts: VecDeque<insite_schemas::Post>,
    /// The jitter buffer.
    delayed: BinaryHeap<Delayed>,
    /// Whether generation has ended (the buffer still drains).
    done: bool,
}

const SESSION_MS: f64 = 23_400_000.0;

impl Simulator {
    /// A simulator for `config`.
    pub fn new(config: SyntheticConfig) -> Result<Self, IngestError> {
        config.check()?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let names = if config.symbol_list.is_empty() {
            market::symbol_names(config.symbols)
        } else {
            config.symbol_list.clone()
        };
        let symbols: Vec<SymbolState> = names
            .into_iter()
            .map(|s| SymbolState::new(s, config.start_ms, &mut rng))
            .collect();
        let weights: Vec<f64> = (0..symbols.len())
            .map(|i| 1.0 / ((i + 1) as f64).powf(0.8))
            .collect();
        let activity = WeightedAliasIndex::new(weights)
            .map_err(|e| IngestError::Config(format!("symbol weights: {e}")))?;
        let authors = social::authors(config.authors.max(1), &mut rng);
        let source = |s: &str| SourceName::new(s).map_err(|e| IngestError::Config(e.to_string()));
        let sources = [source("x")?, source("reddit")?, source("stocktwits")?];
        let run_tag = format!(
            "{:08x}",
            xxhash_rust::xxh3::xxh3_64(
                &[config.seed.to_le_bytes(), config.start_ms.to_le_bytes()].concat()
            ) as u32
        );
        let start = config.start_ms as f64;
        let mut sim = Self {
            rng,
            symbols,
            activity,
            authors,
            sources,
            run_tag,
            next_market: start,
            next_post: start,
            generated: 0,
            trades: 0,
            posts: 0,
            recent_posts: VecDeque::with_capacity(64),
            delayed: BinaryHeap::new(),
            done: false,
            config,
        };
        sim.next_post = sim.post_gap(start);
        Ok(sim)
    }

    /// The symbols simulated.
    pub fn symbols(&self) -> impl Iterator<Item = &Symbol> {
        self.symbols.iter().map(|s| &s.symbol)
    }

    fn market_gap(&mut self, from: f64) -> f64 {
        let phase = ((from - self.config.start_ms as f64) / SESSION_MS).rem_euclid(1.0);
        let rate_per_ms = self.config.rate * market::intraday_intensity(phase) / 1_000.0;
        let e: f64 = Exp1.sample(&mut self.rng);
        from + e / rate_per_ms
    }

    fn post_gap(&mut self, from: f64) -> f64 {
        if self.config.posts_per_s <= 0.0 {
            return f64::INFINITY;
        }
        let e: f64 = Exp1.sample(&mut self.rng);
        from + e * 1_000.0 / self.config.posts_per_s
    }

    fn end_ms(&self) -> f64 {
        self.config
            .duration
            .map(|d| self.config.start_ms as f64 + d.as_millis() as f64)
            .unwrap_or(f64::INFINITY)
    }

    fn market_event(&mut self, ts: TimestampMs) -> Event {
        let i = self.activity.sample(&mut self.rng);
        let state = &mut self.symbols[i];
        state.evolve(ts, &mut self.rng);
        if self.rng.random_bool(self.config.quote_share) {
            Event::Quote(self.symbols[i].quote(ts, &mut self.rng))
        } else {
            self.trades += 1;
            let id = compact_str::format_compact!("{}-{}", self.run_tag, self.trades);
            Event::Trade(self.symbols[i].trade(ts, id, &mut self.rng))
        }
    }

    fn post_event(&mut self, ts: TimestampMs) -> Event {
        if !self.recent_posts.is_empty() && self.rng.random_bool(self.config.duplicate_share) {
            let k = self.rng.random_range(0..self.recent_posts.len());
            if let Some(repeat) = self.recent_posts.get(k) {
                return Event::Post(repeat.clone());
            }
        }
        // Posts favour symbols that moved: the biggest mover of three
        // activity-weighted candidates.
        let mut best = self.activity.sample(&mut self.rng);
        for _ in 0..2 {
            let c = self.activity.sample(&mut self.rng);
            if self.symbols[c].recent_move().abs() > self.symbols[best].recent_move().abs() {
                best = c;
            }
        }
        let other = if self.rng.random_bool(0.15) {
            Some(
                self.symbols[self.activity.sample(&mut self.rng)]
                    .symbol
                    .clone(),
            )
        } else {
            None
        };
        let lean = social::pick_lean(self.symbols[best].recent_move(), &mut self.rng);
        let text = social::text(
            &self.symbols[best].symbol,
            other.as_ref(),
            lean,
            &mut self.rng,
        );
        let author = self.rng.random_range(0..self.authors.len());
        let source = social::pick_source(&self.sources, &mut self.rng);
        self.posts += 1;
        let id = format!("{}-p{}", self.run_tag, self.posts);
        let post = social::post(id, source, &self.authors[author], ts, text);
        if self.recent_posts.len() == 64 {
            self.recent_posts.pop_front();
        }
        self.recent_posts.push_back(post.clone());
        Event::Post(post)
    }

    /// Generates the next event in event-time order (before jitter).
    fn generate(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        if self.config.count.is_some_and(|c| self.generated >= c) {
            self.done = true;
            return None;
        }
        let (at, is_post) = if self.next_post < self.next_market {
            (self.next_post, true)
        } else {
            (self.next_market, false)
        };
        if at >= self.end_ms() {
            self.done = true;
            return None;
        }
        let ts = at.floor() as TimestampMs;
        let event = if is_post {
            self.next_post = self.post_gap(at);
            self.post_event(ts)
        } else {
            self.next_market = self.market_gap(at);
            self.market_event(ts)
        };
        self.generated += 1;
        Some(event)
    }
}

impl Iterator for Simulator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if self.config.jitter_ms == 0 {
            return self.generate();
        }
        loop {
            // Deliver the earliest delayed event once nothing generated later
            // could be due before it.
            let horizon = if self.done {
                TimestampMs::MAX
            } else {
                self.next_post.min(self.next_market).floor() as TimestampMs
            };
            if self.delayed.peek().is_some_and(|d| d.due <= horizon) {
                return self.delayed.pop().map(|d| d.event);
            }
            let Some(event) = self.generate() else {
                if self.delayed.is_empty() {
                    return None;
                }
                continue;
            };
            let delay = self.rng.random_range(0..=self.config.jitter_ms) as TimestampMs;
            let seq = self.generated;
            self.delayed.push(Delayed {
                due: event.ts() + delay,
                seq,
                event,
            });
        }
    }
}

/// Runs the synthetic feed until its count or duration is reached or
/// `shutdown` fires, then flushes what is in flight.
///
/// Simulation, batching and encoding run on a thread of their own and hand
/// finished messages over a bounded channel to the publishing task, so the
/// two overlap; the messages and their order are the same as without.
pub async fn run_synthetic(
    js: &jetstream::Context,
    streams: &StreamsConfig,
    config: SyntheticConfig,
    shutdown: CancellationToken,
) -> Result<IngestReport, IngestError> {
    let simulator = Simulator::new(config.clone())?;
    insite_sinks::streams::ensure_streams(js, streams).await?;
    let mut publisher = Publisher::new(
        js.clone(),
        streams.clone(),
        config.publisher.clone(),
        "synthetic",
    );
    tracing::info!(symbols = simulator.symbols.len(), "synthetic feed starting");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<OutMessage>>(64);
    let producer = {
        let batcher = Batcher::new(config.batch.clone(), streams.clone());
        let pacing = match (config.max_speed, config.wall_clock) {
            (true, _) => Pacing::Flat,
            (false, true) => Pacing::WallClock,
            (false, false) => Pacing::FromFirstEvent,
        };
        let shutdown = shutdown.clone();
        tokio::task::spawn_blocking(move || produce(simulator, batcher, pacing, &tx, &shutdown))
    };
    let mut result = Ok(());
    'outer: while let Some(chunk) = publisher.recv_settling(&mut rx).await {
        for message in chunk {
            if let Err(e) = publisher.publish(message).await {
                result = Err(e);
                break 'outer;
            }
        }
    }
    // Closing the channel stops the producer if it is still going.
    drop(rx);
    let produced = producer.await.map_err(|e| IngestError::Source {
        source_name: "synthetic".into(),
        reason: format!("simulator thread ended abnormally: {e}"),
    });
    let flushed = publisher.flush().await;
    result?;
    produced??;
    let report = flushed?;
    tracing::info!(%report, "synthetic feed done");
    Ok(report)
}

/// How a synthetic feed is paced in wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pacing {
    /// As fast as possible.
    Flat,
    /// An event is due when the wall clock reaches its event time.
    WallClock,
    /// An event is due at its event-time offset from the moment the first
    /// event went out.
    FromFirstEvent,
}

impl Pacing {
    /// The instant matching event time `ts0`, for a first event at `ts0`
    /// going out at `now` (`now_ms` on the wall clock); `None` unpaced.
    fn origin(
        self,
        ts0: TimestampMs,
        now: std::time::Instant,
        now_ms: TimestampMs,
    ) -> Option<std::time::Instant> {
        match self {
            Self::Flat => None,
            Self::FromFirstEvent => Some(now),
            // An event time already past is due at once; one ahead of the
            // clock waits for it.
            Self::WallClock => {
                let behind = Duration::from_millis(u64::try_from(now_ms - ts0).unwrap_or(0));
                let ahead = Duration::from_millis(u64::try_from(ts0 - now_ms).unwrap_or(0));
                Some(now.checked_sub(behind).unwrap_or(now) + ahead)
            }
        }
    }
}

/// Simulates, batches and encodes; hands messages to `tx`, paced as
/// `pacing` says. Returns when the simulation ends, on shutdown, or when
/// the receiver is gone.
fn produce(
    simulator: Simulator,
    mut batcher: Batcher,
    pacing: Pacing,
    tx: &tokio::sync::mpsc::Sender<Vec<OutMessage>>,
    shutdown: &CancellationToken,
) -> Result<(), IngestError> {
    /// Messages handed over at once when running flat out.
    const CHUNK: usize = 32;
    let mut out = Vec::with_capacity(CHUNK * 2);
    let paced = pacing != Pacing::Flat;
    let mut origin: Option<(TimestampMs, std::time::Instant)> = None;
    for event in simulator {
        if shutdown.is_cancelled() {
            break;
        }
        if paced {
            let ts = event.ts();
            let (ts0, t0) = *origin.get_or_insert_with(|| {
                let now = std::time::Instant::now();
                let at = pacing
                    .origin(ts, now, insite_schemas::time::now_ms())
                    .unwrap_or(now);
                (ts, at)
            });
            let due = t0 + Duration::from_millis(u64::try_from(ts - ts0).unwrap_or(0));
            if due > std::time::Instant::now() + Duration::from_millis(1) {
                batcher.advance_to(ts - 1, &mut out)?;
                if !out.is_empty() && tx.blocking_send(std::mem::take(&mut out)).is_err() {
                    return Ok(());
                }
                while !shutdown.is_cancelled() {
                    let left = due.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    std::thread::sleep(left.min(Duration::from_millis(50)));
                }
            }
        }
        batcher.push(event, &mut out)?;
        let ready = (paced && !out.is_empty()) || out.len() >= CHUNK;
        if ready && tx.blocking_send(std::mem::take(&mut out)).is_err() {
            return Ok(());
        }
    }
    batcher.close_all(&mut out)?;
    if !out.is_empty() {
        let _ = tx.blocking_send(out);
    }
    Ok(())
}

/// Publishes and empties `out`.
pub(crate) async fn publish_all(
    publisher: &mut Publisher,
    out: &mut Vec<crate::event::OutMessage>,
) -> Result<(), IngestError> {
    for message in out.drain(..) {
        publisher.publish(message).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SyntheticConfig {
        SyntheticConfig {
            seed: 9,
            start_ms: 1_700_000_000_000,
            count: Some(5_000),
            posts_per_s: 100.0,
            ..SyntheticConfig::default()
        }
    }

    #[test]
    fn paced_on_the_wall_clock_an_event_is_due_at_its_own_time() {
        let now = std::time::Instant::now();
        let now_ms = 1_700_000_000_000;
        // Started 40 ms ago (start-up took that long): the first event is
        // due at once, 40 ms in the past, not 40 ms late.
        let origin = Pacing::WallClock.origin(now_ms - 40, now, now_ms).unwrap();
        assert_eq!(now - origin, Duration::from_millis(40));
        // An event time ahead of the clock waits for it.
        let origin = Pacing::WallClock.origin(now_ms + 25, now, now_ms).unwrap();
        assert_eq!(origin - now, Duration::from_millis(25));
        // From the first event: its own going out is the origin.
        assert_eq!(
            Pacing::FromFirstEvent.origin(now_ms - 40, now, now_ms),
            Some(now)
        );
        assert_eq!(Pacing::Flat.origin(now_ms, now, now_ms), None);
    }

    #[test]
    fn same_seed_same_events() {
        let a: Vec<Event> = Simulator::new(config()).unwrap().collect();
        let b: Vec<Event> = Simulator::new(config()).unwrap().collect();
        assert_eq!(a.len(), 5_000);
        assert_eq!(a, b);
        let other: Vec<Event> = Simulator::new(SyntheticConfig {
            seed: 10,
            ..config()
        })
        .unwrap()
        .collect();
        assert_ne!(a, other);
    }

    #[test]
    fn events_are_valid_and_mixed() {
        let events: Vec<Event> = Simulator::new(config()).unwrap().collect();
        let (mut t, mut q, mut p) = (0, 0, 0);
        for e in &events {
            e.validate().unwrap();
            match e {
                Event::Trade(_) => t += 1,
                Event::Quote(_) => q += 1,
                Event::Post(_) => p += 1,
            }
        }
        assert!(t > 1_000 && q > 1_000 && p > 100, "{t} {q} {p}");
        // Without jitter, event time never goes backwards (a repeated post
        // repeats its original time, so only first sightings count).
        let mut ids = std::collections::HashSet::new();
        let firsts: Vec<i64> = events
            .iter()
            .filter(|e| match e {
                Event::Post(p) => ids.insert(p.id.clone()),
                _ => true,
            })
            .map(Event::ts)
            .collect();
        assert!(firsts.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn jitter_reorders_within_the_bound_only() {
        let jitter = 250;
        let events: Vec<Event> = Simulator::new(SyntheticConfig {
            jitter_ms: jitter,
            ..config()
        })
        .unwrap()
        .collect();
        assert_eq!(events.len(), 5_000);
        let mut max_seen = 0;
        let mut late = 0;
        // Repeated posts repeat an old event time; the bound is about
        // distinct events.
        let mut id_counts = std::collections::HashMap::new();
        for e in &events {
            if let Event::Post(p) = e {
                *id_counts.entry(p.id.clone()).or_insert(0) += 1;
            }
        }
        for e in &events {
            if let Event::Post(p) = e {
                if id_counts[&p.id] > 1 {
                    continue;
                }
            }
            assert!(
                e.ts() >= max_seen - jitter as i64,
                "later than the bound: {} vs {max_seen}: {e:?}",
                e.ts()
            );
            if e.ts() < max_seen {
                late += 1;
            }
            max_seen = max_seen.max(e.ts());
        }
        assert!(late > 0, "jitter produced no out-of-order event");
    }

    #[test]
    fn some_posts_repeat_with_the_same_id() {
        let events: Vec<Event> = Simulator::new(SyntheticConfig {
            duplicate_share: 0.2,
            ..config()
        })
        .unwrap()
        .collect();
        let ids: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                Event::Post(p) => Some(p.id.as_str()),
                _ => None,
            })
            .collect();
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert!(distinct.len() < ids.len());
    }

    #[test]
    fn duration_bounds_event_time() {
        let events: Vec<Event> = Simulator::new(SyntheticConfig {
            count: None,
            duration: Some(Duration::from_secs(2)),
            rate: 500.0,
            ..config()
        })
        .unwrap()
        .collect();
        assert!(events.iter().all(|e| e.ts() < 1_700_000_002_000));
        assert!(events.len() > 500, "{}", events.len());
    }
}
